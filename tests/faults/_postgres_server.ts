// A throwaway PostgreSQL for fault tests (never the shared one): initdb into
// a temporary folder once, then start the server on a free loopback port as
// often as needed, stop it, start it again on the same port and data
// folder, freeze it (SIGSTOP the postmaster and every backend) and thaw it.
// Everything is stopped by PID; the folder is removed by cluster.remove().
//
// When we are root the server runs as the `postgres` OS user (Deno.Command
// uid/gid: a setuid in the child, so the child's PID is the postmaster's).

/** Where PostgreSQL's server binaries are, or why they are not usable. */
export async function findPostgres(): Promise<
  { bindir: string } | { missing: string }
> {
  const candidates: string[] = [];
  try {
    const out = await new Deno.Command("pg_config", {
      args: ["--bindir"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (out.success) {
      candidates.push(new TextDecoder().decode(out.stdout).trim());
    }
  } catch {
    // No pg_config: try PATH below.
  }
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir) candidates.push(dir);
  }
  // Debian/Ubuntu keep the server binaries off PATH, one folder a version.
  try {
    const versions = [...Deno.readDirSync("/usr/lib/postgresql")]
      .map((e) => e.name).filter((n) => /^\d+$/.test(n))
      .sort((x, y) => Number(y) - Number(x));
    for (const v of versions) candidates.push(`/usr/lib/postgresql/${v}/bin`);
  } catch {
    // Not a Debian-style install.
  }
  for (const dir of candidates) {
    const has = (name: string) => {
      try {
        return Deno.statSync(`${dir}/${name}`).isFile;
      } catch {
        return false;
      }
    };
    if (has("initdb") && has("postgres") && has("psql")) return { bindir: dir };
  }
  return {
    missing:
      "initdb, postgres and psql were not found (pg_config --bindir, PATH)",
  };
}

interface Account {
  readonly uid: number;
  readonly gid: number;
}

// The `postgres` OS account when we are root (the server refuses to run as
// root), else undefined (run as ourselves).
function account(): Account | undefined {
  if (Deno.uid() !== 0) return undefined;
  const line = Deno.readTextFileSync("/etc/passwd").split("\n").find((l) =>
    l.startsWith("postgres:")
  );
  if (line === undefined) {
    throw new Error(
      "running as root, and there is no postgres OS user to run the server as",
    );
  }
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * PIDs whose parent is `parent`: from /proc, or from `ps` where Deno may not
 * read /proc (it wants --allow-all for that; `deno task test` gives the
 * permissions one by one).
 */
export function childrenOf(parent: number): number[] {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync("/proc")];
  } catch {
    const out = new Deno.Command("ps", {
      args: ["-o", "pid=", "--ppid", String(parent)],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    return new TextDecoder().decode(out.stdout).split("\n")
      .map((l) => Number(l.trim())).filter((pid) => pid > 0);
  }
  const pids: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === parent) pids.push(Number(entry.name));
    } catch {
      // The process went away meanwhile.
    }
  }
  return pids;
}

function signal(pid: number, sig: Deno.Signal): void {
  try {
    Deno.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

/** A data folder made by initdb; start() runs a server on it. */
export interface PostgresCluster {
  /** The data folder's parent (also the Unix socket folder). */
  readonly dir: string;
  /** The loopback port every server of this cluster uses. */
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:<port>/postgres`. */
  readonly url: string;
  /**
   * Starts the server and waits until it accepts connections; `args` are
   * more server options (`-c ssl=on`, …).
   */
  start(args?: string[]): Promise<PostgresServer>;
  /**
   * A copy of this cluster's running server (pg_basebackup, as a standby
   * of it: its start() does not stream from the server, so it lags from
   * the moment of the copy; `select pg_promote()` makes it a primary on a
   * new timeline), on a free port, in a folder inside this one.
   */
  backup(): Promise<PostgresCluster>;
  /** Removes the folder (stop every server first). */
  remove(): void;
}

/** A running server (its postmaster is our child process). */
export interface PostgresServer extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  /** The postmaster's PID (undefined while stopped). */
  readonly pid: number | undefined;
  /** Fast shutdown (SIGINT: backends are terminated), waits for the exit. */
  stop(): Promise<void>;
  /**
   * Immediate shutdown (SIGQUIT), waits for the exit: the next start
   * recovers from the WAL as after a crash, and empties unlogged tables.
   */
  crash(): Promise<void>;
  /** Starts it again, same port and data folder; waits until ready. */
  start(): Promise<void>;
  /** SIGSTOP the postmaster, then every process it started. */
  freeze(): void;
  /** SIGCONT them all. */
  thaw(): void;
  /** Runs SQL through psql (as the postgres role); resolves with its output. */
  psql(sql: string): Promise<string>;
}

/** initdb into a new temporary folder (about 1-2 s), on a free port. */
export async function initCluster(bindir: string): Promise<PostgresCluster> {
  const owner = account();
  const dir = await Deno.makeTempDir({ prefix: "dk-faults-pg-" });
  const data = `${dir}/data`;
  const port = freePort();
  const remove = () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // Already removed.
    }
  };
  try {
    if (owner) await Deno.chown(dir, owner.uid, owner.gid);
    const init = await new Deno.Command(`${bindir}/initdb`, {
      args: [
        "-D",
        data,
        "-U",
        "postgres",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
      ],
      ...(owner ?? {}),
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!init.success) {
      throw new Error(
        `initdb failed: ${new TextDecoder().decode(init.stderr).slice(-2000)}`,
      );
    }
  } catch (error) {
    remove();
    throw error;
  }
  return made(bindir, dir, data, port, owner, remove);
}

function made(
  bindir: string,
  dir: string,
  data: string,
  port: number,
  owner: Account | undefined,
  remove: () => void,
): PostgresCluster {
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let copies = 0;
  return {
    dir,
    port,
    url,
    remove,
    start: (args = []) =>
      startServer(bindir, dir, data, port, url, owner, args),
    backup: async () => {
      const copy = `${dir}/copy-${++copies}`;
      const out = await new Deno.Command(`${bindir}/pg_basebackup`, {
        args: ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres"]
          .concat(["-D", copy, "-X", "stream", "--no-sync"]),
        ...(owner ?? {}),
        stdout: "null",
        stderr: "piped",
      }).output();
      if (!out.success) {
        throw new Error(
          `pg_basebackup failed: ${new TextDecoder().decode(out.stderr)}`,
        );
      }
      // A standby of nothing: it replays what the copy holds, and waits.
      await Deno.writeTextFile(`${copy}/standby.signal`, "");
      if (owner) {
        await Deno.chown(`${copy}/standby.signal`, owner.uid, owner.gid);
      }
      return made(bindir, dir, copy, freePort(), owner, () => {});
    },
  };
}

async function startServer(
  bindir: string,
  dir: string,
  data: string,
  port: number,
  url: string,
  owner: Account | undefined,
  args: string[],
): Promise<PostgresServer> {
  let child: Deno.ChildProcess | undefined;
  let exited: Promise<Deno.CommandStatus> | undefined;
  let log = "";
  let logging: Promise<void> | undefined;
  let frozen: number[] = [];

  const start = async () => {
    if (child !== undefined) return;
    const proc = new Deno.Command(`${bindir}/postgres`, {
      args: [
        "-D",
        data,
        "-p",
        String(port),
        "-k",
        dir,
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=40",
        "-c",
        "shared_buffers=16MB",
        ...args,
      ],
      ...(owner ?? {}),
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    child = proc;
    exited = proc.status;
    // Keep the last few KiB of the log, for error messages.
    logging = proc.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({
        write(text) {
          log = (log + text).slice(-4000);
        },
      }),
    ).catch(() => {});
    // Ready when postmaster.pid says so (line 8, "ready"); at most 15 s.
    const gone = exited.then(() => "exited" as const);
    for (let i = 0; i < 750; i++) {
      try {
        const lines = (await Deno.readTextFile(`${data}/postmaster.pid`))
          .split("\n");
        if (
          Number(lines[0]) === proc.pid && lines[7]?.trim() === "ready"
        ) return;
      } catch {
        // Not written yet.
      }
      const outcome = await Promise.race([gone, sleep(20)]);
      if (outcome === "exited") break;
    }
    await stopChild();
    throw new Error(`PostgreSQL did not start on port ${port}:\n${log}`);
  };

  const stopChild = async (mode: "SIGINT" | "SIGQUIT" = "SIGINT") => {
    const proc = child;
    if (proc === undefined) return;
    thaw();
    signal(proc.pid, mode); // fast or immediate shutdown
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((r) => {
      timer = setTimeout(() => r("late"), 10_000);
    });
    if (await Promise.race([exited!, late]) === "late") {
      for (const pid of childrenOf(proc.pid)) signal(pid, "SIGKILL");
      signal(proc.pid, "SIGKILL");
      await exited;
    }
    clearTimeout(timer);
    await logging;
    child = undefined;
  };

  const freeze = () => {
    if (child === undefined) return;
    signal(child.pid, "SIGSTOP"); // first, so that it starts nothing new
    frozen = [child.pid, ...childrenOf(child.pid)];
    for (const pid of frozen.slice(1)) signal(pid, "SIGSTOP");
  };

  const thaw = () => {
    const pids = child === undefined ? frozen : [
      ...new Set([...frozen, child.pid, ...childrenOf(child.pid)]),
    ];
    for (const pid of pids) signal(pid, "SIGCONT");
    frozen = [];
  };

  const psql = async (sql: string) => {
    const out = await new Deno.Command(`${bindir}/psql`, {
      args: [
        "-X",
        "-A",
        "-t",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        "127.0.0.1",
        "-p",
        String(port),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-c",
        sql,
      ],
      env: { PGCONNECT_TIMEOUT: "5" },
      signal: AbortSignal.timeout(10_000), // SIGTERM if it hangs
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    if (!out.success) {
      throw new Error(
        `psql failed: ${new TextDecoder().decode(out.stderr)}${text}`,
      );
    }
    return text;
  };

  await start();
  return {
    url,
    port,
    get pid() {
      return child?.pid;
    },
    start,
    stop: () => stopChild(),
    crash: () => stopChild("SIGQUIT"),
    freeze,
    thaw,
    psql,
    [Symbol.asyncDispose]: () => stopChild(),
  };
}
