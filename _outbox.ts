// The publishes of a remote bus: queued while one batch is in flight, sent
// in order a batch at a time through the publishing connection, and each
// one settled — resolved once the server accepted it, or rejected saying
// whether it was sent.

import { bounded } from "./_deadline.ts";
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
  #sending: Promise<void> | undefined;

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
      this.#sending ??= this.#pump();
    });
  }

  /**
   * Waits up to `ms` for every accepted publish to be sent, then rejects
   * those still queued (those in flight settle when the connection ends).
   */
  async flush(ms: number): Promise<void> {
    await bounded(this.#sending ?? Promise.resolve(), ms, "flush").catch(
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

  // Sends batches until the queue is empty; starts on the next microtask,
  // so that the publishes of one tick share a batch.
  async #pump(): Promise<void> {
    await Promise.resolve();
    while (this.#queue.length > 0) {
      const batch = this.#take();
      const events = batch.map((p) => p.event);
      let outcomes: readonly (Refusal | undefined)[];
      try {
        outcomes = await this.#keeper!.run(
          "publish",
          (link) => link.send(events),
          this.#timeoutMs,
        );
      } catch (error) {
        for (const { event, reject } of batch) {
          reject(this.#failure(event, error as Error));
        }
        continue;
      }
      batch.forEach(({ event, resolve, reject }, i) => {
        const refusal = outcomes[i];
        if (refusal === undefined) resolve();
        else {
          reject(this.#error(
            event,
            `refused it (${refusal.message}); the event was not sent — check the user's permissions`,
            refusal,
            "",
          ));
        }
      });
    }
    this.#sending = undefined;
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
