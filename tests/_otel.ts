// The real OpenTelemetry SDK for tests, bench and examples: spans kept in
// memory, metrics read on demand, W3C trace context propagation; set up as
// the global providers of this process (once).
import * as api from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  AggregationTemporality,
  MeterProvider,
  MetricReader,
  type ResourceMetrics,
} from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";

/** Metrics read when the test asks. */
class Reader extends MetricReader {
  constructor() {
    super({
      aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE,
    });
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** A span as a plain object (for a child process's stdout). */
export interface SpanRecord {
  readonly name: string;
  readonly kind: number;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly attributes: Record<string, unknown>;
  readonly status: { code: number; message?: string | undefined };
}

/** The SDK of this process; see the comment at the top of this file. */
export interface Otel {
  readonly spans: InMemorySpanExporter;
  /** The finished spans, as plain objects. */
  finished(): SpanRecord[];
  /** The metrics now. */
  metrics(): Promise<ResourceMetrics>;
}

let otel: Otel | undefined;

/** Registers the SDK as this process's OpenTelemetry (once). */
export function setUpOtel(): Otel {
  if (otel !== undefined) return otel;
  const spans = new InMemorySpanExporter();
  api.trace.setGlobalTracerProvider(
    new BasicTracerProvider({
      spanProcessors: [new SimpleSpanProcessor(spans)],
    }),
  );
  api.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const reader = new Reader();
  api.metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
  otel = {
    spans,
    finished: () => spans.getFinishedSpans().map(record),
    metrics: async () => (await reader.collect()).resourceMetrics,
  };
  return otel;
}

function record(span: ReadableSpan): SpanRecord {
  return {
    name: span.name,
    kind: span.kind,
    traceId: span.spanContext().traceId,
    spanId: span.spanContext().spanId,
    parentSpanId: span.parentSpanContext?.spanId,
    attributes: { ...span.attributes },
    status: span.status,
  };
}
