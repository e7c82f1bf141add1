import assert from "node:assert/strict";
import { Deadlines, Timeout } from "../_deadline.ts";

const never = () => new Promise<never>(() => {});

Deno.test("Deadlines.bound() rejects each unanswered wait with a Timeout, the shorter deadline first", async () => {
  const deadlines = new Deadlines();
  const signal = new AbortController().signal;
  const order: string[] = [];
  const late = deadlines.bound(never(), 80, "late", signal)
    .catch((error) => {
      assert.ok(error instanceof Timeout);
      order.push("late");
    });
  // Added later with an earlier deadline: the timer is armed again for it.
  const early = deadlines.bound(never(), 10, "early", signal)
    .catch((error) => {
      assert.match(String(error), /early: no answer within 10 ms/);
      order.push("early");
    });
  await Promise.all([late, early]);
  assert.deepEqual(order, ["early", "late"]);
  deadlines.clear();
});

Deno.test("Deadlines.bound() settles like the promise, or with the signal's reason", async () => {
  const deadlines = new Deadlines();
  const lost = new AbortController();
  assert.equal(
    await deadlines.bound(Promise.resolve(7), 50, "x", lost.signal),
    7,
  );
  await assert.rejects(
    deadlines.bound(Promise.reject(new Error("no")), 50, "x", lost.signal),
    /no/,
  );
  const waiting = deadlines.bound(never(), 10_000, "x", lost.signal);
  lost.abort(new Error("connection lost"));
  await assert.rejects(waiting, /connection lost/);
  await assert.rejects(
    deadlines.bound(Promise.resolve(1), 50, "x", lost.signal),
    /connection lost/,
  );
  deadlines.clear(); // leaves no timer (the test's sanitizer checks)
});
