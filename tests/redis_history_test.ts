// History on Redis, against throwaway servers (tests/_redis_server.ts):
// reconnect replay and a server restarted without its data.

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { type Delivery, type Event, EventBusError, type Gap } from "../mod.ts";
import { RedisEventBus, type RedisEventBusOptions } from "../redis.ts";
import { makeEvent, uniqueTopic } from "./conformance.ts";
import { startRedis } from "./_redis_server.ts";

/** What a subscription got, and the gaps, in the order they came. */
class Timeline {
  readonly seen: (number | "gap")[] = [];
  readonly positions: string[] = [];
  readonly handler = (event: Event, delivery: Delivery): void => {
    this.seen.push(event.payload.n as number);
    this.positions.push(delivery.position!);
  };
  readonly gap = (_gap: Gap): void => void this.seen.push("gap");

  async until(done: () => boolean, ms = 10_000): Promise<void> {
    for (const end = Date.now() + ms; !done();) {
      if (Date.now() > end) {
        throw new Error(`Timed out; have ${this.seen.length} entries`);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function withBus(
  url: string,
  options: Partial<RedisEventBusOptions>,
): Promise<RedisEventBus> {
  const bus = new RedisEventBus({
    url,
    heartbeatMs: 200,
    maxReconnectDelayMs: 100,
    history: {},
    onError: () => {},
    ...options,
  });
  await bus.connect();
  return bus;
}

Deno.test("RedisEventBus history: the subscriber connection killed mid-stream → every event once, in order, no gap", async () => {
  await using server = await startRedis();
  const gaps: Gap[] = [];
  const errors: unknown[] = [];
  const bus = await withBus(server.url, {
    onGap: (gap) => void gaps.push(gap),
    onError: (error) => void errors.push(error),
  });
  const topic = uniqueTopic("kill");
  const exact = new Timeline(), pattern = new Timeline();
  await bus.subscribe(topic, exact.handler);
  await bus.subscribe("label", pattern.handler, { pattern: `${topic}*` });
  const admin = new Redis(server.url);
  try {
    const total = 600;
    for (let n = 1; n <= total; n++) {
      await bus.publish(topic, makeEvent(topic, { n })).catch(() => {});
      if (n === 200) await admin.client("KILL", "TYPE", "pubsub");
    }
    await exact.until(() => exact.seen.length >= total);
    await pattern.until(() => pattern.seen.length >= total);
    assert.deepEqual(exact.seen, range(1, total));
    assert.deepEqual(pattern.seen, range(1, total));
    assert.deepEqual(gaps, []);
    assert.ok(errors.length >= 1, "the lost connection was reported");
  } finally {
    admin.disconnect();
    await bus.close();
  }
});

Deno.test("RedisEventBus history: a server restarted without its data → a lost gap before anything newer, then delivery goes on", async () => {
  await using server = await startRedis();
  const timeline = new Timeline();
  const bus = await withBus(server.url, { onGap: timeline.gap });
  const topic = uniqueTopic("restart");
  await bus.subscribe(topic, timeline.handler);
  for (const n of [1, 2, 3]) await bus.publish(topic, makeEvent(topic, { n }));
  await timeline.until(() => timeline.seen.length === 3);
  await server.stop();
  await server.start();
  try {
    await timeline.until(() => timeline.seen.includes("gap"));
    await timeline.until(() => bus.state === "ready");
    for (const n of [4, 5]) await bus.publish(topic, makeEvent(topic, { n }));
    await timeline.until(() => timeline.seen.length === 6);
    assert.deepEqual(timeline.seen, [1, 2, 3, "gap", 4, 5]);
    // A new epoch: the old positions are not this log's.
    const [before, after] = [timeline.positions[2]!, timeline.positions[3]!];
    assert.notEqual(before.slice(0, 8), after.slice(0, 8));
  } finally {
    await bus.close();
  }
});

Deno.test("RedisEventBus history: a position from before a restart without data → a lost gap, then the oldest event kept", async () => {
  await using server = await startRedis();
  const timeline = new Timeline();
  const bus = await withBus(server.url, { onGap: timeline.gap });
  const topic = uniqueTopic("epoch");
  try {
    await bus.subscribe(topic, timeline.handler);
    await bus.publish(topic, makeEvent(topic, { n: 1 }));
    await timeline.until(() => timeline.seen.length === 1);
    const saved = timeline.positions[0]!;
    await server.stop();
    await server.start();
    await timeline.until(() =>
      bus.state === "ready" && timeline.seen.length === 2
    );
    await bus.publish(topic, makeEvent(topic, { n: 2 }));
    const resumed = new Timeline();
    await bus.subscribe(topic, resumed.handler, { from: saved });
    await resumed.until(() => resumed.seen.length === 1);
    assert.deepEqual(resumed.seen, [2]);
    assert.deepEqual(timeline.seen.filter((x) => x === "gap").length, 2);
  } finally {
    await bus.close();
  }
});

Deno.test("RedisEventBus history: the connection lost before the first live event → only events after subscribe() are delivered", async () => {
  await using server = await startRedis();
  const gaps: Gap[] = [];
  const bus = await withBus(server.url, {
    onGap: (gap) => void gaps.push(gap),
  });
  const topic = uniqueTopic("head");
  const admin = new Redis(server.url);
  try {
    for (let n = 1; n <= 3; n++) {
      await bus.publish(topic, makeEvent(topic, { n }));
    }
    const got = new Timeline();
    await bus.subscribe(topic, got.handler);
    await admin.client("KILL", "TYPE", "pubsub");
    await bus.publish(topic, makeEvent(topic, { n: 4 })).catch(() => {});
    await got.until(() => got.seen.length >= 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(got.seen, [4]);
    assert.deepEqual(gaps, []);
  } finally {
    admin.disconnect();
    await bus.close();
  }
});

Deno.test("RedisEventBus history: once events not in the log arrive (a publisher without history), a lost connection is a gap too", async () => {
  await using server = await startRedis();
  const gaps: Gap[] = [];
  const bus = await withBus(server.url, {
    onGap: (gap) => void gaps.push(gap),
  });
  const plain = new RedisEventBus({ url: server.url });
  await plain.connect();
  const topic = uniqueTopic("unlogged");
  const seen = new Timeline();
  await bus.subscribe(
    topic,
    (event) => void seen.seen.push(event.payload.n as number),
  );
  const admin = new Redis(server.url);
  try {
    // Logged events only: a lost connection is replayed, no gap.
    await bus.publish(topic, makeEvent(topic, { n: 1 }));
    await seen.until(() => seen.seen.length === 1);
    await admin.client("KILL", "TYPE", "pubsub");
    await bus.publish(topic, makeEvent(topic, { n: 2 })).catch(() => {});
    await seen.until(() => seen.seen.length === 2);
    assert.equal(gaps.length, 0);
    // An event not in the log: the next outage may lose such events.
    await plain.publish(topic, makeEvent(topic, { n: 3 }));
    await seen.until(() => seen.seen.length === 3);
    await admin.client("KILL", "TYPE", "pubsub");
    await seen.until(() => gaps.length === 1);
    const [gap] = gaps as Gap[];
    assert.equal(gap!.lost, undefined, "may have been lost, not surely");
  } finally {
    admin.disconnect();
    await plain.close();
    await bus.close();
  }
});

Deno.test("RedisEventBus history: a subscription made on an empty log, away while it is trimmed → a lost gap, then the oldest event kept (Redis 7.0 records no trim itself)", async () => {
  await using server = await startRedis();
  const timeline = new Timeline();
  const bus = await withBus(server.url, {
    onGap: timeline.gap,
    history: { maxEvents: 10 },
  });
  const topic = uniqueTopic("empty");
  const admin = new Redis(server.url);
  try {
    await bus.subscribe(topic, timeline.handler);
    // The subscriber connection cannot come back (a password now); the
    // publishing one, signed in already, goes on.
    await admin.config("SET", "requirepass", "away");
    await admin.client("KILL", "TYPE", "pubsub");
    const total = 400;
    await Promise.all(
      range(1, total).map((n) => bus.publish(topic, makeEvent(topic, { n }))),
    );
    await admin.config("SET", "requirepass", "");
    await timeline.until(() => timeline.seen.at(-1) === total);
    const [gap, oldest] = timeline.seen;
    assert.equal(gap, "gap");
    assert.ok((oldest as number) > 1, `event ${oldest} should be trimmed`);
    assert.deepEqual(timeline.seen.slice(1), range(oldest as number, total));
  } finally {
    admin.disconnect();
    await bus.close();
  }
});

Deno.test("RedisEventBus history: a quiet topic, away while only other topics' events were trimmed → no gap", async () => {
  await using server = await startRedis();
  const quiet = new Timeline(), busy = new Timeline();
  const gaps: Gap[] = [];
  const bus = await withBus(server.url, {
    onGap: (gap) => void gaps.push(gap),
    history: { maxEvents: 10 },
  });
  const [a, b] = [uniqueTopic("quiet"), uniqueTopic("busy")];
  const admin = new Redis(server.url);
  try {
    await bus.subscribe(a, quiet.handler);
    await bus.subscribe(b, busy.handler);
    await bus.publish(a, makeEvent(a, { n: 1 }));
    await quiet.until(() => quiet.seen.length === 1);
    // The log rolls over: the quiet topic's event is trimmed.
    for (let n = 1; n <= 400; n++) await bus.publish(b, makeEvent(b, { n }));
    await busy.until(() => busy.seen.length === 400);
    await admin.client("KILL", "TYPE", "pubsub");
    for (let n = 401; n <= 403; n++) {
      await bus.publish(b, makeEvent(b, { n })).catch(() => {});
    }
    await busy.until(() => busy.seen.length === 403);
    await bus.publish(a, makeEvent(a, { n: 2 }));
    await quiet.until(() => quiet.seen.length === 2);
    assert.deepEqual(quiet.seen, [1, 2]);
    assert.deepEqual(busy.seen, range(1, 403));
    assert.deepEqual(gaps, []);
  } finally {
    admin.disconnect();
    await bus.close();
  }
});

Deno.test("RedisEventBus history: a quiet topic alone on its bus, away after other topics' events were trimmed → no gap (heartbeats move its place)", async () => {
  await using server = await startRedis();
  const quiet = new Timeline();
  const gaps: Gap[] = [];
  const bus = await withBus(server.url, {
    onGap: (gap) => void gaps.push(gap),
    history: { maxEvents: 10 },
  });
  const [a, b] = [uniqueTopic("alone"), uniqueTopic("others")];
  const admin = new Redis(server.url);
  try {
    await bus.subscribe(a, quiet.handler);
    await bus.publish(a, makeEvent(a, { n: 1 }));
    await quiet.until(() => quiet.seen.length === 1);
    // Events no subscription of this bus wants roll the log over.
    for (let n = 1; n <= 400; n++) await bus.publish(b, makeEvent(b, { n }));
    // Heartbeats (every 200 ms): one reads the head, a later one proves it.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await admin.client("KILL", "TYPE", "pubsub");
    await bus.publish(a, makeEvent(a, { n: 2 })).catch(() => {});
    await quiet.until(() => quiet.seen.length === 2);
    assert.deepEqual(quiet.seen, [1, 2]);
    assert.deepEqual(gaps, []);
  } finally {
    admin.disconnect();
    await bus.close();
  }
});

Deno.test("RedisEventBus: the publishing script flushed from the server (SCRIPT FLUSH) → the next publishes are sent again in order, none refused", async () => {
  await using server = await startRedis();
  const admin = new Redis(server.url);
  for (const history of [true, false]) {
    const bus = history
      ? await withBus(server.url, {})
      : new RedisEventBus({ url: server.url, onError: () => {} });
    if (!history) await bus.connect();
    const topic = uniqueTopic("noscript");
    const got = new Timeline();
    await bus.subscribe(
      topic,
      (event) => void got.seen.push(event.payload.n as number),
    );
    try {
      await bus.publish(topic, makeEvent(topic, { n: 1 }));
      await admin.script("FLUSH");
      await bus.publish(topic, makeEvent(topic, { n: 2 }));
      await admin.script("FLUSH");
      // 2,500 events in one tick: one send of three scripts, all NOSCRIPT.
      const total = 2502;
      await Promise.all(
        range(3, total).map((n) => bus.publish(topic, makeEvent(topic, { n }))),
      );
      await got.until(() => got.seen.length >= total);
      assert.deepEqual(got.seen, range(1, total));
      const stats = await admin.info("commandstats");
      assert.match(stats, /cmdstat_evalsha:calls=[1-9]/, "EVALSHA was used");
    } finally {
      await bus.close();
    }
  }
  admin.disconnect();
});

Deno.test("RedisEventBus history: events older than maxAgeMs are trimmed by the next publish, and the trim is marked", async () => {
  await using server = await startRedis();
  const admin = new Redis(server.url);
  const bus = await withBus(server.url, {
    channelPrefix: "aged",
    history: { maxAgeMs: 2000 },
  });
  const topic = uniqueTopic("aged");
  try {
    for (let n = 1; n <= 300; n++) {
      await bus.publish(topic, makeEvent(topic, { n }));
    }
    assert.equal(await admin.xlen("aged:log"), 300);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    await bus.publish(topic, makeEvent(topic, { n: 301 }));
    // MINID ~ removes whole nodes (100 entries) of older entries only.
    assert.ok(await admin.xlen("aged:log") <= 101);
    assert.notEqual(await admin.get("aged:log:trimmed"), null);
  } finally {
    admin.disconnect();
    await bus.close();
  }
});

Deno.test("RedisEventBus: the publishing script flushed, then a batch whose script call is followed by a PUBLISH that ran → the script's events rejected as not sent, the rest delivered in order", async () => {
  await using server = await startRedis();
  const admin = new Redis(server.url);
  const bus = new RedisEventBus({ url: server.url, onError: () => {} });
  await bus.connect();
  const topic = uniqueTopic("noscript-mid");
  const got = new Timeline();
  await bus.subscribe(
    topic,
    (event) => void got.seen.push(event.payload.n as number),
  );
  try {
    await admin.script("FLUSH");
    // One tick: a run of three (an EVALSHA, NOSCRIPT), then a 20 KB event
    // (a PUBLISH of its own, which runs): the run cannot go again after it.
    const sent = await Promise.allSettled([
      ...range(1, 3).map((n) => bus.publish(topic, makeEvent(topic, { n }))),
      bus.publish(topic, makeEvent(topic, { n: 4, pad: "x".repeat(20_000) })),
    ]);
    assert.deepEqual(sent.map((r) => r.status), [
      "rejected",
      "rejected",
      "rejected",
      "fulfilled",
    ]);
    for (const r of sent.slice(0, 3)) {
      const error = (r as PromiseRejectedResult).reason;
      assert.ok(error instanceof EventBusError);
      assert.equal(error.code, "PUBLISH_FAILED");
      assert.match(error.message, /NOSCRIPT.*the event was not sent/);
    }
    // The next batch goes out (EVALSHA fails, the tail is sent again).
    await Promise.all(
      range(5, 7).map((n) => bus.publish(topic, makeEvent(topic, { n }))),
    );
    await got.until(() => got.seen.length >= 4);
    assert.deepEqual(got.seen, [4, 5, 6, 7]);
  } finally {
    admin.disconnect();
    await bus.close();
  }
});

/**
 * Events 1–5 seen and the position of 5 saved; 6–15 published while away;
 * `change` done to the log by hand; `after` published; then a subscription
 * resumes from the saved position: what it got, gaps included.
 */
async function resumeAfterChange(
  url: string,
  prefix: string,
  change: (admin: Redis, stream: string, ids: string[]) => Promise<unknown>,
  after: number[],
): Promise<(number | "gap")[]> {
  const timeline = new Timeline();
  const bus = await withBus(url, {
    channelPrefix: prefix,
    onGap: timeline.gap,
    history: { maxEvents: 1000 },
  });
  const admin = new Redis(url);
  const topic = uniqueTopic(prefix);
  try {
    const first = new Timeline();
    const subscription = await bus.subscribe(topic, first.handler);
    for (const n of range(1, 15)) {
      await bus.publish(topic, makeEvent(topic, { n }));
      if (n === 5) await first.until(() => first.seen.length === 5);
      if (n === 5) await subscription.cancel();
    }
    const stream = `${prefix}:log`;
    const ids = (await admin.xrange(stream, "-", "+")).map(([id]) => id);
    await change(admin, stream, ids);
    for (const n of after) await bus.publish(topic, makeEvent(topic, { n }));
    await bus.subscribe(topic, timeline.handler, { from: first.positions[4]! });
    const last = after.at(-1);
    await timeline.until(() =>
      last === undefined
        ? timeline.seen.includes("gap")
        : timeline.seen.includes(last)
    );
    return timeline.seen;
  } finally {
    admin.disconnect();
    await bus.close();
  }
}

Deno.test("RedisEventBus history: entries removed by hand while away (DEL, XTRIM MAXLEN, XTRIM MINID, XDEL) → a lost gap before anything newer, then what is left", async () => {
  await using server = await startRedis();
  const url = server.url, after = range(16, 20);
  // The stream deleted, the epoch kept (so is a stream evicted).
  assert.deepEqual(
    await resumeAfterChange(url, "del", (r, s) => r.del(s), after),
    ["gap", ...after],
  );
  assert.deepEqual(
    await resumeAfterChange(
      url,
      "maxlen",
      (r, s) => r.xtrim(s, "MAXLEN", 3),
      after,
    ),
    ["gap", ...range(13, 20)],
  );
  assert.deepEqual(
    await resumeAfterChange(
      url,
      "minid",
      (r, s, ids) => r.xtrim(s, "MINID", ids[12]!),
      after,
    ),
    ["gap", ...range(13, 20)],
  );
  assert.deepEqual(
    await resumeAfterChange(
      url,
      "xdel",
      (r, s, ids) => r.xdel(s, ...ids.slice(5, 8)),
      after,
    ),
    ["gap", ...range(9, 20)],
  );
  // The position's own entry the oldest kept: it does not come again.
  assert.deepEqual(
    await resumeAfterChange(
      url,
      "own",
      async (r, s, ids) => {
        await r.xtrim(s, "MINID", ids[4]!);
        await r.xdel(s, ...ids.slice(5, 8));
      },
      after,
    ),
    ["gap", ...range(9, 20)],
  );
  // The newest entries deleted, nothing published since.
  assert.deepEqual(
    await resumeAfterChange(
      url,
      "tail",
      (r, s, ids) => r.xdel(s, ...ids.slice(12)),
      [],
    ),
    ["gap", ...range(6, 12)],
  );
});

Deno.test("RedisEventBus history: a position of an earlier version (no ordinal) is accepted: the events after it, no gap", async () => {
  await using server = await startRedis();
  const timeline = new Timeline(), resumed = new Timeline();
  const bus = await withBus(server.url, { onGap: timeline.gap });
  const topic = uniqueTopic("old");
  try {
    await bus.subscribe(topic, timeline.handler);
    for (const n of range(1, 4)) {
      await bus.publish(topic, makeEvent(topic, { n }));
    }
    await timeline.until(() => timeline.seen.length === 4);
    const old = timeline.positions[1]!.replace(/-\d+$/, "");
    await bus.subscribe(topic, resumed.handler, { from: old });
    await resumed.until(() => resumed.seen.length === 2);
    assert.deepEqual(resumed.seen, [3, 4]);
    assert.deepEqual(timeline.seen, [1, 2, 3, 4]);
  } finally {
    await bus.close();
  }
});

Deno.test("RedisEventBus history: on a quiet stream, events older than maxAgeMs are not replayed (MINID ~ keeps them): a lost gap", async () => {
  await using server = await startRedis();
  const timeline = new Timeline();
  const bus = await withBus(server.url, {
    onGap: timeline.gap,
    history: { maxAgeMs: 1000 },
  });
  const topic = uniqueTopic("age");
  try {
    const subscription = await bus.subscribe(topic, timeline.handler);
    for (const n of range(1, 10)) {
      await bus.publish(topic, makeEvent(topic, { n }));
    }
    await timeline.until(() => timeline.seen.length === 10);
    await subscription.cancel();
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const resumed = new Timeline(), earliest = new Timeline();
    await bus.subscribe(topic, resumed.handler, {
      from: timeline.positions[4]!,
    });
    await bus.subscribe(topic, earliest.handler, { from: "earliest" });
    await timeline.until(() => timeline.seen.includes("gap"));
    await bus.publish(topic, makeEvent(topic, { n: 11 }));
    await resumed.until(() => resumed.seen.length === 1);
    await earliest.until(() => earliest.seen.length === 1);
    assert.deepEqual([resumed.seen, earliest.seen], [[11], [11]]);
    assert.equal(timeline.seen.filter((x) => x === "gap").length, 1);
  } finally {
    await bus.close();
  }
});

Deno.test("RedisEventBus history: events the server refuses (a channel ACL) in the middle of a batch are not counted: resuming over them is no gap", async () => {
  await using server = await startRedis();
  const admin = new Redis(server.url);
  await admin.call(
    "ACL",
    "SETUSER",
    "app",
    "on",
    ">pw",
    "~*",
    "+@all",
    "resetchannels",
    "&refused:ok*",
  );
  admin.disconnect();
  const timeline = new Timeline();
  const url = server.url.replace("redis://", "redis://app:pw@");
  const bus = await withBus(url, {
    channelPrefix: "refused",
    onGap: timeline.gap,
  });
  try {
    const first = new Timeline();
    const subscription = await bus.subscribe("ok", first.handler);
    await bus.publish("ok", makeEvent("ok", { n: 1 }));
    await first.until(() => first.seen.length === 1);
    await subscription.cancel();
    const outcomes = await Promise.allSettled(
      [2, 0, 3, 0, 4].map((n) =>
        bus.publish(
          n === 0 ? "no" : "ok",
          makeEvent(n === 0 ? "no" : "ok", { n }),
        )
      ),
    );
    assert.deepEqual(
      outcomes.map((outcome) => outcome.status),
      ["fulfilled", "rejected", "fulfilled", "rejected", "fulfilled"],
    );
    await bus.subscribe("ok", timeline.handler, { from: first.positions[0]! });
    await timeline.until(() => timeline.seen.length >= 3);
    await bus.publish("ok", makeEvent("ok", { n: 5 }));
    await timeline.until(() => timeline.seen.length >= 4);
    assert.deepEqual(timeline.seen, [2, 3, 4, 5]);
  } finally {
    await bus.close();
  }
});

Deno.test("RedisEventBus history: stream entries not written by a bus (a non-numeric or zero-led ordinal, other fields, fields swapped) are reported once and skipped, at the log's end and across catch-ups; the subscription stays, and a position handed out is a valid `from`", async () => {
  await using server = await startRedis();
  const errors: unknown[] = [];
  const timeline = new Timeline();
  const bus = await withBus(server.url, {
    onGap: timeline.gap,
    onError: (error) => void errors.push(error),
  });
  const admin = new Redis(server.url);
  try {
    const topic = uniqueTopic("fields");
    await bus.subscribe(topic, timeline.handler);
    await bus.publish(topic, makeEvent(topic, { n: 1 }));
    await timeline.until(() => timeline.seen.length === 1);
    const body = (n: number) => makeEvent(topic, { n }).toJSONString();
    const weird: string[][] = [
      ["e", body(2), "n", "abc"],
      ["e", body(3), "n", "01000"],
      ["x", "y", "z", "w"],
      ["n", "7", "e", body(4)],
    ];
    for (const fields of weird) {
      await admin.xadd("events:log", "*", ...fields);
      await admin.client("KILL", "TYPE", "pubsub");
      await timeline.until(() => bus.state === "ready");
    }
    await bus.publish(topic, makeEvent(topic, { n: 5 }));
    await timeline.until(() => timeline.seen.includes(5));
    // 2 and 3 decode (their ordinals are dropped); the other two do not.
    assert.deepEqual(timeline.seen.filter((n) => n !== "gap"), [1, 2, 3, 5]);
    const undecodable = errors.filter((error) =>
      /EventFormatError/.test(String(error))
    );
    assert.equal(undecodable.length, 2);
    assert.ok(
      !errors.some((error) =>
        /SUBSCRIBE_FAILED|Not a position/.test(String(error))
      ),
    );
    const resumed = new Timeline();
    await bus.subscribe(topic, resumed.handler, {
      from: timeline.positions[1]!,
    });
    await resumed.until(() => resumed.seen.includes(5));
    assert.deepEqual(resumed.seen.filter((n) => n !== "gap"), [3, 5]);
  } finally {
    admin.disconnect();
    await bus.close();
  }
});

Deno.test("RedisEventBus history: an epoch key written by hand (not 8 hex digits) or deleted starts a new epoch: a lost gap, then the log, and the subscription goes on", async () => {
  await using server = await startRedis();
  const errors: unknown[] = [];
  const timeline = new Timeline();
  const bus = await withBus(server.url, {
    onGap: timeline.gap,
    onError: (error) => void errors.push(error),
  });
  const admin = new Redis(server.url);
  try {
    const topic = uniqueTopic("epochkey");
    await bus.subscribe(topic, timeline.handler);
    let n = 0;
    for (const change of ["set", "del"]) {
      await bus.publish(topic, makeEvent(topic, { n: ++n }));
      await timeline.until(() => timeline.seen.includes(n));
      if (change === "set") await admin.set("events:log:epoch", "hello!");
      else await admin.del("events:log:epoch");
      const gaps = timeline.seen.filter((entry) => entry === "gap").length;
      await admin.client("KILL", "TYPE", "pubsub");
      await timeline.until(() =>
        timeline.seen.filter((entry) => entry === "gap").length > gaps
      );
      await bus.publish(topic, makeEvent(topic, { n: ++n }));
      await timeline.until(() => timeline.seen.includes(n));
    }
    // Each new epoch: a gap, then the log from its oldest entry again.
    assert.deepEqual(timeline.seen, [1, "gap", 1, 2, 3, "gap", 1, 2, 3, 4]);
    assert.ok(
      !errors.some((error) =>
        /SUBSCRIBE_FAILED|Not a position/.test(String(error))
      ),
    );
    assert.match(await admin.get("events:log:epoch") ?? "", /^[0-9a-f]{8}$/);
  } finally {
    admin.disconnect();
    await bus.close();
  }
});
