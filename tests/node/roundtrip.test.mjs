// Runs under Node (node:test) against the package as npm users get it.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { test } from "node:test";
import {
  createEventBus,
  Event,
  EventType,
  InMemoryEventBus,
} from "@dataknobs/events";
import { postgresChannel, PostgresEventBus } from "@dataknobs/events/postgres";
import { RedisEventBus } from "@dataknobs/events/redis";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const DATABASE_URL = process.env.DATABASE_URL ??
  "postgres://postgres@127.0.0.1:5432/postgres";

// Whether a server accepts TCP connections at `url`.
function reachable(url, defaultPort) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(
      Number(port) || defaultPort,
      hostname.replace(/^\[|\]$/g, ""),
    );
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

// A test that needs a server: skipped when it is unreachable, as the Deno
// integration tests are, except with CI set, where that is a failure.
function needs(name, up, fn) {
  return (t) => {
    if (up) return fn();
    if (process.env.CI) {
      throw new Error(`${name} is unreachable; CI is set, so this fails`);
    }
    t.skip(`${name} is unreachable`);
  };
}

const redisUp = await reachable(REDIS_URL, 6379);
const postgresUp = await reachable(DATABASE_URL, 5432);

async function roundTrip(config) {
  const bus = createEventBus(config);
  await bus.connect();
  const topic = `node-${crypto.randomUUID().slice(0, 8)}`;
  const got = [];
  let arrived;
  const done = new Promise((resolve) => (arrived = resolve));
  await bus.subscribe(topic, (event) => {
    got.push(event);
    if (got.length === 2) arrived();
  });
  await bus.subscribe("all", (event) => {
    got.push(event);
    if (got.length === 2) arrived();
  }, `${topic.slice(0, 6)}*`);
  await bus.publish(
    topic,
    new Event({ type: EventType.CREATED, topic, payload: { from: "node" } }),
  );
  await done;
  assert.deepEqual(got.map((e) => e.payload.from), ["node", "node"]);
  assert.equal(got[0].eventId, got[1].eventId);
  await bus.close();
  assert.equal(bus.state, "closed");
}

test("memory round trip under Node", () => roundTrip({ backend: "memory" }));

test(
  "redis round trip under Node (loaded lazily by createEventBus)",
  needs(
    "Redis",
    redisUp,
    () => roundTrip({ backend: "redis", url: REDIS_URL }),
  ),
);

test(
  "postgres round trip under Node (loaded lazily by createEventBus)",
  needs(
    "PostgreSQL",
    postgresUp,
    () => roundTrip({ backend: "postgres", connection_string: DATABASE_URL }),
  ),
);

// build_and_test.ts starts a redis-server with a TLS port and a private CA.
const TLS_PORT = Number(process.env.TLS_REDIS_PORT);
test(
  "redis over TLS under Node: IP host with a private CA; failures say why",
  // Only build_and_test.ts starts that server (and sets TLS_REDIS_PORT);
  // anything else running this file (deno test picks it up too) skips.
  TLS_PORT > 0
    ? () => tlsRoundTrip()
    : (t) => t.skip("needs build_and_test.ts"),
);

async function tlsRoundTrip() {
  const ca = readFileSync(process.env.TLS_CA_FILE, "utf8");
  const options = { host: "127.0.0.1", connectTimeoutMs: 3000 };
  await roundTrip({
    backend: "redis",
    host: "127.0.0.1",
    port: TLS_PORT,
    ssl: { ca },
  });
  const refused = async (bus, text) => {
    await assert.rejects(bus.connect(), (e) => {
      assert.equal(e.code, "CONNECTION_FAILED");
      assert.match(e.message, text);
      return true;
    });
    await bus.close();
  };
  await refused(
    new RedisEventBus({ ...options, port: TLS_PORT, tls: true }),
    /give the CA that signed it as tls\.ca/,
  );
  await refused(
    new RedisEventBus({
      ...options,
      port: Number(process.env.TLS_REDIS_PLAIN_PORT),
      tls: { ca },
      connectTimeoutMs: 1000,
    }),
    /is the server speaking TLS on this port/,
  );
}

// Node keeps Object.prototype.__proto__ (Deno removes it), so this is where
// assigning a "__proto__" key would set the copy's prototype instead.
test("a __proto__ key stays an own key under Node, made and decoded", () => {
  const text = '{"__proto__":{"isAdmin":true},"x":1}';
  const event = new Event({
    type: EventType.CREATED,
    topic: "t",
    payload: JSON.parse(text),
    metadata: JSON.parse(text),
  });
  const copies = [
    event,
    event.withCorrelation("c"),
    Event.fromJSON(event.toJSONString()),
    Event.fromDict(JSON.parse(event.toJSONString())),
  ];
  for (const copy of copies) {
    for (const object of [copy.payload, copy.metadata]) {
      assert.deepEqual(Object.keys(object), ["__proto__", "x"]);
      assert.equal(Object.getPrototypeOf(object), Object.prototype);
      assert.equal(object.isAdmin, undefined);
    }
    assert.ok(copy.toJSONString().includes(`"payload":${text}`));
  }
});

test("the entry points export their classes", () => {
  assert.equal(typeof InMemoryEventBus, "function");
  assert.equal(typeof RedisEventBus, "function");
  assert.equal(typeof PostgresEventBus, "function");
  assert.equal(postgresChannel("registry:bots"), "events_registry_bots");
});
