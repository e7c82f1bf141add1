// Reads environment variables on any runtime, without ever prompting: in
// Deno only what --allow-env grants (a variable not granted reads as
// DENIED), in Node and Bun from process.env, elsewhere nothing.

/** What a variable the program may not read gives. */
export const DENIED: unique symbol = Symbol("denied");

/** Reads one variable: its text, undefined when unset, or {@link DENIED}. */
export type EnvReader = (name: string) => string | undefined | typeof DENIED;

interface Runtime {
  readonly Deno?: {
    readonly env: { get(name: string): string | undefined };
    readonly permissions?: {
      querySync?(descriptor: { name: "env"; variable: string }): {
        readonly state: string;
      };
    };
  };
  readonly process?: { readonly env?: Record<string, string | undefined> };
}

/** The running program's environment. */
export const readEnv: EnvReader = (name) => {
  const { Deno: deno, process } = globalThis as unknown as Runtime;
  if (deno === undefined) return process?.env?.[name];
  // Not granted ("prompt" included): no prompt in the middle of a library
  // call; the caller says which permission to give.
  const state = deno.permissions?.querySync?.({ name: "env", variable: name })
    .state;
  if (state !== undefined && state !== "granted") return DENIED;
  try {
    return deno.env.get(name);
  } catch {
    return DENIED; // NotCapable / PermissionDenied where querySync is missing
  }
};
