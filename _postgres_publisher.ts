// The publishing connection of the PostgreSQL bus: a batch of events is one
// statement, so one commit, that notifies each event on its topic's
// channel and on the channel of each live pattern that matches it (see
// _postgres_patterns.ts), and stores large bodies.

import type { ISql, Sql } from "postgres";
import {
  byteLength,
  NOTIFY_LIMIT,
  type PayloadStore,
} from "./_postgres_payloads.ts";
import type { PostgresLog } from "./_postgres_log.ts";
import { comparable, type PatternTable } from "./_postgres_patterns.ts";
import {
  againIfGone,
  type Connection,
  objectGone,
  refusal,
} from "./_postgres_sql.ts";
import { type LogPage, type PublishLink, Refusal } from "./_transport.ts";
import type { Head } from "./_history.ts";
import type { Event } from "./types.ts";

/** Where a batch's notifications go. */
export interface Channels {
  /** The channel of a topic. */
  channel(topic: string): string;
  /** The live patterns, whose channels matching events also go to. */
  readonly patterns: PatternTable;
  /** The event log, when the bus keeps history. */
  readonly log?: PostgresLog | undefined;
}

/** Bytes a notification leaves free for its position. */
const POSITION_BYTES = 100;

/**
 * Notifies every event in one statement on `sql` (a connection or a
 * transaction): delivered if and only if that statement commits.
 */
export async function notify(
  sql: ISql,
  events: readonly Event[],
  channels: Channels,
  store: PayloadStore,
): Promise<void> {
  const log = channels.log;
  const { texts, rows } = store.encode(events, log ? POSITION_BYTES : 0);
  const names = events.map((event) => channels.channel(event.topic));
  const topics = events.map((event) => comparable(event.topic));
  if (rows.length === 0 && events.length === 1) {
    // One event (what a lone publish sends): the same, in a simpler
    // statement that plans and runs faster.
    const [name, text, topic] = [names[0]!, texts[0]!, topics[0]!];
    await sql.unsafe(
      channels.patterns.notifyOne(log?.loggedOne),
      [name, text, topic],
      { prepare: true },
    );
    return;
  }
  // Each event on its topic's channel, then on each matching pattern's
  // channel, in publish order: the rows of the batch are scanned once, in
  // order, each followed by its pattern channels (a lateral join), with no
  // copy or sort of their text (a union sorted by position cost 4 KiB events
  // half again the server's time). Patterns are matched once per distinct
  // topic (materialized: inlined, the planner matched every event with
  // every pattern, a thousand times the work). With history, each event is
  // logged (its whole body: b) and its notification (q, in the log's order)
  // carries its position.
  // The batch as one jsonb parameter of [channel, topic, text(, body)]
  // rows: postgres.js escapes text[] literals character by character in
  // JavaScript (a third of a batch's client time); JSON.stringify is native.
  const batch = texts.map((text, k) => [names[k]!, topics[k]!, text]);
  const unnested = log === undefined
    ? sql`e as (
      select x->>0 as c, x->>1 as topic, x->>2 as p
      from jsonb_array_elements(${sql.json(batch)}) as x
    )`
    : sql`t as (
      select x->>0 as c, x->>1 as topic, x->>2 as p,
        coalesce(x->>3, x->>2) as b, i
      from jsonb_array_elements(${
      sql.json(bodies(events, rows.length).map((b, k) => [...batch[k]!, b]))
    }) with ordinality as t(x, i)
    ), ${log.logged(sql)}, e as (select c, topic, p from q)`;
  const notified = sql`
    ${unnested},
    m as materialized (
      select d.topic, l.channel
      from jsonb_array_elements_text(${
    sql.json([...new Set(topics)])
  }) as d(topic)
      join (
        select distinct channel, pattern_like from ${channels.patterns.in(sql)}
        where expires_at > now()
      ) l on d.topic like l.pattern_like
    )
    select count(pg_notify(n.c, e.p)) from e cross join lateral (
      select e.c union all select m.channel from m where m.topic = e.topic
    ) n`;
  if (rows.length === 0) {
    await sql`with ${notified}`;
    return;
  }
  // Bodies as one parameter each: array literals of large text are slow to
  // escape and to parse.
  await sql`with spilled as (
    insert into ${store.in(sql)} ${sql(rows, "id", "body")}
  ), ${notified}`;
}

/**
 * With history, the whole body of each event the batch stores as a large
 * payload (null for the others, whose notification is their body).
 */
function bodies(events: readonly Event[], spilled: number): (string | null)[] {
  return events.map((event) => {
    if (spilled === 0) return null;
    const text = event.toJSONString();
    return byteLength(text) + POSITION_BYTES < NOTIFY_LIMIT ? null : text;
  });
}

/** A session's backend process: its pid and start (pids are reused). */
export interface Backend {
  readonly pid: number;
  readonly started: string;
}

/**
 * Creates the bus's tables that do not exist (the large payloads, the live
 * patterns, the log).
 */
export async function createTables(
  sql: Sql,
  channels: Channels,
  store: PayloadStore,
): Promise<void> {
  await store.create(sql);
  await channels.patterns.create(sql);
  await channels.log?.create(sql);
}

/** The backend process of the session of `sql`. */
export async function backendOf(sql: ISql): Promise<Backend | undefined> {
  const [row] = await sql`select pid, backend_start::text as started
    from pg_stat_activity where pid = pg_backend_pid()`;
  return row && { pid: row.pid, started: row.started };
}

/** The publishing connection. */
export class PostgresPublisher implements PublishLink {
  readonly #connection: Connection;
  readonly #backend: Backend | undefined;
  readonly #channels: Channels;
  readonly #store: PayloadStore;
  readonly #cleanup: ReturnType<typeof setInterval>;
  #remaking: Promise<void> | undefined;

  /**
   * Takes over an open connection; while it lives, large bodies past their
   * time to live, and patterns whose lease ran out, are deleted every half
   * TTL (at least every minute, at most every 100 ms), whether or not
   * anything is published.
   */
  constructor(
    connection: Connection,
    channels: Channels,
    store: PayloadStore,
    backend: Backend | undefined,
  ) {
    this.#connection = connection;
    this.#backend = backend;
    this.#channels = channels;
    this.#store = store;
    const every = Math.min(Math.max(store.ttlMs / 2, 100), 60_000);
    // A failed delete is retried on the next tick; a dead connection is
    // the keeper's to notice.
    this.#cleanup = setInterval(() => {
      store.cleanup(connection.sql).catch(() => {});
      channels.patterns.expire(connection.sql).catch(() => {});
      channels.log?.trim(connection.sql).catch(() => {});
    }, every);
  }

  async ping(): Promise<void> {
    await this.#connection.sql`select 1`;
  }

  // Terminates the lost session's backend (matched by pid and start time:
  // a pid may be reused after a restart; compared as text, which keeps the
  // microseconds a timestamp parameter would lose) and waits until it is
  // gone, so a statement it has yet to read can never commit.
  async fence(previous: PublishLink): Promise<void> {
    if (!(previous instanceof PostgresPublisher)) return;
    const backend = previous.#backend;
    if (backend === undefined) return;
    const sql = this.#connection.sql;
    const { pid, started } = backend;
    const alive = sql`pid = ${pid} and backend_start::text = ${started}`;
    try {
      await sql`select pg_terminate_backend(pid) from pg_stat_activity where ${alive}`;
    } catch (error) {
      // Not allowed to end it (another role): skipped.
      if ((error as { code?: string }).code === "42501") return;
      throw error;
    }
    while ((await sql`select 1 from pg_stat_activity where ${alive}`).length) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  destroy(): void {
    clearInterval(this.#cleanup);
    this.#connection.destroy();
  }

  async end(): Promise<void> {
    clearInterval(this.#cleanup);
    await this.#connection.sql.end();
  }

  // One statement per run of distinct events (Postgres folds identical
  // notifications of one transaction into one, so an event published twice
  // goes in two statements), all written at once, in order (postgres.js
  // pipelines them, and a later send's after them). A statement the server
  // refuses refuses its events; the others are unaffected. A statement that
  // found a table of the bus dropped (or its log's boot reset: objectGone)
  // is never run again: a later one may have committed meanwhile, and its
  // events would arrive first. What was missing is made again, and its
  // events refused, for their publisher to retry.
  async send(events: readonly Event[]): Promise<(Refusal | undefined)[]> {
    const sql = this.#connection.sql;
    const runs = distinctRuns(events).map((run) =>
      notify(sql, run, this.#channels, this.#store).then(
        () => run.map(() => undefined),
        async (error) => {
          const refused = objectGone(error)
            ? await this.#missing(error)
            : refusal(error);
          if (!(refused instanceof Refusal)) throw error;
          return run.map(() => refused);
        },
      )
    );
    return (await Promise.all(runs)).flat();
  }

  // The refusal of a statement that found what the bus makes missing, once
  // it is made again (one attempt shared by the statements that failed
  // together).
  async #missing(error: Error): Promise<Refusal> {
    this.#remaking ??= this.remake().finally(() => {
      this.#remaking = undefined;
    });
    const made = await this.#remaking.then(
      () => undefined,
      (failed: Error) => failed,
    );
    return new Refusal(
      `what the bus makes was missing: ${error.message}`,
      made === undefined
        ? "the bus has made it again: publish it again"
        : `the bus could not make its tables again (${made.message}): check the user's privileges (see the README, PostgreSQL)`,
    );
  }

  head(): Promise<Head> {
    const sql = this.#connection.sql;
    return this.#remade(() => this.#channels.log!.head(sql));
  }

  read(from: string | undefined, limit: number): Promise<LogPage> {
    const sql = this.#connection.sql;
    return this.#remade(() => this.#channels.log!.read(sql, from, limit));
  }

  /** Creates the bus's tables that do not exist (see createTables). */
  remake(): Promise<void> {
    return createTables(this.#connection.sql, this.#channels, this.#store);
  }

  // Runs a read of the bus's tables, made again if one was dropped. A
  // dropped log starts a new epoch: positions of the old one read as lost.
  #remade<T>(run: () => Promise<T>): Promise<T> {
    return againIfGone(run, () => this.remake());
  }

  /** `pg_notification_queue_usage()`, from 0 to 1. */
  async queueUsage(): Promise<number> {
    const sql = this.#connection.sql;
    const [row] = await sql`select pg_notification_queue_usage() as usage`;
    return Number(row!.usage);
  }
}

/** The events cut before each one whose id is already in the run. */
function distinctRuns(events: readonly Event[]): (readonly Event[])[] {
  if (events.length === 1) return [events];
  const runs: Event[][] = [];
  let run: Event[] = [], ids = new Set<string>();
  for (const event of events) {
    if (ids.has(event.eventId)) {
      runs.push(run);
      run = [];
      ids = new Set();
    }
    run.push(event);
    ids.add(event.eventId);
  }
  if (run.length > 0) runs.push(run);
  return runs;
}
