// Fault injection on the PostgreSQL backend: scenarios a. to g. of
// _suite.ts, each on a throwaway server (never the shared one): one initdb
// for this file, a server started per scenario on its data folder. Needs
// PostgreSQL's server binaries (initdb, postgres, psql); without them the
// tests skip with one line (with CI set they fail instead).

import {
  findPostgres,
  initCluster,
  type PostgresCluster,
} from "./_postgres_server.ts";
import type { FaultServer } from "./_scenario.ts";
import { faultSuite } from "./_suite.ts";

const found = await findPostgres();
let cluster: PostgresCluster | undefined;
if ("missing" in found) {
  if (Deno.env.get("CI")) {
    throw new Error(
      `${found.missing}; CI is set, so the PostgreSQL fault tests fail`,
    );
  }
  console.warn(`Skipping the PostgreSQL fault tests: ${found.missing}`);
} else {
  cluster = await initCluster(found.bindir);
  const made = cluster;
  globalThis.addEventListener("unload", () => made.remove());
}

const urlAt = (port: number) =>
  `postgres://postgres@127.0.0.1:${port}/postgres`;

// The listener is named dataknobs-events-listener; the publishing pool
// dataknobs-events (or dataknobs-events-publisher, after the rename).
const LISTENER = "application_name = 'dataknobs-events-listener'";
const PUBLISHER =
  "application_name like 'dataknobs-events%' and application_name <> 'dataknobs-events-listener'";

async function server(): Promise<FaultServer> {
  const pg = await cluster!.start();
  const terminate = async (where: string) =>
    Number(
      (await pg.psql(
        `select count(*) filter (where pg_terminate_backend(pid)) from pg_stat_activity where ${where}`,
      )).trim(),
    );
  return {
    url: pg.url,
    port: pg.port,
    urlAt,
    killSubscriber: () => terminate(LISTENER),
    killPublisher: () => terminate(PUBLISHER),
    stop: () => pg.stop(),
    start: () => pg.start(),
    freeze: () => pg.freeze(),
    thaw: () => pg.thaw(),
    [Symbol.asyncDispose]: () => pg.stop(),
  };
}

faultSuite("postgres", { ignore: cluster === undefined, server, urlAt });
