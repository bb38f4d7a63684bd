import type { FilterNode, IndexedValue } from '../foundation/filter-tree.js';

/**
 * The index store port: heads, the version index, counters, the sync outbox and locks.
 *
 * Every call names its namespace (`dbName` + `collection`), so an adapter never needs to know
 * about tenants: the router has already turned the tenant into a database name, and a call
 * without one cannot be made. Adapters must keep namespaces fully apart.
 *
 * Payloads travel as strings: `body` is the exact JSON text of a record document; adapters store
 * and return it byte for byte.
 *
 * It is the intersection of small role interfaces; each consumer receives only the roles it
 * uses. A backend does not implement it directly: it implements an `IndexDriver`
 * (`index-driver.ts`), and `core/store/index-runtime.ts` turns that into an `IndexStore`.
 */
export interface IndexStore extends RecordIndex, SyncOutbox, UploadIntents, Leases, CounterIndex, IndexMaintenance {
  /** Short adapter name used in errors and logs, e.g. `sqlite`. */
  readonly name: string;
  readonly capabilities: IndexStoreCapabilities;

  /** Round-trip check used by health reports. */
  ping(): Promise<void>;

  /**
   * Optional: connects to the backend (a client's first connection). The core's guard
   * (`core/store/guard.ts`) calls it once, before the first other call; when it fails, that call
   * fails and the next one calls it again; never after close. So methods need no connect of their own.
   */
  open?(): Promise<void>;

  /** Releases connections and file handles. Further calls fail with `ClosedError`. */
  close(): Promise<void>;
}

/** Record reads and writes: what a `Collection` uses. */
export interface RecordIndex {
  /** The head of one record, deleted or not; `null` when the record does not exist. */
  getHead(ns: Namespace, id: string): Promise<HeadRow | null>;

  /**
   * Applies every write of the batch atomically, or none of them.
   *
   * For each write, in order: checks the record's current ov against `expectedOv` (`null` means
   * "must not exist"), takes its unique claims, assigns the next collection version (cv) of the
   * namespace, replaces or removes the head, inserts the version entry (if any), and marks the
   * record as needing blob sync in the outbox. A write that removes the record or leaves it
   * deleted releases every claim it held. Counter deltas are added in the same transaction. When
   * any check fails nothing is written and the result names the failing write and why.
   */
  commit(ns: Namespace, batch: CommitBatch): Promise<CommitResult>;

  /** One version entry; `null` when that version does not exist. */
  getVersion(ns: Namespace, id: string, ov: number): Promise<VersionRow | null>;

  /**
   * The newest version entry of the record at or before the point: by time (`at`, ISO-8601) or
   * by collection version (`cv`). `null` when the record had no version then. An index lookup.
   */
  findVersionAt(ns: Namespace, id: string, point: VersionPoint): Promise<VersionRow | null>;

  /** Version entries of one record, newest first, with ov < `beforeOv` when given. */
  listVersions(ns: Namespace, id: string, options: { beforeOv?: number; limit: number }): Promise<VersionRow[]>;

  /**
   * The same page as `listVersions`, summaries only: no indexed values, document or hash. A
   * history page then costs the same at any depth, because an adapter can answer it from one
   * index range without visiting the versions' rows (SQLite's `versions_history`).
   */
  listHistory(ns: Namespace, id: string, options: { beforeOv?: number; limit: number }): Promise<HistoryRow[]>;

  /** Heads that match a validated filter over indexed properties, in a stable order. */
  listHeads(ns: Namespace, query: HeadQuery): Promise<HeadRow[]>;

  /**
   * The collection as it stood at `at`: for each record, its newest version at or before `at`,
   * filtered on that version's indexed values, in id order after `afterId`. Later writes never
   * change the answer, so paging through a fixed `at` is stable under concurrent writes.
   */
  queryAt(ns: Namespace, query: AsOfQuery): Promise<VersionRow[]>;

  /** Versions written by one actor (by identifier), newest first, within `[from, to]` when given. */
  listVersionsByActor(ns: Namespace, actorId: string, options: ActorQuery): Promise<VersionRow[]>;

  /** The record that holds a unique claim (see `RecordWrite.claims`); `null` when unclaimed. */
  getClaim(ns: Namespace, key: string): Promise<string | null>;

  /** Objects queued with a record (`RecordWrite.blobs`) and not uploaded yet. */
  listPendingBlobs(ns: Namespace, id: string): Promise<PendingBlob[]>;

  /** One queued object, or `null` when it was uploaded (or never queued). */
  getPendingBlob(ns: Namespace, bucket: string, key: string): Promise<PendingBlob | null>;
}

/** The sync outbox and its dead letters: what `BlobSync` and the archive job use. */
export interface SyncOutbox {
  /** Records whose blob copies are behind the index, oldest first, across every namespace of `dbName`. */
  listPendingSync(dbName: string, options: { limit: number; collection?: string }): Promise<PendingSync[]>;

  /**
   * The outbox entries of one namespace whose `seq` is at most `maxSeq`, in id order (byte order)
   * after `afterId` when given, at most `limit`. `seq` is the cv of the record's last write, so
   * with `maxSeq` the namespace's cv at some moment, writes committed after that moment are left
   * out: paging through with a fixed `maxSeq` visits what was pending then (and not synced
   * meanwhile) exactly once, and ends however fast other processes write.
   */
  listPendingUpTo(ns: Namespace, options: { maxSeq: number; afterId?: string; limit: number }): Promise<PendingSync[]>;

  /** How many records of `dbName` are in the outbox (waiting for blob sync). */
  countPendingSync(dbName: string): Promise<number>;

  /** The outbox sequence of a record that needs blob sync; `null` when its blobs are up to date. */
  getPendingSeq(ns: Namespace, id: string): Promise<number | null>;

  /**
   * Version entries of a record not yet archived to the blob store, ov ascending: all of them,
   * or a page of at most `limit` with ov > `afterOv`. A record updated many times while the blob
   * store was down has many; callers that hold their payloads read them a page at a time.
   */
  listUnarchived(ns: Namespace, id: string, page?: { afterOv?: number; limit?: number }): Promise<VersionRow[]>;

  /**
   * Records, in one transaction, that a sync finished: the given versions are now in the blob
   * store (their entries drop `body` and become `archived`), and the record's outbox entry is
   * cleared if it is still at `seq`. Returns `false` when a newer write re-marked the record (the
   * caller must sync again); with `seq` `null` it only archives and returns `true`. Idempotent.
   */
  completeSync(
    ns: Namespace,
    id: string,
    done: { archivedOvs: readonly number[]; uploaded?: ReadonlyArray<{ bucket: string; key: string }>; seq: number | null },
  ): Promise<boolean>;

  /**
   * Moves a record's outbox entry to the dead-letter list (if it is still at `seq`): its sync
   * kept failing, so it is no longer retried by itself. Its versions stay in the index.
   */
  deadLetterSync(ns: Namespace, id: string, seq: number, reason: string): Promise<boolean>;

  /** The dead-letter list of a database, oldest first. */
  listDeadLetters(dbName: string, options: { limit: number }): Promise<DeadLetter[]>;

  /** Puts every dead letter of a database back into the outbox; returns how many. */
  requeueDeadLetters(dbName: string): Promise<number>;

  /** Names of the databases on this store that have records waiting for blob sync. */
  listPendingDatabases(): Promise<string[]>;

  /** Names of the databases on this store that have dead letters. */
  listDeadLetterDatabases(): Promise<string[]>;
}

/** Upload intents of content (the protocol is in core/engine/content-uploads.ts). */
export interface UploadIntents {
  /**
   * Records, in one transaction, that a write is about to upload these objects (its upload
   * intents), each stamped with the store's clock. Refused as a whole, recording nothing, when
   * any of the keys has a cleanup mark (`claimUploadCleanup`): the result names that key.
   * Recording an intent again (same key and token) renews its stamp.
   */
  recordUploads(ns: Namespace, uploads: readonly UploadIntent[]): Promise<{ ok: true } | { ok: false; key: string }>;

  /**
   * Upload intents and cleanup marks of every namespace of `dbName` stamped at least
   * `olderThanMs` ago (by the store's clock), oldest first, at most `limit`.
   */
  listStaleUploads(dbName: string, options: { olderThanMs: number; limit: number }): Promise<StaleUpload[]>;

  /**
   * Takes the cleanup of one key, atomically (`olderThanMs` is measured by the store's clock):
   * - when `upload.token` names an intent on the key: if every intent on the key is stamped at
   *   least `olderThanMs` ago (`upload`'s own excepted with `own`), all of them are removed and
   *   the key gets the cleanup mark `markToken`, stamped now: `true`. Otherwise (a younger intent
   *   of another write) only `upload`'s intent is removed, if it is that old or `own`: `false`.
   * - when `upload.token` names the key's cleanup mark: `markToken` takes it over if it was
   *   stamped at least `olderThanMs` ago, or renews its stamp if it is `markToken`: `true`;
   *   `false` otherwise.
   * - when `upload.token` names nothing on the key: `false`, changing nothing.
   * A key never holds an intent and a mark at once.
   */
  claimUploadCleanup(ns: Namespace, upload: UploadRef, options: { olderThanMs: number; markToken: string; own?: boolean }): Promise<boolean>;

  /**
   * Ends the cleanup that holds the mark `markToken` on the key: removes the mark, or with
   * `retry` turns it into an intent stamped long ago (so `listStaleUploads` lists the key again
   * and no write waits for it). A no-op when the key's mark is not `markToken`.
   */
  releaseUploadCleanup(ns: Namespace, upload: Omit<UploadRef, 'token'>, markToken: string, options?: { retry?: boolean }): Promise<void>;
}

/** Leases: one holder at a time per key (sync of a record, a job run). */
export interface Leases {
  /**
   * Takes or renews a lease on `key` for `owner`. Succeeds when the lock is free, expired, or
   * already held by `owner`. At most one owner holds an unexpired lease at any time. A store
   * whose processes all share one host may also treat a lease as free when its owner ends in
   * `@` + `processTag()` of a process that is gone (SQLite does).
   */
  acquireLock(ns: Namespace, key: string, owner: string, leaseMs: number): Promise<boolean>;

  /** Releases the lease if `owner` holds it; a no-op otherwise. */
  releaseLock(ns: Namespace, key: string, owner: string): Promise<void>;
}

/** Counter totals and windows. */
export interface CounterIndex {
  /** Counter totals of a collection, as written by `commit` counter deltas. Missing counters are absent. */
  getCounters(dbName: string, collection: string): Promise<Record<string, number>>;

  /**
   * Counter windows of one granularity (see `CounterDelta.windows`): every window whose key has
   * that granularity's prefix and lies within `[from, to]` (inclusive, compared on the whole key,
   * e.g. `day:2026-01-31`), key ascending. A window holds the sum of the deltas committed to it;
   * windows never written are absent.
   */
  getCounterWindows(dbName: string, collection: string, options: CounterWindowQuery): Promise<CounterWindow[]>;

  /**
   * Removes, in one transaction, the counter windows of each given granularity whose key is below
   * that bound (a whole key, e.g. `{ day: 'day:2026-01-01' }`); granularities without a bound
   * are untouched, and so are totals. Returns how many windows were removed. Idempotent.
   */
  pruneCounterWindows(dbName: string, collection: string, before: CounterWindowBounds): Promise<number>;

  /** Sets the named counters of a collection to these totals, in one transaction; other counters are untouched. Idempotent. */
  setCounters(dbName: string, collection: string, values: Record<string, number>): Promise<void>;

  /**
   * Sets, in one transaction, each listed window's named counters to the given values (a
   * restore: `counts` are values, not deltas), creating the window when it does not exist. Other
   * windows, other counters of a listed window, and the totals are untouched; an empty list is a
   * no-op. Idempotent: setting the same windows twice leaves the same state.
   */
  setCounterWindows(dbName: string, collection: string, windows: readonly CounterWindow[]): Promise<void>;
}

/** What the background jobs (archival, retention, offload, backups) use. */
export interface IndexMaintenance {
  /**
   * Creates what the database needs on this store (on PostgreSQL: its schema and tables) unless
   * it is there; idempotent, and safe when several processes do it at once. Writes create it on
   * first use anyway; this makes it ahead of time (`xronox migrate`), by a role allowed to, so
   * the role the service runs as needs no right to create anything. Returns whether it created
   * anything (`false` on stores that make everything when they open).
   */
  prepareDatabase(dbName: string): Promise<boolean>;

  /**
   * Names of every database on this store that has a namespace written at least once (a commit
   * or an import), sorted by byte order. Lets jobs reach dynamic tenants, which no config lists.
   */
  listDatabases(): Promise<string[]>;

  /** Collections of `dbName` written at least once (a commit or an import), sorted by byte order; `[]` for an unknown database. */
  listCollections(dbName: string): Promise<string[]>;

  /**
   * Records of `dbName` holding at least one version entry that is not archived and was written
   * at or before `writtenBefore` (ISO-8601), ordered by (collection, id) in byte order, after
   * `after` when given, at most `limit`. `oldestAt` is the `at` of the record's oldest
   * unarchived version. An index lookup: it never scans archived history.
   */
  listUnarchivedRecords(
    dbName: string,
    options: { writtenBefore: string; after?: { collection: string; id: string }; limit: number },
  ): Promise<UnarchivedRecord[]>;

  /**
   * One summary per record that has version entries, in id order after `afterId`, at most
   * `limit`: how many entries, the lowest and highest ov, and when the oldest was superseded
   * (the `at` of the entry at `oldestOv + 1`; `null` when there is none).
   */
  summariseVersions(ns: Namespace, options: { afterId?: string; limit: number }): Promise<VersionSummary[]>;

  /**
   * Removes the record's version entries with ov < `belowOv`, atomically, and returns how many
   * went. Never removes the entry at the head's ov (`belowOv` is capped there), never touches
   * the head, and removes nothing when the record has no head. Idempotent.
   */
  pruneVersions(ns: Namespace, id: string, belowOv: number): Promise<number>;

  /**
   * Offloads a head (the offload job): in one transaction, only when the record's head is at
   * `expectedOv`, the record has no outbox entry and no dead letter (its objects are in sync),
   * and it has no version entry that is not archived, the head keeps every field but `body`,
   * which becomes `''` (an offloaded head, see `HeadRow.body`). Returns `false`, changing
   * nothing, otherwise (or when it is already offloaded). Any later commit writes a full head,
   * which un-offloads the record.
   */
  offloadHead(ns: Namespace, id: string, expectedOv: number): Promise<boolean>;

  /** The last collection version (cv) assigned in the namespace; `null` when it was never written. */
  getCollectionVersion(ns: Namespace): Promise<number | null>;

  /** Unique claims of a namespace (see `RecordWrite.claims`), in key order after `afterKey`, at most `limit`. */
  listClaims(ns: Namespace, options: { afterKey?: string; limit: number }): Promise<Array<{ key: string; id: string }>>;

  /** Ids of every head in the namespace (deleted ones included), in id order, paged. */
  listHeadIds(ns: Namespace, options: { afterId?: string; limit: number }): Promise<string[]>;

  /**
   * Restores records exactly as given, in one transaction (on a driver with an `importLimit`,
   * MongoDB, in several within it, in order: see `importChunks`): for each, the head and every version
   * entry (with its cv, `archived` flag and body) replace whatever the namespace held for that
   * id; each record is marked for blob sync (unless `batch.sync` is `false`). Claims are set as given (a claim already held by
   * another record is taken over). The namespace's collection version is raised to the highest
   * of `collectionVersion` and every cv in the batch when that is higher (it never goes down, so
   * later commits never reuse an imported cv). Idempotent: importing the same batch twice leaves
   * the same state.
   */
  importRecords(ns: Namespace, batch: ImportBatch): Promise<void>;

  /** How many heads (records, deleted ones included) the namespace holds; `0` for one never written. */
  countRecords(ns: Namespace): Promise<number>;

  /**
   * Replaces whole collections of `dbName` (a backup restore). For each replacement, everything
   * the collection held (heads, version entries, claims, collection version, outbox entries, dead
   * letters) goes, and what the same collection of database `from` holds (a restore's staging
   * area, filled by `importRecords` with `sync: false`) is copied in whole (`from` is left as it
   * was); every head copied in is marked for blob sync. With `from: null` the collection is only emptied. The collection's
   * counter totals and windows (in `options.countersDb`) become exactly `counters` (none when
   * absent). With `options.wholeDatabase`, every other collection of `dbName` is emptied too,
   * counters included. Objects queued for upload (`listPendingBlobs`) are kept: they may be
   * content that restored records point at.
   *
   * With `options.onlyIfEmpty`, nothing changes when the collections to replace (with
   * `wholeDatabase`, the whole database) hold any head: `replaced` is `false` and `held` says how
   * many. On most backends all of it is one transaction: readers see every collection as it was
   * or every one replaced, and the emptiness check cannot race a write. A driver whose
   * transactions cannot hold a whole restore (`IndexDriver.replacesInOneTransaction: false`,
   * MongoDB) replaces collection by collection, after the emptiness check. Either way it is
   * idempotent: calling it again with the same staging area leaves the same state, so a call
   * cut off half-way is finished by the next.
   */
  replaceCollections(dbName: string, replacements: readonly CollectionReplacement[], options: ReplaceCollectionsOptions): Promise<{ replaced: boolean; held: number }>;
}

/** What differs between backends. Every one is transactional: batches and replacements are atomic. */
export interface IndexStoreCapabilities {
  /** Several OS processes may share the store safely. */
  readonly multiProcess: boolean;
}

export interface Namespace {
  readonly dbName: string;
  readonly collection: string;
}

export type VersionPoint = { readonly at: string } | { readonly cv: number };

export const VERSION_OPS = ['create', 'update', 'enrich', 'delete', 'restore'] as const;
export type VersionOp = (typeof VERSION_OPS)[number];

/** The latest state of a record. */
export interface HeadRow {
  id: string;
  ov: number;
  cv: number;
  deleted: boolean;
  createdAt: string;
  updatedAt: string;
  deletedAt: string | null;
  /** Indexed property values, flat: `{ "customer.id": "c1" }`. */
  meta: Record<string, IndexedValue>;
  /**
   * The exact JSON text of the record document at `ov` (see `RecordDocument`), or the empty
   * string when the head is offloaded (`offloadHead`): its document then lives only in the
   * records bucket (`current.json`, or the dated key of an append-only record). A record
   * document is never empty JSON, so `''` is the offloaded marker and nothing else.
   */
  body: string;
  /** Hash of the latest version (the end of the record's hash chain); `null` for unversioned types. */
  hash: string | null;
}

export type { IndexedValue } from '../foundation/filter-tree.js';

export const ACTOR_TYPES = ['user', 'agent', 'system', 'api'] as const;
export type ActorType = (typeof ACTOR_TYPES)[number];
/** Who made a change: a plain name, or a typed identity. */
export type Actor = string | { type: ActorType; identifier: string; name?: string };

/** One immutable entry of the version index. */
export interface VersionRow {
  id: string;
  ov: number;
  cv: number;
  op: VersionOp;
  at: string;
  actor: Actor;
  reason: string | null;
  deleted: boolean;
  /** Size of the record document: UTF-8 bytes of `body`, kept after archival. */
  size: number;
  /** The record document's exact JSON text while the index holds it; `null` once archived. */
  body: string | null;
  archived: boolean;
  /** Indexed values of this version, for queries as of a time. */
  meta: Record<string, IndexedValue>;
  /** SHA-256 (hex) chaining this version to the previous one; see `core/engine/hash-chain.ts`. */
  hash: string;
}

/** What a history page shows of a version (see `IndexStore.listHistory`). */
export type HistoryRow = Pick<VersionRow, 'id' | 'ov' | 'cv' | 'op' | 'at' | 'actor' | 'reason' | 'deleted' | 'size' | 'archived'>;

export interface NewHead {
  ov: number;
  deleted: boolean;
  createdAt: string;
  updatedAt: string;
  deletedAt: string | null;
  meta: Record<string, IndexedValue>;
  body: string;
  hash: string | null;
}

export interface NewVersion {
  op: VersionOp;
  at: string;
  actor: Actor;
  reason: string | null;
  deleted: boolean;
  body: string;
  hash: string;
}

export interface RecordWrite {
  id: string;
  /** The ov the head must be at; `null` when the record must not exist yet. */
  expectedOv: number | null;
  /** The new head, or `null` to remove the record (hard delete, which also drops its versions). */
  head: NewHead | null;
  /** The version entry to append (versioned types only). Its ov is `head.ov`; its meta, `head.meta`. */
  version?: NewVersion;
  /**
   * Objects to upload later, kept in the index in the same transaction (the fallback queue for
   * content the blob store refused): the sync uploads them, `getPendingBlob` serves them until then.
   */
  blobs?: readonly PendingBlob[];
  /**
   * The upload intents (`recordUploads`) this write's content went up under. The commit removes
   * them with the write; when one is gone (a cleanup took it as stale), the batch fails with
   * reason `upload` and nothing is written.
   */
  uploads?: readonly UploadRef[];
  /**
   * Unique claims to take for this record (smartInsert's race guard). Each `key` may be held by
   * one record per namespace; a claim held by another record fails the batch, unless it is held
   * by `replacing` (a stale claim the caller checked), which is then taken over.
   */
  claims?: ReadonlyArray<{ key: string; replacing?: string }>;
  /**
   * The hash of the head and the version entry given the cv the commit assigns them (the hash
   * covers the cv, which only the commit knows). When given, it replaces `head.hash` and
   * `version.hash`. It is a pure function of its argument.
   */
  seal?: (cv: number) => string;
}

export interface CounterDelta {
  /** Database that holds the counters (the analytics database for runtime). */
  dbName: string;
  collection: string;
  deltas: Record<string, number>;
  /**
   * Window keys (`day:YYYY-MM-DD`, `week:YYYY-Www`, `month:YYYY-MM`) the deltas are also added
   * to, in the same transaction as the totals; absent or empty means totals only.
   */
  windows?: readonly string[];
}

export type CounterWindowGranularity = 'day' | 'week' | 'month';

export interface CounterWindowQuery {
  granularity: CounterWindowGranularity;
  /** Lowest key returned (inclusive), a whole key such as `day:2026-01-01`. */
  from?: string;
  /** Highest key returned (inclusive). */
  to?: string;
}

export interface CounterWindow {
  /** The window key, e.g. `week:2026-W05`. */
  window: string;
  counts: Record<string, number>;
}

/** Per granularity, the lowest window key to keep (windows with a lower key are pruned). */
export type CounterWindowBounds = { readonly [G in CounterWindowGranularity]?: string };

export interface CommitBatch {
  writes: readonly RecordWrite[];
  counters?: readonly CounterDelta[];
}

export type CommitResult =
  | { ok: true; cvs: number[] }
  | { ok: false; reason: 'version'; index: number; id: string; expectedOv: number | null; actualOv: number | null }
  | { ok: false; reason: 'claim'; index: number; id: string; key: string; heldBy: string }
  | { ok: false; reason: 'upload'; index: number; id: string; key: string };

export interface AsOfQuery {
  at: string;
  filter: FilterNode | null;
  includeDeleted: boolean;
  direction: 1 | -1;
  afterId?: string;
  limit: number;
}

export interface ActorQuery {
  /** Only versions by a typed actor of this type (a plain-name actor has no type). */
  actorType?: string;
  from?: string;
  to?: string;
  /** Keyset cursor: the `at` and `id`/`ov` of the last entry of the previous page. */
  before?: { at: string; id: string; ov: number };
  limit: number;
}

export interface HeadQuery {
  filter: FilterNode | null;
  includeDeleted: boolean;
  sort: { field: SortField; direction: 1 | -1 };
  /** Keyset cursor: the sort value and id of the last row of the previous page. */
  after?: { value: string; id: string };
  limit: number;
}

export const SORT_FIELDS = ['id', 'createdAt', 'updatedAt'] as const;
export type SortField = (typeof SORT_FIELDS)[number];

export interface PendingBlob {
  bucket: string;
  key: string;
  contentType: string;
  body: Uint8Array;
}

/** An upload intent or cleanup mark on an object key (see `recordUploads`). */
export interface UploadRef {
  bucket: string;
  key: string;
  /** The write attempt that recorded the intent, or the cleanup that holds the mark. */
  token: string;
}

/** What a write records before it uploads an object of record `id`. */
export interface UploadIntent extends UploadRef {
  id: string;
}

/** A stale upload intent or cleanup mark (`listStaleUploads`). */
export interface StaleUpload extends UploadIntent {
  collection: string;
  /** `true` for a cleanup mark (its cleanup did not finish), `false` for an intent. */
  cleaning: boolean;
}

export interface DeadLetter {
  collection: string;
  id: string;
  reason: string;
  failedAt: string;
}

export interface PendingSync {
  collection: string;
  id: string;
  seq: number;
}

/** A record with versions waiting for archival (`listUnarchivedRecords`). */
export interface UnarchivedRecord {
  collection: string;
  id: string;
  /** When its oldest unarchived version was written. */
  oldestAt: string;
}

/** What retention needs to know about a record's version entries (`summariseVersions`). */
export interface VersionSummary {
  id: string;
  count: number;
  oldestOv: number;
  newestOv: number;
  /** The `at` of the entry at `oldestOv + 1`: when the oldest entry stopped being current. */
  oldestSupersededAt: string | null;
}

/** One record as a backup holds it: its head and every version entry it had. */
export interface ImportedRecord {
  head: HeadRow;
  /** Any order; each entry keeps its ov, cv, `archived` flag and body (`null` when archived). */
  versions: readonly VersionRow[];
}

export interface ImportBatch {
  records: readonly ImportedRecord[];
  claims?: ReadonlyArray<{ key: string; id: string }>;
  collectionVersion?: number;
  /** `false`: the records are not marked for blob sync (a restore's staging area; `replaceCollections` marks them). Default `true`. */
  sync?: boolean;
}

/** One collection of a `replaceCollections` call. */
export interface CollectionReplacement {
  collection: string;
  /** The database whose collection of the same name is copied in; `null`: the collection is emptied. */
  from: string | null;
  /** What the collection's counters become, exactly; absent: none. */
  counters?: { totals: Readonly<Record<string, number>>; windows: readonly CounterWindow[] };
}

export interface ReplaceCollectionsOptions {
  /** Where the collections' counters are kept: the analytics database for runtime, else the database itself. */
  countersDb: string;
  /** Every collection of the database not listed is emptied too, so the database holds exactly what the replacements bring. */
  wholeDatabase: boolean;
  /** Change nothing when what is to be replaced holds any record. */
  onlyIfEmpty: boolean;
}
