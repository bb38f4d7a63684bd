import { type Document, type IndexDescription, type MongoClient, MongoServerError } from 'mongodb';
import type { Namespace } from '../../contracts/index-store.js';
import type { ConfigIssue } from '../../errors.js';
import { OnceEach } from '../../store/driver-kit.js';
import { leftoverWrite } from './mongodb-documents.js';
import { coll, COLLECTION_SUFFIXES, type CollectionRole, type CollRef, type IndexSettings, indexSpecs, QUEUE_COLLECTIONS, queueIndexSpecs, type QueueRole } from './mongodb-layout.js';
import { metaPath } from './mongodb-meta.js';

/** MongoDB 5.0, the oldest server the index store runs on (`$lookup` with `localField` and `pipeline`), speaks wire version 13. */
export const MIN_WIRE_VERSION = 13;

/**
 * Why the server that answered `hello` cannot hold the index store; `[]` when it can. Every
 * write of the index store is a multi-document transaction, so the server must be a replica set
 * member or a mongos router; and it must be MongoDB 5.0 or newer. `path` is where the connection
 * is configured (e.g. `dbConnections.primary.mongoUri`).
 */
export function serverIssues(hello: Document, path: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (hello.msg !== 'isdbgrid' && typeof hello.setName !== 'string') {
    issues.push({
      path,
      message:
        'is a standalone MongoDB server, but the index store commits with multi-document transactions, which need a replica set. ' +
        'A single server can be a one-node replica set: start it with `mongod --replSet rs0`, run `rs.initiate()` once in mongosh, ' +
        'and add `replicaSet=rs0` to the connection string',
    });
  }
  const wire = hello.maxWireVersion;
  if (typeof wire !== 'number' || wire < MIN_WIRE_VERSION) {
    issues.push({ path, message: `runs a MongoDB server older than 5.0 (wire version ${String(wire)}); the index store needs MongoDB 5.0 or newer` });
  }
  return issues;
}

export interface SetupSettings {
  deadLetterCollection: string;
  indexSettings: (collection: string) => IndexSettings;
}

/**
 * Creates collections and their indexes, once per collection per process, outside any
 * transaction (a transaction cannot create an index on a collection that exists, and one that
 * starts while an index build is pending fails). Creating them is idempotent, so processes that
 * race create the same thing. Also refuses a namespace that holds a write an older version's
 * standalone protocol left unfinished (`leftoverWrite`).
 */
export class MongoSetup {
  readonly #client: MongoClient;
  readonly #settings: SetupSettings;
  readonly #created = new OnceEach();
  readonly #verified = new OnceEach();

  constructor(client: MongoClient, settings: SetupSettings) {
    this.#client = client;
    this.#settings = settings;
  }

  /** The collections among `refs` not set up yet in this process. */
  missing(refs: readonly CollRef[]): CollRef[] {
    return refs.filter((r) => !this.#created.done(refId(r)));
  }

  /** Sets up these collections (each once per process). */
  async ensure(refs: readonly CollRef[]): Promise<void> {
    await Promise.all(refs.map((ref) => this.#created.run(refId(ref), () => this.#create(ref))));
  }

  /**
   * Checks once per namespace that no head carries a leftover standalone write (an index lookup
   * on the partial index `pending_writes`). A namespace found with one is checked again next time.
   */
  verify(ns: Namespace): Promise<void> {
    const heads = coll(ns, 'head');
    return this.#verified.run(refId(heads), async () => {
      const found = await this.#client.db(heads.db).collection<{ _id: string }>(heads.name).findOne({ pending: { $exists: true }, 'pending.since': { $exists: true } }, { projection: { _id: 1 } });
      if (found) throw leftoverWrite(heads, found._id);
    });
  }

  async #create(ref: CollRef): Promise<void> {
    const target = setupOf(ref, this.#settings);
    if (target.ns) await this.verify(target.ns);
    // createIndexes creates the collection too. The client's write concern (majority) makes the
    // new collection and indexes visible to the transactions that follow.
    if (target.specs.length > 0) {
      await this.#client.db(ref.db).collection(ref.name).createIndexes(target.specs);
      return;
    }
    await this.#client
      .db(ref.db)
      .createCollection(ref.name)
      .catch((err: unknown) => {
        if (!(err instanceof MongoServerError && err.codeName === 'NamespaceExists')) throw err;
      });
  }
}

/**
 * What setting up a collection means, from its name: a database's queue (its indexes), or a
 * role of a record collection (its indexes, and the namespace to check for leftovers). No
 * indexes: the collection is only created.
 */
export function setupOf(ref: CollRef, settings: SetupSettings): { specs: IndexDescription[]; ns?: Namespace } {
  const names: Record<QueueRole, string> = { ...QUEUE_COLLECTIONS, deadLetters: settings.deadLetterCollection };
  const queueRole = (Object.keys(names) as QueueRole[]).find((which) => names[which] === ref.name);
  if (queueRole) return { specs: queueIndexSpecs()[queueRole] };
  for (const [role, suffix] of Object.entries(COLLECTION_SUFFIXES) as Array<[CollectionRole, string]>) {
    if (!ref.name.endsWith(suffix)) continue;
    const collection = ref.name.slice(0, -suffix.length);
    return { specs: indexSpecs(role, settings.indexSettings(collection), metaPath), ns: { dbName: ref.db, collection } };
  }
  return { specs: [] };
}

function refId(ref: CollRef): string {
  return `${ref.db}\u0000${ref.name}`;
}
