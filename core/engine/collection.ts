import { randomUUID } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import type { FilterNode } from '../contracts/filter.js';
import type {
  CommitBatch,
  HeadRow,
  IndexStore,
  Namespace,
  NewHead,
  RecordWrite,
  SortField,
  VersionOp,
  VersionRow,
} from '../contracts/index-store.js';
import { SORT_FIELDS } from '../contracts/index-store.js';
import type { BlobStore } from '../contracts/blob-store.js';
import { ConflictError, NotFoundError, StorageError, ValidationError, VersionConflictError } from '../errors.js';
import { assertName, isValidName } from '../routing/names.js';
import type { Route } from '../routing/router.js';
import { blobKeys, type BlobSync, type SyncTarget } from './blob-sync.js';
import { nextVersionTime, parseInstant } from './clock.js';
import {
  checkRequired,
  type Data,
  extractMeta,
  flattenScalars,
  normaliseData,
  parseDocument,
  project,
  type RecordDocument,
  serialiseDocument,
} from './documents.js';
import { matches, parseFilter } from './filter.js';
import { canonicalJson, deepMerge } from './merge.js';

export interface WriteResult {
  id: string;
  /** Object version: 0 at creation, +1 per write. */
  ov: number;
  /** Collection version: the collection's write counter when this write committed. */
  cv: number;
}
export interface CreateResult extends WriteResult {
  createdAt: string;
}
export interface UpdateResult extends WriteResult {
  updatedAt: string;
}
export interface DeleteResult extends WriteResult {
  deletedAt: string;
}
export interface RestoreResult extends UpdateResult {
  /** The version whose state was restored. */
  restoredFromOv: number;
}

/** A record as read back. */
export interface XronoxRecord<T extends Data = Data> {
  id: string;
  ov: number;
  cv: number;
  data: T;
  createdAt: string;
  updatedAt: string;
  deletedAt: string | null;
  deleted: boolean;
}

/** One version of a record, with who, when and why. */
export interface VersionRecord<T extends Data = Data> extends XronoxRecord<T> {
  op: VersionOp;
  at: string;
  actor: string;
  reason: string | null;
  functionId: string | null;
}

/** One line of a record's history (no payload: read it with `getVersion`). */
export interface HistoryEntry {
  ov: number;
  cv: number;
  op: VersionOp;
  at: string;
  actor: string;
  reason: string | null;
  deleted: boolean;
  /** Size of the version document in bytes. */
  size: number;
  /** Whether the payload lives in the versions bucket (true) or still in the index. */
  archived: boolean;
}

export interface ListOptions {
  filter?: Record<string, unknown>;
  /** Page size, 1 to 1000. Default 50. */
  limit?: number;
  /** Id of the last record of the previous page. */
  afterId?: string;
  /** One of `id`, `createdAt`, `updatedAt`, ascending (1) or descending (-1). Default `{ id: 1 }`. */
  sort?: Partial<Record<SortField, 1 | -1>>;
  includeDeleted?: boolean;
  projection?: string[];
}

export interface ListResult<T extends Data = Data> {
  items: XronoxRecord<T>[];
  /** Pass as `afterId` for the next page; `null` on the last page. */
  nextAfterId: string | null;
}

export interface CollectionRestoreReport {
  dryRun: boolean;
  target: { cv: number } | { at: string };
  restored: number;
  revived: number;
  deleted: number;
  unchanged: number;
  changes: Array<{ id: string; action: 'restore' | 'revive' | 'delete'; fromOv: number; targetOv: number | null }>;
}

export interface ParsedCounterRule {
  name: string;
  on: ReadonlySet<'CREATE' | 'UPDATE' | 'DELETE'>;
  scope: 'meta' | 'payload';
  filter: FilterNode | null;
}

export interface CollectionContext {
  route: Route;
  index: IndexStore;
  blob: BlobStore;
  sync: BlobSync;
  maxDocumentBytes: number;
  logicalDelete: boolean;
  counterRules: readonly ParsedCounterRule[];
}

const DEFAULT_ACTOR = 'anonymous';
const MAX_RETRIES = 100;
const MAX_PAGE = 1000;
const RESTORE_BATCH = 100;
const RESTORE_LEASE_MS = 60_000;

/**
 * One collection of one routed database. The storage policy of its database type decides what
 * it keeps: runtime keeps every version (history, time travel, restore); the static types keep
 * only the latest state; logs are append-only.
 *
 * Every write is one atomic index-store commit (head, version entry, collection version,
 * counters, sync outbox); blob copies follow in the background (see `BlobSync`). A write is
 * acknowledged only after its commit, so nothing acknowledged is ever lost.
 */
export class Collection {
  readonly #ctx: CollectionContext;
  readonly #ns: Namespace;
  readonly #syncTarget: SyncTarget;

  constructor(ctx: CollectionContext) {
    this.#ctx = ctx;
    this.#ns = { dbName: ctx.route.dbName, collection: ctx.route.collection };
    this.#syncTarget = {
      index: ctx.index,
      blob: ctx.blob,
      dbName: ctx.route.dbName,
      versioned: ctx.route.policy.versioned,
      blobs: ctx.route.blobs,
    };
  }

  /** The resolved route: database, buckets and storage policy. */
  get route(): Route {
    return this.#ctx.route;
  }

  /** Creates a record with a new id at ov 0. */
  async create<T extends Data>(data: T, actor?: string, reason?: string): Promise<CreateResult> {
    const who = checkActor(actor, reason);
    const { data: clean } = normaliseData(data, this.#ctx.maxDocumentBytes);
    checkRequired(clean, this.#ctx.route.collectionMap, this.#ctx.route.collection);
    const id = uuidv7();
    const at = nextVersionTime(null);
    const write = this.#write(id, null, { id, ov: 0, op: 'create', at, ...who, deleted: false, createdAt: at, data: clean });
    const cv = await this.#commitOne(write, 'CREATE', clean, null);
    return { id, ov: 0, cv, createdAt: at };
  }

  /** Replaces a record's data. Fails with `VersionConflictError` unless the record is at `expectedOv`. */
  async update<T extends Data>(id: string, data: T, expectedOv: number, actor?: string, reason?: string): Promise<UpdateResult> {
    this.#refuseAppendOnly('update');
    assertName('id', id);
    checkOv(expectedOv, 'expectedOv');
    const who = checkActor(actor, reason);
    const { data: clean } = normaliseData(data, this.#ctx.maxDocumentBytes);
    checkRequired(clean, this.#ctx.route.collectionMap, this.#ctx.route.collection);
    const head = await this.#liveHead(id);
    if (head.ov !== expectedOv) throw new VersionConflictError(id, expectedOv, head.ov);
    const doc = parseDocument(head.body);
    const at = nextVersionTime(head.updatedAt);
    const write = this.#write(id, head, { id, ov: head.ov + 1, op: 'update', at, ...who, deleted: false, createdAt: doc.createdAt, data: clean });
    const cv = await this.#commitOne(write, 'UPDATE', clean, expectedOv);
    return { id, ov: head.ov + 1, cv, updatedAt: at };
  }

  /**
   * Deep-merges one patch (or several, in order) into a record: objects merge, arrays are
   * unioned, other values replace. Retries by itself when another writer got in first, unless
   * `expectedOv` is given.
   */
  async enrich(
    id: string,
    patch: Data | Data[],
    options: { functionId?: string; actor?: string; reason?: string; expectedOv?: number } = {},
  ): Promise<UpdateResult> {
    this.#refuseAppendOnly('enrich');
    assertName('id', id);
    const who = checkActor(options.actor, options.reason);
    if (options.functionId !== undefined && (typeof options.functionId !== 'string' || options.functionId.length === 0 || options.functionId.length > 256)) {
      throw new ValidationError('functionId must be a non-empty string of at most 256 characters', { path: 'functionId' });
    }
    if (options.expectedOv !== undefined) checkOv(options.expectedOv, 'expectedOv');
    const patches = (Array.isArray(patch) ? patch : [patch]).map((p, i) => normaliseData(p, this.#ctx.maxDocumentBytes, Array.isArray(patch) ? `patch[${i}]` : 'patch').data);
    if (patches.length === 0) throw new ValidationError('enrich needs at least one patch', { path: 'patch' });
    return this.#retrying(options.expectedOv, async () => {
      const head = await this.#liveHead(id);
      if (options.expectedOv !== undefined && head.ov !== options.expectedOv) throw new VersionConflictError(id, options.expectedOv, head.ov);
      const doc = parseDocument(head.body);
      const merged = patches.reduce((acc, p) => deepMerge(acc, p), doc.data);
      const { data: clean } = normaliseData(merged, this.#ctx.maxDocumentBytes);
      checkRequired(clean, this.#ctx.route.collectionMap, this.#ctx.route.collection);
      const at = nextVersionTime(head.updatedAt);
      const next: RecordDocument = { id, ov: head.ov + 1, op: 'enrich', at, ...who, deleted: false, createdAt: doc.createdAt, data: clean };
      if (options.functionId !== undefined) next.functionId = options.functionId;
      const cv = await this.#commitOne(this.#write(id, head, next), 'UPDATE', clean, head.ov);
      return { id, ov: head.ov + 1, cv, updatedAt: at };
    });
  }

  /**
   * Deletes a record. Logical by default (a tombstone version; history and restore keep working);
   * hard when `logicalDelete.enabled` is false (head, versions and blobs are removed).
   */
  async delete(id: string, expectedOv: number, actor?: string, reason?: string): Promise<DeleteResult> {
    this.#refuseAppendOnly('delete');
    assertName('id', id);
    checkOv(expectedOv, 'expectedOv');
    const who = checkActor(actor, reason);
    const head = await this.#liveHead(id);
    if (head.ov !== expectedOv) throw new VersionConflictError(id, expectedOv, head.ov);
    const doc = parseDocument(head.body);
    const at = nextVersionTime(head.updatedAt);
    const write: RecordWrite = this.#ctx.logicalDelete
      ? this.#write(id, head, { id, ov: head.ov + 1, op: 'delete', at, ...who, deleted: true, createdAt: doc.createdAt, data: doc.data })
      : { id, expectedOv: head.ov, head: null };
    const cv = await this.#commitOne(write, 'DELETE', doc.data, expectedOv);
    return { id, ov: head.ov + 1, cv, deletedAt: at };
  }

  /** The latest state of a record; `null` when it does not exist (or is deleted, unless `includeDeleted`). */
  async getLatest<T extends Data = Data>(id: string, options: { projection?: string[]; includeDeleted?: boolean } = {}): Promise<XronoxRecord<T> | null> {
    assertName('id', id);
    const projection = checkProjection(options.projection);
    const head = await this.#ctx.index.getHead(this.#ns, id);
    if (!head || (head.deleted && !options.includeDeleted)) return null;
    return toRecord<T>(head.cv, parseDocument(head.body), head.deletedAt, projection);
  }

  /** One version of a record, deleted or not; `null` when there is no such version. */
  async getVersion<T extends Data = Data>(id: string, ov: number): Promise<VersionRecord<T> | null> {
    this.#requireVersioned('getVersion');
    assertName('id', id);
    checkOv(ov, 'ov');
    const row = await this.#ctx.index.getVersion(this.#ns, id, ov);
    return row ? this.#versionRecord<T>(row) : null;
  }

  /**
   * The record as it stood at `at` (ISO-8601): the newest version written at or before then.
   * `null` when it did not exist then, or was deleted (unless `includeDeleted`).
   */
  async getAsOf<T extends Data = Data>(id: string, at: string | Date, options: { includeDeleted?: boolean } = {}): Promise<VersionRecord<T> | null> {
    this.#requireVersioned('getAsOf');
    assertName('id', id);
    const instant = parseInstant(at);
    const row = await this.#ctx.index.findVersionAt(this.#ns, id, { at: instant });
    if (!row || (row.deleted && !options.includeDeleted)) return null;
    return this.#versionRecord<T>(row);
  }

  /** A record's versions, newest first, without payloads. Page with `before` = the last `ov` seen. */
  async history(id: string, options: { limit?: number; before?: number } = {}): Promise<{ items: HistoryEntry[]; nextBefore: number | null }> {
    this.#requireVersioned('history');
    assertName('id', id);
    const limit = checkLimit(options.limit);
    if (options.before !== undefined) checkOv(options.before, 'before');
    const rows = await this.#ctx.index.listVersions(this.#ns, id, { limit: limit + 1, ...(options.before !== undefined ? { beforeOv: options.before } : {}) });
    const items = rows.slice(0, limit).map((r) => ({
      ov: r.ov,
      cv: r.cv,
      op: r.op,
      at: r.at,
      actor: r.actor,
      reason: r.reason,
      deleted: r.deleted,
      size: r.size,
      archived: r.archived,
    }));
    return { items, nextBefore: rows.length > limit ? (items[items.length - 1]?.ov ?? null) : null };
  }

  /** Lists records by indexed properties with the safe operator subset; see `core/engine/filter.ts`. */
  async listByMeta<T extends Data = Data>(options: ListOptions = {}): Promise<ListResult<T>> {
    if (typeof options !== 'object' || options === null) throw new ValidationError('listByMeta takes an options object');
    const filter = parseFilter(options.filter, (field) => this.#isFilterable(field));
    const limit = checkLimit(options.limit);
    const sort = checkSort(options.sort);
    const projection = checkProjection(options.projection);
    let after: { value: string; id: string } | undefined;
    if (options.afterId !== undefined) {
      const afterId = assertName('id', options.afterId, 'afterId');
      if (sort.field === 'id') after = { value: afterId, id: afterId };
      else {
        const head = await this.#ctx.index.getHead(this.#ns, afterId);
        if (!head) throw new ValidationError(`afterId "${afterId}" is not a record of this collection`, { path: 'afterId' });
        after = { value: sort.field === 'createdAt' ? head.createdAt : head.updatedAt, id: afterId };
      }
    }
    const rows = await this.#ctx.index.listHeads(this.#ns, {
      filter,
      includeDeleted: options.includeDeleted === true,
      sort,
      limit: limit + 1,
      ...(after ? { after } : {}),
    });
    const items = rows.slice(0, limit).map((h) => toRecord<T>(h.cv, parseDocument(h.body), h.deletedAt, projection));
    return { items, nextAfterId: rows.length > limit ? (items[items.length - 1]?.id ?? null) : null };
  }

  /**
   * Brings a record back to the state of an earlier version, as a new version (history is never
   * rewritten). Restoring to a deleted state deletes; restoring a deleted record revives it.
   */
  async restoreObject(
    id: string,
    target: { ov: number } | { at: string | Date },
    options: { actor?: string; reason?: string; expectedOv?: number } = {},
  ): Promise<RestoreResult> {
    this.#requireVersioned('restoreObject');
    assertName('id', id);
    const who = checkActor(options.actor, options.reason);
    if (options.expectedOv !== undefined) checkOv(options.expectedOv, 'expectedOv');
    const row = await this.#findTarget(id, target);
    if (!row) throw new NotFoundError(`Record ${id} has no version at ${describeTarget(target)} in ${this.#ctx.route.label}`);
    const targetDoc = await this.#readVersionDoc(row);
    return this.#retrying(options.expectedOv, async () => {
      const head = await this.#ctx.index.getHead(this.#ns, id);
      if (!head) throw new NotFoundError(`Record ${id} does not exist in ${this.#ctx.route.label}`);
      if (options.expectedOv !== undefined && head.ov !== options.expectedOv) throw new VersionConflictError(id, options.expectedOv, head.ov);
      const at = nextVersionTime(head.updatedAt);
      const write = this.#write(id, head, { id, ov: head.ov + 1, op: 'restore', at, ...who, deleted: targetDoc.deleted, createdAt: targetDoc.createdAt, data: targetDoc.data });
      const cv = await this.#commitOne(write, 'UPDATE', targetDoc.data, head.ov, targetDoc.deleted ? 'deleted' : 'restored');
      return { id, ov: head.ov + 1, cv, updatedAt: at, restoredFromOv: row.ov };
    });
  }

  /**
   * Brings every record of the collection to its state at a collection version or a time, as new
   * versions: records created after the target are deleted, records deleted since are revived.
   * `dryRun` reports the changes without writing. One restore runs at a time per collection.
   */
  async restoreCollection(
    target: { cv: number } | { at: string | Date },
    options: { dryRun?: boolean; actor?: string; reason?: string } = {},
  ): Promise<CollectionRestoreReport> {
    this.#requireVersioned('restoreCollection');
    const who = checkActor(options.actor, options.reason);
    const point = parsePoint(target);
    const dryRun = options.dryRun === true;
    const report: CollectionRestoreReport = { dryRun, target: point, restored: 0, revived: 0, deleted: 0, unchanged: 0, changes: [] };
    const owner = randomUUID();
    if (!dryRun && !(await this.#ctx.index.acquireLock(this.#ns, 'restore-collection', owner, RESTORE_LEASE_MS))) {
      throw new ConflictError(`Another collection restore of ${this.#ctx.route.label} is running`);
    }
    try {
      let afterId: string | undefined;
      for (;;) {
        const ids = await this.#ctx.index.listHeadIds(this.#ns, { limit: RESTORE_BATCH, ...(afterId ? { afterId } : {}) });
        if (ids.length === 0) break;
        afterId = ids[ids.length - 1];
        if (!dryRun && !(await this.#ctx.index.acquireLock(this.#ns, 'restore-collection', owner, RESTORE_LEASE_MS))) {
          // The lease expired and another restore took over: stop rather than interleave with it.
          throw new ConflictError(`The collection restore of ${this.#ctx.route.label} lost its lock to another restore`);
        }
        await this.#retrying(undefined, () => this.#restoreBatch(ids, point, who, dryRun, report));
      }
    } finally {
      if (!dryRun) await this.#ctx.index.releaseLock(this.#ns, 'restore-collection', owner);
    }
    return report;
  }

  async #restoreBatch(
    ids: readonly string[],
    point: { cv: number } | { at: string },
    who: { actor: string; reason: string | null },
    dryRun: boolean,
    report: CollectionRestoreReport,
  ): Promise<void> {
    const writes: RecordWrite[] = [];
    const planned: CollectionRestoreReport['changes'] = [];
    let unchanged = 0;
    const counterEvents: Array<{ data: Data; counter: 'restored' | 'deleted' }> = [];
    for (const id of ids) {
      const head = await this.#ctx.index.getHead(this.#ns, id);
      if (!head) continue;
      const row = await this.#ctx.index.findVersionAt(this.#ns, id, point);
      const current = parseDocument(head.body);
      const at = nextVersionTime(head.updatedAt);
      if (!row) {
        if (head.deleted) unchanged++;
        else {
          planned.push({ id, action: 'delete', fromOv: head.ov, targetOv: null });
          writes.push(this.#write(id, head, { id, ov: head.ov + 1, op: 'restore', at, ...who, deleted: true, createdAt: current.createdAt, data: current.data }));
          counterEvents.push({ data: current.data, counter: 'deleted' });
        }
        continue;
      }
      const targetDoc = await this.#readVersionDoc(row);
      if (targetDoc.deleted === head.deleted && canonicalJson(targetDoc.data) === canonicalJson(current.data)) {
        unchanged++;
        continue;
      }
      const action = head.deleted && !targetDoc.deleted ? 'revive' : targetDoc.deleted ? 'delete' : 'restore';
      planned.push({ id, action, fromOv: head.ov, targetOv: row.ov });
      writes.push(this.#write(id, head, { id, ov: head.ov + 1, op: 'restore', at, ...who, deleted: targetDoc.deleted, createdAt: targetDoc.createdAt, data: targetDoc.data }));
      counterEvents.push({ data: targetDoc.data, counter: targetDoc.deleted ? 'deleted' : 'restored' });
    }
    if (!dryRun && writes.length > 0) {
      const deltas: Record<string, number> = {};
      for (const e of counterEvents) this.#countInto(deltas, 'UPDATE', e.data, e.counter);
      const result = await this.#ctx.index.commit(this.#ns, { writes, counters: [this.#counterDelta(deltas)] });
      if (!result.ok) throw new VersionConflictError(result.id, result.expectedOv, result.actualOv);
      for (const w of writes) await this.#ctx.sync.schedule(this.#syncTarget, this.#ns, w.id);
    }
    report.unchanged += unchanged;
    for (const change of planned) {
      report.changes.push(change);
      if (change.action === 'revive') report.revived++;
      else if (change.action === 'delete') report.deleted++;
      else report.restored++;
    }
  }

  // ---- internals -------------------------------------------------------------------------

  #write(id: string, head: HeadRow | null, doc: RecordDocument): RecordWrite {
    const body = serialiseDocument(doc);
    const newHead: NewHead = {
      ov: doc.ov,
      deleted: doc.deleted,
      createdAt: doc.createdAt,
      updatedAt: doc.at,
      deletedAt: doc.deleted ? (head?.deleted ? head.deletedAt : doc.at) : null,
      meta: extractMeta(doc.data, this.#ctx.route.collectionMap),
      body,
    };
    const write: RecordWrite = { id, expectedOv: head ? head.ov : null, head: newHead };
    if (this.#ctx.route.policy.versioned) {
      write.version = { op: doc.op, at: doc.at, actor: doc.actor, reason: doc.reason, deleted: doc.deleted, body };
    }
    return write;
  }

  async #commitOne(
    write: RecordWrite,
    event: 'CREATE' | 'UPDATE' | 'DELETE',
    data: Data,
    expectedOv: number | null,
    counter?: 'restored' | 'deleted',
  ): Promise<number> {
    const deltas: Record<string, number> = {};
    this.#countInto(deltas, event, data, counter);
    const batch: CommitBatch = { writes: [write], counters: [this.#counterDelta(deltas)] };
    const result = await this.#ctx.index.commit(this.#ns, batch);
    if (!result.ok) throw new VersionConflictError(write.id, expectedOv, result.actualOv);
    await this.#ctx.sync.schedule(this.#syncTarget, this.#ns, write.id);
    return result.cvs[0]!;
  }

  #countInto(deltas: Record<string, number>, event: 'CREATE' | 'UPDATE' | 'DELETE', data: Data, counter?: 'restored' | 'deleted'): void {
    const base = counter ?? (event === 'CREATE' ? 'created' : event === 'UPDATE' ? 'updated' : 'deleted');
    deltas[base] = (deltas[base] ?? 0) + 1;
    const map = this.#ctx.route.collectionMap;
    for (const rule of this.#ctx.counterRules) {
      if (!rule.on.has(event)) continue;
      const subject = rule.scope === 'meta' ? extractMeta(data, map) : flattenScalars(data);
      if (matches(rule.filter, subject)) deltas[rule.name] = (deltas[rule.name] ?? 0) + 1;
    }
  }

  #counterDelta(deltas: Record<string, number>) {
    return { dbName: this.#ctx.route.analyticsDbName, collection: this.#ctx.route.collection, deltas };
  }

  /** Runs `attempt`, retrying on version conflicts when the caller gave no `expectedOv`. */
  async #retrying<R>(expectedOv: number | undefined, attempt: () => Promise<R>): Promise<R> {
    for (let i = 0; ; i++) {
      try {
        return await attempt();
      } catch (err) {
        if (!(err instanceof VersionConflictError) || expectedOv !== undefined || i >= MAX_RETRIES) throw err;
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(2 ** i, 50)));
      }
    }
  }

  async #liveHead(id: string): Promise<HeadRow> {
    const head = await this.#ctx.index.getHead(this.#ns, id);
    if (!head || head.deleted) {
      throw new NotFoundError(`Record ${id} does not exist in ${this.#ctx.route.label}${head?.deleted ? ' (it was deleted)' : ''}`);
    }
    return head;
  }

  async #findTarget(id: string, target: { ov: number } | { at: string | Date }): Promise<VersionRow | null> {
    if (typeof target !== 'object' || target === null) throw new ValidationError('The restore target must be { ov } or { at }');
    if ('ov' in target) {
      checkOv(target.ov, 'ov');
      return this.#ctx.index.getVersion(this.#ns, id, target.ov);
    }
    if ('at' in target) return this.#ctx.index.findVersionAt(this.#ns, id, { at: parseInstant(target.at) });
    throw new ValidationError('The restore target must be { ov } or { at }');
  }

  async #readVersionDoc(row: VersionRow): Promise<RecordDocument> {
    if (row.body !== null) return parseDocument(row.body);
    const loc = this.#ctx.route.blobs.versions;
    const bytes = loc ? await this.#ctx.blob.get(loc.bucket, blobKeys.version(loc, this.#ctx.route.collection, row.id, row.ov)) : null;
    if (!bytes) {
      throw new StorageError(this.#ctx.blob.name, 'get', undefined, `Version ${row.ov} of ${row.id} is archived but its object is missing from the versions bucket`);
    }
    return parseDocument(Buffer.from(bytes).toString('utf8'));
  }

  async #versionRecord<T extends Data>(row: VersionRow): Promise<VersionRecord<T>> {
    const doc = await this.#readVersionDoc(row);
    return {
      ...toRecord<T>(row.cv, doc, doc.deleted ? doc.at : null, undefined),
      op: doc.op,
      at: doc.at,
      actor: doc.actor,
      reason: doc.reason,
      functionId: doc.functionId ?? null,
    };
  }

  #isFilterable(field: string): boolean {
    const map = this.#ctx.route.collectionMap;
    if (!map || map.indexedProps.length === 0) return isValidName('property', field) && !field.includes('.');
    return map.indexedProps.includes(field);
  }

  #requireVersioned(method: string): void {
    if (!this.#ctx.route.policy.versioned) {
      throw new ValidationError(
        `${method} needs version history, which ${this.#ctx.route.databaseType} does not keep${this.#ctx.route.databaseType === 'runtime' ? ' (versioning.enabled is false)' : ''}`,
      );
    }
  }

  #refuseAppendOnly(method: string): void {
    if (this.#ctx.route.policy.appendOnly) {
      throw new ValidationError(`${this.#ctx.route.databaseType} is append-only: ${method} is not allowed; create a new record instead`);
    }
  }
}

function toRecord<T extends Data>(cv: number, doc: RecordDocument, deletedAt: string | null, projection: readonly string[] | undefined): XronoxRecord<T> {
  return {
    id: doc.id,
    ov: doc.ov,
    cv,
    data: project(doc.data, projection) as T,
    createdAt: doc.createdAt,
    updatedAt: doc.at,
    deletedAt: doc.deleted ? deletedAt : null,
    deleted: doc.deleted,
  };
}

function checkActor(actor: unknown, reason: unknown): { actor: string; reason: string | null } {
  if (actor !== undefined && (typeof actor !== 'string' || actor.length === 0 || actor.length > 256)) {
    throw new ValidationError('actor must be a non-empty string of at most 256 characters', { path: 'actor' });
  }
  if (reason !== undefined && reason !== null && (typeof reason !== 'string' || reason.length > 1024)) {
    throw new ValidationError('reason must be a string of at most 1024 characters', { path: 'reason' });
  }
  return { actor: (actor as string | undefined) ?? DEFAULT_ACTOR, reason: (reason as string | null | undefined) ?? null };
}

function checkOv(value: unknown, label: string): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new ValidationError(`${label} must be a whole number of at least 0`, { path: label });
  }
}

function checkLimit(limit: unknown): number {
  if (limit === undefined) return 50;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) {
    throw new ValidationError(`limit must be a whole number from 1 to ${MAX_PAGE}`, { path: 'limit' });
  }
  return limit;
}

function checkSort(sort: unknown): { field: SortField; direction: 1 | -1 } {
  if (sort === undefined) return { field: 'id', direction: 1 };
  const entries = typeof sort === 'object' && sort !== null && !Array.isArray(sort) ? Object.entries(sort) : [];
  const [field, direction] = entries[0] ?? [];
  if (entries.length !== 1 || !SORT_FIELDS.includes(field as SortField) || (direction !== 1 && direction !== -1)) {
    throw new ValidationError(`sort must be one of ${SORT_FIELDS.map((f) => `{ ${f}: 1 | -1 }`).join(', ')}`, { path: 'sort' });
  }
  return { field: field as SortField, direction };
}

function checkProjection(projection: unknown): string[] | undefined {
  if (projection === undefined) return undefined;
  if (!Array.isArray(projection) || projection.length > 64 || !projection.every((p) => isValidName('property', p))) {
    throw new ValidationError('projection must be a list of at most 64 property paths', { path: 'projection' });
  }
  return projection as string[];
}

function parsePoint(target: unknown): { cv: number } | { at: string } {
  if (typeof target === 'object' && target !== null) {
    if ('cv' in target) {
      checkOv((target as { cv: unknown }).cv, 'cv');
      return { cv: (target as { cv: number }).cv };
    }
    if ('at' in target) return { at: parseInstant((target as { at: unknown }).at) };
  }
  throw new ValidationError('The restore target must be { cv } or { at }');
}

function describeTarget(target: { ov: number } | { at: string | Date }): string {
  return 'ov' in target ? `ov ${target.ov}` : `time ${String(target.at instanceof Date ? target.at.toISOString() : target.at)}`;
}
