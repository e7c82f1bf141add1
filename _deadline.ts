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
