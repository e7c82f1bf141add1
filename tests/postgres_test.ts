import assert from "node:assert/strict";
import postgres from "postgres";
import { createEventBus, Event, EventBusError } from "../mod.ts";
import {
  postgresChannel,
  PostgresEventBus,
  type PostgresEventBusOptions,
} from "../postgres.ts";
import {
  conformance,
  Inbox,
  makeEvent,
  observed,
  uniqueTopic,
} from "./conformance.ts";
import { DATABASE_URL, reachable } from "./_servers.ts";
import { lines } from "./faults/_lines.ts";

const ok = await reachable("PostgreSQL", "DATABASE_URL", DATABASE_URL);
const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, ignore: !ok, fn });

if (ok) {
  conformance(
    "postgres",
    (options) =>
      new PostgresEventBus({ connectionString: DATABASE_URL, ...options }),
  );
  conformance(
    "postgres via createEventBus",
    (options) =>
      createEventBus(
        { backend: "postgres", connection_string: DATABASE_URL },
        options,
      ),
  );
  // The history tier's log (channel prefix "events") is removed at the end.
  Deno.test("postgres history: (clean-up of the conformance tier's log)", async () => {
    const sql = postgres(DATABASE_URL, { onnotice: () => {} });
    await sql`drop table if exists events_log, events_log_state`;
    await sql`drop sequence if exists events_log_boot`;
    await sql`drop function if exists events_log_removed, events_log_no_boot`;
    await sql.end();
  });
}

const connected = (options: Partial<PostgresEventBusOptions> = {}) =>
  observed((hooks) =>
    new PostgresEventBus({
      connectionString: DATABASE_URL,
      ...hooks,
      ...options,
    })
  );

// The server processes of the LISTEN connections that `open` makes. Tests
// stop only their own bus's connection: other processes (a parallel run,
// a developer's service) may have buses on the same server.
async function listenersOf<T>(open: () => Promise<T>): Promise<[T, number[]]> {
  const listeners = async () =>
    new Set(
      (await withSql((sql) =>
        sql`select pid from pg_stat_activity
            where application_name = 'dataknobs-events-listener'`
      )).map((row) => row.pid as number),
    );
  const before = await listeners();
  const opened = await open();
  const pids = [...await listeners()].filter((pid) => !before.has(pid));
  // A process that opened one at the same moment is counted too (rare).
  assert.ok(pids.length >= 1, "the bus opened no LISTEN connection");
  return [opened, pids];
}

const terminate = (pids: number[]) =>
  withSql((sql) =>
    sql`select pg_terminate_backend(pid) from unnest(${pids}::int[]) as pid`
  );

async function withSql<T>(fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    return await fn(sql);
  } finally {
    await sql.end();
  }
}

const until = async (check: () => boolean, what: string) => {
  for (let i = 0; i < 500 && !check(); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(check(), `timed out waiting for ${what}`);
};

Deno.test("postgresChannel() names channels as the Python bus does, shortened past 63 bytes", () => {
  assert.equal(postgresChannel("registry:bots"), "events_registry_bots");
  assert.equal(postgresChannel("a:b"), "events_a_b");
  assert.equal(postgresChannel("a.b-c"), "events_a_b_c");
  assert.equal(postgresChannel("naïve 😀 topic", "ev"), "ev_navetopic");
  assert.equal(postgresChannel("x'; drop table t; --"), "events_xdroptablet__");
  const long = postgresChannel("t".repeat(200));
  assert.equal(long.length, 63);
  assert.match(long, /^events_t+_[0-9a-f]{16}$/);
  assert.equal(postgresChannel("t".repeat(200)), long);
  assert.notEqual(postgresChannel("t".repeat(199) + "u"), long);
});

test("PostgresEventBus: topics sharing a channel never see each other's events", async () => {
  const { bus } = await connected();
  const ns = uniqueTopic("coll").replace(/-/g, "");
  const long = "L".repeat(100);
  const topics = [
    `${ns}a:b`,
    `${ns}a_b`,
    `${ns}a.b`,
    `${ns}${long}1`,
    `${ns}${long}2`,
  ];
  assert.equal(postgresChannel(topics[0]!), postgresChannel(topics[2]!));
  const inboxes = topics.map(() => new Inbox());
  for (const [i, topic] of topics.entries()) {
    await bus.subscribe(topic, inboxes[i]!.handler);
  }
  for (const topic of topics) {
    await bus.publish(topic, makeEvent(topic, { n: topic }));
  }
  for (const [i, topic] of topics.entries()) {
    await inboxes[i]!.until(1);
    await bus.publish(topic, makeEvent(topic, { n: "again" }));
    assert.deepEqual((await inboxes[i]!.until(2)).map((e) => e.payload.n), [
      topic,
      "again",
    ]);
  }
  await bus.close();
});

test("PostgresEventBus: payloads around NOTIFY's 8000-byte limit and of 1 MiB arrive intact", async () => {
  const { bus } = await connected();
  const topic = uniqueTopic("size");
  const exact = new Inbox(), pattern = new Inbox();
  await bus.subscribe(topic, exact.handler);
  await bus.subscribe("p", pattern.handler, `${topic}*`);
  const base = makeEvent(topic, { text: "" }).toJSONString().length;
  const sized = (bytes: number, unit: string) => {
    const unitBytes = new TextEncoder().encode(unit).length;
    const count = Math.floor((bytes - base) / unitBytes);
    const pad = "x".repeat(bytes - base - count * unitBytes);
    const event = makeEvent(topic, { text: unit.repeat(count) + pad });
    assert.equal(new TextEncoder().encode(event.toJSONString()).length, bytes);
    return event;
  };
  const events = [7999, 8000, 8001].flatMap((
    b,
  ) => [sized(b, "a"), sized(b, "é"), sized(b, "😀")]);
  events.push(sized(1024 * 1024, "ü"));
  for (const event of events) await bus.publish(topic, event);
  for (const inbox of [exact, pattern]) {
    const got = await inbox.until(events.length);
    assert.deepEqual(got.map((e) => e.toDict()), events.map((e) => e.toDict()));
  }
  await bus.close();
});

test("PostgresEventBus: large bodies are deleted after largePayloadTtlMs while connected, with no later publish", async () => {
  const prefix = `ttl_${crypto.randomUUID().slice(0, 8)}`;
  const { bus } = await connected({
    channelPrefix: prefix,
    largePayloadTtlMs: 200,
  });
  try {
    const topic = uniqueTopic("ttl");
    const inbox = new Inbox();
    await bus.subscribe(topic, inbox.handler);
    for (let n = 0; n < 3; n++) {
      await bus.publish(topic, makeEvent(topic, { n, text: "x".repeat(9000) }));
    }
    await inbox.until(3);
    const rows = () =>
      withSql(async (sql) =>
        Number(
          (await sql`select count(*) as n from ${sql(`${prefix}_payloads`)}`)[
            0
          ]!
            .n,
        )
      );
    let left = await rows();
    for (let i = 0; i < 100 && left > 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      left = await rows();
    }
    assert.equal(left, 0, "rows past their TTL are gone");
  } finally {
    await bus.close();
    await withSql((sql) =>
      sql`drop table if exists ${sql(`${prefix}_payloads`)}`
    );
  }
});

test("PostgresEventBus: a publishing statement that finds the payload table dropped is refused (the table made again), never run again after a later one: what arrives is in publish order", async () => {
  const prefix = `dpay_${crypto.randomUUID().slice(0, 8)}`;
  const { bus } = await connected({ channelPrefix: prefix });
  try {
    const topic = uniqueTopic("dpay");
    const got: string[] = [];
    await bus.subscribe(
      topic,
      (event) => void got.push(String(event.payload.n)),
    );
    for (let i = 0; i < 5; i++) {
      got.length = 0;
      await withSql((sql) => sql`drop table ${sql(`${prefix}_payloads`)}`);
      // Two batches in flight: the large event's, then the small one's.
      const large = bus.publish(
        topic,
        makeEvent(topic, { n: "large", blob: "x".repeat(9000) }),
      );
      for (let j = 0; j < 3; j++) await Promise.resolve();
      const small = bus.publish(topic, makeEvent(topic, { n: "small" }));
      await assert.rejects(
        large,
        /was missing.*made it again: publish it again/,
      );
      await small;
      await until(() => got.length > 0, "the small event");
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(got, ["small"]);
      // Made again: the next large event goes.
      await bus.publish(
        topic,
        makeEvent(topic, { n: "again", blob: "x".repeat(9000) }),
      );
      await until(() => got.length === 2, "the large event");
    }
  } finally {
    await bus.close();
    await dropTables(prefix);
  }
});

test("PostgresEventBus: a transactional publish in a transaction whose search_path names another schema finds the bus's tables", async () => {
  const prefix = `tsp_${crypto.randomUUID().slice(0, 8)}`;
  const schema = `${prefix}_tenant`;
  const { bus } = await connected({ channelPrefix: prefix });
  const app = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    await app`create schema ${app(schema)}`;
    const topic = uniqueTopic("tsp");
    const inbox = new Inbox();
    await bus.subscribe(topic, inbox.handler);
    await bus.subscribe("p", inbox.handler, `${topic}*`);
    await app.begin(async (tx) => {
      await tx`set local search_path = ${tx(schema)}`;
      await bus.publish(topic, makeEvent(topic, { n: 1 }), { sql: tx });
    });
    await inbox.until(2);
  } finally {
    await app`drop schema if exists ${app(schema)} cascade`;
    await app.end();
    await bus.close();
    await dropTables(prefix);
  }
});

const patternRows = (prefix: string) =>
  withSql(async (sql) =>
    (await sql`select pattern from ${sql(`${prefix}_patterns`)}
      order by pattern`).map((row) => row.pattern as string)
  );

test("PostgresEventBus: a pattern cancelled while the LISTEN connection is down loses its row once it is restored (not renewed for ever)", async () => {
  const prefix = `leak_${crypto.randomUUID().slice(0, 8)}`;
  const [{ bus }, pids] = await listenersOf(() =>
    connected({ channelPrefix: prefix, heartbeatMs: 300 })
  );
  try {
    await bus.subscribe("keep", () => {}, "keep:*");
    const gone = await bus.subscribe("gone", () => {}, "gone:*");
    await terminate(pids);
    await until(() => bus.state !== "ready", "the connection lost");
    await gone.cancel();
    await until(() => bus.state === "ready", "the connection restored");
    assert.deepEqual(await patternRows(prefix), ["keep:*"]);
  } finally {
    await bus.close();
    await dropTables(prefix);
  }
});

test("PostgresEventBus: the pattern table dropped is made again by the listener (its heartbeat, a pattern subscribe), with no publish", async () => {
  const prefix = `dpat_${crypto.randomUUID().slice(0, 8)}`;
  const { bus } = await connected({ channelPrefix: prefix, heartbeatMs: 200 });
  try {
    await bus.subscribe("a", () => {}, "a:*");
    await withSql((sql) => sql`drop table ${sql(`${prefix}_patterns`)}`);
    // The heartbeat's renewal finds it gone, makes it, and restores.
    const rowsBecome = async (want: string[]) => {
      for (let i = 0; i < 100; i++) {
        const rows = await patternRows(prefix).catch(() => []);
        if (rows.join() === want.join() && bus.state === "ready") break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(await patternRows(prefix), want);
    };
    await rowsBecome(["a:*"]);
    await withSql((sql) => sql`drop table ${sql(`${prefix}_patterns`)}`);
    // A pattern subscribe makes it at once (the other row comes back with
    // the restore that the next heartbeat starts).
    const inbox = new Inbox();
    await bus.subscribe("b", inbox.handler, "b:*");
    assert.ok((await patternRows(prefix)).includes("b:*"));
    await rowsBecome(["a:*", "b:*"]);
    await bus.publish("b:1", makeEvent("b:1"));
    await inbox.until(1);
  } finally {
    await bus.close();
    await dropTables(prefix);
  }
});

test("PostgresEventBus: close() during a bus's first pattern subscribe leaves no row", async () => {
  const prefix = `csub_${crypto.randomUUID().slice(0, 8)}`;
  for (let i = 0; i < 12; i++) {
    const { bus } = await connected({ channelPrefix: prefix });
    const subscribing = bus.subscribe("l", () => {}, `c${i}*`).catch(() => {});
    await new Promise((r) => setTimeout(r, i % 4));
    await bus.close();
    await subscribing;
  }
  try {
    assert.deepEqual(await patternRows(prefix), []);
  } finally {
    await dropTables(prefix);
  }
});

test("PostgresEventBus: 5,000 topics subscribed and cancelled leave nothing on the LISTEN connection's server process", async () => {
  const [{ bus }, [pid]] = await listenersOf(() => connected());
  try {
    const rss = async () => {
      const { stdout } = await new Deno.Command("ps", {
        args: ["-o", "rss=", "-p", String(pid)],
      }).output();
      return Number(new TextDecoder().decode(stdout).trim()) * 1024;
    };
    const churn = async (count: number) => {
      for (let i = 0; i < count; i++) {
        const topic = `order:${crypto.randomUUID()}`;
        const sub = await bus.subscribe(topic, () => {});
        await sub.cancel();
      }
    };
    await churn(500); // warm up
    const before = await rss();
    await churn(5000);
    const growth = await rss() - before;
    // A prepared statement per LISTEN/UNLISTEN text grew it by ~3.3 kB a
    // topic (16 MB here); simple-protocol statements leave nothing.
    assert.ok(growth < 4_000_000, `grew by ${growth} bytes`);
  } finally {
    await bus.close();
  }
});

test("PostgresEventBus: a malformed large-payload reference costs only itself, not the events fetched with it", async () => {
  const { bus, errors } = await connected();
  try {
    const topic = uniqueTopic("bad-ref");
    const inbox = new Inbox();
    await bus.subscribe(topic, inbox.handler);
    const channel = postgresChannel(topic);
    const bad = [
      '{"dataknobs_ref":"------------------------------------"}',
      '{"dataknobs_ref":"zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"}',
      '{"dataknobs_ref":42}',
      '{"dataknobs_ref":',
    ];
    // All in one transaction: they arrive together, fetched by one query.
    await withSql((sql) =>
      sql.begin(async (tx) => {
        for (let n = 0; n < 10; n++) {
          await bus.publish(
            topic,
            makeEvent(topic, { n, text: "x".repeat(9000) }),
            { sql: tx },
          );
          const text = bad[n % bad.length]!;
          if (n % 3 === 0) await tx`select pg_notify(${channel}, ${text})`;
        }
      })
    );
    const got = await inbox.until(10);
    assert.deepEqual(got.map((e) => e.payload.n), [
      0,
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
      9,
    ]);
    assert.equal(errors.length, 4, String(errors));
  } finally {
    await bus.close();
  }
});

// Found by tests/cross_backend_property_test.ts: the reference a large
// event's notification carries held the whole event id, so an id of 8000
// bytes made NOTIFY refuse it ("payload string too long") where memory and
// Redis delivered.
test("PostgresEventBus: a large event whose event id alone is too long for NOTIFY arrives intact", async () => {
  const { bus, errors } = await connected();
  const topic = uniqueTopic("long-id");
  const inbox = new Inbox();
  await bus.subscribe(topic, inbox.handler);
  const events = ["😀".repeat(2000), "\u0001".repeat(1400), "i".repeat(8000)]
    .map((eventId) =>
      new Event({ type: "created", topic, eventId, payload: { n: 1 } })
    );
  for (const event of events) await bus.publish(topic, event);
  const got = await inbox.until(events.length);
  assert.deepEqual(got.map((e) => e.toDict()), events.map((e) => e.toDict()));
  assert.deepEqual(errors, []);
  await bus.close();
});

// Found by tests/cross_backend_property_test.ts: PostgreSQL text cannot
// hold U+0000, and pattern matching sends topics and patterns to the
// server as text, so a publish to such a topic and a pattern holding it
// were refused ("invalid byte sequence for encoding UTF8: 0x00") where
// memory and Redis delivered.
test("PostgresEventBus: topics and patterns holding U+0000 work as on every backend", async () => {
  const { bus, errors } = await connected();
  try {
    const ns = uniqueTopic("nul");
    const [nul, fffd] = [`${ns}:a\u0000b`, `${ns}:a\uFFFDb`];
    const exact = new Inbox(), withNul = new Inbox(), withFffd = new Inbox();
    const any = new Inbox();
    await bus.subscribe(nul, exact.handler);
    const nulSub = await bus.subscribe("p", withNul.handler, `${ns}:a\u0000*`);
    await bus.subscribe("p", withFffd.handler, `${ns}:a\uFFFD*`);
    await bus.subscribe("p", any.handler, `${ns}:a?b`);
    await bus.publish(nul, makeEvent(nul, { n: 1 }));
    await bus.publish(fffd, makeEvent(fffd, { n: 2 }));
    await any.until(2);
    assert.deepEqual(any.payloads, [1, 2]);
    assert.deepEqual(exact.payloads, [1]);
    assert.deepEqual(withNul.payloads, [1]);
    assert.deepEqual(withFffd.payloads, [2]);
    // The two patterns keep rows of their own: cancelling one leaves the
    // other live.
    await nulSub.cancel();
    await bus.publish(fffd, makeEvent(fffd, { n: 3 }));
    await any.until(3);
    await withFffd.until(2);
    assert.deepEqual(withFffd.payloads, [2, 3]);
    assert.deepEqual(errors, []);
  } finally {
    await bus.close();
  }
});

test("PostgresEventBus: large events keep their order among small ones", async () => {
  const { bus } = await connected();
  const topic = uniqueTopic("order-big");
  const inbox = new Inbox();
  await bus.subscribe(topic, inbox.handler);
  const sends = [];
  for (let n = 0; n < 40; n++) {
    sends.push(
      bus.publish(
        topic,
        makeEvent(topic, { n, text: n % 5 === 0 ? "z".repeat(20_000) : "" }),
      ),
    );
  }
  await Promise.all(sends);
  assert.deepEqual(
    (await inbox.until(40)).map((e) => e.payload.n),
    Array.from({ length: 40 }, (_, n) => n),
  );
  await bus.close();
});

test("PostgresEventBus: pg_terminate_backend of the LISTEN connection → re-LISTEN, gap reported, delivery resumes", async () => {
  const [{ bus, gaps, states }, pids] = await listenersOf(() =>
    connected({ heartbeatMs: 200, maxReconnectDelayMs: 100 })
  );
  const topic = uniqueTopic("kill");
  const exact = new Inbox(), pattern = new Inbox();
  await bus.subscribe(topic, exact.handler);
  await bus.subscribe("p", pattern.handler, `${topic}*`);
  await bus.publish(topic, makeEvent(topic, { n: 1 }));
  await exact.until(1);
  const killedAt = Date.now();
  await terminate(pids);
  await until(() => gaps.length === 1, "the gap report");
  // `since` is the last moment the connection was proven live: before the
  // kill, by at most two heartbeats.
  assert.ok(gaps[0]!.since.getTime() <= killedAt);
  assert.ok(gaps[0]!.since.getTime() >= killedAt - 2 * 200 - 50);
  assert.deepEqual(states.slice(-2), ["reconnecting", "ready"]);
  for (let n = 2; n <= 20; n++) {
    await bus.publish(topic, makeEvent(topic, { n }));
  }
  assert.deepEqual(
    (await exact.until(20)).map((e) => e.payload.n),
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
  await pattern.until(20);
  await bus.close();
});

test("PostgresEventBus: a LISTEN connection that stops answering is replaced by the heartbeat", async () => {
  const [{ bus, gaps }, [pid]] = await listenersOf(() =>
    connected({ heartbeatMs: 200, maxReconnectDelayMs: 100 })
  );
  const topic = uniqueTopic("hang");
  const inbox = new Inbox();
  await bus.subscribe(topic, inbox.handler);
  const signal = (name: string) =>
    new Deno.Command("kill", { args: [`-${name}`, String(pid)] }).output();
  await signal("STOP"); // the backend hangs; its socket stays open
  try {
    await until(
      () => gaps.length === 1,
      "the heartbeat to replace the connection",
    );
  } finally {
    await signal("CONT");
  }
  await bus.publish(topic, makeEvent(topic, { n: "after" }));
  assert.deepEqual((await inbox.until(1)).map((e) => e.payload.n), ["after"]);
  await bus.close();
});

test("PostgresEventBus: publish inside a transaction delivers only on commit, once", async () => {
  const { bus } = await connected();
  const topic = uniqueTopic("tx");
  const inbox = new Inbox();
  await bus.subscribe(topic, inbox.handler);
  await withSql(async (sql) => {
    await sql.begin(async (tx) => {
      await bus.publish(topic, makeEvent(topic, { n: "rolled back" }), {
        sql: tx,
      });
      await bus.publish(
        topic,
        makeEvent(topic, { n: "big rolled back", text: "q".repeat(10_000) }),
        { sql: tx },
      );
      throw new Error("roll back");
    }).catch((e: Error) => assert.equal(e.message, "roll back"));
    await sql.begin(async (tx) => {
      await bus.publish(topic, makeEvent(topic, { n: "committed" }), {
        sql: tx,
      });
      await bus.publish(
        topic,
        makeEvent(topic, { n: "big committed", text: "q".repeat(10_000) }),
        { sql: tx },
      );
    });
  });
  await bus.publish(topic, makeEvent(topic, { n: "after" }));
  assert.deepEqual((await inbox.until(3)).map((e) => e.payload.n), [
    "committed",
    "big committed",
    "after",
  ]);
  await bus.close();
});

test("createEventBus() gives the real PostgresEventBus: a publish in a rolled-back transaction is never delivered", async () => {
  const bus = createEventBus({
    backend: "postgres",
    connection_string: DATABASE_URL,
  });
  assert.ok(bus instanceof PostgresEventBus);
  await bus.connect();
  try {
    const topic = uniqueTopic("factory-tx");
    const inbox = new Inbox();
    await bus.subscribe(topic, inbox.handler);
    await withSql((sql) =>
      sql.begin(async (tx) => {
        await bus.publish(topic, makeEvent(topic, { n: "rolled back" }), {
          sql: tx,
        });
        throw new Error("roll back");
      }).catch((e: Error) => assert.equal(e.message, "roll back"))
    );
    await bus.publish(topic, makeEvent(topic, { n: "after" }));
    assert.deepEqual((await inbox.until(1)).map((e) => e.payload.n), ["after"]);
    assert.equal(typeof await bus.notificationQueueUsage(), "number");
  } finally {
    await bus.close();
  }
});

test("PostgresEventBus: 10,000 concurrent publishes arrive complete and in order", async () => {
  const { bus } = await connected();
  const topic = uniqueTopic("many");
  const inbox = new Inbox();
  await bus.subscribe(topic, inbox.handler);
  const sends = [];
  for (let n = 0; n < 10_000; n++) {
    sends.push(bus.publish(topic, makeEvent(topic, { n })));
  }
  await Promise.all(sends);
  const got = await inbox.until(10_000, 60_000);
  assert.ok(got.every((e, i) => e.payload.n === i));
  await bus.close();
});

test("PostgresEventBus: batches in flight together keep publish order, with repeated events and patterns", async () => {
  // Batches of 3 events, two in flight at once; a repeated event cuts a
  // batch into two statements, both written before the next batch's.
  const { bus } = await connected({ maxBatch: 3 });
  const ns = uniqueTopic("pipe");
  const exact = new Inbox(), pattern = new Inbox();
  await bus.subscribe(`${ns}.x`, exact.handler);
  await bus.subscribe("p", pattern.handler, `${ns}.*`);
  const sent = [];
  for (let n = 0; n < 300; n++) {
    const event = makeEvent(`${ns}.${n % 2 ? "x" : "y"}`, { n });
    sent.push(event);
    if (n % 5 === 1) sent.push(event);
  }
  await Promise.all(sent.map((event) => bus.publish(event.topic, event)));
  const order = (events: Event[]) => events.map((e) => e.payload.n);
  assert.deepEqual(
    order(await pattern.until(sent.length)),
    order(sent),
  );
  assert.deepEqual(
    order(await exact.until(sent.filter((e) => e.topic.endsWith("x")).length)),
    order(sent.filter((e) => e.topic.endsWith("x"))),
  );
  await bus.close();
});

test("PostgresEventBus: the same event published twice at once arrives twice", async () => {
  const { bus } = await connected();
  const topic = uniqueTopic("twice");
  const inbox = new Inbox();
  await bus.subscribe(topic, inbox.handler);
  const event = makeEvent(topic, { n: 1 });
  await Promise.all([bus.publish(topic, event), bus.publish(topic, event)]);
  assert.equal((await inbox.until(2)).length, 2);
  await bus.close();
});

test("PostgresEventBus: garbage NOTIFY on a listened channel is reported and skipped", async () => {
  const { bus, errors } = await connected();
  const topic = uniqueTopic("garbage");
  const inbox = new Inbox();
  await bus.subscribe(topic, inbox.handler);
  await withSql(async (sql) => {
    await sql`select pg_notify(${postgresChannel(topic)}, 'garbage')`;
    await sql`select pg_notify(${
      postgresChannel(topic)
    }, '{"dataknobs_ref":"nope"}')`;
  });
  await bus.publish(topic, makeEvent(topic, { n: "good" }));
  assert.deepEqual((await inbox.until(1)).map((e) => e.payload.n), ["good"]);
  assert.equal(errors.length, 2);
  assert.match(String(errors[0]), /not JSON/);
  assert.match(String(errors[1]), /dataknobs_ref/);
  await bus.close();
});

test("PostgresEventBus: SQL-injection-shaped topics round trip; bad prefixes are refused", async () => {
  const { bus } = await connected();
  const ns = uniqueTopic("inj");
  const topics = [
    `${ns}'; drop table x; --`,
    `${ns}"quoted"`,
    `${ns};select 1`,
    `${ns}ünï😀`,
    `${ns}${"z".repeat(200)}`,
  ];
  for (const topic of topics) {
    const inbox = new Inbox();
    await bus.subscribe(topic, inbox.handler);
    await bus.publish(topic, makeEvent(topic, { n: topic }));
    assert.equal((await inbox.until(1))[0]!.topic, topic);
  }
  await bus.close();
  for (const channelPrefix of ['ev"; drop', "ev-1", "", "x".repeat(41)]) {
    assert.throws(
      () =>
        new PostgresEventBus({ connectionString: DATABASE_URL, channelPrefix }),
      /channelPrefix must be/,
    );
  }
});

test("PostgresEventBus: a failed connect() may be retried, and reconnection still works", async () => {
  // A loopback TCP proxy to the server that is not listening at first.
  const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (free.addr as Deno.NetAddr).port;
  free.close();
  const target = new URL(DATABASE_URL);
  const via = new URL(DATABASE_URL);
  via.hostname = "127.0.0.1";
  via.port = String(port);
  const gaps: unknown[] = [];
  const bus = new PostgresEventBus({
    connectionString: via.href,
    maxReconnectDelayMs: 100,
    onGap: (g) => void gaps.push(g),
    onError: () => {},
  });
  await assert.rejects(
    bus.connect(),
    (e: unknown) =>
      e instanceof EventBusError && e.code === "CONNECTION_FAILED",
  );
  assert.equal(bus.state, "idle");
  const proxy = Deno.listen({ hostname: "127.0.0.1", port });
  const pipes: Promise<unknown>[] = [];
  const accepting = (async () => {
    for await (const client of proxy) {
      const server = await Deno.connect({
        hostname: target.hostname,
        port: Number(target.port) || 5432,
      });
      pipes.push(
        client.readable.pipeTo(server.writable).catch(() => {}),
        server.readable.pipeTo(client.writable).catch(() => {}),
      );
    }
  })();
  try {
    const [, pids] = await listenersOf(() => bus.connect());
    assert.equal(bus.state, "ready");
    await terminate(pids);
    await until(
      () => gaps.length === 1,
      "the gap report after the retried connect",
    );
    const topic = uniqueTopic("retry");
    const inbox = new Inbox();
    await bus.subscribe(topic, inbox.handler);
    await bus.publish(topic, makeEvent(topic));
    await inbox.until(1);
  } finally {
    await bus.close();
    proxy.close();
    await accepting.catch(() => {});
    await Promise.all(pipes);
  }
});

test("PostgresEventBus: credentials never appear in errors or String(bus)", async () => {
  const secret = "pw-" + crypto.randomUUID();
  const bus = new PostgresEventBus({
    connectionString: `postgres://app:${secret}@127.0.0.1:1/db`,
  });
  assert.doesNotMatch(String(bus), new RegExp(secret));
  await assert.rejects(
    bus.connect(),
    (e: unknown) =>
      e instanceof EventBusError && e.code === "CONNECTION_FAILED" &&
      !String(e.message).includes(secret) &&
      !String((e.cause as Error)?.message).includes(secret),
  );
  await bus.close();
  assert.throws(
    () => new PostgresEventBus({ connectionString: `mysql://u:${secret}@h` }),
    (e: unknown) => e instanceof TypeError && !e.message.includes(secret),
  );
});

test("PostgresEventBus: works with the longest channel prefix", async () => {
  const { bus } = await connected({ channelPrefix: "P".repeat(40) });
  const topic = uniqueTopic("longprefix");
  const exact = new Inbox(), pattern = new Inbox();
  await bus.subscribe(topic, exact.handler);
  await bus.subscribe("p", pattern.handler, `${topic}*`);
  await bus.publish(topic, makeEvent(topic, { n: 1 }));
  await exact.until(1);
  await pattern.until(1);
  await bus.close();
});

test("PostgresEventBus: notificationQueueUsage() reads the queue", async () => {
  const { bus } = await connected();
  const usage = await bus.notificationQueueUsage();
  assert.ok(usage >= 0 && usage <= 1);
  await bus.close();
});

test("PostgresEventBus: a pattern two buses share is notified once an event, alone or in a batch", async () => {
  const prefix = `pat_${crypto.randomUUID().slice(0, 8)}`;
  const buses = await Promise.all(
    [1, 2, 3].map(() => connected({ channelPrefix: prefix })),
  );
  const [a, b, publisher] = buses.map(({ bus }) => bus) as [
    PostgresEventBus,
    PostgresEventBus,
    PostgresEventBus,
  ];
  const raw = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    const inboxes = [new Inbox(), new Inbox()];
    await a.subscribe("p", inboxes[0]!.handler, "shared:*");
    await b.subscribe("p", inboxes[1]!.handler, "shared:*");
    const rows = await raw`select channel from ${raw(`${prefix}_patterns`)}`;
    assert.equal(rows.length, 2, "one row per owner");
    assert.equal(rows[0]!.channel, rows[1]!.channel, "one channel");
    let notified = 0;
    await raw.listen(rows[0]!.channel as string, () => void notified++);
    for (const n of [1, 2]) {
      await publisher.publish("shared:x", makeEvent("shared:x", { n }));
    }
    await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) =>
          publisher.publish("shared:y", makeEvent("shared:y", { n: i })),
      ),
    );
    for (const inbox of inboxes) await inbox.until(22);
    for (let i = 0; i < 100 && notified < 22; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(notified, 22);
    for (const inbox of inboxes) assert.equal(inbox.events.length, 22);
  } finally {
    await Promise.all(buses.map(({ bus }) => bus.close()));
    await raw.end();
    await withSql((sql) =>
      sql`drop table if exists ${sql(`${prefix}_patterns`)}, ${
        sql(`${prefix}_payloads`)
      }`
    );
  }
});

test("PostgresEventBus: a pattern is notified only for topics it matches; with none live, each event is one notification", async () => {
  const prefix = `pat_${crypto.randomUUID().slice(0, 8)}`;
  const { bus } = await connected({ channelPrefix: prefix });
  const counts = new Map<string, number>();
  const raw = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    const inbox = new Inbox();
    const sub = await bus.subscribe("p", inbox.handler, "orders:*:paid");
    // The pattern's channel, as the bus names it; listened to raw.
    const channel =
      (await raw`select channel from ${raw(`${prefix}_patterns`)}`)[0]!
        .channel as string;
    await raw.listen(
      channel,
      () => counts.set(channel, (counts.get(channel) ?? 0) + 1),
    );
    // A later event on another topic: once it is here, every notification
    // of the statements before it is too (commit order).
    let passed = 0;
    await raw.listen(postgresChannel("barrier", prefix), () => void passed++);
    const barrier = async () => {
      const before = passed;
      await bus.publish("barrier", makeEvent("barrier"));
      for (let i = 0; i < 500 && passed === before; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    for (
      const topic of [
        "orders:1:paid",
        "orders:2:new",
        "users:1:paid",
        "orders:3:paid",
      ]
    ) {
      await bus.publish(topic, makeEvent(topic));
    }
    await inbox.until(2);
    await barrier();
    assert.deepEqual(inbox.events.map((e) => e.topic), [
      "orders:1:paid",
      "orders:3:paid",
    ]);
    assert.equal(
      counts.get(channel),
      2,
      "only matching topics reach the channel",
    );
    await sub.cancel();
    const live = await raw`select count(*)::int as n from ${
      raw(`${prefix}_patterns`)
    }`;
    assert.equal(live[0]!.n, 0, "cancel() ends the pattern's row");
    await bus.publish("orders:4:paid", makeEvent("orders:4:paid"));
    await bus.publish("orders:5:paid", makeEvent("orders:5:paid"));
    await barrier();
    assert.equal(
      counts.get(channel),
      2,
      "no pattern live: the topic channel only",
    );
  } finally {
    await bus.close();
    await raw.end();
    await withSql((sql) =>
      sql`drop table if exists ${sql(`${prefix}_patterns`)}, ${
        sql(`${prefix}_payloads`)
      }`
    );
  }
});

test("PostgresEventBus: a pattern subscription gets every event published after subscribe() resolved, while another bus publishes", async () => {
  const prefix = `race_${crypto.randomUUID().slice(0, 8)}`;
  const { bus: publisher } = await connected({ channelPrefix: prefix });
  const { bus: subscriber } = await connected({ channelPrefix: prefix });
  try {
    const calledAt: number[] = [];
    let stop = false;
    const stream = (async () => {
      for (let n = 0; !stop && n < 5000; n++) {
        const topic = `race:${n % 7}`;
        calledAt[n] = performance.now();
        await publisher.publish(topic, makeEvent(topic, { n }));
      }
    })();
    await new Promise((r) => setTimeout(r, 50));
    const inbox = new Inbox();
    await subscriber.subscribe("race", inbox.handler, "race:*");
    const subscribedAt = performance.now();
    await new Promise((r) => setTimeout(r, 150));
    stop = true;
    await stream;
    const last = calledAt.length - 1;
    const first = calledAt.findIndex((t) => t > subscribedAt);
    assert.ok(
      first > 0 && last > first,
      "published on both sides of subscribe()",
    );
    await inbox.until(0);
    for (
      let i = 0;
      i < 200 && !inbox.events.some((e) => e.payload.n === last);
      i++
    ) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const got = new Set(inbox.events.map((e) => e.payload.n as number));
    const missing = [];
    for (let n = first; n <= last; n++) if (!got.has(n)) missing.push(n);
    assert.deepEqual(missing, []);
  } finally {
    await publisher.close();
    await subscriber.close();
    await withSql((sql) =>
      sql`drop table if exists ${sql(`${prefix}_patterns`)}, ${
        sql(`${prefix}_payloads`)
      }`
    );
  }
});

/**
 * A bus in a child process with one pattern subscription; `lines` gets
 * "ready", then each event's `n`, and "gap" for each gap it reports.
 */
function patternChild(prefix: string, pattern: string, heartbeatMs: number) {
  const options = {
    connectionString: DATABASE_URL,
    channelPrefix: prefix,
    heartbeatMs,
  };
  const code = `
    import { PostgresEventBus } from ${
    JSON.stringify(new URL("../postgres.ts", import.meta.url).href)
  };
    const bus = new PostgresEventBus({ ...${JSON.stringify(options)},
      onError: () => {}, onGap: () => console.log("gap") });
    await bus.connect();
    await bus.subscribe("all", (e) => console.log(String(e.payload.n)), ${
    JSON.stringify(pattern)
  });
    console.log("ready");
    await new Promise(() => setInterval(() => {}, 1000));`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
  }).spawn();
  const got: string[] = [];
  const reading = (async () => {
    for await (const line of lines(child.stdout)) got.push(line);
  })();
  return {
    child,
    lines: got,
    async stop(): Promise<void> {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
      await reading;
    },
  };
}

/** Resolves true once `what()` holds, false after `ms`. */
async function eventually(what: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!what() && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return what();
}

const dropTables = (prefix: string) =>
  withSql((sql) =>
    sql`drop table if exists ${sql(`${prefix}_patterns`)}, ${
      sql(`${prefix}_payloads`)
    }`
  );

test("PostgresEventBus: a crashed process's patterns stop counting when their lease runs out", async () => {
  const prefix = `crash_${crypto.randomUUID().slice(0, 8)}`;
  const heartbeatMs = 200; // lease: 6 heartbeats
  const peer = patternChild(prefix, "crash:*", heartbeatMs);
  const live = () =>
    withSql(async (sql) =>
      Number(
        (await sql`select count(*) as n from ${
          sql(`${prefix}_patterns`)
        } where expires_at > now()`)[0]!.n,
      )
    );
  try {
    assert.ok(await eventually(() => peer.lines.includes("ready"), 10_000));
    await new Promise((r) => setTimeout(r, 3 * heartbeatMs));
    assert.equal(await live(), 1, "renewed while the process lives");
    peer.child.kill("SIGKILL");
    await peer.child.status;
    const killedAt = Date.now();
    let n = await live();
    while (n > 0 && Date.now() - killedAt < 6 * heartbeatMs + 1000) {
      await new Promise((r) => setTimeout(r, 50));
      n = await live();
    }
    assert.equal(n, 0);
    assert.ok(Date.now() - killedAt <= 6 * heartbeatMs + 1000);
  } finally {
    await peer.stop();
    await dropTables(prefix);
  }
});

test("PostgresEventBus: a pattern subscription whose lease lapsed (process paused) comes back, with a gap", async () => {
  const prefix = `lapse_${crypto.randomUUID().slice(0, 8)}`;
  const heartbeatMs = 200; // lease: 6 heartbeats
  const peer = patternChild(prefix, "lapse:*", heartbeatMs);
  // A publisher whose cleanup deletes expired pattern rows every 100 ms.
  const { bus } = await connected({
    channelPrefix: prefix,
    largePayloadTtlMs: 200,
  });
  const seen = peer.lines;
  try {
    assert.ok(await eventually(() => seen.includes("ready"), 10_000));
    await bus.publish("lapse:1", makeEvent("lapse:1", { n: 1 }));
    assert.ok(await eventually(() => seen.includes("1"), 5000), "first");
    peer.child.kill("SIGSTOP"); // past the lease: deleted as expired
    await new Promise((r) => setTimeout(r, 6 * heartbeatMs + 1000));
    peer.child.kill("SIGCONT");
    // The child notices at its next heartbeat, restores, reports a gap.
    let n = 2;
    const back = await eventually(() => {
      const topic = `lapse:${n}`;
      void bus.publish(topic, makeEvent(topic, { n: n++ }));
      return seen.some((line) => Number(line) >= 2);
    }, 5000);
    assert.ok(back, `pattern events again after the pause: ${seen}`);
    assert.ok(seen.includes("gap"), "the pause is reported as a gap");
  } finally {
    await peer.stop();
    await bus.close();
    await dropTables(prefix);
  }
});

test("PostgresEventBus: a pattern of thousands of bytes works as on the other backends", async () => {
  const { bus } = await connected();
  try {
    const stem = `long:${"漢".repeat(3000)}`;
    const inbox = new Inbox();
    await bus.subscribe("long", inbox.handler, `${stem}*`);
    await bus.publish(`${stem}:x`, makeEvent(`${stem}:x`, { n: 1 }));
    assert.equal((await inbox.until(1))[0]!.payload.n, 1);
  } finally {
    await bus.close();
  }
});

test("PostgresEventBus: two processes exchange events both ways, with a pattern", async () => {
  const { bus } = await connected();
  const ns = uniqueTopic("proc");
  const inbox = new Inbox();
  await bus.subscribe(`${ns}:pong`, inbox.handler);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./_peer.ts", import.meta.url).pathname,
      "postgres",
      DATABASE_URL,
      `${ns}:ping:*`,
      `${ns}:pong`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  assert.equal((await reader.read()).value?.trim(), "ready");
  await bus.publish(`${ns}:ping:1`, makeEvent(`${ns}:ping:1`, { n: 41 }));
  const [reply] = await inbox.until(1);
  assert.equal(reply!.payload.n, 42);
  assert.equal(reply!.payload.from, `${ns}:ping:1`);
  await reader.cancel();
  assert.equal((await child.status).code, 0);
  await bus.close();
});
