// `deno task bench`: every benchmark, one table, written to bench/RESULTS.md
// (with --write). Each row compares this library with a baseline measured in
// the same run, as a ratio, because these machines are noisy.
// BENCH_N and BENCH_ROUNDS scale it; BENCH_ONLY=memory,redis,postgres picks
// backends (every row of each), and memory:history (say) one backend's
// history rows only.
import type { Row } from "./_measure.ts";
import { N, ROUNDS } from "./_measure.ts";
import { memoryRows } from "./memory.ts";
import { historyRows, REPLAY } from "./history.ts";
import { dispatchRows, patternTaxRows } from "./patterns.ts";
import { postgresRows } from "./postgres.ts";
import { redisRows } from "./redis.ts";
import { telemetryRows } from "./telemetry.ts";

// The machine's cores, read before pinning (a pinned process sees one).
const cores = navigator.hardwareConcurrency;

// On Linux with several cores the remote rows run pinned to one core
// (taskset), leaving the others to Redis and Postgres: unpinned, the
// scheduler moving this process between cores made those rows vary by ±15%
// from run to run. The memory rows stay unpinned: pinned, V8's garbage
// collector threads would compete with the benchmark for one core.
async function pin(): Promise<string | undefined> {
  if (Deno.build.os !== "linux" || cores < 2) return undefined;
  const status = await Deno.readTextFile("/proc/self/status");
  const cpu = /^Cpus_allowed_list:\s*(\d+)[-,]/m.exec(status)?.[1];
  if (cpu === undefined) return undefined;
  try {
    const args = ["-a", "-p", "-c", cpu, String(Deno.pid)];
    const { success } = await new Deno.Command("taskset", {
      args,
      stdout: "null",
    }).output();
    return success ? cpu : undefined;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined; // no taskset
    throw error;
  }
}

const only = (Deno.env.get("BENCH_ONLY") ?? "memory,redis,postgres").split(",");
const groups: [string, () => Promise<Row[]>][] = [
  [
    "memory",
    async () => [
      ...await memoryRows(),
      ...await dispatchRows("memory"),
      ...await telemetryRows("memory"),
    ],
  ],
  ["memory:history", () => historyRows("memory")],
  ["redis", async () => [
    ...await redisRows(),
    ...await dispatchRows("redis"),
    ...await telemetryRows("redis"),
  ]],
  ["redis:history", () => historyRows("redis")],
  ["postgres", async () => [
    ...await postgresRows(),
    ...await patternTaxRows(),
    ...await dispatchRows("postgres"),
    ...await telemetryRows("postgres"),
  ]],
  ["postgres:history", () => historyRows("postgres")],
];
const rows: Row[] = [];
let pinned: string | undefined;
for (const [name, run] of groups) {
  const backend = name.split(":")[0]!;
  if (!only.includes(name) && !only.includes(backend)) continue;
  if (backend !== "memory" && pinned === undefined) pinned = await pin();
  rows.push(...await run());
}

const fmt = (value: number, unit: string) =>
  Number.isNaN(value) ? "—" : value.toLocaleString("en", {
    maximumFractionDigits: unit === "ms" ? 3 : 0,
  });
const ratio = (row: Row) =>
  Number.isNaN(row.baseline) ? "—" : `${(row.ours / row.baseline).toFixed(2)}×`;
const lines = [
  "| backend | measure | ours | baseline | baseline's | ours ÷ baseline |",
  "| --- | --- | ---: | --- | ---: | ---: |",
  ...rows.map((r) =>
    `| ${r.group} | ${r.name} | ${fmt(r.ours, r.unit)} | ${r.baselineName} | ${
      fmt(r.baseline, r.unit)
    } | ${ratio(r)} |`
  ),
];
const memory = Math.round(Deno.systemMemoryInfo().total / 2 ** 30);
const header = [
  "# Benchmark results",
  "",
  `- Date: ${new Date().toISOString()}`,
  `- Deno ${Deno.version.deno} (V8 ${Deno.version.v8}), ${Deno.build.os} ${Deno.build.arch}`,
  `- Machine: ${cores} cores, ${memory} GiB memory; PostgreSQL and Redis on the same machine; ${
    pinned === undefined
      ? "the bench unpinned"
      : `remote rows with the bench pinned to CPU ${pinned} (taskset), the services free to use the rest`
  }`,
  `- N = ${N} events a throughput run (memory: ${
    N * 10
  }; 64 KiB events: N/5; remote events go in bursts of at most 8 MiB, each delivered before the next), median of ${ROUNDS} rounds (remote throughput: ${
    Math.max(ROUNDS, 5)
  }) after a warm-up round, sides alternating; latency: 3 × ${
    Math.min(N, 500)
  } sequential round trips a side, the sides taking turns; history rows: the same bus with \`history: {}\` against without, and a replay of ${
    REPLAY.toLocaleString("en")
  } events (median of ${ROUNDS} after a warm-up)`,
  "- Reproduce: `deno task bench` (services up); ratios above 1 mean ours is bigger (better for events/s, worse for ms and bytes).",
  "",
];
console.log(lines.join("\n"));
if (Deno.args.includes("--write")) {
  await Deno.writeTextFile(
    new URL("RESULTS.md", import.meta.url),
    [...header, ...lines, ""].join("\n"),
  );
  console.log("\nWrote bench/RESULTS.md");
}
