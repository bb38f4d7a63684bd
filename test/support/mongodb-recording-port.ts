import { Aggregator } from 'mingo';
import { type AggregationCursor, type ClientSession, type Document, MongoClient } from 'mongodb';
import type { MongoPort } from '../../core/adapters/mongodb/mongodb-transaction.js';

/** One call the executor made: one round trip to the server. */
export interface RecordedCall {
  kind: 'aggregate' | 'bulkWrite' | 'clientBulkWrite' | 'commit' | 'listCollections';
  /** `db.collection` (or the database, for listCollections). */
  target: string;
  /** The session the call carried. */
  session: ClientSession | undefined;
  /** What a write sent. */
  ops: readonly unknown[];
}

/**
 * A stand-in for a MongoDB server, ONLY for unit tests of the plan executor: no MongoDB server can
 * run on the machines this project is built on (the conformance suites use a real one wherever
 * one exists). It implements the executor's narrow port, typed by the real driver's types:
 * reads evaluate the executor's own aggregation pipeline with mingo (an independent
 * implementation of MongoDB's query language) over fixed documents; writes are recorded, not
 * applied. Sessions are the real driver's, of a client that never connects: a transaction that
 * sent nothing through the driver commits and aborts locally; each commit is recorded. `fail`
 * makes the next call of a kind throw the given error.
 */
export class RecordingMongoPort implements MongoPort {
  readonly calls: RecordedCall[] = [];
  readonly sessions: ClientSession[] = [];
  readonly failures: Array<{ kind: RecordedCall['kind']; error: Error }> = [];
  readonly bulkWrite?: MongoPort['bulkWrite'];
  readonly #client = new MongoClient('mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=1');

  /** `data`: documents by `db.collection`. `crossCollection`: a MongoDB 8.0 server (one `bulkWrite` for many collections). */
  constructor(
    readonly data: Record<string, Document[]> = {},
    options: { crossCollection?: boolean } = {},
  ) {
    if (options.crossCollection) this.bulkWrite = async (models, opts) => this.#record('clientBulkWrite', '*', opts.session, models);
  }

  fail(kind: RecordedCall['kind'], error: Error): this {
    this.failures.push({ kind, error });
    return this;
  }

  startSession(): ClientSession {
    const session = this.#client.startSession();
    const commit = session.commitTransaction.bind(session);
    session.commitTransaction = async () => {
      this.#record('commit', 'admin', session, []);
      await commit();
    };
    this.sessions.push(session);
    return session;
  }

  collection(ref: { db: string; name: string }): ReturnType<MongoPort['collection']> {
    const target = `${ref.db}.${ref.name}`;
    const run = (pipeline: Document[]) => new Aggregator(pipeline as never).run((this.data[target] ?? []).map((d) => structuredClone(d))) as Document[];
    return {
      aggregate: (pipeline, options): Pick<AggregationCursor<Document>, 'toArray' | typeof Symbol.asyncIterator> => ({
        toArray: async () => {
          this.#record('aggregate', target, options.session, [pipeline]);
          return run(pipeline);
        },
        [Symbol.asyncIterator]: () => {
          this.#record('aggregate', target, options.session, [pipeline]);
          const docs = run(pipeline);
          return (async function* () {
            yield* docs;
          })();
        },
      }),
      bulkWrite: async (ops, options) => this.#record('bulkWrite', target, options.session, ops),
    };
  }

  async counterCollections(db: string): Promise<string[]> {
    this.#record('listCollections', db, undefined, []);
    return Object.keys(this.data).flatMap((k) => (k.startsWith(`${db}.`) && k.endsWith('_counter') ? [k.slice(db.length + 1, -'_counter'.length)] : []));
  }

  async close(): Promise<void> {
    for (const s of this.sessions) await s.endSession();
    await this.#client.close();
  }

  #record(kind: RecordedCall['kind'], target: string, session: ClientSession | undefined, ops: readonly unknown[]): void {
    this.calls.push({ kind, target, session, ops });
    const next = this.failures[0];
    if (next?.kind === kind) {
      this.failures.shift();
      throw next.error;
    }
  }
}
