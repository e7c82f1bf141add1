// Small pieces the remote backends (postgres.ts, redis.ts) share: option
// checks, the reconnect backoff, the report of a lost connection, and the
// shape of a publish waiting for its batch.

import { type Event, EventBusError, show } from "./types.ts";

/** A publish waiting to be sent in a batch, with its promise's settlers. */
export interface Pending {
  readonly event: Event;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** Checks of a backend's options; every failure names the backend. */
export class OptionChecks {
  readonly #owner: string;

  constructor(owner: string) {
    this.#owner = owner;
  }

  /** Throws a TypeError: `Invalid <owner> options: <detail>`. */
  fail(detail: string): never {
    throw new TypeError(`Invalid ${this.#owner} options: ${detail}`);
  }

  /** Parses a URL whose scheme matches `schemes` (never echoing it). */
  url(value: unknown, name: string, schemes: RegExp, want: string): URL {
    let parsed: URL | undefined;
    try {
      parsed = new URL(String(value));
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || !schemes.test(parsed.protocol)) {
      this.fail(`${name} must be a ${want} URL`);
    }
    return parsed;
  }

  /** `value`, or `fallback` when undefined; it must be a positive number. */
  positive(name: string, value: number | undefined, fallback: number): number {
    const result = value ?? fallback;
    if (!(Number.isFinite(result) && result > 0)) {
      this.fail(`${name} must be a positive number, got ${show(result)}`);
    }
    return result;
  }
}

/** The wait before reconnect attempt `attempt` (1, 2, …): from 50 ms, doubling, capped, with jitter. */
export function reconnectDelay(attempt: number, maxMs: number): number {
  const backoff = Math.min(50 * 2 ** Math.min(attempt, 10), maxMs);
  return backoff / 2 + Math.random() * backoff / 2;
}

/** What `onError` is told when a connection drops. */
export function lostConnection(
  what: string,
  label: string,
  cause?: Error,
): EventBusError {
  return new EventBusError(
    "CONNECTION_FAILED",
    `Lost the ${what} connection to ${label}${
      cause ? ` (${cause.message})` : ""
    }; reconnecting`,
  );
}
