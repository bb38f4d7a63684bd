import type { HeadRow, Namespace } from '../contracts/index-store.js';
import { BlobSync, blobKeys, type SyncTarget } from '../engine/blob-sync.js';
import { parseInstant } from '../engine/clock.js';
import { parseDocument } from '../engine/documents.js';
import type { JobTarget } from '../engine/xronox.js';
import type { JobContext } from './job.js';
import { DAY_MS } from './settings.js';

const PAGE = 200;
const DELETE_CONCURRENCY = 8;

/**
 * The one collection whose entries carry their own lifetime: messaging's shared memory. Entries
 * not written for `retentionDays` (their own, else `jobs.retention.sharedMemoryDays`) expire.
 */
export const SHARED_MEMORY = { databaseType: 'messaging', collection: 'shared_memory' } as const;

/**
 * Retention for one database, collection by collection:
 * - versions (`retention.ver`): a version superseded more than `days` ago, or beyond the newest
 *   `maxPerItem` of its record, is pruned: its object, then its index entry. A record's current
 *   version is never touched (the port caps every prune at the head), and only versions already
 *   archived are pruned where a versions bucket exists, so an archiver can never be writing one;
 * - logs (`jobs.retention.logsDays`): records created before the window are deleted, object
 *   first, then the record;
 * - messaging `shared_memory` entries past their `retentionDays` are deleted.
 *
 * Safe to stop anywhere and rerun: every rule is monotonic (what is past the policy once stays
 * past it), and each step removes objects before the index entries that lead to them, so a rerun
 * finds the same work and finishes it.
 */
export async function applyRetention(target: JobTarget, ctx: JobContext): Promise<void> {
  const s = ctx.settings;
  const sync = new BlobSync(() => undefined);
  for (const collection of await target.index.listCollections(target.dbName)) {
    const ns: Namespace = { dbName: target.dbName, collection };
    if (target.policy.versioned && (s.versionDays !== undefined || s.maxVersionsPerItem !== undefined)) await pruneVersions(target, ns, ctx);
    if (target.policy.appendOnly && s.logsDays !== undefined) {
      const cutoff = instantBefore(ctx.now, s.logsDays);
      await expireHeads(target, ns, ctx, sync, { sort: 'createdAt', expired: (h) => h.createdAt <= cutoff, stopAtFirstLive: true, count: 'expiredLogs' });
    }
    if (target.databaseType === SHARED_MEMORY.databaseType && collection === SHARED_MEMORY.collection) {
      await expireHeads(target, ns, ctx, sync, { sort: 'id', expired: (h) => sharedMemoryExpired(h, ctx), stopAtFirstLive: false, count: 'expiredSharedMemory' });
    }
  }
}

async function pruneVersions(target: JobTarget, ns: Namespace, ctx: JobContext): Promise<void> {
  const { versionDays, maxVersionsPerItem } = ctx.settings;
  const cutoff = versionDays === undefined ? undefined : instantBefore(ctx.now, versionDays);
  const loc = target.blobs.versions;
  let afterId: string | undefined;
  for (;;) {
    await ctx.checkpoint();
    const page = await target.index.summariseVersions(ns, { limit: PAGE, ...(afterId !== undefined ? { afterId } : {}) });
    for (const sum of page) {
      ctx.step();
      let cut = sum.oldestOv;
      if (maxVersionsPerItem !== undefined && sum.count > maxVersionsPerItem) cut = Math.max(cut, sum.newestOv - maxVersionsPerItem + 1);
      if (cutoff !== undefined && sum.oldestSupersededAt !== null && sum.oldestSupersededAt <= cutoff) {
        // Every version older than the newest one written by the cut-off was superseded by then.
        const row = await target.index.findVersionAt(ns, sum.id, { at: cutoff });
        if (row) cut = Math.max(cut, row.ov);
      }
      cut = Math.min(cut, sum.newestOv);
      if (cut <= sum.oldestOv) continue;
      if (loc) {
        const [firstPending] = await target.index.listUnarchived(ns, sum.id);
        if (firstPending && firstPending.ov < cut) {
          ctx.tally.add('versionsAwaitingArchival', cut - Math.max(firstPending.ov, sum.oldestOv));
          cut = firstPending.ov;
        }
        if (cut <= sum.oldestOv) continue;
      }
      const keys = loc ? range(sum.oldestOv, cut).map((ov) => blobKeys.version(loc, ns.collection, sum.id, ov)) : [];
      // Objects first: a crash leaves entries that a rerun prunes again, never an entry whose
      // object is gone for a reader to trip on for longer than one pass. The second pass removes
      // an object that a stalled archiver may have written in between.
      await inParallel(keys, (key) => target.blob.delete(loc!.bucket, key));
      const removed = await target.index.pruneVersions(ns, sum.id, cut);
      await inParallel(keys, (key) => target.blob.delete(loc!.bucket, key));
      ctx.tally.add('prunedVersions', removed);
      ctx.tally.add('prunedRecords', removed > 0 ? 1 : 0);
    }
    if (page.length < PAGE) return;
    afterId = page[page.length - 1]!.id;
  }
}

interface ExpiryRule {
  sort: 'id' | 'createdAt';
  expired: (head: HeadRow) => boolean;
  /** Heads come in creation order, so the first live one ends the pass. */
  stopAtFirstLive: boolean;
  count: string;
}

/** Deletes expired records for good: their objects, then the record, then whatever the purge finds. */
async function expireHeads(target: JobTarget, ns: Namespace, ctx: JobContext, sync: BlobSync, rule: ExpiryRule): Promise<void> {
  const syncTarget: SyncTarget = {
    index: target.index,
    blob: target.blob,
    dbName: target.dbName,
    versioned: target.policy.versioned,
    appendOnly: target.policy.appendOnly,
    blobs: target.blobs,
  };
  let after: { value: string; id: string } | undefined;
  for (;;) {
    await ctx.checkpoint();
    const heads = await target.index.listHeads(ns, { filter: null, includeDeleted: true, sort: { field: rule.sort, direction: 1 }, limit: PAGE, ...(after ? { after } : {}) });
    for (const head of heads) {
      ctx.step();
      if (!rule.expired(head)) {
        if (rule.stopAtFirstLive) return;
        continue;
      }
      const records = target.blobs.records;
      // Logs are filed by day, outside the record folder the purge clears.
      if (records && target.policy.appendOnly) await target.blob.delete(records.bucket, blobKeys.dated(records, ns.collection, head.id, head.createdAt));
      const result = await target.index.commit(ns, { writes: [{ id: head.id, expectedOv: head.ov, head: null }] });
      // Written meanwhile: no longer what was judged expired; the next run judges it again.
      if (!result.ok) continue;
      await sync.syncRecord(syncTarget, ns, head.id);
      ctx.tally.add(rule.count);
    }
    if (heads.length < PAGE) return;
    const last = heads[heads.length - 1]!;
    after = { value: rule.sort === 'id' ? last.id : last.createdAt, id: last.id };
  }
}

function sharedMemoryExpired(head: HeadRow, ctx: JobContext): boolean {
  const own = parseDocument(head.body).data.retentionDays;
  const days = typeof own === 'number' && Number.isFinite(own) && own > 0 ? own : ctx.settings.sharedMemoryDays;
  return days !== undefined && head.updatedAt <= instantBefore(ctx.now, days);
}

/** The canonical version time `days` before `now`, comparable as a string with stored times. */
function instantBefore(now: Date, days: number): string {
  return parseInstant(new Date(now.getTime() - days * DAY_MS));
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

async function inParallel<T>(items: readonly T[], run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await run(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, items.length) }, worker));
}
