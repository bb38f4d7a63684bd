import { createHash } from 'node:crypto';
import { Pool, types, type PoolConfig } from 'pg';

/**
 * One `pg.Pool` per connection string (and pool options) per process, shared by every database
 * and tenant on it, by every Xronox instance and by every warm Lambda invocation. Creating a pool
 * opens nothing: connections are made on first use and kept idle for `idleTimeoutMillis`. Pools
 * are reference-counted; the last user to let go ends the pool and its connections.
 */
const pools = new Map<string, { pool: Pool; users: number }>();

export interface PostgresPoolOptions {
  /** Connections the pool may hold at once. Default 10 (a Lambda container serves one request at a time: 2 suit it). */
  max?: number;
  /** How long a connection attempt (or a wait for a free pooled connection) may take. Default 10 s. */
  connectionTimeoutMillis?: number;
  /** How long an unused connection is kept. Default 30 s. */
  idleTimeoutMillis?: number;
  /** Shown in `pg_stat_activity`. Default `xronox`. */
  applicationName?: string;
}

export interface PooledPostgres {
  pool: Pool;
  release: () => Promise<void>;
}

/**
 * bigint columns (ov, cv, seq, sizes, counts) come back as numbers: every value Xronox stores
 * there is a safe integer. The override is the pool's own, never the process-wide `pg.types`.
 */
const INT8_OID = 20;
const TYPE_PARSERS: NonNullable<PoolConfig['types']> = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary' ? (value: string) => Number(value) : types.getTypeParser(oid, format ?? 'text')) as NonNullable<PoolConfig['types']>['getTypeParser'],
};

export function acquirePostgresPool(connectionString: string, options: PostgresPoolOptions = {}): PooledPostgres {
  const key = poolKey(connectionString, options);
  let entry = pools.get(key);
  if (!entry) {
    const pool = new Pool({
      connectionString,
      max: options.max ?? 10,
      connectionTimeoutMillis: options.connectionTimeoutMillis ?? 10_000,
      idleTimeoutMillis: options.idleTimeoutMillis ?? 30_000,
      application_name: options.applicationName ?? 'xronox',
      keepAlive: true,
      types: TYPE_PARSERS,
    });
    // An idle connection whose server side ended (a restart, pg_terminate_backend, a proxy
    // timeout) emits 'error' on the pool; without a listener that would crash the process. The
    // pool has already dropped the connection, and the next checkout opens a new one.
    pool.on('error', () => undefined);
    entry = { pool, users: 0 };
    pools.set(key, entry);
  }
  entry.users++;
  const held = entry;
  let released = false;
  return {
    pool: held.pool,
    release: async () => {
      if (released) return;
      released = true;
      held.users--;
      if (held.users === 0 && pools.get(key) === held) {
        pools.delete(key);
        await held.pool.end();
      }
    },
  };
}

/** How many distinct pools the process holds (for tests of reuse). */
export function pooledPostgresCount(): number {
  return pools.size;
}

function poolKey(connectionString: string, options: PostgresPoolOptions): string {
  // The connection string may hold a password: the map key keeps only its hash.
  return createHash('sha256').update(JSON.stringify([connectionString, options])).digest('hex');
}
