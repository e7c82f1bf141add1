// The command line of cli.ts, parsed: a command, its positional arguments,
// its own flags, and the rest as config keys (`--channel-prefix x` is the
// key `channel_prefix`), merged over `--config file.json`.

import { parseJson as parseText } from "./_json_parse.ts";

/** A usage error: the message is shown with a pointer to `--help`. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/**
 * Flags without a value (`--json`); each may be followed by `true` or
 * `false` (`--ssl false`, `--ssl=false`).
 */
const SWITCHES = new Set(["json", "help", "ssl"]);
/** Config keys whose value is an integer. */
const INTEGERS = new Set(["port", "db", "max_event_bytes"]);

/**
 * The config keys of a connection, by the URL key that replaces them all:
 * a URL given as a flag drops these keys of `--config`.
 */
const CONNECTION: Readonly<Record<string, readonly string[]>> = {
  url: ["host", "port", "db", "password", "username", "url"],
  connection_string: [
    "host",
    "port",
    "database",
    "user",
    "password",
    "connection_string",
  ],
};

/** A parsed command line. */
export interface Parsed {
  readonly command: string | undefined;
  readonly positional: readonly string[];
  /** The command's own flags (see `OWN`), by name with `-` for `_`. */
  readonly flags: Readonly<Record<string, string | boolean>>;
  /** Config keys from flags (not yet merged with `--config`). */
  readonly config: Readonly<Record<string, unknown>>;
}

/**
 * Parses `args`. `own` names the flags that are not config keys (for
 * every command, so that the check of which a command takes is one
 * place). `--` ends the flags: what follows is positional.
 *
 * @throws {UsageError} For a flag without its value.
 */
export function parse(
  args: readonly string[],
  own: ReadonlySet<string>,
): Parsed {
  const positional: string[] = [];
  const flags: Record<string, string | boolean> = {};
  const config: Record<string, unknown> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (arg === "-h") {
      flags.help = true;
      continue;
    }
    if (!arg.startsWith("--")) {
      positional.push(arg);
      continue;
    }
    const equals = arg.indexOf("=");
    const name = arg.slice(2, equals < 0 ? undefined : equals);
    let value: string | boolean;
    if (equals >= 0) value = arg.slice(equals + 1);
    else if (SWITCHES.has(name)) {
      const next = args[i + 1];
      value = next === "true" || next === "false" ? args[++i]! : true;
    } else if (i + 1 < args.length) value = args[++i]!;
    else throw new UsageError(`--${name} needs a value`);
    const flag = name.replaceAll("_", "-");
    if (own.has(flag)) flags[flag] = switchValue(flag, value);
    else config[name.replaceAll("-", "_")] = configValue(name, value);
  }
  const [command, ...rest] = positional;
  return { command, positional: rest, flags, config };
}

// A switch's "true"/"false" as a boolean.
function switchValue(name: string, value: string | boolean): string | boolean {
  if (!SWITCHES.has(name) || typeof value === "boolean") return value;
  if (value === "true" || value === "false") return value === "true";
  throw new UsageError(`--${name} takes true or false, got "${value}"`);
}

// A config key's value from its flag: an integer for the numeric keys,
// true/false for `ssl`, else the text (createEventBus checks them all).
function configValue(name: string, value: string | boolean): unknown {
  const key = name.replaceAll("-", "_");
  if (INTEGERS.has(key) && /^\d+$/.test(String(value))) return Number(value);
  if (key === "ssl" && (value === "true" || value === "false")) {
    return value === "true";
  }
  return value;
}

/**
 * The config: `--config`'s JSON file, with the flags' keys over it. A URL
 * flag (`--url`, `--connection-string`) replaces the file's whole
 * connection: its host, port, user, password … are dropped.
 */
export async function loadConfig(
  file: string | boolean | undefined,
  flags: Readonly<Record<string, unknown>>,
): Promise<Record<string, unknown>> {
  if (file === undefined) return { ...flags };
  if (typeof file !== "string") throw new UsageError("--config needs a file");
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    throw new UsageError(
      `Cannot read --config "${file}": ${(error as Error).message}`,
    );
  }
  const parsed = parseJson(text, `--config "${file}"`);
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(
      `Cannot read --config "${file}": expected a JSON object of config keys`,
    );
  }
  const base: Record<string, unknown> = { ...parsed };
  for (const [url, keys] of Object.entries(CONNECTION)) {
    if (flags[url] !== undefined) { for (const key of keys) delete base[key]; }
  }
  return { ...base, ...flags };
}

/**
 * Parses JSON text. On a syntax error the message says where (V8's line
 * and column, or position) and never quotes the text: a config may hold
 * a password.
 *
 * @throws {UsageError} `<what> is not valid JSON (…)`.
 */
export function parseJson(text: string, what: string): unknown {
  try {
    return parseText(text);
  } catch (error) {
    const message = (error as Error).message;
    const at = /\(line \d+ column \d+\)/.exec(message)?.[0].slice(1, -1) ??
      /position \d+/.exec(message)?.[0] ??
      (/end of JSON input|Unexpected end/.test(message)
        ? "it ends too early"
        : undefined);
    throw new UsageError(
      `${what} is not valid JSON${at === undefined ? "" : ` (${at})`}`,
    );
  }
}
