// The cost of OpenTelemetry: throughput with `telemetry: { api }` (the real
// SDK: spans batched to an exporter that drops them, metrics kept for a
// reader that exports to nowhere) against the same bus without it, on each
// backend; with every span sampled, and with 1% of traces sampled. Goals:
// memory ≥ 0.5×, remote ≥ 0.8×.
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

/** The telemetry rows of a backend: all spans sampled, and 1%. */
export async function telemetryRows(group: string): Promise<Row[]> {
  const topic = `bench-otel-${crypto.randomUUID().slice(0, 8)}`;
  const sides: Record<string, EventBusOptions> = {
    on: { telemetry: { api } },
    sampled: { telemetry: { api: sampledApi } },
    off: {},
  };
  const list = events(topic, group === "memory" ? N * 5 : N);
  const run = (options: EventBusOptions) =>
    group === "memory" ? memory(options, list) : throughput(
      busEndpoint(group, () => createEventBus(CONFIGS[group], options)),
      1,
      list,
    );
  const results = await rounds(
    Object.fromEntries(
      Object.entries(sides).map((
        [name, options],
      ) => [name, () => run(options)]),
    ),
    group === "memory" ? ROUNDS : Math.max(ROUNDS, 5),
  );
  const goal = group === "memory" ? "0.5" : "0.8";
  return [
    ["on", "every span sampled"],
    ["sampled", "1% of traces sampled"],
  ].map(([side, label]) => ({
    group,
    name:
      `throughput with OpenTelemetry on, ${label} (goal ≥ ${goal}×), events/s`,
    unit: "events/s",
    ours: median(results[side!]!),
    baselineName: "the same bus without telemetry",
    baseline: median(results.off!),
    higherIsBetter: true,
  }));
}
