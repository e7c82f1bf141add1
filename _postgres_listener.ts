// The LISTEN connection of the PostgreSQL bus: receives notifications,
// fetches the bodies of large ones (in order), and proves at open that
// notifications really arrive (behind PgBouncer in transaction pooling
// mode LISTEN succeeds but nothing is ever delivered).

import { bounded } from "./_deadline.ts";
import type { PayloadStore } from "./_postgres_payloads.ts";
import type { Connection } from "./_postgres_sql.ts";
import {
  type Arrivals,
  type ReceiveLink,
  Refusal,
  type Route,
} from "./_transport.ts";
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
  readonly #patterns: string;
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
    patterns: string,
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

  async ping(): Promise<void> {
    await this.#connection.sql`select 1`;
    await this.#fetching;
  }

  destroy(): void {
    this.#connection.destroy();
  }

  async end(): Promise<void> {
    await this.#connection.sql.end();
  }

  async listen(routes: readonly Route[]): Promise<void> {
    await this.#run(routes.map((route) => `listen ${quote(route)}`));
  }

  async unlisten(routes: readonly Route[]): Promise<void> {
    await this.#run(routes.map((route) => `unlisten ${quote(route)}`));
  }

  // Simple-protocol statements: nothing is prepared (a LISTEN per topic
  // would otherwise leave a prepared statement per topic on the server).
  async #run(statements: string[]): Promise<void> {
    try {
      await this.#connection.sql.unsafe(statements.join("; "));
    } catch (error) {
      if ((error as Error).name !== "PostgresError") throw error;
      throw new Refusal((error as Error).message);
    }
  }

  #arrive(channel: string, text: string): void {
    this.#arrivals.arrived(
      channel,
      text,
      channel === this.#patterns ? undefined : channel,
    );
  }

  // Fetches the bodies of every waiting reference in one query, then
  // hands on the waiting notifications in order; again until none wait. A
  // reference that cannot be resolved costs only its own event.
  async #drainInbound(): Promise<void> {
    while (this.#inbound.length > 0) {
      const batch = this.#inbound;
      this.#inbound = [];
      const refs = batch.filter(({ text }) => this.#store.isReference(text));
      let bodies: (string | Error)[];
      try {
        bodies = await this.#store.resolve(
          this.#connection.sql,
          refs.map(({ text }) => text),
        );
      } catch (error) {
        bodies = refs.map(() => error as Error);
      }
      let next = 0;
      for (const { channel, text } of batch) {
        const body = this.#store.isReference(text) ? bodies[next++]! : text;
        if (typeof body === "string") this.#arrive(channel, body);
        else this.#arrivals.report(body);
      }
    }
  }
}

/** A channel name as a quoted identifier. */
function quote(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
