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

import postgres, { type ISql, type Sql } from "postgres";
import type { Interest, Sink, Transport } from "./_bus.ts";
import { BusBase } from "./_bus.ts";
import { type Deferred, deferred } from "./_deferred.ts";
import {
  lostConnection,
  OptionChecks,
  type Pending,
  reconnectDelay,
} from "./_remote.ts";
import {
  type Event,
  EventBusError,
  type EventBusOptions,
  EventFormatError,
  show,
} from "./types.ts";

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
export interface PostgresEventBusOptions extends EventBusOptions {
  /**
   * A `postgres://` URL. For TLS that checks the server's certificate use
   * `?sslmode=verify-full` (`sslmode=require` encrypts but verifies nothing).
   */
  readonly connectionString: string;
  /**
   * Channels are `<channelPrefix>_<topic made safe>`; 1 to 40 characters
   * from `[A-Za-z0-9_]`.
   * @default "events"
   */
  readonly channelPrefix?: string;
  /**
   * How often the LISTEN connection is sent `select 1`; one not answered
   * within this time counts as a dead (half-open) connection and is
   * replaced.
   * @default 5000
   */
  readonly heartbeatMs?: number;
  /**
   * The longest wait between attempts to re-LISTEN (they back off from
   * 50 ms, with jitter).
   * @default 2000
   */
  readonly maxReconnectDelayMs?: number;
  /**
   * How long the body of an event too large for NOTIFY stays in the
   * `<channelPrefix>_payloads` table for listeners to fetch.
   * @default 600000
   */
  readonly largePayloadTtlMs?: number;
  /**
   * The most events one batched statement carries.
   * @default 1000
   */
  readonly maxBatch?: number;
}

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

/** NOTIFY payloads must be shorter than this many bytes. */
const NOTIFY_LIMIT = 8000;
/** Postgres identifiers (so channel names) are at most this many bytes. */
const IDENTIFIER_LIMIT = 63;
const REF = '{"dataknobs_ref":';
/** Roughly how much notification text one batch carries. */
const BATCH_BYTES = 256 * 1024;

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

function fnv1a64(text: string): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(text)) {
    hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash.toString(16).padStart(16, "0");
}

/**
 * The PostgreSQL bus. `publish` resolves once the event's NOTIFY has been
 * committed; concurrent publishes share one statement and one commit. An
 * event whose JSON is 8000 bytes or more is stored in the
 * `<channelPrefix>_payloads` table and its notification carries a
 * reference. Pattern subscriptions listen on one more channel,
 * `<channelPrefix>:patterns`, which every publish also notifies.
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
export class PostgresEventBus extends BusBase {
  readonly #transport: PostgresTransport;

  /**
   * Makes a bus; call `connect()` before use.
   *
   * @param options The connection string, channel prefix and common options.
   * @throws {TypeError} For a bad connection string, prefix or option.
   */
  constructor(options: PostgresEventBusOptions) {
    const settings = resolve(options);
    let transport!: PostgresTransport;
    super(
      options,
      (sink) => (transport = new PostgresTransport(sink, settings)),
    );
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
   * @throws {EventBusError} `NOT_CONNECTED`, `CLOSED` or `PUBLISH_FAILED`.
   */
  override publish(
    topic: string,
    event: Event,
    options: PostgresPublishOptions = {},
  ): Promise<void> {
    if (options.sql === undefined) return super.publish(topic, event);
    try {
      this.checkPublish(topic, event);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#transport.notify(options.sql, [event]);
  }

  /**
   * How full the cluster-wide notification queue is, from 0 to 1. It fills
   * when a listening session sits in a long transaction; when full, every
   * NOTIFY fails at commit.
   *
   * @returns `pg_notification_queue_usage()`.
   * @throws {EventBusError} `NOT_CONNECTED` before `connect()`.
   */
  notificationQueueUsage(): Promise<number> {
    return this.#transport.queueUsage();
  }
}

interface Settings {
  readonly url: string;
  readonly label: string;
  readonly prefix: string;
  readonly heartbeatMs: number;
  readonly maxDelayMs: number;
  readonly ttlMs: number;
  readonly maxBatch: number;
}

function resolve(options: PostgresEventBusOptions): Settings {
  const check = new OptionChecks("PostgresEventBus");
  const url = options.connectionString;
  const parsed = check.url(
    url,
    "connectionString",
    /^postgres(ql)?:$/,
    "postgres://",
  );
  const prefix = options.channelPrefix ?? "events";
  if (typeof prefix !== "string" || !/^[A-Za-z0-9_]{1,40}$/.test(prefix)) {
    check.fail(
      `channelPrefix must be 1 to 40 characters from [A-Za-z0-9_], got ${
        show(prefix)
      }`,
    );
  }
  const numbers = {
    heartbeatMs: check.positive("heartbeatMs", options.heartbeatMs, 5000),
    maxReconnectDelayMs: check.positive(
      "maxReconnectDelayMs",
      options.maxReconnectDelayMs,
      2000,
    ),
    largePayloadTtlMs: check.positive(
      "largePayloadTtlMs",
      options.largePayloadTtlMs,
      600_000,
    ),
    maxBatch: check.positive("maxBatch", options.maxBatch, 1000),
  };
  const { hostname, port, pathname } = parsed;
  return {
    url,
    label: `postgres://${hostname}:${port || 5432}${pathname}`,
    prefix,
    heartbeatMs: numbers.heartbeatMs,
    maxDelayMs: numbers.maxReconnectDelayMs,
    ttlMs: numbers.largePayloadTtlMs,
    maxBatch: Math.floor(numbers.maxBatch),
  };
}

const quiet = (): void => {};

/** LISTEN/NOTIFY as a transport of the shared delivery core. */
class PostgresTransport implements Transport {
  readonly label: string;
  readonly #sink: Sink;
  readonly #settings: Settings;
  readonly #table: string;
  readonly #patternChannel: string;
  #pool: Sql | undefined;
  /** The LISTEN connection; undefined while it is being replaced. */
  #listener: Sql | undefined;
  #listening: Deferred<void> = deferred();
  /** Channel → how many interests need it. */
  readonly #channels = new Map<string, number>();
  readonly #topics = new Set<string>();
  readonly #patterns = new Set<string>();
  readonly #names = new Map<string, string>();
  #queue: Pending[] = [];
  #flushing = false;
  /** Notifications waiting behind a large payload being fetched. */
  #inbound: { channel: string; text: string }[] = [];
  #fetching: Promise<void> | undefined;
  #probe: { channel: string; arrived: () => void } | undefined;
  #gapSince: Date | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #backoff:
    | { timer: ReturnType<typeof setTimeout>; wake: () => void }
    | undefined;
  #spilled = false;
  #lastCleanup = 0;
  #stopped = false;

  constructor(sink: Sink, settings: Settings) {
    this.#sink = sink;
    this.#settings = settings;
    this.label = settings.label;
    this.#table = `${settings.prefix}_payloads`;
    this.#patternChannel = `${settings.prefix}:patterns`;
    this.#listening.promise.catch(quiet);
  }

  async open(): Promise<void> {
    this.#stopped = false; // a failed attempt stopped the one before
    const pool = postgres(this.#settings.url, {
      max: 2,
      onnotice: quiet,
      connection: { application_name: "dataknobs-events" },
    });
    this.#pool = pool;
    try {
      await pool`create table if not exists ${pool(this.#table)} (
        id uuid primary key,
        body text not null,
        created_at timestamptz not null default now()
      )`.catch((error) => {
        // Two processes creating the table at once: the loser sees it exist.
        if (!["42P07", "23505"].includes(error.code)) throw error;
      });
      this.#listener = await this.#connectListener();
      this.#listening.resolve();
    } catch (error) {
      this.#stopped = true;
      await pool.end({ timeout: 0 });
      throw this.#connectError(error);
    }
    this.#heartbeat = setInterval(this.#beat, this.#settings.heartbeatMs);
  }

  #connectError(error: unknown): EventBusError {
    if (error instanceof EventBusError) return error;
    const { code, message } = error as { code?: string; message: string };
    if (code === "25006") {
      return new EventBusError(
        "UNSUPPORTED_SERVER",
        `Cannot LISTEN at ${this.label}: the server is a read-only hot standby (${message}); connect to the primary`,
        { cause: error },
      );
    }
    return new EventBusError(
      "CONNECTION_FAILED",
      `Cannot connect to PostgreSQL at ${this.label}: ${message}`,
      { cause: error },
    );
  }

  // Opens a LISTEN connection, listens on every channel in use, and checks
  // that a notification really arrives (behind PgBouncer in transaction
  // pooling mode LISTEN succeeds but nothing is ever delivered).
  async #connectListener(): Promise<Sql> {
    const options: postgres.Options<Record<string, never>> = {
      max: 1,
      max_lifetime: null,
      fetch_types: false,
      onnotice: quiet,
      connection: { application_name: "dataknobs-events-listener" },
      onclose: () => this.#lost(sql),
    };
    // postgres.js hands every NotificationResponse to `onnotify` (what its
    // own sql.listen() is built on); its types do not list it.
    const sql: Sql = postgres(
      this.#settings.url,
      Object.assign(options, {
        onnotify: (channel: string, payload: string) =>
          this.#onNotify(sql, channel, payload),
      }),
    );
    // At most 40 + 19 bytes: within the 63-byte limit for any prefix.
    const probe = `${this.#settings.prefix}:probe:${
      crypto.randomUUID().slice(-12)
    }`;
    try {
      await Promise.all(
        [...this.#channels.keys(), probe].map((c) => sql`listen ${sql(c)}`),
      );
      const arrived = new Promise<void>((resolve) => {
        this.#probe = { channel: probe, arrived: resolve };
      });
      await this.#pool!`select pg_notify(${probe}, 'probe')`;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<"late">((resolve) => {
        timer = setTimeout(() => resolve("late"), this.#settings.heartbeatMs);
      });
      const outcome = await Promise.race([arrived, late]);
      clearTimeout(timer);
      if (outcome === "late") {
        throw new EventBusError(
          "UNSUPPORTED_SERVER",
          `LISTEN at ${this.label} received no notification within ${this.#settings.heartbeatMs} ms: connections through PgBouncer in transaction pooling mode cannot LISTEN; connect to PostgreSQL directly or use session pooling`,
        );
      }
      await sql`unlisten ${sql(probe)}`;
      return sql;
    } catch (error) {
      this.#probe = undefined;
      await sql.end({ timeout: 0 });
      throw error;
    }
  }

  #lost(sql: Sql): void {
    if (sql !== this.#listener || this.#stopped) return;
    this.#listener = undefined;
    this.#listening = deferred();
    this.#listening.promise.catch(quiet);
    this.#gapSince ??= new Date();
    this.#sink.report(lostConnection("LISTEN", this.label));
    this.#sink.setState("reconnecting");
    void sql.end({ timeout: 0 });
    void this.#reconnect();
  }

  async #reconnect(): Promise<void> {
    for (let attempt = 1; !this.#stopped; attempt++) {
      const delay = reconnectDelay(attempt, this.#settings.maxDelayMs);
      await new Promise<void>((wake) => {
        const timer = setTimeout(wake, delay);
        this.#backoff = { timer, wake };
      });
      this.#backoff = undefined;
      if (this.#stopped) return;
      try {
        const sql = await this.#connectListener();
        if (this.#stopped) {
          await sql.end({ timeout: 0 });
          return;
        }
        this.#listener = sql;
        break;
      } catch {
        // Try again after the next backoff.
      }
    }
    if (this.#stopped) return;
    this.#listening.resolve();
    this.#sink.setState("ready");
    const since = this.#gapSince!;
    this.#gapSince = undefined;
    this.#sink.reportGap(since);
  }

  #beat = (): void => {
    const sql = this.#listener;
    if (sql === undefined) return;
    const timer = setTimeout(() => this.#lost(sql), this.#settings.heartbeatMs);
    sql`select 1`.catch(quiet).finally(() => clearTimeout(timer));
  };

  #channelOf(topic: string): string {
    let name = this.#names.get(topic);
    if (name === undefined) {
      if (this.#names.size >= 10_000) this.#names.clear();
      name = postgresChannel(topic, this.#settings.prefix);
      this.#names.set(topic, name);
    }
    return name;
  }

  #onNotify(sql: Sql, channel: string, text: string): void {
    if (sql !== this.#listener && this.#probe?.channel !== channel) return;
    if (this.#probe?.channel === channel) {
      this.#probe.arrived();
      this.#probe = undefined;
      return;
    }
    if (this.#fetching === undefined && !text.startsWith(REF)) {
      this.#dispatch(channel, text);
      return;
    }
    // A large payload is fetched first; what arrives meanwhile waits, so
    // that order is kept.
    this.#inbound.push({ channel, text });
    this.#fetching ??= this.#drainInbound();
  }

  // Fetches the bodies of every waiting reference in one query, then
  // dispatches the waiting notifications in order; again until none wait.
  async #drainInbound(): Promise<void> {
    while (this.#inbound.length > 0) {
      const batch = this.#inbound;
      this.#inbound = [];
      const ids = new Map<string, string | undefined>();
      for (const { text } of batch) {
        if (text.startsWith(REF)) ids.set(refId(text), undefined);
      }
      ids.delete("");
      try {
        const pool = this.#pool!;
        const rows = await pool`select id::text, body from ${
          pool(this.#table)
        } where id = any(${[...ids.keys()]}::uuid[])`;
        for (const row of rows) ids.set(row.id as string, row.body as string);
      } catch (error) {
        this.#sink.report(error);
      }
      for (const { channel, text } of batch) {
        if (!text.startsWith(REF)) {
          this.#dispatch(channel, text);
          continue;
        }
        const id = refId(text);
        const body = ids.get(id);
        if (body !== undefined) this.#dispatch(channel, body);
        else {
          this.#sink.report(
            id === ""
              ? new EventFormatError("dataknobs_ref", "must be a payload id")
              : new EventBusError(
                "PAYLOAD_MISSING",
                `Cannot read large payload ${id} from ${this.#table}: it is gone (expired after largePayloadTtlMs, or deleted)`,
              ),
          );
        }
      }
    }
    this.#fetching = undefined;
  }

  #dispatch(channel: string, text: string): void {
    const event = this.#sink.decode(text);
    if (event === undefined) return;
    if (channel === this.#patternChannel) {
      for (const name of this.#patterns) {
        this.#sink.receive(event, { kind: "pattern", name });
      }
    } else if (
      this.#topics.has(event.topic) && this.#channelOf(event.topic) === channel
    ) {
      this.#sink.receive(event, { kind: "topic", name: event.topic });
    }
  }

  send(event: Event): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ event, resolve, reject });
      if (!this.#flushing) {
        this.#flushing = true;
        queueMicrotask(() => void this.#flush());
      }
    });
  }

  // Sends what is queued, in order, one batched statement at a time.
  async #flush(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#take();
      try {
        await this.notify(this.#pool!, batch.map((p) => p.event));
        for (const pending of batch) pending.resolve();
      } catch (error) {
        for (const pending of batch) pending.reject(error);
      }
    }
    this.#flushing = false;
    this.#cleanup();
  }

  // The next batch: at most maxBatch events, and never one event twice
  // (Postgres folds identical notifications in one transaction into one).
  // Also at most about 256 KiB of JSON: one transaction's notifications
  // pass through the server's small notification buffer (a few pages), and
  // bigger ones spill to disk.
  #take(): Pending[] {
    const ids = new Set<string>();
    let end = 0, bytes = 0;
    while (
      end < this.#queue.length && end < this.#settings.maxBatch &&
      bytes < BATCH_BYTES && !ids.has(this.#queue[end]!.event.eventId)
    ) {
      const event = this.#queue[end]!.event;
      ids.add(event.eventId);
      const length = event.toJSONString().length;
      bytes += length < NOTIFY_LIMIT ? length : 1000; // a reference, a row
      end++;
    }
    return this.#queue.splice(0, end);
  }

  /** Notifies every event in one statement on `sql`. */
  async notify(sql: ISql, events: readonly Event[]): Promise<void> {
    const channels: string[] = [], payloads: string[] = [];
    const spilled: { id: string; body: string }[] = [];
    for (const event of events) {
      let text = event.toJSONString();
      if (byteLength(text) >= NOTIFY_LIMIT) {
        const id = crypto.randomUUID();
        spilled.push({ id, body: text });
        text = `${REF}${JSON.stringify(id)},"event_id":${
          JSON.stringify(event.eventId)
        }}`;
      }
      channels.push(this.#channelOf(event.topic), this.#patternChannel);
      payloads.push(text, text);
    }
    try {
      if (spilled.length === 0) {
        await sql`select count(pg_notify(c, p)) from unnest(${channels}::text[], ${payloads}::text[]) as t(c, p)`;
      } else {
        // Bodies as one parameter each: array literals of large text are
        // slow to escape and to parse.
        this.#spilled = true;
        await sql`with spilled as (
          insert into ${sql(this.#table)} ${sql(spilled, "id", "body")}
        )
        select count(pg_notify(c, p)) from unnest(${channels}::text[], ${payloads}::text[]) as t(c, p)`;
      }
    } catch (error) {
      const topics = [...new Set(events.map((e) => `"${e.topic}"`))];
      throw new EventBusError(
        "PUBLISH_FAILED",
        `Cannot publish to ${topics.slice(0, 3).join(", ")}${
          topics.length > 3 ? ", …" : ""
        }: PostgreSQL at ${this.label} did not commit the notification (${
          (error as Error).message
        }); it was not delivered`,
        { cause: error },
      );
    }
  }

  // Deletes large payloads past their time to live, at most once a minute.
  #cleanup(): void {
    const now = Date.now();
    if (!this.#spilled || now - this.#lastCleanup < 60_000) return;
    this.#lastCleanup = now;
    const pool = this.#pool!;
    pool`delete from ${
      pool(this.#table)
    } where created_at < now() - ${this.#settings.ttlMs} * interval '1 millisecond'`
      .catch((error) => this.#sink.report(error));
  }

  async queueUsage(): Promise<number> {
    const pool = this.#pool;
    if (pool === undefined) {
      throw new EventBusError(
        "NOT_CONNECTED",
        "Cannot read the notification queue usage: the bus is not connected; await bus.connect() first",
      );
    }
    const [row] = await pool`select pg_notification_queue_usage() as usage`;
    return Number(row!.usage);
  }

  async watch(interest: Interest): Promise<void> {
    let channel: string;
    if (interest.kind === "topic") {
      this.#topics.add(interest.name);
      channel = this.#channelOf(interest.name);
    } else {
      this.#patterns.add(interest.name);
      channel = this.#patternChannel;
    }
    const count = this.#channels.get(channel) ?? 0;
    this.#channels.set(channel, count + 1);
    if (count > 0) return;
    await this.#listening.promise;
    const sql = this.#listener!;
    await sql`listen ${sql(channel)}`;
  }

  async unwatch(interest: Interest): Promise<void> {
    let channel: string;
    if (interest.kind === "topic") {
      this.#topics.delete(interest.name);
      channel = this.#channelOf(interest.name);
    } else {
      this.#patterns.delete(interest.name);
      channel = this.#patternChannel;
    }
    const count = (this.#channels.get(channel) ?? 1) - 1;
    if (count > 0) {
      this.#channels.set(channel, count);
      return;
    }
    this.#channels.delete(channel);
    const sql = this.#listener;
    if (sql !== undefined) await sql`unlisten ${sql(channel)}`;
  }

  async shutdown(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#heartbeat);
    if (this.#backoff !== undefined) {
      clearTimeout(this.#backoff.timer);
      this.#backoff.wake();
    }
    this.#listening.reject(new Error("closed"));
    const listener = this.#listener;
    this.#listener = undefined;
    if (listener !== undefined) {
      await listener`unlisten *`.catch(quiet);
      await listener.end({ timeout: 0 });
    }
    await this.#fetching;
    await this.#pool?.end({ timeout: 5 });
  }
}

/** The payload id of a reference notification, or "" when it has none. */
function refId(text: string): string {
  try {
    const id = JSON.parse(text).dataknobs_ref;
    return typeof id === "string" && /^[0-9a-f-]{36}$/.test(id) ? id : "";
  } catch {
    return "";
  }
}

function byteLength(text: string): number {
  // Each UTF-16 unit is at most 3 UTF-8 bytes: short text needs no count.
  return text.length * 3 < NOTIFY_LIMIT
    ? text.length
    : new TextEncoder().encode(text).length;
}
