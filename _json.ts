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
    for (const child of Object.values(value)) deepFreeze(child);
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

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?(Z|z|[+-]\d{2}:?\d{2})$/;

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Parses ISO 8601 with an offset; returns null when `text` is not one. */
export function parseInstant(text: string): Instant | null {
  const m = ISO.exec(text);
  if (m === null) return null;
  const [, y, mo, d, h, mi, s, frac = "", zone = "Z"] = m;
  const fraction = frac.padEnd(6, "0");
  const year = +y!, month = +mo!, day = +d!;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = month === 2 ? (leap ? 29 : 28) : DAYS[month - 1];
  if (
    days === undefined || day < 1 || day > days || +h! > 23 || +mi! > 59 ||
    +s! > 59
  ) return null;
  const base = Date.UTC(year, month - 1, day, +h!, +mi!, +s!);
  let offsetMinutes = 0;
  if (zone !== "Z" && zone !== "z") {
    const digits = zone.replace(":", "");
    offsetMinutes = (+digits.slice(1, 3) * 60 + +digits.slice(3, 5)) *
      (zone[0] === "-" ? -1 : 1);
  }
  return {
    ms: base + +fraction.slice(0, 3) - offsetMinutes * 60_000,
    micros: +fraction.slice(3, 6),
  };
}

/** Formats as Python's `datetime.isoformat()` does for UTC times. */
export function formatInstant({ ms, micros }: Instant): string {
  const iso = new Date(ms).toISOString(); // 2026-11-26T23:42:51.095Z
  return `${iso.slice(0, -1)}${String(micros).padStart(3, "0")}+00:00`;
}
