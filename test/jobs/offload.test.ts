/**
 * Offload (`xronox job run offload`): records not written for `s3Offload.olderThan` days (and logs
 * after `jobs.offload.logsAfterDays`) drop their index copy and are read from their records
 * object, with the same answers from every read API; a damaged object fails reads, never serves
 * wrong data; backups hold the real documents.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { XronoxConfigInput } from '../../core/config/schema.js';
import type { Collection } from '../../core/engine/collection.js';
import type { Xronox } from '../../core/xronox.js';
import { StorageError, TamperError } from '../../core/errors.js';
import { backupDate } from '../../core/jobs/snapshot.js';
import { restoreBackup, runJob } from '../../core/jobs/run.js';
import { initXronox } from '../../core/xronox.js';
import { container, offload as offloadHandler } from '../../functions/jobs/handlers.js';
import {
  freshNames,
  indexState,
  JOB_BACKENDS,
  jobConfig,
  lambdaContext,
  type Names,
  openIndex,
  scheduledEvent,
  useJobBackend,
  writeConfig,
} from './support.js';

const DAY = 24 * 3600 * 1000;
const DAYS = 2;

describe.each(JOB_BACKENDS.slice(0, 2))('offload: $name', (backend) => {
  if (backend.skip) {
    it.skip(`skipped: ${backend.skip}`, () => undefined);
    return;
  }
  const fx = useJobBackend(backend, 'xronox-jobs-offload');

  it('offloads old records and logs, reads stay identical, damage fails reads, backups restore exactly, updates un-offload', async () => {
    const names: Names = freshNames();
    await fx.inst.prepare(Object.values(names));
    const sub = join(fx.dir.path, names.rt);
    const sqlite = join(sub, 'xronox.sqlite');
    const offload = { enabled: true, olderThan: DAYS };
    const base = jobConfig(fx.inst, fx.dir.path, names);
    const config: XronoxConfigInput = {
      ...base,
      dbConnections: { local: { sqlitePath: sqlite } },
      collectionMaps: { orders: { indexedProps: ['status', 'sku', 'total'], s3Offload: offload }, notes: { indexedProps: ['tag'], s3Offload: offload } },
      jobs: { leaseSeconds: 2, offload: { logsAfterDays: DAYS } },
    };
    let x = initXronox(config);
    fx.open.push(x);
    const colls = (xr: Xronox) => ({
      orders: xr.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' }),
      notes: xr.with({ databaseType: 'knowledge', tier: 'generic', collection: 'notes' }),
      logs: xr.with({ databaseType: 'logs', tier: 'generic', collection: 'activity' }),
    });
    const { logs } = colls(x);
    let { orders, notes } = colls(x);

    // Phase 1: before the cut-off.
    const a = (await orders.create({ status: 'new', sku: 'a', total: 1 }, 'w')).id;
    await orders.update(a, { status: 'busy', sku: 'a', total: 2 }, 0, 'w');
    await orders.update(a, { status: 'done', sku: 'a', total: 3 }, 1, { type: 'user', identifier: 'u1' }, 'finish');
    const b = (await orders.create({ status: 'new', sku: 'b', total: 5 }, 'w')).id;
    await orders.delete(b, 0, 'w', 'gone');
    const c = (await orders.create({ status: 'new', sku: 'c', total: 7 }, 'w')).id;
    const n1 = (await notes.create({ tag: 'x', text: 'hello' })).id;
    await notes.update(n1, { tag: 'x', text: 'hello again' }, 0);
    const l1 = (await logs.create({ action: 'login' })).id;
    const l2 = (await logs.create({ action: 'logout' })).id;
    await x.flush();
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5));
    const cutoff = new Date(Math.floor(Date.now() / 1000) * 1000);
    await new Promise((r) => setTimeout(r, 5));
    // Phase 2: after it.
    const young = (await orders.create({ status: 'new', sku: 'young', total: 9 }, 'w')).id;
    const n2 = (await notes.create({ tag: 'y', text: 'fresh' })).id;
    const l3 = (await logs.create({ action: 'later' })).id;
    await x.flush();
    const queryAt = new Date().toISOString();
    const now = new Date(cutoff.getTime() + DAYS * DAY);

    const orderIds = [a, b, c, young];
    const reads = async (o: Collection, n: Collection, l: Collection | null) => ({
      orders: await Promise.all(
        orderIds.map(async (id) => {
          const latest = await o.getLatest(id, { includeDeleted: true });
          return {
            latest,
            version: await o.getVersion(id, latest!.ov),
            asOf: await o.getAsOf(id, queryAt, { includeDeleted: true }),
            history: await o.history(id),
          };
        }),
      ),
      ordersList: await o.listByMeta({ includeDeleted: true, limit: 100 }),
      ordersQuery: await o.query(undefined, { includeDeleted: true, at: queryAt }),
      notes: [await n.getLatest(n1), await n.getLatest(n2)],
      notesList: await n.listByMeta({ filter: { tag: 'x' } }),
      notesQuery: await n.query({ tag: 'x' }),
      logs: l ? [await l.getLatest(l1), await l.getLatest(l2), await l.getLatest(l3), await l.listByMeta({ limit: 100 })] : null,
    });
    const before = await reads(orders, notes, logs);
    const stateBefore = await snapshot(sqlite, names);
    const bodies = (dbName: string, collection: string) => {
      const db = new Database(sqlite, { readonly: true });
      try {
        const rows = db.prepare('SELECT id, body FROM heads WHERE db = ? AND coll = ?').all(dbName, collection) as Array<{ id: string; body: string }>;
        return Object.fromEntries(rows.map((r) => [r.id, r.body === '' ? 'offloaded' : 'indexed']));
      } finally {
        db.close();
      }
    };

    // The scheduled Lambda handler, with a real EventBridge payload, over the same config file.
    process.env.XRONOX_CONFIG_FILE = writeConfig(fx.dir.path, config);
    await container.close();
    const report = await offloadHandler(scheduledEvent(now, 'xronox-offload'), lambdaContext('xronox-offload'));
    await container.close();
    expect(report).toMatchObject({ complete: true, counts: { offloadedRecords: 6 } });
    expect(report.bytes).toBeGreaterThan(0);
    expect(bodies(names.rt, 'orders')).toEqual({ [a]: 'offloaded', [b]: 'offloaded', [c]: 'offloaded', [young]: 'indexed' });
    expect(bodies(names.kn, 'notes')).toEqual({ [n1]: 'offloaded', [n2]: 'indexed' });
    expect(bodies(names.logs, 'activity')).toEqual({ [l1]: 'offloaded', [l2]: 'offloaded', [l3]: 'indexed' });
    expect(await reads(orders, notes, logs)).toEqual(before);
    expect(await orders.verifyCollection()).toMatchObject({ ok: true, records: 4 });

    // A second run finds nothing to do.
    const again = await runJob(x, 'offload', { now, log: null });
    expect(again.complete).toBe(true);
    expect(again.counts.offloadedRecords).toBeUndefined();

    // Damaged or missing objects fail reads; they never serve other data (a forged object of a
    // versioned record fails its tamper check).
    const rtBucket = fx.inst.bucketOf(names.rt);
    const cKey = `records/orders/${c}/current.json`;
    const cBytes = (await fx.inspect.get(rtBucket, cKey))!;
    const forged = JSON.parse(Buffer.from(cBytes).toString('utf8')) as { data: { total: number } };
    forged.data.total = 700;
    await fx.inspect.put(rtBucket, cKey, Buffer.from(JSON.stringify(forged)));
    await expect(orders.getLatest(c)).rejects.toBeInstanceOf(TamperError);
    await expect(orders.listByMeta({ limit: 100 })).rejects.toBeInstanceOf(TamperError);
    expect((await orders.verify(c)).ok).toBe(false);
    await fx.inspect.put(rtBucket, cKey, cBytes);
    const knKey = `records/notes/${n1}/current.json`;
    const knBytes = (await fx.inspect.get(fx.inst.bucketOf(names.kn), knKey))!;
    await fx.inspect.delete(fx.inst.bucketOf(names.kn), knKey);
    await expect(notes.getLatest(n1)).rejects.toBeInstanceOf(StorageError);
    await expect(notes.update(n1, { tag: 'x' }, 1)).rejects.toBeInstanceOf(StorageError);
    await fx.inspect.put(fx.inst.bucketOf(names.kn), knKey, knBytes);
    const day = (await logs.getLatest(l1))!.createdAt.slice(0, 10);
    const logKey = `records/activity/${day}/${l1}.json`;
    const logBytes = (await fx.inspect.get(fx.inst.bucketOf(names.logs), logKey))!;
    await fx.inspect.put(fx.inst.bucketOf(names.logs), logKey, Buffer.from(Buffer.from(logBytes).toString('utf8').replace(`"${l1}"`, `"${l2}"`)));
    await expect(logs.getLatest(l1)).rejects.toBeInstanceOf(StorageError);
    await fx.inspect.put(fx.inst.bucketOf(names.logs), logKey, logBytes);
    expect(await reads(orders, notes, logs)).toEqual(before);

    // Backups hold the real documents: a restore is the index as it was before the offload.
    const backupNow = new Date();
    expect((await runJob(x, 'backup', { now: backupNow, log: null })).complete).toBe(true);
    await x.shutdown();
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${sqlite}${suffix}`, { force: true });
    x = initXronox(config);
    fx.open.push(x);
    for (const dbName of [names.rt, names.kn]) expect((await restoreBackup(x, { dbName, date: backupDate(backupNow) }, { log: null })).complete).toBe(true);
    expect(await snapshot(sqlite, names)).toEqual(stateBefore);
    ({ orders, notes } = colls(x));
    const restored = await reads(orders, notes, null);
    expect(restored).toEqual({ ...before, logs: null });

    // Offloaded again, then written: the write builds on the real document and un-offloads.
    expect((await runJob(x, 'offload', { now, log: null })).counts.offloadedRecords).toBe(4);
    const updated = await orders.update(a, { status: 'reopened', sku: 'a', total: 4 }, 2, 'w');
    await notes.enrich(n1, { extra: true });
    expect(bodies(names.rt, 'orders')[a]).toBe('indexed');
    expect(bodies(names.kn, 'notes')[n1]).toBe('indexed');
    expect((await orders.getLatest(a))?.data).toEqual({ status: 'reopened', sku: 'a', total: 4 });
    expect((await notes.getLatest(n1))?.data).toEqual({ tag: 'x', text: 'hello again', extra: true });
    expect(updated.ov).toBe(3);
    await x.flush();
    expect(await orders.verify(a)).toMatchObject({ ok: true });
    // Deleted and restored from offloaded heads too.
    await orders.restoreObject(b, { ov: 0 });
    expect((await orders.getLatest(b))?.data).toEqual({ status: 'new', sku: 'b', total: 5 });
  });

  async function snapshot(sqlite: string, names: Names) {
    const store = openIndex(join(sqlite, '..'));
    try {
      return await indexState(store, [
        { dbName: names.rt, countersDb: names.analytics },
        { dbName: names.kn, countersDb: names.kn },
      ]);
    } finally {
      await store.close();
    }
  }
});
