/**
 * How runs behave together and report: two runs at once (leases), stopping at a safe point,
 * the structured report line, and the CLI's progress bar. On the embedded default.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { XronoxConfigInput } from '../../core/config/schema.js';
import type { Xronox } from '../../core/engine/xronox.js';
import type { JobReport } from '../../core/jobs/job.js';
import { archiveObjects, runJob } from '../../core/jobs/run.js';
import { initXronox } from '../../core/xronox.js';
import { EXIT, main } from '../../functions/cli/xronox.js';
import { tempDir } from '../support/temp.js';
import { openIndex, writeConfig } from './support.js';

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
    expect(stderr.replace(escape, '')).toMatch(new RegExp(`archive \\[[^\\]]*\\] ${TENANTS.length}/${TENANTS.length} databases \\| ${TENANTS.length * RECORDS} done \\| rt_t4 \\| archivedRecords ${TENANTS.length * RECORDS}, archivedVersions ${total}\n`));
    expect(JSON.parse(stdout.trim())).toMatchObject({ job: 'archive', complete: true, counts: { archivedVersions: total } });
    // Offload runs (nothing in this config asks for it, so it offloads nothing).
    stdout = '';
    expect(await main(['job', 'run', 'offload', '--config', file, '--quiet'], { stdout: { write: (chunk: string) => ((stdout += chunk), true) } as unknown as NodeJS.WritableStream, stderr: tty })).toBe(EXIT.ok);
    expect(JSON.parse(stdout.trim())).toMatchObject({ job: 'offload', complete: true });
    expect(JSON.parse(stdout.trim()).counts.offloadedRecords).toBeUndefined();
  });
});
