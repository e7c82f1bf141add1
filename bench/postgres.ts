// PostgresEventBus against raw postgres.js in the same run: end-to-end
// throughput of N concurrent publishes, and single-event round-trip latency.
// Raw forms: one pg_notify statement per event (pipelined) and the best
// batched raw form (pg_notify over unnest, 100 events a statement).
// `deno run -A bench/postgres.ts` (DATABASE_URL, BENCH_N, BENCH_ROUNDS).
import postgres from "postgres";
import { Event, EventType } from "../mod.ts";
import { postgresChannel, PostgresEventBus } from "../postgres.ts";
import { countdown, fmt, median, percentile, table } from "./_measure.ts";

const URL_ = Deno.env.get("DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";
const N = Number(Deno.env.get("BENCH_N") ?? 20_000);
const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 5);
const SAMPLES = Math.min(N, 500);
const topic = `bench-${crypto.randomUUID().slice(0, 8)}`;
const channel = postgresChannel(topic);
const event = (n: number, pad = "") =>
  new Event({ type: EventType.CREATED, topic, payload: { n, pad } });

async function ours(pad: string, count = N): Promise<number> {
  await using bus = new PostgresEventBus({ connectionString: URL_ });
  await bus.connect();
  const { tick, done } = countdown(count);
  await bus.subscribe(topic, tick);
  const start = performance.now();
  await Promise.all(
    Array.from({ length: count }, (_, n) => bus.publish(topic, event(n, pad))),
  );
  await done;
  return count / (performance.now() - start) * 1000;
}

async function raw(batch: number, pad: string): Promise<number> {
  const sql = postgres(URL_, { max: 4, onnotice: () => {} });
  const { tick, done } = countdown(N);
  await sql.listen(channel, (text) => {
    JSON.parse(text);
    tick();
  });
  const start = performance.now();
  const sends: Promise<unknown>[] = [];
  for (let n = 0; n < N; n += batch) {
    const texts = Array.from(
      { length: Math.min(batch, N - n) },
      (_, i) => event(n + i, pad).toJSONString(),
    );
    sends.push(
      batch === 1
        ? sql`select pg_notify(${channel}, ${texts[0]!})`
        : sql`select count(pg_notify(${channel}, p)) from unnest(${texts}::text[]) as t(p)`,
    );
  }
  await Promise.all(sends);
  await done;
  const rate = N / (performance.now() - start) * 1000;
  await sql.end();
  return rate;
}

async function oursLatency(): Promise<number[]> {
  await using bus = new PostgresEventBus({ connectionString: URL_ });
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
  const sql = postgres(URL_, { max: 1, onnotice: () => {} });
  let arrived: () => void = () => {};
  await sql.listen(channel, (text) => {
    JSON.parse(text);
    arrived();
  });
  const times: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const got = new Promise<void>((r) => (arrived = r));
    const start = performance.now();
    await sql`select pg_notify(${channel}, ${event(i).toJSONString()})`;
    await got;
    times.push(performance.now() - start);
  }
  await sql.end();
  return times;
}

const big = "x".repeat(64 * 1024);
const cases: [string, () => Promise<number>][] = [
  ["ours", () => ours("")],
  ["raw, 1 a statement", () => raw(1, "")],
  ["raw, 100 a statement", () => raw(100, "")],
  ["ours, 64 KiB", () => ours(big, Math.ceil(N / 20))],
];
const rates = new Map<string, number[]>(cases.map(([name]) => [name, []]));
const lat = { ours: [] as number[], raw: [] as number[] };
for (let round = -1; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? cases : [...cases].reverse();
  for (const [name, run] of order) {
    const rate = await run();
    if (round >= 0) rates.get(name)!.push(rate);
  }
  const [o, r] = [await oursLatency(), await rawLatency()];
  if (round >= 0) {
    lat.ours.push(...o);
    lat.raw.push(...r);
  }
}
const m = (name: string) => median(rates.get(name)!);
console.log(
  `postgres, N=${N} (64 KiB row: N/20 events of 64 KiB), ${ROUNDS} rounds (median; latency: ${SAMPLES} round trips a round)`,
);
table(["measure", "PostgresEventBus", "raw postgres.js", "ours ÷ raw"], [
  [
    "throughput, events/s vs 1 pg_notify a statement",
    fmt(m("ours")),
    fmt(m("raw, 1 a statement")),
    (m("ours") / m("raw, 1 a statement")).toFixed(2),
  ],
  [
    "throughput, events/s vs 100 a statement",
    fmt(m("ours")),
    fmt(m("raw, 100 a statement")),
    (m("ours") / m("raw, 100 a statement")).toFixed(2),
  ],
  [
    "throughput, 64 KiB events/s (raw cannot: NOTIFY < 8000 B)",
    fmt(m("ours, 64 KiB")),
    "—",
    "—",
  ],
  [
    "latency p50, ms",
    fmt(percentile(lat.ours, 50), 3),
    fmt(percentile(lat.raw, 50), 3),
    (percentile(lat.ours, 50) / percentile(lat.raw, 50)).toFixed(2),
  ],
  [
    "latency p99, ms",
    fmt(percentile(lat.ours, 99), 3),
    fmt(percentile(lat.raw, 99), 3),
    (percentile(lat.ours, 99) / percentile(lat.raw, 99)).toFixed(2),
  ],
]);
