/**
 * The writes of a record collection: create (one or a batch), update, enrich, delete, the keyed
 * upsert `smartInsert` and inserts that upsert their entities. Each call checks its input in
 * full, stores new content under upload intents, and becomes one atomic index-store commit
 * (see record-commits.ts).
 */
import { v7 as uuidv7 } from 'uuid';
import type { Actor, HeadRow, PendingBlob, RecordWrite, UploadRef } from '../../contracts/index-store.js';
import { ConflictError, NotFoundError, ValidationError, VersionConflictError } from '../../errors.js';
import { nextVersionTime } from '../../foundation/clock.js';
import { isPlainObject, matches } from '../../foundation/filter.js';
import { assertName } from '../../foundation/names.js';
import { checkOptions, checkOv } from '../arguments.js';
import type { CreateOptions, CreateResult, DeleteResult, EntityMapping, SmartInsertResult, UpdateResult } from '../collection-types.js';
import type { UploadSession } from '../content-uploads.js';
import { checkRequired, type Data, normaliseData, type RecordDocument } from '../documents.js';
import { checkLineage, type SystemInfo } from '../lineage.js';
import { deepMerge } from '../merge.js';
import { checkMappings, type RecordAccess, type UniqueKey, who, type Who } from './record-access.js';
import { MAX_RETRIES, pause, type RecordCommits, retrying } from './record-commits.js';

/** The most records one `createMany` commits (one index-store transaction). */
export const MAX_CREATE_BATCH = 1000;

type Lineage = Pick<SystemInfo, 'parent' | 'origin' | 'uniqueKeys'>;
/** What storing a write's content gave: objects queued in the index (fallback), and the upload intents the commit takes. */
type Stored = { queued: PendingBlob[]; intents: UploadRef[] };

export class RecordWrites {
  readonly #access: RecordAccess;
  readonly #commits: RecordCommits;
  /** The writes of another collection of the same database (relationships). */
  readonly #sibling: (collection: string) => RecordWrites;

  constructor(access: RecordAccess, commits: RecordCommits, sibling: (collection: string) => RecordWrites) {
    this.#access = access;
    this.#commits = commits;
    this.#sibling = sibling;
  }

  async create(data: Data, actor?: Actor, reason?: string, options?: CreateOptions): Promise<CreateResult> {
    const by = who(actor, reason);
    const lineage = checkLineage(options, this.#access.route.collection);
    const clean = this.#cleanData(data);
    const created = await this.#commits.uploading((session) => this.#createRecord(clean, by, lineage, [], session));
    // Without claims a create cannot lose a race: its id is new.
    if (!created.ok) throw new ConflictError(`Could not create a record in ${this.#access.route.label}`);
    return { id: created.id, ov: 0, cv: created.cv, createdAt: created.at };
  }

  async createMany(items: readonly Data[], actor?: Actor, reason?: string): Promise<CreateResult[]> {
    if (!Array.isArray(items) || items.length === 0 || items.length > MAX_CREATE_BATCH) {
      throw new ValidationError(`createMany takes an array of 1 to ${MAX_CREATE_BATCH} records`, { path: 'items' });
    }
    const by = who(actor, reason);
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
    return this.#commits.uploading(async (session) => {
      const records: Array<{ id: string; at: string; write: RecordWrite }> = [];
      const deltas: Record<string, number> = {};
      for (const p of prepared) {
        const stored = await this.#access.content.upload(p.id, p.uploads, session);
        records.push(this.#newRecordWrite(p.id, p.data, stored, by, {}, undefined));
        this.#commits.countInto(deltas, 'CREATE', p.data);
      }
      const result = await this.#commits.commit(records.map((r) => r.write), deltas, session);
      // New ids and no claims: only a broken store or an intent taken as stale fails it.
      if (!result.ok) throw this.#commits.refused(result);
      return records.map((r, i) => ({ id: r.id, ov: 0, cv: result.cvs[i]!, createdAt: r.at }));
    });
  }

  checkCreate(data: unknown, actor?: unknown, reason?: unknown): void {
    who(actor, reason);
    this.#cleanData(data);
  }

  async update(id: string, data: Data, expectedOv: number, actor?: Actor, reason?: string): Promise<UpdateResult> {
    this.#access.refuseAppendOnly('update');
    assertName('id', id);
    checkOv(expectedOv, 'expectedOv');
    const by = who(actor, reason);
    const clean = this.#cleanData(data);
    const head = await this.#liveHead(id, expectedOv);
    const doc = await this.#access.headDoc(head);
    return this.#commits.uploading(async (session) => {
      const stored = await this.#storeContent(clean, id, doc.data, session);
      const at = nextVersionTime(head.updatedAt);
      const next = this.#commits.nextDoc(doc, head, { op: 'update', at, ...by, deleted: false, data: stored.data });
      const cv = await this.#commits.commitOne(withStored(this.#commits.write(id, head, next), stored), 'UPDATE', stored.data, expectedOv, undefined, session);
      return { id, ov: next.ov, cv, updatedAt: at };
    });
  }

  async enrich(id: string, patch: Data | Data[], options: { functionId?: string; actor?: Actor; reason?: string; expectedOv?: number }): Promise<UpdateResult> {
    this.#access.refuseAppendOnly('enrich');
    assertName('id', id);
    checkOptions(options, ['functionId', 'actor', 'reason', 'expectedOv'], 'options', 'enrich');
    const by = who(options.actor, options.reason);
    const functionId = checkFunctionId(options.functionId);
    if (options.expectedOv !== undefined) checkOv(options.expectedOv, 'expectedOv');
    const patches = this.#cleanPatches(patch);
    return this.#commits.uploading((session) =>
      retrying(options.expectedOv, async () => this.#enrichHead(await this.#liveHead(id, options.expectedOv), patches, by, functionId, session)),
    );
  }

  async delete(id: string, expectedOv: number, actor?: Actor, reason?: string): Promise<DeleteResult> {
    this.#access.refuseAppendOnly('delete');
    assertName('id', id);
    checkOv(expectedOv, 'expectedOv');
    const by = who(actor, reason);
    const head = await this.#liveHead(id, expectedOv);
    const doc = await this.#access.headDoc(head);
    const at = nextVersionTime(head.updatedAt);
    const write: RecordWrite = this.#access.ctx.logicalDelete
      ? this.#commits.write(id, head, this.#commits.nextDoc(doc, head, { op: 'delete', at, ...by, deleted: true, data: doc.data }))
      : { id, expectedOv: head.ov, head: null };
    const cv = await this.#commits.commitOne(write, 'DELETE', doc.data, expectedOv);
    return { id, ov: head.ov + 1, cv, deletedAt: at };
  }

  async smartInsert(data: Data, options: { uniqueKeys: string[]; actor?: Actor; reason?: string; functionId?: string }): Promise<SmartInsertResult> {
    this.#access.refuseAppendOnly('smartInsert');
    if (!isPlainObject(options)) throw new ValidationError('smartInsert takes { uniqueKeys, actor?, reason?, functionId? }', { path: 'options' });
    checkOptions(options, ['uniqueKeys', 'actor', 'reason', 'functionId'], 'options', 'smartInsert');
    const by = who(options.actor, options.reason);
    const functionId = checkFunctionId(options.functionId);
    const clean = this.#cleanData(data);
    const key = this.#access.uniqueKey(clean, options.uniqueKeys);
    return this.#commits.uploading((session) => this.#smartInsert(clean, by, functionId, key, session));
  }

  async #smartInsert(clean: Data, by: Who, functionId: string | undefined, key: UniqueKey, session: UploadSession): Promise<SmartInsertResult> {
    const { index, ns } = this.#access;
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const [existing] = await index.listHeads(ns, { filter: key.filter, includeDeleted: false, sort: { field: 'id', direction: 1 }, limit: 1 });
      if (existing) {
        try {
          const r = await this.#enrichHead(existing, [clean], by, functionId, session);
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
      const stale = await index.getClaim(ns, key.claimKey);
      if (stale !== null) {
        // The holder may be a live record created after the lookup above (a concurrent caller's):
        // its claim is not stale, and taking it over would make a second record with the same
        // keys. Look again instead: the lookup now finds it.
        const holder = await index.getHead(ns, stale);
        if (holder && !holder.deleted && matches(key.filter, holder.meta)) continue;
      }
      const claim = { key: key.claimKey, ...(stale ? { replacing: stale } : {}) };
      const result = await this.#createRecord(clean, by, { uniqueKeys: key.keys }, [claim], session, functionId);
      if (result.ok) return { id: result.id, ov: 0, cv: result.cv, created: true, at: result.at };
      await pause(attempt);
    }
    throw new ConflictError(`smartInsert on ${this.#access.route.label} kept conflicting with concurrent writers`);
  }

  async insertWithEntities(
    data: Data,
    mappings: EntityMapping[],
    actor?: Actor,
    reason?: string,
  ): Promise<CreateResult & { entities: Record<string, { id: string; created: boolean }> }> {
    const by = who(actor, reason);
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
      const sibling = this.#sibling(m.collection);
      sibling.#access.uniqueKey(sibling.#cleanData(entity, `data.${m.property}`), [m.keyProperty]);
      return { m, entity, sibling };
    });
    for (const { m, entity, sibling } of plans) {
      const r = await sibling.smartInsert(entity, { uniqueKeys: [m.keyProperty], actor: by.actor, ...(by.reason ? { reason: by.reason } : {}) });
      entities[m.property] = { id: r.id, created: r.created };
      linked[m.property] = { _ref: { collection: m.collection, id: r.id } };
    }
    const created = await this.create(linked, by.actor, by.reason ?? undefined);
    return { ...created, entities };
  }

  /** The live head of a record; with `expectedOv`, a `VersionConflictError` unless the record is at it. */
  async #liveHead(id: string, expectedOv: number | undefined): Promise<HeadRow> {
    const head = await this.#access.index.getHead(this.#access.ns, id);
    if (!head || head.deleted) {
      throw new NotFoundError(`Record ${id} does not exist in ${this.#access.route.label}${head?.deleted ? ' (it was deleted)' : ''}`);
    }
    if (expectedOv !== undefined && head.ov !== expectedOv) throw new VersionConflictError(id, expectedOv, head.ov);
    return head;
  }

  #cleanData(data: unknown, label = 'data'): Data {
    const { data: clean } = normaliseData(data, this.#access.content.inputAllowance(this.#access.ctx.maxDocumentBytes), label);
    if (Object.hasOwn(clean, '_system')) {
      throw new ValidationError(`${label}._system is reserved for the engine's own bookkeeping`, { path: `${label}._system` });
    }
    checkRequired(clean, this.#access.route.collectionMap, this.#access.route.collection, label);
    return clean;
  }

  #cleanPatches(patch: unknown): Data[] {
    const list = Array.isArray(patch) ? patch : [patch];
    if (list.length === 0) throw new ValidationError('enrich needs at least one patch', { path: 'patch' });
    return list.map((p, i) => {
      const label = Array.isArray(patch) ? `patch[${i}]` : 'patch';
      const { data } = normaliseData(p, this.#access.content.inputAllowance(this.#access.ctx.maxDocumentBytes), label);
      if (Object.hasOwn(data, '_system')) throw new ValidationError(`${label}._system is reserved`, { path: `${label}._system` });
      return data;
    });
  }

  /** Offloads new content to the content bucket (under upload intents), then holds the stored document to its size limit. */
  async #storeContent(data: Data, id: string, previous: Data | null, session: UploadSession): Promise<{ data: Data } & Stored> {
    const prepared = this.#prepareContent(data, id, previous);
    return { data: prepared.data, ...(await this.#access.content.upload(id, prepared.uploads, session)) };
  }

  /** Content replaced by references, and the stored document held to its limit, before anything is uploaded. */
  #prepareContent(data: Data, id: string, previous: Data | null): { data: Data; uploads: PendingBlob[] } {
    const prepared = this.#access.content.prepare(data, id, previous);
    if (this.#access.content.enabled) normaliseData(prepared.data, this.#access.ctx.maxDocumentBytes);
    return prepared;
  }

  async #createRecord(
    input: Data,
    by: Who,
    lineage: Lineage,
    claims: NonNullable<RecordWrite['claims']>,
    session: UploadSession,
    functionId?: string,
  ): Promise<{ ok: true; id: string; cv: number; at: string } | { ok: false }> {
    const id = uuidv7();
    const { data, ...stored } = await this.#storeContent(input, id, null, session);
    const { at, write } = this.#newRecordWrite(id, data, stored, by, lineage, functionId);
    if (claims.length > 0) write.claims = claims;
    const deltas: Record<string, number> = {};
    this.#commits.countInto(deltas, 'CREATE', data);
    const result = await this.#commits.commit([write], deltas, session);
    if (!result.ok) {
      if (result.reason === 'claim') return { ok: false };
      throw this.#commits.refused(result);
    }
    return { ok: true, id, cv: result.cvs[0]!, at };
  }

  /** The write that creates a record at ov 0 from its stored data (content already uploaded or queued). */
  #newRecordWrite(id: string, data: Data, stored: Stored, by: Who, lineage: Lineage, functionId: string | undefined): { id: string; at: string; write: RecordWrite } {
    const at = nextVersionTime(null);
    const system: SystemInfo = { ...lineage, ...(functionId ? { functionIds: [functionId] } : {}) };
    const doc: RecordDocument = { id, ov: 0, op: 'create', at, ...by, deleted: false, createdAt: at, data };
    if (functionId) doc.functionId = functionId;
    if (Object.keys(system).length > 0) doc.system = system;
    return { id, at, write: withStored(this.#commits.write(id, null, doc), stored) };
  }

  async #enrichHead(head: HeadRow, patches: readonly Data[], by: Who, functionId: string | undefined, session: UploadSession): Promise<UpdateResult> {
    const doc = await this.#access.headDoc(head);
    const merged = patches.reduce((acc, p) => deepMerge(acc, p), doc.data);
    const stored = await this.#storeContent(this.#cleanData(merged), head.id, doc.data, session);
    const at = nextVersionTime(head.updatedAt);
    const next = this.#commits.nextDoc(doc, head, { op: 'enrich', at, ...by, deleted: false, data: stored.data }, functionId);
    const cv = await this.#commits.commitOne(withStored(this.#commits.write(head.id, head, next), stored), 'UPDATE', stored.data, head.ov, undefined, session);
    return { id: head.id, ov: next.ov, cv, updatedAt: at };
  }
}

function withStored(write: RecordWrite, stored: Stored): RecordWrite {
  if (stored.queued.length > 0) write.blobs = stored.queued;
  if (stored.intents.length > 0) write.uploads = stored.intents;
  return write;
}

function checkFunctionId(functionId: unknown): string | undefined {
  if (functionId === undefined) return undefined;
  if (typeof functionId !== 'string' || functionId.length === 0 || functionId.length > 256) {
    throw new ValidationError('functionId must be a non-empty string of at most 256 characters', { path: 'functionId' });
  }
  return functionId;
}
