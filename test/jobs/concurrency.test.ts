/**
 * Jobs keep `jobs.concurrency` object requests in flight, no more and no fewer: a proxy in front
 * of s3rver holds each version-object request until that many are waiting (see
 * test/support/inflight-proxy.ts), so a job that sent them one at a time would be seen with one,
 * and one that overshot with more.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJob } from '../../core/jobs/run.js';
import { initXronox, type Xronox } from '../../core/xronox.js';
import { type InflightProxy, startInflightProxy } from '../support/inflight-proxy.js';
import { type S3rverHandle, s3rverConnection, startS3rver } from '../support/s3rver.js';
import { tempDir } from '../support/temp.js';

const CONCURRENCY = 5;
const dir = tempDir('xronox-jobs-concurrency');
let server: S3rverHandle;
const open: Xronox[] = [];
const proxies: InflightProxy[] = [];

beforeAll(async () => {
  server = await startS3rver({ buckets: ['concurrency-data'] });
});
afterAll(async () => {
  await Promise.all(open.map((x) => x.shutdown()));
  await Promise.all(proxies.map((p) => p.close()));
  await server.dispose();
  dir.cleanup();
});

async function engine(hold: (method: string, url: string) => boolean): Promise<{ x: Xronox; proxy: InflightProxy }> {
  const proxy = await startInflightProxy(server.endpoint, { hold, gather: CONCURRENCY, maxWaitMs: 2000 });
  proxies.push(proxy);
  const x = initXronox({
    dbConnections: { local: { sqlitePath: join(dir.path, 'xronox.sqlite') } },
    spacesConnections: { s3: { ...s3rverConnection(server), endpoint: proxy.endpoint } },
    databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', spaceConnRef: 's3', dbName: 'rt_acme', bucket: 'concurrency-data' }] } },
    jobs: { archive: { mode: 'deferred', sweepAfterMinutes: 0 }, concurrency: CONCURRENCY },
  });
  open.push(x);
  return { x, proxy };
}

describe('job concurrency against s3rver', () => {
  it('the archive sweep puts jobs.concurrency version objects at once; the backup reads them jobs.concurrency at once', async () => {
    const seeding = await engine(() => false);
    const orders = seeding.x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    const created = await orders.createMany(Array.from({ length: 40 }, (_, i) => ({ n: i })));
    for (const { id } of created.slice(0, 10)) await orders.update(id, { n: -1 }, 0);
    await seeding.x.flush();
    await seeding.x.shutdown();

    const sweep = await engine((method, url) => method === 'PUT' && url.includes('/versions/'));
    const archived = await runJob(sweep.x, 'archive', { log: null });
    expect(archived).toMatchObject({ complete: true, counts: { archivedVersions: 50 } });
    expect(sweep.proxy.maxInFlight).toBe(CONCURRENCY);
    await sweep.x.shutdown();

    const backup = await engine((method, url) => method === 'GET' && url.includes('/versions/'));
    const report = await runJob(backup.x, 'backup', { log: null });
    expect(report).toMatchObject({ complete: true, counts: { backedUpVersions: 50 } });
    expect(backup.proxy.maxInFlight).toBe(CONCURRENCY);
  });
});
