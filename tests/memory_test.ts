import assert from "node:assert/strict";
import {
  createEventBus,
  type Delivery,
  Event,
  type EventBusError,
  EventType,
  type Gap,
  InMemoryEventBus,
  type MemoryConfig,
} from "../mod.ts";
import { conformance, Inbox, makeEvent, uniqueTopic } from "./conformance.ts";

conformance(
  "memory",
  (options) => createEventBus({ backend: "memory" }, options),
);

Deno.test("InMemoryEventBus.publish() resolves after async handlers finished", async () => {
  await using bus = new InMemoryEventBus();
  await bus.connect();
  const done: number[] = [];
  await bus.subscribe("t", async (e) => {
    await new Promise((r) => setTimeout(r, 5));
    done.push(e.payload.n as number);
  });
  await bus.publish("t", makeEvent("t", { n: 1 }));
  assert.deepEqual(done, [1]);
});

Deno.test("InMemoryEventBus passes the seed's pytest example", async () => {
  const bus = createEventBus({ backend: "memory" });
  await bus.connect();
  const received: Event[] = [];
  // deno-lint-ignore require-await
  await bus.subscribe("test", async (event) => {
    received.push(event);
  });
  await bus.publish(
    "test",
    new Event({
      type: EventType.CREATED,
      topic: "test",
      payload: { key: "value" },
    }),
  );
  assert.equal(received.length, 1);
  assert.equal(received[0]!.payload["key"], "value");
  await bus.close();
});

Deno.test("close() waits for in-flight handlers up to closeTimeoutMs, then drops and reports", async () => {
  const errors: unknown[] = [];
  const bus = new InMemoryEventBus({
    closeTimeoutMs: 20,
    onError: (e) => errors.push(e),
  });
  await bus.connect();
  const topic = uniqueTopic();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const inbox = new Inbox();
  await bus.subscribe(topic, async (e) => {
    inbox.handler(e);
    await gate;
  });
  const first = bus.publish(topic, makeEvent(topic, { n: 1 }));
  const second = bus.publish(topic, makeEvent(topic, { n: 2 }));
  await bus.close();
  await second; // released by the drop
  assert.equal(inbox.events.length, 1);
  assert.match(String((errors[0] as Error).message), /Dropped 1 queued event/);
  assert.equal((errors[0] as EventBusError).dropped, 1);
  release();
  await first;
  assert.equal(inbox.events.length, 1);
});

Deno.test("maxQueuedEvents drops and reports past the bound, others unaffected", async () => {
  const errors: unknown[] = [];
  await using bus = new InMemoryEventBus({
    maxQueuedEvents: 2,
    onError: (e) => errors.push(e),
  });
  await bus.connect();
  const topic = uniqueTopic();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const slow = new Inbox(), fast = new Inbox();
  await bus.subscribe(topic, async (e) => {
    slow.handler(e);
    await gate;
  });
  await bus.subscribe(topic, fast.handler);
  const sends = [1, 2, 3, 4].map((n) =>
    bus.publish(topic, makeEvent(topic, { n }))
  );
  assert.equal(fast.events.length, 4);
  assert.equal(errors.length, 1);
  assert.match(
    (errors[0] as Error).message,
    /Dropped event .* 2 events already wait/,
  );
  release();
  await Promise.all(sends);
  assert.deepEqual(slow.payloads, [1, 2, 3]);
});

Deno.test("a burst into a full queue is reported in two lines, not one per event", async () => {
  const errors: unknown[] = [];
  await using bus = new InMemoryEventBus({
    maxQueuedEvents: 10,
    onError: (e) => errors.push(e),
  });
  await bus.connect();
  const topic = uniqueTopic();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let handled = 0;
  await bus.subscribe(topic, async () => {
    await gate;
    handled++;
  });
  const sends = Array.from(
    { length: 1000 },
    (_, n) => bus.publish(topic, makeEvent(topic, { n })),
  );
  assert.equal(errors.length, 1, "the first drop, at once");
  release();
  await Promise.all(sends);
  await bus.close();
  assert.equal(handled, 11);
  assert.equal(errors.length, 2);
  assert.match(
    String(errors[1]),
    /Dropped 988 more event\(s\) for subscription .* while its queue was full \(maxQueuedEvents 10\)/,
  );
});

Deno.test("two handlers publishing to each other's topics do not deadlock", async () => {
  await using bus = new InMemoryEventBus();
  await bus.connect();
  const a = uniqueTopic("a"), b = uniqueTopic("b");
  const seen: string[] = [];
  await bus.subscribe(a, async (e) => {
    seen.push(`a${e.payload.n}`);
    if ((e.payload.n as number) < 4) {
      await bus.publish(b, makeEvent(b, { n: (e.payload.n as number) + 1 }));
    }
  });
  await bus.subscribe(b, async (e) => {
    seen.push(`b${e.payload.n}`);
    await Promise.resolve();
    await bus.publish(a, makeEvent(a, { n: (e.payload.n as number) + 1 }));
  });
  await bus.publish(a, makeEvent(a, { n: 0 }));
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(seen, ["a0", "b1", "a2", "b3", "a4"]);
});

Deno.test("close() from a handler after an await waits at most closeTimeoutMs", async () => {
  const bus = new InMemoryEventBus({ closeTimeoutMs: 30 });
  await bus.connect();
  const topic = uniqueTopic();
  let closed!: () => void;
  const done = new Promise<void>((r) => (closed = r));
  await bus.subscribe(topic, async () => {
    await Promise.resolve();
    await bus.close();
    closed();
  });
  void bus.publish(topic, makeEvent(topic));
  await done;
  assert.equal(bus.state, "closed");
});

Deno.test("events() with drop-oldest reports the event it dropped, the oldest", async () => {
  const errors: unknown[] = [];
  await using bus = new InMemoryEventBus({ onError: (e) => errors.push(e) });
  await bus.connect();
  const topic = uniqueTopic();
  await using it = bus.events(topic, {
    bufferSize: 3,
    overflow: "drop-oldest",
  });
  await bus.subscribe(topic, () => {}); // confirmed after the iterator's
  const events = Array.from({ length: 10 }, (_, n) => makeEvent(topic, { n }));
  for (const event of events) await bus.publish(topic, event);
  assert.match(
    String(errors[0]),
    new RegExp(`dropped event ${events[0]!.eventId}`),
  );
  const read = [];
  for (let i = 0; i < 3; i++) read.push((await it.next()).value!.payload.n);
  assert.deepEqual(read, [7, 8, 9]);
  assert.match(String(errors[1]), /dropped 6 more event/);
});

Deno.test("InMemoryEventBus history: delivery.position, live or replayed, is a string equal at each read, the delivery frozen, and it resumes as from", async () => {
  await using bus = new InMemoryEventBus({ history: {} });
  await bus.connect();
  const live: Delivery[] = [];
  await bus.subscribe("t", (_event, delivery) => void live.push(delivery));
  for (const n of [1, 2, 3]) await bus.publish("t", makeEvent("t", { n }));
  const replayed: Delivery[] = [];
  const inbox = new Inbox();
  await bus.subscribe("t", (event, delivery) => {
    replayed.push(delivery);
    inbox.handler(event);
  }, { from: "earliest" });
  await inbox.until(3);
  for (const delivery of [...live, ...replayed]) {
    const position = delivery.position;
    assert.equal(typeof position, "string");
    assert.equal(delivery.position, position);
    assert.ok(Object.isFrozen(delivery));
    assert.throws(() => {
      (delivery as { position?: string }).position = "x";
    }, TypeError);
    assert.equal(delivery.position, position);
  }
  assert.deepEqual(
    replayed.map((d) => d.position),
    live.map((d) => d.position),
  );
  assert.equal(new Set(live.map((d) => d.position)).size, 3);
  const resumed = new Inbox();
  await bus.subscribe("t", resumed.handler, { from: live[0]!.position! });
  await resumed.until(2);
  assert.deepEqual(resumed.payloads, [2, 3]);
});

Deno.test("InMemoryEventBus history: a position of another bus (a restarted process) is a lost gap, then the oldest event kept", async () => {
  const gaps: Gap[] = [];
  await using old = new InMemoryEventBus({ history: {} });
  await using bus = new InMemoryEventBus({
    history: { maxEvents: 2 },
    onGap: (gap) => void gaps.push(gap),
  });
  await Promise.all([old.connect(), bus.connect()]);
  let saved: string | undefined;
  await old.subscribe(
    "t",
    (_event, delivery) => void (saved = delivery.position),
  );
  await old.publish("t", makeEvent("t", { n: 0 }));
  for (const n of [1, 2, 3]) await bus.publish("t", makeEvent("t", { n }));
  const inbox = new Inbox();
  await bus.subscribe("t", inbox.handler, { from: saved! });
  await inbox.until(2);
  assert.deepEqual(inbox.payloads, [2, 3]);
  assert.equal(gaps.length, 1);
  assert.equal(gaps[0]!.lost, true);
  assert.equal(gaps[0]!.since.getTime(), 0);
});

Deno.test("InMemoryEventBus history: retention overtaking a replay after its first page is a lost gap, not a silent skip", async () => {
  const gaps: Gap[] = [];
  await using bus = new InMemoryEventBus({
    history: { maxEvents: 1500 },
    onGap: (gap) => void gaps.push(gap),
  });
  await bus.connect();
  for (let n = 1; n <= 1500; n++) await bus.publish("t", makeEvent("t", { n }));
  const inbox = new Inbox();
  await bus.subscribe("t", (event, delivery) => {
    inbox.handler(event);
    // Once the replay has read its first page (1,000 entries), other
    // publishes trim the log past where the next page starts.
    if (event.payload.n !== 1 || delivery.position === undefined) return;
    for (let i = 0; i < 3000; i++) {
      void bus.publish("other", makeEvent("other", { i }));
    }
  }, { from: "earliest" });
  await bus.publish("t", makeEvent("t", { n: 1501 }));
  await inbox.until(1001);
  const first = Array.from({ length: 1000 }, (_, i) => i + 1);
  assert.deepEqual(inbox.payloads, [...first, 1501]);
  assert.equal(gaps.length, 1);
  assert.equal(gaps[0]!.lost, true);
});

Deno.test("InMemoryEventBus history: a replay waits for an async handler instead of overflowing its queue (maxQueuedEvents)", async () => {
  const errors: unknown[] = [];
  await using bus = new InMemoryEventBus({
    history: {},
    maxQueuedEvents: 10,
    onError: (error) => void errors.push(error),
  });
  await bus.connect();
  for (let n = 1; n <= 2500; n++) await bus.publish("t", makeEvent("t", { n }));
  const inbox = new Inbox();
  await bus.subscribe("t", async (event) => {
    await Promise.resolve();
    inbox.handler(event);
  }, { from: "earliest" });
  await inbox.until(2500);
  assert.deepEqual(
    inbox.payloads,
    Array.from({ length: 2500 }, (_, i) => i + 1),
  );
  assert.deepEqual(errors, []);
});

Deno.test("InMemoryEventBus history: live events past maxQueuedEvents during a replay are read from the log: each once, in order, none dropped", async () => {
  const errors: unknown[] = [];
  await using bus = new InMemoryEventBus({
    history: {},
    maxQueuedEvents: 10,
    onError: (error) => void errors.push(error),
  });
  await bus.connect();
  for (let n = 1; n <= 100; n++) await bus.publish("t", makeEvent("t", { n }));
  const inbox = new Inbox();
  await bus.subscribe("t", async (event) => {
    await Promise.resolve();
    inbox.handler(event);
    // While the replay runs, 200 live events: more than the queue takes.
    if (event.payload.n === 1) {
      for (let n = 101; n <= 300; n++) {
        void bus.publish("t", makeEvent("t", { n }));
      }
    }
  }, { from: "earliest" });
  await inbox.until(300);
  assert.deepEqual(
    inbox.payloads,
    Array.from({ length: 300 }, (_, i) => i + 1),
  );
  assert.deepEqual(errors, []);
});

Deno.test("InMemoryEventBus history: a handler that publishes while the live events held during a replay are let through gets every event, in order", async () => {
  const errors: unknown[] = [];
  await using bus = new InMemoryEventBus({
    history: {},
    onError: (error) => void errors.push(error),
  });
  await bus.connect();
  for (let n = 1; n <= 3; n++) await bus.publish("t", makeEvent("t", { n }));
  const inbox = new Inbox();
  const publish = (n: number) => void bus.publish("t", makeEvent("t", { n }));
  await bus.subscribe("t", (event) => {
    inbox.handler(event);
    const n = event.payload.n;
    if (n === 1) [4, 5].forEach(publish); // held: the replay runs
    if (n === 4) publish(6); // while 5 is still held
  }, { from: "earliest" });
  await inbox.until(6);
  assert.deepEqual(inbox.payloads, [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(errors, []);
});

Deno.test("InMemoryEventBus history: close() stops a replay that waits for its handler: no handler call after it", async () => {
  const bus = new InMemoryEventBus({
    history: {},
    maxQueuedEvents: 10,
    closeTimeoutMs: 50,
    onError: () => {},
  });
  await bus.connect();
  for (let n = 1; n <= 2500; n++) await bus.publish("t", makeEvent("t", { n }));
  let calls = 0;
  await bus.subscribe("t", async () => {
    calls++;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }, { from: "earliest" });
  await new Promise((resolve) => setTimeout(resolve, 20));
  await bus.close();
  const after = calls;
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(calls, after);
  assert.ok(after < 2500);
});

Deno.test("InMemoryEventBus history: a bus left open does not keep the process alive (the timer of its log's window)", async () => {
  const mod = JSON.stringify(new URL("../mod.ts", import.meta.url).href);
  const code = `
    import { Event, InMemoryEventBus } from ${mod};
    const bus = new InMemoryEventBus({ history: {} });
    await bus.connect();
    await bus.publish("t", new Event({ type: "created", topic: "t" }));
    const published = performance.now();
    addEventListener("unload", () => console.log(performance.now() - published));
  `;
  const { success, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
  }).output();
  assert.ok(success);
  // Held by the timer, it would exit only once the window ends (1 s).
  const waited = Number(new TextDecoder().decode(stdout));
  assert.ok(waited < 1000, `exited ${waited} ms after its publish`);
});

Deno.test("InMemoryEventBus history: events older than maxAgeMs are dropped from the log", async () => {
  await using bus = new InMemoryEventBus({ history: { maxAgeMs: 20 } });
  await bus.connect();
  await bus.publish("t", makeEvent("t", { n: 1 }));
  await new Promise((resolve) => setTimeout(resolve, 40));
  await bus.publish("t", makeEvent("t", { n: 2 }));
  const inbox = new Inbox();
  await bus.subscribe("t", inbox.handler, { from: "earliest" });
  await inbox.until(1);
  assert.deepEqual(inbox.payloads, [2]);
});

Deno.test("InMemoryEventBus history: the log keeps the newest maxEvents events, in order, over many turns and in one", async () => {
  await using bus = new InMemoryEventBus({ history: { maxEvents: 37 } });
  await bus.connect();
  let n = 0;
  // Bursts of one turn (the log grows, then wraps), and turns of one event.
  for (const burst of [5, 40, 1, 1, 100, 3]) {
    await Promise.all(
      Array.from(
        { length: burst },
        () => bus.publish("t", makeEvent("t", { n: n++ })),
      ),
    );
    const inbox = new Inbox();
    const sub = await bus.subscribe("t", inbox.handler, { from: "earliest" });
    const kept = Math.min(n, 37);
    await inbox.until(kept);
    await sub.cancel();
    assert.deepEqual(
      inbox.payloads,
      Array.from({ length: kept }, (_, k) => n - kept + k),
    );
  }
});

Deno.test("InMemoryEventBus history option: bad values are refused", () => {
  assert.throws(
    () => new InMemoryEventBus({ history: { maxEvents: 0 } }),
    RangeError,
  );
  assert.throws(
    () => new InMemoryEventBus({ history: { maxAgeMs: -1 } }),
    RangeError,
  );
  // Past a century, PostgreSQL's now() − maxAgeMs would be out of range.
  assert.throws(
    () => new InMemoryEventBus({ history: { maxAgeMs: 3e14 } }),
    /from 1 to 3155760000000 \(a century\)/,
  );
  // @ts-expect-error: not an object
  assert.throws(() => new InMemoryEventBus({ history: true }), TypeError);
});

Deno.test("createEventBus() config key history: { max_events, max_age_ms } sets the retention; bad values are refused", async () => {
  await using bus = createEventBus({
    backend: "memory",
    history: { max_events: 2, max_age_ms: 60_000 },
  });
  await bus.connect();
  for (const n of [1, 2, 3]) await bus.publish("t", makeEvent("t", { n }));
  const inbox = new Inbox();
  await bus.subscribe("t", inbox.handler, { from: "earliest" });
  await inbox.until(2);
  assert.deepEqual(inbox.payloads, [2, 3]);
  const bad: unknown[] = [{ max_events: 0 }, { maxEvents: 5 }, [], 7];
  for (const history of bad) {
    assert.throws(
      () => createEventBus({ backend: "memory", history } as MemoryConfig),
      /"history" must be an object \{ max_events\?, max_age_ms\? \}/,
    );
  }
});

Deno.test("InMemoryEventBus: an unknown option key of subscribe, once or events throws, naming it and the keys there are", async () => {
  await using bus = new InMemoryEventBus({ history: {} });
  await bus.connect();
  const unknown = (key: string) =>
    new RegExp(`unknown option "${key}"; the options are: `);
  await assert.rejects(
    bus.subscribe("t", () => {}, { form: "earliest" } as never),
    unknown("form"),
  );
  await assert.rejects(
    bus.once("t", { from: "earliest" } as never),
    unknown("from"),
  );
  assert.throws(
    () => bus.events("t", { from: "earliest" } as never),
    unknown("from"),
  );
});
