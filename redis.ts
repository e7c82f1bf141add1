/**
 * The Redis backend (pub/sub). Not implemented yet: connecting
 * throws an {@linkcode EventBusError} with code `NOT_IMPLEMENTED`.
 *
 * @example Not implemented yet
 * ```ts
 * import { RedisEventBus } from "@dataknobs/events/redis";
 * const bus = new RedisEventBus({ host: "127.0.0.1" });
 * await bus.connect().catch((error) => console.assert(error.code === "NOT_IMPLEMENTED"));
 * ```
 *
 * @module
 */
import { BusBase } from "./_bus.ts";
import { EventBusError, type EventBusOptions } from "./types.ts";

/** Options of {@linkcode RedisEventBus}. */
export interface RedisEventBusOptions extends EventBusOptions {
  /** The Redis host. */
  readonly host: string;
  /**
   * The prefix of NOTIFY channel names.
   * @default "events"
   */
  readonly channelPrefix?: string;
}

/**
 * The Redis bus. Not implemented yet.
 *
 * @example Not implemented yet
 * ```ts
 * import { RedisEventBus } from "@dataknobs/events/redis";
 * const bus = new RedisEventBus({ host: "127.0.0.1" });
 * await bus.connect().catch((error) => console.assert(error.code === "NOT_IMPLEMENTED"));
 * ```
 */
export class RedisEventBus extends BusBase {
  /**
   * Makes a bus.
   *
   * @param options The host, prefix and common options.
   */
  constructor(options: RedisEventBusOptions) {
    super(options, () => {
      const missing = (): Promise<void> =>
        Promise.reject(
          new EventBusError(
            "NOT_IMPLEMENTED",
            "The redis backend is not implemented yet; use the memory backend",
          ),
        );
      return {
        label: "",
        open: missing,
        send: missing,
        watch: missing,
        unwatch: missing,
        shutdown: missing,
      };
    });
  }
}
