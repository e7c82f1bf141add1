// Typed topics: what compiles and what does not (`deno task check` type
// checks this file; every `@ts-expect-error` line must be an error), and
// that a typed bus behaves at run time as an untyped one.

import assert from "node:assert/strict";
import {
  createEventBus,
  Event,
  type EventBus,
  type EventBusLifecycle,
  type EventHandler,
  type EventIterator,
  InMemoryEventBus,
  type JsonObject,
  type JsonSafe,
  type TopicEvent,
} from "../mod.ts";
import { PostgresEventBus } from "../postgres.ts";
import { RedisEventBus } from "../redis.ts";

interface BotChange {
  bot_id: string;
  version?: number;
  tags?: readonly string[];
}
type Ingestion = { doc: string; chunks: number };
type Topics = {
  "registry:bots": BotChange;
  "knowledge:ingestion": Ingestion;
};

const botEvent = (bot_id: string) =>
  new Event<BotChange>({
    type: "updated",
    topic: "registry:bots",
    payload: { bot_id },
  });

// Compile-time checks only: never called.
function typeChecks(bus: EventBus<Topics>, untyped: EventBus): void {
  // Exact topics give exact payloads; interfaces work; no casts.
  void bus.subscribe("registry:bots", (event) => {
    const id: string = event.payload.bot_id;
    const version: number | undefined = event.payload.version;
    void id, version;
  });
  void bus.publish("registry:bots", botEvent("b1"));
  void bus.publish(
    "knowledge:ingestion",
    new Event({
      type: "created",
      topic: "knowledge:ingestion",
      payload: { doc: "d", chunks: 3 },
    }),
  );
  // @ts-expect-error a topic not in the map
  void bus.publish("registry:bot", botEvent("b1"));
  // @ts-expect-error the payload of another topic
  void bus.publish("knowledge:ingestion", botEvent("b1"));
  void bus.publish(
    "registry:bots",
    // @ts-expect-error a payload missing a required key
    new Event({ type: "updated", topic: "registry:bots", payload: { id: 1 } }),
  );
  // @ts-expect-error subscribing to a topic not in the map
  void bus.subscribe("registry:bot", () => {});
  // @ts-expect-error a handler for another payload
  void bus.subscribe("registry:bots", (event: Event<Ingestion>) => void event);
  const exact = (event: Event<BotChange>) => void event;
  // @ts-expect-error a pattern gets every topic's events, not one payload
  void bus.subscribe("registry:bots", exact, { pattern: "registry:*" });
  // @ts-expect-error the same with the positional pattern
  void bus.subscribe("registry:bots", exact, "registry:*");
  type V = { v?: number };
  const t = { type: "created", topic: "t" } as const;
  // An optional key is left out, not set to undefined (exactOptional…).
  // @ts-expect-error undefined in an optional key
  new Event<V>({ ...t, payload: { v: undefined } });
  // Untyped events take an interface's value as they take any plain object.
  const change: BotChange = { bot_id: "b1" };
  const anyEvents: Event<unknown>[] = [
    new Event({ type: "updated", topic: "t", payload: change }),
    new Event<BotChange>({ type: "updated", topic: "t", payload: change }),
  ];
  void anyEvents;
  // Any bus, typed or not, as its lifecycle.
  const lifecycles: EventBusLifecycle[] = [
    bus,
    untyped,
    new InMemoryEventBus<Topics>(),
    new RedisEventBus<Topics>({ host: "127.0.0.1" }),
  ];
  void lifecycles;

  // A pattern subscription gets the union, narrowed by `topic`.
  void bus.subscribe("all", (event) => {
    if (event.topic === "knowledge:ingestion") {
      const chunks: number = event.payload.chunks;
      void chunks;
    } else {
      const id: string = event.payload.bot_id;
      void id;
    }
  }, "*");
  void bus.subscribe("all", (event: TopicEvent<Topics>) => void event, {
    pattern: "registry:*",
    signal: AbortSignal.timeout(1),
  });

  // Handlers get the delivery too (its position, on a bus with history).
  void bus.subscribe("registry:bots", (_event, delivery) => {
    const position: string | undefined = delivery.position;
    void position;
  }, { from: "earliest" });
  void bus.subscribe("all", (_event, delivery) => void delivery.position, "*");

  // once() and events() are typed the same way.
  void bus.once("registry:bots", {
    filter: (event) => event.payload.bot_id === "b1",
  }).then((event) => {
    const id: string = event.payload.bot_id;
    void id;
  });
  const events: EventIterator<Event<Ingestion>> = bus.events(
    "knowledge:ingestion",
  );
  void events;
  void bus.once("any", { pattern: "*" }).then((event) => {
    // @ts-expect-error without narrowing, the payload is a union
    const id: string = event.payload.bot_id;
    void id;
  });
  // @ts-expect-error once on a topic not in the map
  void bus.once("registry:bot");

  // Types JSON cannot carry are compile errors where the type is known:
  // a stated payload type, a topic map, a typed bus's publish.
  const when = new Date();
  const base = { type: "created", topic: "t" } as const;
  // @ts-expect-error a Date
  new Event<{ when: Date }>({ ...base, payload: { when } });
  // @ts-expect-error a bigint
  new Event<{ n: bigint }>({ ...base, payload: { n: 1n } });
  const f = () => 1;
  type F = typeof f;
  // @ts-expect-error a function
  new Event<{ f: F }>({ ...base, payload: { f } });
  const m = new Map<string, number>();
  type M = typeof m;
  // @ts-expect-error a Map
  new Event<{ m: M }>({ ...base, payload: { m } });
  const maybe: { a: string | undefined } = { a: undefined };
  type Maybe = typeof maybe;
  // @ts-expect-error a required key that may be undefined
  new Event<Maybe>({ ...base, payload: maybe });
  void bus.publish(
    "registry:bots",
    // @ts-expect-error inline on a typed bus: the topic's type is known
    new Event({ type: "created", topic: "t", payload: { bot_id: when } }),
  );
  // Payloads are objects, typed or not.
  // @ts-expect-error a string payload
  new Event({ type: "created", topic: "t", payload: "hello" });
  // @ts-expect-error an array payload
  new Event({ type: "created", topic: "t", payload: [1, 2] });
  // @ts-expect-error a stated payload type that is not an object
  new Event<string>({ type: "created", topic: "t", payload: "x" });
  // @ts-expect-error a map whose payload is an array
  createEventBus<{ t: string[] }>();
  // @ts-expect-error a map with a Date payload
  createEventBus<{ t: { when: Date } }>();
  // @ts-expect-error a map with a payload that is not an object
  createEventBus<{ t: string }>();
  // @ts-expect-error a map with an undefined-valued required key
  createEventBus<{ t: { a: string | undefined } }>();
  // @ts-expect-error the classes check the map too
  new InMemoryEventBus<{ t: { f: () => void } }>();
  createEventBus<{ t: { a?: string; b: number | null; c: string[] } }>();
  const safe: JsonSafe<BotChange> = { bot_id: "b", tags: ["x"] };
  void safe;

  // Without a type argument, everything behaves as before.
  const unknownData: unknown = 1;
  const store: Event[] = [];
  store.push(
    new Event({ type: "created", topic: "t", payload: { unknownData } }),
  );
  const make = (payload: Record<string, unknown>): Event =>
    new Event({ type: "created", topic: "t", payload });
  void make;
  void untyped.subscribe("anything", (event) => {
    const value: unknown = event.payload.anything;
    const payload: JsonObject = event.payload;
    void value, payload;
  }, "any:*");
  void untyped.publish("x", botEvent("b1"));
  const record: Record<string, unknown> = { a: 1 };
  void untyped.publish(
    "x",
    new Event({ type: "created", topic: "x", payload: record }),
  );
  const handler: EventHandler = (event) => void event.payload.x;
  void untyped.subscribe("x", handler, { pattern: "x*" });
  const options: { pattern?: string | null } = {};
  void untyped.subscribe("x", handler, options);
  // Untyped and typed buses of every class are EventBus values.
  const buses: EventBus[] = [
    new InMemoryEventBus(),
    new RedisEventBus({ host: "127.0.0.1" }),
    new PostgresEventBus({ connectionString: "postgres://h/db" }),
  ];
  const typed: EventBus<Topics>[] = [
    new InMemoryEventBus<Topics>(),
    new RedisEventBus<Topics>({ host: "127.0.0.1" }),
    new PostgresEventBus<Topics>({ connectionString: "postgres://h/db" }),
    createEventBus<Topics>({ backend: "memory" }),
  ];
  void buses, typed;
}
void typeChecks;

Deno.test("a typed bus delivers exact and pattern subscriptions as an untyped one", async () => {
  const bus = createEventBus<Topics>();
  await bus.connect();
  const exact: string[] = [];
  const any: string[] = [];
  await bus.subscribe(
    "registry:bots",
    (e) => void exact.push(e.payload.bot_id),
  );
  await bus.subscribe("all", (e) => void any.push(e.topic), "*:*");
  const next = bus.once("knowledge:ingestion", { timeoutMs: 1000 });
  await bus.publish("registry:bots", botEvent("b1"));
  await bus.publish(
    "knowledge:ingestion",
    new Event({
      type: "created",
      topic: "knowledge:ingestion",
      payload: { doc: "d", chunks: 2 },
    }),
  );
  assert.equal((await next).payload.chunks, 2);
  assert.deepEqual(exact, ["b1"]);
  assert.deepEqual(any, ["registry:bots", "knowledge:ingestion"]);
  await bus.close();
});

Deno.test("a payload type is not checked at run time: a wrong payload from elsewhere still arrives", async () => {
  const bus = new InMemoryEventBus<Topics>();
  await bus.connect();
  const seen: unknown[] = [];
  await bus.subscribe("registry:bots", (e) => void seen.push(e.payload));
  const untyped = bus as unknown as EventBus;
  await untyped.publish(
    "registry:bots",
    new Event({ type: "updated", topic: "registry:bots", payload: { x: 1 } }),
  );
  assert.deepEqual(seen, [{ x: 1 }]);
  await bus.close();
});
