import type { QueryResultRow } from 'pg';
import type { IndexDriver, OutboxQuery, VersionRange } from '../../contracts/index-driver.js';
import type { ActorQuery, AsOfQuery, CounterWindow, CounterWindowQuery, DeadLetter, HeadQuery, HeadRow, HistoryRow, Namespace } from '../../contracts/index-store.js';
import type { PendingBlob, PendingSync, UnarchivedRecord, VersionRow, VersionSummary } from '../../contracts/index-store.js';
import { byteOrder, groupWindows, namespaceOrder, windowKeyRange } from '../../store/driver-kit.js';
import { bind, compileFilter, metaFields } from './postgres-filter.js';
import { backoff, isConnectionError } from './postgres-pool.js';
import { listSchemas, schemaGroups, schemaNameFor, schemaState, tablesOf, type Tables } from './postgres-schema.js';
import { HEAD_COLUMNS, type HeadSqlRow, HISTORY_COLUMNS, type HistorySqlRow, SORT_COLUMNS, toHead, toHistory } from './postgres-statements.js';
import { type IndexSession, toVersion, VERSION_COLUMNS, type VersionSqlRow } from './postgres-statements.js';

/** Runs one statement on a pooled connection; its rows. */
type Query = <R extends QueryResultRow>(text: string, values?: readonly unknown[]) => Promise<R[]>;

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
  return `${column} ${op} ${bind(params, n)}::bigint`;
}

type Reads = Omit<IndexDriver, 'name' | 'multiProcess' | 'close' | 'transact' | 'open' | 'ping'>;

/**
 * The index store's reads outside transactions: each one statement on a pooled connection (one
 * snapshot), in the schema its database resolves to. `PostgresIndexDriver` adds transactions.
 */
export class PostgresIndexReads implements Reads {
  protected readonly index: IndexSession;

  constructor(index: IndexSession) {
    this.index = index;
  }

  async getHead(ns: Namespace, id: string): Promise<HeadRow | null> {
    return this.inSchema(ns.dbName, null, async (t, q) => {
      const [row] = await q<HeadSqlRow>(`SELECT ${HEAD_COLUMNS} FROM ${t.heads} WHERE coll = $1 AND id = $2`, [ns.collection, id]);
      return row ? toHead(row) : null;
    });
  }

  async listVersions(ns: Namespace, id: string, range: VersionRange): Promise<VersionRow[]> {
    return this.inSchema(ns.dbName, [], async (t, q) => {
      const params: unknown[] = [ns.collection, id];
      const where = ['coll = $1', 'id = $2'];
      const { beforeOv, afterOv, at } = range;
      if (beforeOv !== undefined) where.push(intBound('ov', '<', beforeOv, params));
      if (afterOv !== undefined) where.push(intBound('ov', '>', afterOv, params));
      if (range.unarchived) where.push('NOT archived');
      let order = range.order === 'asc' ? 'ov ASC' : 'ov DESC';
      let limit = range.limit ?? null;
      if (at !== undefined) {
        where.push('at' in at ? `at <= ${bind(params, at.at)}` : intBound('cv', '<=', at.cv, params));
        order = 'at' in at ? 'at DESC, ov DESC' : 'cv DESC';
        limit = limit === null ? 1 : Math.min(limit, 1);
      }
      const sql = `SELECT ${VERSION_COLUMNS} FROM ${t.versions} WHERE ${where.join(' AND ')} ORDER BY ${order} LIMIT ${bind(params, limit)}`;
      return (await q<VersionSqlRow>(sql, params)).map(toVersion);
    });
  }

  async listHistory(ns: Namespace, id: string, range: { beforeOv?: number; limit: number }): Promise<HistoryRow[]> {
    return this.inSchema(ns.dbName, [], async (t, q) => {
      const params: unknown[] = [ns.collection, id];
      const below = range.beforeOv === undefined ? '' : ` AND ${intBound('ov', '<', range.beforeOv, params)}`;
      const rows = await q<HistorySqlRow>(
        `SELECT ${HISTORY_COLUMNS} FROM ${t.versions} WHERE coll = $1 AND id = $2${below} ORDER BY ov DESC LIMIT ${bind(params, range.limit)}`,
        params,
      );
      return rows.map(toHistory);
    });
  }

  async listHeads(ns: Namespace, query: HeadQuery): Promise<HeadRow[]> {
    return this.inSchema(ns.dbName, [], async (t, q) => {
      const params: unknown[] = [ns.collection];
      const where = ['coll = $1'];
      if (!query.includeDeleted) where.push('NOT deleted');
      if (query.filter) where.push(compileFilter(query.filter, params, metaFields('meta')));
      const column = SORT_COLUMNS[query.sort.field];
      const [dir, cmp] = query.sort.direction === 1 ? ['ASC', '>'] : ['DESC', '<'];
      if (query.after && column === 'id') where.push(`id ${cmp} ${bind(params, query.after.id)}`);
      else if (query.after) where.push(`(${column}, id) ${cmp} (${bind(params, query.after.value)}, ${bind(params, query.after.id)})`);
      const order = column === 'id' ? `id ${dir}` : `${column} ${dir}, id ${dir}`;
      const sql = `SELECT ${HEAD_COLUMNS} FROM ${t.heads} WHERE ${where.join(' AND ')} ORDER BY ${order} LIMIT ${bind(params, query.limit)}`;
      return (await q<HeadSqlRow>(sql, params)).map(toHead);
    });
  }

  async queryAt(ns: Namespace, query: AsOfQuery): Promise<VersionRow[]> {
    return this.inSchema(ns.dbName, [], async (t, q) => {
      // Driven by the heads in id order (either direction of the primary key), one index seek
      // per record (versions_by_time, read backwards) for its newest version at or before `at`.
      const params: unknown[] = [ns.collection, query.at];
      const where = ['h.coll = $1'];
      const [dir, cmp] = query.direction === 1 ? ['ASC', '>'] : ['DESC', '<'];
      if (query.afterId !== undefined) where.push(`h.id ${cmp} ${bind(params, query.afterId)}`);
      if (!query.includeDeleted) where.push('NOT v.deleted');
      if (query.filter) where.push(compileFilter(query.filter, params, metaFields('v.meta')));
      const columns = VERSION_COLUMNS.split(', ').map((c) => `w.${c}`).join(', ');
      const sql = `SELECT v.* FROM ${t.heads} h CROSS JOIN LATERAL (
          SELECT ${columns} FROM ${t.versions} w WHERE w.coll = h.coll AND w.id = h.id AND w.at <= $2
          ORDER BY w.at DESC, w.ov DESC LIMIT 1) v
        WHERE ${where.join(' AND ')} ORDER BY h.id ${dir} LIMIT ${bind(params, query.limit)}`;
      return (await q<VersionSqlRow>(sql, params)).map(toVersion);
    });
  }

  async listVersionsByActor(ns: Namespace, actorId: string, query: ActorQuery): Promise<VersionRow[]> {
    return this.inSchema(ns.dbName, [], async (t, q) => {
      const params: unknown[] = [ns.collection, actorId];
      const where = ['coll = $1', 'actor_id = $2'];
      if (query.actorType !== undefined) where.push(`actor_type = ${bind(params, query.actorType)}`);
      if (query.from !== undefined) where.push(`at >= ${bind(params, query.from)}`);
      if (query.to !== undefined) where.push(`at <= ${bind(params, query.to)}`);
      if (query.before) where.push(`(at, id, ov) < (${bind(params, query.before.at)}, ${bind(params, query.before.id)}, ${bind(params, query.before.ov)}::float8)`);
      const sql = `SELECT ${VERSION_COLUMNS} FROM ${t.versions} WHERE ${where.join(' AND ')}
        ORDER BY at DESC, id DESC, ov DESC LIMIT ${bind(params, query.limit)}`;
      return (await q<VersionSqlRow>(sql, params)).map(toVersion);
    });
  }

  async listClaims(ns: Namespace, query: { key?: string; afterKey?: string; limit: number }): Promise<Array<{ key: string; id: string }>> {
    return this.inSchema(ns.dbName, [], async (t, q) => {
      const params: unknown[] = [ns.collection];
      const where = ['coll = $1'];
      if (query.key !== undefined) where.push(`key = ${bind(params, query.key)}`);
      if (query.afterKey !== undefined) where.push(`key > ${bind(params, query.afterKey)}`);
      return q<{ key: string; id: string }>(`SELECT key, id FROM ${t.claims} WHERE ${where.join(' AND ')} ORDER BY key LIMIT ${bind(params, query.limit)}`, params);
    });
  }

  async listOutbox(dbName: string, query: OutboxQuery): Promise<PendingSync[]> {
    return this.inSchema(dbName, [], async (t, q) => {
      const params: unknown[] = [];
      const where = ['TRUE'];
      if (query.collection !== undefined) where.push(`coll = ${bind(params, query.collection)}`);
      if (query.id !== undefined) where.push(`id = ${bind(params, query.id)}`);
      if (query.maxSeq !== undefined) where.push(`seq <= ${bind(params, query.maxSeq)}::float8`);
      if (query.order === 'id' && query.afterId !== undefined) where.push(`id > ${bind(params, query.afterId)}`);
      const order = query.order === 'id' ? 'coll, id' : 'queued';
      const rows = await q<{ coll: string; id: string; seq: number }>(
        `SELECT coll, id, seq FROM ${t.outbox} WHERE ${where.join(' AND ')} ORDER BY ${order} LIMIT ${bind(params, query.limit)}`,
        params,
      );
      return rows.map((r) => ({ collection: r.coll, id: r.id, seq: r.seq }));
    });
  }

  async listDeadLetters(dbName: string, query: { limit: number }): Promise<DeadLetter[]> {
    return this.inSchema(dbName, [], async (t, q) => {
      const rows = await q<{ coll: string; id: string; reason: string; failed_at: string }>(
        `SELECT coll, id, reason, failed_at FROM ${t.deadLetters} ORDER BY failed_at, made LIMIT $1`,
        [query.limit],
      );
      return rows.map((r) => ({ collection: r.coll, id: r.id, reason: r.reason, failedAt: r.failed_at }));
    });
  }

  async listPendingBlobs(ns: Namespace, id: string | null, query?: { bucket: string; key: string }): Promise<PendingBlob[]> {
    return this.inSchema(ns.dbName, [], async (t, q) => {
      const params: unknown[] = [ns.collection];
      const where = ['coll = $1'];
      if (id !== null) where.push(`id = ${bind(params, id)}`);
      if (query) where.push(`bucket = ${bind(params, query.bucket)} AND key = ${bind(params, query.key)}`);
      const rows = await q<{ bucket: string; key: string; content_type: string; body: Buffer }>(
        `SELECT bucket, key, content_type, body FROM ${t.pendingBlobs} WHERE ${where.join(' AND ')} ORDER BY key, bucket`,
        params,
      );
      return rows.map((r) => ({ bucket: r.bucket, key: r.key, contentType: r.content_type, body: new Uint8Array(r.body) }));
    });
  }

  async getCounters(dbName: string, collection: string): Promise<Record<string, number>> {
    return this.inSchema(dbName, {}, async (t, q) => {
      const rows = await q<{ name: string; value: number }>(`SELECT name, value FROM ${t.counters} WHERE coll = $1 ORDER BY name`, [collection]);
      return Object.fromEntries(rows.map((r) => [r.name, r.value]));
    });
  }

  async getCounterWindows(dbName: string, collection: string, query: CounterWindowQuery): Promise<CounterWindow[]> {
    return this.inSchema(dbName, [], async (t, q) => {
      const { from, below } = windowKeyRange(query.granularity);
      const rows = await q<{ win: string; name: string; value: number }>(
        `SELECT win, name, value FROM ${t.counterWindows}
         WHERE coll = $1 AND win >= $2 AND win < $3 AND win >= $4 AND ($5::text IS NULL OR win <= $5)
         ORDER BY win, name`,
        [collection, from, below, query.from ?? '', query.to ?? null],
      );
      return groupWindows(rows);
    });
  }

  async listNamespaces(dbName?: string): Promise<Array<Namespace & { cv: number }>> {
    if (dbName !== undefined) {
      return this.inSchema(dbName, [], async (t, q) => {
        const rows = await q<{ coll: string; cv: number }>(`SELECT coll, cv FROM ${t.namespaces} WHERE cv IS NOT NULL ORDER BY coll`);
        return rows.map((r) => ({ dbName, collection: r.coll, cv: r.cv }));
      });
    }
    const rows = await this.#acrossSchemas<{ db: string; coll: string; cv: number }>((t, db) => `SELECT ${db}::text AS db, coll, cv FROM ${t.namespaces} WHERE cv IS NOT NULL`);
    return rows.map((r) => ({ dbName: r.db, collection: r.coll, cv: r.cv })).sort(namespaceOrder);
  }

  async listPendingDatabases(): Promise<string[]> {
    return this.#databasesHolding((t) => t.outbox);
  }

  async listDeadLetterDatabases(): Promise<string[]> {
    return this.#databasesHolding((t) => t.deadLetters);
  }

  async listUnarchivedRecords(
    dbName: string,
    query: { writtenBefore: string; after?: { collection: string; id: string }; limit: number },
  ): Promise<UnarchivedRecord[]> {
    return this.inSchema(dbName, [], async (t, q) => {
      const params: unknown[] = [query.writtenBefore];
      const after = query.after ? `AND (coll, id) > (${bind(params, query.after.collection)}, ${bind(params, query.after.id)})` : '';
      // Reads only the partial index of unarchived entries (with `at` included), never archived history.
      const rows = await q<{ coll: string; id: string; oldest: string }>(
        `SELECT coll, id, min(at) AS oldest FROM ${t.versions} WHERE NOT archived ${after}
         GROUP BY coll, id HAVING min(at) <= $1 ORDER BY coll, id LIMIT ${bind(params, query.limit)}`,
        params,
      );
      return rows.map((r) => ({ collection: r.coll, id: r.id, oldestAt: r.oldest }));
    });
  }

  async listHeadIds(ns: Namespace, query: { afterId?: string; limit: number }): Promise<string[]> {
    return this.inSchema(ns.dbName, [], async (t, q) => {
      const rows = await q<{ id: string }>(`SELECT id FROM ${t.heads} WHERE coll = $1 AND id > $2 ORDER BY id LIMIT $3`, [ns.collection, query.afterId ?? '', query.limit]);
      return rows.map((r) => r.id);
    });
  }

  async summariseVersions(ns: Namespace, query: { afterId?: string; limit: number }): Promise<VersionSummary[]> {
    return this.inSchema(ns.dbName, [], async (t, q) => {
      const rows = await q<{ id: string; n: number; lo: number; hi: number; superseded: string | null }>(
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

  /** Databases of this prefix whose table (outbox, dead letters) holds a row, in byte order. */
  async #databasesHolding(table: (t: Tables) => string): Promise<string[]> {
    const rows = await this.#acrossSchemas<{ db: string }>((t, db) => `SELECT ${db}::text AS db WHERE EXISTS (SELECT 1 FROM ${table(t)})`);
    return rows.map((r) => r.db).sort(byteOrder);
  }

  /**
   * One statement per group of this prefix's schemas (`SCHEMAS_PER_STATEMENT`): a branch per
   * schema, each reading only its own tables (`db` is its database name's placeholder).
   */
  async #acrossSchemas<R extends QueryResultRow>(branch: (t: Tables, db: string) => string): Promise<R[]> {
    return this.withReconnect(async () => {
      const pool = this.index.session.pool();
      const rows: R[] = [];
      for (const group of schemaGroups(await listSchemas(pool, this.index.prefix))) {
        const params: unknown[] = [];
        const union = group.map((s) => branch(tablesOf(s.schema), bind(params, s.dbName))).join(' UNION ALL ');
        rows.push(...(await this.index.session.query<R>(union, params, pool)).rows);
      }
      return rows;
    });
  }

  /**
   * Runs a read in the database's schema; a database whose schema does not exist yet has
   * nothing, so `empty` is the answer (and no schema is created by a read).
   */
  protected async inSchema<T>(dbName: string, empty: T, body: (t: Tables, q: Query) => Promise<T>): Promise<T> {
    const schema = schemaNameFor(this.index.prefix, dbName);
    return this.withReconnect(async () => {
      const { session, ready } = this.index;
      const pool = session.pool();
      if (!ready.has(schema)) {
        if ((await schemaState(pool, schema, this.index.prefix, dbName)) === 'missing') return empty;
        ready.add(schema);
      }
      return body(tablesOf(schema), async <R extends QueryResultRow>(text: string, values?: readonly unknown[]) => (await session.query<R>(text, values, pool)).rows);
    });
  }

  /**
   * A read that met a broken pooled connection (the server restarted, or ended the session) is
   * run once more: the pool has dropped that connection and opens a new one. A read that ran out
   * of time is a `StorageError` naming the bound.
   */
  protected async withReconnect<T>(body: () => Promise<T>): Promise<T> {
    const { session } = this.index;
    try {
      try {
        return await body();
      } catch (err) {
        if (!isConnectionError(err) || session.closed) throw err;
        await backoff(2);
        return await body();
      }
    } catch (err) {
      throw session.nameError(err, 'read');
    }
  }
}
