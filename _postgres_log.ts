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
// A position is `<epoch>-<xid>-<id>-<floor>`. The epoch names one history
// of the log: `<oid>.<boot>`, the table's oid (a table dropped and made
// again starts a new one) and the boot: a random number kept in the
// unlogged sequence `<prefix>_log_boot`, which PostgreSQL resets after a
// crash, on a standby when it is promoted, and in a base backup restored.
// Each of those may have lost the newest commits (a crash: those committed
// with synchronous_commit off, the bus's default; a standby: what it never
// received), and then hands their transaction ids out again: without a new
// epoch, a reader whose position is past what was lost would skip the
// entries that reuse them. Only a bus sets the boot, in a statement of its
// own, when it connects (and when a statement finds it reset); a sequence
// is read outside any snapshot and without a lock, so no transaction waits
// for another to see it. A statement that finds it reset fails (a
// transactional publish before any bus has connected again) rather than
// write under the old epoch. A position of another epoch, or with a
// transaction id the server has not handed out yet, reads as lost.
//
// What left the log is recorded by triggers in `<prefix>_log_state`,
// whoever removed it (the retention, or a DELETE or TRUNCATE by hand): the
// newest entry removed, and the newest one of an earlier transaction, so
// that a position whose own entry is gone, with nothing after it, is not
// a loss. The same row counts the entries the log holds (for maxEvents):
// the retention adds those made visible since the snapshot of its last
// count, so each entry is counted once, at a cost bounded by what is new.

import type { ISql, Sql } from "postgres";
import { comparePositions, type Head, type Positions } from "./_history.ts";
import type { Retention } from "./_options.ts";
import { madeMeanwhile, quoted, type Schema } from "./_postgres_schema.ts";
import { BOOT_RESET } from "./_postgres_sql.ts";
import { POSITION_KEY } from "./_transport.ts";
import type { LogPage } from "./_transport.ts";

// The boot is any bigint (set by hand, maybe negative: written n…).
const EPOCH = String.raw`\d{1,10}(?:\.n?\d{1,19})?`;
const XID = String.raw`(0|[1-9]\d{0,19})`;
const ID = String.raw`(0|[1-9]\d{0,18})`;
const POSITION = new RegExp(`^(${EPOCH})-${XID}-${ID}-${XID}$`);
/** A position, or a mark (a floor followed by the entry it is of). */
const MARK = new RegExp(`^(${EPOCH})-${XID}-${ID}-${XID}(?:-${XID}-${ID})?$`);

/** A place in the log: (transaction id, id). */
type Key = readonly [bigint, bigint];

const after = (a: Key, b: Key): boolean =>
  a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);

// The epoch, place, and (for a mark) the entry had of a position or mark.
function parse(position: string): [string, Key, Key | undefined] {
  const match = MARK.exec(position);
  if (match === null) {
    throw new TypeError(`Not a position of a PostgreSQL log: ${position}`);
  }
  const [, epoch, xid, id, , hadXid, hadId] = match;
  return [
    epoch!,
    [BigInt(xid!), BigInt(id!)],
    hadXid === undefined ? undefined : [BigInt(hadXid), BigInt(hadId!)],
  ];
}

/** Text as an SQL string literal. */
const literal = (text: string): string => `'${text.replaceAll("'", "''")}'`;

/**
 * Positions in a PostgreSQL log; see the comment at the top. The floor of
 * a position is a mark: the floor, then the position's own (xid, id), so
 * that a read from it knows which entry its reader had. When the floor is
 * the entry's own transaction id (no other transaction was running when it
 * was written: the rule on a quiet server), the floor is the position
 * itself: every transaction before it had ended, and the entries of its
 * own come in id order, live and read alike.
 */
export const POSTGRES_POSITIONS: Positions = {
  valid: (position) => POSITION.test(position),
  compare: (a, b) => comparePositions(a, b, 2),
  floor: (position) => {
    // Runs for every event delivered: sliced, not split.
    // `<epoch>-<xid>-<id>-<floor>` to `<epoch>-<floor>-0-<floor>-<xid>-<id>`.
    const a = position.indexOf("-"), z = position.lastIndexOf("-");
    const floor = position.slice(z + 1);
    if (
      position.indexOf("-", a + 1) === a + 1 + floor.length &&
      position.startsWith(floor, a + 1)
    ) return position;
    return `${position.slice(0, a)}-${floor}-0-${floor}${position.slice(a, z)}`;
  },
  capped: (position, floor) => {
    const [epoch, xid, id, own] = position.split("-");
    const cap = floor.split("-")[3]!;
    const lower = comparePositions(`-${cap}`, `-${own}`, 1) < 0 ? cap : own;
    return `${epoch}-${xid}-${id}-${lower}`;
  },
};

/** What the log's state row says was removed (see the top). */
interface Removed {
  /** The newest entry removed ((0, 0): none). */
  readonly newest: Key;
  /** The newest removed of a transaction before the newest's. */
  readonly before: Key;
}

/**
 * Whether a read from `from` (a position, or a mark of an entry `had`)
 * misses an entry its reader is owed: one after `from` was removed, and
 * it is neither `had` nor of `had`'s transaction before it (delivered
 * with it).
 */
function owedRemoved(
  from: Key,
  had: Key | undefined,
  removed: Removed,
): boolean {
  const { newest, before } = removed;
  if (had === undefined || after(newest, had)) return after(newest, from);
  return after(newest, from) && (newest[0] !== had[0] || after(before, from));
}

/** The `<prefix>_log` table, its state row and triggers (see the top). */
export class PostgresLog {
  readonly table: string;
  /** One row per log table (by oid): counts, and what was removed. */
  readonly state: string;
  /** The trigger function that records what left the log. */
  readonly removed: string;
  /** The unlogged sequence of the log's boot (see the top). */
  readonly boot: string;
  /** The function that fails a statement that finds the boot reset. */
  readonly noBoot: string;
  readonly #retention: Retention;
  readonly #schema: Schema;

  constructor(prefix: string, retention: Retention, schema: Schema) {
    this.table = `${prefix}_log`;
    this.state = `${prefix}_log_state`;
    this.removed = `${prefix}_log_removed`;
    this.boot = `${prefix}_log_boot`;
    this.noBoot = `${prefix}_log_no_boot`;
    this.#retention = retention;
    this.#schema = schema;
  }

  // A name of the log's, qualified: as SQL text, and as a query fragment.
  #name(name: string): string {
    return this.#schema.name(name);
  }

  #in(sql: ISql, name: string): ReturnType<ISql["unsafe"]> {
    return this.#schema.sql(sql, name);
  }

  // The epoch of the log (see the top), as SQL text; fails (BOOT_RESET)
  // while the boot is reset. Of the table this statement writes: its oid is
  // a constant of the statement (a prepared statement is planned again
  // when the table is dropped), found when it is planned.
  get #epoch(): string {
    return this.#epochOf(`${literal(this.#name(this.table))}::regclass`);
  }

  // The epoch of the table of this name now (null when there is none).
  get #epochNow(): string {
    return this.#epochOf(`to_regclass(${literal(this.#name(this.table))})`);
  }

  #epochOf(table: string): string {
    return `${table}::oid::text || '.' || coalesce(
        (select replace(last_value::text, '-', 'n')
          from ${this.#name(this.boot)} where is_called),
        ${this.#name(this.noBoot)}()::text)`;
  }

  /**
   * Creates what does not exist (two processes may race), and sets the
   * boot when it is reset. Looks first, and makes only what is missing:
   * `create … if not exists` takes a lock on an existing table, and so
   * would wait for any open transaction that published to it.
   */
  async create(sql: Sql): Promise<void> {
    const name = (object: string) => this.#name(object);
    const [has] = await sql`select
      current_setting('server_version_num')::int as version,
      to_regclass(${name(this.table)}) is not null as log,
      to_regclass(${name(`${this.table}_order`)}) is not null as order,
      to_regclass(${name(this.state)}) is not null as state,
      to_regproc(${name(this.removed)}) is not null as removed,
      (select count(*) from pg_trigger
        where tgrelid = to_regclass(${name(this.table)})
        and tgfoid = to_regproc(${name(this.removed)})) as triggers,
      to_regclass(${name(this.boot)}) is not null as boot,
      to_regproc(${name(this.noBoot)}) is not null as "noBoot"`;
    if (has!.version < 150000) {
      throw new Error(
        `a bus with history needs PostgreSQL 15 or later (the log's boot is an unlogged sequence); this server is ${
          Math.floor(has!.version / 10000)
        }`,
      );
    }
    const table = this.#in(sql, this.table);
    const statements: (true | (() => Promise<unknown>))[] = [
      has!.log || (() =>
        // One index, the log's order: (xid, id) is the key (ids alone are
        // unique too, from their sequence).
        sql`create table if not exists ${table} (
        id bigserial,
        xid xid8 not null default pg_current_xact_id(),
        floor xid8 not null,
        body text not null,
        created_at timestamptz not null default now(),
        constraint ${sql.unsafe(quoted(`${this.table}_order`))}
          primary key (xid, id)
      )`),
      has!.order ||
      (() =>
        sql`create index if not exists ${
          sql.unsafe(quoted(`${this.table}_order`))
        }
        on ${table} (xid, id)`),
      has!.state ||
      (() =>
        sql`create table if not exists ${this.#in(sql, this.state)} (
        log oid primary key,
        kept bigint not null,
        counted pg_snapshot not null,
        gone_xid xid8 not null, gone_id bigint not null,
        before_xid xid8 not null, before_id bigint not null
      )`),
      has!.removed || (() => sql.unsafe(this.#function())),
      ...(["deleted", "truncated"] as const).map((on) =>
        Number(has!.triggers) === 2 || (() =>
          sql.unsafe(
            `create trigger ${quoted(`${this.table}_${on}`)} ${
              on === "deleted"
                ? "after delete on %s referencing old table as gone"
                : "before truncate on %s"
            } for each statement execute function ${name(this.removed)}()`
              .replace("%s", name(this.table)),
          ))
      ),
      has!.boot ||
      (() =>
        sql`create unlogged sequence if not exists ${
          this.#in(sql, this.boot)
        }`),
      has!.noBoot || (() => sql.unsafe(this.#noBootFunction())),
      has!.log && has!.state && await this.#started(sql) ||
      (() => this.#start(sql)),
      () => this.#setBoot(sql),
    ];
    for (const statement of statements) {
      if (statement === true) continue;
      await statement().catch((error) => {
        if (!madeMeanwhile(error)) throw error;
      });
    }
  }

  // Whether the log has its state row.
  async #started(sql: Sql): Promise<boolean> {
    const [row] = await sql`select exists (select from ${
      this.#in(sql, this.state)
    } where log = to_regclass(${this.#name(this.table)})) as started`;
    return row!.started as boolean;
  }

  // Sets the boot to a new random number if it is reset (one session at a
  // time: the others find it set).
  async #setBoot(sql: Sql): Promise<void> {
    const boot = this.#in(sql, this.boot);
    const [{ set }] = await sql`select is_called as set from ${boot}` as [
      { set: boolean },
    ];
    if (set) return;
    await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtext(${this.boot}))`;
      await tx`select setval(${this.#name(this.boot)}::regclass,
          1 + (random() * 9e15)::bigint)
        from ${boot} where not is_called`;
    });
  }

  // The trigger function: records the newest entry removed and the newest
  // of an earlier transaction, and uncounts the removed entries that were
  // counted (visible in the snapshot of the last count).
  #function(): string {
    const log = this.#name(this.table), state = this.#name(this.state);
    const merge = (source: string, kept: string) =>
      `update ${state} s set kept = ${kept},
        (gone_xid, gone_id, before_xid, before_id) = (
          select t.x, t.i, b.x, b.i
          from (select x, i from (values (s.gone_xid, s.gone_id), (r.x, r.i))
            v(x, i) order by x desc, i desc limit 1) t,
          lateral (select x, i from (values (s.before_xid, s.before_id),
            (s.gone_xid, s.gone_id), (r.px, r.pi), (r.x, r.i)) v(x, i)
            where x < t.x order by x desc, i desc limit 1) b)
      from (
        select top.xid as x, top.id as i,
          coalesce(p.xid, '0') as px, coalesce(p.id, 0) as pi
        from (select xid, id from ${source}
          order by xid desc, id desc limit 1) top
        left join lateral (select xid, id from ${source} where xid < top.xid
          order by xid desc, id desc limit 1) p on true
      ) r
      where s.log = tg_relid;`;
    return `create function ${this.#name(this.removed)}() returns trigger
      language plpgsql as $removed$
      begin
        if tg_op = 'TRUNCATE' then
          ${merge(log, "0")}
        else
          ${
      merge(
        "gone",
        "s.kept - (select count(*) from gone where pg_visible_in_snapshot(gone.xid, s.counted))",
      )
    }
        end if;
        return null;
      end $removed$`;
  }

  // The function that fails a statement that finds the boot reset (see
  // the top), with BOOT_RESET.
  #noBootFunction(): string {
    return `create function ${this.#name(this.noBoot)}() returns bigint
      language plpgsql as $boot$
      begin
        raise exception 'the event log % has no boot: the server restarted after a crash (or was promoted, or restored from a backup) and no bus with history has connected since', ${
      literal(this.#name(this.table))
    }
          using errcode = '${BOOT_RESET}',
            hint = 'connect a bus with history to this prefix (it sets the boot), then run this again';
      end $boot$`;
  }

  // The state row of the log, when it has none: it counts the entries, and
  // (the log may have lost entries before: an older version, a state
  // dropped) counts every one before the oldest as removed. Forgets the
  // rows of dropped log tables.
  #start(sql: ISql): Promise<unknown> {
    const log = sql`to_regclass(${this.#name(this.table)})::oid`;
    const state = this.#in(sql, this.state);
    return sql`with stale as (
      delete from ${state} where log <> ${log}
    )
    insert into ${state}
    select ${log}, (select count(*) from ${this.#in(sql, this.table)}),
      pg_current_snapshot(), coalesce(f.xid, '0'), coalesce(f.id, 0),
      coalesce(f.xid, '0'), coalesce(f.id, 0)
    from (select 1) one left join lateral (
      select xid, id from ${this.#in(sql, this.table)} order by xid, id limit 1
    ) f on true
    on conflict (log) do nothing`;
  }

  /**
   * The part of a publishing statement that logs the events of CTE `t`
   * (columns `p`, the notification text, `b`, the body, and `i`), and
   * names `q`: `t` with `p` carrying the position (the part of it that
   * all the statement's events share is made once, in `h`).
   */
  logged(sql: ISql): ReturnType<ISql> {
    const table = this.#in(sql, this.table);
    return sql`h as (
      select x.*,
        ${`,"${POSITION_KEY}":"`} || epoch || '-' || xid || '-' as head,
        '-' || floor || '"}' as tail
      from (select ${sql.unsafe(this.#epoch)} as epoch,
        pg_current_xact_id() as xid,
        pg_snapshot_xmin(pg_current_snapshot()) as floor) x
    ),
    n as (
      select t.*, nextval(${sql.unsafe(this.#sequence)}) as id
      from t, h order by i
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

  /**
   * `logged` for one event, as SQL text that plans and runs faster: logs
   * `$2` (the notification text, and the body) and names `q`, with `p`
   * the text carrying the position.
   */
  get loggedOne(): string {
    const table = this.#name(this.table);
    return `v as (
      select $2::text as body, pg_current_xact_id() as xid,
        pg_snapshot_xmin(pg_current_snapshot()) as floor,
        nextval(${this.#sequence}) as id
    ),
    logged as (
      insert into ${table} (id, xid, floor, body)
      select id, xid, floor, body from v
    ),
    q as (
      select left(body, -1) || ',"${POSITION_KEY}":"' || ${this.#epoch}
        || '-' || xid || '-' || id || '-' || floor || '"}' as p
      from v
    )`;
  }

  // The sequence of the log's ids (bigserial's name for it), a constant of
  // the statement.
  get #sequence(): string {
    return `${literal(this.#name(`${this.table}_id_seq`))}::regclass`;
  }

  /** Where a subscription made now starts. */
  async head(sql: Sql): Promise<Head> {
    const [row] = await sql`select ${sql.unsafe(this.#epochNow)} as epoch,
        pg_snapshot_xmin(pg_current_snapshot())::text as floor`;
    const { epoch: at, floor } = row as { epoch: string; floor: string };
    const seen = await sql`select xid::text, id::text, floor::text
      from ${this.#in(sql, this.table)} where xid >= ${floor}::xid8`;
    return {
      mark: `${at}-${floor}-0-${floor}`,
      seen: seen.map((r) => `${at}-${r.xid}-${r.id}-${r.floor}`),
    };
  }

  /**
   * Applies the retention, then reads (see PublishLink.read). A read from
   * a position of another history (see the top) is lost, and starts at
   * the oldest entry; one from this history is lost when an entry its
   * reader is owed was removed (see owedRemoved).
   */
  async read(
    sql: Sql,
    from: string | undefined,
    limit: number,
  ): Promise<LogPage> {
    await this.trim(sql);
    // One snapshot for what was removed and the rows: a trim committing
    // between them would otherwise remove rows unreported.
    return await sql.begin(
      "isolation level repeatable read",
      (tx) => this.#page(tx as unknown as Sql, from, limit),
    ) as LogPage;
  }

  async #page(
    sql: Sql,
    from: string | undefined,
    limit: number,
  ): Promise<LogPage> {
    const { at, horizon, next, running, removed } = await this.#now(sql);
    let where = sql``;
    let lost = false;
    if (from !== undefined) {
      const [fromEpoch, key, had] = parse(from);
      // Another epoch, or a transaction id not yet given out (a position
      // past the log's end): the whole log is owed.
      lost = fromEpoch !== at || key[0] >= next;
      if (!lost) {
        lost = owedRemoved(key, had, removed);
        where = sql`where (xid, id) >= (${String(key[0])}::xid8, ${
          String(key[1])
        })`;
      }
    }
    // Ordered by the columns (xid8, bigint), not by their text.
    const rows = await sql`select xid::text as x, id::text as n,
        floor::text as f, body
      from ${
      this.#in(sql, this.table)
    } ${where} order by xid, id limit ${limit}`;
    return {
      lost,
      entries: rows.map((r) => ({
        position: `${at}-${r.x}-${r.n}-${r.f}`,
        text: r.body as string,
      })),
      horizon: `${at}-${horizon}-0-${horizon}`,
      // In the snapshot of #now, taken before the rows were read.
      visible: (position) => {
        const [epoch, [xid]] = parse(position);
        return epoch === at && xid < next && !running.has(xid);
      },
    };
  }

  // The epoch; the horizon of a read begun now (every transaction with a
  // smaller id has ended: a later snapshot's xmin is never smaller); the
  // next transaction id and those running (whose entries are not visible
  // yet); what was removed (the state row is made if the log has none).
  async #now(sql: Sql): Promise<{
    at: string;
    horizon: string;
    next: bigint;
    running: ReadonlySet<bigint>;
    removed: Removed;
  }> {
    for (let attempt = 1;; attempt++) {
      const [row] = await sql`select ${sql.unsafe(this.#epochNow)} as epoch,
        pg_snapshot_xmin(pg_current_snapshot())::text as horizon,
        pg_snapshot_xmax(pg_current_snapshot())::text as next,
        (select string_agg(x::text, ' ')
          from pg_snapshot_xip(pg_current_snapshot()) x) as running,
        (select concat_ws(' ', gone_xid, gone_id, before_xid, before_id)
          from ${this.#in(sql, this.state)}
          where log = to_regclass(${this.#name(this.table)})) as removed`;
      const { epoch: at, horizon, next, running, removed } = row as {
        epoch: string;
        horizon: string;
        next: string;
        running: string | null;
        removed: string | null;
      };
      if (removed === null && attempt === 1) {
        await this.#start(sql);
        continue;
      }
      const [gx, gi, bx, bi] = (removed ?? "0 0 0 0").split(" ").map(BigInt);
      return {
        at,
        horizon,
        next: BigInt(next),
        running: new Set(running?.split(" ").map(BigInt)),
        removed: { newest: [gx!, gi!], before: [bx!, bi!] },
      };
    }
  }

  /**
   * Deletes what the retention no longer keeps, oldest first in log order
   * (one session at a time: others skip). Counts the entries made visible
   * since its last count first (those with a transaction id that was
   * running, or not yet given, in that count's snapshot); the trigger
   * uncounts what is deleted.
   */
  async trim(sql: ISql): Promise<void> {
    const { maxEvents, maxAgeMs } = this.#retention;
    const table = this.#in(sql, this.table), state = this.#in(sql, this.state);
    const log = sql`to_regclass(${this.#name(this.table)})::oid`;
    await sql`with lock as (
      select pg_try_advisory_xact_lock(hashtext(${this.table})) as got
    ), s as (
      select pg_snapshot_xmax(counted) as xmax,
        array(select pg_snapshot_xip(counted)) as xip
      from ${state} where log = ${log} and (select got from lock)
    ), counted as (
      -- Index scans (a range bounded both ways reads as narrow to the
      -- planner; every committed transaction id is below the xmax).
      update ${state} set kept = kept
        + (select count(*) from ${table} where xid >= (select xmax from s)
          and xid < pg_snapshot_xmax(pg_current_snapshot()))
        + (select coalesce(sum((
            select count(*) from ${table} where xid = x
          )), 0) from unnest((select xip from s)) x),
        counted = pg_current_snapshot()
      where log = ${log} and (select got from lock)
      returning kept
    )
    delete from ${table} where (xid, id) in (
      (select xid, id from ${table} order by xid, id
        limit greatest(least((select kept from counted) - ${maxEvents}, 10000), 0))
      union all
      (select xid, id from (
        select xid, id, created_at from ${table} order by xid, id limit 10000
      ) o
      where o.created_at < now() - ${maxAgeMs} * interval '1 millisecond'
        and (select created_at from ${table} order by xid, id limit 1)
          < now() - ${maxAgeMs} * interval '1 millisecond')
    ) and (select got from lock)`;
  }
}
