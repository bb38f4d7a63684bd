import type { Document } from 'mongodb';
import { nsKey, type ReadRows, type ReadSet, refKey, uploadKey, type UploadRow } from '../../contracts/index-driver.js';
import type { Namespace } from '../../contracts/index-store.js';
import { groupBy, namespaceOrder, type RowsBuilder } from '../../store/driver-kit.js';
import { leftoverWrite } from './mongodb-documents.js';
import { coll, type CollRef, CV_DOC_ID, queue, recordKey, uploadDocId, WINDOW_DOC_PREFIX, windowIdRange } from './mongodb-layout.js';

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

export { emptyRows, type RowsBuilder } from '../../store/driver-kit.js';

export interface ReadSettings {
  deadLetterCollection: string;
  /**
   * The collections of each database in `reads.namespaces` that hold a `{c}_counter`: listed
   * before the transaction, since listCollections cannot run inside one.
   */
  counterCollections?: ReadonlyMap<string, readonly string[]>;
}

/** The queries that read `reads`, at most one per kind and collection. */
export function planReads(reads: ReadSet, settings: ReadSettings): ReadQuery[] {
  const out: ReadQuery[] = [];
  const dlq = (db: string) => queue(db, 'deadLetters', settings.deadLetterCollection);

  for (const [ns, ids] of byNamespace(reads.heads ?? [], (r) => r.id)) {
    const heads = coll(ns, 'head');
    out.push({
      coll: heads,
      pipeline: [
        { $match: { _id: { $in: ids } } },
        { $project: { ov: 1, cv: 1, deleted: 1, offloaded: { $eq: ['$body', ''] }, pending: { $ne: [{ $type: '$pending' }, 'missing'] } } },
      ],
      fold(docs, rows) {
        for (const d of docs) {
          if (d.pending === true) throw leftoverWrite(heads, d._id as string);
          rows.heads.set(refKey(ns, d._id as string), { ov: d.ov as number, cv: d.cv as number, deleted: d.deleted as boolean, offloaded: d.offloaded as boolean });
        }
      },
    });
  }

  for (const [ns, keys] of byNamespace(reads.claims ?? [], (c) => c.key)) {
    out.push({
      coll: coll(ns, 'claims'),
      pipeline: [{ $match: { _id: { $in: keys } } }, { $project: { id: 1 } }],
      fold(docs, rows) {
        for (const d of docs) rows.claims.set(refKey(ns, d._id as string), d.id as string);
      },
    });
  }

  for (const [db, refs] of byDatabase(reads.outbox ?? [])) {
    out.push({
      coll: queue(db, 'outbox'),
      pipeline: [{ $match: { _id: { $in: refs.map((r) => recordKey(r.collection, r.id)) } } }, { $project: { coll: 1, id: 1, seq: 1 } }],
      fold(docs, rows) {
        for (const d of docs) rows.outbox.set(refKey({ dbName: db, collection: d.coll as string }, d.id as string), d.seq as number);
      },
    });
  }

  for (const [db, refs] of byDatabase(reads.deadLetters ?? [])) {
    out.push({
      coll: dlq(db),
      pipeline: [{ $match: { _id: { $in: refs.map((r) => recordKey(r.collection, r.id)) } } }, { $project: { coll: 1, id: 1 } }],
      fold(docs, rows) {
        for (const d of docs) rows.deadLetters.add(refKey({ dbName: db, collection: d.coll as string }, d.id as string));
      },
    });
  }

  if (reads.allDeadLetters !== undefined) {
    const db = reads.allDeadLetters;
    out.push({
      coll: dlq(db),
      pipeline: [{ $sort: { failedAt: 1, _id: 1 } }],
      fold(docs, rows) {
        const letters = docs.map((d) => ({ collection: d.coll as string, id: d.id as string, reason: d.reason as string, failedAt: d.failedAt as string, headCv: null as number | null }));
        rows.allDeadLetters.push(...letters);
        // Then each letter's head cv: one query per collection.
        return [...groupBy(letters, (l) => l.collection)].map(([collection, ofColl]) => ({
          coll: coll({ dbName: db, collection }, 'head'),
          pipeline: [{ $match: { _id: { $in: unique(ofColl.map((l) => l.id)) } } }, { $project: { cv: 1 } }],
          fold(heads) {
            const cvs = new Map(heads.map((h) => [h._id as string, h.cv as number]));
            for (const l of ofColl) l.headCv = cvs.get(l.id) ?? null;
          },
        }));
      },
    });
  }

  for (const [ns, ids] of byNamespace(reads.unarchived ?? [], (r) => r.id)) {
    out.push({
      coll: coll(ns, 'ver'),
      // `archived: false` is the partial index `unarchived`: archived history is never read.
      pipeline: [{ $match: { id: { $in: ids }, archived: false } }, { $group: { _id: '$id', n: { $sum: 1 } } }],
      fold: (docs, rows) => foldCounts(ns, ids, docs, rows.unarchived),
    });
  }

  for (const [ns, items] of namespaceGroups(reads.versionCounts ?? [])) {
    const below = items.map((i) => (Number.isFinite(i.belowOv) ? { id: i.id, ov: { $lt: i.belowOv } } : { id: i.id }));
    out.push({
      coll: coll(ns, 'ver'),
      pipeline: [{ $match: { $or: below } }, { $group: { _id: '$id', n: { $sum: 1 } } }],
      fold: (docs, rows) => foldCounts(ns, unique(items.map((i) => i.id)), docs, rows.versionCounts),
    });
  }

  for (const ns of uniqueNamespaces(reads.collectionVersions ?? [])) out.push(cvQuery(ns, (rows, cv) => rows.collectionVersions.set(nsKey(ns), cv)));

  if (reads.counterWindows) {
    const { dbName, collection, before } = reads.counterWindows;
    const ranges = (['day', 'week', 'month'] as const).flatMap((g) => (before[g] === undefined ? [] : [{ _id: windowIdRange(g, { before: before[g] }) }]));
    if (ranges.length > 0) {
      out.push({
        coll: coll({ dbName, collection }, 'counter'),
        pipeline: [{ $match: { $or: ranges } }, { $project: { _id: 1 } }, { $sort: { _id: 1 } }],
        fold(docs, rows) {
          rows.counterWindows.push(...docs.map((d) => (d._id as string).slice(WINDOW_DOC_PREFIX.length)));
        },
      });
    }
  }

  for (const [ns, keys] of byNamespace(reads.locks ?? [], (l) => l.key)) {
    out.push({
      coll: coll(ns, 'locks'),
      // Expiry by the server's clock: a missing `expiresAt` sorts below every date, so it reads as expired.
      pipeline: [{ $match: { _id: { $in: keys } } }, { $project: { owner: 1, expired: { $lte: ['$expiresAt', '$$NOW'] } } }],
      fold(docs, rows) {
        for (const d of docs) rows.locks.set(refKey(ns, d._id as string), { owner: d.owner as string, expired: d.expired as boolean });
      },
    });
  }

  for (const [db, asked] of groupBy(reads.uploads ?? [], (u) => u.dbName)) {
    const byDocId = new Map(asked.map((u) => [uploadDocId(u.collection, u.bucket, u.key), uploadKey(u, u.bucket, u.key)]));
    out.push({
      coll: queue(db, 'uploads'),
      pipeline: [{ $match: { _id: { $in: [...byDocId.keys()] } } }, { $project: { rows: UPLOAD_ROWS } }],
      fold(docs, rows) {
        for (const d of docs) {
          const key = byDocId.get(d._id as string);
          if (key !== undefined) rows.uploads.set(key, (d.rows as UploadRowDoc[]).map(uploadRowOf));
        }
      },
    });
  }

  if (reads.staleUploads && reads.staleUploads.limit > 0) {
    const { dbName, olderThanMs, limit } = reads.staleUploads;
    out.push({ coll: queue(dbName, 'uploads'), pipeline: staleUploadsPipeline(olderThanMs, limit), fold: foldStaleUploads });
  }

  for (const ns of uniqueNamespaces(reads.headCounts ?? [])) {
    out.push({
      coll: coll(ns, 'head'),
      pipeline: [{ $count: 'n' }],
      fold(docs, rows) {
        rows.headCounts.set(nsKey(ns), (docs[0]?.n as number | undefined) ?? 0);
      },
    });
  }

  for (const db of unique(reads.outboxCounts ?? [])) {
    out.push({
      coll: queue(db, 'outbox'),
      pipeline: [{ $count: 'n' }],
      fold(docs, rows) {
        rows.outboxCounts.set(db, (docs[0]?.n as number | undefined) ?? 0);
      },
    });
  }

  for (const db of unique(reads.namespaces ?? [])) {
    for (const collection of settings.counterCollections?.get(db) ?? []) {
      out.push(cvQuery({ dbName: db, collection }, (rows, cv) => rows.namespaces.push({ dbName: db, collection, cv })));
    }
  }
  return out;
}

/** Orders what the queries' completion order left unordered. */
export function finishRows(rows: RowsBuilder): ReadRows {
  rows.namespaces.sort(namespaceOrder);
  return rows;
}

/** The namespace's last cv: `seq - 1` of its `cv` document (`seq` counts from 1). */
function cvQuery(ns: Namespace, put: (rows: RowsBuilder, cv: number) => void): ReadQuery {
  return {
    coll: coll(ns, 'counter'),
    pipeline: [{ $match: { _id: CV_DOC_ID } }, { $project: { seq: 1 } }],
    fold(docs, rows) {
      const seq = docs[0]?.seq;
      if (typeof seq === 'number') put(rows, seq - 1);
    },
  };
}

function foldCounts(ns: Namespace, ids: readonly string[], docs: readonly Document[], into: Map<string, number>): void {
  const counts = new Map(docs.map((d) => [d._id as string, d.n as number]));
  for (const id of ids) into.set(refKey(ns, id), counts.get(id) ?? 0);
}

interface UploadRowDoc {
  token: string;
  id: string;
  cleaning: boolean;
  ageMs: number;
}

function uploadRowOf(r: UploadRowDoc): UploadRow {
  return { id: r.id, token: r.token, cleaning: r.cleaning, ageMs: Number(r.ageMs) };
}

/** Milliseconds since `at` by the server's clock, never negative. */
const ageOf = (at: string) => ({ $max: [0, { $subtract: ['$$NOW', at] }] });

/**
 * The intents and the mark of an upload document as `UploadRow`s. Intents written by older
 * versions carry no `id`: the document's (the record of the latest intent) stands in.
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

function foldStaleUploads(docs: readonly Document[], rows: RowsBuilder): void {
  for (const d of docs) rows.staleUploads.push({ ...uploadRowOf(d.rows as UploadRowDoc), collection: d.coll as string, bucket: d.bucket as string, key: d.key as string });
}

// ---- grouping ------------------------------------------------------------------------------

/** Items by namespace. */
function namespaceGroups<T extends Namespace>(items: readonly T[]): Array<[Namespace, T[]]> {
  return [...groupBy(items, nsKey).values()].map((list) => [{ dbName: list[0]!.dbName, collection: list[0]!.collection }, list]);
}

/** Items by namespace, with the distinct keys each asks for. */
function byNamespace<T extends Namespace>(items: readonly T[], keyOf: (item: T) => string): Array<[Namespace, string[]]> {
  return namespaceGroups(items).map(([ns, list]) => [ns, unique(list.map(keyOf))]);
}

function byDatabase<T extends Namespace & { readonly id: string }>(items: readonly T[]): Map<string, T[]> {
  return groupBy(items, (i) => i.dbName);
}

function uniqueNamespaces(items: readonly Namespace[]): Namespace[] {
  return namespaceGroups(items).map(([ns]) => ns);
}

function unique<T>(items: readonly T[]): T[] {
  return [...new Set(items)];
}
