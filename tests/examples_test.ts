// Every example runs as a user would run it, so none can rot.
import assert from "node:assert/strict";
import { DATABASE_URL, reachable, REDIS_URL } from "./_servers.ts";

const redis = await reachable("Redis", "REDIS_URL", REDIS_URL);
const pg = await reachable("PostgreSQL", "DATABASE_URL", DATABASE_URL);

async function run(file: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(`../examples/${file}`, import.meta.url).pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

Deno.test("examples/quickstart.ts prints what the seed's quick start prints", async () => {
  assert.match(
    await run("quickstart.ts"),
    /^Received created on my-topic\nPayload: \{ message: "Hello, World!" \}\n$/,
  );
});

Deno.test("examples/custom_backend.ts makes a registered backend from a typed config", async () => {
  assert.equal(await run("custom_backend.ts"), "eu\n");
});

Deno.test("examples/patterns.ts matches as fnmatch does", async () => {
  const lines = (await run("patterns.ts")).trim().split("\n").map((l) =>
    l.replace(/\s+/g, " ")
  );
  assert.deepEqual(lines, [
    "registry:* registry:bots",
    "registry:* registry:bots:config",
    "*:created bots:created",
    "shard-[a-c] shard-b",
    "job-[!x]? job-a1",
    "literal registry:*",
    "registry:* registry:*",
  ]);
});

Deno.test("examples/graceful_shutdown.ts drains and exits 0 on SIGTERM", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      new URL("../examples/graceful_shutdown.ts", import.meta.url).pathname,
    ],
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("ready")) text += (await reader.read()).value ?? "";
  await new Promise((r) => setTimeout(r, 100));
  child.kill("SIGTERM");
  for (
    let chunk = await reader.read();
    !chunk.done;
    chunk = await reader.read()
  ) text += chunk.value;
  assert.equal((await child.status).code, 0);
  const [, handled, published] = text.match(
    /SIGTERM: drained (\d+) of (\d+) jobs; bye/,
  ) ?? [];
  assert.ok(Number(published) > 0, text);
  assert.equal(handled, published, "close() drains every queued job");
});

Deno.test({
  name: "examples/redis.ts round trips through Redis",
  ignore: !redis,
  fn: async () =>
    assert.match(
      await run("redis.ts"),
      /Received updated on registry:bots: \{"bot_id":"b1"\}/,
    ),
});

Deno.test({
  name: "examples/resume.ts resumes after a restart from the saved position",
  ignore: !redis,
  fn: async () =>
    assert.equal(
      await run("resume.ts"),
      "handled job 1\nhandled job 2\nrestarted\nhandled job 3\nhandled job 4\n",
    ),
});

Deno.test({
  name: "examples/postgres.ts round trips a large event through PostgreSQL",
  ignore: !pg,
  fn: async () =>
    assert.match(
      await run("postgres.ts"),
      /Received updated on registry:bots: 23000 characters of prompt/,
    ),
});

Deno.test({
  name: "examples/transactional_outbox.ts delivers only the committed order",
  ignore: !pg,
  fn: async () => {
    const text = await run("transactional_outbox.ts");
    assert.match(
      text,
      /-a: committed\n.*-b: rolled back \(payment declined\)\nevents received for: a\n$/,
    );
  },
});

Deno.test({
  name: "examples/cache_invalidation.ts evicts across processes",
  ignore: !pg,
  fn: async () => {
    const text = await run("cache_invalidation.ts");
    assert.match(text, /cache: bot-\w+ = \{"model":"small"\}/);
    assert.match(text, /cache: evicted bot-\w+; reloaded \{"model":"large"\}/);
  },
});

Deno.test({
  name:
    "examples/tracing.ts puts the subscriber's span in the publisher's trace",
  ignore: !redis,
  fn: async () => {
    const text = await run("tracing.ts");
    const publish = text.match(
      /^publisher: span "publish orders" trace (\w{32}) span (\w{16}) parent none$/m,
    );
    assert.ok(publish, text);
    const [, trace, span] = publish;
    assert.match(
      text,
      new RegExp(
        `^subscriber: span "process orders" trace ${trace} span \\w{16} parent ${span}$`,
        "m",
      ),
    );
  },
});
