// Pattern subscriptions across processes. LISTEN has no wildcards, so a
// publisher must know which patterns are live. Each bus keeps its pattern
// subscriptions in the `<prefix>_patterns` table under its own owner id,
// with a lease it renews on every heartbeat of its LISTEN connection (a
// crashed process's rows stop counting when their lease runs out). A
// publish statement matches its topics against the live rows, in its own
// snapshot, and notifies the channel of each pattern that matches: a row
// committed before a publish starts is seen by it, so a subscription gets
// every event published after `subscribe` resolved, with no cache to keep
// current. The server matches with LIKE, a superset of fnmatch (a set
// becomes "any one character"); the bus then checks each pattern exactly.

import { fnv1a64 } from "./_fnv.ts";
import type { Schema } from "./_postgres_schema.ts";
import type { ISql, Sql } from "postgres";

/** A pattern's channel and the pattern (see PatternTable.route). */
export interface PatternRoute {
  readonly channel: string;
  readonly pattern: string;
}

/** The live patterns of every bus under a prefix. */
export class PatternTable {
  /** The table's name. */
  readonly table: string;
  /** This bus's id in the table. */
  readonly owner: string = crypto.randomUUID();
  /** How long a row lives unless renewed, in milliseconds. */
  readonly leaseMs: number;
  /** The schema of the bus's tables. */
  readonly schema: Schema;
  readonly #prefix: string;

  constructor(prefix: string, leaseMs: number, schema: Schema) {
    this.table = `${prefix}_patterns`;
    this.#prefix = prefix;
    this.leaseMs = leaseMs;
    this.schema = schema;
  }

  /**
   * The statement of a lone publish: notifies text $2 on channel $1 and on
   * the channel of each live pattern that matches topic $3. Its text is
   * fixed (once the schema is found), so it is prepared once, and carries
   * the text once. No `distinct`: a channel two owners share is notified
   * twice with the same payload in one transaction, and PostgreSQL
   * delivers that once. With `logged` (PostgresLog.loggedOne), the event is
   * logged, and each notification is its text with the position (`q.p`).
   */
  notifyOne(logged?: string): string {
    const text = logged === undefined ? "$2" : "q.p";
    return `${logged === undefined ? "" : `with ${logged} `}
      select pg_notify($1, ${text}), (
        select count(pg_notify(channel, ${text})) from ${
      this.schema.name(this.table)
    }
        where expires_at > now() and $3 like pattern_like
      )${logged === undefined ? "" : " from q"}`;
  }

  /** The table, as a fragment of a query on `sql`. */
  in(sql: ISql): ReturnType<ISql["unsafe"]> {
    return this.schema.sql(sql, this.table);
  }

  /** The channel a pattern's events are notified on (at most 59 bytes). */
  channel(pattern: string): string {
    return `${this.#prefix}:p:${fnv1a64(pattern)}`;
  }

  /**
   * A pattern's route: its channel, a space (no channel name has one), and
   * the pattern, so that the LISTEN connection knows what to make live.
   */
  route(pattern: string): string {
    return `${this.channel(pattern)} ${pattern}`;
  }

  /** A pattern route's parts; undefined for a topic's channel. */
  parse(route: string): PatternRoute | undefined {
    const space = route.indexOf(" ");
    if (space < 0) return undefined;
    return { channel: route.slice(0, space), pattern: route.slice(space + 1) };
  }

  /** Creates the table if it does not exist (two processes may race). */
  async create(sql: Sql): Promise<void> {
    await this.schema.make(
      sql,
      this.table,
      () =>
        sql`create table if not exists ${this.in(sql)} (
        channel text not null,
        owner uuid not null,
        pattern text not null,
        pattern_like text not null,
        expires_at timestamptz not null,
        primary key (channel, owner)
      )`,
    );
  }

  /** Makes these patterns live for this bus (or renews them). */
  async add(sql: Sql, routes: readonly PatternRoute[]): Promise<void> {
    const rows = routes.map((r) => [
      r.channel,
      comparable(r.pattern),
      toLike(r.pattern),
    ]);
    await sql`insert into ${this.in(sql)}
      select x->>0, ${this.owner}::uuid, x->>1, x->>2,
        now() + ${this.leaseMs} * interval '1 millisecond'
      from jsonb_array_elements(${sql.json(rows)}) as x
      on conflict (channel, owner) do update set expires_at = excluded.expires_at`;
  }

  /** Ends the patterns of these channels of this bus. */
  async remove(sql: Sql, channels: readonly string[]): Promise<void> {
    await sql`delete from ${this.in(sql)}
      where owner = ${this.owner} and channel in (
        select jsonb_array_elements_text(${sql.json(channels)})
      )`;
  }

  /**
   * Renews the lease of these live channels of this bus (only these: a row
   * whose DELETE failed or was never sent is left to expire); returns how
   * many rows it renewed (fewer than the channels: some were deleted
   * meanwhile).
   */
  async renew(sql: Sql, channels: readonly string[]): Promise<number> {
    const result = await sql`update ${this.in(sql)}
      set expires_at = now() + ${this.leaseMs} * interval '1 millisecond'
      where owner = ${this.owner} and expires_at > now() and channel in (
        select jsonb_array_elements_text(${sql.json(channels)})
      )`;
    return result.count;
  }

  /**
   * Deletes the rows of this bus except those of these channels (its
   * patterns cancelled while no connection could delete them).
   */
  async keepOnly(sql: Sql, channels: readonly string[]): Promise<void> {
    await sql`delete from ${this.in(sql)}
      where owner = ${this.owner} and channel not in (
        select jsonb_array_elements_text(${sql.json(channels)})
      )`;
  }

  /** Deletes every pattern of this bus. */
  async clear(sql: Sql): Promise<void> {
    await sql`delete from ${this.in(sql)} where owner = ${this.owner}`;
  }

  /** Deletes every row whose lease ran out (any owner's). */
  async expire(sql: ISql): Promise<void> {
    await sql`delete from ${this.in(sql)} where expires_at < now()`;
  }
}

/**
 * Text as the server compares it: PostgreSQL text cannot hold U+0000, so
 * it becomes U+FFFD, one character for one. Topics and LIKE patterns both
 * pass through this, so LIKE still matches at least what fnmatch matches
 * (the bus then checks exactly).
 */
export function comparable(text: string): string {
  return text.includes("\0") ? text.replaceAll("\0", "\uFFFD") : text;
}

/**
 * An fnmatch pattern as a LIKE pattern matching at least the same topics:
 * `*` is `%`, `?` and a set are `_` (any one character), every other
 * character literal. Sets are found as fnmatch finds them: after `[`, an
 * optional `!`, then a `]` that is literal when first, up to the next `]`;
 * a `[` with no closing `]` is a literal.
 */
export function toLike(pattern: string): string {
  let like = "";
  const chars = [...pattern];
  for (let i = 0; i < chars.length; i++) {
    const char = chars[i]!;
    if (char === "*") like += "%";
    else if (char === "?") like += "_";
    else if (char === "[") {
      let j = i + 1;
      if (chars[j] === "!") j++;
      if (chars[j] === "]") j++;
      while (j < chars.length && chars[j] !== "]") j++;
      if (j < chars.length) {
        like += "_";
        i = j;
      } else like += "[";
    } else if (char === "%" || char === "_" || char === "\\") {
      like += `\\${char}`;
    } else like += char;
  }
  return comparable(like);
}
