// RedisEventBus against raw ioredis pub/sub with the same JSON bodies.
import { Redis } from "ioredis";
import { RedisEventBus } from "../redis.ts";
import type { Row } from "./_measure.ts";
import { busEndpoint, type Endpoint, remoteRows } from "./_remote.ts";

const URL_ = Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379";

const ours = busEndpoint(
  "RedisEventBus",
  () => new RedisEventBus({ url: URL_ }),
);

const raw: Endpoint = {
  name: "raw ioredis (auto-pipelining)",
  async open(topic, subscribers, onEvent) {
    const pub = new Redis(URL_, {
      enableAutoPipelining: true,
      lazyConnect: true,
    });
    const sub = new Redis(URL_, { lazyConnect: true });
    await Promise.all([pub.connect(), sub.connect()]);
    const channel = `events:${topic}`;
    await sub.subscribe(channel);
    sub.on("message", (_c: string, text: string) => {
      JSON.parse(text);
      for (let i = 0; i < subscribers; i++) onEvent();
    });
    return {
      sendAll: (list) =>
        Promise.all(list.map((e) => pub.publish(channel, e.toJSONString()))),
      sendOne: (event) => pub.publish(channel, event.toJSONString()),
      close: async () => void await Promise.all([pub.quit(), sub.quit()]),
    };
  },
};

/** Every Redis row. */
export function redisRows(): Promise<Row[]> {
  return remoteRows("redis", ours, [raw]);
}
