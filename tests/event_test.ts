import assert from "node:assert/strict";
import { Event, EventFormatError, EventType } from "../mod.ts";

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

Deno.test("Event() fills the seed's defaults", () => {
  const before = Date.now();
  const event = new Event({ type: EventType.CREATED, topic: "t" });
  assert.deepEqual(event.payload, {});
  assert.deepEqual(event.metadata, {});
  assert.equal(event.source, null);
  assert.equal(event.correlationId, null);
  assert.match(event.eventId, /^[0-9a-f-]{36}$/);
  assert.ok(
    event.timestamp.getTime() >= before &&
      event.timestamp.getTime() <= Date.now(),
  );
  assert.notEqual(
    new Event({ type: "created", topic: "t" }).eventId,
    event.eventId,
  );
});

Deno.test("Event is immutable, deeply, and does not freeze the caller's objects", () => {
  const payload = { nested: { n: 1 }, list: [1] };
  const event = new Event({ type: "created", topic: "t", payload });
  assert.throws(() => {
    (event as { topic: string }).topic = "x";
  }, TypeError);
  assert.throws(() => {
    (event.payload.nested as Record<string, unknown>).n = 2;
  }, TypeError);
  assert.throws(() => (event.payload.list as unknown[]).push(2), TypeError);
  payload.nested.n = 3; // the caller's object stays theirs
  assert.equal((event.payload.nested as Record<string, number>).n, 1);
  event.timestamp.setTime(0);
  assert.notEqual(event.timestamp.getTime(), 0);
});

Deno.test("withCorrelation() returns a copy with only the correlation id changed", () => {
  const event = Event.fromDict(PYTHON);
  const copy = event.withCorrelation("c-1");
  assert.equal(copy.correlationId, "c-1");
  assert.equal(event.correlationId, null);
  assert.deepEqual({ ...copy.toDict(), correlation_id: null }, event.toDict());
});

Deno.test("toDict() and fromDict() round trip the Python wire object exactly", () => {
  const event = Event.fromDict(PYTHON);
  assert.deepEqual(event.toDict(), PYTHON);
  assert.deepEqual(JSON.parse(event.toJSONString()), PYTHON);
  assert.deepEqual(JSON.parse(JSON.stringify(event)), PYTHON);
  assert.deepEqual(Event.fromJSON(event.toJSONString()).toDict(), PYTHON);
});

Deno.test("fromDict() reads Z, offsets, and millisecond or microsecond fractions", () => {
  const at = (timestamp: string) => Event.fromDict({ ...PYTHON, timestamp });
  assert.equal(
    at("2026-11-26T23:42:51.095270Z").toDict().timestamp,
    PYTHON.timestamp,
  );
  assert.equal(
    at("2026-11-26T23:42:51.095Z").toDict().timestamp,
    "2026-11-26T23:42:51.095000+00:00",
  );
  assert.equal(
    at("2026-11-26T23:42:51+00:00").toDict().timestamp,
    "2026-11-26T23:42:51.000000+00:00",
  );
  assert.equal(
    at("2026-11-27T01:42:51.095270+02:00").toDict().timestamp,
    PYTHON.timestamp,
  );
  assert.equal(
    at("2026-11-26T23:42:51.095270+00:00").timestamp.toISOString(),
    "2026-11-26T23:42:51.095Z",
  );
});

Deno.test("fromDict() names the bad field", () => {
  const bad: [Record<string, unknown>, string][] = [
    [{ ...PYTHON, type: "exploded" }, "type"],
    [{ ...PYTHON, topic: "" }, "topic"],
    [{ ...PYTHON, timestamp: "2026-11-26T23:42:51" }, "timestamp"],
    [{ ...PYTHON, timestamp: "2026-13-26T23:42:51Z" }, "timestamp"],
    [{ ...PYTHON, timestamp: 1764200571 }, "timestamp"],
    [{ ...PYTHON, event_id: 7 }, "event_id"],
    [{ ...PYTHON, source: 1 }, "source"],
    [{ ...PYTHON, correlation_id: {} }, "correlation_id"],
    [{ ...PYTHON, payload: [1] }, "payload"],
    [{ ...PYTHON, metadata: "x" }, "metadata"],
    [{ ...PYTHON, payload: { n: 1n } }, "payload"],
  ];
  for (const [dict, field] of bad) {
    assert.throws(() => Event.fromDict(dict), (e: unknown) => {
      assert.ok(e instanceof EventFormatError, String(e));
      assert.equal(e.field, field);
      assert.match(e.message, new RegExp(`Invalid event: "${field}"`));
      return true;
    });
  }
  for (const garbage of [null, [], "x", 3]) {
    assert.throws(
      () => Event.fromDict(garbage),
      (e: unknown) => e instanceof EventFormatError && e.field === null,
    );
  }
  assert.throws(
    () => Event.fromJSON("{not json"),
    /Invalid event: the message is not JSON/,
  );
});

Deno.test("fromDict() accepts missing optional fields", () => {
  const {
    payload: _p,
    source: _s,
    correlation_id: _c,
    metadata: _m,
    ...required
  } = PYTHON;
  const event = Event.fromDict(required);
  assert.deepEqual(event.toDict(), { ...PYTHON, payload: {} });
});

Deno.test("Event() refuses what JSON cannot carry, naming where it is", () => {
  const cyclic: Record<string, unknown> = { a: [] };
  (cyclic.a as unknown[]).push(cyclic);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ deep: { big: 1n } }, /payload\.deep\.big .*BigInt/],
    [cyclic, /payload\.a\[0\] .*cycle/],
    [{ f() {} }, /payload\.f .*function/],
    [{ s: Symbol() }, /payload\.s .*symbol/],
    [{ [Symbol("k")]: 1 }, /payload .*symbol keys/],
    [{ d: new Date() }, /payload\.d .*Date/],
    [{ m: new Map() }, /payload\.m .*Map/],
    [{ u: undefined }, /payload\.u .*undefined/],
    [{ i: Infinity }, /payload\.i .*Infinity/],
    // deno-lint-ignore no-sparse-arrays
    [{ holes: [1, , 3] }, /payload\.holes\[1\] .*hole/],
  ];
  for (const [payload, message] of cases) {
    assert.throws(
      () => new Event({ type: "created", topic: "t", payload }),
      (e: unknown) => e instanceof TypeError && message.test(e.message),
    );
  }
  assert.throws(
    () => new Event({ type: "created", topic: "t", metadata: { x: 1n } }),
    /metadata\.x/,
  );
  // Shared (non-cyclic) references are fine.
  const shared = { n: 1 };
  assert.deepEqual(
    new Event({
      type: "created",
      topic: "t",
      payload: { a: shared, b: shared },
    }).payload,
    { a: { n: 1 }, b: { n: 1 } },
  );
});

Deno.test("Event() checks its other fields", () => {
  assert.throws(
    () => new Event({ type: "nope" as never, topic: "t" }),
    /type must be one of created, updated/,
  );
  assert.throws(
    () => new Event({ type: "created", topic: "" }),
    /topic must be a non-empty string/,
  );
  assert.throws(
    () => new Event({ type: "created", topic: "t", eventId: "" }),
    /eventId/,
  );
  assert.throws(
    () => new Event({ type: "created", topic: "t", timestamp: new Date(NaN) }),
    /invalid Date/,
  );
  assert.throws(
    () => new Event({ type: "created", topic: "t", timestamp: "yesterday" }),
    /timestamp must be/,
  );
  assert.throws(
    () => new Event({ type: "created", topic: "t", source: 3 as never }),
    /source must be a string or null/,
  );
});

Deno.test("EventType holds the seed's seven values", () => {
  assert.deepEqual(Object.values(EventType), [
    "created",
    "updated",
    "deleted",
    "activated",
    "deactivated",
    "error",
    "custom",
  ]);
});
