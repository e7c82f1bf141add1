// History and replay, once for every backend: each subscription's cursor
// in the bus's log (what it has had), and the catch-up that gives it what
// it missed — after a lost connection, or from a saved position — before
// newer live events, each exactly once. A backend supplies only the log
// (Log): memory keeps one in process (_memory_log.ts), the remote buses
// read theirs through their transport (_remote.ts).

import { backoff, sleep } from "./_deadline.ts";
import type { Event, Gap } from "./types.ts";

/**
 * A place in a log, as handlers get it (`delivery.position`) and a remote
 * log gives it: opaque outside the backend that made it.
 */
export type Position = string;

/**
 * A place in a log as the core keeps it: a Position, or a number on a log
 * that names its positions only when a handler reads one (Positions.name).
 */
export type Place = Position | number;

/**
 * An event of the log, at its position; undefined for an entry that does
 * not decode (reported as it was read): no subscription is owed it.
 */
export interface Logged<P extends Place = Position> {
  readonly position: P;
  readonly event: Event | undefined;
}

/** What one read of the log gives. */
export interface Page<P extends Place = Position> {
  /** The entries at or after the position read from, in log order. */
  readonly entries: readonly Logged<P>[];
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
  readonly horizon?: P;
  /**
   * Whether the entry at a position had become visible when the read
   * began (a log out of order: every entry before `horizon` had, and so
   * may some after it; PostgreSQL tells from the read's snapshot). Absent
   * for a log in order: every entry up to the read's end had.
   */
  visible?(position: P): boolean;
}

/**
 * Entries a lost read found removed: those after `after` (all when
 * undefined) and before `before`, the oldest it gave, that were visible
 * to the read (Page.visible).
 */
interface Removed<P extends Place> {
  readonly after: P | undefined;
  readonly before: P;
  readonly visible: Page<P>["visible"];
}

/**
 * Where a new subscription starts: it is owed nothing at or before `mark`
 * (all of it when undefined: the log is empty), nor the entries in `seen`.
 */
export interface Head<P extends Place = Position> {
  readonly mark: P | undefined;
  readonly seen: readonly P[];
}

/**
 * How positions order: log order. A log whose entries become visible in
 * log order (memory, Redis) has `floor(p) === p`; one where they may not
 * (PostgreSQL: transactions commit out of id order) gives the earliest
 * position whose entries could still have been missed when `p` was seen.
 */
export interface Positions<P extends Place = Position> {
  /** Whether a string is a position of this log (maybe of another epoch). */
  valid(position: string): boolean;
  /**
   * The place a valid position names; one of another epoch of the log
   * comes after every place of this one. Absent when places are positions.
   */
  place?(position: Position): P;
  /**
   * The position of a place, for a handler. Absent when places are
   * positions.
   */
  name?(place: P): Position;
  /**
   * Log order; a position of another epoch of the log (one that was lost
   * and started again) counts as later, both ways round.
   */
  compare(a: P, b: P): number;
  /**
   * Whether a heartbeat answered on the receiving connection proves that
   * every entry of the log's head read before it was sent has come (Redis:
   * a connection's replies and messages come in the order the server
   * handled them). Not PostgreSQL: a transaction is visible before it
   * signals listeners.
   */
  readonly beatProves?: boolean;
  /**
   * Every entry at or before this, but `position` itself, was visible
   * before `position` was, or (of the same transaction) comes ahead of it
   * wherever it comes. `position` itself when that holds of every entry
   * before it.
   */
  floor(position: P): P;
  /**
   * `position` with a floor no later than `floor` (a log out of order): what
   * a handler is given for an entry a catch-up delivered while entries
   * before `floor` may still come, so that resuming from it (`from`)
   * starts early enough to get them. Absent for a log in order.
   */
  capped?(position: P, floor: P): P;
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
export interface Log<P extends Place = Position> extends Positions<P> {
  /** Where a subscription made now starts (see Head). */
  head(): Promise<Head<P>>;
  /** Up to `limit` entries at or after `from` (the oldest when undefined). */
  read(from: P | undefined, limit: number): Promise<Page<P>>;
}

/** What a cursor delivers to: one subscription. */
export interface Follower<P extends Place = Position> {
  /** Whether this event is for the subscription (its topic or pattern). */
  wants(event: Event): boolean;
  /** Hands over a replayed or released event (it passed `admit`). */
  take(event: Event, position: P): void;
  /** Whether the subscription was cancelled (the catch-up stops). */
  readonly cancelled: boolean;
  /** Whether its queue is full (a `take` now would drop the event). */
  readonly full: boolean;
  /** Resolves once its handler has finished every event handed over. */
  idle(): Promise<void>;
  /** The most live events it holds while catching up (maxQueuedEvents). */
  readonly maxHeld: number;
  /**
   * Ends the subscription: its catch-up failed in a way retrying cannot
   * mend (see isBug); reports why.
   */
  fail(error: unknown): void;
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
export class Cursor<P extends Place = Position> {
  readonly #log: Log<P>;
  readonly #follower: Follower<P>;
  #mark: P | undefined;
  #seen = new Set<P>();
  /** The size of `seen` at which it is next swept (see #sweep). */
  #sweepAt = SWEEP;
  /** Live events waiting for the catch-up; undefined when live. */
  #held: [Event, P][] | undefined = [];
  /**
   * Held live events were dropped (more than Follower.maxHeld came): the
   * catch-up reads them from the log instead (another pass).
   */
  #dropped = false;
  /** Whether held events are being let through (see #release). */
  #releasing = false;
  #catching: Promise<void> | undefined;
  /** The hooks of the latest catch-up asked for. */
  #hooks: CatchUpHooks | undefined;
  #again = false;
  /** While a catch-up pass runs: the most the mark may rise to. */
  #horizon: P | undefined;
  /**
   * What lost reads found removed, until the mark passes it: reported as
   * a gap, never delivered after (a live event of it, held or late, is
   * older than what the catch-up went on to deliver).
   */
  #removed: Removed<P>[] = [];
  /** Whether it has a place in the log yet (see start, startFrom). */
  started = false;

  /** A cursor that holds live events until `start` or `catchUp` ends. */
  constructor(log: Log<P>, follower: Follower<P>) {
    this.#log = log;
    this.#follower = follower;
  }

  /** Whether live events wait (a catch-up is due or running). */
  get holding(): boolean {
    return this.#held !== undefined;
  }

  /**
   * Keeps a live event for after the catch-up; past Follower.maxHeld, drops
   * what it holds, to be read from the log by another pass (the events are
   * in it). While they are let through, no pass follows: it keeps them all
   * (only events a handler publishes then).
   */
  hold(event: Event, position: P): void {
    const held = this.#held!;
    if (held.length < this.#follower.maxHeld || this.#releasing) {
      held.push([event, position]);
      return;
    }
    held.length = 0;
    this.#dropped = true;
  }

  /**
   * Every entry at or before `position` reached the subscription live or
   * was not for it (an entry seen on the receiving connection, which
   * brings its events in log order): the mark rises to its floor. Not
   * while it holds (a catch-up is due or runs).
   */
  pass(position: P): void {
    if (this.started && !this.holding) this.#raise(this.#log.floor(position));
  }

  /**
   * Whether the entry at `position` is new to the subscription; if it is,
   * it counts as delivered from now on.
   */
  admit(position: P): boolean {
    const log = this.#log;
    const mark = this.#mark;
    if (mark !== undefined && log.compare(position, mark) <= 0) return false;
    if (this.#seen.size > 0 && this.#seen.has(position)) return false;
    if (this.#removed.length > 0 && this.#wasRemoved(position)) return false;
    const floor = log.floor(position);
    // Every entry before it came first (a log in order: always), and no
    // catch-up pass caps the mark: the mark alone says what was delivered.
    if (floor === position && this.#horizon === undefined) {
      this.#mark = position;
      return true;
    }
    this.#seen.add(position);
    this.#raise(floor);
    if (this.#seen.size >= this.#sweepAt) this.#sweep();
    return true;
  }

  // Raises the mark to `floor`, but not past the horizon of a catch-up
  // pass under way.
  #raise(floor: P): void {
    const log = this.#log, mark = this.#mark, horizon = this.#horizon;
    if (horizon !== undefined && log.compare(floor, horizon) > 0) {
      floor = horizon;
    }
    if (mark === undefined || log.compare(floor, mark) > 0) this.#mark = floor;
  }

  // Whether a lost read found the entry at `position` removed (see
  // #removed); forgets what the mark has passed.
  #wasRemoved(position: P): boolean {
    const log = this.#log, mark = this.#mark;
    this.#removed = this.#removed.filter(({ before }) =>
      mark === undefined || log.compare(before, mark) > 0
    );
    return this.#removed.some(({ after, before, visible }) =>
      (after === undefined || log.compare(position, after) > 0) &&
      log.compare(position, before) < 0 &&
      (visible === undefined || visible(position))
    );
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

  /**
   * Starts at the head of the log, then lets held live events through (or,
   * when some were dropped, catches up with `hooks` first).
   */
  start(head: Head<P>, hooks: CatchUpHooks): void {
    this.started = true;
    this.#mark = head.mark;
    for (const position of head.seen) this.#seen.add(position);
    if (this.#dropped) void this.catchUp(hooks);
    else this.#release();
  }

  /**
   * Starts after `from` (a position a handler saw), or at the oldest
   * entry (`"earliest"`), and catches up.
   */
  startFrom(from: string, hooks: CatchUpHooks): Promise<void> {
    this.started = true;
    if (from !== "earliest") {
      const log = this.#log;
      const place = log.place?.(from) ?? from as P;
      this.#mark = log.floor(place);
      this.#seen.add(place);
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
   * after, with the latest hooks. A read that fails for want of the
   * server is reported (once a pass for each reason in a row) and retried
   * until the subscription or the bus ends; any other failure (see isBug)
   * ends the subscription (Follower.fail). It hands the log over at the
   * subscription's pace: a full queue, and each page, wait for its handler.
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
      this.#again = this.#dropped = false;
      const hooks = this.#hooks!;
      let reported: string | undefined;
      for (let attempt = 1; !this.#ended(hooks); attempt++) {
        try {
          await this.#replay(hooks);
          break;
        } catch (error) {
          if (isBug(error)) {
            this.#follower.fail(error);
            break;
          }
          // Each reason once a pass: a lost connection, then a refusal.
          const why = error instanceof Error ? error.message : String(error);
          if (why !== reported) hooks.report(error);
          reported = why;
          await sleep(backoff(attempt, 2000), hooks.signal);
        } finally {
          this.#horizon = undefined;
        }
      }
    } while (
      (this.#again || this.#dropped) && !this.#ended(this.#hooks!)
    );
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
      if (page.lost) {
        hooks.lost();
        // What it found removed before the entries it gives is reported: a
        // live event of it (held, or come late) is not delivered after
        // them. (With no entries, nothing newer is delivered: held events
        // go in order.)
        const oldest = page.entries[0]?.position;
        if (oldest !== undefined) {
          this.#removed.push({
            after: from,
            before: oldest,
            visible: page.visible,
          });
        }
        // The page starts at the oldest entry kept: all of it is owed (a
        // mark of a log that started again, or one past its end, would
        // hide it). What was seen stays skipped, and so does the entry at
        // the mark, unless the log started again below the mark: then
        // those positions name other events.
        const mark = this.#mark;
        if (oldest !== undefined && mark !== undefined) {
          const order = this.#log.compare(oldest, mark);
          if (order < 0) this.#seen.clear();
          if (order === 0) this.#seen.add(mark);
        }
        this.#mark = undefined;
      }
      for (const { position, event } of page.entries) {
        if (event === undefined || !follower.wants(event)) {
          // Not owed: the mark rises past it (as admit would raise it), so
          // a later catch-up neither reads it again nor finds it trimmed.
          this.#raise(this.#log.floor(position));
          continue;
        }
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

  // Lets the held live events through, in order. It holds until the last:
  // an event a handler publishes meanwhile (memory) waits behind them,
  // instead of overtaking them (and raising the mark past them).
  #release(): void {
    const held = this.#held ?? [];
    this.#releasing = true;
    for (let i = 0; i < held.length; i++) {
      const [event, position] = held[i]!;
      if (this.admit(position)) this.#follower.take(event, position);
    }
    this.#releasing = false;
    this.#held = undefined;
  }
}

/**
 * Whether a failed read of the log is a bug (a `TypeError`,
 * `RangeError`, `ReferenceError` or `SyntaxError`): retrying cannot mend
 * it, unlike a lost connection, a timeout or a server's refusal (which an
 * operator may lift).
 */
export function isBug(error: unknown): boolean {
  return error instanceof TypeError || error instanceof RangeError ||
    error instanceof ReferenceError || error instanceof SyntaxError;
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
export class History<P extends Place = Position> {
  readonly log: Log<P>;
  readonly #hooks: HistoryHooks;
  readonly #cursors = new Set<Cursor<P>>();
  /** Whether a live event came without a position (see `unlogged`). */
  #unlogged = false;
  /** The position of the last live event the receiving connection brought. */
  #arrived: P | undefined;
  /** The head of the log as last read for a heartbeat, and when (see beat). */
  #probe: { mark: P | undefined; at: number } | undefined;
  /** Whether that read is under way. */
  #reading = false;
  /** Lost receiving connections so far (a probe read before one is void). */
  #outages = 0;

  constructor(log: Log<P>, hooks: HistoryHooks) {
    this.log = log;
    this.#hooks = hooks;
  }

  /** A cursor for a new subscription (holding live events until started). */
  cursor(follower: Follower<P>): Cursor<P> {
    const cursor = new Cursor(this.log, follower);
    this.#cursors.add(cursor);
    return cursor;
  }

  /**
   * Starts a cursor once its subscription is confirmed: at the head of the
   * log (a round trip on a remote bus), or after `from` (the catch-up
   * runs on; a `from` the log no longer holds is a gap from the epoch).
   */
  async start(cursor: Cursor<P>, from: string | undefined): Promise<void> {
    const since = from === undefined ? new Date() : new Date(0);
    const hooks = {
      ...this.#hooks,
      lost: () => this.#hooks.gap({ since, until: new Date(), lost: true }),
    };
    if (from === undefined) cursor.start(await this.log.head(), hooks);
    else void cursor.startFrom(from, hooks);
  }

  /** Forgets the cursor of a cancelled subscription. */
  forget(cursor: Cursor<P>): void {
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

  /**
   * A live event at `position` came on the receiving connection: the
   * events of every subscription up to it have come too (the connection
   * brings them in log order).
   */
  arrived(position: P): void {
    this.#arrived = position;
  }

  /**
   * A heartbeat sent at `sentAt` was answered on the receiving connection:
   * on a log whose heartbeats prove it (Positions.beatProves), the head
   * read before it was sent has come, for every subscription not catching
   * up (Cursor.pass), so a quiet one's place moves on though none of its
   * events come. Then the head is read again, for a later heartbeat.
   */
  beat(sentAt: number): void {
    if (!this.log.beatProves || this.#reading) return;
    const probe = this.#probe;
    if (probe?.mark !== undefined && sentAt > probe.at) {
      for (const cursor of this.#cursors) cursor.pass(probe.mark);
    }
    this.#probe = undefined;
    this.#reading = true;
    const outages = this.#outages;
    this.log.head().then(({ mark }) => {
      if (this.#outages === outages) this.#probe = { mark, at: Date.now() };
    }, () => {}).finally(() => (this.#reading = false));
  }

  /**
   * The receiving connection was lost: every cursor not catching up has
   * had what the last live event proves (see `arrived`, Cursor.pass), so a
   * quiet subscription's catch-up starts there; live events wait from now
   * on.
   */
  pause(): void {
    const arrived = this.#arrived;
    this.#arrived = undefined;
    this.#probe = undefined;
    this.#outages++;
    for (const cursor of this.#cursors) {
      if (arrived !== undefined) cursor.pass(arrived);
      cursor.pause();
    }
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
