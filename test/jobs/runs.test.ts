/**
 * How runs behave together and report: two runs at once (leases), stopping at a safe point,
 * the structured report line, and the CLI's progress bar. On the embedded default.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { XronoxConfigInput } from '../../core/config/schema.js';
import type { Xronox } from '../../core/xronox.js';
import type { JobReport } from '../../core/jobs/job.js';
import { archiveObjects, runJob } from '../../core/jobs/run.js';
import { initXronox } from '../../core/xronox.js';
import { backupDate } from '../../core/jobs/snapshot.js';
import { EXIT, main } from '../../functions/cli/xronox.js';
import { runTsx } from '../support/tsx-process.js';
import { tempDir } from '../support/temp.js';
import { openIndex, writeConfig } from './support.js';

const CLI = new URL('../../functions/cli/xronox.ts', import.meta.url).pathname;
/** The AWS SDK warns about Node 20 on stderr; that is not the CLI's output. */
const withoutSdkWarning = (stderr: string) => stderr.replace(/\(node:\d+\) (Warning: )?NodeVersionSupportWarning[\s\S]*?--trace-warnings[^\n]*\n/g, '');

const TENANTS = ['t1', 't2', 't3', 't4'];
const RECORDS = 10;
const VERSIONS = 5;

describe('job runs', () => {
  const dir = tempDir('xronox-jobs-runs');
  const open: Xronox[] = [];
  let n = 0;
  afterAll(async () => {
    await Promise.all(open.map((x) => x.shutdown()));
    dir.cleanup();
  });

  /** Four tenant databases, each with records whose versions are all pending. */
  async function seed(): Promise<{ config: XronoxConfigInput; file: string; total: number }> {
    const folder = `${dir.path}/set-${n++}`;
    const config: XronoxConfigInput = {
      dbConnections: { local: { sqlitePath: `${folder}/xronox.sqlite` } },
      localStorage: { basePath: `${folder}/blobs`, enabled: true },
      databases: { runtime: { tenantDatabases: TENANTS.map((tenantId) => ({ tenantId, dbConnRef: 'local', dbName: `rt_${tenantId}` })) } },
      jobs: { archive: { mode: 'deferred', sweepAfterMinutes: 0 }, leaseSeconds: 2 },
    };
    const x = instance(config);
    for (const tenantId of TENANTS) {
      const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId, collection: 'orders' });
      for (let r = 0; r < RECORDS; r++) {
        const { id } = await orders.create({ r, v: 0 });
        for (let v = 1; v < VERSIONS; v++) await orders.update(id, { r, v }, v - 1);
      }
    }
    await x.flush();
    await x.shutdown();
    return { config, file: writeConfig(folder, config), total: TENANTS.length * RECORDS * VERSIONS };
  }

  function instance(config: XronoxConfigInput): Xronox {
    const x = initXronox(config);
    open.push(x);
    return x;
  }

  async function pendingVersions(config: XronoxConfigInput): Promise<number> {
    const store = openIndex((config.dbConnections.local as { sqlitePath: string }).sqlitePath.replace(/\/xronox\.sqlite$/, ''));
    try {
      let pending = 0;
      for (const tenantId of TENANTS) {
        for (const r of await store.listUnarchivedRecords(`rt_${tenantId}`, { writtenBefore: '9999-12-31T23:59:59.999999Z', limit: 10_000 })) {
          pending += (await store.listUnarchived({ dbName: `rt_${tenantId}`, collection: r.collection }, r.id)).length;
        }
      }
      return pending;
    } finally {
      await store.close();
    }
  }

  it('two runs at once never work on one database together: every version is archived exactly once', async () => {
    const { config, total } = await seed();
    const [a, b] = await Promise.all([runJob(instance(config), 'archive', { log: null }), runJob(instance(config), 'archive', { log: null })]);
    expect(a.failures).toEqual([]);
    expect(b.failures).toEqual([]);
    // With leases, no two runs archived the same version, so the counts add up exactly.
    expect((a.counts.archivedVersions ?? 0) + (b.counts.archivedVersions ?? 0)).toBe(total);
    for (const s of [...a.skipped, ...b.skipped]) expect(s.reason).toBe('another archive run holds its lease');
    expect(await pendingVersions(config)).toBe(0);
  });

  it('with waitForLease, both runs visit every database; the second finds nothing left', async () => {
    const { config, total } = await seed();
    const [a, b] = await Promise.all([
      runJob(instance(config), 'archive', { log: null, waitForLease: true }),
      runJob(instance(config), 'archive', { log: null, waitForLease: true }),
    ]);
    for (const r of [a, b]) expect(r).toMatchObject({ complete: true, databases: { total: TENANTS.length, done: TENANTS.length, skipped: 0, failed: 0 } });
    expect((a.counts.archivedVersions ?? 0) + (b.counts.archivedVersions ?? 0)).toBe(total);
  });

  it('stops at a safe point when aborted, reports what it did, and a rerun finishes', async () => {
    const { config, total } = await seed();
    const controller = new AbortController();
    const lines: string[] = [];
    // Abort as soon as the first database reports progress.
    const first = await runJob(instance(config), 'archive', {
      signal: controller.signal,
      log: (line) => lines.push(line),
      onProgress: (p) => {
        if (p.units > 0) controller.abort();
      },
    });
    expect(first.complete).toBe(false);
    expect(first.failures).toEqual([]);
    expect(first.skipped.length).toBeGreaterThan(0);
    const done = first.counts.archivedVersions ?? 0;
    expect(done).toBeGreaterThan(0);
    expect(done).toBeLessThan(total);
    expect(await pendingVersions(config)).toBe(total - done);

    // The report line: one JSON object with what was done, how many bytes, how long.
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!) as JobReport & { level: string; msg: string; time: string };
    expect(line).toMatchObject({ level: 'warn', msg: 'xronox job archive stopped early', job: 'archive', complete: false, counts: { archivedVersions: done } });
    expect(line.bytes).toBeGreaterThan(0);
    expect(typeof line.durationMs).toBe('number');
    expect(line.run).toMatch(/^[0-9a-f-]{36}$/);

    const rest = await runJob(instance(config), 'archive', { log: null });
    expect(rest).toMatchObject({ complete: true, counts: { archivedVersions: total - done } });
    expect(await pendingVersions(config)).toBe(0);
  });

  it('reaches dynamic tenants: the sweep finds their databases in the store, S3 events find them by their bucket', async () => {
    const folder = `${dir.path}/dynamic`;
    const config: XronoxConfigInput = {
      dbConnections: { local: { sqlitePath: `${folder}/xronox.sqlite` } },
      localStorage: { basePath: `${folder}/blobs`, enabled: true },
      databases: {
        runtime: {
          tenantDatabases: [{ tenantId: 'fixed', dbConnRef: 'local', dbName: 'rt_fixed' }],
          dynamicTenants: { enabled: true, dbConnRef: 'local', dbNameTemplate: 'rt_dyn_{tenantId}', bucketTemplate: 'dyn-{tenantId}' },
        },
      },
      jobs: { archive: { mode: 'deferred', sweepAfterMinutes: 0 } },
    };
    const x = instance(config);
    const ids: Record<string, string> = {};
    for (const tenantId of ['fixed', 'd1', 'd2']) {
      const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId, collection: 'orders' });
      ids[tenantId] = (await orders.create({ v: 0 })).id;
      await orders.update(ids[tenantId]!, { v: 1 }, 0);
    }
    await x.flush();
    expect((await x.jobTargets()).map((t) => t.dbName)).toEqual(['rt_fixed', 'rt_dyn_d1', 'rt_dyn_d2']);

    // An S3 event from d1's own bucket archives d1's record, and only that.
    const byEvent = await archiveObjects(x, [{ bucket: 'dyn-d1', key: `records/orders/${ids.d1}/current.json` }], { log: null });
    expect(byEvent.counts).toMatchObject({ events: 1, archivedVersions: 2, archivedRecords: 1 });
    // The sweep reaches the rest, dynamic tenant included.
    const swept = await runJob(x, 'archive', { log: null });
    expect(swept).toMatchObject({ complete: true, databases: { total: 3, done: 3 }, counts: { archivedVersions: 4 } });
  });

  it('job run --db naming no database the job runs on exits 2, names it and lists the databases there are, and does nothing (a real CLI process)', async () => {
    const { file, config } = await seed();
    const blobs = (config.localStorage as { basePath: string }).basePath;
    for (const dbs of [['rt_typo'], ['rt_t1', 'rt_typo']]) {
      const run = await runTsx(CLI, ['job', 'run', 'backup', ...dbs.flatMap((d) => ['--db', d]), '--config', file, '--quiet'], { dropEnv: ['XRONOX_CONFIG_FILE'] });
      expect({ dbs, code: run.code, stdout: run.stdout, stderr: withoutSdkWarning(run.stderr) }).toEqual({
        dbs,
        code: EXIT.usage,
        stdout: '',
        stderr: 'No database the backup job runs on is named "rt_typo"; it runs on: rt_t1, rt_t2, rt_t3, rt_t4\n',
      });
    }
    for (const tenantId of TENANTS) expect(existsSync(join(blobs, `rt_${tenantId}`, 'backups'))).toBe(false);
    // In process, the library says the same with a ValidationError.
    await expect(runJob(instance(config), 'archive', { databases: ['nope'], log: null })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', path: 'databases' });
  });

  it('backup restore shows progress on stderr while it works and prints its report only once every object is written (a real CLI process)', async () => {
    const folder = `${dir.path}/restore-progress`;
    const config: XronoxConfigInput = {
      dbConnections: { local: { sqlitePath: `${folder}/xronox.sqlite` } },
      localStorage: { basePath: `${folder}/blobs`, enabled: true },
      databases: { runtime: { tenantDatabases: [{ tenantId: 'big', dbConnRef: 'local', dbName: 'rt_big' }] } },
    };
    mkdirSync(folder, { recursive: true });
    const file = writeConfig(folder, config);
    const x = instance(config);
    const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'big', collection: 'orders' });
    // More than one page of the outbox (500), so objects are written in several steps.
    const RECORDS = 700;
    await orders.createMany(Array.from({ length: RECORDS }, (_, n) => ({ n, note: 'x'.repeat(200) })));
    await x.flush();
    const now = new Date();
    expect((await runJob(x, 'backup', { now, log: null })).complete).toBe(true);
    await x.shutdown();
    // An empty database, and no records objects: the restore must write every one.
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${folder}/xronox.sqlite${suffix}`, { force: true });
    rmSync(`${folder}/blobs/rt_big/records`, { recursive: true, force: true });

    // The report line is the end: the process is killed the moment it arrives, and nothing may be left to do.
    const run = await runTsx(CLI, ['backup', 'restore', '--db', 'rt_big', '--date', backupDate(now), '--config', file], {
      dropEnv: ['XRONOX_CONFIG_FILE'],
      onOutput: (out, child) => {
        if (out.stdout.includes('\n') && child.exitCode === null) child.kill('SIGKILL');
      },
    });
    const report = JSON.parse(run.stdout.trim()) as JobReport;
    expect(report).toMatchObject({ job: 'restore', complete: true, counts: { restoredRecords: RECORDS, restoredCollections: 1, syncedRecords: RECORDS } });
    const store = openIndex(folder);
    try {
      expect(await store.listPendingSync('rt_big', { limit: 10 })).toEqual([]);
    } finally {
      await store.close();
    }
    const written = readdirSync(`${folder}/blobs/rt_big/records/orders`).filter((id) => existsSync(`${folder}/blobs/rt_big/records/orders/${id}/current.json`));
    expect(written).toHaveLength(RECORDS);
    // Progress meanwhile: a line per step, then the last one, with every count, before the report.
    const lines = withoutSdkWarning(run.stderr).trim().split('\n');
    for (const step of ['checking snapshot', 'staging', 'replacing', 'writing objects']) {
      expect({ step, seen: lines.some((l) => l.startsWith('restore: 0/1 databases | rt_big ') && l.includes(step)) }).toEqual({ step, seen: true });
    }
    // Each step that knows its size counts records against it: the objects written, all of them, at the end.
    expect(lines.some((l) => l.startsWith(`restore: 0/1 databases | rt_big staging | 0/${RECORDS} records (0%)`))).toBe(true);
    expect(lines[lines.length - 1]).toBe(`restore: 1/1 databases | rt_big | ${RECORDS}/${RECORDS} records (100%) | ${Object.entries(report.counts).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }, 180_000);

  it('the CLI shows a progress bar on a terminal, prints the report line, and exits 0', async () => {
    const { file, total } = await seed();
    let stdout = '';
    let stderr = '';
    // A terminal as cli-progress drives one (cursor moves are recorded as nothing).
    const tty = Object.assign(
      { write: (chunk: string) => ((stderr += chunk), true), isTTY: true, columns: 160 },
      { cursorTo: () => true, moveCursor: () => true, clearLine: () => true, clearScreenDown: () => true, on: () => undefined, removeListener: () => undefined },
    ) as unknown as NodeJS.WriteStream;
    const code = await main(['job', 'run', 'archive', '--config', file], { stdout: { write: (chunk: string) => ((stdout += chunk), true) } as unknown as NodeJS.WritableStream, stderr: tty });
    expect(code).toBe(EXIT.ok);
    // What a person sees: the text, without the terminal's cursor and erase sequences.
    const escape = new RegExp(`${String.fromCharCode(27)}(\\[[0-9;?]*[A-Za-z]|[78])`, 'g');
    // The sweep cannot count its work first: a running count per database, no bar.
    expect(stderr.replace(escape, '')).toMatch(new RegExp(`archive ${TENANTS.length}/${TENANTS.length} databases \\| rt_t4 \\| ${RECORDS} records in \\d+s \\| archivedRecords ${TENANTS.length * RECORDS}, archivedVersions ${total}\n`));
    expect(JSON.parse(stdout.trim())).toMatchObject({ job: 'archive', complete: true, counts: { archivedVersions: total } });
    // A backup counts its records first: a bar with the database's total and an ETA.
    stdout = '';
    stderr = '';
    expect(await main(['job', 'run', 'backup', '--db', 'rt_t2', '--config', file], { stdout: { write: (chunk: string) => ((stdout += chunk), true) } as unknown as NodeJS.WritableStream, stderr: tty })).toBe(EXIT.ok);
    expect(stderr.replace(escape, '')).toMatch(new RegExp(`backup 1/1 databases \\| rt_t2 \\[█+\\] ${RECORDS}/${RECORDS} records 100% \\| ETA \\d+s \\| backedUpCollections 1, backedUpRecords ${RECORDS}, backedUpVersions ${RECORDS * VERSIONS}\n`));
    expect(JSON.parse(stdout.trim())).toMatchObject({ job: 'backup', complete: true, counts: { backedUpRecords: RECORDS } });
    // Offload runs (nothing in this config asks for it, so it offloads nothing).
    stdout = '';
    expect(await main(['job', 'run', 'offload', '--config', file, '--quiet'], { stdout: { write: (chunk: string) => ((stdout += chunk), true) } as unknown as NodeJS.WritableStream, stderr: tty })).toBe(EXIT.ok);
    expect(JSON.parse(stdout.trim())).toMatchObject({ job: 'offload', complete: true });
    expect(JSON.parse(stdout.trim()).counts.offloadedRecords).toBeUndefined();
  });
});
