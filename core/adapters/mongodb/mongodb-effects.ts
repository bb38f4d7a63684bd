import { type AnyBulkWriteOperation, type ClientSession, type Document, type MongoClient, ObjectId } from 'mongodb';
import type { Effect } from '../../contracts/index-driver.js';
import type { Namespace } from '../../contracts/index-store.js';
import { headDoc, pendingBlobDoc, versionDoc } from './mongodb-documents.js';
import {
  ALL_WINDOWS,
  coll,
  type CollRef,
  CV_DOC_ID,
  pendingBlobId,
  queue,
  recordKey,
  TOTALS_DOC_ID,
  uploadDocId,
  windowDocId,
} from './mongodb-layout.js';

/**
 * How a transaction's effects are written: each effect becomes single-collection operations,
 * gathered into one ordered `bulkWrite` per collection (a commit of many records is a handful of
 * round trips). Effects on different collections never depend on each other's result, so only
 * the order within a collection is kept; `copyNamespace`, which reads what it copies, runs at its
 * place in the sequence with everything before it written.
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
type Op = AnyBulkWriteOperation<Keyed>;

export type WriteStep =
  | { readonly kind: 'bulk'; readonly coll: CollRef; readonly ops: Array<Op> }
  | { readonly kind: 'copy'; readonly from: Namespace; readonly to: Namespace };

export function planEffects(effects: readonly Effect[], deadLetterCollection: string): WriteStep[] {
  const steps: WriteStep[] = [];
  let open = new Map<string, { coll: CollRef; ops: Array<Op> }>();
  const flush = () => {
    for (const { coll: c, ops } of open.values()) steps.push({ kind: 'bulk', coll: c, ops });
    open = new Map();
  };
  const add = (c: CollRef, ...ops: Array<Op>) => {
    const key = `${c.db}\u0000${c.name}`;
    const entry = open.get(key);
    if (entry) entry.ops.push(...ops);
    else open.set(key, { coll: c, ops });
  };
  const dlq = (db: string) => queue(db, 'deadLetters', deadLetterCollection);

  for (const e of effects) {
    switch (e.kind) {
      case 'putHead':
        add(coll(e.ns, 'head'), replace(e.id, headDoc(e.id, e.head)));
        break;
      case 'deleteHead':
        add(coll(e.ns, 'head'), { deleteOne: { filter: { _id: e.id } } });
        break;
      case 'offloadHead':
        add(coll(e.ns, 'head'), { updateOne: { filter: { _id: e.id }, update: { $set: { body: '' } } } });
        break;
      case 'putVersion':
        // An insert: an entry already at that ov is a duplicate key, which fails the transaction.
        add(coll(e.ns, 'ver'), { insertOne: { document: versionDoc(e.version) } });
        break;
      case 'deleteVersions':
        add(coll(e.ns, 'ver'), { deleteMany: { filter: Number.isFinite(e.belowOv) ? { id: e.id, ov: { $lt: e.belowOv } } : { id: e.id } } });
        break;
      case 'archiveVersions':
        if (e.ovs.length > 0) add(coll(e.ns, 'ver'), { updateMany: { filter: { id: e.id, ov: { $in: [...e.ovs] } }, update: { $set: { archived: true, body: null } } } });
        break;
      case 'putClaim':
        add(coll(e.ns, 'claims'), replace(e.key, { _id: e.key, id: e.id }));
        break;
      case 'releaseClaims':
        add(coll(e.ns, 'claims'), { deleteMany: { filter: { id: e.id } } });
        break;
      case 'putOutbox':
        add(queue(e.ns.dbName, 'outbox'), outboxMark(e.ns.collection, e.id, e.seq));
        break;
      case 'deleteOutbox':
        add(queue(e.ns.dbName, 'outbox'), { deleteOne: { filter: { _id: recordKey(e.ns.collection, e.id) } } });
        break;
      case 'putPendingBlob': {
        const doc = pendingBlobDoc(e.ns.collection, e.id, e.blob);
        add(queue(e.ns.dbName, 'pendingBlobs'), replace(doc._id, doc));
        break;
      }
      case 'deletePendingBlobs':
        if (e.keys.length > 0) add(queue(e.ns.dbName, 'pendingBlobs'), { deleteMany: { filter: { _id: { $in: e.keys.map((k) => pendingBlobId(e.ns.collection, k.bucket, k.key)) } } } });
        break;
      case 'dropPendingBlobs':
        add(queue(e.ns.dbName, 'pendingBlobs'), { deleteMany: { filter: { coll: e.ns.collection, id: e.id } } });
        break;
      case 'putDeadLetter': {
        const _id = recordKey(e.ns.collection, e.id);
        add(dlq(e.ns.dbName), replace(_id, { _id, coll: e.ns.collection, id: e.id, reason: e.reason, failedAt: e.failedAt }));
        break;
      }
      case 'deleteDeadLetter':
        add(dlq(e.ns.dbName), { deleteOne: { filter: { _id: recordKey(e.ns.collection, e.id) } } });
        break;
      case 'addCounters': {
        const inc = counts(e.deltas, (d) => d !== 0);
        if (inc === null) break;
        const target = coll({ dbName: e.dbName, collection: e.collection }, 'counter');
        for (const _id of [TOTALS_DOC_ID, ...e.windows.map(windowDocId)]) add(target, { updateOne: { filter: { _id }, update: { $inc: inc }, upsert: true } });
        break;
      }
      case 'setCounters': {
        const set = counts(e.values, () => true);
        if (set !== null) add(coll({ dbName: e.dbName, collection: e.collection }, 'counter'), { updateOne: { filter: { _id: TOTALS_DOC_ID }, update: { $set: set }, upsert: true } });
        break;
      }
      case 'setCounterWindow': {
        const set = counts(e.window.counts, () => true);
        // A window set to no counts still exists afterwards, with none.
        const update = set === null ? { $setOnInsert: { counts: {} } } : { $set: set };
        add(coll({ dbName: e.dbName, collection: e.collection }, 'counter'), { updateOne: { filter: { _id: windowDocId(e.window.window) }, update, upsert: true } });
        break;
      }
      case 'deleteCounterWindow':
        add(coll({ dbName: e.dbName, collection: e.collection }, 'counter'), { deleteOne: { filter: { _id: windowDocId(e.window) } } });
        break;
      case 'clearCounters':
        // Totals and windows; the `cv` document in the same collection stays.
        add(coll({ dbName: e.dbName, collection: e.collection }, 'counter'), { deleteMany: { filter: { $or: [{ _id: TOTALS_DOC_ID }, { _id: ALL_WINDOWS }] } } });
        break;
      case 'setCollectionVersion':
        // `seq` is the last cv plus one; `$max` never lowers it.
        add(coll(e.ns, 'counter'), { updateOne: { filter: { _id: CV_DOC_ID }, update: { $max: { seq: e.cv + 1 } }, upsert: true } });
        break;
      case 'putLock':
        add(coll(e.ns, 'locks'), {
          updateOne: { filter: { _id: e.key }, update: [{ $set: { owner: literal(e.owner), expiresAt: { $add: ['$$NOW', literal(e.leaseMs)] } } }], upsert: true },
        });
        break;
      case 'deleteLock':
        add(coll(e.ns, 'locks'), { deleteOne: { filter: { _id: e.key } } });
        break;
      case 'putUpload':
        add(queue(e.ns.dbName, 'uploads'), putUpload(e));
        break;
      case 'deleteUpload': {
        const _id = uploadDocId(e.ns.collection, e.bucket, e.key);
        add(
          queue(e.ns.dbName, 'uploads'),
          { updateOne: { filter: { _id }, update: [{ $set: { intents: withoutToken(e.token), cleaning: unlessToken(e.token) } }] } },
          // A document with neither intents nor a mark goes: the collection holds only keys in flight.
          { deleteOne: { filter: { _id, intents: { $size: 0 }, cleaning: { $exists: false } } } },
        );
        break;
      }
      case 'clearNamespace':
        for (const role of ['head', 'ver', 'claims'] as const) add(coll(e.ns, role), { deleteMany: { filter: {} } });
        // The `cv` document is written even when absent (inserted, then removed): every commit
        // writes it too, so a first commit racing the clear conflicts with it instead of slipping
        // past a snapshot that did not see it.
        add(
          coll(e.ns, 'counter'),
          { updateOne: { filter: { _id: CV_DOC_ID }, update: { $setOnInsert: { seq: 0 } }, upsert: true } },
          { deleteOne: { filter: { _id: CV_DOC_ID } } },
        );
        add(queue(e.ns.dbName, 'outbox'), { deleteMany: { filter: { coll: e.ns.collection } } });
        add(dlq(e.ns.dbName), { deleteMany: { filter: { coll: e.ns.collection } } });
        break;
      case 'copyNamespace':
        flush();
        steps.push({ kind: 'copy', from: e.from, to: e.to });
        break;
      default:
        e satisfies never;
    }
  }
  flush();
  return steps;
}

/** The collections the steps write (each is set up, outside any transaction, before its first write). */
export function writtenCollections(steps: readonly WriteStep[]): CollRef[] {
  return steps.flatMap((s) =>
    s.kind === 'bulk' ? [s.coll] : [coll(s.to, 'head'), coll(s.to, 'ver'), coll(s.to, 'claims'), coll(s.to, 'counter'), queue(s.to.dbName, 'outbox')],
  );
}

/** Documents per batch when a namespace is copied. */
const COPY_BATCH = 1000;

/** Runs the steps in order inside `session`'s transaction. */
export async function applySteps(client: MongoClient, session: ClientSession, steps: readonly WriteStep[]): Promise<void> {
  const of = (c: CollRef) => client.db(c.db).collection<Keyed>(c.name);
  for (const step of steps) {
    if (step.kind === 'bulk') {
      if (step.ops.length > 0) await of(step.coll).bulkWrite(step.ops, { ordered: true, session });
      continue;
    }
    // copyNamespace (`to` was emptied by an earlier clearNamespace): copies of `from`'s heads,
    // versions, claims and cv, and every head copied in marked for sync.
    const { from, to } = step;
    for (const role of ['head', 'ver', 'claims'] as const) {
      const target = of(coll(to, role));
      const marks: Array<Op> = [];
      let batch: Keyed[] = [];
      const flushBatch = async () => {
        if (batch.length > 0) await target.insertMany(batch, { ordered: true, session });
        batch = [];
        if (marks.length > 0) await of(queue(to.dbName, 'outbox')).bulkWrite(marks.splice(0), { ordered: true, session });
      };
      // Heads in id order: the records join the sync queue in that order.
      const cursor = of(coll(from, role)).find({}, { session });
      for await (const doc of role === 'head' ? cursor.sort({ _id: 1 }) : cursor) {
        batch.push(doc);
        if (role === 'head') marks.push(outboxMark(to.collection, doc._id, doc.cv as number));
        if (batch.length >= COPY_BATCH) await flushBatch();
      }
      await flushBatch();
    }
    const cv = await of(coll(from, 'counter')).findOne({ _id: CV_DOC_ID }, { session });
    if (cv) await of(coll(to, 'counter')).replaceOne({ _id: CV_DOC_ID }, cv, { upsert: true, session });
  }
}

// ---- operations ----------------------------------------------------------------------------

function replace(_id: string, doc: Document): Op {
  const { _id: omitted, ...replacement } = doc;
  void omitted;
  return { replaceOne: { filter: { _id }, replacement, upsert: true } };
}

/**
 * A record's outbox entry at `seq`. An entry already there keeps its place in the queue: its
 * `order`, an ObjectId taken when it was made (the queue is read in `order`), and `queuedAt`
 * (server time). ObjectIds order by second, then by process: within one process they follow
 * creation exactly; entries two processes make within the same second may come out of order.
 */
function outboxMark(collection: string, id: string, seq: number): Op {
  return {
    updateOne: {
      filter: { _id: recordKey(collection, id) },
      update: [
        {
          $set: {
            coll: literal(collection),
            id: literal(id),
            seq: literal(seq),
            queuedAt: { $ifNull: ['$queuedAt', '$$NOW'] },
            order: { $ifNull: ['$order', literal(new ObjectId())] },
          },
        },
      ],
      upsert: true,
    },
  };
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
  return {
    updateOne: {
      filter: { _id: uploadDocId(e.ns.collection, e.bucket, e.key) },
      update: [{ $set: { coll: literal(e.ns.collection), bucket: literal(e.bucket), key: literal(e.key), ...fields } }],
      upsert: true,
    },
  };
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

/** `counts.<name>` fields of the entries `keep` admits; `null` when none is left (an empty `$inc` or `$set` is an error). */
function counts(values: Readonly<Record<string, number>>, keep: (value: number) => boolean): Record<string, number> | null {
  const entries = Object.entries(values).filter(([, v]) => keep(v));
  return entries.length === 0 ? null : Object.fromEntries(entries.map(([name, v]) => [`counts.${name}`, v]));
}
