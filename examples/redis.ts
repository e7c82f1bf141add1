// Publish and receive through Redis: `deno run -A examples/redis.ts`
// (REDIS_URL, default redis://127.0.0.1:6379).
import { createEventBus, Event, EventType } from "../mod.ts";

const { hostname, port } = new URL(
  Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379",
);
const bus = createEventBus(
  { backend: "redis", host: hostname, port: Number(port) || 6379 },
  // Told when the connection dropped and came back: events in between may be missed.
  {
    onGap: ({ since }) =>
      console.warn(`missed events since ${since.toISOString()}?`),
  },
);
await bus.connect();

const received = Promise.withResolvers<Event>();
await bus.subscribe("registry:bots", (event) => received.resolve(event));

// On Redis, publish resolves when the server accepted the event;
// delivery to subscribers (here, ourselves) is asynchronous.
await bus.publish(
  "registry:bots",
  new Event({
    type: EventType.UPDATED,
    topic: "registry:bots",
    payload: { bot_id: "b1" },
  }),
);
const event = await received.promise;
console.log(
  `Received ${event.type} on ${event.topic}: ${JSON.stringify(event.payload)}`,
);
await bus.close();
