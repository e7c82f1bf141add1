// A traced subscriber in another process:
// `deno run -A tests/_traced.ts <backend> <url> <prefix> <topic>`.
// Prints "ready" once subscribed; after one event on <topic>, closes and
// prints one JSON line: its finished spans and the metadata it received.
import * as api from "@opentelemetry/api";
import {
  createEventBus,
  type EventBusConfig,
  type JsonObject,
} from "../mod.ts";
import { setUpOtel } from "./_otel.ts";

const [backend, url, prefix, topic] = Deno.args as [
  string,
  string,
  string,
  string,
];
const otel = setUpOtel();
const config: EventBusConfig = backend === "redis"
  ? { backend: "redis", url, channel_prefix: prefix }
  : { backend: "postgres", connection_string: url, channel_prefix: prefix };
const bus = createEventBus(config, { telemetry: { api } });
await bus.connect();
const { promise, resolve } = Promise.withResolvers<JsonObject>();
await bus.subscribe(topic, (event) => resolve(event.metadata));
console.log("ready");
const metadata = await promise;
await bus.close();
console.log(JSON.stringify({ spans: otel.finished(), metadata }));
