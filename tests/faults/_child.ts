// The child side of a fault scenario (see _scenario.ts): runs the buses,
// publishes a steady numbered stream, records what arrives, and answers the
// parent. `deno run -A tests/faults/_child.ts '<config JSON>'`.
//
// Mode "resume": one bus with history subscribes (exact and pattern) from
// given positions and writes a line for each event it handles, with its
// position (what an application would save); the parent SIGKILLs it.
//
// Protocol: one JSON object a line. The parent writes commands on stdin
// ({ cmd: ... }); the child writes events on stdout ({ ev: ... }). The child
// never calls Deno.exit: after the "closed" line it must end by itself, and
// the parent measures how long that takes.

import { lines } from "./_lines.ts";
import { Event, EventBusError, EventType } from "../../mod.ts";
import { RedisEventBus, type RedisEventBusOptions } from "../../redis.ts";
import {
  PostgresEventBus,
  type PostgresEventBusOptions,
} from "../../postgres.ts";

/** The timing options every bus of a scenario gets. */
export interface Timing {
  readonly heartbeatMs: number;
  readonly maxReconnectDelayMs: number;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
  readonly closeTimeoutMs: number;
}

export type Backend = "redis" | "postgres";

/** One bus of a stream scenario. */
export interface BusSpec {
  readonly name: string;
  readonly url: string;
  readonly publish: boolean;
  readonly subscribe: boolean;
}

export interface StreamConfig {
  readonly mode: "stream";
  readonly backend: Backend;
  readonly prefix: string;
  /** Topics are `<ns>:stream` (exact) and `<ns>:*` (pattern). */
  readonly ns: string;
  readonly buses: readonly BusSpec[];
  readonly pattern: boolean;
  readonly intervalMs: number;
  readonly timing: Timing;
  /** Buses keep history (a log, replayed after a lost connection). */
  readonly history?: boolean;
}

export interface ConnectConfig {
  readonly mode: "connect";
  readonly backend: Backend;
  readonly prefix: string;
  readonly url: string;
  /** When the signal is aborted / close() is called during connect. */
  readonly interruptAfterMs: number;
  readonly timing: Timing;
}

export interface ResumeConfig {
  readonly mode: "resume";
  readonly backend: Backend;
  readonly url: string;
  readonly prefix: string;
  /** Topics are `<ns>:stream` (exact) and `<ns>:*` (pattern). */
  readonly ns: string;
  readonly timing: Timing;
  /** Per subscription, the `from` of its subscribe. */
  readonly from: Readonly<Record<ResumeSub, string>>;
}

/** The subscriptions of a resume child. */
export type ResumeSub = "exact" | "pattern";

export type ChildConfig = StreamConfig | ConnectConfig | ResumeConfig;

/** How a promise ended, and when (ms after `from`). */
export interface Outcome {
  readonly status: "resolved" | "rejected" | "pending";
  readonly ms: number | null;
  readonly code?: string | undefined;
  readonly message?: string | undefined;
}

export interface SubStats {
  readonly name: string;
  readonly bus: string;
  readonly delivered: number;
  readonly lostInside: number;
  readonly lostOutside: number;
  readonly duplicates: number;
  readonly reordered: number;
  /** The first few resolved, never received, outside every gap. */
  readonly lostOutsideSample: { seq: number; call: number; settle: number }[];
}

export interface GapRecord {
  readonly bus: string;
  readonly since: number;
  readonly until: number;
}

export interface StreamStats {
  readonly published: number;
  readonly resolved: number;
  readonly rejected: number;
  readonly unsettled: number;
  readonly rejectCodes: Record<string, number>;
  readonly subs: SubStats[];
  readonly gaps: GapRecord[];
  readonly errors: number;
  readonly recoveryMs: number | null;
  /** The longest a stream publish took to settle. */
  readonly maxSettleMs: number | null;
}

export interface ConnectStats {
  /** connect(), against a server that never answers. */
  readonly plain: Outcome;
  /** connect({ signal }), the signal aborted after interruptAfterMs; ms from the abort. */
  readonly aborted: Outcome;
  /** connect() with close() called after interruptAfterMs; ms from close(). */
  readonly closeDuringConnect: { connect: Outcome; close: Outcome };
  /** The other buses' close(), ms from the call. */
  readonly closes: Outcome[];
  readonly states: string[];
}

/** Lines the child writes. */
export type ChildMessage =
  | { ev: "ready"; t: number }
  | { ev: "state"; bus: string; state: string; t: number }
  | { ev: "gap"; bus: string; since: number; until: number }
  | { ev: "error"; bus: string; code: string; message: string; t: number }
  | { ev: "flowing"; t: number }
  | { ev: "recovered"; ms: number }
  | { ev: "burst"; results: Outcome[] }
  | { ev: "result"; stats: StreamStats }
  | { ev: "connect"; stats: ConnectStats }
  | { ev: "closed"; ms: number | null; settled: boolean }
  | { ev: "handled"; sub: ResumeSub; seq: number; position: string }
  | { ev: "fatal"; message: string };

/** Lines the parent writes. */
export type ParentCommand =
  | { cmd: "start" }
  | { cmd: "faultEnded"; t: number }
  | { cmd: "burst"; concurrent: number; sequential: number }
  | { cmd: "rush"; count: number }
  | { cmd: "stop"; graceMs: number }
  | { cmd: "close" };

const encoder = new TextEncoder();

function emit(message: ChildMessage): void {
  const bytes = encoder.encode(JSON.stringify(message) + "\n");
  // writeSync on a pipe may write part of it; finish it.
  for (let at = 0; at < bytes.length;) {
    at += Deno.stdout.writeSync(bytes.subarray(at));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function describe(error: unknown): { code: string; message: string } {
  const code = error instanceof EventBusError
    ? error.code
    : (error as Error)?.name ?? "unknown";
  return {
    code,
    message: String((error as Error)?.message ?? error).slice(0, 300),
  };
}

/**
 * Waits for `promise` at most `ms`; never leaves a timer behind. The outcome's
 * ms counts from `from` (a Date.now()).
 */
async function settleWithin(
  promise: Promise<unknown>,
  ms: number,
  from: number,
): Promise<Outcome> {
  let outcome: Outcome = { status: "pending", ms: null };
  const settled = promise.then(
    () => {
      outcome = { status: "resolved", ms: Date.now() - from };
    },
    (error) => {
      outcome = {
        status: "rejected",
        ms: Date.now() - from,
        ...describe(error),
      };
    },
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    settled,
    new Promise((r) => {
      timer = setTimeout(r, ms);
    }),
  ]);
  clearTimeout(timer);
  return outcome;
}

/** The bus API this harness uses, old and new (connect({ signal }) is new). */
export interface Bus {
  readonly state: string;
  connect(options?: { signal?: AbortSignal }): Promise<void>;
  subscribe(
    topic: string,
    handler: (event: Event, delivery: { position?: string }) => void,
    options?: string | null | { pattern?: string; from?: string },
  ): Promise<unknown>;
  publish(topic: string, event: Event): Promise<void>;
  close(): Promise<void>;
}

export interface Hooks {
  onGap: (gap: { since: Date; until: Date }) => void;
  onError: (error: unknown) => void;
  onStateChange: (state: string) => void;
}

export function makeBus(
  backend: Backend,
  url: string,
  prefix: string,
  timing: Timing & { readonly history?: Record<string, never> },
  hooks: Hooks,
): Bus {
  // connectTimeoutMs and commandTimeoutMs are new options: cast, so that this
  // compiles against the old core too.
  const common = { channelPrefix: prefix, ...timing, ...hooks };
  return (backend === "redis"
    ? new RedisEventBus({ url, ...common } as RedisEventBusOptions)
    : new PostgresEventBus(
      { connectionString: url, ...common } as PostgresEventBusOptions,
    )) as unknown as Bus;
}

/** A wake-up list: waiters re-check their condition on every change. */
class Changes {
  #waiters: (() => void)[] = [];

  notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Resolves true once `condition()` holds, false after `ms`. */
  async until(condition: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      // Bounded: each turn waits for a change or the deadline.
      while (!condition()) {
        const left = deadline - Date.now();
        if (left <= 0) return false;
        await new Promise<void>((wake) => {
          this.#waiters.push(wake);
          timer = setTimeout(wake, left);
        });
        clearTimeout(timer);
      }
      return true;
    } finally {
      clearTimeout(timer);
    }
  }
}

interface Sent {
  readonly seq: number;
  readonly call: number;
  settle: number | null;
  ok: boolean | null;
  error?: { code: string; message: string };
}

interface Sub {
  readonly name: string;
  readonly bus: string;
  readonly got: number[];
  readonly first: Map<number, number>; // seq → when first received
}

/**
 * In a sequence of received numbers: how many were received before
 * (duplicates), and how many came after a larger one (reordered).
 */
export function disorder(
  got: readonly number[],
): { duplicates: number; reordered: number } {
  const seen = new Set<number>();
  let last = 0, duplicates = 0, reordered = 0;
  for (const seq of got) {
    if (seen.has(seq)) duplicates++;
    else if (seq <= last) reordered++;
    seen.add(seq);
    last = Math.max(last, seq);
  }
  return { duplicates, reordered };
}

/** Stop the stream here whatever happens (every loop is bounded). */
const MAX_EVENTS = 20_000;
const MAX_STREAM_MS = 60_000;

async function stream(config: StreamConfig, lines: AsyncIterator<string>) {
  const { timing } = config;
  const topic = `${config.ns}:stream`;
  const burstTopic = `${config.ns}-burst`; // outside the pattern
  const changes = new Changes();
  const gaps: GapRecord[] = [];
  let errors = 0;
  const buses = new Map<string, Bus>();
  for (const spec of config.buses) {
    buses.set(
      spec.name,
      makeBus(config.backend, spec.url, config.prefix, {
        ...timing,
        ...(config.history ? { history: {} } : {}),
      }, {
        onGap: ({ since, until }) => {
          const gap = {
            bus: spec.name,
            since: since.getTime(),
            until: until.getTime(),
          };
          gaps.push(gap);
          emit({ ev: "gap", ...gap });
          changes.notify();
        },
        onError: (error) => {
          errors++;
          emit({
            ev: "error",
            bus: spec.name,
            ...describe(error),
            t: Date.now(),
          });
        },
        onStateChange: (state) =>
          emit({ ev: "state", bus: spec.name, state, t: Date.now() }),
      }),
    );
  }
  const publisherSpec = config.buses.find((b) => b.publish)!;
  const publisher = buses.get(publisherSpec.name)!;

  let timer: ReturnType<typeof setInterval> | undefined;
  let startedAt = 0;
  const stopStream = () => {
    clearInterval(timer);
    timer = undefined;
  };
  // Always run, also after a failure: so that the exit can be measured.
  const close = async () => {
    stopStream();
    const from = Date.now();
    const outcome = await settleWithin(
      Promise.all([...buses.values()].map((bus) => bus.close())),
      timing.closeTimeoutMs + 4000,
      from,
    );
    emit({
      ev: "closed",
      ms: outcome.ms,
      settled: outcome.status !== "pending",
    });
  };

  try {
    await run();
  } finally {
    await close();
  }

  async function run() {
    const connected = await settleWithin(
      Promise.all([...buses.values()].map((bus) => bus.connect())),
      timing.connectTimeoutMs + 5000,
      Date.now(),
    );
    if (connected.status !== "resolved") {
      throw new Error(`connect: ${JSON.stringify(connected)}`);
    }

    const subs: Sub[] = [];
    let faultEnd: number | undefined;
    let recoveryMs: number | null = null;
    let flowing = false;
    const sent: Sent[] = [];
    const complete = (seq: number) => subs.every((s) => s.first.has(seq));
    const checkRecovery = () => {
      if (faultEnd === undefined || recoveryMs !== null) return;
      // The first event published after the fault ended that every
      // subscription has: when its last copy arrived.
      for (let i = sent.length - 1; i >= 0 && sent[i]!.call >= faultEnd; i--) {
        const { seq } = sent[i]!;
        if (!complete(seq)) continue;
        const at = Math.max(...subs.map((s) => s.first.get(seq)!));
        recoveryMs = Math.min(recoveryMs ?? Infinity, at - faultEnd);
      }
      if (recoveryMs !== null) {
        recoveryMs = Math.max(0, recoveryMs);
        emit({ ev: "recovered", ms: recoveryMs });
      }
    };
    const receiver = (sub: Sub) => (event: Event) => {
      const seq = event.payload["seq"] as number;
      const now = Date.now();
      sub.got.push(seq);
      if (!sub.first.has(seq)) sub.first.set(seq, now);
      if (!flowing && complete(seq)) {
        flowing = true;
        emit({ ev: "flowing", t: now });
      }
      if (faultEnd !== undefined && recoveryMs === null && complete(seq)) {
        checkRecovery();
      }
      changes.notify();
    };
    for (const spec of config.buses.filter((b) => b.subscribe)) {
      const bus = buses.get(spec.name)!;
      const exact: Sub = {
        name: `${spec.name}/exact`,
        bus: spec.name,
        got: [],
        first: new Map(),
      };
      subs.push(exact);
      await bus.subscribe(topic, receiver(exact));
      if (config.pattern) {
        const pattern: Sub = {
          name: `${spec.name}/pattern`,
          bus: spec.name,
          got: [],
          first: new Map(),
        };
        subs.push(pattern);
        await bus.subscribe("pattern", receiver(pattern), `${config.ns}:*`);
      }
    }
    emit({ ev: "ready", t: Date.now() });

    let pending = 0;
    const publish = (
      bus: Bus,
      target: string,
      seq: number,
    ): { record: Sent; done: Promise<void> } => {
      const record: Sent = { seq, call: Date.now(), settle: null, ok: null };
      pending++;
      let promise: Promise<void>;
      try {
        promise = bus.publish(
          target,
          new Event({
            type: EventType.CREATED,
            topic: target,
            payload: { seq },
          }),
        );
      } catch (error) {
        promise = Promise.reject(error);
      }
      const done = promise.then(() => {
        record.ok = true;
      }, (error) => {
        record.ok = false;
        record.error = describe(error);
        rejectCodes[record.error.code] = (rejectCodes[record.error.code] ?? 0) +
          1;
      }).finally(() => {
        record.settle = Date.now();
        pending--;
        changes.notify();
      });
      return { record, done };
    };
    const rejectCodes: Record<string, number> = {};

    const tick = () => {
      if (sent.length >= MAX_EVENTS || Date.now() - startedAt > MAX_STREAM_MS) {
        stopStream();
        return;
      }
      sent.push(publish(publisher, topic, sent.length + 1).record);
    };

    const inGap = (record: Sent, bus: string) =>
      gaps.some((g) =>
        g.bus === bus && record.call <= g.until && record.settle! >= g.since
      );
    // Done waiting for deliveries: every resolved event is at every
    // subscription, or inside one of its bus's reported gaps.
    const accounted = () =>
      sent.every((r) =>
        r.ok !== true ||
        subs.every((s) => s.first.has(r.seq) || inGap(r, s.bus))
      );

    const stats = (): StreamStats => {
      const resolved = sent.filter((r) => r.ok === true);
      return {
        published: sent.length,
        resolved: resolved.length,
        rejected: sent.filter((r) => r.ok === false).length,
        unsettled: sent.filter((r) => r.ok === null).length,
        rejectCodes,
        subs: subs.map((sub) => {
          let lostInside = 0, lostOutside = 0;
          const sample: SubStats["lostOutsideSample"] = [];
          for (const r of resolved) {
            if (sub.first.has(r.seq)) continue;
            if (inGap(r, sub.bus)) lostInside++;
            else {
              lostOutside++;
              if (sample.length < 5) {
                sample.push({ seq: r.seq, call: r.call, settle: r.settle! });
              }
            }
          }
          const { duplicates, reordered } = disorder(sub.got);
          return {
            name: sub.name,
            bus: sub.bus,
            delivered: sub.first.size,
            lostInside,
            lostOutside,
            duplicates,
            reordered,
            lostOutsideSample: sample,
          };
        }),
        gaps,
        errors,
        recoveryMs,
        maxSettleMs: sent.reduce<number | null>(
          (max, r) =>
            r.settle === null ? max : Math.max(max ?? 0, r.settle - r.call),
          null,
        ),
      };
    };

    // Bounded: the parent's commands, until "close" or the end of stdin.
    for (let turn = 0; turn < 1000; turn++) {
      const next = await lines.next();
      if (next.done) break;
      const command = JSON.parse(next.value) as ParentCommand;
      if (command.cmd === "start") {
        startedAt = Date.now();
        timer = setInterval(tick, config.intervalMs);
      } else if (command.cmd === "faultEnded") {
        faultEnd = command.t;
        checkRecovery();
      } else if (command.cmd === "rush") {
        // `count` more stream events at once: many in flight at the fault.
        for (let i = 0; i < command.count && timer !== undefined; i++) tick();
      } else if (command.cmd === "burst") {
        const results: Outcome[] = [];
        const batch = Array.from(
          { length: command.concurrent },
          (_, i) => publish(publisher, burstTopic, -1 - i),
        );
        // Bounded: 2 s for the concurrent ones, 500 ms for each sequential
        // one (the sequence stops at the first that is still pending).
        await settleWithin(
          Promise.all(batch.map((p) => p.done)),
          2000,
          Date.now(),
        );
        for (const { record } of batch) results.push(outcomeOf(record));
        for (let i = 0; i < command.sequential; i++) {
          const { record, done } = publish(
            publisher,
            burstTopic,
            -1000 - i,
          );
          await settleWithin(done, 500, record.call);
          results.push(outcomeOf(record));
          if (record.ok === null) break;
        }
        emit({ ev: "burst", results });
      } else if (command.cmd === "stop") {
        stopStream();
        await changes.until(() => pending === 0, command.graceMs);
        await changes.until(accounted, command.graceMs);
        emit({ ev: "result", stats: stats() });
      } else if (command.cmd === "close") {
        break;
      }
    }
  }

  function outcomeOf(record: Sent): Outcome {
    return {
      status: record.ok === null
        ? "pending"
        : record.ok
        ? "resolved"
        : "rejected",
      ms: record.settle === null ? null : record.settle - record.call,
      ...(record.error ?? {}),
    };
  }
}

/** Mode "resume": see the comment at the top. */
async function resume(config: ResumeConfig): Promise<void> {
  const bus = makeBus(config.backend, config.url, config.prefix, {
    ...config.timing,
    history: {},
  }, {
    onGap: ({ since, until }) =>
      emit({
        ev: "gap",
        bus: "bus",
        since: since.getTime(),
        until: until.getTime(),
      }),
    onError: () => {},
    onStateChange: () => {},
  });
  await bus.connect();
  const handler =
    (sub: ResumeSub) => (event: Event, { position }: { position?: string }) =>
      emit({
        ev: "handled",
        sub,
        seq: event.payload["seq"] as number,
        position: position!,
      });
  await bus.subscribe(`${config.ns}:stream`, handler("exact"), {
    from: config.from.exact,
  });
  await bus.subscribe("pattern", handler("pattern"), {
    pattern: `${config.ns}:*`,
    from: config.from.pattern,
  });
  emit({ ev: "ready", t: Date.now() });
  // Runs until killed: the bus's connections keep the process alive.
}

async function connectCases(config: ConnectConfig) {
  const { timing } = config;
  const states: string[] = [];
  const mk = (name: string) =>
    makeBus(config.backend, config.url, config.prefix, timing, {
      onGap: () => {},
      onError: () => {},
      onStateChange: (state) => void states.push(`${name}:${state}`),
    });
  const bound = 3000;

  const plain = mk("plain");
  const aborted = mk("aborted");
  const during = mk("closeDuring");

  const plainCase = (async () => {
    const t0 = Date.now();
    return await settleWithin(
      plain.connect(),
      timing.connectTimeoutMs + bound,
      t0,
    );
  })();
  const abortCase = (async () => {
    const controller = new AbortController();
    const connecting = aborted.connect({ signal: controller.signal });
    connecting.catch(() => {});
    await sleep(config.interruptAfterMs);
    const t0 = Date.now();
    controller.abort();
    return await settleWithin(connecting, bound, t0);
  })();
  const duringCase = (async () => {
    const connecting = during.connect();
    connecting.catch(() => {});
    await sleep(config.interruptAfterMs);
    const t0 = Date.now();
    const closing = during.close();
    const [connect, close] = await Promise.all([
      settleWithin(connecting, bound, t0),
      settleWithin(closing, bound, t0),
    ]);
    return { connect, close };
  })();
  const [plainOutcome, abortOutcome, duringOutcome] = await Promise.all([
    plainCase,
    abortCase,
    duringCase,
  ]);
  const closes = await Promise.all([plain, aborted].map((bus) => {
    const t0 = Date.now();
    return settleWithin(bus.close(), bound, t0);
  }));
  emit({
    ev: "connect",
    stats: {
      plain: plainOutcome,
      aborted: abortOutcome,
      closeDuringConnect: duringOutcome,
      closes,
      states,
    },
  });
  const all = [...closes, duringOutcome.close];
  emit({
    ev: "closed",
    ms: all.every((o) => o.ms !== null)
      ? Math.max(...all.map((o) => o.ms!))
      : null,
    settled: all.every((o) => o.status !== "pending"),
  });
}

if (import.meta.main) {
  // A last resort if the parent vanished: unref'd, so it never keeps the
  // process alive (nor shortens a prompt exit).
  const watchdog = setTimeout(() => {
    emit({ ev: "fatal", message: "watchdog: still running after 120 s" });
    Deno.exit(3);
  }, 120_000);
  Deno.unrefTimer(watchdog);
  const config = JSON.parse(Deno.args[0]!) as ChildConfig;
  try {
    if (config.mode === "stream") {
      await stream(config, lines(Deno.stdin.readable)); // the parent closes stdin after its last command
    } else if (config.mode === "resume") await resume(config);
    else await connectCases(config);
  } catch (error) {
    emit({ ev: "fatal", message: String((error as Error)?.stack ?? error) });
    Deno.exitCode = 2;
  }
}
