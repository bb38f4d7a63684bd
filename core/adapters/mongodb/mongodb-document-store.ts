import { type Collection, type Document, type Filter, type IndexDescription, type MongoClient, type MongoClientOptions, MongoServerError, ObjectId } from 'mongodb';
import type { CollectionSpec, Doc, DocFilter, DocumentStore, FindOptions, IndexInfo, IndexKey, IndexSpec, SortSpec, StoredDocument, WriteOptions } from '../../contracts/document-store.js';
import type { Namespace } from '../../contracts/index-store.js';
import { ConflictError, DuplicateKeyError, ValidationError } from '../../errors.js';
import { valueAtPath } from '../../foundation/filter.js';
import { acquireMongoClient } from './mongodb-client-pool.js';
import { documentPath, toMongoDocumentFilter, toMongoSort } from './mongodb-filter.js';
import { MONGODB_DOCUMENT_STORE_MEMBERS } from './mongodb-settings.js';
import { buildIndexes, checkServer } from './mongodb-setup.js';

export interface MongoDocumentStoreOptions {
  uri: string;
  /** Extra driver options; durability defaults are in `mongodb-client-pool.ts`. */
  clientOptions?: MongoClientOptions;
  /** The clock that decides which documents reads skip as expired. Default: the system clock. */
  now?: () => Date;
  /** Where the connection is configured, named by the errors about the server (e.g. `dbConnections.primary.mongoUri`). */
  configPath?: string;
}

const DUPLICATE_KEY = 11000;
const NAMESPACE_NOT_FOUND = 26;
/** Index option or key conflicts: an index of that name exists with another definition. */
const INDEX_CONFLICTS = new Set(['IndexOptionsConflict', 'IndexKeySpecsConflict']);
/** Documents copied per `insertMany` by `replaceCollections`. */
const COPY_BATCH = 1000;
/** Racing upserts of one new key: each retry finds the winner's document and replaces it. */
const MAX_UPSERT_ATTEMPTS = 5;
/**
 * `_id`s are the server's ObjectIds (as upserts' always are), not the client's: the primary
 * makes them in the order it receives inserts (a second, then a counter), so `_id` order is
 * insertion order across every process, as SQLite's row ids are. Client ObjectIds would order
 * inserts of the same second by each process's random value instead.
 */
const SERVER_IDS = { forceServerObjectId: true } as const;
/** Every read hides the store's own fields. */
const PROJECTION = { _id: 0, _xronox: 0 } as const;

/** The index that makes the store's own expiry native: a TTL index on the hidden `_xronox.expiresAt`. */
export const EXPIRY_FIELD = '_xronox.expiresAt';
export const EXPIRY_INDEX_NAME = 'xronox_expiry';

/**
 * The MongoDB document store: collections named exactly as declared (`shared_memory`, `users`…)
 * in the tenant's database, with the declared indexes created by `createIndexes` (unique, sparse,
 * descending) and one TTL index of its own on `_xronox.expiresAt`, a field kept outside what
 * callers see (reads project it and `_id` away). Every write is one single-document operation;
 * the client is the process-wide one of `mongodb-client-pool.ts`, connected by `open` (which the
 * core's guard calls before the first use), which refuses the servers the index store refuses.
 */
export class MongoDocumentStore implements DocumentStore {
  readonly name = MONGODB_DOCUMENT_STORE_MEMBERS.name;
  readonly capabilities = MONGODB_DOCUMENT_STORE_MEMBERS.capabilities;
  readonly #client: MongoClient;
  readonly #connect: () => Promise<Document>;
  readonly #configPath: string;
  readonly #release: () => Promise<void>;
  readonly #now: () => Date;
  readonly #uniques = new Map<string, readonly IndexSpec[]>();

  constructor(options: MongoDocumentStoreOptions) {
    const { client, connect, release } = acquireMongoClient(options.uri, options.clientOptions);
    this.#client = client;
    this.#connect = connect;
    this.#release = release;
    this.#now = options.now ?? (() => new Date());
    this.#configPath = options.configPath ?? 'mongoUri';
  }

  /**
   * Connects the process-wide client. The guard calls it before the first other call, and again
   * after a failure: the driver's own implicit connect on first use would close the client for
   * good when the server is unreachable at that moment (see `mongodb-client-pool.ts`). Refuses, as
   * the index store does, a standalone server or one older than 5.0 (`ConfigError`).
   */
  async open(): Promise<void> {
    checkServer(await this.#connect(), this.#configPath);
  }

  /**
   * Lists the collection's indexes first: when every declared one (and the expiry index) is there
   * as declared, nothing is created, so a user without the right to create indexes can run on
   * collections `xronox migrate` made. Otherwise `createIndexes` (it creates the collection too).
   */
  async ensureCollection(ns: Namespace, spec: CollectionSpec): Promise<void> {
    const c = this.#collection(ns);
    const present = await c.listIndexes().toArray().catch((err: unknown) => {
      if (err instanceof MongoServerError && err.code === NAMESPACE_NOT_FOUND) return [];
      throw err;
    });
    const held = new Set(present.map((i) => (i.name === EXPIRY_INDEX_NAME ? EXPIRY_INDEX_NAME : JSON.stringify(fromMongoIndex(i)))));
    const declared = [...spec.indexes.map((i) => JSON.stringify({ name: i.name, keys: i.keys, unique: i.unique === true, sparse: i.sparse === true })), EXPIRY_INDEX_NAME];
    try {
      if (!declared.every((d) => held.has(d))) await buildIndexes(c, toMongoIndexes(spec.indexes));
    } catch (err) {
      if (err instanceof MongoServerError && INDEX_CONFLICTS.has(err.codeName ?? '')) {
        throw new ConflictError(`An index of ${ns.dbName}.${ns.collection} exists with another definition (${err.message}); drop it to recreate it as declared`, { cause: err });
      }
      throw err;
    }
    this.#uniques.set(key(ns), spec.indexes.filter((i) => i.unique));
  }

  async listIndexes(ns: Namespace): Promise<IndexInfo[]> {
    try {
      const indexes = await this.#collection(ns).listIndexes().toArray();
      return indexes.map(fromMongoIndex).filter((i): i is IndexInfo => i !== null).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } catch (err) {
      if (err instanceof MongoServerError && err.code === NAMESPACE_NOT_FOUND) return [];
      throw err;
    }
  }

  async insertOne(ns: Namespace, doc: Doc, options: WriteOptions = {}): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#collection(ns).insertOne(stored(doc, options));
        return;
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        // An expired document (not yet removed by the TTL monitor) must not hold the key.
        if (attempt === 0 && (await this.#purgeExpiredConflicts(ns, doc)) > 0) continue;
        throw this.#duplicate(ns, err);
      }
    }
  }

  async upsertOne(ns: Namespace, filter: DocFilter, doc: Doc, options: WriteOptions = {}): Promise<{ created: boolean }> {
    const query = toMongoDocumentFilter(filter);
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.#collection(ns).replaceOne(query, stored(doc, options), { upsert: true });
        return { created: result.upsertedCount === 1 };
      } catch (err) {
        if (!isDuplicateKey(err) || attempt >= MAX_UPSERT_ATTEMPTS) throw isDuplicateKey(err) ? this.#duplicate(ns, err) : err;
        // Either a racing upsert inserted the key first (the retry replaces its document), an
        // expired document holds it (purged, then retried), or another document holds a unique
        // key of `doc` (a real conflict, reported now).
        if ((await this.#purgeExpiredConflicts(ns, doc)) > 0) continue;
        if ((await this.#collection(ns).countDocuments(query, { limit: 1 })) === 0) throw this.#duplicate(ns, err);
      }
    }
  }

  async findOne(ns: Namespace, filter: DocFilter | null, options: { sort?: SortSpec } = {}): Promise<Doc | null> {
    const [doc] = await this.find(ns, filter, { ...options, limit: 1 });
    return doc ?? null;
  }

  async find(ns: Namespace, filter: DocFilter | null, options: FindOptions): Promise<Doc[]> {
    if (!Number.isSafeInteger(options.limit) || options.limit < 1) throw new ValidationError('limit must be a positive integer', { path: 'limit' });
    const docs = await this.#collection(ns)
      .find(this.#live(filter), { projection: PROJECTION, sort: toMongoSort(options.sort), limit: options.limit })
      .toArray();
    return docs as Doc[];
  }

  /** The first match in insertion order, as on SQLite (a plain `deleteOne` takes whichever the query plan meets first). */
  async deleteOne(ns: Namespace, filter: DocFilter): Promise<number> {
    return (await this.#collection(ns).findOneAndDelete(this.#live(filter), { sort: { _id: 1 }, projection: { _id: 1 } })) ? 1 : 0;
  }

  async deleteMany(ns: Namespace, filter: DocFilter | null): Promise<number> {
    return (await this.#collection(ns).deleteMany(this.#live(filter))).deletedCount;
  }

  async deleteExpired(ns: Namespace, now: Date): Promise<number> {
    return (await this.#collection(ns).deleteMany({ [EXPIRY_FIELD]: { $lte: now } })).deletedCount;
  }

  async exportDocuments(ns: Namespace, options: { after?: string; limit: number }): Promise<{ documents: StoredDocument[]; next: string | null }> {
    if (!Number.isSafeInteger(options.limit) || options.limit < 1) throw new ValidationError('limit must be a positive integer', { path: 'limit' });
    if (options.after !== undefined && !ObjectId.isValid(options.after)) {
      throw new ValidationError(`Invalid export cursor ${JSON.stringify(options.after).slice(0, 40)}`, { path: 'after' });
    }
    // `_id` order is insertion order (`SERVER_IDS`), and a total order: no document present for
    // the whole export is skipped or seen twice.
    const query = options.after === undefined ? {} : { _id: { $gt: new ObjectId(options.after) } };
    const rows = await this.#collection(ns).find(query, { sort: { _id: 1 }, limit: options.limit }).toArray();
    return {
      documents: rows.map(({ _id, _xronox, ...doc }) => ({ doc: doc as Doc, expiresAt: (_xronox as { expiresAt?: Date } | undefined)?.expiresAt ?? null })),
      next: rows.length < options.limit ? null : String(rows[rows.length - 1]!._id),
    };
  }

  async importDocuments(ns: Namespace, documents: readonly StoredDocument[]): Promise<void> {
    if (documents.length === 0) return;
    try {
      await this.#collection(ns).insertMany(
        documents.map((d) => stored(d.doc, d.expiresAt === null ? {} : { expiresAt: d.expiresAt })),
        { ordered: true },
      );
    } catch (err) {
      throw isDuplicateKey(err) ? this.#duplicate(ns, err) : err;
    }
  }

  async clearCollection(ns: Namespace): Promise<number> {
    return (await this.#collection(ns).deleteMany({})).deletedCount;
  }

  async countDocuments(ns: Namespace): Promise<number> {
    return this.#collection(ns).countDocuments({});
  }

  /**
   * Not one transaction (a restore may be larger than a MongoDB transaction can be): collection
   * by collection, emptied and then filled with copies of the staging area's documents, `_id`s
   * (so insertion order) and expiry included. Calling again after a cut-off finishes the job.
   */
  async replaceCollections(dbName: string, replacements: ReadonlyArray<{ collection: string; from: string | null }>, options: { onlyIfEmpty: boolean }): Promise<{ replaced: boolean; held: number }> {
    let held = 0;
    for (const r of replacements) held += await this.#collection({ dbName, collection: r.collection }).countDocuments({});
    if (options.onlyIfEmpty && held > 0) return { replaced: false, held };
    for (const r of replacements) {
      const live = this.#collection({ dbName, collection: r.collection });
      await live.deleteMany({});
      if (r.from === null) continue;
      let batch: Document[] = [];
      for await (const doc of this.#collection({ dbName: r.from, collection: r.collection }).find({}).sort({ _id: 1 })) {
        batch.push(doc);
        if (batch.length >= COPY_BATCH) {
          await live.insertMany(batch, { ordered: true });
          batch = [];
        }
      }
      if (batch.length > 0) await live.insertMany(batch, { ordered: true });
    }
    return { replaced: true, held };
  }

  async ping(): Promise<void> {
    await this.#client.db('admin').command({ ping: 1 });
  }

  async close(): Promise<void> {
    await this.#release();
  }

  /** The caller's filter, restricted to documents that have not expired. */
  #live(filter: DocFilter | null): Filter<Document> {
    const live: Filter<Document> = { [EXPIRY_FIELD]: { $not: { $lte: this.#now() } } };
    const query = toMongoDocumentFilter(filter);
    return Object.keys(query).length === 0 ? live : { $and: [live, query] };
  }

  async #purgeExpiredConflicts(ns: Namespace, doc: Doc): Promise<number> {
    const clauses: Array<Filter<Document>> = [];
    for (const index of this.#uniques.get(key(ns)) ?? []) {
      const values = index.keys.map(([f]) => valueAtPath(doc, f));
      if (values.some((v) => v === undefined)) continue;
      clauses.push(Object.fromEntries(index.keys.map(([f], n) => [f, { $eq: values[n] }])));
    }
    if (clauses.length === 0) return 0;
    const result = await this.#collection(ns).deleteMany({ $and: [{ [EXPIRY_FIELD]: { $lte: this.#now() } }, { $or: clauses }] });
    return result.deletedCount;
  }

  #duplicate(ns: Namespace, err: unknown): DuplicateKeyError {
    const e = err as MongoServerError;
    return new DuplicateKeyError(ns.collection, duplicateKeyIndex(e, this.#uniques.get(key(ns)) ?? []) ?? 'unique', { cause: err });
  }

  #collection(ns: Namespace): Collection<Document> {
    return this.#client.db(ns.dbName, SERVER_IDS).collection(ns.collection);
  }
}

function stored(doc: Doc, options: WriteOptions): Document {
  return options.expiresAt === undefined ? { ...doc } : { ...doc, _xronox: { expiresAt: options.expiresAt } };
}

function key(ns: Namespace): string {
  return `${ns.dbName}\u0000${ns.collection}`;
}

function isDuplicateKey(err: unknown): err is MongoServerError {
  return err instanceof MongoServerError && err.code === DUPLICATE_KEY;
}

/** `createIndexes` descriptions of a spec's indexes, plus the expiry TTL index. No collation, ever (see `mongodb-filter.ts`). */
export function toMongoIndexes(indexes: readonly IndexSpec[]): IndexDescription[] {
  return [
    ...indexes.map((i): IndexDescription => ({
      key: Object.fromEntries(i.keys.map(([f, dir]) => [documentPath(f), dir === -1 ? -1 : 1])),
      name: i.name,
      ...(i.unique ? { unique: true } : {}),
      ...(i.sparse ? { sparse: true } : {}),
    })),
    { key: { [EXPIRY_FIELD]: 1 }, name: EXPIRY_INDEX_NAME, expireAfterSeconds: 0 },
  ];
}

/** An index as `listIndexes` reports it, in the port's shape; `null` for `_id_` and the store's own. */
export function fromMongoIndex(index: Document): IndexInfo | null {
  if (index.name === '_id_' || index.name === EXPIRY_INDEX_NAME) return null;
  const keys = Object.entries((index.key ?? {}) as Record<string, unknown>).map(([f, dir]): IndexKey => [f, Number(dir) === -1 ? -1 : 1]);
  return { name: String(index.name), keys, unique: index.unique === true, sparse: index.sparse === true };
}

/**
 * The name of the index behind a duplicate-key error (code 11000): from the server's message
 * (`E11000 duplicate key error collection: db.c index: key_1_namespace_1 dup key: …`), else by
 * matching its `keyPattern` against the declared indexes; `null` when neither tells.
 */
export function duplicateKeyIndex(err: { errmsg?: unknown; message?: unknown; keyPattern?: unknown }, declared: readonly IndexSpec[]): string | null {
  for (const text of [err.errmsg, err.message]) {
    const m = typeof text === 'string' ? / index: (\S+) dup key/.exec(text) : null;
    if (m) return m[1]!;
  }
  if (err.keyPattern && typeof err.keyPattern === 'object') {
    const fields = Object.keys(err.keyPattern);
    const hit = declared.find((i) => i.unique && i.keys.length === fields.length && i.keys.every(([f], n) => f === fields[n]));
    if (hit) return hit.name;
  }
  return null;
}
