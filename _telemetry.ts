// OpenTelemetry for the bus, optional: spans and metrics by the messaging
// semantic conventions, made through the `@opentelemetry/api` module the
// application hands in. Nothing here imports OpenTelemetry: the types below
// are the part of its API the bus uses, so the real module fits them.

import {
  type ConnectionState,
  type Event,
  type EventHandler,
  show,
  withMetadata,
} from "./types.ts";

/**
 * The part of the `@opentelemetry/api` module the bus uses: pass the module
 * itself (`import * as api from "@opentelemetry/api"`).
 *
 * @example The module fits
 * ```ts ignore
 * import * as api from "@opentelemetry/api";
 * import type { OpenTelemetryApi } from "@dataknobs/events";
 * const otel: OpenTelemetryApi = api;
 * ```
 */
export interface OpenTelemetryApi {
  /** Tracers (`Tracer.startSpan`), and spans in contexts. */
  readonly trace: {
    getTracer(name: string, version?: string): {
      startSpan(
        name: string,
        options: { kind: number; attributes: Record<string, string | number> },
        context: unknown,
      ): {
        setAttribute(key: string, value: string): unknown;
        setStatus(status: { code: number; message?: string }): unknown;
        recordException(exception: Error | string): void;
        end(): void;
      };
    };
    setSpan(context: unknown, span: unknown): unknown;
  };
  /** The active context, and running code in another. */
  readonly context: {
    active(): unknown;
    with<T>(context: unknown, fn: () => T): T;
  };
  /** The registered propagator (W3C trace context, with the SDK's default). */
  readonly propagation: {
    inject(context: unknown, carrier: Record<string, string>): void;
    extract(
      context: unknown,
      carrier: Readonly<Record<string, unknown>>,
      getter: {
        get(
          carrier: Readonly<Record<string, unknown>>,
          key: string,
        ): string | undefined;
        keys(carrier: Readonly<Record<string, unknown>>): string[];
      },
    ): unknown;
  };
  /** Meters: counters, histograms and observable gauges. */
  readonly metrics: {
    getMeter(name: string, version?: string): {
      createCounter(
        name: string,
        options: { description: string; unit: string },
      ): {
        add(value: number, attributes: Record<string, string | number>): void;
      };
      createHistogram(
        name: string,
        options: { description: string; unit: string },
      ): {
        record(
          value: number,
          attributes: Record<string, string | number>,
        ): void;
      };
      createObservableGauge(
        name: string,
        options: { description: string; unit: string },
      ): {
        addCallback(
          callback: (result: {
            observe(
              value: number,
              attributes: Record<string, string | number>,
            ): void;
          }) => void,
        ): void;
        /** Removes a callback `addCallback` was given. */
        removeCallback(callback: (result: unknown) => void): void;
      };
    };
  };
  /** Span kinds. */
  readonly SpanKind: { readonly PRODUCER: number; readonly CONSUMER: number };
  /** Span status codes. */
  readonly SpanStatusCode: { readonly ERROR: number };
}

/**
 * The `telemetry` option of every bus: see
 * {@linkcode EventBusOptions.telemetry}.
 *
 * @example Trace a bus (needs an OpenTelemetry SDK set up)
 * ```ts ignore
 * import * as api from "@opentelemetry/api";
 * import { createEventBus } from "@dataknobs/events";
 * const bus = createEventBus({ backend: "memory" }, { telemetry: { api } });
 * ```
 */
export interface TelemetryOptions {
  /** The `@opentelemetry/api` module (the application's own copy). */
  readonly api: OpenTelemetryApi;
}

type Attributes = Record<string, string | number>;
type Tracer = ReturnType<OpenTelemetryApi["trace"]["getTracer"]>;
type Span = ReturnType<Tracer["startSpan"]>;
type Gauge = ReturnType<
  ReturnType<OpenTelemetryApi["metrics"]["getMeter"]>["createObservableGauge"]
>;
type Observation = Parameters<Parameters<Gauge["addCallback"]>[0]>[0];

/** The instrumentation scope's name: spans and metrics come from it. */
export const SCOPE = "@dataknobs/events";

const STATES: readonly ConnectionState[] = [
  "idle",
  "connecting",
  "ready",
  "reconnecting",
  "closing",
  "closed",
];

// Metadata values read as W3C headers: strings only.
const METADATA = {
  get: (carrier: Readonly<Record<string, unknown>>, key: string) => {
    const value = carrier[key];
    return typeof value === "string" ? value : undefined;
  },
  keys: (carrier: Readonly<Record<string, unknown>>) => Object.keys(carrier),
};

/** What the bus tells its telemetry about itself. */
export interface Observed {
  /** `messaging.system`: `memory`, `redis` or `postgresql`. */
  readonly system: string;
  /** How many events wait for handlers, over every subscription. */
  queued(): number;
  /** The bus's connection state. */
  state(): ConnectionState;
}

/** A bus's spans and metrics; see the comment at the top of this file. */
export class Telemetry {
  readonly #api: OpenTelemetryApi;
  readonly #tracer: Tracer;
  readonly #system: string;
  readonly #sent;
  readonly #consumed;
  readonly #duration;
  readonly #gauges: [Gauge, (result: Observation) => void][];

  constructor(options: TelemetryOptions, observed: Observed) {
    const api = checked(options);
    this.#api = api;
    this.#system = observed.system;
    this.#tracer = api.trace.getTracer(SCOPE);
    const meter = api.metrics.getMeter(SCOPE);
    this.#sent = meter.createCounter("messaging.client.sent.messages", {
      description: "Events the bus published (error.type set on failure)",
      unit: "{message}",
    });
    this.#consumed = meter.createCounter(
      "messaging.client.consumed.messages",
      { description: "Events handed to handlers", unit: "{message}" },
    );
    this.#duration = meter.createHistogram("messaging.process.duration", {
      description: "How long handler calls took",
      unit: "s",
    });
    const system = { "messaging.system": this.#system };
    this.#gauges = [
      [
        meter.createObservableGauge("dataknobs.events.queued", {
          description: "Events waiting for handlers, over every subscription",
          unit: "{event}",
        }),
        (result) => result.observe(observed.queued(), system),
      ],
      [
        meter.createObservableGauge("dataknobs.events.connection.state", {
          description: "1 for the bus's connection state, 0 for the others",
          unit: "1",
        }),
        (result) => {
          const now = observed.state();
          for (const state of STATES) {
            result.observe(state === now ? 1 : 0, { ...system, state });
          }
        },
      ],
    ];
    for (const [gauge, callback] of this.#gauges) gauge.addCallback(callback);
  }

  /** Stops reporting the gauges (the bus is closed). */
  close(): void {
    for (const [gauge, callback] of this.#gauges) {
      gauge.removeCallback(callback as (result: unknown) => void);
    }
  }

  /**
   * Publishes `event` through `send` in a `publish <topic>` span: what is
   * sent is a copy whose metadata holds the span's context.
   */
  publish(event: Event, send: (event: Event) => Promise<void>): Promise<void> {
    const api = this.#api;
    const parent = api.context.active();
    const attributes = this.#attributes(event, "publish", "send");
    const measured = this.#measured(event, "publish");
    const span = this.#tracer.startSpan(
      `publish ${event.topic}`,
      { kind: api.SpanKind.PRODUCER, attributes },
      parent,
    );
    const context = api.trace.setSpan(parent, span);
    const carrier: Record<string, string> = {};
    api.propagation.inject(context, carrier);
    let sent: Promise<void>;
    try {
      sent = api.context.with(
        context,
        () => send(withMetadata(event, carrier)),
      );
    } catch (error) {
      sent = Promise.reject(error);
    }
    return sent.then(() => {
      this.#sent.add(1, measured);
      span.end();
    }, (error) => {
      this.#sent.add(1, { ...measured, "error.type": errorType(error) });
      this.#fail(span, error);
      throw error;
    });
  }

  /**
   * Wraps a handler: each call is a `process <topic>` span, a child of the
   * publisher's span when the event carries its context.
   */
  handler(handler: EventHandler): EventHandler {
    return (...args: Parameters<EventHandler>) => {
      const [event] = args;
      const api = this.#api;
      const attributes = this.#attributes(event, "process", "process");
      const measured = this.#measured(event, "process");
      const parent = api.propagation.extract(
        api.context.active(),
        event.metadata,
        METADATA,
      );
      const span = this.#tracer.startSpan(
        `process ${event.topic}`,
        { kind: api.SpanKind.CONSUMER, attributes },
        parent,
      );
      this.#consumed.add(1, measured);
      const start = performance.now();
      const end = (failed: boolean, error?: unknown) => {
        const seconds = (performance.now() - start) / 1000;
        if (!failed) {
          this.#duration.record(seconds, measured);
          span.end();
          return;
        }
        const type = errorType(error);
        this.#duration.record(seconds, { ...measured, "error.type": type });
        this.#fail(span, error);
      };
      let result: void | Promise<void>;
      try {
        result = api.context.with(
          api.trace.setSpan(parent, span),
          () => handler(...args),
        );
      } catch (error) {
        end(true, error);
        throw error;
      }
      if (typeof (result as Promise<void> | undefined)?.then !== "function") {
        end(false);
        return result;
      }
      return Promise.resolve(result).then(() => end(false), (error) => {
        end(true, error);
        throw error;
      });
    };
  }

  // A metric's attributes: never the message ids (one series each).
  #measured(event: Event, operation: string): Attributes {
    return {
      "messaging.system": this.#system,
      "messaging.destination.name": event.topic,
      "messaging.operation.name": operation,
    };
  }

  #attributes(
    event: Event,
    operation: string,
    type: string,
  ): Attributes {
    const attributes: Attributes = {
      "messaging.system": this.#system,
      "messaging.destination.name": event.topic,
      "messaging.operation.name": operation,
      "messaging.operation.type": type,
      "messaging.message.id": event.eventId,
    };
    if (event.correlationId !== null) {
      attributes["messaging.message.conversation_id"] = event.correlationId;
    }
    return attributes;
  }

  #fail(span: Span, error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    span.setAttribute("error.type", errorType(error));
    span.setStatus({ code: this.#api.SpanStatusCode.ERROR, message });
    span.recordException(error instanceof Error ? error : message);
    span.end();
  }
}

// `error.type`: the error's code (EventBusError), else its class name.
function errorType(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string") return code;
  return error instanceof Error ? error.constructor.name : "_OTHER";
}

function checked(options: TelemetryOptions): OpenTelemetryApi {
  const api = (options as Partial<TelemetryOptions> | null)?.api;
  const parts = ["trace", "context", "propagation", "metrics", "SpanKind"];
  if (
    typeof options !== "object" || typeof api !== "object" || api === null ||
    parts.some((part) => typeof (api as never)[part] !== "object")
  ) {
    throw new TypeError(
      `Invalid option: telemetry must be { api } with api the @opentelemetry/api module (import * as api from "@opentelemetry/api"), got ${
        show(api ?? options)
      }`,
    );
  }
  return api;
}
