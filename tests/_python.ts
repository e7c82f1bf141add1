// Runs a Python 3 script for tests that compare with Python itself.
import assert from "node:assert/strict";

/**
 * Runs `python3 -c script` with `input` on stdin and returns its stdout, or
 * null when python3 is not installed (the caller then skips, saying so).
 */
export async function python(
  script: string,
  input: string,
): Promise<string | null> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("python3", {
      args: ["-c", script],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(input));
  await writer.close();
  const { code, stdout } = await child.output();
  assert.equal(code, 0, "python3 failed");
  return new TextDecoder().decode(stdout);
}
