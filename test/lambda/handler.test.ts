/**
 * The API's Lambda handler (functions/api/lambda.ts), called as Lambda calls it: many times in
 * one process (one warm container), with API Gateway HTTP API payload 2.0 events, against the
 * embedded default (SQLite file + blob folder) read from a JSON file named by XRONOX_CONFIG_FILE.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LambdaEvent } from 'hono/aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pooledClientCount } from '../../core/adapters/s3/s3-client-pool.js';
import { container, handler } from '../../functions/api/lambda.js';
import { tempDir } from '../support/temp.js';
import { httpApiEvent, type RequestSpec, lambdaContext } from './http-api-event.js';
import { writeHandlerConfig } from './handler-config.js';

const INVOCATIONS = 25;
const KEY = 'xrx_lambda-handler-test-key';
const TENANT = 'acme';
const DB_NAME = 'rt_lambda_acme';
const dir = tempDir('xronox-lambda');
const logLines: Array<Record<string, unknown>> = [];
/** The other JSON lines: metrics, errors. */
const otherLines: Array<Record<string, unknown>> = [];
let invocations = 0;
let recordsCreated = 0;
let restoreStdout: () => void = () => undefined;
const savedFile = process.env.XRONOX_CONFIG_FILE;
const savedSsm = process.env.XRONOX_CONFIG_SSM;

beforeAll(() => {
  // Relative paths (data/…): resolved against the file's folder, as for any config file.
  const file = writeHandlerConfig(dir.path, { tenant: TENANT, dbName: DB_NAME, keyId: 'lambda-test', key: KEY, dataDir: 'data' });
  process.env.XRONOX_CONFIG_FILE = file;
  // What serverless.yml also sets: the file must win over it.
  process.env.XRONOX_CONFIG_SSM = '/xronox/test/config';
  // The function logs JSON lines (one per request, with warnings and errors on stderr) and EMF
  // metric blobs; keep the lines to check, out of the test output.
  const writes = { stdout: process.stdout.write.bind(process.stdout), stderr: process.stderr.write.bind(process.stderr) };
  for (const stream of ['stdout', 'stderr'] as const) {
    process[stream].write = ((chunk: string | Uint8Array, ...rest: never[]) => {
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      if (!text.startsWith('{')) return writes[stream](chunk, ...rest);
      for (const line of text.trim().split('\n')) {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        if (parsed.msg === 'request') logLines.push(parsed);
        else otherLines.push(parsed);
      }
      return true;
    }) as typeof process.stdout.write;
  }
  restoreStdout = () => {
    process.stdout.write = writes.stdout;
    process.stderr.write = writes.stderr;
  };
});

afterAll(async () => {
  restoreStdout();
  await container.close();
  if (savedFile === undefined) delete process.env.XRONOX_CONFIG_FILE;
  else process.env.XRONOX_CONFIG_FILE = savedFile;
  if (savedSsm === undefined) delete process.env.XRONOX_CONFIG_SSM;
  else process.env.XRONOX_CONFIG_SSM = savedSsm;
  dir.cleanup();
});

interface Answer {
  status: number;
  headers: Record<string, string>;
  json: Record<string, unknown>;
}

/** One Lambda invocation: the event API Gateway would send, and the result it would turn into a response. */
async function invoke(spec: RequestSpec, auth = true): Promise<Answer> {
  invocations++;
  const event = httpApiEvent({ ...spec, headers: { ...(auth ? { Authorization: `Bearer ${KEY}` } : {}), ...spec.headers } });
  const context = lambdaContext(`req-${invocations}`);
  // hono's event type wants `body: string | null`; API Gateway leaves `body` out when there is none.
  const result = await handler(event as unknown as LambdaEvent, context);
  expect(result.isBase64Encoded).toBe(false);
  const headers = 'headers' in result && result.headers ? (result.headers as Record<string, string>) : {};
  return { status: result.statusCode, headers, json: JSON.parse(result.body) as Record<string, unknown> };
}

const records = `/v1/tenants/${TENANT}/runtime/orders`;

describe(`the Lambda handler, ${INVOCATIONS} invocations in one warm container`, () => {
  it('creates, reads and updates a record over API Gateway v2 events, building the engine and its stores exactly once', async () => {
    expect(container.stats.builds).toBe(0);

    const created = await invoke({ method: 'POST', url: records, body: { customer: 'ada', total: 12 }, headers: { 'X-Xronox-Reason': 'checkout' } });
    expect(created.status).toBe(201);
    recordsCreated++;
    const id = created.json.id as string;
    expect(created.json).toMatchObject({ ov: 0 });
    expect(created.headers.location).toBe(`${records}/${id}`);
    expect(created.headers.etag).toBe('"0"');

    const read = await invoke({ method: 'GET', url: `${records}/${id}` });
    expect(read.status).toBe(200);
    expect(read.json).toMatchObject({ id, ov: 0, data: { customer: 'ada', total: 12 } });
    expect(read.headers.etag).toBe('"0"');

    const updated = await invoke({ method: 'PUT', url: `${records}/${id}`, body: { customer: 'ada', total: 14 }, headers: { 'If-Match': read.headers.etag! } });
    expect(updated.status).toBe(200);
    expect(updated.json).toMatchObject({ id, ov: 1 });
    expect(updated.headers.etag).toBe('"1"');
    // The handler waited for the blob sync before returning, so the version is already in the folder.
    const versionFile = join(dir.path, 'data/blobs', DB_NAME, 'versions/orders', id, 'v1.json');
    expect(existsSync(versionFile)).toBe(true);
    expect(JSON.parse(readFileSync(versionFile, 'utf8'))).toMatchObject({ ov: 1, data: { total: 14 } });

    const stale = await invoke({ method: 'PUT', url: `${records}/${id}`, body: { total: 99 }, headers: { 'If-Match': '"0"' } });
    expect(stale.status).toBe(412);
    expect(stale.json).toMatchObject({ code: 'VERSION_CONFLICT', currentOv: 1 });

    const latest = await invoke({ method: 'GET', url: `${records}/${id}` });
    expect(latest.json).toMatchObject({ ov: 1, data: { customer: 'ada', total: 14 } });
    const asCreated = await invoke({ method: 'GET', url: `${records}/${id}?ov=0` });
    expect(asCreated.json).toMatchObject({ ov: 0, op: 'create', reason: 'checkout', data: { total: 12 } });

    // The routes serverless.yml declares besides the catch-all: the root and the OpenAPI document.
    const root = await invoke({ method: 'GET', url: '/' }, false);
    expect(root.status).toBe(200);
    const openapi = await invoke({ method: 'GET', url: '/openapi.json' }, false);
    expect(openapi.status).toBe(200);
    expect(openapi.json.openapi).toBe('3.1.0');
    const anonymous = await invoke({ method: 'GET', url: records }, false);
    expect(anonymous.status).toBe(401);

    // The rest of the invocations: more writes, and listings with a query string.
    while (invocations < INVOCATIONS - 1) {
      const n = invocations;
      const more = await invoke({ method: 'POST', url: records, body: { customer: `c${n}`, total: n } });
      expect(more.status).toBe(201);
      recordsCreated++;
    }
    const page = await invoke({ method: 'GET', url: `${records}?limit=100&filter=${encodeURIComponent(JSON.stringify({ customer: 'ada' }))}` });
    expect(page.status).toBe(200);
    expect((page.json.items as unknown[]).length).toBe(1);

    expect(invocations).toBe(INVOCATIONS);
    // One build for all of them: one engine, one SQLite index store, one blob store, no S3 or SSM client.
    expect(container.stats).toEqual({ builds: 1, failedBuilds: 0, engines: 1, indexStores: 1, blobStores: 1, documentStores: 0, ssmClients: 0, apps: 1 });
    expect(pooledClientCount()).toBe(0);
    expect((await container.get()).source).toEqual({ kind: 'file', path: process.env.XRONOX_CONFIG_FILE });
    // And the app logged every request once, each with its own request id.
    expect(logLines.length).toBe(INVOCATIONS);
    expect(new Set(logLines.map((l) => l.requestId)).size).toBe(INVOCATIONS);
  });

  it('an invocation that finds no working config answers a 500 problem, and the next one builds again', async () => {
    await container.close();
    const before = { ...container.stats };
    const good = process.env.XRONOX_CONFIG_FILE!;
    process.env.XRONOX_CONFIG_FILE = join(dir.path, 'missing.json');
    otherLines.length = 0;
    const failed = await invoke({ method: 'GET', url: records });
    expect(failed.status).toBe(500);
    expect(failed.headers['content-type']).toBe('application/problem+json');
    expect(failed.json).toMatchObject({ status: 500, correlationId: `req-${invocations}` });
    expect(JSON.stringify(failed.json)).not.toContain('missing.json');
    const errors = otherLines.filter((l) => l.level === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ msg: 'the API could not start; the next invocation tries again', correlationId: `req-${invocations}`, awsRequestId: `req-${invocations}` });
    expect(JSON.stringify(errors[0])).toContain('missing.json');

    process.env.XRONOX_CONFIG_FILE = good;
    const listed = await invoke({ method: 'GET', url: `${records}?limit=100` });
    expect(listed.status).toBe(200);
    expect((listed.json.items as unknown[]).length).toBe(recordsCreated);
    // Stores open on first use: a list that reads no object opens the index store and no blob store.
    expect(container.stats).toEqual({ ...before, builds: before.builds + 2, failedBuilds: before.failedBuilds + 1, engines: before.engines + 1, indexStores: before.indexStores + 1, apps: before.apps + 1 });
  });
});
