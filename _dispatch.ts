// The delivery core every backend shares: the subscription table, pattern
// matching, ordered per-subscription queues, error isolation and draining.
// A backend only tells it "this event (or these bytes) arrived" and is told
// when to start and stop listening for a topic or pattern.

import { untilAborted } from "./_deadline.ts";
import { type Deferred, deferred } from "./_deferred.ts";
import { compilePattern } from "./_pattern.ts";
import { scrub } from "./_scrub.ts";
import type { Interest } from "./_transport.ts";
import type {
  Cursor,
  Follower,
  History,
  Place,
  Position,
  Positions,
} from "./_history.ts";
import {
  type Delivery,
  type ErrorHandler,
  Event,
  EventBusError,
  type EventHandler,
  type Subscription,
} from "./types.ts";

/** The delivery of an event that has no position (no history). */
const UNLOGGED: Delivery = Object.freeze({});

/**
 * The key of what a publisher in this process hands the handlers beside
 * an event, in its delivery: the publish span's context (see Telemetry).
 */
export const CONTEXT: unique symbol = Symbol("publish context");

/** A delivery, as the core hands it to handlers. */
export interface Delivered extends Delivery {
  readonly [CONTEXT]?: unknown;
}

/**
 * The delivery of an event at `place` (if any), with `context`: a place
 * `log` names (a number, see Positions.name) gets its position only when a
 * handler reads it.
 */
export function delivery(
  place?: Place,
  context?: unknown,
  log?: Positions<Place>,
): Delivered {
  if (typeof place === "number") return new Named(log!, place, context);
  const position = place;
  if (context === undefined) {
    return position === undefined ? UNLOGGED : Object.freeze({ position });
  }
  return Object.freeze(
    position === undefined
      ? { [CONTEXT]: context }
      : { position, [CONTEXT]: context },
  );
}

/**
 * The delivery of an event at a place its log names (see `delivery`):
 * `position` is made each time a handler reads it (equal each time), so
 * that no string is made for a handler that does not. Frozen, like every
 * delivery: `position` and the context are getters of the class.
 */
class Named implements Delivered {
  readonly #log: Positions<Place>;
  readonly #place: number;
  readonly #context: unknown;

  constructor(log: Positions<Place>, place: number, context: unknown) {
    this.#log = log;
    this.#place = place;
    this.#context = context;
    Object.freeze(this);
  }

  get position(): Position {
    return this.#log.name!(this.#place);
  }

  get [CONTEXT](): unknown {
    return this.#context;
  }
}

/** What the core asks of a backend when interests come and go. */
export interface Listener {
  /** Starts listening; `since` is when subscribe was called (epoch ms). */
  watch(interest: Interest, since: number): Promise<void>;
  unwatch(interest: Interest): Promise<void>;
}

interface Entry {
  readonly interest: Interest;
  readonly regex: RegExp | null;
  readonly subs: Set<Sub>;
  ready: Promise<void>;
}

/** Default `onError`: one line naming the subscription and the event. */
export const logError: ErrorHandler = (error, event, subscription) => {
  const where = [
    subscription && `subscription ${subscription.subscriptionId}`,
    event && `event ${event.eventId} on "${event.topic}"`,
  ].filter(Boolean).join(", ");
  const message = error instanceof Error ? error.message : String(error);
  console.error(`[@dataknobs/events] ${where || "bus"}: ${message}`);
};

/** The subscription table and the queues behind it. */
export class Dispatcher {
  readonly #exact = new Map<string, Entry>();
  readonly #patterns = new Map<string, Entry>();
  readonly #listener: Listener;
  readonly #onError: ErrorHandler;
  readonly maxQueued: number;
  /** The bus's history, when it keeps one. */
  readonly history: History<Place> | undefined;
  #changes: Promise<void> = Promise.resolve();
  #closing = false;
  closed = false;
  /** The subscription whose handler is running synchronously, if any. */
  current: Sub | undefined;
  /** Cancelled subscriptions whose handler is still running. */
  readonly cancelling: Set<Sub> = new Set();
  /** The number of the last subscription made (see Sub.serial). */
  serial = 0;

  constructor(
    listener: Listener,
    onError: ErrorHandler,
    maxQueued: number,
    history?: History<Place>,
  ) {
    this.#listener = listener;
    this.#onError = onError;
    this.maxQueued = maxQueued;
    this.history = history;
  }

  /**
   * Adds a subscription; resolves once the backend listens for it (and,
   * with history, it has its place in the log: after `from`, if given).
   * Aborting `signal` (not aborted yet) cancels it; before that, it
   * rejects.
   */
  async subscribe(
    topic: string,
    handler: EventHandler,
    pattern: string | null,
    signal?: AbortSignal,
    from?: string,
  ): Promise<Subscription> {
    const since = Date.now();
    const table = pattern === null ? this.#exact : this.#patterns;
    const name = pattern ?? topic;
    let entry = table.get(name);
    if (entry === undefined) {
      const interest: Interest = {
        kind: pattern === null ? "topic" : "pattern",
        name,
      };
      const created: Entry = {
        interest,
        regex: pattern === null ? null : compilePattern(pattern),
        subs: new Set(),
        ready: Promise.resolve(),
      };
      created.ready = this.#change(() => this.#listener.watch(interest, since));
      created.ready.catch(() => {
        if (table.get(name) === created) table.delete(name);
      });
      table.set(name, created);
      entry = created;
    }
    const sub = new Sub(this, entry, topic, handler, pattern, signal);
    entry.subs.add(sub);
    const made = entry.ready.then(() =>
      sub.cursor === undefined
        ? undefined
        : this.history!.start(sub.cursor, from)
    );
    try {
      await (signal === undefined ? made : untilAborted(made, signal));
    } catch (error) {
      if (signal?.aborted) {
        // Given up: the backend may still confirm; cancel() then undoes it.
        void sub.cancel();
        throw signal.reason;
      }
      entry.subs.delete(sub);
      sub.forget();
      throw error;
    }
    return sub;
  }

  /** Removes a subscription; the backend stops listening when it was last. */
  remove(entry: Entry, sub: Sub): Promise<void> {
    entry.subs.delete(sub);
    const table = entry.regex === null ? this.#exact : this.#patterns;
    if (entry.subs.size > 0 || table.get(entry.interest.name) !== entry) {
      return entry.ready.catch(() => {});
    }
    table.delete(entry.interest.name);
    return this.#change(async () => {
      await entry.ready.catch(() => {});
      if (!this.#closing) await this.#listener.unwatch(entry.interest);
    });
  }

  // Backend calls for watching and unwatching run one at a time, in order.
  #change(step: () => Promise<void>): Promise<void> {
    const next = this.#changes.then(step);
    this.#changes = next.catch(() => {});
    return next;
  }

  /**
   * Hands an event (at `place` in the log, if it has one; its delivery
   * `given`) to the subscriptions it is for: `via` null means every
   * matching one (memory); a topic interest means the exact subscriptions
   * to that topic, when it is the event's; a pattern interest means that
   * pattern's subscriptions, when its pattern matches. With `wait`,
   * returns a promise that settles once the handler calls this delivery
   * started have finished, or undefined when there are none still running.
   * A subscription busy with an earlier event queues this one and is not
   * waited for: waiting there could deadlock a handler that publishes to
   * its own topic.
   */
  deliver(
    event: Event,
    via: Interest | null,
    wait: boolean,
    given: Delivered = UNLOGGED,
    place?: Place,
  ): Promise<void> | undefined {
    if (this.#closing) return undefined;
    // The receivers are fixed now: a subscription a handler makes while
    // this event is being handed over does not get it.
    const horizon = this.serial;
    if (via !== null) {
      const entry = via.kind === "topic"
        ? (via.name === event.topic ? this.#exact.get(via.name) : undefined)
        : this.#patterns.get(via.name);
      return settled(this.#offer(entry, event, wait, horizon, given, place));
    }
    const exact = this.#exact.get(event.topic);
    let pending = this.#offer(exact, event, wait, horizon, given, place);
    for (const entry of this.#patterns.values()) {
      const done = this.#offer(entry, event, wait, horizon, given, place);
      if (done !== undefined) pending = collect(pending, done);
    }
    return settled(pending);
  }

  // Offers an event to each subscription of an entry whose pattern (if
  // any) matches, made before `horizon`; the promises of the handler calls
  // that started, if `wait`.
  #offer(
    entry: Entry | undefined,
    event: Event,
    wait: boolean,
    horizon: number,
    given: Delivered,
    place: Place | undefined,
  ): Promise<void> | Promise<void>[] | undefined {
    if (entry === undefined) return undefined;
    if (entry.regex !== null && !entry.regex.test(event.topic)) {
      return undefined;
    }
    let pending: Promise<void> | Promise<void>[] | undefined;
    for (const sub of entry.subs) {
      if (sub.serial > horizon) continue;
      const done = sub.offer(event, wait, given, place);
      if (done !== undefined) pending = collect(pending, done);
    }
    return pending;
  }

  /** How many events wait for handlers, over every subscription. */
  queued(): number {
    let count = 0;
    for (const table of [this.#exact, this.#patterns]) {
      for (const entry of table.values()) {
        for (const sub of entry.subs) count += sub.queued;
      }
    }
    return count;
  }

  /** Decodes wire text; a malformed message is reported, giving undefined. */
  decode(text: string): Event | undefined {
    try {
      return Event.fromJSON(text);
    } catch (error) {
      this.report(error, null, null);
      return undefined;
    }
  }

  /** Reports an error through `onError`, which must never break delivery. */
  report(error: unknown, event: Event | null, sub: Subscription | null): void {
    try {
      this.#onError(error, event, sub);
    } catch (failure) {
      logError(failure, event, sub);
    }
  }

  /**
   * Stops intake, waits up to `timeoutMs` for handlers to finish what they
   * have (not for a handler that calls this synchronously, which would
   * deadlock), then drops and reports the rest. No handler is called after
   * this resolves.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.#closing = true;
    const caller = this.current;
    const subs = [
      ...new Set([
        ...[...this.#exact.values(), ...this.#patterns.values()]
          .flatMap((entry) => [...entry.subs]),
        ...this.cancelling,
      ]),
    ];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([
      Promise.all(subs.filter((s) => s !== caller).map((s) => s.idle())),
      timeout,
    ]);
    clearTimeout(timer);
    this.closed = true;
    for (const sub of subs) {
      sub.detach();
      const dropped = sub.discard();
      if (dropped > 0) {
        this.report(
          new EventBusError(
            "DROPPED_ON_CLOSE",
            `Dropped ${dropped} queued event(s) of subscription ${sub.subscriptionId} on close: the handler did not finish within closeTimeoutMs (${timeoutMs} ms) or called close() itself`,
            { dropped },
          ),
          null,
          sub,
        );
      }
    }
    this.#exact.clear();
    this.#patterns.clear();
  }
}

function collect(
  pending: Promise<void> | Promise<void>[] | undefined,
  done: Promise<void> | Promise<void>[],
): Promise<void> | Promise<void>[] {
  if (pending === undefined) return done;
  const list = Array.isArray(pending) ? pending : [pending];
  if (Array.isArray(done)) list.push(...done);
  else list.push(done);
  return list;
}

function settled(
  pending: Promise<void> | Promise<void>[] | undefined,
): Promise<void> | undefined {
  return Array.isArray(pending) ? Promise.all(pending).then(() => {}) : pending;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === "function";
}

/** A subscription with its own queue: one handler call at a time, in order. */
class Sub implements Subscription, Follower<Place> {
  readonly subscriptionId: string = crypto.randomUUID();
  readonly topic: string;
  readonly pattern: string | null;
  readonly createdAt: Date = new Date();
  /** Made after every subscription with a smaller serial. */
  readonly serial: number;
  readonly #dispatcher: Dispatcher;
  readonly #entry: Entry;
  readonly #handler: EventHandler;
  /** Its place in the log, when the bus keeps history. */
  readonly cursor: Cursor<Place> | undefined;
  // Events waiting for the handler, read from #head, and their deliveries.
  #queue: Event[] = [];
  #deliveries: Delivery[] = [];
  #head = 0;
  // The event whose async handler call is running.
  #current: Event | undefined;
  #active = false;
  #idle: Deferred<void> | undefined;
  #cancelled: Promise<void> | undefined;
  /** Events dropped since the queue was last full and had room again. */
  #overflow = 0;
  readonly #signal: AbortSignal | undefined;

  constructor(
    dispatcher: Dispatcher,
    entry: Entry,
    topic: string,
    handler: EventHandler,
    pattern: string | null,
    signal: AbortSignal | undefined,
  ) {
    this.#dispatcher = dispatcher;
    this.serial = ++dispatcher.serial;
    this.#entry = entry;
    this.topic = topic;
    this.pattern = pattern;
    this.#handler = handler;
    this.#signal = signal;
    this.cursor = dispatcher.history?.cursor(this);
    signal?.addEventListener("abort", this.#abort, { once: true });
  }

  get cancelled(): boolean {
    return this.#cancelled !== undefined;
  }

  /** Whether an event is for this subscription (its topic or pattern). */
  wants(event: Event): boolean {
    const regex = this.#entry.regex;
    return regex === null
      ? event.topic === this.#entry.interest.name
      : regex.test(event.topic);
  }

  /** Takes an event its cursor admitted (replayed, or held live). */
  take(event: Event, place: Place): void {
    if (this.#cancelled === undefined) {
      const log = this.#dispatcher.history!.log;
      this.#take(event, delivery(place, undefined, log), false);
    }
  }

  /** See Follower.maxHeld: the subscription's queue limit. */
  get maxHeld(): number {
    return this.#dispatcher.maxQueued;
  }

  /** Ends the subscription: its catch-up cannot go on (see Follower.fail). */
  fail(error: unknown): void {
    this.#dispatcher.report(
      new EventBusError(
        "SUBSCRIBE_FAILED",
        `Cancelled subscription ${this.subscriptionId} to "${this.topic}": reading the event log for its replay failed (${
          error instanceof Error ? error.message : String(error)
        }), which retrying cannot mend; this is a bug, please report it; subscribe again with from set to the last delivery.position it handled`,
        { cause: scrub(error) },
      ),
      null,
      this,
    );
    void this.cancel();
  }

  #abort = (): void => void this.cancel();

  /** Stops listening to the signal (no reference to this stays on it). */
  detach(): void {
    this.#signal?.removeEventListener("abort", this.#abort);
  }

  /** Detaches, and lets the history forget its cursor. */
  forget(): void {
    this.detach();
    if (this.cursor !== undefined) {
      this.#dispatcher.history!.forget(this.cursor);
    }
  }

  cancel(): Promise<void> {
    if (this.#cancelled === undefined) {
      this.forget();
      const dropped = this.discard();
      if (dropped > 0) {
        this.#dispatcher.report(
          new EventBusError(
            "DROPPED_ON_CANCEL",
            `Dropped ${dropped} queued event(s) of subscription ${this.subscriptionId} on cancel(): they were waiting for its handler; close() instead of cancel() lets handlers finish what they have`,
            { dropped },
          ),
          null,
          this,
        );
      }
      // close() still waits for a handler call that is running.
      if (this.#active) this.#dispatcher.cancelling.add(this);
      this.#cancelled = this.#dispatcher.remove(this.#entry, this);
    }
    return this.#cancelled;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.cancel();
  }

  /**
   * Calls the handler now when idle (returning, with `wait`, a promise of
   * the end of that call if it is async), else queues the event. With
   * history, an event at a place in the log waits while the cursor
   * catches up (without its delivery's context), and one the subscription
   * already had is skipped.
   */
  offer(
    event: Event,
    wait: boolean,
    given: Delivered,
    place: Place | undefined,
  ): Promise<void> | undefined {
    if (this.#cancelled !== undefined) return undefined;
    const cursor = this.cursor;
    if (place === undefined) return this.#take(event, given, wait);
    if (cursor?.holding) {
      cursor.hold(event, place);
      return undefined;
    }
    if (cursor !== undefined && !cursor.admit(place)) return undefined;
    return this.#take(event, given, wait);
  }

  #take(
    event: Event,
    delivery: Delivery,
    wait: boolean,
  ): Promise<void> | undefined {
    if (!this.#active) {
      const done = this.#run(event, delivery);
      return wait ? done : undefined;
    }
    const max = this.#dispatcher.maxQueued;
    if (this.#queue.length - this.#head >= max) {
      // The first drop is reported at once; the rest are counted and
      // reported together once the queue has room (one line, not one each).
      if (this.#overflow++ === 0) {
        this.#dispatcher.report(
          new EventBusError(
            "QUEUE_FULL",
            `Dropped event ${event.eventId} for subscription ${this.subscriptionId}: ${max} events already wait for its handler; make the handler faster or raise maxQueuedEvents (further drops are counted and reported once it has room)`,
          ),
          event,
          this,
        );
      }
      return undefined;
    }
    this.#queue.push(event);
    this.#deliveries.push(delivery);
    return undefined;
  }

  // Calls the handler with `event`, then with queued events, until a call
  // is async (the loop resumes when it settles) or the queue is empty.
  #run(event: Event, delivery: Delivery): Promise<void> | undefined {
    this.#active = true;
    const dispatcher = this.#dispatcher;
    for (;;) {
      let result: unknown;
      const outer = dispatcher.current;
      dispatcher.current = this;
      try {
        result = this.#handler(event, delivery);
      } catch (error) {
        dispatcher.report(error, event, this);
      } finally {
        dispatcher.current = outer;
      }
      if (isThenable(result)) {
        this.#current = event;
        return Promise.resolve(result).then(this.#resume, this.#fail);
      }
      const next = this.#next();
      if (next === undefined) return undefined;
      event = next;
      delivery = this.#deliveries[this.#head - 1]!;
    }
  }

  #resume = (): void => {
    this.#current = undefined;
    const next = this.#next();
    if (next !== undefined) this.#run(next, this.#deliveries[this.#head - 1]!);
  };

  #fail = (error: unknown): void => {
    this.#dispatcher.report(error, this.#current ?? null, this);
    this.#resume();
  };

  // The next queued event, or undefined (and idle) when there is none or
  // delivery has stopped.
  #next(): Event | undefined {
    if (
      this.#head < this.#queue.length && this.#cancelled === undefined &&
      !this.#dispatcher.closed
    ) {
      if (this.#overflow > 0) this.#reportOverflow();
      return this.#queue[this.#head++];
    }
    this.discard();
    this.#active = false;
    this.#dispatcher.cancelling.delete(this);
    this.#idle?.resolve();
    this.#idle = undefined;
    return undefined;
  }

  /** How many events wait for the handler. */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  /** Whether the queue is full (an event offered now would be dropped). */
  get full(): boolean {
    return this.queued >= this.#dispatcher.maxQueued;
  }

  /** Resolves when the handler has finished everything queued. */
  idle(): Promise<void> {
    if (!this.#active) return Promise.resolve();
    return (this.#idle ??= deferred()).promise;
  }

  // Reports the drops counted after the first (which was reported at once).
  #reportOverflow(): void {
    const more = this.#overflow - 1;
    this.#overflow = 0;
    if (more === 0) return;
    this.#dispatcher.report(
      new EventBusError(
        "QUEUE_FULL",
        `Dropped ${more} more event(s) for subscription ${this.subscriptionId} while its queue was full (maxQueuedEvents ${this.#dispatcher.maxQueued}); make the handler faster or raise maxQueuedEvents`,
      ),
      null,
      this,
    );
  }

  /** Drops what is queued; returns how many events that was. */
  discard(): number {
    if (this.#overflow > 0) this.#reportOverflow();
    const dropped = this.#queue.length - this.#head;
    if (this.#queue.length > 0) {
      this.#queue = [];
      this.#deliveries = [];
      this.#head = 0;
    }
    return dropped;
  }
}
