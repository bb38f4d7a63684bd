import type { ClientSession, Collection, Document, Filter, MongoClient, MongoClientOptions, Sort, TransactionOptions } from 'mongodb';
import { MongoError, MongoErrorLabel } from 'mongodb';
import { type IndexDriver, isDecision, type OutboxQuery, type ReadSet, type Transaction, type VersionRange } from '../../contracts/index-driver.js';
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
import { ConfigError, StorageError } from '../../errors.js';
import { byteOrder, namespaceOrder } from '../../store/driver-kit.js';
import { acquireMongoClient, type PooledMongoClient } from './mongodb-client-pool.js';
import {
  type CounterDoc,
  type DeadLetterDoc,
  type HeadDoc,
  headRowOf,
  HISTORY_PROJECTION,
  historyRowOf,
  type OutboxDoc,
  type PendingBlobDoc,
  pendingBlobOf,
  type VersionDoc,
  versionRowOf,
} from './mongodb-documents.js';
import { applySteps, planEffects, writtenCollections } from './mongodb-effects.js';
import { type IndexedFields, toMongoFilter } from './mongodb-filter.js';
import { coll, collectionName, type CollRef, CV_DOC_ID, type IndexSettings, pendingBlobId, queue, QUEUE_COLLECTIONS, recordKey, TOTALS_DOC_ID, WINDOW_DOC_PREFIX, windowIdRange } from './mongodb-layout.js';
import { emptyRows, finishRows, planReads, type ReadQuery, type RowsBuilder } from './mongodb-read-set.js';
import { MongoSetup, serverIssues } from './mongodb-setup.js';

export interface MongoIndexDriverOptions {
  uri: string;
  /** The indexes of a collection (from `collectionMaps[c].indexedProps`). */
  indexSettings?: (collection: string) => IndexSettings;
  /** Name of the dead-letter collection (`fallback.deadLetterCollection`). Default `xronox_dead_letters`. */
  deadLetterCollection?: string;
  /** Where the connection is configured, named by the errors about the server (e.g. `dbConnections.primary.mongoUri`). */
  configPath?: string;
  /** Extra driver options (timeouts, TLS); durability defaults are in `mongodb-client-pool.ts`. */
  clientOptions?: MongoClientOptions;
}

/**
 * Every transaction reads from the primary and commits on a majority: an acknowledged write
 * survives a failover, and what a transaction read was majority-committed.
 */
const TRANSACTION: TransactionOptions = { readConcern: { level: 'majority' }, writeConcern: { w: 'majority', journal: true }, readPreference: 'primary' };
/**
 * How long a transaction that keeps losing races (TransientTransactionError: a write conflict
 * with a concurrent transaction, a failover) is run again before its error goes to the caller;
 * sixteen writers of one namespace each lose to the others a few times. Also at most this many attempts.
 */
const RETRY_FOR_MS = 30_000;
const MAX_ATTEMPTS = 100;
/** Commits retried when their outcome is unknown (UnknownTransactionCommitResult); retrying a commit is safe. */
const MAX_COMMITS = 3;
/** Rounds of "set up the collections this transaction writes, then run it again". */
const MAX_SETUP_ROUNDS = 3;

/**
 * What to do with an error of a transaction: run the whole transaction again (it lost a race or
 * a failover aborted it), retry only the commit (its outcome is unknown), or give up.
 */
export function retryOf(err: unknown, stage: 'work' | 'commit'): 'transaction' | 'commit' | null {
  if (!(err instanceof MongoError)) return null;
  if (stage === 'commit' && err.hasErrorLabel(MongoErrorLabel.UnknownTransactionCommitResult)) return 'commit';
  if (err.hasErrorLabel(MongoErrorLabel.TransientTransactionError)) return 'transaction';
  return null;
}

/** Thrown out of a transaction whose effects write collections not set up yet: it is aborted, they are set up, and it runs again. */
class NeedsSetup extends Error {
  constructor(readonly colls: CollRef[]) {
    super('collections to set up');
  }
}

/**
 * The production index driver on the official MongoDB driver, laid out as the product documents
 * describe (`mongodb-layout.ts`). Every transaction is one multi-document transaction on a
 * replica set (or through mongos): its reads batched per kind (`mongodb-read-set.ts`), its
 * effects written with one `bulkWrite` per collection (`mongodb-effects.ts`). A standalone
 * server is refused when the driver opens.
 */
export class MongoIndexDriver implements IndexDriver {
  readonly name = 'mongodb';
  readonly multiProcess = true;
  /** A restore may exceed one transaction's limits (60 s, its size): replaced collection by collection. */
  readonly replacesInOneTransaction = false;
  readonly #pooled: PooledMongoClient;
  readonly #client: MongoClient;
  readonly #setup: MongoSetup;
  readonly #deadLetters: string;
  readonly #indexSettings: (collection: string) => IndexSettings;
  readonly #configPath: string;

  constructor(options: MongoIndexDriverOptions) {
    this.#pooled = acquireMongoClient(options.uri, options.clientOptions);
    this.#client = this.#pooled.client;
    this.#deadLetters = options.deadLetterCollection ?? QUEUE_COLLECTIONS.deadLetters;
    this.#indexSettings = options.indexSettings ?? (() => ({ indexedProps: [] }));
    this.#configPath = options.configPath ?? 'mongoUri';
    this.#setup = new MongoSetup(this.#client, { deadLetterCollection: this.#deadLetters, indexSettings: this.#indexSettings });
  }

  /** Connects, and refuses a server that cannot run the store: a standalone server, or one older than 5.0. */
  async open(): Promise<void> {
    await this.#pooled.connect();
    const hello = await this.#client.db('admin').command({ hello: 1 });
    const issues = serverIssues(hello, this.#configPath);
    if (issues.length > 0) throw new ConfigError(issues);
  }

  async close(): Promise<void> {
    await this.#pooled.release();
  }

  async ping(): Promise<void> {
    await this.#client.db('admin').command({ ping: 1 });
  }

  // ---- transactions ----------------------------------------------------------------------------

  async transact<T>(tx: Transaction<T>): Promise<T> {
    const first = await this.#prepare(tx.reads);
    for (let round = 1; ; round++) {
      try {
        return await this.#inTransaction(async (session) => {
          let step = tx;
          let queries = first;
          for (;;) {
            const outcome = step.decide(await this.#read(queries, session));
            if (!isDecision(outcome)) {
              step = outcome;
              queries = await this.#prepare(step.reads);
              continue;
            }
            const steps = planEffects(outcome.effects, this.#deadLetters);
            const missing = this.#setup.missing(writtenCollections(steps));
            if (missing.length > 0) throw new NeedsSetup(missing);
            await applySteps(this.#client, session, steps);
            return outcome.result;
          }
        });
      } catch (err) {
        if (!(err instanceof NeedsSetup)) throw err;
        if (round >= MAX_SETUP_ROUNDS) throw new StorageError('mongodb', 'transaction', err, 'A transaction kept writing collections that were not set up yet');
        await this.#setup.ensure(err.colls);
      }
    }
  }

  /**
   * The queries of a read set, and what must happen outside the transaction first: the check for
   * leftovers of the standalone protocol, and the listing of collections (listCollections cannot
   * run inside a transaction; these run on their own sessions, not the transaction's).
   */
  async #prepare(reads: ReadSet): Promise<ReadQuery[]> {
    await Promise.all(readNamespaces(reads).map((ns) => this.#setup.verify(ns)));
    const counterCollections = reads.namespaces ? new Map(await Promise.all(reads.namespaces.map(async (db) => [db, await this.#counterCollections(db)] as const))) : undefined;
    return planReads(reads, { deadLetterCollection: this.#deadLetters, ...(counterCollections ? { counterCollections } : {}) });
  }

  /**
   * Runs `work` in a transaction and commits it, retrying a bounded number of times as the
   * transactions specification says: the whole transaction on TransientTransactionError, the
   * commit alone on UnknownTransactionCommitResult. Operations inside run one after another (a
   * transaction's operations must not run in parallel).
   */
  async #inTransaction<T>(work: (session: ClientSession) => Promise<T>): Promise<T> {
    const session = this.#client.startSession();
    const deadline = Date.now() + RETRY_FOR_MS;
    const again = (attempt: number) => attempt < MAX_ATTEMPTS && Date.now() < deadline;
    try {
      for (let attempt = 1; ; attempt++) {
        session.startTransaction(TRANSACTION);
        let result: T;
        try {
          result = await work(session);
        } catch (err) {
          if (session.inTransaction()) await session.abortTransaction();
          if (retryOf(err, 'work') === 'transaction' && again(attempt)) {
            await backoff(attempt);
            continue;
          }
          throw err;
        }
        if (await this.#commit(session, () => again(attempt))) return result;
        await backoff(attempt);
      }
    } finally {
      await session.endSession();
    }
  }

  /** `true` once committed; `false` when the whole transaction must run again (and `again()` allows it). */
  async #commit(session: ClientSession, again: () => boolean): Promise<boolean> {
    for (let tries = 1; ; tries++) {
      try {
        await session.commitTransaction();
        return true;
      } catch (err) {
        const retry = retryOf(err, 'commit');
        if (retry === 'commit' && tries < MAX_COMMITS) continue;
        if (retry === 'transaction' && again()) return false;
        throw err;
      }
    }
  }

  /** Runs the read queries one after another (and the follow-ups their folds ask for). */
  async #read(queries: readonly ReadQuery[], session: ClientSession): Promise<RowsBuilder> {
    const rows = emptyRows();
    const todo = [...queries];
    for (let q = todo.shift(); q !== undefined; q = todo.shift()) {
      const docs = await this.#coll(q.coll).aggregate(q.pipeline, { session }).toArray();
      todo.push(...(q.fold(docs, rows) ?? []));
    }
    finishRows(rows);
    return rows;
  }

  // ---- record reads ----------------------------------------------------------------------------

  async getHead(ns: Namespace, id: string): Promise<HeadRow | null> {
    const heads = coll(ns, 'head');
    const doc = await this.#coll<HeadDoc>(heads).findOne({ _id: id });
    return doc ? headRowOf(doc, heads) : null;
  }

  async listVersions(ns: Namespace, id: string, range: VersionRange): Promise<VersionRow[]> {
    if (range.limit !== undefined && range.limit <= 0) return []; // the driver reads a limit of 0 as "no limit"
    await this.#setup.verify(ns);
    const { filter, sort, limit } = versionQuery(id, range);
    const cursor = this.#coll<VersionDoc>(coll(ns, 'ver')).find(filter).sort(sort);
    return (await (limit === undefined ? cursor : cursor.limit(limit)).toArray()).map(versionRowOf);
  }

  async listHistory(ns: Namespace, id: string, range: { beforeOv?: number; limit: number }): Promise<HistoryRow[]> {
    if (range.limit <= 0) return [];
    await this.#setup.verify(ns);
    const { filter, sort } = versionQuery(id, range);
    const docs = await this.#coll<VersionDoc>(coll(ns, 'ver')).find(filter).project<Pick<VersionDoc, keyof HistoryRow>>(HISTORY_PROJECTION).sort(sort).limit(range.limit).toArray();
    return docs.map(historyRowOf);
  }

  async listHeads(ns: Namespace, query: HeadQuery): Promise<HeadRow[]> {
    if (query.limit <= 0) return [];
    const heads = coll(ns, 'head');
    const and: Array<Filter<HeadDoc>> = [];
    if (!query.includeDeleted) and.push({ deleted: false });
    if (query.filter) and.push(toMongoFilter(query.filter, this.#indexedFields(ns)) as Filter<HeadDoc>);
    const field = query.sort.field === 'id' ? '_id' : query.sort.field;
    const cmp = query.sort.direction === 1 ? '$gt' : '$lt';
    if (query.after) {
      and.push(
        field === '_id'
          ? { _id: { [cmp]: query.after.id } }
          : { $or: [{ [field]: { [cmp]: query.after.value } }, { [field]: query.after.value, _id: { [cmp]: query.after.id } }] },
      );
    }
    const sort: Sort = field === '_id' ? { _id: query.sort.direction } : { [field]: query.sort.direction, _id: query.sort.direction };
    const docs = await this.#coll<HeadDoc>(heads).find(and.length > 0 ? { $and: and } : {}).sort(sort).limit(query.limit).toArray();
    return docs.map((d) => headRowOf(d, heads));
  }

  async listHeadIds(ns: Namespace, query: { afterId?: string; limit: number }): Promise<string[]> {
    if (query.limit <= 0) return [];
    const docs = await this.#coll<HeadDoc>(coll(ns, 'head'))
      .find(query.afterId === undefined ? {} : { _id: { $gt: query.afterId } }, { projection: { _id: 1 } })
      .sort({ _id: 1 })
      .limit(query.limit)
      .toArray();
    return docs.map((d) => d._id);
  }

  async queryAt(ns: Namespace, query: AsOfQuery): Promise<VersionRow[]> {
    if (query.limit <= 0) return [];
    await this.#setup.verify(ns);
    const match: Array<Filter<VersionDoc>> = [];
    if (!query.includeDeleted) match.push({ deleted: false });
    if (query.filter) match.push(toMongoFilter(query.filter, this.#indexedFields(ns)) as Filter<VersionDoc>);
    const range = query.afterId === undefined ? {} : { _id: { [query.direction === 1 ? '$gt' : '$lt']: query.afterId } };
    // Heads in id order drive one index seek per record into `{c}_ver` (by_time), as in SQLite.
    const pipeline: Document[] = [
      { $match: range },
      { $sort: { _id: query.direction } },
      {
        $lookup: {
          from: collectionName(ns.collection, 'ver'),
          localField: '_id',
          foreignField: 'id',
          pipeline: [{ $match: { at: { $lte: query.at } } }, { $sort: { at: -1, ov: -1 } }, { $limit: 1 }],
          as: 'asOf',
        },
      },
      { $unwind: '$asOf' },
      { $replaceRoot: { newRoot: '$asOf' } },
      ...(match.length > 0 ? [{ $match: { $and: match } }] : []),
      { $limit: query.limit },
    ];
    return (await this.#coll(coll(ns, 'head')).aggregate<VersionDoc>(pipeline).toArray()).map(versionRowOf);
  }

  async listVersionsByActor(ns: Namespace, actorId: string, query: ActorQuery): Promise<VersionRow[]> {
    if (query.limit <= 0) return [];
    await this.#setup.verify(ns);
    const and: Array<Filter<VersionDoc>> = [{ actorId }];
    if (query.actorType !== undefined) and.push({ actorType: query.actorType });
    if (query.from !== undefined) and.push({ at: { $gte: query.from } });
    if (query.to !== undefined) and.push({ at: { $lte: query.to } });
    if (query.before) {
      const b = query.before;
      and.push({ $or: [{ at: { $lt: b.at } }, { at: b.at, id: { $lt: b.id } }, { at: b.at, id: b.id, ov: { $lt: b.ov } }] });
    }
    const docs = await this.#coll<VersionDoc>(coll(ns, 'ver')).find({ $and: and }).sort({ at: -1, id: -1, ov: -1 }).limit(query.limit).toArray();
    return docs.map(versionRowOf);
  }

  async listClaims(ns: Namespace, query: { key?: string; afterKey?: string; limit: number }): Promise<Array<{ key: string; id: string }>> {
    if (query.limit <= 0) return [];
    const filter = query.key !== undefined ? { _id: query.key } : query.afterKey !== undefined ? { _id: { $gt: query.afterKey } } : {};
    const docs = await this.#coll<{ _id: string; id: string }>(coll(ns, 'claims')).find(filter).sort({ _id: 1 }).limit(query.limit).toArray();
    return docs.map((d) => ({ key: d._id, id: d.id }));
  }

  async listPendingBlobs(ns: Namespace, id: string | null, query?: { bucket: string; key: string }): Promise<PendingBlob[]> {
    const filter: Filter<PendingBlobDoc> = query ? { _id: pendingBlobId(ns.collection, query.bucket, query.key) } : { coll: ns.collection };
    if (id !== null) filter.id = id;
    const docs = await this.#coll<PendingBlobDoc>(queue(ns.dbName, 'pendingBlobs')).find(filter).sort({ key: 1 }).toArray();
    return docs.map(pendingBlobOf);
  }

  async summariseVersions(ns: Namespace, query: { afterId?: string; limit: number }): Promise<VersionSummary[]> {
    if (query.limit <= 0) return [];
    await this.#setup.verify(ns);
    // One aggregation: the groups, and the entry after each group's oldest through an index lookup (by_record).
    const rows = await this.#coll(coll(ns, 'ver'))
      .aggregate<{ _id: string; count: number; lo: number; hi: number; next: Array<{ at: string }> }>([
        { $match: query.afterId === undefined ? {} : { id: { $gt: query.afterId } } },
        { $group: { _id: '$id', count: { $sum: 1 }, lo: { $min: '$ov' }, hi: { $max: '$ov' } } },
        { $sort: { _id: 1 } },
        { $limit: query.limit },
        {
          $lookup: {
            from: collectionName(ns.collection, 'ver'),
            let: { id: '$_id', ov: { $add: ['$lo', 1] } },
            pipeline: [{ $match: { $expr: { $and: [{ $eq: ['$id', '$$id'] }, { $eq: ['$ov', '$$ov'] }] } } }, { $project: { _id: 0, at: 1 } }, { $limit: 1 }],
            as: 'next',
          },
        },
      ])
      .toArray();
    return rows.map((r) => ({ id: r._id, count: r.count, oldestOv: r.lo, newestOv: r.hi, oldestSupersededAt: r.next[0]?.at ?? null }));
  }

  // ---- the sync outbox -------------------------------------------------------------------------

  async listOutbox(dbName: string, query: OutboxQuery): Promise<PendingSync[]> {
    if (query.limit <= 0) return [];
    const filter: Filter<OutboxDoc> = {};
    if (query.collection !== undefined) filter.coll = query.collection;
    if (query.collection !== undefined && query.id !== undefined) filter._id = recordKey(query.collection, query.id);
    else if (query.order === 'id' && query.collection !== undefined) {
      // An outbox `_id` is `{collection}/{id}`: the collection's entries are the `_id` range from
      // `{collection}/` up to `{collection}0` ('0' follows '/'), in id order, on the `_id` index.
      filter._id = { $gt: recordKey(query.collection, query.afterId ?? ''), $lt: `${query.collection}0` };
    }
    if (query.maxSeq !== undefined) filter.seq = { $lte: query.maxSeq };
    const sort: Sort = query.order === 'id' ? { _id: 1 } : { order: 1 };
    const docs = await this.#coll<OutboxDoc>(queue(dbName, 'outbox')).find(filter).sort(sort).limit(query.limit).toArray();
    return docs.map((d) => ({ collection: d.coll, id: d.id, seq: d.seq }));
  }

  async listDeadLetters(dbName: string, query: { limit: number }): Promise<DeadLetter[]> {
    if (query.limit <= 0) return [];
    const docs = await this.#coll<DeadLetterDoc>(queue(dbName, 'deadLetters', this.#deadLetters)).find({}).sort({ failedAt: 1, _id: 1 }).limit(query.limit).toArray();
    return docs.map((d) => ({ collection: d.coll, id: d.id, reason: d.reason, failedAt: d.failedAt }));
  }

  // ---- counters ---------------------------------------------------------------------------------

  async getCounters(dbName: string, collection: string): Promise<Record<string, number>> {
    const doc = await this.#coll<CounterDoc>(coll({ dbName, collection }, 'counter')).findOne({ _id: TOTALS_DOC_ID });
    return { ...(doc?.counts ?? {}) };
  }

  async getCounterWindows(dbName: string, collection: string, query: CounterWindowQuery): Promise<CounterWindow[]> {
    const range = windowIdRange(query.granularity, { ...(query.from !== undefined ? { from: query.from } : {}), ...(query.to !== undefined ? { to: query.to } : {}) });
    const docs = await this.#coll<CounterDoc>(coll({ dbName, collection }, 'counter')).find({ _id: range }).sort({ _id: 1 }).toArray();
    return docs.map((d) => ({ window: d._id.slice(WINDOW_DOC_PREFIX.length), counts: { ...(d.counts ?? {}) } }));
  }

  // ---- maintenance ------------------------------------------------------------------------------

  /** Namespaces with a collection version: those whose `{c}_counter` holds the `cv` document. */
  async listNamespaces(dbName?: string): Promise<Array<Namespace & { cv: number }>> {
    const out: Array<Namespace & { cv: number }> = [];
    for (const db of dbName === undefined ? await this.#databases() : [dbName]) out.push(...(await this.#collectionVersions(db, await this.#counterCollections(db))));
    return out.sort(namespaceOrder);
  }

  async listUnarchivedRecords(dbName: string, query: { writtenBefore: string; after?: { collection: string; id: string }; limit: number }): Promise<UnarchivedRecord[]> {
    const out: UnarchivedRecord[] = [];
    for (const { collection } of await this.listNamespaces(dbName)) {
      if (out.length >= query.limit) break;
      if (query.after && byteOrder(collection, query.after.collection) < 0) continue;
      const ns = { dbName, collection };
      await this.#setup.verify(ns);
      const afterId = query.after && collection === query.after.collection ? query.after.id : undefined;
      // `archived: false` is the partial `unarchived` index: archived history is never read.
      const rows = await this.#coll(coll(ns, 'ver'))
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

  async listPendingDatabases(): Promise<string[]> {
    return this.#databasesHolding((db) => queue(db, 'outbox'));
  }

  async listDeadLetterDatabases(): Promise<string[]> {
    return this.#databasesHolding((db) => queue(db, 'deadLetters', this.#deadLetters));
  }

  // ---- plumbing ---------------------------------------------------------------------------------

  /** Databases whose queue collection holds anything: one `findOne` each. */
  async #databasesHolding(queueOf: (db: string) => CollRef): Promise<string[]> {
    const out: string[] = [];
    for (const db of await this.#databases()) if (await this.#coll(queueOf(db)).findOne({}, { projection: { _id: 1 } })) out.push(db);
    return out.sort(byteOrder);
  }


  async #databases(): Promise<string[]> {
    const { databases } = await this.#client.db('admin').admin().listDatabases({ nameOnly: true, authorizedDatabases: true });
    return databases.map((d) => d.name).filter((name) => name !== 'admin' && name !== 'local' && name !== 'config');
  }

  /** Collections of `db` with a `{c}_counter` (listCollections cannot run in a transaction: read before one). */
  async #counterCollections(db: string): Promise<string[]> {
    const found = await this.#client.db(db).listCollections({ name: { $regex: '_counter$' } }, { nameOnly: true }).toArray();
    return found.map((c) => c.name.slice(0, -'_counter'.length));
  }

  /** The `cv` documents of these collections, 50 collections per aggregation (`$unionWith`). */
  async #collectionVersions(db: string, collections: readonly string[]): Promise<Array<Namespace & { cv: number }>> {
    const out: Array<Namespace & { cv: number }> = [];
    const branch = (collection: string) => [{ $match: { _id: CV_DOC_ID } }, { $project: { _id: 0, seq: 1, c: { $literal: collection } } }];
    for (let i = 0; i < collections.length; i += 50) {
      const [first, ...rest] = collections.slice(i, i + 50);
      const pipeline = [...branch(first!), ...rest.map((c) => ({ $unionWith: { coll: collectionName(c, 'counter'), pipeline: branch(c) } }))];
      const docs = await this.#coll({ db, name: collectionName(first!, 'counter') }).aggregate<{ seq?: unknown; c: string }>(pipeline).toArray();
      for (const d of docs) if (typeof d.seq === 'number') out.push({ dbName: db, collection: d.c, cv: d.seq - 1 });
    }
    return out;
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

  #coll<T extends Document = Document>(ref: CollRef): Collection<T> {
    return this.#client.db(ref.db).collection<T>(ref.name);
  }
}

/** The filter, order and limit of a `listVersions` range. */
export function versionQuery(id: string, range: VersionRange): { filter: Filter<VersionDoc>; sort: Sort; limit: number | undefined } {
  const filter: Filter<VersionDoc> = { id };
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

/** The namespaces whose heads or versions a transaction reads: checked for leftovers of the standalone protocol first. */
function readNamespaces(reads: ReadSet): Namespace[] {
  const all: Namespace[] = [...(reads.heads ?? []), ...(reads.unarchived ?? []), ...(reads.versionCounts ?? []), ...(reads.headCounts ?? [])];
  const seen = new Map<string, Namespace>();
  for (const ns of all) seen.set(`${ns.dbName}\u0000${ns.collection}`, { dbName: ns.dbName, collection: ns.collection });
  return [...seen.values()];
}

/** Jittered exponential backoff between attempts: up to 5 ms, 7.5 ms, … growing by half each time, at most 500 ms. */
function backoff(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(5 * 1.5 ** attempt, 500);
  return new Promise((resolve) => setTimeout(resolve, ms));
}
