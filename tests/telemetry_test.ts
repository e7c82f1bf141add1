// OpenTelemetry with the real SDK: spans in one trace from publisher to
// handler (on memory in one process, on Redis and PostgreSQL across
// processes), their attributes, handler errors, metrics; and nothing at
// all without the `telemetry` option.
import assert from "node:assert/strict";
import * as api from "@opentelemetry/api";
import {
  createEventBus,
  Event,
  type EventBus,
  type EventBusConfig,
  EventType,
} from "../mod.ts";
import { lines } from "./faults/_lines.ts";
import { setUpOtel, type SpanRecord } from "./_otel.ts";
import { DATABASE_URL, reachable, REDIS_URL } from "./_servers.ts";

const redis = await reachable("Redis", "REDIS_URL", REDIS_URL);
const pg = await reachable("PostgreSQL", "DATABASE_URL", DATABASE_URL);
const otel = setUpOtel();
const PRODUCER = 3, CONSUMER = 4, ERROR = 2;

function event(topic: string, correlationId: string | null = "c-1"): Event {
  return new Event({
    type: EventType.CREATED,
    topic,
    payload: { n: 1 },
    correlationId,
  });
}

/** Checks a publish span and its process span: one trace, the semconv attributes. */
function assertTrace(
  publish: SpanRecord,
  process: SpanRecord,
  sent: Event,
  system: string,
): void {
  assert.equal(publish.name, `publish ${sent.topic}`);
  assert.equal(publish.kind, PRODUCER);
  assert.equal(process.name, `process ${sent.topic}`);
  assert.equal(process.kind, CONSUMER);
  assert.equal(process.traceId, publish.traceId, "one trace");
  assert.equal(process.parentSpanId, publish.spanId);
  for (
    const [span, type] of [[publish, "send"], [process, "process"]] as const
  ) {
    assert.deepEqual(span.attributes, {
      "messaging.system": system,
      "messaging.destination.name": sent.topic,
      "messaging.operation.name": type === "send" ? "publish" : "process",
      "messaging.operation.type": type,
      "messaging.message.id": sent.eventId,
      "messaging.message.conversation_id": "c-1",
    });
  }
}

Deno.test("telemetry on memory: publish and process spans in one trace, with the semconv attributes", async () => {
  otel.spans.reset();
  await using bus = createEventBus({}, { telemetry: { api } });
  await bus.connect();
  const got: Event[] = [];
  await bus.subscribe("otel:mem", (e) => void got.push(e));
  const sent = event("otel:mem");
  await bus.publish("otel:mem", sent);
  const [process, publish] = otel.finished();
  assert.ok(publish && process, "two spans");
  assertTrace(publish, process, sent, "memory");
  // In process the context travels beside the event: the handler gets
  // the event published, its metadata unchanged.
  assert.equal(got[0], sent);
  assert.deepEqual(sent.metadata, {});
});

Deno.test("telemetry on memory with history: the process span is the publish span's child, the delivery has its position", async () => {
  otel.spans.reset();
  await using bus = createEventBus({}, { telemetry: { api }, history: {} });
  await bus.connect();
  const positions: (string | undefined)[] = [];
  await bus.subscribe("otel:hist", (_e, d) => void positions.push(d.position));
  const sent = event("otel:hist");
  await bus.publish("otel:hist", sent);
  const [process, publish] = otel.finished();
  assert.ok(publish && process, "two spans");
  assertTrace(publish, process, sent, "memory");
  assert.equal(typeof positions[0], "string");
});

Deno.test("telemetry on memory: one event published twice at once gives each publish its own process span", async () => {
  otel.spans.reset();
  await using bus = createEventBus({}, { telemetry: { api } });
  await bus.connect();
  const got: Event[] = [];
  await bus.subscribe("otel:twice", async (e) => {
    await undefined;
    got.push(e);
  });
  const sent = event("otel:twice");
  await Promise.all([
    bus.publish("otel:twice", sent),
    bus.publish("otel:twice", sent),
  ]);
  await bus.close();
  const spans = otel.finished();
  const publishes = spans.filter((s) => s.kind === PRODUCER);
  const processes = spans.filter((s) => s.kind === CONSUMER);
  assert.equal(publishes.length, 2);
  assert.deepEqual(
    processes.map((s) => s.parentSpanId).sort(),
    publishes.map((s) => s.spanId).sort(),
  );
  for (const span of processes) {
    assertTrace(
      publishes.find((s) => s.spanId === span.parentSpanId)!,
      span,
      sent,
      "memory",
    );
  }
  assert.deepEqual(got.map((e) => e.eventId), [sent.eventId, sent.eventId]);
});

Deno.test("telemetry on memory: an event published again is handed over itself, each publish with its own process span", async () => {
  otel.spans.reset();
  await using bus = createEventBus({}, { telemetry: { api } });
  await bus.connect();
  const got: Event[] = [];
  await bus.subscribe("otel:again", (e) => void got.push(e));
  const sent = event("otel:again");
  await bus.publish("otel:again", sent);
  await bus.publish("otel:again", sent);
  assert.deepEqual(got, [sent, sent]);
  assert.ok(got.every((e) => e === sent), "the very event, not a copy");
  const spans = otel.finished();
  const publishes = spans.filter((s) => s.kind === PRODUCER);
  assert.deepEqual(
    spans.filter((s) => s.kind === CONSUMER).map((s) => s.parentSpanId),
    publishes.map((s) => s.spanId),
  );
});

Deno.test("telemetry: a throwing or rejecting handler sets the process span's status to ERROR", async () => {
  otel.spans.reset();
  await using bus = createEventBus({}, {
    telemetry: { api },
    onError: () => {},
  });
  await bus.connect();
  await bus.subscribe("otel:err", () => {
    throw new RangeError("sync boom");
  });
  await bus.subscribe("otel:err", async () => {
    await undefined;
    throw new Error("async boom");
  });
  await bus.publish("otel:err", event("otel:err", null));
  const failed = otel.finished().filter((s) => s.name === "process otel:err");
  assert.deepEqual(
    failed.map((s) => [s.status, s.attributes["error.type"]]),
    [
      [{ code: ERROR, message: "sync boom" }, "RangeError"],
      [{ code: ERROR, message: "async boom" }, "Error"],
    ],
  );
  assert.equal(
    failed[0]!.attributes["messaging.message.conversation_id"],
    undefined,
  );
});

Deno.test({
  name:
    "telemetry: a refused transactional publish ends its span with ERROR and error.type",
  ignore: !pg,
  fn: async () => {
    otel.spans.reset();
    const { PostgresEventBus } = await import("../postgres.ts");
    const { default: postgres } = await import("postgres");
    const prefix = `otel_${crypto.randomUUID().slice(0, 8)}`;
    await using bus = new PostgresEventBus({
      connectionString: DATABASE_URL,
      channelPrefix: prefix,
      telemetry: { api },
    });
    await bus.connect();
    const sql = postgres(DATABASE_URL, { onnotice: () => {} });
    let refused: unknown;
    try {
      await sql.begin(async (tx) => {
        await tx`select 1/0`.catch(() => {}); // the transaction is aborted
        refused = await bus.publish("otel:tx", event("otel:tx"), { sql: tx })
          .catch((error) => error);
      }).catch(() => {});
    } finally {
      await sql.end();
    }
    assert.equal((refused as { code?: string }).code, "PUBLISH_FAILED");
    const [span] = otel.finished();
    assert.equal(span?.name, "publish otel:tx");
    assert.equal(span.status.code, ERROR);
    assert.equal(span.attributes["error.type"], "PUBLISH_FAILED");
    const sent = (await points("otel:tx")).get(
      "messaging.client.sent.messages",
    );
    assert.deepEqual(sent?.map((p) => p.attributes["error.type"]), [
      "PUBLISH_FAILED",
    ]);
  },
});

/** The data points of this scope's metrics now, by metric name, of `topic` if given. */
async function points(
  topic?: string,
): Promise<
  Map<string, { attributes: Record<string, unknown>; value: unknown }[]>
> {
  const found = new Map<
    string,
    { attributes: Record<string, unknown>; value: unknown }[]
  >();
  for (const scope of (await otel.metrics()).scopeMetrics) {
    if (scope.scope.name !== "@dataknobs/events") continue;
    for (const metric of scope.metrics) {
      found.set(
        metric.descriptor.name,
        metric.dataPoints.map((p) => ({
          attributes: p.attributes,
          value: p.value,
        })).filter((p) =>
          topic === undefined ||
          p.attributes["messaging.destination.name"] === topic
        ),
      );
    }
  }
  return found;
}

Deno.test("telemetry metrics: sent, consumed, process duration, queued events and connection state", async () => {
  const bus = createEventBus({}, { telemetry: { api } });
  await bus.connect();
  await bus.subscribe("otel:metrics", () => {});
  await bus.publish("otel:metrics", event("otel:metrics"));
  const mine = await points("otel:metrics");
  const all = await points();
  assert.deepEqual(mine.get("messaging.client.sent.messages"), [{
    attributes: {
      "messaging.system": "memory",
      "messaging.destination.name": "otel:metrics",
      "messaging.operation.name": "publish",
    },
    value: 1,
  }]);
  assert.equal(mine.get("messaging.client.consumed.messages")?.[0]?.value, 1);
  const duration = mine.get("messaging.process.duration")?.[0]?.value as {
    count: number;
  };
  assert.equal(duration.count, 1);
  assert.ok(all.get("dataknobs.events.queued")?.length);
  const states = all.get("dataknobs.events.connection.state") ?? [];
  assert.ok(
    states.some((p) => p.attributes.state === "ready" && p.value === 1),
  );
  await bus.close();
});

Deno.test("telemetry metrics: two buses on one topic add up, a closed bus's counts stay, a failing handler's duration has error.type", async () => {
  const topic = `otel:sum-${crypto.randomUUID().slice(0, 8)}`;
  const buses = [0, 1].map(() =>
    createEventBus({}, { telemetry: { api }, onError: () => {} })
  );
  for (const bus of buses) {
    await bus.connect();
    await bus.subscribe(topic, () => {});
    await bus.subscribe(topic, () => {
      throw new TypeError("no");
    });
  }
  await buses[0]!.publish(topic, event(topic));
  await buses[1]!.publish(topic, event(topic));
  await buses[1]!.publish(topic, event(topic));
  await buses[0]!.close();
  const mine = await points(topic);
  assert.deepEqual(
    mine.get("messaging.client.sent.messages")?.map((p) => p.value),
    [3],
  );
  assert.deepEqual(
    mine.get("messaging.client.consumed.messages")?.map((p) => p.value),
    [6],
  );
  const durations = mine.get("messaging.process.duration")!.map((p) => [
    p.attributes["error.type"],
    (p.value as { count: number }).count,
  ]);
  assert.deepEqual(durations, [[undefined, 3], ["TypeError", 3]]);
  await buses[1]!.close();
});

Deno.test("without telemetry: no span, no trace metadata, and no OpenTelemetry module loaded", async () => {
  otel.spans.reset();
  await using bus = createEventBus();
  await bus.connect();
  const got: Event[] = [];
  await bus.subscribe("otel:off", (e) => void got.push(e));
  await bus.publish("otel:off", event("otel:off"));
  assert.equal(otel.finished().length, 0);
  assert.deepEqual(got[0]!.metadata, {});
  for (const entry of ["mod.ts", "redis.ts", "postgres.ts", "cli.ts"]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "info",
        "--json",
        new URL(`../${entry}`, import.meta.url).pathname,
      ],
      stdout: "piped",
    }).output();
    assert.ok(out.success);
    const { modules } = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      modules: { specifier: string }[];
    };
    assert.ok(modules.some((m) => m.specifier.endsWith(`/${entry}`)));
    const otelModules = modules.filter((m) =>
      /opentelemetry/i.test(m.specifier)
    );
    assert.deepEqual(otelModules, [], `${entry} loads OpenTelemetry`);
  }
});

Deno.test("telemetry: a telemetry option that is not { api } is refused", () => {
  assert.throws(
    () => createEventBus({}, { telemetry: {} as never }),
    /telemetry must be \{ api \} with api the @opentelemetry\/api module/,
  );
});

Deno.test("telemetry: an api object that lacks a part the bus calls is refused, naming it", () => {
  const { SpanStatusCode: _, ...partial } = api;
  assert.throws(
    () => createEventBus({}, { telemetry: { api: partial as never } }),
    /telemetry\.api lacks SpanStatusCode\.ERROR: give the @opentelemetry\/api module itself, version 1\.3 or later/,
  );
});

// The api with a tracer whose spans fail as `how` says.
function failing(how: "start publish" | "start process" | "end"): typeof api {
  const tracer = api.trace.getTracer("failing");
  const startSpan = (name: string, ...rest: unknown[]) => {
    if (how === `start ${name.split(" ")[0]}`) throw new Error(how);
    const span = (tracer.startSpan as (...a: unknown[]) => api.Span)(
      name,
      ...rest,
    );
    if (how !== "end") return span;
    return Object.assign(Object.create(span), {
      end: () => {
        span.end();
        throw new Error("end");
      },
    });
  };
  const trace = Object.assign(Object.create(api.trace), {
    getTracer: () => Object.assign(Object.create(tracer), { startSpan }),
  });
  return { ...api, trace } as unknown as typeof api;
}

for (const how of ["start publish", "start process", "end"] as const) {
  Deno.test(`telemetry that fails (${how}) is reported; the event is published and handled once`, async () => {
    const errors: unknown[] = [];
    const bus = createEventBus({}, {
      telemetry: { api: failing(how) },
      onError: (error) => errors.push(error),
    });
    await bus.connect();
    let handled = 0;
    await bus.subscribe("fail:t", () => void handled++);
    await bus.publish("fail:t", event("fail:t"));
    await bus.close();
    assert.equal(handled, 1);
    assert.ok(errors.length >= 1, "reported");
    assert.match(
      String(errors[0]),
      /OpenTelemetry failed \(.*\); the event went on without it/,
    );
  });
}

Deno.test({
  name:
    "telemetry on Redis: an event's old traceparent and tracestate are replaced, not mixed",
  ignore: !redis,
  fn: async () => {
    const prefix = `otel_${crypto.randomUUID().slice(0, 8)}`;
    const config: EventBusConfig = {
      backend: "redis",
      url: REDIS_URL,
      channel_prefix: prefix,
    };
    const publisher = createEventBus(config, { telemetry: { api } });
    const subscriber = createEventBus(config);
    await Promise.all([publisher.connect(), subscriber.connect()]);
    try {
      const next = subscriber.once("otel:old", { timeoutMs: 5000 });
      await next.ready;
      await publisher.publish(
        "otel:old",
        new Event({
          type: EventType.CREATED,
          topic: "otel:old",
          metadata: { traceparent: "garbage", tracestate: "old=1", mine: 1 },
        }),
      );
      const { metadata } = await next;
      assert.match(String(metadata.traceparent), /^00-[0-9a-f]{32}-/);
      assert.equal(metadata.tracestate, undefined);
      assert.equal(metadata.mine, 1);
    } finally {
      await Promise.all([publisher.close(), subscriber.close()]);
    }
  },
});

/** Publishes here (process A), handles in a child (process B); checks the trace. */
async function acrossProcesses(
  backend: string,
  url: string,
  system: string,
): Promise<void> {
  otel.spans.reset();
  const prefix = `otel_${crypto.randomUUID().slice(0, 8)}`;
  const topic = "otel:cross";
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./_traced.ts", import.meta.url).pathname,
      backend,
      url,
      prefix,
      topic,
    ],
    stdout: "piped",
  }).spawn();
  const out = lines(child.stdout);
  let bus: EventBus | undefined;
  try {
    assert.equal((await out.next()).value, "ready");
    const config: EventBusConfig = backend === "redis"
      ? { backend: "redis", url, channel_prefix: prefix }
      : { backend: "postgres", connection_string: url, channel_prefix: prefix };
    bus = createEventBus(config, { telemetry: { api } });
    await bus.connect();
    const sent = event(topic);
    await bus.publish(topic, sent);
    const { spans, metadata } = JSON.parse((await out.next()).value!) as {
      spans: SpanRecord[];
      metadata: Record<string, unknown>;
    };
    const [publish] = otel.finished();
    assert.ok(publish && spans[0], "a span on each side");
    assertTrace(publish, spans[0], sent, system);
    assert.equal(typeof metadata.traceparent, "string");
    assert.equal((await child.status).code, 0);
  } finally {
    await bus?.close();
    await out.return(undefined);
    try {
      child.kill();
    } catch { /* already ended */ }
    await child.status;
  }
}

Deno.test({
  name:
    "telemetry on Redis: publish in one process, handler in another, one trace",
  ignore: !redis,
  fn: () => acrossProcesses("redis", REDIS_URL, "redis"),
});

Deno.test({
  name:
    "telemetry on PostgreSQL: publish in one process, handler in another, one trace",
  ignore: !pg,
  fn: () => acrossProcesses("postgres", DATABASE_URL, "postgresql"),
});
