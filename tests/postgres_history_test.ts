// History on PostgreSQL, against a throwaway server (tests/faults/
// _postgres_server.ts): transactions that commit out of id order while the
// listener is away, and transactions left open elsewhere.

import assert from "node:assert/strict";
import postgres from "postgres";
import {
  type Delivery,
  type Event,
  EventFormatError,
  type Gap,
} from "../mod.ts";
import { PostgresEventBus, type PostgresEventBusOptions } from "../postgres.ts";
import { makeEvent, uniqueTopic } from "./conformance.ts";
import {
  findPostgres,
  initCluster,
  type PostgresCluster,
  type PostgresServer,
} from "./faults/_postgres_server.ts";

const found = await findPostgres();
let cluster: PostgresCluster | undefined;
if ("missing" in found) {
  console.warn(`Skipping the PostgreSQL history tests: ${found.missing}`);
} else {
  cluster = await initCluster(found.bindir);
  const made = cluster;
  globalThis.addEventListener("unload", () => made.remove());
}

const test = (name: string, fn: (server: PostgresServer) => Promise<void>) =>
  Deno.test({
    name,
    ignore: cluster === undefined,
    fn: async () => {
      const server = await cluster!.start();
      try {
        await fn(server);
      } finally {
        await server.stop();
      }
    },
  });

class Received {
  readonly seen: unknown[] = [];
  readonly gaps: Gap[] = [];
  readonly handler = (event: Event, _delivery: Delivery): void =>
    void this.seen.push(event.payload.n);

  async untilSeen(n: unknown): Promise<void> {
    for (const end = Date.now() + 10_000; !this.seen.includes(n);) {
      if (Date.now() > end) {
        throw new Error(`Timed out: ${JSON.stringify(this.seen)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async until(count: number, ms = 10_000): Promise<void> {
    for (const end = Date.now() + ms; this.seen.length < count;) {
      if (Date.now() > end) {
        throw new Error(`Timed out: ${JSON.stringify(this.seen)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

async function historyBus(
  url: string,
  received: Received,
  history: { maxEvents?: number } = {},
): Promise<PostgresEventBus> {
  const bus = new PostgresEventBus({
    connectionString: url,
    history,
    heartbeatMs: 200,
    maxReconnectDelayMs: 100,
    onGap: (gap) => void received.gaps.push(gap),
    onError: () => {},
  });
  await bus.connect();
  return bus;
}

const killListener = (server: PostgresServer) =>
  server.psql(
    "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'dataknobs-events-listener'",
  );

test("PostgresEventBus history: two transactions committed out of id order while the listener is away are both replayed, once", async (server) => {
  const received = new Received();
  const bus = await historyBus(server.url, received);
  const sql = postgres(server.url, { max: 2, onnotice: () => {} });
  try {
    const topic = uniqueTopic("order");
    await bus.subscribe(topic, received.handler);
    await bus.publish(topic, makeEvent(topic, { n: "before" }));
    await received.until(1);
    // A takes the smaller transaction id and log id, B the larger.
    const a = await sql.reserve(), b = await sql.reserve();
    await a`begin`;
    await bus.publish(topic, makeEvent(topic, { n: "A" }), { sql: a });
    await b`begin`;
    await bus.publish(topic, makeEvent(topic, { n: "B" }), { sql: b });
    await killListener(server);
    await b`commit`;
    await a`commit`;
    a.release();
    b.release();
    await received.until(3);
    await bus.publish(topic, makeEvent(topic, { n: "after" }));
    await received.until(4);
    assert.deepEqual(received.seen.slice(0, 1), ["before"]);
    assert.deepEqual(new Set(received.seen.slice(1, 3)), new Set(["A", "B"]));
    assert.deepEqual(received.seen.slice(3), ["after"]);
    assert.deepEqual(received.gaps, []);
  } finally {
    await sql.end();
    await bus.close();
  }
});

test("PostgresEventBus history: a transaction left open (here and in another database) delays neither live delivery nor the replay after a lost connection", async (server) => {
  await server.psql("create database elsewhere");
  const received = new Received();
  const bus = await historyBus(server.url, received);
  const here = postgres(server.url, { max: 1, onnotice: () => {} });
  const there = postgres(server.url.replace(/postgres$/, "elsewhere"), {
    max: 1,
    onnotice: () => {},
  });
  try {
    const topic = uniqueTopic("open");
    await bus.subscribe(topic, received.handler);
    const [x, y] = [await here.reserve(), await there.reserve()];
    for (const open of [x, y]) {
      await open`begin`;
      await open`select pg_current_xact_id()`; // takes a transaction id
    }
    for (const n of [1, 2, 3]) {
      await bus.publish(topic, makeEvent(topic, { n }));
    }
    await received.until(3);
    await killListener(server);
    for (const n of [4, 5, 6]) {
      await bus.publish(topic, makeEvent(topic, { n })).catch(() => {});
    }
    await received.until(6);
    assert.deepEqual(received.seen, [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(received.gaps, []);
    for (const open of [x, y]) {
      await open`rollback`;
      open.release();
    }
  } finally {
    await Promise.all([here.end(), there.end()]);
    await bus.close();
  }
});

test("PostgresEventBus history: a replay is in log order where ids gain a digit (one transaction's ids 1 to 12), across pages", async (server) => {
  const received = new Received();
  // The default heartbeat: 2,500 publishes at once hold the publishing
  // connection longer than the 200 ms one of historyBus (a false loss).
  const bus = await busWith(server.url, received);
  const sql = postgres(server.url, { max: 1, onnotice: () => {} });
  try {
    const topic = uniqueTopic("digits");
    const numbers = Array.from({ length: 12 }, (_, i) => i + 1);
    await sql.begin(async (tx) => {
      for (const n of numbers) {
        await bus.publish(topic, makeEvent(topic, { n }), { sql: tx });
      }
    });
    // 2,500 more in their own transactions: the replay reads pages of 1,000.
    const more = Array.from({ length: 2500 }, (_, i) => i + 13);
    await Promise.all(
      more.map((n) => bus.publish(topic, makeEvent(topic, { n }))),
    );
    const replayed = new Received();
    await bus.subscribe(topic, replayed.handler, { from: "earliest" });
    await replayed.until(numbers.length + more.length);
    assert.deepEqual(replayed.seen, [...numbers, ...more]);
    assert.deepEqual(received.gaps, []);
  } finally {
    await sql.end();
    await bus.close();
  }
});

test("PostgresEventBus history: a new bus connects while a transaction that published stays open (no lock wait on the log's index)", async (server) => {
  const received = new Received();
  const bus = await historyBus(server.url, received);
  const raw = postgres(server.url, { max: 1, onnotice: () => {} });
  try {
    const open = await raw.reserve();
    await open`begin`;
    await bus.publish("open:tx", makeEvent("open:tx"), { sql: open });
    const late = new PostgresEventBus({
      connectionString: server.url,
      history: {},
      connectTimeoutMs: 3000,
    });
    await late.connect(); // waited for the open transaction before
    await late.publish("open:other", makeEvent("open:other"));
    await late.close();
    await open`rollback`;
    open.release();
  } finally {
    await raw.end();
    await bus.close();
  }
});

test("PostgresEventBus history: a channel prefix with capitals logs and replays", async (server) => {
  const bus = new PostgresEventBus({
    connectionString: server.url,
    channelPrefix: "MixedCase",
    history: {},
  });
  await bus.connect();
  try {
    await bus.publish("t", makeEvent("t", { n: 1 }));
    const received = new Received();
    await bus.subscribe("t", received.handler, { from: "earliest" });
    await received.until(1);
    assert.deepEqual(received.seen, [1]);
  } finally {
    await bus.close();
  }
});

test("PostgresEventBus history: a transaction that commits behind the pages a replay has read is delivered, though the replay then reads one written after it", async (server) => {
  const received = new Received();
  const bus = await historyBus(server.url, received);
  const sql = postgres(server.url, { max: 1, onnotice: () => {} });
  const late = await sql.reserve();
  try {
    const topic = uniqueTopic("behind");
    // A takes its transaction id before the backlog: it sorts before it.
    await late`begin`;
    await late`select pg_current_xact_id()`;
    const backlog = Array.from({ length: 1500 }, (_, i) => i + 1);
    await Promise.all(
      backlog.map((n) => bus.publish(topic, makeEvent(topic, { n }))),
    );
    // The replay hands over its first page (1,000), then waits for this
    // handler before reading the next.
    const gate = Promise.withResolvers<void>();
    const handed = Promise.withResolvers<void>();
    const positions = new Map<unknown, string>();
    await bus.subscribe(topic, async (event, delivery) => {
      received.handler(event, delivery);
      positions.set(event.payload.n, delivery.position!);
      if (received.seen.length === 1) {
        handed.resolve();
        await gate.promise;
      }
    }, { from: "earliest" });
    await handed.promise;
    // A commits into the range read; C, written after, is on the next page.
    const live = new Received();
    await bus.subscribe(topic, live.handler);
    await bus.publish(topic, makeEvent(topic, { n: "A" }), { sql: late });
    await late`commit`;
    await bus.publish(topic, makeEvent(topic, { n: "C" }));
    await live.until(2);
    gate.resolve();
    await received.until(backlog.length + 2);
    assert.deepEqual(received.seen.slice(0, backlog.length), backlog);
    assert.deepEqual(
      new Set(received.seen.slice(backlog.length)),
      new Set(["A", "C"]),
    );
    await bus.publish(topic, makeEvent(topic, { n: "after" }));
    await received.until(backlog.length + 3);
    assert.equal(received.seen.length, backlog.length + 3);
    assert.deepEqual(received.gaps, []);
    // C (page 2) came before A (held live, released after the pass): a
    // handler that saved C's position and crashed before A must get A when
    // it resumes from it.
    assert.deepEqual(received.seen.slice(backlog.length), ["C", "A", "after"]);
    const resumed = new Received();
    await bus.subscribe(topic, resumed.handler, { from: positions.get("C")! });
    await resumed.until(2);
    assert.ok(resumed.seen.includes("A"), JSON.stringify(resumed.seen));
  } finally {
    late.release();
    await sql.end();
    await bus.close();
  }
});

// A bus with history and its own options, its gaps kept in `received`.
async function busWith(
  url: string,
  received: Received,
  history: { maxEvents?: number; maxAgeMs?: number } = {},
  options: Partial<PostgresEventBusOptions> = {},
): Promise<PostgresEventBus> {
  const bus = new PostgresEventBus({
    ...options,
    connectionString: url,
    history,
    onGap: (gap) => void received.gaps.push(gap),
    onError: () => {},
  });
  await bus.connect();
  return bus;
}

// The positions the log holds for `topic`, by payload `n` (a replay from
// the earliest entry, `count` of them).
async function positionsOf(
  bus: PostgresEventBus,
  topic: string,
  count: number,
): Promise<Map<unknown, string>> {
  const positions = new Map<unknown, string>();
  const sub = await bus.subscribe(topic, (event, delivery) => {
    positions.set(event.payload.n, delivery.position!);
  }, { from: "earliest" });
  for (const end = Date.now() + 10_000; positions.size < count;) {
    if (Date.now() > end) throw new Error(`Timed out: ${[...positions]}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await sub.cancel();
  return positions;
}

const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

const publishAll = async (
  bus: PostgresEventBus,
  topic: string,
  ns: unknown[],
) => {
  for (const n of ns) await bus.publish(topic, makeEvent(topic, { n }));
};

test("PostgresEventBus history: a position saved before a failover to a standby that lagged is of another epoch: a lost gap, then the promoted server's log from its oldest entry (transaction ids are reused there)", async (server) => {
  const received = new Received();
  const topic = uniqueTopic("failover");
  let bus = await busWith(server.url, received);
  await publishAll(bus, topic, [1, 2]);
  const standby = await cluster!.backup(); // has 1 and 2, not what follows
  await publishAll(bus, topic, [3, 4]);
  const saved = (await positionsOf(bus, topic, 4)).get(4)!;
  await bus.close();
  await server.stop();
  const promoted = await standby.start();
  try {
    await promoted.psql("select pg_promote()");
    bus = await busWith(promoted.url, received);
    await publishAll(bus, topic, [5, 6]);
    const resumed = new Received();
    await bus.subscribe(topic, resumed.handler, { from: saved });
    await resumed.until(4);
    assert.deepEqual(resumed.seen, [1, 2, 5, 6]);
    assert.deepEqual(received.gaps.map((gap) => gap.lost), [true]);
    await bus.close();
  } finally {
    await promoted.stop();
  }
});

test("PostgresEventBus history: a position from before a server crash reads as lost (the crash may have lost the newest commits, made with synchronous_commit off, and then hands their transaction ids out again): a gap, then the log from its oldest entry; a clean restart keeps every position", async (server) => {
  const received = new Received();
  const topic = uniqueTopic("crash");
  const live = new Map<unknown, string>();
  const opened = async () => {
    const bus = await busWith(server.url, received);
    await bus.subscribe(topic, (event, delivery) => {
      live.set(event.payload.n, delivery.position!);
    });
    return bus;
  };
  let bus = await opened();
  await publishAll(bus, topic, [1, 2]);
  await bus.close();
  await server.stop();
  await server.start();
  bus = await opened();
  await publishAll(bus, topic, [3]);
  const clean = new Received();
  await bus.subscribe(topic, clean.handler, { from: live.get(1)! });
  await clean.until(2);
  assert.deepEqual(clean.seen, [2, 3]);
  assert.equal(received.gaps.length, 0);
  // Crashed right after a publish that returned before its WAL was written.
  await publishAll(bus, topic, [4]);
  for (const end = Date.now() + 10_000; !live.has(4);) {
    assert.ok(Date.now() < end, "4 was not delivered live");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await bus.close();
  await server.crash();
  await server.start();
  bus = await opened();
  await publishAll(bus, topic, [5, 6]);
  const resumed = new Received();
  await bus.subscribe(topic, resumed.handler, { from: live.get(4)! });
  await resumed.until(4);
  await publishAll(bus, topic, [7]);
  await resumed.untilSeen(7);
  assert.deepEqual(received.gaps.map((gap) => gap.lost), [true]);
  // 3 and 4 may have been lost with the crash (with synchronous_commit off,
  // a commit reaches the WAL within 600 ms); the rest is there, in order.
  assert.deepEqual(
    resumed.seen.filter((n) => n !== 3 && n !== 4),
    [1, 2, 5, 6, 7],
  );
  await bus.close();
});

test('PostgresEventBus history: with synchronousCommit "on", every publish that resolved survives a server crash (this server\'s own default is off)', async (server) => {
  const received = new Received();
  const topic = uniqueTopic("durable");
  let bus = await busWith(server.url, received, {}, {
    synchronousCommit: "on",
  });
  await Promise.all(
    range(1, 20).map((n) => bus.publish(topic, makeEvent(topic, { n }))),
  );
  await server.crash();
  await bus.close();
  await server.start();
  bus = await busWith(server.url, received);
  try {
    assert.deepEqual(
      [...(await positionsOf(bus, topic, 20)).keys()],
      range(1, 20),
    );
  } finally {
    await bus.close();
  }
});

test("PostgresEventBus history: a TRUNCATE of the log reads as lost to a position from before it (a gap), then delivery resumes from what is logged after", async (server) => {
  const received = new Received();
  const bus = await busWith(server.url, received);
  try {
    const topic = uniqueTopic("truncate");
    await publishAll(bus, topic, [1, 2, 3]);
    const saved = (await positionsOf(bus, topic, 3)).get(1)!;
    await server.psql("truncate events_log");
    await publishAll(bus, topic, [4]);
    const resumed = new Received();
    await bus.subscribe(topic, resumed.handler, { from: saved });
    await resumed.until(1);
    assert.deepEqual(resumed.seen, [4]);
    assert.deepEqual(received.gaps.map((gap) => gap.lost), [true]);
  } finally {
    await bus.close();
  }
});

test("PostgresEventBus history: after a DROP of the log, the next publish re-creates it and is refused (publish again), the one after succeeds; a position from before reads as lost (a gap)", async (server) => {
  const received = new Received();
  const bus = await busWith(server.url, received);
  try {
    const topic = uniqueTopic("drop");
    await publishAll(bus, topic, [1]);
    const saved = (await positionsOf(bus, topic, 1)).get(1)!;
    await server.psql("drop table events_log");
    await assert.rejects(
      publishAll(bus, topic, [2]),
      /was missing.*made it again: publish it again/,
    );
    await publishAll(bus, topic, [3]);
    const resumed = new Received();
    await bus.subscribe(topic, resumed.handler, { from: saved });
    await resumed.until(1);
    assert.deepEqual(resumed.seen, [3]);
    assert.deepEqual(received.gaps.map((gap) => gap.lost), [true]);
  } finally {
    await bus.close();
  }
});

test("PostgresEventBus history: a saved position whose own entry was trimmed (by age, by count) is no gap when nothing after it was, also with a transaction open elsewhere while it was written (not one that published)", async (server) => {
  const received = new Received();
  const raw = postgres(server.url, { max: 1, onnotice: () => {} });
  const aged = await busWith(server.url, received, { maxAgeMs: 300 });
  try {
    const topic = uniqueTopic("aged");
    await publishAll(aged, topic, [1]);
    // 2's floor is before its own transaction id (1 is not between).
    const open = await raw.reserve();
    await open`begin`;
    await open`select pg_current_xact_id()`;
    await publishAll(aged, topic, [2]);
    await open`commit`;
    open.release();
    const saved = (await positionsOf(aged, topic, 2)).get(2)!;
    const [, xid, , floor] = saved.split("-");
    assert.ok(BigInt(floor!) < BigInt(xid!), saved);
    await new Promise((resolve) => setTimeout(resolve, 400));
    await positionsOf(aged, topic, 0); // a read: the retention trims 1 and 2
    const resumed = new Received();
    await aged.subscribe(topic, resumed.handler, { from: saved });
    await publishAll(aged, topic, [3]);
    await resumed.until(1);
    assert.deepEqual(resumed.seen, [3]);
    assert.deepEqual(received.gaps, []);
  } finally {
    await aged.close();
  }
  const counted = await busWith(server.url, received, { maxEvents: 2 });
  try {
    const topic = uniqueTopic("counted");
    await publishAll(counted, topic, [1, 2]);
    const saved = (await positionsOf(counted, topic, 2)).get(1)!;
    await publishAll(counted, topic, [3]);
    const resumed = new Received();
    await counted.subscribe(topic, resumed.handler, { from: saved });
    await resumed.until(2);
    assert.deepEqual(resumed.seen, [2, 3]);
    assert.deepEqual(received.gaps, []);
  } finally {
    await counted.close();
    await raw.end();
  }
});

test("PostgresEventBus history: a trimmed saved position whose window held a transaction that committed after it reads as lost (it may not have been delivered)", async (server) => {
  const received = new Received();
  const raw = postgres(server.url, { max: 1, onnotice: () => {} });
  const bus = await busWith(server.url, received, { maxAgeMs: 300 });
  try {
    const topic = uniqueTopic("window");
    const late = await raw.reserve();
    await late`begin`;
    await bus.publish(topic, makeEvent(topic, { n: "late" }), { sql: late });
    await publishAll(bus, topic, [1]);
    await late`commit`;
    late.release();
    const saved = (await positionsOf(bus, topic, 2)).get(1)!;
    await new Promise((resolve) => setTimeout(resolve, 400));
    const resumed = new Received();
    await bus.subscribe(topic, resumed.handler, { from: saved });
    await publishAll(bus, topic, [2]);
    await resumed.until(1);
    assert.deepEqual(resumed.seen, [2]);
    assert.deepEqual(received.gaps.map((gap) => gap.lost), [true]);
  } finally {
    await bus.close();
    await raw.end();
  }
});

test("PostgresEventBus history: maxEvents keeps that many events, though rolled-back publishes used up ids", async (server) => {
  const received = new Received();
  const raw = postgres(server.url, { max: 1, onnotice: () => {} });
  const bus = await busWith(server.url, received, { maxEvents: 5 });
  try {
    const topic = uniqueTopic("rolled");
    await publishAll(bus, topic, [1, 2, 3, 4, 5]);
    for (let k = 0; k < 10; k++) {
      const tx = await raw.reserve();
      await tx`begin`;
      await bus.publish(topic, makeEvent(topic, { n: "never" }), { sql: tx });
      await tx`rollback`;
      tx.release();
    }
    await publishAll(bus, topic, [6]);
    const replayed = new Received();
    await bus.subscribe(topic, replayed.handler, { from: "earliest" });
    await replayed.until(5);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(replayed.seen, [2, 3, 4, 5, 6]);
    assert.deepEqual(received.gaps, []);
  } finally {
    await bus.close();
    await raw.end();
  }
});

test("PostgresEventBus history: a DELETE by hand reads as lost to a position before what it removed, and the count of maxEvents stays exact", async (server) => {
  const received = new Received();
  const bus = await busWith(server.url, received, { maxEvents: 3 });
  try {
    const topic = uniqueTopic("deleted");
    await publishAll(bus, topic, [1, 2, 3]);
    const saved = (await positionsOf(bus, topic, 3)).get(1)!;
    await server.psql(
      `delete from events_log where body like '%"n":2%'`,
    );
    const resumed = new Received();
    await bus.subscribe(topic, resumed.handler, { from: saved });
    await resumed.until(1);
    assert.deepEqual(resumed.seen, [3]);
    assert.deepEqual(received.gaps.map((gap) => gap.lost), [true]);
    await publishAll(bus, topic, [4, 5]);
    const replayed = new Received();
    await bus.subscribe(topic, replayed.handler, { from: "earliest" });
    await replayed.until(3);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(replayed.seen, [3, 4, 5]);
  } finally {
    await bus.close();
  }
});

test("PostgresEventBus history: live events held during a replay, whose entries are removed before the replay reads them, are not delivered after newer ones (a lost gap), also with a transaction open elsewhere", async (server) => {
  const received = new Received();
  const raw = postgres(server.url, { max: 1, onnotice: () => {} });
  const bus = await busWith(server.url, received);
  // Open all along: the horizon of every read stays before it.
  const open = await raw.reserve();
  try {
    await open`begin`;
    await open`select pg_current_xact_id()`;
    const topic = uniqueTopic("overtaken");
    await publishAll(bus, topic, range(1, 1100));
    const replayed = new Received();
    const gate = Promise.withResolvers<void>();
    await bus.subscribe(topic, async (event, delivery) => {
      replayed.handler(event, delivery);
      if (event.payload.n === 1) await gate.promise;
    }, { from: "earliest" });
    // While the replay's first page (1 to 1,000) waits for its handler,
    // 1,101 to 1,200 come live (held), then 1 to 1,150 are removed (as
    // retention would): the next read finds them gone.
    const live = new Received();
    await bus.subscribe(topic, live.handler);
    await publishAll(bus, topic, range(1101, 1200));
    await live.until(100);
    await server.psql(
      `delete from events_log where id in (select id from events_log
        where body like '%${topic}%' order by xid, id limit 1150)`,
    );
    gate.resolve();
    for (const end = Date.now() + 10_000; !replayed.seen.includes(1200);) {
      if (Date.now() > end) throw new Error(`Timed out: ${replayed.seen}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    // The first page ends at or before 1,000 (the log holds earlier tests'
    // entries too); then 1,151 on, and nothing after.
    const cut = replayed.seen.indexOf(1151);
    assert.ok(cut > 0 && cut <= 1000, `1,151 at ${cut}`);
    assert.deepEqual(replayed.seen, [...range(1, cut), ...range(1151, 1200)]);
    assert.deepEqual(received.gaps.map((gap) => gap.lost), [true]);
  } finally {
    await open`rollback`;
    open.release();
    await bus.close();
    await raw.end();
  }
});

test("PostgresEventBus history: a publish in a transaction that finds the log dropped fails, has it made again, and the next transaction publishes", async (server) => {
  const received = new Received();
  const bus = await busWith(server.url, received);
  const raw = postgres(server.url, { max: 1, onnotice: () => {} });
  try {
    const topic = uniqueTopic("txdrop");
    await publishAll(bus, topic, [1]);
    await server.psql("drop table events_log");
    await assert.rejects(
      raw.begin((tx) =>
        bus.publish(topic, makeEvent(topic, { n: 2 }), { sql: tx })
      ),
      /does not exist.*made what was missing again: retry the transaction/,
    );
    await raw.begin((tx) =>
      bus.publish(topic, makeEvent(topic, { n: 3 }), { sql: tx })
    );
    const replayed = new Received();
    await bus.subscribe(topic, replayed.handler, { from: "earliest" });
    await replayed.until(1);
    assert.deepEqual(replayed.seen, [3]);
  } finally {
    await raw.end();
    await bus.close();
  }
});

test("PostgresEventBus history: an entry that does not decode (a newer peer's event type) is reported once and skipped, and the replay reads on past its page (it ends the first page here); one at the log's end is not reported again by later catch-ups", async (server) => {
  const received = new Received();
  const errors: unknown[] = [];
  const bus = new PostgresEventBus({
    connectionString: server.url,
    history: {},
    heartbeatMs: 200,
    maxReconnectDelayMs: 100,
    onError: (error) => void errors.push(error),
    onGap: (gap) => void received.gaps.push(gap),
  });
  await bus.connect();
  const bad = (n: string) =>
    server.psql(
      `insert into events_log (floor, body) values ('1', '${
        makeEvent("t", { n }).toJSONString()
          .replace('"type":"created"', '"type":"archived"')
      }')`,
    );
  try {
    const topic = uniqueTopic("undecodable");
    await Promise.all(
      range(1, 999).map((n) => bus.publish(topic, makeEvent(topic, { n }))),
    );
    await bad("first");
    await Promise.all(
      range(1000, 2500).map((n) => bus.publish(topic, makeEvent(topic, { n }))),
    );
    await bus.subscribe(topic, received.handler, { from: "earliest" });
    await received.until(2500);
    assert.deepEqual(received.seen, range(1, 2500));
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]), /type/);
    await bad("last");
    for (const n of [2501, 2502]) {
      await killListener(server);
      await publishAll(bus, topic, [n]);
      await received.until(n);
    }
    assert.deepEqual(received.seen, range(1, 2502));
    assert.deepEqual(received.gaps, []);
    assert.equal(
      errors.filter((error) => error instanceof EventFormatError).length,
      2,
    );
  } finally {
    await bus.close();
  }
});

// The boot reset as a crash resets it (is_called false), with no crash.
const resetBoot = (server: PostgresServer) =>
  server.psql("select setval('events_log_boot', 1, false)");

test("PostgresEventBus history: with the log's boot reset (as after a crash), a transaction that publishes first fails at once and holds no one up: other buses publish and subscribe meanwhile, the bus sets the boot, and the transaction run again commits", async (server) => {
  const received = new Received();
  const bus = await busWith(server.url, received);
  const other = await busWith(server.url, new Received());
  const raw = postgres(server.url, { max: 2, onnotice: () => {} });
  const open = await raw.reserve();
  try {
    const topic = uniqueTopic("bootreset");
    await publishAll(bus, topic, [1]);
    await resetBoot(server);
    await open`begin`;
    await assert.rejects(
      bus.publish(topic, makeEvent(topic, { n: 2 }), { sql: open }),
      /has no boot.*made what was missing again: retry the transaction/,
    );
    // The failed transaction stays open: nothing waits for it.
    const live = new Received();
    await other.subscribe(topic, live.handler);
    await publishAll(other, topic, [3]);
    await live.until(1);
    await open`rollback`;
    await raw.begin((tx) =>
      bus.publish(topic, makeEvent(topic, { n: 4 }), { sql: tx })
    );
    await live.until(2);
    assert.deepEqual(live.seen, [3, 4]);
  } finally {
    open.release();
    await raw.end();
    await other.close();
    await bus.close();
  }
});

test("PostgresEventBus history: a REPEATABLE READ transaction whose snapshot was taken before the bus set a reset boot publishes and commits (a sequence is read outside snapshots)", async (server) => {
  const received = new Received();
  const bus = await busWith(server.url, received);
  const raw = postgres(server.url, { max: 1, onnotice: () => {} });
  try {
    const topic = uniqueTopic("bootrr");
    await bus.subscribe(topic, received.handler);
    await resetBoot(server);
    await raw.begin("isolation level repeatable read", async (tx) => {
      await tx`select 1`;
      // The bus's own publish finds the boot reset, sets it, is refused.
      await assert.rejects(publishAll(bus, topic, [1]), /publish it again/);
      await bus.publish(topic, makeEvent(topic, { n: 2 }), { sql: tx });
    });
    await received.until(1);
    assert.deepEqual(received.seen, [2]);
  } finally {
    await raw.end();
    await bus.close();
  }
});

test("PostgresEventBus history: a bus connecting to a log that lacks its boot (an earlier version's) while a transaction that published stays open makes only what is missing, and waits for no lock", async (server) => {
  const received = new Received();
  const first = await busWith(server.url, received);
  await first.close();
  await server.psql(
    "drop sequence events_log_boot; drop function events_log_no_boot",
  );
  const raw = postgres(server.url, { max: 1, onnotice: () => {} });
  const open = await raw.reserve();
  try {
    await open`begin`;
    await open`insert into events_log (floor, body) values ('1', '{}')`;
    const bus = new PostgresEventBus({
      connectionString: server.url,
      history: {},
      connectTimeoutMs: 2000,
      onError: () => {},
    });
    await bus.connect();
    const topic = uniqueTopic("upgrade");
    await bus.subscribe(topic, received.handler);
    await publishAll(bus, topic, [1]);
    await received.until(1);
    await bus.close();
  } finally {
    await open`rollback`;
    open.release();
    await raw.end();
  }
});

test("PostgresEventBus history: a boot set by hand to any bigint (negative, 19 digits) still names positions: live delivery goes on, and a saved position reads as another epoch (a lost gap)", async (server) => {
  const received = new Received();
  const bus = await busWith(server.url, received);
  try {
    const topic = uniqueTopic("boothand");
    await bus.subscribe(topic, received.handler);
    await publishAll(bus, topic, [1]);
    const saved = (await positionsOf(bus, topic, 1)).get(1)!;
    for (const [value, n] of [["-5", 2], ["9223372036854775807", 3]] as const) {
      await server.psql(
        `alter sequence events_log_boot minvalue -10; select setval('events_log_boot', ${value})`,
      );
      await publishAll(bus, topic, [n]);
      await received.until(n);
    }
    assert.deepEqual(received.seen, [1, 2, 3]);
    const resumed = new Received();
    await bus.subscribe(topic, resumed.handler, { from: saved });
    await resumed.until(3);
    assert.deepEqual(received.gaps.map((gap) => gap.lost), [true]);
  } finally {
    await bus.close();
  }
});

test("PostgresEventBus: a role without CREATE on the schema, given the privileges the README names on tables made beforehand, connects, publishes and subscribes (with history and without)", async (server) => {
  const made = await busWith(server.url, new Received());
  await made.close();
  await server.psql(`create role bus login;
    grant select, insert, update, delete
      on events_payloads, events_patterns, events_log, events_log_state to bus;
    grant usage on sequence events_log_id_seq to bus;
    grant select, update on sequence events_log_boot to bus;`);
  const url = server.url.replace("postgres@", "bus@");
  for (const history of [undefined, {}]) {
    const received = new Received();
    const bus = new PostgresEventBus({
      connectionString: url,
      ...(history && { history }),
      onError: () => {},
    });
    try {
      await bus.connect();
      const topic = uniqueTopic("nocreate");
      await bus.subscribe(topic, received.handler);
      await bus.subscribe("nocreate.*", received.handler, {
        pattern: "nocreate.*",
      });
      await publishAll(bus, topic, [1]);
      await received.until(1);
    } finally {
      await bus.close();
    }
  }
});

test("PostgresEventBus history: a transactional publish by a role with only the privileges the README names, and another search_path, commits and is delivered (small and large events)", async (server) => {
  const received = new Received();
  const bus = await busWith(server.url, received);
  await server.psql(`create role app login;
    create schema app_own authorization app;
    alter role app set search_path = app_own;
    grant select on events_patterns to app;
    grant insert on events_payloads, events_log to app;
    grant usage on sequence events_log_id_seq to app;
    grant select on events_log_boot to app;`);
  const app = postgres(server.url.replace("postgres@", "app@"), {
    max: 1,
    onnotice: () => {},
  });
  try {
    const topic = uniqueTopic("txrole");
    await bus.subscribe(topic, received.handler);
    await app.begin(async (tx) => {
      await bus.publish(topic, makeEvent(topic, { n: 1 }), { sql: tx });
      await bus.publish(
        topic,
        makeEvent(topic, { n: 2, blob: "x".repeat(9000) }),
        { sql: tx },
      );
    });
    await received.until(2);
    assert.deepEqual(received.seen, [1, 2]);
  } finally {
    await app.end();
    await bus.close();
  }
});

test("PostgresEventBus history: a log dropped and made again by another bus while a subscriber listens: it takes the new log's events live, and after a lost connection replays from them without a gap", async (server) => {
  const received = new Received();
  const bus = await historyBus(server.url, received);
  const other = await busWith(server.url, new Received());
  try {
    const topic = uniqueTopic("remade");
    await bus.subscribe(topic, received.handler);
    await publishAll(bus, topic, [1]);
    await received.until(1);
    await server.psql("drop table events_log");
    // Refused once (the tables made again), as any publish that finds its
    // table dropped.
    await assert.rejects(publishAll(other, topic, [2]), /publish it again/);
    await publishAll(other, topic, [2]);
    await received.until(2);
    await killListener(server);
    await publishAll(other, topic, [3]);
    await received.until(3);
    assert.deepEqual(received.seen, [1, 2, 3]);
    assert.deepEqual(received.gaps, []);
  } finally {
    await other.close();
    await bus.close();
  }
});

test("PostgresEventBus history: a position with a transaction id the server has not handed out (a server that lost its latest commits, or a copy) reads as lost, and so does one of an earlier version's format", async (server) => {
  const received = new Received();
  const bus = await busWith(server.url, received);
  try {
    const topic = uniqueTopic("future");
    await publishAll(bus, topic, [1]);
    const [epoch, xid] = (await positionsOf(bus, topic, 1)).get(1)!.split("-");
    const ahead = BigInt(xid!) + 1000n;
    const resumed = new Received();
    await bus.subscribe(topic, resumed.handler, {
      from: `${epoch}-${ahead}-1-${ahead}`,
    });
    await resumed.until(1);
    assert.deepEqual(resumed.seen, [1]);
    assert.deepEqual(received.gaps.map((gap) => gap.lost), [true]);
    // A position of an earlier version (the epoch was the table's oid
    // alone): accepted, and of another epoch.
    const older = new Received();
    await bus.subscribe(topic, older.handler, {
      from: `${epoch!.split(".")[0]}-${xid}-1-${xid}`,
    });
    await older.until(1);
    assert.deepEqual(older.seen, [1]);
    assert.deepEqual(received.gaps.map((gap) => gap.lost), [true, true]);
  } finally {
    await bus.close();
  }
});

test("PostgresEventBus history: a quiet topic, away while only other topics' events were trimmed → no gap", async (server) => {
  const quiet = new Received(), busy = new Received();
  const bus = await historyBus(server.url, quiet, { maxEvents: 10 });
  try {
    const [a, b] = [uniqueTopic("quiet"), uniqueTopic("busy")];
    await bus.subscribe(a, quiet.handler);
    await bus.subscribe(b, busy.handler);
    await bus.publish(a, makeEvent(a, { n: 1 }));
    await quiet.until(1);
    for (let n = 1; n <= 400; n++) await bus.publish(b, makeEvent(b, { n }));
    await busy.until(400);
    await killListener(server);
    for (let n = 401; n <= 403; n++) {
      await bus.publish(b, makeEvent(b, { n })).catch(() => {});
    }
    await busy.until(403);
    // The replay's read trimmed the log to its last 10 entries.
    await bus.publish(a, makeEvent(a, { n: 2 }));
    await quiet.until(2);
    assert.deepEqual(quiet.seen, [1, 2]);
    assert.equal(busy.seen.length, 403);
    assert.deepEqual(quiet.gaps, []);
  } finally {
    await bus.close();
  }
});
