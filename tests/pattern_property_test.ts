// Property tests of the fnmatch matcher: against a plain dynamic-programming
// matcher, against Python's fnmatch.fnmatchcase itself (when python3 is
// installed), and the Redis glob as a superset of the pattern.
import assert from "node:assert/strict";
import fc from "fast-check";
import { python } from "./_python.ts";
import { compilePattern, toRedisGlob } from "../_pattern.ts";

// Pattern pieces whose meaning is plain, as [source, predicate on one code
// point]; joined, they never run into each other.
const PIECES: [string, ((c: string) => boolean) | "*"][] = [
  ["*", "*"],
  ["?", () => true],
  ["a", (c) => c === "a"],
  ["b", (c) => c === "b"],
  [":", (c) => c === ":"],
  ["\\", (c) => c === "\\"],
  ["😀", (c) => c === "😀"],
  ["[ab]", (c) => c === "a" || c === "b"],
  ["[!a]", (c) => c !== "a"],
  ["[a-b]", (c) => c === "a" || c === "b"],
  ["[!😀-😁]", (c) => c !== "😀" && c !== "😁"],
];
const TEXT_UNITS = ["a", "b", ":", "\\", "😀", "😁"];

/** fnmatchcase by dynamic programming over code points: O(n·m), no regex. */
function reference(pieces: typeof PIECES, text: string): boolean {
  const chars = Array.from(text);
  // ok[j]: the pieces so far match chars[0..j).
  let ok = chars.map((_, j) => j === 0).concat(chars.length === 0);
  for (const [, test] of pieces) {
    const next = new Array<boolean>(chars.length + 1).fill(false);
    for (let j = 0; j <= chars.length; j++) {
      if (test === "*") next[j] = ok[j]! || (j > 0 && next[j - 1]!);
      else if (j > 0) next[j] = ok[j - 1]! && test(chars[j - 1]!);
    }
    ok = next;
  }
  return ok[chars.length]!;
}

const pieces = fc.array(fc.constantFrom(...PIECES), { maxLength: 14 });
const text = fc.array(fc.constantFrom(...TEXT_UNITS), { maxLength: 40 }).map(
  (units) => units.join(""),
);

Deno.test("compilePattern() agrees with a dynamic-programming matcher", () => {
  fc.assert(
    fc.property(pieces, text, (ps, t) => {
      const pattern = ps.map(([source]) => source).join("");
      assert.equal(compilePattern(pattern).test(t), reference(ps, t));
    }),
    { numRuns: 500 },
  );
});

// Any pattern: every metacharacter, a few astral and accented letters.
const ANY_UNITS = [..."*?[]!-^\\ab:z", "é", "😀", "😁", "\n"];
const anyText = (maxLength: number) =>
  fc.array(fc.constantFrom(...ANY_UNITS), { maxLength }).map((u) => u.join(""));

Deno.test("compilePattern() agrees with Python's fnmatch.fnmatchcase", async () => {
  const seed = Date.now();
  const cases = fc.sample(fc.tuple(anyText(10), anyText(12)), {
    numRuns: 2000,
    seed,
  });
  const answer = await python(
    "import fnmatch, json, sys\n" +
      "print(json.dumps([fnmatch.fnmatchcase(t, p) for p, t in json.load(sys.stdin)]))",
    JSON.stringify(cases),
  );
  if (answer === null) {
    console.log("python3 is not installed: compared with the tables only");
    return;
  }
  const expected: boolean[] = JSON.parse(answer);
  cases.forEach(([pattern, topic], i) => {
    assert.equal(
      compilePattern(pattern).test(topic),
      expected[i],
      `fnmatchcase(${JSON.stringify(topic)}, ${
        JSON.stringify(pattern)
      }) (seed ${seed})`,
    );
  });
});

/**
 * Redis's glob matching (`stringmatchlen` in util.c), on bytes, without the
 * case folding (checked once against a server's KEYS; ranges here compare
 * unsigned bytes, Redis signed ones, and toRedisGlob writes ASCII ranges
 * only).
 */
function redisGlobMatch(glob: Uint8Array, text: Uint8Array): boolean {
  const match = (p: number, s: number): boolean => {
    while (p < glob.length && s < text.length) {
      const c = String.fromCharCode(glob[p]!);
      if (c === "*") {
        while (glob[p + 1] === 0x2a) p++;
        if (p + 1 === glob.length) return true;
        for (; s < text.length; s++) if (match(p + 1, s)) return true;
        return false;
      } else if (c === "[") {
        p++;
        const not = glob[p] === 0x5e;
        if (not) p++;
        let found = false;
        for (;; p++) {
          if (glob[p] === 0x5c && p + 1 < glob.length) {
            p++;
            if (glob[p] === text[s]) found = true;
          } else if (glob[p] === 0x5d) break;
          else if (p >= glob.length) {
            p--;
            break;
          } else if (p + 2 < glob.length && glob[p + 1] === 0x2d) {
            const [lo, hi] = [glob[p]!, glob[p + 2]!].sort((x, y) => x - y);
            if (text[s]! >= lo! && text[s]! <= hi!) found = true;
            p += 2;
          } else if (glob[p] === text[s]) found = true;
        }
        if (found === not) return false;
        s++;
      } else if (c === "?") {
        s++;
      } else {
        if (c === "\\" && p + 1 < glob.length) p++;
        if (glob[p] !== text[s]) return false;
        s++;
      }
      p++;
      if (s === text.length) { while (glob[p] === 0x2a) p++; }
    }
    return p === glob.length && s === text.length;
  };
  return match(0, 0);
}

/** A pattern that matches `topic`: each code point as itself, `?`, `*`, or a set. */
function patternFor(units: [string, number][]): string {
  return units.map(([c, how]) => {
    const safe = !"]!-^\\[".includes(c);
    if (how === 1) return "?";
    if (how === 2) return "*";
    if (how === 3 && safe) return `[${c}a]`;
    if (how === 4 && safe) return `[${c}-${c}]`;
    if (how === 5) return c === "z" ? "[!a]" : "[!z]";
    return "*?[".includes(c) ? `[${c}]` : c;
  }).join("");
}

Deno.test("toRedisGlob() matches every channel whose topic the pattern matches", () => {
  const utf8 = (t: string) => new TextEncoder().encode(t);
  const units = fc.array(
    fc.tuple(fc.constantFrom(...ANY_UNITS), fc.integer({ min: 0, max: 6 })),
    { minLength: 1, maxLength: 12 },
  );
  fc.assert(
    fc.property(units, (us) => {
      const topic = us.map(([c]) => c).join("");
      const pattern = patternFor(us);
      assert.ok(compilePattern(pattern).test(topic), pattern);
      const glob = utf8(`events:${toRedisGlob(pattern)}`);
      assert.ok(redisGlobMatch(glob, utf8(`events:${topic}`)), pattern);
    }),
    { numRuns: 500 },
  );
});
