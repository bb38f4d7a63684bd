/* global process, console */
/**
 * Bundles the Workers entry (functions/edge/index.ts) into one ES module, as wrangler would with
 * `nodejs_compat`: Node built-ins stay imports of `node:*` (the runtime provides them),
 * `cloudflare:*` modules stay imports, packages resolve with the conditions Workers use
 * (`workerd`, `worker`, `browser`: node-postgres then talks through `cloudflare:sockets`, the AWS
 * SDK through `fetch`).
 *
 * The adapters a Worker cannot run (the filesystem blob store and the SQLite stores need a file
 * system; the MongoDB driver needs raw TCP and TLS of Node's) are replaced by modules whose
 * classes refuse to be constructed, naming why: the registry imports them only when a config names
 * their backend, so a config that does gets that error on first use, and the bundle carries none
 * of their code. Used by test/edge/workers.test.ts and bench/edge-bundle.bench.ts, and by
 * wrangler.jsonc's custom build (`node infra/edge/bundle.mjs`).
 */
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const BUILTINS = new Set(builtinModules);

/** Adapter modules the registry loads lazily that have no place in a Worker, and the classes they export. */
const UNAVAILABLE = {
  'core/adapters/fs/fs-blob-store.ts': { exports: ['FsBlobStore'], why: 'the filesystem blob store needs a file system; use an S3 connection (R2)' },
  'core/adapters/sqlite/sqlite-index-driver.ts': { exports: ['SqliteIndexDriver'], why: 'the SQLite index store needs a file system; use a postgresUri connection (Hyperdrive)' },
  'core/adapters/sqlite/sqlite-document-store.ts': { exports: ['SqliteDocumentStore'], why: 'the SQLite document store needs a file system; use a postgresUri connection (Hyperdrive)' },
  'core/adapters/mongodb/mongodb-index-driver.ts': { exports: ['MongoIndexDriver'], why: 'the MongoDB driver is not supported on Workers; use a postgresUri connection (Hyperdrive)' },
  'core/adapters/mongodb/mongodb-document-store.ts': { exports: ['MongoDocumentStore'], why: 'the MongoDB driver is not supported on Workers; use a postgresUri connection (Hyperdrive)' },
};

const edgePlugin = {
  name: 'xronox-edge',
  setup(b) {
    b.onResolve({ filter: /^(node:|cloudflare:)/ }, (args) => ({ path: args.path, external: true }));
    // A bare built-in (`events`, `net` in node-postgres) is the same module under `node:`.
    b.onResolve({ filter: /^[a-z_]+(\/[a-z_]+)?$/ }, (args) => (BUILTINS.has(args.path) ? { path: `node:${args.path}`, external: true } : undefined));
    const filter = new RegExp(`(${Object.keys(UNAVAILABLE).map((p) => p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|')})$`);
    b.onLoad({ filter }, (args) => {
      const key = Object.keys(UNAVAILABLE).find((p) => args.path.endsWith(p));
      const { exports, why } = UNAVAILABLE[key];
      const message = JSON.stringify(`Not available in the Workers bundle: ${why}`);
      return { contents: exports.map((name) => `export class ${name} { constructor() { throw new Error(${message}); } }`).join('\n'), loader: 'js' };
    });
    // Swagger UI's 2 MB of assets stay out of the Worker: /openapi.json is served, /docs says where the UI is not.
    b.onLoad({ filter: /[\\/]functions[\\/]api[\\/]swagger-ui-files\.ts$/ }, () => ({
      contents: `export function readSwaggerUiFile() { throw new Error('Swagger UI is not part of the Workers bundle; /openapi.json is'); }`,
      loader: 'js',
    }));
  },
};

/**
 * Writes the Worker's bundle to `outfile` (and `outfile.meta.json`, esbuild's metafile, for the
 * size report) and returns esbuild's metafile.
 */
export async function bundleWorker({ outfile, minify = true } = {}) {
  const result = await build({
    entryPoints: [join(ROOT, 'functions/edge/index.ts')],
    outfile,
    bundle: true,
    format: 'esm',
    // `browser`: packages' browser maps apply (the AWS SDK's fetch-based runtime config, no Node credential chain).
    platform: 'browser',
    target: 'es2022',
    minify,
    metafile: true,
    // Not `import`: esbuild adds `import` or `require` by how a module is loaded, so a package
    // require()d by CommonJS (pg-pool by pg) stays CommonJS.
    conditions: ['workerd', 'worker', 'browser'],
    mainFields: ['browser', 'module', 'main'],
    logLevel: 'silent',
    // CommonJS packages (node-postgres) require() Node built-ins; an ES module has no `require`,
    // and esbuild's stand-in refuses, so the bundle makes one (nodejs_compat has node:module).
    // Workers' require gives a module's namespace, where Node gives its `module.exports`: for
    // `events` and `stream` that is the class itself (`class Pool extends require('events')`).
    banner: {
      js: [
        "import { createRequire as __xronoxCreateRequire } from 'node:module';",
        "const __xronoxRequire = __xronoxCreateRequire('/');",
        "const require = (id) => { const m = __xronoxRequire(id); return typeof m?.default === 'function' ? m.default : m; };",
      ].join('\n'),
    },
    plugins: [edgePlugin],
  });
  return result.metafile;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outfile = process.argv[2] ?? join(ROOT, 'dist/edge/worker.js');
  const meta = await bundleWorker({ outfile });
  const bytes = Object.values(meta.outputs).reduce((n, o) => n + o.bytes, 0);
  console.log(`${outfile}: ${bytes} bytes`);
}
