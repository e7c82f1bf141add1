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
  type PublishLink,
  type ReceiveLink,
  Refusal,
  type Route,
  type Transport,
  Unsent,
} from "./_transport.ts";
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
}

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
const SCRIPT_CHARS = 256 * 1024;
/** Events this long are published alone. */
const ALONE_CHARS = 16 * 1024;
/** Errors of a command Redis refused to run (so nothing was published). */
const REFUSED = /^(NOPERM|ERR unknown command)/;
/** Route prefixes: a channel (SUBSCRIBE) or a glob (PSUBSCRIBE). */
const CHANNEL = "channel ", GLOB = "glob ";

/** Redis pub/sub; see the comment at the top of this file. */
export class RedisTransport implements Transport<RedisPublisher> {
  readonly server = "Redis";
  readonly label: string;
  /** A send is cut into scripts here, and pipelined. */
  readonly batch = { events: 8 * SCRIPT_EVENTS, chars: 8 * SCRIPT_CHARS };
  readonly #settings: Settings;
  readonly #prefix: string;

  constructor(settings: Settings) {
    this.#settings = settings;
    this.label = settings.label;
    this.#prefix = `${settings.prefix}:`;
  }

  async openPublisher(
    signal: AbortSignal,
    lost: (cause?: Error) => void,
  ): Promise<RedisPublisher> {
    const client = await this.#connect("publisher", signal, lost, {
      enableOfflineQueue: false,
    });
    // Whether the server runs PUBLISH_ALL (EVAL may be renamed or denied).
    const scripted = await client.eval(PUBLISH_ALL, 0).then(
      () => true,
      (error: Error) => {
        if (error.name === "ReplyError") return false;
        destroy(client);
        throw error;
      },
    );
    // The session as the server knows it (Redis 6.2+), to fence it off once
    // lost; older servers answer an error, and fencing is skipped.
    const info = await (client.call("CLIENT", "INFO") as Promise<string>).then(
      (text) => /\bid=(\d+) addr=(\S+)/.exec(text)?.slice(1),
      () => undefined,
    );
    return new RedisPublisher(client, this.#prefix, scripted, info);
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

/** The publishing connection. */
export class RedisPublisher extends RedisLink implements PublishLink {
  readonly #prefix: string;
  /** `[id, addr]` of this session, as the server names it. */
  readonly #session: string[] | undefined;
  #scripted: boolean;

  constructor(
    client: Redis,
    prefix: string,
    scripted: boolean,
    session: string[] | undefined,
  ) {
    super(client);
    this.#prefix = prefix;
    this.#scripted = scripted;
    this.#session = session;
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

  // One pipeline (one write): runs of events as one PUBLISH_ALL each, a
  // lone or large event as a PUBLISH; one PUBLISH an event where the
  // server refuses scripts.
  async send(events: readonly Event[]): Promise<(Refusal | undefined)[]> {
    const parts = this.#parts(events);
    const pipeline = this.client.pipeline();
    for (const part of parts) {
      if (part.length === 1) {
        const event = part[0]!;
        pipeline.publish(this.#prefix + event.topic, event.toJSONString());
        continue;
      }
      const args: string[] = [];
      for (const event of part) {
        args.push(this.#prefix + event.topic, event.toJSONString());
      }
      pipeline.eval(PUBLISH_ALL, 0, ...args);
    }
    const replies = await pipeline.exec();
    return parts.flatMap((part, i) => {
      const [error, result] = replies?.[i] ?? [new Error("no reply"), null];
      return this.#outcomes(part, error, result);
    });
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
      if (part.length > 1 && REFUSED.test(error.message)) {
        this.#scripted = false; // later sends: one PUBLISH an event
      }
      return part.map(() => refused);
    }
    if (part.length === 1) return [undefined];
    const why = new Map<unknown, string>();
    const list = Array.isArray(result) ? result : [];
    for (let i = 0; i < list.length; i += 2) {
      why.set(list[i], String(list[i + 1]));
    }
    return part.map((_, i) => {
      const message = why.get(i + 1);
      return message === undefined ? undefined : new Refusal(message);
    });
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
