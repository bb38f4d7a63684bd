/**
 * A replace restore (`xronox backup restore --replace`, a real CLI process) killed with SIGKILL
 * at each of its steps: whenever it dies, the database is either exactly as it was or exactly the
 * snapshot (the swap is one SQLite transaction; nothing in between is ever visible), and running
 * the restore again ends exactly as an uninterrupted restore does: every head, version entry,
 * claim, collection version, counter total and window, and every object in the blob folder.
 *
 * The kill points are chosen by what the process reports, not by time: the restore prints a
 * progress line on stderr as it enters each step, and the process is killed as soon as the line
 * of the chosen step arrives.
 */
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJob } from '../../core/jobs/run.js';
import { backupDate } from '../../core/jobs/snapshot.js';
import { initXronox } from '../../core/xronox.js';
import { EXIT } from '../../functions/cli/xronox.js';
import { runTsx, type TsxRun } from '../support/tsx-process.js';
import { tempDir } from '../support/temp.js';
import { blobFiles, indexState, openIndex, writeConfig } from './support.js';

const CLI = new URL('../../functions/cli/xronox.ts', import.meta.url).pathname;
const DB = 'rt_rcrash';
const ANALYTICS = 'an_rcrash';
/** Where the restore is when it is killed: the step whose progress line has just arrived. */
const KILL_AT = ['checking snapshot', 'staging', 'replacing', 'removing replaced objects', 'writing objects'] as const;

interface State {
  index: Record<string, unknown>;
  windows: Record<string, unknown>;
}

describe('a replace restore killed at any step leaves the database as it was or as the snapshot, and a rerun ends as an uninterrupted restore', () => {
  const dir = tempDir('xronox-restore-crash');
  let template = '';
  let date = '';
  let before: State;
  let reference: State & { blobs: Record<string, string> };

  beforeAll(async () => {
    template = join(dir.path, 'template');
    mkdirSync(template, { recursive: true });
    const config = {
      dbConnections: { local: { sqlitePath: 'xronox.sqlite' } },
      localStorage: { basePath: 'blobs', enabled: true },
      databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: DB, analyticsDbName: ANALYTICS }] } },
      counterRules: { rules: [{ name: 'big', on: ['CREATE', 'UPDATE'] as Array<'CREATE' | 'UPDATE'>, when: { total: { $gte: 50 } } }] },
      retention: { counters: { days: 30 } },
      jobs: { leaseSeconds: 1 },
    };
    writeConfig(template, config);
    const x = initXronox({ ...config, dbConnections: { local: { sqlitePath: join(template, 'xronox.sqlite') } }, localStorage: { basePath: join(template, 'blobs'), enabled: true } });
    const acme = (collection: string) => x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection });
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) {
      const { id } = await acme('orders').create({ n: i, total: i * 2 });
      ids.push(id);
      for (let v = 1; v < 4; v++) await acme('orders').update(id, { n: i, total: i * 2 + v }, v - 1);
    }
    for (let i = 0; i < 10; i++) await acme('customers').smartInsert({ email: `c${i}@example.com` }, { uniqueKeys: ['email'] });
    await x.flush();
    const now = new Date();
    expect((await runJob(x, 'backup', { now, log: null })).complete).toBe(true);
    date = backupDate(now);
    // After the backup: orders changed twice (their versions archived), new orders, a new collection.
    for (const id of ids.slice(0, 20)) {
      const ov = (await acme('orders').getLatest(id))!.ov;
      await acme('orders').update(id, { late: true, total: 99 }, ov);
      await acme('orders').update(id, { late: true, total: 98 }, ov + 1);
    }
    for (let i = 0; i < 15; i++) await acme('orders').create({ late: i, total: 70 });
    for (let i = 0; i < 5; i++) await acme('invoices').create({ i });
    await x.flush();
    await x.shutdown();
    before = await state(template);

    const uninterrupted = fresh('reference');
    const run = await restore(uninterrupted);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: EXIT.ok, stderr: '' });
    reference = { ...(await state(uninterrupted)), blobs: blobFiles(join(uninterrupted, 'blobs')) };
    expect(reference.index).not.toEqual(before.index);
  }, 300_000);

  afterAll(() => dir.cleanup());

  it(`killed at each step (${KILL_AT.join(', ')}), then run again`, async () => {
    const outcomes: Array<{ step: string; killed: boolean; left: 'as it was' | 'the snapshot' }> = [];
    for (const step of KILL_AT) {
      const work = fresh(`killed-at-${step.replace(/ /g, '-')}`);
      const killed = await restore(work, { killAt: step });
      // Never in between: the database is as it was, or the snapshot, counters and windows included.
      const now = await state(work);
      const left = JSON.stringify(now) === JSON.stringify(before) ? 'as it was' : JSON.stringify(now) === JSON.stringify({ index: reference.index, windows: reference.windows }) ? 'the snapshot' : null;
      expect({ step, left: left ?? now }).toEqual({ step, left: left ?? 'as it was or the snapshot' });
      outcomes.push({ step, killed: killed.signal === 'SIGKILL', left: left! });

      const rerun = await restore(work, { wait: true });
      expect({ step, code: rerun.code, stderr: rerun.stderr }).toEqual({ step, code: EXIT.ok, stderr: '' });
      expect({ step, ...(await state(work)) }).toEqual({ step, index: reference.index, windows: reference.windows });
      expect({ step, blobs: blobFiles(join(work, 'blobs')) }).toEqual({ step, blobs: reference.blobs });
      const store = openIndex(work);
      try {
        expect((await store.listDatabases()).filter((d) => d.startsWith('xronox_restore_'))).toEqual([]);
      } finally {
        await store.close();
      }
    }
    console.log(`[restore crash trials] ${JSON.stringify(outcomes)}`);
    // The kills cut real runs short, on both sides of the swap.
    expect(outcomes.filter((o) => o.killed).length).toBeGreaterThanOrEqual(KILL_AT.length - 1);
    expect(new Set(outcomes.map((o) => o.left))).toEqual(new Set(['as it was', 'the snapshot']));
  }, 900_000);

  function fresh(name: string): string {
    const to = join(dir.path, name);
    cpSync(template, to, { recursive: true });
    return to;
  }

  /** `xronox backup restore --replace` in its own process; with `killAt`, SIGKILLed as soon as that step's progress line arrives. */
  async function restore(work: string, options: { killAt?: string; wait?: boolean } = {}): Promise<TsxRun> {
    const args = ['backup', 'restore', '--db', DB, '--date', date, '--replace', '--config', join(work, 'xronox.config.json'), ...(options.wait ? ['--wait'] : [])];
    const run = await runTsx(CLI, options.killAt ? args : [...args, '--quiet'], {
      dropEnv: ['XRONOX_CONFIG_FILE'],
      onOutput: (out, child) => {
        if (options.killAt && child.exitCode === null && out.stderr.split('\n').some((l) => l.startsWith(`restore: 0/1 databases | ${DB} ${options.killAt}`))) child.kill('SIGKILL');
      },
    });
    // The AWS SDK warns about Node 20 on stderr; that is not the CLI's output.
    return { ...run, stderr: run.stderr.replace(/\(node:\d+\) (Warning: )?NodeVersionSupportWarning[\s\S]*?--trace-warnings[^\n]*\n/g, '') };
  }
});

/** The database's index as the port reads it, and its counter windows. */
async function state(work: string): Promise<State> {
  const store = openIndex(work);
  try {
    const windows: Record<string, unknown> = {};
    for (const collection of ['orders', 'customers', 'invoices']) {
      for (const granularity of ['day', 'week', 'month'] as const) windows[`${collection}/${granularity}`] = await store.getCounterWindows(ANALYTICS, collection, { granularity });
    }
    return { index: await indexState(store, [{ dbName: DB, countersDb: ANALYTICS }]), windows };
  } finally {
    await store.close();
  }
}
