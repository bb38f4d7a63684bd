import { sha256Hex } from '../../foundation/digest.js';
/**
 * What every job of a record collection shares: its namespace and stores, the reading of heads
 * (offloaded or not), versions (in the index or the versions bucket) and their documents, how a
 * record is presented (projection, content links), and the checks every job makes of its caller
 * (actor and reason, policy, filterable fields and unique keys, entity mappings).
 */
import type { BlobStore } from '../../contracts/blob-store.js';
import type { Actor, CounterWindowGranularity, HeadRow, IndexMaintenance, Leases, Namespace, RecordIndex, VersionRow } from '../../contracts/index-store.js';
import { AppendOnlyError, StorageError, TamperError, ValidationError } from '../../errors.js';
import type { FilterNode } from '../../foundation/filter-tree.js';
import { isPlainObject } from '../../foundation/filter.js';
import { assertName, isValidName } from '../../foundation/names.js';
import type { Route } from '../../routing/router.js';
import { checkOptions, checkReason } from '../arguments.js';
import { blobKeys, type BlobSync, type SyncIndex, type SyncTarget } from '../blob-sync.js';
import type { UploadIndex, UploadTarget } from '../content-uploads.js';
import type { EntityMapping, VersionRecord, XronoxRecord } from '../collection-types.js';
import { ContentOffload, type PresentOptions } from '../content.js';
import type { DigestKey } from '../digests.js';
import { type Data, parseDocument, project, readPath, type RecordDocument } from '../documents.js';
import { checkActor, isSystemField } from '../lineage.js';
import { headDocument, isOffloaded } from '../offloaded.js';
import { headProblem, versionProblem } from '../tamper-check.js';

export interface ParsedCounterRule {
  name: string;
  on: ReadonlySet<'CREATE' | 'UPDATE' | 'DELETE'>;
  scope: 'meta' | 'payload';
  filter: FilterNode | null;
}

/**
 * The roles of the index store a collection uses: record reads and writes, leases (a restore),
 * head ids (verification), and what it hands on to the blob sync and the upload protocol.
 */
export type CollectionIndex = RecordIndex & Leases & Pick<IndexMaintenance, 'listHeadIds' | 'getCollectionVersion'> & SyncIndex & UploadIndex;

/** What a record collection is built on: its route, stores and limits (`CollectionContext` without its siblings). */
export interface RecordContext {
  route: Route;
  index: CollectionIndex;
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
  /** `integrity.verifyReads`: reads check what they return against its hash (default true). */
  verifyReads?: boolean;
  /** `integrity.digestKey`: signs and checks the collection's digests; none, no digests. */
  digestKey?: DigestKey;
}

/** Who makes a change, and why. */
export type Who = { actor: Actor; reason: string | null };
export type UniqueKey = { filter: FilterNode; claimKey: string; keys: string[] };

const DEFAULT_ACTOR = 'anonymous';

/** One collection of one routed database, as its jobs (writes, reads, restore, verify) see it. */
export class RecordAccess {
  readonly ctx: RecordContext;
  readonly ns: Namespace;
  /** The database as the blob sync, the upload protocol and offloaded reads see it. */
  readonly syncTarget: SyncTarget & UploadTarget;
  readonly content: ContentOffload;

  constructor(ctx: RecordContext) {
    this.ctx = ctx;
    this.ns = { dbName: ctx.route.dbName, collection: ctx.route.collection };
    this.content = new ContentOffload(ctx.route, ctx.blob, ctx.maxContentBytes, {
      queueOnFailure: ctx.queueBlobsOnFailure,
      pending: (bucket, key) => ctx.index.getPendingBlob(this.ns, bucket, key),
    });
    this.syncTarget = {
      index: ctx.index,
      blob: ctx.blob,
      dbName: ctx.route.dbName,
      versioned: ctx.route.policy.versioned,
      appendOnly: ctx.route.policy.appendOnly,
      blobs: ctx.route.blobs,
      deferVersions: ctx.deferVersions === true,
    };
  }

  get route(): Route {
    return this.ctx.route;
  }

  get index(): CollectionIndex {
    return this.ctx.index;
  }

  /**
   * The current record document of a head: its body, or for an offloaded head (`HeadRow.body`
   * empty) the records object, checked against the head (see `headDocument`). In a versioned
   * collection it is checked against the head's hash first: a `TamperError` instead of
   * tampered data, so no read serves it and no write builds on it.
   */
  async headDoc(head: HeadRow): Promise<RecordDocument> {
    const doc = await headDocument(this.syncTarget, this.ns, head);
    // An offloaded head was checked by headDocument, against the object it read.
    if (this.checksReads && !isOffloaded(head)) {
      const problem = await headProblem(this.index, this.ns, head, doc);
      if (problem) throw this.tampered(head.id, head.ov, `the head: ${problem}`);
    }
    return doc;
  }

  /**
   * The document of a version: its body in the index, or once archived its object in the
   * versions bucket, checked against the version entry's hash and columns (`TamperError`).
   */
  async readVersionDoc(row: VersionRow): Promise<RecordDocument> {
    const doc = await this.storedVersionDoc(row);
    if (!this.checksReads) return doc;
    const problem = await versionProblem(this.index, this.ns, row, doc);
    if (problem) throw this.tampered(row.id, row.ov, problem);
    return doc;
  }

  /** The document of a version as stored, unchecked (for `verify`, which reports instead). */
  async storedVersionDoc(row: VersionRow): Promise<RecordDocument> {
    if (row.body !== null) return parseDocument(row.body);
    const loc = this.route.blobs.versions;
    const bytes = loc ? await this.ctx.blob.get(loc.bucket, blobKeys.version(loc, this.route.collection, row.id, row.ov)) : null;
    if (!bytes) {
      throw new StorageError(this.ctx.blob.name, 'get', undefined, `Version ${row.ov} of ${row.id} is archived but its object is missing from the versions bucket`);
    }
    return parseDocument(Buffer.from(bytes).toString('utf8'));
  }

  /** Whether reads check what they return (a versioned collection, `integrity.verifyReads` not false). */
  get checksReads(): boolean {
    return this.route.policy.versioned && this.ctx.verifyReads !== false;
  }

  /** The error a read fails with instead of serving tampered data. */
  tampered(id: string, ov: number, reason: string): TamperError {
    return new TamperError(`${this.ns.dbName}/${this.ns.collection}`, id, ov, reason);
  }

  async versionRecord<T extends Data>(row: VersionRow): Promise<VersionRecord<T>> {
    const doc = await this.readVersionDoc(row);
    return {
      ...toRecord<T>(row.cv, doc, doc.deleted ? doc.at : null, undefined),
      op: doc.op,
      at: doc.at,
      actor: doc.actor,
      reason: doc.reason,
      functionId: doc.functionId ?? null,
    };
  }

  /** A record as returned to the caller: its content references presented as the options ask. */
  async present<R extends XronoxRecord>(record: R, options: PresentOptions): Promise<R> {
    if (!this.content.enabled) return record;
    return { ...record, data: await this.content.present(record.data, record.id, options) };
  }

  isFilterable(field: string): boolean {
    if (isSystemField(field)) return true;
    const map = this.route.collectionMap;
    if (!map || map.indexedProps.length === 0) return isValidName('property', field) && !field.includes('.') && !field.startsWith('_system');
    return map.indexedProps.includes(field);
  }

  requireVersioned(method: string): void {
    if (!this.route.policy.versioned) {
      throw new ValidationError(
        `${method} needs version history, which ${this.route.databaseType} does not keep${this.route.databaseType === 'runtime' ? ' (versioning.enabled is false)' : ''}`,
      );
    }
  }

  refuseAppendOnly(method: string): void {
    if (this.route.policy.appendOnly) throw new AppendOnlyError(this.route.databaseType, method);
  }

  /**
   * The unique key `uniqueKeys` (indexed properties) give `data`: the filter that finds the live
   * record holding it, and the claim that reserves it in a commit.
   */
  uniqueKey(data: Data, uniqueKeys: unknown): UniqueKey {
    if (!Array.isArray(uniqueKeys) || uniqueKeys.length === 0 || uniqueKeys.length > 8) {
      throw new ValidationError('uniqueKeys must list 1 to 8 indexed properties', { path: 'uniqueKeys' });
    }
    const pairs: Array<[string, string | number | boolean]> = [];
    for (const key of uniqueKeys) {
      if (typeof key !== 'string' || !this.isFilterable(key) || isSystemField(key)) {
        throw new ValidationError(`uniqueKeys: "${String(key)}" is not an indexed property of ${this.route.collection}`, { path: 'uniqueKeys' });
      }
      const value = readPath(data, key);
      if (typeof value !== 'string' && typeof value !== 'boolean' && !(typeof value === 'number' && Number.isFinite(value))) {
        throw new ValidationError(`data.${key} must hold a string, number or boolean to be used as a unique key`, { path: `data.${key}` });
      }
      pairs.push([key, value]);
    }
    pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const filter: FilterNode = { kind: 'and', items: pairs.map(([field, value]) => ({ kind: 'compare', field, op: '$eq', value })) };
    const claimKey = sha256Hex(JSON.stringify(pairs));
    return { filter, claimKey, keys: pairs.map(([key]) => key) };
  }
}

export function who(actor: unknown, reason: unknown): Who {
  return { actor: checkActor(actor) ?? DEFAULT_ACTOR, reason: checkReason(reason) };
}

export function toRecord<T extends Data>(cv: number, doc: RecordDocument, deletedAt: string | null, projection: readonly string[] | undefined): XronoxRecord<T> {
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

/** The entity mappings of `insertWithEntities` and `getWithEntities`. */
export function checkMappings(mappings: unknown): EntityMapping[] {
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
