// Private helpers for the wire format: JSON-faithful copies and timestamps.

import type { JsonValue } from "./types.ts";

/**
 * Returns a frozen deep copy of `value`, or throws a TypeError naming the
 * first part of it (as a path from `path`) that JSON cannot carry faithfully.
 */
export function frozenJsonCopy(
  value: unknown,
  path: string,
  seen: unknown[] = [],
): JsonValue {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      if (Number.isFinite(value)) return value;
      throw notJson(path, `the number ${value}`, "use null or a string");
    case "object":
      if (value === null) return null;
      return copyContainer(value, path, seen);
    case "bigint":
      throw notJson(path, "a BigInt", "convert it to a string or a number");
    default:
      throw notJson(path, `a ${typeof value}`, "remove it");
  }
}

function copyContainer(value: object, path: string, seen: unknown[]) {
  if (seen.includes(value)) {
    throw notJson(path, "a reference to itself (a cycle)", "break the cycle");
  }
  seen.push(value);
  let copy: JsonValue;
  if (Array.isArray(value)) {
    const items: JsonValue[] = new Array(value.length);
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) throw notJson(`${path}[${i}]`, "a hole", "fill it");
      items[i] = frozenJsonCopy(value[i], `${path}[${i}]`, seen);
    }
    copy = items;
  } else {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      const kind = value.constructor?.name ?? "an object with a prototype";
      throw notJson(path, `a ${kind}`, "pass a plain object or a string");
    }
    if (Object.getOwnPropertySymbols(value).length > 0) {
      throw notJson(path, "an object with symbol keys", "use string keys");
    }
    const fields: Record<string, JsonValue> = {};
    for (const key of Object.keys(value)) {
      const child = (value as Record<string, unknown>)[key];
      const at = `${path}.${key}`;
      if (child === undefined) throw notJson(at, "undefined", "use null");
      fields[key] = frozenJsonCopy(child, at, seen);
    }
    copy = fields;
  }
  seen.pop();
  return Object.freeze(copy);
}

/** Freezes a value that came out of `JSON.parse`, in place. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    if (Array.isArray(value)) {
      for (const item of value) deepFreeze(item);
    } else {
      for (const key in value) deepFreeze(value[key]);
    }
    Object.freeze(value);
  }
  return value;
}

function notJson(path: string, what: string, fix: string): TypeError {
  return new TypeError(
    `Cannot carry ${path} as JSON: it is ${what}; ${fix}`,
  );
}

/** A point in time with microsecond precision, as Python writes it. */
export interface Instant {
  readonly ms: number;
  readonly micros: number;
}

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
 * not one. (Read by hand: it runs for every event that arrives.)
 */
export function parseInstant(text: string): Instant | null {
  const year = digits(text, 0, 4), month = digits(text, 5, 2);
  const day = digits(text, 8, 2), hour = digits(text, 11, 2);
  const minute = digits(text, 14, 2), second = digits(text, 17, 2);
  const t = text[10];
  if (
    text[4] !== "-" || text[7] !== "-" || (t !== "T" && t !== " ") ||
    text[13] !== ":" || text[16] !== ":" || year < 0 || month < 1 ||
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
    if (h < 0 || m < 0 || at + 5 + colon !== text.length) return null;
    offset = (h * 60 + m) * (zone === "-" ? -1 : 1);
  } else {
    return null;
  }
  const base = Date.UTC(year, month - 1, day, hour, minute, second);
  return { ms: base + millis - offset * 60_000, micros };
}

/** Formats as Python's `datetime.isoformat()` does for UTC times. */
export function formatInstant({ ms, micros }: Instant): string {
  const iso = new Date(ms).toISOString(); // 2026-11-26T23:42:51.095Z
  return `${iso.slice(0, -1)}${String(micros).padStart(3, "0")}+00:00`;
}
