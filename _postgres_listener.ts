// The LISTEN connection of the PostgreSQL bus: receives notifications,
// fetches the bodies of large ones (in order), and proves at open that
// notifications really arrive (behind PgBouncer in transaction pooling
// mode LISTEN succeeds but nothing is ever delivered).

import { bounded } from "./_deadline.ts";
import type { PayloadStore } from "./_postgres_payloads.ts";
import type { PatternRoute, PatternTable } from "./_postgres_patterns.ts";
import {
  againIfGone,
  type Connection,
  quiet,
  refusal,
} from "./_postgres_sql.ts";
import type { Arrivals, ReceiveLink, Route } from "./_transport.ts";
import { withPositionOf } from "./_history.ts";
import { scrub } from "./_scrub.ts";
import { EventBusError } from "./types.ts";

interface Notification {
  readonly channel: string;
  readonly text: string;
}

/** The LISTEN connection; see the comment at the top of this file. */
export class PostgresListener implements ReceiveLink {
  readonly #connection: Connection;
  readonly #arrivals: Arrivals;
  readonly #store: PayloadStore;
  readonly #patterns: PatternTable;
  /** Pattern channel → its route, for the patterns this connection keeps live. */
  readonly #live = new Map<string, Route>();
  /** When the last renewal of their lease that succeeded was sent. */
  #renewedAt = 0;
  /** Whether this connection has written pattern rows (or tried to). */
  #added = false;
  /** The pattern subscribes under way (end() waits for their rows). */
  readonly #adding = new Set<Promise<unknown>>();
  /** Notifications waiting behind a large payload being fetched. */
  #inbound: Notification[] = [];
  #fetching: Promise<void> | undefined;
  #probe:
    | { readonly channel: string; readonly arrived: () => void }
    | undefined;

  constructor(
    connection: Connection,
    arrivals: Arrivals,
    store: PayloadStore,
    patterns: PatternTable,
  ) {
    this.#connection = connection;
    this.#arrivals = arrivals;
    this.#store = store;
    this.#patterns = patterns;
  }

  /**
   * Checks that a notification sent on this connection comes back within
   * `ms`; rejects with `UNSUPPORTED_SERVER` when it does not, or with the
   * server's error (a hot standby cannot LISTEN).
   */
  async probe(channel: string, ms: number, label: string): Promise<void> {
    const arrived = new Promise<void>((resolve) => {
      this.#probe = { channel, arrived: resolve };
    });
    const sql = this.#connection.sql;
    try {
      await sql.unsafe(`listen ${quote(channel)}`);
      await sql`select pg_notify(${channel}, 'probe')`;
      await bounded(arrived, ms, "probe").catch(() => {
        throw new EventBusError(
          "UNSUPPORTED_SERVER",
          `LISTEN at ${label} received no notification within ${ms} ms: connections through PgBouncer in transaction pooling mode cannot LISTEN; connect to PostgreSQL directly or use session pooling`,
        );
      });
      await sql.unsafe(`unlisten ${quote(channel)}`);
    } catch (error) {
      if ((error as { code?: string }).code !== "25006") throw error;
      throw new EventBusError(
        "UNSUPPORTED_SERVER",
        `Cannot LISTEN at ${label}: the server is a read-only hot standby (${
          (error as Error).message
        }); connect to the primary`,
      );
    } finally {
      this.#probe = undefined;
    }
  }

  /** Takes a notification from postgres.js. */
  notified(channel: string, text: string): void {
    if (this.#probe?.channel === channel) {
      this.#probe.arrived();
      return;
    }
    if (this.#fetching === undefined && !this.#store.isReference(text)) {
      this.#arrive(channel, text);
      return;
    }
    // A large payload is fetched first; what arrives meanwhile waits, so
    // that order is kept.
    this.#inbound.push({ channel, text });
    this.#fetching ??= this.#drainInbound().finally(() => {
      this.#fetching = undefined;
    });
  }

  /**
   * One round trip; renews this bus's pattern rows when it has any. Rejects
   * when their lease may have lapsed (the process was paused, or another
   * bus deleted them as expired): publishers may have skipped them, so the
   * connection is replaced (its restore makes them live again) and the
   * span is reported as a gap.
   */
  async ping(): Promise<void> {
    const sql = this.#connection.sql;
    if (this.#live.size === 0) await sql`select 1`;
    else {
      const sent = Date.now();
      if (sent - this.#renewedAt >= this.#patterns.leaseMs) {
        throw new Error("the lease of its pattern subscriptions lapsed");
      }
      const renewed = await this.#remade(() =>
        this.#patterns.renew(sql, [...this.#live.keys()])
      );
      if (renewed < this.#live.size) {
        throw new Error("its pattern subscriptions expired meanwhile");
      }
      this.#renewedAt = sent;
    }
    await this.#fetching;
  }

  destroy(): void {
    this.#connection.destroy();
  }

  /** Ends this bus's pattern rows, then the connection. */
  async end(): Promise<void> {
    const sql = this.#connection.sql;
    await Promise.all(this.#adding);
    if (this.#added) await this.#patterns.clear(sql);
    await sql.end();
  }

  /**
   * LISTENs, then makes the patterns among the routes live: once it
   * resolves, every publish statement that starts sees them.
   */
  async listen(routes: readonly Route[]): Promise<void> {
    const patterns = routes.flatMap((r) => this.#patterns.parse(r) ?? []);
    if (patterns.length === 0) return await this.#listen(routes, patterns);
    const adding = this.#listen(routes, patterns);
    const settled = adding.catch(quiet);
    this.#adding.add(settled);
    try {
      await adding;
    } finally {
      this.#adding.delete(settled);
    }
  }

  async #listen(
    routes: readonly Route[],
    patterns: readonly PatternRoute[],
  ): Promise<void> {
    const sql = this.#connection.sql;
    const channels = routes.map((r) => this.#patterns.parse(r)?.channel ?? r);
    await refused(
      sql.unsafe(channels.map((c) => `listen ${quote(c)}`).join("; ")),
    );
    if (patterns.length === 0) return;
    const sent = Date.now();
    const first = !this.#added;
    this.#added = true;
    try {
      // The first patterns of a connection (a restore makes every live one
      // live again): rows of this bus left from before are not live.
      if (first) {
        await this.#remade(() =>
          this.#patterns.keepOnly(sql, patterns.map((p) => p.channel))
        );
      }
      await this.#remade(() => this.#patterns.add(sql, patterns));
    } catch (error) {
      // Not live: not listened to either.
      await sql.unsafe(
        patterns.map((p) => `unlisten ${quote(p.channel)}`).join("; "),
      ).catch(quiet);
      throw refusal(error);
    }
    if (this.#live.size === 0) this.#renewedAt = sent;
    for (const route of routes) {
      const pattern = this.#patterns.parse(route);
      if (pattern !== undefined) this.#live.set(pattern.channel, route);
    }
  }

  /** Ends the patterns among the routes, then UNLISTENs. */
  async unlisten(routes: readonly Route[]): Promise<void> {
    const sql = this.#connection.sql;
    const channels = routes.map((r) => this.#patterns.parse(r)?.channel ?? r);
    const ended = channels.filter((c) => this.#live.delete(c));
    if (ended.length > 0) await refused(this.#patterns.remove(sql, ended));
    await refused(
      sql.unsafe(channels.map((c) => `unlisten ${quote(c)}`).join("; ")),
    );
  }

  // Runs a statement on the pattern table, made again if it was dropped.
  #remade<T>(run: () => Promise<T>): Promise<T> {
    return againIfGone(run, () => this.#patterns.create(this.#connection.sql));
  }

  // A topic channel must be the channel of the event's topic; a pattern
  // channel carries any topic.
  #arrive(channel: string, text: string): void {
    const route = this.#live.get(channel);
    if (route !== undefined) this.#arrivals.arrived(route, text);
    else this.#arrivals.arrived(channel, text, channel);
  }

  // Fetches the bodies of every waiting reference in one query, then
  // hands on the waiting notifications in order; again until none wait. A
  // reference that cannot be resolved costs only its own event.
  async #drainInbound(): Promise<void> {
    while (this.#inbound.length > 0) {
      const batch = this.#inbound;
      this.#inbound = [];
      const refs = batch.filter(({ text }) => this.#store.isReference(text));
      let bodies: (string | Error | undefined)[];
      try {
        bodies = await this.#store.resolve(
          this.#connection.sql,
          refs.map(({ text }) => text),
        );
      } catch (error) {
        this.#arrivals.report(
          new EventBusError(
            "PAYLOAD_MISSING",
            `Cannot read ${refs.length} large payload(s) from ${this.#store.table} (${
              (error as Error).message
            }): those events are not delivered; when the connection was lost, they fall inside the gap reported once it is restored`,
            { cause: scrub(error) },
          ),
        );
        bodies = refs.map(() => undefined);
      }
      let next = 0;
      for (const { channel, text } of batch) {
        const body = this.#store.isReference(text) ? bodies[next++] : text;
        if (typeof body === "string") {
          this.#arrive(channel, withPositionOf(text, body));
        } else if (body !== undefined) this.#arrivals.report(body);
      }
    }
  }
}

/**
 * Settles like `statement`; a server's error (the connection is fine)
 * becomes a Refusal. LISTEN and UNLISTEN go as simple-protocol statements:
 * nothing is prepared (a statement per topic would otherwise stay on the
 * server for the connection's life).
 */
async function refused(statement: Promise<unknown>): Promise<void> {
  try {
    await statement;
  } catch (error) {
    throw refusal(error);
  }
}

/** A channel name as a quoted identifier. */
function quote(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
