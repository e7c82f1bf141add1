// LISTEN/NOTIFY as a transport of the remote core: a LISTEN connection
// (_postgres_listener.ts), a publishing connection (_postgres_publisher.ts),
// the large-payload table (_postgres_payloads.ts) and the table of live
// patterns (_postgres_patterns.ts).

import type { Positions } from "./_history.ts";
import type { Retention } from "./_options.ts";
import { POSTGRES_POSITIONS, PostgresLog } from "./_postgres_log.ts";
import { NOTIFY_LIMIT, PayloadStore } from "./_postgres_payloads.ts";
import { PatternTable } from "./_postgres_patterns.ts";
import {
  type Backend,
  backendOf,
  type Channels,
  createTables,
  PostgresPublisher,
} from "./_postgres_publisher.ts";
import { PostgresListener } from "./_postgres_listener.ts";
import { Schema } from "./_postgres_schema.ts";
import {
  type Connection,
  connection,
  type SynchronousCommit,
} from "./_postgres_sql.ts";
import type { PostgresTls } from "./_postgres_tls.ts";
import { plainHint, tlsHint } from "./_tls.ts";
import type {
  Arrivals,
  Interest,
  ReceiveLink,
  Route,
  Transport,
} from "./_transport.ts";

/** What PostgresEventBus resolved from its options. */
export interface Settings {
  /** The connection string, without its TLS parameters. */
  readonly url: string;
  /** postgres.js's `ssl` option (see _postgres_tls.ts). */
  readonly ssl: PostgresTls["ssl"];
  /** Whether every connection must be TLS. */
  readonly tlsRequired: boolean;
  /** The `synchronous_commit` of the bus's own sessions. */
  readonly synchronousCommit: SynchronousCommit;
  readonly label: string;
  readonly prefix: string;
  readonly ttlMs: number;
  readonly maxBatch: number;
  /** How long the LISTEN probe may take (the bus's commandTimeoutMs). */
  readonly probeMs: number;
  /** How long a pattern row lives unless renewed (by each heartbeat). */
  readonly leaseMs: number;
  /** The channel of a topic (postgresChannel with this prefix). */
  readonly channel: (topic: string) => string;
  /** The retention of the log, when the bus keeps history. */
  readonly history: Retention | undefined;
}

/** Roughly how much notification text one batch carries: one transaction's
 * notifications pass through the server's small notification buffer (a few
 * pages), and bigger ones spill to disk. Measured with 4 KiB events, 128 KiB
 * sent 15% more than 256 KiB (and as much as 64 KiB); small events are
 * bounded by `maxBatch` first. An event too large to notify counts as
 * NOTIFY_LIMIT: it is stored, and notified by a short reference. */
const BATCH_CHARS = 128 * 1024;

/** Batches in flight at once on the publishing connection (pipelined): the
 * server runs the next statement while the bus builds the one after. */
const IN_FLIGHT = 2;

/** PostgreSQL LISTEN/NOTIFY; see the comment at the top of this file. */
export class PostgresTransport implements Transport<PostgresPublisher> {
  readonly server = "PostgreSQL";
  readonly label: string;
  readonly batch: Transport["batch"];
  readonly channels: Channels;
  readonly store: PayloadStore;
  readonly positions: Positions | undefined;
  readonly #settings: Settings;
  readonly #names = new Map<string, string>();

  constructor(settings: Settings) {
    this.#settings = settings;
    this.label = settings.label;
    this.batch = {
      events: settings.maxBatch,
      chars: BATCH_CHARS,
      charsPerEvent: NOTIFY_LIMIT,
      inFlight: IN_FLIGHT,
    };
    const schema = new Schema();
    this.store = new PayloadStore(settings.prefix, settings.ttlMs, schema);
    const { history, prefix } = settings;
    this.channels = {
      channel: (topic) => this.channel(topic),
      patterns: new PatternTable(prefix, settings.leaseMs, schema),
      log: history && new PostgresLog(prefix, history, schema),
    };
    this.positions = history && POSTGRES_POSITIONS;
  }

  async openPublisher(
    signal: AbortSignal,
    lost: (cause?: Error) => void,
  ): Promise<PostgresPublisher> {
    const opened = await connection(
      this.#settings,
      "dataknobs-events-publisher",
      { lost },
    );
    let backend: Backend | undefined;
    await this.#opening(opened, signal, async () => {
      await this.#findSchema(opened);
      await createTables(opened.sql, this.channels, this.store);
      backend = await backendOf(opened.sql);
    });
    return new PostgresPublisher(opened, this.channels, this.store, backend);
  }

  async openReceiver(
    signal: AbortSignal,
    arrivals: Arrivals,
    lost: (cause?: Error) => void,
  ): Promise<ReceiveLink> {
    const opened = await connection(
      this.#settings,
      "dataknobs-events-listener",
      {
        lost,
        notified: (channel, text) => listener.notified(channel, text),
      },
    );
    const listener = new PostgresListener(
      opened,
      arrivals,
      this.store,
      this.channels.patterns,
    );
    // At most 40 + 19 bytes: within the 63-byte limit for any prefix.
    const probe = `${this.#settings.prefix}:probe:${
      crypto.randomUUID().slice(-12)
    }`;
    await this.#opening(opened, signal, async () => {
      await this.#findSchema(opened);
      await listener.probe(probe, this.#settings.probeMs, this.label);
    });
    return listener;
  }

  route(interest: Interest): Route {
    return interest.kind === "topic"
      ? this.channel(interest.name)
      : this.channels.patterns.route(interest.name);
  }

  hint(error: unknown, timedOut: boolean): string | undefined {
    if (this.#settings.tlsRequired) {
      return tlsHint(error, timedOut, "PostgreSQL");
    }
    if (/no encryption/.test((error as Error | undefined)?.message ?? "")) {
      return "the server accepts only TLS connections here: add sslmode=verify-full to the connection string (or set tls)";
    }
    return plainHint(error);
  }

  channel(topic: string): string {
    let name = this.#names.get(topic);
    if (name === undefined) {
      if (this.#names.size >= 10_000) this.#names.clear();
      name = this.#settings.channel(topic);
      this.#names.set(topic, name);
    }
    return name;
  }

  // Finds the schema of the bus's tables (see _postgres_schema.ts).
  #findSchema(opened: Connection): Promise<void> {
    const { patterns } = this.channels;
    return patterns.schema.find(opened.sql, patterns.table);
  }

  // Runs the first statements of a new connection; destroys it when they
  // fail or the attempt is given up.
  async #opening(
    opened: Connection,
    signal: AbortSignal,
    first: () => Promise<void>,
  ): Promise<void> {
    const abort = () => opened.destroy();
    signal.addEventListener("abort", abort, { once: true });
    try {
      await first();
    } catch (error) {
      opened.destroy();
      if (!opened.refusedTls) throw error;
      throw new Error(
        'the server does not accept TLS (it answered the SSL request with "N"): turn ssl on in its configuration, or connect without TLS',
        { cause: error },
      );
    } finally {
      signal.removeEventListener("abort", abort);
    }
  }
}
