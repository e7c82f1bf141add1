// The cost of OpenTelemetry: throughput with `telemetry: { api }` (the real
// SDK: spans batched to an exporter that drops them, metrics kept for a
// reader that exports to nowhere) against the same bus without it, on each
// backend; with every span sampled, and with 1% of traces sampled. Goals:
// memory ≥ 0.5×, remote ≥ 0.8×. Beside each, the most that telemetry on
// could reach: the bus without telemetry plus the SDK's own work for an
// event, measured alone in the same run (no bus at all).
import * as api from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  MeterProvider,
  PeriodicExportingMetricReader,
  type PushMetricExporter,
} from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  type SpanExporter,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace-base";
import {
  createEventBus,
  Event,
  type EventBusConfig,
  type EventBusOptions,
  EventType,
  type OpenTelemetryApi,
} from "../mod.ts";
import { median, N, rate, ROUNDS, rounds, type Row } from "./_measure.ts";
import { busEndpoint, throughput } from "./_remote.ts";

const noop: SpanExporter = {
  export: (_spans, done) => done({ code: 0 }),
  shutdown: () => Promise.resolve(),
};
const nowhere: PushMetricExporter = {
  export: (_metrics, done) => done({ code: 0 }),
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
};
const tracing = (sampler?: ParentBasedSampler) =>
  new BasicTracerProvider({
    spanProcessors: [new BatchSpanProcessor(noop)],
    ...(sampler && { sampler }),
  });
api.trace.setGlobalTracerProvider(tracing());
api.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
const metrics = new MeterProvider({
  readers: [
    new PeriodicExportingMetricReader({
      exporter: nowhere,
      exportIntervalMillis: 60_000,
    }),
  ],
});
api.metrics.setGlobalMeterProvider(metrics);

// The same api, its tracers sampling 1% of the traces (what the README
// advises for busy topics): a sampled-out span records nothing.
const sampledTracing = tracing(
  new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0.01) }),
);
const sampledApi: OpenTelemetryApi = {
  ...api,
  trace: Object.assign(Object.create(api.trace), {
    getTracer: (name: string, version?: string) =>
      sampledTracing.getTracer(name, version),
  }),
};

const CONFIGS: Record<string, EventBusConfig> = {
  memory: { backend: "memory" },
  redis: {
    backend: "redis",
    url: Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379",
  },
  postgres: {
    backend: "postgres",
    connection_string: Deno.env.get("DATABASE_URL") ??
      "postgres://postgres@127.0.0.1:5432/postgres",
  },
};

// Fresh events for each run, as an application publishes: an event
// published before has its wire text made already, which a bus without
// telemetry would send as is, and one with telemetry could not.
function events(topic: string, count: number): Event[] {
  return Array.from(
    { length: count },
    (_, n) => new Event({ type: EventType.CREATED, topic, payload: { n } }),
  );
}

// Memory: one async subscriber, each publish awaited (as bench/memory.ts).
async function memory(options: EventBusOptions, list: Event[]) {
  await using bus = createEventBus(CONFIGS.memory, options);
  await bus.connect();
  let sink = 0;
  await bus.subscribe(list[0]!.topic, async (event) => {
    sink += event.payload.n as number;
    await undefined;
  });
  const start = performance.now();
  for (const event of list) await bus.publish(event.topic, event);
  if (sink < 0) console.log(sink);
  return rate(list.length, start);
}

/**
 * Events/s of the SDK's own work for `list`, no bus: what telemetry cannot
 * avoid for an event (the calls the bus makes, nothing of its own): a
 * publish span and a process span with their attributes, their contexts,
 * the context through metadata on a remote bus (inject, extract), the
 * handler run in its span, the duration histogram.
 */
async function sdkWork(
  otel: OpenTelemetryApi,
  remote: boolean,
  list: Event[],
): Promise<number> {
  const tracer = otel.trace.getTracer("bench-sdk-work");
  const histogram = otel.metrics.getMeter("bench-sdk-work").createHistogram(
    "bench.sdk_work.duration",
    { description: "bench", unit: "s" },
  );
  const attributes = (event: Event, operation: string) => ({
    "messaging.system": "bench",
    "messaging.destination.name": event.topic,
    "messaging.operation.name": operation,
    "messaging.operation.type": operation === "publish" ? "send" : operation,
    "messaging.message.id": event.eventId,
  });
  const metric = { "messaging.operation.name": "process" };
  const getter = {
    get: (carrier: Readonly<Record<string, unknown>>, key: string) =>
      carrier[key] as string | undefined,
    keys: (carrier: Readonly<Record<string, unknown>>) => Object.keys(carrier),
  };
  let sink = 0;
  const handler = (event: Event) => void (sink += event.payload.n as number);
  // A publish span, and the context its event carries to the handler.
  const publish = (event: Event) => {
    const parent = otel.context.active();
    const span = tracer.startSpan(`publish ${event.topic}`, {
      kind: otel.SpanKind.PRODUCER,
      attributes: attributes(event, "publish"),
    }, parent);
    const context = otel.trace.setSpan(parent, span);
    const carrier: Record<string, string> = {};
    if (remote) otel.propagation.inject(context, carrier);
    return { event, span, context, carrier };
  };
  // The remote bench sends its events at once (every publish span is alive
  // before the first event arrives); the memory bench one at a time.
  const burst = remote ? list.length : 1;
  const start = performance.now();
  for (let from = 0; from < list.length; from += burst) {
    for (const sent of list.slice(from, from + burst).map(publish)) {
      const context = remote
        ? otel.propagation.extract(otel.context.active(), sent.carrier, getter)
        : sent.context;
      const process = tracer.startSpan(`process ${sent.event.topic}`, {
        kind: otel.SpanKind.CONSUMER,
        attributes: attributes(sent.event, "process"),
      }, context);
      const began = performance.now();
      otel.context.with(
        otel.trace.setSpan(context, process),
        handler,
        undefined,
        sent.event,
      );
      histogram.record((performance.now() - began) / 1000, metric);
      process.end();
      sent.span.end();
      // As a publish is awaited: the span processor exports its batches (a
      // loop that never yields would have it drop the spans instead).
      await undefined;
    }
  }
  if (sink < 0) console.log(sink);
  return rate(list.length, start);
}

/** The telemetry rows of a backend: all spans sampled, and 1%. */
export async function telemetryRows(group: string): Promise<Row[]> {
  const topic = `bench-otel-${crypto.randomUUID().slice(0, 8)}`;
  const sides: Record<string, EventBusOptions> = {
    on: { telemetry: { api } },
    sampled: { telemetry: { api: sampledApi } },
    off: {},
  };
  const count = group === "memory" ? N * 5 : N;
  const run = (options: EventBusOptions) =>
    group === "memory" ? memory(options, events(topic, count)) : throughput(
      busEndpoint(group, () => createEventBus(CONFIGS[group], options)),
      1,
      events(topic, count),
    );
  const remote = group !== "memory";
  const results = await rounds(
    {
      ...Object.fromEntries(
        Object.entries(sides).map((
          [name, options],
        ) => [name, () => run(options)]),
      ),
      sdkOn: () => sdkWork(api, remote, events(topic, count)),
      sdkSampled: () => sdkWork(sampledApi, remote, events(topic, count)),
    },
    group === "memory" ? ROUNDS : Math.max(ROUNDS, 5),
  );
  const goal = group === "memory" ? "0.5" : "0.8";
  const off = median(results.off!);
  return [
    ["on", "sdkOn", "every span sampled"],
    ["sampled", "sdkSampled", "1% of traces sampled"],
  ].flatMap(([side, sdk, label]) => [{
    group,
    name:
      `throughput with OpenTelemetry on, ${label} (goal ≥ ${goal}×), events/s`,
    unit: "events/s",
    ours: median(results[side!]!),
    baselineName: "the same bus without telemetry",
    baseline: off,
    higherIsBetter: true,
  }, {
    group,
    name:
      `the most OpenTelemetry on could reach, ${label}: the bus without telemetry plus the SDK's own work an event (measured alone, no bus), events/s`,
    unit: "events/s",
    ours: 1 / (1 / off + 1 / median(results[sdk!]!)),
    baselineName: "the same bus without telemetry",
    baseline: off,
    higherIsBetter: true,
  }]);
}
