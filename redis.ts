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

import type { RedisOptions } from "ioredis";
import { BusBase } from "./_bus.ts";
import { OptionChecks, retention } from "./_options.ts";
import {
  type RedisPublisher,
  type RedisSubscriberCounts,
  RedisTransport,
  type Settings,
} from "./_redis_transport.ts";
import { nodeTls, OPTION_NAMES, type TlsOptions, tlsProblem } from "./_tls.ts";
import {
  type RemoteEventBusOptions,
  show,
  type TopicMap,
  type UntypedTopics,
} from "./types.ts";

export type { TlsOptions } from "./_tls.ts";
export type { RedisSubscriberCounts } from "./_redis_transport.ts";

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
export interface RedisEventBusOptions extends RemoteEventBusOptions {
  /** The Redis host; required unless `url` is given. */
  readonly host?: string;
  /**
   * The port.
   * @default 6379
   */
  readonly port?: number;
  /**
   * Connect with TLS (the seed's `ssl`): `true` verifies the server's
   * certificate against Node's CA store; {@linkcode TlsOptions} give a CA,
   * a client certificate, a server name, or turn verification off. The
   * default is TLS when `url` is `rediss://`; `false` with a `rediss://`
   * URL is refused.
   * @default false
   */
  readonly tls?: boolean | TlsOptions;
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
}

/**
 * The Redis bus. `publish` resolves once Redis has accepted the event, and
 * fails fast with `PUBLISH_FAILED` while the connection is down (nothing is
 * queued, so nothing is sent late or twice). Publishes made while a batch
 * is in flight go out together: runs of events as one script each that
 * PUBLISHes every one of them in order (subscribers see plain PUBLISH
 * messages). Delivery is at most once: a subscriber that is reconnecting
 * misses what is published meanwhile, and is told so through `onGap` once
 * its subscriptions are restored.
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
export class RedisEventBus<T extends TopicMap<T> = UntypedTopics>
  extends BusBase<T> {
  /**
   * Makes a bus; call `connect()` before use.
   *
   * @param options Where Redis is, the channel prefix and common options.
   * @throws {TypeError} For a missing host, a bad URL or a mistyped option.
   * @throws {RangeError} For a timing option that is not a positive number.
   */
  constructor(options: RedisEventBusOptions) {
    const check = new OptionChecks("RedisEventBus");
    const settings = resolve(options, check);
    super(options, {
      transport: new RedisTransport(settings),
      timing: check.timing(options),
    });
  }

  /**
   * How many subscribers the server counts: per topic of this bus's channel
   * prefix that has any (exact subscriptions, this bus's own included), and
   * the pattern subscriptions of every client on the server (Redis does not
   * tell them by prefix).
   *
   * @returns `PUBSUB CHANNELS <prefix>:*`, `PUBSUB NUMSUB` and `PUBSUB NUMPAT`.
   * @throws {EventBusError} `NOT_CONNECTED` before `connect()`;
   * `CONNECTION_FAILED` while the connection is down or without an answer
   * within `commandTimeoutMs`.
   * @example Count the subscribers of a topic
   * ```ts ignore
   * import { RedisEventBus } from "@dataknobs/events/redis";
   * await using bus = new RedisEventBus({ host: "127.0.0.1" });
   * await bus.connect();
   * await bus.subscribe("registry:bots", () => {});
   * const { topics } = await bus.subscriberCounts();
   * console.log(topics["registry:bots"]); // 1, or more with other processes
   * ```
   */
  subscriberCounts(): Promise<RedisSubscriberCounts> {
    return this.command(
      "count the subscribers",
      // The publishing connections of this bus's transport are these.
      (link) => (link as RedisPublisher).subscribers(),
    );
  }
}

function resolve(options: RedisEventBusOptions, check: OptionChecks): Settings {
  const { url, tls } = options;
  let parsed: URL | undefined;
  if (url !== undefined) {
    parsed = check.url(url, "url", /^rediss?:$/, "redis:// or rediss://");
  }
  const given = options.host;
  if (
    given === undefined
      ? parsed === undefined
      : typeof given !== "string" || given === ""
  ) {
    check.fail(`host must be a non-empty string, got ${show(options.host)}`);
  }
  if (given !== undefined) check.host(given, "host");
  const { port, db } = options;
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
  const fromUrl = parsed === undefined ? {} : urlParts(parsed, check);
  // The options override the URL's parts; ioredis is given no URL (it
  // would let the URL win, and take its query as driver options).
  const host = options.host ?? fromUrl.host ?? "localhost";
  const where = {
    host,
    port: port ?? fromUrl.port ?? 6379,
    db: db ?? fromUrl.db ?? 0,
  };
  const username = options.username ?? fromUrl.username;
  const password = options.password ?? fromUrl.password;
  if (tls !== undefined) {
    const problem = tlsProblem(tls, OPTION_NAMES);
    if (problem !== undefined) check.fail(problem);
  }
  const urlTls = parsed?.protocol === "rediss:";
  if (tls === false && urlTls) {
    check.fail(
      'tls (config key "ssl") is false but url is rediss:// (TLS); use a redis:// URL to connect without TLS',
    );
  }
  const useTls = tls === undefined ? urlTls : tls !== false;
  const redis: RedisOptions = {
    lazyConnect: true,
    ...where,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
    ...(useTls
      ? { tls: nodeTls(typeof tls === "object" ? tls : true, host) }
      : {}),
  };
  const shown = host.includes(":") ? `[${host}]` : host;
  return {
    label: `${
      useTls ? "rediss" : "redis"
    }://${shown}:${where.port}/${where.db}`,
    redis,
    prefix,
    tls: useTls,
    history: retention(options),
  };
}

/** What a redis:// URL says; its query is refused (ioredis would take it as options). */
function urlParts(url: URL, check: OptionChecks): {
  host?: string;
  port?: number;
  db?: number;
  username?: string;
  password?: string;
} {
  if (url.search !== "") {
    const [first = ""] = url.searchParams.keys();
    check.fail(
      `url must not have query parameters (found ${
        show(first)
      }); set the options instead`,
    );
  }
  const path = url.pathname;
  if (path !== "" && path !== "/" && !/^\/\d+$/.test(path)) {
    check.fail("url path must be a database number (/0, /1, …) or empty");
  }
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const username = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  return {
    ...(host === "" ? {} : { host }),
    ...(url.port === "" ? {} : { port: Number(url.port) }),
    ...(path.length > 1 ? { db: Number(path.slice(1)) } : {}),
    ...(username === "" ? {} : { username }),
    ...(password === "" ? {} : { password }),
  };
}
