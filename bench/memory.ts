// In-memory publish→delivered throughput against emittery, node:events and a
// hand-written loop, measured in the same run. `deno task bench`.
import { EventEmitter } from "node:events";
import Emittery from "emittery";
import { Event, EventType, InMemoryEventBus } from "../mod.ts";

const N = Number(Deno.env.get("BENCH_N") ?? 200_000);
const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 5);
const topic = "bench:topic";
const events = Array.from(
  { length: N },
  (_, n) => new Event({ type: EventType.CREATED, topic, payload: { n } }),
);
let sink = 0;
const handler = async (event: Event) => {
  sink += event.payload.n as number;
  await undefined;
};

async function bus(): Promise<number> {
  const bus = new InMemoryEventBus();
  await bus.connect();
  await bus.subscribe(topic, handler);
  const start = performance.now();
  for (const event of events) await bus.publish(topic, event);
  const ms = performance.now() - start;
  await bus.close();
  return ms;
}

async function busWithNewEvents(): Promise<number> {
  const bus = new InMemoryEventBus();
  await bus.connect();
  await bus.subscribe(topic, handler);
  const start = performance.now();
  for (let n = 0; n < N; n++) {
    await bus.publish(
      topic,
      new Event({ type: EventType.CREATED, topic, payload: { n } }),
    );
  }
  const ms = performance.now() - start;
  await bus.close();
  return ms;
}

async function emittery(): Promise<number> {
  const emitter = new Emittery<{ [topic]: Event }>();
  // emittery 2 hands listeners { name, data }.
  emitter.on(topic, ({ data }) => handler(data));
  const start = performance.now();
  for (const event of events) await emitter.emit(topic, event);
  return performance.now() - start;
}

async function nodeEvents(): Promise<number> {
  const emitter = new EventEmitter();
  emitter.on(topic, handler);
  const start = performance.now();
  for (const event of events) emitter.emit(topic, event);
  await undefined;
  return performance.now() - start;
}

async function handLoop(): Promise<number> {
  const handlers = new Map([[topic, [handler]]]);
  const start = performance.now();
  for (const event of events) {
    for (const h of handlers.get(event.topic)!) await h(event);
  }
  return performance.now() - start;
}

const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1]!;
const rows: [string, () => Promise<number>][] = [
  ["InMemoryEventBus, 1 async handler", bus],
  ["InMemoryEventBus, incl. new Event()", busWithNewEvents],
  ["emittery await emit()", emittery],
  ["node:events emit() (sync, no await)", nodeEvents],
  ["hand-written loop, await handler", handLoop],
];
const rates = new Map<string, number[]>(rows.map(([name]) => [name, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, run] of rows) rates.get(name)!.push(N / await run() * 1000);
}
const ours = median(rates.get(rows[0]![0])!);
console.log(`memory, N=${N}, median of ${ROUNDS} rounds, ${Deno.version.deno}`);
console.log("| case | events/s | ours ÷ case |\n| --- | ---: | ---: |");
for (const [name, list] of rates) {
  const rate = median(list);
  console.log(
    `| ${name} | ${Math.round(rate).toLocaleString("en")} | ${
      (ours / rate).toFixed(2)
    } |`,
  );
}
if (sink < 0) console.log(sink);
