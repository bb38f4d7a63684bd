import { randomUUID } from '../foundation/digest.js';
import { templateMatcher } from '../config/dynamic-tenants.js';
import { DATABASE_TYPES } from '../config/schema.js';
import { RestoreTargetNotEmptyError, ValidationError, XronoxError } from '../errors.js';
import { archiveRecord, archiveSweep, recordOfKey, repairOutbox, sweepContentUploads } from './archive.js';
import { documentCollectionsOf, isDocumentDatabaseType } from '../domains/open.js';
import { backupDatabase, recordsHeld, restoreDatabase, type RestoreOptions, snapshotsToRestore } from './backup.js';
import { backupDocumentDatabase, documentsHeld, restoreDocumentDatabase } from './backup-documents.js';
import { type JobContext, type JobHost, type JobName, type JobTarget, type JobReport, reportLine, type RunOptions, runOverTargets, Tally } from './job.js';
import { offloadDatabase } from './offload.js';
import { applyRetention } from './retention.js';
import { jobSettings } from './settings.js';

/** The jobs that run on a schedule (and by hand: `xronox job run <name>`). */
export const SCHEDULED_JOBS = ['archive', 'retention', 'backup', 'offload'] as const;
export type ScheduledJob = (typeof SCHEDULED_JOBS)[number];

/**
 * Runs one job over every database it applies to (or those `options.databases` names): the
 * archive sweep over every database that writes objects (its outbox repaired, content of writes
 * that never committed removed, then, for versioned
 * ones, its pending versions archived), retention over all (expired
 * documents of messaging and identities databases included), backups over those with a backups
 * bucket (the document collections of messaging and identities databases included), offload over those with a records bucket. One run per job and database at a time (a
 * lease in that database's index store); a database leased by another run is skipped (or waited for, with
 * `waitForLease`). Logs one JSON line and returns the report.
 */
export async function runJob(xronox: JobHost, job: ScheduledJob, options: RunOptions = {}): Promise<JobReport> {
  if (!SCHEDULED_JOBS.includes(job)) throw new ValidationError(`Unknown job ${JSON.stringify(job)}; expected one of ${SCHEDULED_JOBS.join(', ')}`);
  const env = { settings: jobSettings(xronox.config), config: xronox.config };
  const targets = await xronox.jobTargets();
  const { eligible, work } = jobWork(xronox, job, targets);
  if (options.databases) checkDatabaseNames(job, options.databases, eligible, targets);
  return runOverTargets(job, eligible, work, env, options);
}

/** The names of the databases `job` runs on (what a coordinator fans out over). */
export async function jobDatabases(xronox: JobHost, job: ScheduledJob): Promise<string[]> {
  if (!SCHEDULED_JOBS.includes(job)) throw new ValidationError(`Unknown job ${JSON.stringify(job)}; expected one of ${SCHEDULED_JOBS.join(', ')}`);
  return jobWork(xronox, job, await xronox.jobTargets()).eligible.map((t) => t.dbName);
}

/** The databases a job runs on, and its work on each. */
function jobWork(xronox: JobHost, job: ScheduledJob, targets: readonly JobTarget[]): { eligible: JobTarget[]; work: (t: JobTarget, ctx: JobContext) => Promise<void> } {
  switch (job) {
    case 'archive':
      // The outbox first (every database that writes objects), then the versions the sweep is for.
      return {
        eligible: targets.filter((t) => !isDocumentDatabaseType(t.databaseType) && (t.blobs.records || t.blobs.versions || t.blobs.content)),
        work: async (t, ctx) => {
          await repairOutbox(t, ctx);
          await sweepContentUploads(t, ctx);
          await archiveSweep(t, ctx);
        },
      };
    case 'retention':
      // Messaging and identities databases hold document collections: expired documents go.
      return { eligible: [...targets], work: (t, ctx) => applyRetention(t, ctx, () => xronox.documentStoreFor(t)) };
    case 'backup':
      // Messaging and identities databases: their document collections.
      return {
        eligible: targets.filter((t) => t.blobs.backups),
        work: (t, ctx) => (isDocumentDatabaseType(t.databaseType) ? backupDocumentDatabase(t, ctx, xronox.documentStoreFor(t)) : backupDatabase(t, ctx)),
      };
    case 'offload':
      return { eligible: targets.filter((t) => t.blobs.records), work: offloadDatabase };
  }
}

/**
 * `databases` (`--db`) must name databases the job runs on: a name that matches none would
 * otherwise make a run that does nothing and reports success. The error lists the names there are.
 */
function checkDatabaseNames(job: ScheduledJob, names: readonly string[], eligible: readonly JobTarget[], all: readonly JobTarget[]): void {
  const runsOn = new Set(eligible.map((t) => t.dbName));
  const wrong = names.filter((n) => !runsOn.has(n));
  if (wrong.length === 0) return;
  const exists = new Set(all.map((t) => t.dbName));
  const what = wrong.map((n) => (exists.has(n) ? `${JSON.stringify(n)} (a database the ${job} job does not run on)` : JSON.stringify(n))).join(', ');
  throw new ValidationError(
    `No database the ${job} job runs on is named ${what}; it runs on: ${[...runsOn].join(', ') || 'none (no database is configured for it)'}`,
    { path: 'databases' },
  );
}

/**
 * Rebuilds one database from one snapshot (`restoreDatabase` for record databases,
 * `restoreDocumentDatabase` for messaging and identities; `RestoreOptions` says which snapshot,
 * and `mode` what happens to data the database holds), objects included: the report is logged
 * once everything is done.
 *
 * Refused before any work, with an error thrown: a database that is neither configured nor a
 * dynamic tenant's that its store holds (`ValidationError`, listing the databases with backups),
 * a request that names no complete snapshot (`NotFoundError`),
 * and, unless `mode` is `replace`, a database (or `collections` of it) that is not empty
 * (`RestoreTargetNotEmptyError`). The run checks emptiness again when it swaps the snapshot in.
 */
export async function restoreBackup(
  xronox: JobHost,
  request: RestoreOptions & { dbName: string },
  options: Omit<RunOptions, 'databases'> = {},
): Promise<JobReport> {
  const all = await xronox.jobTargets();
  const target = all.find((t) => t.dbName === request.dbName);
  if (!target) {
    const restorable = all.filter((t) => t.blobs.backups).map((t) => t.dbName);
    throw new ValidationError(`No configured or dynamic tenant database is named ${JSON.stringify(request.dbName)}; databases with backups: ${restorable.join(', ') || 'none'}`, { path: 'dbName' });
  }
  const documents = isDocumentDatabaseType(target.databaseType);
  const { snapshot } = await snapshotsToRestore(target, request);
  if (request.mode !== 'replace') {
    const collections = request.collections ?? (documents ? documentCollectionsOf(xronox.config, target).map((c) => c.collection) : undefined);
    const held = documents ? await documentsHeld(target, xronox.documentStoreFor(target), collections!) : await recordsHeld(target, collections);
    if (held > 0) throw new RestoreTargetNotEmptyError(target.dbName, held, documents ? 'documents' : 'records', request.collections);
  }
  const env = { settings: jobSettings(xronox.config), config: xronox.config };
  // The run restores the snapshot chosen now, even if a newer one of the day completes meanwhile.
  const chosen = { ...request, ...(snapshot.id !== null ? { snapshot: snapshot.id } : {}) };
  const restore = (t: JobTarget, ctx: JobContext) => (documents ? restoreDocumentDatabase(t, ctx, xronox.documentStoreFor(t), chosen) : restoreDatabase(t, ctx, chosen));
  return runOverTargets('restore', [target], restore, env, options);
}

/** An object named by an S3 event. */
export interface ObjectRef {
  bucket: string;
  /** Already URL-decoded. */
  key: string;
}

/**
 * The archive function's work for a batch of S3 `ObjectCreated` events on `current.json`
 * objects: archives every pending version of each record they name. Duplicates in the batch
 * are handled once; events for other keys, or for databases that keep no versions, are counted
 * and ignored. Every call is idempotent, so retried, duplicated, late and reordered events all
 * end in the same state; records whose events never arrive are archived by the sweep.
 */
export async function archiveObjects(xronox: JobHost, refs: readonly ObjectRef[], options: Pick<RunOptions, 'log' | 'run'> = {}): Promise<JobReport> {
  const started = Date.now();
  const tally = new Tally();
  const failures: JobReport['failures'] = [];
  const seen = new Set<string>();
  // Configured databases only: listing the dynamic tenants' databases costs a store round trip
  // per event batch. Dynamic tenants are found from their bucket (bucketTemplate), else swept.
  const configured = await xronox.jobTargets({ dynamic: false });
  for (const ref of refs) {
    const id = `${ref.bucket}\u0000${ref.key}`;
    if (seen.has(id)) {
      tally.add('duplicateEvents');
      continue;
    }
    seen.add(id);
    const matches = [...configured, ...dynamicTargetsOf(xronox, ref)].flatMap((target) => {
      const records = target.blobs.records;
      const record = records && records.bucket === ref.bucket ? recordOfKey(records, ref.key) : null;
      return record ? [{ target, record }] : [];
    });
    if (matches.length === 0) {
      tally.add('unknownObjects');
      continue;
    }
    for (const { target, record } of matches) {
      if (!target.policy.versioned || !target.blobs.versions) {
        tally.add('unversionedObjects');
        continue;
      }
      try {
        const result = await archiveRecord(target, record.collection, record.id);
        tally.add('archivedVersions', result.versions);
        tally.add('archivedRecords', result.versions > 0 ? 1 : 0);
        tally.bytes += result.bytes;
      } catch (err) {
        failures.push({ dbName: target.dbName, error: `${record.collection}/${record.id}: ${err instanceof XronoxError || err instanceof Error ? err.message : String(err)}` });
      }
    }
  }
  const finished = Date.now();
  const report: JobReport = {
    job: 'archive' satisfies JobName,
    run: options.run ?? randomUUID(),
    startedAt: new Date(started).toISOString(),
    finishedAt: new Date(finished).toISOString(),
    durationMs: finished - started,
    complete: failures.length === 0,
    databases: { total: 0, done: 0, skipped: 0, failed: new Set(failures.map((f) => f.dbName)).size },
    counts: { events: refs.length, ...tally.counts },
    bytes: tally.bytes,
    skipped: [],
    failures,
  };
  const log = options.log === undefined ? (line: string) => process.stdout.write(`${line}\n`) : options.log;
  log?.(reportLine(report));
  return report;
}

/** The dynamic tenant whose own bucket (`bucketTemplate`) the object is in, if any. */
function dynamicTargetsOf(xronox: JobHost, ref: ObjectRef): JobTarget[] {
  const out: JobTarget[] = [];
  for (const databaseType of DATABASE_TYPES) {
    const settings = (xronox.config.databases[databaseType] as { dynamicTenants?: { enabled: boolean; bucketTemplate?: string } } | undefined)?.dynamicTenants;
    if (!settings?.enabled || settings.bucketTemplate === undefined) continue;
    const tenantId = templateMatcher(settings.bucketTemplate).exec(ref.bucket)?.[1];
    if (tenantId === undefined) continue;
    try {
      // Any valid collection name resolves the database; the key names the real one.
      out.push(xronox.jobTarget(xronox.route({ databaseType, tier: 'tenant', tenantId, collection: 'x' })));
    } catch (err) {
      if (!(err instanceof XronoxError)) throw err;
    }
  }
  return out;
}
