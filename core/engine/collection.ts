import type { Actor } from '../contracts/index-store.js';
import { ValidationError } from '../errors.js';
import type { Route } from '../routing/router.js';
import { checkNoExtraArguments, checkOptions } from './arguments.js';
import type {
  ActorChange,
  CollectionRestoreReport,
  CreateOptions,
  CreateResult,
  DeleteResult,
  EntityMapping,
  HistoryEntry,
  ListOptions,
  ListResult,
  QueryOptions,
  QueryResult,
  RestoreResult,
  SmartInsertResult,
  UpdateResult,
  VersionRecord,
  XronoxRecord,
} from './collection-types.js';
import type { PresentOptions } from './content.js';
import type { Data } from './documents.js';
import type { Digest } from './digests.js';
import type { VerifyReport } from './hash-chain.js';
import { type CollectionVerification, RecordDigests, type VersionProof } from './records/record-digests.js';
import { RecordAccess, type RecordContext } from './records/record-access.js';
import { RecordCommits } from './records/record-commits.js';
import { RecordReads } from './records/record-reads.js';
import { RecordRestore } from './records/record-restore.js';
import { RecordVerify, type VerifyOptions } from './records/record-verify.js';
import { RecordWrites } from './records/record-writes.js';

export type { ParsedCounterRule } from './records/record-access.js';
export { MAX_CREATE_BATCH } from './records/record-writes.js';

export interface CollectionContext extends RecordContext {
  /** Another collection of the same database (relationships). */
  sibling(collection: string): Collection;
}

/**
 * One collection of one routed database. The storage policy of its database type decides what
 * it keeps: runtime keeps every version (history, time travel, restore, tamper evidence); the
 * static types keep only the latest state; logs are append-only.
 *
 * Every write is one atomic index-store commit (head, version entry, collection version,
 * counters, unique claims, sync outbox); blob copies follow in the background (see `BlobSync`).
 * A write is acknowledged only after its commit, so nothing acknowledged is ever lost.
 *
 * This class is the public face: it checks the argument count and hands each call to the part
 * that does its job (records/: writes, reads, restore, verify, over one shared record access).
 */
export class Collection {
  readonly #access: RecordAccess;
  readonly #writes: RecordWrites;
  readonly #reads: RecordReads;
  readonly #restore: RecordRestore;
  readonly #verify: RecordVerify;
  readonly #digests: RecordDigests;

  constructor(ctx: CollectionContext) {
    this.#access = new RecordAccess(ctx);
    const commits = new RecordCommits(this.#access);
    this.#writes = new RecordWrites(this.#access, commits, (collection) => ctx.sibling(collection).#writes);
    this.#reads = new RecordReads(this.#access, (collection) => ctx.sibling(collection).#reads);
    this.#restore = new RecordRestore(this.#access, commits);
    this.#verify = new RecordVerify(this.#access);
    this.#digests = new RecordDigests(this.#access, this.#verify);
  }

  /** The resolved route: database, buckets and storage policy. */
  get route(): Route {
    return this.#access.route;
  }

  // ---- writes ----------------------------------------------------------------------------

  /** Creates a record with a new id at ov 0, optionally recording its lineage. */
  async create<T extends Data>(data: T, actor?: Actor, reason?: string, options?: CreateOptions, ...extra: never[]): Promise<CreateResult> {
    checkNoExtraArguments('create', 4, extra);
    return this.#writes.create(data, actor, reason, options);
  }

  /**
   * Creates up to `MAX_CREATE_BATCH` records in one index-store commit: every record is created
   * or, when anything fails, none is. Every item is checked before anything is written; an error
   * names the item (`items[3].data…`). Results are in the order of `items`.
   */
  async createMany<T extends Data>(items: readonly T[], actor?: Actor, reason?: string, ...extra: never[]): Promise<CreateResult[]> {
    checkNoExtraArguments('createMany', 3, extra);
    return this.#writes.createMany(items, actor, reason);
  }

  /** Checks a `create` call (data: shape, keys, size, required indexed properties; actor; reason) and writes nothing; throws the `ValidationError` it would. */
  checkCreate(data: unknown, actor?: unknown, reason?: unknown, ...extra: never[]): void {
    checkNoExtraArguments('checkCreate', 3, extra);
    this.#writes.checkCreate(data, actor, reason);
  }

  /** Replaces a record's data. Fails with `VersionConflictError` unless the record is at `expectedOv`. */
  async update<T extends Data>(id: string, data: T, expectedOv: number, actor?: Actor, reason?: string, ...extra: never[]): Promise<UpdateResult> {
    checkNoExtraArguments('update', 5, extra);
    return this.#writes.update(id, data, expectedOv, actor, reason);
  }

  /**
   * Deep-merges one patch (or several, in order) into a record: objects merge, arrays are
   * unioned, other values replace. Retries by itself when another writer got in first, unless
   * `expectedOv` is given. A `functionId` is kept in the record's `_system.functionIds`.
   */
  async enrich(
    id: string,
    patch: Data | Data[],
    options: { functionId?: string; actor?: Actor; reason?: string; expectedOv?: number } = {},
    ...extra: never[]
  ): Promise<UpdateResult> {
    checkNoExtraArguments('enrich', 3, extra);
    return this.#writes.enrich(id, patch, options);
  }

  /**
   * Deletes a record. Logical by default (a tombstone version; history and restore keep working);
   * hard when `logicalDelete.enabled` is false (head, versions and blobs are removed).
   */
  async delete(id: string, expectedOv: number, actor?: Actor, reason?: string, ...extra: never[]): Promise<DeleteResult> {
    checkNoExtraArguments('delete', 4, extra);
    return this.#writes.delete(id, expectedOv, actor, reason);
  }

  /**
   * An atomic upsert keyed on indexed properties: creates the record when no live record has
   * these `uniqueKeys` values, otherwise enriches the one that does. Concurrent calls with the
   * same values (in any number of processes) leave exactly one record.
   */
  async smartInsert<T extends Data>(
    data: T,
    options: { uniqueKeys: string[]; actor?: Actor; reason?: string; functionId?: string },
    ...extra: never[]
  ): Promise<SmartInsertResult> {
    checkNoExtraArguments('smartInsert', 2, extra);
    return this.#writes.smartInsert(data, options);
  }

  /**
   * Inserts a record whose properties hold entities of other collections (an order's customer):
   * each entity is upserted in its own collection by its key property (`smartInsert`), and the
   * record keeps a link `{ _ref: { collection, id } }` in its place. Entities are written first;
   * a failure after that leaves them in place, which a retry reuses.
   */
  async insertWithEntities<T extends Data>(
    data: T,
    mappings: EntityMapping[],
    actor?: Actor,
    reason?: string,
    ...extra: never[]
  ): Promise<CreateResult & { entities: Record<string, { id: string; created: boolean }> }> {
    checkNoExtraArguments('insertWithEntities', 4, extra);
    return this.#writes.insertWithEntities(data, mappings, actor, reason);
  }

  /** Reads a record and resolves the entity links `insertWithEntities` stored. */
  async getWithEntities<T extends Data = Data>(
    id: string,
    mappings: EntityMapping[],
    ...extra: never[]
  ): Promise<(XronoxRecord<T> & { entities: Record<string, XronoxRecord | null> }) | null> {
    checkNoExtraArguments('getWithEntities', 2, extra);
    return this.#reads.getWithEntities<T>(id, mappings);
  }

  // ---- reads -----------------------------------------------------------------------------

  /** The latest state of a record; `null` when it does not exist (or is deleted, unless `includeDeleted`). */
  async getLatest<T extends Data = Data>(
    id: string,
    options: { projection?: string[]; includeDeleted?: boolean } & PresentOptions = {},
    ...extra: never[]
  ): Promise<XronoxRecord<T> | null> {
    checkNoExtraArguments('getLatest', 2, extra);
    return this.#reads.getLatest<T>(id, options);
  }

  /** One version of a record, deleted or not; `null` when there is no such version. */
  async getVersion<T extends Data = Data>(id: string, ov: number, options: PresentOptions = {}, ...extra: never[]): Promise<VersionRecord<T> | null> {
    checkNoExtraArguments('getVersion', 3, extra);
    return this.#reads.getVersion<T>(id, ov, options);
  }

  /**
   * The record as it stood at `at` (ISO-8601): the newest version written at or before then.
   * `null` when it did not exist then, or was deleted (unless `includeDeleted`).
   */
  async getAsOf<T extends Data = Data>(
    id: string,
    at: string | Date,
    options: { includeDeleted?: boolean } & PresentOptions = {},
    ...extra: never[]
  ): Promise<VersionRecord<T> | null> {
    checkNoExtraArguments('getAsOf', 3, extra);
    return this.#reads.getAsOf<T>(id, at, options);
  }

  /** A record's versions, newest first, without payloads. Page with `before` = the last `ov` seen. */
  async history(id: string, options: { limit?: number; before?: number } = {}, ...extra: never[]): Promise<{ items: HistoryEntry[]; nextBefore: number | null }> {
    checkNoExtraArguments('history', 2, extra);
    return this.#reads.history(id, options);
  }

  /**
   * Every version one actor wrote in this collection, newest first, optionally within a time
   * range ("everything user-123 changed last week"). Pass a name or a typed identity.
   */
  async changesBy(
    actor: Actor,
    options: { from?: string | Date; to?: string | Date; limit?: number; pageToken?: string } = {},
    ...extra: never[]
  ): Promise<{ items: ActorChange[]; nextPageToken: string | null }> {
    checkNoExtraArguments('changesBy', 2, extra);
    return this.#reads.changesBy(actor, options);
  }

  /**
   * Lists records by indexed properties with the safe operator subset; see `core/foundation/filter.ts`.
   * Takes the query and, as the product documents write it, the read options apart
   * (`listByMeta({ filter, limit }, { presign: true })`), or everything in one object.
   */
  async listByMeta<T extends Data = Data>(query: ListOptions & PresentOptions = {}, present?: PresentOptions, ...extra: never[]): Promise<ListResult<T>> {
    checkNoExtraArguments('listByMeta', 2, extra);
    return this.#reads.listByMeta<T>(query, present);
  }

  /**
   * Answers a filter over indexed properties as the collection stood at a point in time
   * (versioned types; default now). Every page of one query answers for the same instant, so
   * concurrent writes never make a page skip or repeat a record. Unversioned types answer for
   * the present and refuse `at`.
   */
  async query<T extends Data = Data>(filter: Record<string, unknown> | undefined, options: QueryOptions & PresentOptions = {}, ...extra: never[]): Promise<QueryResult<T>> {
    checkNoExtraArguments('query', 2, extra);
    return this.#reads.query<T>(filter, options);
  }

  // ---- tamper evidence -------------------------------------------------------------------

  /**
   * Recomputes a record's hash chain from the stored versions (index or versions bucket) and
   * reports the first broken link: a version whose content, metadata or order was changed
   * behind the engine's back. A chain shortened by retention starts at its oldest kept version.
   */
  async verify(id: string, ...extra: never[]): Promise<VerifyReport> {
    checkNoExtraArguments('verify', 1, extra);
    return this.#verify.verify(id);
  }

  /**
   * `verify` for every record of the collection, streamed (memory stays flat however many
   * versions), and, when `integrity.digestKey` is set and a signed digest exists, the store
   * against the latest digest: its signature, and the Merkle root over every record's chain head
   * as of its cv (a history rewritten, truncated or re-chained since no longer matches).
   * `onFinding` and `onProgress` are called as it goes.
   */
  async verifyCollection(options?: VerifyOptions, ...extra: never[]): Promise<CollectionVerification> {
    checkNoExtraArguments('verifyCollection', 1, extra);
    const checked = checkOptions(options, ['onFinding', 'onProgress'], 'options', 'verifyCollection');
    for (const name of ['onFinding', 'onProgress'] as const) {
      if (checked[name] !== undefined && typeof checked[name] !== 'function') throw new ValidationError(`${name} must be a function`, { path: `options.${name}` });
    }
    return this.#digests.verifyCollection(checked);
  }

  /**
   * Takes a signed digest of the collection now (after verifying every chain; a tampered store
   * is refused with a `TamperError`) and writes it to the backups bucket at
   * `digests/{dbName}/{collection}/{time}.json`. Needs `integrity.digestKey`.
   */
  async writeDigest(...extra: never[]): Promise<{ key: string; digest: Digest }> {
    checkNoExtraArguments('writeDigest', 0, extra);
    return this.#digests.write();
  }

  /** The latest signed digest of the collection, or `null`. */
  async latestDigest(...extra: never[]): Promise<{ key: string; digest: Digest } | null> {
    checkNoExtraArguments('latestDigest', 0, extra);
    return this.#digests.latest();
  }

  /**
   * A proof that version `ov` of record `id` is in the history the latest signed digest commits
   * to: the version, the hash chain from it to the record's head as of the digest, and the
   * Merkle path from that head to the digest's root. Checkable offline (docs/verifiable-history.md).
   */
  async proof(id: string, ov: number, ...extra: never[]): Promise<VersionProof> {
    checkNoExtraArguments('proof', 2, extra);
    return this.#digests.proof(id, ov);
  }

  // ---- restore ---------------------------------------------------------------------------

  /**
   * Brings a record back to the state of an earlier version, as a new version (history is never
   * rewritten). Restoring to a deleted state deletes; restoring a deleted record revives it.
   */
  async restoreObject(
    id: string,
    target: { ov: number } | { at: string | Date },
    options: { actor?: Actor; reason?: string; expectedOv?: number } = {},
    ...extra: never[]
  ): Promise<RestoreResult> {
    checkNoExtraArguments('restoreObject', 3, extra);
    return this.#restore.restoreObject(id, target, options);
  }

  /**
   * Brings every record of the collection to its state at a collection version or a time, as new
   * versions: records created after the target are deleted, records deleted since are revived.
   * `dryRun` reports the changes without writing. One restore runs at a time per collection.
   */
  async restoreCollection(
    target: { cv: number } | { at: string | Date },
    options: { dryRun?: boolean; actor?: Actor; reason?: string } = {},
    ...extra: never[]
  ): Promise<CollectionRestoreReport> {
    checkNoExtraArguments('restoreCollection', 2, extra);
    return this.#restore.restoreCollection(target, options);
  }
}
