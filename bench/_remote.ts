// The rows every remote backend gets, against its raw driver: end-to-end
// throughput by payload size and subscriber count, and round-trip latency.
import { Event, type EventBus, EventType } from "../mod.ts";
import {
  median,
  N,
  percentile,
  rate,
  ROUNDS,
  rounds,
  roundTrips,
  type Row,
} from "./_measure.ts";

/** One side of a comparison: the bus, or the raw driver. */
export interface Endpoint {
  readonly name: string;
  /** Connects and subscribes `subscribers` handlers that call `onEvent`. */
  open(
    topic: string,
    subscribers: number,
    onEvent: () => void,
  ): Promise<Opened>;
  /** Whether it can carry a payload of this many bytes. */
  carries?(bytes: number): boolean;
}

/** A connected endpoint. */
export interface Opened {
  /** Publishes `events`, all at once. */
  sendAll(events: Event[]): Promise<unknown>;
  /** Publishes one event. */
  sendOne(event: Event): Promise<unknown>;
  close(): Promise<void>;
}

/** Rounds of a remote case: runs are short and the services share the cores. */
export const remoteRounds: number = Math.max(ROUNDS, 5);

/** The bus side of a comparison, for any backend. */
export function busEndpoint(name: string, make: () => EventBus): Endpoint {
  return {
    name,
    async open(topic, subscribers, onEvent) {
      const bus = make();
      await bus.connect();
      for (let i = 0; i < subscribers; i++) await bus.subscribe(topic, onEvent);
      return {
        sendAll: (list) => Promise.all(list.map((e) => bus.publish(topic, e))),
        sendOne: (event) => bus.publish(topic, event),
        close: () => bus.close(),
      };
    },
  };
}

const SIZES: [string, number][] = [["≈200 B", 0], ["4 KiB", 4096], [
  "64 KiB",
  65536,
]];

/** `count` events on `topic`, each with `pad` characters of payload. */
export function events(topic: string, count: number, pad: number): Event[] {
  const text = "x".repeat(pad);
  return Array.from(
    { length: count },
    (_, n) =>
      new Event({ type: EventType.CREATED, topic, payload: { n, text } }),
  );
}

// Bursts stay under 8 MiB, well below Redis's default pub/sub output buffer
// limits (32 MiB at once, 8 MiB for a minute): a bigger burst, published
// faster than the network drains it, gets any subscriber disconnected, raw
// ioredis's as well as ours. Larger events are sent in several bursts, each
// delivered before the next.
const BURST_BYTES = 8 * 2 ** 20;

/**
 * Events/s of `list` through `endpoint` to `subscribers` handlers, sent in
 * bursts of at most BURST_BYTES, each delivered before the next.
 */
export async function throughput(
  endpoint: Endpoint,
  subscribers: number,
  list: Event[],
): Promise<number> {
  const topic = list[0]!.topic;
  const size = list[0]!.toJSONString().length;
  const burst = Math.max(1, Math.floor(BURST_BYTES / size));
  let received = 0;
  let wanted = 0;
  let arrived: () => void = () => {};
  const opened = await endpoint.open(topic, subscribers, () => {
    if (++received === wanted) arrived();
  });
  try {
    const start = performance.now();
    for (let from = 0; from < list.length; from += burst) {
      const chunk = list.slice(from, from + burst);
      const done = new Promise<void>((resolve) => (arrived = resolve));
      wanted = (from + chunk.length) * subscribers;
      await opened.sendAll(chunk);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        done,
        new Promise((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new Error(
                  `${endpoint.name}: events lost (timed out), ${chunk.length} events of ${size} B`,
                ),
              ),
            60_000,
          );
        }),
      ]).finally(() => clearTimeout(timer));
    }
    return rate(list.length, start);
  } finally {
    await opened.close();
  }
}

/**
 * Round trips, in ms, of every endpoint, taken in turns, each side on its
 * own topic (so that neither receives the other's events).
 */
export async function latencies(
  endpoints: Endpoint[],
  topic: string,
  samples: number,
): Promise<number[][]> {
  const onEvent: (() => void)[] = endpoints.map(() => () => {});
  const lists = endpoints.map((_, side) =>
    events(`${topic}-${side}`, samples, 0)
  );
  const opened: Opened[] = [];
  try {
    for (const [side, endpoint] of endpoints.entries()) {
      opened.push(
        await endpoint.open(`${topic}-${side}`, 1, () => onEvent[side]!()),
      );
    }
    return await roundTrips(
      endpoints.length,
      samples,
      (side, i) => opened[side]!.sendOne(lists[side]![i]!),
      (side, arrived) => (onEvent[side] = arrived),
    );
  } finally {
    await Promise.all(opened.map((o) => o.close()));
  }
}

/** Every row for one backend: `ours` against each of `raws`. */
export async function remoteRows(
  group: string,
  ours: Endpoint,
  raws: Endpoint[],
): Promise<Row[]> {
  const rows: Row[] = [];
  const topic = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const cases = (subscribers: number, list: Event[]) =>
    Object.fromEntries(
      [ours, ...raws].filter((e) =>
        e.carries?.(list[0]!.toJSONString().length) ?? true
      )
        .map((e) => [e.name, () => throughput(e, subscribers, list)]),
    );
  const add = (
    name: string,
    results: Record<string, number[]>,
    unit = "events/s",
  ) => {
    const mine = median(results[ours.name]!);
    const others = raws.filter((r) => results[r.name]);
    if (others.length === 0) {
      rows.push({
        group,
        name,
        unit,
        ours: mine,
        baselineName: "— (raw NOTIFY cannot)",
        baseline: NaN,
        higherIsBetter: true,
      });
    }
    for (const raw of others) {
      rows.push({
        group,
        name,
        unit,
        ours: mine,
        baselineName: raw.name,
        baseline: median(results[raw.name]!),
        higherIsBetter: true,
      });
    }
  };
  for (const [label, pad] of SIZES) {
    // 64 KiB events: a fifth as many (32 bursts at the default N).
    const count = pad >= 65536 ? Math.ceil(N / 5) : N;
    add(
      `throughput, ${label} events, events/s`,
      await rounds(cases(1, events(topic, count, pad)), remoteRounds),
    );
  }
  add(
    "throughput, 10 subscribers, events/s",
    await rounds(cases(10, events(topic, N, 0)), remoteRounds),
  );
  const samples = Math.min(N, 500);
  const times: number[][] = [[], []];
  for (let round = 0; round < 3; round++) {
    const measured = await latencies([ours, raws[0]!], topic, samples);
    measured.forEach((list, side) => times[side]!.push(...list));
  }
  for (const p of [50, 99]) {
    rows.push({
      group,
      name: `round trip p${p}, ms`,
      unit: "ms",
      ours: percentile(times[0]!, p),
      baselineName: raws[0]!.name,
      baseline: percentile(times[1]!, p),
      higherIsBetter: false,
    });
  }
  return rows;
}
