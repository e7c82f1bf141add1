// The publishes of a remote bus: sent in order, a batch at a time, through
// the publishing connection, with up to the transport's `inFlight` batches
// sent and not yet answered (the next one goes while the server works on
// the last); queued while that many are; each one settled — resolved once
// the server accepted it, or rejected saying whether it was sent.

import { bounded } from "./_deadline.ts";
import { type Deferred, deferred } from "./_deferred.ts";
import { Down, type Keeper } from "./_keeper.ts";
import {
  type PublishLink,
  type Refusal,
  type Transport,
  Unsent,
} from "./_transport.ts";
import { type Event, EventBusError } from "./types.ts";

interface Pending {
  readonly event: Event;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** Publishes through a keeper's connection; see the comment above. */
export class Outbox {
  readonly #transport: Transport;
  readonly #timeoutMs: number;
  #keeper: Keeper<PublishLink> | undefined;
  #queue: Pending[] = [];
  /** Batches sent and not yet settled. */
  #inFlight = 0;
  /** Resolved once nothing is queued or in flight; made by `flush`. */
  #idle: Deferred<void> | undefined;
  #scheduled = false;

  constructor(transport: Transport, commandTimeoutMs: number) {
    this.#transport = transport;
    this.#timeoutMs = commandTimeoutMs;
  }

  /** Sends through this keeper's connection from now on. */
  use(keeper: Keeper<PublishLink>): void {
    this.#keeper = keeper;
  }

  /** Publishes an event; rejects at once while the connection is down. */
  push(event: Event): Promise<void> {
    if (this.#keeper?.link === undefined) {
      return Promise.reject(this.#error(
        event,
        'is down; the event was not sent — retry once bus.state is "ready"',
      ));
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ event, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        queueMicrotask(this.#fill);
      }
    });
  }

  /**
   * Waits up to `ms` for every accepted publish to be sent, then rejects
   * those still queued (those in flight settle when the connection ends).
   */
  async flush(ms: number): Promise<void> {
    if (this.#queue.length > 0 || this.#inFlight > 0) {
      this.#idle ??= deferred();
    }
    await bounded(this.#idle?.promise ?? Promise.resolve(), ms, "flush").catch(
      () => {}, // what is left is rejected below
    );
    const unsent = this.#queue;
    this.#queue = [];
    for (const { event, reject } of unsent) {
      reject(this.#error(
        event,
        `was still busy when closeTimeoutMs (${ms} ms) ran out on close(); the event was not sent`,
      ));
    }
  }

  // Sends batches while fewer than `inFlight` are in flight; runs on the
  // next microtask after a push, so that the publishes of one tick share a
  // batch, and again as each batch settles. Batches go out in order, and a
  // transport's `send` writes its commands before those of any later call.
  #fill = (): void => {
    this.#scheduled = false;
    const { inFlight = 1 } = this.#transport.batch;
    while (this.#queue.length > 0 && this.#inFlight < inFlight) {
      this.#inFlight++;
      void this.#send(this.#take()).then(() => {
        this.#inFlight--;
        this.#fill();
      });
    }
    if (this.#inFlight === 0) {
      this.#idle?.resolve();
      this.#idle = undefined;
    }
  };

  // Sends one batch and settles each of its publishes; never rejects.
  async #send(batch: Pending[]): Promise<void> {
    let outcomes: readonly (Refusal | undefined)[];
    try {
      outcomes = await this.#keeper!.run(
        "publish",
        (link) => link.send(batch.map((p) => p.event)),
        this.#timeoutMs,
      );
    } catch (error) {
      for (const { event, reject } of batch) {
        reject(this.#failure(event, error as Error));
      }
      return;
    }
    batch.forEach(({ event, resolve, reject }, i) => {
      const refusal = outcomes[i];
      if (refusal === undefined) resolve();
      else {
        reject(this.#error(
          event,
          `refused it (${refusal.message}); the event was not sent — ${refusal.advice}`,
          refusal,
          "",
        ));
      }
    });
  }

  // The next batch: the longest run from the front within the transport's
  // limits on events and on JSON text (at least one event).
  #take(): Pending[] {
    const { events, chars, charsPerEvent = Infinity } = this.#transport.batch;
    let end = 0, total = 0;
    while (end < this.#queue.length && end < events) {
      const length = this.#queue[end]!.event.toJSONString().length;
      total += Math.min(length, charsPerEvent);
      if (end > 0 && total > chars) break;
      end++;
    }
    return this.#queue.splice(0, end);
  }

  #failure(event: Event, error: Error): EventBusError {
    if (error instanceof Down || error instanceof Unsent) {
      return this.#error(
        event,
        'is down; the event was not sent — retry once bus.state is "ready"',
      );
    }
    return this.#error(
      event,
      `failed before the server confirmed the event (${error.message}); it may or may not have been delivered`,
      error,
    );
  }

  #error(
    event: Event,
    what: string,
    cause?: Error,
    subject = "the connection to ",
  ): EventBusError {
    const { server, label } = this.#transport;
    return new EventBusError(
      "PUBLISH_FAILED",
      `Cannot publish to "${event.topic}": ${subject}${server} at ${label} ${what}`,
      cause === undefined ? undefined : { cause },
    );
  }
}
