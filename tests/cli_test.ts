// The command line as a shell user runs it: each command in its own
// process, against the real servers.
import assert from "node:assert/strict";
import { lines } from "./faults/_lines.ts";
import { DATABASE_URL, reachable, REDIS_URL } from "./_servers.ts";

const redis = await reachable("Redis", "REDIS_URL", REDIS_URL);
const pg = await reachable("PostgreSQL", "DATABASE_URL", DATABASE_URL);
const CLI = new URL("../cli.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function cli(...args: string[]): Promise<Ran> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

/** The config flags of a backend, on a channel prefix of this test's own. */
function flags(backend: string): string[] {
  const prefix = `cli_${crypto.randomUUID().slice(0, 8)}`;
  return backend === "redis"
    ? ["--backend", "redis", "--url", REDIS_URL, "--channel-prefix", prefix]
    : [
      "--backend",
      "postgres",
      "--connection-string",
      DATABASE_URL,
      "--channel-prefix",
      prefix,
    ];
}

/** `tail` in a child process, once it says it is tailing. */
async function startTail(...args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "tail", ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const errors = lines(child.stderr);
  const first = (await errors.next()).value ?? "";
  assert.match(first, /^Tailing /, first);
  const rest = (async () => {
    let text = "";
    for await (const line of errors) text += `${line}\n`;
    return text;
  })();
  const stdout = (async () =>
    decoder.decode(
      await new Response(child.stdout).arrayBuffer(),
    ))();
  return {
    child,
    /** Exit code, stdout and the stderr after the first line. */
    ended: async (): Promise<Ran> => ({
      code: (await child.status).code,
      stdout: await stdout,
      stderr: await rest,
    }),
  };
}

for (const backend of ["redis", "postgres"]) {
  const ignore = backend === "redis" ? !redis : !pg;

  Deno.test({
    name:
      `cli tail on ${backend} prints, as wire JSON, the events another process publishes`,
    ignore,
    fn: async () => {
      const config = flags(backend);
      const tail = await startTail(
        "cli:orders",
        "--count",
        "2",
        "--json",
        ...config,
      );
      const ids: string[] = [];
      for (const n of [1, 2]) {
        const sent = await cli(
          "publish",
          "cli:orders",
          "--type",
          "created",
          "--payload",
          JSON.stringify({ n }),
          "--correlation-id",
          "c-9",
          ...config,
        );
        assert.equal(sent.code, 0, sent.stderr);
        ids.push(sent.stdout.trim());
      }
      const { code, stdout, stderr } = await tail.ended();
      assert.equal(code, 0, stderr);
      const got = stdout.trim().split("\n").map((line) => JSON.parse(line));
      assert.deepEqual(got.map((e) => e.event_id), ids);
      assert.deepEqual(got.map((e) => e.payload.n), [1, 2]);
      assert.equal(got[0].correlation_id, "c-9");
    },
  });

  Deno.test({
    name:
      `cli tail on ${backend} --from a position prints what the log holds after it`,
    ignore,
    fn: async () => {
      const config = flags(backend);
      const prefix = config.at(-1)!;
      const file = await Deno.makeTempFile({ suffix: ".json" });
      await Deno.writeTextFile(
        file,
        JSON.stringify({ history: { max_events: 100 } }),
      );
      try {
        for (const n of [1, 2, 3]) {
          const sent = await cli(
            "publish",
            "cli:log",
            "--type",
            "created",
            "--payload",
            JSON.stringify({ n }),
            "--config",
            file,
            ...config,
          );
          assert.equal(sent.code, 0, sent.stderr);
        }
        const read = async (from: string, count: number) => {
          const ran = await cli(
            "tail",
            "cli:log",
            "--from",
            from,
            "--count",
            String(count),
            "--json",
            "--config",
            file,
            ...config,
          );
          assert.equal(ran.code, 0, ran.stderr);
          return ran.stdout.trim().split("\n").map((line) => JSON.parse(line));
        };
        const all = await read("earliest", 3);
        assert.deepEqual(all.map((e) => e.payload.n), [1, 2, 3]);
        assert.ok(all.every((e) => typeof e.position === "string"));
        const rest = await read(all[0].position, 2);
        assert.deepEqual(rest.map((e) => e.payload.n), [2, 3]);
        const refused = await cli(
          "tail",
          "cli:log",
          "--from",
          "earliest",
          ...config,
        );
        assert.equal(refused.code, 2);
        assert.match(refused.stderr, /keeps no history/);
      } finally {
        await Deno.remove(file);
        await dropLog(backend, prefix);
      }
    },
  });

  Deno.test({
    name:
      `cli tail on ${backend} with --pattern prints matching events readably`,
    ignore,
    fn: async () => {
      const config = flags(backend);
      const tail = await startTail(
        "all",
        "--pattern",
        "cli:*",
        "--count",
        "1",
        ...config,
      );
      const sent = await cli(
        "publish",
        "cli:bots",
        "--type",
        "updated",
        "--payload",
        '{"bot_id":"b1"}',
        "--source",
        "shell",
        ...config,
      );
      assert.equal(sent.code, 0, sent.stderr);
      const { code, stdout } = await tail.ended();
      assert.equal(code, 0);
      const [head, ...body] = stdout.trim().split("\n");
      assert.match(
        head!,
        new RegExp(`\\+00:00  cli:bots  updated  ${sent.stdout.trim()}$`),
      );
      assert.deepEqual(body.map((l) => l.trim().replace(/\s+/, " ")), [
        'payload {"bot_id":"b1"}',
        "source shell",
      ]);
    },
  });

  Deno.test({
    name: `cli tail on ${backend}: Ctrl-C closes the bus and exits 130`,
    ignore,
    fn: async () => {
      const tail = await startTail("cli:quiet", ...flags(backend));
      tail.child.kill("SIGINT");
      const { code, stdout, stderr } = await tail.ended();
      assert.equal(code, 130);
      assert.equal(stdout, "");
      assert.equal(stderr, "", "no error on the way out");
    },
  });
}

Deno.test({
  name:
    "cli status on Redis counts a tail's subscription; --config is read, flags win",
  ignore: !redis,
  fn: async () => {
    const config = flags("redis");
    const prefix = config.at(-1)!;
    const file = await Deno.makeTempFile({ suffix: ".json" });
    try {
      await Deno.writeTextFile(
        file,
        JSON.stringify({
          backend: "redis",
          url: "redis://127.0.0.1:1",
          channel_prefix: prefix,
        }),
      );
      const tail = await startTail("cli:counted", ...config);
      const status = await cli(
        "status",
        "--json",
        "--config",
        file,
        "--url",
        REDIS_URL,
      );
      tail.child.kill("SIGINT");
      await tail.ended();
      assert.equal(status.code, 0, status.stderr);
      const report = JSON.parse(status.stdout);
      assert.equal(report.state, "ready");
      assert.equal(typeof report.roundTripMs, "number");
      assert.deepEqual(report.subscribers.topics, { "cli:counted": 1 });
    } finally {
      await Deno.remove(file);
    }
  },
});

Deno.test({
  name: "cli status on PostgreSQL prints the notification queue usage",
  ignore: !pg,
  fn: async () => {
    const { code, stdout, stderr } = await cli("status", ...flags("postgres"));
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^state +ready$/m);
    assert.match(stdout, /^round trip +[\d.]+ ms$/m);
    assert.match(stdout, /^notification queue +\d+\.\d\d% used$/m);
  },
});

Deno.test("cli publish on memory prints the event id; --help prints usage", async () => {
  const sent = await cli("publish", "t", "--type", "created");
  assert.equal(sent.code, 0, sent.stderr);
  assert.match(sent.stdout, /^[0-9a-f-]{36}\n$/);
  const help = await cli("--help");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: events <command>/);
});

Deno.test("cli refuses bad usage with a clear message and exit code 2", async () => {
  const cases: [string[], RegExp][] = [
    [[], /^Usage: events/],
    [
      ["frob"],
      /Unknown command "frob"; the commands are: tail, publish, status/,
    ],
    [["tail"], /tail <topic> takes 1 argument, got 0/],
    [["tail", "t", "--count", "0"], /--count must be an integer >= 1, got "0"/],
    [["tail", "t", "--type", "created"], /tail does not take --type/],
    [["publish", "t"], /publish needs --type, one of created/],
    [
      ["publish", "t", "--type", "created", "--payload", "{"],
      /--payload is not JSON/,
    ],
    [
      ["publish", "t", "--type", "created", "--payload", "[1]"],
      /payload must be a plain object/,
    ],
    [
      ["status", "--colour", "red"],
      /unknown key "colour"; the keys are: backend/,
    ],
    [
      ["status", "--backend", "redis", "--host", "h", "--port", "x"],
      /"port" must be an integer from 1 to 65535 \(or its decimal text\), got "x"/,
    ],
    [["status", "--backend", "kafka"], /Unknown event bus backend "kafka"/],
    [
      ["status", "--config", "/no/such/file.json"],
      /Cannot read --config "\/no\/such\/file.json"/,
    ],
    [["status", "--port"], /--port needs a value/],
  ];
  for (const [args, message] of cases) {
    const { code, stderr, stdout } = await cli(...args);
    assert.equal(code, 2, `${args.join(" ")}: ${stderr}`);
    assert.equal(stdout, "");
    assert.match(stderr, message, args.join(" "));
  }
});

Deno.test("cli against an unreachable server says so and exits 1", async () => {
  for (
    const args of [
      ["status", "--backend", "redis", "--url", "redis://127.0.0.1:1"],
      [
        "publish",
        "t",
        "--type",
        "created",
        "--backend",
        "postgres",
        "--connection-string",
        "postgres://postgres:secret@127.0.0.1:1/postgres",
      ],
      ["tail", "t", "--backend", "redis", "--url", "redis://127.0.0.1:1"],
    ]
  ) {
    const { code, stderr } = await cli(...args);
    assert.equal(code, 1, stderr);
    assert.match(
      stderr,
      /^events: Cannot connect to (Redis|PostgreSQL) at .*ECONNREFUSED/,
    );
    assert.doesNotMatch(stderr, /secret/);
  }
});

// Removes what a bus with history left on the shared server.
async function dropLog(backend: string, prefix: string): Promise<void> {
  if (backend === "redis") {
    const { Redis } = await import("ioredis");
    const admin = new Redis(REDIS_URL);
    await admin.del(`${prefix}:log`, `${prefix}:log:epoch`);
    await admin.quit();
    return;
  }
  const { default: postgres } = await import("postgres");
  const sql = postgres(DATABASE_URL, { onnotice: () => {} });
  for (const table of ["log", "log_trimmed", "patterns", "payloads"]) {
    await sql`drop table if exists ${sql(`${prefix}_${table}`)}`;
  }
  await sql.end();
}
