import { sha256Hex } from '../../foundation/digest.js';
import { Pool, types, type PoolClient, type PoolConfig, type QueryResult, type QueryResultRow } from 'pg';
import { ClosedError, StorageError } from '../../errors.js';

/**
 * One `pg.Pool` per connection string (and pool options) per process, shared by every database
 * and tenant on it, by every Xronox instance and by every warm Lambda invocation. Creating a pool
 * opens nothing: connections are made on first use and kept idle for `idleTimeoutMillis`. Pools
 * are reference-counted; the last user to let go ends the pool and its connections.
 */
const pools = new Map<string, { pool: Pool; users: number }>();

export interface PostgresPoolOptions {
  /** Connections the pool may hold at once. Default: see `defaultMaxConnections`. */
  max?: number;
  /** How long a connection attempt (or a wait for a free pooled connection) may take. Default 10 s. */
  connectionTimeoutMillis?: number;
  /** How long an unused connection is kept. Default 30 s. */
  idleTimeoutMillis?: number;
  /** Shown in `pg_stat_activity`. Default `xronox`. */
  applicationName?: string;
  /**
   * The longest one statement may take. Default 30 s. Inside a transaction the server cancels it
   * (`SET LOCAL statement_timeout`, which ends with the transaction, so behind PgBouncer or RDS
   * Proxy nothing stays on the session; a startup parameter would be refused by PgBouncer). Every
   * statement, in a transaction or not, is also bounded on the client (`query_timeout`, one second
   * later): a connection that gets no answer by then is dropped. So no call waits on PostgreSQL
   * much longer than this, whatever holds the lock it waits for or however the network fails.
   */
  statementTimeoutMillis?: number;
}

export const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;
/** How much later than the server's own cancel the client gives up on an answer. */
const CLIENT_GRACE_MS = 1_000;

/**
 * A Lambda container serves one request at a time; two connections let the background blob sync
 * commit while a request does, and keep hundreds of warm containers within the server's
 * `max_connections`. Elsewhere one process serves many requests at once.
 */
export function defaultMaxConnections(env: NodeJS.ProcessEnv = process.env): number {
  return env['AWS_LAMBDA_FUNCTION_NAME'] ? 2 : 10;
}

export function statementTimeoutOf(options: PostgresPoolOptions | undefined): number {
  return Math.max(1, Math.floor(options?.statementTimeoutMillis ?? DEFAULT_STATEMENT_TIMEOUT_MS));
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

/**
 * Cloudflare Workers bind a socket to the request that opened it: a pool shared by the engines of
 * two requests would hand one a connection it may not use. There each engine (one per invocation,
 * functions/edge) gets a pool of its own, ended when it closes.
 */
const SHARED_POOLS = (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent !== 'Cloudflare-Workers';
let unsharedPools = 0;

export function acquirePostgresPool(connectionString: string, options: PostgresPoolOptions = {}): PooledPostgres {
  const key = SHARED_POOLS ? poolKey(connectionString, options) : `${poolKey(connectionString, options)}:${++unsharedPools}`;
  let entry = pools.get(key);
  if (!entry) {
    const pool = new Pool({
      connectionString,
      max: options.max ?? defaultMaxConnections(),
      connectionTimeoutMillis: options.connectionTimeoutMillis ?? 10_000,
      idleTimeoutMillis: options.idleTimeoutMillis ?? 30_000,
      query_timeout: statementTimeoutOf(options) + CLIENT_GRACE_MS,
      application_name: options.applicationName ?? 'xronox',
      keepAlive: true,
      types: TYPE_PARSERS,
    });
    // An idle connection whose server side ended (a restart, pg_terminate_backend, a proxy
    // timeout) emits 'error' on the pool; without a listener that would crash the process. The
    // pool has already dropped the connection, and the next checkout opens a new one.
    pool.on('error', () => undefined);
    // The same for a connection checked out between two statements (a transaction deciding):
    // its next statement fails ("not queryable"), which the driver handles; the event itself
    // must not reach the process as an uncaught error.
    pool.on('connect', (client) => client.on('error', () => undefined));
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
  return sha256Hex(JSON.stringify([connectionString, options]));
}

/**
 * A store's use of a pool: acquired on first use, refused after `close` (`ClosedError`), every
 * statement shown to `onQuery` (diagnostics and the EXPLAIN tests) before it runs.
 */
export class PostgresSession {
  readonly statementTimeoutMs: number;
  readonly #connectionString: string;
  readonly #options: PostgresPoolOptions | undefined;
  readonly #what: string;
  readonly onQuery: ((text: string, values: readonly unknown[]) => void) | undefined;
  #pooled: PooledPostgres | null = null;
  #closed = false;

  constructor(connectionString: string, options: { pool?: PostgresPoolOptions; onQuery?: (text: string, values: readonly unknown[]) => void; what: string }) {
    this.#connectionString = connectionString;
    this.#options = options.pool;
    this.#what = options.what;
    this.onQuery = options.onQuery;
    this.statementTimeoutMs = statementTimeoutOf(options.pool);
  }

  get closed(): boolean {
    return this.#closed;
  }

  pool(): Pool {
    if (this.#closed) throw new ClosedError(this.#what);
    this.#pooled ??= acquirePostgresPool(this.#connectionString, this.#options);
    return this.#pooled.pool;
  }

  async query<R extends QueryResultRow>(text: string, values: readonly unknown[] = [], client: Pool | PoolClient = this.pool()): Promise<QueryResult<R>> {
    this.onQuery?.(text, values);
    return client.query<R>(text, values as unknown[]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const pooled = this.#pooled;
    this.#pooled = null;
    await pooled?.release();
  }

  /**
   * A statement that ran out of time as a `StorageError` that says which bound it met (the
   * statement or lock timeout on the server, or no answer in time on the client); a server that
   * cannot be reached or refuses the login as one that says what to check; any other error as it is.
   */
  nameError(err: unknown, operation: string): unknown {
    const code = errorCode(err);
    const message = err instanceof Error ? err.message : String(err);
    const unreachable = this.#unreachable(err, code, message, operation);
    if (unreachable) return unreachable;
    if (code === LOCK_NOT_AVAILABLE) return new StorageError('postgres', operation, err, `PostgreSQL gave up waiting for a lock during ${operation} (${message})`);
    if (code === QUERY_CANCELED) {
      return new StorageError('postgres', operation, err, `PostgreSQL cancelled a statement of ${operation} (${message}); the statement timeout is ${this.statementTimeoutMs} ms`);
    }
    if (isClientTimeout(err)) {
      return new StorageError(
        'postgres',
        operation,
        err,
        `PostgreSQL did not answer a statement of ${operation} within ${this.statementTimeoutMs + CLIENT_GRACE_MS} ms (statement timeout ${this.statementTimeoutMs} ms); the connection was dropped`,
      );
    }
    return err;
  }

  #unreachable(err: unknown, code: string | undefined, message: string, operation: string): StorageError | undefined {
    const server = `PostgreSQL at ${serverOf(this.#connectionString)}`;
    if ((code !== undefined && UNREACHABLE_CODES.has(code)) || /timeout exceeded when trying to connect/i.test(message)) {
      return new StorageError('postgres', operation, err, `${server} cannot be reached (${code ?? message}) during ${operation}: is the server running, and is postgresUri right?`);
    }
    if (code === CANNOT_CONNECT_NOW) {
      return new StorageError('postgres', operation, err, `${server} is not accepting connections yet (57P03: starting up, or recovering after a crash) during ${operation}: try again shortly`);
    }
    if (code === INVALID_PASSWORD || code === INVALID_AUTHORIZATION) {
      return new StorageError('postgres', operation, err, `${server} refused the login during ${operation} (${message}): check the user and password of postgresUri`);
    }
    if (code === INVALID_CATALOG_NAME) return new StorageError('postgres', operation, err, `${server}: ${message} (during ${operation}); create it, or name another in postgresUri`);
    return undefined;
  }
}

/** Errors of a server that cannot be reached at all (no connection made). */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ETIMEDOUT']);
/** The server is starting up or recovering: it refuses connections for now. */
const CANNOT_CONNECT_NOW = '57P03';
const INVALID_PASSWORD = '28P01';
const INVALID_AUTHORIZATION = '28000';
const INVALID_CATALOG_NAME = '3D000';

/** `host:port` of a connection string, for messages (never its user or password). */
function serverOf(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    return `${url.hostname || url.searchParams.get('host') || 'localhost'}:${url.port || '5432'}`;
  } catch {
    return 'the configured server';
  }
}

/**
 * Runs `work` in a transaction on a pooled connection (`settings`, e.g. `SET LOCAL …`, go with
 * BEGIN). A connection that is gone, still busy with a statement the client stopped waiting for,
 * or unable to roll back is dropped rather than given back to the pool.
 */
export async function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>, settings = ''): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query(settings ? `BEGIN; ${settings}` : 'BEGIN');
    const out = await work(client);
    await client.query('COMMIT');
    return out;
  } catch (err) {
    if (isClientTimeout(err) || isConnectionError(err)) broken = err as Error;
    else {
      await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
        broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
      });
    }
    throw err;
  } finally {
    client.release(broken);
  }
}

// ---- what errors mean -----------------------------------------------------------------------

export const UNIQUE_VIOLATION = '23505';
/** A statement cancelled: `statement_timeout`, or an administrator's `pg_cancel_backend`. */
const QUERY_CANCELED = '57014';
/** `lock_timeout` ran out while a statement waited for a lock. */
const LOCK_NOT_AVAILABLE = '55P03';
/** The server ended the session or the socket broke: the transaction was rolled back (unless it was committing). */
const CONNECTION_CODES = new Set(['57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006', 'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT']);

export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function isUniqueViolation(err: unknown): err is Error & { code: string; constraint?: string } {
  return err instanceof Error && errorCode(err) === UNIQUE_VIOLATION;
}

/** The connection is gone (or never came): nothing more can be sent on it. */
export function isConnectionError(err: unknown): boolean {
  const code = errorCode(err);
  if (code !== undefined && CONNECTION_CODES.has(code)) return true;
  const message = err instanceof Error ? err.message : '';
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable/i.test(message);
}

/** Jittered exponential backoff before another attempt: 5-10 ms, 10-20 ms, … capped at 500-1000 ms. */
export function backoff(attempt: number): Promise<void> {
  const base = Math.min(500, 5 * 2 ** (attempt - 1));
  return new Promise((resolve) => setTimeout(resolve, base + Math.random() * base));
}

/** node-postgres gave up waiting for an answer (`query_timeout`): the statement may still run on the server. */
export function isClientTimeout(err: unknown): boolean {
  return err instanceof Error && err.message === 'Query read timeout';
}
