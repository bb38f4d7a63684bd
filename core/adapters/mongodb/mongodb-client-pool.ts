import { createHash } from 'node:crypto';
import { MongoClient, type MongoClientOptions } from 'mongodb';

/**
 * One MongoClient per connection string per process, shared by every database and tenant on it,
 * by every Xronox instance and by every warm Lambda invocation. Constructing a MongoClient opens
 * nothing: the driver connects on the first operation, so an unused connection costs no socket.
 * Clients are reference-counted; the last user to let go closes the client's connection pool.
 */
const pool = new Map<string, { client: MongoClient; users: number; connecting: Promise<void> | null }>();

/**
 * Durability defaults: an acknowledged write is journaled on a majority of the replica set (on
 * a standalone server, journaled), and reads see only majority-committed data.
 */
const DEFAULT_OPTIONS: MongoClientOptions = {
  writeConcern: { w: 'majority', journal: true },
  readConcern: { level: 'majority' },
  retryWrites: true,
  retryReads: true,
  appName: 'xronox',
};

export interface PooledMongoClient {
  client: MongoClient;
  /**
   * Resolves once the client is connected. Call it before using `client`: the driver's implicit
   * connect on first use closes the client for good when the server is unreachable at that
   * moment (every later operation fails with MongoTopologyClosedError), which would leave a warm
   * Lambda container broken after one outage. An explicit connect that fails is retried by the
   * next call instead.
   */
  connect: () => Promise<void>;
  release: () => Promise<void>;
}

export function acquireMongoClient(uri: string, options: MongoClientOptions = {}): PooledMongoClient {
  const key = poolKey(uri, options);
  let entry = pool.get(key);
  if (!entry) {
    entry = { client: new MongoClient(uri, { ...DEFAULT_OPTIONS, ...options }), users: 0, connecting: null };
    pool.set(key, entry);
  }
  entry.users++;
  const held = entry;
  let released = false;
  return {
    client: held.client,
    connect: () => {
      if (!held.connecting) {
        held.connecting = held.client.connect().then(
          () => undefined,
          (err: unknown) => {
            held.connecting = null;
            throw err;
          },
        );
      }
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
  return createHash('sha256').update(JSON.stringify([uri, options])).digest('hex');
}
