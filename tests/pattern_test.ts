import assert from "node:assert/strict";
import { compilePattern } from "../_pattern.ts";

// Every text below, tried against every pattern; the lists are what Python
// 3.11's fnmatch.fnmatchcase matched (generated once, kept as data).
const TEXTS: string[] = [
  "",
  "a",
  "b",
  "c",
  "d",
  "z",
  "]",
  "-",
  "\\",
  "^",
  "[",
  "!",
  "ab",
  "aab",
  "axb",
  "abc",
  "a*",
  "a\\*",
  "a\\x",
  "e",
  "😁",
  "é😀",
  "x-y",
  "xay",
  "q:1",
  "\n",
];

const EXPECTED: [string, string[]][] = [
  ["*", [
    "",
    "a",
    "b",
    "c",
    "d",
    "z",
    "]",
    "-",
    "\\",
    "^",
    "[",
    "!",
    "ab",
    "aab",
    "axb",
    "abc",
    "a*",
    "a\\*",
    "a\\x",
    "e",
    "😁",
    "é😀",
    "x-y",
    "xay",
    "q:1",
    "\n",
  ]],
  ["a*b", ["ab", "aab", "axb"]],
  ["?", [
    "a",
    "b",
    "c",
    "d",
    "z",
    "]",
    "-",
    "\\",
    "^",
    "[",
    "!",
    "e",
    "😁",
    "\n",
  ]],
  ["[abc]", ["a", "b", "c"]],
  ["[!abc]", ["d", "z", "]", "-", "\\", "^", "[", "!", "e", "😁", "\n"]],
  ["[a-c]", ["a", "b", "c"]],
  ["[z-a]", []],
  ["[!z-a]", [
    "a",
    "b",
    "c",
    "d",
    "z",
    "]",
    "-",
    "\\",
    "^",
    "[",
    "!",
    "e",
    "😁",
    "\n",
  ]],
  ["[]]", ["]"]],
  ["[!]]", [
    "a",
    "b",
    "c",
    "d",
    "z",
    "-",
    "\\",
    "^",
    "[",
    "!",
    "e",
    "😁",
    "\n",
  ]],
  ["[]a]", ["a", "]"]],
  ["[!]a]", ["b", "c", "d", "z", "-", "\\", "^", "[", "!", "e", "😁", "\n"]],
  ["[", ["["]],
  ["a[", []],
  ["[!", []],
  ["[]", []],
  ["[!]", []],
  ["[a-]", ["a", "-"]],
  ["[-a]", ["a", "-"]],
  ["[a-c-e]", ["a", "b", "c", "-", "e"]],
  ["\\", ["\\"]],
  ["a\\*", ["a\\*", "a\\x"]],
  ["[\\]", ["\\"]],
  ["[\\]a]", []],
  ["[^a]", ["a", "^"]],
  ["**", [
    "",
    "a",
    "b",
    "c",
    "d",
    "z",
    "]",
    "-",
    "\\",
    "^",
    "[",
    "!",
    "ab",
    "aab",
    "axb",
    "abc",
    "a*",
    "a\\*",
    "a\\x",
    "e",
    "😁",
    "é😀",
    "x-y",
    "xay",
    "q:1",
    "\n",
  ]],
  ["a?c", ["abc"]],
  ["[a-z]*:?", ["q:1"]],
  ["x[!-]y", ["xay"]],
  ["[😀-😂]", ["😁"]],
  ["é?", ["é😀"]],
];

for (const [pattern, matches] of EXPECTED) {
  Deno.test(`compilePattern(${JSON.stringify(pattern)}) matches as fnmatchcase does`, () => {
    const matcher = compilePattern(pattern);
    assert.deepEqual(TEXTS.filter((t) => matcher.test(t)), matches);
  });
}

// The same, for the corners of fnmatch.translate's set handling (a range
// it removes can leave a leading "!" that negates), astral characters, and
// texts with lone surrogates: Python reads each as one code point, and so
// does the matcher (such topics never reach it through a bus: they are
// refused at publish).
const TEXTS_2 = [
  "",
  "!",
  "-",
  "]",
  "a",
  "b",
  "c",
  "d",
  "\u00E9",
  "\u{1f600}",
  "\u{1f601}",
  "\u{10ffff}",
  "\uD800",
  "\uDC00",
  "a\uD800",
  "\u{1f600}\u{1f600}",
  "x\uD83D",
  "\n",
  "\\",
  "^",
];
const ALL_2 = TEXTS_2.filter((t) => Array.from(t).length === 1);

const EXPECTED_2: [string, string[]][] = [
  ["[--!!]", ALL_2],
  ["[--!!!]", ALL_2.filter((t) => t !== "!")],
  ["[]-!!]", ALL_2],
  ["[b-a-c]", ["-", "c"]],
  ["[!b-a]", ALL_2],
  ["[b-a]", []],
  ["[a-c-e]", ["-", "a", "b", "c"]],
  ["[!a-]", ALL_2.filter((t) => t !== "a" && t !== "-")],
  ["[z-a-c]", ["-", "c"]],
  ["[&&a]", ["a"]],
  ["[|~]", []],
  ["[a-\\]", []],
  ["[\u{1f600}-\u{1f602}]", ["\u{1f600}", "\u{1f601}"]],
  ["[!\u{1f600}]", ALL_2.filter((t) => t !== "\u{1f600}")],
  ["?", ALL_2],
  ["??", ["a\uD800", "\u{1f600}\u{1f600}", "x\uD83D"]],
  ["*?", TEXTS_2.slice(1)],
  ["[\uD7FF-\uE000]", ["\uD800", "\uDC00"]],
  ["*\u{1f600}", ["\u{1f600}", "\u{1f600}\u{1f600}"]],
  ["[\u00E9-\u{1f600}]", ["\u00E9", "\u{1f600}", "\uD800", "\uDC00"]],
  ["[^!]", ["!", "^"]],
  ["[[]", []],
  ["[]-]", ["-", "]"]],
];

for (const [pattern, matches] of EXPECTED_2) {
  Deno.test(`compilePattern(${JSON.stringify(pattern)}) matches code points as fnmatchcase does`, () => {
    const matcher = compilePattern(pattern);
    assert.deepEqual(TEXTS_2.filter((t) => matcher.test(t)), matches);
  });
}

Deno.test("compilePattern() never evaluates its input", () => {
  const matcher = compilePattern("${globalThis.x}(?=a)|.*");
  assert.ok(matcher.test("${globalThis.x}(?=a)|.*"));
  assert.ok(!matcher.test("anything"));
});

Deno.test("compilePattern() refuses a pattern that is not well-formed Unicode", () => {
  for (const pattern of ["a\uD800*", "\uDC00", "*\uD83D", "[\uDE00\uD83D]"]) {
    assert.throws(
      () => compilePattern(pattern),
      (e: unknown) =>
        e instanceof TypeError &&
        /Invalid pattern .*not well-formed Unicode \(a lone surrogate \\uD[89A-F][0-9A-F]{2} at index \d+\)/
          .test(e.message),
    );
  }
  assert.ok(compilePattern("*\uD83D\uDE00").test("x\u{1f600}"));
});

// Each of these takes the old translation (a plain `.*` per star, so a
// backtracking RegExp) about (topic length)^(stars) steps: the first one
// about 5 s per event, the others longer than the age of the universe. The
// compiled pattern takes each star's fixed run at its first fit, atomically,
// so a run of this test is its proof: it ends, in milliseconds.
const ADVERSARIAL: [string, string, boolean][] = [
  ["*a*a*a*a*a*a*a*a*[é]", "a".repeat(40) + "x", false],
  ["*a".repeat(40) + "*b", "a".repeat(20_000), false],
  ["*a".repeat(40) + "*", "a".repeat(20_000), true],
  ["*[a-c]*[!x]".repeat(25) + "y", "ab".repeat(20_000), false],
  ["*?".repeat(200) + "x", "y".repeat(100_000), false],
  ["*?".repeat(200) + "y", "y".repeat(100_000), true],
  ["*aab".repeat(30) + "*c", "aab".repeat(2_000) + "c", true],
  ["*aab".repeat(30) + "*c", "aab".repeat(2_000) + "d", false],
  ["a*" + "[ab]*".repeat(300) + "b", "a".repeat(50_000), false],
  ["*" + "😀*".repeat(50) + "x", "😀".repeat(20_000), false],
  ["*:*:*:*:*:*:*:*:*:*:*:*:*:*:*:*:!", "a:".repeat(30_000), false],
];

for (const [pattern, topic, matches] of ADVERSARIAL) {
  Deno.test(
    `compilePattern(${
      JSON.stringify(pattern.slice(0, 24))
    }…) on a ${topic.length}-character topic cannot backtrack exponentially`,
    () => {
      assert.equal(compilePattern(pattern).test(topic), matches);
    },
  );
}
