// TLS of the PostgreSQL bus: the connection string's `sslmode` (libpq's
// names) and the `tls` option combined into one mode, and postgres.js's
// `ssl` option for it. postgres.js itself would take any other `ssl…`
// parameter of the URL as a server setting (the server then refuses the
// connection: "unrecognized configuration parameter"), so those are
// refused here, at construction, with what to use instead.

import type { OptionChecks } from "./_options.ts";
import {
  type NodeTls,
  nodeTls,
  OPTION_NAMES,
  type TlsOptions,
  tlsProblem,
} from "./_tls.ts";
import { show } from "./types.ts";

/** libpq's modes, weakest first (`allow` is taken as `prefer`). */
const MODES = ["disable", "prefer", "require", "verify-ca", "verify-full"];

/** What the bus gives postgres.js, and what it checks on a new socket. */
export interface PostgresTls {
  /** The connection string without the TLS parameters. */
  readonly url: string;
  /** postgres.js's `ssl`: off, TLS when offered, or Node's TLS options. */
  readonly ssl: false | "prefer" | NodeTls;
  /** Whether a connection must be TLS (the server must accept it). */
  readonly required: boolean;
}

/** URL parameters of the TLS mode, read here and not passed on. */
const READ = new Set(["sslmode", "ssl", "sslrootcert"]);
/** TLS parameters postgres.js understands itself. */
const PASSED = new Set(["sslnegotiation"]);
/** libpq file settings, and what to give instead. */
const INSTEAD: Record<string, string> = {
  sslrootcert: "the CA's PEM text as tls.ca",
  sslcert: "the certificate's PEM text as tls.cert",
  sslkey: "the key's PEM text as tls.key",
};

/**
 * Resolves the TLS mode of a connection string and the `tls` option
 * (throws a TypeError through `check` for a contradiction or a setting
 * this bus cannot honour).
 */
export function postgresTls(
  url: string,
  parsed: URL,
  option: boolean | TlsOptions | undefined,
  check: OptionChecks,
): PostgresTls {
  if (option !== undefined) {
    const problem = tlsProblem(option, OPTION_NAMES);
    if (problem !== undefined) check.fail(problem);
  }
  const params = parsed.searchParams;
  for (const name of new Set(params.keys())) {
    if (params.getAll(name).length > 1 && READ.has(name)) {
      check.fail(`connectionString gives "${name}" more than once`);
    }
    if (READ.has(name) || PASSED.has(name)) continue;
    if (/^ssl|^requiressl$/.test(name)) {
      const instead = INSTEAD[name] ?? "the tls option";
      check.fail(
        `connectionString parameter "${name}" (a libpq setting) is not supported: PostgreSQL would refuse it as an unknown setting; give ${instead}`,
      );
    }
  }
  const fromUrl = urlMode(params, check);
  const fromOption = option === undefined
    ? undefined
    : option === false
    ? "disable"
    : option !== true && option.rejectUnauthorized === false
    ? "require"
    : "verify-full";
  const mode = combine(fromUrl, fromOption, check);
  const settings: true | TlsOptions = typeof option === "object"
    ? option
    : true;
  // No host: postgres.js names the server after each socket's host, and
  // never an IP address (the certificate must then list the IP).
  const ssl = mode === "disable"
    ? false
    : mode === "prefer"
    ? "prefer" as const
    : mode === "require"
    ? { ...nodeTls(settings, undefined), rejectUnauthorized: false }
    : mode === "verify-ca"
    ? { ...nodeTls(settings, undefined), checkServerIdentity: () => undefined }
    : nodeTls(settings, undefined);
  return {
    url: withoutParams(url, READ),
    ssl,
    required: mode !== "disable" && mode !== "prefer",
  };
}

// The mode the URL asks for (undefined: it does not say).
function urlMode(
  params: URLSearchParams,
  check: OptionChecks,
): string | undefined {
  const modes: string[] = [];
  const sslmode = params.get("sslmode");
  if (sslmode !== null) {
    if (!["allow", ...MODES].includes(sslmode)) {
      check.fail(
        `connectionString has sslmode=${
          show(sslmode)
        }; it must be disable, allow, prefer, require, verify-ca or verify-full`,
      );
    }
    modes.push(sslmode === "allow" ? "prefer" : sslmode);
  }
  // postgres.js's own spelling: ssl=true is verify-full.
  const ssl = params.get("ssl");
  if (ssl !== null) {
    const mode = ssl === "true"
      ? "verify-full"
      : ssl === "false"
      ? "disable"
      : ssl === "allow"
      ? "prefer"
      : ssl;
    if (!MODES.includes(mode)) {
      check.fail(
        `connectionString has ssl=${
          show(ssl)
        }; it must be true, false or an sslmode (disable … verify-full)`,
      );
    }
    modes.push(mode);
  }
  const rootcert = params.get("sslrootcert");
  if (rootcert !== null) {
    if (rootcert !== "system") {
      check.fail(
        `connectionString parameter "sslrootcert" (a libpq file setting) is not supported: give ${INSTEAD.sslrootcert}`,
      );
    }
    // libpq: the system store, and only with full verification.
    if (modes.some((mode) => mode !== "verify-full")) {
      check.fail(
        "connectionString has sslrootcert=system, which needs sslmode=verify-full",
      );
    }
    modes.push("verify-full");
  }
  if (new Set(modes).size > 1) {
    check.fail(
      `connectionString gives TLS modes that disagree (${modes.join(", ")})`,
    );
  }
  return modes[0];
}

// The stronger of the two; a `tls` that asks for less than a required
// sslmode, or for TLS when sslmode=disable, is refused. A verifying `tls`
// keeps sslmode=verify-ca's meaning (the CA is checked, the name is not):
// a private CA can only be given through `tls`.
function combine(
  fromUrl: string | undefined,
  fromOption: string | undefined,
  check: OptionChecks,
): string {
  if (fromUrl === undefined) return fromOption ?? "disable";
  if (fromOption === undefined) return fromUrl;
  if (fromUrl === "verify-ca" && fromOption === "verify-full") return fromUrl;
  const url = MODES.indexOf(fromUrl), option = MODES.indexOf(fromOption);
  if (fromUrl === "disable" && option > url) {
    check.fail(
      "tls asks for TLS but connectionString says sslmode=disable; remove one of them",
    );
  }
  if (url >= MODES.indexOf("require") && option < url) {
    check.fail(
      `tls asks for less (${
        fromOption === "disable" ? "false" : "rejectUnauthorized: false"
      }) than connectionString's sslmode=${fromUrl}; remove one of them`,
    );
  }
  return MODES[Math.max(url, option)]!;
}

// The URL without some query parameters (the rest kept as written).
function withoutParams(url: string, names: ReadonlySet<string>): string {
  const start = url.indexOf("?");
  if (start === -1) return url;
  const end = url.indexOf("#", start);
  const query = url.slice(start + 1, end === -1 ? undefined : end);
  const kept = query.split("&").filter((pair) => {
    const name = pair.split("=")[0]!;
    let decoded = name;
    try {
      decoded = decodeURIComponent(name.replaceAll("+", " "));
    } catch {
      // Kept as written; postgres.js reads it the same way.
    }
    return pair !== "" && !names.has(decoded);
  });
  return url.slice(0, start) + (kept.length > 0 ? `?${kept.join("&")}` : "");
}
