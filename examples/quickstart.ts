// The seed's quick start, on the in-memory backend: `deno task example`.
import { createEventBus, Event, EventType } from "../mod.ts";

const bus = createEventBus({ backend: "memory" });
await bus.connect();

// Subscribe to events (handlers may be sync or async).
const subscription = await bus.subscribe("my-topic", async (event: Event) => {
  console.log(`Received ${event.type} on ${event.topic}`);
  console.log("Payload:", event.payload);
  await Promise.resolve();
});

// Publish an event. On memory, every handler has run when this resolves.
await bus.publish(
  "my-topic",
  new Event({
    type: EventType.CREATED,
    topic: "my-topic",
    payload: { message: "Hello, World!" },
  }),
);

// Cleanup.
await subscription.cancel();
await bus.close();
