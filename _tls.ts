// TLS for the remote backends: one option shape (`tls`, config key `ssl`),
// checked once at construction, turned into Node's `tls.connect` options
// (ioredis's `tls`, postgres.js's `ssl`), and the hints a failed connect
// gets when TLS is the likely reason. Key text is never shown: no message
// here quotes a PEM value.

/**
 * TLS settings of a remote bus (`tls` of {@linkcode RedisEventBus} and
 * {@linkcode PostgresEventBus}). Every certificate and key is PEM text (the
 * contents of the `.pem`/`.crt`/`.key` file, not its path). Without
 * `rejectUnauthorized: false` the server's certificate is verified: it must
 * chain to a trusted CA (Node's store, or `ca`) and name the host (or
 * `servername`). An IP address host is never sent as SNI; the certificate
 * must then list that address as an `IP:` subjectAltName.
 *
 * @example Trust a private CA and present a client certificate
 * ```ts
 * import assert from "node:assert/strict";
 * import { RedisEventBus, type TlsOptions } from "@dataknobs/events/redis";
 * const pem = (kind: string) => `-----BEGIN ${kind}-----\nMIIB\n-----END ${kind}-----\n`;
 * const tls: TlsOptions = {
 *   ca: pem("CERTIFICATE"),
 *   cert: pem("CERTIFICATE"),
 *   key: pem("PRIVATE KEY"),
 *   servername: "cache.internal",
 * };
 * const bus = new RedisEventBus({ host: "10.0.0.7", port: 6380, tls });
 * assert.equal(String(bus), "RedisEventBus(rediss://10.0.0.7:6380/0, idle)");
 * ```
 */
export interface TlsOptions {
  /**
   * PEM text of the CA certificate(s) to trust, instead of Node's default
   * store: one string (it may hold several certificates) or a list.
   */
  readonly ca?: string | readonly string[];
  /** PEM text of a client certificate (and its chain); needs `key`. */
  readonly cert?: string;
  /**
   * PEM text of the client certificate's private key, unencrypted; needs
   * `cert`. Never shown in errors, logs or `String(bus)`.
   */
  readonly key?: string;
  /**
   * The name sent as SNI and checked against the certificate. Default: the
   * host, unless it is an IP address (SNI carries names only; the
   * certificate must then list the IP). Must not be an IP address.
   */
  readonly servername?: string;
  /**
   * Verify the server's certificate (chain and name). `false` encrypts but
   * accepts any certificate, so it does not stop an impostor.
   * @default true
   */
  readonly rejectUnauthorized?: boolean;
}

/** What the options' `tls` may be. */
export type TlsSetting = boolean | TlsOptions;

/** Node `tls.connect` options built from {@linkcode TlsOptions}. */
export interface NodeTls {
  ca?: string[];
  cert?: string;
  key?: string;
  servername?: string;
  rejectUnauthorized: boolean;
  checkServerIdentity?: () => undefined;
}

/** How the names of the settings are spelled: options or config dict. */
export interface TlsNames {
  /** The setting itself, as messages name it on its own. */
  readonly label: string;
  /** The setting, as the start of a path (`tls.ca`). */
  readonly root: string;
  readonly rejectUnauthorized: string;
}

/** The spelling of the bus options (`tls.rejectUnauthorized`). */
export const OPTION_NAMES: TlsNames = {
  label: "tls",
  root: "tls",
  rejectUnauthorized: "rejectUnauthorized",
};

/** The spelling of the config dict (`ssl.reject_unauthorized`). */
export const CONFIG_NAMES: TlsNames = {
  label: '"ssl"',
  root: "ssl",
  rejectUnauthorized: "reject_unauthorized",
};

const CERTIFICATE =
  /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/;
const PRIVATE_KEY = /-----BEGIN ([A-Z0-9 ]+ )?PRIVATE KEY-----/;

/**
 * Why `value` is not a TLS setting (`true`, `false` or settings object),
 * or undefined when it is. The message names the setting and never quotes
 * a PEM value.
 */
export function tlsProblem(
  value: unknown,
  names: TlsNames,
): string | undefined {
  const { root } = names;
  if (typeof value === "boolean") return undefined;
  if (
    typeof value !== "object" || value === null || Array.isArray(value) ||
    !isPlain(value)
  ) {
    return `${names.label} must be true or false, or an object of TLS settings (ca, cert, key, servername, ${names.rejectUnauthorized}), got ${
      describe(value)
    }`;
  }
  const known = ["ca", "cert", "key", "servername", names.rejectUnauthorized];
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      return `${names.label} has an unknown setting "${key}"; the settings are: ${
        known.join(", ")
      }`;
    }
  }
  const settings = value as Record<string, unknown>;
  const { ca, cert, key, servername } = settings;
  const verify = settings[names.rejectUnauthorized];
  if (ca !== undefined) {
    const list = Array.isArray(ca) ? ca : [ca];
    if (list.length === 0) return `${root}.ca must not be an empty list`;
    for (const [i, item] of list.entries()) {
      const where = Array.isArray(ca) ? `${root}.ca[${i}]` : `${root}.ca`;
      const problem = pemProblem(item, where, "certificate");
      if (problem) return problem;
    }
  }
  if (cert !== undefined) {
    const problem = pemProblem(cert, `${root}.cert`, "certificate");
    if (problem) return problem;
  }
  if (key !== undefined) {
    const problem = pemProblem(key, `${root}.key`, "key");
    if (problem) return problem;
  }
  if ((cert === undefined) !== (key === undefined)) {
    return cert === undefined
      ? `${root}.key needs ${root}.cert (the client certificate)`
      : `${root}.cert needs ${root}.key (its private key)`;
  }
  if (servername !== undefined) {
    if (typeof servername !== "string" || servername === "") {
      return `${root}.servername must be a non-empty string, got ${
        describe(servername)
      }`;
    }
    if (isIpAddress(servername)) {
      return `${root}.servername must be a DNS name, not an IP address (SNI carries names only); to reach a server by IP, give no servername and use a certificate that lists the IP as a subjectAltName`;
    }
  }
  if (verify !== undefined && typeof verify !== "boolean") {
    return `${root}.${names.rejectUnauthorized} must be true or false, got ${
      describe(verify)
    }`;
  }
  return undefined;
}

// PEM checks that never quote the value (a key must not leak, and a
// certificate is long). A path instead of the text is the usual mistake.
function pemProblem(
  value: unknown,
  where: string,
  kind: "certificate" | "key",
): string | undefined {
  const want = kind === "key"
    ? "PEM text of a private key (-----BEGIN PRIVATE KEY-----…)"
    : "PEM text of a certificate (-----BEGIN CERTIFICATE-----…)";
  if (typeof value !== "string") {
    return `${where} must be ${want}, got ${describe(value)}`;
  }
  const ok = kind === "key"
    ? PRIVATE_KEY.test(value) && !/ENCRYPTED/.test(value.slice(0, 200))
    : CERTIFICATE.test(value);
  if (ok) return undefined;
  if (kind === "key" && PRIVATE_KEY.test(value)) {
    return `${where} is an encrypted private key; give it decrypted (passphrases are not supported)`;
  }
  const path = value.length < 4096 && !value.includes("-----BEGIN") &&
    !value.includes("\n");
  return `${where} must be ${want}${
    path ? "; it looks like a file path: read the file and pass its text" : ""
  }`;
}

/**
 * Node `tls.connect` options for checked settings (`true` or an object)
 * and a host: the host is the SNI name unless it is an IP address.
 */
export function nodeTls(
  setting: true | TlsOptions,
  host: string | undefined,
): NodeTls {
  const settings: TlsOptions = setting === true ? {} : setting;
  const { ca, cert, key } = settings;
  const servername = settings.servername ??
    (host !== undefined && host !== "" && !isIpAddress(host)
      ? host
      : undefined);
  return {
    ...(ca === undefined
      ? {}
      : { ca: typeof ca === "string" ? [ca] : [...ca] }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    ...(servername === undefined ? {} : { servername }),
    rejectUnauthorized: settings.rejectUnauthorized ?? true,
  };
}

/**
 * Whether `host` is an IP address (IPv4 dotted quad, or IPv6, bracketed
 * or not): never a TLS server name.
 */
export function isIpAddress(host: string): boolean {
  if (host.includes(":")) return true; // no DNS name holds a colon
  const parts = host.split(".");
  return parts.length === 4 &&
    parts.every((part) => /^\d{1,3}$/.test(part) && Number(part) <= 255);
}

/** What a TLS client says when the other end does not speak TLS. */
const NOT_TLS =
  /before secure TLS connection was established|wrong version number|packet length too long|unknown protocol|record layer failure|InvalidContentType|CorruptMessage/i;
const NOT_TLS_CODES = new Set([
  "EPROTO",
  "ERR_SSL_WRONG_VERSION_NUMBER",
  "ERR_SSL_PACKET_LENGTH_TOO_LONG",
  "ERR_SSL_UNKNOWN_PROTOCOL",
  "ERR_SSL_RECORD_LAYER_FAILURE",
]);

/** Node's codes for a server certificate that failed verification. */
const UNVERIFIED = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
  "INVALID_CA",
]);

/**
 * A hint for a connect that failed with TLS on: a verification failure
 * names what to give; a server's alert about the client certificate says
 * so; no answer within connectTimeoutMs (`timedOut`) or a protocol error
 * usually means the port does not speak TLS.
 */
export function tlsHint(
  error: unknown,
  timedOut: boolean,
  server: string,
): string | undefined {
  const code = String((error as { code?: unknown } | undefined)?.code ?? "");
  const message = error instanceof Error ? error.message : "";
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return "the server's certificate does not name this host: connect by a name it lists, or set tls.servername to one";
  }
  if (UNVERIFIED.has(code)) {
    return "the server's certificate failed verification: give the CA that signed it as tls.ca (PEM text)";
  }
  if (
    /CERTIFICATE_REQUIRED/.test(code) ||
    /CertificateRequired|certificate required/i.test(message)
  ) {
    return "the server requires a client certificate: give tls.cert and tls.key";
  }
  if (
    /ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED|DECRYPT_ERROR)/
      .test(code) || /alert: (UnknownCA|BadCertificate)/.test(message)
  ) {
    return "the server refused the client certificate (tls.cert): is it signed by a CA the server trusts?";
  }
  if (timedOut || NOT_TLS_CODES.has(code) || NOT_TLS.test(message)) {
    return `TLS is on: is the server speaking TLS on this port (is it ${server} at all)?`;
  }
  return undefined;
}

/**
 * A hint for a connect that failed with TLS off, when the server seems to
 * want TLS: it hung up on the first plaintext bytes.
 */
export function plainHint(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  const message = error instanceof Error ? error.message : "";
  if (
    code === "ECONNRESET" || code === "EPIPE" ||
    /^Connection is closed/.test(message)
  ) {
    return "TLS is off: does the server require TLS on this port? Then set tls";
  }
  return undefined;
}

function isPlain(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

// A value's kind, for messages: never a string's text (it may be a key).
function describe(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return "a string";
  if (value instanceof Uint8Array) {
    return 'bytes (pass text: readFileSync(path, "utf8"))';
  }
  if (typeof value === "object" && value !== null) return "an object";
  if (typeof value === "function" || typeof value === "symbol") {
    return `a ${typeof value}`;
  }
  return String(value);
}
