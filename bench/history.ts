// History rows, every backend: the same bus with and without history
// (throughput of ≈200 B events, round trip p50 and p99), and the replay of
// the retained log to a fresh subscriber (`from: "earliest"`).
import type { EventBus } from "../mod.ts";
import { type Backend, bus, forget } from "./_buses.ts";
import { median, N, percentile, rate, rounds, type Row } from "./_measure.ts";
import {
  busEndpoint,
  events,
  latencies,
  remoteRounds,
  throughput,
} from "./_remote.ts";

/** Events the replay reads back: 100,000 at the default N. */
export const REPLAY: number = N * 5;
/** Events published at once while the log is filled. */
const FILL_BURST = 10_000;

const WITH = "with history";
const WITHOUT = "the same bus without history";
const DURABLE = 'with history, synchronousCommit "on"';

/**
 * Events/s of a replay: `reader` subscribes from the earliest event of a
 * log that holds `count` events on `topic`, until its handler has them all.
 */
async function replay(
  reader: EventBus,
  topic: string,
  count: number,
): Promise<number> {
  let received = 0;
  const { promise: done, resolve } = Promise.withResolvers<void>();
  const start = performance.now();
  const sub = await reader.subscribe(topic, () => {
    if (++received === count) resolve();
  }, { from: "earliest" });
  await done;
  const result = rate(count, start);
  await sub.cancel();
  return result;
}

/** Publishes `count` events on `topic` through `writer`, in bursts. */
async function fill(
  writer: EventBus,
  topic: string,
  count: number,
): Promise<void> {
  for (let from = 0; from < count; from += FILL_BURST) {
    const list = events(topic, Math.min(FILL_BURST, count - from), 0);
    await Promise.all(list.map((event) => writer.publish(topic, event)));
  }
}

/** Replays of a log of REPLAY events, each to a fresh subscriber. */
async function replays(backend: Backend): Promise<number[]> {
  const prefix = `bench_${crypto.randomUUID().slice(0, 8)}`;
  const topic = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const history = { max_events: REPLAY };
  const writer = bus(backend, prefix, history);
  try {
    await writer.connect();
    await fill(writer, topic, REPLAY);
    const results = await rounds({
      replay: async () => {
        // Memory keeps its log in the bus: read it back there.
        if (backend === "memory") return await replay(writer, topic, REPLAY);
        await using reader = bus(backend, prefix, history);
        await reader.connect();
        return await replay(reader, topic, REPLAY);
      },
    });
    return results.replay!;
  } finally {
    await writer.close();
    await forget(backend, prefix);
  }
}

/** Every history row of `backend`. */
export async function historyRows(backend: Backend): Promise<Row[]> {
  const prefix = `bench_${crypto.randomUUID().slice(0, 8)}`;
  const topic = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const kept = busEndpoint(WITH, () => bus(backend, prefix, {}));
  const plain = busEndpoint(WITHOUT, () => bus(backend, prefix));
  // PostgreSQL: also with commits that wait for the disk.
  const durable = backend === "postgres"
    ? busEndpoint(DURABLE, () => bus(backend, prefix, {}, "on"))
    : undefined;
  const count = backend === "memory" ? N * 10 : N;
  const row = (
    name: string,
    unit: string,
    ours: number,
    baselineName: string,
    baseline: number,
  ): Row => ({
    group: backend,
    name,
    unit,
    ours,
    baselineName,
    baseline,
    higherIsBetter: unit !== "ms",
  });
  try {
    const list = events(topic, count, 0);
    const results = await rounds({
      [WITH]: () => throughput(kept, 1, list),
      [WITHOUT]: () => throughput(plain, 1, list),
      ...(durable && { [DURABLE]: () => throughput(durable, 1, list) }),
    }, remoteRounds);
    const live = median(results[WITH]!);
    const sides = durable ? [WITH, DURABLE] : [WITH];
    const rows = sides.map((side) =>
      row(
        `${side}: throughput, ≈200 B events, events/s`,
        "events/s",
        median(results[side]!),
        WITHOUT,
        median(results[WITHOUT]!),
      )
    );
    const endpoints = durable ? [kept, durable, plain] : [kept, plain];
    const times: number[][] = endpoints.map(() => []);
    for (let round = 0; round < 3; round++) {
      const measured = await latencies(endpoints, topic, Math.min(N, 500));
      measured.forEach((list, side) => times[side]!.push(...list));
    }
    for (const p of [50, 99]) {
      sides.forEach((side, k) =>
        rows.push(row(
          `${side}: round trip p${p}, ms`,
          "ms",
          percentile(times[k]!, p),
          WITHOUT,
          percentile(times.at(-1)!, p),
        ))
      );
    }
    rows.push(row(
      `replay of ${
        REPLAY.toLocaleString("en")
      } retained events to a fresh subscriber (from "earliest"), events/s`,
      "events/s",
      median(await replays(backend)),
      "live delivery with history (first row)",
      live,
    ));
    return rows;
  } finally {
    await forget(backend, prefix);
  }
}
