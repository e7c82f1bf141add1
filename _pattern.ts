// Python fnmatch (fnmatchcase) patterns: parsed once into tokens, compiled to
// an anchored RegExp (never eval) and, for Redis PSUBSCRIBE, to a glob that
// matches at least the same topics.

type Token =
  | { readonly kind: "star" }
  | { readonly kind: "any" }
  | { readonly kind: "char"; readonly char: string }
  | {
    readonly kind: "set";
    readonly negated: boolean;
    /** Inclusive code point ranges. */
    readonly ranges: readonly (readonly [number, number])[];
  };

/**
 * Parses as `fnmatch.translate` does: `*`, `?`, `[seq]`, `[!seq]` with
 * ranges; an unterminated `[` and every other character, backslash
 * included, are literal.
 */
function parse(pattern: string): Token[] {
  const chars = Array.from(pattern);
  const tokens: Token[] = [];
  let i = 0;
  while (i < chars.length) {
    const c = chars[i++]!;
    if (c === "*") {
      if (tokens.at(-1)?.kind !== "star") tokens.push({ kind: "star" });
    } else if (c === "?") {
      tokens.push({ kind: "any" });
    } else if (c === "[" && setEnd(chars, i) >= 0) {
      const end = setEnd(chars, i);
      tokens.push(parseSet(chars.slice(i, end)));
      i = end + 1;
    } else {
      tokens.push({ kind: "char", char: c });
    }
  }
  return tokens;
}

/** Index of the `]` closing a set whose body starts at `start`, or -1. */
function setEnd(chars: string[], start: number): number {
  let j = start;
  if (chars[j] === "!") j++;
  if (chars[j] === "]") j++;
  while (j < chars.length && chars[j] !== "]") j++;
  return j < chars.length ? j : -1;
}

/**
 * Parses the body of a set as fnmatch does: a `-` between two characters
 * makes a range (the first character never starts at a `-`), and empty
 * ranges such as `z-a` are dropped along with their ends.
 */
function parseSet(body: string[]): Token {
  const negated = body[0] === "!";
  const items = (negated ? body.slice(1) : body).map((c) => c.codePointAt(0)!);
  const HYPHEN = 0x2d;
  // Chunks split at each range hyphen, as fnmatch.translate splits them.
  const chunks: number[][] = [];
  let from = 0;
  for (let k = 1;;) {
    const dash = items.indexOf(HYPHEN, k);
    if (dash < 0) break;
    chunks.push(items.slice(from, dash));
    from = dash + 1;
    k = dash + 3;
  }
  const last = items.slice(from);
  if (last.length > 0 || chunks.length === 0) chunks.push(last);
  else chunks.at(-1)!.push(HYPHEN);
  for (let c = chunks.length - 1; c > 0; c--) {
    const left = chunks[c - 1]!, right = chunks[c]!;
    if (left.length > 0 && right.length > 0 && left.at(-1)! > right[0]!) {
      chunks[c - 1] = [...left.slice(0, -1), ...right.slice(1)];
      chunks.splice(c, 1);
    }
  }
  // Adjacent chunks are joined by a range: the last of one to the first of
  // the next; every other code point stands for itself.
  const ranges: [number, number][] = [];
  chunks.forEach((chunk, c) => {
    const first = c > 0 ? 1 : 0;
    for (let k = first; k < chunk.length; k++) {
      const point = chunk[k]!;
      const next = chunks[c + 1];
      if (k === chunk.length - 1 && next !== undefined) {
        ranges.push([point, next[0]!]);
      } else {
        ranges.push([point, point]);
      }
    }
  });
  return { kind: "set", negated, ranges };
}

const SYNTAX = /[\\^$.*+?()[\]{}|/]/;
const CLASS_SYNTAX = /[\\^[\]\-]/;
const escapeRegExp = (c: string) => SYNTAX.test(c) ? `\\${c}` : c;
const escapeClass = (c: string) => CLASS_SYNTAX.test(c) ? `\\${c}` : c;

/**
 * Compiles an fnmatch pattern into an anchored RegExp with the meaning of
 * Python's `fnmatch.fnmatchcase` (code points, newlines included).
 */
export function compilePattern(pattern: string): RegExp {
  let source = "";
  for (const token of parse(pattern)) {
    if (token.kind === "star") source += ".*";
    else if (token.kind === "any") source += ".";
    else if (token.kind === "char") source += escapeRegExp(token.char);
    else if (token.ranges.length === 0) source += token.negated ? "." : "(?!)";
    else {
      const body = token.ranges.map(([lo, hi]) => {
        const a = escapeClass(String.fromCodePoint(lo));
        return lo === hi ? a : `${a}-${escapeClass(String.fromCodePoint(hi))}`;
      }).join("");
      source += token.negated ? `[^${body}]` : `[${body}]`;
    }
  }
  return new RegExp(`^(?:${source})$`, "su");
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
    else if (token.kind === "char") glob += escapeGlob(token.char);
    else if (
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
