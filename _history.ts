// History and replay, once for every backend: each subscription's cursor
// in the bus's log (what it has had), and the catch-up that gives it what
// it missed — after a lost connection, or from a saved position — before
// newer live events, each exactly once. A backend supplies only the log
// (Log): memory keeps one in process (_memory_log.ts), the remote buses
// read theirs through their transport (_remote.ts).

import { backoff, sleep } from "./_deadline.ts";
import type { Event, Gap } from "./types.ts";

/** A place in a log: opaque outside the backend that made it. */
export type Position = string;

/** An event of the log, at its position. */
export interface Logged {
  readonly position: Position;
  readonly event: Event;
}

/** What one read of the log gives. */
export interface Page {
  /** The entries at or after the position read from, in log order. */
  readonly entries: readonly Logged[];
  /**
   * Entries after the position read from are gone (trimmed, or the log
   * itself was lost): `entries` start at the oldest the log still holds.
   */
  readonly lost: boolean;
  /**
   * A log whose entries may become visible out of log order (see
   * Positions.floor) gives the horizon of the read: every entry before it
   * had become visible when the read began, so this read and every later
   * one holds it; an entry after it may still appear behind positions
   * already read (a transaction that commits late). Undefined for a log in
   * order.
   */
  readonly horizon?: Position;
}

/**
 * Where a new subscription starts: it is owed nothing at or before `mark`
 * (all of it when undefined: the log is empty), nor the entries in `seen`.
 */
export interface Head {
  readonly mark: Position | undefined;
  readonly seen: readonly Position[];
}

/**
 * How positions order: log order. A log whose entries become visible in
 * log order (memory, Redis) has `floor(p) === p`; one where they may not
 * (PostgreSQL: transactions commit out of id order) gives the earliest
 * position whose entries could still have been missed when `p` was seen.
 */
export interface Positions {
  /** Whether a string is a position of this log (maybe of another epoch). */
  valid(position: string): boolean;
  /**
   * Log order; a position of another epoch of the log (one that was lost
   * and started again) counts as later, both ways round.
   */
  compare(a: Position, b: Position): number;
  /**
   * Every entry at or before this, but `position` itself, was visible
   * before `position` was.
   */
  floor(position: Position): Position;
  /**
   * `position` with a floor no later than `floor` (a log out of order): what
   * a handler is given for an entry a catch-up delivered while entries
   * before `floor` may still come, so that resuming from it (`from`)
   * starts early enough to get them. Absent for a log in order.
   */
  capped?(position: Position, floor: Position): Position;
}

/**
 * Log order of positions written `<epoch>-<n>-<n>…` (decimal numbers
 * without leading zeros), by their first `numbers` numbers; a position of
 * another epoch counts as later, both ways round (see Positions.compare).
 * Runs for every event delivered: it compares characters in place,
 * parsing and allocating nothing.
 */
export function comparePositions(
  a: Position,
  b: Position,
  numbers: number,
): number {
  let i = a.indexOf("-");
  if (i !== b.indexOf("-") || compareRun(a, b, 0, 0, i) !== 0) return 1;
  let j = i;
  for (let k = 0; k < numbers; k++) {
    const m = i + 1, n = j + 1;
    i = end(a, m);
    j = end(b, n);
    // Without leading zeros, a longer number is a larger one.
    const order = (i - m) - (j - n) || compareRun(a, b, m, n, i - m);
    if (order !== 0) return order;
  }
  return 0;
}

// Where the number starting at `from` ends: its "-" or the end of `text`.
function end(text: string, from: number): number {
  const at = text.indexOf("-", from);
  return at < 0 ? text.length : at;
}

// The order of `length` characters of `a` from `i` and of `b` from `j`.
function compareRun(
  a: string,
  b: string,
  i: number,
  j: number,
  length: number,
): number {
  for (let k = 0; k < length; k++) {
    const order = a.charCodeAt(i + k) - b.charCodeAt(j + k);
    if (order !== 0) return order < 0 ? -1 : 1;
  }
  return 0;
}

/** A bus's log, as the core reads it. */
export interface Log extends Positions {
  /** Where a subscription made now starts (see Head). */
  head(): Promise<Head>;
  /** Up to `limit` entries at or after `from` (the oldest when undefined). */
  read(from: Position | undefined, limit: number): Promise<Page>;
}

/** What a cursor delivers to: one subscription. */
export interface Follower {
  /** Whether this event is for the subscription (its topic or pattern). */
  wants(event: Event): boolean;
  /** Hands over a replayed or released event (it passed `admit`). */
  take(event: Event, position: Position): void;
  /** Whether the subscription was cancelled (the catch-up stops). */
  readonly cancelled: boolean;
  /** Whether its queue is full (a `take` now would drop the event). */
  readonly full: boolean;
  /** Resolves once its handler has finished every event handed over. */
  idle(): Promise<void>;
}

/** Entries one read asks for. */
const PAGE = 1000;
/** The smallest size at which a cursor's set of seen positions is swept. */
const SWEEP = 64;

/**
 * A subscription's place in the log: every entry at or before `mark` was
 * delivered (or is older than the subscription), and so was each in
 * `seen`. While it catches up, live events wait in `held`.
 *
 * An entry seen live raises the mark to its floor: live events come in the
 * order they became visible. One read from the log does not say as much (a
 * transaction may commit behind the pages a catch-up has read, and is owed
 * live, after it): while a catch-up pass runs, the mark stays at or before
 * the horizon of its first read (see Page.horizon), and what it reads past
 * that is kept in `seen`.
 */
export class Cursor {
  readonly #log: Log;
  readonly #follower: Follower;
  #mark: Position | undefined;
  #seen = new Set<Position>();
  /** The size of `seen` at which it is next swept (see #sweep). */
  #sweepAt = SWEEP;
  /** Live events waiting for the catch-up; undefined when live. */
  #held: [Event, Position][] | undefined = [];
  #catching: Promise<void> | undefined;
  /** The hooks of the latest catch-up asked for. */
  #hooks: CatchUpHooks | undefined;
  #again = false;
  /** While a catch-up pass runs: the most the mark may rise to. */
  #horizon: Position | undefined;
  /** Whether it has a place in the log yet (see start, startFrom). */
  started = false;

  /** A cursor that holds live events until `start` or `catchUp` ends. */
  constructor(log: Log, follower: Follower) {
    this.#log = log;
    this.#follower = follower;
  }

  /** Whether live events wait (a catch-up is due or running). */
  get holding(): boolean {
    return this.#held !== undefined;
  }

  /** Keeps a live event for after the catch-up. */
  hold(event: Event, position: Position): void {
    this.#held!.push([event, position]);
  }

  /**
   * Whether the entry at `position` is new to the subscription; if it is,
   * it counts as delivered from now on.
   */
  admit(position: Position): boolean {
    const log = this.#log;
    const mark = this.#mark;
    if (mark !== undefined && log.compare(position, mark) <= 0) return false;
    if (this.#seen.size > 0 && this.#seen.has(position)) return false;
    let floor = log.floor(position);
    // A log in order: the mark alone says what was delivered.
    if (floor === position) {
      this.#mark = position;
      return true;
    }
    this.#seen.add(position);
    const horizon = this.#horizon;
    if (horizon !== undefined && log.compare(floor, horizon) > 0) {
      floor = horizon;
    }
    if (mark === undefined || log.compare(floor, mark) > 0) this.#mark = floor;
    if (this.#seen.size >= this.#sweepAt) this.#sweep();
    return true;
  }

  // Forgets the positions seen at or before the mark (it covers them),
  // once the set has doubled since the last sweep: amortized, a compare
  // or so per event.
  #sweep(): void {
    const log = this.#log, mark = this.#mark!;
    for (const seen of this.#seen) {
      if (log.compare(seen, mark) <= 0) this.#seen.delete(seen);
    }
    this.#sweepAt = Math.max(SWEEP, 2 * this.#seen.size);
  }

  /** Starts at the head of the log, then lets held live events through. */
  start(head: Head): void {
    this.started = true;
    this.#mark = head.mark;
    for (const position of head.seen) this.#seen.add(position);
    this.#release();
  }

  /**
   * Starts after `from` (a position a handler saw), or at the oldest
   * entry (`"earliest"`), and catches up.
   */
  startFrom(from: string, hooks: CatchUpHooks): Promise<void> {
    this.started = true;
    if (from !== "earliest") {
      this.#mark = this.#log.floor(from);
      this.#seen.add(from);
    }
    return this.catchUp(hooks);
  }

  /** Holds live events from now on (the connection was lost). */
  pause(): void {
    this.#held ??= [];
  }

  /**
   * Delivers what the log holds after the mark, then the held live events
   * (those not delivered by then); calls `hooks.lost` for each read that
   * finds some of it gone. Asked again while running, it runs once more
   * after, with the latest hooks. A failed read is reported (the first of
   * a pass) and retried until the subscription or the bus ends. It hands
   * the log over at the subscription's pace: a full queue, and each page,
   * wait for its handler.
   */
  catchUp(hooks: CatchUpHooks): Promise<void> {
    this.pause();
    this.#hooks = hooks;
    if (this.#catching !== undefined) {
      this.#again = true;
      return this.#catching;
    }
    this.#catching = this.#run().finally(() => {
      this.#catching = undefined;
    });
    return this.#catching;
  }

  async #run(): Promise<void> {
    do {
      this.#again = false;
      const hooks = this.#hooks!;
      for (let attempt = 1; !this.#ended(hooks); attempt++) {
        try {
          await this.#replay(hooks);
          break;
        } catch (error) {
          if (attempt === 1) hooks.report(error);
          await sleep(backoff(attempt, 2000), hooks.signal);
        } finally {
          this.#horizon = undefined;
        }
      }
    } while (this.#again && !this.#ended(this.#hooks!));
    // Ended: the held events are dropped (they stay in the log).
    if (this.#ended(this.#hooks!)) this.#held = undefined;
    this.#release();
  }

  #ended(hooks: CatchUpHooks): boolean {
    return this.#follower.cancelled || hooks.signal.aborted;
  }

  // One pass: pages through the log from the mark, handing over every
  // entry the subscription wants and has not had. It stops at once when
  // the subscription or the bus ends (no handler is called after close).
  async #replay(hooks: CatchUpHooks): Promise<void> {
    const follower = this.#follower;
    for (let from = this.#mark, first = true;; first = false) {
      const page = await this.#log.read(from, PAGE);
      if (this.#ended(hooks)) return;
      if (first) this.#horizon = page.horizon;
      if (page.lost) hooks.lost();
      for (const { position, event } of page.entries) {
        if (!follower.wants(event)) continue;
        if (follower.full) await follower.idle();
        if (this.#ended(hooks)) return;
        if (!this.admit(position)) continue;
        const horizon = this.#horizon;
        follower.take(
          event,
          horizon === undefined
            ? position
            : this.#log.capped!(position, horizon),
        );
      }
      await follower.idle();
      if (page.entries.length < PAGE || this.#ended(hooks)) return;
      from = page.entries.at(-1)!.position;
    }
  }

  #release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const [event, position] of held) {
      if (this.admit(position)) this.#follower.take(event, position);
    }
  }
}

/** What a catch-up reports to, and when it stops. */
export interface CatchUpHooks {
  /** The log no longer holds some of what is owed (see Gap.lost). */
  lost(): void;
  /** A read of the log failed (it is retried with backoff). */
  report(error: unknown): void;
  /** Aborts when the bus closes. */
  readonly signal: AbortSignal;
}

/** The key a live message carries its position under (see `withPosition`). */
export const POSITION_KEY = "dataknobs_position";
const SUFFIX = `,"${POSITION_KEY}":"`;

/**
 * `text` with the position `source` carries, if any (a large event's body
 * fetched for a reference notification that carried its position).
 */
export function withPositionOf(source: string, text: string): string {
  const [, position] = splitPosition(source);
  return position === undefined
    ? text
    : `${text.slice(0, -1)}${SUFFIX}${position}"}`;
}

/**
 * Splits a live message into the event's wire text and its position, when
 * it carries one: the event's JSON object with one more key, last,
 * `"dataknobs_position":"<position>"` (a reader that does not know it,
 * such as the Python bus, ignores it).
 */
export function splitPosition(
  text: string,
): [text: string, position: Position | undefined] {
  if (!text.endsWith('"}')) return [text, undefined];
  const at = text.lastIndexOf(SUFFIX);
  if (at < 0) return [text, undefined];
  const position = text.slice(at + SUFFIX.length, -2);
  if (!/^[\w.:-]+$/.test(position)) return [text, undefined];
  return [`${text.slice(0, at)}}`, position];
}

/** What the history of a bus reports to. */
export interface HistoryHooks extends Omit<CatchUpHooks, "lost"> {
  /** Reports events the log can no longer supply. */
  gap(gap: Gap): void;
}

/**
 * The history of one bus: its log and the cursors of its subscriptions,
 * which it pauses when the receiving connection is lost and catches up
 * once it is back.
 */
export class History {
  readonly log: Log;
  readonly #hooks: HistoryHooks;
  readonly #cursors = new Set<Cursor>();
  /** Whether a live event came without a position (see `unlogged`). */
  #unlogged = false;

  constructor(log: Log, hooks: HistoryHooks) {
    this.log = log;
    this.#hooks = hooks;
  }

  /** A cursor for a new subscription (holding live events until started). */
  cursor(follower: Follower): Cursor {
    const cursor = new Cursor(this.log, follower);
    this.#cursors.add(cursor);
    return cursor;
  }

  /**
   * Starts a cursor once its subscription is confirmed: at the head of the
   * log (a round trip on a remote bus), or after `from` (the catch-up
   * runs on; a `from` the log no longer holds is a gap from the epoch).
   */
  async start(cursor: Cursor, from: string | undefined): Promise<void> {
    if (from === undefined) {
      cursor.start(await this.log.head());
      return;
    }
    const since = new Date(0);
    void cursor.startFrom(from, {
      ...this.#hooks,
      lost: () => this.#hooks.gap({ since, until: new Date(), lost: true }),
    });
  }

  /** Forgets the cursor of a cancelled subscription. */
  forget(cursor: Cursor): void {
    this.#cursors.delete(cursor);
  }

  /**
   * A live event came that is not in the log (a publisher without history,
   * such as a Python bus): from now on a lost connection is also a gap,
   * since the log cannot replay such events.
   */
  unlogged(): void {
    this.#unlogged = true;
  }

  /** The receiving connection was lost: live events wait from now on. */
  pause(): void {
    for (const cursor of this.#cursors) cursor.pause();
  }

  /**
   * The receiving connection is back (lost since `since`): every cursor
   * catches up; what the log no longer holds is one gap (`lost`), and so
   * is the outage itself once events not in the log were seen.
   */
  resume(since: Date): void {
    if (this.#unlogged) this.#hooks.gap({ since, until: new Date() });
    let reported = false;
    const lost = () => {
      if (reported) return;
      reported = true;
      this.#hooks.gap({ since, until: new Date(), lost: true });
    };
    for (const cursor of this.#cursors) {
      if (cursor.started) void cursor.catchUp({ ...this.#hooks, lost });
    }
  }
}
