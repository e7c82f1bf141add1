// Shared by the bench modules: settings, medians, percentiles, rows.

/** Events per throughput run (BENCH_N). */
export const N: number = Number(Deno.env.get("BENCH_N") ?? 20_000);
/** Measured rounds per case, after one warm-up round (BENCH_ROUNDS). */
export const ROUNDS: number = Number(Deno.env.get("BENCH_ROUNDS") ?? 3);

/** One line of the results table. */
export interface Row {
  readonly group: string;
  readonly name: string;
  readonly unit: string;
  readonly ours: number;
  readonly baselineName: string;
  /** NaN when there is no baseline. */
  readonly baseline: number;
  /** Whether a bigger number is better (throughput) or worse (latency). */
  readonly higherIsBetter: boolean;
}

/** The median of `values`. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

/** The `p`-th percentile (0–100) of `values`. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[
    Math.min(sorted.length - 1, Math.floor(sorted.length * p / 100))
  ]!;
}

/**
 * Runs each case once to warm up, then ROUNDS times, alternating the order
 * so neither side always runs first; returns every case's measurements.
 */
export async function rounds(
  cases: Record<string, () => Promise<number>>,
  count: number = ROUNDS,
): Promise<Record<string, number[]>> {
  const names = Object.keys(cases);
  const results: Record<string, number[]> = Object.fromEntries(
    names.map((n) => [n, []]),
  );
  for (let round = -1; round < count; round++) {
    for (const name of round % 2 === 0 ? names : [...names].reverse()) {
      const value = await cases[name]!();
      if (round >= 0) results[name]!.push(value);
    }
  }
  return results;
}

/** Events per second for `count` events that took from `start` to now. */
export const rate = (count: number, start: number): number =>
  count / (performance.now() - start) * 1000;

/**
 * Round-trip times, in ms, of `samples` single events on each side, taken
 * in turns (the order alternating) so that every side meets the same
 * moments of a noisy machine. `send(side, i)` sends the i-th event of a
 * side; the side calls the function `onArrival` gave it on each arrival.
 */
export async function roundTrips(
  sides: number,
  samples: number,
  send: (side: number, i: number) => Promise<unknown>,
  onArrival: (side: number, arrived: () => void) => void,
): Promise<number[][]> {
  const waiting: (() => void)[] = [];
  for (let side = 0; side < sides; side++) {
    waiting.push(() => {});
    onArrival(side, () => waiting[side]!());
  }
  const times: number[][] = waiting.map(() => []);
  for (let i = 0; i < samples; i++) {
    for (let turn = 0; turn < sides; turn++) {
      const side = i % 2 === 0 ? turn : sides - 1 - turn;
      const got = new Promise<void>((r) => (waiting[side] = r));
      const start = performance.now();
      await send(side, i);
      await got;
      times[side]!.push(performance.now() - start);
    }
  }
  return times;
}
