// A TypeScript consumer of the package, as an application writes it:
// `deno task check` checks it against the sources, and `test:node` compiles
// it with tsc against the built package (moduleResolution nodenext and
// bundler), then runs it. Every `@ts-expect-error` line must be an error.

import { createEventBus, Event, type EventBus } from "@dataknobs/events";
import { PostgresEventBus } from "@dataknobs/events/postgres";
import { RedisEventBus } from "@dataknobs/events/redis";

interface BotChange {
  bot_id: string;
  version?: number;
}
type Topics = { "registry:bots": BotChange; "jobs:done": { ok: boolean } };

/** Publishes and reads typed events on the memory backend. */
export async function consumer(): Promise<string[]> {
  const bus: EventBus<Topics> = createEventBus<Topics>({ backend: "memory" });
  await bus.connect();
  const seen: string[] = [];
  await bus.subscribe("registry:bots", (event) => {
    const id: string = event.payload.bot_id;
    seen.push(id);
  });
  await bus.subscribe("all", (event) => {
    if (event.topic === "jobs:done") seen.push(`ok=${event.payload.ok}`);
  }, { pattern: "*" });
  const done = bus.events("jobs:done", { bufferSize: 10 });
  await bus.publish(
    "registry:bots",
    new Event<BotChange>({
      type: "updated",
      topic: "registry:bots",
      payload: { bot_id: "b1" },
    }),
  );
  await bus.publish(
    "jobs:done",
    new Event({ type: "updated", topic: "jobs:done", payload: { ok: true } }),
  );
  for await (const event of done) {
    const ok: boolean = event.payload.ok;
    seen.push(`read ${ok}`);
    break;
  }
  await bus.close();
  return seen;
}

/** Misuses that must not compile; never called. */
export function misuses(bus: EventBus<Topics>): void {
  const event = new Event({ type: "updated", topic: "x" });
  // @ts-expect-error a topic not in the map
  void bus.publish("registry:bot", event);
  const when = new Date();
  const dated = { type: "created", topic: "t", payload: { when } } as const;
  // @ts-expect-error a Date does not survive JSON
  void new Event<{ when: Date }>(dated);
  const data: unknown = 1;
  // Untyped events take any object, as before (checked at run time).
  const untypedEvents: Event[] = [
    new Event({ type: "created", topic: "t", payload: { data } }),
  ];
  void untypedEvents;
  // @ts-expect-error a payload map with a bigint
  void createEventBus<{ t: { n: bigint } }>;
  // @ts-expect-error a handler for another topic's payload
  void bus.subscribe("jobs:done", (e: Event<BotChange>) => void e);
  const untyped: EventBus[] = [
    new RedisEventBus({ host: "127.0.0.1" }),
    new PostgresEventBus({ connectionString: "postgres://127.0.0.1/db" }),
  ];
  void untyped;
}
