import type { Document } from 'mongodb';
import { nsKey, type ReadSet, refKey, uploadKey, type UploadRow } from '../../contracts/index-driver.js';
import type { Namespace } from '../../contracts/index-store.js';
import { byNamespace, byteOrder, groupBy, type RowsBuilder } from '../../store/driver-kit.js';
import { leftoverWrite } from './mongodb-documents.js';
import { coll, type CollRef, CV_DOC_ID, eq, queue, recordKey, uploadDocId, WINDOW_DOC_PREFIX, windowIdRange } from './mongodb-layout.js';

/**
 * How a transaction's `ReadSet` is read: one aggregation per kind of read and MongoDB collection,
 * naming every key it needs (`_id: { $in: [...] }`), so a commit of many records costs a few
 * round trips, not one per record. A query carries the fold that puts its documents into the
 * rows; a fold may ask for follow-up queries (the dead letters' head cvs). Ages are computed by
 * the server (`$$NOW`), so application servers with skewed clocks agree on them.
 */
export interface ReadQuery {
  readonly coll: CollRef;
  readonly pipeline: Document[];
  fold(docs: readonly Document[], rows: RowsBuilder): ReadQuery[] | void;
}

/**
 * `deadLetterCollection`: its configured name. `counterCollections`: the collections of each
 * database in `reads.namespaces` that hold a `{c}_counter`, listed before the transaction
 * (listCollections cannot run inside one).
 */
export interface ReadSettings {
  deadLetterCollection: string;
  counterCollections?: ReadonlyMap<string, readonly string[]>;
}

/** The documents of `c` with these `_id`s, projected; `put` folds each into the rows. */
function byId(c: CollRef, ids: Iterable<string>, project: Document, put: (d: Document, rows: RowsBuilder) => void): ReadQuery {
  return { coll: c, pipeline: [{ $match: { _id: { $in: [...new Set(ids)] } } }, { $project: project }], fold: (docs, rows) => docs.forEach((d) => put(d, rows)) };
}

/** How many documents per record match, for each of `ids` (0 when none). */
function perRecord(ns: Namespace, c: CollRef, match: Document, ids: readonly string[], into: (rows: RowsBuilder) => Map<string, number>): ReadQuery {
  return {
    coll: c,
    pipeline: [{ $match: match }, { $group: { _id: '$id', n: { $sum: 1 } } }],
    fold(docs, rows) {
      const counts = new Map(docs.map((d) => [d._id as string, d.n as number]));
      for (const id of ids) into(rows).set(refKey(ns, id), counts.get(id) ?? 0);
    },
  };
}

/** How many documents `c` holds. */
function count(c: CollRef, put: (rows: RowsBuilder, n: number) => void): ReadQuery {
  return { coll: c, pipeline: [{ $count: 'n' }], fold: (docs, rows) => void put(rows, (docs[0]?.n as number | undefined) ?? 0) };
}

/** The namespace's last cv: `seq - 1` of its `cv` document (`seq` counts from 1). */
function cv(ns: Namespace, put: (rows: RowsBuilder, cv: number) => void): ReadQuery {
  return byId(coll(ns, 'counter'), [CV_DOC_ID], { seq: 1 }, (d, rows) => typeof d.seq === 'number' && put(rows, d.seq - 1));
}

/** The entries of a database's queue for these records: `{ coll, id }` of each. */
function queued(c: CollRef, refs: ReadonlyArray<Namespace & { id: string }>, project: Document, put: (ref: string, d: Document, rows: RowsBuilder) => void): ReadQuery {
  return byId(c, refs.map((r) => recordKey(r.collection, r.id)), { coll: 1, id: 1, ...project }, (d, rows) =>
    put(refKey({ dbName: c.db, collection: d.coll as string }, d.id as string), d, rows),
  );
}

/** The queries that read `reads`, at most one per kind and collection. */
export function planReads(reads: ReadSet, settings: ReadSettings): ReadQuery[] {
  const out: ReadQuery[] = [];
  const dlq = (db: string) => queue(db, 'deadLetters', settings.deadLetterCollection);
  const byDb = <T extends Namespace>(items: readonly T[] | undefined) => groupBy(items ?? [], (i) => i.dbName);

  for (const [ns, refs] of byNamespace(reads.heads)) {
    const heads = coll(ns, 'head');
    out.push(byId(heads, refs.map((r) => r.id), HEAD_STATE, (d, rows) => {
      if (d.pending === true) throw leftoverWrite(heads, d._id as string);
      rows.heads.set(refKey(ns, d._id as string), { ov: d.ov as number, cv: d.cv as number, deleted: d.deleted as boolean, offloaded: d.offloaded as boolean });
    }));
  }
  for (const [ns, claims] of byNamespace(reads.claims)) {
    out.push(byId(coll(ns, 'claims'), claims.map((c) => c.key), { id: 1 }, (d, rows) => rows.claims.set(refKey(ns, d._id as string), d.id as string)));
  }
  for (const [db, refs] of byDb(reads.outbox)) out.push(queued(queue(db, 'outbox'), refs, { seq: 1 }, (key, d, rows) => rows.outbox.set(key, d.seq as number)));
  for (const [db, refs] of byDb(reads.deadLetters)) out.push(queued(dlq(db), refs, {}, (key, _d, rows) => rows.deadLetters.add(key)));

  if (reads.allDeadLetters !== undefined) {
    const db = reads.allDeadLetters;
    out.push({
      coll: dlq(db),
      pipeline: [{ $sort: { failedAt: 1, _id: 1 } }],
      fold(docs, rows) {
        const letters = docs.map((d) => ({ collection: d.coll as string, id: d.id as string, reason: d.reason as string, failedAt: d.failedAt as string, headCv: null as number | null }));
        rows.allDeadLetters.push(...letters);
        // Then each letter's head cv: one query per collection.
        return [...groupBy(letters, (l) => l.collection)].map(([collection, ofColl]) => {
          const waiting = groupBy(ofColl, (l) => l.id);
          return byId(coll({ dbName: db, collection }, 'head'), waiting.keys(), { cv: 1 }, (h) => waiting.get(h._id as string)?.forEach((l) => (l.headCv = h.cv as number)));
        });
      },
    });
  }

  for (const [ns, refs] of byNamespace(reads.unarchived)) {
    const ids = [...new Set(refs.map((r) => r.id))];
    // `archived: false` is the partial index `unarchived`: archived history is never read.
    out.push(perRecord(ns, coll(ns, 'ver'), { id: { $in: ids }, archived: false }, ids, (rows) => rows.unarchived));
  }
  for (const [ns, items] of byNamespace(reads.versionCounts)) {
    const below = items.map((i) => (Number.isFinite(i.belowOv) ? { id: eq(i.id), ov: { $lt: i.belowOv } } : { id: eq(i.id) }));
    out.push(perRecord(ns, coll(ns, 'ver'), { $or: below }, [...new Set(items.map((i) => i.id))], (rows) => rows.versionCounts));
  }
  for (const [ns] of byNamespace(reads.collectionVersions)) out.push(cv(ns, (rows, v) => rows.collectionVersions.set(nsKey(ns), v)));

  if (reads.counterWindows) {
    const { dbName, collection, before } = reads.counterWindows;
    const ranges = (['day', 'week', 'month'] as const).flatMap((g) => (before[g] === undefined ? [] : [{ _id: windowIdRange(g, { before: before[g] }) }]));
    if (ranges.length > 0) {
      out.push({
        coll: coll({ dbName, collection }, 'counter'),
        pipeline: [{ $match: { $or: ranges } }, { $project: { _id: 1 } }, { $sort: { _id: 1 } }],
        fold: (docs, rows) => void rows.counterWindows.push(...docs.map((d) => (d._id as string).slice(WINDOW_DOC_PREFIX.length))),
      });
    }
  }

  for (const [ns, locks] of byNamespace(reads.locks)) {
    // Expiry by the server's clock: a missing `expiresAt` sorts below every date, so it reads as expired.
    out.push(byId(coll(ns, 'locks'), locks.map((l) => l.key), { owner: 1, expired: { $lte: ['$expiresAt', '$$NOW'] } }, (d, rows) =>
      rows.locks.set(refKey(ns, d._id as string), { owner: d.owner as string, expired: d.expired as boolean }),
    ));
  }
  for (const [db, asked] of byDb(reads.uploads)) {
    const keyOf = new Map(asked.map((u) => [uploadDocId(u.collection, u.bucket, u.key), uploadKey(u, u.bucket, u.key)]));
    out.push(byId(queue(db, 'uploads'), keyOf.keys(), { rows: UPLOAD_ROWS }, (d, rows) => rows.uploads.set(keyOf.get(d._id as string)!, (d.rows as UploadRow[]).map(uploadRowOf))));
  }
  if (reads.staleUploads && reads.staleUploads.limit > 0) {
    const { dbName, olderThanMs, limit } = reads.staleUploads;
    out.push({
      coll: queue(dbName, 'uploads'),
      pipeline: staleUploadsPipeline(olderThanMs, limit),
      fold: (docs, rows) => void rows.staleUploads.push(...docs.map((d) => ({ ...uploadRowOf(d.rows as UploadRow), collection: d.coll as string, bucket: d.bucket as string, key: d.key as string }))),
    });
  }

  for (const [ns] of byNamespace(reads.headCounts)) out.push(count(coll(ns, 'head'), (rows, n) => rows.headCounts.set(nsKey(ns), n)));
  for (const db of new Set(reads.outboxCounts)) out.push(count(queue(db, 'outbox'), (rows, n) => rows.outboxCounts.set(db, n)));
  for (const db of new Set(reads.namespaces)) {
    for (const collection of [...(settings.counterCollections?.get(db) ?? [])].sort(byteOrder)) out.push(cv({ dbName: db, collection }, (rows, v) => rows.namespaces.push({ dbName: db, collection, cv: v })));
  }
  return out;
}

/** What a transaction needs of a head; `pending` marks a write the standalone protocol of an older version left unfinished. */
const HEAD_STATE = { ov: 1, cv: 1, deleted: 1, offloaded: { $eq: ['$body', ''] }, pending: { $ne: [{ $type: '$pending' }, 'missing'] } };

function uploadRowOf(r: UploadRow): UploadRow {
  return { id: r.id, token: r.token, cleaning: r.cleaning, ageMs: Number(r.ageMs) };
}

/** Milliseconds since `at` by the server's clock, never negative. */
const ageOf = (at: string) => ({ $max: [0, { $subtract: ['$$NOW', at] }] });

/**
 * The intents and the mark of an upload document as `UploadRow`s (with `at`, to sort on).
 * Intents written by older versions carry no `id`: the document's (the latest intent's record) stands in.
 */
const UPLOAD_ROWS = {
  $concatArrays: [
    {
      $map: {
        input: { $ifNull: ['$intents', []] },
        in: { token: '$$this.token', id: { $ifNull: ['$$this.id', '$id'] }, cleaning: { $literal: false }, ageMs: ageOf('$$this.at'), at: '$$this.at' },
      },
    },
    { $cond: [{ $eq: [{ $type: '$cleaning' }, 'object'] }, [{ token: '$cleaning.token', id: '$id', cleaning: { $literal: true }, ageMs: ageOf('$cleaning.at'), at: '$cleaning.at' }], []] },
  ],
};

/**
 * Intents and marks of a database stamped at least `olderThanMs` ago, oldest first. The
 * collection holds only keys in flight and what failed writes left, so the scan is small.
 */
export function staleUploadsPipeline(olderThanMs: number, limit: number): Document[] {
  return [
    { $project: { coll: 1, bucket: 1, key: 1, rows: UPLOAD_ROWS } },
    { $unwind: '$rows' },
    { $match: { 'rows.ageMs': { $gte: olderThanMs } } },
    { $sort: { 'rows.at': 1, _id: 1, 'rows.token': 1 } },
    { $limit: limit },
  ];
}
