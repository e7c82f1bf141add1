// The child of postgres_restarts_test.ts: two buses on the server at the URL
// given (one with a pattern and a topic subscription, one publishing), with
// no handler of unhandled rejections, as an application would run. Prints
// "ready" once connected; on a line on stdin, publishes and waits for the
// event, closes both buses and prints "closed". An unhandled rejection ends
// the process with a non-zero exit code.

import { Event } from "../../mod.ts";
import { PostgresEventBus } from "../../postgres.ts";

const url = Deno.args[0]!;
const bus = () =>
  new PostgresEventBus({
    connectionString: url,
    channelPrefix: "restarts",
    onError: () => {},
    heartbeatMs: 200,
    maxReconnectDelayMs: 200,
  });
const [a, b] = [bus(), bus()];
await a.connect();
await b.connect();
let arrived: () => void;
const got = new Promise<void>((resolve) => arrived = resolve);
await a.subscribe("p", () => arrived(), "orders:*");
await a.subscribe("orders:1", () => {});
console.log("ready");
await Deno.stdin.readable.getReader().read();
// Published until it arrives: the first may fall in a reconnect's gap.
const publishing = setInterval(() => {
  b.publish("orders:1", new Event({ type: "custom", topic: "orders:1" }))
    .catch(() => {});
}, 100);
await got;
clearInterval(publishing);
await a.close();
await b.close();
console.log("closed");
