import { type Collection, type Document, type IndexDescription, type MongoClient, MongoServerError } from 'mongodb';
import type { Namespace } from '../../contracts/index-store.js';
import { ConfigError, type ConfigIssue, StorageError } from '../../errors.js';
import { OnceEach } from '../../store/driver-kit.js';
import { leftoverWrite } from './mongodb-documents.js';
import { coll, COLLECTION_SUFFIXES, type CollectionRole, type CollRef, type IndexSettings, indexSpecs, QUEUE_COLLECTIONS, queueIndexSpecs, type QueueRole } from './mongodb-layout.js';
import { metaPath } from './mongodb-meta.js';

/** MongoDB 5.0, the oldest server the stores run on (`$lookup` with `localField` and `pipeline`), speaks wire version 13. */
export const MIN_WIRE_VERSION = 13;

/**
 * Why the server that answered `hello` cannot hold Xronox's MongoDB stores (index store and
 * document store, which share a connection); `[]` when it can. Every write of the index store is
 * a multi-document transaction, so the server must be a replica set member or a mongos router;
 * and it must be MongoDB 5.0 or newer. `path` is where the connection is configured (e.g.
 * `dbConnections.primary.mongoUri`).
 */
export function serverIssues(hello: Document, path: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (hello.msg !== 'isdbgrid' && typeof hello.setName !== 'string') {
    issues.push({
      path,
      message:
        "is a standalone MongoDB server, but Xronox's MongoDB stores need a replica set (the index store commits with multi-document transactions). " +
        'A single server can be a one-node replica set: start it with `mongod --replSet rs0`, run `rs.initiate()` once in mongosh, ' +
        'and add `replicaSet=rs0` to the connection string',
    });
  }
  const wire = hello.maxWireVersion;
  if (typeof wire !== 'number' || wire < MIN_WIRE_VERSION) {
    issues.push({ path, message: `runs a MongoDB server older than 5.0 (wire version ${String(wire)}); Xronox needs MongoDB 5.0 or newer` });
  }
  return issues;
}

/** Refuses, with one `ConfigError`, a server that cannot hold Xronox's MongoDB stores (`serverIssues`). */
export function checkServer(hello: Document, path: string): void {
  const issues = serverIssues(hello, path);
  if (issues.length > 0) throw new ConfigError(issues);
}

/** A build that raced another of the same index (IndexBuildAborted, IndexBuildAlreadyInProgress): tried again. */
const BUILD_RACES = new Set([276, 285]);
const MAX_BUILD_ATTEMPTS = 5;
const NAMESPACE_NOT_FOUND = 26;

/**
 * `createIndexes`, tried again (at most 5 times, with jittered backoff) while another process's
 * build of the same indexes gets in the way. Resolves once the server has built them.
 */
export async function buildIndexes(c: Pick<Collection, 'createIndexes'>, specs: IndexDescription[], pauseMs = 200): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await c.createIndexes(specs);
      return;
    } catch (err) {
      if (!(err instanceof MongoServerError && BUILD_RACES.has(Number(err.code))) || attempt >= MAX_BUILD_ATTEMPTS) throw err;
      await new Promise((resolve) => setTimeout(resolve, pauseMs * attempt * (0.5 + Math.random())));
    }
  }
}

/** Names of the collection's indexes; `null` when it does not exist. (Needs only the `listIndexes` privilege.) */
export async function indexNames(c: Pick<Collection, 'listIndexes'>): Promise<Set<string> | null> {
  try {
    return new Set((await c.listIndexes().toArray()).map((i) => String(i.name)));
  } catch (err) {
    if (err instanceof MongoServerError && err.code === NAMESPACE_NOT_FOUND) return null;
    throw err;
  }
}

export interface SetupSettings {
  deadLetterCollection: string;
  indexSettings: (collection: string) => IndexSettings;
}

/**
 * Creates collections and their indexes, once per collection per process, outside any
 * transaction (a transaction cannot create an index on a collection that exists, and one that
 * starts while an index build is pending fails). It first lists what is there, so that a
 * collection `xronox migrate` made needs no right to create anything. Creating is idempotent,
 * so processes that race create the same thing. An index missing on a collection that exists
 * (an `indexedProps` entry added) may take long to build: a commit does not wait for it, the
 * build goes on in the background, and a failed one is tried by the next process (or migrate).
 * Also refuses a namespace that holds a write an older version's standalone protocol left
 * unfinished (`leftoverWrite`).
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

  /** Sets up these collections (each once per process), without waiting for builds on collections that exist. */
  async ensure(refs: readonly CollRef[]): Promise<void> {
    await Promise.all(refs.map((ref) => this.#created.run(refId(ref), async () => void (await this.#create(ref, false)))));
  }

  /**
   * `xronox migrate`: sets up these collections now, waiting for every build; with `onlyIfPresent`
   * a collection that does not exist is left so. Resolves whether anything was created.
   */
  async prepare(refs: readonly CollRef[], onlyIfPresent = false): Promise<boolean> {
    let created = false;
    for (const ref of refs) created = (await this.#create(ref, true, onlyIfPresent)) || created;
    return created;
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

  async #create(ref: CollRef, wait: boolean, onlyIfPresent = false): Promise<boolean> {
    const target = setupOf(ref, this.#settings);
    if (target.ns) await this.verify(target.ns);
    const c = this.#client.db(ref.db).collection(ref.name);
    const present = await indexNames(c);
    const absent = target.specs.filter((s) => !present?.has(s.name!));
    if ((present && absent.length === 0) || (!present && onlyIfPresent)) return false;
    if (absent.length === 0) {
      await this.#client
        .db(ref.db)
        .createCollection(ref.name)
        .catch((err: unknown) => {
          if (!(err instanceof MongoServerError && err.codeName === 'NamespaceExists')) throw notAllowed(err, ref);
        });
      return true;
    }
    // createIndexes creates the collection too; on a new one the build is instant. The client's
    // write concern (majority) makes both visible to the transactions that follow.
    const built = buildIndexes(c, absent).catch((err: unknown) => {
      throw notAllowed(err, ref);
    });
    if (wait || !present) await built;
    else built.catch(() => undefined);
    return true;
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

/** A user without the right to create (code 13, Unauthorized) is told how the collection gets made; other errors are as they were. */
function notAllowed(err: unknown, ref: CollRef): unknown {
  if (!(err instanceof MongoServerError && err.code === 13)) return err;
  return new StorageError('mongodb', 'set up collection', err, `May not create ${ref.db}.${ref.name} or its indexes: run \`npx xronox migrate\` as a user allowed to (docs/mongodb.md, "MongoDB roles")`);
}

function refId(ref: CollRef): string {
  return `${ref.db}\u0000${ref.name}`;
}
