// Type tests of the config dicts: `deno task check` (deno check .) fails if a
// misuse below compiles (each `@ts-expect-error` must meet an error) or a
// valid config does not. The test only makes the buses (nothing connects).
import assert from "node:assert/strict";
import {
  createEventBus,
  type CustomConfig,
  type EventBusConfig,
  InMemoryEventBus,
  type MemoryConfig,
  type PostgresConfig,
  type RedisConfig,
  registerBackend,
} from "../mod.ts";

declare module "../mod.ts" {
  interface CustomBackends {
    "types-test-kafka": { readonly brokers: string; readonly acks?: number };
  }
}

/** Configs that must compile (and make a bus). */
const valid: EventBusConfig[] = [
  {},
  { backend: "memory" },
  { backend: "memory", max_event_bytes: 4096 },
  { backend: "postgres", connection_string: "postgres://u@h/db" },
  { backend: "postgres", connection_string: "postgresql+asyncpg://u@h/db" },
  { backend: "postgres", connection_string: null }, // from the environment
  { backend: "postgres", host: "db", port: 5432, database: "app" },
  { backend: "postgres", host: "db", port: "5432", user: "app", password: "" },
  { backend: "postgres", password: "s", host: null, port: null },
  {
    backend: "postgres",
    connection_string: "postgres://u@h/db",
    database: "other",
    channel_prefix: "my-app.events",
    ssl: { reject_unauthorized: true },
  },
  { backend: "redis" },
  { backend: "redis", host: "cache", port: 6380, ssl: true, password: null },
  { backend: "redis", host: "cache", port: "6380", db: 1, username: "u" },
  { backend: "redis", url: "rediss://cache:6380/2", channel_prefix: "app" },
  { backend: "types-test-kafka", brokers: "k:9092", acks: 1 },
];

const misuse: unknown[] = [
  // @ts-expect-error: an unknown backend, a typo of a built-in one
  { backend: "postgress", connection_string: "postgres://u@h/db" },
  // @ts-expect-error: a typo of a registered one
  { backend: "types-test-kafak", brokers: "k:9092" },
  // @ts-expect-error: an unknown key (Redis calls it host)
  { backend: "redis", hostname: "cache" },
  // @ts-expect-error: a port that is no number
  { backend: "redis", host: "cache", port: "six" },
  // @ts-expect-error: a port of the wrong type
  { backend: "redis", host: "cache", port: true },
  // @ts-expect-error: Postgres with nothing to connect with
  { backend: "postgres" },
  // @ts-expect-error: Postgres with only options
  { backend: "postgres", channel_prefix: "app" },
  // @ts-expect-error: a Postgres port that is no number
  { backend: "postgres", host: "db", port: "5432a" },
  // @ts-expect-error: a connection string of the wrong type
  { backend: "postgres", connection_string: 42 },
  // @ts-expect-error: an unknown Postgres key
  { backend: "postgres", connection_string: "postgres://h/db", dbname: "x" },
  // @ts-expect-error: ssl as text
  { backend: "redis", host: "cache", ssl: "yes" },
  // @ts-expect-error: a memory config with a key of another backend
  { backend: "memory", host: "cache" },
  // @ts-expect-error: max_event_bytes as text
  { backend: "memory", max_event_bytes: "1mb" },
  // @ts-expect-error: a registered backend's unknown key
  { backend: "types-test-kafka", brokers: "k:9092", brokerz: "x" },
  // @ts-expect-error: a registered backend's missing key
  { backend: "types-test-kafka" },
] satisfies EventBusConfig[];

// Each shape alone, as users annotate it.
const memory: MemoryConfig = {};
const postgres: PostgresConfig = { backend: "postgres", user: "app" };
const redis: RedisConfig = { backend: "redis", port: "6379" };
const custom: CustomConfig = { backend: "types-test-kafka", brokers: "k" };
// @ts-expect-error: Redis has no database key (it is db)
const wrong: RedisConfig = { backend: "redis", database: 1 };
// @ts-expect-error: PostgresConfig is not a Redis config
const crossed: PostgresConfig = { backend: "redis", host: "cache" };

Deno.test("the config types take every valid config and make a bus of each", () => {
  registerBackend(
    "types-test-kafka",
    (_config, options) => new InMemoryEventBus(options),
  );
  const made = [...valid, memory, postgres, redis, custom].filter(
    (config) =>
      !("connection_string" in config && config.connection_string === null),
  ).map((config) => createEventBus(config).state);
  assert.ok(made.every((state) => state === "idle"));
  assert.equal(misuse.length, 15);
  assert.ok(wrong && crossed);
});
