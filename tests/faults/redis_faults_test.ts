// Fault injection on the Redis backend: scenarios a. to g. of _suite.ts,
// each on its own throwaway redis-server (never the shared one).
// Needs redis-server and redis-cli; without them the tests skip with one
// line (with CI set they fail instead).

import { startRedis } from "../_redis_server.ts";
import type { FaultServer } from "./_scenario.ts";
import { faultSuite } from "./_suite.ts";

async function installed(command: string): Promise<boolean> {
  try {
    return (await new Deno.Command(command, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output()).success;
  } catch {
    return false;
  }
}

const ok = await installed("redis-server") && await installed("redis-cli");
if (!ok) {
  const why = "redis-server or redis-cli is not installed";
  if (Deno.env.get("CI")) {
    throw new Error(`${why}; CI is set, so the Redis fault tests fail`);
  }
  console.warn(`Skipping the Redis fault tests: ${why}`);
}

/** Runs redis-cli against the server at `port`; resolves with its output. */
async function cli(port: number, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("redis-cli", {
    args: ["-h", "127.0.0.1", "-p", String(port), ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(5000),
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `redis-cli ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return text;
}

/** CLIENT KILL ID of every client whose CLIENT LIST fields `pick` accepts. */
async function killClients(
  port: number,
  pick: (fields: Map<string, string>) => boolean,
): Promise<number> {
  let killed = 0;
  for (const line of (await cli(port, "CLIENT", "LIST")).split("\n")) {
    const fields = new Map(
      line.trim().split(" ").map((pair) => {
        const at = pair.indexOf("=");
        return [pair.slice(0, at), pair.slice(at + 1)] as [string, string];
      }),
    );
    const id = fields.get("id");
    if (id === undefined || !pick(fields)) continue;
    if ((await cli(port, "CLIENT", "KILL", "ID", id)).trim() === "1") killed++;
  }
  return killed;
}

const urlAt = (port: number) => `redis://127.0.0.1:${port}`;

async function server(persistent = false): Promise<FaultServer> {
  const dir = persistent ? await Deno.makeTempDir() : undefined;
  const redis = await startRedis(
    dir === undefined
      ? []
      : ["--appendonly", "yes", "--appendfsync", "always", "--dir", dir],
  );
  const port = Number(new URL(redis.url).port);
  return {
    url: redis.url,
    port,
    urlAt,
    // The bus names its connections; a pub/sub client counts too, in case
    // a new core names its subscriber differently.
    killSubscriber: () =>
      killClients(
        port,
        (f) =>
          f.get("name") === "dataknobs-events-subscriber" ||
          Number(f.get("sub") ?? 0) + Number(f.get("psub") ?? 0) > 0,
      ),
    killPublisher: () =>
      killClients(
        port,
        (f) => f.get("name") === "dataknobs-events-publisher",
      ),
    stop: () => redis.stop(),
    start: () => redis.start(),
    freeze: () => redis.signal("SIGSTOP"),
    thaw: () => redis.signal("SIGCONT"),
    [Symbol.asyncDispose]: async () => {
      await redis[Symbol.asyncDispose]();
      if (dir !== undefined) await Deno.remove(dir, { recursive: true });
    },
  };
}

faultSuite("redis", { ignore: !ok, server, urlAt });
