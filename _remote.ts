// The core of the remote buses: the connection lifecycle on top of a
// transport. Two kept connections (publishing, receiving), the routes the
// receiving one listens on, the outbox of publishes, and the gap
// accounting. Delivery itself is the dispatcher's (_dispatch.ts).

import { Timeout } from "./_deadline.ts";
import { type Log, type Position, splitPosition } from "./_history.ts";
import { Down, Keeper, Stopped, type Timing } from "./_keeper.ts";
import { Outbox } from "./_outbox.ts";
import { scrub } from "./_scrub.ts";
import {
  type Arrivals,
  type Interest,
  type PublishLink,
  type ReceiveLink,
  Refusal,
  type Route,
  type Transport,
} from "./_transport.ts";
import {
  type ConnectionState,
  type Event,
  EventBusError,
  EventFormatError,
  type Gap,
} from "./types.ts";

/** How many undecodable log positions a bus remembers (see #undecodable). */
const UNDECODABLE_KEPT = 10_000;

/** What the remote core tells the bus it serves. */
export interface Core {
  /** Decodes wire text; a malformed message is reported, giving undefined. */
  decode(text: string): Event | undefined;
  /** Delivers an event that arrived for an interest (at a log position). */
  deliver(event: Event, interest: Interest, position?: Position): void;
  /** Reports an error through `onError`. */
  report(error: unknown): void;
  /** `ready` or `reconnecting`, once connected. */
  setState(state: ConnectionState): void;
  /** The receiving connection was lost (a gap is reported once it is back). */
  paused(): void;
  /** Reports a span in which events may have been missed. */
  gap(gap: Gap): void;
  /** A heartbeat sent at `sentAt` was answered on the receiving connection. */
  beat(sentAt: number): void;
}

/** The connection lifecycle of a remote bus; see the comment above. */
export class Remote {
  readonly #transport: Transport;
  readonly #timing: Timing;
  readonly #core: Core;
  readonly #routes = new Map<Route, Set<Interest>>();
  readonly #outbox: Outbox;
  #publisher: Keeper<PublishLink> | undefined;
  #receiver: Keeper<ReceiveLink> | undefined;
  #gapSince: number | undefined;
  /** Per connection, the reason the last attempt to replace it failed. */
  readonly #lastRetry = new Map<string, string>();
  /**
   * Positions of log entries that did not decode (reported once: a read
   * that starts at one, or a catch-up that reads it again, skips it
   * quietly); forgotten past UNDECODABLE_KEPT.
   */
  #undecodable = new Set<string>();

  constructor(transport: Transport, timing: Timing, core: Core) {
    this.#transport = transport;
    this.#timing = timing;
    this.#core = core;
    this.#outbox = new Outbox(transport, timing.commandTimeoutMs);
  }

  /** Whether both connections are up. */
  get ready(): boolean {
    return this.#publisher?.link !== undefined &&
      this.#receiver?.link !== undefined;
  }

  /**
   * Opens both connections within `connectTimeoutMs`; on failure leaves
   * nothing open and rejects with `CONNECTION_FAILED` (or the reason of
   * `signal`, when it aborted).
   */
  async open(signal: AbortSignal): Promise<void> {
    const publisher: Keeper<PublishLink> = new Keeper({
      open: (attempt, lost) => this.#transport.openPublisher(attempt, lost),
      // Nothing the lost connection sent may arrive after newer events.
      restore: (link, previous) =>
        previous === undefined ? Promise.resolve() : link.fence(previous),
      up: () => {
        this.#lastRetry.delete("publishing");
        this.#changed();
      },
      down: (cause) => this.#down("publishing", cause),
      retrying: (cause) => this.#retrying("publishing", cause),
    }, this.#timing);
    const receiver: Keeper<ReceiveLink> = new Keeper({
      open: (attempt, lost) =>
        this.#transport.openReceiver(attempt, this.#arrivals(attempt), lost),
      restore: (link) =>
        this.#routes.size === 0
          ? Promise.resolve()
          : link.listen([...this.#routes.keys()]),
      up: () => this.#receiverUp(),
      down: (cause) => {
        this.#gapSince ??= receiver.provenAt;
        this.#core.paused();
        this.#down("receiving", cause);
      },
      retrying: (cause) => this.#retrying("receiving", cause),
      beat: (sentAt) => this.#core.beat(sentAt),
    }, this.#timing);
    const failed = new AbortController();
    const attempt = AbortSignal.any([signal, failed.signal]);
    const results = await Promise.allSettled(
      [publisher.start(attempt), receiver.start(attempt)].map((started) =>
        started.catch((error) => {
          failed.abort(error);
          throw error;
        })
      ),
    );
    if (results.some((result) => result.status === "rejected")) {
      await Promise.all([publisher.stop(0), receiver.stop(0)]);
      throw this.#connectError(signal, failed.signal.reason);
    }
    this.#publisher = publisher;
    this.#receiver = receiver;
    this.#outbox.use(publisher);
  }

  /**
   * The log, read through the publishing connection (waiting up to
   * `connectTimeoutMs` for it), when the transport keeps one.
   */
  get log(): Log | undefined {
    const positions = this.#transport.positions;
    if (positions === undefined) return undefined;
    const read = <T>(command: (link: PublishLink) => Promise<T>) =>
      this.#onPublisher("read the event log", command);
    return {
      ...positions,
      head: () =>
        read((link) => link.head!()).catch((error) => {
          throw new EventBusError(
            "SUBSCRIBE_FAILED",
            `Cannot subscribe: the event log at ${this.#where()} could not be read (${
              (error as Error).message
            }); retry once bus.state is "ready"`,
            { cause: scrub(error) },
          );
        }),
      read: async (from, limit) => {
        const page = await read((link) => link.read!(from, limit));
        // An entry that does not decode stays in the page (it is reported,
        // once, and owed to no one): the page's length and last position
        // tell the catch-up whether to read on, and from where.
        const entries = page.entries.map(({ position, text }) => ({
          position,
          event: this.#undecodable.has(position)
            ? undefined
            : this.#decodeLogged(position, text),
        }));
        return { ...page, entries };
      },
    };
  }

  #decodeLogged(position: string, text: string): Event | undefined {
    const event = this.#core.decode(text);
    if (event === undefined) {
      if (this.#undecodable.size >= UNDECODABLE_KEPT) this.#undecodable.clear();
      this.#undecodable.add(position);
    }
    return event;
  }

  async #onPublisher<T>(
    what: string,
    command: (link: PublishLink) => Promise<T>,
  ): Promise<T> {
    const publisher = this.#publisher;
    if (publisher === undefined) throw new Stopped("the bus is not open");
    await publisher.whenUp(this.#timing.connectTimeoutMs, what);
    return await publisher.run(what, command, this.#timing.commandTimeoutMs);
  }

  /** Publishes an event (see Outbox.push). */
  send(event: Event): Promise<void> {
    return this.#outbox.push(event);
  }

  /**
   * Runs a backend's own command on the publishing connection, with the
   * same deadline as a publish.
   */
  async command<T>(
    what: string,
    command: (link: PublishLink) => Promise<T>,
  ): Promise<T> {
    const publisher = this.#publisher;
    if (publisher === undefined) {
      throw new EventBusError(
        "NOT_CONNECTED",
        `Cannot ${what}: the bus is not connected; await bus.connect() first`,
      );
    }
    try {
      return await publisher.run(what, command, this.#timing.commandTimeoutMs);
    } catch (error) {
      throw new EventBusError(
        "CONNECTION_FAILED",
        `Cannot ${what}: ${this.#where()} ${
          error instanceof Down
            ? "is down"
            : `failed (${(error as Error).message})`
        }; retry once bus.state is "ready"`,
        { cause: scrub(error) },
      );
    }
  }

  /**
   * Listens for an interest; resolves once the server confirmed it. While
   * the receiving connection is down, waits for it up to
   * `connectTimeoutMs`; a connection lost meanwhile is restored with this
   * route among the others.
   */
  async watch(interest: Interest, since: number): Promise<void> {
    const route = this.#transport.route(interest);
    const interests = this.#routes.get(route);
    if (interests !== undefined) {
      interests.add(interest);
      return;
    }
    const added = new Set([interest]);
    this.#routes.set(route, added);
    try {
      await this.#onReceiver(interest, since, (link) => link.listen([route]));
    } catch (error) {
      added.delete(interest);
      if (added.size === 0) this.#routes.delete(route);
      throw error;
    }
  }

  /** Stops listening for an interest (when no other interest needs its route). */
  async unwatch(interest: Interest): Promise<void> {
    const route = this.#transport.route(interest);
    const interests = this.#routes.get(route);
    interests?.delete(interest);
    if (interests?.size !== 0) return;
    this.#routes.delete(route);
    const receiver = this.#receiver;
    if (receiver?.link === undefined) return; // the restore will not listen
    await receiver.run(
      "unsubscribe",
      (link) => link.unlisten([route]),
      this.#timing.commandTimeoutMs,
    ).catch((error) => {
      if (error instanceof Refusal) this.#core.report(error);
    });
  }

  /** Waits up to `ms` for accepted publishes to be sent (see Outbox.flush). */
  flush(ms: number): Promise<void> {
    return this.#outbox.flush(ms);
  }

  /** Ends both connections for good, within `ms` for the goodbyes. */
  async shutdown(ms: number): Promise<void> {
    const keepers = [this.#publisher, this.#receiver];
    this.#publisher = this.#receiver = undefined;
    await Promise.all(keepers.map((keeper) => keeper?.stop(ms)));
  }

  // Runs a receiving command; a connection that is down must be restored
  // within connectTimeoutMs of `since` (when subscribe was called, so a
  // subscribe queued behind others does not wait longer).
  async #onReceiver(
    interest: Interest,
    since: number,
    command: (link: ReceiveLink) => Promise<void>,
  ): Promise<void> {
    const { connectTimeoutMs, commandTimeoutMs } = this.#timing;
    const receiver = this.#receiver;
    const left = () => Math.max(0, since + connectTimeoutMs - Date.now());
    try {
      if (receiver === undefined) throw new Stopped("the bus is closing");
      await receiver.whenUp(left(), "subscribe");
      await receiver.run("subscribe", command, commandTimeoutMs).catch(
        (error) => {
          if (error instanceof Refusal || error instanceof Stopped) throw error;
          // The connection was lost: its replacement listens on this route.
          return receiver.whenUp(left(), "subscribe");
        },
      );
    } catch (error) {
      if (error instanceof Stopped) {
        throw new EventBusError(
          "CLOSED",
          `Cannot subscribe to ${interest.kind} "${interest.name}": the bus was closed first; create a new bus`,
        );
      }
      const why = error instanceof Timeout
        ? `the connection to ${this.#where()} was not restored within connectTimeoutMs (${connectTimeoutMs} ms)`
        : `${this.#where()} refused it (${(error as Error).message})`;
      throw new EventBusError(
        "SUBSCRIBE_FAILED",
        `Cannot subscribe to ${interest.kind} "${interest.name}": ${why}`,
        { cause: scrub(error) },
      );
    }
  }

  // What a receiving connection reports, dropped once it is lost.
  #arrivals(attempt: AbortSignal): Arrivals {
    return {
      arrived: (route, text, channel) => {
        if (!attempt.aborted) this.#arrive(route, text, channel);
      },
      report: (error) => this.#core.report(error),
    };
  }

  #arrive(route: Route, wire: string, channel: string | undefined): void {
    const interests = this.#routes.get(route);
    if (interests === undefined) return;
    const [text, position] = this.#transport.positions === undefined
      ? [wire, undefined]
      : splitPosition(wire);
    const event = this.#core.decode(text);
    if (event === undefined) return;
    if (
      channel !== undefined && channel !== this.#transport.channel(event.topic)
    ) {
      this.#core.report(
        new EventFormatError(
          "topic",
          `is "${event.topic}" but the message came on channel "${channel}"`,
        ),
      );
      return;
    }
    for (const interest of interests) {
      this.#core.deliver(event, interest, position);
    }
  }

  #receiverUp(): void {
    this.#lastRetry.delete("receiving");
    const since = this.#gapSince;
    this.#gapSince = undefined;
    this.#changed();
    if (since !== undefined) {
      this.#core.gap({ since: new Date(since), until: new Date() });
    }
  }

  #down(role: string, cause: Error): void {
    this.#core.report(
      new EventBusError(
        "CONNECTION_FAILED",
        `Lost the ${role} connection to ${this.#where()} (${cause.message}); reconnecting`,
        { cause: scrub(cause) },
      ),
    );
    this.#changed();
  }

  // A failed attempt to replace a connection is reported when its reason
  // differs from the last one's: a server that refuses the credentials says
  // so once, not every backoff.
  #retrying(role: string, cause: Error): void {
    const why = cause instanceof Timeout
      ? `no answer within connectTimeoutMs (${this.#timing.connectTimeoutMs} ms)`
      : cause.message;
    if (this.#lastRetry.get(role) === why) return;
    this.#lastRetry.set(role, why);
    this.#core.report(
      new EventBusError(
        "CONNECTION_FAILED",
        `Cannot restore the ${role} connection to ${this.#where()}: ${why}; retrying, at most every maxReconnectDelayMs (${this.#timing.maxReconnectDelayMs} ms)`,
        { cause: scrub(cause) },
      ),
    );
  }

  #changed(): void {
    if (this.#publisher === undefined) return; // connecting or closing
    this.#core.setState(this.ready ? "ready" : "reconnecting");
  }

  #connectError(signal: AbortSignal, error: unknown): unknown {
    if (signal.aborted) return signal.reason;
    if (error instanceof EventBusError) return error;
    const timedOut = error instanceof Timeout;
    const why = timedOut
      ? `no answer within connectTimeoutMs (${this.#timing.connectTimeoutMs} ms)`
      : (error as Error).message;
    const hint = this.#transport.hint?.(error, timedOut);
    return new EventBusError(
      "CONNECTION_FAILED",
      `Cannot connect to ${this.#where()}: ${why}${hint ? `; ${hint}` : ""}`,
      { cause: scrub(error) },
    );
  }

  #where(): string {
    return `${this.#transport.server} at ${this.#transport.label}`;
  }
}
