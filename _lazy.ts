// A bus whose backend module (and so its driver) is loaded on connect(), so
// that importing mod.ts never loads postgres or ioredis.

import { unusable } from "./_bus.ts";
import type {
  ConnectionState,
  ConnectOptions,
  Event,
  EventBus,
  EventHandler,
  Subscription,
} from "./types.ts";

export class LazyEventBus implements EventBus {
  readonly #backend: string;
  readonly #load: () => Promise<EventBus>;
  #loading: Promise<EventBus> | undefined;
  #inner: EventBus | undefined;
  #closed = false;

  constructor(backend: string, load: () => Promise<EventBus>) {
    this.#backend = backend;
    this.#load = load;
  }

  get state(): ConnectionState {
    if (this.#inner !== undefined) return this.#inner.state;
    return this.#closed ? "closed" : "idle";
  }

  async connect(options?: ConnectOptions): Promise<void> {
    if (this.#closed) throw unusable("connect", null, true);
    this.#loading ??= this.#load();
    try {
      this.#inner = await this.#loading;
    } catch (error) {
      this.#loading = undefined;
      throw error;
    }
    await this.#inner.connect(options);
  }

  async close(): Promise<void> {
    this.#closed = true;
    // Called synchronously when loaded, so that a handler closing its own
    // bus is recognised (see Dispatcher.drain).
    if (this.#inner !== undefined) return await this.#inner.close();
    const inner = await this.#loading?.catch(() => undefined);
    await inner?.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  publish(topic: string, event: Event): Promise<void> {
    return this.#inner?.publish(topic, event) ??
      Promise.reject(unusable("publish to", topic, this.#closed));
  }

  subscribe(
    topic: string,
    handler: EventHandler,
    pattern?: string | null,
  ): Promise<Subscription> {
    return this.#inner?.subscribe(topic, handler, pattern) ??
      Promise.reject(unusable("subscribe to", topic, this.#closed));
  }

  toString(): string {
    return this.#inner?.toString() ??
      `EventBus(${this.#backend}, ${this.state})`;
  }
}
