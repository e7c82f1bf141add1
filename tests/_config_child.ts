// A bus made from a config dict in a process of its own (so that its
// environment and permissions are the test's to choose):
// `deno run [perms] tests/_config_child.ts '<config JSON>' <topic>`.
// Prints `ok <String(bus)>` after one event went through it, or the error.
import { createEventBus, Event } from "../mod.ts";

const [config, topic] = Deno.args as [string, string];
try {
  const bus = createEventBus(JSON.parse(config));
  await bus.connect();
  const got = Promise.withResolvers<void>();
  await bus.subscribe(topic, () => got.resolve());
  await bus.publish(topic, new Event({ type: "created", topic }));
  await got.promise;
  await bus.close();
  console.log(`ok ${bus}`);
} catch (error) {
  console.log(`${(error as Error).name}: ${(error as Error).message}`);
}
