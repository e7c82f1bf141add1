/**
 * The PostgreSQL backend (LISTEN/NOTIFY). Not implemented yet: connecting
 * throws an {@linkcode EventBusError} with code `NOT_IMPLEMENTED`.
 *
 * @example Not implemented yet
 * ```ts
 * import { PostgresEventBus } from "@dataknobs/events/postgres";
 * const bus = new PostgresEventBus({ connectionString: "postgres://localhost/db" });
 * await bus.connect().catch((error) => console.assert(error.code === "NOT_IMPLEMENTED"));
 * ```
 *
 * @module
 */
import { BusBase } from "./_bus.ts";
import { EventBusError, type EventBusOptions } from "./types.ts";

/** Options of {@linkcode PostgresEventBus}. */
export interface PostgresEventBusOptions extends EventBusOptions {
  /** A `postgres://` URL. */
  readonly connectionString: string;
  /**
   * The prefix of NOTIFY channel names.
   * @default "events"
   */
  readonly channelPrefix?: string;
}

/**
 * The PostgreSQL bus. Not implemented yet.
 *
 * @example Not implemented yet
 * ```ts
 * import { PostgresEventBus } from "@dataknobs/events/postgres";
 * const bus = new PostgresEventBus({ connectionString: "postgres://localhost/db" });
 * await bus.connect().catch((error) => console.assert(error.code === "NOT_IMPLEMENTED"));
 * ```
 */
export class PostgresEventBus extends BusBase {
  /**
   * Makes a bus.
   *
   * @param options The connection string, prefix and common options.
   */
  constructor(options: PostgresEventBusOptions) {
    super(options, () => {
      const missing = (): Promise<void> =>
        Promise.reject(
          new EventBusError(
            "NOT_IMPLEMENTED",
            "The postgres backend is not implemented yet; use the memory backend",
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
