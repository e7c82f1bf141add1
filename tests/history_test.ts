// The history core (_history.ts) on the in-process log: what a cursor's
// catch-up reports, and to which hooks, when it is asked for again.

import assert from "node:assert/strict";
import {
  type CatchUpHooks,
  comparePositions,
  Cursor,
  type Follower,
  type Log,
  type Place,
  type Position,
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

function follower<P extends Place = Position>(
  take: (event: Event) => void,
  more: Partial<Follower<P>> = {},
): Follower<P> {
  return {
    wants: () => true,
    take,
    cancelled: false,
    full: false,
    idle: () => Promise.resolve(),
    maxHeld: 100,
    fail: (error) => {
      throw error;
    },
    ...more,
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

// A log out of order, as on PostgreSQL, of entries 1 to `last`: an
// entry's floor is just below it; every read's horizon is before entry 1
// (a transaction left open elsewhere), and an entry in `running` is not
// visible to reads (it commits late). `trim(n)` removes entries up to n.
function outOfOrderLog(last: number, running: ReadonlySet<number>) {
  let first = 1;
  const log: Log<number> & { trim(to: number): void } = {
    valid: () => true,
    compare: (a, b) => a - b,
    floor: (position) => position - 0.5,
    capped: (position) => position,
    head: () => Promise.resolve({ mark: last, seen: [] }),
    read: (from, limit) => {
      const start = Math.max(from ?? first, first);
      const entries = range(start, Math.min(start + limit - 1, last))
        .filter((n) => !running.has(n))
        .map((n) => ({ position: n, event: makeEvent("t", { n }) }));
      return Promise.resolve({
        entries,
        lost: from !== undefined && from + 1 < first,
        horizon: 0.5,
        visible: (position) => !running.has(position),
      });
    },
    trim: (to) => void (first = to + 1),
  };
  return log;
}

Deno.test("Cursor: live events held while retention trims past a replay (a log out of order) are not delivered after newer ones; a late commit of the trimmed range still is", async () => {
  // 1,600 commits late: it is not visible to the read that finds 1,001 to
  // 1,800 trimmed, so it is owed (retention did not remove it).
  const log = outOfOrderLog(2500, new Set([1600]));
  const taken: unknown[] = [];
  const cursor: Cursor<number> = new Cursor(
    log,
    follower((event) => {
      taken.push(event.payload.n);
      // While the first page is handed over, 1,001 to 1,600 come live, and
      // retention removes 1 to 1,800 (but the late 1,600).
      if (event.payload.n === 500) {
        for (const n of range(1001, 1600)) {
          cursor.hold(makeEvent("t", { n }), n);
        }
        log.trim(1800);
      }
    }, { maxHeld: 1000 }),
  );
  const caught = hooks();
  await cursor.startFrom("earliest", caught);
  assert.deepEqual(taken, [...range(1, 1000), ...range(1801, 2500), 1600]);
  assert.equal(caught.losses, 1);
  // A live event of the trimmed range that comes late is not delivered.
  assert.equal(cursor.admit(1200), false);
  assert.equal(cursor.admit(2501), true);
});

Deno.test("Cursor: on a log in order, live events held while retention trims past a replay are not delivered after newer ones", async () => {
  const log = new MemoryLog(1500, 60_000);
  for (let n = 1; n <= 1000; n++) log.append(makeEvent("t", { n }));
  const taken: unknown[] = [];
  const cursor: Cursor<number> = new Cursor(
    log,
    follower((event) => {
      taken.push(event.payload.n);
      // While the first page is handed over, 1,001 to 3,000 are published
      // and come live; the log keeps 1,501 to 3,000.
      if (event.payload.n === 500) {
        for (let n = 1001; n <= 3000; n++) {
          cursor.hold(makeEvent("t", { n }), log.append(makeEvent("t", { n })));
        }
      }
    }, { maxHeld: 2000 }),
  );
  const caught = hooks();
  await cursor.startFrom("earliest", caught);
  assert.deepEqual(taken, [...range(1, 1000), ...range(1501, 3000)]);
  assert.equal(caught.losses, 1);
});

Deno.test("Cursor: a catch-up moves past other topics' entries, so their trimming later is no loss of this subscription's", async () => {
  const log = new MemoryLog(10, 60_000);
  const a = log.append(makeEvent("a", { n: 1 }));
  for (let n = 1; n <= 5; n++) log.append(makeEvent("b", { n }));
  const taken: unknown[] = [];
  const cursor = new Cursor(
    log,
    follower((event) => void taken.push(event.payload.n), {
      wants: (event) => event.topic === "a",
    }),
  );
  const first = hooks();
  await cursor.startFrom(log.name(a), first);
  // The log rolls over: "a" 1 and "b" 1 are trimmed, "b" 2 to 5 kept.
  for (let n = 6; n <= 11; n++) log.append(makeEvent("b", { n }));
  const again = hooks();
  await cursor.catchUp(again);
  assert.deepEqual(taken, []);
  assert.equal(first.losses + again.losses, 0);
});

Deno.test("Cursor: live events held during a catch-up stay within maxHeld; past it they are read from the log, each once, in order", async () => {
  const log = new MemoryLog(1000, 60_000);
  for (let n = 1; n <= 5; n++) log.append(makeEvent("t", { n }));
  const taken: unknown[] = [];
  let live = 0;
  const cursor: Cursor<number> = new Cursor(
    log,
    follower((event) => {
      taken.push(event.payload.n);
      if (event.payload.live === true) live++;
      // While the replay hands over event 1, ten live events come: each is
      // logged, and reaches the cursor live (marked as such).
      if (event.payload.n === 1) {
        for (let n = 6; n <= 15; n++) {
          const position = log.append(makeEvent("t", { n }));
          cursor.hold(makeEvent("t", { n, live: true }), position);
        }
      }
    }, { maxHeld: 3 }),
  );
  await cursor.startFrom("earliest", hooks());
  assert.deepEqual(taken, range(1, 15));
  assert.ok(live <= 3, `${live} live events were held, over maxHeld`);
});

Deno.test("Cursor: a catch-up whose read fails with a bug ends the subscription once; a failure of the server is retried", async () => {
  const log = new MemoryLog(1000, 60_000);
  for (let n = 1; n <= 3; n++) log.append(makeEvent("t", { n }));
  const failing = (error: Error, times: number): MemoryLog =>
    Object.assign(Object.create(log), {
      read(from: number | undefined, limit: number) {
        return times-- > 0 ? Promise.reject(error) : log.read(from, limit);
      },
    });
  const failed: unknown[] = [];
  const reported: unknown[] = [];
  const taken: unknown[] = [];
  const hooksOf = (): CatchUpHooks => ({
    lost: () => {},
    report: (error) => void reported.push(error),
    signal: new AbortController().signal,
  });
  const bug = new TypeError("Cannot read properties of undefined");
  const broken = new Cursor(
    failing(bug, Infinity),
    follower(() => {}, { fail: (error) => void failed.push(error) }),
  );
  await broken.startFrom("earliest", hooksOf());
  assert.deepEqual(failed, [bug]);
  assert.deepEqual(reported, []);
  const down = new Error("Connection is closed.");
  const refused = new Error("NOPERM this user has no permissions");
  const retried = new Cursor(
    failing(down, 2),
    follower((event) => void taken.push(event.payload.n)),
  );
  await retried.startFrom("earliest", hooksOf());
  assert.deepEqual(taken, [1, 2, 3]);
  assert.deepEqual(reported, [down]);
  // Each new reason is reported: the same one again is not.
  const another = new Cursor(
    Object.assign(Object.create(log), {
      reasons: [down, down, refused],
      read(this: { reasons: Error[] }, from: number | undefined, n: number) {
        const reason = this.reasons.shift();
        return reason ? Promise.reject(reason) : log.read(from, n);
      },
    }),
    follower(() => {}),
  );
  await another.startFrom("earliest", hooksOf());
  assert.deepEqual(reported, [down, down, refused]);
});
