// The contract between the remote core (_remote.ts) and a transport
// (redis.ts, postgres.ts). A transport only moves bytes: it opens
// connections, sends events, listens on routes and reports what arrived and
// which connection was lost. Everything else — the state machine,
// reconnection and backoff, heartbeats, deadlines, gap accounting, batching
// and settling every promise — is the core's, written once.
//
// Every method may be cut short by the core: it races each call against a
// deadline and against the loss of the connection, and calls `destroy()`
// on a connection it gives up on. A transport need not time anything out
// itself, but must never leave a socket or timer behind after `destroy()`.

import type { Head, Positions } from "./_history.ts";
import type { Event } from "./types.ts";

export { POSITION_KEY } from "./_history.ts";

/** What the receiving connection listens on for an interest: opaque to the core. */
export type Route = string;

/** One connection, opened by a transport and owned by the core. */
export interface Link {
  /**
   * One round trip on this connection. When it resolves, everything sent on
   * this connection before it has been handled by the server, and (on a
   * receiving connection) every message the server sent before its answer
   * has been reported through `arrived`.
   */
  ping(): Promise<void>;
  /** Ends the connection at once, without a goodbye; idempotent; leaves no handle. */
  destroy(): void;
  /** Ends the connection after a goodbye; the core bounds the wait, then destroys. */
  end(): Promise<void>;
}

/** The connection publishes go through. */
export interface PublishLink extends Link {
  /**
   * Ends the server's session of `previous`, a lost publishing connection
   * of the same bus, so that nothing sent on it can take effect after this
   * resolves (bytes still on their way would otherwise be published after
   * newer events). A session already gone, or a server that does not let
   * this user end sessions, is not an error.
   */
  fence(previous: PublishLink): Promise<void>;
  /**
   * Sends events in this order; called again before it settled (see
   * Transport.batch.inFlight), writes its commands after those of every
   * earlier call, which the server then runs first. Resolves with one entry
   * per event: `undefined` when the server accepted it, or a
   * {@linkcode Refusal} when the server refused that event (it was not
   * sent). Rejects when the connection failed: then each event may or may
   * not have been delivered, unless the rejection is an {@linkcode Unsent}.
   */
  send(events: readonly Event[]): Promise<readonly (Refusal | undefined)[]>;
  /**
   * With history (see Transport.positions): up to `limit` entries of the
   * log at or after `from` (from the oldest when undefined), in log order;
   * `lost` when entries after `from` are gone (trimmed, or the log was
   * lost and started again).
   */
  read?(from: string | undefined, limit: number): Promise<LogPage>;
  /** With history: where a subscription made now starts (see Head). */
  head?(): Promise<Head>;
}

/** Entries of a log as the server holds them. */
export interface LogPage {
  readonly entries: readonly {
    readonly position: string;
    /** The event's wire text. */
    readonly text: string;
  }[];
  readonly lost: boolean;
  /** See Page.horizon. */
  readonly horizon?: string;
  /** See Page.visible. */
  visible?(position: string): boolean;
}

/** The connection events arrive on. */
export interface ReceiveLink extends Link {
  /** Listens on routes; resolves once the server confirmed every one. */
  listen(routes: readonly Route[]): Promise<void>;
  /** Stops listening on routes; resolves once the server confirmed it. */
  unlisten(routes: readonly Route[]): Promise<void>;
}

/** What a receiving connection reports to the core. */
export interface Arrivals {
  /**
   * Wire text arrived on `route`. `channel`, when given, is the channel it
   * came on, which must be the channel of the event's topic.
   */
  arrived(route: Route, text: string, channel?: string): void;
  /** Reports a problem that costs only one message (e.g. a payload gone). */
  report(error: unknown): void;
}

/** What an interest is: an exact topic or an fnmatch pattern. */
export interface Interest {
  readonly kind: "topic" | "pattern";
  readonly name: string;
}

/** A server's refusal of a command on a healthy connection. */
export class Refusal extends Error {
  override readonly name = "Refusal";
  /** What to do about it, for the user's message. */
  readonly advice: string;

  constructor(message: string, advice = "check the user's permissions") {
    super(message);
    this.advice = advice;
  }
}

/**
 * What a send rejects with when it wrote nothing (the connection was
 * already gone): its events were not sent, not "may or may not".
 */
export class Unsent extends Error {
  override readonly name = "Unsent";
}

/** A remote transport: see the comment at the top of this file. */
export interface Transport<P extends PublishLink = PublishLink> {
  /** The kind of server, for messages: `"Redis"`, `"PostgreSQL"`. */
  readonly server: string;
  /** What `String(bus)` and messages show of the server (no credentials). */
  readonly label: string;
  /**
   * The most events one `send` is given, and the most characters of their
   * JSON text, each event's counted at most `charsPerEvent` (its share of
   * what the batch costs the server), when given; and how many batches may
   * be sent and not yet answered (default 1: one `send` at a time).
   */
  readonly batch: {
    readonly events: number;
    readonly chars: number;
    readonly charsPerEvent?: number;
    readonly inFlight?: number;
  };
  /** Opens the publishing connection; gives up when `signal` aborts. */
  openPublisher(signal: AbortSignal, lost: (cause?: Error) => void): Promise<P>;
  /** Opens the receiving connection; gives up when `signal` aborts. */
  openReceiver(
    signal: AbortSignal,
    arrivals: Arrivals,
    lost: (cause?: Error) => void,
  ): Promise<ReceiveLink>;
  /** The route an interest is listened on; interests may share a route. */
  route(interest: Interest): Route;
  /** The channel a topic's events are sent on. */
  channel(topic: string): string;
  /**
   * Given when the bus keeps history: how the log's positions order. Then
   * `send` appends each event to the log in the same step as its live
   * message, which carries its position (the event's JSON object with one
   * more key, last: `"dataknobs_position":"<position>"`, see
   * `POSITION_KEY`), and the publishing connection can `read` and `head`.
   */
  readonly positions?: Positions | undefined;
  /**
   * A hint for a failed connect, in the user's terms ("is the server
   * speaking TLS on this port?"), or undefined. `error` is what opening a
   * connection failed with; `timedOut` when it was `connectTimeoutMs`.
   */
  hint?(error: unknown, timedOut: boolean): string | undefined;
}
