import { type IndexDriver, refKey, type Transaction } from '../contracts/index-driver.js';
import type {
  ActorQuery,
  AsOfQuery,
  CollectionReplacement,
  CommitBatch,
  CommitResult,
  CounterWindow,
  CounterWindowBounds,
  CounterWindowQuery,
  DeadLetter,
  HeadQuery,
  HeadRow,
  HistoryRow,
  ImportBatch,
  IndexStore,
  IndexStoreCapabilities,
  Namespace,
  PendingBlob,
  PendingSync,
  ReplaceCollectionsOptions,
  StaleUpload,
  UnarchivedRecord,
  UploadIntent,
  UploadRef,
  VersionPoint,
  VersionRow,
  VersionSummary,
} from '../contracts/index-store.js';
import { type CommitItem, commitGroup, commitWeight, type CompletedSyncItem, completedSyncGroup, GroupQueue } from './group-commit.js';
import * as plans from './plans.js';

/** A database name no store can hold (names are checked long before they reach one): `ping`'s default. */
const NO_DATABASE = '\u0000ping';
/** Page size of the defaults that walk a namespace. */
const PAGE = 500;

/**
 * The index store over an `IndexDriver`: reads go to the driver's reads, writes to
 * `driver.transact` with a plan of `plans.ts`. It holds the defaults of the driver's optional
 * methods, so every driver gets them once. Opening the driver once (again after a failed open)
 * and refusing calls after `close` is the adapter guard's work (`guard.ts`), as for every adapter.
 */
export class IndexRuntime implements IndexStore {
  readonly name: string;
  readonly capabilities: IndexStoreCapabilities;
  readonly #driver: IndexDriver;
  /** Record commits, grouped into shared transactions (`group-commit.ts`). */
  readonly #commits: GroupQueue<CommitItem, CommitResult>;
  /** Completed syncs of different records, grouped likewise. */
  readonly #completedSyncs: GroupQueue<CompletedSyncItem, boolean>;

  static of(driver: IndexDriver): IndexRuntime {
    return new IndexRuntime(driver);
  }

  private constructor(driver: IndexDriver) {
    this.#driver = driver;
    this.name = driver.name;
    this.capabilities = { multiProcess: driver.multiProcess };
    const transact = <T>(tx: Transaction<T>): Promise<T> => driver.transact(tx);
    this.#commits = new GroupQueue<CommitItem, CommitResult>(transact, { alone: (m) => plans.commit(m.ns, m.batch), group: commitGroup, weight: commitWeight });
    this.#completedSyncs = new GroupQueue<CompletedSyncItem, boolean>(transact, {
      alone: (m) => plans.completeSync(m.ns, m.id, m.done),
      group: completedSyncGroup,
      weight: () => ({ writes: 1, bytes: 0 }),
      key: (m) => refKey(m.ns, m.id),
    });
  }

  /** Connects the driver (the guard calls it once, before the first other call). */
  async open(): Promise<void> {
    await this.#driver.open?.();
  }

  // ---- RecordIndex --------------------------------------------------------------------------

  async getHead(ns: Namespace, id: string): Promise<HeadRow | null> {
    return this.#driver.getHead(ns, id);
  }

  async commit(ns: Namespace, batch: CommitBatch): Promise<CommitResult> {
    return this.#commits.submit({ ns, batch });
  }

  async getVersion(ns: Namespace, id: string, ov: number): Promise<VersionRow | null> {
    const [row] = await this.#driver.listVersions(ns, id, { afterOv: ov - 1, beforeOv: ov + 1, limit: 1 });
    return row ?? null;
  }

  async findVersionAt(ns: Namespace, id: string, point: VersionPoint): Promise<VersionRow | null> {
    const [row] = await this.#driver.listVersions(ns, id, { at: point, limit: 1 });
    return row ?? null;
  }

  async listVersions(ns: Namespace, id: string, options: { beforeOv?: number; limit: number }): Promise<VersionRow[]> {
    return this.#driver.listVersions(ns, id, options);
  }

  async listHistory(ns: Namespace, id: string, options: { beforeOv?: number; limit: number }): Promise<HistoryRow[]> {
    const driver = this.#driver;
    if (driver.listHistory) return driver.listHistory(ns, id, options);
    return (await driver.listVersions(ns, id, options)).map(({ id, ov, cv, op, at, actor, reason, deleted, size, archived }) => ({
      id, ov, cv, op, at, actor, reason, deleted, size, archived,
    }));
  }

  async listHeads(ns: Namespace, query: HeadQuery): Promise<HeadRow[]> {
    return this.#driver.listHeads(ns, query);
  }

  async queryAt(ns: Namespace, query: AsOfQuery): Promise<VersionRow[]> {
    return this.#driver.queryAt(ns, query);
  }

  async listVersionsByActor(ns: Namespace, actorId: string, options: ActorQuery): Promise<VersionRow[]> {
    return this.#driver.listVersionsByActor(ns, actorId, options);
  }

  async getClaim(ns: Namespace, key: string): Promise<string | null> {
    const [claim] = await this.#driver.listClaims(ns, { key, limit: 1 });
    return claim?.id ?? null;
  }

  async listPendingBlobs(ns: Namespace, id: string): Promise<PendingBlob[]> {
    return this.#driver.listPendingBlobs(ns, id);
  }

  async getPendingBlob(ns: Namespace, bucket: string, key: string): Promise<PendingBlob | null> {
    const [blob] = await this.#driver.listPendingBlobs(ns, null, { bucket, key });
    return blob ?? null;
  }

  // ---- SyncOutbox ---------------------------------------------------------------------------

  async listPendingSync(dbName: string, options: { limit: number; collection?: string }): Promise<PendingSync[]> {
    return this.#driver.listOutbox(dbName, options);
  }

  async listPendingUpTo(ns: Namespace, options: { maxSeq: number; afterId?: string; limit: number }): Promise<PendingSync[]> {
    return this.#driver.listOutbox(ns.dbName, { ...options, order: 'id', collection: ns.collection });
  }

  async countPendingSync(dbName: string): Promise<number> {
    return this.#driver.transact(plans.countPendingSync(dbName));
  }

  async getPendingSeq(ns: Namespace, id: string): Promise<number | null> {
    const [entry] = await this.#driver.listOutbox(ns.dbName, { collection: ns.collection, id, limit: 1 });
    return entry?.seq ?? null;
  }

  async listUnarchived(ns: Namespace, id: string, page: { afterOv?: number; limit?: number } = {}): Promise<VersionRow[]> {
    return this.#driver.listVersions(ns, id, { ...page, unarchived: true, order: 'asc' });
  }

  async completeSync(
    ns: Namespace,
    id: string,
    done: { archivedOvs: readonly number[]; uploaded?: ReadonlyArray<{ bucket: string; key: string }>; seq: number | null },
  ): Promise<boolean> {
    return this.#completedSyncs.submit({ ns, id, done });
  }

  async deadLetterSync(ns: Namespace, id: string, seq: number, reason: string): Promise<boolean> {
    return this.#driver.transact(plans.deadLetterSync(ns, id, seq, reason, new Date().toISOString()));
  }

  async listDeadLetters(dbName: string, options: { limit: number }): Promise<DeadLetter[]> {
    return this.#driver.listDeadLetters(dbName, options);
  }

  async requeueDeadLetters(dbName: string): Promise<number> {
    return this.#driver.transact(plans.requeueDeadLetters(dbName));
  }

  async listPendingDatabases(): Promise<string[]> {
    const driver = this.#driver;
    if (driver.listPendingDatabases) return driver.listPendingDatabases();
    return this.#databasesWith(async (dbName) => (await driver.listOutbox(dbName, { limit: 1 })).length > 0);
  }

  async listDeadLetterDatabases(): Promise<string[]> {
    const driver = this.#driver;
    if (driver.listDeadLetterDatabases) return driver.listDeadLetterDatabases();
    return this.#databasesWith(async (dbName) => (await driver.listDeadLetters(dbName, { limit: 1 })).length > 0);
  }

  /** Outbox entries and dead letters only come with a commit or an import, so every database holding one is a written namespace's. */
  async #databasesWith(holds: (dbName: string) => Promise<boolean>): Promise<string[]> {
    const out: string[] = [];
    for (const dbName of await this.listDatabases()) if (await holds(dbName)) out.push(dbName);
    return out;
  }

  // ---- UploadIntents ------------------------------------------------------------------------

  async recordUploads(ns: Namespace, uploads: readonly UploadIntent[]): Promise<{ ok: true } | { ok: false; key: string }> {
    return this.#driver.transact(plans.recordUploads(ns, uploads));
  }

  async listStaleUploads(dbName: string, options: { olderThanMs: number; limit: number }): Promise<StaleUpload[]> {
    return this.#driver.transact(plans.listStaleUploads(dbName, options));
  }

  async claimUploadCleanup(ns: Namespace, upload: UploadRef, options: { olderThanMs: number; markToken: string; own?: boolean }): Promise<boolean> {
    return this.#driver.transact(plans.claimUploadCleanup(ns, upload, options));
  }

  async releaseUploadCleanup(ns: Namespace, upload: Omit<UploadRef, 'token'>, markToken: string, options?: { retry?: boolean }): Promise<void> {
    return this.#driver.transact(plans.releaseUploadCleanup(ns, upload, markToken, options));
  }

  // ---- Leases -------------------------------------------------------------------------------

  async acquireLock(ns: Namespace, key: string, owner: string, leaseMs: number): Promise<boolean> {
    return this.#driver.transact(plans.acquireLock(ns, key, owner, leaseMs));
  }

  async releaseLock(ns: Namespace, key: string, owner: string): Promise<void> {
    return this.#driver.transact(plans.releaseLock(ns, key, owner));
  }

  // ---- CounterIndex -------------------------------------------------------------------------

  async getCounters(dbName: string, collection: string): Promise<Record<string, number>> {
    return this.#driver.getCounters(dbName, collection);
  }

  async getCounterWindows(dbName: string, collection: string, options: CounterWindowQuery): Promise<CounterWindow[]> {
    return this.#driver.getCounterWindows(dbName, collection, options);
  }

  async pruneCounterWindows(dbName: string, collection: string, before: CounterWindowBounds): Promise<number> {
    return this.#driver.transact(plans.pruneCounterWindows(dbName, collection, before));
  }

  async setCounters(dbName: string, collection: string, values: Record<string, number>): Promise<void> {
    return this.#driver.transact(plans.setCounters(dbName, collection, values));
  }

  async setCounterWindows(dbName: string, collection: string, windows: readonly CounterWindow[]): Promise<void> {
    return this.#driver.transact(plans.setCounterWindows(dbName, collection, windows));
  }

  // ---- IndexMaintenance ---------------------------------------------------------------------

  async prepareDatabase(dbName: string): Promise<boolean> {
    return (await this.#driver.prepareDatabase?.(dbName)) ?? false;
  }

  async listDatabases(): Promise<string[]> {
    const names = (await this.#driver.listNamespaces()).map((n) => n.dbName);
    return names.filter((name, i) => i === 0 || name !== names[i - 1]);
  }

  async listCollections(dbName: string): Promise<string[]> {
    return (await this.#driver.listNamespaces(dbName)).map((n) => n.collection);
  }

  async listUnarchivedRecords(
    dbName: string,
    options: { writtenBefore: string; after?: { collection: string; id: string }; limit: number },
  ): Promise<UnarchivedRecord[]> {
    return this.#driver.listUnarchivedRecords(dbName, options);
  }

  async summariseVersions(ns: Namespace, options: { afterId?: string; limit: number }): Promise<VersionSummary[]> {
    const driver = this.#driver;
    if (driver.summariseVersions) return driver.summariseVersions(ns, options);
    // Every record with version entries has a head: walk the heads, skipping those without entries.
    const out: VersionSummary[] = [];
    let afterId = options.afterId;
    while (out.length < options.limit) {
      const ids = await this.listHeadIds(ns, { limit: PAGE, ...(afterId === undefined ? {} : { afterId }) });
      for (const id of ids) {
        const versions = await driver.listVersions(ns, id, { order: 'asc' });
        const [oldest, newest] = [versions[0], versions.at(-1)];
        if (!oldest || !newest) continue;
        const next = versions.find((v) => v.ov === oldest.ov + 1);
        out.push({ id, count: versions.length, oldestOv: oldest.ov, newestOv: newest.ov, oldestSupersededAt: next?.at ?? null });
        if (out.length === options.limit) break;
      }
      if (ids.length < PAGE) break;
      afterId = ids.at(-1);
    }
    return out;
  }

  async pruneVersions(ns: Namespace, id: string, belowOv: number): Promise<number> {
    return this.#driver.transact(plans.pruneVersions(ns, id, belowOv));
  }

  async offloadHead(ns: Namespace, id: string, expectedOv: number): Promise<boolean> {
    return this.#driver.transact(plans.offloadHead(ns, id, expectedOv));
  }

  async getCollectionVersion(ns: Namespace): Promise<number | null> {
    return this.#driver.transact(plans.collectionVersion(ns));
  }

  async listClaims(ns: Namespace, options: { afterKey?: string; limit: number }): Promise<Array<{ key: string; id: string }>> {
    return this.#driver.listClaims(ns, options);
  }

  async listHeadIds(ns: Namespace, options: { afterId?: string; limit: number }): Promise<string[]> {
    const driver = this.#driver;
    if (driver.listHeadIds) return driver.listHeadIds(ns, options);
    const after = options.afterId === undefined ? {} : { after: { value: options.afterId, id: options.afterId } };
    const heads = await driver.listHeads(ns, { filter: null, includeDeleted: true, sort: { field: 'id', direction: 1 }, limit: options.limit, ...after });
    return heads.map((h) => h.id);
  }

  async importRecords(ns: Namespace, batch: ImportBatch): Promise<void> {
    for (const chunk of plans.importChunks(batch, this.#driver.importLimit)) await this.#driver.transact(plans.importRecords(ns, chunk));
  }

  async countRecords(ns: Namespace): Promise<number> {
    return this.#driver.transact(plans.countRecords(ns));
  }

  async replaceCollections(dbName: string, replacements: readonly CollectionReplacement[], options: ReplaceCollectionsOptions): Promise<{ replaced: boolean; held: number }> {
    if (this.#driver.replacesInOneTransaction !== false) return this.#driver.transact(plans.replaceCollections(dbName, replacements, options));
    // Collection by collection, each one transaction (a restore may be larger than one
    // transaction of the backend can hold). Each step is idempotent, so a call cut off half-way
    // is finished by the next call with the same staging area; the emptiness check is a read
    // before the first step.
    const listed = new Set(replacements.map((r) => r.collection));
    const others = options.wholeDatabase ? (await this.#driver.listNamespaces(dbName)).filter((n) => !listed.has(n.collection)) : [];
    const all = [...replacements, ...others.map((n) => ({ collection: n.collection, from: null }))];
    if (options.onlyIfEmpty) {
      let held = 0;
      for (const r of all) held += await this.countRecords({ dbName, collection: r.collection });
      if (held > 0) return { replaced: false, held };
    }
    let held = 0;
    for (const r of all) held += (await this.#driver.transact(plans.replaceCollections(dbName, [r], { ...options, wholeDatabase: false, onlyIfEmpty: false }))).held;
    return { replaced: true, held };
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  async ping(): Promise<void> {
    const driver = this.#driver;
    if (driver.ping) return driver.ping();
    await driver.listNamespaces(NO_DATABASE);
  }

  async close(): Promise<void> {
    // Commits already accepted are answered before the connection goes.
    await Promise.all([this.#commits.settled(), this.#completedSyncs.settled()]);
    await this.#driver.close();
  }
}
