// Pattern subscriptions (Python fnmatch rules), on the in-memory backend:
// `deno run examples/patterns.ts`. The same code works on Redis and Postgres.
import { createEventBus, Event, EventType } from "../mod.ts";

const bus = createEventBus({ backend: "memory" });
await bus.connect();

const log = (label: string) => (event: Event) =>
  console.log(`${label.padEnd(14)} ${event.topic}`);
await bus.subscribe("registry", log("registry:*"), "registry:*"); // any run of characters, colons too
await bus.subscribe("created", log("*:created"), "*:created");
await bus.subscribe("shards", log("shard-[a-c]"), "shard-[a-c]"); // one of a range
await bus.subscribe("not-x", log("job-[!x]?"), "job-[!x]?"); // not x, then any one character
await bus.subscribe("registry:*", log("literal"), null); // no pattern: "*" is just a character

for (
  const topic of [
    "registry:bots",
    "registry:bots:config",
    "bots:created",
    "shard-b",
    "shard-d",
    "job-a1",
    "job-x1",
    "registry:*",
  ]
) {
  await bus.publish(topic, new Event({ type: EventType.CUSTOM, topic }));
}
await bus.close();
