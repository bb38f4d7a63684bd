import { randomUUID } from '../foundation/digest.js';
import { sleep } from '../foundation/timers.js';
import type { XronoxConfig } from '../config/load.js';
import type { SyncTarget } from '../engine/blob-sync.js';
import type { UploadTarget } from '../engine/content-uploads.js';
import type { BlobStore } from '../contracts/blob-store.js';
import type { DocumentStore } from '../contracts/document-store.js';
import type { IndexStore, Namespace } from '../contracts/index-store.js';
import type { DatabaseRoute, Route, RouteRequest } from '../routing/router.js';
import type { JobSettings } from './settings.js';

/** One database a job works on: its route, its index store and its blob store. */
export type JobTarget = DatabaseRoute & { readonly index: IndexStore; readonly blob: BlobStore };

/**
 * What the jobs need of the facade. `Xronox` (core/xronox.ts) implements it; the jobs sit below
 * the facade and never import it.
 */
export interface JobHost {
  readonly config: XronoxConfig;
  jobTargets(options?: { dynamic?: boolean }): Promise<JobTarget[]>;
  jobTarget(db: DatabaseRoute): JobTarget;
  route(request: RouteRequest): Route;
  documentStoreFor(db: Pick<DatabaseRoute, 'dbConnRef'>): DocumentStore;
}

/** The jobs a run can name (`restore` is started by hand, the others on a schedule). */
export const JOB_NAMES = ['archive', 'retention', 'backup', 'offload', 'restore'] as const;
export type JobName = (typeof JOB_NAMES)[number];

/**
 * Leases live in the index store of the database they guard, in a namespace no record uses (its
 * name is a valid collection name, so every store accepts it; locks never make it a collection).
 */
export const JOB_LEASE_COLLECTION = 'xronox_jobs';

/** What one run did. Logged as one JSON line, returned to the caller. */
export interface JobReport {
  job: JobName;
  /** This run's id: the owner of its leases, and the correlation id of its log line. */
  run: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** Every database was done: none skipped (leased by another run), failed, or cut short. */
  complete: boolean;
  databases: { total: number; done: number; skipped: number; failed: number };
  /** What was done, by kind (`archivedVersions`, `prunedVersions`, `backedUpRecords`, …). */
  counts: Record<string, number>;
  /** Bytes written to (or, for restore, read from) object storage. */
  bytes: number;
  skipped: Array<{ dbName: string; reason: string }>;
  failures: Array<{ dbName: string; error: string }>;
}

export interface JobProgress {
  job: JobName;
  dbName: string;
  databasesDone: number;
  databasesTotal: number;
  /** Units of work done in the run so far (records, mostly). */
  units: number;
  counts: Readonly<Record<string, number>>;
  /** What the run is doing on `dbName` when a job works in steps (a restore: `checking`, `staging`, …); `''` otherwise. */
  phase: string;
  /** Units of work done in the current step: on `dbName`, since the run reached it or its current `phase`. */
  done: number;
  /**
   * How many units the current step expects, when the job can count them first (a backup: the
   * database's records; a restore: the snapshot's); `null` when it cannot (retention, offload,
   * the archive sweep find their work as they go). A count taken before the work, so `done` may
   * end a little off it when writers are busy.
   */
  total: number | null;
  /** What a unit is (`records`, `documents`), for display. */
  unit: string;
}

export interface RunOptions {
  /** The run's clock (retention cut-offs, the backup's date, the sweep's age). Default: now. */
  now?: Date;
  /** Stops the run at the next safe point (between records); what was done stays done. */
  signal?: AbortSignal;
  /** Only these databases (by name). Default: every database the job applies to. */
  databases?: readonly string[];
  /** Wait for another run's lease on a database to end or expire instead of skipping it. */
  waitForLease?: boolean;
  onProgress?: (progress: JobProgress) => void;
  /** Where the report's JSON line goes. Default: stdout; `null`: nowhere. */
  log?: ((line: string) => void) | null;
  /** The run's id. Default: a random UUID. */
  run?: string;
}

/** Counts and bytes of a run, shared by every database it visits. */
export class Tally {
  readonly counts: Record<string, number> = {};
  bytes = 0;
  units = 0;

  add(kind: string, n = 1): void {
    if (n !== 0) this.counts[kind] = (this.counts[kind] ?? 0) + n;
  }
}

/** What a job's work on one database gets besides the database itself. */
export interface JobContext {
  readonly job: JobName;
  readonly now: Date;
  readonly settings: JobSettings;
  readonly config: XronoxConfig;
  readonly tally: Tally;
  /**
   * Called between units of work: renews the lease and honours the abort signal. Throws
   * `JobStopped` when the run must stop (the work done so far stays done and is reported).
   */
  checkpoint(): Promise<void>;
  /**
   * Renews the run's lease on the database and says whether it still holds it: a job that saves
   * its progress after `checkpoint` threw `JobStopped` (aborted) asks first, so a run that lost
   * the database to another never overwrites that run's progress.
   */
  holdsLease(): Promise<boolean>;
  /**
   * Says the run has moved its work forward (a page written, a collection committed). Until a
   * run has, `moveCheckpoint` does not stop it, and a run aborted before then still starts on its
   * next database: so every run, however little time it is given, moves forward, and a function
   * whose set-up eats its whole window cannot leave each next run where it found it.
   */
  advanced(): void;
  /** Whether the run has moved forward (`advanced`) on any database. */
  readonly hasAdvanced: boolean;
  /** Counts units of work for the progress report. */
  step(units?: number): void;
  /** Announces how many units the current step (this database, or its current phase) will do, for the progress report (`JobProgress.total`). */
  expect(total: number, unit?: string): void;
  /** Names the step the work is in now, with the units it will do when known (`expect`), and reports progress (`JobProgress.phase`). */
  phase(name: string, expected?: { total: number; unit?: string }): void;
  /** Reports progress now (between checkpoints, for long steps). */
  progress(): void;
}

/**
 * A checkpoint for jobs that guarantee progress (`JobContext.advanced`): until the run has moved
 * forward it only renews the lease (stopping if another run took it); after, it is `checkpoint`.
 */
export async function moveCheckpoint(ctx: JobContext): Promise<void> {
  if (ctx.hasAdvanced) return ctx.checkpoint();
  if (!(await ctx.holdsLease())) throw new JobStopped('lease lost');
}

/** Why a run stopped early at a checkpoint. Not a failure: a rerun continues. */
export class JobStopped extends Error {
  constructor(readonly reason: 'aborted' | 'lease lost') {
    super(reason === 'aborted' ? 'the run was aborted' : 'another run took over the lease on this database');
    this.name = 'JobStopped';
  }
}

export type JobWork = (target: JobTarget, ctx: JobContext) => Promise<void>;

/** A job's database as the blob sync sees it (jobs that sync records themselves: retention, the sweep's outbox repair). */
export function syncTargetOf(target: JobTarget, deferVersions = false): SyncTarget & UploadTarget {
  return {
    index: target.index,
    blob: target.blob,
    dbName: target.dbName,
    versioned: target.policy.versioned,
    appendOnly: target.policy.appendOnly,
    blobs: target.blobs,
    deferVersions,
  };
}

/**
 * Runs `work` on each target under a lease (one run per job and database at a time), catching
 * each database's failure so the others still run, then logs and returns the report.
 */
export async function runOverTargets(
  job: JobName,
  targets: readonly JobTarget[],
  work: JobWork,
  env: { settings: JobSettings; config: XronoxConfig },
  options: RunOptions = {},
): Promise<JobReport> {
  const run = options.run ?? randomUUID();
  const started = Date.now();
  const now = options.now ?? new Date(started);
  const tally = new Tally();
  const selected = options.databases ? targets.filter((t) => options.databases!.includes(t.dbName)) : [...targets];
  const report: JobReport = {
    job,
    run,
    startedAt: new Date(started).toISOString(),
    finishedAt: '',
    durationMs: 0,
    complete: true,
    databases: { total: selected.length, done: 0, skipped: 0, failed: 0 },
    counts: tally.counts,
    bytes: 0,
    skipped: [],
    failures: [],
  };
  let current = '';
  let phase = '';
  // The current step's progress: reset when the run moves to another database or phase.
  let done = 0;
  let total: number | null = null;
  let unit = 'records';
  const newStep = () => {
    done = 0;
    total = null;
    unit = 'records';
  };
  const progress = () =>
    options.onProgress?.({
      job,
      dbName: current,
      databasesDone: report.databases.done + report.databases.skipped + report.databases.failed,
      databasesTotal: selected.length,
      units: tally.units,
      counts: tally.counts,
      phase,
      done,
      total,
      unit,
    });

  // Whether a job has moved forward in this run (`JobContext.advanced`).
  let advanced = false;
  for (const target of selected) {
    current = target.dbName;
    phase = '';
    newStep();
    if (options.signal?.aborted && advanced) {
      skip(report, target.dbName, 'the run was aborted');
      continue;
    }
    const ns: Namespace = { dbName: target.dbName, collection: JOB_LEASE_COLLECTION };
    const key = `job:${job}`;
    const leaseMs = env.settings.leaseMs;
    let acquired: boolean;
    try {
      acquired = await acquire(target, ns, key, run, leaseMs, options);
    } catch (err) {
      // The database's store failed before any work (unreachable, or a PostgreSQL schema this
      // role may not create): that database failed, and the others are still done.
      fail(report, target.dbName, err);
      progress();
      continue;
    }
    if (!acquired) {
      skip(report, target.dbName, options.signal?.aborted ? 'the run was aborted' : `another ${job} run holds its lease`);
      progress();
      continue;
    }
    const ctx: JobContext = {
      job,
      now,
      settings: env.settings,
      config: env.config,
      tally,
      checkpoint: async () => {
        if (options.signal?.aborted) throw new JobStopped('aborted');
        if (!(await target.index.acquireLock(ns, key, run, leaseMs))) throw new JobStopped('lease lost');
        progress();
      },
      holdsLease: () => target.index.acquireLock(ns, key, run, leaseMs),
      advanced: () => {
        advanced = true;
      },
      get hasAdvanced() {
        return advanced;
      },
      step: (units = 1) => {
        tally.units += units;
        done += units;
      },
      expect: (units, name = 'records') => {
        total = units;
        unit = name;
        progress();
      },
      phase: (name, expected) => {
        phase = name;
        newStep();
        if (expected) {
          total = expected.total;
          unit = expected.unit ?? unit;
        }
        progress();
      },
      progress,
    };
    try {
      await work(target, ctx);
      report.databases.done++;
    } catch (err) {
      if (err instanceof JobStopped) skip(report, target.dbName, err.message);
      else fail(report, target.dbName, err);
    } finally {
      await target.index.releaseLock(ns, key, run).catch(() => undefined);
    }
    phase = '';
    progress();
  }

  const finished = Date.now();
  report.finishedAt = new Date(finished).toISOString();
  report.durationMs = finished - started;
  report.bytes = tally.bytes;
  const log = options.log === undefined ? (line: string) => process.stdout.write(`${line}\n`) : options.log;
  log?.(reportLine(report));
  return report;
}

/** The structured log line of a report: one JSON object, `level` error when a database failed. */
export function reportLine(report: JobReport): string {
  return JSON.stringify({
    time: report.finishedAt,
    level: report.failures.length > 0 ? 'error' : report.complete ? 'info' : 'warn',
    msg: `xronox job ${report.job} ${report.failures.length > 0 ? 'failed on some databases' : report.complete ? 'finished' : 'stopped early'}`,
    ...report,
  });
}

function skip(report: JobReport, dbName: string, reason: string): void {
  report.databases.skipped++;
  report.complete = false;
  report.skipped.push({ dbName, reason });
}

function fail(report: JobReport, dbName: string, err: unknown): void {
  report.databases.failed++;
  report.complete = false;
  report.failures.push({ dbName, error: err instanceof Error ? err.message : String(err) });
}

async function acquire(target: JobTarget, ns: Namespace, key: string, owner: string, leaseMs: number, options: RunOptions): Promise<boolean> {
  for (;;) {
    if (await target.index.acquireLock(ns, key, owner, leaseMs)) return true;
    if (!options.waitForLease || options.signal?.aborted) return false;
    // The holder renews at every checkpoint; a crashed holder's lease runs out after leaseMs.
    // An aborted wait rejects; the loop then sees the signal and gives up.
    await sleep(Math.min(1000, Math.max(50, leaseMs / 4)), options.signal).catch(() => undefined);
  }
}
