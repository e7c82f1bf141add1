// The fault scenarios, once for every remote backend: each test file gives
// its throwaway server (FaultServer) and this registers the tests.

import { startProxy } from "./_proxy.ts";
import { runRestart } from "./_restart.ts";
import {
  type Backend,
  type BusSpec,
  checkDownBurst,
  DOWN_MS,
  type FaultContext,
  type FaultServer,
  FREEZE_MS,
  HALF_OPEN_RECOVERY_BOUND_MS,
  oneBus,
  runSilentConnect,
  runStream,
  sleep,
  STALL_MS,
  twoBuses,
} from "./_scenario.ts";

export interface SuiteSetup {
  /** Skip every test (the server binaries are missing and CI is not set). */
  readonly ignore: boolean;
  /**
   * Starts a fresh throwaway server; `persistent`: one that keeps its data
   * across a restart (Redis: append-only file, fsync always).
   */
  server(persistent?: boolean): Promise<FaultServer>;
  /** A bus URL for a server at this loopback port. */
  urlAt(port: number): string;
}

/** Registers the fault scenarios a. to g. for `backend`. */
export function faultSuite(backend: Backend, setup: SuiteSetup): void {
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test({ name: `${backend} faults: ${name}`, ignore: setup.ignore, fn });
  const proxyTo = (server: FaultServer) =>
    startProxy({ hostname: "127.0.0.1", port: server.port });

  test("a. subscriber connection killed", async () => {
    await using server = await setup.server();
    await runStream({
      name: "a. subscriber connection killed",
      backend,
      buses: oneBus(server.url),
      fault: async (ctx) => {
        // Events in flight when the connection dies, and just after: the
        // gap must start before them (when the connection was last proven
        // live), not when the bus noticed.
        await ctx.rush(200);
        const killed = await server.killSubscriber();
        await ctx.rush(200);
        ctx.note("killed", killed);
        ctx.check(killed >= 1, "found no subscriber connection to kill");
      },
    });
  });

  test("b. publisher connection killed", async () => {
    await using server = await setup.server();
    await runStream({
      name: "b. publisher connection killed",
      backend,
      buses: oneBus(server.url),
      fault: async (ctx) => {
        // Publishes in flight when the connection dies must settle too.
        await ctx.rush(200);
        const killed = await server.killPublisher();
        await ctx.rush(200);
        ctx.note("killed", killed);
        ctx.check(killed >= 1, "found no publishing connection to kill");
      },
    });
  });

  const restart = async (server: FaultServer) => {
    await server.stop();
    await sleep(DOWN_MS);
    await server.start();
  };

  test("c1. server restarted, one bus publishing and subscribing", async () => {
    await using server = await setup.server();
    await runStream({
      name: "c1. server restarted (one bus)",
      backend,
      buses: oneBus(server.url),
      fault: () => restart(server),
    });
  });

  test("c2. server restarted, separate publisher and subscriber buses", async () => {
    await using server = await setup.server();
    await runStream({
      name: "c2. server restarted (two buses)",
      backend,
      buses: twoBuses(server.url, server.url),
      fault: () => restart(server),
    });
  });

  test("d. server SIGSTOPped (whole server, past the heartbeat and the publish deadline), then SIGCONT", async () => {
    await using server = await setup.server();
    await runStream({
      name: `d. server SIGSTOP ${FREEZE_MS} ms`,
      backend,
      buses: oneBus(server.url),
      fault: async () => {
        server.freeze();
        try {
          await sleep(FREEZE_MS);
        } finally {
          server.thaw();
        }
      },
    });
  });

  // e1, also with history: then nothing may be lost and no gap reported.
  const halfOpenSubscriber = (history: boolean) => async () => {
    await using server = await setup.server(history);
    await using proxy = proxyTo(server);
    await runStream({
      name: `e1. half-open subscriber (stall, resume)${
        history ? " (history)" : ""
      }`,
      backend,
      history,
      // The publisher bus is direct; the subscriber bus goes through the
      // proxy (with history, its reads of the log too).
      buses: twoBuses(server.url, setup.urlAt(proxy.port)),
      recoveryBoundMs: HALF_OPEN_RECOVERY_BOUND_MS,
      fault: async (ctx) => {
        const before = proxy.accepted;
        ctx.check(proxy.open >= 1, "no connection goes through the proxy");
        ctx.note("proxied", proxy.open);
        proxy.setExisting("stall"); // new connections pass
        await ctx.faultEnded();
        await sleep(STALL_MS);
        ctx.note("newConnections", proxy.accepted - before);
        proxy.setExisting("pass");
      },
    });
  };
  test(
    "e1. half-open subscriber: its bus's connections stalled, then resumed",
    halfOpenSubscriber(false),
  );
  test(
    "e1. half-open subscriber, with history: nothing lost, no gap",
    halfOpenSubscriber(true),
  );

  // e2, also with history.
  const halfOpenBus = (history: boolean) => async () => {
    await using server = await setup.server(history);
    await using proxy = proxyTo(server);
    await runStream({
      name: `e2. half-open bus (black hole)${history ? " (history)" : ""}`,
      backend,
      history,
      buses: oneBus(setup.urlAt(proxy.port)),
      recoveryBoundMs: HALF_OPEN_RECOVERY_BOUND_MS,
      fault: async (ctx) => {
        ctx.check(proxy.open >= 1, "no connection goes through the proxy");
        ctx.note("proxied", proxy.open);
        proxy.setExisting("blackhole"); // for good; new connections pass
        await ctx.faultEnded();
      },
    });
  };
  test(
    "e2. half-open bus: every connection of a publishing and subscribing bus black-holed",
    halfOpenBus(false),
  );
  test(
    "e2. half-open bus, with history: nothing lost, no gap",
    halfOpenBus(true),
  );

  test("h. stalled publishing path that resumes after the bus moved on: nothing arrives late", async () => {
    await using server = await setup.server();
    await using proxy = proxyTo(server);
    await runStream({
      name: "h. stalled publisher, held bytes delivered later",
      backend,
      // The publisher bus goes through the proxy; the subscriber bus is direct.
      buses: twoBuses(setup.urlAt(proxy.port), server.url),
      recoveryBoundMs: HALF_OPEN_RECOVERY_BOUND_MS,
      fault: async (ctx) => {
        ctx.check(proxy.open >= 1, "no connection goes through the proxy");
        proxy.setExisting("stall"); // new connections pass
        await ctx.faultEnded();
        await sleep(STALL_MS);
        // What the old connection sent reaches the server only now, after
        // newer events went through its replacement: unless the old session
        // was fenced off, it would be published out of order.
        proxy.setExisting("pass");
      },
    });
  });

  // With history, the same faults lose nothing and report no gap.
  const withHistory = (
    name: string,
    buses: (server: FaultServer) => BusSpec[],
    fault: (server: FaultServer, ctx: FaultContext) => Promise<void>,
  ) =>
    test(`${name}, with history: nothing lost, no gap`, async () => {
      await using server = await setup.server(true);
      await runStream({
        name: `${name} (history)`,
        backend,
        history: true,
        buses: buses(server),
        fault: (ctx) => fault(server, ctx),
      });
    });
  withHistory(
    "a. subscriber connection killed",
    (server) => oneBus(server.url),
    async (server, ctx) => {
      await ctx.rush(200);
      ctx.check(await server.killSubscriber() >= 1, "no subscriber killed");
      await ctx.rush(200);
    },
  );
  withHistory(
    "b. publisher connection killed",
    (server) => oneBus(server.url),
    async (server, ctx) => {
      await ctx.rush(200);
      ctx.check(await server.killPublisher() >= 1, "no publisher killed");
      await ctx.rush(200);
    },
  );
  withHistory(
    "c2. server restarted (two buses)",
    (server) => twoBuses(server.url, server.url),
    (server) => restart(server),
  );

  test("r. process restart with history: SIGKILLed mid-stream, a new process resumes from the last saved position, nothing lost", async () => {
    await using server = await setup.server(true);
    await runRestart(backend, server.url);
  });

  test("f. server that never answers: connect() times out, abort and close() settle promptly", async () => {
    await using proxy = startProxy(null); // accepts, never answers
    await runSilentConnect(
      "f. server never answers at connect",
      backend,
      setup.urlAt(proxy.port),
    );
  });

  test("g. publish while the server is down rejects at once; the bus recovers", async () => {
    await using server = await setup.server();
    await runStream({
      name: "g. publish while down",
      backend,
      buses: oneBus(server.url),
      fault: async (ctx) => {
        await server.stop();
        try {
          // Only once the bus knows (the timeline shows when it did).
          await ctx.waitState("bus", "reconnecting", 5000);
          checkDownBurst(ctx, await ctx.burst(20, 5));
        } finally {
          await server.start();
        }
      },
    });
  });
}
