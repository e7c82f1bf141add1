// The conformance suite: the definition of "works". Every backend runs it
// unchanged, through a factory that makes a new, unconnected bus.

import assert from "node:assert/strict";
import {
  type ConnectionState,
  type Delivery,
  Event,
  type EventBus,
  EventBusError,
  type EventBusOptions,
  EventType,
  type Gap,
  type Subscription,
} from "../mod.ts";

/** Makes a new, unconnected bus with the given options. */
export type BusFactory = (options: EventBusOptions) => EventBus;

/** A random name, so tests never see each other's events. */
export function uniqueTopic(label = "t"): string {
  return `${label}-${crypto.randomUUID().slice(0, 8)}`;
}

/** An event with a unique topic-compatible payload. */
export function makeEvent(
  topic: string,
  payload: Record<string, unknown> = {},
) {
  return new Event({ type: EventType.CREATED, topic, payload });
}

/** The default of `maxEventBytes`: 1 MiB. */
export const MAX_EVENT_BYTES = 1024 * 1024;

/** The UTF-8 length of an event's JSON wire text. */
export const wireBytes = (event: Event<unknown>): number =>
  new TextEncoder().encode(event.toJSONString()).length;

/**
 * An event on `topic` whose JSON wire text is exactly `bytes` UTF-8 bytes,
 * in 1-, 2-, 3- and 4-byte characters (so a count of UTF-16 units would be
 * wrong), plus a short `n` to tell events apart.
 */
export function eventOfBytes(topic: string, bytes: number, n = 0): Event {
  const make = (text: string) =>
    new Event({ type: EventType.CREATED, topic, payload: { n, text } });
  const room = bytes - wireBytes(make(""));
  if (room < 0) throw new RangeError(`no event of ${bytes} bytes`);
  const tenth = Math.floor(room / 10);
  const body = "😀".repeat(tenth / 4 | 0) + "€".repeat(tenth / 3 | 0) +
    "é".repeat(tenth / 2 | 0);
  const event = make(body + "x".repeat(bytes - wireBytes(make(body))));
  assert.equal(wireBytes(event), bytes);
  return event;
}

/** Collects events and lets a test await a count, with a deadline. */
export class Inbox {
  readonly events: Event[] = [];
  #waiters: { n: number; resolve: () => void }[] = [];

  readonly handler = (event: Event): void => {
    this.events.push(event);
    this.#waiters = this.#waiters.filter((w) => {
      if (this.events.length < w.n) return true;
      w.resolve();
      return false;
    });
  };

  /** Resolves once `n` events arrived; rejects after `ms`. */
  async until(n: number, ms = 10_000): Promise<Event[]> {
    if (this.events.length >= n) return this.events;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        this.#waiters.push({ n, resolve });
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `Timed out waiting for ${n} events, have ${this.events.length}`,
              ),
            ),
          ms,
        );
      });
    } finally {
      clearTimeout(timer);
    }
    return this.events;
  }

  get payloads(): unknown[] {
    return this.events.map((e) => e.payload.n ?? e.payload);
  }
}

/** A connected bus with everything its hooks reported. */
export interface Observed<B extends EventBus> {
  bus: B;
  errors: unknown[];
  gaps: Gap[];
  states: ConnectionState[];
}

/** Makes a bus with `make`, records its hooks, and connects it. */
export async function observed<B extends EventBus>(
  make: (options: EventBusOptions) => B,
): Promise<Observed<B>> {
  const errors: unknown[] = [];
  const gaps: Gap[] = [];
  const states: ConnectionState[] = [];
  const bus = make({
    onError: (e) => errors.push(e),
    onGap: (g) => gaps.push(g),
    onStateChange: (s) => states.push(s),
  });
  await bus.connect();
  return { bus, errors, gaps, states };
}

interface Harness {
  bus: EventBus;
  errors: [unknown, Event | null, Subscription | null][];
}

/** Registers the whole suite for one backend. */
export function conformance(name: string, factory: BusFactory): void {
  const open = async (options: EventBusOptions = {}): Promise<Harness> => {
    const errors: Harness["errors"] = [];
    const bus = factory({
      onError: (error, event, sub) => errors.push([error, event, sub]),
      ...options,
    });
    await bus.connect();
    return { bus, errors };
  };
  const test = (title: string, fn: (h: Harness) => Promise<void>) =>
    Deno.test(`${name}: ${title}`, async () => {
      const h = await open();
      try {
        await fn(h);
      } finally {
        await h.bus.close();
      }
    });

  test("publish() then subscribe() round trip keeps every field", async ({ bus }) => {
    const topic = uniqueTopic("roundtrip");
    const inbox = new Inbox();
    const sub = await bus.subscribe(topic, inbox.handler);
    assert.equal(sub.topic, topic);
    assert.equal(sub.pattern, null);
    assert.ok(sub.subscriptionId.length > 0);
    assert.ok(sub.createdAt instanceof Date);
    const sent = new Event({
      type: EventType.UPDATED,
      topic,
      payload: { bot_id: "b1", nested: { list: [1, 2.5, "x", null, true] } },
      timestamp: "2026-11-26T23:42:51.095270+00:00",
      source: "tests",
      correlationId: "corr-1",
      metadata: { traceparent: "00-abc", unicode: "naïve 😀" },
    });
    await bus.publish(topic, sent);
    const [got] = await inbox.until(1);
    assert.deepEqual(got!.toDict(), sent.toDict());
    assert.equal(got!.toDict().timestamp, "2026-11-26T23:42:51.095270+00:00");
  });

  test("subscribe() twice on one topic delivers to both", async ({ bus }) => {
    const topic = uniqueTopic();
    const a = new Inbox(), b = new Inbox(), c = new Inbox();
    for (const inbox of [a, b, c]) await bus.subscribe(topic, inbox.handler);
    await bus.publish(topic, makeEvent(topic, { n: 1 }));
    for (const inbox of [a, b, c]) {
      assert.deepEqual((await inbox.until(1)).length, 1);
    }
  });

  test("subscribe() receives its own topic only", async ({ bus }) => {
    const topic = uniqueTopic(), other = `${topic}x`;
    const inbox = new Inbox();
    await bus.subscribe(topic, inbox.handler);
    await bus.publish(other, makeEvent(other, { n: 0 }));
    await bus.publish(
      topic.slice(0, -1),
      makeEvent(topic.slice(0, -1), { n: 0 }),
    );
    await bus.publish(topic, makeEvent(topic, { n: 1 }));
    await inbox.until(1);
    await bus.publish(topic, makeEvent(topic, { n: 2 }));
    assert.deepEqual(await inbox.until(2).then(() => inbox.payloads), [1, 2]);
  });

  // pattern, topics that match, topics that do not (all under a namespace).
  const patternCases: [string, string[], string[]][] = [
    ["registry:*", ["registry:bots", "registry:bots:config", "registry:"], [
      "registr:x",
      "other:registry:bots",
    ]],
    ["*:created", ["bots:created", "a:b:created"], [
      "bots:created:x",
      "bots:updated",
    ]],
    ["job-?", ["job-1", "job-é", "job-😀"], ["job-", "job-12"]],
    ["shard-[abc]", ["shard-a", "shard-c"], ["shard-d", "shard-ab"]],
    ["shard-[!abc]", ["shard-d", "shard-]"], ["shard-a", "shard-"]],
    ["v[a-z]1", ["vq1", "vz1"], ["vA1", "v-1", "v11"]],
    ["lit\\*", ["lit\\x", "lit\\"], ["litx", "lit*"]],
    ["a[b", ["a[b"], ["ab", "a[c"]],
    ["[]]x", ["]x"], ["x", "]]x"]],
  ];
  for (const [pattern, hits, misses] of patternCases) {
    test(`subscribe() with pattern ${JSON.stringify(pattern)} matches as fnmatch does`, async ({ bus }) => {
      const ns = uniqueTopic("ns");
      const inbox = new Inbox();
      const sub = await bus.subscribe(
        `${ns}-label`,
        inbox.handler,
        `${ns}:${pattern}`,
      );
      assert.equal(sub.pattern, `${ns}:${pattern}`);
      const all = [...misses, ...hits];
      for (const t of all) {
        const topic = `${ns}:${t}`;
        await bus.publish(topic, makeEvent(topic, { n: t }));
      }
      const got = await inbox.until(hits.length);
      // A barrier: one more hit after everything, so late misses would show.
      const last = `${ns}:${hits[0]}`;
      await bus.publish(last, makeEvent(last, { n: "end" }));
      await inbox.until(hits.length + 1);
      assert.deepEqual(got.map((e) => e.payload.n), [...hits, "end"]);
    });
  }

  test("subscribe() without a pattern takes * [ and \\ literally", async ({ bus }) => {
    const ns = uniqueTopic("lit");
    const literal = `${ns}:*[a]\\`;
    const inbox = new Inbox();
    await bus.subscribe(literal, inbox.handler);
    const decoy = `${ns}:xa\\`;
    await bus.publish(decoy, makeEvent(decoy, { n: "decoy" }));
    await bus.publish(literal, makeEvent(literal, { n: "literal" }));
    assert.deepEqual((await inbox.until(1)).map((e) => e.payload.n), [
      "literal",
    ]);
  });

  test("exact and overlapping pattern subscriptions each get an event once", async ({ bus }) => {
    const ns = uniqueTopic("overlap");
    const topic = `${ns}:bots:created`;
    const exact = new Inbox(), wide = new Inbox(), narrow = new Inbox();
    await bus.subscribe(topic, exact.handler);
    await bus.subscribe("wide", wide.handler, `${ns}:*`);
    await bus.subscribe("narrow", narrow.handler, `*:created`);
    await bus.publish(topic, makeEvent(topic, { n: 1 }));
    await bus.publish(topic, makeEvent(topic, { n: 2 }));
    for (const inbox of [exact, wide, narrow]) {
      await inbox.until(2);
    }
    // A barrier on the exact topic: a duplicate would have arrived before it.
    await bus.publish(topic, makeEvent(topic, { n: 3 }));
    for (const inbox of [exact, wide, narrow]) {
      assert.deepEqual((await inbox.until(3)).map((e) => e.payload.n), [
        1,
        2,
        3,
      ]);
    }
  });

  test("a subscription gets 1000 events in publish order despite a slow handler", async ({ bus }) => {
    const topic = uniqueTopic("order");
    const seen: number[] = [];
    let busy = 0;
    const inbox = new Inbox();
    await bus.subscribe(topic, async (event) => {
      busy++;
      assert.equal(busy, 1, "two handler calls overlapped");
      const n = event.payload.n as number;
      if (n % 100 === 0) await new Promise((r) => setTimeout(r, 2));
      else await Promise.resolve();
      seen.push(n);
      busy--;
      inbox.handler(event);
    });
    const sends: Promise<void>[] = [];
    for (let n = 0; n < 1000; n++) {
      sends.push(bus.publish(topic, makeEvent(topic, { n })));
    }
    await Promise.all(sends);
    await inbox.until(1000, 30_000);
    assert.deepEqual(seen, Array.from({ length: 1000 }, (_, n) => n));
  });

  test("a slow handler does not delay another subscription", async ({ bus }) => {
    const topic = uniqueTopic("slow");
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = new Inbox(), fast = new Inbox();
    await bus.subscribe(topic, async (event) => {
      slow.handler(event);
      await gate;
    });
    await bus.subscribe(topic, fast.handler);
    const sends = [1, 2, 3].map((n) =>
      bus.publish(topic, makeEvent(topic, { n }))
    );
    assert.deepEqual((await fast.until(3)).map((e) => e.payload.n), [1, 2, 3]);
    assert.equal(slow.events.length, 1);
    release();
    await slow.until(3);
    await Promise.all(sends);
  });

  test("a throwing or rejecting handler is reported and others still run", async ({ bus, errors }) => {
    const topic = uniqueTopic("errors");
    const good = new Inbox();
    const syncSub = await bus.subscribe(topic, () => {
      throw new Error("sync boom");
    });
    const asyncSub = await bus.subscribe(topic, async () => {
      await Promise.resolve();
      throw new Error("async boom");
    });
    await bus.subscribe(topic, good.handler);
    await bus.publish(topic, makeEvent(topic, { n: 1 }));
    await bus.publish(topic, makeEvent(topic, { n: 2 }));
    await good.until(2);
    // Errors are reported as soon as each handler settles; wait for all four.
    for (let i = 0; errors.length < 4 && i < 200; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const messages = errors.map(([e, ev, s]) =>
      `${(e as Error).message}/${ev?.payload.n}/${s?.subscriptionId}`
    );
    assert.deepEqual(messages.sort(), [
      `async boom/1/${asyncSub.subscriptionId}`,
      `async boom/2/${asyncSub.subscriptionId}`,
      `sync boom/1/${syncSub.subscriptionId}`,
      `sync boom/2/${syncSub.subscriptionId}`,
    ]);
  });

  test("a handler may cancel its own subscription", async ({ bus }) => {
    const topic = uniqueTopic("selfcancel");
    const barrier = new Inbox();
    let calls = 0;
    const sub: Subscription = await bus.subscribe(topic, async () => {
      calls++;
      await sub.cancel();
    });
    await bus.subscribe(topic, barrier.handler);
    for (const n of [1, 2, 3]) {
      await bus.publish(topic, makeEvent(topic, { n }));
    }
    await barrier.until(3);
    assert.equal(calls, 1);
  });

  test("a handler may publish to its own topic and await it", async ({ bus }) => {
    const topic = uniqueTopic("republish");
    const inbox = new Inbox();
    await bus.subscribe(topic, async (event) => {
      inbox.handler(event);
      const n = event.payload.n as number;
      if (n < 3) await bus.publish(topic, makeEvent(topic, { n: n + 1 }));
    });
    await bus.publish(topic, makeEvent(topic, { n: 0 }));
    assert.deepEqual((await inbox.until(4)).map((e) => e.payload.n), [
      0,
      1,
      2,
      3,
    ]);
  });

  test("a handler may subscribe", async ({ bus }) => {
    const first = uniqueTopic("first"), second = uniqueTopic("second");
    const inbox = new Inbox();
    let subscribed!: () => void;
    const done = new Promise<void>((r) => (subscribed = r));
    await bus.subscribe(first, async () => {
      await bus.subscribe(second, inbox.handler);
      subscribed();
    });
    await bus.publish(first, makeEvent(first));
    await done;
    await bus.publish(second, makeEvent(second, { n: 1 }));
    assert.equal((await inbox.until(1)).length, 1);
  });

  test("a handler may close the bus it runs under", async ({ bus }) => {
    const topic = uniqueTopic("selfclose");
    let closed!: () => void;
    const done = new Promise<void>((r) => (closed = r));
    await bus.subscribe(topic, async () => {
      await bus.close();
      closed();
    });
    await bus.publish(topic, makeEvent(topic));
    await done;
    assert.equal(bus.state, "closed");
    await assert.rejects(
      bus.publish(topic, makeEvent(topic)),
      (e: unknown) => e instanceof EventBusError && e.code === "CLOSED",
    );
  });

  test("cancel() is idempotent and final", async ({ bus }) => {
    const topic = uniqueTopic("cancel");
    const cancelled = new Inbox(), barrier = new Inbox();
    const sub = await bus.subscribe(topic, cancelled.handler);
    await bus.subscribe(topic, barrier.handler);
    await bus.publish(topic, makeEvent(topic, { n: 1 }));
    await cancelled.until(1);
    await sub.cancel();
    await sub.cancel();
    await bus.publish(topic, makeEvent(topic, { n: 2 }));
    await barrier.until(2);
    assert.deepEqual(cancelled.payloads, [1]);
  });

  Deno.test(`${name}: publish() and subscribe() reject before connect() and after close()`, async () => {
    const bus = factory({});
    const topic = uniqueTopic();
    const code = (c: string) => (e: unknown) =>
      e instanceof EventBusError && e.code === c && e.message.includes(topic);
    assert.equal(bus.state, "idle");
    await assert.rejects(
      bus.publish(topic, makeEvent(topic)),
      code("NOT_CONNECTED"),
    );
    await assert.rejects(bus.subscribe(topic, () => {}), code("NOT_CONNECTED"));
    await bus.connect();
    await bus.connect();
    assert.equal(bus.state, "ready");
    await bus.close();
    await bus.close();
    assert.equal(bus.state, "closed");
    await assert.rejects(bus.publish(topic, makeEvent(topic)), code("CLOSED"));
    await assert.rejects(bus.subscribe(topic, () => {}), code("CLOSED"));
    await assert.rejects(
      bus.connect(),
      (e: unknown) => e instanceof EventBusError && e.code === "CLOSED",
    );
  });

  Deno.test(`${name}: close() is "closing" at once, sends every publish accepted before it, then refuses`, async () => {
    const states: ConnectionState[] = [];
    const bus = factory({ onStateChange: (state) => void states.push(state) });
    // Two memory buses are separate worlds: there the bus receives itself
    // (a memory publish resolves once its handlers ran).
    const receiver = name.startsWith("memory") ? bus : factory({});
    await bus.connect();
    await receiver.connect();
    try {
      const topic = uniqueTopic("close-sends");
      const inbox = new Inbox();
      await receiver.subscribe(topic, inbox.handler);
      const count = 2000;
      const published = Array.from(
        { length: count },
        (_, n) => bus.publish(topic, makeEvent(topic, { n })),
      );
      const closed = bus.close();
      assert.equal(bus.state, "closing");
      assert.equal(states.at(-1), "closing");
      await assert.rejects(
        bus.publish(topic, makeEvent(topic)),
        (e: unknown) => e instanceof EventBusError && e.code === "CLOSED",
      );
      const outcomes = await Promise.allSettled(published);
      assert.deepEqual(
        outcomes.filter((o) => o.status === "rejected"),
        [],
        "publishes accepted before close() are sent",
      );
      await closed;
      assert.deepEqual(states.slice(-2), ["closing", "closed"]);
      await inbox.until(count);
      assert.deepEqual(
        inbox.events.map((e) => e.payload.n),
        Array.from({ length: count }, (_, n) => n),
      );
    } finally {
      await bus.close();
      await receiver.close();
    }
  });

  test("publish() rejects bad input clearly and delivers nothing", async ({ bus }) => {
    const topic = uniqueTopic("bad");
    const inbox = new Inbox();
    await bus.subscribe(topic, inbox.handler);
    const typeError = (text: string) => (e: unknown) =>
      e instanceof TypeError && e.message.includes(text);
    await assert.rejects(
      bus.publish("", makeEvent(topic)),
      typeError("topic must be a non-empty string"),
    );
    await assert.rejects(
      bus.publish(42 as never, makeEvent(topic)),
      typeError("got 42"),
    );
    await assert.rejects(
      bus.publish(`${topic}x`, makeEvent(topic)),
      typeError("must be equal"),
    );
    await assert.rejects(
      bus.publish(topic, { ...makeEvent(topic).toDict() } as never),
      typeError("expected an Event"),
    );
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const unfaithful: [Record<string, unknown>, string][] = [
      [{ cyclic }, "cycle"],
      [{ big: 1n }, "BigInt"],
      [{ fn: () => {} }, "function"],
      [{ sym: Symbol("s") }, "symbol"],
      [{ when: new Date() }, "Date"],
      [{ missing: undefined }, "undefined"],
      [{ nan: NaN }, "NaN"],
    ];
    for (const [payload, what] of unfaithful) {
      await assert.rejects(
        (async () => await bus.publish(topic, makeEvent(topic, payload)))(),
        typeError(what),
      );
    }
    await bus.subscribe(topic, () => {}, null);
    await assert.rejects(bus.subscribe("", () => {}), typeError("topic"));
    await assert.rejects(
      bus.subscribe(topic, "nope" as never),
      typeError("handler must be a function"),
    );
    await assert.rejects(
      bus.subscribe(topic, () => {}, ""),
      typeError("pattern must be"),
    );
    await bus.publish(topic, makeEvent(topic, { n: "good" }));
    assert.deepEqual((await inbox.until(1)).map((e) => e.payload.n), ["good"]);
  });

  for (const limit of [undefined, 10_000]) {
    const label = limit === undefined
      ? `the default maxEventBytes (${MAX_EVENT_BYTES})`
      : `maxEventBytes: ${limit}`;
    Deno.test(`${name}: publish() refuses an event over ${label} with a RangeError, delivers one at it intact`, async () => {
      const max = limit ?? MAX_EVENT_BYTES;
      const { bus, errors } = await open(
        limit === undefined ? {} : { maxEventBytes: limit },
      );
      try {
        const topic = uniqueTopic("limit");
        const inbox = new Inbox(), all = new Inbox();
        await bus.subscribe(topic, inbox.handler);
        await bus.subscribe("all", all.handler, `${topic}*`);
        const over = eventOfBytes(topic, max + 1, 1);
        await assert.rejects(
          bus.publish(topic, over),
          (e: unknown) =>
            e instanceof RangeError &&
            e.message.includes(`${max + 1} bytes`) &&
            e.message.includes(`limit of ${max}`) &&
            e.message.includes("maxEventBytes"),
        );
        const at = eventOfBytes(topic, max, 2);
        const small = makeEvent(topic, { n: 3 });
        await bus.publish(topic, at);
        await bus.publish(topic, small);
        for (const box of [inbox, all]) {
          const got = await box.until(2);
          assert.deepEqual(got.map((e) => e.toDict()), [
            at.toDict(),
            small.toDict(),
          ]);
        }
        // A barrier: the refused event would have come before it.
        await bus.publish(topic, makeEvent(topic, { n: 4 }));
        await inbox.until(3);
        assert.deepEqual(inbox.payloads, [2, 3, 4]);
        assert.deepEqual(errors, []);
      } finally {
        await bus.close();
      }
    });
  }

  Deno.test(`${name}: await using closes the bus and cancels subscriptions`, async () => {
    const topic = uniqueTopic("dispose");
    const barrier = new Inbox(), disposed = new Inbox();
    let outer: EventBus;
    {
      await using bus = factory({});
      outer = bus;
      await bus.connect();
      await bus.subscribe(topic, barrier.handler);
      {
        await using _sub = await bus.subscribe(topic, disposed.handler);
      }
      await bus.publish(topic, makeEvent(topic, { n: 1 }));
      await barrier.until(1);
    }
    assert.equal(outer.state, "closed");
    assert.equal(disposed.events.length, 0);
  });

  test("a subscription made by a handler does not get the event being delivered", async ({ bus }) => {
    const topic = uniqueTopic("self-subscribe");
    const seen: unknown[] = [];
    const first = new Inbox();
    const copies: Promise<Subscription>[] = [];
    const handler = (event: Event): void => {
      seen.push(event.payload.n);
      first.handler(event);
      if (copies.length < 100) copies.push(bus.subscribe(topic, handler));
    };
    await bus.subscribe(topic, handler);
    await bus.publish(topic, makeEvent(topic, { n: 1 }));
    await first.until(1);
    await Promise.all(copies);
    // Made after the first copy: gets event 2 after the handlers before it.
    const barrier = new Inbox();
    await bus.subscribe(topic, barrier.handler);
    await bus.publish(topic, makeEvent(topic, { n: 2 }));
    await barrier.until(1);
    // Event 1: the first handler only. Event 2: it and the copy event 1
    // made (which makes another copy, too late for event 2).
    assert.deepEqual(seen, [1, 2, 2]);
    await Promise.all(copies);
  });

  test("cancel() reports the events it drops; close() waits for a handler still running", async ({ bus, errors }) => {
    const topic = uniqueTopic("cancel-drop");
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const started = new Inbox();
    let finished = 0;
    const sub = await bus.subscribe(topic, async (event) => {
      started.handler(event);
      await gate;
      finished++;
    });
    const barrier = new Inbox();
    await bus.subscribe(topic, barrier.handler);
    // Not awaited: on memory a publish waits for the handler it started.
    const published = [1, 2, 3, 4, 5].map((n) =>
      bus.publish(topic, makeEvent(topic, { n }))
    );
    // Both subscriptions get each event as it arrives: once the barrier has
    // all five, four wait behind the blocked handler.
    await barrier.until(5);
    await started.until(1);
    await sub.cancel();
    const drops = errors.map(([error]) => error).filter((error) =>
      error instanceof EventBusError && error.code === "DROPPED_ON_CANCEL"
    );
    assert.equal(drops.length, 1);
    assert.match(String(drops[0]), /Dropped 4 queued event/);
    assert.equal((drops[0] as EventBusError).dropped, 4);
    const closed = bus.close();
    setTimeout(release, 50);
    await closed;
    assert.equal(finished, 1, "close() waited for the running handler");
    await Promise.all(published);
  });

  // once() and events() subscribe synchronously; a subscription to the same
  // topic made after them is confirmed together with theirs, so once it
  // resolves an event published is seen by them too (and the barrier,
  // offered each event after them, tells when they have it).
  const barrier = async (bus: EventBus, topic: string): Promise<Inbox> => {
    const inbox = new Inbox();
    await bus.subscribe(topic, inbox.handler);
    return inbox;
  };
  const code = (expected: string) => (error: unknown) =>
    error instanceof EventBusError && error.code === expected;

  test("subscribe() with a signal: aborted before, nothing is subscribed; aborted after, delivery stops", async ({ bus, errors }) => {
    const topic = uniqueTopic("signal");
    const inbox = new Inbox(), early = new Inbox();
    const reason = new Error("not wanted");
    await assert.rejects(
      bus.subscribe(topic, early.handler, {
        signal: AbortSignal.abort(reason),
      }),
      (error) => error === reason,
    );
    const controller = new AbortController();
    const sub = await bus.subscribe(topic, inbox.handler, {
      signal: controller.signal,
    });
    assert.equal(sub.pattern, null);
    const after = await barrier(bus, topic);
    await bus.publish(topic, makeEvent(topic, { n: 1 }));
    await inbox.until(1);
    controller.abort(); // cancels at once: no delivery from here on
    await sub.cancel(); // the same (idempotent) cancellation
    await bus.publish(topic, makeEvent(topic, { n: 2 }));
    await after.until(2);
    assert.deepEqual(inbox.payloads, [1]);
    assert.equal(early.events.length, 0);
    // The options object takes a pattern; cancel() removes the listener.
    const other = new AbortController();
    const patterned = await bus.subscribe("label", () => {}, {
      pattern: `${topic}*`,
      signal: other.signal,
    });
    assert.equal(patterned.pattern, `${topic}*`);
    await patterned.cancel();
    other.abort();
    assert.deepEqual(errors, []);
  });

  test("once() resolves with the next event passing filter, then unsubscribes", async ({ bus, errors }) => {
    const topic = uniqueTopic("once");
    const next = bus.once(topic);
    const second = bus.once(topic, { filter: (e) => e.payload.n === 2 });
    const after = await barrier(bus, topic);
    for (const n of [1, 2, 3]) {
      await bus.publish(topic, makeEvent(topic, { n }));
    }
    assert.equal((await next).payload.n, 1);
    assert.equal((await second).payload.n, 2);
    await after.until(3);
    assert.deepEqual(errors, []);
  });

  test("once().ready and events().ready: live once resolved; rejected, never unhandled, when refused", async ({ bus, errors }) => {
    const topic = uniqueTopic("ready");
    const next = bus.once(topic, { timeoutMs: 10_000 });
    const events = bus.events(topic);
    await Promise.all([next.ready, events.ready]);
    // Published right after `ready`, with nothing else to wait for.
    await bus.publish(topic, makeEvent(topic, { n: 1 }));
    assert.equal((await next).payload.n, 1);
    assert.equal((await events.next()).value?.payload.n, 1);
    await events.return();
    const reason = new Error("gave up");
    const aborted = bus.once(topic, { signal: AbortSignal.abort(reason) });
    await assert.rejects(aborted.ready, (error) => error === reason);
    await assert.rejects(aborted, (error) => error === reason);
    const bad = bus.once(topic, { timeoutMs: -1 });
    await assert.rejects(bad.ready, RangeError);
    await assert.rejects(bad, RangeError);
    await bus.close();
    // Never awaited: must not surface as unhandled rejections.
    void bus.once(topic).catch(() => {});
    const closed = bus.events(topic);
    await assert.rejects(closed.ready, code("CLOSED"));
    await assert.rejects(closed.next(), code("CLOSED"));
    assert.deepEqual(errors, []);
  });

  test("once() rejects on timeout (TIMEOUT), abort (the reason) and close (CLOSED)", async ({ bus, errors }) => {
    const topic = uniqueTopic("once-fail");
    await assert.rejects(bus.once(topic, { timeoutMs: 20 }), code("TIMEOUT"));
    const reason = new Error("gave up");
    await assert.rejects(
      bus.once(topic, { signal: AbortSignal.abort(reason) }),
      (error) => error === reason,
    );
    const controller = new AbortController();
    const aborted = bus.once(topic, { signal: controller.signal });
    controller.abort(reason);
    await assert.rejects(aborted, (error) => error === reason);
    // Nothing left subscribed: an event now reaches only the barrier.
    const after = await barrier(bus, topic);
    await bus.publish(topic, makeEvent(topic, { n: 1 }));
    await after.until(1);
    await assert.rejects(bus.once(topic, { timeoutMs: -1 }), RangeError);
    const pending = assert.rejects(
      bus.once(topic, { timeoutMs: 60_000 }),
      code("CLOSED"),
    );
    await bus.close();
    await pending;
    assert.deepEqual(errors, []);
  });

  test("events() yields in order; break cancels; close ends it after what is buffered", async ({ bus, errors }) => {
    const topic = uniqueTopic("events");
    const events = bus.events(topic);
    const after = await barrier(bus, topic);
    for (const n of [1, 2, 3, 4]) {
      await bus.publish(topic, makeEvent(topic, { n }));
    }
    await after.until(4);
    const seen: unknown[] = [];
    for await (const event of events) {
      seen.push(event.payload.n);
      if (seen.length === 2) break;
    }
    assert.deepEqual(seen, [1, 2]);
    assert.deepEqual(await events.next(), { value: undefined, done: true });
    // Close: the buffered events, then done.
    const kept = bus.events(topic);
    const after2 = await barrier(bus, topic);
    await bus.publish(topic, makeEvent(topic, { n: 5 }));
    await after2.until(1);
    await bus.close();
    const rest: unknown[] = [];
    for await (const event of kept) rest.push(event.payload.n);
    assert.deepEqual(rest, [5]);
    assert.deepEqual(errors, []);
  });

  test("events() signal: the pending read rejects with its reason; reading a closed bus fails", async ({ bus }) => {
    const topic = uniqueTopic("events-signal");
    const controller = new AbortController();
    const events = bus.events(topic, { signal: controller.signal });
    await barrier(bus, topic);
    const pending = events.next();
    const reason = new Error("stop");
    controller.abort(reason);
    await assert.rejects(pending, (error) => error === reason);
    assert.deepEqual(await events.next(), { value: undefined, done: true });
    await assert.rejects(
      bus.events(topic, { signal: AbortSignal.abort(reason) }).next(),
      (error) => error === reason,
    );
    assert.throws(() => bus.events(topic, { bufferSize: 0 }), RangeError);
    assert.throws(
      // @ts-expect-error: not a policy
      () => bus.events(topic, { overflow: "block" }),
      TypeError,
    );
    await bus.close();
    await assert.rejects(
      bus.events(topic).next(),
      (error: Error) =>
        code("CLOSED")(error) &&
        error.message.startsWith(`Cannot call events() on "${topic}"`),
    );
    await assert.rejects(
      bus.once(topic),
      (error: Error) =>
        code("CLOSED")(error) &&
        error.message.startsWith(`Cannot call once() on "${topic}"`),
    );
  });

  for (
    const [overflow, read, drops] of [
      ["error", [], 0],
      ["drop-oldest", [4, 5], 2],
      ["drop-newest", [1, 2], 2],
    ] as const
  ) {
    test(`events() with a full buffer, overflow "${overflow}"`, async ({ bus, errors }) => {
      const topic = uniqueTopic("events-full");
      const events = bus.events(topic, { bufferSize: 2, overflow });
      const after = await barrier(bus, topic);
      for (const n of [1, 2, 3, 4, 5]) {
        await bus.publish(topic, makeEvent(topic, { n }));
      }
      await after.until(5);
      if (overflow === "error") {
        await assert.rejects(events.next(), code("QUEUE_FULL"));
        assert.deepEqual(await events.next(), { value: undefined, done: true });
      } else {
        const got = [await events.next(), await events.next()];
        assert.deepEqual(got.map((r) => r.value?.payload.n), read);
        await events.return();
      }
      // Three drops: the first reported at once, the other two together.
      const reports = errors.map(([error]) => error);
      assert.equal(reports.length, drops);
      assert.ok(reports.every(code("QUEUE_FULL")));
      if (drops) assert.match(String(reports[1]), /2 more event/);
      // The first report names the dropped event (the oldest, or the new one).
      if (drops) {
        assert.equal(
          errors[0]![1]?.payload.n,
          overflow === "drop-oldest" ? 1 : 3,
        );
      }
    });
  }

  test("String(bus) shows the state and no credentials", ({ bus }) => {
    assert.doesNotMatch(String(bus), /secret|password=/i);
    assert.match(String(bus), /ready\)$/);
    return Promise.resolve();
  });
  historyConformance(name, factory);
}

/** Records what a handler got: payload `n`s and positions. */
class Positioned extends Inbox {
  readonly positions: (string | undefined)[] = [];
  readonly record = (event: Event, delivery: Delivery): void => {
    this.positions.push(delivery.position);
    this.handler(event);
  };
}

/** Publishes events `n` = from..to on `topic`, each awaited. */
async function publishRange(
  bus: EventBus,
  topic: string,
  from: number,
  to: number,
): Promise<void> {
  for (let n = from; n <= to; n++) {
    await bus.publish(topic, makeEvent(topic, { n }));
  }
}

const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * The history tier: a bus made with `history` logs what it publishes,
 * gives positions, and replays from one (on another bus too, as after a
 * restart).
 */
export function historyConformance(name: string, factory: BusFactory): void {
  const test = (
    title: string,
    fn: (
      open: (options?: EventBusOptions) => Promise<Observed<EventBus>>,
    ) => Promise<void>,
  ) =>
    Deno.test(`${name} history: ${title}`, async () => {
      const buses: EventBus[] = [];
      const open = async (options: EventBusOptions = {}) => {
        const made = await observed((hooks) =>
          factory({ history: {}, ...hooks, ...options })
        );
        buses.push(made.bus);
        return made;
      };
      try {
        await fn(open);
      } finally {
        await Promise.all(buses.map((bus) => bus.close()));
      }
    });

  test("handlers get delivery.position; without history it is absent", async (open) => {
    const topic = uniqueTopic("positions");
    const { bus, errors, gaps } = await open();
    const inbox = new Positioned();
    await bus.subscribe(topic, inbox.record);
    await publishRange(bus, topic, 1, 3);
    await inbox.until(3);
    assert.ok(inbox.positions.every((p) => typeof p === "string" && p !== ""));
    assert.equal(new Set(inbox.positions).size, 3);
    const plain = factory({});
    try {
      await plain.connect();
      const seen = new Positioned();
      await plain.subscribe(topic, seen.record);
      await plain.publish(topic, makeEvent(topic, { n: 4 }));
      await seen.until(1);
      assert.deepEqual(seen.positions, [undefined]);
      await assert.rejects(
        plain.subscribe(topic, () => {}, { from: "earliest" }),
        TypeError,
      );
    } finally {
      await plain.close();
    }
    await assert.rejects(
      bus.subscribe(topic, () => {}, { from: "not a position" }),
      TypeError,
    );
    assert.deepEqual(errors, []);
    assert.deepEqual(gaps, []);
  });

  test("subscribe({ from }): every event after the position, then live, each once", async (open) => {
    const topic = uniqueTopic("from");
    const first = await open();
    const inbox = new Positioned();
    await first.bus.subscribe(topic, inbox.record);
    await publishRange(first.bus, topic, 1, 5);
    await inbox.until(5);
    // As after a restart (another process: see the backends' own tests),
    // a new subscription resumes after event 2.
    const second = first;
    const resumed = new Positioned();
    const patterned = new Positioned();
    await second.bus.subscribe(topic, resumed.record, {
      from: inbox.positions[1]!,
    });
    await second.bus.subscribe("label", patterned.record, {
      pattern: `${topic}*`,
      from: inbox.positions[1]!,
    });
    await resumed.until(3);
    await publishRange(first.bus, topic, 6, 7);
    await resumed.until(5);
    await patterned.until(5);
    assert.deepEqual(resumed.payloads, [3, 4, 5, 6, 7]);
    assert.deepEqual(patterned.payloads, [3, 4, 5, 6, 7]);
    // The same positions as the first bus saw.
    assert.deepEqual(resumed.positions, inbox.positions.slice(2));
    assert.deepEqual(first.errors, []);
    assert.deepEqual(first.gaps, []);
  });

  test('subscribe({ from: "earliest" }) replays what the log holds, then goes live', async (open) => {
    const topic = uniqueTopic("earliest");
    const { bus, errors, gaps } = await open();
    await publishRange(bus, topic, 1, 3);
    const inbox = new Positioned();
    await bus.subscribe(topic, inbox.record, { from: "earliest" });
    await publishRange(bus, topic, 4, 4);
    await inbox.until(4);
    assert.deepEqual(inbox.payloads, [1, 2, 3, 4]);
    assert.deepEqual(errors, []);
    assert.deepEqual(gaps, []);
  });

  test("a position past maxEvents: a lost gap, then delivery from the oldest event kept", async (open) => {
    const topic = uniqueTopic("retention");
    const { bus, errors, gaps } = await open({ history: { maxEvents: 10 } });
    const inbox = new Positioned();
    await bus.subscribe(topic, inbox.record);
    // Enough that even an approximate trim (Redis MAXLEN ~) drops event 2.
    const total = 400;
    await Promise.all(
      range(1, total).map((n) => bus.publish(topic, makeEvent(topic, { n }))),
    );
    await inbox.until(total);
    const resumed = new Positioned();
    await bus.subscribe(topic, resumed.record, { from: inbox.positions[0]! });
    await publishRange(bus, topic, total + 1, total + 1);
    // Up to the live event (how many come before it depends on the trim).
    while (resumed.payloads.at(-1) !== total + 1) {
      await resumed.until(resumed.events.length + 1);
    }
    const got = resumed.payloads as number[];
    const oldest = got[0]!;
    assert.ok(oldest > 2, `event ${oldest} should have been trimmed`);
    assert.deepEqual(got, range(oldest, total + 1));
    assert.equal(gaps.length, 1);
    assert.equal(gaps[0]!.lost, true);
    assert.deepEqual(errors, []);
  });

  test("a position past the end of the log (not one it gave): a lost gap, then the oldest event kept, then live", async (open) => {
    const topic = uniqueTopic("future");
    const { bus, errors, gaps } = await open();
    const inbox = new Positioned();
    await bus.subscribe(topic, inbox.record);
    await publishRange(bus, topic, 1, 3);
    await inbox.until(3);
    // Each number of a position of the log (after its epoch), a million
    // on: as from a log that was reset under the same epoch, or made up.
    const [epoch, ...numbers] = inbox.positions[2]!.split("-");
    const future = [epoch, ...numbers.map((n) => BigInt(n) + 1_000_000n)];
    const resumed = new Positioned();
    await bus.subscribe(topic, resumed.record, { from: future.join("-") });
    await resumed.until(3);
    await publishRange(bus, topic, 4, 4);
    await resumed.until(4);
    assert.deepEqual(resumed.payloads, [1, 2, 3, 4]);
    assert.equal(gaps.length, 1);
    assert.equal(gaps[0]!.lost, true);
    assert.deepEqual(errors, []);
  });
}
