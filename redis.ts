/**
 * The Redis backend: pub/sub over two connections (one publishing, one
 * subscribed), with fnmatch patterns through PSUBSCRIBE, automatic
 * reconnection that restores every subscription, and TLS. Channels are
 * `<channelPrefix>:<topic>`, as the Python dataknobs-common bus names them.
 *
 * @example Publish and receive through Redis
 * ```ts ignore
 * import { Event, EventType } from "@dataknobs/events";
 * import { RedisEventBus } from "@dataknobs/events/redis";
 *
 * await using bus = new RedisEventBus({ host: "127.0.0.1", port: 6379 });
 * await bus.connect();
 * await bus.subscribe("registry:bots", (event) => console.log(event.payload));
 * await bus.publish("registry:bots", new Event({
 *   type: EventType.UPDATED, topic: "registry:bots", payload: { bot_id: "b1" },
 * }));
 * ```
 *
 * @example Configure a bus (nothing connects before `connect()`)
 * ```ts
 * import assert from "node:assert/strict";
 * import { RedisEventBus } from "@dataknobs/events/redis";
 * const bus = new RedisEventBus({ url: "rediss://app:secret@cache.example.com:6380/2" });
 * assert.ok(String(bus) === "RedisEventBus(rediss://cache.example.com:6380/2, idle)");
 * ```
 *
 * @module
 */

import { Redis, type RedisOptions } from "ioredis";
import type { Interest, Sink, Transport } from "./_bus.ts";
import { BusBase } from "./_bus.ts";
import { escapeRedisGlob, toRedisGlob } from "./_pattern.ts";
import {
  lostConnection,
  OptionChecks,
  type Pending,
  reconnectDelay,
} from "./_remote.ts";
import {
  type Event,
  EventBusError,
  type EventBusOptions,
  EventFormatError,
  show,
} from "./types.ts";

/**
 * Options of {@linkcode RedisEventBus}. Give `host` or `url`.
 *
 * @example Options
 * ```ts
 * import assert from "node:assert/strict";
 * import { RedisEventBus, type RedisEventBusOptions } from "@dataknobs/events/redis";
 * const options: RedisEventBusOptions = { host: "cache.example.com", tls: true, db: 2, channelPrefix: "shop" };
 * assert.equal(String(new RedisEventBus(options)), "RedisEventBus(rediss://cache.example.com:6379/2, idle)");
 * ```
 */
export interface RedisEventBusOptions extends EventBusOptions {
  /** The Redis host; required unless `url` is given. */
  readonly host?: string;
  /**
   * The port.
   * @default 6379
   */
  readonly port?: number;
  /**
   * Connect with TLS (certificates are verified; the seed's `ssl`).
   * @default false
   */
  readonly tls?: boolean;
  /** The password (AUTH). */
  readonly password?: string;
  /** The ACL user name. */
  readonly username?: string;
  /**
   * The database number (pub/sub channels are shared by all databases).
   * @default 0
   */
  readonly db?: number;
  /**
   * A `redis://` or `rediss://` URL; the options above override its parts.
   */
  readonly url?: string;
  /**
   * Channels are `<channelPrefix>:<topic>`.
   * @default "events"
   */
  readonly channelPrefix?: string;
  /**
   * How often each connection is sent a PING; one not answered within this
   * time counts as a dead (half-open) connection and is reconnected.
   * @default 5000
   */
  readonly heartbeatMs?: number;
  /**
   * The longest wait between reconnection attempts (they back off from
   * 50 ms, with jitter).
   * @default 2000
   */
  readonly maxReconnectDelayMs?: number;
}

/**
 * The Redis bus. `publish` resolves once Redis has accepted the event, and
 * fails fast with `PUBLISH_FAILED` while the connection is down (nothing is
 * queued, so nothing is sent late or twice). The publishes of one tick go
 * out together: runs of events as one script each that PUBLISHes every one
 * of them in order (subscribers see plain PUBLISH messages). Delivery is at most once: a
 * subscriber that is reconnecting misses what is published meanwhile, and is
 * told so through `onGap` once its subscriptions are restored.
 *
 * @example Connect to Redis with TLS and a password
 * ```ts ignore
 * import { RedisEventBus } from "@dataknobs/events/redis";
 * const bus = new RedisEventBus({
 *   host: "my-cluster.cache.amazonaws.com",
 *   tls: true,
 *   password: Deno.env.get("REDIS_PASSWORD")!,
 *   onGap: ({ since }) => console.warn(`events since ${since.toISOString()} may be missed`),
 * });
 * await bus.connect();
 * ```
 *
 * @example Credentials never show
 * ```ts
 * import assert from "node:assert/strict";
 * import { RedisEventBus } from "@dataknobs/events/redis";
 * const bus = new RedisEventBus({ host: "127.0.0.1", password: "s3cret" });
 * assert.ok(!String(bus).includes("s3cret") && bus.state === "idle");
 * ```
 */
export class RedisEventBus extends BusBase {
  /**
   * Makes a bus; call `connect()` before use.
   *
   * @param options Where Redis is, the channel prefix and common options.
   * @throws {TypeError} For a missing host, a bad URL or a mistyped option.
   */
  constructor(options: RedisEventBusOptions) {
    const settings = resolve(options);
    super(options, (sink) => new RedisTransport(sink, settings));
  }
}

interface Settings {
  readonly label: string;
  readonly url: string | undefined;
  readonly redis: RedisOptions;
  readonly prefix: string;
  readonly heartbeatMs: number;
  readonly maxDelayMs: number;
}

function resolve(options: RedisEventBusOptions): Settings {
  const check = new OptionChecks("RedisEventBus");
  const { url, host, port, tls, db, username, password } = options;
  let parsed: URL | undefined;
  if (url !== undefined) {
    parsed = check.url(url, "url", /^rediss?:$/, "redis:// or rediss://");
  } else if (typeof host !== "string" || host === "") {
    check.fail(`host must be a non-empty string, got ${show(host)}`);
  }
  if (
    port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)
  ) {
    check.fail(`port must be an integer from 1 to 65535, got ${show(port)}`);
  }
  if (db !== undefined && !(Number.isInteger(db) && db >= 0)) {
    check.fail(`db must be an integer >= 0, got ${show(db)}`);
  }
  const prefix = options.channelPrefix ?? "events";
  if (typeof prefix !== "string" || prefix === "") {
    check.fail(`channelPrefix must be a non-empty string, got ${show(prefix)}`);
  }
  const heartbeatMs = check.positive("heartbeatMs", options.heartbeatMs, 5000);
  const maxDelayMs = check.positive(
    "maxReconnectDelayMs",
    options.maxReconnectDelayMs,
    2000,
  );
  const useTls = tls ?? parsed?.protocol === "rediss:";
  const redis: RedisOptions = {
    lazyConnect: true,
    ...(host === undefined ? {} : { host }),
    ...(port === undefined ? {} : { port }),
    ...(db === undefined ? {} : { db }),
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
    ...(useTls ? { tls: host === undefined ? {} : { servername: host } } : {}),
  };
  const where = `${host ?? parsed?.hostname}:${port ?? (parsed?.port || 6379)}`;
  const database = db ?? (Number(parsed?.pathname.slice(1)) || 0);
  return {
    label: `${useTls ? "rediss" : "redis"}://${where}/${database}`,
    url,
    redis,
    prefix,
    heartbeatMs,
    maxDelayMs,
  };
}

type Role = "publisher" | "subscriber";

/**
 * Publishes a run of events in one command: ARGV holds channel, message
 * pairs. Each PUBLISH goes through pcall, so an event the server refuses
 * (an ACL channel rule) stops neither the others nor the script; the reply
 * lists the refused ones as position (from 1), error message, ….
 */
const PUBLISH_ALL = `local refused = {}
for i = 1, #ARGV, 2 do
  local reply = redis.pcall('PUBLISH', ARGV[i], ARGV[i + 1])
  if type(reply) == 'table' and reply.err then
    refused[#refused + 1] = (i + 1) / 2
    refused[#refused + 1] = reply.err
  end
end
return refused`;

/** The most events one PUBLISH_ALL carries. */
const SCRIPT_EVENTS = 1000;
/** The most message text (in UTF-16 units) one PUBLISH_ALL carries. */
const SCRIPT_BYTES = 256 * 1024;
/** Events this long are published alone. */
const ALONE_BYTES = 16 * 1024;
/** Errors of a command Redis refused to run (so nothing was published). */
const REFUSED = /^(NOPERM|ERR unknown command)/;

/** Redis pub/sub as a transport of the shared delivery core. */
class RedisTransport implements Transport {
  readonly label: string;
  readonly #sink: Sink;
  readonly #settings: Settings;
  readonly #prefix: string;
  #pub: Redis | undefined;
  #sub: Redis | undefined;
  /** Exact topics subscribed. */
  readonly #topics = new Set<string>();
  /** Redis glob → the fnmatch patterns it serves. */
  readonly #globs = new Map<string, Set<string>>();
  readonly #down = new Set<Role>();
  #outbox: Pending[] = [];
  /** Whether the server runs PUBLISH_ALL (EVAL is allowed). */
  #scripted = false;
  #gapSince: Date | undefined;
  #lastError: Error | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #opened = false;
  #stopped = false;

  constructor(sink: Sink, settings: Settings) {
    this.#sink = sink;
    this.#settings = settings;
    this.label = settings.label;
    this.#prefix = `${settings.prefix}:`;
  }

  async open(): Promise<void> {
    this.#stopped = false; // a failed attempt stopped the one before
    this.#pub = this.#client("publisher", { enableOfflineQueue: false });
    this.#sub = this.#client("subscriber", {
      enableOfflineQueue: true,
      autoResubscribe: false,
    });
    this.#sub.on("message", this.#onMessage);
    this.#sub.on("pmessage", this.#onPatternMessage);
    try {
      await Promise.all([this.#pub.connect(), this.#sub.connect()]);
      this.#scripted = await this.#pub.eval(PUBLISH_ALL, 0).then(
        () => true,
        (error: Error) => {
          if (error.name === "ReplyError") return false; // EVAL refused
          throw error;
        },
      );
    } catch (error) {
      this.#stopped = true;
      this.#pub.disconnect();
      this.#sub.disconnect();
      throw new EventBusError(
        "CONNECTION_FAILED",
        `Cannot connect to Redis at ${this.label}: ${
          (this.#lastError ?? error as Error).message
        }`,
        { cause: this.#lastError ?? error },
      );
    }
    this.#opened = true;
    this.#heartbeat = setInterval(this.#beat, this.#settings.heartbeatMs);
  }

  #client(role: Role, extra: RedisOptions): Redis {
    const options: RedisOptions = {
      ...this.#settings.redis,
      ...extra,
      connectionName: `dataknobs-events-${role}`,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: null,
      retryStrategy: (times) =>
        !this.#opened || this.#stopped
          ? null
          : reconnectDelay(times, this.#settings.maxDelayMs),
    };
    const url = this.#settings.url;
    const client = url === undefined
      ? new Redis(options)
      : new Redis(url, options);
    client.on("error", (error: Error) => {
      this.#lastError = error;
    });
    client.on("close", () => this.#lost(role));
    client.on("ready", () => void this.#restored(role));
    return client;
  }

  #lost(role: Role): void {
    if (!this.#opened || this.#stopped || this.#down.has(role)) return;
    this.#down.add(role);
    if (role === "subscriber") this.#gapSince ??= new Date();
    this.#sink.report(
      lostConnection(`Redis ${role}`, this.label, this.#lastError),
    );
    this.#sink.setState("reconnecting");
  }

  // After a reconnect: resubscribe everything, and only once Redis has
  // confirmed it report the bus ready and the gap.
  async #restored(role: Role): Promise<void> {
    if (!this.#down.has(role) || this.#stopped) return;
    if (role === "subscriber") {
      const sub = this.#sub!;
      try {
        const channels = [...this.#topics].map((t) => this.#prefix + t);
        if (channels.length > 0) await sub.subscribe(...channels);
        if (this.#globs.size > 0) await sub.psubscribe(...this.#globs.keys());
      } catch (error) {
        this.#sink.report(error);
        sub.disconnect(true);
        return;
      }
    }
    this.#down.delete(role);
    if (this.#down.size > 0) return;
    this.#sink.setState("ready");
    const since = this.#gapSince;
    this.#gapSince = undefined;
    if (since !== undefined) this.#sink.reportGap(since);
  }

  // A PING per connection; one not answered in time means a dead
  // connection. Its socket is destroyed (an orderly close would wait for
  // the silent peer), so that ioredis reconnects at once.
  #beat = (): void => {
    for (const client of [this.#pub!, this.#sub!]) {
      if (client.status !== "ready") continue;
      const timer = setTimeout(
        () => client.stream.destroy(),
        this.#settings.heartbeatMs,
      );
      client.ping().catch(() => {}).finally(() => clearTimeout(timer));
    }
  };

  #onMessage = (channel: string, text: string): void => {
    const event = this.#decode(channel, text);
    if (event !== undefined) {
      this.#sink.receive(event, { kind: "topic", name: event.topic });
    }
  };

  #onPatternMessage = (glob: string, channel: string, text: string): void => {
    const patterns = this.#globs.get(glob);
    if (patterns === undefined) return;
    const event = this.#decode(channel, text);
    if (event === undefined) return;
    for (const name of patterns) {
      this.#sink.receive(event, { kind: "pattern", name });
    }
  };

  #decode(channel: string, text: string): Event | undefined {
    const event = this.#sink.decode(text);
    if (event !== undefined && this.#prefix + event.topic !== channel) {
      this.#sink.report(
        new EventFormatError(
          "topic",
          `is "${event.topic}" but the message came on channel "${channel}"`,
        ),
      );
      return undefined;
    }
    return event;
  }

  send(event: Event): Promise<void> {
    const pub = this.#pub!;
    if (pub.status !== "ready") {
      return Promise.reject(
        new EventBusError(
          "PUBLISH_FAILED",
          `Cannot publish to "${event.topic}": the connection to Redis at ${this.label} is down (${pub.status}); the event was not sent — retry once bus.state is "ready"`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      if (this.#outbox.length === 0) queueMicrotask(this.#flush);
      this.#outbox.push({ event, resolve, reject });
    });
  }

  // Sends every publish of this tick in one pipeline (one write): runs of
  // events as one PUBLISH_ALL script each, a lone event as a PUBLISH. Where
  // the server refuses scripts, one PUBLISH an event. (ioredis's own
  // auto-pipelining is off: a socket dropped while one of its pipelines is
  // in flight leaves it stuck, and every later publish would hang.)
  #flush = (): void => {
    const parts = this.#parts(this.#outbox);
    this.#outbox = [];
    const pipeline = this.#pub!.pipeline();
    for (const part of parts) {
      if (part.length === 1) {
        const { event } = part[0]!;
        pipeline.publish(this.#prefix + event.topic, event.toJSONString());
      } else {
        const args: string[] = [];
        for (const { event } of part) {
          args.push(this.#prefix + event.topic, event.toJSONString());
        }
        pipeline.eval(PUBLISH_ALL, 0, ...args);
      }
    }
    pipeline.exec().then(
      (replies) =>
        parts.forEach((part, i) =>
          this.#settle(part, replies?.[i] ?? [new Error("no reply"), null])
        ),
      (error: Error) => parts.forEach((part) => this.#settle(part, [error])),
    );
  };

  // The batch cut into script runs of at most SCRIPT_EVENTS events and
  // SCRIPT_BYTES of text (one script holds the server for its whole run).
  // An event of ALONE_BYTES or more goes alone, as a PUBLISH (in a script
  // the server would copy it twice more, for no fewer round trips), and so
  // does every event when the server refuses scripts.
  #parts(batch: Pending[]): Pending[][] {
    const parts: Pending[][] = [];
    let run: Pending[] = [], bytes = 0;
    const endRun = () => {
      if (run.length > 0) parts.push(run);
      run = [];
      bytes = 0;
    };
    for (const pending of batch) {
      const size = pending.event.toJSONString().length;
      if (!this.#scripted || size >= ALONE_BYTES) {
        endRun();
        parts.push([pending]);
        continue;
      }
      if (run.length === SCRIPT_EVENTS || bytes + size > SCRIPT_BYTES) endRun();
      run.push(pending);
      bytes += size;
    }
    endRun();
    return parts;
  }

  // Resolves or rejects each publish of a part from the part's reply: a
  // PUBLISH's count, PUBLISH_ALL's list of refused events, or an error.
  #settle(part: Pending[], [error, result]: [Error | null, unknown?]): void {
    if (error) {
      if (part.length > 1 && REFUSED.test(error.message)) {
        this.#scripted = false; // later ticks: one PUBLISH an event
      }
      for (const { event, reject } of part) {
        reject(this.#publishError(event, error));
      }
      return;
    }
    if (part.length === 1) {
      part[0]!.resolve();
      return;
    }
    const why = new Map<unknown, string>();
    const list = Array.isArray(result) ? result : [];
    for (let i = 0; i < list.length; i += 2) {
      why.set(list[i], String(list[i + 1]));
    }
    part.forEach(({ event, resolve, reject }, i) => {
      const message = why.get(i + 1);
      if (message === undefined) resolve();
      else reject(this.#refusedError(event, message));
    });
  }

  #refusedError(event: Event, message: string): EventBusError {
    return new EventBusError(
      "PUBLISH_FAILED",
      `Cannot publish to "${event.topic}": Redis at ${this.label} refused it (${message}); the event was not sent — check the ACL user's channel and command permissions`,
    );
  }

  #publishError(event: Event, error: Error): EventBusError {
    if (REFUSED.test(error.message)) {
      return this.#refusedError(event, error.message);
    }
    // ioredis says this when it wrote nothing: the socket was already gone.
    const unsent = /Stream isn't writeable/.test(error.message);
    return new EventBusError(
      "PUBLISH_FAILED",
      `Cannot publish to "${event.topic}": ${
        unsent
          ? `the connection to Redis at ${this.label} is down; the event was not sent — retry once bus.state is "ready"`
          : `Redis at ${this.label} did not confirm the event (${error.message}); it may or may not have been delivered`
      }`,
      { cause: error },
    );
  }

  async watch(interest: Interest): Promise<void> {
    const sub = this.#sub!;
    if (interest.kind === "topic") {
      this.#topics.add(interest.name);
      await sub.subscribe(this.#prefix + interest.name);
      return;
    }
    const glob = escapeRedisGlob(this.#prefix) + toRedisGlob(interest.name);
    const patterns = this.#globs.get(glob);
    if (patterns !== undefined) {
      patterns.add(interest.name);
      return;
    }
    this.#globs.set(glob, new Set([interest.name]));
    await sub.psubscribe(glob);
  }

  async unwatch(interest: Interest): Promise<void> {
    const sub = this.#sub!;
    if (interest.kind === "topic") {
      this.#topics.delete(interest.name);
      await sub.unsubscribe(this.#prefix + interest.name);
      return;
    }
    const glob = escapeRedisGlob(this.#prefix) + toRedisGlob(interest.name);
    const patterns = this.#globs.get(glob);
    patterns?.delete(interest.name);
    if (patterns?.size !== 0) return;
    this.#globs.delete(glob);
    await sub.punsubscribe(glob);
  }

  async shutdown(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#heartbeat);
    await Promise.all([this.#pub!, this.#sub!].map(async (client) => {
      if (client.status === "ready") {
        try {
          await client.quit();
          return;
        } catch {
          // Fall through: drop the connection instead.
        }
      }
      client.disconnect();
    }));
  }
}
