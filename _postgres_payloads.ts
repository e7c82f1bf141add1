// Events too large for NOTIFY (8000 bytes): the body goes to the
// `<prefix>_payloads` table in the publishing statement, the notification
// carries a reference, and the listener fetches the body before it
// delivers the event (keeping the order of everything behind it).

import type { ISql, Sql } from "postgres";
import type { Schema } from "./_postgres_schema.ts";
import type { Event } from "./types.ts";
import { EventBusError, EventFormatError } from "./types.ts";
import { parseJson } from "./_json_parse.ts";

/** NOTIFY payloads must be shorter than this many bytes. */
export const NOTIFY_LIMIT = 8000;
const REF = '{"dataknobs_ref":';
/** What Postgres takes as a uuid: a malformed id must not fail the others. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A body to store, under its id. */
export interface Row {
  readonly id: string;
  readonly body: string;
}

/** The notification texts of a batch, and the rows they refer to. */
export interface Encoded {
  readonly texts: string[];
  readonly rows: Row[];
}

/** The `<prefix>_payloads` table. */
export class PayloadStore {
  /** The table's name. */
  readonly table: string;
  /** How long a body is kept, in milliseconds. */
  readonly ttlMs: number;
  readonly #schema: Schema;

  constructor(prefix: string, ttlMs: number, schema: Schema) {
    this.table = `${prefix}_payloads`;
    this.ttlMs = ttlMs;
    this.#schema = schema;
  }

  /** The table, as a fragment of a query on `sql`. */
  in(sql: ISql): ReturnType<ISql["unsafe"]> {
    return this.#schema.sql(sql, this.table);
  }

  /** Creates the table if it does not exist (two processes may race). */
  async create(sql: Sql): Promise<void> {
    await this.#schema.make(
      sql,
      this.table,
      () =>
        sql`create table if not exists ${this.in(sql)} (
        id uuid primary key,
        body text not null,
        created_at timestamptz not null default now()
      )`,
    );
  }

  /**
   * Each event's notification text; large ones become references to rows.
   * `reserve` bytes are left free in each (for a position added later).
   */
  encode(events: readonly Event[], reserve = 0): Encoded {
    const limit = NOTIFY_LIMIT - reserve;
    const texts: string[] = [], rows: Row[] = [];
    for (const event of events) {
      const text = event.toJSONString();
      if (byteLength(text) < limit) {
        texts.push(text);
        continue;
      }
      const id = crypto.randomUUID();
      rows.push({ id, body: text });
      const ref = `${REF}${JSON.stringify(id)}`;
      const withId = `${ref},"event_id":${JSON.stringify(event.eventId)}}`;
      // The event id is only a courtesy to other readers: an id too long
      // for NOTIFY is left out, never the event.
      texts.push(byteLength(withId) < limit ? withId : `${ref}}`);
    }
    return { texts, rows };
  }

  /** Whether a notification is a reference to a stored body. */
  isReference(text: string): boolean {
    return text.startsWith(REF);
  }

  /**
   * The bodies behind references, in their order; a reference whose body is
   * gone, or that is malformed, gives the error to report instead.
   */
  async resolve(
    sql: Sql,
    texts: readonly string[],
  ): Promise<(string | Error)[]> {
    const ids = texts.map(refId);
    const wanted = [...new Set(ids.filter((id) => id !== ""))];
    const bodies = new Map<string, string>();
    if (wanted.length > 0) {
      const rows = await sql`select id::text, body from ${
        this.in(sql)
      } where id in (
        select jsonb_array_elements_text(${sql.json(wanted)})::uuid
      )`;
      for (const row of rows) bodies.set(row.id as string, row.body as string);
    }
    return ids.map((id) =>
      bodies.get(id) ??
        (id === ""
          ? new EventFormatError("dataknobs_ref", "must be a payload id")
          : new EventBusError(
            "PAYLOAD_MISSING",
            `Cannot read large payload ${id} from ${this.table}: it is gone (expired after largePayloadTtlMs, or deleted)`,
          ))
    );
  }

  /** Deletes bodies past their time to live. */
  async cleanup(sql: ISql): Promise<void> {
    await sql`delete from ${
      this.in(sql)
    } where created_at < now() - ${this.ttlMs} * interval '1 millisecond'`;
  }
}

/** The payload id of a reference notification, or "" when it has none. */
function refId(text: string): string {
  try {
    const id = (parseJson(text) as { dataknobs_ref?: unknown }).dataknobs_ref;
    return typeof id === "string" && UUID.test(id) ? id : "";
  } catch {
    return "";
  }
}

/** The UTF-8 length of a text (exact when it could reach NOTIFY_LIMIT). */
export function byteLength(text: string): number {
  // Each UTF-16 unit is at most 3 UTF-8 bytes: short text needs no count.
  return text.length * 3 < NOTIFY_LIMIT - 128
    ? text.length
    : new TextEncoder().encode(text).length;
}
