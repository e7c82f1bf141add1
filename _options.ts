// Checks of the options the remote backends (postgres.ts, redis.ts) share:
// each backend reads and checks its options once, through these.

import type { Timing } from "./_keeper.ts";
import {
  type EventBusOptions,
  type HistoryOptions,
  type RemoteEventBusOptions,
  show,
} from "./types.ts";

/** Characters that would re-delimit a URL, and spaces and controls. */
export const STRUCTURAL = /[@/?#[\]%]|[\p{C}\p{Z}\s]/u;

/** A host or database name for a message: never one with `@` (a password may be in it). */
export function shownName(value: string): string {
  return value.includes("@") ? 'a value with "@"' : show(value);
}

/** The longest delay a timer takes (2³¹ − 1 ms, about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

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

  /**
   * Checks a host name or IP address (an IPv6 address without brackets):
   * what would re-delimit a URL is refused, and so is a port or user name
   * in it. A value with `@` is never echoed (it may hold a password).
   */
  host(host: string, name: string): void {
    const colons = host.split(":").length - 1;
    const ipv6 = colons >= 2 && /^[0-9A-Fa-f:.]+$/.test(host);
    if (!STRUCTURAL.test(host) && (colons === 0 || ipv6)) return;
    this.fail(
      `${name} must be a host name or IP address, without a port, user name, spaces, control characters or any of @ / ? # [ ] %, got ${
        shownName(host)
      }; give port, username and password as their own options`,
    );
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
    for (const part of [parsed.username, parsed.password, parsed.pathname]) {
      try {
        decodeURIComponent(part);
      } catch {
        this.fail(
          `${name} has a malformed %-escape in its user name, password or path; write a literal % as %25`,
        );
      }
    }
    return parsed;
  }

  /** `value`, or `fallback` when undefined; it must be a positive number. */
  positive(name: string, value: number | undefined, fallback: number): number {
    const result = value ?? fallback;
    if (typeof result !== "number") {
      this.fail(
        `${name} must be a number of milliseconds, got ${show(result)}`,
      );
    }
    if (!(Number.isFinite(result) && result > 0 && result <= MAX_TIMER_MS)) {
      throw new RangeError(
        `Invalid ${this.#owner} options: ${name} must be a positive number of milliseconds up to ${MAX_TIMER_MS}, got ${
          show(result)
        }`,
      );
    }
    return result;
  }

  /** `value`, or `fallback` when undefined; an integer from 1 up. */
  count(name: string, value: number | undefined, fallback: number): number {
    const result = value ?? fallback;
    if (!(Number.isSafeInteger(result) && result >= 1)) {
      throw new RangeError(
        `Invalid ${this.#owner} options: ${name} must be an integer >= 1, got ${
          show(result)
        }`,
      );
    }
    return result;
  }

  /** The timing options with their defaults (see RemoteEventBusOptions). */
  timing(options: RemoteEventBusOptions): Timing {
    return {
      heartbeatMs: this.positive("heartbeatMs", options.heartbeatMs, 5000),
      maxReconnectDelayMs: this.positive(
        "maxReconnectDelayMs",
        options.maxReconnectDelayMs,
        2000,
      ),
      connectTimeoutMs: this.positive(
        "connectTimeoutMs",
        options.connectTimeoutMs,
        10_000,
      ),
      commandTimeoutMs: this.positive(
        "commandTimeoutMs",
        options.commandTimeoutMs,
        10_000,
      ),
    };
  }
}

/** The retention of a bus's log, checked, with its defaults. */
export interface Retention {
  readonly maxEvents: number;
  readonly maxAgeMs: number;
}

/**
 * The `history` option with its defaults (see HistoryOptions), or
 * undefined without one. Throws a TypeError or RangeError naming the field.
 */
/** The longest `history.maxAgeMs`: about a century. */
const MAX_AGE_MS = 100 * 365.25 * 86_400_000;

export function retention(options: EventBusOptions): Retention | undefined {
  const history: unknown = options.history;
  if (history === undefined) return undefined;
  if (typeof history !== "object" || history === null) {
    throw new TypeError(
      `Invalid option: history must be an object ({ maxEvents?, maxAgeMs? }), got ${
        show(history)
      }`,
    );
  }
  const { maxEvents = 100_000, maxAgeMs = 86_400_000 } =
    history as HistoryOptions;
  if (!(Number.isSafeInteger(maxEvents) && maxEvents >= 1)) {
    throw new RangeError(
      `Invalid option: history.maxEvents must be an integer >= 1, got ${
        show(maxEvents)
      }`,
    );
  }
  // A century: dates before now() − maxAgeMs must stay in range for
  // PostgreSQL (which starts at 4713 BC) and for Date.
  if (
    !(Number.isSafeInteger(maxAgeMs) && maxAgeMs >= 1 &&
      maxAgeMs <= MAX_AGE_MS)
  ) {
    throw new RangeError(
      `Invalid option: history.maxAgeMs must be an integer number of milliseconds from 1 to ${MAX_AGE_MS} (a century), got ${
        show(maxAgeMs)
      }`,
    );
  }
  return { maxEvents, maxAgeMs };
}
