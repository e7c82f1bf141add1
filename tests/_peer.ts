// A bus in another process: `deno run -A tests/_peer.ts <backend> <url> <ping> <pong>`.
// Prints "ready" once subscribed; answers one event on <ping> with n + 1 on
// <pong>, then exits. A <ping> with a "*" is subscribed as a pattern.
import { createEventBus, Event, EventType } from "../mod.ts";

const [backend, url, ping, pong] = Deno.args as [
  string,
  string,
  string,
  string,
];
const bus = backend === "redis"
  ? createEventBus({ backend: "redis", url })
  : createEventBus({ backend: "postgres", connection_string: url });
await bus.connect();
const { promise: done, resolve } = Promise.withResolvers<void>();
const pattern = ping.includes("*") ? ping : null;
await bus.subscribe(ping, async (event) => {
  await bus.publish(
    pong,
    new Event({
      type: EventType.UPDATED,
      topic: pong,
      payload: { n: (event.payload.n as number) + 1, from: event.topic },
      source: "peer",
    }),
  );
  resolve();
}, pattern);
console.log("ready");
await done;
await bus.close();
