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

/** An in-process log; see the comment at the top of this file. */
export class MemoryLog implements Log {
  readonly #epoch = crypto.randomUUID().slice(0, 8);
  readonly #prefix = `${this.#epoch}-`;
  readonly #maxEvents: number;
  readonly #maxAgeMs: number;
  #events: Event[] = [];
  /** Index in #events of the oldest entry kept. */
  #start = 0;
  /** The number of the oldest entry kept (the newest + 1 when none). */
  #first = 1;
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
    this.#events.push(event);
    const last = this.#last();
    if (last - this.#first >= this.#maxEvents) {
      this.#drop(last + 1 - this.#maxEvents);
    }
    return this.#at(last);
  }

  /** Gives the entries of the turn that ends their time; trims by age. */
  readonly #stamp = (): void => {
    this.#stamping = false;
    const now = Date.now();
    this.#turnLast.push(this.#last());
    this.#turnTime.push(now);
    this.#trim(now);
  };

  valid(position: string): boolean {
    return POSITION.test(position);
  }

  compare(a: Position, b: Position): number {
    return comparePositions(a, b, 1);
  }

  floor(position: Position): Position {
    return position;
  }

  head(): Promise<Head> {
    return Promise.resolve({ mark: this.#at(this.#last()), seen: [] });
  }

  read(from: Position | undefined, limit: number): Promise<Page> {
    this.#trim(Date.now());
    let index = this.#start, lost = false;
    if (from !== undefined) {
      const [epoch, n] = parse(from);
      if (epoch !== this.#epoch) lost = true;
      else {
        lost = n + 1 < this.#first;
        index += Math.max(n - this.#first, 0);
      }
    }
    const end = Math.min(index + limit, this.#events.length);
    const entries = [];
    for (let i = index; i < end; i++) {
      const position = this.#at(this.#first + i - this.#start);
      entries.push({ position, event: this.#events[i]! });
    }
    return Promise.resolve({ entries, lost });
  }

  /** The number of the newest entry (the oldest − 1 when none is kept). */
  #last(): number {
    return this.#first + this.#events.length - this.#start - 1;
  }

  #at(n: number): Position {
    return this.#prefix + n;
  }

  // Drops the entries of the turns that ended before the age limit
  // (entries of this turn have no time yet: they are new), and forgets
  // those turns.
  #trim(now: number): void {
    const cutoff = now - this.#maxAgeMs;
    const lasts = this.#turnLast, times = this.#turnTime;
    let turn = this.#turn;
    while (turn < times.length && times[turn]! < cutoff) turn++;
    if (turn > this.#turn) this.#drop(lasts[turn - 1]! + 1);
    if (turn > 1024 && turn * 2 > times.length) {
      this.#turnLast = lasts.slice(turn);
      this.#turnTime = times.slice(turn);
      turn = 0;
    }
    this.#turn = turn;
  }

  // Drops the entries numbered before `first`, and compacts the array once
  // half of it is dropped entries.
  #drop(first: number): void {
    if (first <= this.#first) return;
    this.#start += first - this.#first;
    this.#first = first;
    const start = this.#start;
    if (start > 1024 && start * 2 > this.#events.length) {
      this.#events = this.#events.slice(start);
      this.#start = 0;
    }
  }
}

// A position given to read is valid (`valid` checked it).
function parse(position: Position): [string, number] {
  return [position.slice(0, 8), Number(position.slice(9))];
}
