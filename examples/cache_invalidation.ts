// The seed's registry pattern, across two processes: this process updates a
// bot's config in PostgreSQL and publishes `registry:bots` `updated`; a
// second process (this file run with "cache") keeps a cache of configs and
// evicts an entry when the event says it changed.
// `deno run -A examples/cache_invalidation.ts` (DATABASE_URL).
import postgres from "postgres";
import { createEventBus, Event, EventType } from "../mod.ts";

const url = Deno.env.get("DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";
const sql = postgres(url, { onnotice: () => {} });
const bus = createEventBus({ backend: "postgres", connection_string: url });
await bus.connect();
const botId = Deno.args[1] ?? `bot-${crypto.randomUUID().slice(0, 6)}`;

async function load(id: string): Promise<unknown> {
  const [row] = await sql`select config from example_bots where id = ${id}`;
  return row?.config;
}

if (Deno.args[0] === "cache") {
  // The cache process.
  const cache = new Map<string, unknown>();
  const get = async (id: string) => {
    if (!cache.has(id)) cache.set(id, await load(id));
    return cache.get(id);
  };
  console.log(`cache: ${botId} = ${JSON.stringify(await get(botId))}`);
  const evicted = Promise.withResolvers<void>();
  await bus.subscribe("registry:bots", (event) => {
    if (
      event.type === EventType.UPDATED &&
      cache.delete(String(event.payload.bot_id))
    ) evicted.resolve();
  });
  console.log("ready");
  await evicted.promise;
  console.log(
    `cache: evicted ${botId}; reloaded ${JSON.stringify(await get(botId))}`,
  );
} else {
  // The updating process.
  await sql`create table if not exists example_bots (id text primary key, config jsonb not null)`;
  await sql`insert into example_bots values (${botId}, ${
    sql.json({ model: "small" })
  })`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "cache", botId],
    stdout: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("ready")) text += (await lines.read()).value ?? "";
  await sql`update example_bots set config = ${
    sql.json({ model: "large" })
  } where id = ${botId}`;
  await bus.publish(
    "registry:bots",
    new Event({
      type: EventType.UPDATED,
      topic: "registry:bots",
      payload: { bot_id: botId },
    }),
  );
  console.log(
    `updater: ${botId} now uses the large model; published registry:bots updated`,
  );
  for (
    let chunk = await lines.read();
    !chunk.done;
    chunk = await lines.read()
  ) text += chunk.value;
  console.log(text.trim());
  if ((await child.status).code !== 0) {
    throw new Error("the cache process failed");
  }
  await sql`delete from example_bots where id = ${botId}`;
}
await bus.close();
await sql.end();
