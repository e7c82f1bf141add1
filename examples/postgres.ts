// Publish and receive through PostgreSQL LISTEN/NOTIFY:
// `deno run -A examples/postgres.ts` (DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/postgres).
import { createEventBus, Event, EventType } from "../mod.ts";

const bus = createEventBus({
  backend: "postgres",
  connection_string: Deno.env.get("DATABASE_URL") ??
    "postgres://postgres@127.0.0.1:5432/postgres",
});
await bus.connect();

const received = Promise.withResolvers<Event>();
await bus.subscribe("registry:bots", (event) => received.resolve(event));

// Resolves once the NOTIFY is committed; the payload may be far larger than
// NOTIFY's 8000 bytes: the bus stores it in a table and sends a reference.
await bus.publish(
  "registry:bots",
  new Event({
    type: EventType.UPDATED,
    topic: "registry:bots",
    payload: { bot_id: "b1", prompt: "You are a helpful bot. ".repeat(1000) },
  }),
);
const event = await received.promise;
console.log(
  `Received ${event.type} on ${event.topic}: ${
    String(event.payload.prompt).length
  } characters of prompt`,
);
await bus.close();
