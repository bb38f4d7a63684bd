/**
 * Xronox as a package, used from another project: the package built afresh (`tsconfig.build.json`)
 * into a staging folder of this test's with package.json and the README, packed there (`npm pack
 * --ignore-scripts`: the repository's own dist/, which other tests may be reading, is left
 * alone), the tarball installed into a fresh project in the temp directory, and there:
 * every entry point of package.json "exports" imported under plain `node` (no tsx), loading no
 * backend SDK; a consumer's TypeScript checked with `moduleResolution` NodeNext and Bundler; the
 * README's library example run on the embedded default; `npx xronox --version`; publint and
 * arethetypeswrong on the tarball.
 *
 * The install resolves the production dependencies as a consumer's `npm install` does, from the
 * npm cache where it has them (`--prefer-offline`). Install scripts are skipped: the only ones in
 * the tree are better-sqlite3's native build (a compile of over a minute on two cores here) and
 * @scarf/scarf's telemetry. The compiled addon is taken instead from this repository's own
 * install of the same better-sqlite3 version, built by `npm ci` for this Node.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const manifest = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { name: string; version: string; exports: Record<string, unknown>; bin: Record<string, string> };
/** The entry points as a consumer names them: `xronox`, `xronox/http`, ... (every "exports" key but the manifest). */
const ENTRY_POINTS = Object.keys(manifest.exports)
  .filter((key) => key !== './package.json')
  .map((key) => (key === '.' ? manifest.name : `${manifest.name}/${key.slice(2)}`));
/** What each entry point must offer (a few names each; test/unit/exports.test.ts pins the whole engine list). */
const EXPECTED_EXPORTS: Record<string, string[]> = {
  xronox: ['initXronox', 'createDevConfig', 'Collection', 'runJob', 'XronoxConfigBuilder'],
  'xronox/http': ['createApp', 'createApiAuthenticator', 'hashApiKey', 'generateApiKey'],
  'xronox/lambda': ['handler', 'container'],
  'xronox/jobs': ['archive', 'archiveSweep', 'retention', 'backup', 'offload'],
};
/** The backends' SDKs: none may load when an entry point is imported, only when a config uses the backend. */
const BACKEND_SDK = /^(mongodb|bson|pg|pg-pool|better-sqlite3|@aws-sdk\/.+|@smithy\/.+)$/;

const work = tempDir('xronox-package');
const consumer = join(work.path, 'consumer');
let tarball: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to its end. The environment is this process's without the test runner's
 * `NODE_OPTIONS` and without the `npm_*` variables of the `npm test` around it (its config, such as
 * `npm_config_json`, would otherwise apply to the npm run here).
 */
function run(command: string, args: readonly string[], cwd: string, timeoutMs = 60_000): Promise<Run> {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (key !== 'NODE_OPTIONS' && !/^npm_/i.test(key)) env[key] = value;
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function ok(result: Run, what: string): Run {
  if (result.code !== 0) throw new Error(`${what} failed (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  return result;
}

/**
 * `node probe.mjs <specifier or file> [--run]`: imports the module under plain node (and with
 * `--run` awaits its `run()`), then prints its export names
 * and every package that was loaded meanwhile: ES modules as a module-resolution hook sees them
 * (the hook runs off the main thread and appends each resolved URL to a file), CommonJS ones from
 * the CommonJS module cache (which also holds the CommonJS packages that ES modules import).
 */
const PROBE = `
import { readFileSync, writeFileSync } from 'node:fs';
import Module, { register } from 'node:module';
import { pathToFileURL } from 'node:url';

const log = new URL('./resolved-' + process.pid + '.log', import.meta.url);
writeFileSync(log, '');
register('./resolve-hook.mjs', import.meta.url, { data: { log: log.href } });
const target = process.argv[2];
const loaded = await import(target.startsWith('/') ? pathToFileURL(target).href : target);
if (process.argv[3] === '--run') await loaded.run();
const files = [...readFileSync(log, 'utf8').split('\\n').filter((u) => u.startsWith('file:')).map((u) => new URL(u).pathname), ...Object.keys(Module._cache)];
const packages = new Set();
for (const file of files) {
  const match = /.*\\/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(file);
  if (match) packages.add(match[1]);
}
console.log('PROBE ' + JSON.stringify({ exports: Object.keys(loaded).sort(), packages: [...packages].sort() }));
`;
const RESOLVE_HOOK = `
import { appendFileSync } from 'node:fs';
let log;
export function initialize(data) {
  log = new URL(data.log);
}
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  appendFileSync(log, resolved.url + '\\n');
  return resolved;
}
`;

interface Probe {
  exports: string[];
  packages: string[];
}

async function probe(specifier: string): Promise<Probe> {
  const result = ok(await run(process.execPath, [join(consumer, 'probe.mjs'), specifier], consumer), `importing ${specifier}`);
  const line = result.stdout.split('\n').find((l) => l.startsWith('PROBE '));
  if (!line) throw new Error(`no probe result for ${specifier}:\n${result.stdout}\n${result.stderr}`);
  return JSON.parse(line.slice('PROBE '.length)) as Probe;
}

/** The README's library example: its first TypeScript snippet, the one that calls `initXronox`. */
function readmeExample(): string {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const snippet = [...readme.matchAll(/^```(?:ts|typescript)\n([\s\S]*?)^```/gm)].map((m) => m[1]!).find((code) => code.includes('initXronox('));
  if (!snippet) throw new Error('README.md has no TypeScript snippet that calls initXronox(');
  // Inside this repository the README imports the sources; a consumer imports the package.
  const code = snippet.replaceAll("'./core/index.js'", `'${manifest.name}'`);
  if (!code.includes(`from '${manifest.name}'`)) throw new Error(`The README's library example does not import from '${manifest.name}' (or './core/index.js'):\n${snippet}`);
  return code;
}

/**
 * A consumer's TypeScript. The `@ts-expect-error` lines fail the check if a declaration fell back
 * to `any` (a type import the consumer cannot resolve: under `skipLibCheck`, as most projects
 * have it, that is silent).
 */
const CONSUMER_TS = `
import { createDevConfig, initXronox, VersionConflictError, type Xronox } from 'xronox';
import { createApp, hashApiKey, type CreateAppOptions } from 'xronox/http';
import { handler } from 'xronox/lambda';
import { archive, backup } from 'xronox/jobs';

const xronox: Xronox = initXronox(createDevConfig({ tenants: ['acme'] }));
const orders = xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
const created = await orders.create({ customer: 'ada' });
// @ts-expect-error: a version number is not a string
const notAString: string = created.ov;
const options: CreateAppOptions = { xronox };
const response: Response = await createApp(options).request('/openapi.json');
const digest: string = hashApiKey('xrx_consumer');
// @ts-expect-error: the archive function takes S3 events (aws-lambda's event types reach the consumer)
const notAnS3Event: Parameters<typeof archive>[0] = { source: 'aws.events' };
export { notAString, response, digest, notAnS3Event, handler, backup, VersionConflictError };
`;

beforeAll(async () => {
  const packDir = join(work.path, 'pack');
  mkdirSync(packDir);
  mkdirSync(consumer);
  // What `prepare` builds, built here into the staging folder, then packed as `npm pack` packs the repository.
  const stage = join(work.path, 'stage');
  mkdirSync(stage);
  ok(await run(process.execPath, [join(REPO, 'node_modules/typescript/bin/tsc'), '-p', join(REPO, 'tsconfig.build.json'), '--outDir', join(stage, 'dist')], REPO, 240_000), 'tsc -p tsconfig.build.json');
  for (const file of ['package.json', 'README.md']) copyFileSync(join(REPO, file), join(stage, file));
  ok(await run('npm', ['pack', '--ignore-scripts', '--pack-destination', packDir, '--loglevel=warn'], stage, 240_000), 'npm pack');
  const tarballs = readdirSync(packDir).filter((f) => f.endsWith('.tgz'));
  expect(tarballs).toEqual([`${manifest.name}-${manifest.version}.tgz`]);
  tarball = join(packDir, tarballs[0]!);

  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'xronox-consumer', version: '1.0.0', private: true, type: 'module' }));
  // @types/node at the version this repository uses: a TypeScript consumer on Node has it.
  const typesNode = (JSON.parse(readFileSync(join(REPO, 'node_modules/@types/node/package.json'), 'utf8')) as { version: string }).version;
  ok(await run('npm', ['install', tarball, `@types/node@${typesNode}`, '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=warn'], consumer, 180_000), 'npm install <tarball>');

  const sqlite = (dir: string) => JSON.parse(readFileSync(join(dir, 'node_modules/better-sqlite3/package.json'), 'utf8')) as { version: string };
  expect(sqlite(consumer).version, 'better-sqlite3 in the consumer and in this repository (whose addon is copied)').toBe(sqlite(REPO).version);
  const addon = 'node_modules/better-sqlite3/build/Release/better_sqlite3.node';
  mkdirSync(join(consumer, 'node_modules/better-sqlite3/build/Release'), { recursive: true });
  copyFileSync(join(REPO, addon), join(consumer, addon));

  writeFileSync(join(consumer, 'probe.mjs'), PROBE);
  writeFileSync(join(consumer, 'resolve-hook.mjs'), RESOLVE_HOOK);
}, 420_000);

afterAll(() => work.cleanup());

describe('the xronox package, installed from its tarball into a fresh project', () => {
  it('ships the build (JavaScript, declarations, source maps), the README and the manifest; no sources, tests or tools', async () => {
    const files = ok(await run('tar', ['-tzf', tarball], work.path), 'tar -tzf').stdout.trim().split('\n').map((f) => f.replace(/^package\//, ''));
    for (const file of files) expect(file).toMatch(/^(package\.json|README\.md|LICENSE|dist\/(core|functions\/(api|jobs|cli|observability))\/.+\.(js|d\.ts|js\.map))$/);
    for (const entry of Object.values(manifest.exports)) {
      if (typeof entry === 'string') continue;
      for (const target of Object.values(entry as Record<string, string>)) expect(files).toContain(target.replace(/^\.\//, ''));
    }
    expect(files).toContain(manifest.bin.xronox);
  });

  it.each(ENTRY_POINTS)('%s: imports under plain node (ESM), and loads no backend SDK (mongodb, pg, better-sqlite3, the AWS SDK)', async (specifier) => {
    const { exports, packages } = await probe(specifier);
    expect(exports).toEqual(expect.arrayContaining(EXPECTED_EXPORTS[specifier] ?? ['(an entry point this test does not know: add it to EXPECTED_EXPORTS)']));
    // The probe sees what loads: the schema library every entry point uses is there.
    expect(packages).toContain('zod');
    expect(packages).toContain(manifest.name);
    expect(packages.filter((p) => BACKEND_SDK.test(p))).toEqual([]);
  });

  it('(the control of the test above) the probe does see a backend SDK that loads: the AWS SDK as ES modules, the MongoDB driver as CommonJS', async () => {
    expect((await probe('@aws-sdk/client-s3')).packages).toContain('@aws-sdk/client-s3');
    expect((await probe('mongodb')).packages).toEqual(expect.arrayContaining(['mongodb', 'bson']));
  });

  it('CommonJS on Node 20.19 and later can require() every entry point', async () => {
    const script = `for (const s of ${JSON.stringify(ENTRY_POINTS)}) console.log(s, Object.keys(require(s)).length > 0);`;
    const { stdout } = ok(await run(process.execPath, ['-e', script], consumer), 'require()');
    expect(stdout.trim().split('\n')).toEqual(ENTRY_POINTS.map((s) => `${s} true`));
  });

  it("type-checks a consumer's TypeScript and the README example with moduleResolution NodeNext, and with Bundler", async () => {
    writeFileSync(join(consumer, 'consumer.ts'), CONSUMER_TS);
    writeFileSync(join(consumer, 'readme-example.ts'), `${readmeExample()}\nexport {};\n`);
    const tsc = join(REPO, 'node_modules/typescript/bin/tsc');
    const check = (resolution: 'NodeNext' | 'Bundler') => {
      const file = `tsconfig.${resolution.toLowerCase()}.json`;
      const module = resolution === 'NodeNext' ? 'NodeNext' : 'ESNext';
      // A consumer's usual settings: strict, skipLibCheck (see CONSUMER_TS), Node's types.
      const compilerOptions = { strict: true, target: 'ES2022', module, moduleResolution: resolution, types: ['node'], skipLibCheck: true, noEmit: true };
      writeFileSync(join(consumer, file), JSON.stringify({ compilerOptions, files: ['consumer.ts', 'readme-example.ts'] }));
      return run(process.execPath, [tsc, '-p', file], consumer);
    };
    const [nodeNext, bundler] = await Promise.all([check('NodeNext'), check('Bundler')]);
    expect(`${nodeNext.stdout}${nodeNext.stderr}`).toBe('');
    expect(nodeNext.code).toBe(0);
    expect(`${bundler.stdout}${bundler.stderr}`).toBe('');
    expect(bundler.code).toBe(0);
  });

  it("runs the README's library example: writes and reads records on the embedded default (SQLite file and folder), loading no other backend's SDK", async () => {
    const dir = join(consumer, 'readme-run');
    mkdirSync(dir);
    // Type-stripped only; the type check is the test above. Wrapped so the probe runs it after its hook is in place.
    const js = ts.transpileModule(readmeExample(), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    const imports = js.split('\n').filter((l) => /^import\s/.test(l));
    const body = js.split('\n').filter((l) => !/^import\s/.test(l));
    writeFileSync(join(dir, 'readme-example.mjs'), `${imports.join('\n')}\nexport async function run() {\n${body.join('\n')}\n}\n`);

    const result = ok(await run(process.execPath, [join(consumer, 'probe.mjs'), join(dir, 'readme-example.mjs'), '--run'], dir), "the README's example");
    // It printed what it read back...
    const printed = result.stdout.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('PROBE '));
    expect(printed.length).toBeGreaterThan(0);
    expect(printed[0]).not.toMatch(/^(undefined|null)$/);
    // ... and what it wrote is in the SQLite file it created under the folder it ran in.
    const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.sqlite'));
    expect(files).toHaveLength(1);
    const db = new Database(join(dir, files[0]!), { readonly: true });
    try {
      expect((db.prepare('SELECT count(*) AS n FROM heads').get() as { n: number }).n).toBeGreaterThan(0);
      expect((db.prepare('SELECT count(*) AS n FROM versions').get() as { n: number }).n).toBeGreaterThan(0);
    } finally {
      db.close();
    }
    const { packages } = JSON.parse(result.stdout.split('\n').find((l) => l.startsWith('PROBE '))!.slice('PROBE '.length)) as Probe;
    expect(packages).toContain('better-sqlite3');
    expect(packages.filter((p) => BACKEND_SDK.test(p) && p !== 'better-sqlite3')).toEqual([]);
  });

  it('npx xronox --version prints the version, with plain node (tsx is not installed here)', async () => {
    expect(existsSync(join(consumer, 'node_modules/tsx'))).toBe(false);
    const result = ok(await run('npx', ['--no', '--', 'xronox', '--version'], consumer), 'npx xronox --version');
    expect(result.stdout).toBe(`${manifest.version}\n`);
  });

  it('passes publint (strict) and arethetypeswrong (ESM-only profile)', async () => {
    const bin = (name: string) => join(REPO, 'node_modules/.bin', name);
    const [publint, attw] = await Promise.all([run(bin('publint'), ['run', tarball, '--strict'], work.path), run(bin('attw'), [tarball, '--profile', 'esm-only'], work.path)]);
    expect(publint.code, `${publint.stdout}\n${publint.stderr}`).toBe(0);
    expect(publint.stdout).toContain('All good');
    expect(attw.code, `${attw.stdout}\n${attw.stderr}`).toBe(0);
  });
});
