// The seed's pytest example, translated: a fixture that gives each test a
// connected in-memory bus and closes it afterwards. Run: `deno test examples/`.
import assert from "node:assert/strict";
import { createEventBus, Event, type EventBus, EventType } from "../mod.ts";

/** The fixture: a connected bus, closed when the test ends. */
async function withEventBus(test: (bus: EventBus) => Promise<void>) {
  await using bus = createEventBus({ backend: "memory" });
  await bus.connect();
  await test(bus);
}

Deno.test("publish then subscribe", () =>
  withEventBus(async (eventBus) => {
    const received: Event[] = [];

    // deno-lint-ignore require-await
    async function handler(event: Event): Promise<void> {
      received.push(event);
    }

    await eventBus.subscribe("test", handler);
    await eventBus.publish(
      "test",
      new Event({
        type: EventType.CREATED,
        topic: "test",
        payload: { key: "value" },
      }),
    );

    // On the memory backend every handler has run when publish resolves.
    assert.equal(received.length, 1);
    assert.equal(received[0]!.payload["key"], "value");
  }));
