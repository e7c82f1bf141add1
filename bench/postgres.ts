// PostgresEventBus against raw postgres.js pg_notify + sql.listen: one
// statement per event (pipelined), and the best batched raw form.
import postgres from "postgres";
import type { Event } from "../mod.ts";
import { postgresChannel, PostgresEventBus } from "../postgres.ts";
import type { Row } from "./_measure.ts";
import { busEndpoint, type Endpoint, remoteRows } from "./_remote.ts";

const URL_ = Deno.env.get("DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";

const ours = busEndpoint(
  "PostgresEventBus",
  () => new PostgresEventBus({ connectionString: URL_ }),
);

function raw(batch: number): Endpoint {
  return {
    name: batch === 1
      ? "raw postgres.js, 1 pg_notify a statement"
      : `raw postgres.js, ${batch} a statement`,
    carries: (bytes) => bytes < 8000,
    async open(topic, subscribers, onEvent) {
      const sql = postgres(URL_, { max: 4, onnotice: () => {} });
      const channel = postgresChannel(topic);
      await sql.listen(channel, (text) => {
        JSON.parse(text);
        for (let i = 0; i < subscribers; i++) onEvent();
      });
      const one = (event: Event) =>
        sql`select pg_notify(${channel}, ${event.toJSONString()})`;
      return {
        sendAll: (list) => {
          if (batch === 1) return Promise.all(list.map(one));
          const sends = [];
          for (let i = 0; i < list.length; i += batch) {
            const texts = list.slice(i, i + batch).map((e) => e.toJSONString());
            sends.push(
              sql`select count(pg_notify(${channel}, p)) from unnest(${texts}::text[]) as t(p)`,
            );
          }
          return Promise.all(sends);
        },
        sendOne: one,
        close: () => sql.end(),
      };
    },
  };
}

/** Every Postgres row. */
export function postgresRows(): Promise<Row[]> {
  return remoteRows("postgres", ours, [raw(1), raw(100)]);
}
