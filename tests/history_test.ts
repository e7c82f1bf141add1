// The history core (_history.ts) on the in-process log: what a cursor's
// catch-up reports, and to which hooks, when it is asked for again.

import assert from "node:assert/strict";
import {
  type CatchUpHooks,
  comparePositions,
  Cursor,
  type Follower,
  type Log,
} from "../_history.ts";
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

Deno.test("Cursor: a lost read whose entries start at or before the mark (a log that started again, reusing positions) delivers them, from its oldest", async () => {
  // A log of numbered positions ("e-<n>") that holds 1 and 2, read from 50.
  const held = [1, 2].map((n) => ({
    position: `e-${n}`,
    event: makeEvent("t", { n }),
  }));
  const log: Log = {
    valid: () => true,
    compare: (a, b) => comparePositions(a, b, 1),
    floor: (position) => position,
    head: () => Promise.resolve({ mark: "e-2", seen: [] }),
    read: (from) =>
      Promise.resolve({
        entries: from === undefined || from === "e-50" ? held : [],
        lost: from === "e-50",
      }),
  };
  const taken: unknown[] = [];
  const cursor = new Cursor(log, follower((e) => taken.push(e.payload.n)));
  const caught = hooks();
  await cursor.startFrom("e-50", caught);
  assert.deepEqual(taken, [1, 2]);
  assert.equal(caught.losses, 1);
});
