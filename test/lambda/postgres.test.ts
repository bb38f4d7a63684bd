/**
 * The API's Lambda handler (functions/api/lambda.ts) with a PostgreSQL config, on the machine's
 * real server: API Gateway HTTP API payload 2.0 events, many invocations in one warm container.
 * The config is what a deployment keeps in its SSM parameter (here a file, read by the same
 * loader), its connection string taken from `XRONOX_POSTGRES_URI` as serverless.yml's
 * `postgresUri` param sets it. Every schema is under a random prefix, dropped at the end. (The
 * packaged zip does the same in test/lambda/package.test.ts.)
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LambdaEvent } from 'hono/aws-lambda';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pooledPostgresCount } from '../../core/adapters/postgres/postgres-pool.js';
import { schemaNameFor } from '../../core/adapters/postgres/postgres-schema.js';
import { hashApiKey } from '../../functions/api/api-keys.js';
import { container, handler } from '../../functions/api/lambda.js';
import { describePostgres, dropSchemas, POSTGRES_URI, postgresAvailability, randomSchemaPrefix, withPostgres } from '../support/postgres.js';
import { dropDocumentSchemas, schemasOf } from '../support/postgres-docs.js';
import { tempDir } from '../support/temp.js';
import { httpApiEvent, type RequestSpec, lambdaContext } from './http-api-event.js';

const availability = await postgresAvailability();
const schemaPrefix = randomSchemaPrefix();
const KEY = `xrx_${randomBytes(12).toString('hex')}`;
const dir = tempDir('xronox-lambda-pg');
const saved = { file: process.env.XRONOX_CONFIG_FILE, ssm: process.env.XRONOX_CONFIG_SSM, uri: process.env.XRONOX_POSTGRES_URI };
let restoreStdout: () => void = () => undefined;
let invocations = 0;

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

/** One invocation, as Lambda makes it. */
async function invoke(spec: RequestSpec): Promise<{ status: number; json: Record<string, unknown> }> {
  invocations++;
  const event = httpApiEvent({ ...spec, headers: { authorization: `Bearer ${KEY}`, ...spec.headers } });
  const context = lambdaContext(`pg-${invocations}`);
  const result = await handler(event as unknown as LambdaEvent, context);
  return { status: result.statusCode, json: JSON.parse(result.body) as Record<string, unknown> };
}

describePostgres('the Lambda handler on PostgreSQL', availability, () => {
  beforeAll(() => {
    const file = join(dir.path, 'xronox.config.json');
    writeFileSync(
      file,
      JSON.stringify({
        dbConnections: { pg: { postgresUri: 'ENV.XRONOX_POSTGRES_URI', schemaPrefix } },
        localStorage: { basePath: 'blobs', enabled: true },
        databases: {
          runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'pg', dbName: 'rt_acme' }] },
          messaging: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'pg', dbName: 'msg_acme' }] },
        },
        api: { keys: [{ id: 'pg', sha256: hashApiKey(KEY), role: 'write', tenants: ['acme'] }] },
      }),
    );
    process.env.XRONOX_CONFIG_FILE = file;
    process.env.XRONOX_CONFIG_SSM = '/xronox/test/config';
    process.env.XRONOX_POSTGRES_URI = POSTGRES_URI;
    // The app logs one JSON line per request on stdout: kept out of the test output.
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) =>
      (typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')).startsWith('{"time"') ? true : write(chunk, ...rest)) as typeof process.stdout.write;
    restoreStdout = () => (process.stdout.write = write);
  });

  afterAll(async () => {
    restoreStdout();
    await container.close();
    restoreEnv('XRONOX_CONFIG_FILE', saved.file);
    restoreEnv('XRONOX_CONFIG_SSM', saved.ssm);
    restoreEnv('XRONOX_POSTGRES_URI', saved.uri);
    await dropSchemas(schemaPrefix);
    await dropDocumentSchemas(schemaPrefix);
    dir.cleanup();
    expect(await schemasOf(schemaPrefix)).toEqual([]);
  });

  it('writes then reads records and messages over API Gateway v2 events; every warm invocation reuses one engine and one pg.Pool', async () => {
    const records = '/v1/tenants/acme/runtime/orders';
    const created = await invoke({ method: 'POST', url: records, body: { customer: 'ada', total: 12 } });
    expect(created).toMatchObject({ status: 201, json: { ov: 0 } });
    const id = created.json.id as string;
    expect(await invoke({ method: 'GET', url: `${records}/${id}` })).toMatchObject({ status: 200, json: { id, ov: 0, data: { customer: 'ada', total: 12 } } });
    const updated = await invoke({ method: 'PUT', url: `${records}/${id}`, body: { customer: 'ada', total: 14 }, headers: { 'if-match': '"0"' } });
    expect(updated).toMatchObject({ status: 200, json: { ov: 1 } });
    expect(await invoke({ method: 'GET', url: `${records}/${id}?ov=0` })).toMatchObject({ status: 200, json: { ov: 0, data: { total: 12 } } });
    const stale = await invoke({ method: 'PUT', url: `${records}/${id}`, body: { total: 99 }, headers: { 'if-match': '"0"' } });
    expect(stale).toMatchObject({ status: 412, json: { code: 'VERSION_CONFLICT' } });
    for (let i = 0; i < 5; i++) expect((await invoke({ method: 'POST', url: records, body: { customer: `c${i}`, total: i } })).status).toBe(201);
    const page = await invoke({ method: 'GET', url: `${records}?limit=100` });
    expect((page.json.items as unknown[]).length).toBe(6);

    // A messaging collection: the document store, in its database's schema.
    const topics = '/v1/tenants/acme/messaging/topics';
    const at = { $date: '2026-01-01T00:00:00.000Z' };
    expect((await invoke({ method: 'POST', url: topics, body: { topic: 'payments', tenantId: 'acme', shards: 4, createdAt: at, _system: { updatedAt: at } } })).status).toBe(201);
    const found = await invoke({ method: 'GET', url: `${topics}?filter=${encodeURIComponent(JSON.stringify({ topic: 'payments' }))}` });
    expect(found).toMatchObject({ status: 200, json: { items: [{ topic: 'payments', shards: 4 }] } });

    // The rows are in PostgreSQL, in the schema of the database under this test's prefix.
    const rows = await withPostgres(async (c) => (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schemaNameFor(schemaPrefix, 'rt_acme')}"._heads`)).rows);
    expect(rows).toEqual([{ n: 6 }]);

    // One build for every invocation: one engine, one index store, one pool for the URI.
    expect(container.stats).toMatchObject({ builds: 1, failedBuilds: 0, engines: 1, indexStores: 1, apps: 1 });
    expect(pooledPostgresCount()).toBe(1);
  });
});
