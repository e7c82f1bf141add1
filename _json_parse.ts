// JSON.parse, safe from a V8 bug: once a text has given an object a key
// that is a backslash, a later object whose key at the same place is written
// with an escape (`"\""`, `"\n"`, `"\u0000"`, …) gets a backslash for that
// key instead (V8 follows the map transition of the earlier key: its raw
// text matches the escape's first character). Seen in V8 12.8 to 15.0 (Deno
// 2.x, Node 24 and 26), not in Node 20's:
// https://github.com/nodejs/node/issues/63785,
// https://issues.chromium.org/issues/521080746. A key silently renamed (and
// merged with a real backslash key) would be an event changed in transit.
//
// So a text with an escape in any key is parsed here instead: its structure
// by a small tokenizer, each string and number by JSON.parse alone (no
// object is made there, so no map transition is followed). Texts with no
// escaped key, nearly all, go to JSON.parse as they are.

/** One token: a string, a number, a literal, or punctuation. */
const TOKEN =
  /[ \t\n\r]*(?:("(?:[^"\\]|\\[^])*")|(-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)|(true|false|null)|([{}[\],:]))/y;

/** `JSON.parse(text)`, right also where V8's is not (see the top). */
export function parseJson(text: string): unknown {
  if (!hasEscapedKey(text)) return JSON.parse(text);
  const parser = new Parser(text);
  const value = parser.value();
  parser.end();
  return value;
}

/**
 * Whether a key (a string followed by `:`) holds an escape: one pass, from
 * string to string (between two strings of a JSON text there is no quote),
 * the next quote and the next backslash found with indexOf, each searched
 * again only once the pass has gone beyond it (linear in the text).
 */
function hasEscapedKey(text: string): boolean {
  let slash = text.indexOf("\\");
  if (slash < 0) return false;
  let quote = text.indexOf('"');
  while (quote >= 0) {
    // `quote` opens a string: find its end, past its escapes.
    let at = quote + 1, escaped = false;
    for (;;) {
      if (quote < at) quote = text.indexOf('"', at);
      if (quote < 0) return false;
      if (slash >= 0 && slash < at) slash = text.indexOf("\\", at);
      if (slash < 0 || slash > quote) break;
      escaped = true;
      at = slash + 2;
    }
    let next = quote + 1;
    while (" \t\n\r".includes(text[next] ?? ".")) next++;
    if (escaped && text[next] === ":") return true;
    quote = text.indexOf('"', next);
  }
  return false;
}

/** A token: its text, and its kind (the TOKEN group it matched). */
type Token = readonly [text: string, kind: number];

/** The kinds of token: TOKEN's groups. */
const STRING = 1, PUNCTUATION = 4;

/** Whether a token is the punctuation `mark`. */
const is = (token: Token, mark: string): boolean =>
  token[1] === PUNCTUATION && token[0] === mark;

/** How deeply this parser nests (JSON.parse has no bound; events, 64). */
const MAX_NESTING = 1000;

class Parser {
  readonly #text: string;
  #at = 0;
  #depth = 0;

  constructor(text: string) {
    this.#text = text;
  }

  value(): unknown {
    return this.#value(this.#next());
  }

  end(): void {
    if (/^[ \t\n\r]*$/.test(this.#text.slice(this.#at))) return;
    this.#fail();
  }

  // The value that starts with `token`.
  #value(token: Token): unknown {
    const [text, kind] = token;
    if (kind !== PUNCTUATION) return this.#parsed(text);
    if (text !== "[" && text !== "{") return this.#fail();
    if (++this.#depth > MAX_NESTING) {
      throw new SyntaxError(
        `JSON nested more than ${MAX_NESTING} deep, with an escaped key`,
      );
    }
    const value = text === "[" ? this.#array() : this.#object();
    this.#depth--;
    return value;
  }

  #array(): unknown[] {
    const items: unknown[] = [];
    let token = this.#next();
    if (is(token, "]")) return items;
    for (;;) {
      items.push(this.#value(token));
      if (this.#closes("]")) return items;
      token = this.#next();
    }
  }

  #object(): Record<string, unknown> {
    const object: Record<string, unknown> = {};
    let token = this.#next();
    if (is(token, "}")) return object;
    for (;;) {
      if (token[1] !== STRING) this.#fail();
      const key = this.#parsed(token[0]) as string;
      if (!is(this.#next(), ":")) this.#fail();
      // As JSON.parse: an own data property, "__proto__" too.
      Object.defineProperty(object, key, {
        value: this.#value(this.#next()),
        writable: true,
        enumerable: true,
        configurable: true,
      });
      if (this.#closes("}")) return object;
      token = this.#next();
    }
  }

  // After an item: true at `close`, false at a comma (an item follows).
  #closes(close: string): boolean {
    const token = this.#next();
    if (is(token, close)) return true;
    if (!is(token, ",")) this.#fail();
    return false;
  }

  // A string, number or literal as JSON.parse reads it; a bad escape fails
  // as the whole text does.
  #parsed(text: string): unknown {
    try {
      return JSON.parse(text);
    } catch {
      return this.#fail();
    }
  }

  #next(): Token {
    TOKEN.lastIndex = this.#at;
    const match = TOKEN.exec(this.#text);
    if (match === null) return this.#fail();
    this.#at = TOKEN.lastIndex;
    const kind = match.findIndex((group, i) => i > 0 && group !== undefined);
    return [match[kind]!, kind];
  }

  #fail(): never {
    // JSON.parse says what is wrong, and where, as it would anyway.
    JSON.parse(this.#text);
    throw new SyntaxError(`Unexpected token in JSON at position ${this.#at}`);
  }
}
