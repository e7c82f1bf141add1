// TLS on both remote backends, against real servers made here: a
// redis-server with a TLS port (and one that requires client
// certificates) and a PostgreSQL cluster with ssl=on, each with
// certificates this file makes with openssl (a CA; a server certificate
// for IP:127.0.0.1 and DNS:localhost; a client certificate). Every server
// is throwaway, on a free loopback port, and stopped by PID at the end.
import assert from "node:assert/strict";
import { createEventBus, type EventBus, EventBusError } from "../mod.ts";
import { PostgresEventBus } from "../postgres.ts";
import { RedisEventBus, type RedisEventBusOptions } from "../redis.ts";
import { Inbox, makeEvent, uniqueTopic } from "./conformance.ts";
import { startRedis } from "./_redis_server.ts";
import { type Certs, freePort, makeCerts, silentServer } from "./_tls.ts";
import { findPostgres, initCluster } from "./faults/_postgres_server.ts";

async function has(command: string, ...args: string[]): Promise<boolean> {
  try {
    const out = await new Deno.Command(command, {
      args,
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

const haveOpenssl = await has("openssl", "version");
const haveRedis = haveOpenssl && await has("redis-server", "--version");
const postgres = haveOpenssl ? await findPostgres() : { missing: "openssl" };
for (
  const [name, missing] of [
    ["openssl", !haveOpenssl],
    ["redis-server", !haveRedis],
    ["PostgreSQL", "missing" in postgres],
  ] as const
) {
  if (!missing) continue;
  const why = `Skipping TLS tests that need ${name}: not installed`;
  if (Deno.env.get("CI")) throw new Error(`${why}; CI is set`);
  console.warn(why);
}

// Fake PEM text for the option checks (nothing connects); the key's body
// is a marker that must never be shown.
const KEY_BODY = `SECRETKEYBODY${crypto.randomUUID().replaceAll("-", "")}`;
const pem = (kind: string, body = "MIIBfake") =>
  `-----BEGIN ${kind}-----\n${body}\n-----END ${kind}-----\n`;
const CERT = pem("CERTIFICATE");
const KEY = pem("PRIVATE KEY", KEY_BODY);

/** What an error shows, however deep one looks. */
const everything = (value: unknown) =>
  Deno.inspect(value, { depth: Infinity, showHidden: true });

const typeError = (text: RegExp) => (e: unknown) =>
  e instanceof TypeError && text.test(e.message) &&
  !e.message.includes(KEY_BODY);

/** Publishes one event to itself and receives it; closes the bus. */
async function roundTrip(bus: EventBus): Promise<void> {
  try {
    await bus.connect();
    const topic = uniqueTopic("tls");
    const inbox = new Inbox();
    await bus.subscribe(topic, inbox.handler);
    await bus.publish(topic, makeEvent(topic, { n: 1 }));
    assert.deepEqual((await inbox.until(1, 5000)).map((e) => e.payload.n), [
      1,
    ]);
  } finally {
    await bus.close();
  }
}

/**
 * connect() must reject CONNECTION_FAILED matching `text`, showing none of
 * `secrets` (message, cause chain, String(bus)); resolves with the time it
 * took.
 */
async function refused(
  bus: EventBus,
  text: RegExp,
  secrets: string[] = [],
): Promise<number> {
  const started = Date.now();
  try {
    await bus.connect();
    assert.fail(`connected to ${bus}`);
  } catch (error) {
    assert.ok(
      error instanceof EventBusError && error.code === "CONNECTION_FAILED",
      everything(error),
    );
    assert.match(error.message, text);
    const shown = everything(error) + String(bus) + everything(bus);
    for (const secret of secrets) {
      assert.ok(!shown.includes(secret), `a secret shows in ${shown}`);
    }
  } finally {
    await bus.close();
  }
  return Date.now() - started;
}

/** {@linkcode refused}, for a test step. */
const fails = async (...args: Parameters<typeof refused>): Promise<void> => {
  await refused(...args);
};

// The base64 body of a PEM key: what must never be shown.
const keyBody = (key: string) => key.split("\n").slice(1, -2).join("\n");

Deno.test("TLS options: bad ones are TypeErrors naming the setting, never echoing a key", () => {
  const redis = (tls: unknown, more: Partial<RedisEventBusOptions> = {}) =>
    new RedisEventBus({ host: "cache.example.com", tls, ...more } as never);
  assert.throws(() => redis("yes"), typeError(/tls must be true or false/));
  assert.throws(() => redis([]), typeError(/tls must be true or false/));
  assert.throws(
    () => redis({ ca: "/etc/ssl/ca.pem" }),
    typeError(/tls\.ca must be PEM text .*looks like a file path/),
  );
  assert.throws(() => redis({ ca: [] }), typeError(/tls\.ca must not be/));
  assert.throws(
    () => redis({ ca: [CERT, 7] }),
    typeError(/tls\.ca\[1\] must be PEM text/),
  );
  assert.throws(
    () => redis({ cert: CERT }),
    typeError(/tls\.cert needs tls\.key/),
  );
  assert.throws(
    () => redis({ key: KEY }),
    typeError(/tls\.key needs tls\.cert/),
  );
  assert.throws(
    () => redis({ cert: CERT, key: CERT }),
    typeError(/tls\.key must be PEM text of a private key/),
  );
  assert.throws(
    () => redis({ cert: KEY, key: KEY }),
    typeError(/tls\.cert must be PEM text of a certificate/),
  );
  assert.throws(
    () => redis({ cert: CERT, key: pem("ENCRYPTED PRIVATE KEY", KEY_BODY) }),
    typeError(/tls\.key is an encrypted private key/),
  );
  assert.throws(
    () => redis({ servername: "10.0.0.1" }),
    typeError(/tls\.servername must be a DNS name, not an IP address/),
  );
  assert.throws(
    () => redis({ servername: "::1" }),
    typeError(/not an IP address/),
  );
  assert.throws(
    () => redis({ servername: "" }),
    typeError(/tls\.servername must be a non-empty string/),
  );
  assert.throws(
    () => redis({ rejectUnauthorized: "no" }),
    typeError(/tls\.rejectUnauthorized must be true or false/),
  );
  assert.throws(
    () => redis({ rejectUnauthorised: false }),
    typeError(/tls has an unknown setting "rejectUnauthorised"/),
  );
  // A downgrade is never silent.
  assert.throws(
    () => new RedisEventBus({ url: "rediss://h:6380", tls: false }),
    typeError(/tls .* is false but url is rediss:\/\//),
  );
  // The key is kept, but never shown.
  const bus = redis({ ca: CERT, cert: CERT, key: KEY });
  assert.equal(
    String(bus),
    "RedisEventBus(rediss://cache.example.com:6379/0, idle)",
  );
  assert.ok(!everything(bus).includes(KEY_BODY));
  const pg = (url: string, tls?: unknown) => () =>
    new PostgresEventBus({ connectionString: url, tls } as never);
  assert.throws(
    pg("postgres://h/db", { cert: CERT }),
    typeError(/tls\.cert needs tls\.key/),
  );
  assert.ok(
    !everything(
      new PostgresEventBus({
        connectionString: "postgres://h/db",
        tls: { cert: CERT, key: KEY },
      }),
    ).includes(KEY_BODY),
  );
});

Deno.test("TLS options: sslmode and tls combine (stronger wins), contradictions and libpq file settings are refused", () => {
  const pg = (url: string, tls?: unknown) => () =>
    new PostgresEventBus({ connectionString: url, tls } as never);
  const ok = (url: string, tls?: unknown) => assert.doesNotThrow(pg(url, tls));
  for (
    const mode of [
      "disable",
      "allow",
      "prefer",
      "require",
      "verify-ca",
      "verify-full",
    ]
  ) ok(`postgres://h/db?sslmode=${mode}`);
  ok("postgres://h/db?sslmode=require", { ca: CERT }); // upgrade to verify
  ok("postgres://h/db?sslmode=require", { rejectUnauthorized: false });
  ok("postgres://h/db?sslmode=verify-full", true);
  ok("postgres://h/db?sslmode=prefer", false);
  ok("postgres://h/db?sslrootcert=system");
  ok("postgres://h/db?sslmode=verify-full&sslrootcert=system");
  ok("postgres://h/db?ssl=true&sslmode=verify-full");
  assert.throws(
    pg("postgres://h/db?sslmode=verify_full"),
    typeError(/sslmode="verify_full"; it must be disable, allow, prefer/),
  );
  assert.throws(
    pg("postgres://h/db?sslmode=require&sslmode=disable"),
    typeError(/"sslmode" more than once/),
  );
  assert.throws(
    pg("postgres://h/db?ssl=false&sslmode=require"),
    typeError(/TLS modes that disagree/),
  );
  assert.throws(
    pg("postgres://h/db?sslmode=require", false),
    typeError(
      /tls asks for less \(false\) than connectionString's sslmode=require/,
    ),
  );
  assert.throws(
    pg("postgres://h/db?sslmode=verify-ca", { rejectUnauthorized: false }),
    typeError(/tls asks for less \(rejectUnauthorized: false\)/),
  );
  assert.throws(
    pg("postgres://h/db?sslmode=disable", true),
    typeError(/tls asks for TLS but connectionString says sslmode=disable/),
  );
  // libpq's file settings: postgres.js would send them to the server as
  // settings, which it refuses at connect ("unrecognized configuration
  // parameter"); here they are refused at once, with what to use.
  assert.throws(
    pg("postgres://h/db?sslmode=verify-full&sslrootcert=/etc/ca.pem"),
    typeError(/"sslrootcert" .*give the CA's PEM text as tls\.ca/),
  );
  assert.throws(
    pg("postgres://h/db?sslcert=/c.pem&sslkey=/k.pem"),
    typeError(/"sslcert" .*tls\.cert/),
  );
  assert.throws(
    pg("postgres://h/db?sslpassword=x"),
    typeError(/"sslpassword" \(a libpq setting\) is not supported/),
  );
  assert.throws(
    pg("postgres://h/db?sslmode=require&sslrootcert=system"),
    typeError(/sslrootcert=system, which needs sslmode=verify-full/),
  );
});

Deno.test("TLS config: the seed's ssl key takes true, false or TLS settings on both backends", () => {
  const redis = createEventBus({
    backend: "redis",
    host: "127.0.0.1",
    ssl: { ca: CERT, cert: CERT, key: KEY, reject_unauthorized: false },
  });
  assert.equal(String(redis), "RedisEventBus(rediss://127.0.0.1:6379/0, idle)");
  assert.equal(
    String(createEventBus({ backend: "redis", host: "h", ssl: true })),
    "RedisEventBus(rediss://h:6379/0, idle)",
  );
  assert.ok(
    createEventBus({
      backend: "postgres",
      connection_string: "postgres://h/db",
      ssl: { ca: [CERT] },
    }) instanceof PostgresEventBus,
  );
  const config = (ssl: unknown, backend = "redis") => () =>
    createEventBus(
      (backend === "redis"
        ? { backend, host: "h", ssl }
        : { backend, connection_string: "postgres://h/db", ssl }) as never,
    );
  assert.throws(config("yes"), typeError(/"ssl" must be true or false/));
  assert.throws(
    config({ ca: CERT, rejectUnauthorized: false }),
    typeError(/"ssl" has an unknown setting "rejectUnauthorized"/),
  );
  assert.throws(
    config({ reject_unauthorized: "no" }, "postgres"),
    typeError(/ssl\.reject_unauthorized must be true or false/),
  );
  assert.throws(
    config({ key: KEY }, "postgres"),
    typeError(/ssl\.key needs ssl\.cert/),
  );
});

Deno.test("Redis url: explicit options override its parts; its query is refused", async () => {
  assert.throws(
    () => new RedisEventBus({ url: "redis://h?enableOfflineQueue=true" }),
    typeError(
      /url must not have query parameters \(found "enableOfflineQueue"\)/,
    ),
  );
  assert.throws(
    () => new RedisEventBus({ url: "redis://h/zero" }),
    typeError(/url path must be a database number/),
  );
  if (!haveRedis) return;
  await using server = await startRedis();
  const { port } = new URL(server.url);
  // Port 1 in the URL: the option wins (ioredis, given the URL, let the URL win).
  const bus = new RedisEventBus({
    url: "redis://127.0.0.1:1/0",
    port: Number(port),
    connectTimeoutMs: 3000,
  });
  assert.equal(String(bus), `RedisEventBus(redis://127.0.0.1:${port}/0, idle)`);
  await roundTrip(bus);
});

Deno.test({
  name:
    "Redis over TLS: CA, IP host, verification failures, client certificates, wrong ports",
  ignore: !haveRedis,
  async fn(t) {
    const certs = await makeCerts();
    const tlsPort = freePort(), mtlsPort = freePort();
    const tlsArgs = (port: number, authClients: string) => [
      "--tls-port",
      String(port),
      "--tls-cert-file",
      certs.serverCertFile,
      "--tls-key-file",
      certs.serverKeyFile,
      "--tls-ca-cert-file",
      certs.caFile,
      "--tls-auth-clients",
      authClients,
    ];
    const password = `pw-${crypto.randomUUID()}`;
    const servers = [];
    try {
      // Plaintext on server.url's port, TLS on tlsPort.
      const server = await startRedis(tlsArgs(tlsPort, "no"));
      servers.push(server);
      const plainPort = Number(new URL(server.url).port);
      const mtls = await startRedis([
        ...tlsArgs(mtlsPort, "yes"),
        "--requirepass",
        password,
      ]);
      servers.push(mtls);
      const { ca, clientCert: cert, clientKey: key } = certs;
      const secrets = [keyBody(key), password];
      const bus = (options: Partial<RedisEventBusOptions>) =>
        new RedisEventBus({
          host: "127.0.0.1",
          port: tlsPort,
          connectTimeoutMs: 3000,
          ...options,
        });

      await t.step(
        "IP host with a CA: round trip (no servername error)",
        () => roundTrip(bus({ tls: { ca } })),
      );
      await t.step("rediss:// URL with an IP host and a CA", () =>
        roundTrip(
          new RedisEventBus({
            url: `rediss://127.0.0.1:${tlsPort}/2`,
            tls: { ca },
          }),
        ));
      await t.step(
        "host name: SNI and name check on localhost",
        () => roundTrip(bus({ host: "localhost", tls: { ca } })),
      );
      await t.step(
        "the seed's ssl: true with the CA via createEventBus",
        () =>
          roundTrip(
            createEventBus({
              backend: "redis",
              host: "127.0.0.1",
              port: tlsPort,
              ssl: { ca },
            }),
          ),
      );
      await t.step(
        "without the CA: CONNECTION_FAILED naming the reason",
        async () => {
          await refused(
            bus({ tls: true, password, connectTimeoutMs: 3000 }),
            /self-signed certificate|unable to verify.*give the CA that signed it as tls\.ca/,
            secrets,
          );
        },
      );
      await t.step(
        "a name the certificate does not list: refused",
        () =>
          fails(
            bus({ tls: { ca, servername: "cache.example.com" } }),
            /does not match certificate's altnames.*does not name this host/,
          ),
      );
      await t.step(
        "rejectUnauthorized: false encrypts without checking",
        () => roundTrip(bus({ tls: { rejectUnauthorized: false } })),
      );
      await t.step(
        "client certificate required: refused without, works with",
        async () => {
          await refused(
            bus({ port: mtlsPort, password, tls: { ca } }),
            /Cannot connect to Redis/,
            secrets,
          );
          await roundTrip(
            bus({ port: mtlsPort, password, tls: { ca, cert, key } }),
          );
          // A certificate failure with a key and a password given shows neither.
          await refused(
            bus({ port: mtlsPort, password, tls: { cert, key } }),
            /certificate/,
            secrets,
          );
        },
      );
      await t.step(
        "TLS to the plaintext port: fails within connectTimeoutMs, with the hint",
        async () => {
          const ms = await refused(
            bus({ port: plainPort, tls: { ca }, connectTimeoutMs: 1000 }),
            /no answer within connectTimeoutMs \(1000 ms\); TLS is on: is the server speaking TLS on this port/,
          );
          assert.ok(ms < 2500, `took ${ms} ms`);
        },
      );
      await t.step(
        "plaintext to the TLS port: the hint says it may want TLS",
        () => fails(bus({}), /TLS is off: does the server require TLS/),
      );
    } finally {
      for (const server of servers) await server.stop();
      certs.remove();
    }
  },
});

Deno.test({
  name:
    "PostgreSQL over TLS: sslmode, CA, verify-ca, client certificates, servers without TLS",
  ignore: "missing" in postgres,
  async fn(t) {
    const { bindir } = postgres as { bindir: string };
    const certs = await makeCerts();
    const cluster = await initCluster(bindir);
    let server: Awaited<ReturnType<typeof cluster.start>> | undefined;
    try {
      const files = await serverFiles(cluster.dir, certs);
      // postgres: TLS or not; tlsonly: TLS only; certuser: TLS with a
      // client certificate whose CN is certuser.
      await Deno.writeTextFile(
        `${cluster.dir}/data/pg_hba.conf`,
        [
          "local all all trust",
          "hostssl all certuser 127.0.0.1/32 trust clientcert=verify-full",
          "hostssl all tlsonly 127.0.0.1/32 trust",
          "host all postgres 127.0.0.1/32 trust",
          "",
        ].join("\n"),
      );
      server = await cluster.start([
        "-c",
        "ssl=on",
        "-c",
        `ssl_cert_file=${files.cert}`,
        "-c",
        `ssl_key_file=${files.key}`,
        "-c",
        `ssl_ca_file=${files.ca}`,
      ]);
      await server.psql(
        "create role tlsonly login superuser; create role certuser login superuser",
      );
      const running = server;
      const url = (user: string, query = "") =>
        `postgres://${user}@127.0.0.1:${cluster.port}/postgres${query}`;
      const { ca, clientCert: cert, clientKey: key } = certs;
      const secrets = [keyBody(key)];
      const bus = (
        connectionString: string,
        tls?: unknown,
      ) =>
        new PostgresEventBus({
          connectionString,
          connectTimeoutMs: 3000,
          ...(tls === undefined ? {} : { tls }),
        } as never);
      // How many of the bus's connections are TLS right now.
      const tlsConnections = async () =>
        Number(
          await running.psql(
            "select count(*) from pg_stat_ssl join pg_stat_activity using (pid) where ssl and application_name like 'dataknobs-events-%'",
          ),
        );

      await t.step(
        "verify-full with the CA, IP host: round trip over TLS",
        async () => {
          const b = bus(url("postgres", "?sslmode=verify-full"), { ca });
          await b.connect();
          assert.equal(await tlsConnections(), 2);
          await roundTrip(b);
        },
      );
      await t.step(
        "tls: true without the CA: refused, naming the reason",
        () =>
          fails(
            bus(url("postgres"), true),
            /unable to verify|self-signed.*give the CA that signed it as tls\.ca/,
          ),
      );
      await t.step("sslmode=require: encrypted without a CA", async () => {
        const b = bus(url("postgres", "?sslmode=require"));
        await b.connect();
        assert.equal(await tlsConnections(), 2);
        await roundTrip(b);
      });
      await t.step(
        "verify-ca checks the CA but not the name; verify-full both",
        async () => {
          const tls = { ca, servername: "db.example.com" };
          await roundTrip(bus(url("postgres", "?sslmode=verify-ca"), tls));
          await refused(
            bus(url("postgres", "?sslmode=verify-full"), tls),
            /altnames.*does not name this host/,
          );
        },
      );
      await t.step(
        "a TLS-only role: plaintext gets the hint, TLS works (config ssl)",
        async () => {
          await refused(bus(url("tlsonly")), /no encryption.*accepts only TLS/);
          await roundTrip(
            createEventBus({
              backend: "postgres",
              connection_string: url("tlsonly"),
              ssl: { ca },
            }),
          );
        },
      );
      await t.step(
        "client certificate: refused without, works with; the key never shows",
        async () => {
          await refused(
            bus(url("certuser", "?sslmode=verify-full"), { ca }),
            /certificate/,
            secrets,
          );
          await roundTrip(bus(url("certuser"), { ca, cert, key }));
          await refused(
            bus(url("certuser"), { cert, key }),
            /unable to verify|self-signed/,
            secrets,
          );
        },
      );
      await t.step(
        "TLS to a port that never answers: the hint, within connectTimeoutMs",
        async () => {
          using silent = silentServer();
          const b = new PostgresEventBus({
            connectionString:
              `postgres://postgres@127.0.0.1:${silent.port}/postgres?sslmode=require`,
            connectTimeoutMs: 1000,
          });
          const ms = await refused(
            b,
            /no answer within connectTimeoutMs \(1000 ms\); TLS is on: is the server speaking TLS on this port/,
          );
          assert.ok(ms < 2500, `took ${ms} ms`);
        },
      );
      await t.step(
        "TLS required, server without TLS: says the server answered N",
        async () => {
          await running.stop();
          server = await cluster.start();
          const ms = await refused(
            bus(url("postgres", "?sslmode=require")),
            /does not accept TLS \(it answered the SSL request with "N"\)/,
          );
          assert.ok(ms < 2500, `took ${ms} ms`);
        },
      );
    } finally {
      await server?.stop();
      cluster.remove();
      certs.remove();
    }
  },
});

// The server's certificate, key and CA in the cluster's folder, owned by
// the server's user; the key mode 0600 (the server refuses it otherwise).
async function serverFiles(
  dir: string,
  certs: Certs,
): Promise<{ cert: string; key: string; ca: string }> {
  const { uid, gid } = await Deno.stat(dir);
  const files = {
    cert: `${dir}/server.crt`,
    key: `${dir}/server.key`,
    ca: `${dir}/ca.crt`,
  };
  await Deno.copyFile(certs.serverCertFile, files.cert);
  await Deno.copyFile(certs.serverKeyFile, files.key);
  await Deno.copyFile(certs.caFile, files.ca);
  for (const file of Object.values(files)) {
    if (uid !== null && gid !== null) await Deno.chown(file, uid, gid);
  }
  await Deno.chmod(files.key, 0o600);
  return files;
}
