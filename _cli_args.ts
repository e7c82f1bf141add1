// The command line of cli.ts, parsed: a command, its positional arguments,
// its own flags, and the rest as config keys (`--channel-prefix x` is the
// key `channel_prefix`), merged over `--config file.json`.

/** A usage error: the message is shown with a pointer to `--help`. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** Flags without a value (`--json`); `--ssl` may take `=false`. */
const SWITCHES = new Set(["json", "help", "ssl"]);
/** Config keys whose value is an integer. */
const INTEGERS = new Set(["port", "db", "max_event_bytes"]);

/** A parsed command line. */
export interface Parsed {
  readonly command: string | undefined;
  readonly positional: readonly string[];
  /** The command's own flags (see `OWN`), by name as written. */
  readonly flags: Readonly<Record<string, string | boolean>>;
  /** Config keys from flags (not yet merged with `--config`). */
  readonly config: Readonly<Record<string, unknown>>;
}

/**
 * Parses `args`. `own` names the flags that are not config keys (for
 * every command, so that the check of which a command takes is one
 * place).
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
    if (arg === "-h") {
      flags.help = true;
      continue;
    }
    if (!arg.startsWith("--") || arg === "--") {
      positional.push(arg);
      continue;
    }
    const equals = arg.indexOf("=");
    const name = arg.slice(2, equals < 0 ? undefined : equals);
    let value: string | boolean;
    if (equals >= 0) value = arg.slice(equals + 1);
    else if (SWITCHES.has(name)) value = true;
    else if (i + 1 < args.length) value = args[++i]!;
    else throw new UsageError(`--${name} needs a value`);
    if (own.has(name)) flags[name] = value;
    else config[name.replaceAll("-", "_")] = configValue(name, value);
  }
  const [command, ...rest] = positional;
  return { command, positional: rest, flags, config };
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

/** The config: `--config`'s JSON file, with the flags' keys over it. */
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
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError(
      `Cannot read --config "${file}": it is not JSON (${
        (error as Error).message
      })`,
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(
      `Cannot read --config "${file}": expected a JSON object of config keys`,
    );
  }
  return { ...parsed, ...flags };
}
