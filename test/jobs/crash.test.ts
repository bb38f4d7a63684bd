/**
 * Crash trials: a job process (the CLI, `xronox job run <job>`) is killed with SIGKILL at a random
 * point of its work, then run again; the final state must equal that of an uninterrupted run,
 * byte for byte: every row of every table of the SQLite file, every object in the blob folder
 * (backups compared with their snapshot id, the time of their run, set aside).
 *
 * "A random point" is chosen by progress, not by time: a seeded random number of objects the job
 * has written (or removed), which the test watches in the blob folder; the process is killed as
 * soon as it gets there. The rerun waits for the dead run's lease to run out (`--wait`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';
import { blobFiles, seeded, sqliteDump, writeConfig } from './support.js';

const CLI = new URL('../../functions/cli/xronox.ts', import.meta.url).pathname;
const TRIALS = 21;
const RECORDS = 30;
const VERSIONS = 20;
const SIDE_COLLECTIONS = ['c1', 'c2', 'c3', 'c4', 'c5'];
const DB = 'rt_crash';
/** A messaging database: backups also snapshot its document collections. */
const MSG_DB = 'msg_crash';
const MESSAGING_COLLECTIONS = 4;

type Job = 'archive' | 'retention' | 'backup';

describe('a job killed with SIGKILL at random points and run again ends as an uninterrupted run', () => {
  const dir = tempDir('xronox-jobs-crash');
  const templates: Record<'pending' | 'archived', string> = { pending: join(dir.path, 'template-pending'), archived: '' };
  const reference: Partial<Record<Job, State>> = {};
  const totals: Partial<Record<Job, number>> = {};

  beforeAll(async () => {
    // The data: one collection with a long history per record, five small ones (backups work
    // collection by collection). Versions are left pending (deferred archival) for the archive job.
    const base = templates.pending;
    const config = {
      dbConnections: { local: { sqlitePath: 'xronox.sqlite' } },
      localStorage: { basePath: 'blobs', enabled: true },
      databases: {
        runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: DB }] },
        messaging: { genericDatabase: { dbConnRef: 'local', dbName: MSG_DB } },
      },
      retention: { ver: { maxPerItem: 3 } },
      // Parts of 4 KiB: a backup writes many parts and saves its progress after each, so a kill
      // lands between parts and progress records too, and the rerun carries on from the last one.
      jobs: { archive: { mode: 'deferred' as const, sweepAfterMinutes: 0 }, leaseSeconds: 1, backup: { partKilobytes: 4 } },
    };
    // Paths in a config file are resolved against its folder, so a copied folder is self-contained.
    mkdirSync(base, { recursive: true });
    writeConfig(base, config);
    const x = initXronox({ ...config, dbConnections: { local: { sqlitePath: join(base, 'xronox.sqlite') } }, localStorage: { basePath: join(base, 'blobs'), enabled: true } });
    const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    for (let r = 0; r < RECORDS; r++) {
      const { id } = await orders.create({ n: r, v: 0 }, 'seed', 'create');
      for (let v = 1; v < VERSIONS; v++) await orders.update(id, { n: r, v }, v - 1, 'seed', `v${v}`);
    }
    for (const collection of SIDE_COLLECTIONS) {
      const c = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection });
      for (let r = 0; r < 5; r++) {
        const { id } = await c.create({ r }, 'seed');
        for (let v = 1; v < 3; v++) await c.update(id, { r, v }, v - 1, 'seed');
      }
    }
    const memory = x.with({ databaseType: 'messaging', tier: 'generic', collection: 'shared_memory' });
    for (let i = 0; i < 50; i++) {
      await memory.insert({ key: `k${i}`, namespace: 'crash', tenantId: 'acme', val: { i }, _system: { createdAt: new Date(0), updatedAt: new Date(0), retentionDays: 36500 } });
    }
    await x.shutdown();

    // Uninterrupted runs: the references, and the template the other jobs start from.
    const archived = fresh(base, 'reference-archive');
    expect((await runCli(archived, 'archive')).code).toBe(0);
    reference.archive = state(archived);
    templates.archived = archived;
    for (const job of ['retention', 'backup'] as const) {
      const work = fresh(archived, `reference-${job}`);
      expect((await runCli(work, job)).code).toBe(0);
      reference[job] = state(work);
    }
    totals.archive = progress('archive', archived, base);
    totals.retention = progress('retention', join(dir.path, 'reference-retention'), archived);
    totals.backup = progress('backup', join(dir.path, 'reference-backup'), archived);
    // Backups: a manifest per collection and its parts (many for orders, at 4 KiB each).
    expect(totals).toEqual({ archive: RECORDS * VERSIONS + SIDE_COLLECTIONS.length * 5 * 3, retention: RECORDS * (VERSIONS - 3), backup: expect.any(Number) });
    expect(totals.backup).toBeGreaterThan((1 + SIDE_COLLECTIONS.length + MESSAGING_COLLECTIONS) * 2 + 20);
  }, 300_000);

  afterAll(() => dir.cleanup());

  it(`${TRIALS} trials over archive, retention and backup`, async () => {
    const random = seeded(7_2026);
    const outcomes: Array<{ job: Job; killAt: number; killedMidRun: boolean; partial: boolean }> = [];
    for (let trial = 0; trial < TRIALS; trial++) {
      const job = (['archive', 'retention', 'backup'] as const)[trial % 3]!;
      const template = job === 'archive' ? templates.pending : templates.archived;
      const work = fresh(template, `trial-${trial}-${job}`);
      const killAt = 1 + Math.floor(random() * (totals[job]! - 1));
      const killed = await runCli(work, job, { killWhen: () => progress(job, work, template) >= killAt });
      const partial = JSON.stringify(state(work)) !== JSON.stringify(reference[job]);
      const afterKill = state(work);
      const rerun = await runCli(work, job, { wait: true });
      expect({ trial, job, code: rerun.code, stderr: rerun.stderr }).toEqual({ trial, job, code: 0, stderr: '' });
      const final = state(work);
      expect({ trial, job, sqlite: final.sqlite }).toEqual({ trial, job, sqlite: reference[job]!.sqlite });
      expect({ trial, job, blobs: final.blobs }).toEqual({ trial, job, blobs: reference[job]!.blobs });
      // Each database has the one snapshot the reference has: the rerun finished the one the kill
      // cut off. Only where the killed run had already finished it did the rerun, a new run, take another.
      for (const [dbName, count] of Object.entries(reference[job]!.snapshots)) {
        const backups = (b: Record<string, string>) => Object.entries(b).filter(([k]) => k.startsWith(`${dbName}/backups/`));
        const finished = afterKill.snapshots[dbName] === count && JSON.stringify(backups(afterKill.blobs)) === JSON.stringify(backups(reference[job]!.blobs));
        expect({ trial, dbName, snapshots: final.snapshots[dbName] }).toEqual({ trial, dbName, snapshots: finished ? count + 1 : count });
      }
      outcomes.push({ job, killAt, killedMidRun: killed.signal === 'SIGKILL', partial });
    }
    console.log(`[crash trials] ${JSON.stringify(outcomes)}`);
    // The kills really cut runs short, leaving work for the rerun (most of them: a kill point
    // near the end may land after the last object, when the process is already finishing).
    expect(outcomes.filter((o) => o.killedMidRun && o.partial).length).toBeGreaterThanOrEqual(Math.ceil(TRIALS / 2));
  }, 900_000);

  function fresh(from: string, name: string): string {
    const to = join(dir.path, name);
    cpSync(from, to, { recursive: true });
    return to;
  }
});

interface State {
  sqlite: Record<string, unknown[]>;
  /** Every object's SHA-256, backups with their snapshot id written `T*` (see `state`). */
  blobs: Record<string, string>;
  /** How many backup snapshots each database has. */
  snapshots: Record<string, number>;
}

/** A snapshot id in a backup key: the time of its run, which differs from run to run. */
const SNAPSHOT = /\/(T\d{6}\.\d{3}Z)\//;

/**
 * The SQLite file row by row, and every object: a backup's keys, and its manifests (which name
 * the snapshot), with the snapshot id written `T*`, so that runs at different times compare.
 */
function state(work: string): State {
  const root = join(work, 'blobs');
  const blobs: Record<string, string> = {};
  const ids: Record<string, Set<string>> = {};
  for (const [key, hash] of Object.entries(blobFiles(root))) {
    const id = SNAPSHOT.exec(key)?.[1];
    if (id === undefined) {
      blobs[key] = hash;
      continue;
    }
    (ids[key.split('/')[0]!] ??= new Set()).add(id);
    blobs[key.replace(SNAPSHOT, '/T*/')] = key.endsWith('/manifest.json') ? createHash('sha256').update(readFileSync(join(root, key), 'utf8').replaceAll(id, 'T*')).digest('hex') : hash;
  }
  return { sqlite: sqliteDump(join(work, 'xronox.sqlite')), blobs, snapshots: Object.fromEntries(Object.entries(ids).map(([db, set]) => [db, set.size])) };
}

/** How far a job got, in objects: written (archive, backup) or removed (retention). */
function progress(job: Job, work: string, template: string): number {
  const count = (folder: string) => (existsSync(folder) ? readdirSync(folder, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && !e.name.endsWith('.xronox-tmp')).length : 0);
  const db = (root: string, kind: string, dbName = DB) => join(root, 'blobs', dbName, kind);
  if (job === 'archive') return count(db(work, 'versions'));
  if (job === 'backup') return count(db(work, 'backups')) + count(db(work, 'backups', MSG_DB));
  return count(db(template, 'versions')) - count(db(work, 'versions'));
}

/** Runs `xronox job run <job>` in its own process; with `killWhen`, SIGKILLs it once that holds. */
function runCli(work: string, job: Job, options: { killWhen?: () => boolean; wait?: boolean } = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  const args = ['--import', 'tsx', CLI, 'job', 'run', job, '--config', join(work, 'xronox.config.json'), '--quiet', ...(options.wait ? ['--wait'] : [])];
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => (stderr += chunk));
  let watch: NodeJS.Timeout | undefined;
  if (options.killWhen) {
    const check = options.killWhen;
    watch = setInterval(() => {
      if (child.exitCode === null && child.signalCode === null && check()) {
        clearInterval(watch);
        child.kill('SIGKILL');
      }
    }, 2);
  }
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearInterval(watch);
      // The AWS SDK warns about Node 20 on stderr; that is not the job's output.
      resolve({ code, signal, stderr: stderr.replace(/\(node:\d+\) NodeVersionSupportWarning[\s\S]*?--trace-warnings[^\n]*\n/g, '') });
    });
  });
}
