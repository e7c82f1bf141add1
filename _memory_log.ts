// The log of an in-memory bus with history: the events it published, in
// order, trimmed to the retention. A position is `<epoch>-<n>`: n counts
// the bus's publishes, and the epoch is random per bus, so a position a
// bus of an earlier process gave reads as lost, not as one of this log.

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
  readonly #maxEvents: number;
  readonly #maxAgeMs: number;
  #events: Event[] = [];
  #times: number[] = [];
  /** Index in the arrays of the oldest entry kept. */
  #start = 0;
  /** The number of the oldest entry kept (the newest + 1 when none). */
  #first = 1;

  constructor(maxEvents: number, maxAgeMs: number) {
    this.#maxEvents = maxEvents;
    this.#maxAgeMs = maxAgeMs;
  }

  /** Appends an event; returns its position. */
  append(event: Event): Position {
    const now = Date.now();
    this.#events.push(event);
    this.#times.push(now);
    this.#trim(now);
    return this.#at(this.#last());
  }

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
      // Another log's position, or one past this log's end (not one it
      // gave): the whole log is owed.
      if (epoch !== this.#epoch || n > this.#last()) lost = true;
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
    return `${this.#epoch}-${n}`;
  }

  // Drops entries past the retention (count, then age), and compacts the
  // arrays once half of them is dropped entries.
  #trim(now: number): void {
    const cutoff = now - this.#maxAgeMs;
    const length = this.#events.length;
    let start = Math.max(this.#start, length - this.#maxEvents);
    while (start < length && this.#times[start]! < cutoff) start++;
    this.#first += start - this.#start;
    this.#start = start;
    if (start > 1024 && start * 2 > length) {
      this.#events = this.#events.slice(start);
      this.#times = this.#times.slice(start);
      this.#start = 0;
    }
  }
}

// A position given to read is valid (`valid` checked it).
function parse(position: Position): [string, number] {
  return [position.slice(0, 8), Number(position.slice(9))];
}
