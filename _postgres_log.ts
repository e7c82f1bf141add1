// The event log of the PostgreSQL bus with history: the `<prefix>_log`
// table, written by the publishing statement itself (so in the user's
// transaction for a transactional publish), and read for replay.
//
// Ids are assigned at insert, but transactions commit in another order: a
// reader that kept only "the largest id seen" would skip a transaction
// that committed late. So the log is ordered by (transaction id, id), and
// each entry also records its floor: `pg_snapshot_xmin` when it was
// written. Every transaction with a smaller id had ended by then, so every
// entry before the floor was visible before this one was. Live delivery
// never waits for anything; a reader that saw an entry owes only what is
// at or after its floor (the core keeps the entries it has seen there).
//
// A position is `<epoch>-<xid>-<id>-<floor>`; the epoch is the table's oid,
// so a table deleted and made again starts a new one.

import type { ISql, Sql } from "postgres";
import { comparePositions, type Head, type Positions } from "./_history.ts";
import type { Retention } from "./_options.ts";
import { POSITION_KEY } from "./_transport.ts";
import type { LogPage } from "./_transport.ts";

const POSITION =
  /^(\d{1,10})-(0|[1-9]\d{0,19})-(0|[1-9]\d{0,18})-(0|[1-9]\d{0,19})$/;

function parse(position: string): [string, bigint, bigint] {
  const match = POSITION.exec(position);
  if (match === null) {
    throw new TypeError(`Not a position of a PostgreSQL log: ${position}`);
  }
  return [match[1]!, BigInt(match[2]!), BigInt(match[3]!)];
}

/**
 * The floor the last call of POSTGRES_POSITIONS.floor gave: of a position
 * that starts with `head` (`<epoch>-`) and ends with `tail` (`-<floor>`);
 * none at first (no position starts with "-").
 */
let last = { head: "-", tail: "", floor: "" };

/** Positions in a PostgreSQL log; see the comment at the top. */
export const POSTGRES_POSITIONS: Positions = {
  valid: (position) => POSITION.test(position),
  compare: (a, b) => comparePositions(a, b, 2),
  floor: (position) => {
    // Runs for every event delivered, and the events of one transaction
    // share their floor: the last one is kept, to be compared in place.
    if (!(position.startsWith(last.head) && position.endsWith(last.tail))) {
      const head = position.slice(0, position.indexOf("-") + 1);
      const tail = position.slice(position.lastIndexOf("-"));
      last = { head, tail, floor: `${head}${tail.slice(1)}-0${tail}` };
    }
    return last.floor;
  },
  capped: (position, floor) => {
    const [epoch, xid, id, own] = position.split("-");
    const cap = floor.split("-")[3]!;
    const lower = comparePositions(`-${cap}`, `-${own}`, 1) < 0 ? cap : own;
    return `${epoch}-${xid}-${id}-${lower}`;
  },
};

/** The `<prefix>_log` table and the record of what retention removed. */
export class PostgresLog {
  readonly table: string;
  /** One row: the largest (xid, id) retention deleted. */
  readonly trimmed: string;
  readonly #retention: Retention;

  constructor(prefix: string, retention: Retention) {
    this.table = `${prefix}_log`;
    this.trimmed = `${prefix}_log_trimmed`;
    this.#retention = retention;
  }

  /**
   * Creates the tables if they do not exist (two processes may race). Looks
   * first: `create index if not exists` takes a lock on an existing table,
   * and so would wait for any open transaction that published to it.
   */
  async create(sql: Sql): Promise<void> {
    const [row] = await sql`select
      to_regclass(quote_ident(${this.table})) is not null
      and to_regclass(quote_ident(${`${this.table}_order`})) is not null
      and to_regclass(quote_ident(${this.trimmed})) is not null as made`;
    if (row?.made) return;
    const statements = [
      sql`create table if not exists ${sql(this.table)} (
        id bigserial primary key,
        xid xid8 not null default pg_current_xact_id(),
        floor xid8 not null,
        body text not null,
        created_at timestamptz not null default now()
      )`,
      sql`create index if not exists ${sql(`${this.table}_order`)}
        on ${sql(this.table)} (xid, id)`,
      sql`create table if not exists ${sql(this.trimmed)} (
        k int primary key, xid xid8 not null, id bigint not null
      )`,
    ];
    for (const statement of statements) {
      await statement.catch((error) => {
        // Two sessions creating it at once: the loser sees it exist.
        if (!["42P07", "42710", "23505"].includes(error.code)) throw error;
      });
    }
  }

  /**
   * The part of a publishing statement that logs the events of CTE `t`
   * (columns `p`, the notification text, `b`, the body, and `i`), and
   * names `q`: `t` with `p` carrying the position (the part of it that
   * all the statement's events share is made once, in `h`).
   */
  logged(sql: ISql): ReturnType<ISql> {
    const table = sql(this.table);
    return sql`h as (
      select x.*,
        ${`,"${POSITION_KEY}":"`} || epoch || '-' || xid || '-' as head,
        '-' || floor || '"}' as tail
      from (select to_regclass(quote_ident(${this.table}))::oid::text as epoch,
        pg_current_xact_id() as xid,
        pg_snapshot_xmin(pg_current_snapshot()) as floor,
        pg_get_serial_sequence(quote_ident(${this.table}), 'id')::regclass
          as seq) x
    ),
    n as (
      select t.*, nextval(h.seq) as id from t, h order by i
    ),
    logged as (
      insert into ${table} (id, xid, floor, body)
      select n.id, h.xid, h.floor, n.b from n, h
    ),
    q as (
      select n.c, n.topic, n.i, left(n.p, -1) || h.head || n.id || h.tail as p
      from n, h
    )`;
  }

  /** Where a subscription made now starts. */
  async head(sql: Sql): Promise<Head> {
    const [row] = await sql`select
        to_regclass(quote_ident(${this.table}))::oid::text as epoch,
        pg_snapshot_xmin(pg_current_snapshot())::text as floor`;
    const { epoch, floor } = row as { epoch: string; floor: string };
    const seen = await sql`select xid::text, id::text, floor::text
      from ${sql(this.table)} where xid >= ${floor}::xid8`;
    return {
      mark: `${epoch}-${floor}-0-${floor}`,
      seen: seen.map((r) => `${epoch}-${r.xid}-${r.id}-${r.floor}`),
    };
  }

  /** Applies the retention, then reads (see PublishLink.read). */
  async read(
    sql: Sql,
    from: string | undefined,
    limit: number,
  ): Promise<LogPage> {
    await this.trim(sql);
    // The horizon: every transaction with a smaller id has ended before
    // the rows are read (a later snapshot's xmin is never smaller).
    const [row] = await sql`select
        to_regclass(quote_ident(${this.table}))::oid::text as epoch,
        pg_snapshot_xmin(pg_current_snapshot())::text as horizon,
        (select xid::text || '-' || id from ${sql(this.trimmed)}) as trimmed`;
    const { epoch, horizon, trimmed } = row as {
      epoch: string;
      horizon: string;
      trimmed: string | null;
    };
    let after = sql``;
    let lost = false;
    if (from !== undefined) {
      const [fromEpoch, xid, id] = parse(from);
      lost = fromEpoch !== epoch ||
        (trimmed !== null &&
          POSTGRES_POSITIONS.compare(`${epoch}-${trimmed}-0`, from) > 0);
      if (!lost || fromEpoch === epoch) {
        after = sql`where (xid, id) >= (${String(xid)}::xid8, ${String(id)})`;
      }
    }
    // Ordered by the columns (xid8, bigint), not by their text.
    const rows = await sql`select xid::text as x, id::text as n,
        floor::text as f, body
      from ${sql(this.table)} ${after} order by xid, id limit ${limit}`;
    return {
      lost,
      entries: rows.map((r) => ({
        position: `${epoch}-${r.x}-${r.n}-${r.f}`,
        text: r.body as string,
      })),
      horizon: `${epoch}-${horizon}-0-${horizon}`,
    };
  }

  /**
   * Deletes what the retention no longer keeps (one session at a time:
   * others skip), recording the largest (xid, id) deleted.
   */
  async trim(sql: ISql): Promise<void> {
    const { maxEvents, maxAgeMs } = this.#retention;
    const table = sql(this.table);
    await sql`with lock as (
      select pg_try_advisory_xact_lock(hashtext(${this.table})) as got
    ), gone as (
      delete from ${table} where (select got from lock) and id in (
        select id from (
          select id, created_at from ${table} order by id limit 10000
        ) o
        where o.id <= (select max(id) from ${table}) - ${maxEvents}
          or o.created_at < now() - ${maxAgeMs} * interval '1 millisecond'
      )
      returning xid, id
    ), top as (
      select xid, id from gone order by xid desc, id desc limit 1
    )
    insert into ${sql(this.trimmed)} (k, xid, id) select 1, xid, id from top
    on conflict (k) do update set xid = excluded.xid, id = excluded.id
      where (${sql(this.trimmed)}.xid, ${sql(this.trimmed)}.id)
        < (excluded.xid, excluded.id)`;
  }
}
