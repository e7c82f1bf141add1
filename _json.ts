// Private helpers for the wire format: JSON-faithful copies of payload and
// metadata, the checks every event's text and nesting pass, and timestamps.

import type { JsonValue } from "./types.ts";

/**
 * How deeply payload and metadata may nest, the object itself counting as
 * level 1: `{ a: { b: [1] } }` is 3 levels deep. The same limit holds when
 * an event is made and when one arrives, so whatever one bus sends another
 * accepts, and far below what Python's `json` (about 990 levels, its
 * recursion limit) and the JavaScript stack can carry.
 */
export const MAX_DEPTH = 64;

/**
 * An upper bound of the UTF-8 length of JSON text, added up while a value
 * is copied or checked (see {@linkcode textBytes}): the `maxEventBytes`
 * check then costs nothing for an event far below the limit.
 */
export interface Tally {
  bytes: number;
}

/**
 * At most the UTF-8 bytes JSON writes for a string (`null`: 4): the quotes,
 * and six bytes a UTF-16 unit (a control character becomes `\u00XX`;
 * anything else takes at most three bytes, a surrogate pair four for two
 * units).
 */
export function textBytes(text: string | null): number {
  return text === null ? 4 : text.length * 6 + 2;
}

/** The longest JSON text of a finite double: `-0.0000012345678901234567`. */
const NUMBER_BYTES = 25;

/** Where a value is: a root name, then keys and indexes. */
interface Path {
  readonly up: Path | null;
  readonly key: string | number;
}

/**
 * Returns a frozen deep copy of `value`, or throws a TypeError naming the
 * first part of it (a path from `name`) that JSON cannot carry faithfully,
 * that nests deeper than {@linkcode MAX_DEPTH}, or that is text (a key
 * too) that is not well-formed Unicode. Every key of the copy is an own
 * data property (made, never assigned, so `__proto__` stays a key) of an
 * ordinary object; `-0` becomes `0`, as JSON writes it.
 */
export function frozenJsonCopy(
  value: unknown,
  name: string,
  tally: Tally = { bytes: 0 },
): JsonValue {
  return copyValue(value, null, name, 1, new Set(), tally);
}

function copyValue(
  value: unknown,
  up: Path | null,
  key: string | number,
  depth: number,
  seen: Set<object>,
  tally: Tally,
): JsonValue {
  switch (typeof value) {
    case "string":
      tally.bytes += textBytes(value);
      return checkText(value, up, key);
    case "boolean":
      tally.bytes += 5;
      return value;
    case "number":
      tally.bytes += NUMBER_BYTES;
      if (Number.isFinite(value)) return value === 0 ? 0 : value;
      throw notJson({ up, key }, `the number ${value}`, "use null or a string");
    case "object":
      tally.bytes += 4;
      if (value === null) return null;
      return copyContainer(value, { up, key }, depth, seen, tally);
    case "bigint":
      throw notJson(
        { up, key },
        "a BigInt",
        "convert it to a string or a number",
      );
    default:
      throw notJson({ up, key }, `a ${typeof value}`, "remove it");
  }
}

function copyContainer(
  value: object,
  at: Path,
  depth: number,
  seen: Set<object>,
  tally: Tally,
): JsonValue {
  if (seen.has(value)) {
    throw notJson(at, "a reference to itself (a cycle)", "break the cycle");
  }
  if (depth > MAX_DEPTH) throw tooDeep(at);
  seen.add(value);
  let copy: JsonValue;
  if (Array.isArray(value)) {
    // Items go by index into a new array (an index is never a user's key).
    const items = new Array<JsonValue>(value.length);
    tally.bytes += value.length; // the commas
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) throw notJson({ up: at, key: i }, "a hole", "fill it");
      items[i] = copyValue(value[i], at, i, depth + 1, seen, tally);
    }
    copy = items;
  } else {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      const kind = value.constructor?.name ?? "an object with a prototype";
      throw notJson(at, `a ${kind}`, "pass a plain object or a string");
    }
    if (Object.getOwnPropertySymbols(value).length > 0) {
      throw notJson(at, "an object with symbol keys", "use string keys");
    }
    const fields = value as Record<string, unknown>;
    copy = Object.fromEntries(
      Object.keys(fields).map((key) => {
        checkKey(key, at);
        const child = fields[key];
        if (child === undefined) {
          throw notJson({ up: at, key }, "undefined", "use null");
        }
        tally.bytes += textBytes(key) + 2; // a colon and a comma
        return [key, copyValue(child, at, key, depth + 1, seen, tally)];
      }),
    );
  }
  seen.delete(value);
  return Object.freeze(copy);
}

/**
 * Checks a value that came out of `JSON.parse` as {@linkcode frozenJsonCopy}
 * checks its input (nesting, well-formed text; `-0` becomes `0`) and freezes
 * it in place: `JSON.parse` already made every key an own data property.
 */
export function freezeParsed(
  value: JsonValue,
  name: string,
  tally: Tally = { bytes: 0 },
): JsonValue {
  freezeItem(null, name, value, null, 1, tally);
  return value;
}

function freezeItem(
  parent: object | null,
  key: string | number,
  child: unknown,
  up: Path | null,
  depth: number,
  tally: Tally,
): void {
  if (typeof child === "string") {
    tally.bytes += textBytes(child);
    checkText(child, up, key);
  } else if (typeof child === "number") {
    tally.bytes += NUMBER_BYTES;
    if (Object.is(child, -0)) Object.defineProperty(parent!, key, { value: 0 });
  } else if (typeof child === "object" && child !== null) {
    const at = { up, key };
    if (depth > MAX_DEPTH) throw tooDeep(at);
    tally.bytes += 2;
    if (Array.isArray(child)) {
      tally.bytes += child.length; // the commas
      for (let i = 0; i < child.length; i++) {
        freezeItem(child, i, child[i], at, depth + 1, tally);
      }
    } else {
      const fields = child as Record<string, unknown>;
      for (const name of Object.keys(fields)) {
        checkKey(name, at);
        tally.bytes += textBytes(name) + 2; // a colon and a comma
        freezeItem(child, name, fields[name], at, depth + 1, tally);
      }
    }
    Object.freeze(child);
  } else {
    tally.bytes += 5; // true, false, null
  }
}

function checkText(text: string, up: Path | null, key: string | number) {
  if (text.isWellFormed()) return text;
  throw notJson(
    { up, key },
    `text that is not well-formed Unicode (${loneSurrogate(text)})`,
    "remove the lone surrogate, or send binary data as base64",
  );
}

function checkKey(key: string, at: Path): void {
  if (key.isWellFormed()) return;
  throw notJson(
    { up: at, key },
    `under a key that is not well-formed Unicode (${loneSurrogate(key)})`,
    "rename the key",
  );
}

/**
 * Describes the first lone surrogate in `text` (`a lone surrogate \uD800 at
 * index 4`), or returns null when `text` is well-formed Unicode.
 */
export function loneSurrogate(text: string): string | null {
  const found = text.isWellFormed() ? null : /\p{Cs}/u.exec(text);
  if (found === null) return null;
  const hex = found[0].charCodeAt(0).toString(16).toUpperCase();
  return `a lone surrogate \\u${hex} at index ${found.index}`;
}

function tooDeep(at: Path): TypeError {
  return notJson(
    at,
    `nested deeper than the limit of ${MAX_DEPTH} levels`,
    "flatten it, or send the deep part as a JSON string",
  );
}

function notJson(at: Path, what: string, fix: string): TypeError {
  return new TypeError(
    `Cannot carry ${render(at)} as JSON: it is ${what}; ${fix}`,
  );
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** `payload.user["a b"][0]`; a long path keeps its first and last parts. */
function render(path: Path): string {
  const parts: string[] = [];
  for (let at: Path | null = path; at !== null; at = at.up) {
    const { key } = at;
    if (at.up === null) parts.push(String(key));
    else if (typeof key === "number") parts.push(`[${key}]`);
    else if (IDENTIFIER.test(key)) parts.push(`.${key}`);
    else {
      parts.push(
        `[${JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key)}]`,
      );
    }
  }
  parts.reverse();
  if (parts.length <= 12) return parts.join("");
  const [head, tail] = [parts.slice(0, 6), parts.slice(-5)];
  return `${head.join("")}…${tail.join("")} (${parts.length} levels)`;
}

/** A point in time with microsecond precision, as Python writes it. */
export interface Instant {
  readonly ms: number;
  readonly micros: number;
}

/** The earliest and latest instants Python's `datetime` holds (years 1–9999). */
export const FIRST_MS = -62_135_596_800_000; // 0001-01-01T00:00:00Z
export const LAST_MS = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

// 400 Gregorian years are exactly 146,097 days: shifting by them keeps
// Date.UTC from reading years 0–99 as 1900–1999.
const FOUR_CENTURIES_MS = 146_097 * 86_400_000;

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** The number in `text` from `start` of `count` digits, or -1. */
function digits(text: string, start: number, count: number): number {
  let n = 0;
  for (let i = start; i < start + count; i++) {
    const d = text.charCodeAt(i) - 48;
    if (!(d >= 0 && d <= 9)) return -1;
    n = n * 10 + d;
  }
  return n;
}

/**
 * Parses ISO 8601 with an offset — `YYYY-MM-DDTHH:MM:SS[.f…](Z|±HH:MM|±HHMM)`,
 * 1 to 9 fraction digits, `T` or a space — and returns null when `text` is
 * not one, or names a time outside years 1–9999 in UTC (which Python's
 * `datetime` cannot hold). (Read by hand: it runs for every event that
 * arrives.)
 */
export function parseInstant(text: string): Instant | null {
  const year = digits(text, 0, 4), month = digits(text, 5, 2);
  const day = digits(text, 8, 2), hour = digits(text, 11, 2);
  const minute = digits(text, 14, 2), second = digits(text, 17, 2);
  const t = text[10];
  if (
    text[4] !== "-" || text[7] !== "-" || (t !== "T" && t !== " ") ||
    text[13] !== ":" || text[16] !== ":" || year < 1 || month < 1 ||
    month > 12 || hour < 0 || hour > 23 || minute < 0 || minute > 59 ||
    second < 0 || second > 59
  ) return null;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = month === 2 ? (leap ? 29 : 28) : DAYS[month - 1]!;
  if (day < 1 || day > days) return null;
  let at = 19, micros = 0, scale = 100_000, millis = 0;
  if (text[at] === "." || text[at] === ",") {
    const first = ++at;
    while (at < text.length && digits(text, at, 1) >= 0) {
      if (at - first < 6) micros += digits(text, at, 1) * scale;
      scale /= 10;
      at++;
    }
    if (at === first || at - first > 9) return null;
    millis = Math.floor(micros / 1000);
    micros %= 1000;
  }
  let offset = 0;
  const zone = text[at];
  if ((zone === "Z" || zone === "z") && at + 1 === text.length) {
    offset = 0;
  } else if (zone === "+" || zone === "-") {
    const colon = text[at + 3] === ":" ? 1 : 0;
    const h = digits(text, at + 1, 2), m = digits(text, at + 3 + colon, 2);
    if (h < 0 || h > 23 || m < 0 || m > 59) return null;
    if (at + 5 + colon !== text.length) return null;
    offset = (h * 60 + m) * (zone === "-" ? -1 : 1);
  } else {
    return null;
  }
  const ms = Date.UTC(year + 400, month - 1, day, hour, minute, second) -
    FOUR_CENTURIES_MS + millis - offset * 60_000;
  return ms >= FIRST_MS && ms <= LAST_MS ? { ms, micros } : null;
}

/** Formats as Python's `datetime.isoformat()` does for UTC times. */
export function formatInstant({ ms, micros }: Instant): string {
  const iso = new Date(ms).toISOString(); // 2026-11-26T23:42:51.095Z
  return `${iso.slice(0, -1)}${String(micros).padStart(3, "0")}+00:00`;
}

/**
 * The bytes of an event's JSON text besides its strings, payload and
 * metadata: the braces, the eight quoted keys with their colons and commas
 * (94), the longest type (`"deactivated"`, 13) and the timestamp (always
 * 32 characters, quoted).
 */
export const ENVELOPE_BYTES = 94 + 13 + 34;

/** The number of UTF-8 bytes of `text` (well-formed Unicode). */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    // Two bytes from U+0080, three from U+0800; a surrogate pair is four.
    if (unit >= 0x80) {
      bytes += unit < 0x800 || (unit & 0xf800) === 0xd800 ? 1 : 2;
    }
  }
  return bytes;
}
