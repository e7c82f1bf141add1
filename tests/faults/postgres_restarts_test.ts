// A PostgreSQL server restarted again and again under connected buses must
// never end their process (postgres.js queries it starts by itself, such as
// its array types at start-up, must not reject unhandled). The buses run
// in a child process with no unhandledrejection handler; its exit code is
// checked. Throwaway server (never the shared one).

import assert from "node:assert/strict";
import { findPostgres, initCluster } from "./_postgres_server.ts";
import { lines } from "./_lines.ts";

const found = await findPostgres();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test({
  name:
    "PostgreSQL restarted 20 times under connected buses: the process lives",
  ignore: "missing" in found && !Deno.env.get("CI"),
  async fn() {
    if ("missing" in found) throw new Error(found.missing);
    const cluster = await initCluster(found.bindir);
    const server = await cluster.start();
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("./_restarts_child.ts", import.meta.url).pathname,
        server.url,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const out = lines(child.stdout);
    try {
      assert.equal((await out.next()).value, "ready");
      for (let i = 0; i < 20; i++) {
        await server.stop();
        await sleep(Math.random() * 300);
        await server.start();
        await sleep(Math.random() * 300);
      }
      // Written to a child that may have died already (that is checked
      // below, with its output).
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode("go\n")).catch(() => {});
      await writer.close().catch(() => {});
      const said = [];
      for await (const line of out) said.push(line);
      const { code } = await child.status;
      const stderr = await new Response(child.stderr).text();
      assert.deepEqual([code, said], [0, ["closed"]], stderr);
    } finally {
      try {
        child.kill();
      } catch {
        // Already ended.
      }
      await server.stop();
      cluster.remove();
    }
  },
});
