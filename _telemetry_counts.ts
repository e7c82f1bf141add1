// The message counters of the bus's telemetry, counted here and reported
// through observable counters: an event costs a Map lookup and an addition,
// not an SDK call that hashes its attributes. One set of counts per meter,
// shared by every bus that uses it (a collection observes each attribute
// set once, so two buses on one topic must add up here), kept after a bus
// closes as a cumulative SDK counter would keep its sums.

import type { OpenTelemetryApi } from "./_telemetry.ts";

/** Metric attributes. */
export type Attributes = Record<string, string | number>;

// The part of an OpenTelemetry meter the counts need.
type CountingMeter = Pick<
  ReturnType<OpenTelemetryApi["metrics"]["getMeter"]>,
  "createObservableCounter"
>;

/** What an observable instrument's callback is given. */
export type Observation = Parameters<
  Parameters<
    ReturnType<CountingMeter["createObservableCounter"]>["addCallback"]
  >[0]
>[0];

/** The counts of one topic of one messaging system. */
export interface TopicCounts {
  /** Publishes that succeeded. */
  sent: number;
  /** Handler calls. */
  consumed: number;
  /** Failed publishes by `error.type`. */
  readonly failed: Map<string, number>;
  /** The metric attributes of a publish. */
  readonly publish: Attributes;
  /** The metric attributes of a handler call. */
  readonly process: Attributes;
}

const shared = new WeakMap<object, Map<string, TopicCounts>>();

/** The counts of every bus of one meter; see the top of this file. */
export function countsOf(meter: CountingMeter): Map<string, TopicCounts> {
  let counts = shared.get(meter);
  if (counts !== undefined) return counts;
  const all = new Map<string, TopicCounts>();
  shared.set(meter, all);
  meter.createObservableCounter("messaging.client.sent.messages", {
    description: "Events the bus published (error.type set on failure)",
    unit: "{message}",
  }).addCallback((result) => {
    for (const topic of all.values()) {
      if (topic.sent > 0) result.observe(topic.sent, topic.publish);
      for (const [type, failed] of topic.failed) {
        result.observe(failed, { ...topic.publish, "error.type": type });
      }
    }
  });
  meter.createObservableCounter("messaging.client.consumed.messages", {
    description: "Events handed to handlers",
    unit: "{message}",
  }).addCallback((result) => {
    for (const topic of all.values()) {
      if (topic.consumed > 0) result.observe(topic.consumed, topic.process);
    }
  });
  counts = all;
  return counts;
}

/** The counts of `topic` on `system`, made on first use. */
export function topicCounts(
  all: Map<string, TopicCounts>,
  system: string,
  topic: string,
): TopicCounts {
  const key = `${system} ${topic}`;
  let counts = all.get(key);
  if (counts === undefined) {
    const base = {
      "messaging.system": system,
      "messaging.destination.name": topic,
    };
    counts = {
      sent: 0,
      consumed: 0,
      failed: new Map(),
      publish: { ...base, "messaging.operation.name": "publish" },
      process: { ...base, "messaging.operation.name": "process" },
    };
    all.set(key, counts);
  }
  return counts;
}
