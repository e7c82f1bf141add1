// Property tests across backends: the same generated events — odd topics
// (any Unicode, control characters, 5,000+ characters, siblings that share
// a Postgres channel), payloads and metadata (odd keys, edge numbers,
// nesting, timestamps from year 1 to 9999) — published on a memory, a
// Redis and a PostgreSQL bus are refused by all of them alike, or delivered
// by all of them deep-equal to what was sent, in order, once.
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseJson } from "../_json_parse.ts";
import postgres from "postgres";
import {
  Event,
  type EventBus,
  EventBusError,
  type EventInit,
  InMemoryEventBus,
} from "../mod.ts";
import { postgresChannel, PostgresEventBus } from "../postgres.ts";
import { RedisEventBus } from "../redis.ts";
import {
  eventInit,
  illFormedText,
  nestedObject,
  text,
  topic,
} from "./_arbitraries.ts";
import { wireBytes } from "./conformance.ts";
import { DATABASE_URL, reachable, REDIS_URL } from "./_servers.ts";

const redisOk = await reachable("Redis", "REDIS_URL", REDIS_URL);
const postgresOk = await reachable(
  "PostgreSQL",
  "DATABASE_URL",
  DATABASE_URL,
);

/** Small enough that some generated events are over it (refused by all). */
const MAX_EVENT_BYTES = 24_000;
const RUNS = Number(Deno.env.get("CROSS_BACKEND_RUNS") ?? 100);

// ---------------------------------------------------------------- inputs

/** Characters Postgres's channel naming drops. */
const DROPPED = [
  "é",
  " ",
  "/",
  "*",
  "?",
  "[",
  "\\",
  "'",
  '"',
  "\u0000",
  "\n",
  "😀",
];

/**
 * Topics that name the same Postgres channel as `t` (while the channel
 * fits 63 bytes; past that the name holds a hash of the whole topic): with
 * a character it drops, without those, or with `:`, `.`, `-` and `_`
 * swapped (all become `_`).
 */
const sibling = (t: string): fc.Arbitrary<string> =>
  fc.oneof(
    fc.tuple(fc.constantFrom(...DROPPED), fc.nat()).map(([c, at]) => {
      const points = [...t]; // never split a surrogate pair
      points.splice(at % (points.length + 1), 0, c);
      return points.join("");
    }),
    fc.constant(t.replace(/[^A-Za-z0-9_:.-]/g, "")),
    fc.constantFrom(":", ".", "-", "_").map((c) => t.replace(/[:.\-_]/g, c)),
  ).filter((s) => s !== "" && s !== t);

/** One or two topics, now and then with a sibling each. */
const topicPool: fc.Arbitrary<string[]> = fc.array(
  topic.chain((t) => fc.tuple(fc.constant(t), fc.option(sibling(t)))),
  { minLength: 1, maxLength: 2 },
).map((pairs) => [
  ...new Set(pairs.flatMap(([t, s]) => (s === null ? [t] : [t, s]))),
]);

/** Now and then a long id: text goes in the large-payload reference too. */
const longText = fc.string({ unit: "binary", minLength: 1 }).map((t) =>
  t.repeat(Math.ceil(4500 / t.length))
);

/** `arbitrary` one time in `n`, else null. */
const oneIn = <T>(n: number, arbitrary: fc.Arbitrary<T>) =>
  fc.oneof(
    { weight: n - 1, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary },
  );

/** An event's fields, with its topic picked from the pool by index. */
const eventSpec = fc.record({
  init: eventInit,
  topicIndex: fc.nat(),
  eventId: oneIn(2, fc.oneof(longText, text.filter((t) => t !== ""))),
  source: oneIn(8, longText),
  badTopic: oneIn(30, illFormedText),
  // Up to Event.MAX_DEPTH levels and past it (refused by new Event).
  deep: oneIn(8, nestedObject.map(({ value }) => value)),
});

const batch = fc.record({
  topics: topicPool,
  events: fc.array(eventSpec, { minLength: 1, maxLength: 5 }),
  // Publish one of the events a second time (the same object).
  again: oneIn(4, fc.nat()),
  star: fc.boolean(),
  literal: fc.boolean(),
  concurrent: fc.boolean(),
});

type Batch = typeof batch extends fc.Arbitrary<infer T> ? T : never;

/** An fnmatch pattern that matches `t` and nothing else. */
const literalPattern = (t: string) => t.replace(/[[*?]/g, (c) => `[${c}]`);

// ---------------------------------------------------------------- buses

interface Backend {
  readonly name: string;
  readonly bus: EventBus;
  readonly errors: unknown[];
  /** Events received per subscription label in the current run. */
  inbox: Map<string, Event[]>;
  barrier: ((n: number) => void) | undefined;
}

const BARRIER = `barrier-${crypto.randomUUID()}`;

async function open(
  name: string,
  make: (options: {
    onError: (e: unknown) => void;
    maxEventBytes: number;
  }) => EventBus,
): Promise<Backend> {
  const errors: unknown[] = [];
  const bus = make({
    onError: (e) => void errors.push(e),
    maxEventBytes: MAX_EVENT_BYTES,
  });
  await bus.connect();
  const backend: Backend = {
    name,
    bus,
    errors,
    inbox: new Map(),
    barrier: undefined,
  };
  await bus.subscribe(
    BARRIER,
    (event) => backend.barrier?.(event.payload.n as number),
  );
  return backend;
}

/** Publishes `event` and says how it went: "ok" or the error's class. */
async function outcome(bus: EventBus, event: Event): Promise<string> {
  try {
    await bus.publish(event.topic, event);
    return "ok";
  } catch (error) {
    return error instanceof EventBusError
      ? `EventBusError ${error.code}`
      : (error as Error).constructor.name;
  }
}

/**
 * The events of a batch that `new Event` accepts. What it refuses (a lone
 * surrogate, nesting past Event.MAX_DEPTH) it refuses before any backend
 * is involved, so alike for all of them: a TypeError.
 */
function makeEvents({ topics, events }: Batch): Event[] {
  const made: Event[] = [];
  for (const spec of events) {
    const { init, topicIndex, eventId, source, badTopic, deep } = spec;
    const full: EventInit = {
      ...init,
      topic: badTopic ?? topics[topicIndex % topics.length]!,
      ...(eventId === null ? {} : { eventId }),
      ...(source === null ? {} : { source }),
      ...(deep === null ? {} : { payload: deep }),
    };
    try {
      made.push(new Event(full));
    } catch (error) {
      assert.ok(error instanceof TypeError, String(error));
      assert.ok(badTopic !== null || deep !== null, String(error));
    }
  }
  return made;
}

let run = 0;

/** Runs one batch on every backend and checks what each delivered. */
async function check(backends: Backend[], input: Batch): Promise<void> {
  const n = ++run;
  const events = makeEvents(input);
  if (input.again !== null && events.length > 0) {
    events.push(events[input.again % events.length]!);
  }
  // Subscribe everywhere: each topic exactly, `*`, and a pattern per topic
  // that matches only it.
  const subscriptions = await Promise.all(backends.map(async (backend) => {
    backend.inbox = new Map();
    const record = (label: string) => (event: Event) => {
      const list = backend.inbox.get(label) ?? [];
      list.push(event);
      backend.inbox.set(label, list);
    };
    const subs = [];
    for (const t of input.topics) {
      subs.push(await backend.bus.subscribe(t, record(`exact ${t}`)));
      if (input.literal) {
        subs.push(
          await backend.bus.subscribe(
            "literal",
            record(`literal ${t}`),
            literalPattern(t),
          ),
        );
      }
    }
    if (input.star) {
      subs.push(await backend.bus.subscribe("star", record("*"), "*"));
    }
    return subs;
  }));
  try {
    // Publish the same events on every backend.
    const outcomes = await Promise.all(backends.map(async ({ bus }) => {
      if (input.concurrent) {
        return await Promise.all(events.map((event) => outcome(bus, event)));
      }
      const results: string[] = [];
      for (const event of events) results.push(await outcome(bus, event));
      return results;
    }));
    // A barrier: once it is back, everything published before it is too.
    await Promise.all(backends.map(async (backend) => {
      const back = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${backend.name}: no barrier ${n}`)),
          15_000,
        );
        backend.barrier = (m) => {
          if (m !== n) return;
          clearTimeout(timer);
          resolve();
        };
      });
      await backend.bus.publish(
        BARRIER,
        new Event({ type: "custom", topic: BARRIER, payload: { n } }),
      );
      await back;
      await new Promise((r) => setTimeout(r, 0));
    }));
    // Refused by all alike, or accepted by all.
    for (let i = 1; i < backends.length; i++) {
      assert.deepEqual(
        outcomes[i],
        outcomes[0],
        `${backends[i]!.name} and ${
          backends[0]!.name
        } disagree on what to refuse`,
      );
    }
    const accepted = events.filter((_, i) => outcomes[0]![i] === "ok");
    for (const [i, event] of events.entries()) {
      const size = wireBytes(event);
      assert.equal(
        outcomes[0]![i] === "RangeError",
        size > MAX_EVENT_BYTES,
        `an event of ${size} bytes: ${outcomes[0]![i]}`,
      );
    }
    // Delivered deep-equal to what was sent, in order, once.
    const dicts = (list: readonly Event[]) => list.map((e) => e.toDict());
    for (const backend of backends) {
      const got = (label: string) => dicts(backend.inbox.get(label) ?? []);
      for (const t of input.topics) {
        const want = dicts(accepted.filter((e) => e.topic === t));
        assert.deepEqual(got(`exact ${t}`), want, `${backend.name}: exact`);
        if (input.literal) {
          assert.deepEqual(
            got(`literal ${t}`),
            want,
            `${backend.name}: literal pattern`,
          );
        }
      }
      if (input.star) {
        const star = got("*").filter((d) => d.topic !== BARRIER);
        assert.equal(star.length, accepted.length, `${backend.name}: *`);
        // In publish order per topic (across topics, order is not promised
        // for concurrent publishes).
        for (const t of new Set(accepted.map((e) => e.topic))) {
          assert.deepEqual(
            star.filter((d) => d.topic === t),
            dicts(accepted.filter((e) => e.topic === t)),
            `${backend.name}: * on one topic`,
          );
        }
      }
      assert.deepEqual(backend.errors, [], `${backend.name}: onError`);
    }
  } finally {
    await Promise.all(
      subscriptions.flat().map((subscription) => subscription.cancel()),
    );
  }
}

// ---------------------------------------------------------------- tests

const remote = redisOk || postgresOk;

Deno.test({
  name:
    "memory, Redis and PostgreSQL deliver the same generated events deep-equal, or all refuse them",
  ignore: !remote,
  fn: async () => {
    const suffix = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
    const prefix = `xb_${suffix}`; // a prefix of its own: `*` sees only this test
    const backends: Backend[] = [
      await open("memory", (options) => new InMemoryEventBus(options)),
    ];
    if (redisOk) {
      backends.push(
        await open("redis", (options) =>
          new RedisEventBus({
            url: REDIS_URL,
            channelPrefix: prefix,
            ...options,
          })),
      );
    }
    if (postgresOk) {
      backends.push(
        await open("postgres", (options) =>
          new PostgresEventBus({
            connectionString: DATABASE_URL,
            channelPrefix: prefix,
            ...options,
          })),
      );
    }
    try {
      await fc.assert(
        fc.asyncProperty(batch, (input) => check(backends, input)),
        { numRuns: RUNS },
      );
    } finally {
      await Promise.all(backends.map(({ bus }) => bus.close()));
      if (postgresOk) {
        const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
        await sql`drop table if exists ${sql(`${prefix}_patterns`)}, ${
          sql(`${prefix}_payloads`)
        }`;
        await sql.end();
      }
    }
  },
});

Deno.test("sibling topics share a Postgres channel (while it fits 63 bytes)", () => {
  fc.assert(
    fc.property(
      topic.filter((t) => t.length < 20).chain((t) =>
        fc.tuple(fc.constant(t), sibling(t))
      ),
      ([t, s]) => {
        assert.notEqual(s, t);
        assert.equal(postgresChannel(s), postgresChannel(t));
      },
    ),
  );
});

Deno.test("maxEventBytes counts the UTF-8 bytes of the wire text exactly, made, decoded and copied", async () => {
  const events = fc.sample(
    fc.tuple(eventInit, fc.option(longText)).map(([init, id]) =>
      new Event(id === null ? init : { ...init, eventId: id })
    ),
    300,
  );
  for (const event of events) {
    const size = wireBytes(event);
    for (
      const copy of [
        event,
        Event.fromJSON(event.toJSONString()),
        Event.fromDict(parseJson(event.toJSONString())),
        event.withCorrelation("c").withCorrelation(event.correlationId!),
      ]
    ) {
      for (const limit of [size - 1, size]) {
        const bus = new InMemoryEventBus({ maxEventBytes: limit });
        await bus.connect();
        const result = await outcome(bus, copy);
        assert.equal(result, limit < size ? "RangeError" : "ok");
        await bus.close();
      }
    }
  }
});
