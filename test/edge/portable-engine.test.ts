/**
 * The build check of the portable engine: the library's entry point (`core/index.ts`) bundled for
 * no particular platform (`esbuild --platform=neutral`, which knows no Node built-ins) must not
 * import a Node built-in anywhere but in the adapters that need a host's file system (the
 * filesystem blob store; the embedded SQLite store, which runs on Node, Deno and Bun). Those load
 * only when a config names them (core/adapters/registry.ts), so a Workers bundle never runs them.
 *
 * The adapters' SDKs (pg, the AWS SDK, the MongoDB driver, better-sqlite3) are not followed: each
 * is loaded only when a config names its backend, and which runtimes it supports is its own (pg
 * and the AWS SDK run on Workers; docs/edge.md). Every other package the engine imports is
 * followed into, with the conditions an edge bundler uses.
 */
import { builtinModules } from 'node:module';
import { relative } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('../../', import.meta.url).pathname;
/** Adapters that need the host's file system; nothing else may import a Node built-in. */
const NODE_ONLY = [/^core\/adapters\/fs\//, /^core\/adapters\/sqlite\//];
/** The backends' SDKs, followed by no edge bundle unless its config names the backend. */
const ADAPTER_SDKS = /^(better-sqlite3|mongodb|pg|@aws-sdk\/[^/]+)(\/|$)/;
const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

interface BuiltinImport {
  importer: string;
  path: string;
}

async function builtinImports(entry: string): Promise<{ found: BuiltinImport[]; inputs: string[] }> {
  const found: BuiltinImport[] = [];
  const watch: Plugin = {
    name: 'builtin-imports',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => {
        const path = args.path;
        if (path.startsWith('node:') || BUILTINS.has(path) || BUILTINS.has(path.split('/')[0]!)) {
          found.push({ importer: relative(ROOT, args.importer), path });
          return { path, external: true };
        }
        if (ADAPTER_SDKS.test(path)) return { path, external: true };
        return undefined;
      });
    },
  };
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    metafile: true,
    platform: 'neutral',
    format: 'esm',
    // What Workers bundlers (wrangler) resolve packages with.
    mainFields: ['module', 'main'],
    conditions: ['workerd', 'worker', 'browser', 'import'],
    logLevel: 'silent',
    plugins: [watch],
  });
  return { found, inputs: Object.keys(result.metafile.inputs) };
}

describe('portable engine (esbuild --platform=neutral)', () => {
  it('imports no Node built-in outside the adapters that need a file system', async () => {
    const { found, inputs } = await builtinImports(`${ROOT}core/index.ts`);
    // The check sees the engine: the facade, the engine, the jobs and the adapters' own files.
    expect(inputs).toEqual(expect.arrayContaining(['core/xronox.ts', 'core/engine/collection.ts', 'core/jobs/run.ts', 'core/adapters/sqlite/sqlite-open.ts', 'core/adapters/postgres/postgres-index-driver.ts']));
    const outside = found.filter((f) => !NODE_ONLY.some((re) => re.test(f.importer)));
    expect(outside, `Node built-ins imported outside the Node-only adapters:\n${outside.map((f) => `  ${f.importer} -> ${f.path}`).join('\n')}`).toEqual([]);
    // The Node-only adapters do import them: the check would see one elsewhere.
    expect(found.some((f) => f.importer.startsWith('core/adapters/fs/'))).toBe(true);
  });
});
