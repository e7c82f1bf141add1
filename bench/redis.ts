// RedisEventBus against raw ioredis pub/sub with the same JSON bodies, in the
// same run: end-to-end throughput and single-event round-trip latency.
// `deno run -A bench/redis.ts` (REDIS_URL, BENCH_N, BENCH_ROUNDS).
import { Redis } from "ioredis";
import { Event, EventType } from "../mod.ts";
import { RedisEventBus } from "../redis.ts";
import { countdown, fmt, median, percentile, table } from "./_measure.ts";

const URL_ = Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379";
const N = Number(Deno.env.get("BENCH_N") ?? 20_000);
const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 5);
const SAMPLES = Math.min(N, 1000);
const topic = `bench-${crypto.randomUUID().slice(0, 8)}`;
const event = (n: number) =>
  new Event({ type: EventType.CREATED, topic, payload: { n } });

async function oursThroughput(): Promise<number> {
  await using bus = new RedisEventBus({ url: URL_ });
  await bus.connect();
  const { tick, done } = countdown(N);
  await bus.subscribe(topic, tick);
  const start = performance.now();
  const sends: Promise<void>[] = [];
  for (let n = 0; n < N; n++) sends.push(bus.publish(topic, event(n)));
  await Promise.all(sends);
  await done;
  return N / (performance.now() - start) * 1000;
}

async function rawClients() {
  const pub = new Redis(URL_, {
    enableAutoPipelining: true,
    lazyConnect: true,
  });
  const sub = new Redis(URL_, { lazyConnect: true });
  await Promise.all([pub.connect(), sub.connect()]);
  await sub.subscribe(`events:${topic}`);
  return {
    pub,
    sub,
    [Symbol.asyncDispose]: async () =>
      void await Promise.all([pub.quit(), sub.quit()]),
  };
}

async function rawThroughput(): Promise<number> {
  await using raw = await rawClients();
  const { tick, done } = countdown(N);
  raw.sub.on("message", (_c: string, text: string) => {
    JSON.parse(text);
    tick();
  });
  const start = performance.now();
  const sends: Promise<number>[] = [];
  for (let n = 0; n < N; n++) {
    sends.push(raw.pub.publish(`events:${topic}`, event(n).toJSONString()));
  }
  await Promise.all(sends);
  await done;
  return N / (performance.now() - start) * 1000;
}

async function oursLatency(): Promise<number[]> {
  await using bus = new RedisEventBus({ url: URL_ });
  await bus.connect();
  let arrived: () => void = () => {};
  await bus.subscribe(topic, () => arrived());
  const times: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const got = new Promise<void>((r) => (arrived = r));
    const start = performance.now();
    await bus.publish(topic, event(i));
    await got;
    times.push(performance.now() - start);
  }
  return times;
}

async function rawLatency(): Promise<number[]> {
  await using raw = await rawClients();
  let arrived: () => void = () => {};
  raw.sub.on("message", (_c: string, text: string) => {
    JSON.parse(text);
    arrived();
  });
  const times: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const got = new Promise<void>((r) => (arrived = r));
    const start = performance.now();
    await raw.pub.publish(`events:${topic}`, event(i).toJSONString());
    await got;
    times.push(performance.now() - start);
  }
  return times;
}

const tp = { ours: [] as number[], raw: [] as number[] };
const lat = { ours: [] as number[], raw: [] as number[] };
// One warm-up round (discarded), then rounds that alternate which goes first.
for (let round = -1; round < ROUNDS; round++) {
  let ours: number, raw: number;
  if (round % 2 === 0) {
    ours = await oursThroughput();
    raw = await rawThroughput();
  } else {
    raw = await rawThroughput();
    ours = await oursThroughput();
  }
  const latencies = [await oursLatency(), await rawLatency()];
  if (round < 0) continue;
  tp.ours.push(ours);
  tp.raw.push(raw);
  lat.ours.push(...latencies[0]!);
  lat.raw.push(...latencies[1]!);
}
console.log(
  `redis, N=${N}, ${ROUNDS} rounds (throughput: median; latency: ${SAMPLES} round trips a round)`,
);
const ours50 = percentile(lat.ours, 50), raw50 = percentile(lat.raw, 50);
table(["measure", "RedisEventBus", "raw ioredis", "ours ÷ raw"], [
  [
    "throughput, events/s",
    fmt(median(tp.ours)),
    fmt(median(tp.raw)),
    (median(tp.ours) / median(tp.raw)).toFixed(2),
  ],
  [
    "latency p50, ms",
    fmt(ours50, 3),
    fmt(raw50, 3),
    (ours50 / raw50).toFixed(2),
  ],
  [
    "latency p99, ms",
    fmt(percentile(lat.ours, 99), 3),
    fmt(percentile(lat.raw, 99), 3),
    (percentile(lat.ours, 99) / percentile(lat.raw, 99)).toFixed(2),
  ],
]);
