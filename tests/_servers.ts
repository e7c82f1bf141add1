// Where the integration tests find PostgreSQL and Redis, and what happens
// when one is not there: skip with one line, or fail when CI is set.

/** `REDIS_URL`, default `redis://127.0.0.1:6379`. */
export const REDIS_URL: string = Deno.env.get("REDIS_URL") ??
  "redis://127.0.0.1:6379";

/** `DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`. */
export const DATABASE_URL: string = Deno.env.get("DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";

/** The URL without its credentials, for messages. */
export function redact(url: string): string {
  const parsed = new URL(url);
  parsed.username = parsed.password = "";
  return parsed.href;
}

/**
 * Whether the server behind `url` accepts TCP connections. When it does not,
 * throws with CI set, else prints one line saying why the tests skip.
 */
export async function reachable(
  name: string,
  env: string,
  url: string,
): Promise<boolean> {
  const { hostname, port } = new URL(url);
  const defaultPort = url.startsWith("postgres") ? 5432 : 6379;
  try {
    const conn = await Deno.connect({
      hostname: hostname.replace(/^\[|\]$/g, ""),
      port: Number(port) || defaultPort,
    });
    conn.close();
    return true;
  } catch (error) {
    const why = `${name} at ${redact(url)} is unreachable (${
      (error as Error).message
    })`;
    if (Deno.env.get("CI")) {
      throw new Error(
        `${why}; CI is set, so its tests fail instead of skipping`,
      );
    }
    console.warn(`Skipping the ${name} tests: ${why}; start it or set ${env}`);
    return false;
  }
}
