// The log of an in-memory bus with history: the events it published, in
// order, trimmed to the retention. A position is `<epoch>-<n>`: n counts
// the bus's publishes, and the epoch is random per bus, so a position a
// bus of an earlier process gave reads as lost, not as one of this log.
// The core keeps the number n as the place (see Place): the string is made
// only when a handler reads `delivery.position`, and places compare as
// numbers.
//
// The time of an entry (for `maxAgeMs`) is read once for all the entries
// appended in a window of at most a second (an eighth of `maxAgeMs` when
// that is shorter), by a timer at its end: reading the clock for each
// entry cost as much as the rest of the append, and once a turn of the
// event loop (in a microtask) still cost half of a round trip to a
// handler. That time is never before the entry's own, so an entry is kept
// at least `maxAgeMs`, and at most a window longer; an entry of the
// current window has none yet and counts as new. The timer does not keep
// the process alive (a bus left open must not delay its exit); `close`
// clears it.

import type { Head, Log, Page, Position } from "./_history.ts";
import type { Event } from "./types.ts";

const POSITION = /^([0-9a-f]{8})-(0|[1-9]\d{0,14})$/;
/** The length of an epoch; "-" follows it. */
const EPOCH = 8;
/** The longest window whose entries share one time (see the top). */
const WINDOW_MS = 1000;

/** An in-process log; see the comment at the top of this file. */
export class MemoryLog implements Log<number> {
  readonly #prefix = `${crypto.randomUUID().slice(0, EPOCH)}-`;
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
   * For each window that appended (from index #oldest on, oldest first): the
   * number of its newest entry, and the time at its end.
   */
  #windowLast: number[] = [];
  #windowTime: number[] = [];
  #oldest = 0;
  /** The length of a window, in ms (see the top). */
  readonly #window: number;
  /** The timer that ends the current window, while entries wait for it. */
  #stamping: ReturnType<typeof setTimeout> | undefined;

  constructor(maxEvents: number, maxAgeMs: number) {
    this.#maxEvents = maxEvents;
    this.#maxAgeMs = maxAgeMs;
    this.#window = Math.min(WINDOW_MS, Math.ceil(maxAgeMs / 8));
  }

  /** Appends an event; returns its place (see name). */
  append(event: Event): number {
    if (this.#stamping === undefined) {
      this.#stamping = setTimeout(this.#stamp, this.#window);
      unref(this.#stamping);
    }
    const n = this.#next++;
    if (n - this.#first >= this.#maxEvents) this.#drop(n + 1 - this.#maxEvents);
    else if (n - this.#first >= this.#ring.length) this.#grow();
    this.#ring[n & (this.#ring.length - 1)] = event;
    return n;
  }

  /** Gives the entries of the window that ends their time; trims by age. */
  readonly #stamp = (): void => {
    this.#stamping = undefined;
    const now = Date.now();
    this.#windowLast.push(this.#next - 1);
    this.#windowTime.push(now);
    this.#trim(now);
  };

  /** Stops the timer of the current window (the bus closes). */
  close(): void {
    clearTimeout(this.#stamping);
    this.#stamping = undefined;
  }

  valid(position: string): boolean {
    return POSITION.test(position);
  }

  /**
   * The place of a valid position: its number, or Infinity for another
   * log's (past every place of this one: reading from it reads as lost).
   */
  place(position: Position): number {
    return position.startsWith(this.#prefix)
      ? Number(position.slice(EPOCH + 1))
      : Infinity;
  }

  /** The position of a place of this log. */
  name(place: number): Position {
    return this.#prefix + place;
  }

  compare(a: number, b: number): number {
    return a - b;
  }

  floor(place: number): number {
    return place;
  }

  head(): Promise<Head<number>> {
    return Promise.resolve({ mark: this.#next - 1, seen: [] });
  }

  read(from: number | undefined, limit: number): Promise<Page<number>> {
    this.#trim(Date.now());
    let start = this.#first, lost = false;
    if (from !== undefined) {
      // Another log's place, or one past this log's end (not one it
      // gave): the whole log is owed.
      if (from >= this.#next) lost = true;
      else {
        lost = from + 1 < start;
        start = Math.max(from, start);
      }
    }
    const end = Math.min(start + limit, this.#next);
    const ring = this.#ring, mask = ring.length - 1;
    const entries = [];
    for (let n = start; n < end; n++) {
      entries.push({ position: n, event: ring[n & mask]! });
    }
    return Promise.resolve({ entries, lost });
  }

  // Drops the entries of the windows that ended before the age limit
  // (entries of this window have no time yet: they are new), and forgets
  // the windows of no entry kept.
  #trim(now: number): void {
    const cutoff = now - this.#maxAgeMs;
    const lasts = this.#windowLast, times = this.#windowTime;
    let w = this.#oldest;
    while (w < times.length && times[w]! < cutoff) w++;
    if (w > this.#oldest) this.#drop(lasts[w - 1]! + 1);
    // Windows whose entries the count limit dropped.
    while (w < lasts.length && lasts[w]! < this.#first) w++;
    if (w > 1024 && w * 2 > times.length) {
      this.#windowLast = lasts.slice(w);
      this.#windowTime = times.slice(w);
      w = 0;
    }
    this.#oldest = w;
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

/** Lets the process exit while `timer` waits (Deno, Node, Bun). */
function unref(timer: ReturnType<typeof setTimeout>): void {
  if (typeof timer === "object") (timer as { unref?(): void }).unref?.();
  else {
    const { Deno: deno } = globalThis as {
      Deno?: { unrefTimer?(id: number): void };
    };
    deno?.unrefTimer?.(timer);
  }
}
