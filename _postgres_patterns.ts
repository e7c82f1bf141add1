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
import type { ISql, Sql } from "postgres";

/** The live patterns of every bus under a prefix. */
export class PatternTable {
  /** The table's name. */
  readonly table: string;
  /** This bus's id in the table. */
  readonly owner: string = crypto.randomUUID();
  readonly #prefix: string;
  readonly #leaseMs: number;
  /** Pattern channel → the pattern, for the patterns this bus listens to. */
  readonly #patterns = new Map<string, string>();

  constructor(prefix: string, leaseMs: number) {
    this.table = `${prefix}_patterns`;
    this.#prefix = prefix;
    this.#leaseMs = leaseMs;
  }

  /** The channel a pattern's events are notified on (at most 59 bytes). */
  channel(pattern: string): string {
    const name = `${this.#prefix}:p:${fnv1a64(pattern)}`;
    this.#patterns.set(name, pattern);
    return name;
  }

  /** Whether a channel is one of this bus's pattern channels. */
  has(channel: string): boolean {
    return this.#patterns.has(channel);
  }

  /** The patterns among these channels (this bus's pattern channels). */
  patternsOf(channels: readonly string[]): string[] {
    return channels.flatMap((channel) => this.#patterns.get(channel) ?? []);
  }

  /** Creates the table if it does not exist (two processes may race). */
  async create(sql: Sql): Promise<void> {
    await sql`create table if not exists ${sql(this.table)} (
      pattern text not null,
      owner uuid not null,
      channel text not null,
      pattern_like text not null,
      expires_at timestamptz not null,
      primary key (pattern, owner)
    )`.catch((error) => {
      // Two sessions creating the table at once: the loser sees it (or its
      // row type) exist.
      if (!["42P07", "42710", "23505"].includes(error.code)) throw error;
    });
  }

  /** Makes these patterns live for this bus (or renews them). */
  async add(sql: Sql, patterns: readonly string[]): Promise<void> {
    const channels = patterns.map((pattern) => this.channel(pattern));
    const likes = patterns.map(toLike);
    const keys = patterns.map(rowKey);
    await sql`insert into ${sql(this.table)}
      select p, ${this.owner}::uuid, c, l, now() + ${this.#leaseMs} * interval '1 millisecond'
      from unnest(${keys}::text[], ${channels}::text[], ${likes}::text[]) as t(p, c, l)
      on conflict (pattern, owner) do update set expires_at = excluded.expires_at`;
  }

  /** Ends these patterns of this bus. */
  async remove(sql: Sql, patterns: readonly string[]): Promise<void> {
    const keys = patterns.map(rowKey);
    await sql`delete from ${sql(this.table)}
      where owner = ${this.owner} and pattern = any(${keys}::text[])`;
  }

  /** Renews the lease of every pattern of this bus. */
  async renew(sql: Sql): Promise<void> {
    await sql`update ${sql(this.table)}
      set expires_at = now() + ${this.#leaseMs} * interval '1 millisecond'
      where owner = ${this.owner}`;
  }

  /** Deletes every pattern of this bus. */
  async clear(sql: Sql): Promise<void> {
    await sql`delete from ${sql(this.table)} where owner = ${this.owner}`;
  }

  /** Deletes every row whose lease ran out (any owner's). */
  async expire(sql: ISql): Promise<void> {
    await sql`delete from ${sql(this.table)} where expires_at < now()`;
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
 * A pattern as the key of its row: itself, but with U+FFFD doubled and
 * U+0000 (which PostgreSQL text cannot hold) written U+FFFD "0", so that
 * two patterns never share a row.
 */
function rowKey(pattern: string): string {
  return /[\0\uFFFD]/.test(pattern)
    ? pattern.replace(/[\0\uFFFD]/g, (c) => c === "\0" ? "\uFFFD0" : c + c)
    : pattern;
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
