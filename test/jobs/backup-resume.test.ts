/**
 * Backups that outlast an invocation: the scheduled handler, given a deadline a fraction of a
 * second past its 30 s stop margin (so middy aborts the job almost at once), is invoked again and
 * again with the same scheduled event, as Lambda retries and the next schedule would, until the
 * snapshot is complete. Each invocation carries on from the record after the last one the one
 * before wrote (its saved progress), and the snapshot is the one an uninterrupted run writes:
 * the same manifest (but for its id) and the same parts, byte for byte; restored, it gives the
 * database back exactly. Then the reference formats: versions named by key and SHA-256 instead of
 * copied, read once and carried forward, checked on restore, and (`copy`) copied server side.
 */
import { join } from 'node:path';
import { readFileSync, rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { XronoxConfigInput } from '../../core/config/schema.js';
import type { BackupManifest } from '../../core/jobs/backup.js';
import { restoreBackup, runJob } from '../../core/jobs/run.js';
import { backupDate, snapshotId } from '../../core/jobs/snapshot.js';
import { initXronox, type Xronox } from '../../core/xronox.js';
import { backup, container } from '../../functions/jobs/handlers.js';
import { allKeys, freshNames, indexState, JOB_BACKENDS, jobConfig, lambdaContext, type Names, openIndex, scheduledEvent, useJobBackend, writeConfig } from './support.js';

const STOP_MARGIN_MS = 30_000;

describe.each(JOB_BACKENDS)('backups across invocations: $name', (backend) => {
  if (backend.skip) {
    it.skip(`skipped: ${backend.skip}`, () => undefined);
    return;
  }
  const fx = useJobBackend(backend, 'xronox-jobs-backup-resume');

  async function start(jobs: XronoxConfigInput['jobs'] = {}): Promise<{ x: Xronox; names: Names; config: XronoxConfigInput; sub: string }> {
    const names = freshNames();
    await fx.inst.prepare(Object.values(names));
    const sub = join(fx.dir.path, names.rt);
    const base = jobConfig(fx.inst, fx.dir.path, names);
    // Parts of 4 KiB, so a few hundred records make many parts, and four reads in flight.
    const config = { ...base, dbConnections: { local: { sqlitePath: join(sub, 'xronox.sqlite') } }, jobs: { ...base.jobs, concurrency: 4, ...jobs, backup: { partKilobytes: 4, ...jobs.backup } } };
    process.env.XRONOX_CONFIG_FILE = writeConfig(fx.dir.path, config);
    await container.close();
    const x = initXronox(config);
    fx.open.push(x);
    return { x, names, config, sub };
  }

  /** Records with 1 to 4 versions each (seeded through the batch API), claims, all archived by the sweep. */
  async function seed(x: Xronox, records: number): Promise<void> {
    const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    const created = await orders.createMany(Array.from({ length: records }, (_, i) => ({ status: 'new', sku: `S${i}`, total: i, note: `order ${i} é🎉` })), 'seed', 'import');
    for (const [i, { id }] of created.entries()) for (let v = 1; v <= i % 4; v++) await orders.update(id, { status: 'paid', sku: `S${i}`, total: i + v }, v - 1, 'bob');
    const customers = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'customers' });
    for (let i = 0; i < 30; i++) await customers.smartInsert({ email: `c${i}@example.com`, name: `C${i}` }, { uniqueKeys: ['email'], actor: 'crm' });
    await x.flush();
    // Everything archived: the backup must read (or reference) every version from the versions bucket.
    const sweep = await runJob(x, 'archive', { now: new Date(Date.now() + 3600_000), log: null });
    expect(sweep.complete).toBe(true);
  }

  const state = async (sub: string, names: Names) => {
    const store = openIndex(sub);
    try {
      return await indexState(store, [{ dbName: names.rt, countersDb: names.analytics }]);
    } finally {
      await store.close();
    }
  };

  async function wipe(x: Xronox, sub: string): Promise<void> {
    await x.shutdown();
    await container.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(sub, `xronox.sqlite${suffix}`), { force: true });
  }

  /** A new engine on the same config (after a wipe). */
  const reopen = (): Xronox => {
    const x = initXronox(JSON.parse(readFileSync(process.env.XRONOX_CONFIG_FILE!, 'utf8')) as XronoxConfigInput);
    fx.open.push(x);
    return x;
  };

  const manifestOf = async (bucket: string, folder: string) => JSON.parse(Buffer.from((await fx.inspect.get(bucket, `${folder}manifest.json`))!).toString('utf8')) as BackupManifest;

  it('a backup cut off by short deadlines finishes after enough invocations, with the manifest and parts of an uninterrupted run, and restores exactly', async () => {
    const { x, names, sub } = await start();
    await seed(x, 160);
    const before = await state(sub, names);
    const bucket = fx.inst.bucketOf(names.rt);

    // The uninterrupted run: one invocation with all the time it needs.
    const whole = new Date('2026-03-02T01:00:00.000Z');
    const first = await runJob(x, 'backup', { now: whole, databases: [names.rt], log: null });
    expect(first).toMatchObject({ complete: true, counts: { backedUpCollections: 2 } });

    // The same day's scheduled run, invoked with a deadline that leaves it a moment of work each time.
    const event = scheduledEvent(new Date('2026-03-02T02:00:00.000Z'), 'xronox-backup');
    const reports = [];
    for (let i = 0; i < 300; i++) {
      // Stopped almost at once: each invocation gets its one page of progress, no more.
      const report = await backup(event, lambdaContext('xronox-backup', STOP_MARGIN_MS + 20));
      reports.push(report);
      if (report.complete) break;
    }
    const last = reports[reports.length - 1]!;
    expect({ complete: last.complete, skipped: last.skipped, failures: last.failures, invocations: reports.length }).toMatchObject({ complete: true });
    // It did take several invocations, and later ones carried on from saved progress.
    expect(reports.length).toBeGreaterThan(5);
    expect(reports.some((r) => (r.counts.collectionsResumed ?? 0) > 0)).toBe(true);

    const date = backupDate(whole);
    for (const collection of ['customers', 'orders']) {
      const a = `backups/${collection}/${date}/${names.rt}/${snapshotId(whole)}/`;
      const b = `backups/${collection}/${date}/${names.rt}/${snapshotId(new Date(event.time))}/`;
      const [ma, mb] = [await manifestOf(bucket, a), await manifestOf(bucket, b)];
      expect({ ...mb, snapshot: { ...mb.snapshot!, id: 'x' } }).toEqual({ ...ma, snapshot: { ...ma.snapshot!, id: 'x' } });
      if (collection === 'orders') expect(ma.files.length).toBeGreaterThan(5);
      for (const f of ma.files) expect(Buffer.from((await fx.inspect.get(bucket, `${b}${f.name}`))!)).toEqual(Buffer.from((await fx.inspect.get(bucket, `${a}${f.name}`))!));
      // Committed: the progress files are gone, only the listed files stay.
      expect(await allKeys(fx.inspect, bucket, b)).toEqual([...mb.files.map((f) => `${b}${f.name}`), `${b}manifest.json`].sort());
    }

    await wipe(x, sub);
    const x2 = reopen();
    const restored = await restoreBackup(x2, { dbName: names.rt, date, snapshot: snapshotId(new Date(event.time)) }, { log: null });
    expect(restored).toMatchObject({ complete: true, failures: [] });
    await x2.flush();
    expect(await state(sub, names)).toEqual(before);
  }, 240_000);

  it('a run stopped on the same record boundary each time (an abort signal) also ends with the uninterrupted snapshot, whatever the stop points', async () => {
    const { x, names } = await start();
    await seed(x, 100);
    const bucket = fx.inst.bucketOf(names.rt);
    const whole = new Date('2026-03-03T01:00:00.000Z');
    expect((await runJob(x, 'backup', { now: whole, databases: [names.rt], log: null })).complete).toBe(true);
    const cut = new Date('2026-03-03T02:00:00.000Z');
    let runs = 0;
    while (runs < 100) {
      runs++;
      // Stopped at the first, second or third checkpoint after the one page every run makes.
      const budget = runs % 3;
      const stop = new AbortController();
      let units = -1;
      const report = await runJob(x, 'backup', {
        now: cut,
        databases: [names.rt],
        log: null,
        signal: stop.signal,
        onProgress: () => {
          if (++units >= budget) stop.abort();
        },
      });
      if (report.complete) break;
    }
    expect(runs).toBeGreaterThan(3);
    const date = backupDate(whole);
    const a = `backups/orders/${date}/${names.rt}/${snapshotId(whole)}/`;
    const b = `backups/orders/${date}/${names.rt}/${snapshotId(cut)}/`;
    const [ma, mb] = [await manifestOf(bucket, a), await manifestOf(bucket, b)];
    expect(mb.files).toEqual(ma.files);
    expect(mb.counts).toEqual(ma.counts);
  });

  it('reference backups name each archived version by key, size and SHA-256: read once, then carried forward (0 reads); restore checks every object and refuses a changed one', async () => {
    const { x, names, sub } = await start({ backup: { format: 'reference' } });
    await seed(x, 120);
    const before = await state(sub, names);
    const archived = Object.values(before).flatMap((c) => (c as { versions: Array<Array<{ archived: boolean }>> }).versions.flat()).filter((v) => v.archived).length;
    expect(archived).toBeGreaterThan(150);
    const bucket = fx.inst.bucketOf(names.rt);

    const day = '2026-03-04';
    const first = await runJob(x, 'backup', { now: new Date(`${day}T01:00:00.000Z`), databases: [names.rt], log: null });
    expect(first.counts).toMatchObject({ backedUpCollections: 2, backedUpVersions: archived, versionObjectsRead: archived });
    // The next snapshot reads no version object: every reference is carried forward from the first.
    const second = await runJob(x, 'backup', { now: new Date(`${day}T02:00:00.000Z`), databases: [names.rt], log: null });
    expect(second.counts).toMatchObject({ backedUpCollections: 2, backedUpVersions: archived });
    expect(second.counts.versionObjectsRead ?? 0).toBe(0);
    const folder = `backups/orders/${day}/${names.rt}/${snapshotId(new Date(`${day}T02:00:00.000Z`))}/`;
    const manifest = await manifestOf(bucket, folder);
    expect(manifest.versionObjects).toEqual({ format: 'reference', bucket });

    // A version object changed behind the backup's back: the restore names it and writes nothing.
    const orders = before[`${names.rt}/orders`] as { heads: Array<{ id: string }> };
    const victim = `versions/orders/${orders.heads[7]!.id}/v0.json`;
    const original = (await fx.inspect.get(bucket, victim))!;
    await fx.inspect.put(bucket, victim, Buffer.from('{"tampered":true}'));
    await wipe(x, sub);
    const x2 = reopen();
    const refused = await restoreBackup(x2, { dbName: names.rt, date: day }, { log: null });
    expect(refused.complete).toBe(false);
    expect(refused.failures[0]!.error).toContain(victim);
    expect(refused.failures[0]!.error).toMatch(/SHA-256/);
    expect(await state(sub, names)).toEqual({});

    await fx.inspect.put(bucket, victim, original);
    const restored = await restoreBackup(x2, { dbName: names.rt, date: day }, { log: null });
    expect(restored).toMatchObject({ complete: true, counts: { checkedVersionObjects: archived } });
    await x2.flush();
    expect(await state(sub, names)).toEqual(before);
  });

  it('copy backups copy each version once, server side, into the backups bucket; a restore takes a version the versions bucket lost from its copy', async () => {
    const { x, names, sub } = await start({ backup: { format: 'copy' } });
    await seed(x, 60);
    const before = await state(sub, names);
    const bucket = fx.inst.bucketOf(names.rt);
    const day = '2026-03-05';
    const first = await runJob(x, 'backup', { now: new Date(`${day}T01:00:00.000Z`), databases: [names.rt], log: null });
    const archived = first.counts.versionObjectsRead!;
    expect(first.counts.versionObjectsCopied).toBe(archived);
    const copies = await allKeys(fx.inspect, bucket, `backups/_objects/${names.rt}/`);
    expect(copies.length).toBe(archived);
    const second = await runJob(x, 'backup', { now: new Date(`${day}T02:00:00.000Z`), databases: [names.rt], log: null });
    expect(second.counts.versionObjectsRead ?? 0).toBe(0);
    expect(second.counts.versionObjectsCopied ?? 0).toBe(0);

    // The versions bucket loses a version object: the copy restores it, byte for byte.
    const orders = before[`${names.rt}/orders`] as { heads: Array<{ id: string }> };
    const lost = `versions/orders/${orders.heads[3]!.id}/v0.json`;
    const original = (await fx.inspect.get(bucket, lost))!;
    await fx.inspect.delete(bucket, lost);
    await wipe(x, sub);
    const x2 = reopen();
    expect(await restoreBackup(x2, { dbName: names.rt, date: day }, { log: null })).toMatchObject({ complete: true });
    await x2.flush();
    expect(await state(sub, names)).toEqual(before);
    expect(Buffer.from((await fx.inspect.get(bucket, lost))!)).toEqual(Buffer.from(original));
  });
});
