/**
 * The PostgreSQL backend: LISTEN/NOTIFY on one dedicated connection, with
 * batched publishing, payloads beyond NOTIFY's 8000 bytes, fnmatch pattern
 * subscriptions across processes, transactional publish, and automatic
 * re-LISTEN after a lost connection. Channels are named as the Python
 * dataknobs-common bus names them (see {@linkcode postgresChannel}).
 *
 * @example Publish and receive through PostgreSQL
 * ```ts ignore
 * import { Event, EventType } from "@dataknobs/events";
 * import { PostgresEventBus } from "@dataknobs/events/postgres";
 *
 * await using bus = new PostgresEventBus({
 *   connectionString: "postgres://postgres@127.0.0.1:5432/postgres",
 * });
 * await bus.connect();
 * await bus.subscribe("registry:bots", (event) => console.log(event.payload));
 * await bus.publish("registry:bots", new Event({
 *   type: EventType.UPDATED, topic: "registry:bots", payload: { bot_id: "b1" },
 * }));
 * ```
 *
 * @example Configure a bus (nothing connects before `connect()`)
 * ```ts
 * import assert from "node:assert/strict";
 * import { PostgresEventBus } from "@dataknobs/events/postgres";
 * const bus = new PostgresEventBus({ connectionString: "postgres://app:secret@db.example.com/app" });
 * assert.ok(String(bus) === "PostgresEventBus(postgres://db.example.com:5432/app, idle)");
 * ```
 *
 * @module
 */

import type { ISql } from "postgres";
import { BusBase } from "./_bus.ts";
import { fnv1a64 } from "./_fnv.ts";
import type { Timing } from "./_keeper.ts";
import { OptionChecks, retention } from "./_options.ts";
import { notify, type PostgresPublisher } from "./_postgres_publisher.ts";
import {
  objectGone,
  SYNCHRONOUS_COMMIT,
  type SynchronousCommit,
} from "./_postgres_sql.ts";
import { PostgresTransport, type Settings } from "./_postgres_transport.ts";
import { postgresTls } from "./_postgres_tls.ts";
import type { TlsOptions } from "./_tls.ts";
import {
  type Event,
  EventBusError,
  type PublishedEvent,
  type RemoteEventBusOptions,
  show,
  type TopicMap,
  type TopicOf,
  type UntypedTopics,
} from "./types.ts";

export type { TlsOptions } from "./_tls.ts";

/**
 * Options of {@linkcode PostgresEventBus}.
 *
 * @example Options
 * ```ts
 * import assert from "node:assert/strict";
 * import { PostgresEventBus, type PostgresEventBusOptions } from "@dataknobs/events/postgres";
 * const options: PostgresEventBusOptions = {
 *   connectionString: "postgres://app@db.example.com/app?sslmode=verify-full",
 *   channelPrefix: "shop_events",
 *   heartbeatMs: 10_000,
 * };
 * assert.equal(new PostgresEventBus(options).state, "idle");
 * ```
 */
export interface PostgresEventBusOptions extends RemoteEventBusOptions {
  /**
   * A `postgres://` URL. Its `sslmode` turns TLS on: `verify-full` checks
   * the server's certificate and name, `verify-ca` the certificate only,
   * `require` encrypts but verifies nothing, `prefer`/`allow` use TLS when
   * the server offers it (unverified), `disable` (the default) never.
   * libpq's file settings (`sslrootcert=<path>`, `sslcert`, `sslkey`, …)
   * are refused: give the PEM text as `tls` instead.
   */
  readonly connectionString: string;
  /**
   * TLS: `true` verifies the server's certificate (chain and host name)
   * against Node's CA store; {@linkcode TlsOptions} give a CA, a client
   * certificate, a server name, or (`rejectUnauthorized: false`) encrypt
   * without verifying. Combined with the URL's `sslmode`, the stronger of
   * the two applies; a `tls` weaker than an `sslmode` of `require` or
   * above, or any `tls` with `sslmode=disable`, is refused.
   * @default false (or what `sslmode` says)
   */
  readonly tls?: boolean | TlsOptions;
  /**
   * Channels are `<channelPrefix>_<topic made safe>`; 1 to 40 characters
   * from `[A-Za-z0-9_]`.
   * @default "events"
   */
  readonly channelPrefix?: string;
  /**
   * How long the body of an event too large for NOTIFY stays in the
   * `<channelPrefix>_payloads` table for listeners to fetch.
   * @default 600000
   */
  readonly largePayloadTtlMs?: number;
  /**
   * The `synchronous_commit` of the bus's own sessions, so of every
   * publish but those in your transaction (`{ sql: tx }`: yours applies).
   * `"off"`: `publish` resolves once the statement has committed, without
   * waiting for the disk, at about half the round trip with `history`; a
   * server crash may then lose the events of the last few hundred ms from
   * the log (their live notifications went out), and every subscriber
   * resuming from a position before the crash is told (`onGap` with
   * `lost: true`; see the README, History and replay). `"on"`: an event is
   * in the log on disk once `publish` resolves.
   * @default "off"
   */
  readonly synchronousCommit?: SynchronousCommit;
  /**
   * The most events one batched statement carries.
   * @default 1000
   */
  readonly maxBatch?: number;
}

export type { SynchronousCommit };

/**
 * What {@linkcode PostgresEventBus.prototype.publish} takes as options.
 *
 * @example Publish in a transaction
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PostgresPublishOptions } from "@dataknobs/events/postgres";
 * import type { TransactionSql } from "postgres";
 * // Inside sql.begin(async (tx) => { ... }): bus.publish(topic, event, within(tx))
 * const within = (tx: TransactionSql): PostgresPublishOptions => ({ sql: tx });
 * assert.equal(typeof within, "function");
 * ```
 */
export interface PostgresPublishOptions {
  /**
   * A postgres.js transaction (from `sql.begin`) to notify in: the event is
   * delivered if and only if that transaction commits.
   */
  readonly sql?: ISql;
}

/** Postgres identifiers (so channel names) are at most this many bytes. */
const IDENTIFIER_LIMIT = 63;

/**
 * The NOTIFY channel of a topic, as the Python dataknobs-common bus names it:
 * `<prefix>_<safe>`, where `safe` is the topic with `:`, `.` and `-` made
 * `_` and every other character outside `[A-Za-z0-9_]` removed. A name
 * longer than Postgres's 63-byte identifier limit becomes its first part,
 * `_`, and 16 hex digits of the FNV-1a 64-bit hash of the topic's UTF-8
 * bytes, so every process computes the same name. Different topics may
 * share a channel; receivers match on the topic inside the message.
 *
 * @param topic The topic.
 * @param prefix The channel prefix.
 * @returns The channel name.
 * @example Name channels
 * ```ts
 * import assert from "node:assert/strict";
 * import { postgresChannel } from "@dataknobs/events/postgres";
 * assert.ok(postgresChannel("registry:bots") === "events_registry_bots");
 * assert.ok(postgresChannel("x".repeat(100)).length === 63);
 * ```
 */
export function postgresChannel(topic: string, prefix = "events"): string {
  const safe = topic.replace(/[:.-]/g, "_").replace(/[^A-Za-z0-9_]/g, "");
  const name = `${prefix}_${safe}`;
  if (name.length <= IDENTIFIER_LIMIT) return name;
  return `${name.slice(0, IDENTIFIER_LIMIT - 17)}_${fnv1a64(topic)}`;
}

/**
 * The PostgreSQL bus. `publish` resolves once the event's NOTIFY has been
 * committed; concurrent publishes share one statement and one commit. An
 * event whose JSON is 8000 bytes or more is stored in the
 * `<channelPrefix>_payloads` table and its notification carries a
 * reference. Each pattern subscription listens on a channel of its own,
 * `<channelPrefix>:p:<hash of the pattern>`, and keeps a row in the
 * `<channelPrefix>_patterns` table while it lives: a publish notifies it
 * only for events whose topic it matches (with no pattern live, each event
 * is one notification, on its topic's channel).
 *
 * @example Publish inside a transaction
 * ```ts ignore
 * import postgres from "postgres";
 * import { Event, EventType } from "@dataknobs/events";
 * import { PostgresEventBus } from "@dataknobs/events/postgres";
 *
 * const url = "postgres://postgres@127.0.0.1:5432/postgres";
 * const sql = postgres(url);
 * await using bus = new PostgresEventBus({ connectionString: url });
 * await bus.connect();
 * await sql.begin(async (tx) => {
 *   await tx`update bots set config = ${"{}"} where id = ${"b1"}`;
 *   const event = new Event({ type: EventType.UPDATED, topic: "registry:bots", payload: { bot_id: "b1" } });
 *   await bus.publish("registry:bots", event, { sql: tx });
 * });
 * await sql.end();
 * ```
 *
 * @example Credentials never show
 * ```ts
 * import assert from "node:assert/strict";
 * import { PostgresEventBus } from "@dataknobs/events/postgres";
 * const bus = new PostgresEventBus({ connectionString: "postgres://app:s3cret@127.0.0.1/app" });
 * assert.ok(!String(bus).includes("s3cret") && bus.state === "idle");
 * ```
 */
export class PostgresEventBus<T extends TopicMap<T> = UntypedTopics>
  extends BusBase<T> {
  readonly #transport: PostgresTransport;

  /**
   * Makes a bus; call `connect()` before use.
   *
   * @param options The connection string, channel prefix and common options.
   * @throws {TypeError} For a bad connection string, prefix or option.
   * @throws {RangeError} For a timing option that is not a positive number.
   */
  constructor(options: PostgresEventBusOptions) {
    const check = new OptionChecks("PostgresEventBus");
    const timing = check.timing(options);
    const transport = new PostgresTransport(resolve(options, check, timing));
    super(options, { transport, timing });
    this.#transport = transport;
  }

  /**
   * Publishes an event; with `{ sql }`, inside that postgres.js transaction.
   *
   * @param topic The topic; must equal `event.topic`.
   * @param event The event.
   * @param options `sql`: a transaction to notify in.
   * @returns A promise that resolves once the event is committed (with
   * `sql`: once it is part of the transaction).
   * @throws {TypeError} For a bad topic or an event whose topic differs.
   * @throws {RangeError} For an event over `maxEventBytes`.
   * @throws {EventBusError} `NOT_CONNECTED`, `CLOSED` or `PUBLISH_FAILED`.
   */
  override publish<K extends TopicOf<T>>(
    topic: K,
    event: PublishedEvent<T, K>,
    options?: PostgresPublishOptions,
  ): Promise<void>;
  override publish(
    topic: string,
    given: object,
    options: PostgresPublishOptions = {},
  ): Promise<void> {
    const event = given as Event;
    const { sql } = options;
    if (sql === undefined) {
      return super.publish(
        topic as TopicOf<T>,
        given as PublishedEvent<T, TopicOf<T>>,
      );
    }
    try {
      this.checkPublish(topic, event);
    } catch (error) {
      return Promise.reject(error);
    }
    const { channels, store, label } = this.#transport;
    return this.traced(
      event,
      (sent) =>
        notify(sql, [sent], channels, store).catch(async (error: Error) => {
          // A table of the bus was dropped: the transaction has failed, but
          // the next one can succeed once the bus has made it again.
          const remade = objectGone(error) &&
            await this.command(
              "re-create its tables",
              (link) => (link as PostgresPublisher).remake(),
            ).then(() => true, () => false);
          const denied = (error as { code?: string }).code === "42501";
          throw new EventBusError(
            "PUBLISH_FAILED",
            `Cannot publish to "${topic}" in the transaction: PostgreSQL at ${label} refused the notification (${error.message}); it will not be delivered${
              remade
                ? " (the bus has made what was missing again: retry the transaction)"
                : denied
                ? " (grant the transaction's role the privileges the README names under PostgreSQL, Tables, schema and privileges)"
                : ""
            }`,
            { cause: error },
          );
        }),
    );
  }

  /**
   * How full the cluster-wide notification queue is, from 0 to 1. It fills
   * when a listening session sits in a long transaction; when full, every
   * NOTIFY fails at commit.
   *
   * @returns `pg_notification_queue_usage()`.
   * @throws {EventBusError} `NOT_CONNECTED` before `connect()`;
   * `CONNECTION_FAILED` while the connection is down or without an answer
   * within `commandTimeoutMs`.
   */
  notificationQueueUsage(): Promise<number> {
    return this.command(
      "read the notification queue usage",
      // The publishing connections of this bus's transport are these.
      (link) => (link as PostgresPublisher).queueUsage(),
    );
  }
}

/**
 * libpq connection keywords that are no server setting: postgres.js would
 * send them to the server as settings, which it refuses (a `password` one
 * would even travel as a setting).
 */
const LIBPQ_ONLY = new Set([
  "host",
  "hostaddr",
  "port",
  "dbname",
  "user",
  "password",
  "passfile",
  "connect_timeout",
  "options",
  "service",
  "target_session_attrs",
  "fallback_application_name",
  "keepalives",
  "keepalives_idle",
  "keepalives_interval",
  "keepalives_count",
  "tcp_user_timeout",
  "channel_binding",
  "gssencmode",
  "require_auth",
  "load_balance_hosts",
  "replication",
]);

/** A pattern row lives this many heartbeats unless renewed. */
const PATTERN_LEASE_HEARTBEATS = 6;

function resolve(
  options: PostgresEventBusOptions,
  check: OptionChecks,
  timing: Timing,
): Settings {
  const url = options.connectionString;
  const parsed = check.url(
    url,
    "connectionString",
    /^postgres(ql)?:$/,
    "postgres://",
  );
  if (parsed.pathname.includes("@")) {
    check.fail(
      'connectionString has "@" after its host: a password with "/", "?" or "#" in it must be %-escaped (%2F, %3F, %23)',
    );
  }
  if (parsed.hostname.includes(",")) {
    check.fail(
      "connectionString names several hosts; give one (the bus keeps one connection per role, to one server)",
    );
  }
  for (const name of parsed.searchParams.keys()) {
    if (LIBPQ_ONLY.has(name)) {
      check.fail(
        `connectionString parameter "${name}" is a libpq setting that postgres.js does not read (PostgreSQL would refuse it as an unknown setting at connect); give user, password, host, port and database in the URL itself`,
      );
    }
  }
  const prefix = options.channelPrefix ?? "events";
  if (typeof prefix !== "string" || !/^[A-Za-z0-9_]{1,40}$/.test(prefix)) {
    check.fail(
      `channelPrefix must be 1 to 40 characters from [A-Za-z0-9_], got ${
        show(prefix)
      }`,
    );
  }
  const ttlMs = check.positive(
    "largePayloadTtlMs",
    options.largePayloadTtlMs,
    600_000,
  );
  const maxBatch = check.count("maxBatch", options.maxBatch, 1000);
  const synchronousCommit = options.synchronousCommit ?? "off";
  if (!SYNCHRONOUS_COMMIT.includes(synchronousCommit)) {
    check.fail(
      `synchronousCommit must be one of ${
        SYNCHRONOUS_COMMIT.map((value) => `"${value}"`).join(", ")
      }, got ${show(synchronousCommit)}`,
    );
  }
  const { hostname, port, pathname } = parsed;
  const tls = postgresTls(url, parsed, options.tls, check);
  return {
    url: tls.url,
    ssl: tls.ssl,
    tlsRequired: tls.required,
    synchronousCommit,
    label: `postgres://${hostname}:${port || 5432}${pathname}`,
    prefix,
    ttlMs,
    maxBatch,
    probeMs: timing.commandTimeoutMs,
    leaseMs: PATTERN_LEASE_HEARTBEATS * timing.heartbeatMs,
    channel: (topic) => postgresChannel(topic, prefix),
    history: retention(options),
  };
}
