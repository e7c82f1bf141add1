// What every bus shares: the public API's checks, the state machine's
// local part (idle, connecting, ready, closing, closed), and delivery
// through one core (_dispatch.ts). A remote bus adds a transport, whose
// connections the remote core (_remote.ts) keeps; the in-memory bus has
// none and delivers in place.

import { untilAborted } from "./_deadline.ts";
import { delivery, Dispatcher, logError } from "./_dispatch.ts";
import { History, type Log, type Place } from "./_history.ts";
import type { Timing } from "./_keeper.ts";
import { MemoryLog } from "./_memory_log.ts";
import { MAX_TIMER_MS, retention } from "./_options.ts";
import { Remote } from "./_remote.ts";
import { EventStream, once, refusedOnce, type StreamHost } from "./_stream.ts";
import { Telemetry } from "./_telemetry.ts";
import type { PublishLink, Transport } from "./_transport.ts";
import {
  bytesOver,
  type ConnectionState,
  type ConnectOptions,
  type Delivery,
  Event,
  type EventBus,
  EventBusError,
  type EventBusOptions,
  type EventHandler,
  type EventIterator,
  type EventsOptions,
  type ExactOptions,
  type Gap,
  type OnceOptions,
  type OncePromise,
  type OverflowPolicy,
  type PatternOptions,
  type PublishedEvent,
  requireTopic,
  show,
  type SubscribeOptions,
  type Subscription,
  type TopicEvent,
  type TopicMap,
  type TopicOf,
  type UntypedTopics,
} from "./types.ts";

/** What every overload's handler is assignable to. */
type AnyHandler = (event: never, delivery: never) => void | Promise<void>;

const OVERFLOW_POLICIES: readonly OverflowPolicy[] = [
  "error",
  "drop-oldest",
  "drop-newest",
];

/** The default of `maxEventBytes` (1 MiB): see EventBusOptions. */
export const MAX_EVENT_BYTES = 1024 * 1024;

// The option keys of subscribe, once and events.
const OPTION_KEYS: Record<string, readonly string[]> = {
  subscribe: ["pattern", "signal", "from"],
  once: ["pattern", "signal", "filter", "timeoutMs"],
  events: ["pattern", "signal", "bufferSize", "overflow"],
};

/** A remote bus's transport and its checked timing options. */
export interface RemoteSetup {
  readonly transport: Transport;
  readonly timing: Timing;
}

/**
 * The shared base of the backends: connect/close state, the checks on
 * `publish` and `subscribe`, and delivery through one core. Not public:
 * use the {@linkcode EventBus} interface.
 *
 * @internal
 */
export class BusBase<T extends TopicMap<T> = UntypedTopics>
  implements EventBus<T> {
  readonly #dispatcher: Dispatcher;
  readonly #remote: Remote | undefined;
  readonly #label: string;
  readonly #closeTimeoutMs: number;
  readonly #maxEventBytes: number;
  readonly #onStateChange: ((state: ConnectionState) => void) | undefined;
  readonly #onGap: EventBusOptions["onGap"];
  /** The in-process log of a memory bus with history. */
  readonly #log: MemoryLog | undefined;
  readonly #stopped = new AbortController();
  readonly #telemetry: Telemetry | undefined;
  #state: ConnectionState = "idle";
  #connecting:
    | { readonly done: Promise<void>; readonly abort: AbortController }
    | undefined;
  #closing: Promise<void> | undefined;
  /** once() and events() waiting to hear that the bus closes. */
  readonly #closeWatchers = new Set<() => void>();

  constructor(options: EventBusOptions, remote?: RemoteSetup) {
    const {
      onError = logError,
      closeTimeoutMs = 5000,
      maxQueuedEvents = 100_000,
      maxEventBytes = MAX_EVENT_BYTES,
      onStateChange,
      onGap,
      telemetry,
    } = options;
    for (
      const [name, fn] of Object.entries({ onError, onStateChange, onGap })
    ) {
      if (fn !== undefined && typeof fn !== "function") {
        throw new TypeError(
          `Invalid option: ${name} must be a function, got ${show(fn)}`,
        );
      }
    }
    if (
      !(Number.isFinite(closeTimeoutMs) && closeTimeoutMs >= 0 &&
        closeTimeoutMs <= MAX_TIMER_MS)
    ) {
      throw new RangeError(
        `Invalid option: closeTimeoutMs must be a number of milliseconds from 0 to ${MAX_TIMER_MS}, got ${
          show(closeTimeoutMs)
        }`,
      );
    }
    if (!(Number.isSafeInteger(maxQueuedEvents) && maxQueuedEvents >= 1)) {
      throw new RangeError(
        `Invalid option: maxQueuedEvents must be an integer >= 1, got ${
          show(maxQueuedEvents)
        }`,
      );
    }
    if (!(Number.isSafeInteger(maxEventBytes) && maxEventBytes >= 1)) {
      throw new RangeError(
        `Invalid option: maxEventBytes must be an integer number of bytes >= 1, got ${
          show(maxEventBytes)
        }`,
      );
    }
    this.#closeTimeoutMs = closeTimeoutMs;
    this.#maxEventBytes = maxEventBytes;
    this.#onStateChange = onStateChange;
    this.#onGap = onGap;
    this.#label = remote?.transport.label ?? "";
    const kept = retention(options);
    this.#remote = remote && new Remote(remote.transport, remote.timing, {
      decode: (text) => this.#dispatcher.decode(text),
      deliver: (event, interest, position) => {
        void this.#dispatcher.deliver(
          event,
          interest,
          false,
          delivery(position),
          position,
        );
        if (position === undefined) history?.unlogged();
        else history?.arrived(position);
      },
      report: (error) => this.#dispatcher.report(error, null, null),
      setState: (state) => {
        if (this.#closing === undefined) this.#setState(state);
      },
      paused: () => history?.pause(),
      beat: (sentAt) => history?.beat(sentAt),
      gap: (gap) => {
        if (history === undefined) this.#gap(gap);
        else history.resume(gap.since);
      },
    });
    if (kept !== undefined && remote === undefined) {
      this.#log = new MemoryLog(kept.maxEvents, kept.maxAgeMs);
    }
    const log: Log<Place> | undefined = this.#log ?? this.#remote?.log;
    const history = kept === undefined || log === undefined
      ? undefined
      : new History(log, {
        gap: (gap) => this.#gap(gap),
        report: (error) => this.#dispatcher.report(error, null, null),
        signal: this.#stopped.signal,
      });
    const resolved = () => Promise.resolve();
    this.#dispatcher = new Dispatcher(
      {
        watch: (interest, since) =>
          this.#remote?.watch(interest, since) ?? resolved(),
        unwatch: (interest) => this.#remote?.unwatch(interest) ?? resolved(),
      },
      onError,
      maxQueuedEvents,
      history,
    );
    const dispatcher = this.#dispatcher;
    this.#telemetry = telemetry && new Telemetry(telemetry, {
      // The transport's server name: "redis", "postgresql".
      system: remote?.transport.server.toLowerCase() ?? "memory",
      queued: () => dispatcher.queued(),
      state: () => this.#state,
      report: (error) => dispatcher.report(error, null, null),
    });
  }

  #gap(gap: Gap): void {
    try {
      this.#onGap?.(gap);
    } catch (error) {
      this.#dispatcher.report(error, null, null);
    }
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /**
   * Connects. Idempotent; concurrent calls share one attempt, and a failed
   * attempt may be retried.
   *
   * @param options `signal`: aborting it gives up the attempt this call
   * started (a later call's signal only ends that call's wait).
   * @returns A promise that resolves when the bus is ready.
   * @throws {EventBusError} `CLOSED` after `close()`; `CONNECTION_FAILED`
   * when the server cannot be reached within `connectTimeoutMs`.
   */
  connect(options: ConnectOptions = {}): Promise<void> {
    if (this.#closing !== undefined) {
      return Promise.reject(this.#unusable("connect", null));
    }
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#connecting === undefined) {
      const abort = new AbortController();
      const attempt = signal
        ? AbortSignal.any([signal, abort.signal])
        : abort.signal;
      const done = this.#open(attempt);
      this.#connecting = { done, abort };
      return done;
    }
    return signal
      ? untilAborted(this.#connecting.done, signal)
      : this.#connecting.done;
  }

  async #open(signal: AbortSignal): Promise<void> {
    this.#setState("connecting");
    try {
      await this.#remote?.open(signal);
      if (this.#closing !== undefined) throw this.#unusable("connect", null);
    } catch (error) {
      if (this.#closing === undefined) {
        this.#connecting = undefined;
        this.#setState("idle");
      }
      throw error;
    }
    this.#setState(this.#remote?.ready === false ? "reconnecting" : "ready");
  }

  /**
   * Stops taking events and publishes, lets handlers finish the events they
   * already have and sends the publishes already accepted (each at most
   * `closeTimeoutMs`; the rest is dropped and reported, or rejected), then
   * closes connections. The state is `closing` from the call on.
   * Idempotent; safe to call from a handler.
   *
   * @returns A promise that resolves once no handler will be called again
   * and no connection is open.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#setState("closing");
    this.#stopped.abort();
    // First, while a handler calling close() is still recognisable.
    const drained = this.#dispatcher.drain(this.#closeTimeoutMs);
    // Then once() and events() end (their cancel needs no round trip now).
    for (const watcher of [...this.#closeWatchers]) watcher();
    this.#connecting?.abort.abort(unusable("connect", null, true));
    const opened = this.#connecting?.done.then(() => true, () => false);
    try {
      await Promise.all([
        drained,
        opened?.then((ok) =>
          ok ? this.#remote?.flush(this.#closeTimeoutMs) : undefined
        ),
      ]);
      await this.#remote?.shutdown(Math.min(this.#closeTimeoutMs, 1000));
    } finally {
      this.#log?.close();
      this.#setState("closed");
      this.#telemetry?.close();
    }
  }

  /** Closes the bus: `await using bus = ...`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Publishes an event.
   *
   * @param topic The topic; must equal `event.topic`.
   * @param event The event.
   * @returns See {@linkcode EventBus.publish}.
   * @throws {TypeError} For a bad topic or an event whose topic differs.
   * @throws {RangeError} For an event over `maxEventBytes`.
   * @throws {EventBusError} `NOT_CONNECTED` or `CLOSED`.
   */
  publish<K extends TopicOf<T>>(
    topic: K,
    event: PublishedEvent<T, K>,
  ): Promise<void>;
  publish(topic: string, given: object): Promise<void> {
    const event = given as Event;
    try {
      this.checkPublish(topic, event);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.traced(event, (sent, context) => {
      if (this.#remote !== undefined) return this.#remote.send(sent);
      const log = this.#log, place = log?.append(sent);
      return this.#dispatcher.deliver(
        sent,
        null,
        true,
        delivery(place, context, log),
        place,
      ) ?? Promise.resolve();
    });
  }

  /**
   * Sends a checked event through `send`: with telemetry, in a publish
   * span, as a copy carrying the trace context in its metadata (remote),
   * or with the context beside it for the handlers in this process.
   */
  protected traced(
    event: Event,
    send: (event: Event, context?: unknown) => Promise<void>,
  ): Promise<void> {
    return this.#telemetry === undefined
      ? send(event)
      : this.#telemetry.publish(event, send);
  }

  /**
   * Runs a backend's own command on the publishing connection, bounded like
   * a publish (`commandTimeoutMs`).
   *
   * @throws {EventBusError} `NOT_CONNECTED`, or `CONNECTION_FAILED`.
   */
  protected command<T>(
    what: string,
    command: (link: PublishLink) => Promise<T>,
  ): Promise<T> {
    return this.#remote!.command(what, command);
  }

  /** Throws what `publish` would reject with for these arguments. */
  protected checkPublish(topic: string, event: Event): void {
    requireTopic(topic, "Cannot publish");
    if (!(event instanceof Event)) {
      throw new TypeError(
        `Cannot publish to "${topic}": expected an Event, got ${show(event)}`,
      );
    }
    if (event.topic !== topic) {
      throw new TypeError(
        `Cannot publish to "${topic}": the event's topic is "${event.topic}"; they must be equal`,
      );
    }
    const limit = this.#maxEventBytes;
    const bytes = bytesOver(event, limit);
    if (bytes > 0) {
      throw new RangeError(
        `Cannot publish to ${
          show(topic)
        }: the event is ${bytes} bytes as JSON (UTF-8), over the limit of ${limit} (maxEventBytes); send large data by reference (store it elsewhere, publish its key), or raise maxEventBytes on every bus (for Redis, raise client-output-buffer-limit pubsub with it; see the README's Limits)`,
      );
    }
    this.#checkUsable("publish to", topic);
  }

  /**
   * Subscribes a handler.
   *
   * @param topic The topic, or a label for a pattern subscription.
   * @param handler Called with each event, one at a time, in order.
   * @param options An fnmatch pattern or null, or
   * `{ pattern?, signal?, from? }`.
   * @returns The subscription, once the backend has confirmed it.
   * @throws {TypeError} For a bad topic, handler, pattern, signal or
   * `from` (also: `from` on a bus without history).
   * @throws {EventBusError} `NOT_CONNECTED` or `CLOSED`.
   */
  subscribe<K extends TopicOf<T>>(
    topic: K,
    handler: EventHandler<T[K]>,
    options?:
      | null
      | ExactOptions<T, SubscribeOptions>
      | (string extends keyof T ? string : never),
  ): Promise<Subscription>;
  /**
   * Subscribes a handler to every topic matching a pattern; see
   * {@linkcode EventBus.subscribe}.
   *
   * @param topic A label.
   * @param handler Called with each event, one at a time, in order.
   * @param options The pattern, or `{ pattern, signal? }`.
   * @returns The subscription, once the backend has confirmed it.
   */
  subscribe(
    topic: string,
    handler: (event: TopicEvent<T>, delivery: Delivery) => void | Promise<void>,
    options: string | PatternOptions<SubscribeOptions>,
  ): Promise<Subscription>;
  subscribe(
    topic: string,
    handler: AnyHandler,
    options?: string | null | object,
  ): Promise<Subscription> {
    return this.#subscribe(
      topic,
      handler as EventHandler,
      (options ?? null) as string | null | SubscribeOptions,
    );
  }

  // `action` names the call in a NOT_CONNECTED or CLOSED error.
  #subscribe(
    topic: string,
    handler: EventHandler,
    options: string | null | SubscribeOptions,
    action = "subscribe to",
  ): Promise<Subscription> {
    let pattern: string | null, signal: AbortSignal | undefined;
    let from: string | undefined;
    try {
      ({ pattern, signal } = this.#checkSubscribe(topic, options));
      from = this.#checkFrom(topic, options);
      if (typeof handler !== "function") {
        throw new TypeError(
          `Cannot subscribe to "${topic}": handler must be a function, got ${
            show(handler)
          }`,
        );
      }
      this.#checkUsable(action, topic);
    } catch (error) {
      return Promise.reject(error);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    const traced = this.#telemetry?.handler(handler) ?? handler;
    return this.#dispatcher.subscribe(topic, traced, pattern, signal, from);
  }

  // The `from` of subscribe's options, checked.
  #checkFrom(
    topic: string,
    options: string | null | SubscribeOptions,
  ): string | undefined {
    const from = typeof options === "object" ? options?.from : undefined;
    if (from === undefined) return undefined;
    const log = this.#dispatcher.history?.log;
    if (log === undefined) {
      throw new TypeError(
        `Cannot subscribe to "${topic}" from a position: the bus keeps no history; create it with the history option`,
      );
    }
    if (
      typeof from !== "string" || (from !== "earliest" && !log.valid(from))
    ) {
      throw new TypeError(
        `Cannot subscribe to "${topic}": from must be "earliest" or a delivery.position of this bus's log, got ${
          show(from)
        }`,
      );
    }
    return from;
  }

  /**
   * The next matching event; see {@linkcode EventBus.once}.
   *
   * @throws {TypeError} For a bad topic or option (as a rejection).
   * @throws {EventBusError} `TIMEOUT`, `CLOSED` or `NOT_CONNECTED`.
   */
  once<K extends TopicOf<T>>(
    topic: K,
    options?: ExactOptions<T, OnceOptions<Event<T[K]>>>,
  ): OncePromise<Event<T[K]>>;
  /**
   * The next event on any topic matching a pattern; see
   * {@linkcode EventBus.once}.
   *
   * @param topic A label.
   * @param options `pattern` (required), `filter`, `signal`, `timeoutMs`.
   * @returns The event.
   */
  once(
    topic: string,
    options: PatternOptions<OnceOptions<TopicEvent<T>>>,
  ): OncePromise<TopicEvent<T>>;
  once(topic: string, given?: object): OncePromise<unknown> {
    const options = (given ?? {}) as OnceOptions;
    let pattern: string | null, signal: AbortSignal | undefined;
    const { filter, timeoutMs } = options ?? {};
    try {
      ({ pattern, signal } = this.#checkSubscribe(topic, options, "once"));
      if (filter !== undefined && typeof filter !== "function") {
        throw new TypeError(
          `Cannot wait for "${topic}": filter must be a function, got ${
            show(filter)
          }`,
        );
      }
      if (
        timeoutMs !== undefined &&
        !(Number.isFinite(timeoutMs) && timeoutMs >= 0 &&
          timeoutMs <= MAX_TIMER_MS)
      ) {
        throw new RangeError(
          `Cannot wait for "${topic}": timeoutMs must be a number of milliseconds from 0 to ${MAX_TIMER_MS}, got ${
            show(timeoutMs)
          }`,
        );
      }
    } catch (error) {
      return refusedOnce(error);
    }
    return once(
      this.#streamHost(topic, "call once() on"),
      topic,
      pattern,
      filter,
      signal,
      timeoutMs,
    );
  }

  /**
   * The matching events as an async iterator; see {@linkcode EventBus.events}.
   *
   * @throws {TypeError} For a bad topic or option.
   * @throws {RangeError} For a bad `bufferSize`.
   */
  events<K extends TopicOf<T>>(
    topic: K,
    options?: ExactOptions<T, EventsOptions>,
  ): EventIterator<Event<T[K]>>;
  /**
   * The events on every topic matching a pattern; see
   * {@linkcode EventBus.events}.
   *
   * @param topic A label.
   * @param options `pattern` (required), `signal`, `bufferSize`, `overflow`.
   * @returns The iterator.
   */
  events(
    topic: string,
    options: PatternOptions<EventsOptions>,
  ): EventIterator<TopicEvent<T>>;
  events(topic: string, given?: object): EventIterator<unknown> {
    const options = (given ?? {}) as EventsOptions;
    const { pattern, signal } = this.#checkSubscribe(topic, options, "events");
    const { bufferSize = 1000, overflow = "error" } = options ?? {};
    if (!(Number.isSafeInteger(bufferSize) && bufferSize >= 1)) {
      throw new RangeError(
        `Cannot read events of "${topic}": bufferSize must be an integer >= 1, got ${
          show(bufferSize)
        }`,
      );
    }
    if (!OVERFLOW_POLICIES.includes(overflow)) {
      throw new TypeError(
        `Cannot read events of "${topic}": overflow must be "error", "drop-oldest" or "drop-newest", got ${
          show(overflow)
        }`,
      );
    }
    return new EventStream(
      this.#streamHost(topic, "call events() on"),
      topic,
      pattern,
      signal,
      bufferSize,
      overflow,
    );
  }

  #streamHost(topic: string, action: string): StreamHost {
    return {
      subscribe: (handler, pattern) =>
        this.#subscribe(topic, handler, { pattern }, action),
      onClose: (fn) => {
        this.#closeWatchers.add(fn);
        return () => void this.#closeWatchers.delete(fn);
      },
      report: (error, event, sub) => this.#dispatcher.report(error, event, sub),
    };
  }

  // The pattern and signal of subscribe's third argument (or of the
  // options of once/events), checked.
  #checkSubscribe(
    topic: string,
    options: string | null | SubscribeOptions | undefined,
    method = "subscribe",
  ): { pattern: string | null; signal: AbortSignal | undefined } {
    const what = method === "subscribe"
      ? `Cannot subscribe to "${topic}"`
      : `Cannot call ${method}("${topic}")`;
    requireTopic(
      topic,
      method === "subscribe" ? "Cannot subscribe" : `Cannot call ${method}()`,
    );
    const given: SubscribeOptions = typeof options === "object" &&
        options !== null
      ? options
      : { pattern: options ?? null };
    // A misspelt or misplaced key (`from` on once) would be ignored.
    const known = OPTION_KEYS[method]!;
    const unknown = Object.keys(given).find((key) => !known.includes(key));
    if (unknown !== undefined) {
      throw new TypeError(
        `${what}: unknown option "${unknown}"; the options are: ${
          known.join(", ")
        }`,
      );
    }
    const { pattern = null, signal } = given;
    if (pattern !== null && (typeof pattern !== "string" || pattern === "")) {
      throw new TypeError(
        `${what}: pattern must be a non-empty string or null, got ${
          show(pattern)
        }`,
      );
    }
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new TypeError(
        `${what}: signal must be an AbortSignal, got ${show(signal)}`,
      );
    }
    return { pattern, signal };
  }

  /** A description without credentials, e.g. `RedisEventBus(…, ready)`. */
  toString(): string {
    const label = this.#label;
    return `${this.constructor.name}(${
      label ? `${label}, ` : ""
    }${this.#state})`;
  }

  #checkUsable(action: string, topic: string): void {
    const state = this.#state;
    if (
      this.#closing !== undefined ||
      (state !== "ready" && state !== "reconnecting")
    ) {
      throw this.#unusable(action, topic);
    }
  }

  #unusable(action: string, topic: string | null): EventBusError {
    return unusable(action, topic, this.#closing !== undefined);
  }

  #setState(state: ConnectionState): void {
    if (this.#state === state) return;
    this.#state = state;
    try {
      this.#onStateChange?.(state);
    } catch (error) {
      this.#dispatcher.report(error, null, null);
    }
  }
}

/** The error for using a bus before `connect()` or after `close()`. */
export function unusable(
  action: string,
  topic: string | null,
  closed: boolean,
): EventBusError {
  const what = topic === null
    ? `Cannot ${action}`
    : `Cannot ${action} "${topic}"`;
  return closed
    ? new EventBusError(
      "CLOSED",
      `${what}: the bus is closed; create a new bus`,
    )
    : new EventBusError(
      "NOT_CONNECTED",
      `${what}: the bus is not connected; await bus.connect() first`,
    );
}
