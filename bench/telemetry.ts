// The cost of OpenTelemetry: throughput with `telemetry: { api }` (the real
// SDK, spans batched to an exporter that drops them, metrics on) against
// the same bus without it, on each backend. Goals: memory ≥ 0.5×, remote
// ≥ 0.8×.
import * as api from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-base";
import {
  createEventBus,
  Event,
  type EventBusConfig,
  type EventBusOptions,
  EventType,
} from "../mod.ts";
import { median, N, rate, ROUNDS, rounds, type Row } from "./_measure.ts";
import { busEndpoint, throughput } from "./_remote.ts";

const noop: SpanExporter = {
  export: (_spans, done) => done({ code: 0 }),
  shutdown: () => Promise.resolve(),
};
api.trace.setGlobalTracerProvider(
  new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(noop)] }),
);
api.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
api.metrics.setGlobalMeterProvider(new MeterProvider());

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

/** The telemetry on/off row of a backend. */
export async function telemetryRows(group: string): Promise<Row[]> {
  const topic = `bench-otel-${crypto.randomUUID().slice(0, 8)}`;
  const traced: EventBusOptions = { telemetry: { api } };
  let cases: Record<string, () => Promise<number>>;
  if (group === "memory") {
    const list = events(topic, N * 5);
    cases = { on: () => memory(traced, list), off: () => memory({}, list) };
  } else {
    const list = events(topic, N);
    const side = (options: EventBusOptions) =>
      busEndpoint(group, () => createEventBus(CONFIGS[group], options));
    cases = {
      on: () => throughput(side(traced), 1, list),
      off: () => throughput(side({}), 1, list),
    };
  }
  const results = await rounds(
    cases,
    group === "memory" ? ROUNDS : Math.max(ROUNDS, 5),
  );
  return [{
    group,
    name: `throughput with OpenTelemetry on (goal ≥ ${
      group === "memory" ? "0.5" : "0.8"
    }×), events/s`,
    unit: "events/s",
    ours: median(results.on!),
    baselineName: "the same bus without telemetry",
    baseline: median(results.off!),
    higherIsBetter: true,
  }];
}
