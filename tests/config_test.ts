import assert from "node:assert/strict";
import {
  createEventBus,
  Event,
  EventBusError,
  InMemoryEventBus,
  registerBackend,
} from "../mod.ts";
import { PostgresEventBus } from "../postgres.ts";
import { RedisEventBus } from "../redis.ts";

const typeError = (text: RegExp) => (e: unknown) =>
  e instanceof TypeError && text.test(e.message);

Deno.test("createEventBus() defaults to memory", async () => {
  for (
    const bus of [
      createEventBus(),
      createEventBus({}),
      createEventBus({ backend: "memory" }),
    ]
  ) {
    assert.equal(bus.state, "idle");
    await bus.connect();
    assert.ok(bus instanceof InMemoryEventBus);
    await bus.close();
  }
});

Deno.test("createEventBus() names an unknown key, a missing key and a mistyped one", () => {
  assert.throws(
    () => createEventBus({ backend: "memory", hots: 1 } as never),
    typeError(/unknown key "hots"; the keys are: backend/),
  );
  assert.throws(
    () => createEventBus({ backend: "redis", hots: "x" } as never),
    typeError(/unknown key "hots"; the keys are: backend, host, port/),
  );
  assert.throws(
    () => createEventBus({ backend: "postgres" } as never),
    typeError(/"connection_string" is required/),
  );
  assert.throws(
    () => createEventBus({ backend: "redis" }),
    typeError(/"host" is required/),
  );
  assert.throws(
    () =>
      createEventBus({ backend: "redis", host: "h", port: "6379" } as never),
    typeError(/"port" must be an integer from 1 to 65535, got "6379"/),
  );
  assert.throws(
    () => createEventBus({ backend: "redis", host: "h", port: 70000 }),
    typeError(/"port"/),
  );
  assert.throws(
    () => createEventBus({ backend: "redis", host: "h", ssl: "yes" } as never),
    typeError(/"ssl" must be true or false/),
  );
  assert.throws(
    () => createEventBus({ backend: "redis", host: "h", db: -1 }),
    typeError(/"db" must be an integer >= 0/),
  );
  assert.throws(
    () =>
      createEventBus({ backend: "redis", host: "h", channel_prefix: "ev*" }),
    typeError(/"channel_prefix" must be/),
  );
  assert.throws(
    () =>
      createEventBus({
        backend: "postgres",
        connection_string: "postgres://x",
        channel_prefix: "bad-prefix;",
      }),
    typeError(
      /"channel_prefix" must be 1 to 40 characters from \[A-Za-z0-9_\]/,
    ),
  );
});

Deno.test("createEventBus() takes max_event_bytes on every backend, as maxEventBytes", async () => {
  const configs = [
    { backend: "memory" },
    { backend: "postgres", connection_string: "postgres://h/db" },
    { backend: "redis", host: "h" },
  ] as const;
  for (const config of configs) {
    assert.throws(
      () => createEventBus({ ...config, max_event_bytes: "1mb" } as never),
      typeError(/"max_event_bytes" must be an integer number of bytes >= 1/),
    );
    assert.throws(
      () => createEventBus({ ...config, max_event_bytes: 0 }),
      typeError(/"max_event_bytes"/),
    );
    createEventBus({ ...config, max_event_bytes: 10 * 1024 * 1024 });
  }
  // The key wins over the option.
  const bus = createEventBus({ backend: "memory", max_event_bytes: 300 }, {
    maxEventBytes: 10_000,
  });
  await bus.connect();
  const event = (text: string) =>
    new Event({ type: "created", topic: "t", payload: { text } });
  await bus.publish("t", event("x"));
  await assert.rejects(
    bus.publish("t", event("x".repeat(300))),
    (e: unknown) =>
      e instanceof RangeError && /over the limit of 300/.test(e.message),
  );
  await bus.close();
});

Deno.test("createEventBus() never echoes credentials", () => {
  const secret = "s3cr3t-value";
  const attempts: (() => unknown)[] = [
    () =>
      createEventBus({ backend: "redis", host: "h", password: 12345 } as never),
    () =>
      createEventBus({ backend: "postgres", connection_string: 42 } as never),
    () =>
      createEventBus(
        { backend: "redis", host: "h", password: secret, port: "x" } as never,
      ),
    () =>
      createEventBus(
        {
          backend: "postgres",
          connection_string: `postgres://u:${secret}@h/db`,
          junk: 1,
        } as never,
      ),
  ];
  // A literal % in a password: refused at once, naming the key (postgres.js
  // would throw a bare URIError at connect()).
  for (const url of [`postgres://u:${secret}%zz@h/db`, `postgres://u:%@h/db`]) {
    attempts.push(() =>
      createEventBus({ backend: "postgres", connection_string: url })
    );
    attempts.push(() => new PostgresEventBus({ connectionString: url }));
  }
  attempts.push(() =>
    createEventBus({ backend: "redis", url: `redis://u:${secret}%@h:6379` })
  );
  // libpq keywords postgres.js would send to the server as settings.
  for (const param of ["password", "host", "dbname", "port", "user"]) {
    attempts.push(() =>
      new PostgresEventBus({
        connectionString: `postgres://u@h/db?${param}=${secret}`,
      })
    );
  }
  attempts.push(() =>
    new RedisEventBus({ url: `redis://u:${secret}%@h:6379` })
  );
  for (const attempt of attempts) {
    assert.throws(attempt, (e: unknown) => {
      assert.ok(e instanceof TypeError, String(e));
      assert.doesNotMatch(e.message, /s3cr3t|12345|42/);
      return true;
    });
  }
  const bus = createEventBus({ backend: "redis", host: "h", password: secret });
  assert.doesNotMatch(String(bus), /s3cr3t/);
  const pg = createEventBus({
    backend: "postgres",
    connection_string: `postgres://u:${secret}@h/db`,
  });
  assert.doesNotMatch(String(pg), /s3cr3t/);
});

Deno.test("createEventBus() with an unknown backend lists the registered ones", () => {
  assert.throws(
    () => createEventBus({ backend: "kafka" }),
    (e: unknown) =>
      e instanceof EventBusError && e.code === "UNKNOWN_BACKEND" &&
      /"kafka"; registered backends: memory, postgres, redis/.test(e.message),
  );
});

Deno.test("registerBackend() adds a backend and refuses duplicates", async () => {
  const seen: unknown[] = [];
  registerBackend("test-loopback", (config, options) => {
    seen.push(config);
    return new InMemoryEventBus(options);
  });
  const bus = createEventBus({ backend: "test-loopback", flavour: "x" });
  await bus.connect();
  await bus.close();
  assert.deepEqual(seen, [{ backend: "test-loopback", flavour: "x" }]);
  assert.throws(
    () => registerBackend("memory", () => new InMemoryEventBus()),
    typeError(/already registered/),
  );
  assert.throws(
    () => registerBackend("", () => new InMemoryEventBus()),
    typeError(/non-empty string/),
  );
});

Deno.test("numeric options out of range are refused at construction (no timer overflow, no empty batch)", () => {
  const tooLong = 2 ** 31; // a timer would silently fire after 1 ms
  const url = "postgres://u@h/db";
  for (
    const [make, name] of [
      [
        () => new PostgresEventBus({ connectionString: url, maxBatch: 0.5 }),
        "maxBatch",
      ],
      [
        () => new PostgresEventBus({ connectionString: url, maxBatch: 0 }),
        "maxBatch",
      ],
      [
        () =>
          new PostgresEventBus({ connectionString: url, heartbeatMs: tooLong }),
        "heartbeatMs",
      ],
      [
        () => new RedisEventBus({ host: "h", connectTimeoutMs: tooLong }),
        "connectTimeoutMs",
      ],
      [
        () => new RedisEventBus({ host: "h", commandTimeoutMs: tooLong }),
        "commandTimeoutMs",
      ],
      [
        () => new RedisEventBus({ host: "h", maxReconnectDelayMs: tooLong }),
        "maxReconnectDelayMs",
      ],
      [
        () => new InMemoryEventBus({ closeTimeoutMs: tooLong }),
        "closeTimeoutMs",
      ],
      [
        () =>
          new PostgresEventBus({
            connectionString: url,
            largePayloadTtlMs: 1e300,
          }),
        "largePayloadTtlMs",
      ],
    ] as const
  ) {
    assert.throws(
      make,
      (e: unknown) => e instanceof RangeError && e.message.includes(name),
    );
  }
});

Deno.test("bus options are checked", () => {
  assert.throws(
    () => new InMemoryEventBus({ closeTimeoutMs: -1 }),
    /closeTimeoutMs must be/,
  );
  assert.throws(
    () => new InMemoryEventBus({ maxQueuedEvents: 0 }),
    /maxQueuedEvents must be/,
  );
  assert.throws(
    () => new InMemoryEventBus({ onError: "log" as never }),
    /onError must be a function/,
  );
  for (const maxEventBytes of [0, 1.5, -1, NaN, Infinity, "1" as never]) {
    assert.throws(
      () => new InMemoryEventBus({ maxEventBytes }),
      (e: unknown) =>
        e instanceof RangeError && /maxEventBytes must be/.test(e.message),
    );
  }
});

Deno.test("importing mod.ts loads no driver (postgres, ioredis) statically", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL("../mod.ts", import.meta.url).pathname],
    stdout: "piped",
  }).output();
  interface Dep {
    code?: { specifier: string };
    isDynamic?: boolean;
  }
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: { specifier: string; dependencies?: Dep[] }[];
  };
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const loaded = new Set<string>();
  const visit = (specifier: string) => {
    if (loaded.has(specifier)) return;
    loaded.add(specifier);
    for (const dep of bySpecifier.get(specifier)?.dependencies ?? []) {
      if (!dep.isDynamic && dep.code) visit(dep.code.specifier);
    }
  };
  visit(info.roots[0]!);
  assert.ok(loaded.has(new URL("../memory.ts", import.meta.url).href));
  // The backends' code loads; their drivers (npm packages) load on connect.
  const drivers = [...loaded].filter((s) => s.startsWith("npm:"));
  assert.deepEqual(drivers, []);
});

Deno.test("the Node round-trip tests skip, not fail, when the servers are unreachable", async () => {
  const env = { ...Deno.env.toObject() };
  delete env.CI;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "test",
      "-A",
      new URL("./node/roundtrip.test.mjs", import.meta.url).pathname,
    ],
    env: {
      ...env,
      REDIS_URL: "redis://127.0.0.1:1",
      DATABASE_URL: "postgres://nobody@127.0.0.1:1/nothing",
    },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) +
    new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
});
