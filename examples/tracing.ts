// One event traced from a publisher process to a subscriber process through
// Redis: each process sets up the OpenTelemetry SDK and hands the bus its
// `@opentelemetry/api`; the subscriber's `process` span joins the
// publisher's trace (the context travels in the event's metadata).
// `deno run -A examples/tracing.ts` (REDIS_URL). Spans are printed here;
// a real app exports them (OTLP) to its tracing backend.
import * as api from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  BasicTracerProvider,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-base";
import { createEventBus, Event, EventType } from "../mod.ts";

const role = Deno.args[0] === "subscriber" ? "subscriber" : "publisher";

// The SDK, set up before the bus is made: spans printed as one line each.
const print: SpanExporter = {
  export(spans: ReadableSpan[], done) {
    for (const span of spans) {
      const { traceId, spanId } = span.spanContext();
      const parent = span.parentSpanContext?.spanId ?? "none";
      console.log(
        `${role}: span "${span.name}" trace ${traceId} span ${spanId} parent ${parent}`,
      );
    }
    done({ code: 0 });
  },
  shutdown: () => Promise.resolve(),
};
api.trace.setGlobalTracerProvider(
  new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(print)] }),
);
api.propagation.setGlobalPropagator(new W3CTraceContextPropagator());

const url = Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379";
const bus = createEventBus({ backend: "redis", url }, { telemetry: { api } });
await bus.connect();

if (role === "subscriber") {
  const handled = Promise.withResolvers<void>();
  await bus.subscribe("orders", (event) => {
    console.log(
      `subscriber: order ${event.payload.id}, ${event.metadata.traceparent}`,
    );
    handled.resolve();
  });
  console.log("ready");
  await handled.promise;
} else {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "subscriber"],
    stdout: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("ready\n")) text += (await lines.read()).value ?? "";
  await bus.publish(
    "orders",
    new Event({ type: EventType.CREATED, topic: "orders", payload: { id: 7 } }),
  );
  for (
    let chunk = await lines.read();
    !chunk.done;
    chunk = await lines.read()
  ) {
    text += chunk.value;
  }
  await child.status;
  console.log(text.replace("ready\n", "").trimEnd());
}
await bus.close();
