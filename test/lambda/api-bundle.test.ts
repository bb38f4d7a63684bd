import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.js';
import { httpApiEvent } from './http-api-event.js';
import { REPO } from './osls.js';

/**
 * `/docs` and CORS from the Lambda bundle: functions/api/lambda.ts bundled with the esbuild options and
 * plugins of serverless.yml's `custom.esbuild` (as bench/http.bench.ts does), then run by plain
 * `node` from a temp folder where no `node_modules` can be found, as in a Lambda zip. Swagger
 * UI's files must come out of the bundle itself (the `inline-swagger-ui` plugin), byte for byte
 * those of the pinned package; and `XRONOX_CORS_ORIGINS`, which serverless.yml sets,
 * must reach the app. (`osls package` in test/lambda/package.test.ts builds the same
 * bundle, slower; this checks the one thing here without it.)
 */

const require = createRequire(import.meta.url);
const plugins = require('../../infra/esbuild/plugins.cjs') as Plugin[] & { SWAGGER_UI_FILES: string[] };
const dir = tempDir('xronox-docs-bundle');

interface Result {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
  isBase64Encoded: boolean;
}
let results: Record<string, Result>;

const ORIGIN = 'https://app.example.com';
const PATHS = ['/docs', '/docs/init.js', '/docs/swagger-ui-bundle.js', '/docs/swagger-ui.css', '/openapi.json'];

beforeAll(async () => {
  await build({
    entryPoints: [join(REPO, 'functions/api/lambda.ts')],
    outfile: join(dir.path, 'functions/api/lambda.cjs'),
    bundle: true,
    minify: true,
    platform: 'node',
    target: 'node22',
    format: 'cjs',
    external: ['better-sqlite3'],
    plugins,
    logLevel: 'error',
  });
  // The embedded default's config: the SQLite store is opened only when a request needs it, and
  // none of these does (better-sqlite3 is not in the bundle, and cannot be found from here).
  writeFileSync(join(dir.path, 'xronox.config.json'), JSON.stringify({
      dbConnections: { local: { sqlitePath: 'xronox.sqlite' } },
      localStorage: { basePath: 'blobs', enabled: true },
      databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme' }] } },
    }));
  const preflight = httpApiEvent({ method: 'OPTIONS', url: '/v1/tenants/acme/runtime/orders', headers: { Origin: ORIGIN, 'Access-Control-Request-Method': 'POST' } });
  writeFileSync(join(dir.path, 'events.json'), JSON.stringify([...PATHS.map((url) => httpApiEvent({ method: 'GET', url })), preflight]));
  writeFileSync(
    join(dir.path, 'run.cjs'),
    `const { handler } = require('./functions/api/lambda.cjs');
const events = require('./events.json');
(async () => {
  const out = {};
  for (const event of events) out[event.requestContext.http.method + ' ' + event.rawPath] = await handler(event);
  require('node:fs').writeFileSync('results.json', JSON.stringify(out));
  process.exit(0);
})().catch((err) => { console.error(err); process.exit(1); });
`,
  );
  const run = spawnSync(process.execPath, ['run.cjs'], {
    cwd: dir.path,
    env: { PATH: process.env.PATH, XRONOX_CONFIG_FILE: join(dir.path, 'xronox.config.json'), XRONOX_CORS_ORIGINS: ORIGIN },
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (run.status !== 0) throw new Error(`The bundle failed (exit ${run.status}): ${run.stderr}`);
  const byKey = JSON.parse(readFileSync(join(dir.path, 'results.json'), 'utf8')) as Record<string, Result>;
  results = Object.fromEntries(Object.entries(byKey).map(([key, result]) => [key.replace(/^GET /, ''), result]));
}, 120_000);
afterAll(() => dir.cleanup());

describe('the Lambda bundle', () => {
  it('answers a CORS preflight from the origin XRONOX_CORS_ORIGINS names', () => {
    const answer = results['OPTIONS /v1/tenants/acme/runtime/orders']!;
    expect(answer.statusCode).toBe(204);
    expect(answer.headers['access-control-allow-origin']).toBe(ORIGIN);
  });

  it('runs /docs where swagger-ui-dist cannot be resolved', () => {
    expect(() => createRequire(join(dir.path, 'run.cjs')).resolve('swagger-ui-dist/package.json')).toThrow();
  });

  it("serves Swagger UI's files from the bundle, byte for byte the pinned package's, under the docs policy", () => {
    for (const path of PATHS) expect(results[path]?.statusCode, `${path}: ${results[path]?.body.slice(0, 300)}`).toBe(200);
    for (const name of plugins.SWAGGER_UI_FILES) {
      const served = results[`/docs/${name}`]!;
      expect(served.isBase64Encoded, name).toBe(false);
      expect(served.body === readFileSync(require.resolve(`swagger-ui-dist/${name}`), 'utf8'), `${name} as in the package`).toBe(true);
      expect(served.headers['content-security-policy'], name).toContain("default-src 'none'");
    }
    expect(results['/docs']!.body).toContain('./docs/swagger-ui-bundle.js');
    expect(JSON.parse(results['/openapi.json']!.body)).toMatchObject({ openapi: '3.1.0', servers: [{ url: '.' }] });
  });
});
