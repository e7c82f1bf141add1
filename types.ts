/**
 * The types every backend shares: {@linkcode Event}, {@linkcode EventType},
 * {@linkcode Subscription}, the {@linkcode EventBus} interface, its options
 * and its errors.
 *
 * @module
 */

import {
  ENVELOPE_BYTES,
  FIRST_MS,
  formatInstant,
  freezeParsed,
  frozenJsonCopy,
  type Instant,
  LAST_MS,
  loneSurrogate,
  MAX_DEPTH,
  parseInstant,
  type Tally,
  textBytes,
  utf8Length,
} from "./_json.ts";
import type { TelemetryOptions } from "./_telemetry.ts";
import { parseJson } from "./_json_parse.ts";

/**
 * The category of an event. The values are the wire strings, shared with the
 * Python dataknobs-common bus.
 *
 * @example Use an event type
 * ```ts
 * import assert from "node:assert/strict";
 * import { Event, EventType } from "@dataknobs/events";
 * const event = new Event({ type: EventType.UPDATED, topic: "registry:bots" });
 * assert.ok(event.type === "updated");
 * ```
 */
export const EventType = {
  /** A resource was created. */
  CREATED: "created",
  /** A resource was modified. */
  UPDATED: "updated",
  /** A resource was removed. */
  DELETED: "deleted",
  /** A resource was activated or enabled. */
  ACTIVATED: "activated",
  /** A resource was deactivated or disabled. */
  DEACTIVATED: "deactivated",
  /** An error occurred. */
  ERROR: "error",
  /** Anything else. */
  CUSTOM: "custom",
} as const;

/** One of the {@linkcode EventType} values: `"created"`, `"updated"`, … */
export type EventType = typeof EventType[keyof typeof EventType];

const EVENT_TYPES: ReadonlySet<string> = new Set(Object.values(EventType));

/**
 * A value JSON carries unchanged.
 *
 * @example Values JSON carries
 * ```ts
 * import assert from "node:assert/strict";
 * import type { JsonValue } from "@dataknobs/events";
 * const values: JsonValue[] = [null, true, 1.5, "text", [1, "a"], { nested: { ok: true } }];
 * assert.equal(JSON.parse(JSON.stringify(values)).length, 6);
 * ```
 */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | readonly JsonValue[]
  | JsonObject;

/**
 * A JSON object whose values JSON carries unchanged.
 *
 * @example A payload's type
 * ```ts
 * import assert from "node:assert/strict";
 * import { Event, type JsonObject } from "@dataknobs/events";
 * const payload: JsonObject = new Event({ type: "created", topic: "t", payload: { tags: ["a"] } }).payload;
 * assert.deepEqual(payload.tags, ["a"]);
 * ```
 */
export type JsonObject = { readonly [key: string]: JsonValue };

/**
 * `T` as JSON carries it: what JSON cannot carry faithfully becomes `never`
 * (`Date`, `bigint`, `symbol`, functions, class instances with methods,
 * `undefined` in a key that is not optional), so `P extends JsonSafe<P>`
 * holds only for a payload type that survives the wire. `unknown` and
 * `any` pass (they are checked at run time). Interfaces work.
 *
 * @example Check a payload type
 * ```ts
 * import assert from "node:assert/strict";
 * import type { JsonSafe } from "@dataknobs/events";
 * interface BotChange { bot_id: string; tags?: string[] }
 * type Survives<T> = T extends JsonSafe<T> ? true : false;
 * const yes: Survives<BotChange> = true;
 * const no: Survives<{ when: Date }> = false; // a Date does not survive JSON
 * assert.ok(yes && !no);
 * ```
 */
export type JsonSafe<T> = unknown extends T ? T
  : T extends JsonValue ? T
  : T extends
    | bigint
    | symbol
    | undefined
    | Date
    | ((...args: never[]) => unknown) ? never
  : T extends readonly (infer U)[] ? readonly JsonSafe<U>[]
  : T extends object ? {
      readonly [
        // An optional key may be missing; undefined in a required one may not.
        K in keyof T
      ]: Record<never, never> extends Pick<T, K>
        ? JsonSafe<Exclude<T[K], undefined>>
        : JsonSafe<T[K]>;
    }
  : never;

/**
 * The constraint on a bus's topic map `T`: each topic's payload type is an
 * object JSON carries (see {@linkcode JsonSafe}). A map that breaks it is a
 * compile error at the type argument.
 *
 * @example Declare the topics of a bus
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type TopicMap } from "@dataknobs/events";
 * interface BotChange { bot_id: string }
 * type Topics = { "registry:bots": BotChange };
 * const check: TopicMap<Topics> = { "registry:bots": { bot_id: "b1" } };
 * const bus = createEventBus<Topics>();
 * assert.equal(bus.state, "idle");
 * void check;
 * ```
 */
export type TopicMap<T> = {
  readonly [K in keyof T]: T[K] extends readonly unknown[] ? never
    : object & JsonSafe<T[K]>;
};

/**
 * What `payload` of {@linkcode EventInit} takes: on an untyped event
 * (`P` is {@linkcode JsonObject}, the default), any plain object, checked
 * at run time; on a typed one, a `P` that JSON carries (see
 * {@linkcode JsonSafe}), which must be an object.
 *
 * @example The payload of a typed event
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PayloadInit } from "@dataknobs/events";
 * const payload: PayloadInit<{ id: number }> = { id: 1 };
 * assert.equal(payload.id, 1);
 * ```
 */
export type PayloadInit<P> =
  // P is JsonObject itself (the default), not a type that fits it.
  (<G>() => G extends P ? 1 : 2) extends (<G>() => G extends JsonObject ? 1 : 2)
    ? UntypedPayload
    : P & JsonSafe<P> & object;

/**
 * What an untyped event's `payload` takes: any plain object (an interface's
 * value too), not an array, a function or a primitive; what JSON cannot
 * carry inside it is refused at run time.
 *
 * @example An interface's value as an untyped payload
 * ```ts
 * import assert from "node:assert/strict";
 * import { Event, type UntypedPayload } from "@dataknobs/events";
 * interface Change { id: string }
 * const change: Change = { id: "c1" };
 * const payload: UntypedPayload = change;
 * assert.equal(new Event({ type: "updated", topic: "t", payload }).payload.id, "c1");
 * ```
 */
export type UntypedPayload =
  | Readonly<Record<string, unknown>>
  | (object & { readonly length?: never });

/**
 * The topic map of a bus made without one: any topic, payloads of type
 * {@linkcode JsonObject} (as the bus was before topic maps).
 *
 * @example An untyped bus
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type EventBus, type UntypedTopics } from "@dataknobs/events";
 * const bus: EventBus<UntypedTopics> = createEventBus();
 * assert.equal(bus.state, "idle");
 * ```
 */
export type UntypedTopics = Record<string, JsonObject>;

/**
 * The topics of a topic map, as strings.
 *
 * @example Topics of a map
 * ```ts
 * import assert from "node:assert/strict";
 * import type { TopicOf } from "@dataknobs/events";
 * const topic: TopicOf<{ jobs: { id: number } }> = "jobs";
 * assert.equal(topic, "jobs");
 * ```
 */
export type TopicOf<T> = keyof T & string;

/**
 * What a pattern subscription of a bus with topic map `T` receives: an
 * event of any of its topics, discriminated by `topic`, so checking
 * `event.topic` narrows the payload. A pattern's matches cannot be
 * computed in types (`?`, `[a-z]`), so every topic of the map counts.
 *
 * @example Narrow by topic
 * ```ts
 * import assert from "node:assert/strict";
 * import { Event, type TopicEvent } from "@dataknobs/events";
 * type Topics = { "jobs:new": { id: number }; "jobs:done": { ok: boolean } };
 * const event = new Event({ type: "created", topic: "jobs:new", payload: { id: 1 } }) as TopicEvent<Topics>;
 * if (event.topic === "jobs:new") assert.equal(event.payload.id, 1);
 * ```
 */
export type TopicEvent<T> = {
  [K in TopicOf<T>]: Event<T[K]> & { readonly topic: K };
}[TopicOf<T>];

/**
 * What {@linkcode Event}'s constructor takes. `P` is the payload's type
 * (inferred from `payload` when not given): a payload JSON cannot carry
 * faithfully (a `Date`, a `bigint`, a function, a required key whose type
 * allows `undefined`) is a compile error where its type is known, and is
 * refused at run time in any case.
 *
 * @example Build the fields first
 * ```ts
 * import assert from "node:assert/strict";
 * import { Event, type EventInit, EventType } from "@dataknobs/events";
 * const init: EventInit = { type: EventType.CREATED, topic: "orders", payload: { id: 7 }, source: "shop" };
 * assert.equal(new Event(init).source, "shop");
 * ```
 */
export interface EventInit<P = JsonObject> {
  /** The category of the event. */
  readonly type: EventType;
  /** The topic the event is published to. */
  readonly topic: string;
  /**
   * The event's data: a plain object that JSON carries unchanged.
   * @default {}
   */
  readonly payload?: PayloadInit<P>;
  /**
   * When the event happened: a `Date`, or an ISO 8601 string with a UTC
   * offset (microseconds are kept).
   * @default new Date()
   */
  readonly timestamp?: Date | string;
  /**
   * A unique id.
   * @default crypto.randomUUID()
   */
  readonly eventId?: string;
  /**
   * Who produced the event.
   * @default null
   */
  readonly source?: string | null;
  /**
   * An id shared by related events.
   * @default null
   */
  readonly correlationId?: string | null;
  /**
   * Anything else, as a plain object that JSON carries unchanged.
   * @default {}
   */
  readonly metadata?: Readonly<Record<string, unknown>>;
}

/**
 * The wire form of an event, as the Python dataknobs-common bus writes it.
 *
 * @example Read the wire object
 * ```ts
 * import assert from "node:assert/strict";
 * import { Event, type EventDict } from "@dataknobs/events";
 * const dict: EventDict = new Event({ type: "created", topic: "t", correlationId: "c1" }).toDict();
 * assert.equal(dict.correlation_id, "c1");
 * assert.match(dict.timestamp, /\+00:00$/);
 * ```
 */
export interface EventDict {
  /** The event type's string. */
  type: EventType;
  /** The topic. */
  topic: string;
  /** The payload object. */
  payload: JsonObject;
  /** ISO 8601 with microseconds and `+00:00`. */
  timestamp: string;
  /** The event id. */
  event_id: string;
  /** The source, or null. */
  source: string | null;
  /** The correlation id, or null. */
  correlation_id: string | null;
  /** The metadata object. */
  metadata: JsonObject;
}

// Set by decode() and withCorrelation() for the one constructor call each
// makes: the timestamp, already parsed; it also says that payload and
// metadata are already checked and frozen, so they need no copy, and
// `checkedBytes` is their tally (see Tally).
let checked: Instant | undefined;
let checkedBytes = 0;

// Reads an event's tally of payload and metadata (set in a static block).
let dataBytes: (event: Event) => number;

/**
 * A copy of `event` whose metadata has `extra`'s string values as well
 * (they win over keys of the same name), without the keys `extra` gives
 * any other value (`undefined`): how a publish replaces the trace context.
 * The event given is not changed; nothing is checked again but the new
 * keys.
 */
export let withMetadata: (
  event: Event,
  extra: Readonly<Record<string, unknown>>,
) => Event;

/**
 * The UTF-8 length of `event.toJSONString()` when it is more than `limit`
 * bytes, else 0. An event far below the limit is judged by the upper bound
 * tallied when it was made, without making its text (that would cost more
 * than delivering it on the memory bus).
 */
export function bytesOver(event: Event, limit: number): number {
  const bound = ENVELOPE_BYTES + dataBytes(event) + textBytes(event.topic) +
    textBytes(event.eventId) + textBytes(event.source) +
    textBytes(event.correlationId);
  if (bound <= limit) return 0;
  const bytes = utf8Length(event.toJSONString());
  return bytes > limit ? bytes : 0;
}

/**
 * An immutable message published to a topic. The payload and metadata are
 * copied and frozen when the event is made, so no handler can change what
 * another handler sees, and anything JSON cannot carry faithfully (cycles,
 * `BigInt`, functions, symbols, `undefined`, `NaN`, class instances such as
 * `Date`) is refused at once, on every backend. So are nesting deeper than
 * {@linkcode Event.MAX_DEPTH} levels and text (topic, ids, keys, values)
 * that is not well-formed Unicode. Any key, `__proto__` included, stays an
 * own property of an ordinary object.
 *
 * @example Make an event and read it back from its wire form
 * ```ts
 * import assert from "node:assert/strict";
 * import { Event, EventType } from "@dataknobs/events";
 * const event = new Event({
 *   type: EventType.CREATED,
 *   topic: "registry:bots",
 *   payload: { bot_id: "b1" },
 * });
 * const copy = Event.fromJSON(event.toJSONString());
 * assert.ok(copy.eventId === event.eventId);
 * assert.ok(copy.payload.bot_id === "b1");
 * ```
 */
export class Event<P = JsonObject> {
  /**
   * How deeply `payload` and `metadata` may nest, the object itself counting
   * as level 1: `{ a: { b: [1] } }` is 3 levels deep. Deeper ones are
   * refused when an event is made and when one arrives.
   */
  static readonly MAX_DEPTH: number = MAX_DEPTH;
  /** The category of the event. */
  readonly type: EventType;
  /** The topic the event is published to. */
  readonly topic: string;
  /** The event's data (frozen). */
  readonly payload: P;
  /** A unique id. */
  readonly eventId: string;
  /** Who produced the event, or null. */
  readonly source: string | null;
  /** An id shared by related events, or null. */
  readonly correlationId: string | null;
  /** Anything else (frozen). */
  readonly metadata: JsonObject;
  readonly #instant: Instant;
  /** At least the UTF-8 bytes of payload and metadata as JSON. */
  readonly #dataBytes: number;
  #stamp: string | undefined;
  #json: string | undefined;

  static {
    dataBytes = (event) => event.#dataBytes;
    withMetadata = (event, extra) => {
      let bytes = event.#dataBytes;
      const metadata: Record<string, JsonValue> = { ...event.metadata };
      for (const key in extra) {
        const value = extra[key];
        if (typeof value !== "string") {
          delete metadata[key];
          continue;
        }
        requireWellFormed(key, "metadata key");
        requireWellFormed(value, "metadata", key);
        bytes += textBytes(key) + textBytes(value) + 2;
        metadata[key] = value;
      }
      checked = event.#instant;
      checkedBytes = bytes;
      const copy = new Event({
        ...event.#init(),
        metadata: Object.freeze(metadata),
      });
      copy.#stamp = event.#stamp;
      // The wire text, when the event's is made already: it with only the
      // metadata, the last field, written anew; joined, not concatenated,
      // into one flat string (a drivers' byte count of a concatenation
      // flattens it first, which cost more than the join). Else it is
      // made when first needed, once, as for any event.
      const json = event.#json;
      if (json !== undefined) {
        const old = JSON.stringify(event.metadata).length + 1;
        copy.#json = [json.slice(0, -old), JSON.stringify(copy.metadata), "}"]
          .join("");
      }
      return copy;
    };
  }

  /**
   * Makes an event.
   *
   * @param init The fields; only `type` and `topic` are required.
   * @throws {TypeError} If a field has the wrong type or holds text that
   * is not well-formed Unicode, or the payload or metadata holds something
   * JSON cannot carry faithfully or nests deeper than
   * {@linkcode Event.MAX_DEPTH}.
   */
  constructor(init: EventInit<NoInfer<P>>) {
    const given = checked;
    checked = undefined;
    const givenBytes = checkedBytes;
    if (!EVENT_TYPES.has(init.type)) {
      throw new TypeError(
        `Cannot create event: type must be one of ${
          [...EVENT_TYPES].join(", ")
        }, got ${show(init.type)}`,
      );
    }
    this.type = init.type;
    this.topic = requireTopic(init.topic, "Cannot create event");
    if (given) {
      this.payload = init.payload as P;
      this.metadata = init.metadata as JsonObject;
      this.#dataBytes = givenBytes;
    } else {
      const tally = { bytes: 0 };
      this.payload = jsonObject(init.payload, "payload", tally) as P;
      this.metadata = jsonObject(init.metadata, "metadata", tally);
      this.#dataBytes = tally.bytes;
    }
    this.#instant = given ?? toInstant(init.timestamp);
    this.eventId = init.eventId ?? crypto.randomUUID();
    if (typeof this.eventId !== "string" || this.eventId === "") {
      throw new TypeError(
        `Cannot create event: eventId must be a non-empty string, got ${
          show(init.eventId)
        }`,
      );
    }
    requireWellFormed(this.eventId, "eventId");
    this.source = optionalString(init.source, "source");
    this.correlationId = optionalString(init.correlationId, "correlationId");
    Object.freeze(this);
  }

  /** When the event happened (a new `Date` on every read). */
  get timestamp(): Date {
    return new Date(this.#instant.ms);
  }

  /**
   * Returns a copy of this event with another correlation id.
   *
   * @param correlationId The new correlation id.
   * @returns A new event; every other field is unchanged.
   * @example Correlate a reply with a request
   * ```ts
   * import assert from "node:assert/strict";
   * import { Event, EventType } from "@dataknobs/events";
   * const request = new Event({ type: EventType.CUSTOM, topic: "jobs" });
   * const reply = request.withCorrelation(request.eventId);
   * assert.ok(reply.correlationId === request.eventId);
   * ```
   */
  withCorrelation(correlationId: string): Event<P> {
    checked = this.#instant;
    checkedBytes = this.#dataBytes;
    const copy: Event = new Event({ ...this.#init(), correlationId });
    return copy as unknown as Event<P>;
  }

  /**
   * Returns the wire object, with the Python bus's field names.
   *
   * @returns A new plain object (payload and metadata are shared and frozen).
   * @example Look at the wire form
   * ```ts
   * import assert from "node:assert/strict";
   * import { Event, EventType } from "@dataknobs/events";
   * const dict = new Event({ type: EventType.DELETED, topic: "t" }).toDict();
   * assert.ok(dict.event_id.length === 36 && dict.source === null);
   * ```
   */
  toDict(): EventDict {
    return {
      type: this.type,
      topic: this.topic,
      payload: this.payload as JsonObject,
      timestamp: this.#stamp ??= formatInstant(this.#instant),
      event_id: this.eventId,
      source: this.source,
      correlation_id: this.correlationId,
      metadata: this.metadata,
    };
  }

  /**
   * Lets `JSON.stringify(event)` write the wire form.
   *
   * @returns The same object as {@linkcode Event.prototype.toDict}.
   */
  toJSON(): EventDict {
    return this.toDict();
  }

  /**
   * Returns the JSON text that travels on the wire.
   *
   * @returns `JSON.stringify(event.toDict())`.
   * @example Encode an event
   * ```ts
   * import assert from "node:assert/strict";
   * import { Event, EventType } from "@dataknobs/events";
   * const text = new Event({ type: EventType.CREATED, topic: "t" }).toJSONString();
   * assert.ok(text.startsWith('{"type":"created","topic":"t"'));
   * ```
   */
  toJSONString(): string {
    return this.#json ??= JSON.stringify(this.toDict());
  }

  /**
   * Rebuilds an event from its wire object, checking every field.
   *
   * @param dict The wire object (for example from the Python bus).
   * @returns The event.
   * @throws {EventFormatError} If a field is missing or malformed; its
   * `field` names which.
   * @example Read a Python event
   * ```ts
   * import assert from "node:assert/strict";
   * import { Event } from "@dataknobs/events";
   * const event = Event.fromDict({
   *   type: "updated", topic: "registry:bots", payload: { bot_id: "b1" },
   *   timestamp: "2026-11-26T23:42:51.095270+00:00",
   *   event_id: "88d9ef23-1934-4831-9b94-de275d1b4708",
   *   source: null, correlation_id: null, metadata: {},
   * });
   * assert.ok(event.toDict().timestamp === "2026-11-26T23:42:51.095270+00:00");
   * ```
   */
  static fromDict(dict: unknown): Event {
    return decode(dict, false);
  }

  /**
   * Parses the JSON text of a wire object and rebuilds the event.
   *
   * @param text JSON text, as {@linkcode Event.prototype.toJSONString} writes.
   * @returns The event.
   * @throws {EventFormatError} If the text is not JSON or not an event.
   * @example Decode an event
   * ```ts
   * import assert from "node:assert/strict";
   * import { Event, EventType } from "@dataknobs/events";
   * const event = new Event({ type: EventType.CREATED, topic: "t" });
   * assert.ok(Event.fromJSON(event.toJSONString()).topic === "t");
   * ```
   */
  static fromJSON(text: string): Event {
    let dict: unknown;
    try {
      dict = parseJson(text);
    } catch (error) {
      throw new EventFormatError(
        null,
        `the message is not JSON (${(error as Error).message})`,
      );
    }
    return decode(dict, true);
  }

  #init(): EventInit {
    return {
      type: this.type,
      topic: this.topic,
      payload: this.payload as JsonObject,
      timestamp: this.#stamp ??= formatInstant(this.#instant),
      eventId: this.eventId,
      source: this.source,
      correlationId: this.correlationId,
      metadata: this.metadata,
    };
  }
}

const TYPES_WANTED = `one of ${[...EVENT_TYPES].join(", ")}`;

function decode(dict: unknown, parsed: boolean): Event {
  if (typeof dict !== "object" || dict === null || Array.isArray(dict)) {
    throw new EventFormatError(null, `expected an object, got ${show(dict)}`);
  }
  const {
    type,
    topic,
    payload,
    timestamp,
    event_id,
    source,
    correlation_id,
    metadata,
  } = dict as Record<string, unknown>;
  if (typeof type !== "string" || !EVENT_TYPES.has(type)) {
    throw wrongField("type", TYPES_WANTED, type);
  }
  const instant = typeof timestamp === "string"
    ? parseInstant(timestamp)
    : null;
  if (instant === null) {
    throw wrongField("timestamp", TIMESTAMP_WANTED, timestamp);
  }
  const tally = { bytes: 0 };
  const init: EventInit = {
    type: type as EventType,
    topic: wireText(topic, "topic"),
    payload: wireObject(payload, "payload", parsed, tally),
    eventId: wireText(event_id, "event_id"),
    source: wireTextOrNull(source, "source"),
    correlationId: wireTextOrNull(correlation_id, "correlation_id"),
    metadata: wireObject(metadata, "metadata", parsed, tally),
  };
  checked = instant;
  checkedBytes = tally.bytes;
  try {
    return new Event(init);
  } finally {
    checked = undefined;
  }
}

const TIMESTAMP_WANTED =
  "an ISO 8601 string with a UTC offset, in years 1 to 9999 (UTC)";

function wrongField(name: string, want: string, value: unknown) {
  return new EventFormatError(name, `must be ${want}, got ${show(value)}`);
}

function wireText(value: unknown, name: string): string {
  if (typeof value === "string" && value !== "") {
    return wireWellFormed(value, name);
  }
  throw wrongField(name, "a non-empty string", value);
}

function wireTextOrNull(value: unknown, name: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return wireWellFormed(value, name);
  throw wrongField(name, "a string or null", value);
}

function wireWellFormed(value: string, name: string): string {
  const lone = loneSurrogate(value);
  if (lone === null) return value;
  throw new EventFormatError(
    name,
    `must be well-formed Unicode, but ${show(value)} has ${lone}`,
  );
}

/** Payload or metadata from the wire, checked and frozen. */
function wireObject(
  value: unknown,
  name: string,
  parsed: boolean,
  tally: Tally,
) {
  if (value === undefined) {
    tally.bytes += 2;
    return EMPTY;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw wrongField(name, "an object", value);
  }
  try {
    return (parsed
      ? freezeParsed(value as JsonObject, name, tally)
      : frozenJsonCopy(value, name, tally)) as JsonObject;
  } catch (error) {
    throw new EventFormatError(
      name,
      `is refused: ${(error as Error).message}`,
    );
  }
}

function jsonObject(value: unknown, name: string, tally: Tally): JsonObject {
  if (value === undefined) {
    tally.bytes += 2;
    return EMPTY;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(
      `Cannot create event: ${name} must be a plain object, got ${show(value)}`,
    );
  }
  return frozenJsonCopy(value, name, tally) as JsonObject;
}

const EMPTY: JsonObject = Object.freeze({});

function toInstant(timestamp: Date | string | undefined): Instant {
  if (timestamp === undefined) return { ms: Date.now(), micros: 0 };
  if (timestamp instanceof Date) {
    const ms = timestamp.getTime();
    if (Number.isNaN(ms)) {
      throw new TypeError("Cannot create event: timestamp is an invalid Date");
    }
    if (ms < FIRST_MS || ms > LAST_MS) {
      throw new TypeError(
        `Cannot create event: timestamp must be in years 1 to 9999 (UTC), as Python's datetime holds, got ${timestamp.toISOString()}`,
      );
    }
    return { ms, micros: 0 };
  }
  const instant = typeof timestamp === "string"
    ? parseInstant(timestamp)
    : null;
  if (instant === null) {
    throw new TypeError(
      `Cannot create event: timestamp must be a Date or ${TIMESTAMP_WANTED}, got ${
        show(timestamp)
      }`,
    );
  }
  return instant;
}

function optionalString(value: unknown, name: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return requireWellFormed(value, name);
  throw new TypeError(
    `Cannot create event: ${name} must be a string or null, got ${show(value)}`,
  );
}

// `key`, if given, is the metadata key of `value` (named in the error).
function requireWellFormed(value: string, name: string, key?: string): string {
  const lone = loneSurrogate(value);
  if (lone === null) return value;
  throw new TypeError(
    `Cannot create event: ${
      key === undefined ? name : `${name} "${key}"`
    } must be well-formed Unicode, but ${show(value)} has ${lone}; remove it`,
  );
}

/**
 * Checks a topic (a non-empty string of well-formed Unicode) and returns it;
 * `context` starts the error message.
 */
export function requireTopic(topic: unknown, context: string): string {
  if (typeof topic !== "string" || topic === "") {
    throw new TypeError(
      `${context}: topic must be a non-empty string, got ${show(topic)}`,
    );
  }
  const lone = loneSurrogate(topic);
  if (lone === null) return topic;
  throw new TypeError(
    `${context}: topic must be well-formed Unicode, but ${
      show(topic)
    } has ${lone}; remove it`,
  );
}

/** A short, safe rendering of a value for an error message. */
export function show(value: unknown): string {
  if (typeof value === "string") {
    const text = value.length > 40 ? `${value.slice(0, 40)}…` : value;
    return JSON.stringify(text);
  }
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "object" && value !== null) {
    return Array.isArray(value) ? "an array" : "an object";
  }
  return String(value);
}

/**
 * A handler for events. It may be sync or async; what it throws or rejects
 * with goes to {@linkcode EventBusOptions.onError}.
 *
 * @example A typed handler
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, Event, type EventHandler } from "@dataknobs/events";
 * const seen: string[] = [];
 * const handler: EventHandler = async (event) => {
 *   await Promise.resolve();
 *   seen.push(event.topic);
 * };
 * const bus = createEventBus();
 * await bus.connect();
 * await bus.subscribe("t", handler);
 * await bus.publish("t", new Event({ type: "created", topic: "t" }));
 * assert.deepEqual(seen, ["t"]);
 * await bus.close();
 * ```
 */
export type EventHandler<P = JsonObject> = (
  event: Event<P>,
  delivery: Delivery,
) => void | Promise<void>;

/**
 * What `publish(topic, event)` takes as `event` on a bus with topic map
 * `T`: an event whose payload has the topic's type; on an untyped bus, any
 * event (its payload is checked at run time, as always).
 *
 * @example The event type of a topic
 * ```ts
 * import assert from "node:assert/strict";
 * import { Event, type PublishedEvent } from "@dataknobs/events";
 * type Topics = { jobs: { id: number } };
 * const event: PublishedEvent<Topics, "jobs"> = new Event({ type: "created", topic: "jobs", payload: { id: 1 } });
 * assert.equal(event.payload.id, 1);
 * ```
 */
export type PublishedEvent<T, K extends keyof T> = string extends keyof T
  ? Event<object>
  : Event<T[K]>;

/**
 * The options of an exact-topic subscription on a bus with topic map `T`:
 * a typed bus takes no `pattern` there (a pattern subscription has its
 * own overload, whose handler gets a {@linkcode TopicEvent}); an untyped
 * bus takes `O` as it is.
 *
 * @example Options of an exact subscription
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ExactOptions, SubscribeOptions } from "@dataknobs/events";
 * const options: ExactOptions<{ jobs: { id: number } }, SubscribeOptions> = { signal: AbortSignal.timeout(1000) };
 * assert.equal(options.pattern, undefined);
 * ```
 */
export type ExactOptions<T, O extends SubscribeOptions> = string extends keyof T
  ? O
  : O & { readonly pattern?: null };

/**
 * The options of a pattern subscription: `pattern` is required.
 *
 * @example Options of a pattern subscription
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PatternOptions, SubscribeOptions } from "@dataknobs/events";
 * const options: PatternOptions<SubscribeOptions> = { pattern: "jobs:*" };
 * assert.equal(options.pattern, "jobs:*");
 * ```
 */
export type PatternOptions<O extends SubscribeOptions> = O & {
  readonly pattern: string;
};

/**
 * What a handler is told about one delivery of an event (its second
 * argument).
 *
 * @example Save the position to resume from after a restart
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type Delivery, Event } from "@dataknobs/events";
 * const bus = createEventBus({}, { history: { maxEvents: 100 } });
 * await bus.connect();
 * let saved: string | undefined;
 * await bus.subscribe("t", (_event, delivery: Delivery) => {
 *   saved = delivery.position;
 * });
 * await bus.publish("t", new Event({ type: "created", topic: "t" }));
 * assert.equal(typeof saved, "string");
 * await bus.close();
 * ```
 */
export interface Delivery {
  /**
   * The event's place in the bus's log: an opaque string to give back as
   * `subscribe(topic, handler, { from: position })`. Absent on a bus
   * without `history`, and for an event that is not in the log (one a
   * Python dataknobs bus published). The delivery is frozen; on the
   * in-memory bus `position` is an accessor that makes the string when
   * read (equal each time), not an own property: spread or
   * `JSON.stringify` a delivery and it is left out, so read it by name.
   */
  readonly position?: string;
}

/**
 * How much of what a bus publishes its log keeps (see
 * {@linkcode EventBusOptions.history}): the newest `maxEvents` events that
 * are at most `maxAgeMs` old, whichever limit is reached first. Redis
 * trims approximately (`MAXLEN ~`, `MINID ~`): it may keep a few more.
 *
 * @example A log of a day, at most a million events
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type HistoryOptions } from "@dataknobs/events";
 * const history: HistoryOptions = { maxEvents: 1_000_000, maxAgeMs: 86_400_000 };
 * assert.equal(createEventBus({}, { history }).state, "idle");
 * ```
 */
export interface HistoryOptions {
  /**
   * The most events kept.
   * @default 100000
   */
  readonly maxEvents?: number;
  /**
   * The longest time an event is kept, in milliseconds.
   * @default 86400000 (a day)
   */
  readonly maxAgeMs?: number;
}

/**
 * A live subscription. Cancel it to stop receiving events; `await using`
 * cancels it at the end of the scope.
 *
 * @example Cancel at the end of a scope
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, Event } from "@dataknobs/events";
 * const bus = createEventBus();
 * await bus.connect();
 * let calls = 0;
 * {
 *   await using sub = await bus.subscribe("t", () => void calls++);
 *   assert.equal(sub.pattern, null);
 *   await bus.publish("t", new Event({ type: "created", topic: "t" }));
 * }
 * await bus.publish("t", new Event({ type: "created", topic: "t" }));
 * assert.equal(calls, 1);
 * await bus.close();
 * ```
 */
export interface Subscription extends AsyncDisposable {
  /** A unique id. */
  readonly subscriptionId: string;
  /** The topic given to `subscribe` (a label when `pattern` is set). */
  readonly topic: string;
  /** The fnmatch pattern, or null for an exact topic. */
  readonly pattern: string | null;
  /** When the subscription was made. */
  readonly createdAt: Date;
  /**
   * Stops delivery: once this resolves the handler is never called again.
   * Idempotent.
   *
   * @returns A promise that resolves when the backend has been told.
   */
  cancel(): Promise<void>;
}

/**
 * The state of a bus's connection:
 * `idle → connecting → ready ⇄ reconnecting → closing → closed`.
 * `idle` before `connect()` (and again after a failed one); `reconnecting`
 * while a remote connection is being replaced; `closing` from the moment
 * `close()` is called until it resolves.
 *
 * @example Read the state
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type ConnectionState } from "@dataknobs/events";
 * const bus = createEventBus();
 * const before: ConnectionState = bus.state;
 * await bus.connect();
 * assert.equal(before, "idle");
 * assert.equal(bus.state, "ready");
 * const closing = bus.close();
 * assert.equal(bus.state, "closing");
 * await closing;
 * assert.equal(bus.state, "closed");
 * ```
 */
export type ConnectionState =
  | "idle"
  | "connecting"
  | "ready"
  | "reconnecting"
  | "closing"
  | "closed";

/**
 * A span of time in which a remote bus's receiving connection was not
 * proven live, so events published then may have been missed. Reported
 * once every subscription is confirmed again. Events published before
 * `since` or after `until` were delivered.
 *
 * @example Log gaps
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type Gap } from "@dataknobs/events";
 * const gaps: Gap[] = [];
 * const bus = createEventBus({ backend: "memory" }, { onGap: (gap) => void gaps.push(gap) });
 * await bus.connect();
 * assert.equal(gaps.length, 0); // the memory backend never loses a connection
 * await bus.close();
 * ```
 */
export interface Gap {
  /**
   * The last moment the receiving connection was proven live: when the last
   * heartbeat answered was sent (so up to about 2 × `heartbeatMs` before
   * the loss was noticed), or when the connection was restored.
   */
  readonly since: Date;
  /** When every subscription was confirmed again by the server. */
  readonly until: Date;
  /**
   * On a bus with `history`: true, and events of the span may be lost for
   * good: the log no longer holds entries after the subscription's last
   * known place in it (trimmed by retention, a server restarted without
   * its data, a log restored from an older copy). The log keeps no record
   * per topic, so the trimmed entries may all have been of other topics:
   * see the README's "History and replay" for when that is ruled out.
   * Such a bus reports no other gap: what the log holds is delivered
   * instead. For a `from` position the log no longer holds, `since` is
   * the Unix epoch (the log cannot tell when the lost events were
   * published) and `until` when the replay began.
   */
  readonly lost?: boolean;
}

/**
 * Told of a handler that threw or rejected (with its event and
 * subscription), of a message from the wire that is not an event (event and
 * subscription null), and of events a bus had to drop (see
 * {@linkcode EventBusError}).
 *
 * @example Collect handler failures
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type ErrorHandler, Event } from "@dataknobs/events";
 * const failures: string[] = [];
 * const onError: ErrorHandler = (error, event) => void failures.push(`${event?.eventId}: ${error}`);
 * const bus = createEventBus({}, { onError });
 * await bus.connect();
 * await bus.subscribe("t", () => {
 *   throw new Error("boom");
 * });
 * await bus.publish("t", new Event({ type: "created", topic: "t" }));
 * assert.equal(failures.length, 1);
 * await bus.close();
 * ```
 */
export type ErrorHandler = (
  error: unknown,
  event: Event | null,
  subscription: Subscription | null,
) => void;

/**
 * Options every bus takes.
 *
 * @example Tune a bus
 * ```ts
 * import assert from "node:assert/strict";
 * import { type EventBusOptions, InMemoryEventBus } from "@dataknobs/events";
 * const options: EventBusOptions = { closeTimeoutMs: 1000, maxQueuedEvents: 1000, onError: console.error };
 * const bus = new InMemoryEventBus(options);
 * assert.equal(bus.state, "idle");
 * ```
 */
export interface EventBusOptions {
  /**
   * Told of handler failures, malformed wire messages and dropped events.
   * @default one `console.error` line with the subscription and event ids
   */
  readonly onError?: ErrorHandler;
  /**
   * How long `close()` waits for handlers to finish the events they already
   * have, in milliseconds; what is still queued then is dropped and reported.
   * @default 5000
   */
  readonly closeTimeoutMs?: number;
  /**
   * How many events may wait for one subscription's handler. Past that, new
   * events for that subscription are dropped and reported to `onError` with
   * code `"QUEUE_FULL"`; other subscriptions are unaffected.
   * @default 100000
   */
  readonly maxQueuedEvents?: number;
  /**
   * The largest event `publish` takes: the UTF-8 bytes of its JSON wire
   * text ({@linkcode Event.prototype.toJSONString}). A larger one is
   * refused with a `RangeError` naming its size, and nothing is sent. The
   * default is the same on every backend, so code tested on memory does
   * not break on Redis or PostgreSQL: 1 MiB is far below what Redis lets a
   * subscriber's output buffer hold (`client-output-buffer-limit pubsub`,
   * 32 MB at once and 8 MB for a minute by default, shared by every copy of
   * every event not yet read). Raising it past a few MB needs that Redis
   * limit raised as well. Config key: `max_event_bytes`.
   * @default 1048576
   */
  readonly maxEventBytes?: number;
  /**
   * Called on every change of {@linkcode EventBus.state}.
   * @default none
   */
  readonly onStateChange?: (state: ConnectionState) => void;
  /**
   * Called when a remote bus has restored its subscriptions after losing its
   * connection: events published during the gap may have been missed.
   * With `history`, only for what the log can no longer supply
   * (`lost: true`).
   * @default none
   */
  readonly onGap?: (gap: Gap) => void;
  /**
   * Keep a log of what this bus publishes, so that subscriptions get what
   * they missed: after a lost connection (every event the log holds, in
   * order, exactly once, before newer ones) and after a restart
   * (`subscribe(topic, handler, { from })`). Handlers get each event's
   * `delivery.position`. Config key: `history: { max_events?, max_age_ms? }`.
   * See the README's "History and replay".
   * @default none (no log, no positions, no `from`)
   */
  readonly history?: HistoryOptions;
  /**
   * OpenTelemetry tracing and metrics: give the `@opentelemetry/api`
   * module the application uses, with its SDK set up before the bus is
   * made. Every publish is then a `publish <topic>` span, every handler
   * call a `process <topic>` span in the publisher's trace (on Redis and
   * PostgreSQL the context travels in the event's `metadata` as
   * `traceparent` and `tracestate`; in process, beside the event);
   * see {@linkcode TelemetryOptions} and the README's OpenTelemetry
   * section.
   * @default none: no span, no metric, nothing loaded
   */
  readonly telemetry?: TelemetryOptions;
}

/**
 * The options of the remote buses (Redis, PostgreSQL) on top of
 * {@linkcode EventBusOptions}: how connections are timed. Every wait of a
 * remote bus is bounded by one of these.
 *
 * @example Fail fast
 * ```ts
 * import assert from "node:assert/strict";
 * import type { RemoteEventBusOptions } from "@dataknobs/events";
 * const timing: RemoteEventBusOptions = { heartbeatMs: 1000, connectTimeoutMs: 2000, commandTimeoutMs: 2000 };
 * assert.equal(timing.heartbeatMs, 1000);
 * ```
 */
export interface RemoteEventBusOptions extends EventBusOptions {
  /**
   * How often each connection makes a round trip to the server, in
   * milliseconds; one not answered within this time means a dead
   * (half-open or stalled) connection, which is replaced.
   * @default 5000
   */
  readonly heartbeatMs?: number;
  /**
   * The longest wait between attempts to replace a lost connection, in
   * milliseconds (they back off from 50 ms, doubling, with jitter).
   * @default 2000
   */
  readonly maxReconnectDelayMs?: number;
  /**
   * How long opening a connection may take, in milliseconds: `connect()`
   * rejects with `CONNECTION_FAILED` after it, an attempt to replace a
   * lost connection is retried after it, and a `subscribe` waits at most
   * this long for a lost connection to come back.
   * @default 10000
   */
  readonly connectTimeoutMs?: number;
  /**
   * How long any command the bus sends may wait for its answer, in
   * milliseconds (a batch of publishes, a LISTEN, a payload fetch). One
   * not answered in time ends its connection, which is replaced; the
   * publishes in it reject with `PUBLISH_FAILED`.
   * @default 10000
   */
  readonly commandTimeoutMs?: number;
}

/**
 * What {@linkcode EventBus.connect} takes.
 *
 * @example Give up after a second
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type ConnectOptions } from "@dataknobs/events";
 * const options: ConnectOptions = { signal: AbortSignal.timeout(1000) };
 * const bus = createEventBus();
 * await bus.connect(options);
 * assert.equal(bus.state, "ready");
 * await bus.close();
 * ```
 */
export interface ConnectOptions {
  /**
   * Aborting it gives up the attempt this call started (nothing is left
   * open) and rejects with the signal's reason.
   */
  readonly signal?: AbortSignal;
}

/**
 * The protocol every backend implements. The same code runs on any backend.
 *
 * @example Write code for any backend
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, Event, type EventBus } from "@dataknobs/events";
 * async function announce(bus: EventBus, botId: string): Promise<void> {
 *   await bus.publish("registry:bots", new Event({ type: "updated", topic: "registry:bots", payload: { bot_id: botId } }));
 * }
 * const bus = createEventBus({ backend: "memory" });
 * await bus.connect();
 * const seen: unknown[] = [];
 * await bus.subscribe("registry:bots", (event) => void seen.push(event.payload.bot_id));
 * await announce(bus, "b1");
 * assert.deepEqual(seen, ["b1"]);
 * await bus.close();
 * ```
 */
export interface EventBus<T extends TopicMap<T> = UntypedTopics>
  extends AsyncDisposable {
  /** The connection state. */
  readonly state: ConnectionState;
  /**
   * Connects. Idempotent; concurrent calls share one attempt. A remote bus
   * gives up after `connectTimeoutMs`.
   *
   * @param options `signal` to give up earlier.
   * @returns A promise that resolves when the bus is ready.
   */
  connect(options?: ConnectOptions): Promise<void>;
  /**
   * Stops taking events, lets handlers finish what they have (bounded by
   * `closeTimeoutMs`) and closes connections. Idempotent.
   *
   * @returns A promise that resolves once no handler runs any more.
   */
  close(): Promise<void>;
  /**
   * Publishes an event to a topic.
   *
   * @param topic The topic; must equal `event.topic`.
   * @param event The event.
   * @returns On memory, a promise that resolves once every matching handler
   * has run; on a remote backend, once the server has accepted the event.
   */
  publish<K extends TopicOf<T>>(
    topic: K,
    event: PublishedEvent<T, K>,
  ): Promise<void>;
  /**
   * Subscribes a handler to a topic, or to every topic matching an fnmatch
   * `pattern` (then `topic` is only a label).
   *
   * @param topic The topic, or a label for a pattern subscription.
   * @param handler Called with each event, one at a time, in order.
   * @param options An fnmatch pattern (`*`, `?`, `[abc]`, `[a-z]`,
   * `[!abc]`) or null, or `{ pattern?, signal? }`: aborting `signal` cancels
   * the subscription (see {@linkcode SubscribeOptions}).
   * @returns A promise of the subscription, once the backend has confirmed it.
   */
  subscribe<K extends TopicOf<T>>(
    topic: K,
    handler: EventHandler<T[K]>,
    options?:
      | null
      | ExactOptions<T, SubscribeOptions>
      | (string extends keyof T ? string : never),
  ): Promise<Subscription>;
  /**
   * Subscribes a handler to every topic matching an fnmatch `pattern`;
   * `topic` is only a label. On a bus with a topic map the handler gets a
   * {@linkcode TopicEvent}: check `event.topic` to narrow the payload.
   *
   * @param topic A label.
   * @param handler Called with each event, one at a time, in order.
   * @param options The pattern, or `{ pattern, signal? }`.
   * @returns A promise of the subscription, once the backend has confirmed it.
   */
  subscribe(
    topic: string,
    handler: (event: TopicEvent<T>, delivery: Delivery) => void | Promise<void>,
    options: string | PatternOptions<SubscribeOptions>,
  ): Promise<Subscription>;
  /**
   * Waits for the next event on a topic (or matching `pattern`) that passes
   * `filter`, then unsubscribes. The subscription is made at once; events
   * published before the backend confirms it are not seen.
   *
   * @example Wait for the next event
   * ```ts
   * import assert from "node:assert/strict";
   * import { createEventBus, Event } from "@dataknobs/events";
   * const bus = createEventBus();
   * await bus.connect();
   * const next = bus.once("jobs", { filter: (e) => e.payload.id === 2, timeoutMs: 1000 });
   * await bus.publish("jobs", new Event({ type: "created", topic: "jobs", payload: { id: 1 } }));
   * await bus.publish("jobs", new Event({ type: "created", topic: "jobs", payload: { id: 2 } }));
   * assert.equal((await next).payload.id, 2);
   * await bus.close();
   * ```
   *
   * @param topic The topic, or a label for a pattern subscription.
   * @param options `pattern`, `filter`, `signal`, `timeoutMs`.
   * @returns The event. Rejects with the signal's reason on abort, with
   * `TIMEOUT` after `timeoutMs`, with `CLOSED` when the bus closes first.
   */
  once<K extends TopicOf<T>>(
    topic: K,
    options?: ExactOptions<T, OnceOptions<Event<T[K]>>>,
  ): OncePromise<Event<T[K]>>;
  /**
   * Waits for the next event on any topic matching `pattern` (see the
   * other overload); on a bus with a topic map it is a
   * {@linkcode TopicEvent}.
   *
   * @param topic A label.
   * @param options `pattern` (required), `filter`, `signal`, `timeoutMs`.
   * @returns The event.
   */
  once(
    topic: string,
    options: PatternOptions<OnceOptions<TopicEvent<T>>>,
  ): OncePromise<TopicEvent<T>>;
  /**
   * The events on a topic (or matching `pattern`) as an async iterator over
   * a bounded buffer: `for await (const event of bus.events(topic))`. A slow
   * reader never blocks publishers or other subscriptions (see `overflow`).
   * The subscription is made at this call (events published before the
   * backend confirms it are not seen); it ends with `break`, `return()`,
   * `await using`, the signal (the next read rejects with its reason) or
   * the bus closing (the buffered events are read, then iteration ends).
   * An iterator never read must be ended (`return()` or `await using`).
   *
   * @example Read events with `for await`
   * ```ts
   * import assert from "node:assert/strict";
   * import { createEventBus, Event } from "@dataknobs/events";
   * const bus = createEventBus();
   * await bus.connect();
   * const events = bus.events("jobs", { bufferSize: 100 });
   * for (const id of [1, 2, 3]) {
   *   await bus.publish("jobs", new Event({ type: "created", topic: "jobs", payload: { id } }));
   * }
   * const ids: unknown[] = [];
   * for await (const event of events) {
   *   ids.push(event.payload.id);
   *   if (ids.length === 3) break; // cancels the subscription
   * }
   * assert.deepEqual(ids, [1, 2, 3]);
   * await bus.close();
   * ```
   *
   * @param topic The topic, or a label for a pattern subscription.
   * @param options `pattern`, `signal`, `bufferSize`, `overflow`.
   * @returns The iterator; a bad argument throws at once, and a bus that
   * is not connected or closed makes the first read reject.
   */
  events<K extends TopicOf<T>>(
    topic: K,
    options?: ExactOptions<T, EventsOptions>,
  ): EventIterator<Event<T[K]>>;
  /**
   * The events on every topic matching `pattern` (see the other overload);
   * on a bus with a topic map they are {@linkcode TopicEvent}s.
   *
   * @param topic A label.
   * @param options `pattern` (required), `signal`, `bufferSize`, `overflow`.
   * @returns The iterator.
   */
  events(
    topic: string,
    options: PatternOptions<EventsOptions>,
  ): EventIterator<TopicEvent<T>>;
}

/**
 * What every bus has, whatever its topic map: its state, `connect`,
 * `close` and `await using`. A function that only manages buses (connects,
 * closes, reports their state) takes this, and any bus fits, typed or not.
 *
 * @example Close every bus
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type EventBusLifecycle } from "@dataknobs/events";
 * async function closeAll(buses: EventBusLifecycle[]): Promise<void> {
 *   await Promise.all(buses.map((bus) => bus.close()));
 * }
 * const typed = createEventBus<{ jobs: { id: number } }>();
 * const untyped = createEventBus();
 * await closeAll([typed, untyped]);
 * assert.equal(typed.state, "closed");
 * ```
 */
export type EventBusLifecycle = Pick<
  EventBus,
  "state" | "connect" | "close" | typeof Symbol.asyncDispose
>;

/**
 * What {@linkcode EventBus.events} returns: an async iterator of events
 * whose `return()` (called by `break`) and `await using` cancel the
 * subscription.
 *
 * @example Stop reading with `await using`
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type EventIterator } from "@dataknobs/events";
 * const bus = createEventBus();
 * await bus.connect();
 * {
 *   await using events: EventIterator = bus.events("jobs");
 *   assert.equal(typeof events.next, "function");
 * } // the subscription is cancelled here
 * await bus.close();
 * ```
 */
export interface EventIterator<E = Event>
  extends AsyncIterableIterator<E>, AsyncDisposable {
  /**
   * Resolves once the backend has confirmed the subscription: every event
   * published after that is seen. Rejects as the first read would when the
   * subscription cannot be made (never reported as unhandled).
   */
  readonly ready: Promise<void>;
  /** Ends iteration and cancels the subscription; resolves once it is. */
  return(): Promise<IteratorResult<E>>;
}

/**
 * The options of {@linkcode EventBus.subscribe} (the third argument may
 * also be a pattern string or null, as in the Python bus).
 *
 * @example Unsubscribe with a signal
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, type SubscribeOptions } from "@dataknobs/events";
 * const bus = createEventBus();
 * await bus.connect();
 * const controller = new AbortController();
 * const options: SubscribeOptions = { pattern: "jobs:*", signal: controller.signal };
 * const sub = await bus.subscribe("all jobs", () => {}, options);
 * assert.equal(sub.pattern, "jobs:*");
 * controller.abort(); // cancels the subscription, as sub.cancel() does
 * await bus.close();
 * ```
 */
export interface SubscribeOptions {
  /** An fnmatch pattern (then the topic is only a label), or null. */
  readonly pattern?: string | null;
  /**
   * Aborting it cancels the subscription (as `cancel()`); if it is already
   * aborted, or aborts before the backend confirms, `subscribe` rejects
   * with its reason and nothing stays subscribed.
   */
  readonly signal?: AbortSignal;
  /**
   * On a bus with `history`: start with every event the log holds after
   * this position (a `delivery.position` a handler saw, saved by the
   * application), or with the oldest it holds (`"earliest"`), then go on
   * live. Events between the saved position and a crash may come again:
   * deduplicate by `eventId`. A position the log no longer holds, or one
   * past its end (a position it never gave: made up, or of a log restored
   * from an older copy), is reported through `onGap` (`lost: true`), then
   * delivery starts from the oldest event the log holds.
   * @default none (only events published from now on)
   */
  readonly from?: string;
}

/**
 * What {@linkcode EventBus.once} returns: the promise of the event, with
 * `ready`, which resolves once the backend has confirmed the subscription
 * (await it before triggering the event you wait for: on a remote backend,
 * one published earlier is not seen). `ready` rejects as the promise does
 * when the subscription cannot be made, and is never reported as unhandled.
 *
 * @example Wait until the subscription is live, then trigger
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, Event } from "@dataknobs/events";
 * const bus = createEventBus();
 * await bus.connect();
 * const reply = bus.once("replies", { timeoutMs: 1000 });
 * await reply.ready;
 * await bus.publish("replies", new Event({ type: "created", topic: "replies" }));
 * assert.equal((await reply).topic, "replies");
 * await bus.close();
 * ```
 */
export interface OncePromise<E> extends Promise<E> {
  /** Settles once the subscription is confirmed (or refused). */
  readonly ready: Promise<void>;
}

/**
 * The options of {@linkcode EventBus.once}.
 *
 * @example Give up after a second
 * ```ts
 * import assert from "node:assert/strict";
 * import type { OnceOptions } from "@dataknobs/events";
 * const options: OnceOptions = { timeoutMs: 1000, filter: (event) => event.type === "created" };
 * assert.equal(options.timeoutMs, 1000);
 * ```
 */
export interface OnceOptions<E = Event> extends SubscribeOptions {
  /** Only an event for which it returns true is taken. */
  readonly filter?: (event: E) => boolean;
  /**
   * Rejects with an `EventBusError` `TIMEOUT` after this many milliseconds.
   * @default no limit
   */
  readonly timeoutMs?: number;
}

/**
 * What {@linkcode EventBus.events} does when its buffer is full and an
 * event arrives: `"error"` ends the iterator (the next read throws
 * `QUEUE_FULL`); `"drop-oldest"` / `"drop-newest"` drop an event and report
 * the drops to `onError` (`QUEUE_FULL`, one report per run of drops).
 *
 * @example Keep the latest events
 * ```ts
 * import assert from "node:assert/strict";
 * import type { OverflowPolicy } from "@dataknobs/events";
 * const overflow: OverflowPolicy = "drop-oldest";
 * assert.equal(overflow, "drop-oldest");
 * ```
 */
export type OverflowPolicy = "error" | "drop-oldest" | "drop-newest";

/**
 * The options of {@linkcode EventBus.events}.
 *
 * @example A small buffer that keeps the newest events
 * ```ts
 * import assert from "node:assert/strict";
 * import type { EventsOptions } from "@dataknobs/events";
 * const options: EventsOptions = { bufferSize: 10, overflow: "drop-oldest" };
 * assert.equal(options.bufferSize, 10);
 * ```
 */
export interface EventsOptions extends SubscribeOptions {
  /**
   * How many events may wait for the reader.
   * @default 1000
   */
  readonly bufferSize?: number;
  /**
   * What a full buffer does with a new event.
   * @default "error"
   */
  readonly overflow?: OverflowPolicy;
}

/**
 * The conditions a caller may want to catch, by `code`:
 * `NOT_CONNECTED`, `CLOSED`, `UNKNOWN_BACKEND`,
 * `CONNECTION_FAILED`, `PUBLISH_FAILED`, `SUBSCRIBE_FAILED` (also to
 * `onError`: a subscription cancelled because reading its history failed
 * with a bug), `QUEUE_FULL`, `DROPPED_ON_CLOSE`, `DROPPED_ON_CANCEL`,
 * `UNSUPPORTED_SERVER`, `PAYLOAD_MISSING`, `TIMEOUT`.
 *
 * @example Branch on the code
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, Event, EventBusError, type EventBusErrorCode } from "@dataknobs/events";
 * const bus = createEventBus();
 * await bus.connect();
 * await bus.close();
 * const code: EventBusErrorCode | undefined = await bus.publish("t", new Event({ type: "created", topic: "t" }))
 *   .then(() => undefined, (error) => error instanceof EventBusError ? error.code : undefined);
 * assert.equal(code, "CLOSED");
 * ```
 */
export type EventBusErrorCode =
  | "NOT_CONNECTED"
  | "CLOSED"
  | "UNKNOWN_BACKEND"
  | "CONNECTION_FAILED"
  | "PUBLISH_FAILED"
  | "SUBSCRIBE_FAILED"
  | "QUEUE_FULL"
  | "DROPPED_ON_CLOSE"
  | "DROPPED_ON_CANCEL"
  | "UNSUPPORTED_SERVER"
  | "PAYLOAD_MISSING"
  | "TIMEOUT";

/**
 * An error of the bus itself (not of bad input, which is a `TypeError`),
 * with a stable {@linkcode EventBusErrorCode}.
 *
 * @example Tell a closed bus apart
 * ```ts
 * import assert from "node:assert/strict";
 * import { createEventBus, Event, EventBusError } from "@dataknobs/events";
 * const bus = createEventBus();
 * try {
 *   await bus.publish("t", new Event({ type: "created", topic: "t" }));
 * } catch (error) {
 *   assert.ok(error instanceof EventBusError && error.code === "NOT_CONNECTED");
 * }
 * ```
 */
export class EventBusError extends Error {
  /** The stable code; see {@linkcode EventBusErrorCode}. */
  readonly code: EventBusErrorCode;
  /**
   * How many queued events were dropped: set for `DROPPED_ON_CLOSE` and
   * `DROPPED_ON_CANCEL`, undefined for the other codes.
   */
  readonly dropped: number | undefined;

  /**
   * Makes an error.
   *
   * @param code The stable code.
   * @param message What went wrong and what to do.
   * @param options The cause, if any; `dropped`, the count of events
   *   dropped.
   */
  constructor(
    code: EventBusErrorCode,
    message: string,
    options?: ErrorOptions & { dropped?: number },
  ) {
    super(message, options);
    this.name = "EventBusError";
    this.code = code;
    this.dropped = options?.dropped;
  }
}

/**
 * A wire message that is not a valid event. `field` names the bad field, or
 * is null when the message as a whole is wrong (not JSON, not an object).
 *
 * @example Find the bad field
 * ```ts
 * import assert from "node:assert/strict";
 * import { Event, EventFormatError } from "@dataknobs/events";
 * try {
 *   Event.fromDict({ type: "created", topic: "t", timestamp: "yesterday", event_id: "1" });
 * } catch (error) {
 *   assert.ok(error instanceof EventFormatError && error.field === "timestamp");
 * }
 * ```
 */
export class EventFormatError extends TypeError {
  /** The wire name of the bad field, or null. */
  readonly field: string | null;

  /**
   * Makes an error.
   *
   * @param field The wire name of the bad field, or null.
   * @param problem What is wrong with it.
   */
  constructor(field: string | null, problem: string) {
    super(
      field === null
        ? `Invalid event: ${problem}`
        : `Invalid event: "${field}" ${problem}`,
    );
    this.name = "EventFormatError";
    this.field = field;
  }
}
