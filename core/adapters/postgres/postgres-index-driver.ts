import { createHash } from 'node:crypto';
import type { Pool, PoolClient, QueryResult, QueryResultRow } from 'pg';
import type {
  ActorQuery,
  AsOfQuery,
  CounterWindow,
  CounterWindowQuery,
  DeadLetter,
  HeadQuery,
  HeadRow,
  HistoryRow,
  IndexedValue,
  Namespace,
  PendingBlob,
  PendingSync,
  UnarchivedRecord,
  VersionRow,
  VersionSummary,
} from '../../contracts/index-store.js';
import {
  nsKey,
  refKey,
  uploadKey,
  isDecision,
  type Decision,
  type Effect,
  type HeadState,
  type IndexDriver,
  type OutboxQuery,
  type ReadRows,
  type ReadSet,
  type Transaction,
  type UploadRow,
  type VersionRange,
} from '../../contracts/index-driver.js';
import { ClosedError, StorageError, ValidationError } from '../../errors.js';
import { compileFilter } from './postgres-filter.js';
import { inlineParams } from './postgres-inline.js';
import { acquirePostgresPool, type PooledPostgres, type PostgresPoolOptions } from './postgres-pool.js';
import { assertSchemaPrefix, createSchemaInTransaction, listSchemas, prepareSchema, schemaNameFor, schemaState, tablesOf, type Tables } from './postgres-schema.js';
import { groupWindows } from '../../store/driver-kit.js';

export interface PostgresIndexDriverOptions {
  /** `postgres://user:password@host:port/database`; the pool is shared by every driver with the same string and pool options. */
  connectionString: string;
  /** Every Xronox database is the schema `<schemaPrefix><dbName>`. Default `xronox_`. */
  schemaPrefix?: string;
  pool?: PostgresPoolOptions;
  /** How long a transaction waits for a row lock held by another before failing. Default 10 s. */
  lockTimeoutMs?: number;
  /** Attempts of a transaction that lost a race (serialization failure, deadlock, lost connection). Default 8. */
  maxAttempts?: number;
  /** Sees every statement before it runs (diagnostics and the EXPLAIN tests). */
  onQuery?: (text: string, values: readonly unknown[]) => void;
}

/**
 * SQLSTATEs after which a transaction is re-run from its reads (`decide` is pure, so re-running
 * it on fresh rows is the whole retry): a serialization failure, a deadlock (lock order is sorted,
 * but a plan may touch a namespace only in its effects), and a unique violation (two first
 * writers racing on a row no lock covered).
 */
const UNIQUE_VIOLATION = '23505';
const RETRYABLE = new Set(['40001', '40P01', UNIQUE_VIOLATION]);
/** Tries of a transaction whose connection could not even be made. */
const MAX_CONNECT_ATTEMPTS = 3;
/** A plan takes a few steps (see `Transaction.decide`); more is a plan that loops. */
const MAX_STEPS = 16;

/** The server ended the session or the socket broke: the transaction was rolled back (unless it was committing). */
const CONNECTION_CODES = new Set(['57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006', 'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT']);

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function isConnectionError(err: unknown): boolean {
  const code = errorCode(err);
  if (code !== undefined && CONNECTION_CODES.has(code)) return true;
  const message = err instanceof Error ? err.message : '';
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable/i.test(message);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Jittered exponential backoff: 5-10 ms, 10-20 ms, … capped at 500 ms. */
function backoff(attempt: number): number {
  const base = Math.min(500, 5 * 2 ** (attempt - 1));
  return base + Math.random() * base;
}

interface HeadSqlRow {
  id: string;
  ov: number;
  cv: number;
  deleted: boolean;
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
  meta: Record<string, IndexedValue>;
  body: string;
  hash: string | null;
}

/** A history row as PostgreSQL returns it: the port's own shape. */
type HistorySqlRow = HistoryRow;

interface VersionSqlRow extends HistorySqlRow {
  body: string | null;
  meta: Record<string, IndexedValue>;
  hash: string;
}

const HEAD_COLUMNS = 'id, ov, cv, deleted, created_at, updated_at, deleted_at, meta, body, hash';
const HISTORY_COLUMNS = 'id, ov, cv, op, at, actor, reason, deleted, size, archived';
const VERSION_COLUMNS = `${HISTORY_COLUMNS}, body, meta, hash`;
const SORT_COLUMNS = { id: 'id', createdAt: 'created_at', updatedAt: 'updated_at' } as const;

/** Interface for what `Run` needs of the driver. */
interface Session {
  readonly prefix: string;
  readonly ready: Set<string>;
  readonly onQuery: ((text: string, values: readonly unknown[]) => void) | undefined;
  query<R extends QueryResultRow>(client: Pool | PoolClient, text: string, values?: readonly unknown[]): Promise<R[]>;
}

/**
 * The index store on PostgreSQL (node-postgres), one schema per Xronox database.
 *
 * Transactions run at READ COMMITTED with explicit row locks rather than at SERIALIZABLE. The
 * first thing a transaction does is lock the row of each namespace it reads (`namespaces`, one
 * row per collection, created on first use), in sorted order; every write of a namespace's rows
 * happens under that lock. So transactions of one namespace run one after the other: every read
 * after the lock sees the last committed state (READ COMMITTED takes a new snapshot per
 * statement), rows that do not exist yet are covered too (a row lock alone cannot cover a
 * missing row), cvs are assigned in commit order and without gaps (the cv lives in the locked
 * row), and contention waits instead of failing. SERIALIZABLE would abort and re-run most of the
 * transactions of a busy record or namespace instead (a commit always reads and writes its
 * namespace's cv). Transactions of different namespaces never wait for each other; counters
 * are added with atomic upserts, without a lock. Leases are locked by key instead (an advisory
 * lock, see `Run.#lockLeases`), so taking and renewing them never queues behind commits; a plan
 * marked not durable (leases) commits without waiting for the WAL flush.
 *
 * A namespace's commits queue on its lock for as long as each holds it, so a transaction makes
 * few round trips: BEGIN goes with the first lock, each read set is one statement per kind of
 * row, and every write goes with COMMIT as one simple query (values written as literals, see
 * `postgres-inline.ts`): a one-record commit is three round trips and a WAL flush. The lock also
 * returns the transaction's id, so a COMMIT whose answer is lost with its connection is resolved
 * (`txid_status`) rather than reported as unknown. A transaction that lost a race or its
 * connection before COMMIT is re-run from its reads, a bounded number of times.
 *
 * Reads outside transactions are single statements on a pooled connection (one snapshot each).
 */
export class PostgresIndexDriver implements IndexDriver {
  readonly name = 'postgres';
  readonly multiProcess = true;
  readonly #options: PostgresIndexDriverOptions;
  readonly #prefix: string;
  readonly #lockTimeoutMs: number;
  readonly #maxAttempts: number;
  /** Schemas known to exist in this version (they are never dropped by the driver). */
  readonly #ready = new Set<string>();
  #pooled: PooledPostgres | null = null;
  #checked = false;
  #closed = false;
  readonly #session: Session;

  constructor(options: PostgresIndexDriverOptions) {
    this.#options = options;
    this.#prefix = assertSchemaPrefix(options.schemaPrefix ?? 'xronox_');
    this.#lockTimeoutMs = Math.max(1, Math.floor(options.lockTimeoutMs ?? 10_000));
    this.#maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? 8));
    const onQuery = options.onQuery;
    this.#session = {
      prefix: this.#prefix,
      ready: this.#ready,
      onQuery,
      query: async <R extends QueryResultRow>(client: Pool | PoolClient, text: string, values: readonly unknown[] = []) => {
        onQuery?.(text, values);
        return (await client.query<R>(text, values as unknown[])).rows;
      },
    };
  }

  /** The schema prefix of this store. */
  get schemaPrefix(): string {
    return this.#prefix;
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  async open(): Promise<void> {
    const pool = this.#pool();
    if (this.#checked) {
      await pool.query('SELECT 1');
      return;
    }
    const rows = await this.#session.query<{ encoding: string }>(pool, `SELECT current_setting('server_encoding') AS encoding`);
    // Ids, keys and times are ordered by byte ("C") order of their UTF-8 form; another server
    // encoding would store and order them differently from every other store.
    if (rows[0]?.encoding !== 'UTF8') {
      throw new StorageError('postgres', 'open', undefined, `The PostgreSQL database uses encoding ${rows[0]?.encoding ?? 'unknown'}; Xronox needs UTF8`);
    }
    this.#checked = true;
  }

  async ping(): Promise<void> {
    await this.#withReconnect(() => this.#pool().query('SELECT 1'));
  }

  /** The database's schema and tables, made unless there (`xronox migrate`); see `postgres-schema.ts`. */
  async prepareDatabase(dbName: string): Promise<boolean> {
    const schema = schemaNameFor(this.#prefix, dbName);
    const created = await this.#withReconnect(() => prepareSchema(this.#pool(), schema, this.#prefix, dbName));
    this.#ready.add(schema);
    return created;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const pooled = this.#pooled;
    this.#pooled = null;
    await pooled?.release();
  }

  #pool(): Pool {
    if (this.#closed) throw new ClosedError('The PostgreSQL index store');
    this.#pooled ??= acquirePostgresPool(this.#options.connectionString, this.#options.pool);
    return this.#pooled.pool;
  }

  // ---- transactions ---------------------------------------------------------------------------

  async transact<T>(tx: Transaction<T>): Promise<T> {
    const pool = this.#pool();
    let uniqueViolations = 0;
    let unreachable = 0;
    for (let attempt = 1; ; attempt++) {
      let client: PoolClient | undefined;
      let run: Run | undefined;
      let decision: Decision<T> | undefined;
      /** Set once COMMIT is sent: the id to ask the server about if the answer is lost (none for a lease). */
      let committing: { xid: string | undefined } | undefined;
      try {
        client = await pool.connect();
        // SET LOCAL ends with the transaction: nothing of it stays on the pooled session.
        // synchronous_commit is left as the server has it (on by default): COMMIT returns once
        // the commit is flushed to the WAL.
        // Housekeeping the plan marks not durable (leases) commits without waiting for the WAL
        // flush: a server crash may forget it, which a lease, held by live processes only, allows.
        const asynchronous = tx.durable === false ? '; SET LOCAL synchronous_commit = off' : '';
        // A plan that only reads (counts, a collection version) needs one snapshot, not locks: it
        // never queues behind a namespace's commits.
        const begin = tx.readOnly ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : 'BEGIN ISOLATION LEVEL READ COMMITTED';
        // Sent with the transaction's first statement, in the same round trip.
        run = new Run(this.#session, client, `${begin}; SET LOCAL lock_timeout = ${this.#lockTimeoutMs}${asynchronous}`, tx.readOnly === true);
        let step: Transaction<T> = tx;
        for (let steps = 0; !decision; steps++) {
          if (steps === MAX_STEPS) throw new Error(`A transaction plan took more than ${MAX_STEPS} steps`);
          const outcome = step.decide(await run.read(step.reads));
          if (isDecision(outcome)) decision = outcome;
          else step = outcome;
        }
        // The writes, rendered (taking any lock or schema they need first), then sent with
        // COMMIT in one round trip.
        if (tx.readOnly && decision.effects.length > 0) throw new Error('A plan marked readOnly returned effects');
        const writes = await run.prepare(decision.effects);
        if (writes.length === 0 && !run.createdSchemas) {
          // Nothing to keep (the namespace rows were only locked): no commit record to flush.
          if (run.started) await run.send(['ROLLBACK']);
        } else {
          // The id, to learn the outcome if the answer to COMMIT is lost. A namespace lock
          // returned it already; otherwise one round trip asks (not for leases: a lease whose
          // outcome is unknown is simply asked for again).
          const xid = run.xid ?? (tx.durable === false ? undefined : ((await run.send(['SELECT txid_current()::text AS xid']))[0]?.xid as string));
          committing = { xid };
          await run.send([...writes, 'COMMIT']);
          run.committed();
        }
        client.release();
        client = undefined;
        return decision.result;
      } catch (err) {
        const lost = isConnectionError(err);
        if (client) {
          let broken: unknown = lost ? err : undefined;
          if (!lost) {
            try {
              await client.query('ROLLBACK');
            } catch (rollbackErr) {
              broken = rollbackErr;
            }
          }
          // A broken connection is destroyed, not returned to the pool.
          client.release(broken instanceof Error ? broken : broken === undefined ? undefined : true);
        }
        if (committing && lost) {
          // The answer to COMMIT was lost: the server knows whether it committed.
          const status = committing.xid === undefined ? null : await this.#commitStatus(committing.xid);
          if (status === 'committed') {
            run!.committed();
            return decision!.result;
          }
          if (status !== 'aborted') {
            throw new StorageError(
              'postgres',
              'commit',
              err,
              'The connection to PostgreSQL broke while the transaction was committing, and whether it was applied could not be learnt',
            );
          }
        }
        const code = errorCode(err) ?? '';
        // Every write runs under its namespace's lock, so a unique violation is not a race this
        // driver can lose twice: one re-run on fresh rows settles a race, a second one is a refusal
        // (a plan writing a version entry that exists).
        if (code === UNIQUE_VIOLATION) uniqueViolations++;
        const retryable = lost || (RETRYABLE.has(code) && (code !== UNIQUE_VIOLATION || uniqueViolations < 2));
        // A server that cannot be reached at all (no connection made) is tried three times, not
        // `maxAttempts`: each try may wait the whole connection timeout.
        if (!client && lost) unreachable++;
        if (!retryable || attempt >= this.#maxAttempts || unreachable >= MAX_CONNECT_ATTEMPTS || this.#closed) throw err;
        await sleep(backoff(attempt));
      }
    }
  }

  /**
   * Whether a transaction whose COMMIT went unanswered committed, asked on another connection:
   * `txid_status` answers once the ended session's transaction is resolved (a few polls at most).
   * `null` when the server cannot say (unreachable, or still in progress after the polls).
   */
  async #commitStatus(xid: string): Promise<'committed' | 'aborted' | null> {
    for (let poll = 1; poll <= 20 && !this.#closed; poll++) {
      try {
        const [row] = await this.#session.query<{ status: string | null }>(this.#pool(), 'SELECT txid_status($1::bigint) AS status', [xid]);
        if (row?.status === 'committed' || row?.status === 'aborted') return row.status;
        if (row?.status !== 'in progress') return null;
      } catch (err) {
        if (!isConnectionError(err)) return null;
      }
      await sleep(Math.min(200, 10 * poll));
    }
    return null;
  }

  // ---- reads ----------------------------------------------------------------------------------

  async getHead(ns: Namespace, id: string): Promise<HeadRow | null> {
    return this.#read(ns.dbName, null, async (t, pool) => {
      const rows = await this.#session.query<HeadSqlRow>(pool, `SELECT ${HEAD_COLUMNS} FROM ${t.heads} WHERE coll = $1 AND id = $2`, [ns.collection, id]);
      return rows[0] ? toHead(rows[0]) : null;
    });
  }

  async listVersions(ns: Namespace, id: string, range: VersionRange): Promise<VersionRow[]> {
    return this.#read(ns.dbName, [], async (t, pool) => {
      const params: unknown[] = [ns.collection, id];
      const where = ['coll = $1', 'id = $2'];
      if (range.beforeOv !== undefined) where.push(intBound('ov', '<', range.beforeOv, params));
      if (range.afterOv !== undefined) where.push(intBound('ov', '>', range.afterOv, params));
      if (range.unarchived) where.push('NOT archived');
      let order: string;
      let limit: number | null = range.limit ?? null;
      if (range.at !== undefined) {
        if ('at' in range.at) {
          where.push(`at <= ${push(params, range.at.at)}`);
          order = 'at DESC, ov DESC';
        } else {
          where.push(intBound('cv', '<=', range.at.cv, params));
          order = 'cv DESC';
        }
        limit = limit === null ? 1 : Math.min(limit, 1);
      } else {
        order = range.order === 'asc' ? 'ov ASC' : 'ov DESC';
      }
      const sql = `SELECT ${VERSION_COLUMNS} FROM ${t.versions} WHERE ${where.join(' AND ')} ORDER BY ${order} LIMIT ${push(params, limit)}`;
      return (await this.#session.query<VersionSqlRow>(pool, sql, params)).map(toVersion);
    });
  }

  async listHistory(ns: Namespace, id: string, range: { beforeOv?: number; limit: number }): Promise<HistoryRow[]> {
    return this.#read(ns.dbName, [], async (t, pool) => {
      const params: unknown[] = [ns.collection, id];
      const below = range.beforeOv === undefined ? '' : ` AND ${intBound('ov', '<', range.beforeOv, params)}`;
      const rows = await this.#session.query<HistorySqlRow>(
        pool,
        `SELECT ${HISTORY_COLUMNS} FROM ${t.versions} WHERE coll = $1 AND id = $2${below} ORDER BY ov DESC LIMIT ${push(params, range.limit)}`,
        params,
      );
      return rows.map(toHistory);
    });
  }

  async listHeads(ns: Namespace, query: HeadQuery): Promise<HeadRow[]> {
    return this.#read(ns.dbName, [], async (t, pool) => {
      const params: unknown[] = [ns.collection];
      const where = ['coll = $1'];
      if (!query.includeDeleted) where.push('NOT deleted');
      if (query.filter) where.push(compileFilter(query.filter, params, 'meta'));
      const column = SORT_COLUMNS[query.sort.field];
      const dir = query.sort.direction === 1 ? 'ASC' : 'DESC';
      if (query.after) {
        const cmp = query.sort.direction === 1 ? '>' : '<';
        if (column === 'id') where.push(`id ${cmp} ${push(params, query.after.id)}`);
        else where.push(`(${column}, id) ${cmp} (${push(params, query.after.value)}, ${push(params, query.after.id)})`);
      }
      const order = column === 'id' ? `id ${dir}` : `${column} ${dir}, id ${dir}`;
      const sql = `SELECT ${HEAD_COLUMNS} FROM ${t.heads} WHERE ${where.join(' AND ')} ORDER BY ${order} LIMIT ${push(params, query.limit)}`;
      return (await this.#session.query<HeadSqlRow>(pool, sql, params)).map(toHead);
    });
  }

  async queryAt(ns: Namespace, query: AsOfQuery): Promise<VersionRow[]> {
    return this.#read(ns.dbName, [], async (t, pool) => {
      // Driven by the heads in id order (either direction of the primary key), one index seek
      // per record (versions_by_time, read backwards) for its newest version at or before `at`.
      const params: unknown[] = [ns.collection, query.at];
      const where = ['h.coll = $1'];
      const dir = query.direction === 1 ? 'ASC' : 'DESC';
      if (query.afterId !== undefined) where.push(`h.id ${query.direction === 1 ? '>' : '<'} ${push(params, query.afterId)}`);
      if (!query.includeDeleted) where.push('NOT v.deleted');
      if (query.filter) where.push(compileFilter(query.filter, params, 'v.meta'));
      const columns = VERSION_COLUMNS.split(', ').map((c) => `w.${c}`).join(', ');
      const sql = `SELECT v.* FROM ${t.heads} h CROSS JOIN LATERAL (
          SELECT ${columns} FROM ${t.versions} w WHERE w.coll = h.coll AND w.id = h.id AND w.at <= $2
          ORDER BY w.at DESC, w.ov DESC LIMIT 1) v
        WHERE ${where.join(' AND ')} ORDER BY h.id ${dir} LIMIT ${push(params, query.limit)}`;
      return (await this.#session.query<VersionSqlRow>(pool, sql, params)).map(toVersion);
    });
  }

  async listVersionsByActor(ns: Namespace, actorId: string, query: ActorQuery): Promise<VersionRow[]> {
    return this.#read(ns.dbName, [], async (t, pool) => {
      const params: unknown[] = [ns.collection, actorId];
      const where = ['coll = $1', 'actor_id = $2'];
      if (query.actorType !== undefined) where.push(`actor_type = ${push(params, query.actorType)}`);
      if (query.from !== undefined) where.push(`at >= ${push(params, query.from)}`);
      if (query.to !== undefined) where.push(`at <= ${push(params, query.to)}`);
      if (query.before) {
        where.push(`(at, id, ov) < (${push(params, query.before.at)}, ${push(params, query.before.id)}, ${push(params, query.before.ov)}::float8)`);
      }
      const sql = `SELECT ${VERSION_COLUMNS} FROM ${t.versions} WHERE ${where.join(' AND ')}
        ORDER BY at DESC, id DESC, ov DESC LIMIT ${push(params, query.limit)}`;
      return (await this.#session.query<VersionSqlRow>(pool, sql, params)).map(toVersion);
    });
  }

  async listClaims(ns: Namespace, query: { key?: string; afterKey?: string; limit: number }): Promise<Array<{ key: string; id: string }>> {
    return this.#read(ns.dbName, [], async (t, pool) => {
      const params: unknown[] = [ns.collection];
      const where = ['coll = $1'];
      if (query.key !== undefined) where.push(`key = ${push(params, query.key)}`);
      if (query.afterKey !== undefined) where.push(`key > ${push(params, query.afterKey)}`);
      const sql = `SELECT key, id FROM ${t.claims} WHERE ${where.join(' AND ')} ORDER BY key LIMIT ${push(params, query.limit)}`;
      return this.#session.query<{ key: string; id: string }>(pool, sql, params);
    });
  }

  async listOutbox(dbName: string, query: OutboxQuery): Promise<PendingSync[]> {
    return this.#read(dbName, [], async (t, pool) => {
      const params: unknown[] = [];
      const where = ['TRUE'];
      if (query.collection !== undefined) where.push(`coll = ${push(params, query.collection)}`);
      if (query.id !== undefined) where.push(`id = ${push(params, query.id)}`);
      if (query.maxSeq !== undefined) where.push(`seq <= ${push(params, query.maxSeq)}::float8`);
      let order = 'queued';
      if (query.order === 'id') {
        if (query.afterId !== undefined) where.push(`id > ${push(params, query.afterId)}`);
        order = 'coll, id';
      }
      const sql = `SELECT coll, id, seq FROM ${t.outbox} WHERE ${where.join(' AND ')} ORDER BY ${order} LIMIT ${push(params, query.limit)}`;
      const rows = await this.#session.query<{ coll: string; id: string; seq: number }>(pool, sql, params);
      return rows.map((r) => ({ collection: r.coll, id: r.id, seq: r.seq }));
    });
  }

  async listDeadLetters(dbName: string, query: { limit: number }): Promise<DeadLetter[]> {
    return this.#read(dbName, [], async (t, pool) => {
      const rows = await this.#session.query<{ coll: string; id: string; reason: string; failed_at: string }>(
        pool,
        `SELECT coll, id, reason, failed_at FROM ${t.deadLetters} ORDER BY failed_at, made LIMIT $1`,
        [query.limit],
      );
      return rows.map((r) => ({ collection: r.coll, id: r.id, reason: r.reason, failedAt: r.failed_at }));
    });
  }

  async listPendingBlobs(ns: Namespace, id: string | null, query?: { bucket: string; key: string }): Promise<PendingBlob[]> {
    return this.#read(ns.dbName, [], async (t, pool) => {
      const params: unknown[] = [ns.collection];
      const where = ['coll = $1'];
      if (id !== null) where.push(`id = ${push(params, id)}`);
      if (query) where.push(`bucket = ${push(params, query.bucket)} AND key = ${push(params, query.key)}`);
      const rows = await this.#session.query<{ bucket: string; key: string; content_type: string; body: Buffer }>(
        pool,
        `SELECT bucket, key, content_type, body FROM ${t.pendingBlobs} WHERE ${where.join(' AND ')} ORDER BY key, bucket`,
        params,
      );
      return rows.map((r) => ({ bucket: r.bucket, key: r.key, contentType: r.content_type, body: new Uint8Array(r.body) }));
    });
  }

  async getCounters(dbName: string, collection: string): Promise<Record<string, number>> {
    return this.#read(dbName, {}, async (t, pool) => {
      const rows = await this.#session.query<{ name: string; value: number }>(pool, `SELECT name, value FROM ${t.counters} WHERE coll = $1 ORDER BY name`, [collection]);
      return Object.fromEntries(rows.map((r) => [r.name, r.value]));
    });
  }

  async getCounterWindows(dbName: string, collection: string, query: CounterWindowQuery): Promise<CounterWindow[]> {
    return this.#read(dbName, [], async (t, pool) => {
      const prefix = `${query.granularity}:`;
      const rows = await this.#session.query<{ win: string; name: string; value: number }>(
        pool,
        `SELECT win, name, value FROM ${t.counterWindows}
         WHERE coll = $1 AND win >= $2 AND win < $3 AND win >= $4 AND ($5::text IS NULL OR win <= $5)
         ORDER BY win, name`,
        [collection, prefix, windowRangeEnd(prefix), query.from ?? '', query.to ?? null],
      );
      return groupWindows(rows);
    });
  }

  async listNamespaces(dbName?: string): Promise<Array<Namespace & { cv: number }>> {
    if (dbName !== undefined) {
      return this.#read(dbName, [], async (t, pool) => {
        const rows = await this.#session.query<{ coll: string; cv: number }>(pool, `SELECT coll, cv FROM ${t.namespaces} WHERE cv IS NOT NULL ORDER BY coll`);
        return rows.map((r) => ({ dbName, collection: r.coll, cv: r.cv }));
      });
    }
    return this.#withReconnect(async () => {
      const pool = this.#pool();
      const schemas = await listSchemas(pool, this.#prefix);
      if (schemas.length === 0) return [];
      const params: unknown[] = [];
      // One statement; each branch reads only its own schema's table.
      const union = schemas
        .map((s) => `SELECT ${push(params, s.dbName)}::text AS db, coll, cv FROM ${tablesOf(s.schema).namespaces} WHERE cv IS NOT NULL`)
        .join(' UNION ALL ');
      const rows = await this.#session.query<{ db: string; coll: string; cv: number }>(pool, union, params);
      return rows
        .map((r) => ({ dbName: r.db, collection: r.coll, cv: r.cv }))
        .sort((a, b) => byteCompare(a.dbName, b.dbName) || byteCompare(a.collection, b.collection));
    });
  }

  async listPendingDatabases(): Promise<string[]> {
    return this.#databasesHolding((t) => t.outbox);
  }

  async listDeadLetterDatabases(): Promise<string[]> {
    return this.#databasesHolding((t) => t.deadLetters);
  }

  /** Databases of this prefix whose table (outbox, dead letters) holds a row, in byte order. */
  async #databasesHolding(table: (t: Tables) => string): Promise<string[]> {
    return this.#withReconnect(async () => {
      const pool = this.#pool();
      const schemas = await listSchemas(pool, this.#prefix);
      if (schemas.length === 0) return [];
      const params: unknown[] = [];
      const union = schemas.map((s) => `SELECT ${push(params, s.dbName)}::text AS db WHERE EXISTS (SELECT 1 FROM ${table(tablesOf(s.schema))})`).join(' UNION ALL ');
      const rows = await this.#session.query<{ db: string }>(pool, union, params);
      return rows.map((r) => r.db).sort(byteCompare);
    });
  }

  async listUnarchivedRecords(
    dbName: string,
    query: { writtenBefore: string; after?: { collection: string; id: string }; limit: number },
  ): Promise<UnarchivedRecord[]> {
    return this.#read(dbName, [], async (t, pool) => {
      const params: unknown[] = [query.writtenBefore];
      const after = query.after ? `AND (coll, id) > (${push(params, query.after.collection)}, ${push(params, query.after.id)})` : '';
      // Reads only the partial index of unarchived entries (with `at` included), never archived history.
      const rows = await this.#session.query<{ coll: string; id: string; oldest: string }>(
        pool,
        `SELECT coll, id, min(at) AS oldest FROM ${t.versions} WHERE NOT archived ${after}
         GROUP BY coll, id HAVING min(at) <= $1 ORDER BY coll, id LIMIT ${push(params, query.limit)}`,
        params,
      );
      return rows.map((r) => ({ collection: r.coll, id: r.id, oldestAt: r.oldest }));
    });
  }

  async listHeadIds(ns: Namespace, query: { afterId?: string; limit: number }): Promise<string[]> {
    return this.#read(ns.dbName, [], async (t, pool) => {
      const rows = await this.#session.query<{ id: string }>(
        pool,
        `SELECT id FROM ${t.heads} WHERE coll = $1 AND id > $2 ORDER BY id LIMIT $3`,
        [ns.collection, query.afterId ?? '', query.limit],
      );
      return rows.map((r) => r.id);
    });
  }

  async summariseVersions(ns: Namespace, query: { afterId?: string; limit: number }): Promise<VersionSummary[]> {
    return this.#read(ns.dbName, [], async (t, pool) => {
      const rows = await this.#session.query<{ id: string; n: number; lo: number; hi: number; superseded: string | null }>(
        pool,
        `SELECT g.id, g.n, g.lo, g.hi,
           (SELECT w.at FROM ${t.versions} w WHERE w.coll = $1 AND w.id = g.id AND w.ov = g.lo + 1) AS superseded
         FROM (SELECT id, count(*) AS n, min(ov) AS lo, max(ov) AS hi FROM ${t.versions}
               WHERE coll = $1 AND id > $2 GROUP BY id ORDER BY id LIMIT $3) g
         ORDER BY g.id`,
        [ns.collection, query.afterId ?? '', query.limit],
      );
      return rows.map((r) => ({ id: r.id, count: r.n, oldestOv: r.lo, newestOv: r.hi, oldestSupersededAt: r.superseded }));
    });
  }

  /**
   * Runs a read in the database's schema; a database whose schema does not exist yet has
   * nothing, so `empty` is the answer (and no schema is created by a read).
   */
  async #read<T>(dbName: string, empty: T, body: (t: Tables, pool: Pool) => Promise<T>): Promise<T> {
    const schema = schemaNameFor(this.#prefix, dbName);
    return this.#withReconnect(async () => {
      const pool = this.#pool();
      if (!this.#ready.has(schema)) {
        if ((await schemaState(pool, schema, this.#prefix, dbName)) === 'missing') return empty;
        this.#ready.add(schema);
      }
      return body(tablesOf(schema), pool);
    });
  }

  /**
   * A read that met a broken pooled connection (the server restarted, or ended the session) is
   * run once more: the pool has dropped that connection and opens a new one.
   */
  async #withReconnect<T>(body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (err) {
      if (!isConnectionError(err) || this.#closed) throw err;
      await sleep(backoff(2));
      return body();
    }
  }
}

/** One attempt of a transaction on one connection: its locks, reads and effects. */
class Run {
  readonly #s: Session;
  readonly #client: PoolClient;
  /** `nsKey` → cv (null: never written) of every namespace locked so far. */
  readonly #locked = new Map<string, number | null>();
  /** Schemas this transaction created: ready for everyone once it commits. */
  readonly #created = new Set<string>();
  /** Lease keys (advisory lock keys) locked so far. */
  readonly #leases = new Set<string>();
  /** This transaction's id, as the first namespace lock returned it. */
  xid: string | undefined;

  /** `BEGIN …`, until the first statement carries it to the server. */
  #prelude: string | undefined;
  /** Statements of the effects, rendered with their values (`postgres-inline.ts`). */
  #writes: string[] = [];

  /** A read-only plan: one snapshot, no locks, no schema created. */
  readonly #readOnly: boolean;

  constructor(session: Session, client: PoolClient, prelude: string, readOnly: boolean) {
    this.#s = session;
    this.#client = client;
    this.#prelude = prelude;
    this.#readOnly = readOnly;
  }

  /** Whether the transaction has begun on the server. */
  get started(): boolean {
    return this.#prelude === undefined;
  }

  /**
   * Sends statements as one simple query (after the prelude, if it has not gone yet) and returns
   * the rows of the last one.
   */
  async send(statements: readonly string[]): Promise<Array<Record<string, unknown>>> {
    const all = this.#prelude === undefined ? statements : [this.#prelude, ...statements];
    this.#prelude = undefined;
    const text = all.join(';\n');
    this.#s.onQuery?.(text, []);
    const result = (await this.#client.query(text)) as unknown as QueryResult | QueryResult[];
    const last = Array.isArray(result) ? result.at(-1) : result;
    return (last?.rows ?? []) as Array<Record<string, unknown>>;
  }

  get createdSchemas(): boolean {
    return this.#created.size > 0;
  }

  committed(): void {
    for (const schema of this.#created) this.#s.ready.add(schema);
  }

  async #q<R extends QueryResultRow>(text: string, values: readonly unknown[] = []): Promise<R[]> {
    // The first statement carries BEGIN: rendered, so both go in one round trip.
    if (this.#prelude !== undefined) return (await this.send([inlineParams(text, values)])) as R[];
    return this.#s.query<R>(this.#client, text, values);
  }

  /** Queues a write of the effects, rendered with its values. */
  #emit(text: string, values: readonly unknown[] = []): void {
    this.#writes.push(inlineParams(text, values));
  }

  /** The tables of a database, its schema created (in this transaction) when `create` and missing; `null` when missing. */
  async #tables(dbName: string, wanted: boolean): Promise<Tables | null> {
    const create = wanted && !this.#readOnly;
    const schema = schemaNameFor(this.#s.prefix, dbName);
    if (this.#s.ready.has(schema) || this.#created.has(schema)) return tablesOf(schema);
    // What follows runs on the connection directly: the transaction must have begun.
    if (this.#prelude !== undefined) await this.send([]);
    if ((await schemaState(this.#client, schema, this.#s.prefix, dbName)) === 'ready') {
      // Visible to this statement, so committed by its creator.
      this.#s.ready.add(schema);
      return tablesOf(schema);
    }
    if (!create) return null;
    await createSchemaInTransaction(this.#client, schema, this.#s.prefix, dbName);
    this.#created.add(schema);
    return tablesOf(schema);
  }

  async #mustTables(dbName: string): Promise<Tables> {
    return (await this.#tables(dbName, true))!;
  }

  /**
   * Locks the namespaces' rows (creating them, and their database's schema, when missing), in
   * (schema, collection) order, so two transactions that lock the same set never deadlock. The
   * upsert always takes the row lock (waiting for its holder) and returns the latest committed cv.
   */
  async #lock(namespaces: readonly Namespace[]): Promise<void> {
    const byDb = new Map<string, Set<string>>();
    for (const ns of namespaces) {
      if (this.#locked.has(nsKey(ns))) continue;
      let colls = byDb.get(ns.dbName);
      if (!colls) byDb.set(ns.dbName, (colls = new Set()));
      colls.add(ns.collection);
    }
    const dbs = [...byDb.keys()].map((db) => ({ db, schema: schemaNameFor(this.#s.prefix, db) })).sort((a, b) => byteCompare(a.schema, b.schema));
    if (this.#readOnly) {
      // Nothing to lock: the collection versions, as of the snapshot.
      for (const { db } of dbs) {
        const colls = [...byDb.get(db)!];
        for (const coll of colls) this.#locked.set(nsKey({ dbName: db, collection: coll }), null);
        const t = await this.#tables(db, false);
        if (!t) continue;
        const rows = await this.#q<{ coll: string; cv: number | null }>(`SELECT coll, cv FROM ${t.namespaces} WHERE coll = ANY($1::text[])`, [colls]);
        for (const r of rows) this.#locked.set(nsKey({ dbName: db, collection: r.coll }), r.cv);
      }
      return;
    }
    for (const { db } of dbs) {
      const t = await this.#mustTables(db);
      const colls = [...byDb.get(db)!].sort(byteCompare);
      const rows = await this.#q<{ coll: string; cv: number | null; xid: string }>(
        `INSERT INTO ${t.namespaces} AS n (coll) SELECT c FROM unnest($1::text[]) WITH ORDINALITY AS u(c, i) ORDER BY i
         ON CONFLICT (coll) DO UPDATE SET cv = n.cv RETURNING coll, cv, txid_current()::text AS xid`,
        [colls],
      );
      for (const r of rows) this.#locked.set(nsKey({ dbName: db, collection: r.coll }), r.cv);
      this.xid ??= rows[0]?.xid;
    }
  }

  /**
   * Locks leases by key, in key order: a transaction-scoped advisory lock per (schema,
   * collection, key), so a lease (which may not exist yet) is taken by one owner at a time
   * without queuing behind the namespace's commits. Every transaction that reads or writes a
   * lease takes it, so all of them agree. Two keys whose 64-bit hashes collide only wait for
   * each other.
   */
  async #lockLeases(keys: ReadonlyArray<Namespace & { readonly key: string }>): Promise<void> {
    const wanted = new Set<string>();
    for (const k of keys) {
      const lock = leaseLockKey(schemaNameFor(this.#s.prefix, k.dbName), k.collection, k.key);
      if (!this.#leases.has(lock)) wanted.add(lock);
    }
    if (wanted.size === 0 || this.#readOnly) return;
    const sorted = [...wanted].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0));
    await this.#q('SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) WITH ORDINALITY AS u(k, i) ORDER BY i', [sorted]);
    for (const lock of sorted) this.#leases.add(lock);
  }

  async read(reads: ReadSet): Promise<ReadRows> {
    const direct: Namespace[] = [];
    const add = (list: readonly Namespace[] | undefined) => list?.forEach((ns) => direct.push({ dbName: ns.dbName, collection: ns.collection }));
    add(reads.heads);
    add(reads.claims);
    add(reads.outbox);
    add(reads.deadLetters);
    add(reads.unarchived);
    add(reads.versionCounts);
    add(reads.collectionVersions);
    add(reads.uploads);
    add(reads.headCounts);
    if (reads.counterWindows) direct.push({ dbName: reads.counterWindows.dbName, collection: reads.counterWindows.collection });

    // Reads over a whole database first find the namespaces they cover (without locks), then
    // lock those with the rest. A namespace that appears meanwhile is left out, as if it had
    // been written after this transaction, which is a valid serial order: nothing here reads it.
    const found = async (dbName: string, sql: (t: Tables) => string, values: unknown[] = []): Promise<string[]> => {
      const t = await this.#tables(dbName, false);
      if (!t) return [];
      const rows = await this.#q<{ coll: string }>(sql(t), values);
      for (const r of rows) direct.push({ dbName, collection: r.coll });
      return rows.map((r) => r.coll);
    };
    const wide = {
      allDeadLetters: reads.allDeadLetters === undefined ? [] : await found(reads.allDeadLetters, (t) => `SELECT DISTINCT coll FROM ${t.deadLetters}`),
      staleUploads: reads.staleUploads
        ? await found(
            reads.staleUploads.dbName,
            (t) => `SELECT DISTINCT coll FROM ${t.uploads} WHERE stamped_at <= clock_timestamp() - $1::float8 * interval '1 millisecond'`,
            [reads.staleUploads.olderThanMs],
          )
        : [],
      namespaces: new Map<string, string[]>(),
    };
    for (const db of new Set(reads.namespaces ?? [])) wide.namespaces.set(db, await found(db, (t) => `SELECT coll FROM ${t.namespaces} WHERE cv IS NOT NULL`));

    await this.#lock(direct);
    if (reads.locks?.length) await this.#lockLeases(reads.locks);

    const heads = new Map<string, HeadState>();
    for (const [db, t, refs] of await this.#byDb(reads.heads)) {
      const found = await this.#q<{ coll: string; id: string; ov: number; cv: number; deleted: boolean; offloaded: boolean }>(
        `SELECT h.coll, h.id, h.ov, h.cv, h.deleted, h.body = '' AS offloaded FROM ${t.heads} h
         JOIN unnest($1::text[], $2::text[]) AS r(coll, id) ON h.coll = r.coll AND h.id = r.id`,
        [refs.map((r) => r.collection), refs.map((r) => r.id)],
      );
      for (const h of found) heads.set(refKey({ dbName: db, collection: h.coll }, h.id), { ov: h.ov, cv: h.cv, deleted: h.deleted, offloaded: h.offloaded });
    }
    const claims = new Map<string, string>();
    for (const [db, t, refs] of await this.#byDb(reads.claims)) {
      const found = await this.#q<{ coll: string; key: string; id: string }>(
        `SELECT c.coll, c.key, c.id FROM ${t.claims} c JOIN unnest($1::text[], $2::text[]) AS r(coll, key) ON c.coll = r.coll AND c.key = r.key`,
        [refs.map((r) => r.collection), refs.map((r) => r.key)],
      );
      for (const c of found) claims.set(refKey({ dbName: db, collection: c.coll }, c.key), c.id);
    }
    const outbox = new Map<string, number>();
    for (const [db, t, refs] of await this.#byDb(reads.outbox)) {
      const found = await this.#q<{ coll: string; id: string; seq: number }>(
        `SELECT o.coll, o.id, o.seq FROM ${t.outbox} o JOIN unnest($1::text[], $2::text[]) AS r(coll, id) ON o.coll = r.coll AND o.id = r.id`,
        [refs.map((r) => r.collection), refs.map((r) => r.id)],
      );
      for (const o of found) outbox.set(refKey({ dbName: db, collection: o.coll }, o.id), o.seq);
    }
    const deadLetters = new Set<string>();
    for (const [db, t, refs] of await this.#byDb(reads.deadLetters)) {
      const found = await this.#q<{ coll: string; id: string }>(
        `SELECT d.coll, d.id FROM ${t.deadLetters} d JOIN unnest($1::text[], $2::text[]) AS r(coll, id) ON d.coll = r.coll AND d.id = r.id`,
        [refs.map((r) => r.collection), refs.map((r) => r.id)],
      );
      for (const d of found) deadLetters.add(refKey({ dbName: db, collection: d.coll }, d.id));
    }
    const unarchived = new Map<string, number>();
    for (const [db, t, refs] of await this.#byDb(reads.unarchived)) {
      for (const r of refs) unarchived.set(refKey(r, r.id), 0);
      const found = await this.#q<{ coll: string; id: string; n: number }>(
        `SELECT v.coll, v.id, count(*) AS n FROM ${t.versions} v
         JOIN unnest($1::text[], $2::text[]) AS r(coll, id) ON v.coll = r.coll AND v.id = r.id
         WHERE NOT v.archived GROUP BY v.coll, v.id`,
        [refs.map((r) => r.collection), refs.map((r) => r.id)],
      );
      for (const f of found) unarchived.set(refKey({ dbName: db, collection: f.coll }, f.id), f.n);
    }
    const versionCounts = new Map<string, number>();
    for (const [db, t, refs] of await this.#byDb(reads.versionCounts)) {
      for (const r of refs) versionCounts.set(refKey(r, r.id), 0);
      const found = await this.#q<{ coll: string; id: string; n: number }>(
        `SELECT r.coll, r.id, count(v.ov) AS n FROM unnest($1::text[], $2::text[], $3::float8[]) AS r(coll, id, below)
         JOIN ${t.versions} v ON v.coll = r.coll AND v.id = r.id AND v.ov < r.below GROUP BY r.coll, r.id`,
        [refs.map((r) => r.collection), refs.map((r) => r.id), refs.map((r) => r.belowOv)],
      );
      for (const f of found) versionCounts.set(refKey({ dbName: db, collection: f.coll }, f.id), f.n);
    }
    const cvs = new Map<string, number>();
    for (const ns of reads.collectionVersions ?? []) {
      const cv = this.#locked.get(nsKey(ns));
      if (cv !== undefined && cv !== null) cvs.set(nsKey(ns), cv);
    }
    let counterWindows: string[] = [];
    if (reads.counterWindows) {
      const { dbName, collection, before } = reads.counterWindows;
      const t = await this.#tables(dbName, true);
      const params: unknown[] = [collection];
      const ranges: string[] = [];
      for (const granularity of ['day', 'week', 'month'] as const) {
        const bound = before[granularity];
        if (bound === undefined) continue;
        const prefix = `${granularity}:`;
        ranges.push(`(win >= ${push(params, prefix)} AND win < ${push(params, bound)})`);
      }
      if (t && ranges.length > 0) {
        const found = await this.#q<{ win: string }>(
          `SELECT DISTINCT win FROM ${t.counterWindows} WHERE coll = $1 AND (${ranges.join(' OR ')}) ORDER BY win`,
          params,
        );
        counterWindows = found.map((r) => r.win);
      }
    }
    const locks = new Map<string, { owner: string; expired: boolean }>();
    for (const [db, t, refs] of await this.#byDb(reads.locks)) {
      const found = await this.#q<{ coll: string; key: string; owner: string; expired: boolean }>(
        `SELECT l.coll, l.key, l.owner, l.expires_at <= clock_timestamp() AS expired FROM ${t.locks} l
         JOIN unnest($1::text[], $2::text[]) AS r(coll, key) ON l.coll = r.coll AND l.key = r.key`,
        [refs.map((r) => r.collection), refs.map((r) => r.key)],
      );
      for (const l of found) locks.set(refKey({ dbName: db, collection: l.coll }, l.key), { owner: l.owner, expired: l.expired });
    }
    const uploads = new Map<string, UploadRow[]>();
    for (const [db, t, refs] of await this.#byDb(reads.uploads)) {
      const found = await this.#q<UploadSqlRow>(
        `SELECT u.coll, u.bucket, u.key, u.token, u.id, u.cleaning, ${AGE_MS} AS age_ms FROM ${t.uploads} u
         JOIN unnest($1::text[], $2::text[], $3::text[]) AS r(coll, bucket, key) ON u.coll = r.coll AND u.bucket = r.bucket AND u.key = r.key
         ORDER BY u.token`,
        [refs.map((r) => r.collection), refs.map((r) => r.bucket), refs.map((r) => r.key)],
      );
      for (const u of found) {
        const k = uploadKey({ dbName: db, collection: u.coll }, u.bucket, u.key);
        let list = uploads.get(k);
        if (!list) uploads.set(k, (list = []));
        list.push({ id: u.id, token: u.token, cleaning: u.cleaning, ageMs: u.age_ms });
      }
    }
    let staleUploads: ReadRows['staleUploads'] = [];
    if (reads.staleUploads && wide.staleUploads.length > 0) {
      const { dbName, olderThanMs, limit } = reads.staleUploads;
      const t = (await this.#tables(dbName, false))!;
      const found = await this.#q<UploadSqlRow>(
        `SELECT u.coll, u.bucket, u.key, u.token, u.id, u.cleaning, ${AGE_MS} AS age_ms FROM ${t.uploads} u
         WHERE u.coll = ANY($1::text[]) AND u.stamped_at <= clock_timestamp() - $2::float8 * interval '1 millisecond'
         ORDER BY u.stamped_at, u.coll, u.bucket, u.key, u.token LIMIT $3`,
        [wide.staleUploads, olderThanMs, limit],
      );
      staleUploads = found.map((u) => ({
        collection: u.coll,
        bucket: u.bucket,
        key: u.key,
        id: u.id,
        token: u.token,
        cleaning: u.cleaning,
        ageMs: u.age_ms,
      }));
    }
    const headCounts = new Map<string, number>();
    for (const [db, t, list] of await this.#byDb(reads.headCounts)) {
      const colls = [...new Set(list.map((ns) => ns.collection))];
      for (const coll of colls) headCounts.set(nsKey({ dbName: db, collection: coll }), 0);
      const found = await this.#q<{ coll: string; n: number }>(`SELECT coll, count(*) AS n FROM ${t.heads} WHERE coll = ANY($1::text[]) GROUP BY coll`, [colls]);
      for (const f of found) headCounts.set(nsKey({ dbName: db, collection: f.coll }), f.n);
    }
    const outboxCounts = new Map<string, number>();
    // A count over a whole database is one statement's snapshot, without locks: no plan decides
    // a write on it (it answers `countPendingSync`), and locking every namespace of the database
    // would queue a health probe behind every commit.
    for (const db of new Set(reads.outboxCounts ?? [])) {
      const t = await this.#tables(db, false);
      const found = t ? await this.#q<{ n: number }>(`SELECT count(*) AS n FROM ${t.outbox}`) : [];
      outboxCounts.set(db, found[0]?.n ?? 0);
    }
    const namespaces: Array<Namespace & { cv: number }> = [];
    for (const [db, colls] of wide.namespaces) {
      for (const coll of colls) {
        const cv = this.#locked.get(nsKey({ dbName: db, collection: coll }));
        if (cv !== undefined && cv !== null) namespaces.push({ dbName: db, collection: coll, cv });
      }
    }
    namespaces.sort((a, b) => byteCompare(a.dbName, b.dbName) || byteCompare(a.collection, b.collection));
    let allDeadLetters: ReadRows['allDeadLetters'] = [];
    if (reads.allDeadLetters !== undefined && wide.allDeadLetters.length > 0) {
      const t = (await this.#tables(reads.allDeadLetters, false))!;
      const found = await this.#q<{ coll: string; id: string; reason: string; failed_at: string; head_cv: number | null }>(
        `SELECT d.coll, d.id, d.reason, d.failed_at, h.cv AS head_cv FROM ${t.deadLetters} d
         LEFT JOIN ${t.heads} h ON h.coll = d.coll AND h.id = d.id
         WHERE d.coll = ANY($1::text[]) ORDER BY d.failed_at, d.made`,
        [wide.allDeadLetters],
      );
      allDeadLetters = found.map((d) => ({
        collection: d.coll,
        id: d.id,
        reason: d.reason,
        failedAt: d.failed_at,
        headCv: d.head_cv,
      }));
    }
    return {
      heads, claims, outbox, deadLetters, allDeadLetters, unarchived, versionCounts, collectionVersions: cvs, counterWindows,
      locks, uploads, staleUploads, headCounts, outboxCounts, namespaces,
    };
  }

  /** Groups namespaced refs by database, with their tables (locked, so their schemas exist). */
  async #byDb<R extends Namespace>(refs: readonly R[] | undefined): Promise<Array<[string, Tables, R[]]>> {
    if (!refs || refs.length === 0) return [];
    const groups = new Map<string, R[]>();
    for (const ref of refs) {
      let list = groups.get(ref.dbName);
      if (!list) groups.set(ref.dbName, (list = []));
      list.push(ref);
    }
    const out: Array<[string, Tables, R[]]> = [];
    for (const [db, list] of groups) {
      // Locked, so the schema exists; a read-only plan creates none, and reads nothing from a database that has none.
      const t = await this.#tables(db, true);
      if (t) out.push([db, t, list]);
    }
    return out;
  }

  /** The tables of an effect's namespace, locked first when the read set did not name it. */
  async #target(ns: Namespace): Promise<Tables> {
    if (!this.#locked.has(nsKey(ns))) await this.#lock([ns]);
    return this.#mustTables(ns.dbName);
  }

  /** The effects as statements, in order; the locks and schemas they need are taken meanwhile. */
  async prepare(effects: readonly Effect[]): Promise<string[]> {
    this.#writes = [];
    for (const effect of effects) await this.#apply(effect);
    return this.#writes;
  }

  async #apply(e: Effect): Promise<void> {
    switch (e.kind) {
      case 'putHead': {
        const t = await this.#target(e.ns);
        const h = e.head;
        this.#emit(
          `INSERT INTO ${t.heads} (coll, id, ov, cv, deleted, created_at, updated_at, deleted_at, meta, body, hash)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11)
           ON CONFLICT (coll, id) DO UPDATE SET ov = excluded.ov, cv = excluded.cv, deleted = excluded.deleted,
             created_at = excluded.created_at, updated_at = excluded.updated_at, deleted_at = excluded.deleted_at,
             meta = excluded.meta, body = excluded.body, hash = excluded.hash`,
          [e.ns.collection, e.id, h.ov, h.cv, h.deleted, h.createdAt, h.updatedAt, h.deletedAt, metaJson(h.meta), h.body, h.hash],
        );
        return;
      }
      case 'deleteHead': {
        const t = await this.#target(e.ns);
        this.#emit(`DELETE FROM ${t.heads} WHERE coll = $1 AND id = $2`, [e.ns.collection, e.id]);
        return;
      }
      case 'offloadHead': {
        const t = await this.#target(e.ns);
        this.#emit(`UPDATE ${t.heads} SET body = '' WHERE coll = $1 AND id = $2`, [e.ns.collection, e.id]);
        return;
      }
      case 'putVersion': {
        const t = await this.#target(e.ns);
        const v = e.version;
        const actorId = typeof v.actor === 'string' ? v.actor : v.actor.identifier;
        const actorType = typeof v.actor === 'string' ? null : v.actor.type;
        this.#emit(
          `INSERT INTO ${t.versions} (coll, id, ov, cv, op, at, actor, actor_id, actor_type, reason, deleted, size, body, archived, meta, hash)
           VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12, $13, $14, $15::jsonb, $16)`,
          [
            e.ns.collection, v.id, v.ov, v.cv, v.op, v.at, JSON.stringify(v.actor), actorId, actorType, v.reason,
            v.deleted, v.size, v.body, v.archived, metaJson(v.meta), v.hash,
          ],
        );
        return;
      }
      case 'deleteVersions': {
        const t = await this.#target(e.ns);
        this.#emit(`DELETE FROM ${t.versions} WHERE coll = $1 AND id = $2 AND ov < $3::float8`, [e.ns.collection, e.id, e.belowOv]);
        return;
      }
      case 'archiveVersions': {
        if (e.ovs.length === 0) return;
        const t = await this.#target(e.ns);
        this.#emit(`UPDATE ${t.versions} SET archived = TRUE, body = NULL WHERE coll = $1 AND id = $2 AND ov = ANY($3::bigint[])`, [
          e.ns.collection,
          e.id,
          [...e.ovs],
        ]);
        return;
      }
      case 'putClaim': {
        const t = await this.#target(e.ns);
        this.#emit(`INSERT INTO ${t.claims} (coll, key, id) VALUES ($1, $2, $3) ON CONFLICT (coll, key) DO UPDATE SET id = excluded.id`, [
          e.ns.collection,
          e.key,
          e.id,
        ]);
        return;
      }
      case 'releaseClaims': {
        const t = await this.#target(e.ns);
        this.#emit(`DELETE FROM ${t.claims} WHERE coll = $1 AND id = $2`, [e.ns.collection, e.id]);
        return;
      }
      case 'putOutbox': {
        const t = await this.#target(e.ns);
        this.#emit(`INSERT INTO ${t.outbox} (coll, id, seq) VALUES ($1, $2, $3) ON CONFLICT (coll, id) DO UPDATE SET seq = excluded.seq`, [
          e.ns.collection,
          e.id,
          e.seq,
        ]);
        return;
      }
      case 'deleteOutbox': {
        const t = await this.#target(e.ns);
        this.#emit(`DELETE FROM ${t.outbox} WHERE coll = $1 AND id = $2`, [e.ns.collection, e.id]);
        return;
      }
      case 'putPendingBlob': {
        const t = await this.#target(e.ns);
        const b = e.blob;
        this.#emit(
          `INSERT INTO ${t.pendingBlobs} (coll, id, bucket, key, content_type, body) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (coll, bucket, key) DO UPDATE SET id = excluded.id, content_type = excluded.content_type, body = excluded.body`,
          [e.ns.collection, e.id, b.bucket, b.key, b.contentType, Buffer.from(b.body.buffer, b.body.byteOffset, b.body.byteLength)],
        );
        return;
      }
      case 'deletePendingBlobs': {
        if (e.keys.length === 0) return;
        const t = await this.#target(e.ns);
        this.#emit(
          `DELETE FROM ${t.pendingBlobs} p USING unnest($2::text[], $3::text[]) AS r(bucket, key)
           WHERE p.coll = $1 AND p.bucket = r.bucket AND p.key = r.key`,
          [e.ns.collection, e.keys.map((k) => k.bucket), e.keys.map((k) => k.key)],
        );
        return;
      }
      case 'dropPendingBlobs': {
        const t = await this.#target(e.ns);
        this.#emit(`DELETE FROM ${t.pendingBlobs} WHERE coll = $1 AND id = $2`, [e.ns.collection, e.id]);
        return;
      }
      case 'putDeadLetter': {
        const t = await this.#target(e.ns);
        this.#emit(
          `INSERT INTO ${t.deadLetters} (coll, id, reason, failed_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (coll, id) DO UPDATE SET reason = excluded.reason, failed_at = excluded.failed_at`,
          [e.ns.collection, e.id, e.reason, e.failedAt],
        );
        return;
      }
      case 'deleteDeadLetter': {
        const t = await this.#target(e.ns);
        this.#emit(`DELETE FROM ${t.deadLetters} WHERE coll = $1 AND id = $2`, [e.ns.collection, e.id]);
        return;
      }
      // Counters are added with atomic upserts and no namespace lock: every commit of every
      // tenant adds to the analytics database's counters, and would otherwise queue on them.
      case 'addCounters': {
        const t = await this.#mustTables(e.dbName);
        const deltas = Object.entries(e.deltas).filter(([, d]) => d !== 0);
        if (deltas.length === 0) return;
        const names = deltas.map(([n]) => n);
        const values = deltas.map(([, d]) => d);
        this.#emit(
          `INSERT INTO ${t.counters} AS c (coll, name, value) SELECT $1, n, d FROM unnest($2::text[], $3::float8[]) AS u(n, d)
           ON CONFLICT (coll, name) DO UPDATE SET value = c.value + excluded.value`,
          [e.collection, names, values],
        );
        const windows = [...new Set(e.windows)];
        if (windows.length > 0) {
          this.#emit(
            `INSERT INTO ${t.counterWindows} AS c (coll, win, name, value)
             SELECT $1, w, n, d FROM unnest($2::text[]) AS w(w), unnest($3::text[], $4::float8[]) AS u(n, d)
             ON CONFLICT (coll, win, name) DO UPDATE SET value = c.value + excluded.value`,
            [e.collection, windows, names, values],
          );
        }
        return;
      }
      case 'setCounters': {
        const entries = Object.entries(e.values);
        if (entries.length === 0) return;
        const t = await this.#mustTables(e.dbName);
        this.#emit(
          `INSERT INTO ${t.counters} (coll, name, value) SELECT $1, n, v FROM unnest($2::text[], $3::float8[]) AS u(n, v)
           ON CONFLICT (coll, name) DO UPDATE SET value = excluded.value`,
          [e.collection, entries.map(([n]) => n), entries.map(([, v]) => v)],
        );
        return;
      }
      case 'setCounterWindow': {
        const entries = Object.entries(e.window.counts);
        if (entries.length === 0) return;
        const t = await this.#mustTables(e.dbName);
        this.#emit(
          `INSERT INTO ${t.counterWindows} (coll, win, name, value) SELECT $1, $2, n, v FROM unnest($3::text[], $4::float8[]) AS u(n, v)
           ON CONFLICT (coll, win, name) DO UPDATE SET value = excluded.value`,
          [e.collection, e.window.window, entries.map(([n]) => n), entries.map(([, v]) => v)],
        );
        return;
      }
      case 'deleteCounterWindow': {
        const t = await this.#tables(e.dbName, false);
        if (t) this.#emit(`DELETE FROM ${t.counterWindows} WHERE coll = $1 AND win = $2`, [e.collection, e.window]);
        return;
      }
      case 'clearCounters': {
        const t = await this.#tables(e.dbName, false);
        if (!t) return;
        this.#emit(`DELETE FROM ${t.counters} WHERE coll = $1`, [e.collection]);
        this.#emit(`DELETE FROM ${t.counterWindows} WHERE coll = $1`, [e.collection]);
        return;
      }
      case 'setCollectionVersion': {
        const t = await this.#target(e.ns);
        this.#emit(`UPDATE ${t.namespaces} SET cv = $2 WHERE coll = $1`, [e.ns.collection, e.cv]);
        this.#locked.set(nsKey(e.ns), e.cv);
        return;
      }
      case 'putLock': {
        await this.#lockLeases([{ ...e.ns, key: e.key }]);
        const t = await this.#mustTables(e.ns.dbName);
        this.#emit(
          `INSERT INTO ${t.locks} (coll, key, owner, expires_at) VALUES ($1, $2, $3, clock_timestamp() + $4::float8 * interval '1 millisecond')
           ON CONFLICT (coll, key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at`,
          [e.ns.collection, e.key, e.owner, e.leaseMs],
        );
        return;
      }
      case 'deleteLock': {
        await this.#lockLeases([{ ...e.ns, key: e.key }]);
        const t = await this.#mustTables(e.ns.dbName);
        this.#emit(`DELETE FROM ${t.locks} WHERE coll = $1 AND key = $2`, [e.ns.collection, e.key]);
        return;
      }
      case 'putUpload': {
        const t = await this.#target(e.ns);
        // 'past' is the epoch: older than any age a sweep asks for.
        const stamp = e.stamp === 'now' ? 'clock_timestamp()' : `'epoch'::timestamptz`;
        this.#emit(
          `INSERT INTO ${t.uploads} (coll, bucket, key, token, id, cleaning, stamped_at) VALUES ($1, $2, $3, $4, $5, $6, ${stamp})
           ON CONFLICT (coll, bucket, key, token) DO UPDATE SET id = excluded.id, cleaning = excluded.cleaning, stamped_at = excluded.stamped_at`,
          [e.ns.collection, e.bucket, e.key, e.row.token, e.row.id, e.row.cleaning],
        );
        return;
      }
      case 'deleteUpload': {
        const t = await this.#target(e.ns);
        this.#emit(`DELETE FROM ${t.uploads} WHERE coll = $1 AND bucket = $2 AND key = $3 AND token = $4`, [e.ns.collection, e.bucket, e.key, e.token]);
        return;
      }
      case 'clearNamespace': {
        await this.#clear(e.ns);
        return;
      }
      case 'copyNamespace': {
        // A staging database never written has no schema, and nothing to copy: none is made for it.
        const from = await this.#tables(e.from.dbName, false);
        await this.#lock(from ? [e.from, e.to] : [e.to]);
        const to = await this.#clear(e.to);
        if (!from) return;
        const a = [e.to.collection, e.from.collection];
        const versionCols = 'id, ov, cv, op, at, actor, actor_id, actor_type, reason, deleted, size, body, archived, meta, hash';
        this.#emit(`INSERT INTO ${to.heads} (coll, ${HEAD_COLUMNS}) SELECT $1, ${HEAD_COLUMNS} FROM ${from.heads} WHERE coll = $2`, a);
        this.#emit(`INSERT INTO ${to.versions} (coll, ${versionCols}) SELECT $1, ${versionCols} FROM ${from.versions} WHERE coll = $2`, a);
        this.#emit(`INSERT INTO ${to.claims} (coll, key, id) SELECT $1, key, id FROM ${from.claims} WHERE coll = $2`, a);
        this.#emit(`UPDATE ${to.namespaces} SET cv = (SELECT cv FROM ${from.namespaces} WHERE coll = $2) WHERE coll = $1`, a);
        this.#emit(`INSERT INTO ${to.outbox} (coll, id, seq) SELECT coll, id, cv FROM ${to.heads} WHERE coll = $1`, [e.to.collection]);
        return;
      }
    }
  }

  async #clear(ns: Namespace): Promise<Tables> {
    const t = await this.#target(ns);
    for (const table of [t.heads, t.versions, t.claims, t.outbox, t.deadLetters]) this.#emit(`DELETE FROM ${table} WHERE coll = $1`, [ns.collection]);
    // The row stays (other transactions may be queued on its lock); NULL means never written.
    this.#emit(`UPDATE ${t.namespaces} SET cv = NULL WHERE coll = $1`, [ns.collection]);
    this.#locked.set(nsKey(ns), null);
    return t;
  }
}

interface UploadSqlRow {
  coll: string;
  bucket: string;
  key: string;
  token: string;
  id: string;
  cleaning: boolean;
  age_ms: number;
}

/** Milliseconds since an upload row was stamped, by the server's clock, never negative. */
const AGE_MS = `greatest(0, floor(extract(epoch FROM clock_timestamp() - u.stamped_at) * 1000))::float8`;

/** The advisory lock key of a lease: 64 bits of a hash, as a signed decimal (PostgreSQL's bigint). */
function leaseLockKey(schema: string, collection: string, key: string): string {
  return createHash('sha256').update(`xronox.lease\u0000${schema}\u0000${collection}\u0000${key}`).digest().readBigInt64BE(0).toString();
}

/** Pushes a parameter and returns its placeholder. */
function push(params: unknown[], value: unknown): string {
  params.push(value);
  return `$${params.length}`;
}

const BIGINT_LIMIT = 2 ** 63;

/**
 * A bound on a bigint column (ov, cv) as a bigint parameter, so it is part of the index range: a
 * float8 parameter casts the column instead (`ov::float8 < $3`), and the bound becomes a filter
 * over every entry of the record above it. The columns hold integers, so a fractional bound is
 * rounded the way that keeps the same rows; a bound beyond every bigint is no bound (or no row).
 */
function intBound(column: 'ov' | 'cv', op: '<' | '<=' | '>', value: number, params: unknown[]): string {
  if (Number.isNaN(value)) return 'FALSE';
  if (value >= BIGINT_LIMIT) return op === '>' ? 'FALSE' : 'TRUE';
  if (value < -BIGINT_LIMIT) return op === '>' ? 'TRUE' : 'FALSE';
  const n = op === '<' ? Math.ceil(value) : Math.floor(value);
  return `${column} ${op} ${push(params, n)}::bigint`;
}

/** The lowest string above every key starting with `prefix` (prefixes end in `:`, so `;` follows). */
function windowRangeEnd(prefix: string): string {
  return `${prefix.slice(0, -1)};`;
}

function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Indexed values as jsonb text. PostgreSQL's text and jsonb cannot hold U+0000, so a value with
 * one is refused here, by name, rather than by the server.
 */
function metaJson(meta: Readonly<Record<string, IndexedValue>>): string {
  for (const [key, value] of Object.entries(meta)) {
    if (typeof value === 'string' && value.includes('\0')) {
      throw new ValidationError(`Indexed property ${key} holds the character U+0000, which PostgreSQL cannot store`, { path: key });
    }
  }
  return JSON.stringify(meta);
}

function toHead(row: HeadSqlRow): HeadRow {
  return {
    id: row.id,
    ov: row.ov,
    cv: row.cv,
    deleted: row.deleted,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    deletedAt: row.deleted_at,
    meta: row.meta,
    body: row.body,
    hash: row.hash,
  };
}

function toHistory(row: HistorySqlRow): HistoryRow {
  return {
    id: row.id,
    ov: row.ov,
    cv: row.cv,
    op: row.op,
    at: row.at,
    actor: row.actor,
    reason: row.reason,
    deleted: row.deleted,
    size: row.size,
    archived: row.archived,
  };
}

function toVersion(row: VersionSqlRow): VersionRow {
  return { ...toHistory(row), body: row.body, meta: row.meta, hash: row.hash };
}

