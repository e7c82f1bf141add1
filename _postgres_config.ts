// The Postgres connection of a config dict, by the Python dataknobs-common
// bus's rules (normalize_postgres_connection_config): individual keys beat
// the same part of `connection_string`; `DATABASE_URL` is read only when the
// config has neither; `POSTGRES_*` variables fill the parts still missing;
// then the defaults. Values are never echoed except host, port and database.

import { DENIED, type EnvReader, readEnv } from "./_env.ts";
import { shownName, STRUCTURAL } from "./_options.ts";
import { show } from "./types.ts";

const FIELDS = ["host", "port", "database", "user", "password"] as const;
type Field = typeof FIELDS[number];
type Parts = { [F in Field]?: string };
type Found = { [F in Field]?: string | undefined };

const ENV: Readonly<Record<Field, string>> = {
  host: "POSTGRES_HOST",
  port: "POSTGRES_PORT",
  database: "POSTGRES_DB",
  user: "POSTGRES_USER",
  password: "POSTGRES_PASSWORD",
};

const DEFAULTS: Readonly<Record<Field, string>> = {
  host: "localhost",
  port: "5432",
  database: "postgres",
  user: "postgres",
  password: "",
};

/** The schemes taken; Python strips `+asyncpg` (SQLAlchemy's dialect). */
export const POSTGRES_SCHEME = /^postgres(?:ql(?:\+asyncpg)?)?:$/;

function fail(detail: string): never {
  throw new TypeError(`Invalid postgres event bus config: ${detail}`);
}

/**
 * The URL to connect to: `connection_string` as given when nothing
 * overrides a part of it, else one built from the resolved parts (keeping
 * the query, so an `sslmode` stays).
 */
export function postgresUrl(
  config: Readonly<Record<string, unknown>>,
  env: EnvReader = readEnv,
): string {
  const explicit: Parts = {};
  for (const field of FIELDS) {
    const value = config[field];
    if (value !== undefined && value !== null) explicit[field] = String(value);
  }
  const given = Object.keys(explicit).length > 0;
  let denied = false;
  const read = (name: string) => {
    const value = env(name);
    if (value !== DENIED) return value;
    denied = true;
    return undefined;
  };
  let url = (config.connection_string as string | null | undefined) ||
    undefined;
  let from = '"connection_string"';
  if (url === undefined && !given) {
    url = read("DATABASE_URL") || undefined;
    from = "the DATABASE_URL environment variable";
  }
  const base = url === undefined ? {} : urlParts(url, from);
  const parts: Found = {};
  const origin: Partial<Record<Field, string>> = {};
  let fromEnv = false;
  for (const field of FIELDS) {
    parts[field] = explicit[field] ?? base[field];
    origin[field] = field in explicit ? `"${field}"` : from;
    if (parts[field] !== undefined) continue;
    parts[field] = read(ENV[field]);
    origin[field] = `the ${ENV[field]} environment variable`;
    fromEnv ||= parts[field] !== undefined;
  }
  if (url === undefined && !given && !fromEnv) fail(noConnection(denied));
  if (url !== undefined && !given && !fromEnv) {
    return url.replace(/^postgresql\+asyncpg:/, "postgresql:");
  }
  const query = url === undefined ? "" : new URL(url).search;
  return build({ ...DEFAULTS, ...defined(parts) }, origin, query);
}

function defined(parts: Found): Parts {
  return Object.fromEntries(
    Object.entries(parts).filter(([, value]) => value !== undefined),
  );
}

function noConnection(denied: boolean): string {
  const why = denied
    ? "; this program may not read them: run Deno with --allow-env (the drivers read PG* variables too, so a remote bus needs it in any case)"
    : "";
  return `no connection given: set "connection_string", or any of "host", "port", "database", "user", "password", or the environment variables DATABASE_URL or POSTGRES_HOST, POSTGRES_PORT, POSTGRES_DB, POSTGRES_USER, POSTGRES_PASSWORD${why}`;
}

/** The parts a URL gives, decoded; `user`/`password` only where written. */
function urlParts(text: string, from: string): Parts {
  const bad = () =>
    fail(
      `${from} must be a postgres:// URL (a literal % in it written as %25)`,
    );
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    return bad();
  }
  if (!POSTGRES_SCHEME.test(parsed.protocol)) bad();
  // URL cannot tell "u@h" from "u:@h" (an empty password): read the text.
  const authority = /^[^:]*:\/\/([^/?#]*)/.exec(text)?.[1] ?? "";
  const at = authority.lastIndexOf("@");
  const info = at < 0 ? undefined : authority.slice(0, at);
  const colon = info?.indexOf(":") ?? -1;
  const parts: Parts = {};
  try {
    if (info !== undefined) {
      parts.user = decodeURIComponent(colon < 0 ? info : info.slice(0, colon));
    }
    if (info !== undefined && colon >= 0) {
      parts.password = decodeURIComponent(info.slice(colon + 1));
    }
    if (parsed.pathname.length > 1) {
      parts.database = decodeURIComponent(parsed.pathname.slice(1));
    }
  } catch {
    bad();
  }
  const host = parsed.hostname.replace(/^\[|\]$/g, "");
  if (host !== "") parts.host = host;
  if (parsed.port !== "") parts.port = parsed.port;
  return parts;
}

/** Python's `int()` on a port: decimal digits, `_` between them, spaces. */
export function portNumber(value: unknown): number | undefined {
  const text = typeof value === "number" ? String(value) : value;
  if (typeof text !== "string" || !/^\s*\+?\d+(?:_\d+)*\s*$/.test(text)) {
    return undefined;
  }
  const port = Number(text.trim().replace(/_/g, ""));
  return port >= 1 && port <= 65535 ? port : undefined;
}

// Host and database go into the URL bare (escaping would change them), so
// what would re-delimit it (STRUCTURAL) is refused, as Python refuses it.

function build(
  parts: Parts,
  origin: Partial<Record<Field, string>>,
  query: string,
): string {
  const { host = "", database = "", user = "", password = "" } = parts;
  for (const [field, value] of [["host", host], ["database", database]]) {
    if (value === "" || STRUCTURAL.test(value!)) {
      fail(
        `${
          origin[field as Field]
        } must be a non-empty ${field} name without spaces, control characters or any of @ / ? # [ ] %, got ${
          shownName(value!)
        }; give a "connection_string" for values that need %-escapes`,
      );
    }
  }
  const port = portNumber(parts.port);
  if (port === undefined) {
    fail(
      `${origin.port} must be an integer from 1 to 65535, got ${
        show(parts.port)
      }`,
    );
  }
  const enc = encodeURIComponent;
  return `postgresql://${enc(user)}:${enc(password)}@${
    hostPart(host, origin.host!)
  }:${port}/${database}${query}`;
}

/** The host as a URL writes it: an IPv6 address in brackets. */
function hostPart(host: string, from: string): string {
  if (!host.includes(":")) return host;
  try {
    new URL(`postgresql://[${host}]`);
    return `[${host}]`;
  } catch {
    return fail(
      `${from} has a ":" but is not an IPv6 address; give the port as "port"`,
    );
  }
}
