// fast-check generators (arbitraries) for events and their parts: what a
// user may hand to `new Event`, edge cases included. The property tests use
// them; so can tests that publish across backends.
import fc from "fast-check";
import { Event, type EventInit, EventType, type JsonValue } from "../mod.ts";

/** How deeply payload and metadata may nest (see `Event.MAX_DEPTH`). */
export const MAX_DEPTH: number = Event.MAX_DEPTH;

/** Keys that name something on `Object.prototype`, or look odd. */
export const ODD_KEYS: readonly string[] = [
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "valueOf",
  "hasOwnProperty",
  "isPrototypeOf",
  "__defineGetter__",
  "__lookupSetter__",
  "",
  " ",
  "0",
  "1e3",
  "-1",
  "01",
  "4294967294",
  "4294967295",
  "9007199254740993",
  "NaN",
  "a.b",
  '"',
  "\u0000",
  "😀",
];

/** Numbers at the edges of what JSON and doubles carry (`-0` included). */
export const EDGE_NUMBERS: readonly number[] = [
  0,
  -0,
  1,
  -1,
  0.1,
  1e308,
  -1e308,
  Number.MAX_VALUE,
  5e-324,
  -5e-324,
  Number.EPSILON,
  Number.MAX_SAFE_INTEGER,
  Number.MIN_SAFE_INTEGER,
  Number.MAX_SAFE_INTEGER + 2,
  2 ** 53,
  2 ** 64,
  1e21,
  1e-7,
  123456789.12345679,
];

/** Any well-formed Unicode text: astral characters, controls, empty. */
export const text: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: "binary" }),
  fc.string({ unit: "binary-ascii" }),
  fc.string({ unit: "grapheme", maxLength: 5 }),
);

/** A topic: any non-empty well-formed text, now and then a long one. */
export const topic: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: text.filter((t) => t !== "") },
  { weight: 1, arbitrary: fc.constantFrom("registry:bots", "a:b.c-d", "*") },
  {
    weight: 1,
    arbitrary: fc.string({ unit: "binary", minLength: 1 }).map((t) =>
      t.repeat(Math.ceil(5000 / t.length))
    ),
  },
);

/** A key: an odd one, any text, or a long one. */
export const key: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...ODD_KEYS),
  text,
  fc.constantFrom("k".repeat(10_000)),
);

/** A number JSON carries: an edge case or any finite double. */
export const number: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(...EDGE_NUMBERS),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
);

const leaf: fc.Arbitrary<JsonValue> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  number,
  text,
);

/** Builds an ordinary object with own data properties, `__proto__` too. */
const object = <T>(entries: [string, T][]): Record<string, T> =>
  Object.fromEntries(entries);

/** A JSON value nesting at most `depth` levels (the value itself is 1). */
export function jsonValue(depth: number): fc.Arbitrary<JsonValue> {
  if (depth <= 0) return leaf;
  const inner = jsonValue(depth - 1);
  return fc.oneof(
    { weight: 3, arbitrary: leaf },
    { weight: 1, arbitrary: fc.array(inner, { maxLength: 4 }) },
    {
      weight: 1,
      arbitrary: fc.array(fc.tuple(key, inner), { maxLength: 4 }).map(object),
    },
  );
}

/** A payload or metadata object, up to `depth` levels deep. */
export function jsonObject(depth = 4): fc.Arbitrary<Record<string, JsonValue>> {
  return fc.array(fc.tuple(key, jsonValue(depth - 1)), { maxLength: 5 }).map(
    object,
  );
}

/**
 * An object nesting exactly `depth` levels: objects and arrays in turn
 * (keys from `keys`), with `leaf` at the bottom.
 */
export function nested(
  depth: number,
  leafValue: JsonValue = 1,
  keys: readonly string[] = ["a"],
): Record<string, JsonValue> {
  let value: JsonValue = leafValue;
  for (let level = depth; level > 1; level--) {
    value = level % 2 === 0
      ? [value]
      : object([[keys[level % keys.length]!, value]]);
  }
  return object([[keys[0]!, value]]);
}

/** An object nesting 1 to `MAX_DEPTH + 8` levels (past the limit too). */
export const nestedObject: fc.Arbitrary<
  { depth: number; value: Record<string, JsonValue> }
> = fc.record({
  depth: fc.integer({ min: 1, max: MAX_DEPTH + 8 }),
  leaf: leaf,
  keys: fc.array(key, { minLength: 1, maxLength: 3 }),
}).map(({ depth, leaf, keys }) => ({
  depth,
  value: nested(depth, leaf, keys),
}));

const pad = (n: number, width: number) => String(n).padStart(width, "0");

/**
 * A UTC time as Python's `datetime.isoformat()` writes it (years 1 to 9999,
 * microseconds, no fraction when they are 0), with `+00:00` or `Z`, and
 * what it means: `ms` since 1970 and the `micros` below the millisecond.
 */
export const timestamp: fc.Arbitrary<
  { text: string; ms: number; micros: number; canonical: string }
> = fc.record({
  year: fc.oneof(
    fc.integer({ min: 1, max: 9999 }),
    fc.constantFrom(1, 99, 100, 1582, 1969, 1970, 2000, 9999),
  ),
  month: fc.integer({ min: 1, max: 12 }),
  day: fc.integer({ min: 1, max: 31 }),
  hour: fc.integer({ min: 0, max: 23 }),
  minute: fc.integer({ min: 0, max: 59 }),
  second: fc.integer({ min: 0, max: 59 }),
  micro: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 999_999 })),
  zone: fc.constantFrom("+00:00", "Z"),
}).map(({ year, month, day, hour, minute, second, micro, zone }) => {
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, 1);
  const last = new Date(date);
  last.setUTCMonth(month, 0);
  date.setUTCDate(Math.min(day, last.getUTCDate()));
  date.setUTCHours(hour, minute, second, Math.floor(micro / 1000));
  const ymd = `${pad(year, 4)}-${pad(month, 2)}-${pad(date.getUTCDate(), 2)}`;
  const hms = `${pad(hour, 2)}:${pad(minute, 2)}:${pad(second, 2)}`;
  const fraction = micro === 0 ? "" : `.${pad(micro, 6)}`;
  return {
    text: `${ymd}T${hms}${fraction}${zone}`,
    ms: date.getTime(),
    micros: micro % 1000,
    canonical: `${ymd}T${hms}.${pad(micro, 6)}+00:00`,
  };
});

/** Text with at least one lone surrogate somewhere (not well-formed). */
export const illFormedText: fc.Arbitrary<string> = fc.tuple(
  fc.string({ unit: "binary", maxLength: 4 }),
  fc.oneof(
    fc.integer({ min: 0xd800, max: 0xdfff }).map((u) => String.fromCharCode(u)),
    fc.constantFrom("\uDE00\uD83D", "\uD800\uD800"),
  ),
  fc.string({ unit: "binary", maxLength: 4 }),
).map(([before, lone, after]) =>
  // `before` and `after` hold whole code points: the surrogate pairs with
  // neither.
  `${before}${lone}${after}`
);

/** An `EventInit` every backend must accept and deliver unchanged. */
export const eventInit: fc.Arbitrary<EventInit> = fc.record({
  type: fc.constantFrom(...Object.values(EventType)),
  topic,
  payload: jsonObject(),
  timestamp: fc.oneof(
    timestamp.map((t) => t.text),
    fc.date({
      min: new Date("0001-01-01T00:00:00Z"),
      max: new Date("9999-12-31T23:59:59.999Z"),
      noInvalidDate: true,
    }),
  ),
  eventId: text.filter((t) => t !== ""),
  source: fc.option(text),
  correlationId: fc.option(text),
  metadata: jsonObject(3),
}, { requiredKeys: ["type", "topic"] });
