import assert from "node:assert/strict";

Deno.test("examples/quickstart.ts prints what the seed's quick start prints", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      new URL("../examples/quickstart.ts", import.meta.url).pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(
    text,
    /^Received created on my-topic\nPayload: \{ message: "Hello, World!" \}\n$/,
  );
});
