/**
 * The command line: watch a topic, publish an event, or check a bus, on any
 * backend, with the config keys of `createEventBus` as flags
 * (`--backend redis --url redis://…`, `--channel-prefix shop`) or in a
 * `--config file.json` (flags win).
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
 * assert.equal(await runCli(["publish", "orders", "--type", "created", "--payload", '{"id":7}']), 0);
 * ```
 *
 * @module
 */

import { loadConfig, parse, type Parsed, UsageError } from "./_cli_args.ts";
import { createEventBus, type EventBusConfig } from "./mod.ts";
import { PostgresEventBus } from "./postgres.ts";
import { RedisEventBus } from "./redis.ts";
import { Event, type EventBus, EventType } from "./types.ts";

const USAGE = `Usage: events <command> [arguments] [config flags]

Commands:
  tail <topic> [--pattern P] [--count N] [--from POSITION] [--json]
      Print each event on <topic> (or matching the fnmatch pattern P; the
      topic is then only a label) until Ctrl-C or N events. --json prints
      one wire-JSON line an event. --from starts with the events the log
      holds after POSITION ("earliest": all of them); it needs the config
      key history (in --config), and --json then prints each event's
      position too.
  publish <topic> --type T [--payload JSON] [--source S] [--correlation-id C] [--json]
      Publish one event; print its id (--json: its wire JSON).
  status [--json]
      Print the state, the round trip of a status query to the server, the
      PostgreSQL notification queue usage and Redis's subscriber counts.

Config: the keys of createEventBus as flags (--backend redis --host h
--port 6379 --channel-prefix p, --connection-string postgres://…), or
--config file.json with those keys (flags win). Default: --backend memory.

Exit codes: 0 done, 1 the bus failed, 2 usage error, 130 interrupted.`;

/** Flags of the commands (every other flag is a config key). */
const TAKES: Readonly<Record<string, readonly string[]>> = {
  tail: ["pattern", "count", "from", "json"],
  publish: ["type", "payload", "source", "correlation-id", "json"],
  status: ["json"],
};
const OWN = new Set(["config", "help", ...Object.values(TAKES).flat()]);

type Command = (
  bus: EventBus,
  parsed: Parsed,
  signal: AbortSignal,
) => Promise<number>;

const COMMANDS: Readonly<Record<string, Command>> = { tail, publish, status };

/**
 * Runs the command line with `args` (what follows `cli` on it), writing to
 * stdout and stderr. Ctrl-C (SIGINT) while it runs closes the bus and
 * returns 130.
 *
 * @param args The command, its arguments and flags.
 * @returns The exit code: 0 done, 1 the bus failed, 2 usage error, 130
 * interrupted.
 * @example Check the memory bus
 * ```ts
 * import assert from "node:assert/strict";
 * import { runCli } from "@dataknobs/events/cli";
 * assert.equal(await runCli(["status", "--json"]), 0);
 * assert.equal(await runCli(["status", "--no-such-key", "1"]), 2);
 * ```
 */
export async function runCli(args: readonly string[]): Promise<number> {
  const interrupted = new AbortController();
  const interrupt = () => interrupted.abort();
  Deno.addSignalListener("SIGINT", interrupt);
  let bus: EventBus | undefined;
  try {
    const parsed = parse(args, OWN);
    if (parsed.flags.help === true || parsed.command === undefined) {
      await (parsed.flags.help === true ? out : err)(USAGE);
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
    bus = makeBus(await loadConfig(parsed.flags.config, parsed.config));
    await bus.connect({ signal: interrupted.signal });
    return await command(bus, parsed, interrupted.signal);
  } catch (error) {
    if (interrupted.signal.aborted) return 130;
    // A bad argument the bus refuses (an empty pattern) is a usage error.
    const usage = error instanceof UsageError || error instanceof TypeError ||
      error instanceof RangeError;
    await err(
      `events: ${(error as Error).message}${
        usage ? '\nRun "events --help" for usage.' : ""
      }`,
    );
    return usage ? 2 : 1;
  } finally {
    await bus?.close();
    Deno.removeSignalListener("SIGINT", interrupt);
  }
}

// A config createEventBus refuses is a usage error.
function makeBus(config: Record<string, unknown>): EventBus {
  try {
    return createEventBus(config as EventBusConfig);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

async function tail(
  bus: EventBus,
  parsed: Parsed,
  signal: AbortSignal,
): Promise<number> {
  const topic = onlyArgument(parsed, "tail <topic>");
  const { pattern = null, count, json, from } = parsed.flags;
  const limit = count === undefined ? Infinity : Number(count);
  if (!(Number.isSafeInteger(limit) && limit >= 1) && limit !== Infinity) {
    throw new UsageError(
      `--count must be an integer >= 1, got "${String(count)}"`,
    );
  }
  const { promise: ended, resolve, reject } = Promise.withResolvers<void>();
  let seen = 0;
  if (from !== undefined && typeof from !== "string") {
    throw new UsageError("--from needs a position or earliest");
  }
  await bus.subscribe(topic, async (event, { position }) => {
    if (seen >= limit) return;
    seen++;
    const line = json !== true
      ? pretty(event)
      : from === undefined
      ? event.toJSONString()
      : JSON.stringify({ ...event.toDict(), position });
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
    await err(
      `Tailing ${pattern === null ? `"${topic}"` : `pattern "${pattern}"`} on ${
        String(bus)
      }; Ctrl-C to stop`,
    );
    await ended;
  } finally {
    signal.removeEventListener("abort", stop);
  }
  return 0;
}

async function publish(bus: EventBus, parsed: Parsed): Promise<number> {
  const topic = onlyArgument(parsed, "publish <topic>");
  const flags = parsed.flags;
  if (flags.type === undefined) {
    throw new UsageError(
      `publish needs --type, one of ${Object.values(EventType).join(", ")}`,
    );
  }
  let payload: unknown = {};
  if (flags.payload !== undefined) {
    try {
      payload = JSON.parse(String(flags.payload));
    } catch (error) {
      throw new UsageError(
        `--payload is not JSON: ${(error as Error).message}`,
      );
    }
  }
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
  await bus.publish(topic, event);
  await out(flags.json === true ? event.toJSONString() : event.eventId);
  return 0;
}

async function status(bus: EventBus, parsed: Parsed): Promise<number> {
  onlyArgument(parsed, "status", 0);
  const report: Record<string, unknown> = {
    bus: String(bus),
    state: bus.state,
    roundTripMs: null,
  };
  const start = performance.now();
  if (bus instanceof PostgresEventBus) {
    report.notificationQueueUsage = await bus.notificationQueueUsage();
  } else if (bus instanceof RedisEventBus) {
    report.subscribers = await bus.subscriberCounts();
  }
  if (bus instanceof PostgresEventBus || bus instanceof RedisEventBus) {
    report.roundTripMs = Number((performance.now() - start).toFixed(3));
  }
  if (parsed.flags.json === true) {
    await out(JSON.stringify(report));
    return 0;
  }
  const lines = [
    ["bus", report.bus],
    ["state", report.state],
    [
      "round trip",
      report.roundTripMs === null
        ? "none (in-process bus)"
        : `${report.roundTripMs} ms`,
    ],
  ];
  if (bus instanceof PostgresEventBus) {
    const usage = report.notificationQueueUsage as number;
    lines.push(["notification queue", `${(usage * 100).toFixed(2)}% used`]);
    lines.push(["subscribers", "not told by PostgreSQL"]);
  }
  if (bus instanceof RedisEventBus) {
    const { topics, patterns } = report.subscribers as {
      topics: Record<string, number>;
      patterns: number;
    };
    const each = Object.entries(topics).map(([t, n]) => `${t} ${n}`);
    lines.push(["subscribers", each.join(", ") || "no topic has any"]);
    lines.push(["pattern subscriptions", `${patterns} on the server`]);
  }
  await out(lines.map(([k, v]) => `${String(k).padEnd(22)}${v}`).join("\n"));
  return 0;
}

/** An event as a few readable lines. */
function pretty(event: Event): string {
  const { timestamp, topic, type, event_id, source, correlation_id } = event
    .toDict();
  const lines = [
    `${timestamp}  ${topic}  ${type}  ${event_id}`,
    `  payload      ${JSON.stringify(event.payload)}`,
  ];
  if (source !== null) lines.push(`  source       ${source}`);
  if (correlation_id !== null) lines.push(`  correlation  ${correlation_id}`);
  if (Object.keys(event.metadata).length > 0) {
    lines.push(`  metadata     ${JSON.stringify(event.metadata)}`);
  }
  return lines.join("\n");
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

const encoder = new TextEncoder();

async function write(
  file: { write(bytes: Uint8Array): Promise<number> },
  text: string,
): Promise<void> {
  const bytes = encoder.encode(`${text}\n`);
  for (let at = 0; at < bytes.length;) {
    at += await file.write(bytes.subarray(at));
  }
}

const out = (text: string) => write(Deno.stdout, text);
const err = (text: string) => write(Deno.stderr, text);

if (import.meta.main) Deno.exit(await runCli(Deno.args));
