import type { Document } from 'mongodb';
import type { StaleUpload, UploadIntent, UploadRef } from '../../contracts/index-store.js';

/**
 * Upload intents and cleanup marks (the port's `recordUploads`, `claimUploadCleanup`, …; the
 * protocol is in `core/engine/content-uploads.ts`) on MongoDB: one document per object key in
 * the database's `xronox_content_uploads` (`QUEUE_COLLECTIONS.uploads`), `_id` = `uploadDocId(collection, bucket, key)`,
 * holding the key's intents (`intents: [{ token, at }]`) or its cleanup mark (`cleaning:
 * { token, at }`), never both. Every decision is one single-document update, so it is atomic
 * without transactions, and every time is the server's (`$$NOW`), so application servers with
 * skewed clocks agree on what is stale. The operations are built here as data, and the port's
 * methods run them against `UploadsCollection`, so that their logic can be checked without a
 * server (test/unit/mongodb-uploads.test.ts runs them on mingo, an independent implementation of
 * MongoDB's query language).
 */

/** What the upload methods need of `xronox_content_uploads`: the driver's collection, or an in-memory one in tests. */
export interface UploadsCollection {
  updateOne(filter: Document, update: Document | Document[], options?: { upsert?: boolean }): Promise<{ matchedCount: number }>;
  deleteOne(filter: Document): Promise<unknown>;
  aggregate(pipeline: Document[]): Promise<Document[]>;
  /** Whether an error `updateOne` threw is a duplicate-key error (an upsert that found the `_id` taken). */
  isDuplicateKey(err: unknown): boolean;
}

/**
 * `recordUploads`: one single-document upsert per key, in order. A key with a cleanup mark
 * refuses (duplicate `_id`), and the intents recorded before it are taken back, so nothing stays
 * recorded; until then a cleanup may see them, which only keeps it away from those keys.
 */
export async function recordUploads(coll: UploadsCollection, collection: string, uploads: readonly UploadIntent[]): Promise<{ ok: true } | { ok: false; key: string }> {
  const done: UploadIntent[] = [];
  for (const intent of uploads) {
    const plan = recordIntentPlan(collection, intent);
    try {
      await coll.updateOne(plan.filter, plan.update, { upsert: true });
      done.push(intent);
    } catch (err) {
      if (!coll.isDuplicateKey(err)) throw err;
      for (const d of done) {
        const pull = pullIntentPlan(collection, d);
        await coll.updateOne(pull.filter, pull.update);
        await coll.deleteOne(emptyDocFilter(collection, d));
      }
      return { ok: false, key: intent.key };
    }
  }
  return { ok: true };
}

/** `listStaleUploads`. */
export async function listStaleUploads(coll: UploadsCollection, options: { olderThanMs: number; limit: number }): Promise<StaleUpload[]> {
  if (options.limit <= 0) return [];
  const rows = (await coll.aggregate(staleUploadsPipeline(options.olderThanMs, options.limit))) as Array<
    Pick<UploadDoc, 'coll' | 'id' | 'bucket' | 'key'> & { rows: { token: string; cleaning: boolean } }
  >;
  return rows.map((r) => ({ collection: r.coll, id: r.id, bucket: r.bucket, key: r.key, token: r.rows.token, cleaning: r.rows.cleaning }));
}

/** `claimUploadCleanup`: three single-document steps, the first that applies decides. */
export async function claimUploadCleanup(
  coll: UploadsCollection,
  collection: string,
  upload: UploadRef,
  options: { olderThanMs: number; markToken: string; own?: boolean },
): Promise<boolean> {
  // `upload.token` names the mark (a stale one to take over, or the caller's to renew)…
  const take = takeMarkPlan(collection, upload, options);
  if ((await coll.updateOne(take.filter, take.update)).matchedCount === 1) return true;
  // …or an intent: the key is marked when every intent on it may go…
  const mark = markKeyPlan(collection, upload, options);
  if ((await coll.updateOne(mark.filter, mark.update)).matchedCount === 1) return true;
  // …else another write's younger intent covers the key, and only this one goes (if it may).
  const drop = dropIntentPlan(collection, upload, options);
  await coll.updateOne(drop.filter, drop.update);
  await coll.deleteOne(emptyDocFilter(collection, upload));
  return false;
}

/** `releaseUploadCleanup`. */
export async function releaseUploadCleanup(
  coll: UploadsCollection,
  collection: string,
  upload: Omit<UploadRef, 'token'>,
  markToken: string,
  options: { retry?: boolean } = {},
): Promise<void> {
  if (options.retry) {
    const plan = markToIntentPlan(collection, upload, markToken);
    await coll.updateOne(plan.filter, plan.update);
  } else {
    await coll.deleteOne(releaseMarkFilter(collection, upload, markToken));
  }
}

export interface UploadDoc {
  _id: string;
  coll: string;
  id: string;
  bucket: string;
  key: string;
  intents: Array<{ token: string; at: Date }>;
  cleaning?: { token: string; at: Date };
}

export interface UpdatePlan {
  filter: Document;
  update: Document | Document[];
  upsert?: true;
}

/** `_id` of a key's document (bucket names never contain `|`, collection names neither). */
export function uploadDocId(collection: string, bucket: string, key: string): string {
  return `${collection}|${bucket}|${key}`;
}

const literal = (value: unknown) => ({ $literal: value });
/** The server's time `ms` ago. */
const ago = (ms: number) => ({ $subtract: ['$$NOW', ms] });
const intentsOrEmpty = { $ifNull: ['$intents', []] };

/**
 * `recordUploads` for one key: appends (or renews) the intent, stamped now, unless the key has a
 * cleanup mark. With a mark the filter does not match and the upsert's insert hits the existing
 * `_id`: a duplicate-key error, which means "refused".
 */
export function recordIntentPlan(collection: string, intent: UploadRef & { id: string }): UpdatePlan {
  return {
    filter: { _id: uploadDocId(collection, intent.bucket, intent.key), cleaning: { $exists: false } },
    update: [
      {
        $set: {
          coll: literal(collection),
          id: literal(intent.id),
          bucket: literal(intent.bucket),
          key: literal(intent.key),
          intents: {
            $concatArrays: [{ $filter: { input: intentsOrEmpty, cond: { $ne: ['$$this.token', literal(intent.token)] } } }, [{ token: literal(intent.token), at: '$$NOW' }]],
          },
        },
      },
    ],
    upsert: true,
  };
}

/** Takes an intent away (a refused `recordUploads` undoing what it recorded; a standalone commit rolling forward). */
export function pullIntentPlan(collection: string, ref: UploadRef): UpdatePlan {
  return { filter: { _id: uploadDocId(collection, ref.bucket, ref.key) }, update: { $pull: { intents: { token: ref.token } } } };
}

/** The commit's check inside a transaction: removes the intent, matching nothing when it is gone (or the key is being cleaned). */
export function takeIntentPlan(collection: string, ref: UploadRef): UpdatePlan {
  return {
    filter: { _id: uploadDocId(collection, ref.bucket, ref.key), cleaning: { $exists: false }, 'intents.token': ref.token },
    update: { $pull: { intents: { token: ref.token } } },
  };
}

/**
 * The standalone commit's check: renews the intent's stamp just before the compare-and-set on the
 * head, matching nothing when a cleanup took it. A cleanup sees it young from then on, so the
 * commit that follows within `limits.maxUploadSeconds` cannot race a delete.
 */
export function touchIntentPlan(collection: string, ref: UploadRef): UpdatePlan {
  return {
    filter: { _id: uploadDocId(collection, ref.bucket, ref.key), cleaning: { $exists: false }, 'intents.token': ref.token },
    update: [
      {
        $set: {
          intents: { $map: { input: '$intents', in: { $cond: [{ $eq: ['$$this.token', literal(ref.token)] }, { token: '$$this.token', at: '$$NOW' }, '$$this'] } } },
        },
      },
    ],
  };
}

/**
 * `claimUploadCleanup` when `ref.token` names the key's mark: taken over when stale, renewed when
 * it is `markToken` already.
 */
export function takeMarkPlan(collection: string, ref: UploadRef, options: { olderThanMs: number; markToken: string }): UpdatePlan {
  return {
    filter: {
      _id: uploadDocId(collection, ref.bucket, ref.key),
      'cleaning.token': ref.token,
      $expr: { $or: [{ $eq: ['$cleaning.token', literal(options.markToken)] }, { $lte: ['$cleaning.at', ago(options.olderThanMs)] }] },
    },
    update: [{ $set: { cleaning: { token: literal(options.markToken), at: '$$NOW' } } }],
  };
}

/**
 * `claimUploadCleanup` when `ref.token` names an intent: when every intent on the key is stale
 * (`ref`'s own excepted with `own`), they all go and the mark is set.
 */
export function markKeyPlan(collection: string, ref: UploadRef, options: { olderThanMs: number; markToken: string; own?: boolean }): UpdatePlan {
  const stale = { $lte: ['$$this.at', ago(options.olderThanMs)] };
  const mayGo = options.own ? { $or: [{ $eq: ['$$this.token', literal(ref.token)] }, stale] } : stale;
  return {
    filter: {
      _id: uploadDocId(collection, ref.bucket, ref.key),
      cleaning: { $exists: false },
      'intents.token': ref.token,
      $expr: { $allElementsTrue: [{ $map: { input: intentsOrEmpty, in: mayGo } }] },
    },
    update: [{ $set: { intents: literal([]), cleaning: { token: literal(options.markToken), at: '$$NOW' } } }],
  };
}

/** `claimUploadCleanup` when another write's younger intent covers the key: only `ref`'s intent goes, if stale or `own`. */
export function dropIntentPlan(collection: string, ref: UploadRef, options: { olderThanMs: number; own?: boolean }): UpdatePlan {
  const named = { $eq: ['$$this.token', literal(ref.token)] };
  const goes = options.own ? named : { $and: [named, { $lte: ['$$this.at', ago(options.olderThanMs)] }] };
  return {
    filter: { _id: uploadDocId(collection, ref.bucket, ref.key), 'intents.token': ref.token },
    update: [{ $set: { intents: { $filter: { input: intentsOrEmpty, cond: { $not: [goes] } } } } }],
  };
}

/** `releaseUploadCleanup`: the mark goes (with the document, which holds no intent while marked). */
export function releaseMarkFilter(collection: string, upload: Omit<UploadRef, 'token'>, markToken: string): Document {
  return { _id: uploadDocId(collection, upload.bucket, upload.key), 'cleaning.token': markToken };
}

/** `releaseUploadCleanup` with `retry`: the mark becomes an intent stamped at the epoch, stale for every age. */
export function markToIntentPlan(collection: string, upload: Omit<UploadRef, 'token'>, markToken: string): UpdatePlan {
  return {
    filter: releaseMarkFilter(collection, upload, markToken),
    update: { $set: { intents: [{ token: markToken, at: new Date(0) }] }, $unset: { cleaning: '' } },
  };
}

/** A document left with neither intents nor a mark is removed (keeps the collection to keys in flight). */
export function emptyDocFilter(collection: string, upload: Omit<UploadRef, 'token'>): Document {
  return { _id: uploadDocId(collection, upload.bucket, upload.key), intents: { $size: 0 }, cleaning: { $exists: false } };
}

/**
 * `listStaleUploads`: one row per intent or mark stamped at least `olderThanMs` ago (server
 * time), oldest first. The collection holds only keys in flight and what failed writes left.
 */
export function staleUploadsPipeline(olderThanMs: number, limit: number): Document[] {
  const cutoff = ago(olderThanMs);
  const staleMark = { $and: [{ $ne: [{ $type: '$cleaning' }, 'missing'] }, { $lte: ['$cleaning.at', cutoff] }] };
  return [
    { $match: { $expr: { $or: [{ $anyElementTrue: [{ $map: { input: intentsOrEmpty, in: { $lte: ['$$this.at', cutoff] } } }] }, staleMark] } } },
    {
      $project: {
        coll: 1,
        id: 1,
        bucket: 1,
        key: 1,
        rows: {
          $concatArrays: [
            { $map: { input: { $filter: { input: intentsOrEmpty, cond: { $lte: ['$$this.at', cutoff] } } }, in: { token: '$$this.token', at: '$$this.at', cleaning: false } } },
            { $cond: [staleMark, [{ token: '$cleaning.token', at: '$cleaning.at', cleaning: true }], []] },
          ],
        },
      },
    },
    { $unwind: '$rows' },
    { $sort: { 'rows.at': 1, _id: 1, 'rows.token': 1 } },
    { $limit: limit },
  ];
}
