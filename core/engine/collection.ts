import { createHash, randomUUID } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import type { BlobStore } from '../contracts/blob-store.js';
import type { FilterNode } from '../foundation/filter-tree.js';
import type { Actor, CommitBatch, CounterDelta, CounterWindowGranularity, HeadRow, HistoryRow, IndexStore, Namespace, NewHead, PendingBlob, RecordWrite, UploadRef, VersionRow } from '../contracts/index-store.js';
import { AppendOnlyError, ConflictError, NotFoundError, StorageError, ValidationError, VersionConflictError, type XronoxError } from '../errors.js';
import { assertName, isValidName } from '../foundation/names.js';
import type { Route } from '../routing/router.js';
import {
  checkLimit,
  checkNoExtraArguments,
  checkOptions,
  checkOv,
  checkProjection,
  checkReason,
  checkSort,
  decodePageToken,
  encodePageToken,
  parsePoint,
} from './arguments.js';
import { blobKeys, type BlobSync, type SyncTarget } from './blob-sync.js';
import { nextVersionTime, nowInstant, parseAsOf, parseInstant, untilClockReaches } from '../foundation/clock.js';
import { windowKeysAt } from './counter-windows.js';
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
import {
  checkRequired,
  type Data,
  extractMeta,
  flattenScalars,
  normaliseData,
  parseDocument,
  project,
  readPath,
  type RecordDocument,
  serialiseDocument,
} from './documents.js';
import { isPlainObject, matches, parseFilter } from '../foundation/filter.js';
import { type CollectionVerifyReport, versionHash, type VerifyReport } from './hash-chain.js';
import { actorId, checkActor, checkLineage, isSystemField, type SystemInfo, systemMeta } from './lineage.js';
import { canonicalJson, deepMerge } from './merge.js';
import { checkTtl, ContentOffload, type PresentOptions } from './content.js';
import { UploadSession } from './content-uploads.js';
import { headDocument } from './offloaded.js';

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
  maxContentBytes: number;
  /** `limits.maxUploadSeconds` in ms: how old an upload intent must be before a cleanup may take it. */
  uploadStaleMs: number;
  /** `fallback.enabled`: queue content the blob store refuses instead of failing the write. */
  queueBlobsOnFailure: boolean;
  logicalDelete: boolean;
  /** `jobs.archive.mode: 'deferred'`: the blob sync leaves versions to the archive job. */
  deferVersions?: boolean;
  counterRules: readonly ParsedCounterRule[];
  /** Granularities of the counter windows kept (`retention.counters`); none means totals only. */
  counterWindows?: readonly CounterWindowGranularity[];
  /** Another collection of the same database (relationships). */
  sibling(collection: string): Collection;
}

const DEFAULT_ACTOR = 'anonymous';
/** The keys of `ListOptions` (`listByMeta`'s query) and of `PresentOptions` (how content is returned). */
const LIST_KEYS = ['filter', 'limit', 'afterId', 'sort', 'includeDeleted', 'projection'] as const;
const PRESENT_KEYS = ['presign', 'ttlSeconds'] as const;
const MAX_RETRIES = 100;
/** The most records one `createMany` commits (one index-store transaction). */
export const MAX_CREATE_BATCH = 1000;
const RESTORE_BATCH = 100;
const RESTORE_LEASE_MS = 60_000;
const VERIFY_PAGE = 500;

type Who = { actor: Actor; reason: string | null };

/**
 * One collection of one routed database. The storage policy of its database type decides what
 * it keeps: runtime keeps every version (history, time travel, restore, tamper evidence); the
 * static types keep only the latest state; logs are append-only.
 *
 * Every write is one atomic index-store commit (head, version entry, collection version,
 * counters, unique claims, sync outbox); blob copies follow in the background (see `BlobSync`).
 * A write is acknowledged only after its commit, so nothing acknowledged is ever lost.
 */
export class Collection {
  readonly #ctx: CollectionContext;
  readonly #ns: Namespace;
  readonly #syncTarget: SyncTarget;
  readonly #content: ContentOffload;

  constructor(ctx: CollectionContext) {
    this.#ctx = ctx;
    this.#content = new ContentOffload(ctx.route, ctx.blob, ctx.maxContentBytes, {
      queueOnFailure: ctx.queueBlobsOnFailure,
      pending: (bucket, key) => ctx.index.getPendingBlob(this.#ns, bucket, key),
    });
    this.#ns = { dbName: ctx.route.dbName, collection: ctx.route.collection };
    this.#syncTarget = {
      index: ctx.index,
      blob: ctx.blob,
      dbName: ctx.route.dbName,
      versioned: ctx.route.policy.versioned,
      appendOnly: ctx.route.policy.appendOnly,
      blobs: ctx.route.blobs,
      deferVersions: ctx.deferVersions === true,
    };
  }

  /** The resolved route: database, buckets and storage policy. */
  get route(): Route {
    return this.#ctx.route;
  }

  // ---- writes ----------------------------------------------------------------------------

  /** Creates a record with a new id at ov 0, optionally recording its lineage. */
  async create<T extends Data>(data: T, actor?: Actor, reason?: string, options?: CreateOptions, ...extra: never[]): Promise<CreateResult> {
    checkNoExtraArguments('create', 4, extra);
    const who = this.#who(actor, reason);
    const lineage = checkLineage(options, this.#ctx.route.collection);
    const clean = this.#cleanData(data);
    const created = await this.#uploading((session) => this.#createRecord(clean, who, lineage, [], session));
    // Without claims a create cannot lose a race: its id is new.
    if (!created.ok) throw new ConflictError(`Could not create a record in ${this.#ctx.route.label}`);
    return { id: created.id, ov: 0, cv: created.cv, createdAt: created.at };
  }

  /**
   * Creates up to `MAX_CREATE_BATCH` records in one index-store commit: every record is created
   * or, when anything fails, none is. Every item is checked before anything is written; an error
   * names the item (`items[3].data…`). Results are in the order of `items`.
   */
  async createMany<T extends Data>(items: readonly T[], actor?: Actor, reason?: string, ...extra: never[]): Promise<CreateResult[]> {
    checkNoExtraArguments('createMany', 3, extra);
    if (!Array.isArray(items) || items.length === 0 || items.length > MAX_CREATE_BATCH) {
      throw new ValidationError(`createMany takes an array of 1 to ${MAX_CREATE_BATCH} records`, { path: 'items' });
    }
    const who = this.#who(actor, reason);
    // Every item, its content included, is checked before anything is uploaded or committed.
    const prepared = items.map((data, i) => {
      const label = `items[${i}]`;
      const id = uuidv7();
      try {
        return { id, ...this.#prepareContent(this.#cleanData(data, label), id, null) };
      } catch (err) {
        if (!(err instanceof ValidationError) || err.message.startsWith(label)) throw err;
        throw new ValidationError(`${label}: ${err.message}`, { path: err.path === undefined ? label : err.path.replace(/^data\b/, label), cause: err });
      }
    });
    // Content goes up under upload intents; when the batch does not commit, the session removes
    // what it uploaded (or, if the blob store failed, leaves that to the sweep: content-uploads.ts).
    return this.#uploading(async (session) => {
      const records: Array<{ id: string; at: string; write: RecordWrite }> = [];
      const deltas: Record<string, number> = {};
      for (const p of prepared) {
        const stored = await this.#content.upload(p.id, p.uploads, session);
        records.push(this.#newRecordWrite(p.id, p.data, stored, who, {}, undefined));
        this.#countInto(deltas, 'CREATE', p.data);
      }
      const writes = records.map((r) => r.write);
      const result = await this.#ctx.index.commit(this.#ns, { writes, counters: [this.#counterDelta(deltas)] });
      // New ids and no claims: only a broken store or an intent taken as stale fails it.
      if (!result.ok) throw await this.#commitFailed(result, writes, session);
      for (const w of writes) session.committed(w.uploads ?? []);
      for (const r of records) await this.#ctx.sync.schedule(this.#syncTarget, this.#ns, r.id);
      return records.map((r, i) => ({ id: r.id, ov: 0, cv: result.cvs[i]!, createdAt: r.at }));
    });
  }

  /** Checks a `create` call (data: shape, keys, size, required indexed properties; actor; reason) and writes nothing; throws the `ValidationError` it would. */
  checkCreate(data: unknown, actor?: unknown, reason?: unknown, ...extra: never[]): void {
    checkNoExtraArguments('checkCreate', 3, extra);
    this.#who(actor, reason);
    this.#cleanData(data);
  }

  /** Replaces a record's data. Fails with `VersionConflictError` unless the record is at `expectedOv`. */
  async update<T extends Data>(id: string, data: T, expectedOv: number, actor?: Actor, reason?: string, ...extra: never[]): Promise<UpdateResult> {
    checkNoExtraArguments('update', 5, extra);
    this.#refuseAppendOnly('update');
    assertName('id', id);
    checkOv(expectedOv, 'expectedOv');
    const who = this.#who(actor, reason);
    const clean = this.#cleanData(data);
    const head = await this.#liveHead(id);
    if (head.ov !== expectedOv) throw new VersionConflictError(id, expectedOv, head.ov);
    const doc = await this.#headDoc(head);
    return this.#uploading(async (session) => {
      const stored = await this.#storeContent(clean, id, doc.data, session);
      const at = nextVersionTime(head.updatedAt);
      const next = this.#nextDoc(doc, head, { op: 'update', at, ...who, deleted: false, data: stored.data });
      const cv = await this.#commitOne(withStored(this.#write(id, head, next), stored), 'UPDATE', stored.data, expectedOv, undefined, session);
      return { id, ov: next.ov, cv, updatedAt: at };
    });
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
    this.#refuseAppendOnly('enrich');
    assertName('id', id);
    checkOptions(options, ['functionId', 'actor', 'reason', 'expectedOv'], 'options', 'enrich');
    const who = this.#who(options.actor, options.reason);
    const functionId = checkFunctionId(options.functionId);
    if (options.expectedOv !== undefined) checkOv(options.expectedOv, 'expectedOv');
    const patches = this.#cleanPatches(patch);
    return this.#uploading((session) =>
      this.#retrying(options.expectedOv, async () => {
        const head = await this.#liveHead(id);
        if (options.expectedOv !== undefined && head.ov !== options.expectedOv) throw new VersionConflictError(id, options.expectedOv, head.ov);
        return this.#enrichHead(head, patches, who, functionId, session);
      }),
    );
  }

  /**
   * Deletes a record. Logical by default (a tombstone version; history and restore keep working);
   * hard when `logicalDelete.enabled` is false (head, versions and blobs are removed).
   */
  async delete(id: string, expectedOv: number, actor?: Actor, reason?: string, ...extra: never[]): Promise<DeleteResult> {
    checkNoExtraArguments('delete', 4, extra);
    this.#refuseAppendOnly('delete');
    assertName('id', id);
    checkOv(expectedOv, 'expectedOv');
    const who = this.#who(actor, reason);
    const head = await this.#liveHead(id);
    if (head.ov !== expectedOv) throw new VersionConflictError(id, expectedOv, head.ov);
    const doc = await this.#headDoc(head);
    const at = nextVersionTime(head.updatedAt);
    const write: RecordWrite = this.#ctx.logicalDelete
      ? this.#write(id, head, this.#nextDoc(doc, head, { op: 'delete', at, ...who, deleted: true, data: doc.data }))
      : { id, expectedOv: head.ov, head: null };
    const cv = await this.#commitOne(write, 'DELETE', doc.data, expectedOv);
    return { id, ov: head.ov + 1, cv, deletedAt: at };
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
    this.#refuseAppendOnly('smartInsert');
    if (!isPlainObject(options)) throw new ValidationError('smartInsert takes { uniqueKeys, actor?, reason?, functionId? }', { path: 'options' });
    checkOptions(options, ['uniqueKeys', 'actor', 'reason', 'functionId'], 'options', 'smartInsert');
    const who = this.#who(options.actor, options.reason);
    const functionId = checkFunctionId(options.functionId);
    const clean = this.#cleanData(data);
    const { filter, claimKey, keys } = this.#uniqueKey(clean, options.uniqueKeys);
    return this.#uploading((session) => this.#smartInsert(clean, who, functionId, filter, claimKey, keys, session));
  }

  async #smartInsert(
    clean: Data,
    who: Who,
    functionId: string | undefined,
    filter: FilterNode,
    claimKey: string,
    keys: string[],
    session: UploadSession,
  ): Promise<SmartInsertResult> {
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const [existing] = await this.#ctx.index.listHeads(this.#ns, { filter, includeDeleted: false, sort: { field: 'id', direction: 1 }, limit: 1 });
      if (existing) {
        try {
          const r = await this.#enrichHead(existing, [clean], who, functionId, session);
          return { id: r.id, ov: r.ov, cv: r.cv, created: false, at: r.updatedAt };
        } catch (err) {
          if (!(err instanceof VersionConflictError)) throw err;
          // Another writer changed it first: back off as after a lost create, then look again.
          await pause(attempt);
          continue;
        }
      }
      // No live record: claim the key while creating. A claim left by a record that was since
      // changed or deleted is taken over; a claim taken meanwhile by a new record wins.
      const stale = await this.#ctx.index.getClaim(this.#ns, claimKey);
      if (stale !== null) {
        // The holder may be a live record created after the lookup above (a concurrent caller's):
        // its claim is not stale, and taking it over would make a second record with the same
        // keys. Look again instead: the lookup now finds it.
        const holder = await this.#ctx.index.getHead(this.#ns, stale);
        if (holder && !holder.deleted && matches(filter, holder.meta)) continue;
      }
      const result = await this.#createRecord(clean, who, { uniqueKeys: keys }, [{ key: claimKey, ...(stale ? { replacing: stale } : {}) }], session, functionId);
      if (result.ok) return { id: result.id, ov: 0, cv: result.cv, created: true, at: result.at };
      await pause(attempt);
    }
    throw new ConflictError(`smartInsert on ${this.#ctx.route.label} kept conflicting with concurrent writers`);
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
    const who = this.#who(actor, reason);
    const checked = checkMappings(mappings);
    const clean = this.#cleanData(data);
    const linked: Data = { ...clean };
    const entities: Record<string, { id: string; created: boolean }> = {};
    // Every entity is checked before the first one is written, so bad input writes nothing.
    const plans = checked.map((m) => {
      const entity = clean[m.property];
      if (!isPlainObject(entity)) {
        throw new ValidationError(`data.${m.property} must be an object holding the ${m.collection} entity`, { path: `data.${m.property}` });
      }
      const sibling = this.#ctx.sibling(m.collection);
      sibling.#uniqueKey(sibling.#cleanData(entity, `data.${m.property}`), [m.keyProperty]);
      return { m, entity, sibling };
    });
    for (const { m, entity, sibling } of plans) {
      const r = await sibling.smartInsert(entity, { uniqueKeys: [m.keyProperty], actor: who.actor, ...(who.reason ? { reason: who.reason } : {}) });
      entities[m.property] = { id: r.id, created: r.created };
      linked[m.property] = { _ref: { collection: m.collection, id: r.id } };
    }
    const created = await this.create(linked, who.actor, who.reason ?? undefined);
    return { ...created, entities };
  }

  /** Reads a record and resolves the entity links `insertWithEntities` stored. */
  async getWithEntities<T extends Data = Data>(
    id: string,
    mappings: EntityMapping[],
    ...extra: never[]
  ): Promise<(XronoxRecord<T> & { entities: Record<string, XronoxRecord | null> }) | null> {
    checkNoExtraArguments('getWithEntities', 2, extra);
    const checked = checkMappings(mappings);
    const record = await this.getLatest<T>(id);
    if (!record) return null;
    const data: Data = { ...record.data };
    const entities: Record<string, XronoxRecord | null> = {};
    for (const m of checked) {
      const link = readPath(data, `${m.property}._ref`);
      if (!isPlainObject(link) || link.collection !== m.collection || !isValidName('id', link.id)) {
        entities[m.property] = null;
        continue;
      }
      const entity = await this.#ctx.sibling(m.collection).getLatest(link.id);
      entities[m.property] = entity;
      if (entity) data[m.property] = { id: entity.id, ...entity.data };
    }
    return { ...record, data: data as T, entities };
  }

  // ---- reads -----------------------------------------------------------------------------

  /** The latest state of a record; `null` when it does not exist (or is deleted, unless `includeDeleted`). */
  async getLatest<T extends Data = Data>(
    id: string,
    options: { projection?: string[]; includeDeleted?: boolean } & PresentOptions = {},
    ...extra: never[]
  ): Promise<XronoxRecord<T> | null> {
    checkNoExtraArguments('getLatest', 2, extra);
    assertName('id', id);
    checkOptions(options, ['projection', 'includeDeleted', ...PRESENT_KEYS], 'options', 'getLatest');
    const projection = checkProjection(options.projection);
    checkTtl(options.ttlSeconds);
    const head = await this.#ctx.index.getHead(this.#ns, id);
    if (!head || (head.deleted && !options.includeDeleted)) return null;
    return this.#present(toRecord<T>(head.cv, await this.#headDoc(head), head.deletedAt, projection), options);
  }

  /** One version of a record, deleted or not; `null` when there is no such version. */
  async getVersion<T extends Data = Data>(id: string, ov: number, options: PresentOptions = {}, ...extra: never[]): Promise<VersionRecord<T> | null> {
    checkNoExtraArguments('getVersion', 3, extra);
    this.#requireVersioned('getVersion');
    assertName('id', id);
    checkOv(ov, 'ov');
    checkOptions(options, PRESENT_KEYS, 'options', 'getVersion');
    checkTtl(options.ttlSeconds);
    const row = await this.#ctx.index.getVersion(this.#ns, id, ov);
    return row ? this.#present(await this.#versionRecord<T>(row), options) : null;
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
    this.#requireVersioned('getAsOf');
    assertName('id', id);
    const instant = parseAsOf(at);
    checkOptions(options, ['includeDeleted', ...PRESENT_KEYS], 'options', 'getAsOf');
    checkTtl(options.ttlSeconds);
    const row = await this.#ctx.index.findVersionAt(this.#ns, id, { at: instant });
    if (!row || (row.deleted && !options.includeDeleted)) return null;
    return this.#present(await this.#versionRecord<T>(row), options);
  }

  /** A record's versions, newest first, without payloads. Page with `before` = the last `ov` seen. */
  async history(id: string, options: { limit?: number; before?: number } = {}, ...extra: never[]): Promise<{ items: HistoryEntry[]; nextBefore: number | null }> {
    checkNoExtraArguments('history', 2, extra);
    this.#requireVersioned('history');
    assertName('id', id);
    checkOptions(options, ['limit', 'before'], 'options', 'history');
    const limit = checkLimit(options.limit);
    if (options.before !== undefined) checkOv(options.before, 'before');
    const rows = await this.#ctx.index.listHistory(this.#ns, id, { limit: limit + 1, ...(options.before !== undefined ? { beforeOv: options.before } : {}) });
    const items = rows.slice(0, limit).map(historyEntry);
    return { items, nextBefore: rows.length > limit ? (items[items.length - 1]?.ov ?? null) : null };
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
    this.#requireVersioned('changesBy');
    const who = checkActor(actor);
    if (who === undefined) throw new ValidationError('changesBy needs an actor', { path: 'actor' });
    checkOptions(options, ['from', 'to', 'limit', 'pageToken'], 'options', 'changesBy');
    const limit = checkLimit(options.limit);
    const from = options.from === undefined ? undefined : parseInstant(options.from, 'from');
    const to = options.to === undefined ? undefined : parseAsOf(options.to, 'to');
    const scope = `${this.#ns.dbName}/${this.#ns.collection}/changesBy/${actorId(who)}`;
    const before = options.pageToken === undefined ? undefined : decodeActorCursor(scope, options.pageToken);
    const rows = await this.#ctx.index.listVersionsByActor(this.#ns, actorId(who), {
      limit: limit + 1,
      ...(typeof who === 'string' ? {} : { actorType: who.type }),
      ...(from ? { from } : {}),
      ...(to ? { to } : {}),
      ...(before ? { before } : {}),
    });
    const items = rows.slice(0, limit).map((r) => ({ id: r.id, ...historyEntry(r) }));
    const last = items[items.length - 1];
    return { items, nextPageToken: rows.length > limit && last ? encodeActorCursor(scope, { at: last.at, id: last.id, ov: last.ov }) : null };
  }

  /**
   * Lists records by indexed properties with the safe operator subset; see `core/foundation/filter.ts`.
   * Takes the query and, as the product documents write it, the read options apart
   * (`listByMeta({ filter, limit }, { presign: true })`), or everything in one object.
   */
  async listByMeta<T extends Data = Data>(query: ListOptions & PresentOptions = {}, present?: PresentOptions, ...extra: never[]): Promise<ListResult<T>> {
    checkNoExtraArguments('listByMeta', 2, extra);
    const asked = checkOptions(query, [...LIST_KEYS, ...PRESENT_KEYS], 'query', 'listByMeta');
    const read = checkOptions(present, PRESENT_KEYS, 'options', 'listByMeta');
    const twice = PRESENT_KEYS.find((key) => asked[key] !== undefined && read[key] !== undefined);
    if (twice) throw new ValidationError(`listByMeta got ${twice} both in the query and in the options; give it once`, { path: `options.${twice}` });
    const options = { ...asked, ...read } as ListOptions & PresentOptions;
    checkTtl(options.ttlSeconds);
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
    const items = await Promise.all(rows.slice(0, limit).map(async (h) => this.#present(toRecord<T>(h.cv, await this.#headDoc(h), h.deletedAt, projection), options)));
    return { items, nextAfterId: rows.length > limit ? (items[items.length - 1]?.id ?? null) : null };
  }

  /**
   * Answers a filter over indexed properties as the collection stood at a point in time
   * (versioned types; default now). Every page of one query answers for the same instant, so
   * concurrent writes never make a page skip or repeat a record. Unversioned types answer for
   * the present and refuse `at`.
   */
  async query<T extends Data = Data>(filter: Record<string, unknown> | undefined, options: QueryOptions & PresentOptions = {}, ...extra: never[]): Promise<QueryResult<T>> {
    checkNoExtraArguments('query', 2, extra);
    checkOptions(options, ['at', 'limit', 'pageToken', 'sort', 'projection', 'includeDeleted', ...PRESENT_KEYS], 'options', 'query');
    checkTtl(options.ttlSeconds);
    const node = parseFilter(filter, (field) => this.#isFilterable(field));
    const limit = checkLimit(options.limit);
    const projection = checkProjection(options.projection);
    const includeDeleted = options.includeDeleted === true;
    const scope = `${this.#ns.dbName}/${this.#ns.collection}/query`;
    const page = options.pageToken === undefined ? undefined : decodePageToken(scope, options.pageToken);
    const direction = page?.direction ?? checkSort(options.sort, ['id']).direction;
    const versioned = this.#ctx.route.policy.versioned;
    if (!versioned && options.at !== undefined) this.#requireVersioned('query with `at`');
    if (page && options.at !== undefined && parseAsOf(options.at) !== page.at) {
      throw new ValidationError('at differs from the point in time of pageToken', { path: 'at' });
    }
    if (!versioned) {
      const rows = await this.#ctx.index.listHeads(this.#ns, {
        filter: node,
        includeDeleted,
        sort: { field: 'id', direction },
        limit: limit + 1,
        ...(page ? { after: { value: page.afterId, id: page.afterId } } : {}),
      });
      const items = await Promise.all(rows.slice(0, limit).map(async (h) => this.#present(toRecord<T>(h.cv, await this.#headDoc(h), h.deletedAt, projection), options)));
      const last = items[items.length - 1];
      return { items, at: null, nextPageToken: rows.length > limit && last ? encodePageToken(scope, { at: null, afterId: last.id, direction }) : null };
    }
    const at = page?.at ?? (options.at === undefined ? nowInstant() : parseAsOf(options.at));
    const rows = await this.#ctx.index.queryAt(this.#ns, { at, filter: node, includeDeleted, direction, limit: limit + 1, ...(page ? { afterId: page.afterId } : {}) });
    const items: XronoxRecord<T>[] = [];
    for (const row of rows.slice(0, limit)) {
      const doc = await this.#readVersionDoc(row);
      items.push(await this.#present(toRecord<T>(row.cv, doc, doc.deleted ? doc.at : null, projection), options));
    }
    const last = items[items.length - 1];
    return { items, at, nextPageToken: rows.length > limit && last ? encodePageToken(scope, { at, afterId: last.id, direction }) : null };
  }

  // ---- tamper evidence -------------------------------------------------------------------

  /**
   * Recomputes a record's hash chain from the stored versions (index or versions bucket) and
   * reports the first broken link: a version whose content, metadata or order was changed
   * behind the engine's back. A chain shortened by retention starts at its oldest kept version.
   */
  async verify(id: string, ...extra: never[]): Promise<VerifyReport> {
    checkNoExtraArguments('verify', 1, extra);
    this.#requireVersioned('verify');
    assertName('id', id);
    const head = await this.#ctx.index.getHead(this.#ns, id);
    if (!head) throw new NotFoundError(`Record ${id} does not exist in ${this.#ctx.route.label}`);
    let broken: { ov: number; reason: string } | null = null;
    const flag = (ov: number, reason: string) => {
      if (!broken || ov <= broken.ov) broken = { ov, reason };
    };
    if (head.hash === null) flag(head.ov, 'the head carries no hash');
    let checked = 0;
    let newer: VersionRow | undefined;
    let newest: VersionRow | undefined;
    let newestPrevious: VersionRow | undefined;
    let before: number | undefined;
    for (;;) {
      const rows = await this.#ctx.index.listVersions(this.#ns, id, { limit: VERIFY_PAGE, ...(before !== undefined ? { beforeOv: before } : {}) });
      if (rows.length === 0) break;
      if (!newest) {
        newest = rows[0];
        newestPrevious = rows[1] ?? (await this.#ctx.index.listVersions(this.#ns, id, { limit: 1, beforeOv: rows[0]!.ov }))[0];
      }
      for (const row of rows) {
        checked++;
        if (newer === undefined && (row.ov !== head.ov || row.hash !== head.hash)) flag(row.ov, 'the head does not point at the newest version');
        if (newer !== undefined && newer.ov !== row.ov + 1) flag(row.ov + 1, `version ${row.ov + 1} is missing`);
        // Each version is checked against the hash stored on the one before it (the next row).
        newer = row;
      }
      // Verify links now that each row's predecessor is known (within this page and across pages).
      before = rows[rows.length - 1]!.ov;
      const previousPage = await this.#ctx.index.listVersions(this.#ns, id, { limit: 1, beforeOv: before });
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i]!;
        const predecessor = i + 1 < rows.length ? rows[i + 1] : previousPage[0];
        const reason = await this.#checkLink(row, predecessor);
        if (reason) flag(row.ov, reason);
      }
      if (rows.length < VERIFY_PAGE) break;
    }
    // The head is what reads serve: it must be exactly the newest version.
    if (newest) {
      const newestDoc = await this.#readVersionDoc(newest).catch(() => null);
      const headDoc = await this.#headDoc(head).catch(() => null);
      // When retention pruned everything before the newest version, that version anchors the
      // chain (as in #checkLink): its hash cannot be recomputed without its predecessor's.
      const anchored = newestPrevious === undefined && newest.ov > 0;
      if (
        !newestDoc ||
        !headDoc ||
        canonicalJson(headDoc) !== canonicalJson(newestDoc) ||
        (!anchored && versionHash(newestPrevious?.hash ?? null, headDoc) !== head.hash)
      ) {
        flag(head.ov, 'the head (what reads return) does not match its newest version');
      }
    }
    return { id, ok: broken === null, checked, brokenAt: broken };
  }

  /** `verify` for every record of the collection. */
  async verifyCollection(...extra: never[]): Promise<CollectionVerifyReport> {
    checkNoExtraArguments('verifyCollection', 0, extra);
    this.#requireVersioned('verifyCollection');
    const report: CollectionVerifyReport = { ok: true, records: 0, versions: 0, broken: [] };
    let afterId: string | undefined;
    for (;;) {
      const ids = await this.#ctx.index.listHeadIds(this.#ns, { limit: 500, ...(afterId ? { afterId } : {}) });
      if (ids.length === 0) return report;
      for (const id of ids) {
        const r = await this.verify(id);
        report.records++;
        report.versions += r.checked;
        if (r.brokenAt) {
          report.ok = false;
          report.broken.push({ id, ...r.brokenAt });
        }
      }
      afterId = ids[ids.length - 1];
    }
  }

  async #checkLink(row: VersionRow, predecessor: VersionRow | undefined): Promise<string | null> {
    let doc: RecordDocument;
    try {
      doc = await this.#readVersionDoc(row);
    } catch (err) {
      if (err instanceof StorageError && err.cause === undefined) return 'its stored document is missing';
      if (err instanceof SyntaxError) return 'its stored document is not valid JSON';
      throw err;
    }
    if (doc.id !== row.id || doc.ov !== row.ov) return 'its stored document belongs to another version';
    // The oldest retained version anchors the chain when older ones were pruned.
    const previousHash = predecessor ? predecessor.hash : row.ov === 0 ? null : undefined;
    if (previousHash === undefined) return null;
    if (predecessor && predecessor.ov !== row.ov - 1) return `version ${row.ov - 1} is missing`;
    return versionHash(previousHash, doc) === row.hash ? null : 'its content or metadata does not match its hash';
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
    this.#requireVersioned('restoreObject');
    assertName('id', id);
    checkOptions(options, ['actor', 'reason', 'expectedOv'], 'options', 'restoreObject');
    const who = this.#who(options.actor, options.reason);
    if (options.expectedOv !== undefined) checkOv(options.expectedOv, 'expectedOv');
    const row = await this.#findTarget(id, target);
    if (!row) throw new NotFoundError(`Record ${id} has no version at ${describeTarget(target)} in ${this.#ctx.route.label}`);
    const targetDoc = await this.#readVersionDoc(row);
    return this.#uploading((session) =>
      this.#retrying(options.expectedOv, async () => {
        const head = await this.#ctx.index.getHead(this.#ns, id);
        if (!head) throw new NotFoundError(`Record ${id} does not exist in ${this.#ctx.route.label}`);
        if (options.expectedOv !== undefined && head.ov !== options.expectedOv) throw new VersionConflictError(id, options.expectedOv, head.ov);
        const at = nextVersionTime(head.updatedAt);
        const current = await this.#headDoc(head);
        const next = this.#restoredDoc(current, head, targetDoc, at, who);
        const write = this.#write(id, head, next);
        await this.#protectRestored(write, next.data, current.data, row.ov, session);
        const cv = await this.#commitOne(write, 'UPDATE', targetDoc.data, head.ov, targetDoc.deleted ? 'deleted' : 'restored', session);
        return { id, ov: next.ov, cv, updatedAt: at, restoredFromOv: row.ov };
      }),
    );
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
    this.#requireVersioned('restoreCollection');
    checkOptions(options, ['dryRun', 'actor', 'reason'], 'options', 'restoreCollection');
    const who = this.#who(options.actor, options.reason);
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
        await this.#uploading((session) => this.#retrying(undefined, () => this.#restoreBatch(ids, point, who, dryRun, report, session)));
      }
    } finally {
      if (!dryRun) await this.#ctx.index.releaseLock(this.#ns, 'restore-collection', owner);
    }
    return report;
  }

  async #restoreBatch(
    ids: readonly string[],
    point: { cv: number } | { at: string },
    who: Who,
    dryRun: boolean,
    report: CollectionRestoreReport,
    session: UploadSession,
  ): Promise<void> {
    const writes: RecordWrite[] = [];
    const planned: CollectionRestoreReport['changes'] = [];
    let unchanged = 0;
    const deltas: Record<string, number> = {};
    for (const id of ids) {
      const head = await this.#ctx.index.getHead(this.#ns, id);
      if (!head) continue;
      const row = await this.#ctx.index.findVersionAt(this.#ns, id, point);
      const current = await this.#headDoc(head);
      const at = nextVersionTime(head.updatedAt);
      if (!row) {
        if (head.deleted) unchanged++;
        else {
          planned.push({ id, action: 'delete', fromOv: head.ov, targetOv: null });
          writes.push(this.#write(id, head, this.#nextDoc(current, head, { op: 'restore', at, ...who, deleted: true, data: current.data })));
          this.#countInto(deltas, 'UPDATE', current.data, 'deleted');
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
      const next = this.#restoredDoc(current, head, targetDoc, at, who);
      const write = this.#write(id, head, next);
      if (!dryRun) await this.#protectRestored(write, next.data, current.data, row.ov, session);
      writes.push(write);
      this.#countInto(deltas, 'UPDATE', targetDoc.data, targetDoc.deleted ? 'deleted' : 'restored');
    }
    if (!dryRun && writes.length > 0) {
      const result = await this.#ctx.index.commit(this.#ns, { writes, counters: [this.#counterDelta(deltas)] });
      if (!result.ok) throw await this.#commitFailed(result, writes, session);
      for (const w of writes) session.committed(w.uploads ?? []);
      for (const w of writes) await this.#ctx.sync.schedule(this.#syncTarget, this.#ns, w.id);
      for (const w of writes) if (w.head) await untilClockReaches(w.head.updatedAt);
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

  #who(actor: unknown, reason: unknown): Who {
    return { actor: checkActor(actor) ?? DEFAULT_ACTOR, reason: checkReason(reason) };
  }

  #cleanData(data: unknown, label = 'data'): Data {
    const { data: clean } = normaliseData(data, this.#content.inputAllowance(this.#ctx.maxDocumentBytes), label);
    if (Object.hasOwn(clean, '_system')) {
      throw new ValidationError(`${label}._system is reserved for the engine's own bookkeeping`, { path: `${label}._system` });
    }
    checkRequired(clean, this.#ctx.route.collectionMap, this.#ctx.route.collection, label);
    return clean;
  }

  #cleanPatches(patch: unknown): Data[] {
    const list = Array.isArray(patch) ? patch : [patch];
    if (list.length === 0) throw new ValidationError('enrich needs at least one patch', { path: 'patch' });
    return list.map((p, i) => {
      const label = Array.isArray(patch) ? `patch[${i}]` : 'patch';
      const { data } = normaliseData(p, this.#content.inputAllowance(this.#ctx.maxDocumentBytes), label);
      if (Object.hasOwn(data, '_system')) throw new ValidationError(`${label}._system is reserved`, { path: `${label}._system` });
      return data;
    });
  }

  /** Offloads new content to the content bucket (under upload intents), then holds the stored document to its size limit. */
  async #storeContent(data: Data, id: string, previous: Data | null, session: UploadSession): Promise<{ data: Data } & Stored> {
    const prepared = this.#prepareContent(data, id, previous);
    return { data: prepared.data, ...(await this.#content.upload(id, prepared.uploads, session)) };
  }

  /**
   * A restore brings back references of an older version: the objects the current head does not
   * reference get upload intents (so no cleanup removes them before the commit), and must still
   * be there, in the content bucket or queued in the index.
   */
  async #protectRestored(write: RecordWrite, next: Data, current: Data, fromOv: number, session: UploadSession): Promise<void> {
    const objects = this.#content.newReferences(write.id, next, current);
    if (objects.length === 0) return;
    write.uploads = await session.record(objects.map((o) => ({ id: write.id, ...o })));
    for (const o of objects) {
      if ((await this.#ctx.blob.head(o.bucket, o.key)) !== null || (await this.#ctx.index.getPendingBlob(this.#ns, o.bucket, o.key)) !== null) continue;
      throw new StorageError(this.#ctx.blob.name, 'head', undefined, `Record ${write.id} cannot be restored to version ${fromOv}: its content ${o.key} is no longer in the content bucket`);
    }
  }

  /** The error for a refused commit; when an upload intent was gone, the session is told first (see `UploadSession.lost`). */
  async #commitFailed(result: Extract<Awaited<ReturnType<IndexStore['commit']>>, { ok: false }>, writes: readonly RecordWrite[], session?: UploadSession): Promise<XronoxError> {
    if (result.reason === 'upload') await session?.lost(writes.flatMap((w) => w.uploads ?? []));
    return commitFailure(result, this.#ctx.index.name);
  }

  /** Runs a write call with an upload session; what no commit took is cleaned up when it ends. */
  async #uploading<R>(run: (session: UploadSession) => Promise<R>): Promise<R> {
    const session = new UploadSession(this.#syncTarget, this.#ns, this.#ctx.uploadStaleMs);
    try {
      return await run(session);
    } finally {
      await session.finish();
    }
  }

  /** Content replaced by references, and the stored document held to its limit, before anything is uploaded. */
  #prepareContent(data: Data, id: string, previous: Data | null): { data: Data; uploads: PendingBlob[] } {
    const prepared = this.#content.prepare(data, id, previous);
    if (this.#content.enabled) normaliseData(prepared.data, this.#ctx.maxDocumentBytes);
    return prepared;
  }

  async #present<R extends XronoxRecord>(record: R, options: PresentOptions): Promise<R> {
    if (!this.#content.enabled) return record;
    return { ...record, data: await this.#content.present(record.data, record.id, options) };
  }

  async #createRecord(
    input: Data,
    who: Who,
    lineage: Pick<SystemInfo, 'parent' | 'origin' | 'uniqueKeys'>,
    claims: NonNullable<RecordWrite['claims']>,
    session: UploadSession,
    functionId?: string,
  ): Promise<{ ok: true; id: string; cv: number; at: string } | { ok: false }> {
    const { id, at, data, write } = await this.#newRecord(input, who, lineage, functionId, session);
    if (claims.length > 0) write.claims = claims;
    const deltas: Record<string, number> = {};
    this.#countInto(deltas, 'CREATE', data);
    const result = await this.#ctx.index.commit(this.#ns, { writes: [write], counters: [this.#counterDelta(deltas)] });
    if (!result.ok) {
      if (result.reason === 'claim') return { ok: false };
      throw await this.#commitFailed(result, [write], session);
    }
    session.committed(write.uploads ?? []);
    await this.#ctx.sync.schedule(this.#syncTarget, this.#ns, id);
    return { ok: true, id, cv: result.cvs[0]!, at };
  }

  /** A new record at ov 0 (its content offloaded or queued) and the write that creates it. */
  async #newRecord(
    input: Data,
    who: Who,
    lineage: Pick<SystemInfo, 'parent' | 'origin' | 'uniqueKeys'>,
    functionId: string | undefined,
    session: UploadSession,
  ): Promise<{ id: string; at: string; data: Data; write: RecordWrite }> {
    const id = uuidv7();
    const { data, ...stored } = await this.#storeContent(input, id, null, session);
    return { ...this.#newRecordWrite(id, data, stored, who, lineage, functionId), data };
  }

  /** The write that creates a record at ov 0 from its stored data (content already uploaded or queued). */
  #newRecordWrite(
    id: string,
    data: Data,
    stored: Stored,
    who: Who,
    lineage: Pick<SystemInfo, 'parent' | 'origin' | 'uniqueKeys'>,
    functionId: string | undefined,
  ): { id: string; at: string; write: RecordWrite } {
    const at = nextVersionTime(null);
    const system: SystemInfo = { ...lineage, ...(functionId ? { functionIds: [functionId] } : {}) };
    const doc: RecordDocument = { id, ov: 0, op: 'create', at, ...who, deleted: false, createdAt: at, data };
    if (functionId) doc.functionId = functionId;
    if (Object.keys(system).length > 0) doc.system = system;
    return { id, at, write: withStored(this.#write(id, null, doc), stored) };
  }

  async #enrichHead(head: HeadRow, patches: readonly Data[], who: Who, functionId: string | undefined, session: UploadSession): Promise<UpdateResult> {
    const doc = await this.#headDoc(head);
    const merged = patches.reduce((acc, p) => deepMerge(acc, p), doc.data);
    const stored = await this.#storeContent(this.#cleanData(merged), head.id, doc.data, session);
    const at = nextVersionTime(head.updatedAt);
    const next = this.#nextDoc(doc, head, { op: 'enrich', at, ...who, deleted: false, data: stored.data }, functionId);
    const cv = await this.#commitOne(withStored(this.#write(head.id, head, next), stored), 'UPDATE', stored.data, head.ov, undefined, session);
    return { id: head.id, ov: next.ov, cv, updatedAt: at };
  }

  /** The next version document of a record: lineage carried over, provenance accumulated. */
  #nextDoc(
    previous: RecordDocument,
    head: HeadRow,
    change: Pick<RecordDocument, 'op' | 'at' | 'actor' | 'reason' | 'deleted' | 'data'>,
    functionId?: string,
  ): RecordDocument {
    const doc: RecordDocument = { id: head.id, ov: head.ov + 1, ...change, createdAt: previous.createdAt, data: change.data };
    const system: SystemInfo = { ...previous.system };
    if (functionId) {
      doc.functionId = functionId;
      const ids = system.functionIds ?? [];
      system.functionIds = ids.includes(functionId) ? ids : [...ids, functionId];
    }
    if (Object.keys(system).length > 0) doc.system = system;
    return doc;
  }

  #restoredDoc(current: RecordDocument, head: HeadRow, target: RecordDocument, at: string, who: Who): RecordDocument {
    const doc = this.#nextDoc(current, head, { op: 'restore', at, ...who, deleted: target.deleted, data: target.data });
    // The restored state includes its lineage and provenance as they were then.
    if (target.system) doc.system = target.system;
    else delete doc.system;
    return doc;
  }

  #write(id: string, head: HeadRow | null, doc: RecordDocument): RecordWrite {
    const body = serialiseDocument(doc);
    const versioned = this.#ctx.route.policy.versioned;
    const hash = versioned ? versionHash(head?.hash ?? null, doc) : null;
    const newHead: NewHead = {
      ov: doc.ov,
      deleted: doc.deleted,
      createdAt: doc.createdAt,
      updatedAt: doc.at,
      deletedAt: doc.deleted ? (head?.deleted ? head.deletedAt : doc.at) : null,
      meta: { ...extractMeta(doc.data, this.#ctx.route.collectionMap), ...systemMeta(doc.system, doc.createdAt, doc.at) },
      body,
      hash,
    };
    const write: RecordWrite = { id, expectedOv: head ? head.ov : null, head: newHead };
    // A deleted record released its unique claims; coming back to life it must take them again,
    // and fails (ConflictError) when another live record holds them now.
    if (head?.deleted && !doc.deleted && doc.system?.uniqueKeys) {
      write.claims = [{ key: this.#uniqueKey(doc.data, doc.system.uniqueKeys).claimKey }];
    }
    if (versioned && hash !== null) {
      write.version = { op: doc.op, at: doc.at, actor: doc.actor, reason: doc.reason, deleted: doc.deleted, body, hash };
    }
    return write;
  }

  async #commitOne(
    write: RecordWrite,
    event: 'CREATE' | 'UPDATE' | 'DELETE',
    data: Data,
    expectedOv: number | null,
    counter?: 'restored' | 'deleted',
    session?: UploadSession,
  ): Promise<number> {
    const deltas: Record<string, number> = {};
    this.#countInto(deltas, event, data, counter);
    const batch: CommitBatch = { writes: [write], counters: [this.#counterDelta(deltas)] };
    const result = await this.#ctx.index.commit(this.#ns, batch);
    if (!result.ok) throw result.reason === 'version' ? new VersionConflictError(write.id, expectedOv, result.actualOv) : await this.#commitFailed(result, [write], session);
    session?.committed(write.uploads ?? []);
    await this.#ctx.sync.schedule(this.#syncTarget, this.#ns, write.id);
    if (write.head) await untilClockReaches(write.head.updatedAt);
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

  #counterDelta(deltas: Record<string, number>): CounterDelta {
    const granularities = this.#ctx.counterWindows ?? [];
    const delta: CounterDelta = { dbName: this.#ctx.route.analyticsDbName, collection: this.#ctx.route.collection, deltas };
    return granularities.length > 0 ? { ...delta, windows: windowKeysAt(granularities, Date.now()) } : delta;
  }

  #uniqueKey(data: Data, uniqueKeys: unknown): { filter: FilterNode; claimKey: string; keys: string[] } {
    if (!Array.isArray(uniqueKeys) || uniqueKeys.length === 0 || uniqueKeys.length > 8) {
      throw new ValidationError('uniqueKeys must list 1 to 8 indexed properties', { path: 'uniqueKeys' });
    }
    const pairs: Array<[string, string | number | boolean]> = [];
    for (const key of uniqueKeys) {
      if (typeof key !== 'string' || !this.#isFilterable(key) || isSystemField(key)) {
        throw new ValidationError(`uniqueKeys: "${String(key)}" is not an indexed property of ${this.#ctx.route.collection}`, { path: 'uniqueKeys' });
      }
      const value = readPath(data, key);
      if (typeof value !== 'string' && typeof value !== 'boolean' && !(typeof value === 'number' && Number.isFinite(value))) {
        throw new ValidationError(`data.${key} must hold a string, number or boolean to be used as a unique key`, { path: `data.${key}` });
      }
      pairs.push([key, value]);
    }
    pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const filter: FilterNode = { kind: 'and', items: pairs.map(([field, value]) => ({ kind: 'compare', field, op: '$eq', value })) };
    const claimKey = createHash('sha256').update(JSON.stringify(pairs)).digest('hex');
    return { filter, claimKey, keys: pairs.map(([key]) => key) };
  }

  /** Runs `attempt`, retrying on version conflicts when the caller gave no `expectedOv`. */
  async #retrying<R>(expectedOv: number | undefined, attempt: () => Promise<R>): Promise<R> {
    for (let i = 0; ; i++) {
      try {
        return await attempt();
      } catch (err) {
        if (!(err instanceof VersionConflictError) || expectedOv !== undefined || i >= MAX_RETRIES) throw err;
        await pause(i);
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

  async #findTarget(id: string, target: unknown): Promise<VersionRow | null> {
    if (isPlainObject(target)) {
      checkOptions(target, ['ov', 'at'], 'target', 'restoreObject');
      if (target.ov !== undefined && target.at !== undefined) throw new ValidationError('The restore target must be { ov } or { at }, not both', { path: 'target' });
    }
    if (isPlainObject(target) && 'ov' in target) {
      checkOv(target.ov, 'ov');
      return this.#ctx.index.getVersion(this.#ns, id, target.ov);
    }
    if (isPlainObject(target) && 'at' in target) return this.#ctx.index.findVersionAt(this.#ns, id, { at: parseAsOf(target.at) });
    throw new ValidationError('The restore target must be { ov } or { at }');
  }

  /**
   * The current record document of a head: its body, or for an offloaded head (`HeadRow.body`
   * empty) the records object, checked against the head (see `headDocument`).
   */
  async #headDoc(head: HeadRow): Promise<RecordDocument> {
    return headDocument(this.#syncTarget, this.#ns, head);
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
    if (isSystemField(field)) return true;
    const map = this.#ctx.route.collectionMap;
    if (!map || map.indexedProps.length === 0) return isValidName('property', field) && !field.includes('.') && !field.startsWith('_system');
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
    if (this.#ctx.route.policy.appendOnly) throw new AppendOnlyError(this.#ctx.route.databaseType, method);
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
    _system: {
      insertedAt: doc.createdAt,
      updatedAt: doc.at,
      deletedAt: doc.deleted ? deletedAt : null,
      functionIds: doc.system?.functionIds ?? [],
      parent: doc.system?.parent ?? null,
      origin: doc.system?.origin ?? null,
    },
  };
}

/** What storing a write's content gave: objects queued in the index (fallback), and the upload intents the commit takes. */
type Stored = { queued: PendingBlob[]; intents: UploadRef[] };

function withStored(write: RecordWrite, stored: Stored): RecordWrite {
  if (stored.queued.length > 0) write.blobs = stored.queued;
  if (stored.intents.length > 0) write.uploads = stored.intents;
  return write;
}

function historyEntry(r: HistoryRow): HistoryEntry {
  return { ov: r.ov, cv: r.cv, op: r.op, at: r.at, actor: r.actor, reason: r.reason, deleted: r.deleted, size: r.size, archived: r.archived };
}

function commitFailure(result: Extract<Awaited<ReturnType<IndexStore['commit']>>, { ok: false }>, store: string): XronoxError {
  switch (result.reason) {
    case 'version':
      return new VersionConflictError(result.id, result.expectedOv, result.actualOv);
    case 'claim':
      return new ConflictError(`Record ${result.id} cannot take a unique key held by record ${result.heldBy}`);
    case 'upload':
      return new StorageError(
        store,
        'commit',
        undefined,
        `The write of record ${result.id} took longer than limits.maxUploadSeconds after starting its content upload, and its upload of ${result.key} was taken for cleanup; nothing was written, try again`,
      );
  }
}

function checkFunctionId(functionId: unknown): string | undefined {
  if (functionId === undefined) return undefined;
  if (typeof functionId !== 'string' || functionId.length === 0 || functionId.length > 256) {
    throw new ValidationError('functionId must be a non-empty string of at most 256 characters', { path: 'functionId' });
  }
  return functionId;
}

function checkMappings(mappings: unknown): EntityMapping[] {
  if (!Array.isArray(mappings) || mappings.length === 0 || mappings.length > 16) {
    throw new ValidationError('mappings must list 1 to 16 { property, collection, keyProperty }', { path: 'mappings' });
  }
  return mappings.map((m, i) => {
    if (!isPlainObject(m) || !isValidName('property', m.property) || String(m.property).includes('.') || !isValidName('property', m.keyProperty)) {
      throw new ValidationError(`mappings[${i}] must be { property, collection, keyProperty } with top-level property names`, { path: `mappings[${i}]` });
    }
    checkOptions(m, ['property', 'collection', 'keyProperty'], `mappings[${i}]`);
    return { property: m.property as string, collection: assertName('collection', m.collection, `mappings[${i}].collection`), keyProperty: m.keyProperty as string };
  });
}

function describeTarget(target: { ov: number } | { at: string | Date }): string {
  return 'ov' in target ? `ov ${target.ov}` : `time ${String(target.at instanceof Date ? target.at.toISOString() : target.at)}`;
}

function pause(attempt: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.random() * Math.min(2 ** attempt, 50)));
}

function encodeActorCursor(scope: string, cursor: { at: string; id: string; ov: number }): string {
  return encodePageToken(scope, { at: cursor.at, afterId: `${cursor.id}`, direction: -1 }) + `.${cursor.ov}`;
}

function decodeActorCursor(scope: string, token: unknown): { at: string; id: string; ov: number } {
  const text = typeof token === 'string' ? token : '';
  const dot = text.lastIndexOf('.');
  const ov = Number(text.slice(dot + 1));
  const state = decodePageToken(scope, dot > 0 ? text.slice(0, dot) : text);
  if (dot <= 0 || !Number.isSafeInteger(ov) || ov < 0 || state.at === null) {
    throw new ValidationError('pageToken is not a token this collection issued', { path: 'pageToken' });
  }
  return { at: state.at, id: state.afterId, ov };
}
