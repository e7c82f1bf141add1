// Keeps one connection of a remote bus open: opens it within a deadline,
// proves it live with a heartbeat, bounds every command on it, and replaces
// it (with backoff) when it is lost. The publishing and the receiving
// connection each have one; only what `restore` does differs.

import { backoff, bounded, Deadlines, sleep } from "./_deadline.ts";
import { type Link, Refusal } from "./_transport.ts";

/** The timing options of a remote bus, checked (see RemoteEventBusOptions). */
export interface Timing {
  readonly heartbeatMs: number;
  readonly maxReconnectDelayMs: number;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
}

/** What a keeper does with a connection, and whom it tells. */
export interface KeeperHooks<L extends Link> {
  /** Opens a connection; `lost` is to be called when it closes. */
  open(signal: AbortSignal, lost: (cause?: Error) => void): Promise<L>;
  /**
   * Makes a new connection carry what the last one did (bounded here);
   * `previous` is the connection it replaces, if one was lost.
   */
  restore(link: L, previous: L | undefined): Promise<void>;
  /** The connection is up: the first one, or a replacement. */
  up(): void;
  /** The connection was lost; a replacement is being made. */
  down(cause: Error): void;
  /** An attempt to replace it failed; another follows after a backoff. */
  retrying(cause: Error): void;
  /** A heartbeat sent at `sentAt` (epoch ms) was answered. */
  beat?(sentAt: number): void;
}

/** One connection and the signal that aborts when it is lost. */
interface Session<L> {
  link: L | undefined;
  readonly lost: AbortController;
}

/** Rejected by waits on a keeper that was stopped (the bus is closing). */
export class Stopped extends Error {
  override readonly name = "Stopped";
}

/** Rejected by a command on a keeper whose connection is down. */
export class Down extends Error {
  override readonly name = "Down";
}

/** One connection of a remote bus, kept open until `stop()`. */
export class Keeper<L extends Link> {
  readonly #hooks: KeeperHooks<L>;
  readonly #timing: Timing;
  readonly #stop = new AbortController();
  #session: Session<L> | undefined;
  /** The lost connection a replacement must fence off (see restore). */
  #previous: L | undefined;
  #waiters = new Set<() => void>();
  /** The deadlines of the commands run on the connection. */
  readonly #deadlines = new Deadlines();
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #pinging = false;
  /** The last moment (epoch ms) the connection was proven live. */
  provenAt = 0;

  constructor(hooks: KeeperHooks<L>, timing: Timing) {
    this.#hooks = hooks;
    this.#timing = timing;
  }

  /** The connection, while it is up. */
  get link(): L | undefined {
    return this.#session?.link;
  }

  /**
   * Opens the first connection within `connectTimeoutMs`, or rejects
   * (leaving nothing open) when that fails or `signal` aborts.
   */
  async start(signal: AbortSignal): Promise<void> {
    this.#install(await this.#establish(signal));
    this.#heartbeat = setInterval(this.#beat, this.#timing.heartbeatMs);
  }

  /**
   * Runs `command` on the connection, bounded by `ms` and by the loss of
   * the connection. A failure other than a server's {@linkcode Refusal}
   * means the connection is not usable: it is ended and replaced.
   * Rejects with {@linkcode Down} when there is no connection.
   */
  run<T>(
    what: string,
    command: (link: L) => Promise<T>,
    ms: number,
  ): Promise<T> {
    const session = this.#session;
    if (session === undefined) return Promise.reject(new Down(what));
    return this.#deadlines.bound(
      command(session.link!),
      ms,
      what,
      session.lost.signal,
    ).catch((error: Error) => {
      if (!(error instanceof Refusal)) this.#lose(session, error);
      throw error;
    });
  }

  /**
   * Resolves once the connection is up, or rejects after `ms` (a
   * `Timeout`) or when the keeper stops ({@linkcode Stopped}).
   */
  async whenUp(ms: number, what: string): Promise<void> {
    if (this.#session !== undefined) return;
    let wake!: () => void;
    const up = new Promise<void>((resolve) => (wake = resolve));
    this.#waiters.add(wake);
    try {
      await bounded(up, ms, what, this.#stop.signal);
    } finally {
      this.#waiters.delete(wake);
    }
  }

  /** Stops for good: no reconnecting; ends the connection within `ms`. */
  async stop(ms: number): Promise<void> {
    this.#stop.abort(new Stopped("the bus is closing"));
    clearInterval(this.#heartbeat);
    this.#deadlines.clear();
    const session = this.#session;
    this.#session = undefined;
    if (session === undefined) return;
    session.lost.abort(new Stopped("the bus is closing"));
    await bounded(session.link!.end(), ms, "goodbye").catch(() => {});
    session.link!.destroy();
  }

  // Opens a connection and restores it, within connectTimeoutMs; on any
  // failure destroys it, also when it opens after the deadline.
  async #establish(signal: AbortSignal): Promise<Session<L>> {
    const session: Session<L> = {
      link: undefined,
      lost: new AbortController(),
    };
    const attempt = AbortSignal.any([
      signal,
      this.#stop.signal,
      session.lost.signal,
    ]);
    const lost = (cause?: Error) =>
      this.#lose(session, cause ?? new Error("connection closed"));
    const steps = async () => {
      const link = await this.#hooks.open(attempt, lost);
      if (attempt.aborted) {
        link.destroy();
        throw attempt.reason;
      }
      session.link = link;
      await this.#hooks.restore(link, this.#previous);
    };
    try {
      await bounded(steps(), this.#timing.connectTimeoutMs, "connect", attempt);
    } catch (error) {
      // A link that opens after this point is destroyed by the check in
      // `steps` (the session is lost).
      this.#lose(session, error as Error);
      throw error;
    }
    return session;
  }

  #install(session: Session<L>): void {
    this.#session = session;
    this.#previous = undefined;
    this.provenAt = Date.now();
    for (const wake of this.#waiters) wake();
    this.#waiters.clear();
  }

  // Ends a lost connection once; if it was the current one, tells `down`
  // and starts replacing it.
  #lose(session: Session<L>, cause: Error): void {
    if (session.lost.signal.aborted) return;
    session.lost.abort(cause);
    session.link?.destroy();
    if (this.#session !== session) return;
    this.#session = undefined;
    this.#previous = session.link;
    this.#hooks.down(cause);
    void this.#reconnect();
  }

  async #reconnect(): Promise<void> {
    const stop = this.#stop.signal;
    for (let attempt = 1; !stop.aborted; attempt++) {
      await sleep(backoff(attempt, this.#timing.maxReconnectDelayMs), stop);
      if (stop.aborted) return;
      let session: Session<L>;
      try {
        session = await this.#establish(stop);
      } catch (error) {
        if (!stop.aborted) this.#hooks.retrying(error as Error);
        continue;
      }
      this.#install(session);
      this.#hooks.up();
      return;
    }
  }

  // A round trip per heartbeat: one not answered within heartbeatMs means
  // a dead (half-open or stalled) connection. Its send time is when the
  // connection was last proven live.
  #beat = (): void => {
    const session = this.#session;
    if (session === undefined || this.#pinging) return;
    this.#pinging = true;
    const sentAt = Date.now();
    bounded(
      session.link!.ping(),
      this.#timing.heartbeatMs,
      "heartbeat",
      session.lost.signal,
    ).then(
      () => {
        if (this.#session !== session) return;
        this.provenAt = sentAt;
        this.#hooks.beat?.(sentAt);
      },
      (error: Error) => this.#lose(session, error),
    ).finally(() => (this.#pinging = false));
  };
}
