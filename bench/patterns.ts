// Pattern subscriptions: what they cost where they do not match, and how
// dispatch grows with their number.
// - Postgres, the pattern tax: end-to-end throughput of ≈200 B events with
//   0, 1 and 1,000 pattern subscriptions that do not match, live on another
//   bus under the same prefix; and 1,000 live of which 10 match against 10
//   live that all match (every matching subscription gets every event).
// - Dispatch on one bus, every backend: events/s with 10, 1,000 and 3,000
//   pattern subscriptions of which 10 match the topic.
import { Event, type EventBus, EventType } from "../mod.ts";
import { type Backend, bus, forget } from "./_buses.ts";
import { median, N, rate, ROUNDS, rounds, type Row } from "./_measure.ts";

/** `count` distinct patterns that do not match `topic`, and 10 that do. */
function patterns(topic: string, count: number, matching: number): string[] {
  const hits = Array.from(
    { length: matching },
    (_, k) => `${topic.slice(0, topic.length - k)}*`,
  );
  const misses = Array.from(
    { length: count - matching },
    (_, k) => `other-${k}:*`,
  );
  return [...hits, ...misses];
}

/**
 * Events/s from the first publish until every matching subscription has
 * every event. Subscriptions live on `receiver`; `listeners` counts those
 * that match.
 */
async function run(
  sender: EventBus,
  receiver: EventBus,
  topic: string,
  list: string[],
  matching: number,
  count: number,
): Promise<number> {
  let received = 0;
  const wanted = count * matching;
  let arrived!: () => void;
  const done = new Promise<void>((resolve) => (arrived = resolve));
  const onEvent = () => {
    if (++received === wanted) arrived();
  };
  const subs = [];
  for (const pattern of list) {
    subs.push(await receiver.subscribe("bench", onEvent, pattern));
  }
  const events = Array.from(
    { length: count },
    (_, n) => new Event({ type: EventType.CREATED, topic, payload: { n } }),
  );
  try {
    const start = performance.now();
    await Promise.all(events.map((event) => sender.publish(topic, event)));
    await done;
    return rate(count, start);
  } finally {
    for (const sub of subs) await sub.cancel();
  }
}

/** A fresh pair of connected buses (one, for memory) for one measurement. */
async function measure(
  backend: Backend,
  list: (topic: string) => string[],
  matching: number,
  count: number,
): Promise<number> {
  const prefix = `bench_${crypto.randomUUID().slice(0, 8)}`;
  const topic = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const sender = bus(backend, prefix);
  const receiver = backend === "memory" ? sender : bus(backend, prefix);
  await sender.connect();
  if (receiver !== sender) await receiver.connect();
  try {
    return await run(sender, receiver, topic, list(topic), matching, count);
  } finally {
    await sender.close();
    await receiver.close();
    await forget(backend, prefix);
  }
}

/**
 * Postgres: throughput with `idle` non-matching patterns live on another
 * bus (and one exact subscription on the receiver).
 */
async function taxed(idle: number, count: number): Promise<number> {
  const prefix = `bench_${crypto.randomUUID().slice(0, 8)}`;
  const topic = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const [sender, receiver, elsewhere] = [0, 1, 2].map(() =>
    bus("postgres", prefix)
  );
  for (const b of [sender, receiver, elsewhere]) await b!.connect();
  try {
    for (const pattern of patterns(topic, idle, 0)) {
      await elsewhere!.subscribe("idle", () => {}, pattern);
    }
    let received = 0;
    let arrived!: () => void;
    const done = new Promise<void>((resolve) => (arrived = resolve));
    await receiver!.subscribe(topic, () => {
      if (++received === count) arrived();
    });
    const events = Array.from(
      { length: count },
      (_, n) => new Event({ type: EventType.CREATED, topic, payload: { n } }),
    );
    const start = performance.now();
    await Promise.all(events.map((event) => sender!.publish(topic, event)));
    await done;
    return rate(count, start);
  } finally {
    for (const b of [sender, receiver, elsewhere]) await b!.close();
    await forget("postgres", prefix);
  }
}

const row = (
  group: string,
  name: string,
  ours: number,
  baselineName: string,
  baseline: number,
): Row => ({
  group,
  name,
  unit: "events/s",
  ours,
  baselineName,
  baseline,
  higherIsBetter: true,
});

/** The Postgres pattern-tax rows. */
export async function patternTaxRows(): Promise<Row[]> {
  const count = N;
  const tax = await rounds({
    0: () => taxed(0, count),
    1: () => taxed(1, count),
    1000: () => taxed(1000, count),
  }, ROUNDS);
  const some = await rounds({
    "10 of 10": () =>
      measure("postgres", (t) => patterns(t, 10, 10), 10, count / 10),
    "10 of 1000": () =>
      measure("postgres", (t) => patterns(t, 1000, 10), 10, count / 10),
  }, ROUNDS);
  const none = median(tax[0]!);
  return [
    row(
      "postgres",
      "throughput, 1 pattern live elsewhere (no match), events/s",
      median(tax[1]!),
      "no pattern live",
      none,
    ),
    row(
      "postgres",
      "throughput, 1,000 patterns live elsewhere (no match), events/s",
      median(tax[1000]!),
      "no pattern live",
      none,
    ),
    row(
      "postgres",
      "throughput, 1,000 patterns live, 10 match, events/s",
      median(some["10 of 1000"]!),
      "10 patterns live, all match",
      median(some["10 of 10"]!),
    ),
  ];
}

/** Dispatch on one bus with many pattern subscriptions, 10 matching. */
export async function dispatchRows(backend: Backend): Promise<Row[]> {
  const count = Math.ceil(N / 10);
  const results = await rounds({
    10: () => measure(backend, (t) => patterns(t, 10, 10), 10, count),
    1000: () => measure(backend, (t) => patterns(t, 1000, 10), 10, count),
    3000: () => measure(backend, (t) => patterns(t, 3000, 10), 10, count),
  }, ROUNDS);
  const at = (n: number) => median(results[n]!);
  return [
    row(
      backend,
      "1,000 pattern subscriptions on one bus, 10 match, events/s",
      at(1000),
      "10 pattern subscriptions, all match",
      at(10),
    ),
    row(
      backend,
      "3,000 pattern subscriptions on one bus, 10 match, events/s",
      at(3000),
      "1,000 pattern subscriptions, 10 match",
      at(1000),
    ),
  ];
}
