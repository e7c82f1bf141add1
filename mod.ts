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

import { checkConfig } from "./_config.ts";
import { InMemoryEventBus } from "./memory.ts";
import { PostgresEventBus, type PostgresEventBusOptions } from "./postgres.ts";
import { RedisEventBus, type RedisEventBusOptions } from "./redis.ts";
import type { TlsOptions } from "./_tls.ts";
import {
  type EventBus,
  EventBusError,
  type EventBusOptions,
  show,
} from "./types.ts";

export {
  type ConnectionState,
  type ConnectOptions,
  type ErrorHandler,
  Event,
  type EventBus,
  EventBusError,
  type EventBusErrorCode,
  type EventBusOptions,
  type EventDict,
  EventFormatError,
  type EventHandler,
  type EventInit,
  type EventIterator,
  type EventsOptions,
  EventType,
  type Gap,
  type JsonObject,
  type JsonValue,
  type OnceOptions,
  type OverflowPolicy,
  type RemoteEventBusOptions,
  type SubscribeOptions,
  type Subscription,
} from "./types.ts";
export { InMemoryEventBus } from "./memory.ts";
export type { TlsOptions } from "./_tls.ts";
export type { OpenTelemetryApi, TelemetryOptions } from "./_telemetry.ts";

/**
 * The seed's config for the in-memory backend.
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
}

/**
 * The seed's config for the PostgreSQL backend.
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
 */
export interface PostgresConfig {
  /** `"postgres"`. */
  readonly backend: "postgres";
  /**
   * The largest event `publish` takes, in UTF-8 bytes of its JSON text
   * (the `maxEventBytes` option; this key wins over it).
   * @default 1048576
   */
  readonly max_event_bytes?: number;
  /** A `postgres://` URL. */
  readonly connection_string: string;
  /** NOTIFY channel prefix, from `[A-Za-z0-9_]`. Default `"events"`. */
  readonly channel_prefix?: string;
  /**
   * TLS: `true` (verify the server against Node's CA store) or
   * {@linkcode TlsConfig}; combined with the URL's `sslmode` (the stronger
   * applies; contradictions are refused). Default: what `sslmode` says.
   */
  readonly ssl?: boolean | TlsConfig;
}

/**
 * The seed's config for the Redis backend, plus `url` and `username`.
 *
 * @example The Redis config (nothing connects yet)
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type RedisConfig } from "@dataknobs/events";
 * const config: RedisConfig = { backend: "redis", host: "cache.example.com", port: 6379, ssl: true };
 * assert.equal(createEventBus(config).state, "idle");
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
  /** The Redis host; required unless `url` is given. */
  readonly host?: string;
  /** The port. Default 6379. */
  readonly port?: number;
  /**
   * Use TLS: `true` verifies the server against Node's CA store;
   * {@linkcode TlsConfig} gives a CA, a client certificate, a server name.
   * Default false (true with a `rediss://` URL).
   */
  readonly ssl?: boolean | TlsConfig;
  /** The password (AUTH). */
  readonly password?: string;
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
 * A config for a backend registered with {@linkcode registerBackend}.
 *
 * @example Config for a registered backend
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type CustomConfig, InMemoryEventBus, registerBackend } from "@dataknobs/events";
 * registerBackend("custom-config-example", () => new InMemoryEventBus());
 * const config: CustomConfig = { backend: "custom-config-example", region: "eu" };
 * assert.equal(createEventBus(config).state, "idle");
 * ```
 */
export interface CustomConfig {
  /** The registered name. */
  readonly backend: string;
  /** Whatever that backend takes. */
  readonly [key: string]: unknown;
}

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
 * const bus = createEventBus({ backend: "loopback" });
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
 * Makes a bus from the seed's config dict (call `connect()` next): an
 * `InMemoryEventBus`, a `PostgresEventBus` or a `RedisEventBus`, with every
 * extra of its class. The drivers load on `connect()`, so importing this
 * module never loads `postgres` or `ioredis`.
 *
 * @param config The backend and its keys (see the README's tables);
 * defaults to the memory backend.
 * @param options Hooks and limits every backend takes.
 * @returns The bus, not yet connected.
 * @throws {TypeError} For an unknown, missing or mistyped key (secrets are
 * never echoed).
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
 */
export function createEventBus(
  config: EventBusConfig = {},
  options: EventBusOptions = {},
): EventBus {
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
  return factory(config as Readonly<Record<string, unknown>>, options);
}

registerBackend("memory", (config, options) => {
  checkConfig("memory", config);
  return new InMemoryEventBus(busOptions(config, options));
});

registerBackend("postgres", (config, options) => {
  checkConfig("postgres", config);
  const c = config as unknown as PostgresConfig;
  const settings: PostgresEventBusOptions = {
    ...busOptions(config, options),
    connectionString: c.connection_string,
    ...(c.channel_prefix === undefined
      ? {}
      : { channelPrefix: c.channel_prefix }),
    ...(c.ssl === undefined ? {} : { tls: tlsOption(c.ssl) }),
  };
  return new PostgresEventBus(settings);
});

registerBackend("redis", (config, options) => {
  checkConfig("redis", config);
  const c = config as unknown as RedisConfig;
  if (c.host === undefined && c.url === undefined) {
    throw new TypeError(
      'Invalid redis event bus config: "host" is required (or give "url")',
    );
  }
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
  const { max_event_bytes } = config as MemoryConfig;
  return max_event_bytes === undefined
    ? options
    : { ...options, maxEventBytes: max_event_bytes };
}

function redisOptions(c: RedisConfig): RedisEventBusOptions {
  const pairs: [string, unknown][] = [
    ["host", c.host],
    ["port", c.port],
    ["tls", c.ssl === undefined ? undefined : tlsOption(c.ssl)],
    ["password", c.password],
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
