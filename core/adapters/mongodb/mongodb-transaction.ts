import type {
  AggregateOptions,
  AggregationCursor,
  AnyClientBulkWriteModel,
  BulkWriteOptions,
  ClientBulkWriteOptions,
  ClientSession,
  Document,
  MongoClient,
  TransactionOptions,
} from 'mongodb';
import { MongoError, MongoErrorLabel, MongoServerError } from 'mongodb';
import type { ImportLimit, ReadRows, ReadSet, Transaction } from '../../contracts/index-driver.js';
import { StorageError } from '../../errors.js';
import { byNamespace, decideSteps, emptyRows, groupBy } from '../../store/driver-kit.js';
import { COPIED, type Keyed, type Op, outboxMark, planWrites, replace, type Step, type Write, writtenCollections } from './mongodb-effects.js';
import { coll, type CollRef, CV_DOC_ID, queue } from './mongodb-layout.js';
import { planReads } from './mongodb-read-set.js';
import type { MongoSetup } from './mongodb-setup.js';

/**
 * What executing a plan needs of a MongoDB client: `clientPort` makes it of a real `MongoClient`.
 * (Narrow so that tests without a server can record every call: each is one round trip.)
 */
export interface MongoPort {
  startSession(): ClientSession;
  collection(ref: CollRef): {
    aggregate(pipeline: Document[], options: AggregateOptions): Pick<AggregationCursor<Document>, 'toArray' | typeof Symbol.asyncIterator>;
    bulkWrite(ops: readonly Op[], options: BulkWriteOptions): Promise<unknown>;
  };
  /** Writes to many collections in one call (the `bulkWrite` command of MongoDB 8.0); absent before 8.0. */
  bulkWrite?(models: ReadonlyArray<AnyClientBulkWriteModel<Document>>, options: ClientBulkWriteOptions): Promise<unknown>;
  /** The collections of `db` that have a `{c}_counter` (listCollections, which cannot run in a transaction). */
  counterCollections(db: string): Promise<string[]>;
}

/** MongoDB 8.0 speaks wire version 25: its `bulkWrite` command writes many collections at once. */
export const BULK_WRITE_COMMAND_WIRE_VERSION = 25;

/** The port of a real client; `bulkWriteCommand`: the server has MongoDB 8.0's `bulkWrite` command. */
export function clientPort(client: MongoClient, bulkWriteCommand: boolean): MongoPort {
  return {
    startSession: () => client.startSession(),
    collection: (ref) => client.db(ref.db).collection<Keyed>(ref.name),
    ...(bulkWriteCommand ? { bulkWrite: (models, options) => client.bulkWrite(models, options) } : {}),
    counterCollections: (db) => counterCollections(client, db),
  };
}

/** The collections of `db` that have a `{c}_counter`, i.e. were written at least once. */
export async function counterCollections(client: MongoClient, db: string): Promise<string[]> {
  const found = await client.db(db).listCollections({ name: { $regex: '_counter$' } }, { nameOnly: true }).toArray();
  return found.map((c) => c.name.slice(0, -'_counter'.length));
}

/** Collections are set up outside transactions (`mongodb-setup.ts`); a transaction asks which are not yet. */
export type SetupPort = Pick<MongoSetup, 'missing' | 'ensure' | 'verify'>;

/**
 * Every transaction reads from the primary and commits on a majority: an acknowledged write
 * survives a failover, and what a transaction read was majority-committed. A commit waits for
 * its majority at most 5 s (then its outcome is unknown, and it is asked again).
 */
const TRANSACTION: TransactionOptions = {
  readConcern: { level: 'majority' },
  writeConcern: { w: 'majority', journal: true },
  readPreference: 'primary',
  maxCommitTimeMS: 5_000,
};
/**
 * How long a transaction that keeps losing races (TransientTransactionError: a write conflict, a
 * failover) is run again before its error goes to the caller: long enough for sixteen writers of
 * one namespace, or an election (about 10 s), well inside an API Lambda's 29 s.
 */
const RETRY_FOR_MS = 15_000;
const MAX_ATTEMPTS = 100;
/** Commits retried when their outcome is unknown (UnknownTransactionCommitResult); retrying a commit is safe. */
const MAX_COMMITS = 3;
/** Rounds of "prepare (set up the collections it writes…), then run the transaction again". */
const MAX_RERUNS = 3;
/** The server's answer to a command it does not know (`bulkWrite` before 8.0, or with 8.0 features off). */
const COMMAND_NOT_FOUND = 59;
/**
 * What one transaction of an import writes at most (`IndexDriver.importLimit`): a restore's
 * batches and its claims, whatever their number and the records' sizes, commit far inside
 * MongoDB's 60 s transaction lifetime (a batch of 1,000 is 4 round trips on 8.0).
 */
export const IMPORT_LIMIT = { documents: 1000, bytes: 4 * 1024 * 1024 } as const satisfies ImportLimit;
/** Documents per write when a namespace is copied. */
const COPY_BATCH = 1000;

/**
 * What to do with an error of a transaction: run the whole transaction again (it lost a race or
 * a failover aborted it), retry only the commit (its outcome is unknown), or give up.
 */
export function retryOf(err: unknown, stage: 'work' | 'commit'): 'transaction' | 'commit' | null {
  if (!(err instanceof MongoError)) return null;
  if (err.hasErrorLabel(MongoErrorLabel.UnknownTransactionCommitResult)) return stage === 'commit' ? 'commit' : null;
  return err.hasErrorLabel(MongoErrorLabel.TransientTransactionError) ? 'transaction' : null;
}

/**
 * Thrown out of a transaction that must run again after `prepare`, outside any transaction: its
 * effects write collections not set up yet, or the server refused the cross-collection write.
 */
class RunAgain extends Error {
  constructor(readonly prepare: () => Promise<void>) {
    super('to run again');
  }
}

/**
 * Executes the core's plans (`core/store/plans.ts`), each as one multi-document transaction:
 * its reads batched per kind and collection (`mongodb-read-set.ts`), its effects written in one
 * `bulkWrite` (MongoDB 8.0) or one per collection (`mongodb-effects.ts`), then one commit. A
 * single versioned write costs 4 round trips on 8.0 (heads, cv, writes, commit), 7 before.
 */
export class MongoPlanExecutor {
  /** Writes go out as one `bulkWrite` command of many collections (MongoDB 8.0), until the server refuses it. */
  #bulkWriteCommand: boolean;

  constructor(
    readonly port: MongoPort,
    readonly setup: SetupPort,
    readonly deadLetterCollection: string,
  ) {
    this.#bulkWriteCommand = port.bulkWrite !== undefined;
  }

  async transact<T>(tx: Transaction<T>): Promise<T> {
    // One retry budget for the whole call, whatever set-up rounds it takes.
    const deadline = Date.now() + RETRY_FOR_MS;
    for (let round = 1; ; round++) {
      try {
        return await this.#inTransaction(deadline, async (session) => {
          const { effects, result } = await decideSteps(tx, (reads) => this.#read(reads, session));
          const writes = planWrites(effects, this.deadLetterCollection);
          const missing = this.setup.missing(writtenCollections(writes));
          if (missing.length > 0) throw new RunAgain(() => this.setup.ensure(missing));
          await this.#write(writes, session);
          return result;
        });
      } catch (err) {
        if (!(err instanceof RunAgain)) throw err;
        if (round >= MAX_RERUNS) throw new StorageError('mongodb', 'transaction', err, 'A transaction had to be prepared and run again too often (collections to set up)');
        await err.prepare();
      }
    }
  }

  /**
   * Runs `work` in a transaction and commits it, retrying a bounded number of times as the
   * transactions specification says: the whole transaction on TransientTransactionError, the
   * commit alone on UnknownTransactionCommitResult. `work` must be idempotent: it may run again.
   */
  async #inTransaction<T>(deadline: number, work: (session: ClientSession) => Promise<T>): Promise<T> {
    const session = this.port.startSession();
    try {
      for (let attempt = 1; ; attempt++) {
        session.startTransaction(TRANSACTION);
        try {
          const result = await work(session);
          for (let tries = 1; ; tries++) {
            try {
              await session.commitTransaction();
              return result;
            } catch (err) {
              if (retryOf(err, 'commit') !== 'commit' || tries >= MAX_COMMITS || Date.now() >= deadline) throw err;
            }
          }
        } catch (err) {
          if (session.inTransaction()) await session.abortTransaction();
          if (retryOf(err, 'work') !== 'transaction' || attempt >= MAX_ATTEMPTS || Date.now() >= deadline) throw err;
          // Jittered exponential backoff: up to 7.5 ms, 11 ms, … growing by half each time, at most 500 ms.
          await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(5 * 1.5 ** attempt, 500)));
        }
      }
    } finally {
      await session.endSession();
    }
  }

  /**
   * Reads one after another (a transaction's operations must not run in parallel), then the
   * follow-ups the folds ask for. First, outside the transaction: the check of the namespaces
   * for leftovers of the standalone protocol, and the listing of counter collections.
   */
  async #read(reads: ReadSet, session: ClientSession): Promise<ReadRows> {
    const checked = [...(reads.heads ?? []), ...(reads.unarchived ?? []), ...(reads.versionCounts ?? []), ...(reads.headCounts ?? [])];
    await Promise.all(byNamespace(checked).map(([ns]) => this.setup.verify(ns)));
    const counterCollections = new Map<string, string[]>();
    for (const db of new Set(reads.namespaces)) counterCollections.set(db, await this.port.counterCollections(db));
    const rows = emptyRows();
    const todo = planReads(reads, { deadLetterCollection: this.deadLetterCollection, counterCollections });
    for (let q = todo.shift(); q !== undefined; q = todo.shift()) {
      const docs = await this.port.collection(q.coll).aggregate(q.pipeline, { session }).toArray();
      todo.push(...(q.fold(docs, rows) ?? []));
    }
    return rows;
  }

  /** Writes the steps in order, in one call per run of writes on MongoDB 8.0, else one per collection. */
  async #write(steps: readonly Step[], session: ClientSession): Promise<void> {
    let pending: Write[] = [];
    const flush = async () => {
      const writes = pending;
      pending = [];
      if (writes.length === 0) return;
      if (this.#bulkWriteCommand && this.port.bulkWrite) {
        try {
          await this.port.bulkWrite(writes.map(clientModel), { session, ordered: true });
          return;
        } catch (err) {
          // A server whose feature compatibility is still below 8.0 lacks the command: per collection from now on.
          if (!(err instanceof MongoServerError && err.code === COMMAND_NOT_FOUND)) throw err;
          throw new RunAgain(async () => void (this.#bulkWriteCommand = false));
        }
      }
      for (const group of groupBy(writes, (w) => `${w.coll.db}.${w.coll.name}`).values()) {
        await this.port.collection(group[0]!.coll).bulkWrite(group.map((w) => w.op), { session, ordered: true });
      }
    };
    for (const step of steps) {
      if (!('copy' in step)) {
        pending.push(step);
        continue;
      }
      // copyNamespace (`to` was emptied by an earlier clearNamespace): copies of `from`'s heads,
      // versions, claims and cv, every head copied in marked for sync, in id order.
      await flush();
      const { from, to } = step.copy;
      for (const role of COPIED) {
        const source = this.port.collection(coll(from, role)).aggregate(role === 'head' ? [{ $sort: { _id: 1 } }] : [], { session });
        for await (const doc of source) {
          pending.push({ coll: coll(to, role), op: { insertOne: { document: doc as Keyed } } });
          if (role === 'head') pending.push({ coll: queue(to.dbName, 'outbox'), op: outboxMark(to.collection, doc._id as string, doc.cv as number) });
          if (pending.length >= COPY_BATCH) await flush();
        }
      }
      const [cv] = await this.port.collection(coll(from, 'counter')).aggregate([{ $match: { _id: CV_DOC_ID } }], { session }).toArray();
      if (cv) pending.push({ coll: coll(to, 'counter'), op: replace(CV_DOC_ID, cv) });
    }
    await flush();
  }
}

/** A write as a model of MongoDB 8.0's `bulkWrite` command: `{ updateOne: { … } }` becomes `{ name: 'updateOne', namespace, … }`. */
export function clientModel(w: Write): AnyClientBulkWriteModel<Document> {
  const [name, args] = Object.entries(w.op)[0]!;
  return { name, namespace: `${w.coll.db}.${w.coll.name}`, ...(args as Document) } as AnyClientBulkWriteModel<Document>;
}
