// The command line as a shell user runs it: each command in its own
// process, against the real servers.
import assert from "node:assert/strict";
import { lines } from "./faults/_lines.ts";
import { DATABASE_URL, reachable, REDIS_URL } from "./_servers.ts";
import { startRedis } from "./_redis_server.ts";

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
  return await cliWith(undefined, ...args);
}

/** The CLI with `stdin` as its standard input. */
async function cliWith(
  stdin: string | undefined,
  ...args: string[]
): Promise<Ran> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const out = await child.output();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

/**
 * `publish <topic> --type created --payload <payload> …args`, which must
 * succeed; returns what it printed.
 */
async function send(
  topic: string,
  payload: string,
  ...args: string[]
): Promise<string> {
  const sent = await cli(
    "publish",
    topic,
    "--type",
    "created",
    "--payload",
    payload,
    ...args,
  );
  assert.equal(sent.code, 0, sent.stderr);
  return sent.stdout;
}

// The prefixes the tests used, with their backend: the last test removes
// what they left on the shared servers.
const used = new Map<string, string>();

/** The config flags of a backend, on a channel prefix of this test's own. */
function flags(backend: string): string[] {
  const prefix = `cli_${crypto.randomUUID().slice(0, 8)}`;
  used.set(prefix, backend);
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
  const seen: string[] = [];
  let changed = Promise.withResolvers<void>();
  let done = false;
  const reading = (async () => {
    for await (const line of lines(child.stderr)) {
      seen.push(line);
      changed.resolve();
      changed = Promise.withResolvers<void>();
    }
  })().finally(() => {
    done = true;
    changed.resolve();
  });
  /**
   * The first stderr line matching `pattern`, once it is written (a guard
   * against a hang: it fails after 30 s without one).
   */
  const waitFor = async (pattern: RegExp): Promise<string> => {
    const guard = AbortSignal.timeout(30_000);
    while (true) {
      const hit = seen.find((line) => pattern.test(line));
      if (hit !== undefined) return hit;
      if (done || guard.aborted) {
        throw new Error(`no ${pattern} on stderr: ${seen.join("\n")}`);
      }
      await Promise.race([
        changed.promise,
        new Promise((resolve) =>
          guard.addEventListener("abort", resolve, { once: true })
        ),
      ]);
    }
  };
  const first = await waitFor(/^Tailing /);
  assert.match(first, /^Tailing /);
  /** Stderr but for the "Tailing" line. */
  const stderr = () =>
    seen.filter((line) => line !== first).map((line) => `${line}\n`).join("");
  return {
    child,
    waitFor,
    stderr,
    /** Exit code, stdout and the stderr but for the "Tailing" line. */
    ended: async (): Promise<Ran> => {
      const stdout = decoder.decode(
        await new Response(child.stdout).arrayBuffer(),
      );
      const { code } = await child.status;
      await reading;
      return { code, stdout, stderr: stderr() };
    },
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
    "cli status on Redis counts a tail's subscription; --config is read, a --url flag replaces its host and port",
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
          host: "127.0.0.1",
          port: 1,
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
  const sent = await cli(
    "publish",
    "t",
    "--type",
    "created",
    "--backend",
    "memory",
  );
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
    [
      ["tail", "t", "--count", "0"],
      /--count must be an integer >= 1 \(digits only\), got "0"/,
    ],
    [
      ["tail", "t", "--count", "1e1", "--backend", "memory"],
      /--count must be an integer >= 1 \(digits only\), got "1e1"/,
    ],
    [["tail", "t", "--type", "created"], /tail does not take --type/],
    [["publish", "t"], /publish needs --type, one of created/],
    [
      ["publish", "t", "--type", "created", "--payload", "{"],
      /--payload is not valid JSON \(line 1 column 2\)/,
    ],
    [
      ["publish", "t", "--type", "created", "--payload", "[1]"],
      /payload must be a plain object/,
    ],
    [
      ["status", "--colour", "red", "--backend", "memory"],
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
    [
      ["status"],
      /no backend: give --backend redis or --backend postgres \(or backend in --config\); a memory bus lives in one process/,
    ],
    [
      ["publish", "t", "--type", "created", "--payload", "@/no/such.json"],
      /Cannot read --payload "@\/no\/such.json"/,
    ],
    [
      ["status", "--json", "maybe", "--backend", "memory"],
      /takes no arguments, got 1 \(maybe\)/,
    ],
    // Arguments are checked before connecting to the (unreachable) server.
    [
      ["tail", "--backend", "redis", "--url", "redis://127.0.0.1:1"],
      /tail <topic> takes 1 argument, got 0/,
    ],
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
    await admin.del(
      `${prefix}:log`,
      `${prefix}:log:epoch`,
      `${prefix}:log:trimmed`,
    );
    await admin.quit();
    return;
  }
  const { default: postgres } = await import("postgres");
  const sql = postgres(DATABASE_URL, { onnotice: () => {} });
  for (const table of ["log", "log_state", "patterns", "payloads"]) {
    await sql`drop table if exists ${sql(`${prefix}_${table}`)}`;
  }
  await sql`drop sequence if exists ${sql(`${prefix}_log_boot`)}`;
  for (const name of ["log_removed", "log_no_boot"]) {
    await sql`drop function if exists ${sql(`${prefix}_${name}`)}`;
  }
  await sql.end();
}

Deno.test({
  name:
    "cli status on PostgreSQL: a --connection-string flag replaces the host, port and database of --config",
  ignore: !pg,
  fn: async () => {
    const file = await Deno.makeTempFile({ suffix: ".json" });
    try {
      await Deno.writeTextFile(
        file,
        JSON.stringify({
          backend: "postgres",
          host: "127.0.0.1",
          port: 1,
          database: "no_such_db",
        }),
      );
      const ran = await cli(
        "status",
        "--config",
        file,
        "--connection-string",
        DATABASE_URL,
      );
      assert.equal(ran.code, 0, ran.stderr);
      assert.match(ran.stdout, /^state +ready$/m);
    } finally {
      await Deno.remove(file);
    }
  },
});

Deno.test("cli --config that is not JSON: said without quoting the file", async () => {
  const file = await Deno.makeTempFile({ suffix: ".json" });
  try {
    for (const text of ['{"password": "hunter2" x}', "hunter2\n"]) {
      await Deno.writeTextFile(file, text);
      const { code, stdout, stderr } = await cli("status", "--config", file);
      assert.equal(code, 2, stderr);
      assert.equal(stdout, "");
      assert.match(
        stderr,
        /--config ".*" is not valid JSON( \(line 1 column 24\))?\n/,
      );
      assert.doesNotMatch(stderr, /hunter2/);
    }
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("cli switches take true or false; -- ends the flags; --correlation_id is --correlation-id", async () => {
  const pretty = await cli("status", "--json", "false", "--backend", "memory");
  assert.equal(pretty.code, 0, pretty.stderr);
  assert.match(pretty.stdout, /^state +ready$/m);
  const sent = await cli(
    "publish",
    "--type",
    "created",
    "--correlation_id",
    "c-1",
    "--json",
    "true",
    "--backend",
    "memory",
    "--",
    "--odd-topic",
  );
  assert.equal(sent.code, 0, sent.stderr);
  const event = JSON.parse(sent.stdout);
  assert.equal(event.topic, "--odd-topic");
  assert.equal(event.correlation_id, "c-1");
});

Deno.test({
  name: "cli --ssl false and --ssl=false turn TLS off",
  ignore: !redis,
  fn: async () => {
    for (const ssl of [["--ssl", "false"], ["--ssl=false"]]) {
      const ran = await cli(
        "status",
        ...ssl,
        "--json",
        "--backend",
        "redis",
        "--url",
        REDIS_URL,
      );
      assert.equal(ran.code, 0, ran.stderr);
      assert.equal(JSON.parse(ran.stdout).state, "ready");
    }
  },
});

Deno.test("cli publish --payload from stdin (-) and from a file (@FILE), past the argv limit; too large an event is a refused publish (exit 1)", async () => {
  const payload = { text: "x".repeat(200 * 1024) };
  const file = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(file, JSON.stringify(payload));
    const memory = ["--type", "created", "--backend", "memory", "--json"];
    for (
      const [stdin, source] of [[JSON.stringify(payload), "-"], [
        undefined,
        `@${file}`,
      ]]
    ) {
      const ran = await cliWith(
        stdin,
        "publish",
        "t",
        "--payload",
        source!,
        ...memory,
      );
      assert.equal(ran.code, 0, ran.stderr);
      assert.deepEqual(JSON.parse(ran.stdout).payload, payload);
    }
    const refused = await cli(
      "publish",
      "t",
      "--payload",
      `@${file}`,
      "--max-event-bytes",
      "1000",
      ...memory,
    );
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /over the limit of 1000/);
    assert.equal(refused.stdout, "");
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("cli publish and status into a closed stdout exit 0", async () => {
  for (
    const args of [
      ["publish", "t", "--type", "created", "--backend", "memory"],
      ["status", "--backend", "memory"],
    ]
  ) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, ...args],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    await child.stdout.cancel();
    const stderr = decoder.decode(
      await new Response(child.stderr).arrayBuffer(),
    );
    assert.equal((await child.status).code, 0, stderr);
    assert.equal(stderr, "");
  }
});

Deno.test({
  name:
    "cli tail escapes control characters: a published value cannot forge lines or terminal sequences",
  ignore: !redis,
  fn: async () => {
    const config = flags("redis");
    const topic = "cli:esc\u001b[2J\u202e";
    const tail = await startTail(topic, "--count", "1", ...config);
    await send(
      topic,
      JSON.stringify({ text: "a\nforged\u001b[31m\u009b\u2028" }),
      "--source",
      "s\nforged",
      "--correlation-id",
      "c\r\u0007",
      ...config,
    );
    const { code, stdout } = await tail.ended();
    assert.equal(code, 0);
    assert.doesNotMatch(stdout, /[\p{C}\u2028\u2029](?<!\n)/u);
    const block = stdout.trim().split("\n");
    assert.equal(block.length, 4, stdout);
    assert.match(block[0]!, /cli:esc\\u001b\[2J\\u202e {2}created/);
    assert.match(block[1]!, /"a\\nforged\\u001b\[31m\\u009b\\u2028"/);
    assert.match(block[2]!, /source +s\\u000aforged$/);
    assert.match(block[3]!, /correlation +c\\u000d\\u0007$/);
  },
});

Deno.test({
  name:
    "cli tail on Redis with history: a position the log no longer holds is a gap on stderr; positions are printed (pretty and --json)",
  ignore: !redis,
  fn: async () => {
    const config = flags("redis");
    const prefix = config.at(-1)!;
    const file = await Deno.makeTempFile({ suffix: ".json" });
    await Deno.writeTextFile(
      file,
      JSON.stringify({ history: { max_events: 100 } }),
    );
    const history = ["--config", file, ...config];
    try {
      await send("cli:hist", '{"n":1}', ...history);
      // A position of another epoch: as after a server lost its data.
      const tail = await startTail(
        "cli:hist",
        "--from",
        "00000000-1-0",
        "--count",
        "1",
        ...history,
      );
      const { code, stdout, stderr } = await tail.ended();
      assert.equal(code, 0, stderr);
      assert.match(
        stderr,
        /^events: gap before \S+: events the log no longer holds \(trimmed by retention, or lost by the server\) are lost for good$/m,
      );
      assert.match(stdout, /^ {2}payload +\{"n":1\}$/m);
      assert.match(stdout, /^ {2}position +\w+-\d+-\d+-\d+$/m);
      const live = await startTail(
        "cli:hist",
        "--count",
        "1",
        "--json",
        ...history,
      );
      await send("cli:hist", '{"n":2}', ...history);
      const json = await live.ended();
      assert.equal(json.code, 0, json.stderr);
      assert.match(JSON.parse(json.stdout).position, /^\w+-\d+-\d+-\d+$/);
    } finally {
      await Deno.remove(file);
      await dropLog("redis", prefix);
    }
  },
});

Deno.test({
  name: "cli tail reports a lost connection, its return and the gap on stderr",
  ignore: !redis,
  fn: async () => {
    await using server = await startRedis();
    const tail = await startTail(
      "cli:gap",
      "--backend",
      "redis",
      "--url",
      server.url,
    );
    await server.stop();
    await tail.waitFor(/^events: connection lost; reconnecting$/);
    await server.start();
    await tail.waitFor(/^events: connection restored$/);
    await tail.waitFor(
      /^events: gap from \S+ to \S+: the connection was lost; events published then may have been missed$/,
    );
    tail.child.kill("SIGINT");
    assert.equal((await tail.ended()).code, 130);
  },
});

Deno.test({
  name:
    "cli tail blocked on a full stdout: Ctrl-C stops it saying how many events were not printed; a second Ctrl-C exits at once",
  ignore: !redis,
  fn: async () => {
    const config = flags("redis");
    const big = await Deno.makeTempFile({ suffix: ".json" });
    await Deno.writeTextFile(
      big,
      JSON.stringify({ fill: "x".repeat(300_000) }),
    );
    try {
      for (const interrupts of [1, 2]) {
        const tail = await startTail("cli:full", ...config);
        for (let n = 0; n < 3; n++) {
          await send("cli:full", `@${big}`, ...config);
        }
        // The first event is being printed (more than a pipe holds); the
        // others wait for it.
        const reader = tail.child.stdout.getReader();
        await reader.read();
        await new Promise((resolve) => setTimeout(resolve, 200));
        tail.child.kill("SIGINT");
        if (interrupts === 2) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          tail.child.kill("SIGINT");
        }
        const { code } = await tail.child.status;
        await reader.cancel();
        assert.equal(code, 130);
        await tail.waitFor(
          interrupts === 1
            ? /^events: stopped; [12] event\(s\) not printed$/
            : /^events: interrupted again: exiting before the bus has closed$/,
        );
        assert.doesNotMatch(tail.stderr(), /closeTimeoutMs/);
      }
    } finally {
      await Deno.remove(big);
    }
  },
});

Deno.test({
  name: "cli: (clean-up) the tests' tables and logs are removed",
  ignore: !pg && !redis,
  async fn() {
    for (const [prefix, backend] of used) await dropLog(backend, prefix);
  },
});
