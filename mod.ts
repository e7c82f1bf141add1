/**
 * An event bus for TypeScript and Deno services: publish an event to a named
 * topic and every subscriber of that topic, or of a matching fnmatch
 * pattern, gets it — in the same process (`memory`), through PostgreSQL
 * LISTEN/NOTIFY (`postgres`) or Redis pub/sub (`redis`). The same code runs
 * on every backend; only the config changes.
 *
 * @example Quick start
 * ```ts
 * import { createEventBus, Event, EventType } from "@dataknobs/events";
 *
 * const bus = createEventBus({ backend: "memory" });
 * await bus.connect();
 * const subscription = await bus.subscribe("my-topic", (event) => {
 *   console.log(`Received ${event.type} on ${event.topic}`, event.payload);
 * });
 * await bus.publish("my-topic", new Event({
 *   type: EventType.CREATED,
 *   topic: "my-topic",
 *   payload: { message: "Hello, World!" },
 * }));
 * await subscription.cancel();
 * await bus.close();
 * ```
 *
 * @module
 */

import { checkConfig, cleanPrefix } from "./_config.ts";
import { portNumber, postgresUrl } from "./_postgres_config.ts";
import { InMemoryEventBus } from "./memory.ts";
import {
  PostgresEventBus,
  type PostgresEventBusOptions,
  type SynchronousCommit,
} from "./postgres.ts";
import { RedisEventBus, type RedisEventBusOptions } from "./redis.ts";
import type { TlsOptions } from "./_tls.ts";
import {
  type EventBus,
  EventBusError,
  type EventBusOptions,
  show,
  type TopicMap,
  type UntypedTopics,
} from "./types.ts";

export {
  type ConnectionState,
  type ConnectOptions,
  type Delivery,
  type ErrorHandler,
  Event,
  type EventBus,
  EventBusError,
  type EventBusErrorCode,
  type EventBusLifecycle,
  type EventBusOptions,
  type EventDict,
  EventFormatError,
  type EventHandler,
  type EventInit,
  type EventIterator,
  type EventsOptions,
  EventType,
  type ExactOptions,
  type Gap,
  type HistoryOptions,
  type JsonObject,
  type JsonSafe,
  type JsonValue,
  type OnceOptions,
  type OncePromise,
  type OverflowPolicy,
  type PatternOptions,
  type PayloadInit,
  type PublishedEvent,
  type RemoteEventBusOptions,
  type SubscribeOptions,
  type Subscription,
  type TopicEvent,
  type TopicMap,
  type TopicOf,
  type UntypedPayload,
  type UntypedTopics,
} from "./types.ts";
export { InMemoryEventBus } from "./memory.ts";
export type { TlsOptions } from "./_tls.ts";
export type { SynchronousCommit } from "./_postgres_sql.ts";
export type { OpenTelemetryApi, TelemetryOptions } from "./_telemetry.ts";

/**
 * The config key `history` (see {@linkcode HistoryOptions}): keep a log of
 * what the bus publishes, for replay.
 *
 * @example A log of at most 10,000 events
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type HistoryConfig } from "@dataknobs/events";
 * const history: HistoryConfig = { max_events: 10_000, max_age_ms: 3_600_000 };
 * assert.equal(createEventBus({ backend: "memory", history }).state, "idle");
 * ```
 */
export interface HistoryConfig {
  /** The most events kept. Default 100000. */
  readonly max_events?: number;
  /** The longest time an event is kept, in milliseconds. Default a day. */
  readonly max_age_ms?: number;
}

/**
 * The config of the in-memory backend.
 *
 * @example The memory config
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type MemoryConfig } from "@dataknobs/events";
 * const config: MemoryConfig = { backend: "memory" };
 * assert.equal(createEventBus(config).state, "idle");
 * ```
 */
export interface MemoryConfig {
  /** `"memory"` (the default). */
  readonly backend?: "memory";
  /**
   * The largest event `publish` takes, in UTF-8 bytes of its JSON text
   * (the `maxEventBytes` option; this key wins over it).
   * @default 1048576
   */
  readonly max_event_bytes?: number;
  /** Keep a log for replay (the `history` option; this key wins over it). */
  readonly history?: HistoryConfig;
}

/**
 * Every key of the PostgreSQL config (what {@linkcode PostgresConfig}
 * requires one of is there). The connection comes, as in the Python
 * dataknobs-common bus, from the individual keys, then `connection_string`,
 * then the `DATABASE_URL` environment variable (only when the config gives
 * neither), then `POSTGRES_HOST`, `POSTGRES_PORT`, `POSTGRES_DB`,
 * `POSTGRES_USER`, `POSTGRES_PASSWORD` for each part still missing, then
 * the defaults. `null` (Python's `None`) means "not given".
 *
 * @example Individual keys, a port as text (as from an environment file)
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type PostgresConfigKeys } from "@dataknobs/events";
 * const keys: PostgresConfigKeys = { backend: "postgres", host: "db.example.com", port: "5433", database: "app" };
 * assert.equal(String(createEventBus({ ...keys, user: "app" })), "PostgresEventBus(postgres://db.example.com:5433/app, idle)");
 * ```
 */
export interface PostgresConfigKeys {
  /** `"postgres"`. */
  readonly backend: "postgres";
  /**
   * The largest event `publish` takes, in UTF-8 bytes of its JSON text
   * (the `maxEventBytes` option; this key wins over it).
   * @default 1048576
   */
  readonly max_event_bytes?: number;
  /** Keep a log for replay (the `history` option; this key wins over it). */
  readonly history?: HistoryConfig;
  /**
   * A `postgres://` or `postgresql://` URL (`postgresql+asyncpg://` is read
   * as `postgresql://`); `""` or `null`: not given. Used as written unless
   * an individual key or a `POSTGRES_*` variable supplies a part it lacks;
   * then a URL is built from the parts, keeping this one's query.
   */
  readonly connection_string?: string | null;
  /** The server. Default: the URL's, `POSTGRES_HOST`, `"localhost"`. */
  readonly host?: string | null;
  /**
   * The port, a number or its decimal text. Default: the URL's,
   * `POSTGRES_PORT`, 5432.
   */
  readonly port?: number | `${number}` | null;
  /** The database. Default: the URL's, `POSTGRES_DB`, `"postgres"`. */
  readonly database?: string | null;
  /** The role. Default: the URL's, `POSTGRES_USER`, `"postgres"`. */
  readonly user?: string | null;
  /** The password; never shown. Default: the URL's, `POSTGRES_PASSWORD`, none. */
  readonly password?: string | null;
  /**
   * NOTIFY channel prefix; every character outside `[A-Za-z0-9_]` is
   * removed, as the Python bus does, leaving 1 to 40.
   * @default "events"
   */
  readonly channel_prefix?: string;
  /**
   * TLS: `true` (verify the server against Node's CA store) or
   * {@linkcode TlsConfig}; combined with the URL's `sslmode` (the stronger
   * applies; contradictions are refused). Default: what `sslmode` says.
   */
  readonly ssl?: boolean | TlsConfig;
  /**
   * The `synchronous_commit` of the bus's own sessions (the
   * `synchronousCommit` option): `"off"` does not wait for the disk, and a
   * server crash may lose the log's last events, reported to subscribers
   * that resume from before it; `"on"` waits.
   * @default "off"
   */
  readonly synchronous_commit?: SynchronousCommit;
}

/**
 * The PostgreSQL config: {@linkcode PostgresConfigKeys} with at least one of
 * `connection_string`, `host`, `port`, `database`, `user`, `password`, so
 * that a config written in code says where its server is. A config that
 * relies on the environment alone (`DATABASE_URL`, `POSTGRES_*`) says so
 * with `connection_string: null`; one read from a file needs nothing (the
 * check at run time is the same as Python's).
 *
 * @example The Postgres config (nothing connects yet)
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type PostgresConfig } from "@dataknobs/events";
 * import { PostgresEventBus } from "@dataknobs/events/postgres";
 * const config: PostgresConfig = { backend: "postgres", connection_string: "postgres://app@db.example.com/app" };
 * const bus = createEventBus(config);
 * assert.ok(bus instanceof PostgresEventBus); // with every extra of the class
 * assert.equal(String(bus), "PostgresEventBus(postgres://db.example.com:5432/app, idle)");
 * ```
 * @example From the environment only
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PostgresConfig } from "@dataknobs/events";
 * // DATABASE_URL, else POSTGRES_HOST, POSTGRES_PORT, … (Deno: --allow-env)
 * const config: PostgresConfig = { backend: "postgres", connection_string: null };
 * // @ts-expect-error: no connection in a config written in code
 * const missing: PostgresConfig = { backend: "postgres" };
 * assert.notDeepEqual(config, missing);
 * ```
 */
export type PostgresConfig =
  & PostgresConfigKeys
  & (
    | { readonly host: string }
    | { readonly port: number | `${number}` }
    | { readonly database: string }
    | { readonly user: string }
    | { readonly password: string }
    | { readonly connection_string: string | null }
  );

/**
 * The Redis config: the Python bus's keys, plus `db`, `url` and `username`.
 *
 * @example The Redis config (nothing connects yet)
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type RedisConfig } from "@dataknobs/events";
 * const config: RedisConfig = { backend: "redis", host: "cache.example.com", port: 6379, ssl: true };
 * assert.equal(createEventBus(config).state, "idle");
 * // Python's defaults: localhost:6379.
 * assert.equal(String(createEventBus({ backend: "redis" })), "RedisEventBus(redis://localhost:6379/0, idle)");
 * ```
 */
export interface RedisConfig {
  /** `"redis"`. */
  readonly backend: "redis";
  /**
   * The largest event `publish` takes, in UTF-8 bytes of its JSON text
   * (the `maxEventBytes` option; this key wins over it).
   * @default 1048576
   */
  readonly max_event_bytes?: number;
  /** Keep a log for replay (the `history` option; this key wins over it). */
  readonly history?: HistoryConfig;
  /**
   * The Redis host.
   * @default "localhost" (or the host of `url`)
   */
  readonly host?: string;
  /**
   * The port, a number or its decimal text.
   * @default 6379
   */
  readonly port?: number | `${number}`;
  /**
   * Use TLS: `true` verifies the server against Node's CA store;
   * {@linkcode TlsConfig} gives a CA, a client certificate, a server name.
   * Default false (true with a `rediss://` URL).
   */
  readonly ssl?: boolean | TlsConfig;
  /** The password (AUTH); `null`: none. */
  readonly password?: string | null;
  /** The database number. Default 0. */
  readonly db?: number;
  /** Channel prefix: channels are `<prefix>:<topic>`. Default `"events"`. */
  readonly channel_prefix?: string;
  /** A `redis://` or `rediss://` URL; explicit keys override its parts. */
  readonly url?: string;
  /** The ACL user name. */
  readonly username?: string;
}

/**
 * TLS settings in a config dict (`ssl` of {@linkcode RedisConfig} and
 * {@linkcode PostgresConfig}): {@linkcode TlsOptions} with the key spelled
 * `reject_unauthorized`. Certificates and keys are PEM text, not paths.
 *
 * @example Redis with a private CA, from JSON
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type RedisConfig } from "@dataknobs/events";
 * const ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
 * const config: RedisConfig = JSON.parse(JSON.stringify({
 *   backend: "redis", host: "cache.internal", port: 6380,
 *   ssl: { ca, reject_unauthorized: true },
 * }));
 * assert.equal(String(createEventBus(config)), "RedisEventBus(rediss://cache.internal:6380/0, idle)");
 * ```
 */
export interface TlsConfig {
  /** PEM text of the CA certificate(s) to trust instead of Node's store. */
  readonly ca?: string | readonly string[];
  /** PEM text of a client certificate; needs `key`. */
  readonly cert?: string;
  /** PEM text of its private key (unencrypted); never shown. */
  readonly key?: string;
  /** SNI and the name checked; default the host unless it is an IP. */
  readonly servername?: string;
  /** Verify the server's certificate. Default true. */
  readonly reject_unauthorized?: boolean;
}

/**
 * The names and config types of backends added with
 * {@linkcode registerBackend}, for the type checker: empty here, filled by
 * declaration merging (`declare module "@dataknobs/events"`). A name that
 * is in neither this map nor the built-in ones — a typo such as
 * `"postgress"` — does not compile; a config read from a file (`any`)
 * always does, and is checked when the bus is made.
 *
 * @example Name a registered backend for the type checker
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type EventBusConfig, InMemoryEventBus, registerBackend } from "@dataknobs/events";
 * // In a module of yours (a complete program: examples/custom_backend.ts):
 * //   declare module "@dataknobs/events" {
 * //     interface CustomBackends { "loopback-region": { readonly region: string } }
 * //   }
 * registerBackend("loopback-region", (_config, options) => new InMemoryEventBus(options));
 * // Read from a file, a config is checked when the bus is made.
 * const config: EventBusConfig = JSON.parse('{"backend": "loopback-region", "region": "eu"}');
 * assert.equal(createEventBus(config).state, "idle");
 * ```
 */
// deno-lint-ignore no-empty-interface
export interface CustomBackends {}

/**
 * A config for a backend registered with {@linkcode registerBackend} and
 * named in {@linkcode CustomBackends}: `{ backend: name, ...its keys }`.
 *
 * @example Config for a registered backend
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type CustomConfig, InMemoryEventBus, registerBackend } from "@dataknobs/events";
 * registerBackend("custom-config-example", () => new InMemoryEventBus());
 * // A function of yours that takes the configs of the backends you named
 * // in CustomBackends (examples/custom_backend.ts names one):
 * const make = (config: CustomConfig) => createEventBus(config);
 * // Here none is named, so only configs from files reach that backend.
 * const bus = createEventBus(JSON.parse('{"backend": "custom-config-example"}'));
 * assert.equal(bus.state, "idle");
 * assert.equal(make.length, 1);
 * ```
 */
export type CustomConfig = {
  [Name in keyof CustomBackends]:
    & { readonly backend: Name }
    & CustomBackends[Name];
}[keyof CustomBackends];

/**
 * What {@linkcode createEventBus} takes.
 *
 * @example Read the config from a file's JSON
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type EventBusConfig } from "@dataknobs/events";
 * const config: EventBusConfig = JSON.parse('{"backend": "memory"}');
 * const bus = createEventBus(config);
 * await bus.connect();
 * await bus.close();
 * assert.equal(bus.state, "closed");
 * ```
 */
export type EventBusConfig =
  | MemoryConfig
  | PostgresConfig
  | RedisConfig
  | CustomConfig;

/**
 * Makes a bus from a config. It receives the config object as given and the
 * options, and throws a TypeError for a config it cannot use.
 *
 * @example A factory
 * ```ts
 * import assert from "node:assert/strict";
 * import { type BackendFactory, InMemoryEventBus } from "@dataknobs/events";
 * const factory: BackendFactory = (_config, options) => new InMemoryEventBus(options);
 * assert.equal(factory({ backend: "x" }, {}).state, "idle");
 * ```
 */
export type BackendFactory = (
  config: Readonly<Record<string, unknown>>,
  options: EventBusOptions,
) => EventBus;

const backends = new Map<string, BackendFactory>();

/**
 * Registers a backend by name for {@linkcode createEventBus}.
 *
 * @param name The `backend` value that selects it.
 * @param factory Makes the bus from the config and options.
 * @throws {TypeError} If the name is empty or already registered.
 * @example Register a backend
 * ```ts
 * import { createEventBus, InMemoryEventBus, registerBackend } from "@dataknobs/events";
 * registerBackend("loopback", (_config, options) => new InMemoryEventBus(options));
 * // Typed configs name it in CustomBackends; this one comes from a file.
 * const bus = createEventBus(JSON.parse('{"backend": "loopback"}'));
 * await bus.connect();
 * await bus.close();
 * ```
 */
export function registerBackend(name: string, factory: BackendFactory): void {
  if (typeof name !== "string" || name === "") {
    throw new TypeError(
      `Cannot register backend: name must be a non-empty string, got ${
        show(name)
      }`,
    );
  }
  if (typeof factory !== "function") {
    throw new TypeError(
      `Cannot register backend "${name}": factory must be a function, got ${
        show(factory)
      }`,
    );
  }
  if (backends.has(name)) {
    throw new TypeError(
      `Cannot register backend "${name}": that name is already registered`,
    );
  }
  backends.set(name, factory);
}

/**
 * Makes a bus from a config dict — the Python dataknobs-common bus's keys,
 * with the same meaning, environment fallbacks included (call `connect()`
 * next): an
 * `InMemoryEventBus`, a `PostgresEventBus` or a `RedisEventBus`, with every
 * extra of its class. The drivers load on `connect()`, so importing this
 * module never loads `postgres` or `ioredis`.
 *
 * `T` is the bus's topic map (topic → payload type), e.g.
 * `createEventBus<{ "registry:bots": BotChange }>(config)`: `publish`,
 * `subscribe`, `once` and `events` are then checked against it, and a
 * payload type JSON cannot carry is a compile error here. Without it the
 * bus takes any topic, with {@linkcode JsonObject} payloads. The map is
 * not checked at run time: events from other processes (the Python bus)
 * are trusted to match it.
 *
 * @typeParam T The topic map; see {@linkcode TopicMap}.
 * @param config The backend and its keys (see the README's tables);
 * defaults to the memory backend.
 * @param options Hooks and limits every backend takes.
 * @returns The bus, not yet connected.
 * @throws {TypeError} For an unknown or mistyped key, or a Postgres config
 * that gives no connection (naming `--allow-env` where Deno may not read
 * the environment); secrets are never echoed.
 * @throws {EventBusError} `UNKNOWN_BACKEND`, listing the registered names.
 * @example Pick a backend from config
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus } from "@dataknobs/events";
 * const bus = createEventBus({ backend: "memory" });
 * await bus.connect();
 * assert.ok(bus.state === "ready");
 * await bus.close();
 * ```
 * @example Declare the topics
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, Event } from "@dataknobs/events";
 * interface BotChange { bot_id: string; version?: number }
 * type Topics = { "registry:bots": BotChange };
 * const bus = createEventBus<Topics>({ backend: "memory" });
 * await bus.connect();
 * const ids: string[] = [];
 * await bus.subscribe("registry:bots", (event) => void ids.push(event.payload.bot_id));
 * await bus.publish("registry:bots", new Event({ type: "updated", topic: "registry:bots", payload: { bot_id: "b1" } }));
 * // @ts-expect-error "registry:bot" is not a topic of the map
 * await bus.subscribe("registry:bot", () => {}).catch(() => {});
 * assert.deepEqual(ids, ["b1"]);
 * await bus.close();
 * ```
 */
export function createEventBus<T extends TopicMap<T> = UntypedTopics>(
  config: EventBusConfig = {},
  options: EventBusOptions = {},
): EventBus<T> {
  if (typeof config !== "object" || config === null) {
    throw new TypeError(
      `Invalid event bus config: expected an object, got ${show(config)}`,
    );
  }
  const backend = config.backend ?? "memory";
  const factory = typeof backend === "string"
    ? backends.get(backend)
    : undefined;
  if (factory === undefined) {
    throw new EventBusError(
      "UNKNOWN_BACKEND",
      `Unknown event bus backend ${show(backend)}; registered backends: ${
        [...backends.keys()].join(", ")
      }`,
    );
  }
  return factory(
    config as Readonly<Record<string, unknown>>,
    options,
  ) as unknown as EventBus<T>;
}

registerBackend("memory", (config, options) => {
  checkConfig("memory", config);
  return new InMemoryEventBus(busOptions(config, options));
});

registerBackend("postgres", (config, options) => {
  checkConfig("postgres", config);
  const c = config as unknown as PostgresConfigKeys;
  const settings: PostgresEventBusOptions = {
    ...busOptions(config, options),
    connectionString: postgresUrl(config),
    ...(c.channel_prefix === undefined
      ? {}
      : { channelPrefix: cleanPrefix(c.channel_prefix) }),
    ...(c.ssl === undefined ? {} : { tls: tlsOption(c.ssl) }),
    ...(c.synchronous_commit === undefined
      ? {}
      : { synchronousCommit: c.synchronous_commit }),
  };
  return new PostgresEventBus(settings);
});

registerBackend("redis", (config, options) => {
  checkConfig("redis", config);
  const c = config as unknown as RedisConfig;
  const settings: RedisEventBusOptions = {
    ...busOptions(config, options),
    ...redisOptions(c),
  };
  return new RedisEventBus(settings);
});

/** The options, with those the config's keys give (they win). */
function busOptions(
  config: Readonly<Record<string, unknown>>,
  options: EventBusOptions,
): EventBusOptions {
  const { max_event_bytes, history } = config as MemoryConfig;
  return {
    ...options,
    ...(max_event_bytes === undefined
      ? {}
      : { maxEventBytes: max_event_bytes }),
    ...(history === undefined ? {} : {
      history: {
        ...(history.max_events === undefined
          ? {}
          : { maxEvents: history.max_events }),
        ...(history.max_age_ms === undefined
          ? {}
          : { maxAgeMs: history.max_age_ms }),
      },
    }),
  };
}

function redisOptions(c: RedisConfig): RedisEventBusOptions {
  const pairs: [string, unknown][] = [
    // Python's default host; a url gives its own.
    ["host", c.host ?? (c.url === undefined ? "localhost" : undefined)],
    ["port", c.port === undefined ? undefined : portNumber(c.port)],
    ["tls", c.ssl === undefined ? undefined : tlsOption(c.ssl)],
    // "" is no password, as redis-py sends no AUTH for it.
    ["password", c.password || undefined],
    ["db", c.db],
    ["channelPrefix", c.channel_prefix],
    ["url", c.url],
    ["username", c.username],
  ];
  return Object.fromEntries(
    pairs.filter(([, value]) => value !== undefined),
  ) as unknown as RedisEventBusOptions;
}

/** The config's `ssl` as the buses' `tls` option. */
function tlsOption(ssl: boolean | TlsConfig): boolean | TlsOptions {
  if (typeof ssl === "boolean") return ssl;
  const { reject_unauthorized, ...rest } = ssl;
  return reject_unauthorized === undefined
    ? rest
    : { ...rest, rejectUnauthorized: reject_unauthorized };
}
