import type { HeadRow, Namespace } from '../contracts/index-store.js';
import { isDocumentDatabaseType } from '../domains/open.js';
import { parseAsOf } from '../foundation/clock.js';
import { isOffloaded, recordObjectKey } from '../engine/offloaded.js';
import { ConflictError } from '../errors.js';
import type { BlobLocation } from '../routing/router.js';
import type { JobContext, JobTarget } from './job.js';
import { mapInParallel } from './snapshot.js';
import { DAY_MS } from './settings.js';

const PAGE = 200;

/**
 * Offload for one database: records not written for a while leave the index and are read from
 * their records object (`current.json`, or `{prefix}/{collection}/{date}/{id}.json` for logs).
 *
 * Which collections: those with `collectionMaps[c].s3Offload.enabled` (after `olderThan` days),
 * and, in `logs` databases, every other collection when `jobs.offload.logsAfterDays` is set.
 * Databases without a records bucket, and document databases, have nothing to offload.
 *
 * For each head last updated at or before the cut-off (oldest first): the records object must
 * hold exactly the head's body bytes (it is written, create-only, when missing; an object with
 * other bytes is counted as `mismatchedObjects` and the record is left alone), then
 * `offloadHead` drops the body, in one index transaction, only if the record is still at that
 * ov, in sync and fully archived (otherwise `notOffloadable`: the next run tries again). Reads
 * then fetch the object and check it against the head's id, ov and hash.
 *
 * Safe to stop anywhere and rerun: each record is offloaded by one conditional update, after its
 * object is in place; an offloaded record is skipped. Counts: `offloadedRecords`, and `bytes`
 * (the document bytes that left the index).
 */
export async function offloadDatabase(target: JobTarget, ctx: JobContext): Promise<void> {
  const records = target.blobs.records;
  if (!records || isDocumentDatabaseType(target.databaseType)) return;
  for (const collection of await target.index.listCollections(target.dbName)) {
    const days = offloadDays(target, ctx, collection);
    if (days === undefined) continue;
    const cutoff = parseAsOf(new Date(ctx.now.getTime() - days * DAY_MS));
    await offloadCollection(target, ctx, records, { dbName: target.dbName, collection }, cutoff);
  }
}

/** After how many days without a write the records of a collection are offloaded; `undefined`: never. */
function offloadDays(target: JobTarget, ctx: JobContext, collection: string): number | undefined {
  const s3Offload = ctx.config.collectionMaps[collection]?.s3Offload;
  if (s3Offload?.enabled) return s3Offload.olderThan;
  return target.databaseType === 'logs' ? ctx.settings.offloadLogsAfterDays : undefined;
}

async function offloadCollection(target: JobTarget, ctx: JobContext, loc: BlobLocation, ns: Namespace, cutoff: string): Promise<void> {
  let after: { value: string; id: string } | undefined;
  for (;;) {
    await ctx.checkpoint();
    const heads = await target.index.listHeads(ns, { filter: null, includeDeleted: true, sort: { field: 'updatedAt', direction: 1 }, limit: PAGE, ...(after ? { after } : {}) });
    // Oldest first: the first head written after the cut-off ends the pass.
    const due = heads.filter((head) => head.updatedAt <= cutoff);
    ctx.step(due.length);
    // Each record is offloaded on its own (one conditional update after its object is in place): `jobs.concurrency` at a time.
    await mapInParallel(due.filter((head) => !isOffloaded(head)), (head) => offloadRecord(target, ctx, loc, ns, head), ctx.settings.concurrency);
    if (due.length < heads.length || heads.length < PAGE) return;
    const last = heads[heads.length - 1]!;
    after = { value: last.updatedAt, id: last.id };
  }
}

async function offloadRecord(target: JobTarget, ctx: JobContext, loc: BlobLocation, ns: Namespace, head: HeadRow): Promise<void> {
  // Cheap checks first, so records still in flight cost no object traffic.
  if ((await target.index.getPendingSeq(ns, head.id)) !== null || (target.policy.versioned && (await target.index.listUnarchived(ns, head.id, { limit: 1 })).length > 0)) {
    ctx.tally.add('notOffloadable');
    return;
  }
  const body = Buffer.from(head.body, 'utf8');
  const key = recordObjectKey(loc, target.policy.appendOnly, ns.collection, head);
  if (!(await objectHolds(target, loc.bucket, key, body))) {
    ctx.tally.add('mismatchedObjects');
    return;
  }
  if (await target.index.offloadHead(ns, head.id, head.ov)) {
    ctx.tally.add('offloadedRecords');
    ctx.tally.bytes += body.byteLength;
  } else ctx.tally.add('notOffloadable');
}

/** Whether the object holds exactly `body`, writing it create-only when it is missing. */
async function objectHolds(target: JobTarget, bucket: string, key: string, body: Buffer): Promise<boolean> {
  const existing = await target.blob.get(bucket, key);
  if (existing) return Buffer.from(existing).equals(body);
  try {
    await target.blob.put(bucket, key, body, { contentType: 'application/json', ifNoneMatch: true });
    return true;
  } catch (err) {
    if (!(err instanceof ConflictError)) throw err;
    // Written meanwhile (by a sync): fine only when it is the same document.
    const now = await target.blob.get(bucket, key);
    return now !== null && Buffer.from(now).equals(body);
  }
}
