/**
 * The rules of the retention job one by one, on the embedded default (SQLite × local files; the
 * same code runs over S3 in retention.test.ts): `retention.ver.days` alone, `maxPerItem` with
 * versions still waiting for the archive, collections past one page (200 records or logs), and
 * logs past their window. Each case runs the job with its own clock (`runJob(…, { now })`) and
 * compares what is left with what the policy says by its definition.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../core/adapters/fs/fs-blob-store.js';
import type { XronoxConfigInput } from '../../core/config/schema.js';
import type { Collection } from '../../core/engine/collection.js';
import type { Xronox } from '../../core/xronox.js';
import { runJob } from '../../core/jobs/run.js';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';
import { allKeys } from './support.js';

const DAY = 24 * 3600 * 1000;
const open: { x: Xronox; cleanup: () => void }[] = [];
afterEach(async () => {
  for (const { x, cleanup } of open.splice(0)) {
    await x.shutdown();
    cleanup();
  }
});

/** A runtime tenant (`orders`, versions left to the archive sweep) and a logs database, in a fresh folder. */
function start(extra: Partial<XronoxConfigInput>) {
  const dir = tempDir('xronox-retention-rules');
  const x = initXronox({
    dbConnections: { local: { sqlitePath: join(dir.path, 'xronox.sqlite') } },
    localStorage: { basePath: join(dir.path, 'blobs'), enabled: true },
    databases: {
      runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme' }] },
      logs: { genericDatabase: { dbConnRef: 'local', dbName: 'logs_main' } },
      messaging: { genericDatabase: { dbConnRef: 'local', dbName: 'msg_main' } },
    },
    jobs: { archive: { mode: 'deferred', sweepAfterMinutes: 15 } },
    ...extra,
  });
  open.push({ x, cleanup: dir.cleanup });
  const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
  const logs = x.with({ databaseType: 'logs', tier: 'generic', collection: 'activity' });
  const blobs = new FsBlobStore({ basePath: join(dir.path, 'blobs') });
  /** The ovs of the version objects of a record in the versions folder, newest first. */
  const versionObjects = async (id: string) =>
    (await allKeys(blobs, 'rt_acme', `versions/orders/${id}/`)).map((k) => Number(/v(\d+)\.json$/.exec(k)![1])).sort((a, b) => b - a);
  const messaging = (collection: string) => x.with({ databaseType: 'messaging', tier: 'generic', collection });
  return { x, orders, logs, messaging, versionObjects };
}

/** Writes `count` more versions of a record (creating it first when `id` is undefined); returns its id. */
async function versions(orders: Collection, count: number, id?: string): Promise<string> {
  let current = id;
  for (let i = 0; i < count; i++) {
    if (current === undefined) current = (await orders.create({ step: 0 })).id;
    else {
      const head = (await orders.getLatest(current))!;
      await orders.update(current, { step: head.ov + 1 }, head.ov);
    }
  }
  return current!;
}

const kept = async (orders: Collection, id: string) => (await orders.history(id, { limit: 1000 })).items.map((h) => h.ov);

/** An instant strictly between what was written before and what is written after. */
async function instantBetween(): Promise<Date> {
  await new Promise((r) => setTimeout(r, 5));
  const t = new Date();
  await new Promise((r) => setTimeout(r, 5));
  return t;
}

/** Archives every pending version (the sweep, run an hour on so that all of them are old enough). */
async function archiveAll(x: Xronox): Promise<void> {
  await x.flush();
  const report = await runJob(x, 'archive', { now: new Date(Date.now() + 3600_000), log: null });
  expect(report).toMatchObject({ complete: true, failures: [] });
}

describe('retention rules on the embedded default', () => {
  it('days without maxPerItem: versions superseded before the cut-off go; the version current then and later ones stay', async () => {
    const { x, orders, logs, versionObjects } = start({ retention: { ver: { days: 7 } } });
    // No jobs.retention.logsDays: logs are kept, however old.
    const log = await logs.create({ action: 'login' });
    const old = await versions(orders, 5);
    const straddle = await versions(orders, 3);
    const untouched = await versions(orders, 1);
    const cutoff = await instantBetween();
    await versions(orders, 2, straddle);
    const young = await versions(orders, 2);
    await archiveAll(x);

    const report = await runJob(x, 'retention', { now: new Date(cutoff.getTime() + 7 * DAY), log: null });
    expect(report).toMatchObject({ complete: true, failures: [] });
    expect({ old: await kept(orders, old), straddle: await kept(orders, straddle), untouched: await kept(orders, untouched), young: await kept(orders, young) }).toEqual({
      old: [4],
      straddle: [4, 3, 2],
      untouched: [0],
      young: [1, 0],
    });
    expect(report.counts).toMatchObject({ prunedVersions: 6, prunedRecords: 2 });
    expect(report.counts.versionsAwaitingArchival ?? 0).toBe(0);
    expect(await versionObjects(old)).toEqual([4]);
    expect(await versionObjects(straddle)).toEqual([4, 3, 2]);
    expect(await logs.getLatest(log.id)).toMatchObject({ data: { action: 'login' } });
    expect(report.counts.expiredLogs ?? 0).toBe(0);

    // A day earlier nothing had been superseded for 7 days yet.
    const { x: x2, orders: orders2 } = start({ retention: { ver: { days: 7 } } });
    const early = await versions(orders2, 3);
    const before = await runJob(x2, 'retention', { now: new Date(Date.now() + 6 * DAY), log: null });
    expect(before.counts.prunedVersions ?? 0).toBe(0);
    expect(await kept(orders2, early)).toEqual([2, 1, 0]);
  });

  it('maxPerItem with versions still waiting for the archive: nothing at or above the first pending one goes, and what waits is counted', async () => {
    const { x, orders, versionObjects } = start({ retention: { ver: { maxPerItem: 3 } } });
    // Archived 0…9, pending 10…11: the policy's cut (ov 9) is below the first pending version.
    const tail = await versions(orders, 10);
    // Archived 0…4, pending 5…9: the policy's cut (ov 7) is above the first pending version.
    const waiting = await versions(orders, 5);
    await archiveAll(x);
    await versions(orders, 2, tail);
    await versions(orders, 5, waiting);
    await x.flush();

    const report = await runJob(x, 'retention', { log: null });
    expect(report).toMatchObject({ complete: true, failures: [] });
    expect(await kept(orders, tail)).toEqual([11, 10, 9]);
    expect(await kept(orders, waiting)).toEqual([9, 8, 7, 6, 5]);
    // 7 − 5: versions 5 and 6 are past the policy but not archived yet.
    expect(report.counts).toMatchObject({ prunedVersions: 14, prunedRecords: 2, versionsAwaitingArchival: 2 });
    expect(await versionObjects(tail)).toEqual([9]);
    expect(await versionObjects(waiting)).toEqual([]);

    // Once archived, the next run prunes what waited.
    await archiveAll(x);
    const again = await runJob(x, 'retention', { log: null });
    expect(again.counts).toMatchObject({ prunedVersions: 2, prunedRecords: 1 });
    expect(again.counts.versionsAwaitingArchival ?? 0).toBe(0);
    expect(await kept(orders, tail)).toEqual([11, 10, 9]);
    expect(await kept(orders, waiting)).toEqual([9, 8, 7]);
  });

  it('reaches every record of a collection past one page of 200', async () => {
    const { x, orders } = start({ retention: { ver: { maxPerItem: 1 } }, jobs: { archive: { mode: 'inline' } } });
    const created = await orders.createMany(Array.from({ length: 205 }, (_, i) => ({ step: 0, n: i })));
    for (const { id } of created) await orders.update(id, { step: 1 }, 0);
    await x.flush();

    const report = await runJob(x, 'retention', { log: null });
    expect(report).toMatchObject({ complete: true, failures: [] });
    expect(report.counts).toMatchObject({ prunedVersions: 205, prunedRecords: 205 });
    for (const { id } of created) expect({ id, kept: await kept(orders, id) }).toEqual({ id, kept: [1] });
  });

  it('expires logs created before the window, past one page of 200, and keeps the younger ones', async () => {
    const { x, logs } = start({ jobs: { archive: { mode: 'deferred' }, retention: { logsDays: 1 } } });
    const old = await logs.createMany(Array.from({ length: 205 }, (_, i) => ({ action: 'login', n: i })));
    const cutoff = await instantBetween();
    const young = [(await logs.create({ action: 'logout' })).id, (await logs.create({ action: 'logout' })).id];
    await x.flush();

    const report = await runJob(x, 'retention', { now: new Date(cutoff.getTime() + DAY), log: null });
    expect(report).toMatchObject({ complete: true, failures: [] });
    expect(report.counts.expiredLogs).toBe(205);
    for (const { id } of old) expect(await logs.getLatest(id, { includeDeleted: true })).toBeNull();
    for (const id of young) expect(await logs.getLatest(id)).toMatchObject({ data: { action: 'logout' } });
  });

  it('counts expired messaging documents of every collection as expired documents, and only shared_memory ones as shared memory', async () => {
    const { x, messaging } = start({ jobs: { archive: { mode: 'inline' }, retention: { messagingTtlDays: { messages: 1 } } } });
    const messages = messaging('messages');
    const now = new Date();
    for (const msgId of ['m-1', 'm-2']) {
      await messages.insert({ topic: 'orders.created', msgId, tenantId: 'acme', headers: {}, payload: { msgId }, firstSeenAt: now, size: 10, _system: { createdAt: now } });
    }
    const memory = messaging('shared_memory');
    await memory.upsert({ key: 'k', namespace: 'n', tenantId: 'acme' }, { key: 'k', namespace: 'n', tenantId: 'acme', val: 1, _system: { createdAt: now, updatedAt: now, retentionDays: 30 } });

    const report = await runJob(x, 'retention', { now: new Date(now.getTime() + 2 * DAY), log: null });
    expect(report).toMatchObject({ complete: true, failures: [] });
    expect(report.counts.expiredDocuments).toBe(2);
    expect(report.counts.expiredSharedMemory ?? 0).toBe(0);
    expect(await messages.find({})).toEqual([]);
    expect(await memory.findOne({ key: 'k', namespace: 'n' })).toMatchObject({ val: 1 });
  });
});
