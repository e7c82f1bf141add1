// Graceful shutdown: on SIGINT or SIGTERM, stop producing, then close():
// it takes no more events, lets the handler finish every event already
// queued for it (bounded by closeTimeoutMs; whatever is left then is
// reported through onError) and resolves once no handler runs.
// `deno run examples/graceful_shutdown.ts`, then Ctrl-C.
import { createEventBus, Event, EventType } from "../mod.ts";

const bus = createEventBus({ backend: "memory" }, { closeTimeoutMs: 10_000 });
await bus.connect();

let handled = 0;
await bus.subscribe("jobs", async () => {
  await new Promise((r) => setTimeout(r, 4)); // some work
  handled++;
});

let published = 0;
const producer = setInterval(() => {
  void bus.publish(
    "jobs",
    new Event({
      type: EventType.CREATED,
      topic: "jobs",
      payload: { n: published++ },
    }),
  );
}, 2);

async function shutdown(signal: string) {
  clearInterval(producer);
  await bus.close();
  console.log(`${signal}: drained ${handled} of ${published} jobs; bye`);
  Deno.exit(0);
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => void shutdown(signal));
}
console.log("ready");
