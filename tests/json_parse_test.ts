// parseJson: JSON.parse, right also after V8's key-cache bug has been set
// off (see _json_parse.ts): every value comes back as it was written, and a
// text JSON.parse refuses is refused too.
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseJson } from "../_json_parse.ts";
import { Event } from "../mod.ts";

/** Keys that V8 reads as a backslash once a `\` key went before them. */
const ESCAPED = ['"', "\n", "\u0000", "\t", "\\", "a\\b", "\u2028", "é"];

Deno.test("parseJson: keys written with an escape are read right after a backslash key (V8 would read a backslash)", () => {
  for (const key of ESCAPED) {
    JSON.parse('{"h":[],"\\\\":0}'); // sets the bug off, where V8 has it
    const text = JSON.stringify({ h: 1, [key]: 2 });
    assert.deepEqual(Object.keys(parseJson(text) as object), ["h", key]);
  }
});

Deno.test("parseJson: an event whose payload key is written with an escape keeps it, after another event's backslash key", () => {
  const event = (key: string) =>
    new Event({ type: "created", topic: "t", payload: { a: [], [key]: 1 } });
  Event.fromJSON(event("\\").toJSONString());
  for (const key of ESCAPED) {
    const back = Event.fromJSON(event(key).toJSONString());
    assert.deepEqual(Object.keys(back.payload), ["a", key]);
  }
});

Deno.test("parseJson: every JSON value comes back as written, also with keys of any text (own properties, __proto__ too)", () => {
  const key = fc.oneof(
    fc.string({ unit: "binary" }),
    fc.constantFrom("__proto__", "\\", '"', "\u0000", "0", "1", "-1"),
  );
  const value = fc.letrec((tie) => ({
    node: fc.oneof(
      { depthSize: "small" },
      fc.constantFrom(null, true, false, 0, 1e21, -1.5e-7, 123),
      fc.string({ unit: "binary" }),
      fc.array(tie("node"), { maxLength: 4 }),
      fc.array(fc.tuple(key, tie("node")), { maxLength: 4 }).map((pairs) => {
        const object: Record<string, unknown> = {};
        for (const [k, v] of pairs) {
          Object.defineProperty(object, k, {
            value: v,
            writable: true,
            enumerable: true,
            configurable: true,
          });
        }
        return object;
      }),
    ),
  })).node;
  fc.assert(
    fc.property(value, fc.constantFrom("", " ", "\n\t "), (v, space) => {
      // The value itself is the oracle: JSON.parse is what is under doubt.
      assert.deepEqual(parseJson(JSON.stringify(v, null, space)), v);
    }),
    { numRuns: 2000 },
  );
});

Deno.test("parseJson: a text JSON.parse refuses is refused, with a SyntaxError", () => {
  const broken = [
    '{"\\n":1',
    '{"\\n" 1}',
    '{"\\n":1,}',
    '{"\\n":01}',
    '{"\\x":1}',
    '{"\\n":"a\u0001"}',
    '{"\\n":[1 2]}',
    '{"\\n":tru}',
    '{"\\n":1} x',
    '{"\\n":1}}',
    "{'\\n':1}",
  ];
  for (const text of broken) {
    assert.throws(() => JSON.parse(text), SyntaxError, text);
    assert.throws(() => parseJson(text), SyntaxError, text);
  }
  fc.assert(
    fc.property(fc.string({ unit: "binary" }), (tail) => {
      const text = `{"\\n":${tail}`;
      let refused = false;
      try {
        JSON.parse(text);
      } catch {
        refused = true;
      }
      if (refused) assert.throws(() => parseJson(text), SyntaxError);
      else assert.doesNotThrow(() => parseJson(text));
    }),
    { numRuns: 2000 },
  );
});

Deno.test("parseJson: text with an escaped key nested 100,000 deep is refused with a SyntaxError (no stack overflow)", () => {
  const text = `${'{"\\n":['.repeat(100_000)}1${"]}".repeat(100_000)}`;
  assert.throws(() => parseJson(text), SyntaxError);
});

Deno.test("parseJson: an event of 1 MB with 400,000 escapes in a value, and one escaped key, decodes (the key check passes it in one go)", () => {
  const event = new Event({
    type: "created",
    topic: "t",
    payload: { log: "\n".repeat(400_000), "a\nb": 1 },
  });
  assert.deepEqual(Event.fromJSON(event.toJSONString()).payload, event.payload);
});
