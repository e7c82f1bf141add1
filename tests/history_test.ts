// The history core (_history.ts) on the in-process log: what a cursor's
// catch-up reports, and to which hooks, when it is asked for again.

import assert from "node:assert/strict";
import { type CatchUpHooks, Cursor, type Follower } from "../_history.ts";
import { MemoryLog } from "../_memory_log.ts";
import type { Event } from "../mod.ts";
import { makeEvent } from "./conformance.ts";

function hooks(): CatchUpHooks & { losses: number } {
  return {
    losses: 0,
    lost() {
      this.losses++;
    },
    report: (error) => {
      throw error;
    },
    signal: new AbortController().signal,
  };
}

const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

function follower(take: (event: Event) => void): Follower {
  return {
    wants: () => true,
    take,
    cancelled: false,
    full: false,
    idle: () => Promise.resolve(),
  };
}

Deno.test("Cursor: a catch-up asked again while one runs reports what the re-run finds lost to the latest hooks", async () => {
  const log = new MemoryLog(10, 60_000);
  for (let n = 1; n <= 20; n++) log.append(makeEvent("t", { n }));
  const taken: unknown[] = [];
  const cursor = new Cursor(
    log,
    follower((event) => {
      taken.push(event.payload.n);
      // While the first run hands over its page, the log moves on by more
      // than it keeps: the re-run starts where nothing is left.
      if (event.payload.n === 20) {
        for (let n = 21; n <= 40; n++) log.append(makeEvent("t", { n }));
      }
    }),
  );
  const first = hooks(), again = hooks();
  const running = cursor.startFrom("earliest", first);
  const rerun = cursor.catchUp(again);
  assert.equal(rerun, running);
  await rerun;
  assert.deepEqual(taken, [...range(11, 20), ...range(31, 40)]);
  assert.equal(first.losses, 0);
  assert.equal(again.losses, 1);
});
