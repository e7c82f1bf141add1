// The fault proxy itself, against an in-process echo server: that each
// mode does what the fault scenarios rely on.

import assert from "node:assert/strict";
import { startProxy } from "./_proxy.ts";

/** An echo server on a free loopback port. */
function echoServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const pipes: Promise<void>[] = [];
  let accepted = 0;
  const accepting = (async () => {
    for await (const conn of listener) {
      accepted++;
      conns.add(conn);
      pipes.push((async () => {
        const buffer = new Uint8Array(1024);
        try {
          // Bounded: ends when the connection does.
          while (true) {
            const n = await conn.read(buffer);
            if (n === null) break;
            await conn.write(buffer.subarray(0, n));
          }
        } catch {
          // Closed.
        }
        conns.delete(conn);
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      })());
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get accepted() {
      return accepted;
    },
    async close() {
      listener.close();
      await accepting;
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
      await Promise.all(pipes);
    },
  };
}

/** A client that keeps one read pending, so a read may outlive a wait. */
class Client {
  readonly conn: Deno.Conn;
  #pending: Promise<string | null> | undefined;

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  static async open(port: number): Promise<Client> {
    return new Client(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async send(text: string): Promise<void> {
    await this.conn.write(new TextEncoder().encode(text));
  }

  /** What arrives next, or "(nothing)" if nothing does within `ms`. */
  async next(ms: number): Promise<string | null> {
    this.#pending ??= (async () => {
      const buffer = new Uint8Array(1024);
      try {
        const n = await this.conn.read(buffer);
        return n === null
          ? null
          : new TextDecoder().decode(buffer.subarray(0, n));
      } catch {
        return null;
      }
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const result = await Promise.race([
      this.#pending,
      new Promise<"(nothing)">((r) => {
        timer = setTimeout(() => r("(nothing)"), ms);
      }),
    ]);
    clearTimeout(timer);
    if (result !== "(nothing)") this.#pending = undefined;
    return result;
  }

  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
    await this.#pending;
  }
}

Deno.test("fault proxy: pass, stall then resume in order, black hole, silent, drop", async () => {
  const echo = echoServer();
  const proxy = startProxy({ hostname: "127.0.0.1", port: echo.port });
  const clients: Client[] = [];
  const open = async () => {
    const client = await Client.open(proxy.port);
    clients.push(client);
    return client;
  };
  try {
    const a = await open();
    await a.send("one");
    assert.equal(await a.next(2000), "one");

    // Stalled: nothing either way; on resume, what was held, in order.
    proxy.setExisting("stall");
    await a.send("two");
    assert.equal(await a.next(200), "(nothing)");
    await a.send("three");
    const b = await open(); // new connections still pass
    await b.send("new");
    assert.equal(await b.next(2000), "new");
    b.conn.close(); // before the stall ends: b's server side closes with it
    proxy.setExisting("pass");
    let got = "";
    for (let i = 0; i < 10 && got.length < "twothree".length; i++) {
      got += (await a.next(2000)) ?? "";
    }
    assert.equal(got, "twothree");

    // Black hole: swallowed for good, sockets open; new connections pass.
    proxy.setExisting("blackhole");
    await a.send("lost");
    assert.equal(await a.next(300), "(nothing)");
    const c = await open();
    await c.send("fresh");
    assert.equal(await c.next(2000), "fresh");

    // Silent: accepted, never answered, never forwarded.
    proxy.setNew("silent");
    const before = echo.accepted;
    const d = await open();
    await d.send("hello?");
    assert.equal(await d.next(300), "(nothing)");
    assert.equal(echo.accepted, before);

    // Drop (new): accepted and closed at once.
    proxy.setNew("drop");
    const e = await open();
    assert.equal(await e.next(2000), null);

    // drop(): every open connection is closed.
    await proxy.drop();
    assert.equal(await c.next(2000), null);
    assert.equal(proxy.open, 0);
  } finally {
    for (const client of clients) await client.close();
    await proxy.close();
    await echo.close();
  }
});
