// Small helpers shared by the bench scripts: medians, percentiles, tables.

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

/** Prints a Markdown table. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(" | ")} |`;
  const text = [
    line(headers),
    line(headers.map((_, i) => (i === 0 ? "---" : "---:"))),
    ...rows.map(line),
  ].join("\n");
  console.log(text);
  return text;
}

/** A number with thousands separators. */
export const fmt = (n: number, digits = 0): string =>
  n.toLocaleString("en", {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });

/** A promise resolved by the `count`-th call of `tick`. */
export function countdown(
  count: number,
): { tick: () => void; done: Promise<void> } {
  const { promise, resolve } = Promise.withResolvers<void>();
  let left = count;
  return { tick: () => --left === 0 && resolve(), done: promise };
}
