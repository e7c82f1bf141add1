/**
 * The command line: watch a topic, publish an event, or check a bus, on any
 * backend, with the config keys of `createEventBus` as flags
 * (`--backend redis --url redis://…`, `--channel-prefix shop`) or in a
 * `--config file.json` (flags win). The backend must be named: a memory
 * bus reaches no other process.
 *
 * ```sh
 * deno run -A jsr:@dataknobs/events/cli tail 'orders' --backend redis --host 127.0.0.1
 * deno run -A jsr:@dataknobs/events/cli publish orders --type created --payload '{"id":7}' --config bus.json
 * deno run -A jsr:@dataknobs/events/cli status --config bus.json
 * ```
 *
 * Exit codes: 0 done, 1 the bus failed (unreachable server, refused
 * publish), 2 a usage error (bad flag, config or payload), 130 interrupted
 * (Ctrl-C, after the bus closed cleanly).
 *
 * @example Publish from code, as the command line does
 * ```ts
 * import assert from "node:assert/strict";
 * import { runCli } from "@dataknobs/events/cli";
 * assert.equal(await runCli(["publish", "orders", "--type", "created", "--payload", '{"id":7}', "--backend", "memory"]), 0);
 * ```
 *
 * @module
 */

import {
  loadConfig,
  parse,
  type Parsed,
  parseJson,
  UsageError,
} from "./_cli_args.ts";
import { err, gapLine, out, pretty, printable, report } from "./_cli_print.ts";
import { createEventBus, type EventBusConfig } from "./mod.ts";
import { PostgresEventBus } from "./postgres.ts";
import { RedisEventBus } from "./redis.ts";
import {
  type ConnectionState,
  Event,
  type EventBus,
  EventBusError,
  EventType,
} from "./types.ts";

const USAGE = `Usage: events <command> [arguments] --backend B [config flags]

Commands:
  tail <topic> [--pattern P] [--count N] [--from POSITION] [--json]
      Print each event on <topic> (or matching the fnmatch pattern P; the
      topic is then only a label) until Ctrl-C or N events. --json prints
      one wire-JSON line an event. --from starts with the events the log
      holds after POSITION ("earliest": all of them); it needs the config
      key history (in --config). On a bus with history each event's
      position is printed too. Gaps (events missed or lost) and a lost
      and restored connection are reported on stderr.
  publish <topic> --type T [--payload JSON|@FILE|-] [--source S] [--correlation-id C] [--json]
      Publish one event; print its id (--json: its wire JSON). The payload
      is JSON text, @FILE reads it from a file, - from stdin.
  status [--json]
      Print the state, the round trip of a status query to the server, the
      PostgreSQL notification queue usage and Redis's subscriber counts.

Config: the keys of createEventBus as flags (--backend redis --host h
--port 6379 --channel-prefix p, --connection-string postgres://…), or
--config file.json with those keys. Flags win; a URL flag (--url,
--connection-string) replaces the file's whole connection. --backend (or
backend in --config) is required. Put passwords in --config, not in flags.
Switches take true/false: --json, --ssl false, --ssl=false. -- ends flags.

Exit codes: 0 done, 1 the bus failed, 2 usage error, 130 interrupted.`;

const NO_BACKEND =
  "no backend: give --backend redis or --backend postgres (or backend in --config); a memory bus lives in one process, so no other process would see what it publishes or publish what it tails (--backend memory chooses it anyway)";

/** How long closing waits for an event being printed (ms). */
const CLOSE_TIMEOUT_MS = 250;

/** Flags of the commands (every other flag is a config key). */
const TAKES: Readonly<Record<string, readonly string[]>> = {
  tail: ["pattern", "count", "from", "json"],
  publish: ["type", "payload", "source", "correlation-id", "json"],
  status: ["json"],
};
const OWN = new Set(["config", "help", ...Object.values(TAKES).flat()]);

/** A command, once its arguments are checked: runs on a connected bus. */
type Run = (bus: EventBus, signal: AbortSignal) => Promise<number>;
/** Checks a command's arguments (before connecting), or throws UsageError. */
type Command = (parsed: Parsed) => Run | Promise<Run>;

const COMMANDS: Readonly<Record<string, Command>> = { tail, publish, status };

/**
 * Runs the command line with `args` (what follows `cli` on it), writing to
 * stdout and stderr. A config must name its backend (`--backend`). Ctrl-C
 * (SIGINT) while it runs closes the bus and returns 130; a second Ctrl-C
 * returns 130 at once, without waiting for the bus to close.
 *
 * @param args The command, its arguments and flags.
 * @returns The exit code: 0 done, 1 the bus failed, 2 usage error, 130
 * interrupted.
 * @example Check a memory bus
 * ```ts
 * import assert from "node:assert/strict";
 * import { runCli } from "@dataknobs/events/cli";
 * assert.equal(await runCli(["status", "--json", "--backend", "memory"]), 0);
 * assert.equal(await runCli(["status"]), 2); // no --backend
 * ```
 */
export async function runCli(args: readonly string[]): Promise<number> {
  const stop = new AbortController();
  const again = Promise.withResolvers<true>();
  const interrupt = () =>
    stop.signal.aborted ? again.resolve(true) : stop.abort();
  Deno.addSignalListener("SIGINT", interrupt);
  const opened: { bus?: EventBus } = {};
  try {
    const code = await run(args, stop.signal, opened).catch((error) =>
      failed(error, stop.signal)
    );
    const closed = (opened.bus?.close() ?? Promise.resolve()).then(() => false);
    if (await Promise.race([closed, again.promise])) {
      err("events: interrupted again: exiting before the bus has closed");
      return 130;
    }
    return code;
  } finally {
    Deno.removeSignalListener("SIGINT", interrupt);
  }
}

async function run(
  args: readonly string[],
  signal: AbortSignal,
  opened: { bus?: EventBus },
): Promise<number> {
  const parsed = parse(args, OWN);
  if (parsed.flags.help === true || parsed.command === undefined) {
    if (parsed.flags.help !== true) err(USAGE);
    else await report(USAGE);
    return parsed.flags.help === true ? 0 : 2;
  }
  const command = COMMANDS[parsed.command];
  if (command === undefined) {
    throw new UsageError(
      `Unknown command "${parsed.command}"; the commands are: ${
        Object.keys(COMMANDS).join(", ")
      }`,
    );
  }
  for (const flag of Object.keys(parsed.flags)) {
    if (flag !== "config" && !TAKES[parsed.command]!.includes(flag)) {
      throw new UsageError(`${parsed.command} does not take --${flag}`);
    }
  }
  const config = await loadConfig(parsed.flags.config, parsed.config);
  const start = await command(parsed);
  if (config.backend === undefined) throw new UsageError(NO_BACKEND);
  const bus = opened.bus = makeBus(config);
  await bus.connect({ signal });
  return await start(bus, signal);
}

// The exit code of a failure, after saying what it was.
function failed(error: unknown, signal: AbortSignal): number {
  if (signal.aborted) return 130;
  // A bad argument the bus refuses (an empty pattern) is a usage error.
  const usage = error instanceof UsageError || error instanceof TypeError ||
    error instanceof RangeError;
  err(
    `events: ${(error as Error).message}${
      usage ? '\nRun "events --help" for usage.' : ""
    }`,
  );
  return usage ? 2 : 1;
}

// The CLI's bus: it reports on stderr, and closes without waiting long for
// an event being printed. A config createEventBus refuses is a usage error.
function makeBus(config: Record<string, unknown>): EventBus {
  let lost = false;
  const onStateChange = (state: ConnectionState) => {
    if (state === "reconnecting" && !lost) {
      lost = true;
      err("events: connection lost; reconnecting");
    } else if (state === "ready" && lost) {
      lost = false;
      err("events: connection restored");
    }
  };
  try {
    return createEventBus(config as EventBusConfig, {
      closeTimeoutMs: CLOSE_TIMEOUT_MS,
      onError,
      onGap: (gap) => err(gapLine(gap)),
      onStateChange,
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function onError(error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof EventBusError && error.code === "DROPPED_ON_CLOSE") {
    // Events still queued for the printing handler when tail stopped.
    err(`events: stopped; ${error.dropped} event(s) not printed`);
    return;
  }
  err(`events: ${message}`);
}

function tail(parsed: Parsed): Run {
  const topic = onlyArgument(parsed, "tail <topic>");
  const { pattern = null, count, json, from } = parsed.flags;
  const limit = count === undefined ? Infinity : Number(count);
  if (
    count !== undefined &&
    !(/^\d+$/.test(String(count)) && Number.isSafeInteger(limit) && limit >= 1)
  ) {
    throw new UsageError(
      `--count must be an integer >= 1 (digits only), got "${String(count)}"`,
    );
  }
  if (from !== undefined && typeof from !== "string") {
    throw new UsageError("--from needs a position or earliest");
  }
  return async (bus, signal) => {
    const { promise: ended, resolve, reject } = Promise.withResolvers<void>();
    let seen = 0;
    await bus.subscribe(topic, async (event, { position }) => {
      if (seen >= limit) return;
      seen++;
      const line = json !== true ? pretty(event, position) : printable(
        position === undefined
          ? event.toJSONString()
          : JSON.stringify({ ...event.toDict(), position }),
      );
      try {
        await out(line);
      } catch (error) {
        // A closed pipe (`| head`) ends the tail like a count does.
        if (error instanceof Deno.errors.BrokenPipe) resolve();
        else reject(error);
      }
      if (seen === limit) resolve();
    }, {
      pattern: pattern as string | null,
      ...(from === undefined ? {} : { from }),
    }).catch((error: Error) => {
      // A bus without history cannot start from a position: a usage error.
      if (from !== undefined && error instanceof TypeError) {
        throw new UsageError(error.message);
      }
      throw error;
    });
    // Listening before saying so: a Ctrl-C right after the line is seen.
    const stop = () => reject(signal.reason);
    signal.addEventListener("abort", stop, { once: true });
    if (signal.aborted) stop();
    try {
      err(
        `Tailing ${
          printable(pattern === null ? `"${topic}"` : `pattern "${pattern}"`)
        } on ${String(bus)}; Ctrl-C to stop`,
      );
      await ended;
    } finally {
      signal.removeEventListener("abort", stop);
    }
    return 0;
  };
}

async function publish(parsed: Parsed): Promise<Run> {
  const topic = onlyArgument(parsed, "publish <topic>");
  const flags = parsed.flags;
  if (flags.type === undefined) {
    throw new UsageError(
      `publish needs --type, one of ${Object.values(EventType).join(", ")}`,
    );
  }
  const payload = flags.payload === undefined
    ? {}
    : parseJson(await payloadText(String(flags.payload)), "--payload");
  let event: Event;
  try {
    event = new Event({
      type: flags.type as EventType,
      topic,
      payload: payload as Record<string, unknown>,
      source: textFlag(flags.source),
      correlationId: textFlag(flags["correlation-id"]),
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  return async (bus) => {
    try {
      await bus.publish(topic, event);
    } catch (error) {
      // An event over max_event_bytes: a refused publish, not bad usage.
      if (error instanceof RangeError) throw new Error(error.message);
      throw error;
    }
    await report(
      flags.json === true ? printable(event.toJSONString()) : event.eventId,
    );
    return 0;
  };
}

// The text of --payload: itself, a file's (@FILE) or stdin's (-).
async function payloadText(value: string): Promise<string> {
  if (value === "-") return await new Response(Deno.stdin.readable).text();
  if (!value.startsWith("@")) return value;
  try {
    return await Deno.readTextFile(value.slice(1));
  } catch (error) {
    throw new UsageError(
      `Cannot read --payload "${value}": ${(error as Error).message}`,
    );
  }
}

function status(parsed: Parsed): Run {
  onlyArgument(parsed, "status", 0);
  return (bus) => statusOf(bus, parsed.flags.json === true);
}

async function statusOf(bus: EventBus, json: boolean): Promise<number> {
  const facts: Record<string, unknown> = {
    bus: String(bus),
    state: bus.state,
    roundTripMs: null,
  };
  const start = performance.now();
  if (bus instanceof PostgresEventBus) {
    facts.notificationQueueUsage = await bus.notificationQueueUsage();
  } else if (bus instanceof RedisEventBus) {
    facts.subscribers = await bus.subscriberCounts();
  }
  if (bus instanceof PostgresEventBus || bus instanceof RedisEventBus) {
    facts.roundTripMs = Number((performance.now() - start).toFixed(3));
  }
  if (json) {
    await report(JSON.stringify(facts));
    return 0;
  }
  const lines = [
    ["bus", facts.bus],
    ["state", facts.state],
    [
      "round trip",
      facts.roundTripMs === null
        ? "none (in-process bus)"
        : `${facts.roundTripMs} ms`,
    ],
  ];
  if (bus instanceof PostgresEventBus) {
    const usage = facts.notificationQueueUsage as number;
    lines.push(["notification queue", `${(usage * 100).toFixed(2)}% used`]);
    lines.push(["subscribers", "not told by PostgreSQL"]);
  }
  if (bus instanceof RedisEventBus) {
    const { topics, patterns } = facts.subscribers as {
      topics: Record<string, number>;
      patterns: number;
    };
    const each = Object.entries(topics).map(([t, n]) => `${t} ${n}`);
    lines.push(["subscribers", each.join(", ") || "no topic has any"]);
    lines.push(["pattern subscriptions", `${patterns} on the server`]);
  }
  await report(
    lines.map(([k, v]) => printable(`${String(k).padEnd(22)}${v}`)).join("\n"),
  );
  return 0;
}

// The one positional argument of a command (none when `count` is 0).
function onlyArgument(parsed: Parsed, usage: string, count = 1): string {
  if (parsed.positional.length !== count) {
    throw new UsageError(
      `${usage} takes ${count === 0 ? "no" : count} argument${
        count === 1 ? "" : "s"
      }, got ${parsed.positional.length}${
        parsed.positional.length ? ` (${parsed.positional.join(" ")})` : ""
      }`,
    );
  }
  return parsed.positional[0] ?? "";
}

function textFlag(value: string | boolean | undefined): string | null {
  return typeof value === "string" ? value : null;
}

if (import.meta.main) Deno.exit(await runCli(Deno.args));
