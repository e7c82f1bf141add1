// `bus.once()` and `bus.events()`: both are built on `subscribe`, so every
// backend has them. The bus tells them when it starts closing.

import { type Deferred, deferred } from "./_deferred.ts";
import {
  type Event,
  EventBusError,
  type EventIterator,
  type OncePromise,
  type OverflowPolicy,
  type Subscription,
} from "./types.ts";

/** What once() and events() need of the bus. */
export interface StreamHost {
  /** Subscribes (synchronously started, as BusBase.subscribe does). */
  subscribe(
    handler: (event: Event) => void,
    pattern: string | null,
  ): Promise<Subscription>;
  /** Calls `fn` when the bus starts closing; returns a function to stop. */
  onClose(fn: () => void): () => void;
  /** Reports to the bus's onError. */
  report(error: unknown, event: Event | null, sub: Subscription | null): void;
}

/** The next event that passes `filter`; see EventBus.once. */
export function once(
  host: StreamHost,
  topic: string,
  pattern: string | null,
  filter: ((event: Event) => boolean) | undefined,
  signal: AbortSignal | undefined,
  timeoutMs: number | undefined,
): OncePromise<Event> {
  if (signal?.aborted) return refusedOnce(signal.reason);
  let subscribed!: Promise<Subscription>;
  const next = new Promise<Event>((resolve, reject) => {
    let done = false;
    let sub: Subscription | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    // Settles once, removing every timer, listener and the subscription.
    const finish = (settle: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
      stopClose();
      void sub?.cancel();
      settle();
    };
    const abort = () => finish(() => reject(signal!.reason));
    signal?.addEventListener("abort", abort, { once: true });
    const stopClose = host.onClose(() =>
      finish(() =>
        reject(
          new EventBusError(
            "CLOSED",
            `once("${topic}") ended: the bus closed before a matching event arrived`,
          ),
        )
      )
    );
    if (timeoutMs !== undefined) {
      timer = setTimeout(() =>
        finish(() =>
          reject(
            new EventBusError(
              "TIMEOUT",
              `once("${topic}") timed out: no matching event within timeoutMs (${timeoutMs} ms); raise timeoutMs or check that it is published`,
            ),
          )
        ), timeoutMs);
    }
    const handler = (event: Event): void => {
      if (done) return;
      let taken: boolean;
      try {
        taken = filter === undefined || filter(event) === true;
      } catch (error) {
        return finish(() => reject(error));
      }
      if (taken) finish(() => resolve(event));
    };
    subscribed = host.subscribe(handler, pattern);
    subscribed.then(
      (made) => done ? void made.cancel() : void (sub = made),
      (error) => finish(() => reject(error)),
    );
  });
  // Ready once subscribed; failed if the wait ends first (abort, timeout).
  const ready = Promise.race([subscribed, next]).then(() => {});
  return Object.assign(next, { ready: quiet(ready) });
}

/** A once() that failed before subscribing: both promises reject. */
export function refusedOnce(reason: unknown): OncePromise<never> {
  return Object.assign(Promise.reject(reason), {
    ready: quiet(Promise.reject(reason)),
  });
}

// `promise`, with a no-op handler attached: a `ready` nobody awaits must
// not be reported as an unhandled rejection.
function quiet(promise: Promise<void>): Promise<void> {
  promise.catch(() => {});
  return promise;
}

/** The iterator of EventBus.events: a bounded buffer fed by a subscription. */
export class EventStream implements EventIterator {
  readonly #host: StreamHost;
  readonly #topic: string;
  readonly #size: number;
  readonly #overflow: OverflowPolicy;
  readonly #signal: AbortSignal | undefined;
  readonly #sub: Promise<Subscription | undefined>;
  /** Settles once the backend has confirmed the subscription (or refused). */
  readonly ready: Promise<void>;
  #made: Subscription | undefined;
  #buffer: Event[] = [];
  #head = 0;
  #readers: Deferred<IteratorResult<Event>>[] = [];
  // Set when no event will be added any more; `#failure` is then thrown by
  // the next read, once (`#failed` tells an `undefined` reason apart).
  #ended = false;
  #failed = false;
  /** Rejected when iteration fails (what `ready` then rejects with). */
  readonly #gaveUp = deferred<never>();
  #failure: unknown;
  #dropped = 0;
  #stopClose: () => void;

  constructor(
    host: StreamHost,
    topic: string,
    pattern: string | null,
    signal: AbortSignal | undefined,
    size: number,
    overflow: OverflowPolicy,
  ) {
    this.#host = host;
    this.#topic = topic;
    this.#size = size;
    this.#overflow = overflow;
    this.#signal = signal;
    this.#gaveUp.promise.catch(() => {}); // `ready` may never be read
    this.#stopClose = host.onClose(() => this.#end(false, undefined));
    if (signal?.aborted) {
      this.#sub = Promise.resolve(undefined);
      this.ready = quiet(Promise.reject(signal.reason));
      this.#end(true, signal.reason);
      return;
    }
    signal?.addEventListener("abort", this.#abort, { once: true });
    const subscribed = host.subscribe(this.#push, pattern);
    // Ready once subscribed; failed if iteration fails first (abort).
    this.ready = quiet(
      Promise.race([subscribed, this.#gaveUp.promise]).then(() => {}),
    );
    this.#sub = subscribed.then(
      (sub) => {
        this.#made = sub;
        if (this.#ended) void sub.cancel();
        return sub;
      },
      (error) => {
        this.#end(true, error);
        return undefined;
      },
    );
  }

  #abort = (): void => this.#end(true, this.#signal!.reason, true);

  #push = (event: Event): void => {
    if (this.#ended) return;
    const reader = this.#readers.shift();
    if (reader !== undefined) {
      return reader.resolve({ value: event, done: false });
    }
    if (this.#buffer.length - this.#head < this.#size) {
      this.#buffer.push(event);
      return;
    }
    if (this.#overflow === "error") {
      return this.#end(
        true,
        new EventBusError(
          "QUEUE_FULL",
          `events("${this.#topic}") ended: ${this.#size} events already waited for the reader (bufferSize) when event ${event.eventId} arrived; read faster, raise bufferSize, or use overflow "drop-oldest" or "drop-newest"`,
        ),
        true,
      );
    }
    let dropped = event;
    if (this.#overflow === "drop-oldest") {
      dropped = this.#buffer[this.#head]!;
      // Let go of the dropped event (and compact now and then: the reader
      // may never catch up, and the array must not grow with the drops).
      this.#buffer[this.#head++] = undefined as unknown as Event;
      if (this.#head >= this.#size) {
        this.#buffer = this.#buffer.slice(this.#head);
        this.#head = 0;
      }
      this.#buffer.push(event);
    }
    // The first drop of a run is reported at once, the rest when the
    // reader takes an event again (one line, not one each).
    if (this.#dropped++ === 0) this.#reportDrops(1, dropped);
  };

  #reportDrops(count: number, event: Event | null): void {
    const which = this.#overflow === "drop-oldest" ? "oldest" : "newest";
    const what = event === null
      ? `${count} more event(s)`
      : `event ${event.eventId}`;
    this.#host.report(
      new EventBusError(
        "QUEUE_FULL",
        `events("${this.#topic}") dropped ${what} (the ${which}): ${this.#size} events waited for the reader (bufferSize); read faster or raise bufferSize${
          event === null
            ? ""
            : " (further drops are counted and reported once it reads)"
        }`,
      ),
      event,
      this.#made ?? null,
    );
  }

  #flushDrops(): void {
    const more = this.#dropped - 1;
    this.#dropped = 0;
    if (more > 0) this.#reportDrops(more, null);
  }

  // No more events: `fail` makes the next read throw `failure` (and drops
  // the buffer when `discard`); else the buffer is read, then done.
  #end(fail: boolean, failure: unknown, discard = fail): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#signal?.removeEventListener("abort", this.#abort);
    this.#stopClose();
    void this.#made?.cancel();
    if (this.#dropped > 0) this.#flushDrops();
    if (discard) {
      this.#buffer = [];
      this.#head = 0;
    }
    const readers = this.#readers;
    this.#readers = [];
    if (fail) {
      this.#failed = true;
      this.#gaveUp.reject(failure);
      this.#failure = failure;
    }
    for (const reader of readers) {
      try {
        reader.resolve(this.#take()!);
      } catch (error) {
        reader.reject(error);
      }
    }
  }

  // The next result when one is ready (failure as a rejected result).
  #take(): IteratorResult<Event> | undefined {
    if (this.#head < this.#buffer.length) {
      const value = this.#buffer[this.#head++]!;
      if (this.#head === this.#buffer.length) {
        this.#buffer = [];
        this.#head = 0;
      }
      if (this.#dropped > 0) this.#flushDrops();
      return { value, done: false };
    }
    if (!this.#ended) return undefined;
    if (this.#failed) {
      this.#failed = false;
      const failure = this.#failure;
      this.#failure = undefined;
      throw failure;
    }
    return { value: undefined, done: true };
  }

  /** The next event; waits for one when the buffer is empty. */
  next(): Promise<IteratorResult<Event>> {
    try {
      const result = this.#take();
      if (result !== undefined) return Promise.resolve(result);
    } catch (error) {
      return Promise.reject(error);
    }
    const reader = deferred<IteratorResult<Event>>();
    this.#readers.push(reader);
    return reader.promise;
  }

  /** Ends iteration and cancels the subscription (what `break` calls). */
  async return(): Promise<IteratorResult<Event>> {
    this.#end(false, undefined, true);
    const sub = await this.#sub;
    await sub?.cancel();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.return();
  }
}
