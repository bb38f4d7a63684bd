import type { Collection, Document, Filter, MongoClientOptions, Sort, WithId } from 'mongodb';
import type { IndexDriver, OutboxQuery, Transaction, VersionRange } from '../../contracts/index-driver.js';
import type {
  ActorQuery,
  AsOfQuery,
  CounterWindow,
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
} from '../../contracts/index-store.js';
import { byteOrder, namespaceOrder } from '../../store/driver-kit.js';
import { acquireMongoClient, type PooledMongoClient } from './mongodb-client-pool.js';
import { type CounterDoc, type DeadLetterDoc, type HeadDoc, headRowOf, HISTORY_PROJECTION, historyRowOf, type OutboxDoc, type PendingBlobDoc, pendingBlobOf, type VersionDoc, versionRowOf } from './mongodb-documents.js';
import { type IndexedFields, toMongoFilter } from './mongodb-filter.js';
import { coll, COLLECTION_SUFFIXES, type CollectionRole, collectionName, type CollRef, CV_DOC_ID, eq, type IndexSettings, pendingBlobId, queue, QUEUE_COLLECTIONS, type QueueRole, recordKey, TOTALS_DOC_ID, WINDOW_DOC_PREFIX, windowIdRange } from './mongodb-layout.js';
import { checkServer, MongoSetup } from './mongodb-setup.js';
import { BULK_WRITE_COMMAND_WIRE_VERSION, clientPort, counterCollections, IMPORT_LIMIT, MongoPlanExecutor } from './mongodb-transaction.js';

export interface MongoIndexDriverOptions {
  uri: string;
  /** The indexes of a collection (from `collectionMaps[c].indexedProps`). */
  indexSettings?: (collection: string) => IndexSettings;
  /** Name of the dead-letter collection (`fallback.deadLetterCollection`). Default `xronox_dead_letters`. */
  deadLetterCollection?: string;
  /** Where the connection is configured, named by the errors about the server (e.g. `dbConnections.primary.mongoUri`). */
  configPath?: string;
  /** Collections `prepareDatabase` creates in every database it prepares (the keys of `collectionMaps`). */
  collections?: readonly string[];
  /** Extra driver options; they win over the URI's, which win over the defaults of `mongodb-client-pool.ts`. */
  clientOptions?: MongoClientOptions;
  /** `false`: never MongoDB 8.0's bulkWrite command, one `bulkWrite` per collection (default: when the server has it). */
  bulkWriteCommand?: boolean;
}

/**
 * The production index driver on the official MongoDB driver, laid out as the product documents
 * describe (`mongodb-layout.ts`). Reads are single queries on the indexes of the layout; every
 * write is one plan executed as one multi-document transaction (`mongodb-transaction.ts`). A
 * standalone server, or one older than 5.0, is refused when the driver opens.
 */
export class MongoIndexDriver implements IndexDriver {
  readonly name = 'mongodb';
  readonly multiProcess = true;
  readonly concurrentNamespaces = true;
  /** A restore may exceed one transaction's limits (60 s, its size): replaced collection by collection. */
  readonly replacesInOneTransaction = false;
  readonly importLimit = IMPORT_LIMIT;
  readonly #pooled: PooledMongoClient;
  readonly #setup: MongoSetup;
  readonly #deadLetters: string;
  readonly #indexSettings: (collection: string) => IndexSettings;
  readonly #configPath: string;
  readonly #bulkWriteCommand: boolean;
  readonly #collections: readonly string[];
  #executor: MongoPlanExecutor | undefined;

  constructor(options: MongoIndexDriverOptions) {
    this.#pooled = acquireMongoClient(options.uri, options.clientOptions);
    this.#deadLetters = options.deadLetterCollection ?? QUEUE_COLLECTIONS.deadLetters;
    this.#indexSettings = options.indexSettings ?? (() => ({ indexedProps: [] }));
    this.#configPath = options.configPath ?? 'mongoUri';
    this.#bulkWriteCommand = options.bulkWriteCommand ?? true;
    this.#collections = options.collections ?? [];
    this.#setup = new MongoSetup(this.#pooled.client, { deadLetterCollection: this.#deadLetters, indexSettings: this.#indexSettings });
  }

  /** Connects, and refuses a server that cannot run the store: a standalone server, or one older than 5.0. */
  async open(): Promise<void> {
    const hello = await this.#pooled.connect();
    checkServer(hello, this.#configPath);
    const bulkWriteCommand = this.#bulkWriteCommand && (hello.maxWireVersion as number) >= BULK_WRITE_COMMAND_WIRE_VERSION;
    this.#executor ??= new MongoPlanExecutor(clientPort(this.#pooled.client, bulkWriteCommand), this.#setup, this.#deadLetters);
  }

  async close(): Promise<void> {
    await this.#pooled.release();
  }

  /**
   * `xronox migrate`: the database's queues, and every collection of each configured collection,
   * with their indexes, waiting for the builds; collections written before get the indexes added
   * since (a new `indexedProps` entry). So the user the service runs as never creates anything.
   */
  async prepareDatabase(dbName: string): Promise<boolean> {
    const roles = (c: string) => (Object.keys(COLLECTION_SUFFIXES) as CollectionRole[]).map((role) => coll({ dbName, collection: c }, role));
    const queues = (Object.keys(QUEUE_COLLECTIONS) as QueueRole[]).map((which) => queue(dbName, which, this.#deadLetters));
    const written = (await counterCollections(this.#pooled.client, dbName)).filter((c) => !this.#collections.includes(c));
    const created = await this.#setup.prepare([...queues, ...this.#collections.flatMap(roles)]);
    return (await this.#setup.prepare(written.flatMap(roles), true)) || created;
  }

  async ping(): Promise<void> {
    await this.#pooled.client.db('admin').command({ ping: 1 });
  }

  async transact<T>(tx: Transaction<T>): Promise<T> {
    if (!this.#executor) await this.open();
    return this.#executor!.transact(tx);
  }

  // ---- record reads ----------------------------------------------------------------------------

  async getHead(ns: Namespace, id: string): Promise<HeadRow | null> {
    const heads = coll(ns, 'head');
    const doc = await this.#coll<HeadDoc>(heads).findOne({ _id: eq(id) });
    return doc ? headRowOf(doc, heads) : null;
  }

  async listVersions(ns: Namespace, id: string, range: VersionRange): Promise<VersionRow[]> {
    const { filter, sort, limit } = versionQuery(id, range);
    return (await page(await this.#versions(ns), filter, sort, limit)).map(versionRowOf);
  }

  async listHistory(ns: Namespace, id: string, range: { beforeOv?: number; limit: number }): Promise<HistoryRow[]> {
    const { filter, sort } = versionQuery(id, range);
    return (await page<VersionDoc, Pick<VersionDoc, keyof HistoryRow>>(await this.#versions(ns), filter, sort, range.limit, HISTORY_PROJECTION)).map(historyRowOf);
  }

  async listHeads(ns: Namespace, query: HeadQuery): Promise<HeadRow[]> {
    const heads = coll(ns, 'head');
    const and: Array<Filter<HeadDoc>> = [];
    if (!query.includeDeleted) and.push({ deleted: false });
    if (query.filter) and.push(toMongoFilter(query.filter, this.#indexedFields(ns)) as Filter<HeadDoc>);
    const field = query.sort.field === 'id' ? '_id' : query.sort.field;
    const cmp = query.sort.direction === 1 ? '$gt' : '$lt';
    if (query.after) {
      const { value, id } = query.after;
      and.push(field === '_id' ? { _id: { [cmp]: id } } : { $or: [{ [field]: { [cmp]: value } }, { [field]: eq(value), _id: { [cmp]: id } }] });
    }
    const sort: Sort = field === '_id' ? { _id: query.sort.direction } : { [field]: query.sort.direction, _id: query.sort.direction };
    return (await page(this.#coll<HeadDoc>(heads), and.length > 0 ? { $and: and } : {}, sort, query.limit)).map((d) => headRowOf(d, heads));
  }

  async listHeadIds(ns: Namespace, query: { afterId?: string; limit: number }): Promise<string[]> {
    const after = query.afterId === undefined ? {} : { _id: { $gt: query.afterId } };
    return (await page<HeadDoc, { _id: string }>(this.#coll(coll(ns, 'head')), after, { _id: 1 }, query.limit, { _id: 1 })).map((d) => d._id);
  }

  async queryAt(ns: Namespace, query: AsOfQuery): Promise<VersionRow[]> {
    if (query.limit <= 0) return [];
    await this.#setup.verify(ns);
    const match: Array<Filter<VersionDoc>> = [];
    if (!query.includeDeleted) match.push({ deleted: false });
    if (query.filter) match.push(toMongoFilter(query.filter, this.#indexedFields(ns)) as Filter<VersionDoc>);
    // Heads in id order drive one index seek per record into `{c}_ver` (by_time), as in SQLite.
    const asOf = [{ $match: { at: { $lte: query.at } } }, { $sort: { at: -1, ov: -1 } }, { $limit: 1 }];
    const pipeline: Document[] = [
      { $match: query.afterId === undefined ? {} : { _id: { [query.direction === 1 ? '$gt' : '$lt']: query.afterId } } },
      { $sort: { _id: query.direction } },
      { $lookup: { from: collectionName(ns.collection, 'ver'), localField: '_id', foreignField: 'id', pipeline: asOf, as: 'asOf' } },
      { $unwind: '$asOf' },
      { $replaceRoot: { newRoot: '$asOf' } },
      ...(match.length > 0 ? [{ $match: { $and: match } }] : []),
      { $limit: query.limit },
    ];
    return (await this.#coll(coll(ns, 'head')).aggregate<VersionDoc>(pipeline).toArray()).map(versionRowOf);
  }

  async listVersionsByActor(ns: Namespace, actorId: string, query: ActorQuery): Promise<VersionRow[]> {
    const and: Array<Filter<VersionDoc>> = [{ actorId: eq(actorId) }];
    if (query.actorType !== undefined) and.push({ actorType: eq(query.actorType) });
    if (query.from !== undefined) and.push({ at: { $gte: query.from } });
    if (query.to !== undefined) and.push({ at: { $lte: query.to } });
    if (query.before) {
      const b = query.before;
      and.push({ $or: [{ at: { $lt: b.at } }, { at: eq(b.at), id: { $lt: b.id } }, { at: eq(b.at), id: eq(b.id), ov: { $lt: b.ov } }] });
    }
    return (await page(await this.#versions(ns), { $and: and }, { at: -1, id: -1, ov: -1 }, query.limit)).map(versionRowOf);
  }

  async listClaims(ns: Namespace, query: { key?: string; afterKey?: string; limit: number }): Promise<Array<{ key: string; id: string }>> {
    const filter = query.key !== undefined ? { _id: eq(query.key) } : query.afterKey !== undefined ? { _id: { $gt: query.afterKey } } : {};
    return (await page(this.#coll<{ _id: string; id: string }>(coll(ns, 'claims')), filter, { _id: 1 }, query.limit)).map((d) => ({ key: d._id, id: d.id }));
  }

  async listPendingBlobs(ns: Namespace, id: string | null, query?: { bucket: string; key: string }): Promise<PendingBlob[]> {
    const filter: Filter<PendingBlobDoc> = query ? { _id: eq(pendingBlobId(ns.collection, query.bucket, query.key)) } : { coll: eq(ns.collection) };
    if (id !== null) filter.id = eq(id);
    const docs = await this.#coll<PendingBlobDoc>(queue(ns.dbName, 'pendingBlobs')).find(filter).sort({ key: 1 }).toArray();
    return docs.map(pendingBlobOf);
  }

  /**
   * One aggregation over a page of heads in id order (every record with version entries has a
   * head): each one's entries grouped through the `by_record` index, heads without entries
   * skipped, and the entry after the oldest looked up. A page costs its records, not the namespace.
   */
  async summariseVersions(ns: Namespace, query: { afterId?: string; limit: number }): Promise<VersionSummary[]> {
    if (query.limit <= 0) return [];
    await this.#setup.verify(ns);
    const from = collectionName(ns.collection, 'ver');
    const next = [{ $match: { $expr: { $and: [{ $eq: ['$id', '$$id'] }, { $eq: ['$ov', '$$ov'] }] } } }, { $project: { _id: 0, at: 1 } }, { $limit: 1 }];
    const rows = await this.#coll(coll(ns, 'head'))
      .aggregate<{ _id: string; v: { count: number; lo: number; hi: number }; next: Array<{ at: string }> }>([
        { $match: query.afterId === undefined ? {} : { _id: { $gt: query.afterId } } },
        { $sort: { _id: 1 } },
        { $project: { _id: 1 } },
        { $lookup: { from, localField: '_id', foreignField: 'id', pipeline: [{ $group: { _id: null, count: { $sum: 1 }, lo: { $min: '$ov' }, hi: { $max: '$ov' } } }], as: 'v' } },
        { $unwind: '$v' },
        { $limit: query.limit },
        { $lookup: { from, let: { id: '$_id', ov: { $add: ['$v.lo', 1] } }, pipeline: next, as: 'next' } },
      ])
      .toArray();
    return rows.map((r) => ({ id: r._id, count: r.v.count, oldestOv: r.v.lo, newestOv: r.v.hi, oldestSupersededAt: r.next[0]?.at ?? null }));
  }

  // ---- the sync outbox -------------------------------------------------------------------------

  async listOutbox(dbName: string, query: OutboxQuery): Promise<PendingSync[]> {
    const filter: Filter<OutboxDoc> = {};
    if (query.collection !== undefined) filter.coll = eq(query.collection);
    if (query.collection !== undefined && query.id !== undefined) filter._id = eq(recordKey(query.collection, query.id));
    else if (query.order === 'id' && query.collection !== undefined) {
      // An outbox `_id` is `{collection}/{id}`: the collection's entries are the `_id` range from
      // `{collection}/` up to `{collection}0` ('0' follows '/'), in id order, on the `_id` index.
      filter._id = { $gt: recordKey(query.collection, query.afterId ?? ''), $lt: `${query.collection}0` };
    }
    if (query.maxSeq !== undefined) filter.seq = { $lte: query.maxSeq };
    const docs = await page(this.#coll<OutboxDoc>(queue(dbName, 'outbox')), filter, query.order === 'id' ? { _id: 1 } : { order: 1 }, query.limit);
    return docs.map((d) => ({ collection: d.coll, id: d.id, seq: d.seq }));
  }

  async listDeadLetters(dbName: string, query: { limit: number }): Promise<DeadLetter[]> {
    const docs = await page(this.#coll<DeadLetterDoc>(this.#deadLetterQueue(dbName)), {}, { failedAt: 1, _id: 1 }, query.limit);
    return docs.map((d) => ({ collection: d.coll, id: d.id, reason: d.reason, failedAt: d.failedAt }));
  }

  async listPendingDatabases(): Promise<string[]> {
    return this.#databasesHolding((db) => queue(db, 'outbox'));
  }

  async listDeadLetterDatabases(): Promise<string[]> {
    return this.#databasesHolding((db) => this.#deadLetterQueue(db));
  }

  // ---- counters and namespaces -------------------------------------------------------------------

  async getCounters(dbName: string, collection: string): Promise<Record<string, number>> {
    const doc = await this.#coll<CounterDoc>(coll({ dbName, collection }, 'counter')).findOne({ _id: eq(TOTALS_DOC_ID) });
    return { ...(doc?.counts ?? {}) };
  }

  async getCounterWindows(dbName: string, collection: string, query: CounterWindowQuery): Promise<CounterWindow[]> {
    const range = windowIdRange(query.granularity, { ...(query.from !== undefined ? { from: query.from } : {}), ...(query.to !== undefined ? { to: query.to } : {}) });
    const docs = await this.#coll<CounterDoc>(coll({ dbName, collection }, 'counter')).find({ _id: range }).sort({ _id: 1 }).toArray();
    return docs.map((d) => ({ window: d._id.slice(WINDOW_DOC_PREFIX.length), counts: { ...(d.counts ?? {}) } }));
  }

  /** Namespaces with a collection version: those whose `{c}_counter` holds the `cv` document. */
  async listNamespaces(dbName?: string): Promise<Array<Namespace & { cv: number }>> {
    const out: Array<Namespace & { cv: number }> = [];
    for (const db of dbName === undefined ? await this.#databases() : [dbName]) {
      const collections = await counterCollections(this.#pooled.client, db);
      // The `cv` documents, 50 collections per aggregation (`$unionWith`).
      const branch = (c: string) => [{ $match: { _id: CV_DOC_ID } }, { $project: { _id: 0, seq: 1, c: { $literal: c } } }];
      for (let i = 0; i < collections.length; i += 50) {
        const [first, ...rest] = collections.slice(i, i + 50) as [string, ...string[]];
        const pipeline = [...branch(first), ...rest.map((c) => ({ $unionWith: { coll: collectionName(c, 'counter'), pipeline: branch(c) } }))];
        const docs = await this.#coll(coll({ dbName: db, collection: first }, 'counter')).aggregate<{ seq?: unknown; c: string }>(pipeline).toArray();
        for (const d of docs) if (typeof d.seq === 'number') out.push({ dbName: db, collection: d.c, cv: d.seq - 1 });
      }
    }
    return out.sort(namespaceOrder);
  }

  async listUnarchivedRecords(dbName: string, query: { writtenBefore: string; after?: { collection: string; id: string }; limit: number }): Promise<UnarchivedRecord[]> {
    const out: UnarchivedRecord[] = [];
    for (const { collection } of await this.listNamespaces(dbName)) {
      if (out.length >= query.limit) break;
      if (query.after && byteOrder(collection, query.after.collection) < 0) continue;
      const afterId = query.after && collection === query.after.collection ? query.after.id : undefined;
      // `archived: false` is the partial `unarchived` index: archived history is never read.
      const rows = await (await this.#versions({ dbName, collection }))
        .aggregate<{ _id: string; oldest: string }>([
          { $match: { archived: false, ...(afterId === undefined ? {} : { id: { $gt: afterId } }) } },
          { $group: { _id: '$id', oldest: { $min: '$at' } } },
          { $match: { oldest: { $lte: query.writtenBefore } } },
          { $sort: { _id: 1 } },
          { $limit: query.limit - out.length },
        ])
        .toArray();
      out.push(...rows.map((r) => ({ collection, id: r._id, oldestAt: r.oldest })));
    }
    return out;
  }

  // ---- plumbing ---------------------------------------------------------------------------------

  /** Databases whose queue collection holds anything: one `findOne` each. */
  async #databasesHolding(queueOf: (db: string) => CollRef): Promise<string[]> {
    const out: string[] = [];
    for (const db of await this.#databases()) if (await this.#coll(queueOf(db)).findOne({}, { projection: { _id: 1 } })) out.push(db);
    return out.sort(byteOrder);
  }

  async #databases(): Promise<string[]> {
    const { databases } = await this.#pooled.client.db('admin').admin().listDatabases({ nameOnly: true, authorizedDatabases: true });
    return databases.map((d) => d.name).filter((name) => name !== 'admin' && name !== 'local' && name !== 'config');
  }

  #deadLetterQueue(db: string): CollRef {
    return queue(db, 'deadLetters', this.#deadLetters);
  }

  /**
   * The properties a filter may name, checked again here so that nothing unindexed or unsafe
   * reaches the driver even if a caller skipped the engine's validation. With no `indexedProps`
   * every top-level property is indexed (the engine's rule; a wildcard index serves it).
   */
  #indexedFields(ns: Namespace): IndexedFields {
    const props = this.#indexSettings(ns.collection).indexedProps;
    if (props.length > 0) return new Set(props);
    return (field) => !field.includes('.') && !field.startsWith('_system');
  }

  /** The version entries of a namespace, once it is checked for leftovers of the standalone protocol. */
  async #versions(ns: Namespace): Promise<Collection<VersionDoc>> {
    await this.#setup.verify(ns);
    return this.#coll<VersionDoc>(coll(ns, 'ver'));
  }

  #coll<T extends Document = Document>(ref: CollRef): Collection<T> {
    return this.#pooled.client.db(ref.db).collection<T>(ref.name);
  }
}

/** Up to `limit` documents in `sort` order: none for a limit of 0, which the driver would read as "no limit". */
async function page<T extends Document, R = WithId<T>>(c: Collection<T>, filter: Filter<T>, sort: Sort, limit: number | undefined, projection?: Document): Promise<R[]> {
  if (limit !== undefined && limit <= 0) return [];
  const cursor = c.find(filter, projection ? { projection } : {}).sort(sort);
  return (await (limit === undefined ? cursor : cursor.limit(limit)).toArray()) as R[];
}

/** The filter, order and limit of a `listVersions` range. */
export function versionQuery(id: string, range: VersionRange): { filter: Filter<VersionDoc>; sort: Sort; limit: number | undefined } {
  const filter: Filter<VersionDoc> = { id: eq(id) };
  const ov: { $lt?: number; $gt?: number } = {};
  if (range.beforeOv !== undefined) ov.$lt = range.beforeOv;
  if (range.afterOv !== undefined) ov.$gt = range.afterOv;
  if (ov.$lt !== undefined || ov.$gt !== undefined) filter.ov = ov;
  if (range.unarchived) filter.archived = false;
  if (range.at === undefined) return { filter, sort: { ov: range.order === 'asc' ? 1 : -1 }, limit: range.limit };
  // The newest entry at the point: by time on `by_time`, by collection version on `by_cv`.
  if ('at' in range.at) return { filter: { ...filter, at: { $lte: range.at.at } }, sort: { at: -1, ov: -1 }, limit: 1 };
  return { filter: { ...filter, cv: { $lte: range.at.cv } }, sort: { cv: -1 }, limit: 1 };
}
