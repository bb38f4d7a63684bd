/**
 * `npm run offline` (`osls offline start --stage local`): serverless-offline runs the functions of
 * the same serverless.yml, bundled by serverless-esbuild, behind a local HTTP API emulation, with
 * the offline S3 server of infra/offline/s3-events.cjs (s3rver, which delivers S3 event
 * notifications to the functions that subscribe to them). Over real HTTP, with real events:
 * - the API: create and read a record, fetch the public routes;
 * - the archive function, triggered by the S3 notification of each current.json the API writes;
 * - the scheduled functions: registered on their schedules, and run on demand through
 *   serverless-offline's Lambda Invoke API with an EventBridge scheduled event.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snapshotId } from '../../core/jobs/snapshot.js';
import { hashApiKey } from '../../functions/api/api-keys.js';
import { tempDir } from '../support/temp.js';
import { s3PutEvent, scheduledEvent } from './job-events.js';
import { freePort, type Offline, serviceDir, startOffline } from './osls.js';

const KEY = 'xrx_offline-smoke-test-key';
/** The local stage's bucket names (serverless.yml params), which the offline S3 server creates. */
const BUCKETS = { records: 'xronox-local-records', versions: 'xronox-local-versions', content: 'xronox-local-content', backups: 'xronox-local-backups' };
const service = serviceDir('xronox-offline');
const data = tempDir('xronox-offline-data');
let offline: Offline | undefined;
let s3: S3Client | undefined;
let skip: string | undefined;
const auth = { authorization: `Bearer ${KEY}` };

beforeAll(async () => {
  let ports: number[];
  try {
    ports = [await freePort(), await freePort(), await freePort()];
  } catch (err) {
    skip = `cannot listen on 127.0.0.1 here (${(err as Error).message}), so serverless-offline cannot run`;
    return;
  }
  const [httpPort, lambdaPort, s3Port] = ports as [number, number, number];
  const configFile = join(data.path, 'xronox.config.json');
  // As infra/offline/xronox.config.json: the runtime tenant's blobs in the offline S3 server,
  // versions left to the archive function (deferred), a SQLite file.
  writeFileSync(
    configFile,
    JSON.stringify({
      dbConnections: { local: { sqlitePath: 'xronox.sqlite' } },
      spacesConnections: {
        offline: { endpoint: `http://127.0.0.1:${s3Port}`, region: 'us-east-1', accessKey: 'S3RVER', secretKey: 'S3RVER', forcePathStyle: true, conditionalWrites: false },
      },
      databases: {
        runtime: {
          tenantDatabases: [
            {
              tenantId: 'demo',
              dbConnRef: 'local',
              dbName: 'rt_offline_demo',
              spaceConnRef: 'offline',
              recordsBucket: BUCKETS.records,
              versionsBucket: BUCKETS.versions,
              contentBucket: BUCKETS.content,
              backupsBucket: BUCKETS.backups,
            },
          ],
        },
      },
      jobs: { archive: { mode: 'deferred' } },
      api: { keys: [{ id: 'offline-test', sha256: hashApiKey(KEY), role: 'write', tenants: ['demo'] }] },
    }),
  );
  offline = await startOffline(service, { httpPort, lambdaPort, s3Port, env: { XRONOX_CONFIG_FILE: configFile } });
  s3 = new S3Client({
    endpoint: `http://127.0.0.1:${s3Port}`,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}, 180_000);

afterAll(async () => {
  s3?.destroy();
  await offline?.stop();
  service.cleanup();
  data.cleanup();
}, 60_000);

function skipped(ctx: { skip: () => void }): boolean {
  if (!skip) return false;
  console.warn(`skipped: ${skip}`);
  ctx.skip();
  return true;
}

async function keys(bucket: string, prefix: string): Promise<string[]> {
  const out = await s3!.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (out.Contents ?? []).map((o) => o.Key!).sort();
}

/** Polls until `probe` returns true, or fails with the offline output after `ms`. */
async function eventually(what: string, probe: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms:\n${offline!.output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** serverless-offline's Lambda Invoke API (RequestResponse), as `aws lambda invoke` calls it. */
async function invoke(functionName: string, event: unknown): Promise<{ status: number; functionError: string | null; payload: Record<string, unknown> }> {
  const res = await fetch(`${offline!.lambdaUrl}/2015-03-31/functions/${functionName}/invocations`, { method: 'POST', body: JSON.stringify(event) });
  return { status: res.status, functionError: res.headers.get('x-amz-function-error'), payload: (await res.json()) as Record<string, unknown> };
}

describe('npm run offline (osls offline start --stage local)', () => {
  it('serves the API over HTTP from the bundled handler', async (ctx) => {
    if (skipped(ctx)) return;
    const base = offline!.url;
    const created = await fetch(`${base}/v1/tenants/demo/runtime/orders`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ customer: 'ada', total: 12 }),
    });
    expect(created.status, offline!.output()).toBe(201);
    const { id } = (await created.json()) as { id: string };
    expect(created.headers.get('etag')).toBe('"0"');

    const read = await fetch(`${base}/v1/tenants/demo/runtime/orders/${id}`, { headers: auth });
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({ id, ov: 0, data: { customer: 'ada', total: 12 } });

    const updated = await fetch(`${base}/v1/tenants/demo/runtime/orders/${id}`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/json', 'if-match': '"0"' },
      body: JSON.stringify({ customer: 'ada', total: 14 }),
    });
    expect(updated.status).toBe(200);
    expect(updated.headers.get('etag')).toBe('"1"');

    expect((await fetch(`${base}/v1/tenants/demo/runtime/orders`)).status).toBe(401);
    const openapi = await fetch(`${base}/openapi.json`);
    expect(openapi.status).toBe(200);
    expect(((await openapi.json()) as { openapi: string }).openapi).toBe('3.1.0');
    expect((await fetch(`${base}/`)).status).toBe(200);
  });

  it('registers the three scheduled functions on their schedules', (ctx) => {
    if (skipped(ctx)) return;
    // serverless-offline's scheduler (node-schedule, local time; EventBridge's year field dropped).
    const output = offline!.output();
    expect(output).toContain('Scheduling [archiveSweep] cron: [*/15 * * * *]');
    expect(output).toContain('Scheduling [retention] cron: [30 3 * * ?]');
    expect(output).toContain('Scheduling [backup] cron: [0 2 * * ?]');
    expect(output).toContain(`Offline S3: s3://${BUCKETS.records}/*current.json → archive`);
  });

  it("triggers the archive function with the S3 notification of each current.json the API writes, which archives the record's versions", async (ctx) => {
    if (skipped(ctx)) return;
    const base = offline!.url;
    const created = await fetch(`${base}/v1/tenants/demo/runtime/orders`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ customer: 'grace', total: 1 }),
    });
    expect(created.status, offline!.output()).toBe(201);
    const { id } = (await created.json()) as { id: string };
    const updated = await fetch(`${base}/v1/tenants/demo/runtime/orders/${id}`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/json', 'if-match': '"0"' },
      body: JSON.stringify({ customer: 'grace', total: 2 }),
    });
    expect(updated.status).toBe(200);
    // Deferred: the API wrote current.json, and left the version objects to the archive function.
    expect(await keys(BUCKETS.records, `records/orders/${id}/`)).toEqual([`records/orders/${id}/current.json`]);
    await eventually('archiving both versions', async () => (await keys(BUCKETS.versions, `versions/orders/${id}/`)).length === 2);
    expect(await keys(BUCKETS.versions, `versions/orders/${id}/`)).toEqual([`versions/orders/${id}/v0.json`, `versions/orders/${id}/v1.json`]);
    // The plugin logs a delivery once the function has answered, which can be after the versions landed.
    const delivered = `Offline S3: archive ← s3://${BUCKETS.records}/records/orders/${id}/current.json`;
    await eventually('the plugin logging the delivery', async () => offline!.output().includes(delivered));
    // The archive function's report lines (one per event; S3 may deliver the two writes' events in one go or apart).
    const reports = offline!
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{') && l.includes('"msg":"xronox job archive finished"') && l.includes('"events":1'));
    expect(reports.length).toBeGreaterThan(0);
  });

  it('runs the scheduled functions on demand through the Lambda Invoke API with a scheduled event, and refuses other events', async (ctx) => {
    if (skipped(ctx)) return;
    const at = new Date();
    const event = scheduledEvent(at, 'xronox-local-backup');
    const backup = await invoke('xronox-local-backup', event);
    expect(backup.status, offline!.output()).toBe(200);
    expect(backup.functionError).toBeNull();
    expect(backup.payload).toMatchObject({ job: 'backup', complete: true, databases: { total: 1, done: 1 } });
    expect((backup.payload.counts as Record<string, number>).backedUpRecords).toBeGreaterThan(0);
    // The snapshot is named after the schedule's time, so a retried invocation finds it done.
    expect(await keys(BUCKETS.backups, `backups/orders/${at.toISOString().slice(0, 10)}/rt_offline_demo/`)).toContain(
      `backups/orders/${at.toISOString().slice(0, 10)}/rt_offline_demo/${snapshotId(new Date(event.time))}/manifest.json`,
    );

    for (const fn of ['archiveSweep', 'retention']) {
      const run = await invoke(`xronox-local-${fn}`, scheduledEvent(at, `xronox-local-${fn}`));
      expect(run.status, offline!.output()).toBe(200);
      expect(run.payload).toMatchObject({ job: fn === 'archiveSweep' ? 'archive' : fn, complete: true, failures: [] });
    }

    // A scheduled function given an S3 notification: Lambda's "Unhandled" function error.
    const refused = await invoke('xronox-local-retention', s3PutEvent(BUCKETS.records, ['records/orders/x/current.json']));
    expect(refused.functionError).toBe('Unhandled');
    expect(refused.payload.errorMessage).toMatch(/takes EventBridge scheduled events/);
  });
});
