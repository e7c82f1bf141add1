// The lifecycle and input checks every backend shares, over the delivery
// core in _dispatch.ts. A backend is BusBase plus a Transport: the transport
// only sends events and reports what arrived, through the Sink it is given.

import { Dispatcher, type Interest, logError } from "./_dispatch.ts";
import {
  type ConnectionState,
  Event,
  type EventBus,
  EventBusError,
  type EventBusOptions,
  type EventHandler,
  requireTopic,
  show,
  type Subscription,
} from "./types.ts";

export type { Interest };

/** What a backend supplies: the connections, and nothing about delivery. */
export interface Transport {
  /** What `String(bus)` shows before the state (no credentials). */
  readonly label: string;
  /** Opens the connections. */
  open(): Promise<void>;
  /** Sends a checked event; resolves per EventBus.publish. */
  send(event: Event): Promise<void>;
  /** Starts listening for a topic or pattern; resolves once confirmed. */
  watch(interest: Interest): Promise<void>;
  /** Stops listening for a topic or pattern. */
  unwatch(interest: Interest): Promise<void>;
  /** Closes the connections. */
  shutdown(): Promise<void>;
}

/** What a transport is given to report arrivals and connection changes. */
export interface Sink {
  /** Delivers to every matching subscription; settles when all have run. */
  deliver(event: Event): Promise<void> | undefined;
  /** Decodes wire text; a malformed message is reported and gives undefined. */
  decode(text: string): Event | undefined;
  /** Delivers an event that arrived for `via` (see Dispatcher.deliver). */
  receive(event: Event, via: Interest): void;
  /** Reports a transport error through `onError`. */
  report(error: unknown): void;
  /** Changes the state and tells `onStateChange`. */
  setState(state: ConnectionState): void;
  /** Tells `onGap` that events since `since` may have been missed. */
  reportGap(since: Date): void;
}

/**
 * The shared base of the backends: connect/close state, the checks on
 * `publish` and `subscribe`, and delivery through one core. Not public:
 * use the {@linkcode EventBus} interface.
 *
 * @internal
 */
export class BusBase implements EventBus {
  readonly #dispatcher: Dispatcher;
  readonly #transport: Transport;
  readonly #closeTimeoutMs: number;
  readonly #onStateChange: ((state: ConnectionState) => void) | undefined;
  readonly #onGap: EventBusOptions["onGap"];
  #state: ConnectionState = "idle";
  #connecting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: EventBusOptions, transport: (sink: Sink) => Transport) {
    const {
      onError = logError,
      closeTimeoutMs = 5000,
      maxQueuedEvents = 100_000,
      onStateChange,
      onGap,
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
    if (!(Number.isFinite(closeTimeoutMs) && closeTimeoutMs >= 0)) {
      throw new RangeError(
        `Invalid option: closeTimeoutMs must be a number of milliseconds >= 0, got ${
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
    this.#closeTimeoutMs = closeTimeoutMs;
    this.#onStateChange = onStateChange;
    this.#onGap = onGap;
    this.#dispatcher = new Dispatcher(
      {
        watch: (interest) => this.#transport.watch(interest),
        unwatch: (interest) => this.#transport.unwatch(interest),
      },
      onError,
      maxQueuedEvents,
    );
    const dispatcher = this.#dispatcher;
    this.#transport = transport({
      deliver: (event) => dispatcher.deliver(event, null, true),
      decode: (text) => dispatcher.decode(text),
      receive: (event, via) => void dispatcher.deliver(event, via, false),
      report: (error) => dispatcher.report(error, null, null),
      setState: (state) => this.#setState(state),
      reportGap: (since) => this.#reportGap(since),
    });
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /**
   * Connects. Idempotent; concurrent calls share one attempt, and a failed
   * attempt may be retried.
   *
   * @returns A promise that resolves when the bus is ready.
   * @throws {EventBusError} `CLOSED` after `close()`; `CONNECTION_FAILED`
   * when the server cannot be reached.
   */
  connect(): Promise<void> {
    if (this.#closing !== undefined) {
      return Promise.reject(this.#unusable("connect", null));
    }
    this.#connecting ??= (async () => {
      this.#setState("connecting");
      try {
        await this.#transport.open();
      } catch (error) {
        this.#connecting = undefined;
        this.#setState("idle");
        throw error;
      }
      this.#setState("ready");
    })();
    return this.#connecting;
  }

  /**
   * Stops taking events, lets handlers finish the events they already have
   * (at most `closeTimeoutMs`; the rest is dropped and reported), then
   * closes connections. Idempotent; safe to call from a handler.
   *
   * @returns A promise that resolves once no handler will be called again.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const opened = this.#connecting?.then(() => true, () => false);
      await this.#dispatcher.drain(this.#closeTimeoutMs);
      try {
        if (await opened) await this.#transport.shutdown();
      } finally {
        this.#setState("closed");
      }
    })();
    return this.#closing;
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
   * @throws {EventBusError} `NOT_CONNECTED` or `CLOSED`.
   */
  publish(topic: string, event: Event): Promise<void> {
    try {
      this.checkPublish(topic, event);
      return this.#transport.send(event);
    } catch (error) {
      return Promise.reject(error);
    }
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
    this.#checkUsable("publish to", topic);
  }

  /**
   * Subscribes a handler.
   *
   * @param topic The topic, or a label for a pattern subscription.
   * @param handler Called with each event, one at a time, in order.
   * @param pattern An fnmatch pattern, or null for the exact topic.
   * @returns The subscription, once the backend has confirmed it.
   * @throws {TypeError} For a bad topic, handler or pattern.
   * @throws {EventBusError} `NOT_CONNECTED` or `CLOSED`.
   */
  subscribe(
    topic: string,
    handler: EventHandler,
    pattern: string | null = null,
  ): Promise<Subscription> {
    try {
      requireTopic(topic, "Cannot subscribe");
      if (typeof handler !== "function") {
        throw new TypeError(
          `Cannot subscribe to "${topic}": handler must be a function, got ${
            show(handler)
          }`,
        );
      }
      if (pattern !== null && (typeof pattern !== "string" || pattern === "")) {
        throw new TypeError(
          `Cannot subscribe to "${topic}": pattern must be a non-empty string or null, got ${
            show(pattern)
          }`,
        );
      }
      this.#checkUsable("subscribe to", topic);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#dispatcher.subscribe(topic, handler, pattern);
  }

  /** A description without credentials, e.g. `RedisEventBus(…, ready)`. */
  toString(): string {
    const label = this.#transport.label;
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

  #reportGap(since: Date): void {
    try {
      this.#onGap?.({ since, until: new Date() });
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
