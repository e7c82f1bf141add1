// The log of an in-memory bus with history: the events it published, in
// order, trimmed to the retention. A position is `<epoch>-<n>`: n counts
// the bus's publishes, and the epoch is random per bus, so a position a
// bus of an earlier process gave reads as lost, not as one of this log.
//
// The time of an entry (for `maxAgeMs`) is that of the end of the turn of
// the event loop that appended it, read once for all of that turn's
// entries, in a microtask: reading the clock for each entry cost as much
// as the rest of the append. That time is never before the entry's own,
// so an entry is kept at least `maxAgeMs`; an entry of the current turn
// has none yet and counts as new.

import {
  comparePositions,
  type Head,
  type Log,
  type Page,
  type Position,
} from "./_history.ts";
import type { Event } from "./types.ts";

const POSITION = /^([0-9a-f]{8})-(0|[1-9]\d{0,14})$/;
/** The length of an epoch; "-" follows it. */
const EPOCH = 8;

/** An in-process log; see the comment at the top of this file. */
export class MemoryLog implements Log {
  readonly #epoch = crypto.randomUUID().slice(0, EPOCH);
  readonly #prefix = `${this.#epoch}-`;
  readonly #maxEvents: number;
  readonly #maxAgeMs: number;
  /**
   * The entries kept, entry n at index `n & (length - 1)`: a ring, whose
   * length (a power of 2) doubles while it is full and under maxEvents.
   */
  #ring: (Event | undefined)[] = new Array(16);
  /** The number of the oldest entry kept (the newest + 1 when none). */
  #first = 1;
  /** The number of the next entry. */
  #next = 1;
  /**
   * For each turn that appended (from index #turn on, oldest first): the
   * number of its newest entry, and the time at its end.
   */
  #turnLast: number[] = [];
  #turnTime: number[] = [];
  #turn = 0;
  /** Whether this turn appended (its time is read at its end). */
  #stamping = false;

  constructor(maxEvents: number, maxAgeMs: number) {
    this.#maxEvents = maxEvents;
    this.#maxAgeMs = maxAgeMs;
  }

  /** Appends an event; returns its position. */
  append(event: Event): Position {
    if (!this.#stamping) {
      this.#stamping = true;
      queueMicrotask(this.#stamp);
    }
    const n = this.#next++;
    if (n - this.#first >= this.#maxEvents) this.#drop(n + 1 - this.#maxEvents);
    else if (n - this.#first >= this.#ring.length) this.#grow();
    this.#ring[n & (this.#ring.length - 1)] = event;
    return this.#prefix + n;
  }

  /**
   * Gives the entries of the turn that ends their time (turns of the same
   * millisecond share one record); trims by age.
   */
  readonly #stamp = (): void => {
    this.#stamping = false;
    const now = Date.now(), times = this.#turnTime, k = times.length - 1;
    if (k >= this.#turn && times[k] === now) this.#turnLast[k] = this.#next - 1;
    else {
      this.#turnLast.push(this.#next - 1);
      times.push(now);
    }
    this.#trim(now);
  };

  valid(position: string): boolean {
    return POSITION.test(position);
  }

  compare(a: Position, b: Position): number {
    // Positions of one epoch (the common case, once an event): of one
    // length, the digits order them.
    for (let i = 0; i <= EPOCH; i++) {
      if (a.charCodeAt(i) !== b.charCodeAt(i)) return comparePositions(a, b, 1);
    }
    return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
  }

  floor(position: Position): Position {
    return position;
  }

  head(): Promise<Head> {
    return Promise.resolve({ mark: this.#prefix + (this.#next - 1), seen: [] });
  }

  read(from: Position | undefined, limit: number): Promise<Page> {
    this.#trim(Date.now());
    let start = this.#first, lost = false;
    if (from !== undefined) {
      const [epoch, n] = parse(from);
      // Another log's position, or one past this log's end (not one it
      // gave): the whole log is owed.
      if (epoch !== this.#epoch || n >= this.#next) lost = true;
      else {
        lost = n + 1 < start;
        start = Math.max(n, start);
      }
    }
    const end = Math.min(start + limit, this.#next);
    const ring = this.#ring, mask = ring.length - 1;
    const entries = [];
    for (let n = start; n < end; n++) {
      entries.push({ position: this.#prefix + n, event: ring[n & mask]! });
    }
    return Promise.resolve({ entries, lost });
  }

  // Drops the entries of the turns that ended before the age limit
  // (entries of this turn have no time yet: they are new), and forgets
  // the turns of no entry kept.
  #trim(now: number): void {
    const cutoff = now - this.#maxAgeMs;
    const lasts = this.#turnLast, times = this.#turnTime;
    let turn = this.#turn;
    while (turn < times.length && times[turn]! < cutoff) turn++;
    if (turn > this.#turn) this.#drop(lasts[turn - 1]! + 1);
    // Turns whose entries the count limit dropped.
    while (turn < lasts.length && lasts[turn]! < this.#first) turn++;
    if (turn > 1024 && turn * 2 > times.length) {
      this.#turnLast = lasts.slice(turn);
      this.#turnTime = times.slice(turn);
      turn = 0;
    }
    this.#turn = turn;
  }

  // Drops the entries numbered before `first` (letting their events go).
  #drop(first: number): void {
    const ring = this.#ring, mask = ring.length - 1;
    for (let n = this.#first; n < first; n++) ring[n & mask] = undefined;
    this.#first = Math.max(first, this.#first);
  }

  // Doubles the ring (it is full), keeping each entry's index rule.
  #grow(): void {
    const old = this.#ring, ring = new Array(old.length * 2);
    for (let n = this.#first; n < this.#next - 1; n++) {
      ring[n & (ring.length - 1)] = old[n & (old.length - 1)];
    }
    this.#ring = ring;
  }
}

// A position given to read is valid (`valid` checked it).
function parse(position: Position): [string, number] {
  return [position.slice(0, EPOCH), Number(position.slice(EPOCH + 1))];
}
