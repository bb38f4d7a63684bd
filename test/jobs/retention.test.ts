/**
 * Retention through the scheduled handler: versions (`retention.ver.days` and `maxPerItem`),
 * logs past their window, messaging `shared_memory` documents past `_system.retentionDays`. The
 * expected result is computed from each record's history by the policy's definition, not by the
 * job's algorithm.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { Xronox } from '../../core/xronox.js';
import { runJob } from '../../core/jobs/run.js';
import { initXronox } from '../../core/xronox.js';
import { archiveSweep, container, retention } from '../../functions/jobs/handlers.js';
import { sqliteRows } from '../domains/support.js';
import { allKeys, freshNames, JOB_BACKENDS, jobConfig, lambdaContext, scheduledEvent, useJobBackend, writeConfig } from './support.js';

const DAY = 24 * 3600 * 1000;
const MAX_PER_ITEM = 5;
const DAYS = 7;

describe.each(JOB_BACKENDS)('retention through the scheduled handler: $name', (backend) => {
  if (backend.skip) {
    it.skip(`skipped: ${backend.skip}`, () => undefined);
    return;
  }
  const fx = useJobBackend(backend, 'xronox-jobs-retention');
  let x: Xronox | undefined;
  afterAll(async () => {
    await x?.shutdown();
  });

  it('keeps every current version and exactly the versions the policy says; logs and shared memory past their window go', async () => {
    const names = freshNames();
    await fx.inst.prepare(Object.values(names));
    const config = jobConfig(fx.inst, fx.dir.path, names, {
      retention: { ver: { days: DAYS, maxPerItem: MAX_PER_ITEM } },
      jobs: { archive: { mode: 'deferred', sweepAfterMinutes: 15 }, leaseSeconds: 2, retention: { logsDays: 1 } },
    });
    process.env.XRONOX_CONFIG_FILE = writeConfig(fx.dir.path, config);
    await container.close();
    x = initXronox(config);
    const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    const versionsBucket = fx.inst.bucketOf(names.rt);

    const ids: Record<string, string> = {};
    /** `versions` more versions of a record (the first one creates it), then maybe a delete. */
    const write = async (name: string, versions: number, deleteAfter = false) => {
      for (let i = 0; i < versions; i++) {
        const id = ids[name];
        if (id === undefined) ids[name] = (await orders.create({ status: 'new', sku: name, total: 0 }, 'w', 'create')).id;
        else {
          const head = (await orders.getLatest(id))!;
          await orders.update(id, { status: 'busy', sku: name, total: head.ov + 1 }, head.ov, 'w', 'edit');
        }
      }
      if (deleteAfter) await orders.delete(ids[name]!, (await orders.getLatest(ids[name]!))!.ov, 'w', 'gone');
    };
    // Phase 1, all before the cut-off.
    await write('long', 30);
    await write('single', 1);
    await write('deleted', 6, true);
    await write('exact', MAX_PER_ITEM);
    await x.flush();
    // The cut-off: a whole second (scheduled events carry whole seconds), after every phase-1 write.
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5));
    const cutoff = new Date(Math.floor(Date.now() / 1000) * 1000);
    await new Promise((r) => setTimeout(r, 5));
    // Phase 2, after it.
    await write('long', 3);
    await write('young', 2);
    await x.flush();
    // Archive everything so far, then write a record whose versions stay pending (never pruned).
    expect((await archiveSweep(scheduledEvent(new Date(Date.now() + 16 * 60_000), 'xronox-archive-sweep'), lambdaContext('xronox-archive-sweep'))).failures).toEqual([]);
    await write('pending', 8);

    const logs = x.with({ databaseType: 'logs', tier: 'generic', collection: 'activity' });
    const logIds = [(await logs.create({ action: 'login' })).id, (await logs.create({ action: 'logout' })).id];
    // Shared memory documents (messaging is a document database): the job's clock decides, by
    // each document's _system.updatedAt and own retentionDays (no jobs.retention.sharedMemoryDays here).
    const memory = x.with({ databaseType: 'messaging', tier: 'generic', collection: 'shared_memory' });
    const written = Date.now();
    const remember = async (key: string, ageDays: number, retentionDays?: number) => {
      const updatedAt = new Date(written - ageDays * DAY);
      const filter = { key, namespace: 'jobs', tenantId: 'acme' };
      await memory.upsert(filter, { ...filter, val: { key }, _system: { createdAt: updatedAt, updatedAt, ...(retentionDays !== undefined ? { retentionDays } : {}) } });
    };
    await remember('stale', 3, 2); // expired already: the first run, at the real time, removes it
    await remember('short', 0, 1); // expires in a day: live now, gone by the scheduled run a week on
    await remember('no-own-days', 400); // no retentionDays of its own and no default: kept
    await remember('long', 0, 30);
    await remember('older-but-longer', 20, 30); // expires in 10 days: after the scheduled run
    const memoryKeys = async () => (await memory.find({ namespace: 'jobs' }, { sort: { key: 1 } })).map((d) => d.key);
    // What the table itself holds, expired documents included (reads never return those).
    const storedMemory = () => {
      const db = new Database(join(fx.dir.path, 'xronox.sqlite'), { readonly: true });
      try {
        return sqliteRows(db, names.msg, 'shared_memory').map((r) => (JSON.parse(r.doc) as { key: string }).key).sort();
      } finally {
        db.close();
      }
    };
    expect(await memoryKeys()).toEqual(['long', 'no-own-days', 'older-but-longer', 'short']);
    expect(storedMemory()).toEqual(['long', 'no-own-days', 'older-but-longer', 'short', 'stale']);
    await x.flush();

    // What the policy keeps, from each record's full history (newest first).
    const expected: Record<string, number[]> = {};
    const before: Record<string, unknown[]> = {};
    const cut = cutoff.toISOString().replace('Z', '000Z');
    for (const [name, id] of Object.entries(ids)) {
      const items = (await orders.history(id, { limit: 500 })).items;
      before[name] = await Promise.all(items.map((h) => orders.getVersion(id, h.ov)));
      const newest = items[0]!.ov;
      const at = new Map(items.map((h) => [h.ov, h.at]));
      expected[name] = items
        .filter((h) => h.ov === newest || !h.archived || (newest - h.ov < MAX_PER_ITEM && at.get(h.ov + 1)! > cut))
        .map((h) => h.ov);
    }
    // By count, 'long' would keep 28-32; ov 28 was superseded (by 29) before the cut-off.
    expect(expected).toEqual({ long: [32, 31, 30, 29], single: [0], deleted: [6], exact: [4], young: [1, 0], pending: [7, 6, 5, 4, 3, 2, 1, 0] });
    const latest = await Promise.all(Object.values(ids).map((id) => orders.getLatest(id, { includeDeleted: true })));

    // A run now already applies maxPerItem (and nothing else); the scheduled run a week on
    // applies the rest. Rules are monotonic, so the result is the same as one run at the end.
    const early = await runJob(x, 'retention', { log: null });
    expect(early.complete).toBe(true);
    for (const id of logIds) expect(await logs.getLatest(id)).not.toBeNull();
    // Only what had expired by then: the stale shared memory document, gone from the table too.
    expect(early.counts).toMatchObject({ expiredSharedMemory: 1, expiredDocuments: 1 });
    expect(await memory.findOne({ key: 'short', namespace: 'jobs' })).toMatchObject({ key: 'short', val: { key: 'short' } });
    expect(storedMemory()).toEqual(['long', 'no-own-days', 'older-but-longer', 'short']);

    const report = await retention(scheduledEvent(new Date(cutoff.getTime() + DAYS * DAY), 'xronox-retention'), lambdaContext('xronox-retention'));
    expect(report).toMatchObject({ job: 'retention', complete: true, failures: [] });

    for (const [name, id] of Object.entries(ids)) {
      const kept = (await orders.history(id, { limit: 500 })).items.map((h) => h.ov);
      expect({ name, kept }).toEqual({ name, kept: expected[name] });
      // Kept versions read exactly as before; pruned ones are gone, objects included.
      for (const [i, v] of before[name]!.entries()) {
        const ov = (v as { ov: number }).ov;
        expect(await orders.getVersion(id, ov)).toEqual(expected[name]!.includes(ov) ? before[name]![i] : null);
      }
      const objects = (await allKeys(fx.inspect, versionsBucket, `versions/orders/${id}/`)).map((k) => Number(/v(\d+)\.json$/.exec(k)![1])).sort((a, b) => b - a);
      expect(objects).toEqual(name === 'pending' ? [] : expected[name]);
      expect({ name, verify: await orders.verify(id) }).toMatchObject({ name, verify: { ok: true } });
    }
    expect(await Promise.all(Object.values(ids).map((id) => orders.getLatest(id, { includeDeleted: true })))).toEqual(latest);
    const prunedTotal = Object.keys(ids).reduce((n, name) => n + before[name]!.length - expected[name]!.length, 0);
    expect(prunedTotal).toBe(39);
    expect((early.counts.prunedVersions ?? 0) + (report.counts.prunedVersions ?? 0)).toBe(prunedTotal);
    expect(report.counts.versionsAwaitingArchival).toBe(3);

    // Logs past their window: records and their day-filed objects.
    expect(report.counts.expiredLogs).toBe(2);
    for (const id of logIds) expect(await logs.getLatest(id, { includeDeleted: true })).toBeNull();
    expect(await allKeys(fx.inspect, fx.inst.bucketOf(names.logs), 'records/activity/')).toEqual([]);
    // Shared memory: exactly the documents past their own retentionDays by the run's clock.
    expect(report.counts).toMatchObject({ expiredSharedMemory: 1, expiredDocuments: 1 });
    expect(await memory.findOne({ key: 'short', namespace: 'jobs' })).toBeNull();
    expect(await memory.findOne({ key: 'stale', namespace: 'jobs' })).toBeNull();
    for (const key of ['no-own-days', 'long', 'older-but-longer']) expect(await memory.findOne({ key, namespace: 'jobs' })).toMatchObject({ key, val: { key } });
    expect(await memoryKeys()).toEqual(['long', 'no-own-days', 'older-but-longer']);
    expect(storedMemory()).toEqual(['long', 'no-own-days', 'older-but-longer']);

    // Again: nothing left to do.
    const again = await retention(scheduledEvent(new Date(cutoff.getTime() + DAYS * DAY), 'xronox-retention'), lambdaContext('xronox-retention'));
    expect(again.counts.prunedVersions ?? 0).toBe(0);
    expect(again.counts.expiredLogs ?? 0).toBe(0);
    expect(again.counts.expiredSharedMemory ?? 0).toBe(0);
    expect(again.counts.expiredDocuments ?? 0).toBe(0);
    expect(again).toMatchObject({ complete: true, failures: [] });
    expect(storedMemory()).toEqual(['long', 'no-own-days', 'older-but-longer']);
  });
});
