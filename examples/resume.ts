// A worker that survives a restart: it saves the position of each event it
// has handled, and a new process resumes from the saved position, so the
// events published while it was down are not lost.
// `deno run -A examples/resume.ts` (REDIS_URL, default redis://127.0.0.1:6379)
import { createEventBus, Event, type EventBus, EventType } from "../mod.ts";

const { hostname, port } = new URL(
  Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379",
);
const saved = await Deno.makeTempFile({ suffix: ".position" });
const topic = `jobs:${crypto.randomUUID().slice(0, 8)}`;

function makeBus(): EventBus {
  return createEventBus(
    {
      backend: "redis",
      host: hostname,
      port: Number(port) || 6379,
      channel_prefix: "resume_example",
      history: { max_events: 10_000 },
    },
    { onGap: () => console.warn("some events are no longer in the log") },
  );
}

/** One run of the worker: handles events until it has seen `count`. */
async function worker(count: number): Promise<void> {
  await using bus = makeBus();
  await bus.connect();
  const from = await Deno.readTextFile(saved);
  const done = Promise.withResolvers<void>();
  let seen = 0;
  await bus.subscribe(topic, async (event, delivery) => {
    console.log(`handled job ${event.payload.job}`);
    // At least once across restarts: a real worker also skips event ids it
    // has handled (the last few before a crash may come again).
    await Deno.writeTextFile(saved, delivery.position!);
    if (++seen === count) done.resolve();
  }, from === "" ? {} : { from });
  if (from === "") await publish(bus, [1, 2]);
  await done.promise;
}

async function publish(bus: EventBus, jobs: number[]): Promise<void> {
  for (const job of jobs) {
    await bus.publish(
      topic,
      new Event({ type: EventType.CREATED, topic, payload: { job } }),
    );
  }
}

await worker(2); // the first process: jobs 1 and 2, then it stops
{
  // While no worker runs, jobs 3 and 4 are published.
  await using producer = makeBus();
  await producer.connect();
  await publish(producer, [3, 4]);
}
console.log("restarted");
await worker(2); // the next process resumes after job 2
await Deno.remove(saved);
