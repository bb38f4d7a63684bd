import { type AnyBulkWriteOperation, type Document, ObjectId } from 'mongodb';
import type { Effect, RecordTable } from '../../contracts/index-driver.js';
import type { Namespace } from '../../contracts/index-store.js';
import { headDoc, pendingBlobDoc, versionDoc } from './mongodb-documents.js';
import { ALL_WINDOWS, coll, type CollRef, CV_DOC_ID, eq, pendingBlobId, queue, recordKey, TOTALS_DOC_ID, uploadDocId, windowDocId } from './mongodb-layout.js';

/**
 * What a transaction's effects write: each effect becomes single-collection operations, in
 * order; `mongodb-transaction.ts` sends them in as few calls as the server allows. Effects on
 * different collections never depend on each other's result; `copyNamespace`, which reads what
 * it copies, stays a step of its own, run with everything before it written.
 *
 * Every time is the server's (`$$NOW`): leases and upload stamps are compared by one clock
 * however skewed the application servers are.
 *
 * Upload intents and the cleanup mark of an object key live in one document (`UploadDoc`), not
 * one per token: a transaction that records an intent and one that takes the key's cleanup both
 * write that document, so MongoDB's write-conflict check serialises them. With a document per
 * token they would write different documents, and snapshot isolation would let both commit.
 */

/** Every document of the index store has a string `_id`. */
export type Keyed = Document & { _id: string };
export type Op = AnyBulkWriteOperation<Keyed>;
export interface Write {
  readonly coll: CollRef;
  readonly op: Op;
}
export type Step = Write | { readonly copy: { readonly from: Namespace; readonly to: Namespace } };

/** The writes of `effects`, in order; `deadLetterCollection` is the configured name. */
export function planWrites(effects: readonly Effect[], deadLetterCollection: string): Step[] {
  return effects.flatMap((e): Step[] => (e.kind === 'copyNamespace' ? [{ copy: { from: e.from, to: e.to } }] : writesOf(e, deadLetterCollection)));
}

/** The collections the steps write (each is set up, outside any transaction, before its first write). */
export function writtenCollections(steps: readonly Step[]): CollRef[] {
  return steps.flatMap((s) => ('copy' in s ? [...COPIED.map((role) => coll(s.copy.to, role)), coll(s.copy.to, 'counter'), queue(s.copy.to.dbName, 'outbox')] : [s.coll]));
}

/** What `copyNamespace` copies, besides the `cv` document. */
export const COPIED = ['head', 'ver', 'claims'] as const;

function writesOf(e: Exclude<Effect, { kind: 'copyNamespace' }>, deadLetterCollection: string): Write[] {
  const to = (c: CollRef, ...ops: Op[]): Write[] => ops.map((op) => ({ coll: c, op }));
  const ns = 'ns' in e ? e.ns : { dbName: e.dbName, collection: e.collection };
  const dlq = queue(ns.dbName, 'deadLetters', deadLetterCollection);
  const [outbox, blobs, uploads] = [queue(ns.dbName, 'outbox'), queue(ns.dbName, 'pendingBlobs'), queue(ns.dbName, 'uploads')];
  switch (e.kind) {
    case 'putHead':
      return to(coll(ns, 'head'), replace(e.id, headDoc(e.id, e.head)));
    case 'deleteRecord':
      return e.tables.flatMap((table) => {
        const [c, filter] = recordRows(table, ns, e.id, dlq);
        const below = table === 'versions' && e.belowOv !== undefined ? { ov: { $lt: e.belowOv } } : {};
        return to(c, table === 'heads' || table === 'outbox' || table === 'deadLetters' ? { deleteOne: { filter } } : { deleteMany: { filter: { ...filter, ...below } } });
      });
    case 'dropBodies':
      if (e.ovs === null) return to(coll(ns, 'head'), { updateOne: { filter: { _id: eq(e.id) }, update: { $set: { body: '' } } } });
      return e.ovs.length === 0 ? [] : to(coll(ns, 'ver'), { updateMany: { filter: { id: eq(e.id), ov: { $in: [...e.ovs] } }, update: { $set: { archived: true, body: null } } } });
    case 'putVersion':
      // An insert: an entry already at that ov is a duplicate key, which fails the transaction.
      return to(coll(ns, 'ver'), { insertOne: { document: versionDoc(e.version) } });
    case 'putClaim':
      return to(coll(ns, 'claims'), replace(e.key, { id: e.id }));
    case 'putOutbox':
      return to(outbox, outboxMark(ns.collection, e.id, e.seq));
    case 'putPendingBlob': {
      const doc = pendingBlobDoc(ns.collection, e.id, e.blob);
      return to(blobs, replace(doc._id, doc));
    }
    case 'deletePendingBlobs':
      return e.keys.length === 0 ? [] : to(blobs, { deleteMany: { filter: { _id: { $in: e.keys.map((k) => pendingBlobId(ns.collection, k.bucket, k.key)) } } } });
    case 'putDeadLetter':
      return to(dlq, replace(recordKey(ns.collection, e.id), { coll: ns.collection, id: e.id, reason: e.reason, failedAt: e.failedAt }));
    case 'counters': {
      const fields = counts(e.counts);
      const _id = e.window === null ? TOTALS_DOC_ID : windowDocId(e.window);
      // A window set to no counts still exists afterwards, with none.
      if (fields === null) return e.add || e.window === null ? [] : to(coll(ns, 'counter'), upsert(_id, { $setOnInsert: { counts: {} } }));
      return to(coll(ns, 'counter'), upsert(_id, { [e.add ? '$inc' : '$set']: fields }));
    }
    case 'deleteCounters':
      // Totals and windows; the `cv` document in the same collection stays.
      return to(coll(ns, 'counter'), e.window === null ? { deleteMany: { filter: { $or: [{ _id: eq(TOTALS_DOC_ID) }, { _id: ALL_WINDOWS }] } } } : { deleteOne: { filter: { _id: eq(windowDocId(e.window)) } } });
    case 'setCollectionVersion':
      // `seq` is the last cv plus one; `$max` never lowers it.
      return to(coll(ns, 'counter'), upsert(CV_DOC_ID, { $max: { seq: e.cv + 1 } }));
    case 'putLock':
      return to(coll(ns, 'locks'), upsert(e.key, [{ $set: { owner: literal(e.owner), expiresAt: { $add: ['$$NOW', literal(e.leaseMs)] } } }]));
    case 'deleteLock':
      return to(coll(ns, 'locks'), { deleteOne: { filter: { _id: eq(e.key) } } });
    case 'putUpload':
      return to(uploads, putUpload(e));
    case 'deleteUpload': {
      const _id = uploadDocId(ns.collection, e.bucket, e.key);
      return to(
        uploads,
        { updateOne: { filter: { _id: eq(_id) }, update: [{ $set: { intents: withoutToken(e.token), cleaning: unlessToken(e.token) } }] } },
        // A document with neither intents nor a mark goes: the collection holds only keys in flight.
        { deleteOne: { filter: { _id: eq(_id), intents: { $size: 0 }, cleaning: { $exists: false } } } },
      );
    }
    case 'clearNamespace':
      return [
        ...COPIED.flatMap((role) => to(coll(ns, role), { deleteMany: { filter: {} } })),
        // The `cv` document is written even when absent (inserted, then removed): every commit
        // writes it too, so a first commit racing the clear conflicts with it instead of slipping
        // past a snapshot that did not see it.
        ...to(coll(ns, 'counter'), upsert(CV_DOC_ID, { $setOnInsert: { seq: 0 } }), { deleteOne: { filter: { _id: eq(CV_DOC_ID) } } }),
        ...to(outbox, { deleteMany: { filter: { coll: eq(ns.collection) } } }),
        ...to(dlq, { deleteMany: { filter: { coll: eq(ns.collection) } } }),
      ];
    default:
      return e satisfies never;
  }
}

/** `doc` (without `_id`) under `_id`, created or replaced whole. */
export function replace(_id: string, doc: Document): Op {
  const { _id: omitted, ...replacement } = doc;
  void omitted;
  return { replaceOne: { filter: { _id: eq(_id) }, replacement, upsert: true } };
}

function upsert(_id: string, update: Document | Document[]): Op {
  return { updateOne: { filter: { _id: eq(_id) }, update, upsert: true } };
}

/**
 * A record's outbox entry at `seq`. An entry already there keeps its place in the queue: its
 * `order`, an ObjectId taken when it was made (the queue is read in `order`), and `queuedAt`
 * (server time). ObjectIds order by second, then by process: within one process they follow
 * creation exactly; entries two processes make within the same second may come out of order.
 */
export function outboxMark(collection: string, id: string, seq: number): Op {
  const fields = { coll: literal(collection), id: literal(id), seq: literal(seq), queuedAt: { $ifNull: ['$queuedAt', '$$NOW'] }, order: { $ifNull: ['$order', literal(new ObjectId())] } };
  return upsert(recordKey(collection, id), [{ $set: fields }]);
}

/**
 * An intent (`cleaning: false`) or the key's cleanup mark, stamped by the server's clock (or at
 * the epoch, stale for any age). Writing a token replaces whatever that token held on the key.
 */
function putUpload(e: Extract<Effect, { kind: 'putUpload' }>): Op {
  const at = e.stamp === 'now' ? '$$NOW' : literal(new Date(0));
  const token = e.row.token;
  const fields = e.row.cleaning
    ? { intents: withoutToken(token), cleaning: { token: literal(token), at }, id: { $ifNull: ['$id', literal(e.row.id)] } }
    : { intents: { $concatArrays: [withoutToken(token), [{ token: literal(token), id: literal(e.row.id), at }]] }, cleaning: unlessToken(token), id: literal(e.row.id) };
  return upsert(uploadDocId(e.ns.collection, e.bucket, e.key), [{ $set: { coll: literal(e.ns.collection), bucket: literal(e.bucket), key: literal(e.key), ...fields } }]);
}

/** The document's intents without `token`'s. */
function withoutToken(token: string): Document {
  return { $filter: { input: { $ifNull: ['$intents', []] }, cond: { $ne: ['$$this.token', literal(token)] } } };
}

/** The document's mark, removed when it is `token`'s. */
function unlessToken(token: string): Document {
  return { $cond: [{ $eq: ['$cleaning.token', literal(token)] }, '$$REMOVE', '$cleaning'] };
}

/** Values in a pipeline are expressions: strings starting with `$` would be field paths. */
function literal(value: unknown): Document {
  return { $literal: value };
}

/** `counts.<name>` fields; `null` when there are none (an empty `$inc` or `$set` is an error). */
function counts(values: Readonly<Record<string, number>>): Record<string, number> | null {
  const entries = Object.entries(values);
  return entries.length === 0 ? null : Object.fromEntries(entries.map(([name, v]) => [`counts.${name}`, v]));
}

/** Where a record's rows of `table` are, and the filter that finds them. */
function recordRows(table: RecordTable, ns: Namespace, id: string, dlq: CollRef): [CollRef, Document] {
  switch (table) {
    case 'heads': return [coll(ns, 'head'), { _id: eq(id) }];
    case 'versions': return [coll(ns, 'ver'), { id: eq(id) }];
    case 'claims': return [coll(ns, 'claims'), { id: eq(id) }];
    case 'outbox': return [queue(ns.dbName, 'outbox'), { _id: eq(recordKey(ns.collection, id)) }];
    case 'pendingBlobs': return [queue(ns.dbName, 'pendingBlobs'), { coll: eq(ns.collection), id: eq(id) }];
    case 'deadLetters': return [dlq, { _id: eq(recordKey(ns.collection, id)) }];
  }
}
