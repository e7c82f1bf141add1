// Every config shape the Python dataknobs-common bus accepts gives a working
// bus here, against the real servers: one event through it and back. The
// environment fallbacks run in a child process with an environment (and
// permissions) of the test's choosing.
import assert from "node:assert/strict";
import postgres from "postgres";
import { createEventBus, Event, type EventBusConfig } from "../mod.ts";
import { uniqueTopic } from "./conformance.ts";
import { DATABASE_URL, reachable, REDIS_URL } from "./_servers.ts";

const pgOk = await reachable("PostgreSQL", "DATABASE_URL", DATABASE_URL);
const redisOk = await reachable("Redis", "REDIS_URL", REDIS_URL);

/** One event published and received through a bus made from `config`. */
async function roundTrip(config: EventBusConfig): Promise<void> {
  const bus = createEventBus(config);
  await bus.connect();
  try {
    const topic = uniqueTopic("pyconfig:shape");
    const event = new Event({ type: "created", topic, payload: { n: 1 } });
    const received = Promise.withResolvers<Event>();
    await bus.subscribe(topic, received.resolve);
    await bus.publish(topic, event);
    assert.equal((await received.promise).eventId, event.eventId);
  } finally {
    await bus.close();
  }
}

const pg = new URL(DATABASE_URL);
/** The server of DATABASE_URL as the Python bus's individual keys. */
const keys = {
  host: pg.hostname.replace(/^\[|\]$/g, ""),
  port: Number(pg.port || 5432),
  database: decodeURIComponent(pg.pathname.slice(1)) || "postgres",
  user: decodeURIComponent(pg.username) || "postgres",
  ...(pg.password === "" ? {} : { password: decodeURIComponent(pg.password) }),
};
const withDatabase = (name: string) => {
  const url = new URL(DATABASE_URL);
  url.pathname = `/${name}`;
  return url.href;
};

Deno.test("Python memory configs make a working bus", async () => {
  for (const config of [{}, { backend: "memory" }] as const) {
    await roundTrip(config);
  }
});

Deno.test({
  name: "Python Postgres configs make a working bus",
  ignore: !pgOk,
  fn: async () => {
    const configs: EventBusConfig[] = [
      { backend: "postgres", connection_string: DATABASE_URL },
      {
        backend: "postgres",
        connection_string: DATABASE_URL.replace(
          /^postgres(ql)?:/,
          "postgresql+asyncpg:",
        ),
      },
      { backend: "postgres", ...keys },
      { backend: "postgres", ...keys, port: `${keys.port}` },
      { backend: "postgres", ...keys, connection_string: null },
      // An individual key beats the same part of the URL.
      {
        backend: "postgres",
        connection_string: withDatabase("no_such_database"),
        database: keys.database,
      },
    ];
    for (const config of configs) await roundTrip(config);
  },
});

Deno.test({
  name:
    "a Postgres channel_prefix is cleaned as Python cleans it: both name the same channels",
  ignore: !pgOk,
  fn: async () => {
    const sql = postgres(DATABASE_URL, { onnotice: () => {} });
    const bus = createEventBus({
      backend: "postgres",
      connection_string: DATABASE_URL,
      channel_prefix: "py-config.test!",
    });
    await bus.connect();
    try {
      const topic = uniqueTopic("pyconfig:prefix");
      // Python's name: prefix "pyconfigtest", topic with : . - made _.
      const channel = `pyconfigtest_${topic.replace(/[:.-]/g, "_")}`;
      const heard = Promise.withResolvers<string>();
      const listener = await sql.listen(channel, heard.resolve);
      const received: Event[] = [];
      const two = Promise.withResolvers<void>();
      await bus.subscribe(topic, (event) => {
        if (received.push(event) === 2) two.resolve();
      });
      const ours = new Event({ type: "created", topic });
      await bus.publish(topic, ours);
      assert.equal(JSON.parse(await heard.promise).event_id, ours.eventId);
      // What a Python bus publishes on that channel reaches this bus.
      const theirs = new Event({ type: "updated", topic, source: "python" });
      await sql`select pg_notify(${channel}, ${theirs.toJSONString()})`;
      await two.promise;
      assert.deepEqual(received.map((e) => e.eventId), [
        ours.eventId,
        theirs.eventId,
      ]);
      await listener.unlisten();
    } finally {
      await bus.close();
      await sql.end();
    }
  },
});

Deno.test({
  name: "Python Redis configs make a working bus",
  ignore: !redisOk,
  fn: async () => {
    const redis = new URL(REDIS_URL);
    const host = redis.hostname.replace(/^\[|\]$/g, "");
    const port = Number(redis.port || 6379);
    const password = decodeURIComponent(redis.password) || null;
    const configs: EventBusConfig[] = [
      { backend: "redis", host, port, password, ssl: false },
      {
        backend: "redis",
        host,
        port: `${port}`,
        password,
        channel_prefix: "pyconfig",
      },
    ];
    // Python's defaults (localhost:6379), where that is the test server.
    const local = ["127.0.0.1", "localhost", "::1"].includes(host);
    if (local && port === 6379 && password === null) {
      configs.push({ backend: "redis" });
      // An empty password is no password, as redis-py reads it.
      configs.push({ backend: "redis", password: "" });
    }
    for (const config of configs) await roundTrip(config);
  },
});

/**
 * Runs tests/_config_child.ts with exactly `env` and `permissions`; the
 * config travels as JSON, as a Python service's file would.
 */
async function child(
  config: Record<string, unknown>,
  env: Record<string, string>,
  permissions = ["--allow-env", "--allow-net"],
): Promise<string> {
  const keep = ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME"].flatMap(
    (name) => {
      const value = Deno.env.get(name);
      return value === undefined ? [] : [[name, value]];
    },
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...permissions,
      new URL("./_config_child.ts", import.meta.url).pathname,
      JSON.stringify(config),
      uniqueTopic("pyconfig:env"),
    ],
    env: { ...Object.fromEntries(keep), ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return text;
}

Deno.test({
  name:
    "Python Postgres configs that rely on DATABASE_URL or POSTGRES_* make a working bus",
  ignore: !pgOk,
  fn: async () => {
    const where = `${
      keys.host.includes(":") ? `[${keys.host}]` : keys.host
    }:${keys.port}/${keys.database}`;
    const shown = `ok PostgresEventBus(postgres://${where}, closed)`;
    const postgresEnv = {
      POSTGRES_HOST: keys.host,
      POSTGRES_PORT: `${keys.port}`,
      POSTGRES_DB: keys.database,
      POSTGRES_USER: keys.user,
      ...(keys.password === undefined
        ? {}
        : { POSTGRES_PASSWORD: keys.password }),
    };
    const cases: [Record<string, unknown>, Record<string, string>][] = [
      [{ backend: "postgres" }, { DATABASE_URL }],
      [{ backend: "postgres", connection_string: null }, { DATABASE_URL }],
      [{ backend: "postgres" }, postgresEnv],
      // Individual keys in the config: DATABASE_URL (a dead port) is ignored.
      [
        { backend: "postgres", host: keys.host, port: keys.port },
        {
          DATABASE_URL: "postgres://nobody@127.0.0.1:1/nothing",
          POSTGRES_DB: keys.database,
          POSTGRES_USER: keys.user,
          ...(keys.password === undefined
            ? {}
            : { POSTGRES_PASSWORD: keys.password }),
        },
      ],
    ];
    for (const [config, env] of cases) {
      assert.equal(await child(config, env), shown, JSON.stringify(env));
    }
  },
});

Deno.test("without --allow-env, a Postgres config that needs the environment names the permission", async () => {
  const text = await child(
    { backend: "postgres" },
    { DATABASE_URL },
    ["--allow-net"],
  );
  assert.match(
    text,
    /^TypeError: Invalid postgres event bus config: no connection given: .*; this program may not read them: run Deno with --allow-env \(the drivers read PG\* variables too/,
  );
  assert.doesNotMatch(text, /postgres:\/\//);
});
