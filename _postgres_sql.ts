// One PostgreSQL connection through postgres.js that the bus can end at
// once: the bus makes the socket itself (postgres.js's `socket` option), so
// a half-open connection is destroyed instead of waiting for a goodbye the
// server will never answer.

import { Refusal } from "./_transport.ts";
import type { connect, Socket } from "node:net";
import type postgres from "postgres";
import type { Options, Sql } from "postgres";

/** A postgres.js instance of one connection, and how to end it at once. */
export interface Connection {
  readonly sql: Sql;
  /** Destroys the socket and ends the instance; leaves no handle. */
  destroy(): void;
  /** Whether the server answered "no" to TLS that was required. */
  readonly refusedTls: boolean;
}

/** Where to connect, and how (see _postgres_tls.ts). */
export interface Target {
  readonly url: string;
  readonly ssl: false | "prefer" | object;
  readonly tlsRequired: boolean;
  /** The session's `synchronous_commit`. */
  readonly synchronousCommit: SynchronousCommit;
}

/**
 * A value of PostgreSQL's `synchronous_commit`: whether a commit waits for
 * its WAL to reach disk (`"on"`, `"local"`; with synchronous standbys,
 * `"remote_write"` and `"remote_apply"` wait for them too) or returns at
 * once (`"off"`: a server crash may lose the last commits, about three
 * `wal_writer_delay`s, 600 ms by default). See
 * https://www.postgresql.org/docs/current/runtime-config-wal.html#GUC-SYNCHRONOUS-COMMIT
 */
export type SynchronousCommit =
  | "on"
  | "off"
  | "local"
  | "remote_write"
  | "remote_apply";

/** Every SynchronousCommit. */
export const SYNCHRONOUS_COMMIT: readonly SynchronousCommit[] = [
  "on",
  "off",
  "local",
  "remote_write",
  "remote_apply",
];

/** What to do with notifications and the loss of the connection. */
export interface ConnectionHooks {
  /** Called once the connection has closed, for whatever reason. */
  readonly lost: (cause?: Error) => void;
  /** Called with each notification (postgres.js's own `onnotify` hook). */
  readonly notified?: (channel: string, payload: string) => void;
}

/**
 * A server's error (the connection is fine) as a Refusal; any other error
 * as it is.
 */
export function refusal(error: unknown): Error {
  return (error as Error).name === "PostgresError"
    ? new Refusal((error as Error).message)
    : error as Error;
}

/**
 * The SQLSTATE of a statement that found the boot of the bus's log reset
 * (see _postgres_log.ts).
 */
export const BOOT_RESET = "DKB01";

/**
 * Whether a statement failed for want of what the bus makes: a table or
 * function of its dropped by hand (SQLSTATE 42P01, 42883), or the boot of
 * its log reset (BOOT_RESET).
 */
export const objectGone = (error: unknown): boolean =>
  ["42P01", "42883", BOOT_RESET].includes(
    (error as { code?: string }).code ?? "",
  );

/**
 * Runs `run`; when it failed for want of what the bus makes (objectGone),
 * runs `make` (which makes it again), then `run` once more.
 */
export async function againIfGone<T>(
  run: () => Promise<T>,
  make: () => Promise<unknown>,
): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (!objectGone(error)) throw error;
    await make();
    return await run();
  }
}

/** Does nothing: for postgres.js notices and settled promises. */
export const quiet = (): void => {};

let drivers: Promise<[typeof postgres, typeof connect]> | undefined;

/**
 * Makes a postgres.js instance of one connection (opened by its first
 * query). The driver loads on the first call: importing the bus loads none.
 */
export async function connection(
  target: Target,
  applicationName: string,
  hooks: ConnectionHooks,
): Promise<Connection> {
  drivers ??= Promise.all([
    import("postgres").then((module) => module.default),
    import("node:net").then((module) => module.connect),
  ]);
  const [makeSql, connectSocket] = await drivers;
  const sockets = new Set<Socket>();
  let ended = false, refusedTls = false;
  const options = {
    // Always given, so that neither the URL nor PGSSL… variables decide.
    ssl: target.ssl,
    // postgres.js splits a URL's host at ":", which breaks "[::1]".
    ...where(target.url),
    max: 1,
    max_lifetime: null,
    idle_timeout: 0,
    onnotice: quiet,
    // No query of the array types at start-up: postgres.js runs it outside
    // any query of ours, so when the connection closes during it (a server
    // restart) its rejection is handled by no one and ends the process.
    // The bus sends lists as jsonb, and reads no array from the server.
    fetch_types: false,
    connection: {
      application_name: applicationName,
      synchronous_commit: target.synchronousCommit,
    },
    onclose: () => hooks.lost(),
    // postgres.js hands every NotificationResponse to `onnotify` (what its
    // own sql.listen() is built on), and opens sockets through `socket`.
    onnotify: hooks.notified,
    // postgres.js opens a new socket by itself when one closes during the
    // start-up exchange, possibly later, from a timer (after `backoff`
    // seconds). Once the bus has ended the connection that must fail, and
    // the timer must be short.
    backoff: () => 0.05,
    socket: ({ host, port, path }: SocketOptions) => {
      if (ended) throw new Error("the bus ended this connection");
      const socket = path
        ? connectSocket(path)
        : connectSocket(port[0]!, host[0]!);
      // postgres.js names the TLS server after `socket.host`.
      Object.assign(socket, { host: host[0] });
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      // The first byte answers postgres.js's SSLRequest: "S" or "N".
      // postgres.js starts TLS even after "N", and the server then hangs
      // up with no word of why.
      if (target.tlsRequired) {
        socket.once("data", (chunk: Uint8Array) => {
          if (chunk[0] === 0x4e) refusedTls = true;
        });
      }
      return socket;
    },
  };
  const sql = makeSql(
    target.url,
    options as unknown as Options<Record<string, never>>,
  );
  return {
    sql,
    get refusedTls() {
      return refusedTls;
    },
    destroy: () => {
      ended = true;
      for (const socket of sockets) socket.destroy();
      sql.end({ timeout: 0 }).catch(quiet);
    },
  };
}

// The host (an IPv6 address without brackets) and port of a URL, as
// postgres.js options; none when the URL names no host.
function where(url: string): { host?: string[]; port?: number[] } {
  const { hostname, port } = new URL(url);
  if (hostname === "") return {};
  return {
    host: [hostname.replace(/^\[(.*)\]$/, "$1")],
    port: [Number(port) || 5432],
  };
}

interface SocketOptions {
  readonly host: string[];
  readonly port: number[];
  readonly path: string | false;
}
