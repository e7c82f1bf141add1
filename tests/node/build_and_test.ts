// `deno task test:node`: builds the package the way JSR's npm tarball is
// built (TypeScript to ESM JavaScript plus .d.ts; `postgres` and `ioredis`
// as npm dependencies) into a temporary folder, then runs
// tests/node/roundtrip.test.mjs under Node with node:test against it.
import ts from "typescript";
import { type Certs, freePort, makeCerts } from "../_tls.ts";
import { type RedisServer, startRedis } from "../_redis_server.ts";

const root = new URL("../../", import.meta.url);
const tls: { certs?: Certs; server?: RedisServer } = {};
const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
const dir = await Deno.makeTempDir({ prefix: "dataknobs-events-node-" });
const run = async (
  cmd: string,
  args: string[],
  cwd = dir,
  env: Record<string, string> = {},
) => {
  const { code } = await new Deno.Command(cmd, {
    args,
    cwd,
    env,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed with exit code ${code}`);
  }
};

try {
  const npmVersion = (name: string) =>
    config.imports[name].replace(`npm:${name}@`, "");
  const entry = (file: string) => ({
    types: `./${file}.d.ts`,
    default: `./${file}.js`,
  });
  await Deno.writeTextFile(
    `${dir}/package.json`,
    JSON.stringify(
      {
        name: config.name,
        version: config.version,
        type: "module",
        exports: {
          ".": entry("mod"),
          "./postgres": entry("postgres"),
          "./redis": entry("redis"),
        },
        dependencies: {
          postgres: npmVersion("postgres"),
          ioredis: npmVersion("ioredis"),
        },
        devDependencies: { "@types/node": "^20" },
      },
      null,
      2,
    ),
  );
  await run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"]);

  // The published sources: every top-level .ts file but the command line
  // (cli.ts, _cli_*.ts), which runs on Deno only (`deno run … /cli`).
  await Deno.mkdir(`${dir}/src`);
  const sources: string[] = [];
  for await (const file of Deno.readDir(root)) {
    if (
      file.isFile && file.name.endsWith(".ts") &&
      !/^_?cli[_.]/.test(file.name)
    ) {
      await Deno.copyFile(new URL(file.name, root), `${dir}/src/${file.name}`);
      sources.push(`${dir}/src/${file.name}`);
    }
  }
  const program = ts.createProgram(sources, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: [
      "lib.es2022.d.ts",
      "lib.es2024.string.d.ts", // String.prototype.isWellFormed (Node 20+)
      "lib.esnext.disposable.d.ts",
      "lib.dom.d.ts",
    ],
    types: [],
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    declaration: true,
    rewriteRelativeImportExtensions: true,
    skipLibCheck: true,
    rootDir: `${dir}/src`,
    outDir: dir,
  });
  const result = program.emit();
  const diagnostics = [
    ...ts.getPreEmitDiagnostics(program),
    ...result.diagnostics,
  ];
  if (diagnostics.length > 0) {
    throw new Error(ts.formatDiagnosticsWithColorAndContext(diagnostics, {
      getCanonicalFileName: (f) => f,
      getCurrentDirectory: () => dir,
      getNewLine: () => "\n",
    }));
  }
  await Deno.remove(`${dir}/src`, { recursive: true });
  await compileConsumer();
  await Deno.copyFile(
    new URL("roundtrip.test.mjs", import.meta.url),
    `${dir}/roundtrip.test.mjs`,
  );
  await run("node", ["--version"]);
  await run("node", ["--test", "roundtrip.test.mjs"], dir, await tlsRedis());
} finally {
  await tls.server?.stop();
  tls.certs?.remove();
  await Deno.remove(dir, { recursive: true });
}

// Compiles tests/node/consumer.ts with tsc against the built package, as
// an application would import it (by name, through node_modules), with
// moduleResolution nodenext and bundler and no Deno-only settings; then
// runs it under Node.
async function compileConsumer(): Promise<void> {
  const app = `${dir}/app`;
  await Deno.mkdir(`${app}/node_modules/@dataknobs`, { recursive: true });
  await Deno.symlink(dir, `${app}/node_modules/@dataknobs/events`);
  await Deno.symlink(
    `${dir}/node_modules/@types`,
    `${app}/node_modules/@types`,
  );
  await Deno.writeTextFile(`${app}/package.json`, '{ "type": "module" }');
  const source = `${app}/consumer.ts`;
  await Deno.copyFile(new URL("consumer.ts", import.meta.url), source);
  const common: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    lib: ["lib.es2022.d.ts", "lib.esnext.disposable.d.ts"],
    types: ["node"],
    strict: true,
    outDir: `${app}/out`,
  };
  for (
    const [module, moduleResolution] of [
      [ts.ModuleKind.NodeNext, ts.ModuleResolutionKind.NodeNext],
      [ts.ModuleKind.ESNext, ts.ModuleResolutionKind.Bundler],
    ] as const
  ) {
    const program = ts.createProgram([source], {
      ...common,
      module,
      moduleResolution,
      typeRoots: [`${app}/node_modules/@types`],
    });
    const emitted = program.emit();
    const diagnostics = [
      ...ts.getPreEmitDiagnostics(program),
      ...emitted.diagnostics,
    ];
    if (diagnostics.length > 0) {
      throw new Error(
        `tsc (${
          ts.ModuleResolutionKind[moduleResolution]
        }) rejects the consumer:\n${
          ts.formatDiagnostics(diagnostics, {
            getCanonicalFileName: (f) => f,
            getCurrentDirectory: () => app,
            getNewLine: () => "\n",
          })
        }`,
      );
    }
  }
  await run("node", [
    "--input-type=module",
    "-e",
    `import { consumer } from "./out/consumer.js";
const seen = await consumer();
if (JSON.stringify(seen) !== '["b1","ok=true","read true"]') throw new Error("consumer saw " + JSON.stringify(seen));
console.log("consumer compiled by tsc (nodenext, bundler) and ran: ok");`,
  ], app);
}

// A throwaway redis-server with a TLS port and a private CA, for the TLS
// test under Node (Node's TLS is not Deno's); none when redis-server or
// openssl is missing (that test then skips, or fails with CI set).
async function tlsRedis(): Promise<Record<string, string>> {
  try {
    tls.certs = await makeCerts();
    const port = freePort();
    tls.server = await startRedis([
      "--tls-port",
      String(port),
      "--tls-cert-file",
      tls.certs.serverCertFile,
      "--tls-key-file",
      tls.certs.serverKeyFile,
      "--tls-ca-cert-file",
      tls.certs.caFile,
      "--tls-auth-clients",
      "no",
    ]);
    return {
      TLS_REDIS_PORT: String(port),
      TLS_REDIS_PLAIN_PORT: new URL(tls.server.url).port,
      TLS_CA_FILE: tls.certs.caFile,
    };
  } catch (error) {
    console.warn(`No TLS Redis for the Node test: ${error}`);
    return {};
  }
}
