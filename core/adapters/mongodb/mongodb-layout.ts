import type { IndexDescription } from 'mongodb';
import type { CounterWindowGranularity, Namespace } from '../../contracts/index-store.js';

/**
 * Where the MongoDB index store keeps things. Per database (`dbName`) and collection `c`, the
 * collections the product documents describe:
 *
 * | collection          | holds                                                            |
 * |---------------------|------------------------------------------------------------------|
 * | `{c}_head`          | one document per record: its latest state                        |
 * | `{c}_ver`           | the version index (versioned types only; created on first version) |
 * | `{c}_counter`       | the collection version sequence (`_id: "cv"`) and, in the analytics database, counter totals (`_id: "totals"`) and windows (`_id: "window:day:2026-01-31"`) |
 * | `{c}_locks`         | leases (`restoreCollection`, jobs) with owner and expiry         |
 * | `{c}_claims`        | smartInsert's unique claims                                      |
 *
 * and once per database the fallback queue: `xronox_sync_outbox` (records whose objects are
 * behind the index), `xronox_pending_blobs` (objects the blob store refused, kept until uploaded)
 * and the dead letters (`fallback.deadLetterCollection`, default `xronox_dead_letters`); and
 * `xronox_content_uploads`, the upload intents and cleanup marks of content: one document per
 * object key, holding its intents or its cleanup mark (see `mongodb-effects.ts` for why one
 * document per key).
 */
export const COLLECTION_SUFFIXES = { head: '_head', ver: '_ver', counter: '_counter', locks: '_locks', claims: '_claims' } as const;
export type CollectionRole = keyof typeof COLLECTION_SUFFIXES;

export const QUEUE_COLLECTIONS = {
  outbox: 'xronox_sync_outbox',
  pendingBlobs: 'xronox_pending_blobs',
  deadLetters: 'xronox_dead_letters',
  uploads: 'xronox_content_uploads',
} as const;
export type QueueRole = keyof typeof QUEUE_COLLECTIONS;

/** One MongoDB collection: database and collection name. */
export interface CollRef {
  readonly db: string;
  readonly name: string;
}

export function collectionName(collection: string, role: CollectionRole): string {
  return `${collection}${COLLECTION_SUFFIXES[role]}`;
}

export function coll(ns: Namespace, role: CollectionRole): CollRef {
  return { db: ns.dbName, name: collectionName(ns.collection, role) };
}

/** A database's queue collection; the dead letters' name is configurable (`fallback.deadLetterCollection`). */
export function queue(dbName: string, which: QueueRole, deadLetterCollection: string = QUEUE_COLLECTIONS.deadLetters): CollRef {
  return { db: dbName, name: which === 'deadLetters' ? deadLetterCollection : QUEUE_COLLECTIONS[which] };
}

/**
 * An equality condition that is always one, whatever the value: `{ field: value }` with an
 * object value would be read as operators (`{ $gt: '' }`) if a value ever escaped validation.
 */
export function eq<T>(value: T): { $eq: T } {
  return { $eq: value };
}

/** `_id` of a version entry: record ids never contain `@`, so the pair is unambiguous. */
export function versionId(id: string, ov: number): string {
  return `${id}@${ov}`;
}

/** `_id` of a fallback-queue entry that belongs to one record of one collection. */
export function recordKey(collection: string, id: string): string {
  return `${collection}/${id}`;
}

/** `_id` of a queued object: collection, bucket and key (bucket names never contain `|`). */
export function pendingBlobId(collection: string, bucket: string, key: string): string {
  return `${collection}|${bucket}|${key}`;
}

/** `_id` of an object key's upload document (bucket and collection names never contain `|`). */
export function uploadDocId(collection: string, bucket: string, key: string): string {
  return `${collection}|${bucket}|${key}`;
}

/** The `_id` of the collection-version sequence and of the counter totals in `{c}_counter`. */
export const CV_DOC_ID = 'cv';
export const TOTALS_DOC_ID = 'totals';
/** Counter windows in the analytics database's `{c}_counter`: `_id: "window:<key>"` with `counts`. */
export const WINDOW_DOC_PREFIX = 'window:';

/** The `_id` of a counter window document in `{c}_counter`: `window:` and the window key. */
export function windowDocId(key: string): string {
  return `${WINDOW_DOC_PREFIX}${key}`;
}

/**
 * The `_id` range of the window documents of one granularity within `[from, to]` (whole window
 * keys, inclusive) — for reads — or below `before` — for pruning.
 */
export function windowIdRange(granularity: CounterWindowGranularity, bounds: { from?: string; to?: string; before?: string }): { $gte: string; $lt: string; $lte?: string } {
  const range: { $gte: string; $lt: string; $lte?: string } = { $gte: windowDocId(`${granularity}:`), $lt: windowDocId(`${granularity};`) };
  if (bounds.from !== undefined && windowDocId(bounds.from) > range.$gte) range.$gte = windowDocId(bounds.from);
  if (bounds.to !== undefined) range.$lte = windowDocId(bounds.to);
  if (bounds.before !== undefined && windowDocId(bounds.before) < range.$lt) range.$lt = windowDocId(bounds.before);
  return range;
}

/** Every window document of a `{c}_counter` (all granularities): `window:` up to `window;`. */
export const ALL_WINDOWS = { $gte: WINDOW_DOC_PREFIX, $lt: 'window;' } as const;

export interface IndexSettings {
  /** Indexed properties of the collection (`collectionMaps[c].indexedProps`): listByMeta filters on them. */
  indexedProps: readonly string[];
}

/**
 * The indexes of each collection role. Creating them is idempotent (same name, same spec), so
 * every process may create them on first access without coordination.
 */
export function indexSpecs(role: CollectionRole, settings: IndexSettings, metaPath: (prop: string) => string): IndexDescription[] {
  switch (role) {
    case 'head':
      return [
        { key: { updatedAt: 1, _id: 1 }, name: 'by_updated' },
        { key: { createdAt: 1, _id: 1 }, name: 'by_created' },
        // Heads an older version's standalone protocol left mid-write (`head.pending`): always
        // empty now, kept so that the check for such leftovers (`mongodb-setup.ts`) is an index lookup.
        { key: { 'pending.since': 1 }, name: 'pending_writes', partialFilterExpression: { pending: { $exists: true } } },
        ...metaIndexes(settings, metaPath),
      ];
    case 'ver':
      return [
        { key: { id: 1, ov: -1 }, name: 'by_record', unique: true },
        { key: { id: 1, at: -1, ov: -1 }, name: 'by_time' },
        { key: { id: 1, cv: -1 }, name: 'by_cv' },
        { key: { actorId: 1, at: -1, id: -1, ov: -1 }, name: 'by_actor' },
        // Only the few entries still waiting for archival.
        { key: { id: 1, ov: 1 }, name: 'unarchived', partialFilterExpression: { archived: false } },
      ];
    case 'counter':
      return [];
    case 'locks':
      // Expired leases are free anyway; the TTL only keeps the collection small.
      return [{ key: { expiresAt: 1 }, name: 'expired_leases', expireAfterSeconds: 3600 }];
    case 'claims':
      return [{ key: { id: 1 }, name: 'by_record' }];
  }
}

/** One index per indexed property; with none listed every top-level property is indexed, so a wildcard index. */
function metaIndexes(settings: IndexSettings, metaPath: (prop: string) => string): IndexDescription[] {
  if (settings.indexedProps.length === 0) return [{ key: { 'meta.$**': 1 }, name: 'meta_all' }];
  return settings.indexedProps.map((prop) => ({ key: { [metaPath(prop)]: 1, _id: 1 }, name: `meta_${prop}` }));
}

export function queueIndexSpecs(): Record<QueueRole, IndexDescription[]> {
  return {
    // Queue order: `order` is an ObjectId taken when the entry is made (a re-mark keeps it).
    outbox: [
      { key: { order: 1 }, name: 'by_order' },
      { key: { coll: 1, order: 1 }, name: 'by_collection' },
    ],
    pendingBlobs: [{ key: { coll: 1, id: 1 }, name: 'by_record' }],
    deadLetters: [{ key: { failedAt: 1, _id: 1 }, name: 'by_age' }],
    // Holds only keys in flight and what failed writes left; listing it is a small scan.
    uploads: [],
  };
}
