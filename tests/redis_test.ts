import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { createEventBus, EventBusError } from "../mod.ts";
import { RedisEventBus, type RedisEventBusOptions } from "../redis.ts";
import {
  conformance,
  Inbox,
  makeEvent,
  observed,
  uniqueTopic,
  wireBytes,
} from "./conformance.ts";
import { reachable, REDIS_URL } from "./_servers.ts";
import { startRedis } from "./_redis_server.ts";

const ok = await reachable("Redis", "REDIS_URL", REDIS_URL);
const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, ignore: !ok, fn });

if (ok) {
  conformance(
    "redis",
    (options) => new RedisEventBus({ url: REDIS_URL, ...options }),
  );
  conformance("redis via createEventBus", (options) => {
    const { hostname, port } = new URL(REDIS_URL);
    return createEventBus({
      backend: "redis",
      host: hostname,
      port: Number(port) || 6379,
    }, options);
  });
  // The history tier's log (channel prefix "events") is removed at the end.
  Deno.test("redis history: (clean-up of the conformance tier's log)", async () => {
    const admin = new Redis(REDIS_URL);
    await admin.del("events:log", "events:log:epoch", "events:log:trimmed");
    admin.disconnect();
  });
}

const connected = (options: Partial<RedisEventBusOptions> = {}) =>
  observed((hooks) =>
    new RedisEventBus({ url: REDIS_URL, ...hooks, ...options })
  );

async function withAdmin<T>(
  fn: (admin: Redis) => Promise<T>,
  url = REDIS_URL,
): Promise<T> {
  const admin = new Redis(url, { lazyConnect: true });
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.quit();
  }
}

// The ids of the subscriber connections that `open` makes. Tests kill only
// their own bus's connection: other processes may use the same server.
async function subscribersOf<T>(
  open: () => Promise<T>,
): Promise<[T, string[]]> {
  const subscribers = async () =>
    new Set(
      String(await withAdmin((admin) => admin.call("CLIENT", "LIST")))
        .match(/(?<=^id=)\d+(?=.* name=dataknobs-events-subscriber )/gm) ?? [],
    );
  const before = await subscribers();
  const opened = await open();
  const ids = [...await subscribers()].filter((id) => !before.has(id));
  // A process that opened one at the same moment is counted too (rare).
  assert.ok(ids.length >= 1, "the bus opened no subscriber connection");
  return [opened, ids];
}

// ACL SETUSER `user` `rules` on the server at `url`.
const setUser = (url: string, user: string, ...rules: string[]) =>
  withAdmin(
    (admin) => admin.call("ACL", "SETUSER", user, ...rules) as Promise<unknown>,
    url,
  );

const channelsOf = (admin: Redis, channel: string) =>
  admin.call("PUBSUB", "NUMSUB", channel) as Promise<[string, number]>;

test("RedisEventBus: one SUBSCRIBE per channel, UNSUBSCRIBE when the last one cancels", async () => {
  const { bus } = await connected();
  const topic = uniqueTopic("numsub");
  await withAdmin(async (admin) => {
    const a = await bus.subscribe(topic, () => {});
    const b = await bus.subscribe(topic, () => {});
    assert.equal((await channelsOf(admin, `events:${topic}`))[1], 1);
    const numpat = async () => Number(await admin.call("PUBSUB", "NUMPAT"));
    const before = await numpat();
    const p = await bus.subscribe("label", () => {}, `${topic}:*`);
    const q = await bus.subscribe("label", () => {}, `${topic}:*`);
    assert.equal(await numpat(), before + 1);
    await a.cancel();
    assert.equal((await channelsOf(admin, `events:${topic}`))[1], 1);
    await b.cancel();
    assert.equal((await channelsOf(admin, `events:${topic}`))[1], 0);
    await p.cancel();
    await q.cancel();
    assert.equal(await numpat(), before);
  });
  await bus.close();
});

test("RedisEventBus: garbage on a subscribed channel is reported and skipped", async () => {
  const { bus, errors } = await connected();
  const topic = uniqueTopic("garbage");
  const inbox = new Inbox();
  await bus.subscribe(topic, inbox.handler);
  await bus.subscribe("all", inbox.handler, `${topic}*`);
  await withAdmin(async (admin) => {
    await admin.publish(`events:${topic}`, "not json at all");
    await admin.publish(
      `events:${topic}`,
      JSON.stringify({ type: "created", topic }),
    );
    await admin.publish(
      `events:${topic}`,
      makeEvent(`${topic}x`).toJSONString(),
    );
  });
  await bus.publish(topic, makeEvent(topic, { n: "good" }));
  assert.deepEqual((await inbox.until(2)).map((e) => e.payload.n), [
    "good",
    "good",
  ]);
  // Each bad message arrives twice (exact and pattern) and is reported each time.
  assert.equal(errors.length, 6);
  assert.match(String(errors[0]), /not JSON/);
  assert.ok(errors.some((e) => /"timestamp" must be/.test(String(e))));
  assert.ok(errors.some((e) => /came on channel/.test(String(e))));
  await bus.close();
});

test("RedisEventBus: a 1 MiB event (the default maxEventBytes) round trips intact", async () => {
  const { bus } = await connected();
  const topic = uniqueTopic("big");
  const inbox = new Inbox();
  await bus.subscribe(topic, inbox.handler);
  const text = "é😀x".repeat((1024 * 1024 - 300) / 7);
  const event = makeEvent(topic, { text });
  assert.ok(wireBytes(event) > 1024 * 1024 - 300);
  await bus.publish(topic, event);
  const [got] = await inbox.until(1);
  assert.equal(got!.payload.text, text);
  await bus.close();
});

test("RedisEventBus: channel prefixes isolate buses", async () => {
  const a = await connected({ channelPrefix: "alpha" });
  const b = await connected({ channelPrefix: "beta" });
  const topic = uniqueTopic("prefix");
  const inA = new Inbox(), inB = new Inbox();
  await a.bus.subscribe(topic, inA.handler);
  await b.bus.subscribe(topic, inB.handler);
  await a.bus.subscribe("p", inA.handler, `${topic}*`);
  await a.bus.publish(topic, makeEvent(topic, { n: "a" }));
  await b.bus.publish(topic, makeEvent(topic, { n: "b" }));
  await inB.until(1);
  await inA.until(2);
  await a.bus.publish(topic, makeEvent(topic, { n: "a2" }));
  await inA.until(4);
  assert.deepEqual(inA.payloads, ["a", "a", "a2", "a2"]);
  assert.deepEqual(inB.payloads, ["b"]);
  await a.bus.close();
  await b.bus.close();
});

const HEARTBEAT_MS = 200;

test("RedisEventBus: CLIENT KILL of the subscriber mid-stream → resubscribed, gap reported, nothing after lost", async () => {
  const [{ bus, gaps, states, errors }, ids] = await subscribersOf(() =>
    connected({ heartbeatMs: HEARTBEAT_MS })
  );
  const topic = uniqueTopic("kill");
  const exact = new Inbox(), pattern = new Inbox();
  await bus.subscribe(topic, exact.handler);
  await bus.subscribe("p", pattern.handler, `${topic}*`);
  await bus.publish(topic, makeEvent(topic, { n: 1 }));
  await exact.until(1);
  const killedAt = Date.now();
  await withAdmin(async (admin) => {
    for (const id of ids) await admin.client("KILL", "ID", id);
  });
  // Wait until the bus says it is ready again (resubscription confirmed).
  for (let i = 0; i < 200 && gaps.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(gaps.length, 1);
  // `since` is the last moment the connection was proven live: before the
  // kill, by at most two heartbeats.
  assert.ok(gaps[0]!.since.getTime() <= killedAt);
  assert.ok(gaps[0]!.since.getTime() >= killedAt - 2 * HEARTBEAT_MS - 50);
  assert.ok(gaps[0]!.until.getTime() >= killedAt);
  assert.deepEqual(states.slice(-2), ["reconnecting", "ready"]);
  assert.equal(bus.state, "ready");
  assert.match(
    String(errors[0]),
    /Lost the receiving connection to Redis at .*; reconnecting/,
  );
  for (let n = 2; n <= 50; n++) {
    await bus.publish(topic, makeEvent(topic, { n }));
  }
  await exact.until(50);
  await pattern.until(50);
  assert.deepEqual(exact.payloads, Array.from({ length: 50 }, (_, i) => i + 1));
  await bus.close();
});

test("RedisEventBus: publish fails fast while Redis is down, and the bus recovers after a restart", async () => {
  await using server = await startRedis();
  const { bus, gaps } = await connected({
    url: server.url,
    maxReconnectDelayMs: 100,
  });
  const topic = uniqueTopic("restart");
  const inbox = new Inbox();
  await bus.subscribe(topic, inbox.handler);
  await server.stop();
  for (let i = 0; i < 200 && bus.state !== "reconnecting"; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(bus.state, "reconnecting");
  await assert.rejects(
    bus.publish(topic, makeEvent(topic)),
    (e: unknown) =>
      e instanceof EventBusError && e.code === "PUBLISH_FAILED" &&
      /is down.* the event was not sent/.test(e.message),
  );
  await server.start();
  for (let i = 0; i < 300 && (gaps.length === 0 || !isReady(bus)); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(bus.state, "ready");
  await bus.publish(topic, makeEvent(topic, { n: "after" }));
  assert.deepEqual((await inbox.until(1)).map((e) => e.payload.n), ["after"]);
  await bus.close();
});

test("RedisEventBus: during an outage a subscribe's signal gives up at once, and queued subscribes wait connectTimeoutMs from their call, not one after another", async () => {
  await using server = await startRedis();
  const connectTimeoutMs = 800;
  const { bus } = await connected({
    url: server.url,
    maxReconnectDelayMs: 100,
    connectTimeoutMs,
  });
  await server.stop();
  for (let i = 0; i < 200 && bus.state !== "reconnecting"; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const reason = new Error("gave up");
  const controller = new AbortController();
  const started = Date.now();
  const queued = Array.from(
    { length: 5 },
    (_, i) => bus.subscribe(uniqueTopic(`outage-${i}`), () => {}),
  );
  const aborted = bus.subscribe(uniqueTopic("outage-abort"), () => {}, {
    signal: controller.signal,
  });
  const waiting = bus.once(uniqueTopic("outage-once"));
  setTimeout(() => controller.abort(reason), 50);
  await assert.rejects(aborted, (e) => e === reason);
  const outcomes = await Promise.allSettled([...queued, waiting.ready]);
  const elapsed = Date.now() - started;
  for (const outcome of outcomes) {
    assert.equal(outcome.status, "rejected");
    const error = (outcome as PromiseRejectedResult).reason;
    assert.ok(
      error instanceof EventBusError && error.code === "SUBSCRIBE_FAILED",
      String(error),
    );
  }
  // Serially each would add connectTimeoutMs (5 × 800 ms); together they
  // end near one connectTimeoutMs (the bound leaves room for a slow machine).
  assert.ok(elapsed < 3 * connectTimeoutMs, `took ${elapsed} ms`);
  await waiting.catch(() => {});
  await server.start();
  await bus.close();
});

test("RedisEventBus: a connection that cannot be restored says why, once per reason", async () => {
  const first = "pw-" + crypto.randomUUID();
  await using server = await startRedis(["--requirepass", first]);
  const { port } = new URL(server.url);
  const { bus, errors } = await connected({
    url: `redis://:${first}@127.0.0.1:${port}`,
    maxReconnectDelayMs: 50,
  });
  const admin = `redis://:${first}@127.0.0.1:${port}`;
  const second = "pw-" + crypto.randomUUID();
  await withAdmin(async (redis) => {
    await redis.config("SET", "requirepass", second);
    await redis.client("KILL", "TYPE", "pubsub");
    await redis.client("KILL", "TYPE", "normal", "SKIPME", "yes");
  }, admin);
  await new Promise((r) => setTimeout(r, 1000)); // ~20 attempts each
  const restores = errors.map(String).filter((e) =>
    e.includes("Cannot restore")
  );
  assert.ok(restores.length >= 1 && restores.length <= 2, restores.join("\n"));
  for (const message of restores) {
    assert.match(message, /WRONGPASS|invalid username-password/);
    assert.ok(!message.includes(first) && !message.includes(second));
  }
  assert.equal(bus.state, "reconnecting");
  await bus.close();
});

test("RedisEventBus: a failed connect() leaves nothing behind and may be retried", async () => {
  await using server = await startRedis();
  await server.stop();
  const gaps: unknown[] = [];
  const bus = new RedisEventBus({
    url: server.url,
    onGap: (g) => void gaps.push(g),
    onError: () => {},
  });
  await assert.rejects(
    bus.connect(),
    (e: unknown) =>
      e instanceof EventBusError && e.code === "CONNECTION_FAILED" &&
      /ECONNREFUSED|Connection is closed/.test(e.message),
  );
  assert.equal(bus.state, "idle");
  await server.start();
  await bus.connect();
  assert.equal(bus.state, "ready");
  const topic = uniqueTopic("retry");
  const inbox = new Inbox();
  await bus.subscribe(topic, inbox.handler);
  await bus.publish(topic, makeEvent(topic));
  await inbox.until(1);
  // Reconnection still works after the failed first attempt.
  await withAdmin(
    (admin) => admin.client("KILL", "TYPE", "pubsub"),
    server.url,
  );
  for (let i = 0; i < 300 && gaps.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(gaps.length, 1);
  await bus.publish(topic, makeEvent(topic));
  await inbox.until(2);
  await bus.close();
});

test("RedisEventBus: a server that stops answering is caught by the heartbeat", async () => {
  await using server = await startRedis();
  const { bus, gaps } = await connected({
    url: server.url,
    heartbeatMs: 200,
    maxReconnectDelayMs: 100,
  });
  const topic = uniqueTopic("hang");
  const inbox = new Inbox();
  await bus.subscribe(topic, inbox.handler);
  server.signal("SIGSTOP"); // the TCP connection stays up; nothing answers
  for (let i = 0; i < 300 && bus.state !== "reconnecting"; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(bus.state, "reconnecting");
  server.signal("SIGCONT");
  for (let i = 0; i < 500 && (gaps.length === 0 || !isReady(bus)); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(gaps.length, 1);
  await bus.publish(topic, makeEvent(topic, { n: "after" }));
  assert.deepEqual((await inbox.until(1)).map((e) => e.payload.n), ["after"]);
  await bus.close();
});

test("RedisEventBus: password, username, db and url reach the server; secrets never show", async () => {
  const secret = "pw-" + crypto.randomUUID();
  await using server = await startRedis(["--requirepass", secret]);
  const { port } = new URL(server.url);
  await setUser(
    `redis://:${secret}@127.0.0.1:${port}`,
    "app",
    "on",
    `>${secret}`,
    "~*",
    "&*",
    "+@all",
  );
  const wrong = new RedisEventBus({
    host: "127.0.0.1",
    port: Number(port),
    password: "nope-" + secret,
  });
  await assert.rejects(
    wrong.connect(),
    (e: unknown) =>
      e instanceof EventBusError && e.code === "CONNECTION_FAILED" &&
      /WRONGPASS|invalid/i.test(e.message) &&
      // Not in the message, nor anywhere in the cause chain (ioredis puts
      // the AUTH command, password included, on its error).
      !Deno.inspect(e, { depth: Infinity, showHidden: true }).includes(secret),
  );
  await wrong.close();
  const viaConfig = createEventBus({
    backend: "redis",
    host: "127.0.0.1",
    port: Number(port),
    username: "app",
    password: secret,
    db: 3,
  });
  const viaUrl = new RedisEventBus({
    url: `redis://app:${secret}@127.0.0.1:${port}/5`,
  });
  for (const bus of [viaConfig, viaUrl]) {
    await bus.connect();
    assert.doesNotMatch(String(bus), new RegExp(secret));
    const topic = uniqueTopic();
    const inbox = new Inbox();
    await bus.subscribe(topic, inbox.handler);
    await bus.publish(topic, makeEvent(topic));
    await inbox.until(1);
  }
  const clients = await withAdmin(
    (admin) => admin.client("LIST") as Promise<string>,
    `redis://:${secret}@127.0.0.1:${port}`,
  );
  const ours = clients.split("\n").filter((l) =>
    l.includes("name=dataknobs-events-publisher")
  );
  assert.ok(ours.some((l) => /db=3 .*user=app/.test(l)), clients);
  assert.ok(ours.some((l) => /db=5 .*user=app/.test(l)), clients);
  await viaConfig.close();
  await viaUrl.close();
});

// How many times the server ran `command` (INFO commandstats).
async function calls(admin: Redis, command: string): Promise<number> {
  const stats = await admin.info("commandstats");
  return Number(
    new RegExp(`^cmdstat_${command}:calls=(\\d+)`, "m").exec(stats)?.[1] ?? 0,
  );
}

test("RedisEventBus: a tick's events go out as scripts, big ones alone, all in publish order", async () => {
  await using server = await startRedis();
  const { bus, errors } = await connected({ url: server.url });
  const topic = uniqueTopic("script");
  const inbox = new Inbox();
  await bus.subscribe(topic, inbox.handler);
  // Every 100th event (from the 50th) is 20 KiB: 25 of them, each a
  // PUBLISH of its own, and 26 runs of small events between them, one
  // script each.
  const events = Array.from(
    { length: 2500 },
    (_, n) =>
      makeEvent(topic, { n, pad: n % 100 === 50 ? "x".repeat(20_000) : "" }),
  );
  await Promise.all(events.map((event) => bus.publish(topic, event)));
  await inbox.until(events.length);
  assert.deepEqual(inbox.payloads, events.map((_, n) => n));
  await withAdmin(async (admin) => {
    // PUBLISHes run by scripts count too: each event was published once.
    assert.equal(await calls(admin, "publish"), events.length);
    // The scripts by their SHA1, loaded at connect (the probe: one EVAL).
    assert.equal(await calls(admin, "evalsha"), 26);
    assert.equal(await calls(admin, "eval"), 1);
  }, server.url);
  assert.deepEqual(errors, []);
  await bus.close();
});

test("RedisEventBus: a user without SCRIPT LOAD publishes with history by EVAL, in order", async () => {
  await using server = await startRedis();
  await setUser(
    server.url,
    "app",
    "on",
    "nopass",
    "+@all",
    "~*",
    "&*",
    "-script|load",
  );
  const { port } = new URL(server.url);
  const app = new RedisEventBus({
    host: "127.0.0.1",
    port: Number(port),
    username: "app",
    history: {},
    channelPrefix: "noload",
  });
  await app.connect();
  const { bus: reader } = await connected({
    url: server.url,
    channelPrefix: "noload",
  });
  const topic = uniqueTopic("noload");
  const inbox = new Inbox();
  await reader.subscribe(topic, inbox.handler);
  const send = (n: number) => app.publish(topic, makeEvent(topic, { n }));
  await Promise.all([send(0), send(1), send(2)]);
  await send(3);
  await inbox.until(4);
  assert.deepEqual(inbox.payloads, [0, 1, 2, 3]);
  await withAdmin(async (admin) => {
    assert.equal(await calls(admin, "evalsha"), 0);
    // + the probes of both buses at connect
    assert.equal(await calls(admin, "eval"), 2 + 2);
  }, server.url);
  await app.close();
  await reader.close();
});

test("RedisEventBus: a server without EVAL gets one PUBLISH an event", async () => {
  await using server = await startRedis(["--rename-command", "EVAL", ""]);
  const { bus, errors } = await connected({ url: server.url });
  const topic = uniqueTopic("noeval");
  const inbox = new Inbox();
  await bus.subscribe(topic, inbox.handler);
  const events = Array.from({ length: 300 }, (_, n) => makeEvent(topic, { n }));
  await Promise.all(events.map((event) => bus.publish(topic, event)));
  await inbox.until(events.length);
  assert.deepEqual(inbox.payloads, events.map((_, n) => n));
  await withAdmin(async (admin) => {
    assert.equal(await calls(admin, "publish"), 300);
  }, server.url);
  assert.deepEqual(errors, []);
  await bus.close();
});

test("RedisEventBus: events the ACL refuses are rejected (not sent), the rest of their tick is delivered", async () => {
  await using server = await startRedis();
  const topic = uniqueTopic("acl");
  await setUser(
    server.url,
    "app",
    "on",
    "nopass",
    "+@all",
    "~*",
    "resetchannels",
    `&events:${topic}-ok`,
  );
  const { port } = new URL(server.url);
  const app = new RedisEventBus({
    host: "127.0.0.1",
    port: Number(port),
    username: "app",
  });
  await app.connect();
  const { bus: reader } = await connected({ url: server.url });
  const inbox = new Inbox();
  await reader.subscribe("all", inbox.handler, `${topic}-*`);
  const send = (suffix: string, n: number) =>
    app.publish(`${topic}-${suffix}`, makeEvent(`${topic}-${suffix}`, { n }));
  const refused = (e: unknown) =>
    e instanceof EventBusError && e.code === "PUBLISH_FAILED" &&
    /refused it \(.*(NOPERM|permission|can't publish).*\); the event was not sent/
      .test(e.message);
  // One tick (a script) and a lone event (a PUBLISH).
  const tick = await Promise.allSettled([
    send("ok", 1),
    send("no", 2),
    send("ok", 3),
  ]);
  assert.deepEqual(tick.map((r) => r.status), [
    "fulfilled",
    "rejected",
    "fulfilled",
  ]);
  assert.ok(refused((tick[1] as PromiseRejectedResult).reason));
  await assert.rejects(send("no", 4), refused);
  await send("ok", 5);
  await inbox.until(3);
  assert.deepEqual(inbox.payloads, [1, 3, 5]);
  // Scripts forbidden after connecting: that tick is refused, not sent;
  // later ones go out as PUBLISHes.
  await setUser(server.url, "app", "-eval", "-evalsha");
  const denied = await Promise.allSettled([send("ok", 6), send("ok", 7)]);
  assert.ok(denied.every((r) => r.status === "rejected" && refused(r.reason)));
  await Promise.all([send("ok", 8), send("ok", 9)]);
  await inbox.until(5);
  assert.deepEqual(inbox.payloads, [1, 3, 5, 8, 9]);
  await app.close();
  await reader.close();
});

test("RedisEventBus: a burst of 50,000 events into a 1 ms handler loses nothing and keeps the connection", async () => {
  const total = Number(Deno.env.get("BURST_EVENTS") ?? 50_000);
  // A server that disconnects a subscriber once 2 MiB wait for it: the burst
  // is 15 MiB, so only a bus that reads its socket promptly survives.
  await using server = await startRedis([
    "--client-output-buffer-limit",
    "pubsub",
    "2mb",
    "1mb",
    "1",
  ]);
  const { bus, errors } = await connected({ url: server.url });
  const topic = uniqueTopic("burst");
  const inbox = new Inbox();
  await bus.subscribe(topic, async (event) => {
    await new Promise((r) => setTimeout(r, 1));
    inbox.handler(event);
  });
  // Another connection publishes the burst in pipelined batches of 500.
  await withAdmin(async (admin) => {
    for (let n = 0; n < total; n += 500) {
      const batch = admin.pipeline();
      for (let i = n; i < Math.min(n + 500, total); i++) {
        batch.publish(
          `events:${topic}`,
          makeEvent(topic, { n: i, pad: "x".repeat(200) }).toJSONString(),
        );
      }
      await batch.exec();
    }
  }, server.url);
  assert.ok(
    inbox.events.length < total / 2,
    "the burst should outpace the handler",
  );
  await inbox.until(total, 300_000);
  assert.deepEqual(errors, []);
  assert.ok(inbox.events.every((e, i) => e.payload.n === i));
  assert.equal(bus.state, "ready");
  await bus.close();
});

test("RedisEventBus: two processes exchange events both ways", async () => {
  const { bus } = await connected();
  const ping = uniqueTopic("ping"), pong = uniqueTopic("pong");
  const inbox = new Inbox();
  await bus.subscribe(pong, inbox.handler);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./_peer.ts", import.meta.url).pathname,
      "redis",
      REDIS_URL,
      ping,
      pong,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  assert.equal((await reader.read()).value?.trim(), "ready");
  await bus.publish(ping, makeEvent(ping, { n: 41 }));
  const [reply] = await inbox.until(1);
  assert.equal(reply!.payload.n, 42);
  assert.equal(reply!.source, "peer");
  await reader.cancel();
  assert.equal((await child.status).code, 0);
  await bus.close();
});

test("RedisEventBus: bad options are refused without echoing secrets", () => {
  assert.throws(() => new RedisEventBus({}), /host must be a non-empty string/);
  assert.throws(
    () => new RedisEventBus({ url: "http://x" }),
    /url must be a redis:\/\//,
  );
  assert.throws(
    () => new RedisEventBus({ url: "redis://:hunter2@[bad" }),
    (e: unknown) => !String(e).includes("hunter2"),
  );
  assert.throws(
    () => new RedisEventBus({ host: "h", port: 0 }),
    /port must be/,
  );
  assert.throws(
    () => new RedisEventBus({ host: "h", heartbeatMs: 0 }),
    /heartbeatMs must be/,
  );
  const bus = new RedisEventBus({
    url: "rediss://u:hunter2@example.com:6380/2",
  });
  assert.equal(String(bus), "RedisEventBus(rediss://example.com:6380/2, idle)");
  return Promise.resolve();
});

const MiB = 1024 * 1024;

/** Polls `done` every 10 ms, at most `ms`. */
async function until(done: () => boolean, ms = 10_000): Promise<void> {
  for (let i = 0; i < ms / 10 && !done(); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("RedisEventBus: a 33 MiB event is refused at publish (RangeError), where Redis would drop every subscriber; nothing is lost", async () => {
  // A server of its own, with Redis's default pub/sub output buffer limit.
  await using server = await startRedis();
  await withAdmin(async (admin) => {
    const reply = await admin.config("GET", "client-output-buffer-limit");
    assert.match(String(reply), /pubsub 33554432 8388608 60/);
  }, server.url);
  const { bus, gaps, errors } = await connected({ url: server.url });
  const topic = uniqueTopic("huge");
  const exact = new Inbox(), pattern = new Inbox();
  await bus.subscribe(topic, exact.handler);
  await bus.subscribe("p", pattern.handler, `${topic}*`);
  const huge = makeEvent(topic, { n: 0, text: "x".repeat(33 * MiB) });
  await assert.rejects(
    bus.publish(topic, huge),
    (e: unknown) =>
      e instanceof RangeError &&
      e.message.includes(`${wireBytes(huge)} bytes`) &&
      e.message.includes(`limit of ${MiB} (maxEventBytes)`) &&
      /client-output-buffer-limit pubsub/.test(e.message),
  );
  // Before the limit: publish resolved, Redis dropped the subscriber, and
  // this event arrived only after a gap (or not at all).
  await bus.publish(topic, makeEvent(topic, { n: 1 }));
  await exact.until(1);
  await pattern.until(1);
  assert.deepEqual([exact.payloads, pattern.payloads], [[1], [1]]);
  assert.deepEqual([gaps, errors], [[], []]);
  await bus.close();
});

test("RedisEventBus: an event past client-output-buffer-limit pubsub drops the subscriber; raised with maxEventBytes (the README's advice) it is delivered", async () => {
  await using server = await startRedis();
  const setLimit = (limit: string) =>
    withAdmin(
      (admin) => admin.config("SET", "client-output-buffer-limit", limit),
      server.url,
    );
  const { bus, gaps, errors } = await connected({
    url: server.url,
    maxEventBytes: 64 * MiB,
  });
  const topic = uniqueTopic("buffer");
  const inbox = new Inbox();
  await bus.subscribe(topic, inbox.handler);
  // maxEventBytes raised alone: what the old default did for any event
  // over 32 MB, shown cheaply with a 256 kB server limit and 512 KiB.
  await setLimit("pubsub 256kb 128kb 60");
  await bus.publish(
    topic,
    makeEvent(topic, { n: 0, text: "x".repeat(MiB / 2) }),
  );
  await until(() => gaps.length > 0 && isReady(bus));
  assert.equal(gaps.length, 1, "Redis dropped the subscriber");
  assert.match(String(errors[0]), /Lost the receiving connection/);
  // Raised on the server too, above the largest event: delivered intact.
  await setLimit("pubsub 128mb 64mb 60");
  const text = "x".repeat(33 * MiB);
  await bus.publish(topic, makeEvent(topic, { n: 1, text }));
  const [got] = await inbox.until(1, 30_000);
  assert.equal(got!.payload.n, 1, "the dropped event never arrives");
  assert.ok(got!.payload.text === text);
  assert.equal(gaps.length, 1);
  await bus.close();
});

// Read through a function: TypeScript narrows `bus.state` after a check.
const isReady = (bus: { readonly state: string }) => bus.state === "ready";
