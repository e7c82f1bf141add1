// What an event is made of, at its limits: any key name, nesting depth,
// well-formed Unicode, numbers and timestamps JSON and Python can carry.
import assert from "node:assert/strict";
import { createEventBus, Event, EventFormatError } from "../mod.ts";
import { nested, ODD_KEYS } from "./_arbitraries.ts";

const PYTHON = {
  type: "updated",
  topic: "registry:bots",
  payload: { bot_id: "b1" },
  timestamp: "2026-11-26T23:42:51.095270+00:00",
  event_id: "88d9ef23-1934-4831-9b94-de275d1b4708",
  source: null,
  correlation_id: null,
  metadata: {},
};

/** The wire text of PYTHON with `field` set to the JSON text `json`. */
const wire = (field: string, json: string) =>
  JSON.stringify({ ...PYTHON, [field]: "@@" }).replace('"@@"', json);

const make = (fields: Record<string, unknown>) =>
  new Event({ type: "created", topic: "t", correlationId: "c0", ...fields });

/** Every way an event is rebuilt: decoded, from a dict, re-correlated. */
function rebuilt(event: Event): Event[] {
  const text = event.toJSONString();
  return [
    Event.fromJSON(text),
    Event.fromDict(JSON.parse(text)),
    event.withCorrelation("c").withCorrelation(event.correlationId!),
  ];
}

// --- Keys -----------------------------------------------------------------

Deno.test("a __proto__ key stays an own key of payload and metadata", () => {
  const text = '{"__proto__":{"isAdmin":true},"x":1}';
  const event = make({
    payload: JSON.parse(text),
    metadata: JSON.parse(text),
  });
  for (const e of [event, ...rebuilt(event)]) {
    for (const object of [e.payload, e.metadata]) {
      assert.deepEqual(Object.keys(object), ["__proto__", "x"]);
      assert.equal(Object.getPrototypeOf(object), Object.prototype);
      assert.equal((object as Record<string, unknown>).isAdmin, undefined);
      const own = Object.getOwnPropertyDescriptor(object, "__proto__");
      assert.deepEqual(own?.value, { isAdmin: true });
    }
    assert.equal(
      e.toJSONString().slice(0, 200).includes(
        '"payload":{"__proto__":{"isAdmin":true},"x":1}',
      ),
      true,
    );
  }
});

/**
 * Runs `body` while setting `key` through the prototype chain of any
 * ordinary object throws (what `__proto__` does on Node, and what any
 * setter a library adds to Object.prototype would do). Returns what `body`
 * returned or threw.
 */
function whileAssigningThrows(key: string, body: () => unknown): unknown {
  const saved = Object.getOwnPropertyDescriptor(Object.prototype, key);
  Object.defineProperty(Object.prototype, key, {
    configurable: true,
    get() {
      return saved?.get ? saved.get.call(this) : saved?.value;
    },
    set() {
      throw new Error(`${JSON.stringify(key)} was assigned, not defined`);
    },
  });
  try {
    return body();
  } catch (error) {
    return error;
  } finally {
    if (saved) Object.defineProperty(Object.prototype, key, saved);
    else delete (Object.prototype as Record<string, unknown>)[key];
  }
}

Deno.test("no key is ever assigned: each stays an own data property, at any depth, both ways", () => {
  for (const key of [...ODD_KEYS, "polluted"]) {
    // Objects only (a computed key is defined, never assigned): array items
    // are written by index into new arrays, and an index is not a user's key.
    const value = { [key]: { [key]: { [key]: { [key]: "v" } } } };
    const text = JSON.stringify(value);
    const result = whileAssigningThrows(key, () => {
      const event = make({ payload: JSON.parse(text), metadata: value });
      return [event, ...rebuilt(event)].map((e) => [
        e.toJSONString(),
        e.payload,
        e.metadata,
      ]);
    });
    assert.ok(
      Array.isArray(result),
      `${JSON.stringify(key)}: ${Deno.inspect(result)}`,
    );
    for (const [json, payload, metadata] of result) {
      assert.deepEqual(payload, JSON.parse(text));
      assert.deepEqual(metadata, JSON.parse(text));
      assert.ok((json as string).includes(`"payload":${text}`));
    }
  }
});

Deno.test("numeric-looking keys keep their values (in JavaScript's key order)", () => {
  const event = Event.fromJSON(
    wire("payload", '{"b":1,"4294967295":2,"1":3,"0":4,"-1":5,"1e3":6}'),
  );
  // Array-index keys come first, ascending, in every JavaScript object.
  assert.deepEqual(Object.entries(event.payload), [
    ["0", 4],
    ["1", 3],
    ["b", 1],
    ["4294967295", 2],
    ["-1", 5],
    ["1e3", 6],
  ]);
  const long = "k".repeat(100_000);
  const big = make({ payload: { [long]: { [long]: long } } });
  assert.deepEqual(Event.fromJSON(big.toJSONString()).payload, big.payload);
});

// --- Nesting ----------------------------------------------------------------

Deno.test("payload and metadata nest at most Event.MAX_DEPTH levels when made, naming the path", () => {
  assert.equal(Event.MAX_DEPTH, 64);
  for (const field of ["payload", "metadata"]) {
    const deepest = make({ [field]: nested(64) });
    for (const e of rebuilt(deepest)) {
      assert.deepEqual(e.toDict(), deepest.toDict());
    }
    for (const depth of [65, 3_000, 10_000, 100_000]) {
      assert.throws(() => make({ [field]: nested(depth) }), (e: unknown) => {
        assert.ok(e instanceof TypeError, String(e));
        assert.match(
          e.message,
          new RegExp(
            `^Cannot carry ${field}\\.a\\[0\\]\\.a\\[0\\]\\.a…\\[0\\](\\.a\\[0\\]){2} \\(65 levels\\) as JSON: it is nested deeper than the limit of 64 levels; flatten it`,
          ),
        );
        return true;
      });
    }
  }
  const list: unknown[] = [];
  let inner = list;
  for (let i = 0; i < 100_000; i++) inner.push(inner = []);
  assert.throws(() => make({ payload: { list } }), /nested deeper/);
});

Deno.test("decoding refuses the same nesting, as EventFormatError naming the field, without overflowing the stack", () => {
  for (const field of ["payload", "metadata"]) {
    const at = (depth: number) =>
      wire(field, JSON.stringify(nested(depth))) as string;
    assert.equal(Event.fromJSON(at(64)).toJSONString(), at(64));
    const arrays = (n: number) =>
      wire(field, `{"a":${"[".repeat(n)}1${"]".repeat(n)}}`);
    for (const text of [at(65), at(8_000), arrays(64), arrays(100_000)]) {
      for (const decode of [Event.fromJSON, Event.fromDict]) {
        const input = decode === Event.fromJSON ? text : JSON.parse(text);
        assert.throws(() => decode(input), (e: unknown) => {
          assert.ok(e instanceof EventFormatError, String(e));
          assert.equal(e.field, field);
          assert.match(e.message, /nested deeper than the limit of 64 levels/);
          return true;
        });
      }
    }
  }
});

// --- Well-formed Unicode ------------------------------------------------------

const LONE = [
  "lone\uD800x",
  "\uDC00",
  "end\uD800",
  "\uD800\uD800",
  "\uDE00\uD83D",
];

Deno.test("new Event refuses text that is not well-formed Unicode, naming the field", () => {
  for (const bad of LONE) {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ topic: bad }, /topic must be well-formed Unicode/],
      [{ eventId: bad }, /eventId must be well-formed Unicode/],
      [{ source: bad }, /source must be well-formed Unicode/],
      [{ correlationId: bad }, /correlationId must be well-formed Unicode/],
      [{ payload: { a: [bad] } }, /payload\.a\[0\] as JSON: it is text/],
      [
        { metadata: { [bad]: 1 } },
        /metadata\[".*"\] as JSON: it is under a key/,
      ],
      [{ payload: { x: { [bad]: 1 } } }, /payload\.x\[".*"\] as JSON/],
    ];
    for (const [fields, message] of cases) {
      assert.throws(() => make(fields), (e: unknown) => {
        assert.ok(e instanceof TypeError, String(e));
        assert.match(e.message, message);
        assert.match(
          e.message,
          /a lone surrogate \\uD[89A-F][0-9A-F]{2} at index \d+/,
        );
        return true;
      });
    }
    assert.throws(() => make({}).withCorrelation(bad), /correlationId must/);
  }
  // Surrogate pairs are whole characters.
  const astral = "\uD83D\uDE00 \u{10FFFF}";
  const event = make({
    topic: astral,
    eventId: astral,
    source: astral,
    correlationId: astral,
    payload: { [astral]: astral },
  });
  assert.deepEqual(
    Event.fromJSON(event.toJSONString()).toDict(),
    event.toDict(),
  );
});

Deno.test("publish and subscribe refuse topics and patterns that are not well-formed Unicode", async () => {
  await using bus = createEventBus();
  await bus.connect();
  const event = make({});
  for (const bad of LONE) {
    await assert.rejects(
      bus.publish(bad, event),
      /Cannot publish: topic must be well-formed Unicode/,
    );
    await assert.rejects(
      bus.subscribe(bad, () => {}),
      /Cannot subscribe: topic must be well-formed Unicode/,
    );
    await assert.rejects(
      bus.subscribe("label", () => {}, `${bad}*`),
      /Invalid pattern .* not well-formed Unicode/,
    );
  }
});

Deno.test("decoding refuses text that is not well-formed Unicode, naming the field", () => {
  // JSON.stringify writes a lone surrogate as an escape, "\ud800", which
  // JSON.parse reads back as the lone surrogate.
  assert.equal(JSON.stringify("\uD800"), '"\\ud800"');
  for (const bad of LONE) {
    const json = JSON.stringify(bad);
    const cases: [string, string][] = [
      [wire("topic", json), "topic"],
      [wire("event_id", json), "event_id"],
      [wire("source", json), "source"],
      [wire("correlation_id", json), "correlation_id"],
      [wire("payload", `{"a":{"b":[${json}]}}`), "payload"],
      [wire("metadata", `{${json}:1}`), "metadata"],
    ];
    for (const [text, field] of cases) {
      for (const input of [text, JSON.parse(text)]) {
        assert.throws(
          () =>
            typeof input === "string"
              ? Event.fromJSON(input)
              : Event.fromDict(input),
          (e: unknown) => {
            assert.ok(e instanceof EventFormatError, String(e));
            assert.equal(e.field, field);
            assert.match(e.message, /well-formed Unicode/);
            return true;
          },
        );
      }
    }
  }
});

// --- Numbers and timestamps -------------------------------------------------

Deno.test("-0 becomes 0, as JSON writes it, when made and when decoded", () => {
  const event = make({ payload: { z: -0, list: [-0, 1] } });
  assert.ok(Object.is(event.payload.z, 0));
  assert.ok(Object.is((event.payload.list as number[])[0], 0));
  const decoded = Event.fromJSON(wire("payload", '{"z":-0.0,"l":[-0]}'));
  assert.deepEqual(decoded.payload, { z: 0, l: [0] });
  assert.ok(Object.isFrozen(decoded.payload.l));
});

Deno.test("timestamps cover Python's datetime range, years 1 to 9999 in UTC, and no more", () => {
  const good: [string, string][] = [
    ["0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00.000000+00:00"],
    ["0099-12-31T23:59:59.999999Z", "0099-12-31T23:59:59.999999+00:00"],
    ["0100-03-01T00:00:00.5+00:00", "0100-03-01T00:00:00.500000+00:00"],
    ["0001-01-01T01:30:00+01:30", "0001-01-01T00:00:00.000000+00:00"],
    ["9999-12-31T23:59:59.999999+00:00", "9999-12-31T23:59:59.999999+00:00"],
  ];
  for (const [timestamp, canonical] of good) {
    const event = make({ timestamp });
    assert.equal(event.toDict().timestamp, canonical);
    assert.equal(event.timestamp.toISOString(), `${canonical.slice(0, 23)}Z`);
    assert.equal(
      Event.fromDict({ ...PYTHON, timestamp }).toDict().timestamp,
      canonical,
    );
  }
  const bad = [
    "0000-12-31T23:59:59+00:00",
    "0001-01-01T00:30:00+01:00",
    "9999-12-31T23:30:00-01:00",
    "2026-01-01T00:00:00+24:00",
    "2026-01-01T00:00:00+00:60",
  ];
  for (const timestamp of bad) {
    assert.throws(
      () => make({ timestamp }),
      /timestamp must be .*years 1 to 9999/,
    );
    assert.throws(
      () => Event.fromDict({ ...PYTHON, timestamp }),
      (e: unknown) => e instanceof EventFormatError && e.field === "timestamp",
    );
  }
  for (const ms of [-62135596800001, 253402300800000, 8.64e15]) {
    assert.throws(
      () => make({ timestamp: new Date(ms) }),
      /timestamp must be in years 1 to 9999/,
    );
  }
});
