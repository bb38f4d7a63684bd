import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pooledClientCount } from '../../core/adapters/s3/s3-client-pool.js';
import { S3BlobStore } from '../../core/adapters/s3/s3-blob-store.js';
import type { XronoxConfigInput } from '../../core/config/schema.js';
import type { Xronox } from '../../core/xronox.js';
import { StorageError } from '../../core/errors.js';
import { initXronox } from '../../core/xronox.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { type S3rverHandle, s3rverConnection, startS3rver } from '../support/s3rver.js';
import { tempDir } from '../support/temp.js';

/** S3 behaviour that only a real server shows: layouts, outages, credentials, client reuse. */
describe('S3 storage against a real S3 server (s3rver)', () => {
  let server: S3rverHandle;
  const dir = tempDir('xronox-s3-e2e');
  const open: Xronox[] = [];
  let n = 0;

  beforeAll(async () => {
    server = await startS3rver();
  });
  afterAll(async () => {
    await Promise.all(open.map((x) => x.shutdown()));
    await server.dispose();
    dir.cleanup();
  });

  const s3 = (extra: Record<string, unknown> = {}) => ({ ...s3rverConnection(server), ...extra });

  function start(config: Omit<XronoxConfigInput, 'dbConnections'>, options: Parameters<typeof initXronox>[1] = {}): Xronox {
    const x = initXronox({ dbConnections: { local: { sqlitePath: `${dir.path}/x${n++}.sqlite` } }, ...config }, options);
    open.push(x);
    return x;
  }

  async function everyKey(buckets: string[]): Promise<string[]> {
    const inspect = new S3BlobStore({ ref: 'inspect', connection: s3() });
    const out: string[] = [];
    for (const bucket of buckets) {
      let startAfter: string | undefined;
      for (let page = 0; page < 100; page++) {
        const listing = await inspect.list(bucket, '', startAfter ? { startAfter } : {});
        out.push(...listing.keys.map((k) => `${bucket}/${k}`));
        startAfter = listing.nextStartAfter ?? undefined;
        if (!startAfter) break;
      }
    }
    await inspect.close();
    return out.sort();
  }

  /** The same workload in every style: a versioned order with content, a fact, a log entry. */
  async function workload(x: Xronox) {
    const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    const order = await orders.create({ total: 1, invoice: Buffer.from('pdf-bytes').toString('base64') });
    await orders.update(order.id, { total: 2, invoice: Buffer.from('pdf-bytes').toString('base64') }, 0);
    const facts = x.with({ databaseType: 'knowledge', tier: 'generic', collection: 'facts' });
    const fact = await facts.create({ text: 'water is wet' });
    await facts.update(fact.id, { text: 'water is wet, mostly' }, 0);
    const logs = x.with({ databaseType: 'logs', tier: 'generic', collection: 'activity' });
    const log = await logs.create({ action: 'login' });
    const day = (await logs.getLatest(log.id))!.createdAt.slice(0, 10);
    await x.flush();
    return { order: order.id, fact: fact.id, log: log.id, day };
  }

  const invoiceSha = createHash('sha256').update('pdf-bytes').digest('hex');
  const maps = { orders: { indexedProps: ['total'], base64Props: { invoice: { contentType: 'application/pdf' } } } };

  it('separate buckets per kind (the connection\'s buckets): exactly the documented keys', async () => {
    await server.createBuckets(['sa-records', 'sa-versions', 'sa-content', 'sa-backups']);
    const x = start({
      spacesConnections: { s3: s3({ buckets: { records: 'sa-records', versions: 'sa-versions', content: 'sa-content', backups: 'sa-backups' } }) },
      databases: {
        runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', spaceConnRef: 's3', dbName: 'rt_acme' }] },
        knowledge: { genericDatabase: { dbConnRef: 'local', spaceConnRef: 's3', dbName: 'kn' } },
        logs: { dbConnRef: 'local', spaceConnRef: 's3', dbName: 'logs' },
      },
      collectionMaps: maps,
    });
    const w = await workload(x);
    expect(await everyKey(['sa-records', 'sa-versions', 'sa-content', 'sa-backups'])).toEqual(
      [
        `sa-records/records/orders/${w.order}/current.json`,
        `sa-records/records/facts/${w.fact}/current.json`,
        `sa-records/records/activity/${w.day}/${w.log}.json`,
        `sa-versions/versions/orders/${w.order}/v0.json`,
        `sa-versions/versions/orders/${w.order}/v1.json`,
        `sa-content/content/orders/${w.order}/invoice/${invoiceSha}/blob.bin`,
      ].sort(),
    );
  });

  it('one bucket with folder prefixes, and the legacy single bucket: exactly the documented keys', async () => {
    await server.createBuckets(['sb-data', 'sd-legacy']);
    const prefixes = { records: 'app/records', versions: 'app/versions', content: 'app/content', backups: 'app/backups' };
    const styles = [
      { bucket: 'sb-data', conn: s3({ buckets: { records: 'sb-data', versions: 'sb-data', content: 'sb-data', backups: 'sb-data' }, folderPrefixes: prefixes }), p: 'app/' },
      { bucket: 'sd-legacy', conn: s3({ bucket: 'sd-legacy' }), p: '' },
    ];
    for (const style of styles) {
      const x = start({
        spacesConnections: { s3: style.conn },
        databases: {
          runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', spaceConnRef: 's3', dbName: 'rt_acme' }] },
          knowledge: { genericDatabase: { dbConnRef: 'local', spaceConnRef: 's3', dbName: 'kn' } },
          logs: { dbConnRef: 'local', spaceConnRef: 's3', dbName: 'logs' },
        },
        collectionMaps: maps,
      });
      const w = await workload(x);
      const b = `${style.bucket}/${style.p}`;
      expect(await everyKey([style.bucket])).toEqual(
        [
          `${b}records/orders/${w.order}/current.json`,
          `${b}records/facts/${w.fact}/current.json`,
          `${b}records/activity/${w.day}/${w.log}.json`,
          `${b}versions/orders/${w.order}/v0.json`,
          `${b}versions/orders/${w.order}/v1.json`,
          `${b}content/orders/${w.order}/invoice/${invoiceSha}/blob.bin`,
        ].sort(),
      );
    }
  });

  it("per-database buckets win over the connection's; static types never write versions", async () => {
    const buckets = ['sc-conn-records', 'sc-conn-versions', 'sc-conn-content', 'sc-rt-records', 'sc-rt-versions', 'sc-rt-content', 'sc-kn-records', 'sc-kn-content', 'sc-logs'];
    await server.createBuckets(buckets);
    const x = start({
      spacesConnections: { s3: s3({ buckets: { records: 'sc-conn-records', versions: 'sc-conn-versions', content: 'sc-conn-content' } }) },
      databases: {
        runtime: {
          tenantDatabases: [
            { tenantId: 'acme', dbConnRef: 'local', spaceConnRef: 's3', dbName: 'rt_acme', recordsBucket: 'sc-rt-records', versionsBucket: 'sc-rt-versions', contentBucket: 'sc-rt-content', backupsBucket: 'sc-rt-records' },
          ],
        },
        knowledge: { genericDatabase: { dbConnRef: 'local', spaceConnRef: 's3', dbName: 'kn', recordsBucket: 'sc-kn-records', contentBucket: 'sc-kn-content', backupsBucket: 'sc-kn-records' } },
        logs: { dbConnRef: 'local', spaceConnRef: 's3', dbName: 'logs', recordsBucket: 'sc-logs', contentBucket: 'sc-logs' },
      },
      collectionMaps: maps,
    });
    const w = await workload(x);
    expect(await everyKey(buckets)).toEqual(
      [
        `sc-rt-records/records/orders/${w.order}/current.json`,
        `sc-rt-versions/versions/orders/${w.order}/v0.json`,
        `sc-rt-versions/versions/orders/${w.order}/v1.json`,
        `sc-rt-content/content/orders/${w.order}/invoice/${invoiceSha}/blob.bin`,
        `sc-kn-records/records/facts/${w.fact}/current.json`,
        `sc-logs/records/activity/${w.day}/${w.log}.json`,
      ].sort(),
    );
  });

  it('the S3 server stopped mid-stream and restarted: no acknowledged write lost, none duplicated, the queue drains to zero', async () => {
    await server.createBuckets(['sf-data']);
    const x = start(
      {
        spacesConnections: { s3: s3({ bucket: 'sf-data' }) },
        databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', spaceConnRef: 's3', dbName: 'rt_acme' }] } },
        fallback: { enabled: true, maxRetries: 1000, retryDelayMs: 20, maxDelayMs: 200 },
      },
      { onBackgroundError: () => undefined },
    );
    const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    const acked = new Map<string, number>();
    const ids: string[] = [];
    for (let i = 0; i < 150; i++) {
      if (i === 40) await server.stop();
      if (i === 100) await server.start();
      if (i % 3 === 0 || ids.length === 0) {
        const r = await orders.create({ i });
        ids.push(r.id);
        acked.set(r.id, 0);
      } else {
        const id = ids[i % ids.length]!;
        const r = await orders.update(id, { i }, acked.get(id)!);
        acked.set(id, r.ov);
      }
    }
    const deadline = Date.now() + 30_000;
    for (;;) {
      await x.flush();
      const histories = await Promise.all(ids.map((id) => orders.history(id, { limit: 1000 })));
      if (histories.every((h) => h.items.every((v) => v.archived))) break;
      if (Date.now() > deadline) throw new Error('the sync did not catch up within 30 s of S3 coming back');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await x.admin.deadLetters()).toEqual([]);
    expect((await x.repair()).synced).toBe(0);
    const keys = await everyKey(['sf-data']);
    expect(new Set(keys).size).toBe(keys.length);
    let versions = 0;
    for (const [id, ov] of acked) {
      const mine = keys.filter((k) => k.startsWith(`sf-data/versions/orders/${id}/`));
      expect(mine.sort()).toEqual(Array.from({ length: ov + 1 }, (_, v) => `sf-data/versions/orders/${id}/v${v}.json`).sort());
      versions += mine.length;
      expect((await orders.getLatest(id))?.ov).toBe(ov);
    }
    expect(versions).toBe(150);
  });

  it('content offload with S3 down fails cleanly with a StorageError and writes nothing', async () => {
    await server.createBuckets(['sg-data']);
    const x = start(
      {
        spacesConnections: { s3: s3({ bucket: 'sg-data' }) },
        databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', spaceConnRef: 's3', dbName: 'rt_acme' }] } },
        collectionMaps: maps,
      },
      { onBackgroundError: () => undefined },
    );
    const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    await server.stop();
    try {
      await expect(orders.create({ total: 1, invoice: Buffer.from('x').toString('base64') })).rejects.toBeInstanceOf(StorageError);
    } finally {
      await server.start();
    }
    expect((await orders.listByMeta({ includeDeleted: true })).items).toEqual([]);
    expect(await x.counters.getTotals({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' })).toEqual({});
  });

  it('with fallback enabled, content S3 refuses is queued in the index, readable at once, and uploaded when S3 returns', async () => {
    await server.createBuckets(['sq-data']);
    const x = start(
      {
        spacesConnections: { s3: s3({ bucket: 'sq-data' }) },
        databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', spaceConnRef: 's3', dbName: 'rt_acme' }] } },
        collectionMaps: maps,
        fallback: { enabled: true, maxRetries: 1000, retryDelayMs: 20, maxDelayMs: 200 },
      },
      { onBackgroundError: () => undefined },
    );
    const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    const pdf = Buffer.from('queued invoice bytes');
    await server.stop();
    let id: string;
    try {
      ({ id } = await orders.create({ total: 1, invoice: pdf.toString('base64') }));
      // Served from the queue while S3 is away, presigned or not.
      expect((await orders.getLatest(id))?.data.invoice).toBe(pdf.toString('base64'));
      expect((await orders.getLatest(id, { presign: true }))?.data.invoice).toBe(pdf.toString('base64'));
    } finally {
      await server.start();
    }
    const key = `content/orders/${id}/invoice/${createHash('sha256').update(pdf).digest('hex')}/blob.bin`;
    const deadline = Date.now() + 30_000;
    while (!(await everyKey(['sq-data'])).includes(`sq-data/${key}`)) {
      if (Date.now() > deadline) throw new Error('the queued content was not uploaded within 30 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    await x.flush();
    const url = (await orders.getLatest(id, { presign: true, ttlSeconds: 60 }))?.data.invoice as string;
    expect(url).toMatch(/^http/);
    expect(Buffer.from(await (await fetch(url)).arrayBuffer()).equals(pdf)).toBe(true);
  });

  it('unknown credentials give a clear StorageError naming the connection, and health reports it without the secret', async () => {
    await server.createBuckets(['sh-data']);
    const errors: unknown[] = [];
    const x = start(
      {
        spacesConnections: { wrong: s3({ bucket: 'sh-data', accessKey: 'NOT-A-KEY', secretKey: 'super-secret-value-123' }) },
        databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', spaceConnRef: 'wrong', dbName: 'rt_acme' }] } },
      },
      { onBackgroundError: (err) => errors.push(err) },
    );
    const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    await orders.create({ total: 1 });
    await x.flush();
    expect(errors[0]).toBeInstanceOf(StorageError);
    expect(String((errors[0] as Error).message)).toMatch(/refused the credentials of spaces connection "wrong"/);
    const health = await x.admin.health();
    expect(health.ok).toBe(false);
    expect(health.databases[0]?.blobs).toMatchObject({ ok: false, error: expect.stringMatching(/credentials/) });
    expect(JSON.stringify(health)).not.toContain('super-secret-value-123');
  });

  it('uploads a large object as a multipart upload and reads it back byte for byte', async () => {
    await server.createBuckets(['sm-data']);
    const store = new S3BlobStore({ ref: 's3rver', connection: s3() });
    try {
      const big = randomBytes(12 * 1024 * 1024 + 123);
      await store.put('sm-data', 'big/blob.bin', big, { contentType: 'application/octet-stream' });
      expect(Buffer.from((await store.get('sm-data', 'big/blob.bin'))!).equals(big)).toBe(true);
      expect((await store.head('sm-data', 'big/blob.bin'))?.size).toBe(big.byteLength);
    } finally {
      await store.close();
    }
  });

  it('retries throttling (503 SlowDown) with backoff, and names the error once retries run out', async () => {
    await server.createBuckets(['st-data']);
    // A proxy in front of the real server that answers the first `throttle` requests with 503 SlowDown.
    let throttle = 0;
    let seen = 0;
    const proxy = await startFaultProxy(server.endpoint, () => {
      seen++;
      if (throttle === 0) return null;
      throttle--;
      return { kind: 'error', status: 503, code: 'SlowDown' };
    });
    const store = new S3BlobStore({ ref: 'throttled', connection: s3({ endpoint: proxy.endpoint, region: 'ap-south-1' }) });
    try {
      throttle = 2;
      seen = 0;
      await store.put('st-data', 'k.json', Buffer.from('{"ok":true}'));
      expect(seen).toBe(3);
      expect(Buffer.from((await store.get('st-data', 'k.json'))!).toString()).toBe('{"ok":true}');
      throttle = 100;
      seen = 0;
      const err = await store.put('st-data', 'k2.json', Buffer.from('{}')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageError);
      expect((err as Error).message).toMatch(/SlowDown/);
      expect(seen).toBe(5);
    } finally {
      await store.close();
      await proxy.close();
    }
  });

  it('one S3 client per connection per process, shared by instances and released by the last one', async () => {
    const before = pooledClientCount();
    const config = {
      // A region no other test uses: clients are pooled by endpoint, region and credentials.
      spacesConnections: { s3: s3({ bucket: 'sh-data', region: 'eu-central-1' }) },
      databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', spaceConnRef: 's3', dbName: 'rt_pool' }] } },
    };
    const a = start(config);
    const b = start(config);
    for (const x of [a, b]) for (let i = 0; i < 3; i++) x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: `c${i}` });
    await a.admin.health();
    await b.admin.health();
    expect(pooledClientCount()).toBe(before + 1);
    await a.shutdown();
    expect(pooledClientCount()).toBe(before + 1);
    expect((await b.admin.health()).ok).toBe(true);
    await b.shutdown();
    expect(pooledClientCount()).toBe(before);
  });
});
