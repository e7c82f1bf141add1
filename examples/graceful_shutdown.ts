// Graceful shutdown: on SIGINT or SIGTERM, stop producing, cancel the
// subscriptions, let handlers finish (close() drains them, bounded by
// closeTimeoutMs) and exit 0. `deno run examples/graceful_shutdown.ts`, then Ctrl-C.
import { createEventBus, Event, EventType } from "../mod.ts";

const bus = createEventBus({ backend: "memory" }, { closeTimeoutMs: 2000 });
await bus.connect();

let handled = 0;
const subscriptions = [
  await bus.subscribe("jobs", async () => {
    await new Promise((r) => setTimeout(r, 20)); // some work
    handled++;
  }),
];

let n = 0;
const producer = setInterval(() => {
  void bus.publish(
    "jobs",
    new Event({ type: EventType.CREATED, topic: "jobs", payload: { n: n++ } }),
  );
}, 5);

async function shutdown(signal: string) {
  clearInterval(producer);
  for (const sub of subscriptions) await sub.cancel();
  await bus.close();
  console.log(`${signal}: drained after ${handled} jobs; bye`);
  Deno.exit(0);
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => void shutdown(signal));
}
console.log("ready");
