/**
 * Backups through the scheduled handler, restores through the CLI (`xronox backup restore`, run
 * in this process), and the acceptance check: back up, wipe the database, restore, and every
 * head, version entry, claim, collection version, counter total and counter window
 * (`retention.counters`) is identical, field by field.
 */
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { XronoxConfigInput } from '../../core/config/schema.js';
import type { Collection } from '../../core/engine/collection.js';
import type { Xronox } from '../../core/xronox.js';
import { type BackupManifest, parseManifest } from '../../core/jobs/backup.js';
import { backupDate, snapshotId } from '../../core/jobs/snapshot.js';
import { RestoreTargetNotEmptyError } from '../../core/errors.js';
import { restoreBackup } from '../../core/jobs/run.js';
import { initXronox } from '../../core/xronox.js';
import { EXIT } from '../../functions/cli/xronox.js';
import { archive, archiveSweep, backup, container } from '../../functions/jobs/handlers.js';
import {
  allKeys,
  cliInProcess,
  freshNames,
  indexState,
  JOB_BACKENDS,
  jobConfig,
  lambdaContext,
  type Names,
  openIndex,
  s3Event,
  s3Record,
  scheduledEvent,
  useJobBackend,
  writeConfig,
} from './support.js';



describe.each(JOB_BACKENDS)('backups and restore: $name', (backend) => {
  if (backend.skip) {
    it.skip(`skipped: ${backend.skip}`, () => undefined);
    return;
  }
  const fx = useJobBackend(backend, 'xronox-jobs-backup');

  async function start(): Promise<{ x: Xronox; names: Names; config: XronoxConfigInput; file: string; sub: string }> {
    const names = freshNames();
    await fx.inst.prepare(Object.values(names));
    // Each test its own SQLite file (in its own folder), so wiping it touches nothing else.
    const sub = join(fx.dir.path, names.rt);
    // Counter windows kept, so backups must carry them too.
    const config = { ...jobConfig(fx.inst, fx.dir.path, names, { retention: { counters: { days: 30, weeks: 8, months: 12 } } }), dbConnections: { local: { sqlitePath: join(sub, 'xronox.sqlite') } } };
    const file = writeConfig(fx.dir.path, config);
    process.env.XRONOX_CONFIG_FILE = file;
    await container.close();
    const x = initXronox(config);
    fx.open.push(x);
    return { x, names, config, file, sub };
  }

  async function wipe(x: Xronox, sub: string): Promise<void> {
    await x.shutdown();
    await container.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(sub, `xronox.sqlite${suffix}`), { force: true });
  }

  const databases = (names: Names) => [
    { dbName: names.rt, countersDb: names.analytics },
    { dbName: names.kn, countersDb: names.kn },
  ];

  async function snapshot(sub: string, names: Names) {
    const store = openIndex(sub);
    try {
      return await indexState(store, databases(names));
    } finally {
      await store.close();
    }
  }

  /** Every counter window of every collection, per granularity, as the index holds them. */
  async function windowsState(sub: string, names: Names) {
    const store = openIndex(sub);
    try {
      const out: Record<string, unknown> = {};
      for (const { dbName, countersDb } of databases(names)) {
        for (const collection of await store.listCollections(dbName)) {
          for (const granularity of ['day', 'week', 'month'] as const) {
            out[`${dbName}/${collection}/${granularity}`] = await store.getCounterWindows(countersDb, collection, { granularity });
          }
        }
      }
      return out;
    } finally {
      await store.close();
    }
  }

  /** A bit of everything: versions archived and pending, deletes and restores, typed actors, lineage, claims, counters. */
  async function workload(x: Xronox, names: Names) {
    const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    const customers = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'customers' });
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const { id } = await orders.create({ status: 'new', sku: `S${i}`, total: i * 20, note: 'é🎉\u2028' }, i % 2 ? 'alice' : { type: 'agent', identifier: 'bot-7', name: 'Bot' }, `order ${i}`);
      ids.push(id);
      for (let v = 1; v <= i % 4; v++) await orders.update(id, { status: 'paid', sku: `S${i}`, total: i * 20 + v }, v - 1, 'bob', `edit ${v}`);
    }
    await orders.enrich(ids[3]!, { tags: ['vip'] }, { functionId: 'tagger@1' });
    await orders.delete(ids[4]!, (await orders.getLatest(ids[4]!))!.ov, 'carol', 'cancelled');
    await orders.restoreObject(ids[5]!, { ov: 0 }, { actor: 'support', reason: 'undo' });
    await orders.create({ status: 'new', sku: 'child', total: 1 }, 'alice', 'split', { parentRecord: { id: ids[0]!, ov: 0 }, origin: { type: 'import', id: 'batch-1' } });
    await customers.smartInsert({ email: 'ada@example.com', name: 'Ada' }, { uniqueKeys: ['email'], actor: 'crm' });
    await customers.smartInsert({ email: 'bob@example.com', name: 'Bob' }, { uniqueKeys: ['email'], actor: 'crm' });
    const facts = x.with({ databaseType: 'knowledge', tier: 'generic', collection: 'facts' });
    const fact = await facts.create({ text: 'water is wet' });
    await facts.update(fact.id, { text: 'water is wet, mostly' }, 0);
    // A second collection in the knowledge database: one snapshot per collection, restored together.
    await x.with({ databaseType: 'knowledge', tier: 'generic', collection: 'topics' }).create({ name: 'news' });
    await x.with({ databaseType: 'logs', tier: 'generic', collection: 'activity' }).create({ action: 'login' });
    await x.flush();
    // Half the orders archived (the S3 event path), the rest still pending in the index.
    const bucket = fx.inst.bucketOf(names.rt);
    await archive(s3Event(ids.slice(0, 6).map((id) => s3Record(bucket, `records/orders/${id}/current.json`))), lambdaContext('xronox-archive'));
    return { orders, ids };
  }

  async function reads(orders: Collection, ids: string[]) {
    return Promise.all(
      ids.map(async (id) => {
        const history = (await orders.history(id, { limit: 100 })).items;
        return { latest: await orders.getLatest(id, { includeDeleted: true }), history, versions: await Promise.all(history.map((h) => orders.getVersion(id, h.ov))) };
      }),
    );
  }

  it('backup, wipe the database, restore: every record, version, claim, counter and counter window is identical, field by field', async () => {
    const { x, names, config, file, sub } = await start();
    const { orders, ids } = await workload(x, names);
    const before = await snapshot(sub, names);
    const windowsBefore = await windowsState(sub, names);
    const ordersWindows = (['day', 'week', 'month'] as const).flatMap((g) => windowsBefore[`${names.rt}/orders/${g}`] as Array<{ window: string; counts: Record<string, number> }>);
    // Every write landed in a window of each granularity, so there are windows to back up.
    for (const g of ['day', 'week', 'month'] as const) expect((windowsBefore[`${names.rt}/orders/${g}`] as unknown[]).length).toBeGreaterThan(0);
    expect(Object.keys(before).sort()).toEqual([`${names.kn}/facts`, `${names.kn}/topics`, `${names.rt}/customers`, `${names.rt}/orders`].sort());
    const archivedCount = Object.values(before).flatMap((c) => (c as { versions: Array<Array<{ archived: boolean }>> }).versions.flat()).filter((v) => v.archived).length;
    expect(archivedCount).toBeGreaterThan(0);
    const readsBefore = await reads(orders, ids);

    const now = new Date();
    const report = await backup(scheduledEvent(now, 'xronox-backup'), lambdaContext('xronox-backup'));
    expect(report).toMatchObject({ job: 'backup', complete: true, failures: [] });
    // Four record collections, and the four document collections of the (empty) messaging database.
    expect(report.counts.backedUpCollections).toBe(8);
    const date = backupDate(new Date(scheduledEvent(now, 'x').time));
    const snap = snapshotId(new Date(scheduledEvent(now, 'x').time));

    // The documented layout (one snapshot per run, named by its time), a manifest that matches its files, and never a backup of logs.
    const rtBucket = fx.inst.bucketOf(names.rt);
    const keys = await allKeys(fx.inspect, rtBucket, 'backups/');
    const folder = (collection: string) => `backups/${collection}/${date}/${names.rt}/${snap}/`;
    expect(keys).toEqual(['customers', 'orders'].flatMap((c) => [`${folder(c)}manifest.json`, `${folder(c)}part-00000.jsonl.gz`]).sort());
    const manifest = JSON.parse(Buffer.from((await fx.inspect.get(rtBucket, `${folder('orders')}manifest.json`))!).toString('utf8')) as BackupManifest;
    const ordersState = before[`${names.rt}/orders`] as { heads: unknown[]; versions: unknown[][]; cv: number; counters: Record<string, number> };
    expect(manifest).toMatchObject({
      format: 'xronox-backup/1',
      dbName: names.rt,
      collection: 'orders',
      date,
      snapshot: { id: snap, collections: ['customers', 'orders'] },
      collectionVersion: ordersState.cv,
      counters: ordersState.counters,
      counterWindows: ordersWindows,
      counts: { heads: ordersState.heads.length, versions: ordersState.versions.flat().length, claims: 0 },
    });
    const part = (await fx.inspect.get(rtBucket, `${folder('orders')}part-00000.jsonl.gz`))!;
    expect(manifest.files).toEqual([{ name: 'part-00000.jsonl.gz', lines: manifest.counts.heads + manifest.counts.versions, bytes: part.byteLength, sha256: createHash('sha256').update(part).digest('hex') }]);
    expect(gunzipSync(part).toString('utf8').split('\n')[0]).toMatch(/^\{"t":"head","head":\{"id":/);
    // Manifests written before counter windows existed still parse (and restore with none); malformed windows do not.
    const older: BackupManifest = { ...manifest };
    delete older.counterWindows;
    expect(parseManifest(Buffer.from(JSON.stringify(older)), 'older')).toEqual(older);
    expect(() => parseManifest(Buffer.from(JSON.stringify({ ...manifest, counterWindows: [{ window: 'year:2026', counts: {} }] })), 'bad')).toThrow(/manifest/);
    expect(() => parseManifest(Buffer.from(JSON.stringify({ ...manifest, counterWindows: [{ window: 'day:2026-01-01', counts: { n: 0.5 } }] })), 'bad')).toThrow(/manifest/);
    expect(await allKeys(fx.inspect, fx.inst.bucketOf(names.logs), 'backups/')).toEqual([]);
    // A retried invocation of the same schedule (same event time) finds its snapshots done.
    expect((await backup(scheduledEvent(now, 'xronox-backup'), lambdaContext('xronox-backup'))).counts).toEqual({ collectionsAlreadyBackedUp: 8 });

    await wipe(x, sub);
    expect(await snapshot(sub, names)).toEqual({});

    for (const dbName of [names.rt, names.kn]) {
      const run = await cliInProcess(['backup', 'restore', '--db', dbName, '--date', date, '--config', file, '--quiet']);
      expect({ dbName, code: run.code, stderr: run.stderr }).toEqual({ dbName, code: EXIT.ok, stderr: '' });
      expect(JSON.parse(run.stdout.trim())).toMatchObject({ job: 'restore', complete: true, databases: { done: 1 } });
    }
    expect(await snapshot(sub, names)).toEqual(before);
    expect(await windowsState(sub, names)).toEqual(windowsBefore);

    const x2 = initXronox(config);
    fx.open.push(x2);
    const orders2 = x2.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    expect(await reads(orders2, ids)).toEqual(readsBefore);
    expect(await x2.counters.getTotals({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' })).toEqual(ordersState.counters);
    for (const granularity of ['day', 'week', 'month'] as const) {
      expect(await x2.counters.getWindows({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' }, { granularity })).toEqual(windowsBefore[`${names.rt}/orders/${granularity}`]);
    }
    // The restored database carries on: new writes take the next cv, pending versions archive, chains hold.
    const next = await orders2.create({ status: 'new', sku: 'after', total: 1 });
    expect(next.cv).toBe(ordersState.cv + 1);
    await x2.flush();
    expect((await archiveSweep(scheduledEvent(new Date(Date.now() + 16 * 60_000), 'xronox-archive-sweep'), lambdaContext('xronox-archive-sweep'))).failures).toEqual([]);
    expect(await orders2.verifyCollection()).toMatchObject({ ok: true, records: ids.length + 2 });
    const customers2 = x2.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'customers' });
    expect(await customers2.smartInsert({ email: 'ada@example.com', name: 'Ada L.' }, { uniqueKeys: ['email'] })).toMatchObject({ created: false });
  });

  it('a second backup the same day is a new snapshot: a restore takes the day\'s last complete one, or the one named; a run cut off is finished by the next', async () => {
    const { x, names, file, sub } = await start();
    const { orders, ids } = await workload(x, names);
    const midnight = new Date(new Date().toISOString().slice(0, 10)).getTime();
    const [t1, t2, t3] = [8, 9.5, 11].map((h) => new Date(midnight + h * 3_600_000));
    const run = async (at: Date) => backup(scheduledEvent(at, 'xronox-backup'), lambdaContext('xronox-backup'));
    expect((await run(t1!)).counts).toMatchObject({ backedUpCollections: 8 });
    const atFirst = await snapshot(sub, names);
    // Written after the first backup: a changed order and a new one.
    await orders.update(ids[1]!, { status: 'paid', sku: 'S1', total: 999 }, (await orders.getLatest(ids[1]!))!.ov, 'bob', 'late edit');
    await orders.create({ status: 'new', sku: 'late', total: 5 });
    await x.flush();
    const atSecond = await snapshot(sub, names);
    expect(atSecond).not.toEqual(atFirst);
    // The second run the same day backs everything up again, into a snapshot of its own.
    const second = await run(t2!);
    expect(second.counts).toMatchObject({ backedUpCollections: 8, backedUpRecords: 18 });
    expect(second.counts.collectionsAlreadyBackedUp).toBeUndefined();
    const date = backupDate(t1!);
    const [s1, s2, s3] = [t1!, t2!, t3!].map(snapshotId) as [string, string, string];
    const rtBucket = fx.inst.bucketOf(names.rt);
    const snapshotsOf = async (bucket: string, collection: string, dbName: string) =>
      [...new Set((await allKeys(fx.inspect, bucket, `backups/${collection}/${date}/${dbName}/`)).map((k) => k.split('/')[4]))];
    expect(await snapshotsOf(rtBucket, 'orders', names.rt)).toEqual([s1, s2]);

    const restoreBoth = async (extra: string[] = []) => {
      for (const dbName of [names.rt, names.kn]) {
        const r = await cliInProcess(['backup', 'restore', '--db', dbName, '--date', date, ...extra, '--config', file, '--quiet']);
        expect({ dbName, code: r.code, stderr: r.stderr }).toEqual({ dbName, code: EXIT.ok, stderr: '' });
      }
    };
    // The day's last snapshot holds what was written after the first.
    await wipe(x, sub);
    await restoreBoth();
    expect(await snapshot(sub, names)).toEqual(atSecond);
    // The first stays restorable, by name.
    await wipe(x, sub);
    await restoreBoth(['--snapshot', s1]);
    expect(await snapshot(sub, names)).toEqual(atFirst);

    // A run cut off before the orders of its snapshot were done: that snapshot is incomplete.
    await fx.inspect.delete(rtBucket, `backups/orders/${date}/${names.rt}/${s2}/manifest.json`);
    await wipe(x, sub);
    const latest = await cliInProcess(['backup', 'restore', '--db', names.rt, '--date', date, '--config', file, '--quiet']);
    expect({ code: latest.code, stderr: latest.stderr }).toEqual({ code: EXIT.ok, stderr: '' });
    const rtOnly = (state: Record<string, unknown>) => Object.fromEntries(Object.entries(state).filter(([k]) => k.startsWith(`${names.rt}/`)));
    expect(await snapshot(sub, names)).toEqual(rtOnly(atFirst));
    const named = await cliInProcess(['backup', 'restore', '--db', names.rt, '--date', date, '--snapshot', s2, '--replace', '--config', file, '--quiet']);
    expect(named.code).toBe(EXIT.failed);
    expect(named.stderr).toContain(`No complete snapshot ${s2} of ${names.rt} dated ${date} in ${rtBucket}/backups/: ${s2} (incomplete: no orders; the next backup run finishes it)`);
    expect((await cliInProcess(['backup', 'restore', '--db', names.rt, '--date', date, '--snapshot', '10:15', '--config', file, '--quiet'])).code).toBe(EXIT.usage);
    // The next run finishes that snapshot (for this database) rather than starting another.
    const third = await run(t3!);
    expect(third.counts).toMatchObject({ snapshotsResumed: 1, collectionsAlreadyBackedUp: 1 });
    expect(await snapshotsOf(rtBucket, 'orders', names.rt)).toEqual([s1, s2]);
    expect(await snapshotsOf(rtBucket, 'customers', names.rt)).toEqual([s1, s2]);
    // Other databases get a new snapshot (the messaging database's collections are fixed, so it has them all).
    expect(await snapshotsOf(fx.inst.bucketOf(names.msg), 'topics', names.msg)).toEqual([s1, s2, s3]);
    const finished = await cliInProcess(['backup', 'restore', '--db', names.rt, '--date', date, '--snapshot', s2, '--replace', '--config', file, '--quiet']);
    expect({ code: finished.code, stderr: finished.stderr }).toEqual({ code: EXIT.ok, stderr: '' });
  });

  it('a restore into a database that holds data is refused, naming it and its records, and writes nothing; --replace makes the whole database, counters and objects included, the snapshot\'s', async () => {
    const { x, names, config, file, sub } = await start();
    const { orders, ids } = await workload(x, names);
    const now = new Date();
    await backup(scheduledEvent(now, 'xronox-backup'), lambdaContext('xronox-backup'));
    const date = backupDate(new Date(scheduledEvent(now, 'x').time));
    const atBackup = await snapshot(sub, names);
    const windowsAtBackup = await windowsState(sub, names);

    // After the backup: an archived order changed twice (and archived again), a new order (over the
    // counter rule's threshold), a new collection.
    const changed = ids[0]!;
    const ov = (await orders.getLatest(changed))!.ov;
    await orders.update(changed, { status: 'paid', sku: 'S0', total: 500 }, ov, 'eve', 'after the backup');
    await orders.update(changed, { status: 'paid', sku: 'S0', total: 600 }, ov + 1, 'eve', 'after the backup');
    const added = (await orders.create({ status: 'new', sku: 'late', total: 700 })).id;
    await x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'invoices' }).create({ n: 1 });
    await x.flush();
    const rtBucket = fx.inst.bucketOf(names.rt);
    expect((await archive(s3Event([changed, added].map((id) => s3Record(rtBucket, `records/orders/${id}/current.json`))), lambdaContext('xronox-archive'))).failures).toEqual([]);
    const replacedObjects = [`versions/orders/${changed}/v${ov + 1}.json`, `versions/orders/${changed}/v${ov + 2}.json`, `versions/orders/${added}/v0.json`, `records/orders/${added}/current.json`];
    for (const key of replacedObjects) expect({ key, there: (await fx.inspect.head(rtBucket, key)) !== null }).toEqual({ key, there: true });
    const live = await snapshot(sub, names);
    const windowsLive = await windowsState(sub, names);
    expect(windowsLive).not.toEqual(windowsAtBackup);
    const held = ['orders', 'customers', 'invoices'].reduce((n, c) => n + (live[`${names.rt}/${c}`] as { heads: unknown[] }).heads.length, 0);

    // Refused: the message names the database and what it holds, and nothing changes.
    const refused = await cliInProcess(['backup', 'restore', '--db', names.rt, '--date', date, '--config', file, '--quiet']);
    expect({ code: refused.code, stdout: refused.stdout, stderr: refused.stderr }).toEqual({
      code: EXIT.failed,
      stdout: '',
      stderr: `${names.rt} is not empty: it holds ${held} records, and restoring a backup over them would mix them with the snapshot. Restore into an empty database, or pass --replace (mode: 'replace') to replace the whole database with the snapshot\n`,
    });
    const only = await cliInProcess(['backup', 'restore', '--db', names.rt, '--date', date, '--collection', 'customers', '--config', file, '--quiet']);
    expect(only.stderr).toContain(`${names.rt} is not empty: customers holds 2 records`);
    // The library refuses with the named error.
    const error = await restoreBackup(x, { dbName: names.rt, date }, { log: null }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RestoreTargetNotEmptyError);
    expect(error).toMatchObject({ code: 'CONFLICT', dbName: names.rt, held, unit: 'records' });
    expect(await snapshot(sub, names)).toEqual(live);
    expect(await windowsState(sub, names)).toEqual(windowsLive);

    // --replace: the database is the snapshot's, whole: the new collection and order are gone,
    // the changed order is as it was, counters and counter windows are the snapshot's.
    const replaced = await cliInProcess(['backup', 'restore', '--db', names.rt, '--date', date, '--replace', '--config', file, '--quiet']);
    expect({ code: replaced.code, stderr: replaced.stderr }).toEqual({ code: EXIT.ok, stderr: '' });
    expect(JSON.parse(replaced.stdout)).toMatchObject({ job: 'restore', complete: true, counts: { restoredCollections: 2, replacedRecords: held, syncedRecords: 15 } });
    expect(await snapshot(sub, names)).toEqual(atBackup);
    expect(await windowsState(sub, names)).toEqual(windowsAtBackup);
    // The objects only the replaced data had are gone; every restored record's current.json is there.
    for (const key of replacedObjects) expect({ key, there: (await fx.inspect.head(rtBucket, key)) !== null }).toEqual({ key, there: false });
    for (const h of (atBackup[`${names.rt}/orders`] as { heads: Array<{ id: string }> }).heads) expect(await fx.inspect.head(rtBucket, `records/orders/${h.id}/current.json`)).not.toBeNull();
    // No staging area is left behind.
    const store = openIndex(sub);
    try {
      expect((await store.listDatabases()).filter((d) => d.startsWith('xronox_restore_'))).toEqual([]);
    } finally {
      await store.close();
    }

    // The database carries on: the changed order takes its next versions again, and archiving them
    // meets no object of the replaced ones; counters count on from the snapshot's.
    await x.shutdown();
    const x2 = initXronox(config);
    fx.open.push(x2);
    const orders2 = x2.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    await orders2.update(changed, { status: 'paid', sku: 'S0', total: 40 }, ov, 'frank', 'after the restore');
    await x2.flush();
    expect((await archive(s3Event([s3Record(rtBucket, `records/orders/${changed}/current.json`)]), lambdaContext('xronox-archive'))).failures).toEqual([]);
    expect(await orders2.getVersion(changed, ov + 1)).toMatchObject({ ov: ov + 1, data: { total: 40 } });
    expect(await orders2.verifyCollection()).toMatchObject({ ok: true });
    const totals = (atBackup[`${names.rt}/orders`] as { counters: Record<string, number> }).counters;
    expect(await x2.counters.getTotals({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' })).toEqual({ ...totals, updated: totals.updated! + 1 });
  });

  it('a damaged or missing snapshot is refused before anything is written', async () => {
    const { x, names, file, sub } = await start();
    await workload(x, names);
    const now = new Date();
    await backup(scheduledEvent(now, 'xronox-backup'), lambdaContext('xronox-backup'));
    const date = backupDate(new Date(scheduledEvent(now, 'x').time));
    const folder = `backups/orders/${date}/${names.rt}/${snapshotId(new Date(scheduledEvent(now, 'x').time))}/`;
    await wipe(x, sub);
    const rtBucket = fx.inst.bucketOf(names.rt);
    const partKey = `${folder}part-00000.jsonl.gz`;
    const good = (await fx.inspect.get(rtBucket, partKey))!;

    // One flipped byte in a part: the SHA-256 no longer matches.
    const bad = Buffer.from(good);
    bad[bad.length - 10] = bad[bad.length - 10]! ^ 0xff;
    await fx.inspect.put(rtBucket, partKey, bad);
    const damaged = await cliInProcess(['backup', 'restore', '--db', names.rt, '--date', date, '--config', file, '--quiet']);
    expect(damaged.code).toBe(EXIT.failed);
    expect(damaged.stderr).toContain(`${partKey} does not match its manifest`);
    // Nothing was imported, not even the collections checked before the damaged one.
    expect(await snapshot(sub, names)).toEqual({});

    // A part whose bytes match a doctored manifest but whose lines are not what they claim.
    const lines = gunzipSync(good).toString('utf8').split('\n');
    const forged = Buffer.from(lines.map((l, i) => (i === 1 ? l.replace('"t":"version"', '"t":"verzion"') : l)).join('\n'));
    const { gzipSync } = await import('node:zlib');
    const forgedGz = gzipSync(forged);
    await fx.inspect.put(rtBucket, partKey, forgedGz);
    const manifestKey = `${folder}manifest.json`;
    const manifest = JSON.parse(Buffer.from((await fx.inspect.get(rtBucket, manifestKey))!).toString('utf8')) as BackupManifest;
    manifest.files[0] = { ...manifest.files[0]!, bytes: forgedGz.byteLength, sha256: createHash('sha256').update(forgedGz).digest('hex') };
    await fx.inspect.put(rtBucket, manifestKey, Buffer.from(JSON.stringify(manifest)));
    const forgedRun = await cliInProcess(['backup', 'restore', '--db', names.rt, '--date', date, '--config', file, '--quiet']);
    expect(forgedRun.code).toBe(EXIT.failed);
    expect(forgedRun.stderr).toMatch(/line 2: unknown line type/);
    expect(await snapshot(sub, names)).toEqual({});

    // No snapshot that day; not a database; bad usage.
    expect((await cliInProcess(['backup', 'restore', '--db', names.rt, '--date', '1999-01-01', '--config', file, '--quiet'])).stderr).toMatch(/No backup of .* dated 1999-01-01/);
    expect((await cliInProcess(['backup', 'restore', '--db', 'nope', '--date', date, '--config', file])).code).toBe(EXIT.usage);
    expect((await cliInProcess(['backup', 'restore', '--date', date, '--config', file])).code).toBe(EXIT.usage);
    expect((await cliInProcess(['job', 'run', 'everything', '--config', file])).code).toBe(EXIT.usage);
    expect(await snapshot(sub, names)).toEqual({});
  });
});
