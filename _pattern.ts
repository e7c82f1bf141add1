// Python fnmatch (fnmatchcase) patterns, compiled to RegExp without eval.

const SYNTAX = /[\\^$.*+?()[\]{}|/]/g;
const CLASS_SYNTAX = /[\\\]\[^\-]/g;

/**
 * Compiles an fnmatch pattern into an anchored RegExp with the same meaning
 * as Python's `fnmatch.fnmatchcase`: `*` any run of characters, `?` one
 * character, `[seq]`, `[!seq]` and ranges; an unterminated `[` and every
 * other character, backslash included, are literal.
 */
export function compilePattern(pattern: string): RegExp {
  const chars = Array.from(pattern);
  let source = "";
  let i = 0;
  while (i < chars.length) {
    const c = chars[i++]!;
    if (c === "*") {
      if (!source.endsWith(".*")) source += ".*";
    } else if (c === "?") {
      source += ".";
    } else if (c === "[") {
      const end = setEnd(chars, i);
      if (end < 0) {
        source += "\\[";
      } else {
        source += compileSet(chars.slice(i, end));
        i = end + 1;
      }
    } else {
      source += c.replace(SYNTAX, "\\$&");
    }
  }
  return new RegExp(`^(?:${source})$`, "su");
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
 * Compiles the body of a set as fnmatch does: a `-` between two characters
 * makes a range (the first character of the body never starts one), empty
 * ranges such as `z-a` match nothing, and a leading `!` negates.
 */
function compileSet(body: string[]): string {
  const negated = body[0] === "!";
  const items = negated ? body.slice(1) : body;
  // Split into chunks at each range hyphen, as fnmatch.translate does.
  const chunks: string[][] = [];
  let from = 0;
  let k = 1;
  for (;;) {
    const dash = items.indexOf("-", k);
    if (dash < 0) break;
    chunks.push(items.slice(from, dash));
    from = dash + 1;
    k = dash + 3;
  }
  const last = items.slice(from);
  if (last.length > 0 || chunks.length === 0) chunks.push(last);
  else chunks[chunks.length - 1]!.push("-");
  // Drop empty ranges: the end of one chunk greater than the start of the next.
  for (let c = chunks.length - 1; c > 0; c--) {
    const left = chunks[c - 1]!;
    const right = chunks[c]!;
    if (
      left.length > 0 && right.length > 0 &&
      left.at(-1)!.codePointAt(0)! > right[0]!.codePointAt(0)!
    ) {
      chunks[c - 1] = [...left.slice(0, -1), ...right.slice(1)];
      chunks.splice(c, 1);
    }
  }
  const escape = (s: string) => s.replace(CLASS_SYNTAX, "\\$&");
  const body2 = chunks.map((chunk) => chunk.map(escape).join("")).join("-");
  if (body2 === "") return negated ? "." : "(?!)";
  return negated ? `[^${body2}]` : `[${body2}]`;
}
