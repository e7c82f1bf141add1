// Redis pub/sub as a transport of the remote core: one ioredis client per
// connection, with ioredis's own reconnecting, resending and offline
// queueing off — the core replaces lost connections and settles every
// command itself.

import type { Redis, RedisOptions } from "ioredis";
import { escapeRedisGlob, toRedisGlob } from "./_pattern.ts";
import { plainHint, tlsHint } from "./_tls.ts";
import {
  type Arrivals,
  type Interest,
  type LogPage,
  POSITION_KEY,
  type PublishLink,
  type ReceiveLink,
  Refusal,
  type Route,
  type Transport,
  Unsent,
} from "./_transport.ts";
import { comparePositions, type Head, type Positions } from "./_history.ts";
import type { Retention } from "./_options.ts";
import type { Event } from "./types.ts";

/** See {@linkcode RedisEventBus.prototype.subscriberCounts}. */
export interface RedisSubscriberCounts {
  /** Subscribers of each topic that has any, as the server counts them. */
  readonly topics: Readonly<Record<string, number>>;
  /** Pattern subscriptions on the server, of every client and prefix. */
  readonly patterns: number;
}

/** What RedisEventBus resolved from its options. */
export interface Settings {
  readonly label: string;
  /** Every connection option (host, port, credentials, TLS); no URL. */
  readonly redis: RedisOptions;
  readonly prefix: string;
  /** Whether connections use TLS. */
  readonly tls: boolean;
  /** The retention of the log, when the bus keeps history. */
  readonly history: Retention | undefined;
}

/** Where the log is, and what it keeps. */
interface RedisLog extends Retention {
  /**
   * The stream, the key of its epoch, that of its trim mark, and that of
   * its count (the entries the script has appended, see PUBLISH_ALL).
   */
  readonly keys: readonly [string, string, string, string];
}

const REDIS_POSITION =
  /^([0-9a-f]{8})-(0|[1-9]\d{0,14})-(0|[1-9]\d{0,18})(?:-(0|[1-9]\d{0,18}))?$/;

/**
 * Positions in a Redis log: `<epoch>-<stream id>-<ordinal>`. The epoch is
 * made anew when its key is missing: a server restarted without its data
 * starts a new one, whose ids say nothing of what was lost. The ordinal
 * counts the entries the script appended up to this one (see PUBLISH_ALL),
 * so a read sees entries removed behind its back; a position without one
 * (of an earlier version of this bus) orders the same and is not checked.
 */
const REDIS_POSITIONS: Positions = {
  beatProves: true,
  valid: (position) => REDIS_POSITION.test(position),
  compare: (a, b) => comparePositions(a, b, 2),
  floor: (position) => position,
};

/** An entry's ordinal, as the script writes it. */
const ORDINAL = /^(0|[1-9]\d{0,18})$/;

/** A position's epoch, stream id and ordinal (`""` when it has none). */
function parsePosition(position: string): [string, string, string] {
  const match = REDIS_POSITION.exec(position);
  if (match === null) {
    throw new TypeError(`Not a position of a Redis log: ${position}`);
  }
  return [match[1]!, `${match[2]}-${match[3]}`, match[4] ?? ""];
}

/** A random epoch: 8 hex digits. */
const newEpoch = (): string => crypto.randomUUID().slice(0, 8);

/**
 * Lua: `lastId(key)`, the last id a stream gave (of an entry kept or not;
 * `0-0` when there is no stream), `before(a, b)`, whether stream id `a` is
 * smaller than `b` (compared as numbers, digits unparsed), and
 * `epochOf(key, new)`, the log's epoch: `new`, stored, when the key is
 * missing or holds anything but 8 hex digits (written by hand), which
 * starts a new epoch.
 */
const IDS = `local function epochOf(key, new)
  local epoch = redis.call('GET', key)
  if epoch and #epoch == 8 and not string.find(epoch, '[^0-9a-f]') then
    return epoch
  end
  redis.call('SET', key, new)
  return new
end
local function lastId(key)
  if redis.call('EXISTS', key) == 0 then return '0-0' end
  local info = redis.call('XINFO', 'STREAM', key)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return info[i + 1] end
  end
end
local function less(x, y) return #x < #y or (#x == #y and x < y) end
local function before(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if am ~= bm then return less(am, bm) end
  return less(as, bs)
end
`;

/**
 * Publishes a run of events in one command: ARGV holds channel, message
 * pairs. Each PUBLISH goes through pcall, so an event the server refuses
 * (an ACL channel rule) stops neither the others nor the script; the reply
 * lists the refused ones as position (from 1), error message, ….
 *
 * With history, KEYS are the log's stream, its epoch key, its trim
 * mark's key and its count's key, and ARGV starts with the retention
 * (events, milliseconds) and an epoch to use when the key is missing (a
 * new log, or a server that lost its data): each event is appended to the
 * stream (XADD) with its ordinal (field `n`: the count, plus one) and
 * published with its position, `<epoch>-<stream id>-<ordinal>`, as one
 * more key of its JSON object (see POSITION_KEY); one the server refuses
 * is not kept, nor counted: the count is raised by all the events at
 * once (INCRBY), then lowered by those refused, if any.
 * Then, when it appended any, the stream is trimmed (MAXLEN ~, and
 * MINID ~ with the time of the last id it got: XADD's ids carry the
 * server's clock, so no TIME call is needed) and, when that removed
 * entries, the trim mark records it: the oldest id kept, or, with none
 * kept, the last id given (see READ). The mark is the script's own: Redis
 * 7.0 does not count trimmed entries in max-deleted-entry-id.
 */
const PUBLISH_ALL = `${IDS}local refused, epoch, first, last = {}, nil, 1, nil
local count, raised = 0, 0
if #KEYS == 4 then
  epoch = epochOf(KEYS[2], ARGV[3])
  raised = redis.call('INCRBY', KEYS[4], (#ARGV - 3) / 2)
  count = raised - (#ARGV - 3) / 2
  first = 4
end
for i = first, #ARGV, 2 do
  local message, id = ARGV[i + 1], nil
  local reply = {}
  if epoch then
    local n = string.format('%d', count + 1)
    reply = redis.pcall('XADD', KEYS[1], '*', 'e', message, 'n', n)
    if type(reply) == 'string' then
      id, last = reply, reply
      message = string.sub(message, 1, -2) .. ',"${POSITION_KEY}":"' .. epoch .. '-' .. id .. '-' .. n .. '"}'
    end
  end
  if not (type(reply) == 'table' and reply.err) then
    reply = redis.pcall('PUBLISH', ARGV[i], message)
    if id and type(reply) == 'table' and reply.err then
      redis.call('XDEL', KEYS[1], id)
    elseif id then
      count = count + 1
    end
  end
  if type(reply) == 'table' and reply.err then
    refused[#refused + 1] = (i - first) / 2 + 1
    refused[#refused + 1] = reply.err
  end
end
if count ~= raised then
  redis.call('DECRBY', KEYS[4], raised - count)
end
if last then
  local gone = redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[1])
  local oldest = tonumber(string.match(last, '^%d+')) - ARGV[2]
  if oldest > 0 then
    gone = gone + redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%d', oldest))
  end
  if gone > 0 then
    local kept = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
    redis.call('SET', KEYS[3], kept[1] and kept[1][1] or lastId(KEYS[1]))
  end
end
return refused`;

/**
 * The head of the log: its epoch (made when missing), the last id the
 * stream gave and the count, as `<epoch>-<id>-<count>` (`0-0` when there
 * is no stream, count 0 when its key is missing). KEYS: stream, epoch key,
 * count key; ARGV: an epoch to use when the key is missing.
 */
const HEAD = `${IDS}local epoch = epochOf(KEYS[2], ARGV[1])
return epoch .. '-' .. lastId(KEYS[1]) .. '-' .. (redis.call('GET', KEYS[3]) or '0')`;

/**
 * Entries of the log after an id of an epoch, or from the oldest (ARGV[3]
 * ''). KEYS: stream, epoch key, trim mark key, count key; ARGV: from,
 * limit, the epoch of from, the ordinal of from ('' when unknown),
 * maxAgeMs, an epoch to use when the key has none (see epochOf). The
 * reply: epoch, lost, then the entries. Lost (1)
 * when entries after from may be gone, whoever removed them:
 * - from is before the trim mark (see PUBLISH_ALL);
 * - from is not of this log (another epoch, or past the last id the
 *   stream gave: a stream made anew, or one restored from an older copy),
 *   and then the entries start at the oldest kept;
 * - entries after from are older than maxAgeMs by the server's clock
 *   (MINID ~ keeps whole nodes of them): they count as trimmed, and the
 *   entries start after them (from the oldest too);
 * - the ordinals skip one: from's, then each entry's (field n), must go
 *   up by one, and at the stream's end reach the count (entries removed
 *   by hand: DEL, XTRIM, XDEL, or evicted). An entry without one (of an
 *   earlier version of this bus, or not written by a bus) is not checked.
 */
const READ = `${IDS}local epoch = epochOf(KEYS[2], ARGV[6])
local from, lost, n = '-', 0, nil
if ARGV[3] ~= '' then
  if epoch ~= ARGV[3] or before(lastId(KEYS[1]), ARGV[1]) then
    lost = 1
  else
    from = '(' .. ARGV[1]
    if before(ARGV[1], redis.call('GET', KEYS[3]) or '0-0') then lost = 1 end
    n = tonumber(ARGV[4])
  end
end
local time = redis.call('TIME')
local young = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) - tonumber(ARGV[5])
if young > 0 then
  young = string.format('%d', young)
  if from == '-' then
    from = young
  elseif before(ARGV[1], young .. '-0') then
    if #redis.call('XRANGE', KEYS[1], from, '(' .. young .. '-0', 'COUNT', 1) > 0 then
      lost, n = 1, nil
    end
    from = young
  end
end
local entries = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', ARGV[2])
for i = 1, #entries do
  local f = entries[i][2]
  local m = nil
  if f[3] == 'n' and f[4] and string.match(f[4], '^%d+$') then m = tonumber(f[4]) end
  if n and m and m ~= n + 1 then lost = 1 end
  n = m
end
if n and #entries < tonumber(ARGV[2]) then
  local count = tonumber(redis.call('GET', KEYS[4]))
  if count and count ~= n then lost = 1 end
end
return {epoch, lost, entries}`;

/** The most events one PUBLISH_ALL carries. */
const SCRIPT_EVENTS = 1000;
/** The most message text (in UTF-16 units) one PUBLISH_ALL carries. */
const SCRIPT_CHARS = 256 * 1024;
/** Events this long are published alone. */
const ALONE_CHARS = 16 * 1024;
/** Errors of a command Redis refused to run (so nothing was published). */
const REFUSED = /^(NOPERM|ERR unknown command)/;
/** The error of an EVALSHA whose script the server does not hold. */
const NOSCRIPT = /^NOSCRIPT/;
/** Route prefixes: a channel (SUBSCRIBE) or a glob (PSUBSCRIBE). */
const CHANNEL = "channel ", GLOB = "glob ";

/** Redis pub/sub; see the comment at the top of this file. */
export class RedisTransport implements Transport<RedisPublisher> {
  readonly server = "Redis";
  readonly label: string;
  /** A send is cut into scripts here, and pipelined. */
  readonly batch = { events: 8 * SCRIPT_EVENTS, chars: 8 * SCRIPT_CHARS };
  readonly positions: Positions | undefined;
  readonly #settings: Settings;
  readonly #prefix: string;
  readonly #log: RedisLog | undefined;

  constructor(settings: Settings) {
    this.#settings = settings;
    this.label = settings.label;
    this.#prefix = `${settings.prefix}:`;
    const kept = settings.history;
    if (kept !== undefined) {
      this.positions = REDIS_POSITIONS;
      const stream = `${settings.prefix}:log`;
      this.#log = {
        ...kept,
        keys: [
          stream,
          `${stream}:epoch`,
          `${stream}:trimmed`,
          `${stream}:count`,
        ],
      };
    }
  }

  async openPublisher(
    signal: AbortSignal,
    lost: (cause?: Error) => void,
  ): Promise<RedisPublisher> {
    const client = await this.#connect("publisher", signal, lost, {
      enableOfflineQueue: false,
    });
    // Whether the server runs PUBLISH_ALL (EVAL may be renamed or denied),
    // and the script's SHA1 for EVALSHA when SCRIPT LOAD is allowed too:
    // both in one round trip.
    let replies: [Error | null, unknown][];
    try {
      replies = (await client.pipeline().eval(PUBLISH_ALL, 0)
        .script("LOAD", PUBLISH_ALL).exec())!;
    } catch (error) {
      destroy(client);
      throw error;
    }
    const [[refused], [, sha]] = replies as [
      [Error | null],
      [unknown, unknown],
    ];
    if (refused && (refused.name !== "ReplyError" || this.#log !== undefined)) {
      destroy(client);
      throw refused.name === "ReplyError"
        ? new Error(
          `history needs Lua scripts (EVAL), which this server refuses (${refused.message}); allow EVAL for this user, or create the bus without history`,
        )
        : refused;
    }
    // The session as the server knows it (Redis 6.2+), to fence it off once
    // lost; older servers answer an error, and fencing is skipped.
    const info = await (client.call("CLIENT", "INFO") as Promise<string>).then(
      (text) => /\bid=(\d+) addr=(\S+)/.exec(text)?.slice(1),
      () => undefined,
    );
    return new RedisPublisher(client, this.#prefix, {
      scripted: refused === null,
      sha: refused === null && typeof sha === "string" ? sha : undefined,
      session: info,
      log: this.#log,
    });
  }

  async openReceiver(
    signal: AbortSignal,
    arrivals: Arrivals,
    lost: (cause?: Error) => void,
  ): Promise<ReceiveLink> {
    const client = await this.#connect("subscriber", signal, lost, {
      enableOfflineQueue: true,
    });
    client.on("message", (channel: string, text: string) => {
      arrivals.arrived(CHANNEL + channel, text, channel);
    });
    client.on("pmessage", (glob: string, channel: string, text: string) => {
      arrivals.arrived(GLOB + glob, text, channel);
    });
    return new RedisReceiver(client);
  }

  route(interest: Interest): Route {
    return interest.kind === "topic"
      ? CHANNEL + this.#prefix + interest.name
      : GLOB + escapeRedisGlob(this.#prefix) + toRedisGlob(interest.name);
  }

  channel(topic: string): string {
    return this.#prefix + topic;
  }

  hint(error: unknown, timedOut: boolean): string | undefined {
    return this.#settings.tls
      ? tlsHint(error, timedOut, "Redis")
      : plainHint(error);
  }

  // One connection, ready (AUTH, SELECT and the ready check done), or a
  // rejection that leaves nothing open.
  async #connect(
    role: string,
    signal: AbortSignal,
    lost: (cause?: Error) => void,
    extra: RedisOptions,
  ): Promise<Redis> {
    const options: RedisOptions = {
      ...this.#settings.redis,
      ...extra,
      lazyConnect: true,
      disconnectTimeout: 0,
      connectionName: `dataknobs-events-${role}`,
      retryStrategy: () => null,
      autoResendUnfulfilledCommands: false,
      autoResubscribe: false,
      maxRetriesPerRequest: 0,
    };
    const Redis = await ioredis();
    const client = new Redis(options);
    hearErrors(client);
    let lastError: Error | undefined;
    client.on("error", (error: Error) => (lastError = error));
    const abort = () => destroy(client);
    signal.addEventListener("abort", abort, { once: true });
    try {
      await client.connect();
    } catch (error) {
      destroy(client);
      throw lastError ?? error;
    } finally {
      signal.removeEventListener("abort", abort);
    }
    client.on("close", () => lost(lastError));
    return client;
  }
}

let driver: Promise<typeof Redis> | undefined;

/** The driver, loaded on the first connect (importing the bus loads none). */
function ioredis(): Promise<typeof Redis> {
  return driver ??= import("ioredis").then((module) => module.Redis);
}

/**
 * Gives every socket of a client an error listener of its own. ioredis
 * listens for one error per socket (`once`), but a socket can emit two: a
 * TLS server that wants a client certificate sends an alert (the first
 * error) and the write that follows fails with EPIPE (the second), which,
 * unheard, would crash the process. What the sockets emit reaches the bus
 * through ioredis's first error and its "close" event, as before.
 */
function hearErrors(client: Redis): void {
  const connector = (client as unknown as {
    connector?: { connect?: (...args: unknown[]) => Promise<unknown> };
  }).connector;
  const connect = connector?.connect;
  if (connector === undefined || typeof connect !== "function") return;
  connector.connect = (...args: unknown[]) =>
    connect.apply(connector, args).then((stream) => {
      (stream as { on?: (event: string, fn: () => void) => void }).on?.(
        "error",
        quiet,
      );
      return stream;
    });
}

const quiet = (): void => {};

/**
 * Ends a client's connection at once. ioredis's own disconnect() ends the
 * socket politely and keeps a timer (`disconnectTimeout`) to destroy it
 * later, a timer that is never cleared when the socket had already closed:
 * so it is called once at most, on a client not yet ended.
 */
function destroy(client: Redis): void {
  if (client.status !== "end") client.disconnect();
  (client.stream as Redis["stream"] | undefined)?.destroy();
}

/** Turns a server's error reply into a Refusal; other errors pass. */
function refusal(error: Error): Error {
  return error.name === "ReplyError" ? new Refusal(error.message) : error;
}

/** A connection: what the publishing and the subscribed one share. */
class RedisLink {
  protected readonly client: Redis;

  constructor(client: Redis) {
    this.client = client;
  }

  async ping(): Promise<void> {
    await this.client.ping();
  }

  destroy(): void {
    destroy(this.client);
  }

  async end(): Promise<void> {
    await this.client.quit();
  }
}

/** What a publishing connection learned as it opened. */
interface PublisherSetup {
  /** Whether the server runs PUBLISH_ALL. */
  readonly scripted: boolean;
  /** PUBLISH_ALL's SHA1, when the server loaded it (SCRIPT LOAD). */
  readonly sha: string | undefined;
  /** `[id, addr]` of this session, as the server names it. */
  readonly session: string[] | undefined;
  readonly log: RedisLog | undefined;
}

/** The publishing connection. */
export class RedisPublisher extends RedisLink implements PublishLink {
  readonly #prefix: string;
  readonly #session: string[] | undefined;
  readonly #log: RedisLog | undefined;
  readonly #sha: string | undefined;
  #scripted: boolean;

  constructor(client: Redis, prefix: string, setup: PublisherSetup) {
    super(client);
    this.#prefix = prefix;
    this.#scripted = setup.scripted;
    this.#sha = setup.sha;
    this.#session = setup.session;
    this.#log = setup.log;
  }

  // CLIENT KILL by id and address: a session of a restarted server with
  // the same id has another address.
  async fence(previous: PublishLink): Promise<void> {
    if (!(previous instanceof RedisPublisher)) return;
    const session = previous.#session;
    if (session === undefined) return;
    const [id, addr] = session;
    await this.client.call("CLIENT", "KILL", "ID", id!, "ADDR", addr!).catch(
      (error: Error) => {
        if (error.name !== "ReplyError") throw error; // e.g. NOPERM: skipped
      },
    );
  }

  /**
   * What the server counts: subscribers of each channel under the prefix
   * that has any (by topic), and pattern subscriptions of every client.
   */
  async subscribers(): Promise<RedisSubscriberCounts> {
    const glob = `${escapeRedisGlob(this.#prefix)}*`;
    const channels = await this.client.call("PUBSUB", "CHANNELS", glob);
    const counts = (channels as string[]).length === 0
      ? []
      : await this.client.call("PUBSUB", "NUMSUB", ...(channels as string[]));
    const topics: Record<string, number> = {};
    const list = counts as (string | number)[];
    for (let i = 0; i < list.length; i += 2) {
      topics[String(list[i]).slice(this.#prefix.length)] = Number(list[i + 1]);
    }
    const patterns = Number(await this.client.call("PUBSUB", "NUMPAT"));
    return { topics, patterns };
  }

  // One pipeline (one write): runs of events as one PUBLISH_ALL each (by
  // its SHA1, EVALSHA), a lone or large event as a PUBLISH (with history,
  // as a PUBLISH_ALL too); one PUBLISH an event where the server refuses
  // scripts.
  //
  // A server may have lost the script since (SCRIPT FLUSH, a failover to a
  // replica that never loaded it): each EVALSHA then fails with NOSCRIPT,
  // and ran nothing. When the parts that failed so are the last ones of the
  // pipeline, none of their events and nothing after them was published,
  // and no later send has been written (one send at a time: Redis sets no
  // batch.inFlight): they are sent again, in order, as EVAL, which loads
  // the script. A NOSCRIPT part followed by one that ran (another client
  // loaded the script in between) cannot be sent again without reordering:
  // its events are refused, as not sent.
  async send(events: readonly Event[]): Promise<(Refusal | undefined)[]> {
    const parts = this.#parts(events);
    const replies = await this.#pipeline(parts, this.#sha);
    let tail = parts.length;
    while (tail > 0 && NOSCRIPT.test(replies[tail - 1]?.[0]?.message ?? "")) {
      tail--;
    }
    if (tail < parts.length) {
      replies.splice(
        tail,
        Infinity,
        ...await this.#pipeline(parts.slice(tail)),
      );
    }
    return parts.flatMap((part, i) => {
      const [error, result] = replies[i] ?? [new Error("no reply"), null];
      return this.#outcomes(part, error, result);
    });
  }

  // The parts as one pipeline, scripts by `sha` when given; its replies.
  async #pipeline(
    parts: readonly Event[][],
    sha?: string,
  ): Promise<[Error | null, unknown][]> {
    const pipeline = this.client.pipeline();
    const log = this.#log;
    for (const part of parts) {
      if (part.length === 1 && log === undefined) {
        const event = part[0]!;
        pipeline.publish(this.#prefix + event.topic, event.toJSONString());
        continue;
      }
      const args: (string | number)[] = log === undefined
        ? []
        : [...log.keys, log.maxEvents, log.maxAgeMs, newEpoch()];
      for (const event of part) {
        args.push(this.#prefix + event.topic, event.toJSONString());
      }
      const keys = log === undefined ? 0 : log.keys.length;
      if (sha === undefined) pipeline.eval(PUBLISH_ALL, keys, ...args);
      else pipeline.evalsha(sha, keys, ...args);
    }
    return (await pipeline.exec()) ?? [];
  }

  // The batch cut into script runs of at most SCRIPT_EVENTS events and
  // SCRIPT_CHARS of text (one script holds the server for its whole run).
  // An event of ALONE_CHARS or more goes alone, as a PUBLISH (in a script
  // the server would copy it twice more, for no fewer round trips), and so
  // does every event when the server refuses scripts.
  #parts(events: readonly Event[]): Event[][] {
    const parts: Event[][] = [];
    let run: Event[] = [], chars = 0;
    const endRun = () => {
      if (run.length > 0) parts.push(run);
      run = [];
      chars = 0;
    };
    for (const event of events) {
      const size = event.toJSONString().length;
      if (!this.#scripted || size >= ALONE_CHARS) {
        endRun();
        parts.push([event]);
        continue;
      }
      if (run.length === SCRIPT_EVENTS || chars + size > SCRIPT_CHARS) endRun();
      run.push(event);
      chars += size;
    }
    endRun();
    return parts;
  }

  // The outcome of each event of a part from the part's reply: a PUBLISH's
  // count, PUBLISH_ALL's list of refused events, or an error. An error that
  // is not the server's refusal means the connection failed: the send
  // rejects.
  #outcomes(
    part: Event[],
    error: Error | null,
    result: unknown,
  ): (Refusal | undefined)[] {
    if (error) {
      const refused = refusal(error);
      // ioredis wrote nothing: the socket was already gone.
      if (/Stream isn't writeable/.test(error.message)) {
        throw new Unsent(error.message);
      }
      if (!(refused instanceof Refusal)) throw error;
      if (NOSCRIPT.test(error.message)) {
        return part.map(() =>
          new Refusal(
            "the server had lost the publishing script (NOSCRIPT: a SCRIPT FLUSH or a failover), and later events of the same batch ran before it was loaded again: sending it again would have reordered them",
            "publish it again if its order relative to those events does not matter",
          )
        );
      }
      if (part.length > 1 && REFUSED.test(error.message)) {
        this.#scripted = false; // later sends: one PUBLISH an event
      }
      return part.map(() => refused);
    }
    if (!Array.isArray(result)) return [undefined];
    const why = new Map<unknown, string>();
    for (let i = 0; i < result.length; i += 2) {
      why.set(result[i], String(result[i + 1]));
    }
    return part.map((_, i) => {
      const message = why.get(i + 1);
      return message === undefined ? undefined : new Refusal(message);
    });
  }

  async head(): Promise<Head> {
    const [stream, epoch, , count] = this.#log!.keys;
    const mark = await this.client.eval(
      HEAD,
      3,
      stream,
      epoch,
      count,
      newEpoch(),
    );
    return { mark: String(mark), seen: [] };
  }

  async read(from: string | undefined, limit: number): Promise<LogPage> {
    const log = this.#log!;
    const [fromEpoch, id, ordinal] = from === undefined
      ? ["", "-", ""]
      : parsePosition(from);
    const [epoch, lost, entries] = await this.client.eval(
      READ,
      log.keys.length,
      ...log.keys,
      id,
      limit,
      fromEpoch,
      ordinal,
      log.maxAgeMs,
      newEpoch(),
    ) as [string, number, [string, string[]][]];
    // An entry not written by a bus (other fields, an ordinal that is not
    // a number) is read as one without an ordinal, its text (if any) to be
    // decoded like any other, so that it is reported and skipped.
    return {
      lost: lost === 1,
      entries: entries.map(([id, [e, text, n, ordinal]]) => ({
        position: n === "n" && ORDINAL.test(ordinal ?? "")
          ? `${epoch}-${id}-${ordinal}`
          : `${epoch}-${id}`,
        text: e === "e" ? text ?? "" : "",
      })),
    };
  }
}

/** The subscribed connection. */
class RedisReceiver extends RedisLink implements ReceiveLink {
  listen(routes: readonly Route[]): Promise<void> {
    return this.#command(routes, "subscribe", "psubscribe");
  }

  unlisten(routes: readonly Route[]): Promise<void> {
    return this.#command(routes, "unsubscribe", "punsubscribe");
  }

  // One command for the channels among the routes, one for the globs.
  async #command(
    routes: readonly Route[],
    channelCommand: "subscribe" | "unsubscribe",
    globCommand: "psubscribe" | "punsubscribe",
  ): Promise<void> {
    const [channels, globs] = split(routes);
    try {
      await Promise.all([
        channels.length > 0 && this.client[channelCommand](...channels),
        globs.length > 0 && this.client[globCommand](...globs),
      ]);
    } catch (error) {
      throw refusal(error as Error);
    }
  }
}

/** Routes as [channels, globs]. */
function split(routes: readonly Route[]): [string[], string[]] {
  const channels: string[] = [], globs: string[] = [];
  for (const route of routes) {
    if (route.startsWith(CHANNEL)) channels.push(route.slice(CHANNEL.length));
    else globs.push(route.slice(GLOB.length));
  }
  return [channels, globs];
}
