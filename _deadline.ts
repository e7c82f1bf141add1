// Bounded waits: every wait of the remote core goes through these, so no
// promise can outlive its deadline or the connection it depends on.

/** Rejected by {@linkcode bounded} when the deadline passes. */
export class Timeout extends Error {
  override readonly name = "Timeout";
}

/**
 * Settles like `promise`, but rejects with a {@linkcode Timeout} after `ms`
 * milliseconds, or with `signal.reason` as soon as `signal` aborts. Leaves
 * no timer behind.
 */
export function bounded<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
  signal?: AbortSignal,
): Promise<T> {
  if (signal?.aborted) {
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const stop = (error: unknown) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
      reject(error);
    };
    const abort = () => stop(signal!.reason);
    const timer = setTimeout(
      () => stop(new Timeout(`${what}: no answer within ${ms} ms`)),
      ms,
    );
    signal?.addEventListener("abort", abort, { once: true });
    promise.then((value) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
      resolve(value);
    }, stop);
  });
}

/** One wait of {@linkcode Deadlines}: when it expires, and how. */
interface Wait {
  readonly at: number;
  readonly expire: () => void;
}

/**
 * Bounds a stream of waits as {@linkcode bounded} does, with one timer for
 * all of them, armed for the earliest deadline: a timer of its own (set,
 * then cleared) costs a wait a few microseconds, as much as the rest of
 * the client's work on a lone publish. The timer stays armed after its
 * waits settle, until it fires or `clear()` is called.
 */
export class Deadlines {
  readonly #waits = new Set<Wait>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #armedAt = Infinity;

  /**
   * Settles like `promise`, but rejects with a {@linkcode Timeout} after
   * `ms` milliseconds, or with `signal.reason` as soon as `signal` aborts.
   */
  bound<T>(
    promise: Promise<T>,
    ms: number,
    what: string,
    signal: AbortSignal,
  ): Promise<T> {
    if (signal.aborted) {
      promise.catch(() => {});
      return Promise.reject(signal.reason);
    }
    return new Promise<T>((resolve, reject) => {
      const wait: Wait = {
        at: performance.now() + ms,
        expire: () => stop(new Timeout(`${what}: no answer within ${ms} ms`)),
      };
      const stop = (error: unknown) => {
        this.#waits.delete(wait);
        signal.removeEventListener("abort", abort);
        reject(error);
      };
      const abort = () => stop(signal.reason);
      signal.addEventListener("abort", abort, { once: true });
      this.#waits.add(wait);
      if (wait.at < this.#armedAt) this.#arm(wait.at);
      promise.then((value) => {
        this.#waits.delete(wait);
        signal.removeEventListener("abort", abort);
        resolve(value);
      }, stop);
    });
  }

  /** Clears the timer; waits still pending are then unbounded. */
  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedAt = Infinity;
  }

  #arm(at: number): void {
    clearTimeout(this.#timer);
    this.#armedAt = at;
    this.#timer = setTimeout(this.#fire, Math.max(0, at - performance.now()));
  }

  // Expires every wait whose deadline passed; arms for the next one.
  #fire = (): void => {
    this.#timer = undefined;
    this.#armedAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const wait of this.#waits) {
      if (wait.at <= now) wait.expire();
      else next = Math.min(next, wait.at);
    }
    if (next < Infinity) this.#arm(next);
  };
}

/** Resolves after `ms` milliseconds, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", wake);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    signal.addEventListener("abort", wake, { once: true });
  });
}

/**
 * The wait before reconnect attempt `attempt` (1, 2, …): exponential from
 * 50 ms, capped at `maxMs`, with "equal jitter" (half fixed, half random).
 */
export function backoff(attempt: number, maxMs: number): number {
  const ceiling = Math.min(50 * 2 ** Math.min(attempt - 1, 16), maxMs);
  return ceiling / 2 + Math.random() * ceiling / 2;
}

/**
 * Settles like `promise`, or rejects with `signal.reason` as soon as
 * `signal` aborts (at once if it has). `promise` goes on: its outcome is
 * then ignored.
 */
export function untilAborted<T>(
  promise: Promise<T>,
  signal: AbortSignal,
): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise((resolve, reject) => {
    const abort = () => reject(signal.reason);
    signal.addEventListener("abort", abort, { once: true });
    promise.then(resolve, reject).finally(() =>
      signal.removeEventListener("abort", abort)
    );
  });
}
