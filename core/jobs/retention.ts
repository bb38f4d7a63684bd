import type { DocumentStore } from '../contracts/document-store.js';
import type { Namespace } from '../contracts/index-store.js';
import { expireDocumentDatabase } from '../domains/maintenance.js';
import { isDocumentDatabaseType } from '../domains/open.js';
import { BlobSync, blobKeys, SyncLeased } from '../engine/blob-sync.js';
import { parseAsOf } from '../foundation/clock.js';
import { retentionBounds } from '../engine/counter-windows.js';
import { type JobContext, syncTargetOf, type JobTarget } from './job.js';
import { DAY_MS } from './settings.js';

const PAGE = 200;

/**
 * Retention for one database.
 *
 * Record databases (runtime, knowledge, metadata, logs), collection by collection:
 * - versions (`retention.ver`): a version superseded more than `days` ago, or beyond the newest
 *   `maxPerItem` of its record, is pruned: its object, then its index entry. A record's current
 *   version is never touched (the port caps every prune at the head), and only versions already
 *   archived are pruned where a versions bucket exists, so an archiver can never be writing one;
 * - logs (`jobs.retention.logsDays`): records created before the window are deleted, object
 *   first, then the record;
 * - counter windows (`retention.counters`), in the analytics database: `days: N` keeps today's
 *   daily window and the N − 1 before it, `weeks` / `months` likewise (the current ISO week or
 *   month and those before it); older windows go, totals stay. Counted as `prunedCounterWindows`.
 *
 * Document databases (messaging, identities: plain collections in the document store, nothing in
 * the index store): every document that has expired by the run's clock is deleted (`shared_memory`
 * past its `_system.retentionDays`, else `jobs.retention.sharedMemoryDays`; sessions past
 * `expiresAt`…; see `expireDocumentDatabase`). Counted as `expiredDocuments`, and the
 * `shared_memory` part of them also as `expiredSharedMemory`. `documentStore` gives the store
 * that holds the database (`xronox.documentStoreFor`); it is asked for document databases only.
 *
 * Safe to stop anywhere and rerun: every rule is monotonic (what is past the policy once stays
 * past it), and each step removes objects before the index entries that lead to them, so a rerun
 * finds the same work and finishes it. Expiry of documents is one delete per collection, which a
 * rerun finds nothing left of.
 */
export async function applyRetention(target: JobTarget, ctx: JobContext, documentStore: () => DocumentStore): Promise<void> {
  if (isDocumentDatabaseType(target.databaseType)) return expireDocuments(target, ctx, documentStore());
  const s = ctx.settings;
  const sync = new BlobSync(() => undefined);
  const windowBounds = retentionBounds(ctx.config.retention?.counters, ctx.now.getTime());
  for (const collection of await target.index.listCollections(target.dbName)) {
    const ns: Namespace = { dbName: target.dbName, collection };
    // Stryker disable next-line ConditionalExpression,LogicalOperator: pruning with neither setting moves no cut (it stays at each record's oldest version), and an unversioned collection keeps one version per record, which no cut removes: the guard only saves the walk.
    if (target.policy.versioned && (s.versionDays !== undefined || s.maxVersionsPerItem !== undefined)) await pruneVersions(target, ns, ctx);
    if (target.policy.appendOnly && s.logsDays !== undefined) await expireLogs(target, ns, ctx, sync, instantBefore(ctx.now, s.logsDays));
    // Stryker disable next-line ConditionalExpression,EqualityOperator: pruning with no bounds prunes nothing and counts 0, which a tally ignores.
    if (Object.keys(windowBounds).length > 0) {
      await ctx.checkpoint();
      ctx.tally.add('prunedCounterWindows', await target.index.pruneCounterWindows(target.analyticsDbName, collection, windowBounds));
    }
  }
}

/** The collection of a messaging database whose expired documents are also counted on their own. */
const SHARED_MEMORY = 'shared_memory';

async function expireDocuments(target: JobTarget, ctx: JobContext, store: DocumentStore): Promise<void> {
  // Renews the lease and honours an abort before the deletes (each one statement per collection).
  await ctx.checkpoint();
  const expired = await expireDocumentDatabase(store, ctx.config, target, ctx.now);
  for (const [collection, n] of Object.entries(expired)) {
    ctx.step(n);
    ctx.tally.add('expiredDocuments', n);
    // Stryker disable next-line ConditionalExpression: only messaging databases have a shared_memory collection; the type check says which collection is meant.
    if (target.databaseType === 'messaging' && collection === SHARED_MEMORY) ctx.tally.add('expiredSharedMemory', n);
  }
}

async function pruneVersions(target: JobTarget, ns: Namespace, ctx: JobContext): Promise<void> {
  const { versionDays, maxVersionsPerItem } = ctx.settings;
  const cutoff = versionDays === undefined ? undefined : instantBefore(ctx.now, versionDays);
  const loc = target.blobs.versions;
  let afterId: string | undefined;
  for (;;) {
    await ctx.checkpoint();
    // Stryker disable next-line ConditionalExpression: an `afterId: undefined` reads as no afterId.
    const page = await target.index.summariseVersions(ns, { limit: PAGE, ...(afterId !== undefined ? { afterId } : {}) });
    for (const sum of page) {
      ctx.step();
      let cut = sum.oldestOv;
      // Stryker disable next-line ConditionalExpression,EqualityOperator,LogicalOperator: stored versions are contiguous (pruning removes a prefix), so with count <= max the newest − max + 1 is at or below the oldest and moves no cut; without a max, `count > undefined` is false either way.
      if (maxVersionsPerItem !== undefined && sum.count > maxVersionsPerItem) cut = Math.max(cut, sum.newestOv - maxVersionsPerItem + 1);
      // The guard only saves a lookup: when the oldest version was not superseded by the cut-off, the
      // version current then is the oldest (or none), which moves no cut.
      // Stryker disable next-line ConditionalExpression,LogicalOperator,EqualityOperator: see above.
      if (cutoff !== undefined && sum.oldestSupersededAt !== null && sum.oldestSupersededAt <= cutoff) {
        // Every version older than the newest one written by the cut-off was superseded by then.
        const row = await target.index.findVersionAt(ns, sum.id, { at: cutoff });
        // Stryker disable next-line ConditionalExpression: the oldest version was written before the cut-off, so a version stood then.
        if (row) cut = Math.max(cut, row.ov);
      }
      cut = Math.min(cut, sum.newestOv);
      // Stryker disable next-line ConditionalExpression,EqualityOperator: with the cut at the oldest version the range is empty and the prune removes nothing (a 0 that tallies ignore).
      if (cut <= sum.oldestOv) continue;
      // Stryker disable next-line ConditionalExpression: a versioned collection of a loaded config always has a versions location; the check keeps hand-built targets safe.
      if (loc) {
        // Stryker disable next-line ObjectLiteral: the limit saves reading more than the first.
        const [firstPending] = await target.index.listUnarchived(ns, sum.id, { limit: 1 });
        // Stryker disable next-line EqualityOperator: with the first pending version at the cut, 0 is counted and the cut stays.
        if (firstPending && firstPending.ov < cut) {
          ctx.tally.add('versionsAwaitingArchival', cut - Math.max(firstPending.ov, sum.oldestOv));
          cut = firstPending.ov;
        }
        // Stryker disable next-line ConditionalExpression,EqualityOperator: as above, an empty range.
        if (cut <= sum.oldestOv) continue;
      }
      // Stryker disable next-line ArrayDeclaration: as above, `loc` is always there.
      const keys = loc ? range(sum.oldestOv, cut).map((ov) => blobKeys.version(loc, ns.collection, sum.id, ov)) : [];
      // Objects first: a crash leaves entries that a rerun prunes again, never an entry whose
      // object is gone for a reader to trip on for longer than one pass. The second pass removes
      // an object that a stalled archiver may have written in between. Either pass alone leaves
      // the same end state; only a crash or a stalled archiver between them tells them apart.
      // Stryker disable next-line ArrowFunction: see above.
      await inParallel(keys, (key) => target.blob.delete(loc!.bucket, key), ctx.settings.concurrency);
      const removed = await target.index.pruneVersions(ns, sum.id, cut);
      // Stryker disable next-line ArrowFunction: see above.
      await inParallel(keys, (key) => target.blob.delete(loc!.bucket, key), ctx.settings.concurrency);
      ctx.tally.add('prunedVersions', removed);
      // Stryker disable next-line ConditionalExpression,EqualityOperator: a cut above the oldest version always removes some in a single run; 0 needs a concurrent prune.
      ctx.tally.add('prunedRecords', removed > 0 ? 1 : 0);
    }
    if (page.length < PAGE) return;
    afterId = page[page.length - 1]!.id;
  }
}

/**
 * Deletes the logs created at or before `cutoff` for good: their day-filed object, then the
 * record, then whatever the purge finds. Heads come in creation order, so the first younger one
 * ends the pass.
 */
async function expireLogs(target: JobTarget, ns: Namespace, ctx: JobContext, sync: BlobSync, cutoff: string): Promise<void> {
  const syncTarget = syncTargetOf(target);
  let after: { value: string; id: string } | undefined;
  for (;;) {
    await ctx.checkpoint();
    // Logs are append-only (never deleted but here, and then gone): includeDeleted finds nothing more. Ids are UUIDv7, so the default id order is creation order too.
    // Stryker disable next-line BooleanLiteral,ObjectLiteral: see above.
    const heads = await target.index.listHeads(ns, { filter: null, includeDeleted: true, sort: { field: 'createdAt', direction: 1 }, limit: PAGE, ...(after ? { after } : {}) });
    for (const head of heads) {
      ctx.step();
      // Stryker disable next-line EqualityOperator: stored times have microseconds and the cut-off whole milliseconds; a log at exactly the cut-off is not something a test can write.
      if (head.createdAt > cutoff) return;
      const records = target.blobs.records;
      // Logs are filed by day, outside the record folder the purge clears.
      // Stryker disable next-line ConditionalExpression: a logs database always has a records location.
      if (records) await target.blob.delete(records.bucket, blobKeys.dated(records, ns.collection, head.id, head.createdAt));
      const result = await target.index.commit(ns, { writes: [{ id: head.id, expectedOv: head.ov, head: null }] });
      // Written meanwhile: no longer what was judged expired; the next run judges it again.
      // Stryker disable next-line ConditionalExpression: logs are never written again, and runs hold a lease, so only a deletion racing this one fails the commit.
      if (!result.ok) continue;
      try {
        await sync.syncRecord(syncTarget, ns, head.id);
      } catch (err) {
        // Another process is syncing the record: the removal is in the outbox, and it (or the
        // next repair) clears the record's objects.
        if (!(err instanceof SyncLeased)) throw err;
      }
      ctx.tally.add('expiredLogs');
    }
    if (heads.length < PAGE) return;
    const last = heads[heads.length - 1]!;
    after = { value: last.createdAt, id: last.id };
  }
}

/** The canonical version time `days` before `now`, comparable as a string with stored times. */
function instantBefore(now: Date, days: number): string {
  return parseAsOf(new Date(now.getTime() - days * DAY_MS));
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

async function inParallel<T>(items: readonly T[], run: (item: T) => Promise<void>, concurrency: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await run(items[next++]!);
  };
  // Stryker disable next-line MethodExpression: workers beyond the items find nothing to do.
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}
