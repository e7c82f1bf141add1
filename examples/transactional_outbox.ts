// Publish inside a transaction: the event is delivered if and only if the
// transaction commits. `deno run -A examples/transactional_outbox.ts` (DATABASE_URL).
import postgres from "postgres";
import { Event, EventType } from "../mod.ts";
import { PostgresEventBus } from "../postgres.ts";

const url = Deno.env.get("DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";
const sql = postgres(url, { onnotice: () => {} });
await sql`create table if not exists example_orders (id text primary key, total numeric not null)`;

const bus = new PostgresEventBus({ connectionString: url });
await bus.connect();
const seen: string[] = [];
await bus.subscribe(
  "orders",
  (event) => void seen.push(String(event.payload.id)),
);

async function placeOrder(id: string, total: number, fail: boolean) {
  try {
    await sql.begin(async (tx) => {
      await tx`insert into example_orders ${
        tx({ id, total })
      } on conflict (id) do update set total = excluded.total`;
      await bus.publish(
        "orders",
        new Event({
          type: EventType.CREATED,
          topic: "orders",
          payload: { id, total },
        }),
        { sql: tx },
      );
      if (fail) throw new Error("payment declined");
    });
    console.log(`order ${id}: committed`);
  } catch (error) {
    console.log(`order ${id}: rolled back (${(error as Error).message})`);
  }
}

const id = crypto.randomUUID().slice(0, 8);
await placeOrder(`${id}-a`, 10, false);
await placeOrder(`${id}-b`, 20, true);
// A marker published after both: when it arrives, everything before it has.
const marker = Promise.withResolvers<void>();
await bus.subscribe("orders:done", () => marker.resolve());
await bus.publish(
  "orders:done",
  new Event({ type: EventType.CUSTOM, topic: "orders:done" }),
);
await marker.promise;
console.log(`events received for: ${seen.map((s) => s.slice(9)).join(", ")}`);
await bus.close();
await sql`delete from example_orders where id like ${id + "%"}`;
await sql.end();
