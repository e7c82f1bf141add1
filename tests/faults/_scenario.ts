// The parent side of the fault scenarios: runs the buses in a child Deno
// process (_child.ts), performs the faults, and checks what the child saw.
// Each scenario prints one summary line, appends it as JSON to the file
// named by FAULT_REPORT (if set), and fails listing every broken invariant.
//
// The invariants of a stream scenario (a steady stream of numbered events,
// one publish every INTERVAL_MS, each awaited on its own):
// - every publish settles (in-flight ones get 3 × heartbeatMs after the
//   stream stops), each within SETTLE_BOUND_MS of its call;
// - an event whose publish resolved but that a subscription never received
//   had its [call, settle] interval overlap a gap that subscription's bus
//   reported (onGap { since, until }); rejected publishes may or may not be
//   delivered;
// - no subscription receives an event twice, or out of order;
// - after the fault ends, an event published then reaches every
//   subscription within RECOVERY_BOUND_MS;
// - close() resolves within CLOSE_BOUND_MS, and the child then exits by
//   itself within EXIT_BOUND_MS.

import { lines } from "./_lines.ts";
import type {
  Backend,
  BusSpec,
  ChildConfig,
  ChildMessage,
  ConnectStats,
  Outcome,
  ParentCommand,
  StreamStats,
  Timing,
} from "./_child.ts";

export type { Backend, BusSpec };

/** The options every bus of every scenario gets: short, for a fast suite. */
export const TIMING: Timing = {
  heartbeatMs: 400,
  maxReconnectDelayMs: 400,
  connectTimeoutMs: 1500,
  commandTimeoutMs: 1000,
  closeTimeoutMs: 1000,
};

/** After the fault ends, a new publish is delivered within this. */
export const RECOVERY_BOUND_MS = TIMING.heartbeatMs +
  TIMING.maxReconnectDelayMs + 1000;
/**
 * Half-open connections (through the proxy): new connections work from the
 * moment the old ones go silent, so recovery is counted from the fault's
 * start, and includes noticing it: one more heartbeat.
 */
export const HALF_OPEN_RECOVERY_BOUND_MS = RECOVERY_BOUND_MS +
  TIMING.heartbeatMs;
/** How long the proxy keeps a connection stalled: past the bound above. */
export const STALL_MS = HALF_OPEN_RECOVERY_BOUND_MS + 800;
/**
 * Every publish settles within this of its call (SPEC: a deadline on every
 * statement or command; every wait bounded): its own command's deadline,
 * plus a (re)connect attempt, plus a heartbeat to notice a dead connection.
 */
export const SETTLE_BOUND_MS = TIMING.commandTimeoutMs +
  TIMING.connectTimeoutMs + TIMING.heartbeatMs;
/**
 * How long a server stays SIGSTOPped: many heartbeats, and longer than
 * SETTLE_BOUND_MS, so that a publish that just waits the freeze out fails.
 */
export const FREEZE_MS = SETTLE_BOUND_MS + 600;
/** How long a restarted server stays down. */
export const DOWN_MS = 1000;
/**
 * close() resolves within this: closeTimeoutMs for publishes accepted before
 * it (SPEC), then one command deadline to shut the connections.
 */
export const CLOSE_BOUND_MS = TIMING.closeTimeoutMs + TIMING.commandTimeoutMs;
/** After close() resolved, the child process exits within this (target 100). */
export const EXIT_BOUND_MS = 250;
/** connect() against a silent server rejects within connectTimeoutMs + this. */
export const CONNECT_SLACK_MS = 500;
/** An aborted connect, close() during connect: both settle within this. */
export const PROMPT_MS = 300;
/** While the server is known down, each publish rejects within this. */
export const DOWN_PUBLISH_MS = 50;
/** One publish every this many ms. */
export const INTERVAL_MS = 3;
/** Steady state before the fault and after the recovery. */
const STEADY_MS = 300;
/** How long the parent waits for the child to exit before killing it. */
const EXIT_WAIT_MS = 3000;

export const sleep = (ms: number): Promise<void> =>
  new Promise((r) => setTimeout(r, ms));

const hex = () => crypto.randomUUID().replace(/-/g, "").slice(0, 8);

/** A pending wait for a child message. */
interface Waiter {
  readonly from: number;
  readonly match: (m: ChildMessage) => boolean;
  readonly resolve: (m: Received) => void;
  readonly reject: (e: Error) => void;
}

/** A child message and when the parent read it (performance.now()). */
export type Received = ChildMessage & { readonly at: number };

/** The child process of a scenario and the lines it wrote. */
export class Child {
  readonly messages: Received[] = [];
  readonly #proc: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  readonly #reading: Promise<void>;
  readonly #stderr: Promise<void>;
  readonly #status: Promise<Deno.CommandStatus>;
  #exitedAt: number | undefined;
  #waiters: Waiter[] = [];
  #ended = false;
  #stderrTail = "";

  constructor(config: ChildConfig) {
    const root = new URL("../../", import.meta.url);
    this.#proc = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--quiet",
        "--config",
        new URL("deno.json", root).pathname,
        new URL("./_child.ts", import.meta.url).pathname,
        JSON.stringify(config),
      ],
      stdin: config.mode === "stream" ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#status = this.#proc.status.then((status) => {
      this.#exitedAt = performance.now();
      return status;
    });
    this.#stdin = config.mode === "stream"
      ? this.#proc.stdin.getWriter()
      : undefined;
    this.#reading = this.#read();
    this.#stderr = this.#proc.stderr.pipeThrough(new TextDecoderStream())
      .pipeTo(
        new WritableStream({
          write: (text) => {
            this.#stderrTail = (this.#stderrTail + text).slice(-3000);
          },
        }),
      ).catch(() => {});
  }

  /** The last few KiB the child wrote on stderr. */
  get stderr(): string {
    return this.#stderrTail;
  }

  /** Index of the next message: waits `from` it see only later ones. */
  mark(): number {
    return this.messages.length;
  }

  async send(command: ParentCommand): Promise<void> {
    await this.#stdin?.write(
      new TextEncoder().encode(JSON.stringify(command) + "\n"),
    );
  }

  /** Closes the child's stdin (its command loop ends). */
  async endInput(): Promise<void> {
    await this.#stdin?.close().catch(() => {});
  }

  /** The first message (from index `from`) that `match`es, within `ms`. */
  waitFor<E extends ChildMessage["ev"]>(
    ev: E,
    ms: number,
    options: {
      from?: number;
      match?: (m: Extract<ChildMessage, { ev: E }>) => boolean;
    } = {},
  ): Promise<Extract<Received, { ev: E }>> {
    const from = options.from ?? 0;
    const match = (m: ChildMessage) =>
      m.ev === ev &&
      (options.match?.(m as Extract<ChildMessage, { ev: E }>) ?? true);
    const found = this.messages.slice(from).find(match);
    if (found) return Promise.resolve(found as Extract<Received, { ev: E }>);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`no "${ev}" from the child within ${ms} ms`));
      }, ms);
      const waiter: Waiter = {
        from,
        match,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m as Extract<Received, { ev: E }>);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.#waiters.push(waiter);
      if (this.#ended) this.#fail();
    });
  }

  /**
   * Waits for the child to exit, at most EXIT_WAIT_MS (then kills it).
   * Returns how long after `since` (performance.now()) it exited, or null
   * when it had to be killed.
   */
  async exit(since: number): Promise<number | null> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((r) => {
      timer = setTimeout(() => r("late"), EXIT_WAIT_MS);
    });
    const outcome = await Promise.race([this.#status, late]);
    clearTimeout(timer);
    if (outcome === "late") {
      await this.kill();
      return null;
    }
    return Math.max(0, this.#exitedAt! - since);
  }

  /** Kills the child (if still running) and waits for everything to end. */
  async kill(): Promise<void> {
    if (this.#exitedAt === undefined) {
      try {
        this.#proc.kill("SIGKILL");
      } catch {
        // Already exited.
      }
    }
    await this.endInput();
    await this.#status;
    await this.#reading;
    await this.#stderr;
  }

  async #read(): Promise<void> {
    try {
      // Bounded: ends with the child's stdout.
      for await (const line of lines(this.#proc.stdout)) this.#receive(line);
    } catch {
      // The child is gone.
    } finally {
      this.#ended = true;
      this.#fail();
    }
  }

  #receive(line: string): void {
    let message: ChildMessage;
    try {
      message = JSON.parse(line) as ChildMessage;
    } catch {
      this.#stderrTail = (this.#stderrTail + line + "\n").slice(-3000);
      return;
    }
    const received = { ...message, at: performance.now() } as Received;
    this.messages.push(received);
    const index = this.messages.length - 1;
    this.#waiters = this.#waiters.filter((w) => {
      if (index < w.from || !w.match(received)) return true;
      w.resolve(received);
      return false;
    });
  }

  #fail(): void {
    const fatal = this.messages.find((m) => m.ev === "fatal");
    for (const w of this.#waiters) {
      w.reject(
        new Error(
          `the child ended before answering${
            fatal ? `: ${(fatal as { message: string }).message}` : ""
          }\n${this.#stderrTail}`,
        ),
      );
    }
    this.#waiters = [];
  }
}

/** What a fault function gets. */
export interface FaultContext {
  readonly child: Child;
  readonly timing: Timing;
  /** Tells the child the fault ended at `t` (Date.now(); default now). */
  faultEnded(t?: number): Promise<void>;
  /** Adds a field to the summary. */
  note(key: string, value: unknown): void;
  /** Records a failure unless `ok`. */
  check(ok: boolean, failure: string): void;
  /** Waits until the child reports `bus` in `state` (after the fault began). */
  waitState(bus: string, state: string, ms: number): Promise<number>;
  /** Has the child publish `concurrent` events at once, then `sequential` one by one. */
  burst(concurrent: number, sequential: number): Promise<Outcome[]>;
  /** Has the child publish `count` stream events at once (not awaited). */
  rush(count: number): Promise<void>;
}

export interface StreamScenario {
  readonly name: string;
  readonly backend: Backend;
  readonly buses: readonly BusSpec[];
  /** Also subscribe with a pattern (default true). */
  readonly pattern?: boolean;
  readonly recoveryBoundMs?: number;
  /**
   * Buses keep history: then nothing may be lost at all, inside a gap or
   * not, and no gap is reported.
   */
  readonly history?: boolean;
  fault(ctx: FaultContext): Promise<void>;
}

/** One bus that publishes and subscribes. */
export const oneBus = (url: string): BusSpec[] => [
  { name: "bus", url, publish: true, subscribe: true },
];

/** A publishing bus and a subscribing bus. */
export const twoBuses = (pubUrl: string, subUrl: string): BusSpec[] => [
  { name: "pub", url: pubUrl, publish: true, subscribe: false },
  { name: "sub", url: subUrl, publish: false, subscribe: true },
];

/** The summary of a scenario: one line, one JSON record. */
export class Summary {
  readonly record: Record<string, unknown>;
  readonly failures: string[] = [];

  constructor(name: string, backend: Backend) {
    this.record = { scenario: name, backend };
  }

  check(ok: boolean, failure: string): void {
    if (!ok) this.failures.push(failure);
  }

  async finish(line: string): Promise<void> {
    const pass = this.failures.length === 0;
    this.record.pass = pass;
    this.record.failures = this.failures;
    console.log(
      `[faults] ${this.record.backend} ${this.record.scenario} | ${line} | ${
        pass ? "PASS" : `FAIL: ${this.failures.join("; ")}`
      }`,
    );
    const report = Deno.env.get("FAULT_REPORT");
    if (report) {
      await Deno.writeTextFile(report, JSON.stringify(this.record) + "\n", {
        append: true,
      });
    }
    if (!pass) {
      throw new Error(
        `${this.record.backend} ${this.record.scenario}:\n- ${
          this.failures.join("\n- ")
        }`,
      );
    }
  }
}

const ms = (value: unknown) =>
  typeof value === "number" ? `${Math.round(value)} ms` : "none";

/** Closes the child's buses and measures close() and the exit. */
async function closeAndExit(
  child: Child,
  summary: Summary,
): Promise<void> {
  await child.send({ cmd: "close" }).catch(() => {});
  await child.endInput();
  let closed: Extract<Received, { ev: "closed" }> | undefined;
  try {
    closed = await child.waitFor(
      "closed",
      TIMING.closeTimeoutMs + 8000,
      { from: 0 },
    );
  } catch (error) {
    summary.check(false, `close: ${(error as Error).message}`);
  }
  summary.record.closeMs = closed?.ms ?? null;
  summary.check(
    closed === undefined || closed.settled,
    `close() did not settle within ${TIMING.closeTimeoutMs + 4000} ms`,
  );
  summary.check(
    closed === undefined || !closed.settled || closed.ms! <= CLOSE_BOUND_MS,
    `close() took ${closed?.ms} ms (bound ${CLOSE_BOUND_MS})`,
  );
  if (closed === undefined) {
    await child.kill();
    summary.record.exitMs = null;
    return;
  }
  const exitMs = await child.exit(closed.at);
  await child.kill(); // waits for the pipes
  summary.record.exitMs = exitMs;
  summary.check(
    exitMs !== null && exitMs <= EXIT_BOUND_MS,
    exitMs === null
      ? `the child did not exit within ${EXIT_WAIT_MS} ms after close() (killed)`
      : `the child exited ${
        Math.round(exitMs)
      } ms after close() (bound ${EXIT_BOUND_MS})`,
  );
}

export function names(): { prefix: string; ns: string } {
  return { prefix: `f${hex()}`, ns: `ns${hex()}` };
}

/** Runs a stream scenario; throws listing every broken invariant. */
export async function runStream(scenario: StreamScenario): Promise<void> {
  const { prefix, ns } = names();
  const summary = new Summary(scenario.name, scenario.backend);
  const bound = scenario.recoveryBoundMs ?? RECOVERY_BOUND_MS;
  const child = new Child({
    mode: "stream",
    backend: scenario.backend,
    prefix,
    ns,
    buses: scenario.buses,
    pattern: scenario.pattern ?? true,
    intervalMs: INTERVAL_MS,
    timing: TIMING,
    history: scenario.history ?? false,
  });
  let stats: StreamStats | undefined;
  let recovery: number | null = null;
  let faultAt = 0;
  let ended: number | undefined;
  try {
    await child.waitFor("ready", 20_000);
    await child.send({ cmd: "start" });
    await child.waitFor("flowing", 5000);
    await sleep(STEADY_MS);
    const faultMark = child.mark();
    faultAt = Date.now();
    const ctx: FaultContext = {
      child,
      timing: TIMING,
      faultEnded: async (t = Date.now()) => {
        ended = t;
        await child.send({ cmd: "faultEnded", t });
      },
      note: (key, value) => void (summary.record[key] = value),
      check: (ok, failure) => summary.check(ok, failure),
      waitState: async (bus, state, within) => {
        const start = performance.now();
        await child.waitFor("state", within, {
          from: faultMark,
          match: (m) => m.bus === bus && m.state === state,
        });
        return performance.now() - start;
      },
      rush: (count) => child.send({ cmd: "rush", count }),
      burst: async (concurrent, sequential) => {
        const mark = child.mark();
        await child.send({ cmd: "burst", concurrent, sequential });
        return (await child.waitFor("burst", 10_000, { from: mark })).results;
      },
    };
    try {
      await scenario.fault(ctx);
    } catch (error) {
      summary.check(false, `the fault failed: ${(error as Error).message}`);
    }
    if (ended === undefined) await ctx.faultEnded();
    try {
      recovery = (await child.waitFor("recovered", bound + 2000)).ms;
    } catch {
      recovery = null;
    }
    await sleep(STEADY_MS);
    const mark = child.mark();
    await child.send({ cmd: "stop", graceMs: 3 * TIMING.heartbeatMs });
    stats = (await child.waitFor("result", 6 * TIMING.heartbeatMs + 5000, {
      from: mark,
    })).stats;
  } catch (error) {
    summary.check(false, (error as Error).message);
  } finally {
    await closeAndExit(child, summary);
  }

  const r = summary.record;
  if (stats !== undefined) {
    const sum = (
      key: "lostInside" | "lostOutside" | "duplicates" | "reordered",
    ) => stats!.subs.reduce((n, s) => n + s[key], 0);
    Object.assign(r, {
      published: stats.published,
      resolved: stats.resolved,
      rejected: stats.rejected,
      unsettled: stats.unsettled,
      delivered: Object.fromEntries(
        stats.subs.map((s) => [s.name, s.delivered]),
      ),
      lostInside: sum("lostInside"),
      lostOutside: sum("lostOutside"),
      duplicates: sum("duplicates"),
      reordered: sum("reordered"),
      gaps: stats.gaps.length,
      errors: stats.errors,
      rejectCodes: stats.rejectCodes,
      maxSettleMs: stats.maxSettleMs,
      // When things happened, in ms from the fault's start.
      timeline: {
        gaps: stats.gaps.map((g) =>
          `${g.bus} ${g.since - faultAt}..${g.until - faultAt}`
        ),
        states: child.messages.flatMap((m) =>
          m.ev === "state" ? [`${m.bus} ${m.state} ${m.t - faultAt}`] : []
        ),
        faultEnded: ended === undefined ? null : ended - faultAt,
      },
    });
    summary.check(
      stats.unsettled === 0,
      `${stats.unsettled} publishes never settled (grace ${
        3 * TIMING.heartbeatMs
      } ms)`,
    );
    summary.check(
      stats.maxSettleMs === null || stats.maxSettleMs <= SETTLE_BOUND_MS,
      `a publish took ${stats.maxSettleMs} ms to settle (bound ${SETTLE_BOUND_MS})`,
    );
    for (const sub of stats.subs) {
      summary.check(
        sub.lostOutside === 0,
        `${sub.name}: ${sub.lostOutside} resolved events never received and outside every reported gap (e.g. ${
          JSON.stringify(sub.lostOutsideSample)
        }; gaps ${
          JSON.stringify(stats.gaps.filter((g) => g.bus === sub.bus))
        })`,
      );
      summary.check(
        sub.duplicates === 0,
        `${sub.name}: ${sub.duplicates} duplicates`,
      );
      summary.check(
        !scenario.history || sub.lostInside === 0,
        `${sub.name}: ${sub.lostInside} resolved events never received, with history`,
      );
      summary.check(
        sub.reordered === 0,
        `${sub.name}: ${sub.reordered} events out of order`,
      );
    }
  }
  if (scenario.history) {
    summary.check(
      r.gaps === 0,
      `${r.gaps} gaps reported with history: ${
        JSON.stringify((r.timeline as { gaps?: unknown } | undefined)?.gaps)
      }`,
    );
  }
  r.recoveryMs = recovery;
  summary.check(
    recovery !== null && recovery <= bound,
    recovery === null
      ? `no event published after the fault was delivered within ${
        bound + 2000
      } ms`
      : `recovery took ${recovery} ms (bound ${bound})`,
  );
  const delivered = r.delivered
    ? Object.entries(r.delivered as Record<string, number>).map(([k, v]) =>
      `${k} ${v}`
    ).join(", ")
    : "?";
  await summary.finish(
    `published ${r.published ?? "?"} / resolved ${
      r.resolved ?? "?"
    } / rejected ${r.rejected ?? "?"} / unsettled ${
      r.unsettled ?? "?"
    } | delivered ${delivered} | lost in gaps ${r.lostInside ?? "?"}, outside ${
      r.lostOutside ?? "?"
    } | dup ${r.duplicates ?? "?"}, reordered ${
      r.reordered ?? "?"
    } | max settle ${ms(r.maxSettleMs)} (≤ ${SETTLE_BOUND_MS}) | gaps ${
      r.gaps ?? "?"
    } | recovery ${ms(recovery)} (≤ ${bound}) | close ${
      ms(r.closeMs)
    } (≤ ${CLOSE_BOUND_MS}) | exit ${ms(r.exitMs)}${extra(r)}`,
  );
}

const STANDARD = new Set([
  "scenario",
  "backend",
  "published",
  "resolved",
  "rejected",
  "unsettled",
  "delivered",
  "lostInside",
  "lostOutside",
  "duplicates",
  "reordered",
  "gaps",
  "errors",
  "rejectCodes",
  "recoveryMs",
  "maxSettleMs",
  "timeline",
  "closeMs",
  "exitMs",
  "pass",
  "failures",
]);

function extra(r: Record<string, unknown>): string {
  const rest = Object.entries(r).filter(([k]) => !STANDARD.has(k));
  return rest.length === 0
    ? ""
    : ` | ${rest.map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(", ")}`;
}

/**
 * Scenario f: a server that accepts TCP but never answers. In one child,
 * at once: connect() must reject CONNECTION_FAILED within connectTimeoutMs
 * (+ CONNECT_SLACK_MS); connect({ signal }) aborted after 300 ms, and
 * close() called 300 ms into a connect(), must settle within PROMPT_MS;
 * then the child must exit by itself.
 */
export async function runSilentConnect(
  name: string,
  backend: Backend,
  url: string,
): Promise<void> {
  const { prefix } = names();
  const summary = new Summary(name, backend);
  const child = new Child({
    mode: "connect",
    backend,
    prefix,
    url,
    interruptAfterMs: 300,
    timing: TIMING,
  });
  let stats: ConnectStats | undefined;
  try {
    stats = (await child.waitFor(
      "connect",
      TIMING.connectTimeoutMs + 3000 + 3000 + 20_000,
    )).stats;
  } catch (error) {
    summary.check(false, (error as Error).message);
  }
  // The child closes its buses by itself: wait for "closed", then the exit.
  let closed: Extract<Received, { ev: "closed" }> | undefined;
  try {
    closed = await child.waitFor("closed", 5000);
  } catch (error) {
    summary.check(false, (error as Error).message);
  }
  const exitMs = closed === undefined ? null : await child.exit(closed.at);
  await child.kill();
  const r = summary.record;
  const show = (o: Outcome | undefined) =>
    o === undefined
      ? "?"
      : `${o.status}${o.code ? ` ${o.code}` : ""} after ${ms(o.ms)}`;
  if (stats !== undefined) {
    const { plain, aborted, closeDuringConnect: during } = stats;
    Object.assign(r, {
      connect: plain,
      abortedConnect: aborted,
      closeDuringConnect: during,
      closes: stats.closes,
    });
    const limit = TIMING.connectTimeoutMs + CONNECT_SLACK_MS;
    summary.check(
      plain.status === "rejected" && plain.code === "CONNECTION_FAILED" &&
        plain.ms! <= limit,
      `connect() should reject CONNECTION_FAILED within ${limit} ms: ${
        show(plain)
      }${plain.message ? ` (${plain.message})` : ""}`,
    );
    summary.check(
      aborted.status === "rejected" && aborted.ms! <= PROMPT_MS,
      `connect({ signal }) should reject within ${PROMPT_MS} ms of the abort: ${
        show(aborted)
      }`,
    );
    summary.check(
      during.connect.status === "rejected" && during.connect.ms! <= PROMPT_MS,
      `connect() should reject within ${PROMPT_MS} ms of close(): ${
        show(during.connect)
      }`,
    );
    summary.check(
      during.close.status === "resolved" && during.close.ms! <= PROMPT_MS,
      `close() during connect() should resolve within ${PROMPT_MS} ms: ${
        show(during.close)
      }`,
    );
    for (const [i, close] of stats.closes.entries()) {
      summary.check(
        close.status === "resolved" && close.ms! <= PROMPT_MS,
        `close() after ${
          ["the failed", "the aborted"][i]
        } connect should resolve within ${PROMPT_MS} ms: ${show(close)}`,
      );
    }
  }
  r.exitMs = exitMs;
  if (closed !== undefined) {
    summary.check(
      exitMs !== null && exitMs <= EXIT_BOUND_MS,
      exitMs === null
        ? `the child did not exit within ${EXIT_WAIT_MS} ms after its buses closed (killed)`
        : `the child exited ${
          Math.round(exitMs)
        } ms after close() (bound ${EXIT_BOUND_MS})`,
    );
  }
  await summary.finish(
    `connect ${show(stats?.plain)} (≤ ${
      TIMING.connectTimeoutMs + CONNECT_SLACK_MS
    }) | aborted connect ${show(stats?.aborted)} | connect during close ${
      show(stats?.closeDuringConnect.connect)
    }, close ${
      show(stats?.closeDuringConnect.close)
    } (≤ ${PROMPT_MS}) | other closes ${
      stats?.closes.map(show).join(", ") ?? "?"
    } | exit ${ms(exitMs)}`,
  );
}

/** Checks a burst of publishes made while the server is known down. */
export function checkDownBurst(ctx: FaultContext, results: Outcome[]): void {
  const slowest = Math.max(...results.map((o) => o.ms ?? Infinity));
  const wrong = results.filter((o) =>
    !(o.status === "rejected" && o.code === "PUBLISH_FAILED" &&
      o.ms !== null && o.ms <= DOWN_PUBLISH_MS)
  );
  ctx.note("downPublishes", {
    n: results.length,
    rejected: results.filter((o) => o.status === "rejected").length,
    slowestMs: slowest,
    codes: [...new Set(results.map((o) => o.code ?? o.status))],
  });
  ctx.check(
    wrong.length === 0,
    `${wrong.length} of ${results.length} publishes while the server was down did not reject PUBLISH_FAILED within ${DOWN_PUBLISH_MS} ms (e.g. ${
      JSON.stringify(wrong.slice(0, 2))
    })`,
  );
}

/** What the generic suite needs from a backend's throwaway server. */
export interface FaultServer extends AsyncDisposable {
  /** A URL the bus can use (the backend's scheme). */
  readonly url: string;
  readonly port: number;
  /** A URL for the same server at another loopback port (a proxy). */
  urlAt(port: number): string;
  /** Kills the bus's subscriber/listener connection(s); returns how many. */
  killSubscriber(): Promise<number>;
  /** Kills the bus's publishing connection(s); returns how many. */
  killPublisher(): Promise<number>;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** SIGSTOP the whole server. */
  freeze(): void;
  /** SIGCONT it. */
  thaw(): void;
}
