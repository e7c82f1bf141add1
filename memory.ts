import { BusBase } from "./_bus.ts";
import type { EventBusOptions, TopicMap, UntypedTopics } from "./types.ts";

/**
 * The in-process bus: for tests, development and single-process apps. When
 * `await bus.publish()` resolves, every matching handler has run to
 * completion for this event — except on a subscription still busy with an
 * earlier event (concurrent publishes, or a handler publishing to its own
 * topic): there the event is queued and runs next, in order, and `publish`
 * does not wait for it, since waiting could deadlock.
 *
 * @example Publish and receive in one process
 * ```ts
 * import assert from "node:assert/strict";
 * import { Event, EventType, InMemoryEventBus } from "@dataknobs/events";
 * await using bus = new InMemoryEventBus();
 * await bus.connect();
 * const seen: string[] = [];
 * await bus.subscribe("greetings", (event) => {
 *   seen.push(String(event.payload.text));
 * });
 * await bus.publish("greetings", new Event({
 *   type: EventType.CREATED, topic: "greetings", payload: { text: "hello" },
 * }));
 * assert.ok(seen[0] === "hello");
 * ```
 */
export class InMemoryEventBus<T extends TopicMap<T> = UntypedTopics>
  extends BusBase<T> {
  /**
   * Makes a bus; call `connect()` before use.
   *
   * @param options Error hook, close timeout and queue bound.
   * @throws {TypeError} For an option of the wrong type.
   */
  constructor(options: EventBusOptions = {}) {
    super(options);
  }
}
