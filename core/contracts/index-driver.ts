import type {
  ActorQuery,
  AsOfQuery,
  CounterWindow,
  CounterWindowBounds,
  CounterWindowQuery,
  DeadLetter,
  HeadQuery,
  HeadRow,
  HistoryRow,
  Namespace,
  PendingBlob,
  PendingSync,
  UnarchivedRecord,
  VersionRow,
  VersionSummary,
} from './index-store.js';

/**
 * What an index-store backend implements: reads, and one `transact` that executes a plan.
 *
 * The core owns every rule of the index store (when a commit conflicts, which cv a write gets,
 * when a head may be offloaded, when a sync is complete, how a lease is taken): it plans each
 * write as a pure function from the rows it read to a list of effects (`core/store/plans.ts`).
 * A driver only reads what a transaction asks for and applies the effects atomically. The
 * reference driver is `core/adapters/memory/memory-index-driver.ts`; every real one is held to
 * it by the same conformance suite.
 *
 * Fifteen methods are required; the optional ones have defaults in `core/store/index-runtime.ts`
 * that a driver overrides only to be faster.
 */
export interface IndexDriver {
  /** Short backend name used in errors and logs, e.g. `sqlite`. */
  readonly name: string;
  /** Several OS processes may share the store safely. */
  readonly multiProcess: boolean;
  /**
   * `false`: `replaceCollections` (a backup restore) runs one transaction per collection, because
   * a whole restore may exceed what one transaction of the backend can hold (MongoDB's lifetime
   * and size limits). Default: one transaction for all of it.
   */
  readonly replacesInOneTransaction?: boolean;
  /**
   * The most one transaction of `importRecords` should write: documents (heads, version entries,
   * claims) and bytes of bodies. A larger batch is imported in several transactions (see
   * `importChunks`), each idempotent, a record never split. Default: no limit, one transaction.
   */
  readonly importLimit?: ImportLimit;

  /**
   * Runs one transaction: reads `tx.reads` (locking what it read against concurrent
   * transactions, as the backend's isolation allows), calls `tx.decide` with the rows; when that
   * returns a further step (a `Transaction`, see `isDecision`), reads its set in the same
   * transaction and calls its `decide`, until one returns a `Decision`; then applies the effects
   * it returns in order, commits, and returns its result. All effects or none are applied.
   * `decide` is pure and may be called again when the backend retries a transaction that lost a
   * race (a serialization failure); a driver retries a bounded number of times.
   */
  transact<T>(tx: Transaction<T>): Promise<T>;

  /** Releases connections and file handles. */
  close(): Promise<void>;

  /** The head of one record, deleted or offloaded or not; `null` when it does not exist. */
  getHead(ns: Namespace, id: string): Promise<HeadRow | null>;

  /** Version entries of one record in the range, in `range.order` (default newest first). */
  listVersions(ns: Namespace, id: string, range: VersionRange): Promise<VersionRow[]>;

  /** See `IndexStore.listHeads`. */
  listHeads(ns: Namespace, query: HeadQuery): Promise<HeadRow[]>;

  /** See `IndexStore.queryAt`. */
  queryAt(ns: Namespace, query: AsOfQuery): Promise<VersionRow[]>;

  /** See `IndexStore.listVersionsByActor`. */
  listVersionsByActor(ns: Namespace, actorId: string, query: ActorQuery): Promise<VersionRow[]>;

  /** Unique claims of a namespace in key order: one key (`key`), or a page after `afterKey`. */
  listClaims(ns: Namespace, query: { key?: string; afterKey?: string; limit: number }): Promise<Array<{ key: string; id: string }>>;

  /**
   * Outbox entries of a database (records whose blob copies are behind the index): of one
   * collection when `collection` is given, of one record when `id` is given too. In queue order
   * (`order: 'queue'`, the default: oldest first, by when the entry was made; an entry a later
   * write re-marks keeps its place, and seqs of different collections are not comparable), or
   * with `order: 'id'` (one collection) in id order (byte order) after `afterId`.
   */
  listOutbox(dbName: string, query: OutboxQuery): Promise<PendingSync[]>;

  /** Dead letters of one database, oldest first. */
  listDeadLetters(dbName: string, query: { limit: number }): Promise<DeadLetter[]>;

  /** Objects queued with a record (`RecordWrite.blobs`); with `key`, that one only. */
  listPendingBlobs(ns: Namespace, id: string | null, query?: { bucket: string; key: string }): Promise<PendingBlob[]>;

  /** See `IndexStore.getCounters`. */
  getCounters(dbName: string, collection: string): Promise<Record<string, number>>;

  /** See `IndexStore.getCounterWindows`. */
  getCounterWindows(dbName: string, collection: string, query: CounterWindowQuery): Promise<CounterWindow[]>;

  /**
   * Namespaces written at least once (a commit or an import), by (dbName, collection) in byte
   * order, each with its collection version; only those of `dbName` when given.
   */
  listNamespaces(dbName?: string): Promise<Array<Namespace & { cv: number }>>;

  /** See `IndexStore.listUnarchivedRecords`. */
  listUnarchivedRecords(
    dbName: string,
    query: { writtenBefore: string; after?: { collection: string; id: string }; limit: number },
  ): Promise<UnarchivedRecord[]>;

  // ---- optional: opened once by the guard, defaults in core/store/index-runtime.ts -----------

  /** Connects or opens the file; called once before first use, again after a failure. */
  open?(): Promise<void>;
  /** See `IndexStore.prepareDatabase`; default: nothing to create (`false`). */
  prepareDatabase?(dbName: string): Promise<boolean>;
  /** Round trip for health reports; default: `listNamespaces` of a database that cannot exist. */
  ping?(): Promise<void>;
  /** See `IndexStore.listPendingDatabases`; default: `listOutbox` of each database of `listNamespaces`. */
  listPendingDatabases?(): Promise<string[]>;
  /** See `IndexStore.listDeadLetterDatabases`; default: `listDeadLetters` of each database of `listNamespaces`. */
  listDeadLetterDatabases?(): Promise<string[]>;
  /** History page without bodies; default: `listVersions` trimmed to `HistoryRow`. */
  listHistory?(ns: Namespace, id: string, range: { beforeOv?: number; limit: number }): Promise<HistoryRow[]>;
  /** Head ids in id order; default: `listHeads` sorted by id. */
  listHeadIds?(ns: Namespace, query: { afterId?: string; limit: number }): Promise<string[]>;
  /** See `IndexStore.summariseVersions`; default: from `listHeadIds` and `listVersions`. */
  summariseVersions?(ns: Namespace, query: { afterId?: string; limit: number }): Promise<VersionSummary[]>;
}

/** Which version entries of a record `listVersions` returns. */
export interface VersionRange {
  /** Only entries with ov < `beforeOv`. */
  beforeOv?: number;
  /** Only entries with ov > `afterOv`. */
  afterOv?: number;
  /** The newest entry at or before this point (a time or a collection version): at most one row. */
  at?: { at: string } | { cv: number };
  /** Only entries not yet archived to the blob store. */
  unarchived?: boolean;
  /** `desc` (default): newest first; `asc`: oldest first. */
  order?: 'asc' | 'desc';
  limit?: number;
}

export interface OutboxQuery {
  /** Default `queue`; see `IndexDriver.listOutbox`. */
  order?: 'queue' | 'id';
  collection?: string;
  id?: string;
  afterId?: string;
  /** Only entries whose seq is at most this (see `IndexStore.listPendingUpTo`). */
  maxSeq?: number;
  limit: number;
}

/** One atomic step: what to read, and the pure decision over what was read. */
export interface Transaction<T> {
  readonly reads: ReadSet;
  /**
   * The decision over what was read, or a further step whose reads depend on these rows (how
   * many entries lie below the head's ov; how many records each collection of a database holds),
   * which the driver reads in the same transaction. A plan takes at most a few steps.
   */
  decide(rows: ReadRows): Decision<T> | Transaction<T>;
  /**
   * What a crash may undo once the transaction has returned. A driver that cannot tell the
   * levels apart treats every transaction as `'always'`.
   * - `'always'` (the default): nothing, not even a power loss (every commit of records).
   * - `'withClients'`: only a crash that also ends every process that could rely on it. A lease
   *   taken or renewed: its holder goes on relying on it, so a server that can crash while its
   *   clients live (PostgreSQL, MongoDB) must keep it; an embedded store may skip the fsync,
   *   since a power loss ends every process sharing its file.
   * - `'never'`: any crash may undo it, because nothing relies on it (a lease given back: undone,
   *   it runs out instead).
   */
  readonly durability?: 'always' | 'withClients' | 'never';
  /**
   * The plan only reads (counts, stale uploads, a collection version): it never returns an
   * effect, so a driver may run it as a consistent read without taking the write lock (SQLite:
   * a deferred transaction, which never waits behind writers of other processes).
   */
  readonly readOnly?: boolean;
}

export interface Decision<T> {
  readonly effects: readonly Effect[];
  readonly result: T;
}

/** Whether `decide` returned its decision (rather than a further step). */
export function isDecision<T>(outcome: Decision<T> | Transaction<T>): outcome is Decision<T> {
  return 'effects' in outcome;
}

/** A record's key in `ReadRows` maps: see `refKey`. */
export type RecordRef = Namespace & { readonly id: string };

/**
 * What a transaction reads before it decides. Every list names exactly the rows it needs, so a
 * driver can lock them (row locks, or the whole store as SQLite does).
 */
export interface ReadSet {
  heads?: readonly RecordRef[];
  claims?: ReadonlyArray<Namespace & { readonly key: string }>;
  outbox?: readonly RecordRef[];
  deadLetters?: readonly RecordRef[];
  /** Every dead letter of a database, oldest first, with its record's head cv (requeue). */
  allDeadLetters?: string;
  /** How many unarchived version entries each record has. */
  unarchived?: readonly RecordRef[];
  /** How many version entries each record has below `belowOv`. */
  versionCounts?: ReadonlyArray<RecordRef & { readonly belowOv: number }>;
  /** The last cv assigned in each namespace. */
  collectionVersions?: readonly Namespace[];
  /**
   * Window keys of a collection's counters below the bounds (pruning): for each granularity `g`
   * with a bound, every key that is at least `g:` and below the bound, each key once.
   */
  counterWindows?: { readonly dbName: string; readonly collection: string; readonly before: CounterWindowBounds };
  locks?: ReadonlyArray<Namespace & { readonly key: string }>;
  /** Upload intents and cleanup marks on these object keys. */
  uploads?: ReadonlyArray<Namespace & { readonly bucket: string; readonly key: string }>;
  /** Intents and marks of a database stamped at least `olderThanMs` ago, oldest first. */
  staleUploads?: { readonly dbName: string; readonly olderThanMs: number; readonly limit: number };
  /** How many heads each namespace holds. */
  headCounts?: readonly Namespace[];
  /** How many outbox entries each database holds. */
  outboxCounts?: readonly string[];
  /** The namespaces of these databases (see `IndexDriver.listNamespaces`). */
  namespaces?: readonly string[];
}

/** Upload intent or cleanup mark as a transaction reads it. */
export interface UploadRow {
  id: string;
  token: string;
  cleaning: boolean;
  /** Milliseconds since it was stamped, by the store's clock (never negative). */
  ageMs: number;
}

/** What the driver read, keyed like the read set (`refKey`, `claimKey`, `uploadKey`…); a missing key means no row. */
export interface ReadRows {
  heads: ReadonlyMap<string, HeadState>;
  /** claim key (`refKey(ns, key)`) → id of the record holding it. */
  claims: ReadonlyMap<string, string>;
  /** `refKey` → the entry's seq. */
  outbox: ReadonlyMap<string, number>;
  /** `refKey`s that have a dead letter. */
  deadLetters: ReadonlySet<string>;
  allDeadLetters: ReadonlyArray<DeadLetter & { headCv: number | null }>;
  /** `refKey` → count (0 when none). */
  unarchived: ReadonlyMap<string, number>;
  /** `refKey` → count below the asked ov. */
  versionCounts: ReadonlyMap<string, number>;
  /** `nsKey` → last cv (absent: never written). */
  collectionVersions: ReadonlyMap<string, number>;
  counterWindows: readonly string[];
  /**
   * `refKey(ns, key)` → holder. `expired`: the lease ran out by the store's clock, or (a store
   * whose processes all share one host) the owner names a process that is gone (`processGone`
   * in core/foundation/process.ts).
   */
  locks: ReadonlyMap<string, { owner: string; expired: boolean }>;
  /** `uploadKey` → the intents and mark on that object key. */
  uploads: ReadonlyMap<string, readonly UploadRow[]>;
  staleUploads: ReadonlyArray<UploadRow & { collection: string; bucket: string; key: string }>;
  /** `nsKey` → head count. */
  headCounts: ReadonlyMap<string, number>;
  /** dbName → outbox entries. */
  outboxCounts: ReadonlyMap<string, number>;
  namespaces: ReadonlyArray<Namespace & { cv: number }>;
}

/** What a transaction needs to know of a head to decide. */
export interface HeadState {
  ov: number;
  cv: number;
  deleted: boolean;
  offloaded: boolean;
}

/** A full head as an effect writes it. */
export type HeadWrite = Omit<HeadRow, 'id'>;

/** The tables whose rows belong to one record: each row carries the record's id. */
export type RecordTable = 'heads' | 'versions' | 'claims' | 'outbox' | 'pendingBlobs' | 'deadLetters';

/**
 * One change a plan makes, to one kind of row: put a row whole, delete rows, or change fields the
 * plan names. Effects are applied in order; each is idempotent on its own terms (a delete of
 * nothing is no error). Rows carry everything: a driver computes nothing but storage layout (and
 * the store's clock, for leases and upload stamps).
 */
export type Effect =
  | { kind: 'putHead'; ns: Namespace; id: string; head: HeadWrite }
  /** A new entry: the record has none at that ov (a driver refuses one that exists, failing the transaction). */
  | { kind: 'putVersion'; ns: Namespace; version: VersionRow }
  /**
   * The record's rows in `tables`: its head, its version entries (with `belowOv`, only those with
   * ov below it), the claims it holds, its outbox entry, the objects queued with it, its dead letter.
   */
  | { kind: 'deleteRecord'; ns: Namespace; id: string; tables: readonly RecordTable[]; belowOv?: number }
  /**
   * Bodies the blob store now holds alone: the head keeps every field but `body`, which becomes
   * `''` (`ovs: null`, an offload); or the entries at `ovs` drop `body` and become `archived`.
   */
  | { kind: 'dropBodies'; ns: Namespace; id: string; ovs: readonly number[] | null }
  | { kind: 'putClaim'; ns: Namespace; key: string; id: string }
  /** Marks the record for sync at `seq`; an entry that exists takes the new seq and keeps its place in the queue. */
  | { kind: 'putOutbox'; ns: Namespace; id: string; seq: number }
  | { kind: 'putPendingBlob'; ns: Namespace; id: string; blob: PendingBlob }
  /** Queued objects by key, whichever record queued them. */
  | { kind: 'deletePendingBlobs'; ns: Namespace; keys: ReadonlyArray<{ bucket: string; key: string }> }
  | { kind: 'putDeadLetter'; ns: Namespace; id: string; reason: string; failedAt: string }
  /**
   * Counts of a collection's totals (`window: null`) or of one window: added to what each name
   * holds (`add`), or set, name by name; names not given are untouched.
   */
  | { kind: 'counters'; dbName: string; collection: string; window: string | null; counts: Readonly<Record<string, number>>; add: boolean }
  /** One window of the collection's counters, or (`window: null`) every total and window. */
  | { kind: 'deleteCounters'; dbName: string; collection: string; window: string | null }
  /** Sets the namespace's last cv (never lowers it: the plan passes the higher value). */
  | { kind: 'setCollectionVersion'; ns: Namespace; cv: number }
  /** Takes or renews the lease, expiring `leaseMs` from now by the store's clock. */
  | { kind: 'putLock'; ns: Namespace; key: string; owner: string; leaseMs: number }
  | { kind: 'deleteLock'; ns: Namespace; key: string }
  /**
   * Writes the row of (object key, token) whole: an intent (`cleaning: false`) or mark, stamped
   * now, or long ago (`stamp: 'past'`) so it is stale at once.
   */
  | { kind: 'putUpload'; ns: Namespace; bucket: string; key: string; row: Omit<UploadRow, 'ageMs'>; stamp: 'now' | 'past' }
  | { kind: 'deleteUpload'; ns: Namespace; bucket: string; key: string; token: string }
  /** Heads, versions, claims, cv, outbox entries and dead letters of the namespace (not queued objects, not uploads). */
  | { kind: 'clearNamespace'; ns: Namespace }
  /** Copies heads, versions, claims and cv of `from` into `to` (which an earlier `clearNamespace` emptied), marking every head for sync. */
  | { kind: 'copyNamespace'; from: Namespace; to: Namespace };

/** The key of a record (or of a claim, lock: pass the key as `id`) in `ReadRows` maps. */
export function refKey(ns: Namespace, id: string): string {
  return JSON.stringify([ns.dbName, ns.collection, id]);
}

/** The key of a namespace in `ReadRows` maps. */
export function nsKey(ns: Namespace): string {
  return JSON.stringify([ns.dbName, ns.collection]);
}

/** The key of an object in `ReadRows.uploads`. */
export function uploadKey(ns: Namespace, bucket: string, key: string): string {
  return JSON.stringify([ns.dbName, ns.collection, bucket, key]);
}

/** See `IndexDriver.importLimit`. */
export interface ImportLimit {
  readonly documents: number;
  readonly bytes: number;
}
