// The schema of the bus's tables. Every name the bus uses is qualified
// with it, so that a statement run in another session (a transactional
// publish in the caller's transaction, with its own search_path) finds the
// same tables. Found once a connection opens: the schema of an existing
// `<prefix>_patterns` table the connection's search_path finds, else the
// first schema of that search_path (where the bus then makes its tables).

import type { ISql } from "postgres";

/**
 * Whether making an object failed because another session made it at the
 * same moment (two buses starting together): the loser sees it, or its row
 * type, exist.
 */
export const madeMeanwhile = (error: unknown): boolean =>
  ["42P07", "42710", "42723", "23505"].includes(
    (error as { code?: string }).code ?? "",
  );

/** A name as a quoted SQL identifier. */
export const quoted = (name: string): string =>
  `"${name.replaceAll('"', '""')}"`;

/** The schema of the bus's tables; see the comment at the top. */
export class Schema {
  #qualifier = "";

  /**
   * Finds the schema on a connection of the bus (the same each time for
   * one URL and role). Rejects when the search_path names no schema.
   */
  async find(sql: ISql, table: string): Promise<void> {
    const [row] = await sql`select coalesce((
        select n.nspname from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        where c.oid = to_regclass(${quoted(table)})
      ), current_schema()) as schema`;
    const schema = row?.schema as string | null | undefined;
    if (schema == null) {
      throw new Error(
        "the connection's search_path names no schema to keep the bus's tables in: set one for the bus's role (ALTER ROLE … SET search_path)",
      );
    }
    this.#qualifier = `${quoted(schema)}.`;
  }

  /** A name of the bus, quoted and qualified with the schema, as SQL text. */
  name(name: string): string {
    return `${this.#qualifier}${quoted(name)}`;
  }

  /**
   * Makes the table `table` with `create` unless it exists. Looks first:
   * `create table if not exists` needs CREATE on the schema even when the
   * table is there (made beforehand by another role).
   */
  async make(
    sql: ISql,
    table: string,
    create: () => Promise<unknown>,
  ): Promise<void> {
    const [found] = await sql`select to_regclass(${
      this.name(table)
    }) is not null as made`;
    if (found!.made) return;
    await create().catch((error) => {
      if (!madeMeanwhile(error)) throw error;
    });
  }

  /** The same, as a fragment of a postgres.js query. */
  sql(sql: ISql, name: string): ReturnType<ISql["unsafe"]> {
    return sql.unsafe(this.name(name));
  }
}
