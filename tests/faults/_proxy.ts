// A loopback TCP proxy for fault tests: sits in front of a server and can
// stall, black-hole or drop the connections through it, or accept
// connections and never answer them.
//
// Modes of an open connection (setExisting):
// - "pass": bytes flow both ways.
// - "stall": nothing is forwarded either way, the sockets stay open (a
//   half-open connection); what arrives meanwhile is held, in order, and
//   forwarded once the connection is set back to "pass".
// - "blackhole": everything that arrives is swallowed, forever; the sockets
//   stay open until the proxy closes (or drop()).
// Modes of the connections accepted from now on (setNew): the three above,
// plus "silent" (accept, never dial the server, swallow everything: a server
// that never answers) and "drop" (accept and close at once).

/** What an open connection does with the bytes it gets. */
export type LinkMode = "pass" | "stall" | "blackhole";
/** What the proxy does with a connection it accepts. */
export type NewMode = LinkMode | "silent" | "drop";

/** A running proxy. */
export interface Proxy extends AsyncDisposable {
  /** The loopback port it listens on. */
  readonly port: number;
  /** How many connections it has accepted so far. */
  readonly accepted: number;
  /** How many connections are open now. */
  readonly open: number;
  /** Sets the mode of every connection open now. */
  setExisting(mode: LinkMode): void;
  /** Sets what happens to connections accepted from now on. */
  setNew(mode: NewMode): void;
  /** Closes every open connection, both sides. */
  drop(): Promise<void>;
  /** Stops listening and closes everything; idempotent. */
  close(): Promise<void>;
}

/** Where the proxy forwards to; null for a proxy that only ever is "silent". */
export interface Target {
  readonly hostname: string;
  readonly port: number;
}

/** At most this many bytes are held per direction of a stalled connection. */
const HOLD_LIMIT = 32 * 1024 * 1024;

type Direction = "up" | "down"; // up: client → server; down: server → client

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let written = 0;
  // Bounded: every write makes progress (at least one byte) or throws.
  while (written < data.length) {
    const n = await conn.write(data.subarray(written));
    if (n <= 0) throw new Error("write made no progress");
    written += n;
  }
}

/** One accepted client and (unless silent) its connection to the server. */
class Link {
  mode: LinkMode;
  readonly client: Deno.Conn;
  readonly server: Deno.Conn | undefined;
  closed = false;
  readonly #held: Record<Direction, Uint8Array[]> = { up: [], down: [] };
  readonly #heldBytes: Record<Direction, number> = { up: 0, down: 0 };
  readonly #ended: Record<Direction, boolean> = { up: false, down: false };
  readonly #writes: Record<Direction, Promise<void>> = {
    up: Promise.resolve(),
    down: Promise.resolve(),
  };
  /** Resolved whenever the mode changes (a full stall buffer waits on it). */
  #modeChanged = Promise.withResolvers<void>();
  readonly done: Promise<void>;
  readonly #onClose: (link: Link) => void;

  constructor(
    client: Deno.Conn,
    server: Deno.Conn | undefined,
    mode: LinkMode,
    onClose: (link: Link) => void,
  ) {
    this.client = client;
    this.server = server;
    this.mode = mode;
    this.#onClose = onClose;
    const pumps = [this.#pump("up")];
    if (server !== undefined) pumps.push(this.#pump("down"));
    this.done = Promise.all(pumps).then(() =>
      Promise.all([this.#writes.up, this.#writes.down])
    ).then(() => {});
  }

  setMode(mode: LinkMode): void {
    if (this.closed || mode === this.mode) return;
    const was = this.mode;
    this.mode = mode;
    const changed = this.#modeChanged;
    this.#modeChanged = Promise.withResolvers<void>();
    changed.resolve();
    if (was === "stall" && mode === "pass") {
      // Forward what was held, in order, before anything newer.
      for (const dir of ["up", "down"] as const) {
        for (const chunk of this.#held[dir]) this.#forward(dir, chunk);
        this.#held[dir] = [];
        this.#heldBytes[dir] = 0;
        if (this.#ended[dir]) {
          this.#writes[dir] = this.#writes[dir].then(() => this.close());
        }
      }
    }
    if (mode === "blackhole") {
      for (const dir of ["up", "down"] as const) {
        this.#held[dir] = [];
        this.#heldBytes[dir] = 0;
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#modeChanged.resolve();
    for (const conn of [this.client, this.server]) {
      try {
        conn?.close();
      } catch {
        // Already closed.
      }
    }
    this.#onClose(this);
  }

  #forward(dir: Direction, chunk: Uint8Array): Promise<void> {
    const to = dir === "up" ? this.server : this.client;
    this.#writes[dir] = this.#writes[dir].then(async () => {
      if (this.closed || to === undefined) return;
      try {
        await writeAll(to, chunk);
      } catch {
        this.close();
      }
    });
    return this.#writes[dir];
  }

  async #pump(dir: Direction): Promise<void> {
    const from = dir === "up" ? this.client : this.server!;
    const buffer = new Uint8Array(64 * 1024);
    while (!this.closed) {
      if (this.mode === "stall" && this.#heldBytes[dir] >= HOLD_LIMIT) {
        await this.#modeChanged.promise; // stop reading: TCP backpressure
        continue;
      }
      let n: number | null;
      try {
        n = await from.read(buffer);
      } catch {
        n = null;
      }
      if (this.closed) return;
      if (n === null) {
        // The peer on this side went away. Passing: close both sides.
        // Stalled or black-holed: the other side never learns (half-open)
        // until the stall ends or the proxy closes. A silent link has no
        // other side.
        this.#ended[dir] = true;
        if (this.mode === "pass" || this.server === undefined) {
          await this.#writes[dir];
          this.close();
        }
        return;
      }
      const chunk = buffer.slice(0, n);
      if (this.mode === "pass") {
        await this.#forward(dir, chunk);
      } else if (this.mode === "stall") {
        this.#held[dir].push(chunk);
        this.#heldBytes[dir] += n;
      } // blackhole: swallowed
    }
  }
}

/**
 * Starts a proxy on a free loopback port in front of `target` (null: every
 * connection is "silent"). New connections start in `newMode` ("pass").
 */
export function startProxy(
  target: Target | null,
  newMode: NewMode = target === null ? "silent" : "pass",
): Proxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const links = new Set<Link>();
  const linkDone = new Set<Promise<void>>();
  const handling = new Set<Promise<void>>();
  let mode: NewMode = newMode;
  let accepted = 0;
  let closing: Promise<void> | undefined;

  const handle = async (client: Deno.TcpConn): Promise<void> => {
    const how = mode;
    if (how === "drop" || closing !== undefined) {
      client.close();
      return;
    }
    let server: Deno.TcpConn | undefined;
    if (how !== "silent") {
      if (target === null) {
        client.close();
        return;
      }
      try {
        server = await Deno.connect({
          hostname: target.hostname,
          port: target.port,
        });
      } catch {
        client.close();
        return;
      }
      if (closing !== undefined) {
        client.close();
        server.close();
        return;
      }
    }
    for (const conn of [client, server]) {
      try {
        conn?.setNoDelay(true);
      } catch {
        // Not a TCP connection; ignore.
      }
    }
    const link = new Link(
      client,
      server,
      how === "silent" ? "blackhole" : how,
      (l) => links.delete(l),
    );
    links.add(link);
    const done = link.done.catch(() => {});
    linkDone.add(done);
    void done.then(() => linkDone.delete(done));
  };

  const accepting = (async () => {
    while (true) {
      let client: Deno.TcpConn;
      try {
        client = await listener.accept();
      } catch {
        return; // the listener was closed
      }
      accepted++;
      const h = handle(client).catch(() => {});
      handling.add(h);
      void h.then(() => handling.delete(h));
    }
  })();

  const drop = async () => {
    for (const link of [...links]) link.close();
    await Promise.all([...linkDone]);
  };

  const close = () =>
    closing ??= (async () => {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      await accepting;
      await Promise.all([...handling]);
      await drop();
    })();

  return {
    port,
    get accepted() {
      return accepted;
    },
    get open() {
      return links.size;
    },
    setExisting(linkMode: LinkMode) {
      for (const link of links) link.setMode(linkMode);
    },
    setNew(next: NewMode) {
      mode = next;
    },
    drop,
    close,
    [Symbol.asyncDispose]: close,
  };
}
