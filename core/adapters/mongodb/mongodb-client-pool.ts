import { sha256Hex } from '../../foundation/digest.js';
import { type Document, MongoClient, type MongoClientOptions } from 'mongodb';

/**
 * One MongoClient per connection string per process, shared by every database and tenant on it,
 * by every Xronox instance and by every warm Lambda invocation. Constructing a MongoClient opens
 * nothing: the driver connects on the first operation, so an unused connection costs no socket.
 * Clients are reference-counted; the last user to let go closes the client's connection pool.
 */
const pool = new Map<string, { client: MongoClient; users: number; connecting: Promise<Document> | null }>();

/**
 * Defaults for what the URI leaves unset. Durability: an acknowledged write is journaled on a
 * majority of the replica set, and reads see only majority-committed data. Lambda: a container
 * serves one request at a time, so a small pool (thousands of containers each holding 100
 * sockets would exhaust the server); idle sockets are closed before a frozen container's are cut;
 * and no call waits longer for a server (5 s) or an answer (20 s) than an API Lambda (29 s) lives.
 */
export const DEFAULT_CLIENT_OPTIONS = {
  writeConcern: { w: 'majority', journal: true },
  readConcern: { level: 'majority' },
  retryWrites: true,
  retryReads: true,
  appName: 'xronox',
  maxPoolSize: 10,
  maxIdleTimeMS: 60_000,
  serverSelectionTimeoutMS: 5_000,
  connectTimeoutMS: 5_000,
  socketTimeoutMS: 20_000,
} as const satisfies MongoClientOptions;

/** The URI options (lower case, as the driver reads them: case-insensitively) that set each default. */
const URI_NAMES: Partial<Record<keyof typeof DEFAULT_CLIENT_OPTIONS, string[]>> = {
  writeConcern: ['w', 'journal', 'wtimeoutms'],
  readConcern: ['readconcernlevel'],
};

/**
 * The options a client of `uri` is made with: `options` (set in code), then the URI's own, then
 * the defaults. The driver lets object options win over the URI's, so a default is passed only
 * where the URI sets nothing: `retryWrites=false` (which Amazon DocumentDB requires) and an
 * `appName` in the URI are kept.
 */
export function clientOptions(uri: string, options: MongoClientOptions = {}): MongoClientOptions {
  const query = uri.indexOf('?');
  const inUri = new Set([...new URLSearchParams(query < 0 ? '' : uri.slice(query + 1)).keys()].map((k) => k.toLowerCase()));
  const unset = Object.entries(DEFAULT_CLIENT_OPTIONS).filter(([key]) => !(URI_NAMES[key as keyof typeof URI_NAMES] ?? [key.toLowerCase()]).some((n) => inUri.has(n)));
  return { ...Object.fromEntries(unset), ...options };
}

export interface PooledMongoClient {
  client: MongoClient;
  /**
   * Connects, and resolves with the server's `hello` (what it is: see `serverIssues` of `mongodb-setup.ts`). Call it before using
   * `client`: the driver's implicit connect on first use closes the client for good when the
   * server is unreachable at that moment (every later operation fails with
   * MongoTopologyClosedError), which would leave a warm Lambda container broken after one outage.
   * An explicit connect that fails is retried by the next call instead.
   */
  connect: () => Promise<Document>;
  release: () => Promise<void>;
}

export function acquireMongoClient(uri: string, options: MongoClientOptions = {}): PooledMongoClient {
  const key = poolKey(uri, options);
  let entry = pool.get(key);
  if (!entry) {
    entry = { client: new MongoClient(uri, clientOptions(uri, options)), users: 0, connecting: null };
    pool.set(key, entry);
  }
  entry.users++;
  const held = entry;
  let released = false;
  return {
    client: held.client,
    connect: () => {
      held.connecting ??= held.client
        .connect()
        .then((client) => client.db('admin').command({ hello: 1 }))
        .catch((err: unknown) => {
          held.connecting = null;
          throw err;
        });
      return held.connecting;
    },
    release: async () => {
      if (released) return;
      released = true;
      held.users--;
      if (held.users === 0 && pool.get(key) === held) {
        pool.delete(key);
        await held.client.close();
      }
    },
  };
}

/** How many distinct clients the process holds (for tests of reuse). */
export function pooledMongoClientCount(): number {
  return pool.size;
}

function poolKey(uri: string, options: MongoClientOptions): string {
  // The URI may hold a password: the map key keeps only its hash.
  return sha256Hex(JSON.stringify([uri, options]));
}
