// The servers the bench uses, and buses on them by backend name.
import { Redis } from "ioredis";
import postgres from "postgres";
import { createEventBus, type EventBus, type HistoryConfig } from "../mod.ts";

export const REDIS_URL = Deno.env.get("REDIS_URL") ??
  "redis://127.0.0.1:6379";
export const DATABASE_URL = Deno.env.get("DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";

export type Backend = "memory" | "redis" | "postgres";

/**
 * A bus of `backend` on channel prefix `prefix`, keeping `history` if
 * given; on PostgreSQL with `synchronous_commit` if given.
 */
export function bus(
  backend: Backend,
  prefix: string,
  history?: HistoryConfig,
  synchronous_commit?: "on",
): EventBus {
  const kept = history === undefined ? {} : { history };
  if (backend === "memory") return createEventBus({ backend, ...kept });
  if (backend === "redis") {
    return createEventBus({
      backend,
      url: REDIS_URL,
      channel_prefix: prefix,
      ...kept,
    });
  }
  return createEventBus({
    backend,
    connection_string: DATABASE_URL,
    channel_prefix: prefix,
    ...kept,
    ...(synchronous_commit === undefined ? {} : { synchronous_commit }),
  });
}

/**
 * Removes what buses on `prefix` left on a shared server: the log of their
 * history, and on PostgreSQL their payload and pattern tables too.
 */
export async function forget(backend: Backend, prefix: string): Promise<void> {
  if (backend === "redis") {
    const client = new Redis(REDIS_URL);
    try {
      await client.del(
        `${prefix}:log`,
        `${prefix}:log:epoch`,
        `${prefix}:log:trimmed`,
      );
    } finally {
      client.disconnect();
    }
  } else if (backend === "postgres") {
    const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      await sql`drop table if exists ${
        sql(["_log", "_log_state", "_payloads", "_patterns"].map((t) =>
          prefix + t
        ))
      }`;
      await sql`drop sequence if exists ${sql(`${prefix}_log_boot`)}`;
      await sql`drop function if exists ${
        sql([`${prefix}_log_removed`, `${prefix}_log_no_boot`])
      }`;
    } finally {
      await sql.end();
    }
  }
}
