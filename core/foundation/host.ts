/**
 * What the host runtime offers beyond Web-standard APIs, asked for at call time, never imported:
 * the engine's import graph stays free of Node built-ins (so it bundles for Workers with
 * `--platform=neutral`), while Node, Deno and Bun still give a config file or a process-id
 * namespace to the features that need them.
 */

interface HostProcess {
  pid?: number;
  cwd?: () => string;
  getBuiltinModule?: (id: string) => unknown;
}

/** The runtime's `process` object, where it has one (Node, Deno, Bun; Workers with `nodejs_compat`). */
export function hostProcess(): HostProcess | undefined {
  return (globalThis as { process?: HostProcess }).process;
}

/**
 * A Node built-in module, when the runtime provides one (`process.getBuiltinModule`: Node 20.16+,
 * Deno 2, Bun); `undefined` elsewhere.
 */
export function builtinModule<T>(id: `node:${string}`): T | undefined {
  try {
    return hostProcess()?.getBuiltinModule?.(id) as T | undefined;
  } catch {
    return undefined;
  }
}

/** Like `builtinModule`, but a runtime without it is an error naming what needed it. */
export function requireBuiltin<T>(id: `node:${string}`, feature: string): T {
  const mod = builtinModule<T>(id);
  if (mod === undefined) throw new Error(`${feature} needs ${id}, which this runtime does not provide`);
  return mod;
}
