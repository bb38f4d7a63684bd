import { execFile } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import openapiTS, { astToString } from 'openapi-typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.js';
import { call, KEYS, startServer, type TestServer } from './harness.js';

/**
 * A client generated from the live document, as a user of the API would make one: the types by
 * openapi-typescript from `GET /openapi.json` of a running server, the calls by openapi-fetch.
 * The client program below is type-checked by `tsc` (strict, NodeNext) against those types,
 * including lines that must NOT compile (a string `limit`, a missing path parameter, an unknown
 * path), then compiled and run by plain `node` against the server: create, read, conditional
 * update (If-Match, and the 412 of a stale one), list, and the counters.
 */

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const dir = tempDir('xronox-openapi-client');
let s: TestServer;

const CLIENT = `import createClient from 'openapi-fetch';
import type { paths } from './api.js';

const client = createClient<paths>({ baseUrl: process.env.XRONOX_BASE!, headers: { Authorization: \`Bearer \${process.env.XRONOX_KEY!}\` } });
const collection = process.env.XRONOX_COLLECTION!;
const where = { tenantId: 'acme', databaseType: 'runtime', collection } as const;
const COLLECTION = '/v1/tenants/{tenantId}/{databaseType}/{collection}';
const RECORD = '/v1/tenants/{tenantId}/{databaseType}/{collection}/{id}';

function must<T>(what: string, result: { data?: T; error?: unknown; response: Response }): T {
  if (result.data === undefined) throw new Error(\`\${what}: \${result.response.status} \${JSON.stringify(result.error)}\`);
  return result.data;
}

const created = await client.POST(COLLECTION, { params: { path: where }, body: { customer: 'ada', total: 12 } });
const id: string = must('create', created).id;
const etag = created.response.headers.get('etag')!;

const read = must('read', await client.GET(RECORD, { params: { path: { ...where, id } } }));
const total: unknown = read.data.total;

const updated = await client.PUT(RECORD, { params: { path: { ...where, id }, header: { 'if-match': etag } }, body: { customer: 'ada', total: 13 } });
const ov: number = must('update', updated).ov;

// The version the first write named is no longer current: 412, with the current ov.
const stale = await client.PUT(RECORD, { params: { path: { ...where, id }, header: { 'if-match': etag } }, body: { customer: 'eve', total: 0 } });
const staleStatus: number = stale.response.status;
const staleCurrentOv = stale.error?.currentOv;

const listed = must('list', await client.GET(COLLECTION, { params: { path: where, query: { limit: 10, includeDeleted: false } } }));
const items: Array<{ id: string; ov: number; data: Record<string, unknown> }> = listed.items;

const counters = must('counters', await client.GET('/v1/tenants/{tenantId}/{databaseType}/{collection}/_counters', { params: { path: where } }));

console.log(JSON.stringify({ id, etag, total, ov, staleStatus, staleCurrentOv, items, nextAfter: listed.nextAfter, totals: counters.totals }));

// What the types must refuse; never run.
export function refused(): void {
  // @ts-expect-error limit is an integer, not text
  void client.GET(COLLECTION, { params: { path: where, query: { limit: '10' } } });
  // @ts-expect-error includeDeleted is a boolean
  void client.GET(COLLECTION, { params: { path: where, query: { includeDeleted: 'true' } } });
  // @ts-expect-error a record path needs its id
  void client.GET(RECORD, { params: { path: where } });
  // @ts-expect-error messaging is not a record database type
  void client.GET(COLLECTION, { params: { path: { ...where, databaseType: 'messaging' } } });
  // @ts-expect-error no such path
  void client.GET('/v1/tenants/{tenantId}/nothing', {});
}
`;

/** Asynchronously: the server answering the program runs in this process. */
function run(command: string, args: string[], env: Record<string, string> = {}): Promise<{ status: number | null; output: string }> {
  return new Promise((done) => {
    execFile(command, args, { cwd: dir.path, encoding: 'utf8', timeout: 120_000, env: { PATH: process.env.PATH, ...env } }, (err, stdout, stderr) => {
      done({ status: err ? (typeof err.code === 'number' ? err.code : null) : 0, output: `${stdout}${stderr}` });
    });
  });
}

beforeAll(async () => {
  s = await startServer();
  // The consumer project: its own package.json and tsconfig; the repository's node_modules for
  // openapi-fetch and TypeScript (nothing is installed).
  symlinkSync(join(REPO, 'node_modules'), join(dir.path, 'node_modules'), 'dir');
  writeFileSync(join(dir.path, 'package.json'), JSON.stringify({ name: 'xronox-client-check', private: true, type: 'module' }));
  writeFileSync(
    join(dir.path, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { strict: true, noUncheckedIndexedAccess: true, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', outDir: 'out', types: ['node'], skipLibCheck: true },
      include: ['src'],
    }),
  );
  mkdirSync(join(dir.path, 'src'));
  writeFileSync(join(dir.path, 'src', 'client.ts'), CLIENT);
}, 60_000);
afterAll(async () => {
  await s?.close();
  dir.cleanup();
});

describe('a client generated from /openapi.json (openapi-typescript + openapi-fetch)', () => {
  it('generates types from the live document: numbers and booleans where the API takes them', async () => {
    const types = astToString(await openapiTS(new URL(`${s.base}/openapi.json`)));
    writeFileSync(join(dir.path, 'src', 'api.d.ts'), types);
    expect(types).toMatch(/limit\?: number;/);
    expect(types).toMatch(/includeDeleted\?: boolean;/);
    expect(types).not.toMatch(/limit\?: string;/);
  });

  it('type-checks the client program with tsc, refusing what the API refuses', async () => {
    const tsc = await run(process.execPath, [join(REPO, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json']);
    expect(tsc.output).toBe('');
    expect(tsc.status).toBe(0);
  });

  it('creates, reads, updates with If-Match, and lists over HTTP', async () => {
    const collection = `client-${Math.random().toString(36).slice(2, 10)}`;
    const client = await run(process.execPath, ['out/client.js'], { XRONOX_BASE: s.base, XRONOX_KEY: KEYS.acmeWriter, XRONOX_COLLECTION: collection });
    expect(client.status, client.output).toBe(0);
    const result = JSON.parse(client.output) as Record<string, unknown> & { id: string; items: Array<{ id: string; ov: number; data: unknown }> };
    expect(result).toMatchObject({ etag: '"0"', total: 12, ov: 1, staleStatus: 412, staleCurrentOv: 1, nextAfter: null, totals: { created: 1, updated: 1 } });
    expect(result.items).toEqual([expect.objectContaining({ id: result.id, ov: 1, data: { customer: 'ada', total: 13 } })]);

    // The server holds what the client wrote, and not what the stale write sent.
    const read = await call(s.base, 'GET', `/v1/tenants/acme/runtime/${collection}/${result.id}`, { key: KEYS.acmeReader });
    expect(read.json).toMatchObject({ ov: 1, data: { customer: 'ada', total: 13 } });
    expect(read.headers.get('etag')).toBe('"1"');
  });
});
