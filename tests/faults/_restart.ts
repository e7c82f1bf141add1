// The process restart scenario (history): a child process subscribes
// (exact and pattern) from the earliest event and reports each event it
// handles with its position, as an application would save it; it is
// SIGKILLed mid-stream while this process goes on publishing; a new child
// resumes each subscription from the last position the first one reported.
// Every event published meanwhile must arrive: together the two children
// handle every event once (a duplicate could only be an event handled after
// the last saved position, and here each is saved as it is handled), in
// order, and no gap is reported.

import { Event, EventType } from "../../mod.ts";
import { type Backend, disorder, makeBus, type ResumeSub } from "./_child.ts";
import {
  Child,
  INTERVAL_MS,
  names,
  sleep,
  Summary,
  TIMING,
} from "./_scenario.ts";

/** The first child is killed once it has handled this many events. */
const BEFORE_KILL = 300;
/** How long no child runs while events go on being published. */
const AWAY_MS = 1000;
/** Events published after the second child is ready, before the stream stops. */
const AFTER_READY = 300;
/** The stream stops here whatever happens. */
const MAX_EVENTS = 20_000;
const SUBS: readonly ResumeSub[] = ["exact", "pattern"];

/** Runs the scenario on a server with history; throws listing every failure. */
export async function runRestart(backend: Backend, url: string): Promise<void> {
  const { prefix, ns } = names();
  const summary = new Summary("r. process restart (history)", backend);
  const topic = `${ns}:stream`;
  const config = {
    mode: "resume",
    backend,
    url,
    prefix,
    ns,
    timing: TIMING,
  } as const;
  const publisher = makeBus(backend, url, prefix, {
    ...TIMING,
    history: {},
  }, { onGap() {}, onError() {}, onStateChange() {} });
  let published = 0, killedAt = 0, resumedAt = 0;
  let publishing = true;
  const stream = async () => {
    for (let seq = 1; publishing && seq <= MAX_EVENTS; seq++) {
      await publisher.publish(
        topic,
        new Event({ type: EventType.CREATED, topic, payload: { seq } }),
      );
      published = seq;
      await sleep(INTERVAL_MS);
    }
  };
  let streaming: Promise<void> = Promise.resolve();
  const first = new Child({
    ...config,
    from: { exact: "earliest", pattern: "earliest" },
  });
  let second: Child | undefined;
  try {
    await publisher.connect();
    await first.waitFor("ready", 20_000);
    streaming = stream();
    await first.waitFor("handled", 10_000, {
      match: (m) => m.seq >= BEFORE_KILL,
    });
    await first.kill(); // SIGKILL
    killedAt = published;
    await sleep(AWAY_MS);
    // The last position the first child reported, per subscription.
    const saved = Object.fromEntries(SUBS.map((sub) => {
      const last = first.messages.findLast((m) =>
        m.ev === "handled" && m.sub === sub
      );
      return [sub, last?.ev === "handled" ? last.position : "earliest"];
    })) as Record<ResumeSub, string>;
    second = new Child({ ...config, from: saved });
    await second.waitFor("ready", 20_000);
    resumedAt = published;
    await second.waitFor("handled", 20_000, {
      match: (m) => m.seq >= resumedAt + AFTER_READY,
    });
  } catch (error) {
    summary.check(false, (error as Error).message);
  } finally {
    publishing = false;
    await streaming.catch((error) =>
      summary.check(
        false,
        `publish ${published + 1} failed: ${(error as Error).message}`,
      )
    );
  }
  try {
    // The last event reaches both subscriptions of the second child.
    for (const sub of SUBS) {
      await second?.waitFor("handled", 10_000, {
        match: (m) => m.sub === sub && m.seq === published,
      });
    }
  } catch {
    // Counted as lost below.
  } finally {
    await first.kill();
    await second?.kill();
    await publisher.close();
  }

  const r = summary.record;
  const handled = (child: Child | undefined, sub: ResumeSub) =>
    child?.messages.flatMap((m) =>
      m.ev === "handled" && m.sub === sub ? [m.seq] : []
    ) ?? [];
  const gaps =
    [first, second].flatMap((child) =>
      child?.messages.filter((m) => m.ev === "gap") ?? []
    ).length;
  Object.assign(r, { published, killedAt, resumedAt, gaps });
  for (const sub of SUBS) {
    const before = handled(first, sub), after = handled(second, sub);
    const got = [...before, ...after];
    const have = new Set(got);
    const lost = Array.from({ length: published }, (_, i) => i + 1)
      .filter((seq) => !have.has(seq));
    const { duplicates, reordered } = disorder(got);
    r[sub] = {
      first: before.length,
      second: after.length,
      resumedFrom: after[0] ?? null,
      lost: lost.length,
      duplicates,
      reordered,
    };
    summary.check(
      lost.length === 0,
      `${sub}: ${lost.length} events never handled (e.g. ${
        lost.slice(0, 5).join(", ")
      })`,
    );
    summary.check(duplicates === 0, `${sub}: ${duplicates} duplicates`);
    summary.check(reordered === 0, `${sub}: ${reordered} out of order`);
  }
  summary.check(
    killedAt < resumedAt,
    "no event was published while no child ran",
  );
  summary.check(gaps === 0, `${gaps} gaps reported`);
  await summary.finish(
    `published ${published} | killed after ${killedAt}, resumed at ${resumedAt} | ${
      SUBS.map((sub) => `${sub} ${JSON.stringify(r[sub])}`).join(", ")
    } | gaps ${gaps}`,
  );
}
