import { DEFAULT_SCHEMA_PREFIX } from '../../config/schema.js';
import type { PoolClient } from 'pg';
import type { Decision, IndexDriver, Transaction } from '../../contracts/index-driver.js';
import { StorageError } from '../../errors.js';
import { decideSteps } from '../../store/driver-kit.js';
import { backoff, errorCode, isClientTimeout, isConnectionError, PostgresSession, type PostgresPoolOptions, UNIQUE_VIOLATION } from './postgres-pool.js';
import { PostgresIndexReads } from './postgres-reads.js';
import { assertSchemaPrefix, prepareSchema, schemaNameFor } from './postgres-schema.js';
import { type CommitTicket, COMMIT_TICKET, PostgresTransaction } from './postgres-transaction.js';

export interface PostgresIndexDriverOptions {
  /** `postgres://user:password@host:port/database`; the pool is shared by every driver with the same string and pool options. */
  connectionString: string;
  /** Every Xronox database is the schema `<schemaPrefix><dbName>`. Default `xronox_`. */
  schemaPrefix?: string;
  /** Pool limits and the statement timeout (default 30 s); see `PostgresPoolOptions`. */
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
const RETRYABLE = new Set(['40001', '40P01', UNIQUE_VIOLATION]);
/** Tries of a transaction whose connection could not even be made. */
const MAX_CONNECT_ATTEMPTS = 3;

/**
 * The index store on PostgreSQL (node-postgres), one schema per Xronox database. Its reads are
 * `PostgresIndexReads`; a transaction's attempt, with its locks, reads and effects, is a
 * `PostgresTransaction` (`postgres-read-set.ts`, `postgres-effects.ts`).
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
 * lock, see `PostgresTransaction.lockLeases`), so taking and renewing them never queues behind
 * commits; a lease given back (`durability: 'never'`) commits without waiting for the WAL flush.
 *
 * A namespace's commits queue on its lock for as long as each holds it, so a transaction makes
 * few round trips: BEGIN goes with the first lock, each read set is one statement per kind of
 * row, and every write goes with COMMIT as one simple query (values written as literals, see
 * `postgres-inline.ts`): a one-record commit is three round trips and a WAL flush. The lock also
 * returns the transaction's id, so a COMMIT whose answer is lost with its connection is asked
 * about (`txid_status`): one that surely did not commit is run again; otherwise the caller is
 * told the outcome is unknown (see `#commitStatus`). A transaction that lost a race or its
 * connection before COMMIT is re-run from its reads, a bounded number of times; one that ran out
 * of time (lock or statement timeout) is not.
 *
 * Reads outside transactions are single statements on a pooled connection (one snapshot each).
 */
export class PostgresIndexDriver extends PostgresIndexReads implements IndexDriver {
  readonly name = 'postgres';
  readonly multiProcess = true;
  readonly concurrentNamespaces = true;
  readonly #lockTimeoutMs: number;
  readonly #maxAttempts: number;
  #checked = false;

  constructor(options: PostgresIndexDriverOptions) {
    const session = new PostgresSession(options.connectionString, { what: 'The PostgreSQL index store', pool: options.pool, onQuery: options.onQuery });
    super({ session, prefix: assertSchemaPrefix(options.schemaPrefix ?? DEFAULT_SCHEMA_PREFIX), ready: new Set() });
    this.#lockTimeoutMs = Math.max(1, Math.floor(options.lockTimeoutMs ?? 10_000));
    this.#maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? 8));
  }

  /** The schema prefix of this store. */
  get schemaPrefix(): string {
    return this.index.prefix;
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  async open(): Promise<void> {
    const { session } = this.index;
    const pool = session.pool();
    if (this.#checked) {
      await pool.query('SELECT 1');
      return;
    }
    const { rows } = await session.query<{ encoding: string }>(`SELECT current_setting('server_encoding') AS encoding`);
    // Ids, keys and times are ordered by byte ("C") order of their UTF-8 form; another server
    // encoding would store and order them differently from every other store.
    if (rows[0]?.encoding !== 'UTF8') {
      throw new StorageError('postgres', 'open', undefined, `The PostgreSQL database uses encoding ${rows[0]?.encoding ?? 'unknown'}; Xronox needs UTF8`);
    }
    this.#checked = true;
  }

  async ping(): Promise<void> {
    await this.withReconnect(() => this.index.session.pool().query('SELECT 1'));
  }

  /** The database's schema and tables, made unless there (`xronox migrate`); see `postgres-schema.ts`. */
  async prepareDatabase(dbName: string): Promise<boolean> {
    const { session, prefix, ready } = this.index;
    const schema = schemaNameFor(prefix, dbName);
    const created = await this.withReconnect(() => prepareSchema(session.pool(), schema, prefix, dbName));
    ready.add(schema);
    return created;
  }

  async close(): Promise<void> {
    await this.index.session.close();
  }

  // ---- transactions ---------------------------------------------------------------------------

  async transact<T>(tx: Transaction<T>): Promise<T> {
    const { session } = this.index;
    const pool = session.pool();
    let uniqueViolations = 0;
    let unreachable = 0;
    for (let attempt = 1; ; attempt++) {
      let client: PoolClient | undefined;
      let run: PostgresTransaction | undefined;
      let decision: Decision<T> | undefined;
      /** Set once COMMIT is sent: what to ask the server about if the answer is lost (nothing for a lease). */
      let committing: { ticket: CommitTicket | undefined } | undefined;
      try {
        client = await pool.connect();
        // SET LOCAL ends with the transaction: nothing of it stays on the pooled session.
        // synchronous_commit is left as the server has it (on by default): COMMIT returns once
        // the commit is flushed to the WAL. The server can crash while its clients live, so only
        // what no one relies on (a lease given back, `'never'`) commits without waiting for the
        // flush; a lease taken is kept like a record.
        const durability = tx.durability ?? 'always';
        const asynchronous = durability === 'never' ? '; SET LOCAL synchronous_commit = off' : '';
        // A plan that only reads (counts, a collection version) needs one snapshot, not locks: it
        // never queues behind a namespace's commits.
        const begin = tx.readOnly ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : 'BEGIN ISOLATION LEVEL READ COMMITTED';
        const timeouts = `SET LOCAL lock_timeout = ${this.#lockTimeoutMs}; SET LOCAL statement_timeout = ${session.statementTimeoutMs}`;
        // Sent with the transaction's first statement, in the same round trip.
        const attemptRun = new PostgresTransaction(this.index, client, `${begin}; ${timeouts}${asynchronous}`, tx.readOnly === true);
        run = attemptRun;
        decision = await decideSteps(tx, (reads) => attemptRun.read(reads));
        // The writes, rendered (taking any lock or schema they need first), then sent with
        // COMMIT in one round trip.
        const writes = await run.prepare(decision.effects);
        if (writes.length === 0 && !run.createdSchemas) {
          // Nothing to keep (the namespace rows were only locked): no commit record to flush.
          if (run.started) await run.send(['ROLLBACK']);
        } else {
          // The id, to learn whether a COMMIT whose answer is lost surely failed. A namespace lock
          // returned it already; otherwise one round trip asks (not for leases and completed
          // syncs: one whose outcome is unknown is a StorageError, and is simply done again).
          const ticket = run.ticket ?? (durability !== 'always' ? undefined : ((await run.send([`SELECT ${COMMIT_TICKET}`]))[0] as unknown as CommitTicket));
          committing = { ticket };
          // A schema created here is remembered as ready once committed: its DDL must survive a
          // server crash even when the plan itself (a lease given back) need not.
          const durableDdl = asynchronous && run.createdSchemas ? ['SET LOCAL synchronous_commit = on'] : [];
          await run.send([...durableDdl, ...writes, 'COMMIT']);
          run.committed();
        }
        client.release();
        client = undefined;
        return decision.result;
      } catch (err) {
        // A statement the client stopped waiting for may still run: its connection is as good as lost.
        const timedOut = isClientTimeout(err);
        const lost = timedOut || isConnectionError(err);
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
          // The answer to COMMIT was lost: run again only what surely did not commit.
          const status = committing.ticket === undefined ? null : await this.#commitStatus(committing.ticket);
          if (status !== 'aborted') {
            throw new StorageError(
              'postgres',
              'commit',
              err,
              'The connection to PostgreSQL broke while the transaction was committing: it may or may not have been applied (read it back before writing it again)',
            );
          }
        }
        const code = errorCode(err) ?? '';
        // Every write runs under its namespace's lock, so a unique violation is not a race this
        // driver can lose twice: one re-run on fresh rows settles a race, a second one is a refusal
        // (a plan writing a version entry that exists).
        if (code === UNIQUE_VIOLATION) uniqueViolations++;
        const retryable = (lost && !timedOut) || (RETRYABLE.has(code) && (code !== UNIQUE_VIOLATION || uniqueViolations < 2));
        // A server that cannot be reached at all (no connection made) is tried three times, not
        // `maxAttempts`: each try may wait the whole connection timeout.
        if (!client && lost) unreachable++;
        if (!retryable || attempt >= this.#maxAttempts || unreachable >= MAX_CONNECT_ATTEMPTS || session.closed) throw session.nameError(err, 'transaction');
        await backoff(attempt);
      }
    }
  }

  /**
   * Whether a transaction whose COMMIT went unanswered surely did not commit ('aborted'), asked on
   * another connection: `txid_status` answers once the ended session's transaction is resolved (a
   * few polls at most). `null` when that cannot be known.
   *
   * "Committed" is never taken as this transaction's: a server that crashed meanwhile (restarted,
   * failed over, or only reinitialised after one backend died, which keeps its start time) hands
   * out again the ids whose WAL never reached the disk, so "committed" may be a later
   * transaction's answer about the same id. "Aborted" is this one's, or proves it lost: had its
   * commit record survived, the id would never have been handed out again.
   */
  async #commitStatus(ticket: CommitTicket): Promise<'aborted' | null> {
    const { session } = this.index;
    for (let poll = 1; poll <= 20 && !session.closed; poll++) {
      try {
        const [row] = (await session.query<{ status: string | null }>('SELECT txid_status($1::bigint) AS status', [ticket.xid])).rows;
        if (row?.status === 'aborted') return 'aborted';
        if (row?.status !== 'in progress') return null;
      } catch (err) {
        if (!isConnectionError(err)) return null;
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(200, 10 * poll)));
    }
    return null;
  }
}
