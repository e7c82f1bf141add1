import assert from "node:assert/strict";
import { DATABASE_URL, reachable, REDIS_URL } from "./_servers.ts";

const services = [
  (await reachable("Redis", "REDIS_URL", REDIS_URL)) && "redis",
  (await reachable("PostgreSQL", "DATABASE_URL", DATABASE_URL)) && "postgres",
].filter(Boolean);

Deno.test("bench/run.ts runs end to end with a tiny N (smoke test)", async () => {
  const only = ["memory", ...services].join(",");
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL("../bench/run.ts", import.meta.url).pathname,
    ],
    env: { BENCH_N: "100", BENCH_ROUNDS: "1", BENCH_ONLY: only },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  for (const group of only.split(",")) {
    assert.match(
      text,
      new RegExp(`^\\| ${group} \\| .* \\| \\d[\\d.]*× \\|$`, "m"),
    );
  }
  assert.doesNotMatch(text, /NaN/);
});
