// Errors of drivers can carry what must never be shown: ioredis puts the
// AUTH command with its password on a failed connection's error, and a
// driver's options may hold a connection string. The bus wraps driver
// errors; their `cause` is this clean copy instead.

/**
 * A copy of `error` with only its name, message, string `code` and a clean
 * copy of its own `cause`: no other field of the original survives.
 */
export function scrub(error: unknown, depth = 0): Error {
  if (!(error instanceof Error)) return new Error(String(error));
  const copy = new Error(error.message);
  copy.name = error.name;
  const { code, cause } = error as { code?: unknown; cause?: unknown };
  if (typeof code === "string") Object.assign(copy, { code });
  if (cause !== undefined && depth < 8) copy.cause = scrub(cause, depth + 1);
  if (error.stack !== undefined) copy.stack = error.stack;
  return copy;
}
