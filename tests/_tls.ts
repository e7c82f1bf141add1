// Throwaway certificates for the TLS tests, made with openssl in a
// temporary folder (EC P-256 keys: a few milliseconds each): a CA, a server
// certificate for IP:127.0.0.1 and DNS:localhost signed by it, and a client
// certificate (CN=certuser, the PostgreSQL role of the client-certificate
// test) signed by it.

/** PEM files and their text; `remove()` deletes the folder. */
export interface Certs {
  readonly dir: string;
  /** The CA certificate's PEM text. */
  readonly ca: string;
  readonly caFile: string;
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  /** The client certificate and its key, as PEM text. */
  readonly clientCert: string;
  readonly clientKey: string;
  remove(): void;
}

async function openssl(dir: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", {
    args,
    cwd: dir,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/** Makes the CA, server and client certificates (about 50 ms). */
export async function makeCerts(): Promise<Certs> {
  const dir = await Deno.makeTempDir({ prefix: "dk-tls-" });
  const remove = () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // Already removed.
    }
  };
  try {
    await openssl(
      dir,
      "req",
      "-x509",
      ...EC,
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "2",
      "-subj",
      "/CN=dataknobs-events test CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    );
    const sign = async (name: string, subject: string, ext: string) => {
      await openssl(
        dir,
        "req",
        "-new",
        ...EC,
        "-nodes",
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.csr`,
        "-subj",
        subject,
      );
      await Deno.writeTextFile(`${dir}/${name}.ext`, ext);
      await openssl(
        dir,
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-set_serial",
        String(Date.now()),
        "-days",
        "2",
        "-extfile",
        `${name}.ext`,
        "-out",
        `${name}.crt`,
      );
    };
    await Promise.all([
      sign(
        "server",
        "/CN=localhost",
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
      ),
      sign(
        "client",
        "/CN=certuser",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
      ),
    ]);
    const read = (name: string) => Deno.readTextFile(`${dir}/${name}`);
    return {
      dir,
      ca: await read("ca.crt"),
      caFile: `${dir}/ca.crt`,
      serverCertFile: `${dir}/server.crt`,
      serverKeyFile: `${dir}/server.key`,
      clientCert: await read("client.crt"),
      clientKey: await read("client.key"),
      remove,
    };
  } catch (error) {
    remove();
    throw error;
  }
}

/** A free loopback TCP port (closed again; a race, as everywhere). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * A TCP server on loopback that accepts connections and never answers:
 * what a TLS client meets on a port of some other protocol.
 */
export function silentServer(): { port: number } & Disposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    try {
      for await (const conn of listener) conns.push(conn);
    } catch {
      // Closed.
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    [Symbol.dispose]: () => {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Closed by the peer.
        }
      }
    },
  };
}
