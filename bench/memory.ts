// In-memory bus rows: publish→delivered throughput with 1, 10 and 100
// subscribers and with 1,000 pattern subscriptions of which few match,
// against a hand-written loop, emittery and node:events; decoding text full
// of escapes, against JSON.parse; and memory use.
import { EventEmitter } from "node:events";
import Emittery from "emittery";
import { Event, EventType, InMemoryEventBus } from "../mod.ts";
import { median, N, rate, rounds, type Row } from "./_measure.ts";

const topic = "bench:topic";
let sink = 0;
const handler = async (event: Event) => {
  sink += event.payload.n as number;
  await undefined;
};

async function throughput(
  subscribers: number,
  events: Event[],
): Promise<Row[]> {
  const count = events.length;
  const results = await rounds({
    ours: async () => {
      await using bus = new InMemoryEventBus();
      await bus.connect();
      for (let i = 0; i < subscribers; i++) await bus.subscribe(topic, handler);
      const start = performance.now();
      for (const event of events) await bus.publish(topic, event);
      return rate(count, start);
    },
    loop: async () => {
      const table = new Map([[
        topic,
        Array.from({ length: subscribers }, () => handler),
      ]]);
      const start = performance.now();
      for (const event of events) {
        await Promise.all(table.get(event.topic)!.map((h) => h(event)));
      }
      return rate(count, start);
    },
    emittery: async () => {
      const emitter = new Emittery<{ [topic]: Event }>();
      // emittery 2 hands listeners { name, data }.
      for (let i = 0; i < subscribers; i++) {
        emitter.on(topic, ({ data }) => handler(data));
      }
      const start = performance.now();
      for (const event of events) await emitter.emit(topic, event);
      return rate(count, start);
    },
    "node:events": async () => {
      const emitter = new EventEmitter();
      emitter.setMaxListeners(0);
      for (let i = 0; i < subscribers; i++) emitter.on(topic, handler);
      const start = performance.now();
      for (const event of events) emitter.emit(topic, event);
      await undefined;
      return rate(count, start);
    },
  });
  const ours = median(results.ours!);
  const name = `${subscribers} async subscriber${
    subscribers > 1 ? "s" : ""
  }, events/s`;
  return [
    ["hand-written loop", "loop"],
    ["emittery await emit()", "emittery"],
    ["node:events emit() (sync)", "node:events"],
  ].map(([baselineName, key]) => ({
    group: "memory",
    name,
    unit: "events/s",
    ours,
    baselineName: baselineName!,
    baseline: median(results[key!]!),
    higherIsBetter: true,
  }));
}

async function patterns(events: Event[]): Promise<Row> {
  const count = events.length;
  const patternsList = Array.from(
    { length: 1000 },
    (_, i) => i < 10 ? `bench:*` : `other${i}:*:x?`,
  );
  const results = await rounds({
    ours: async () => {
      await using bus = new InMemoryEventBus();
      await bus.connect();
      for (const p of patternsList) await bus.subscribe("p", handler, p);
      const start = performance.now();
      for (const event of events) await bus.publish(topic, event);
      return rate(count, start);
    },
    loop: async () => {
      const compiled = patternsList.map((p) =>
        new RegExp(`^${p.replace(/[*]/g, ".*").replace(/\?/g, ".")}$`)
      );
      const start = performance.now();
      for (const event of events) {
        const matched = compiled.filter((r) => r.test(event.topic));
        await Promise.all(matched.map(() => handler(event)));
      }
      return rate(count, start);
    },
  });
  return {
    group: "memory",
    name: "1,000 pattern subscriptions, 10 match, events/s",
    unit: "events/s",
    ours: median(results.ours!),
    baselineName: "hand-written loop over 1,000 RegExps",
    baseline: median(results.loop!),
    higherIsBetter: true,
  };
}

/**
 * Decoding text full of escapes (a multi-line log in a payload, 200,000
 * `\n`), which the check for escaped keys must pass in one go: events/s
 * of `Event.fromJSON`, against `JSON.parse` of the same text.
 */
async function escapes(): Promise<Row> {
  const text = new Event({
    type: EventType.CREATED,
    topic,
    payload: { log: "line\n".repeat(200_000) },
  }).toJSONString();
  const times = 20;
  const results = await rounds({
    ours: () => {
      const start = performance.now();
      for (let i = 0; i < times; i++) sink += Event.fromJSON(text).topic.length;
      return Promise.resolve(rate(times, start));
    },
    parse: () => {
      const start = performance.now();
      for (let i = 0; i < times; i++) sink += JSON.parse(text).topic.length;
      return Promise.resolve(rate(times, start));
    },
  });
  return {
    group: "memory",
    name:
      "decode an event of 1 MB with 200,000 escapes (Event.fromJSON), events/s",
    unit: "events/s",
    ours: median(results.ours!),
    baselineName: "JSON.parse of the same text",
    baseline: median(results.parse!),
    higherIsBetter: true,
  };
}

function heap(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return Deno.memoryUsage().heapUsed;
}

async function memoryUse(cycles: number): Promise<Row[]> {
  await using bus = new InMemoryEventBus();
  await bus.connect();
  const emitter = new Emittery();
  const idle = 10_000;
  let before = heap();
  const subs = [];
  for (let i = 0; i < idle; i++) {
    subs.push(await bus.subscribe(`topic-${i}`, handler));
  }
  const perSubscription = (heap() - before) / idle;
  before = heap();
  for (let i = 0; i < idle; i++) emitter.on(`topic-${i}`, handler as never);
  const perListener = (heap() - before) / idle;
  for (const sub of subs) await sub.cancel();
  subs.length = 0;
  // Warm the cycle up, then measure what 100,000 more cycles leave behind.
  for (let i = 0; i < 1000; i++) {
    await (await bus.subscribe(`c-${i % 100}`, handler)).cancel();
  }
  before = heap();
  for (let i = 0; i < cycles; i++) {
    await (await bus.subscribe(`c-${i % 100}`, handler)).cancel();
  }
  const growth = heap() - before;
  return [{
    group: "memory",
    name: "bytes per idle subscription (10,000 topics)",
    unit: "bytes",
    ours: perSubscription,
    baselineName: "emittery listener",
    baseline: perListener,
    higherIsBetter: false,
  }, {
    group: "memory",
    name: `heap growth after ${
      cycles.toLocaleString("en")
    } subscribe/cancel cycles (~0: no leak)`,
    unit: "bytes",
    ours: growth,
    baselineName: "—",
    baseline: NaN,
    higherIsBetter: false,
  }];
}

/** Every memory row. */
export async function memoryRows(): Promise<Row[]> {
  const count = N * 10;
  const events = Array.from(
    { length: count },
    (_, n) => new Event({ type: EventType.CREATED, topic, payload: { n } }),
  );
  const rows = [
    ...await throughput(1, events),
    ...await throughput(10, events.slice(0, count / 10)),
    ...await throughput(100, events.slice(0, count / 100)),
    await patterns(events.slice(0, count / 10)),
    await escapes(),
    ...await memoryUse(N * 5),
  ];
  if (sink < 0) console.log(sink);
  return rows;
}
