import type { BlobStore } from '../contracts/blob-store.js';
import type { IndexStore, Namespace } from '../contracts/index-store.js';
import { isDocumentDatabaseType } from '../domains/open.js';
import { BlobSync, blobKeys, forEachUnarchived, putVersionOnce } from '../engine/blob-sync.js';
import { parseAsOf } from '../foundation/clock.js';
import { sweepUploads } from '../engine/content-uploads.js';
import { isValidName } from '../foundation/names.js';
import type { StoragePolicy } from '../config/policy.js';
import type { BlobLocation } from '../routing/router.js';
import { type JobContext, syncTargetOf, type JobTarget } from './job.js';
import { mapInParallel } from './snapshot.js';

/** The ports and layout the archive job needs for one database. */
export interface ArchiveTarget {
  readonly index: IndexStore;
  readonly blob: BlobStore;
  readonly dbName: string;
  readonly policy: Pick<StoragePolicy, 'versioned'>;
  readonly blobs: { readonly versions?: BlobLocation | undefined; readonly records?: BlobLocation | undefined };
}

export interface ArchiveResult {
  /** Versions copied to the versions bucket and marked archived by this call. */
  versions: number;
  bytes: number;
}

const SWEEP_PAGE = 200;

/**
 * Archives every pending version of one record: writes `v{ov}.json` with exactly the committed
 * bytes (create-only; an object already there must hold the same bytes), then marks those
 * entries archived, which lets the index drop its copies. Every step is idempotent and the
 * call is order-free: any number of duplicated, late or reordered calls leave the same state,
 * and readers see the same bytes throughout (from the index until the mark, then from the
 * object, which was written before the mark).
 *
 * A version pruned by retention, or a record hard-deleted, while this call was writing would
 * leave its object behind; so after the mark the call checks the entries it wrote still exist
 * and removes the objects of those that do not. (Retention deletes objects, then entries, then
 * the objects again, and a hard delete's purge follows its commit, so one of the two always
 * removes an object written concurrently.)
 */
export async function archiveRecord(target: ArchiveTarget, collection: string, id: string): Promise<ArchiveResult> {
  const loc = target.blobs.versions;
  if (!target.policy.versioned || !loc) return { versions: 0, bytes: 0 };
  const ns: Namespace = { dbName: target.dbName, collection };
  let bytes = 0;
  const written: number[] = [];
  await forEachUnarchived(target.index, ns, id, async (ov, body) => {
    await putVersionOnce(target.blob, loc.bucket, blobKeys.version(loc, collection, id, ov), body);
    written.push(ov);
    bytes += body.byteLength;
  });
  if (written.length === 0) return { versions: 0, bytes: 0 };
  await target.index.completeSync(ns, id, { archivedOvs: written, seq: null });

  const lowest = written[0]!;
  const highest = written[written.length - 1]!;
  const remaining = new Set(
    (await target.index.listHistory(ns, id, { beforeOv: highest + 1, limit: highest - lowest + 1 })).map((v) => v.ov),
  );
  for (const ov of written) {
    if (!remaining.has(ov)) await target.blob.delete(loc.bucket, blobKeys.version(loc, collection, id, ov));
  }
  return { versions: written.filter((ov) => remaining.has(ov)).length, bytes };
}

/**
 * The sweep: archives every record of the database whose oldest pending version was written
 * at least `settings.sweepAfterMs` ago, so an S3 event that never arrived costs only delay.
 */
export async function archiveSweep(target: ArchiveTarget, ctx: JobContext): Promise<void> {
  if (!target.policy.versioned || !target.blobs.versions) return;
  const writtenBefore = parseAsOf(new Date(ctx.now.getTime() - ctx.settings.sweepAfterMs));
  let after: { collection: string; id: string } | undefined;
  for (;;) {
    await ctx.checkpoint();
    const page = await target.index.listUnarchivedRecords(target.dbName, { writtenBefore, limit: SWEEP_PAGE, ...(after ? { after } : {}) });
    // Records are independent (each archived on its own, idempotently): `jobs.concurrency` of them at a time.
    await mapInParallel(
      page,
      async (r) => {
        const result = await archiveRecord(target, r.collection, r.id);
        ctx.tally.add('archivedRecords', result.versions > 0 ? 1 : 0);
        ctx.tally.add('archivedVersions', result.versions);
        ctx.tally.bytes += result.bytes;
        ctx.step();
      },
      ctx.settings.concurrency,
    );
    if (page.length < SWEEP_PAGE) return;
    const last = page[page.length - 1]!;
    after = { collection: last.collection, id: last.id };
  }
}

/**
 * The outbox part of the sweep: records whose blob sync was cut off (a crashed process, a Lambda
 * container frozen or stopped before its sync finished) get their objects written, as
 * `xronox.repair()` would; in Lambda nothing else writes them until the record is written again.
 * One pass over what was pending when it began, so a run ends however busy the writers are.
 * Counted as `outboxSynced`, `outboxFailed` (still failing, retried by the next run) and
 * `outboxLeft` (every record still in the outbox when the pass ended: those failing, those
 * another process was syncing, and those written after the pass began).
 */
export async function repairOutbox(target: JobTarget, ctx: JobContext): Promise<void> {
  if (isDocumentDatabaseType(target.databaseType)) return;
  await ctx.checkpoint();
  const sync = new BlobSync(() => undefined);
  try {
    const report = await sync.repair(syncTargetOf(target, ctx.settings.archiveMode === 'deferred'));
    if (report.synced > 0) ctx.tally.add('outboxSynced', report.synced);
    if (report.failed > 0) ctx.tally.add('outboxFailed', report.failed);
    if (report.left > 0) ctx.tally.add('outboxLeft', report.left);
  } finally {
    await sync.close();
  }
}

/**
 * The content part of the sweep: content objects of writes that never committed (their upload
 * intents are older than `limits.maxUploadSeconds`) are deleted unless a record references them
 * (`sweepUploads`, the protocol in `core/engine/content-uploads.ts`). Counted as
 * `orphanContentDeleted`, `orphanContentKept` and `orphanContentFailed` (retried by the next run).
 */
export async function sweepContentUploads(target: JobTarget, ctx: JobContext): Promise<void> {
  if (isDocumentDatabaseType(target.databaseType) || !target.blobs.content) return;
  const report = await sweepUploads(syncTargetOf(target), { olderThanMs: ctx.settings.uploadStaleMs, between: () => ctx.checkpoint() });
  ctx.tally.add('orphanContentDeleted', report.deleted);
  ctx.tally.add('orphanContentKept', report.kept);
  ctx.tally.add('orphanContentFailed', report.failed);
}

/** A record named by an object key of the records bucket. */
export interface RecordKey {
  collection: string;
  id: string;
}

/**
 * The record whose `current.json` an object key names in a records location
 * (`{prefix}/{collection}/{id}/current.json`); `null` for any other key (logs filed by day,
 * another prefix, names that break the naming rules).
 */
export function recordOfKey(loc: BlobLocation, key: string): RecordKey | null {
  const head = `${loc.prefix}/`;
  if (!key.startsWith(head)) return null;
  const parts = key.slice(head.length).split('/');
  if (parts.length !== 3 || parts[2] !== 'current.json') return null;
  const [collection, id] = parts as [string, string];
  return isValidName('collection', collection) && isValidName('id', id) ? { collection, id } : null;
}
