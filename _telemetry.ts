// OpenTelemetry for the bus, optional: spans and metrics by the messaging
// semantic conventions, made through the `@opentelemetry/api` module the
// application hands in. Nothing here imports OpenTelemetry: the types below
// are the part of its API the bus uses, so the real module fits them.

import { CONTEXT, type Delivered } from "./_dispatch.ts";
import {
  type Attributes,
  countsOf,
  type Observation,
  type TopicCounts,
  topicCounts,
} from "./_telemetry_counts.ts";
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
        /** The span's ids (what the memory bus hands to handlers). */
        spanContext(): object;
      };
    };
    setSpan(context: unknown, span: unknown): unknown;
    /** `context` with a span of these ids (not recording) as its span. */
    setSpanContext(context: unknown, spanContext: object): unknown;
  };
  /** The active context, and running code in another. */
  readonly context: {
    active(): unknown;
    with<A extends unknown[], T>(
      context: unknown,
      fn: (...args: A) => T,
      thisArg?: unknown,
      ...args: A
    ): T;
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
  /** Meters: observable counters and gauges, histograms. */
  readonly metrics: {
    getMeter(name: string, version?: string): {
      createObservableCounter(
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
      /** An observable counter's, and `removeCallback`. */
      createObservableGauge(
        name: string,
        options: { description: string; unit: string },
      ):
        & ReturnType<
          ReturnType<
            OpenTelemetryApi["metrics"]["getMeter"]
          >["createObservableCounter"]
        >
        & {
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

type Tracer = ReturnType<OpenTelemetryApi["trace"]["getTracer"]>;
type Span = ReturnType<Tracer["startSpan"]>;
type SpanContext = ReturnType<Span["spanContext"]>;
type Gauge = ReturnType<
  ReturnType<OpenTelemetryApi["metrics"]["getMeter"]>["createObservableGauge"]
>;

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
  /** Reports a failure of telemetry itself (to the bus's onError). */
  report(error: unknown): void;
}

/** What a bus keeps of a topic: its span names and its counts. */
interface Topic {
  readonly name: string;
  /** `publish <topic>`. */
  readonly publish: string;
  /** `process <topic>`. */
  readonly process: string;
  readonly counts: TopicCounts;
}

/** A bus's spans and metrics; see the comment at the top of this file. */
export class Telemetry {
  readonly #api: OpenTelemetryApi;
  readonly #tracer: Tracer;
  readonly #system: string;
  readonly #producer: number;
  readonly #consumer: number;
  readonly #counts: Map<string, TopicCounts>;
  /** This bus's topics (span names, entries of #counts). */
  readonly #topics = new Map<string, Topic>();
  readonly #duration;
  readonly #gauges: [Gauge, (result: Observation) => void][];
  /** In process (memory bus): the context goes beside the event. */
  readonly #inProcess: boolean;
  readonly #report: (error: unknown) => void;

  constructor(options: TelemetryOptions, observed: Observed) {
    const api = checked(options);
    this.#api = api;
    this.#report = (error) =>
      observed.report(
        new Error(
          `OpenTelemetry failed (${
            error instanceof Error ? error.message : String(error)
          }); the event went on without it`,
          { cause: error },
        ),
      );
    this.#system = observed.system;
    this.#producer = api.SpanKind.PRODUCER;
    this.#consumer = api.SpanKind.CONSUMER;
    this.#tracer = api.trace.getTracer(SCOPE);
    this.#inProcess = observed.system === "memory";
    const meter = api.metrics.getMeter(SCOPE);
    this.#counts = countsOf(meter);
    this.#duration = meter.createHistogram("messaging.process.duration", {
      description: "How long handler calls took",
      unit: "s",
    });
    // One bus of several in a process: the gauges are per bus.
    const system = {
      "messaging.system": this.#system,
      "messaging.client.id": crypto.randomUUID(),
    };
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
    for (const [gauge, callback] of this.#gauges) {
      if (typeof gauge?.removeCallback !== "function") {
        throw new TypeError(
          "Invalid option: telemetry.api's meters make gauges without removeCallback: give the @opentelemetry/api module itself, version 1.3 or later",
        );
      }
      gauge.addCallback(callback);
    }
  }

  /** Stops reporting the gauges (the bus is closed). */
  close(): void {
    for (const [gauge, callback] of this.#gauges) {
      gauge.removeCallback(callback as (result: unknown) => void);
    }
  }

  /**
   * Publishes `event` through `send` in a `publish <topic>` span. A remote
   * bus sends a copy whose metadata holds the span's context; the memory
   * bus sends the event itself and hands the span's ids to `send`, to go
   * beside it in its deliveries.
   */
  publish(
    event: Event,
    send: (event: Event, context?: SpanContext) => Promise<void>,
  ): Promise<void> {
    const api = this.#api;
    const topic = this.#topic(event.topic);
    let span: Span | undefined, carrying: Event;
    let context: SpanContext | undefined;
    try {
      const parent = api.context.active();
      span = this.#tracer.startSpan(
        topic.publish,
        {
          kind: this.#producer,
          attributes: this.#attributes(event, "publish"),
        },
        parent,
      );
      if (this.#inProcess) {
        carrying = event;
        context = span.spanContext();
      } else {
        carrying = this.#carrying(event, api.trace.setSpan(parent, span));
      }
    } catch (error) {
      // A failing tracer or propagator must not stop the event.
      this.#report(error);
      if (span !== undefined) this.#end(span);
      return send(event);
    }
    const counts = topic.counts;
    let sent: Promise<void>;
    try {
      sent = send(carrying, context);
    } catch (error) {
      sent = Promise.reject(error);
    }
    return sent.then(() => {
      counts.sent++;
      this.#end(span);
    }, (error) => {
      const type = errorType(error);
      counts.failed.set(type, (counts.failed.get(type) ?? 0) + 1);
      this.#end(span, error, type);
      throw error;
    });
  }

  // Ends a span (with the error, if `type` is given), reporting a failure
  // of telemetry (a span processor's onEnd) instead of throwing it.
  #end(span: Span, error?: unknown, type?: string): void {
    try {
      if (type !== undefined) {
        const message = error instanceof Error ? error.message : String(error);
        span.setAttribute("error.type", type);
        span.setStatus({ code: this.#api.SpanStatusCode.ERROR, message });
        span.recordException(error instanceof Error ? error : message);
      }
      span.end();
    } catch (failure) {
      this.#report(failure);
    }
  }

  // The event to send to another process, carrying `context` (the publish
  // span's) in its metadata.
  #carrying(event: Event, context: unknown): Event {
    // An older trace context in the event is replaced, not mixed in.
    const carrier: Record<string, unknown> = {
      traceparent: undefined,
      tracestate: undefined,
    };
    this.#api.propagation.inject(context, carrier as Record<string, string>);
    // Nothing injected (no SDK, tracing suppressed) and nothing to remove:
    // the event itself, not a copy.
    for (const key in carrier) {
      if (carrier[key] !== event.metadata[key]) {
        return withMetadata(event, carrier);
      }
    }
    return event;
  }

  /**
   * Wraps a handler: each call is a `process <topic>` span, a child of the
   * publisher's span when the event carries its context, active while the
   * handler runs.
   */
  handler(handler: EventHandler): EventHandler {
    // The topic of the last event (a subscription's only one, but for a
    // pattern's), looked up again only when another comes.
    let topic: Topic | undefined;
    return (event, delivery) => {
      const api = this.#api;
      if (topic?.name !== event.topic) topic = this.#topic(event.topic);
      let span: Span, active: unknown;
      try {
        const parent = this.#parent(event, delivery);
        span = this.#tracer.startSpan(
          topic.process,
          {
            kind: this.#consumer,
            attributes: this.#attributes(event, "process"),
          },
          parent,
        );
        active = api.trace.setSpan(parent, span);
      } catch (error) {
        // A failing tracer or propagator must not keep the event from
        // its handler.
        this.#report(error);
        return handler(event, delivery);
      }
      const counts = topic.counts;
      counts.consumed++;
      const start = performance.now();
      let result: void | Promise<void>;
      try {
        result = api.context.with(
          active,
          handler,
          undefined,
          event,
          delivery,
        );
      } catch (error) {
        this.#processed(span, counts, start, true, error);
        throw error;
      }
      if (typeof (result as Promise<void> | undefined)?.then !== "function") {
        this.#processed(span, counts, start, false);
        return result;
      }
      return Promise.resolve(result).then(
        () => this.#processed(span, counts, start, false),
        (error) => {
          this.#processed(span, counts, start, true, error);
          throw error;
        },
      );
    };
  }

  // The parent of a process span: the publish span's context, beside the
  // event in its delivery (memory) or in its metadata; else the active
  // context.
  #parent(event: Event, delivery: Delivered): unknown {
    const api = this.#api;
    const active = api.context.active();
    const published = delivery[CONTEXT];
    if (published !== undefined) {
      return api.trace.setSpanContext(active, published as SpanContext);
    }
    // No metadata, no context to extract (a peer without telemetry).
    if (isEmpty(event.metadata)) return active;
    return api.propagation.extract(active, event.metadata, METADATA);
  }

  // Ends a handler call's span and records its duration.
  #processed(
    span: Span,
    counts: TopicCounts,
    start: number,
    failed: boolean,
    error?: unknown,
  ): void {
    const seconds = (performance.now() - start) / 1000;
    const type = failed ? errorType(error) : undefined;
    try {
      this.#duration.record(
        seconds,
        type === undefined
          ? counts.process
          : { ...counts.process, "error.type": type },
      );
    } catch (failure) {
      this.#report(failure);
    }
    this.#end(span, error, type);
  }

  #topic(name: string): Topic {
    let topic = this.#topics.get(name);
    if (topic === undefined) {
      topic = {
        name,
        publish: `publish ${name}`,
        process: `process ${name}`,
        counts: topicCounts(this.#counts, this.#system, name),
      };
      this.#topics.set(name, topic);
    }
    return topic;
  }

  #attributes(event: Event, operation: "publish" | "process"): Attributes {
    const attributes: Attributes = {
      "messaging.system": this.#system,
      "messaging.destination.name": event.topic,
      "messaging.operation.name": operation,
      "messaging.operation.type": operation === "publish" ? "send" : "process",
      "messaging.message.id": event.eventId,
    };
    if (event.correlationId !== null) {
      attributes["messaging.message.conversation_id"] = event.correlationId;
    }
    return attributes;
  }
}

function isEmpty(object: object): boolean {
  for (const _ in object) return false;
  return true;
}

// `error.type`: the error's code (EventBusError), else its class name.
function errorType(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string") return code;
  return error instanceof Error ? error.constructor.name : "_OTHER";
}

// What the bus calls of the api, by path: api 1.3 or later has them all.
const NEEDED = [
  "trace.getTracer",
  "trace.setSpan",
  "trace.setSpanContext",
  "context.active",
  "context.with",
  "propagation.inject",
  "propagation.extract",
  "metrics.getMeter",
] as const;

function checked(options: TelemetryOptions): OpenTelemetryApi {
  const api = (options as Partial<TelemetryOptions> | null)?.api;
  if (typeof options !== "object" || typeof api !== "object" || api === null) {
    throw new TypeError(
      `Invalid option: telemetry must be { api } with api the @opentelemetry/api module (import * as api from "@opentelemetry/api"), got ${
        show(api ?? options)
      }`,
    );
  }
  const at = (path: string) =>
    path.split(".").reduce<unknown>(
      (part, key) => (part as Record<string, unknown> | undefined)?.[key],
      api,
    );
  const missing = [
    ...NEEDED.filter((path) => typeof at(path) !== "function"),
    ...["SpanKind.PRODUCER", "SpanKind.CONSUMER", "SpanStatusCode.ERROR"]
      .filter((path) => typeof at(path) !== "number"),
  ];
  if (missing.length > 0) {
    throw new TypeError(
      `Invalid option: telemetry.api lacks ${
        missing.join(", ")
      }: give the @opentelemetry/api module itself, version 1.3 or later`,
    );
  }
  return api;
}
