// Checks the configuration dicts (the Python bus's keys and ours): every key
// known and of the right type, secrets never echoed.

import { portNumber, POSTGRES_SCHEME } from "./_postgres_config.ts";
import { SYNCHRONOUS_COMMIT, type SynchronousCommit } from "./_postgres_sql.ts";
import { CONFIG_NAMES, tlsProblem } from "./_tls.ts";
import { show } from "./types.ts";

type Kind =
  | "string"
  | "text"
  | "boolean"
  | "port"
  | "bytes"
  | "db"
  | "prefix"
  | "pg_prefix"
  | "postgres_url"
  | "redis_url"
  | "tls"
  | "history"
  | "synchronous_commit";

interface KeySpec {
  readonly kind: Kind;
  readonly secret?: boolean;
  /** `null` means "not given", as Python's `None` does for this key. */
  readonly nullable?: boolean;
}

const CHECKS: Record<Kind, [(value: unknown) => boolean, string]> = {
  string: [(v) => typeof v === "string" && v !== "", "a non-empty string"],
  text: [(v) => typeof v === "string", "a string"],
  boolean: [(v) => typeof v === "boolean", "true or false"],
  port: [
    (v) => portNumber(v) !== undefined,
    "an integer from 1 to 65535 (or its decimal text)",
  ],
  bytes: [
    (v) => Number.isSafeInteger(v) && (v as number) >= 1,
    "an integer number of bytes >= 1",
  ],
  db: [(v) => Number.isInteger(v) && (v as number) >= 0, "an integer >= 0"],
  prefix: [
    (v) => typeof v === "string" && v !== "" && !/[*?[\]\\]/.test(v),
    "a non-empty string without glob characters (* ? [ ] \\)",
  ],
  // "" is "not given", as Python reads it.
  postgres_url: [
    (v) => v === "" || isUrl(v, POSTGRES_SCHEME),
    "a postgres:// URL (a literal % in it written as %25)",
  ],
  redis_url: [
    (v) => isUrl(v, /^rediss?:$/),
    "a redis:// or rediss:// URL (a literal % in it written as %25)",
  ],
  // Checked in full by tlsProblem, which names the setting at fault.
  tls: [(v) => tlsProblem(v, CONFIG_NAMES) === undefined, "TLS settings"],
  history: [
    (v) =>
      typeof v === "object" && v !== null && !Array.isArray(v) &&
      Object.entries(v).every(([key, n]) =>
        ["max_events", "max_age_ms"].includes(key) &&
        Number.isSafeInteger(n) && (n as number) >= 1
      ),
    "an object { max_events?, max_age_ms? } of integers >= 1",
  ],
  synchronous_commit: [
    (v) => SYNCHRONOUS_COMMIT.includes(v as SynchronousCommit),
    SYNCHRONOUS_COMMIT.map((value) => `"${value}"`).join(", "),
  ],
  pg_prefix: [
    (v) => typeof v === "string" && /^[A-Za-z0-9_]{1,40}$/.test(cleanPrefix(v)),
    "a string with 1 to 40 characters from [A-Za-z0-9_] (others are removed)",
  ],
};

/** The keys each built-in backend accepts: the Python bus's, and ours. */
const SCHEMAS: Readonly<Record<string, Record<string, KeySpec>>> = {
  memory: {},
  postgres: {
    connection_string: { kind: "postgres_url", secret: true, nullable: true },
    host: { kind: "string", nullable: true },
    port: { kind: "port", nullable: true },
    database: { kind: "string", nullable: true },
    user: { kind: "string", nullable: true },
    password: { kind: "text", secret: true, nullable: true },
    channel_prefix: { kind: "pg_prefix" },
    ssl: { kind: "tls", secret: true },
    synchronous_commit: { kind: "synchronous_commit" },
  },
  redis: {
    host: { kind: "string" },
    port: { kind: "port" },
    ssl: { kind: "tls", secret: true },
    password: { kind: "text", secret: true, nullable: true },
    db: { kind: "db" },
    channel_prefix: { kind: "prefix" },
    url: { kind: "redis_url", secret: true },
    username: { kind: "string" },
  },
};

/** Keys every built-in backend takes besides its own (bus options). */
const COMMON: Readonly<Record<string, KeySpec>> = {
  max_event_bytes: { kind: "bytes" },
  history: { kind: "history" },
};

/**
 * A Postgres channel prefix as the Python bus cleans it: every character
 * outside `[A-Za-z0-9_]` removed.
 */
export function cleanPrefix(prefix: string): string {
  return prefix.replace(/[^A-Za-z0-9_]/g, "");
}

/**
 * Throws a TypeError naming the first unknown or mistyped key.
 * Values of secret keys never appear in the message.
 */
export function checkConfig(
  backend: string,
  config: Readonly<Record<string, unknown>>,
): void {
  const schema = { ...SCHEMAS[backend]!, ...COMMON };
  const fail = (detail: string) => {
    throw new TypeError(`Invalid ${backend} event bus config: ${detail}`);
  };
  for (const key of Object.keys(config)) {
    if (key !== "backend" && !(key in schema)) {
      const known = ["backend", ...Object.keys(schema)].join(", ");
      fail(`unknown key "${key}"; the keys are: ${known}`);
    }
  }
  for (const [key, spec] of Object.entries(schema)) {
    const value = config[key];
    if (value === undefined || (value === null && spec.nullable)) continue;
    if (spec.kind === "tls") {
      const problem = tlsProblem(value, CONFIG_NAMES);
      if (problem !== undefined) fail(problem);
      continue;
    }
    const [ok, want] = CHECKS[spec.kind];
    if (!ok(value)) {
      const got = spec.secret ? `a ${typeof value}` : show(value);
      fail(`"${key}" must be ${want}, got ${got}`);
    }
  }
}

/** Whether `value` is a URL of one of `schemes` whose escapes decode. */
function isUrl(value: unknown, schemes: RegExp): boolean {
  if (typeof value !== "string") return false;
  try {
    const { protocol, username, password, pathname } = new URL(value);
    [username, password, pathname].forEach((part) => decodeURIComponent(part));
    return schemes.test(protocol);
  } catch {
    return false;
  }
}
