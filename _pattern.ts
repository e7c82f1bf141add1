// Python fnmatch (fnmatchcase) patterns: parsed once into tokens, compiled to
// an anchored RegExp that cannot backtrack exponentially (never eval) and,
// for Redis PSUBSCRIBE, to a glob that matches at least the same topics.

import { loneSurrogate } from "./_json.ts";

type Token =
  | { readonly kind: "star" }
  | { readonly kind: "any" }
  | { readonly kind: "char"; readonly point: number }
  | {
    readonly kind: "set";
    readonly negated: boolean;
    /** Inclusive code point ranges. */
    readonly ranges: readonly (readonly [number, number])[];
  };

const BANG = 0x21, HYPHEN = 0x2d, CLOSE = 0x5d;

/**
 * Parses as `fnmatch.translate` does, on code points: `*`, `?`, `[seq]`,
 * `[!seq]` with ranges; an unterminated `[` and every other character,
 * backslash included, are literal.
 */
function parse(pattern: string): Token[] {
  const points = Array.from(pattern, (c) => c.codePointAt(0)!);
  const tokens: Token[] = [];
  let i = 0;
  while (i < points.length) {
    const c = String.fromCodePoint(points[i++]!);
    const end = c === "[" ? setEnd(points, i) : -1;
    if (c === "*") {
      if (tokens.at(-1)?.kind !== "star") tokens.push({ kind: "star" });
    } else if (c === "?") {
      tokens.push({ kind: "any" });
    } else if (end >= 0) {
      tokens.push(parseSet(points.slice(i, end)));
      i = end + 1;
    } else {
      tokens.push({ kind: "char", point: c.codePointAt(0)! });
    }
  }
  return tokens;
}

/** Index of the `]` closing a set whose body starts at `start`, or -1. */
function setEnd(points: number[], start: number): number {
  let j = start;
  if (points[j] === BANG) j++;
  if (points[j] === CLOSE) j++;
  while (j < points.length && points[j] !== CLOSE) j++;
  return j < points.length ? j : -1;
}

/**
 * Reads the body of a set (between `[` and `]`, `!` included) as
 * `fnmatch.translate` and then Python's `re` read it: the body is cut into
 * chunks at each range hyphen; an empty range such as `z-a` is removed by
 * joining its neighbours; the chunks are joined again with range hyphens
 * and a leading `!` of the result negates. (So `[--!!]`, whose range `--!`
 * is removed, reads as `[!!]`: any character but `!`, as in Python.)
 */
function parseSet(body: number[]): Token {
  let chunks = [body];
  if (body.includes(HYPHEN)) {
    chunks = [];
    let from = 0;
    for (let k = body[0] === BANG ? 2 : 1;;) {
      k = body.indexOf(HYPHEN, k);
      if (k < 0) break;
      chunks.push(body.slice(from, k));
      from = k + 1;
      k += 3;
    }
    const last = body.slice(from);
    if (last.length > 0) chunks.push(last);
    else chunks.at(-1)!.push(HYPHEN);
    for (let k = chunks.length - 1; k > 0; k--) {
      const left = chunks[k - 1]!, right = chunks[k]!;
      if (left.at(-1)! > right[0]!) {
        chunks[k - 1] = [...left.slice(0, -1), ...right.slice(1)];
        chunks.splice(k, 1);
      }
    }
  }
  // The class text, as code points and range hyphens (null).
  const items = chunks.flatMap((chunk, k) => k > 0 ? [null, ...chunk] : chunk);
  const negated = items[0] === BANG;
  if (negated) items.shift();
  // As `re` reads a class: an item, then `-` and an item, is a range; a
  // hyphen anywhere else is literal.
  const ranges: [number, number][] = [];
  for (let k = 0; k < items.length;) {
    const lo = items[k++] ?? HYPHEN;
    if (items[k] === null && k + 1 < items.length) {
      const hi = items[k + 1] ?? HYPHEN;
      if (lo <= hi) ranges.push([lo, hi]);
      k += 2;
    } else {
      ranges.push([lo, lo]);
    }
  }
  return { kind: "set", negated, ranges };
}

/** A code point as RegExp source (`u` flag), in and out of classes. */
const literal = (point: number) =>
  /^[A-Za-z0-9_]$/.test(String.fromCodePoint(point))
    ? String.fromCodePoint(point)
    : `\\u{${point.toString(16)}}`;

function tokenSource(token: Token): string {
  if (token.kind === "any") return ".";
  if (token.kind === "char") return literal(token.point);
  if (token.kind === "star") return ".*";
  const body = token.ranges.map(([lo, hi]) =>
    lo === hi ? literal(lo) : `${literal(lo)}-${literal(hi)}`
  ).join("");
  return token.negated ? `[^${body}]` : `[${body}]`;
}

/**
 * Compiles an fnmatch pattern into an anchored RegExp with the meaning of
 * Python's `fnmatch.fnmatchcase`: one character is one code point (a
 * surrogate pair is one character, a lone surrogate in a topic is one
 * character, as in Python's `str`), newlines included.
 *
 * Matching takes at most O(topic length × pattern length) steps, whatever
 * the input. As CPython's `fnmatch.translate` does, each `*` followed by
 * a fixed run before the next `*` matches the shortest text that ends with
 * that run, atomically (a lookahead with a backreference: the engine never
 * comes back to try a longer one). Taking the first fit is always right,
 * because every run has a fixed length: a later fit leaves less text for
 * the rest. Only the last `*` backtracks, over one run.
 *
 * @throws {TypeError} If the pattern is not well-formed Unicode (it holds
 * a lone surrogate): such a pattern cannot travel to Redis or Postgres.
 */
export function compilePattern(pattern: string): RegExp {
  const lone = loneSurrogate(pattern);
  if (lone !== null) {
    throw new TypeError(
      `Invalid pattern ${
        JSON.stringify(pattern)
      }: it is not well-formed Unicode (${lone}); remove the lone surrogate`,
    );
  }
  // The fixed runs between stars: head, the middle ones, tail.
  const runs = [""];
  for (const token of parse(pattern)) {
    if (token.kind === "star") runs.push("");
    else runs[runs.length - 1] += tokenSource(token);
  }
  let source = `^${runs[0]}`;
  if (runs.length > 1) {
    for (let n = 1; n < runs.length - 1; n++) {
      source += `(?=(.*?${runs[n]}))\\${n}`;
    }
    source += `.*${runs.at(-1)}`;
  }
  return new RegExp(`${source}$`, "su");
}

const GLOB_SPECIAL = /[*?[\]\\^-]/;
const escapeGlob = (c: string) => GLOB_SPECIAL.test(c) ? `\\${c}` : c;

/**
 * Translates an fnmatch pattern into a Redis glob that matches every topic
 * the pattern matches (Redis globs match bytes, fnmatch code points): `*`
 * stays; `?` becomes `?*` (one code point is one or more bytes); an ASCII
 * set stays a set (`[!` becomes `[^`, then `*` for the bytes of a wider
 * character); a set with other characters becomes `?*`; every literal is
 * escaped. The exact matcher still judges every message.
 */
export function toRedisGlob(pattern: string): string {
  let glob = "";
  for (const token of parse(pattern)) {
    if (token.kind === "star") glob += "*";
    else if (token.kind === "char") {
      glob += escapeGlob(String.fromCodePoint(token.point));
    } else if (
      token.kind === "any" || token.ranges.length === 0 ||
      token.ranges.some(([, hi]) => hi > 0x7f)
    ) glob += "?*";
    else {
      let body = "";
      for (const [lo, hi] of token.ranges) {
        for (let point = lo; point <= hi; point++) {
          body += escapeGlob(String.fromCodePoint(point));
        }
      }
      glob += token.negated ? `[^${body}]*` : `[${body}]`;
    }
  }
  return glob.replace(/\*(?:\?\*|\*)+/g, "*").replace(/\?\*\*+/g, "?*");
}

/** Escapes every character of `text` for a Redis glob. */
export function escapeRedisGlob(text: string): string {
  return Array.from(text, escapeGlob).join("");
}
