// A backend of your own, registered by name and typed for createEventBus:
// declaration merging adds its name and keys to CustomBackends, so its
// configs are checked like the built-in ones (a typo of a name or a key
// does not compile). `deno run examples/custom_backend.ts`.
import {
  createEventBus,
  type CustomConfig,
  Event,
  InMemoryEventBus,
  registerBackend,
} from "../mod.ts";

// In a published package: declare module "@dataknobs/events" { … }.
declare module "../mod.ts" {
  interface CustomBackends {
    "loopback-region": { readonly region: string };
  }
}

registerBackend("loopback-region", (config, options) => {
  if (typeof config.region !== "string") {
    throw new TypeError('Invalid loopback-region config: "region" is required');
  }
  return new InMemoryEventBus(options);
});

// Typed: `{ backend: "loopbak-region" }` or a key `regoin` would not compile.
const config: CustomConfig = { backend: "loopback-region", region: "eu" };
const bus = createEventBus(config);
await bus.connect();
await bus.subscribe("t", (event) => console.log(event.payload.region));
await bus.publish(
  "t",
  new Event({
    type: "created",
    topic: "t",
    payload: { region: config.region },
  }),
);
await bus.close();
