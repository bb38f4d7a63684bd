import type { Document } from 'mongodb';
import type { CounterDelta, CounterWindowGranularity, Namespace } from '../../contracts/index-store.js';
import type { HeadDoc, PendingWrite, VersionDoc } from './mongodb-documents.js';
import {
  collectionName,
  CV_DOC_ID,
  QUEUE_COLLECTIONS,
  recordKey,
  TOTALS_DOC_ID,
  WINDOW_DOC_PREFIX,
} from './mongodb-layout.js';
import { emptyDocFilter, pullIntentPlan } from './mongodb-uploads.js';

/**
 * The write protocol of the MongoDB index store, as data: each function returns the ordered list
 * of single-document operations a step performs, and `mongodb-index-store.ts` executes them. Keeping
 * the plan pure lets the tests replay it with a crash after every operation.
 *
 * ## Replica set or sharded cluster
 * One multi-document transaction (majority read and write concern) per batch: check each head's
 * ov, take claims, allocate the collection version, write the head, then `sideEffects(...)`.
 *
 * ## Standalone server (no transactions)
 * A record's head document is the single point of truth, and a write is one compare-and-set on it:
 *
 * 1. Read the head. If it carries a `pending` write, roll that write forward first (below).
 *    Then renew the write's upload intents (`RecordWrite.uploads`), which fails (reason
 *    `upload`) when a cleanup took one; see `mongodb-uploads.ts`.
 * 2. Allocate the collection version: `$inc` on `{c}_counter` `{ _id: "cv" }`.
 * 3. Take the unique claims (single-document upserts on `{c}_claims`, `_id` = the claim key),
 *    stamped with that cv.
 * 4. **Commit point.** Compare-and-set the head: `updateOne({ _id, ov: expectedOv, pending: absent })`
 *    (or `insertOne` for a new record), writing the new state *and* a `pending` write that
 *    carries everything still to do: the version entry, outbox mark, queued objects, upload
 *    intents to remove, counter deltas, claim release, purge. The CAS on `ov` is what makes two
 *    writers unable to get the same ov; because the version entry travels inside the head, an
 *    acknowledged write cannot lose its version even if the process dies on the next line.
 * 5. Roll forward: `sideEffects(...)` then clear `pending` (conditional on its `opId`).
 *
 * Every roll-forward operation is idempotent (`$setOnInsert` upserts, `$max`, deletes, counter
 * increments guarded by the op id), so the writer, a later writer of the same record, a reader
 * and `repair` may all run it, in any interleaving. Readers that find a `pending` head serve its
 * version from the head until the entry lands.
 *
 * What the standalone mode gives up: a batch of several records is applied record by record (a
 * failed check at record k leaves records before k written), and collection versions may skip a
 * number when a writer dies or loses a race between steps 2 and 4. `capabilities.atomicBatches` says so.
 */

export interface CollRef {
  readonly db: string;
  readonly name: string;
}

export type MongoOp =
  | { readonly kind: 'updateOne'; readonly coll: CollRef; readonly filter: Document; readonly update: Document; readonly upsert?: true; readonly duplicateMeansDone?: true }
  | { readonly kind: 'deleteOne' | 'deleteMany'; readonly coll: CollRef; readonly filter: Document }
  /**
   * Inserts a version entry unless the same entry (same `_id` and hash) is there. An entry with
   * the same `_id` but another hash can only be a phantom: a roll-forward that stalled while the
   * record was purged and re-created wrote it late. It is replaced, but only while `head` still
   * holds `opId` as its pending write, so a stalled roll-forward never replaces a live entry.
   */
  | { readonly kind: 'insertVersion'; readonly coll: CollRef; readonly entry: VersionDoc; readonly head: CollRef; readonly opId: string };

export interface ProtocolSettings {
  /** Name of the dead-letter collection (`fallback.deadLetterCollection`). */
  deadLetterCollection: string;
}

export function coll(ns: Namespace, role: Parameters<typeof collectionName>[1]): CollRef {
  return { db: ns.dbName, name: collectionName(ns.collection, role) };
}

export function queue(dbName: string, which: keyof typeof QUEUE_COLLECTIONS, settings?: ProtocolSettings): CollRef {
  const name = which === 'deadLetters' && settings ? settings.deadLetterCollection : QUEUE_COLLECTIONS[which];
  return { db: dbName, name };
}

/** Step 2: the next collection version. `seq` starts at 1 on the first write, so cv starts at 0 as in SQLite. */
export function nextCvOp(ns: Namespace): { coll: CollRef; filter: Document; update: Document } {
  return { coll: coll(ns, 'counter'), filter: { _id: CV_DOC_ID }, update: { $inc: { seq: 1 } } };
}

/** Step 4 for an existing record: the compare-and-set filter. */
export function headCasFilter(id: string, expectedOv: number): Document {
  return { _id: id, ov: expectedOv, pending: { $exists: false } };
}

/**
 * Everything a committed write still has to do besides replacing the head. Within a transaction
 * (`idempotentCounters: false`) counters are plain increments; in the standalone protocol they
 * carry the op id so a repeated roll-forward adds them once.
 */
export function sideEffects(ns: Namespace, id: string, pending: PendingWrite, settings: ProtocolSettings, mode: { idempotentCounters: boolean }): MongoOp[] {
  const ops: MongoOp[] = [];
  const ver = coll(ns, 'ver');
  if (pending.version) {
    ops.push({ kind: 'insertVersion', coll: ver, entry: pending.version, head: coll(ns, 'head'), opId: pending.opId });
  }
  ops.push({
    kind: 'updateOne',
    coll: queue(ns.dbName, 'outbox'),
    filter: { _id: recordKey(ns.collection, id) },
    // `$max`: a late, repeated roll-forward of an older write never moves the mark backwards.
    update: { $max: { seq: pending.cv }, $setOnInsert: { coll: ns.collection, id, queuedAt: pending.since, order: pending.queueOrder } },
    upsert: true,
  });
  for (const blob of pending.blobs) {
    const { _id, ...fields } = blob;
    ops.push({ kind: 'updateOne', coll: queue(ns.dbName, 'pendingBlobs'), filter: { _id }, update: { $set: fields }, upsert: true });
  }
  // The upload intents the write was committed under (standalone: checked and renewed before
  // the compare-and-set; see mongodb-uploads.ts). Removing one twice changes nothing.
  for (const ref of pending.uploads ?? []) {
    const pull = pullIntentPlan(ns.collection, ref);
    ops.push({ kind: 'updateOne', coll: queue(ns.dbName, 'uploads'), filter: pull.filter, update: pull.update as Document });
    ops.push({ kind: 'deleteOne', coll: queue(ns.dbName, 'uploads'), filter: emptyDocFilter(ns.collection, ref) });
  }
  // Releases and purges reach only what this write or earlier ones created (`cv` at most this
  // write's): a stalled roll-forward of a hard delete must not touch a re-created record's entries.
  const earlier = { $lte: pending.cv };
  if (pending.releaseClaims) ops.push({ kind: 'deleteMany', coll: coll(ns, 'claims'), filter: { id, cv: earlier } });
  if (pending.purge) {
    ops.push({ kind: 'deleteMany', coll: ver, filter: { id, cv: earlier } });
    ops.push({ kind: 'deleteMany', coll: queue(ns.dbName, 'pendingBlobs'), filter: { coll: ns.collection, id, cv: earlier } });
  }
  if (!pending.countersApplied) {
    ops.push(...counterOps(pending.counters, mode.idempotentCounters ? pending.opId : null));
    if (mode.idempotentCounters && pending.counters.length > 0) {
      // Narrows the window in which the op id must still be in `applied` to these two operations.
      ops.push({ kind: 'updateOne', coll: coll(ns, 'head'), filter: { _id: id, 'pending.opId': pending.opId }, update: { $set: { 'pending.countersApplied': true } } });
    }
  }
  return ops;
}

/**
 * The counter increments of a batch: each delta goes to the totals document and to every window
 * document it lists (`CounterDelta.windows`), in the same way. With an op id (standalone roll-forward) they are idempotent:
 * a totals document that already lists the op id does not match, so the upsert tries to insert a
 * second `totals` and hits the unique `_id`, and that duplicate means "already counted". Without
 * one (inside a transaction, or a batch without writes) they are plain increments.
 */
export function counterOps(counters: readonly CounterDelta[], opId: string | null): MongoOp[] {
  const ops: MongoOp[] = [];
  for (const c of counters) {
    const inc = Object.fromEntries(Object.entries(c.deltas).filter(([, d]) => d !== 0).map(([name, d]) => [`counts.${name}`, d]));
    if (Object.keys(inc).length === 0) continue;
    const target = coll({ dbName: c.dbName, collection: c.collection }, 'counter');
    for (const docId of [TOTALS_DOC_ID, ...(c.windows ?? []).map(windowDocId)]) {
      if (opId !== null) {
        ops.push({
          kind: 'updateOne',
          coll: target,
          filter: { _id: docId, applied: { $ne: opId } },
          update: { $inc: inc, $push: { applied: { $each: [opId], $slice: -APPLIED_WINDOW } } },
          upsert: true,
          duplicateMeansDone: true,
        });
      } else {
        ops.push({ kind: 'updateOne', coll: target, filter: { _id: docId }, update: { $inc: inc }, upsert: true });
      }
    }
  }
  return ops;
}

/** The `_id` of a counter window document in `{c}_counter`: `window:` and the window key. */
export function windowDocId(key: string): string {
  return `${WINDOW_DOC_PREFIX}${key}`;
}

/**
 * The `_id` range of the window documents of one granularity within `[from, to]` (whole window
 * keys, inclusive) — for reads — or below `before` — for pruning.
 */
export function windowIdRange(granularity: CounterWindowGranularity, bounds: { from?: string; to?: string; before?: string }): Document {
  const range: Document = { $gte: windowDocId(`${granularity}:`), $lt: windowDocId(`${granularity};`) };
  if (bounds.from !== undefined && windowDocId(bounds.from) > range.$gte) range.$gte = windowDocId(bounds.from);
  if (bounds.to !== undefined) range.$lte = windowDocId(bounds.to);
  if (bounds.before !== undefined && windowDocId(bounds.before) < range.$lt) range.$lt = windowDocId(bounds.before);
  return range;
}

/** How many recent op ids a totals document remembers (see `sideEffects`). */
export const APPLIED_WINDOW = 512;

/** Step 5 of the standalone protocol: the whole roll-forward of a head's pending write, ending with its removal. */
export function rollForward(ns: Namespace, head: HeadDoc & { pending: PendingWrite }, settings: ProtocolSettings): MongoOp[] {
  const pending = head.pending;
  const done: MongoOp = pending.purge
    ? { kind: 'deleteOne', coll: coll(ns, 'head'), filter: { _id: head._id, 'pending.opId': pending.opId } }
    : { kind: 'updateOne', coll: coll(ns, 'head'), filter: { _id: head._id, 'pending.opId': pending.opId }, update: { $unset: { pending: '' } } };
  return [...sideEffects(ns, head._id, pending, settings, { idempotentCounters: true }), done];
}

/**
 * Lease acquisition as one upsert whose pipeline decides with the server's clock (`$$NOW`), so two
 * application servers with skewed clocks still cannot both hold a lease. The lock document is
 * taken (owner and expiry set) when it is absent, expired, or already held by `owner`, and left
 * as it is otherwise; the caller reads the document after the update (`findOneAndUpdate`) and has
 * the lease when it names `owner`. (The condition cannot be a `$expr` in the filter: the server
 * refuses `$expr` in the query of an upsert, error 224 QueryFeatureNotAllowed.)
 */
export function acquireLockOp(ns: Namespace, key: string, owner: string, leaseMs: number): Extract<MongoOp, { kind: 'updateOne' }> {
  const free = { $or: [{ $eq: [{ $type: '$owner' }, 'missing'] }, { $eq: ['$owner', { $literal: owner }] }, { $lte: ['$expiresAt', '$$NOW'] }] };
  return {
    kind: 'updateOne',
    coll: coll(ns, 'locks'),
    filter: { _id: key },
    update: [
      {
        $set: {
          owner: { $cond: [free, { $literal: owner }, '$owner'] },
          expiresAt: { $cond: [free, { $add: ['$$NOW', leaseMs] }, '$expiresAt'] },
        },
      },
    ] as unknown as Document,
    upsert: true,
  };
}

export function releaseLockOp(ns: Namespace, key: string, owner: string): MongoOp {
  return { kind: 'deleteOne', coll: coll(ns, 'locks'), filter: { _id: key, owner } };
}
