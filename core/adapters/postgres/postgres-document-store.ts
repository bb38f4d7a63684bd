import { DEFAULT_SCHEMA_PREFIX } from '../../config/schema.js';
import type { Pool, PoolClient, QueryResult, QueryResultRow } from 'pg';
import type { CollectionSpec, Doc, DocFilter, DocumentStore, FindOptions, IndexInfo, IndexKey, SortSpec, StoredDocument, WriteOptions } from '../../contracts/document-store.js';
import { nsKey } from '../../contracts/index-driver.js';
import type { Namespace } from '../../contracts/index-store.js';
import { DuplicateKeyError, ValidationError } from '../../errors.js';
import { valueAtPath } from '../../foundation/filter.js';
import {
  checkConflicts,
  checkMarker,
  createMissing,
  foreignSchema,
  isComplete,
  jsonbOrdersBytes,
  type Names,
  namesOf,
  readIndexes,
  readMarker,
  readStateAs,
  wantedIndexes,
} from './postgres-document-schema.js';
import { bind, compileFilter, documentFields, fieldSql, fromStoredJson, type JsonbFields, sortSql, toStoredJson } from './postgres-filter.js';
import { inTransaction, isUniqueViolation, PostgresSession, type PostgresPoolOptions } from './postgres-pool.js';
import { assertSchemaPrefix } from './postgres-schema.js';

export { indexNameFor, jsonbOrdersBytes } from './postgres-document-schema.js';

export interface PostgresDocumentStoreOptions {
  /** The connection's `postgresUri`; the pool is the process-wide one of `postgres-pool.ts`. */
  uri: string;
  /** Every Xronox database is the schema `<schemaPrefix><dbName>`. Default `xronox_`. */
  schemaPrefix?: string;
  /** Pool limits (connections, timeouts, the statement timeout); see `PostgresPoolOptions`. */
  pool?: PostgresPoolOptions;
  /** The clock that decides which documents reads skip as expired. Default: the system clock. */
  now?: () => Date;
}

/** Racing upserts of one new key: a loser's retry finds the winner's document and replaces it. */
const MAX_UPSERT_ATTEMPTS = 5;

interface Ensured {
  table: string;
  uniques: ReadonlyArray<{ pgName: string; name: string; keys: readonly IndexKey[] }>;
  /** Declared index names by PostgreSQL index name, for naming the index in a `DuplicateKeyError`. */
  names: ReadonlyMap<string, string>;
}

/**
 * The PostgreSQL document store: a schema per Xronox database, a `jsonb` table per collection,
 * each declared index a real expression index (`postgres-document-schema.ts`), filters compiled
 * by the one filter compiler over the `doc` column (`postgres-filter.ts`).
 *
 * Every identifier is validated and quoted, every statement names its schema, and no statement
 * sets session state (`search_path`, roles, session locks): pooled connections, PgBouncer's
 * transaction mode included, carry nothing from one call to the next. Writes are single
 * statements (autocommit) except `ensureCollection` and `replaceCollections`, which are
 * transactions; creators of a schema's tables (the index store's included) queue on a
 * transaction-scoped advisory lock.
 */
export class PostgresDocumentStore implements DocumentStore {
  readonly name = 'postgres';
  readonly capabilities = { nativeExpiry: false, atomicReplace: true } as const;
  readonly #session: PostgresSession;
  readonly #prefix: string;
  readonly #now: () => Date;
  /** Collections ensured in this process. */
  readonly #ensured = new Map<string, Ensured>();
  /** Tables known to exist (in a verified schema), by namespace key. */
  readonly #tables = new Map<string, string>();
  /** Schemas whose marker was checked. */
  readonly #schemas = new Set<string>();
  #fields: Promise<JsonbFields> | null = null;

  constructor(options: PostgresDocumentStoreOptions) {
    this.#prefix = assertSchemaPrefix(options.schemaPrefix ?? DEFAULT_SCHEMA_PREFIX);
    this.#session = new PostgresSession(options.uri, { what: 'The PostgreSQL document store', pool: options.pool });
    this.#now = options.now ?? (() => new Date());
  }

  /** The schema prefix of this store. */
  get schemaPrefix(): string {
    return this.#prefix;
  }

  /**
   * Creates the database's schema, the collection's table and every declared index unless they
   * exist; idempotent. When all of it exists already this is three catalog reads; otherwise it is
   * a transaction holding the schema's advisory lock, so processes that start together create each
   * thing once and the others find it done (DDL is transactional: a failure leaves nothing half
   * made). An index is built inside that transaction, so on a large existing table a new index
   * blocks writers while it builds (and must finish within the statement timeout): run `xronox
   * migrate` before deploying a spec with new indexes. This is what `xronox migrate` runs per
   * collection.
   */
  async ensureCollection(ns: Namespace, spec: CollectionSpec): Promise<void> {
    const names = this.#names(ns);
    const wanted = wantedIndexes(names, spec);
    let state = await this.#catalog((pool) => readStateAs(pool, names));
    if (!isComplete(state, wanted)) state = await this.#transaction((client) => createMissing(client, names, wanted, this.#prefix));
    if (state.marker) checkMarker(names, state.marker, this.#prefix);
    checkConflicts(names, state, wanted);
    this.#schemas.add(names.schema);
    this.#tables.set(nsKey(ns), names.tableSql);
    this.#ensured.set(nsKey(ns), {
      table: names.tableSql,
      uniques: wanted.filter((w) => w.spec.unique).map((w) => ({ pgName: w.pgName, name: w.spec.name, keys: w.spec.keys })),
      names: new Map(wanted.map((w) => [w.pgName, w.spec.name])),
    });
  }

  async listIndexes(ns: Namespace): Promise<IndexInfo[]> {
    if (!(await this.#existing(ns))) return [];
    const indexes = await this.#catalog((pool) => readIndexes(pool, this.#names(ns)));
    return [...indexes.values()].flatMap((i) => (i.info === null ? [] : [i.info])).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async insertOne(ns: Namespace, doc: Doc, options: WriteOptions = {}): Promise<void> {
    const c = this.#writable(ns);
    const params: unknown[] = [toStoredJson(doc), expiryMillis(options.expiresAt)];
    const purge = this.#purgeSql(c, doc, params, false);
    const sql = purge
      ? `WITH purge AS (${purge}) INSERT INTO ${c.table} (doc, expires_at) SELECT $1::jsonb, $2::bigint FROM (SELECT count(*) FROM purge) AS purged`
      : `INSERT INTO ${c.table} (doc, expires_at) VALUES ($1::jsonb, $2::bigint)`;
    await this.#write(ns, c, sql, params);
  }

  async upsertOne(ns: Namespace, filter: DocFilter, doc: Doc, options: WriteOptions = {}): Promise<{ created: boolean }> {
    const c = this.#writable(ns);
    const params: unknown[] = [toStoredJson(doc), expiryMillis(options.expiresAt)];
    const where = compileFilter(filter, params, await this.#documentFields());
    const purge = this.#purgeSql(c, doc, params, true);
    // One statement: lock the first match (expired ones included), purge expired holders of the
    // document's unique keys, then replace the match or, when there is none, insert. The purge
    // runs first (both writes wait for its count), so its deletions free the keys they held.
    const purged = purge ? ', (SELECT count(*) FROM purge) AS purged' : '';
    const sql = `WITH target AS (SELECT id FROM ${c.table} WHERE ${where} ORDER BY id LIMIT 1 FOR UPDATE)${purge ? `, purge AS (${purge})` : ''},
      updated AS (UPDATE ${c.table} AS t SET doc = $1::jsonb, expires_at = $2::bigint FROM target${purged} WHERE t.id = target.id RETURNING t.id)
      INSERT INTO ${c.table} (doc, expires_at) SELECT $1::jsonb, $2::bigint FROM (SELECT 1) AS one${purged} WHERE NOT EXISTS (SELECT 1 FROM target)`;
    const pinned = pinnedFields(filter);
    for (let attempt = 1; ; attempt++) {
      try {
        return { created: (await this.#query(sql, params, 'upsertOne')).rowCount === 1 };
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
        // A racing upsert inserted the key first: the retry finds its document and replaces it.
        // A clash on an index the filter does not pin is another document's key: a real conflict.
        const index = c.uniques.find((u) => u.pgName === err.constraint);
        const race = index !== undefined && index.keys.every(([field]) => pinned.has(field));
        if (!race || attempt >= MAX_UPSERT_ATTEMPTS) throw duplicate(ns, c, err);
      }
    }
  }

  async findOne(ns: Namespace, filter: DocFilter | null, options: { sort?: SortSpec } = {}): Promise<Doc | null> {
    const [doc] = await this.find(ns, filter, { ...options, limit: 1 });
    return doc ?? null;
  }

  async find(ns: Namespace, filter: DocFilter | null, options: FindOptions): Promise<Doc[]> {
    checkLimit(options.limit);
    const fields = await this.#documentFields();
    const params: unknown[] = [this.#now().getTime()];
    // Compiled before any query, so a hostile filter is refused whether or not the collection exists.
    const where = filter ? ` AND ${compileFilter(filter, params, fields)}` : '';
    const order = sortSql(options.sort, fields.byteOrder);
    const table = await this.#existing(ns);
    if (!table) return [];
    // Output names differ from the columns: ORDER BY would take a bare output name for the column.
    const rows = await this.#query<{ json: string }>(
      `SELECT doc::text AS json FROM ${table} WHERE (expires_at IS NULL OR expires_at > $1::bigint)${where} ORDER BY ${order} LIMIT ${bind(params, options.limit)}`,
      params,
      'find',
    );
    return rows.rows.map((r) => fromStoredJson(r.json));
  }

  async deleteOne(ns: Namespace, filter: DocFilter): Promise<number> {
    const params: unknown[] = [this.#now().getTime()];
    const where = compileFilter(filter, params, await this.#documentFields());
    const table = await this.#existing(ns);
    if (!table) return 0;
    // A racing deleteOne that took the first match makes this one move on to the next.
    const live = `SELECT id FROM ${table} WHERE (expires_at IS NULL OR expires_at > $1::bigint) AND ${where} ORDER BY id LIMIT 1 FOR UPDATE`;
    return (await this.#query(`DELETE FROM ${table} AS t USING (${live}) AS hit WHERE t.id = hit.id`, params, 'deleteOne')).rowCount ?? 0;
  }

  async deleteMany(ns: Namespace, filter: DocFilter | null): Promise<number> {
    const params: unknown[] = [this.#now().getTime()];
    const where = filter ? ` AND ${compileFilter(filter, params, await this.#documentFields())}` : '';
    const table = await this.#existing(ns);
    if (!table) return 0;
    return (await this.#query(`DELETE FROM ${table} WHERE (expires_at IS NULL OR expires_at > $1::bigint)${where}`, params, 'deleteMany')).rowCount ?? 0;
  }

  async deleteExpired(ns: Namespace, now: Date): Promise<number> {
    const table = await this.#existing(ns);
    if (!table) return 0;
    return (await this.#query(`DELETE FROM ${table} WHERE expires_at <= $1::bigint`, [now.getTime()], 'deleteExpired')).rowCount ?? 0;
  }

  async exportDocuments(ns: Namespace, options: { after?: string; limit: number }): Promise<{ documents: StoredDocument[]; next: string | null }> {
    checkLimit(options.limit);
    const after = options.after === undefined ? 0 : Number(options.after);
    if (!Number.isSafeInteger(after) || after < 0 || (options.after !== undefined && String(after) !== options.after)) {
      throw new ValidationError(`Invalid export cursor ${JSON.stringify(options.after).slice(0, 40)}`, { path: 'after' });
    }
    const table = await this.#existing(ns);
    if (!table) return { documents: [], next: null };
    const { rows } = await this.#query<{ cursor: string; json: string; expiry: number | null }>(
      `SELECT id::text AS cursor, doc::text AS json, expires_at::float8 AS expiry FROM ${table} WHERE id > $1::bigint ORDER BY id LIMIT $2`,
      [after, options.limit],
      'exportDocuments',
    );
    return {
      documents: rows.map((r) => ({ doc: fromStoredJson(r.json), expiresAt: r.expiry === null ? null : new Date(r.expiry) })),
      next: rows.length < options.limit ? null : rows[rows.length - 1]!.cursor,
    };
  }

  async importDocuments(ns: Namespace, documents: readonly StoredDocument[]): Promise<void> {
    const c = this.#writable(ns);
    if (documents.length === 0) return;
    const docs = documents.map((d) => toStoredJson(d.doc));
    const expiries = documents.map((d) => expiryMillis(d.expiresAt ?? undefined));
    // One statement, so a clash writes nothing; identities are drawn in the order given.
    await this.#write(
      ns,
      c,
      `INSERT INTO ${c.table} (doc, expires_at) SELECT d::jsonb, e FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS u(d, e, n) ORDER BY n`,
      [docs, expiries],
    );
  }

  async clearCollection(ns: Namespace): Promise<number> {
    const table = await this.#existing(ns);
    if (!table) return 0;
    return (await this.#query(`DELETE FROM ${table}`, [], 'clearCollection')).rowCount ?? 0;
  }

  async countDocuments(ns: Namespace): Promise<number> {
    const table = await this.#existing(ns);
    if (!table) return 0;
    return (await this.#query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`, [], 'countDocuments')).rows[0]!.n;
  }

  /**
   * One transaction. The live tables are locked against writers first (readers go on, and see
   * them as they were until the commit), so `onlyIfEmpty` judges exactly what would be replaced.
   */
  async replaceCollections(dbName: string, replacements: ReadonlyArray<{ collection: string; from: string | null }>, options: { onlyIfEmpty: boolean }): Promise<{ replaced: boolean; held: number }> {
    const plan = replacements.map((r) => ({
      live: this.#writable({ dbName, collection: r.collection }).table,
      from: r.from === null ? null : this.#writable({ dbName: r.from, collection: r.collection }).table,
    }));
    if (plan.length === 0) return { replaced: true, held: 0 };
    return this.#transaction(async (client) => {
      // In one order, so two replacements of overlapping sets never deadlock.
      const locked = [...new Set(plan.map((p) => p.live))].sort();
      await client.query(`LOCK TABLE ${locked.join(', ')} IN SHARE ROW EXCLUSIVE MODE`);
      let held = 0;
      for (const { live } of plan) held += (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${live}`)).rows[0]!.n;
      if (options.onlyIfEmpty && held > 0) return { replaced: false, held };
      for (const { live, from } of plan) {
        await client.query(`DELETE FROM ${live}`);
        // New identities drawn in the staging area's order: the same insertion order.
        if (from !== null) await client.query(`INSERT INTO ${live} (doc, expires_at) SELECT doc, expires_at FROM ${from} ORDER BY id`);
      }
      return { replaced: true, held };
    });
  }

  async ping(): Promise<void> {
    await this.#query('SELECT 1', [], 'ping');
  }

  async close(): Promise<void> {
    await this.#session.close();
  }

  /**
   * How fields map to SQL here: whether the database orders `jsonb` strings by bytes (see
   * `JsonbFields`), read once: the default collation of a database never changes.
   */
  #documentFields(): Promise<JsonbFields> {
    this.#fields ??= this.#catalog(jsonbOrdersBytes).then(documentFields, (err: unknown) => {
      this.#fields = null;
      throw err;
    });
    return this.#fields;
  }

  /** `DELETE` of the expired documents that hold `doc`'s unique keys (they are gone for readers, so they must not refuse it), or `null` when it has none. */
  #purgeSql(c: Ensured, doc: Doc, params: unknown[], exceptTarget: boolean): string | null {
    const clauses: string[] = [];
    for (const index of c.uniques) {
      const values = index.keys.map(([field]) => valueAtPath(doc, field));
      if (values.some((v) => v === undefined)) continue;
      clauses.push(`(${index.keys.map(([field], i) => `${fieldSql(field)} = ${bind(params, toStoredJson(values[i] as Doc[string]))}::jsonb`).join(' AND ')})`);
    }
    if (clauses.length === 0) return null;
    const except = exceptTarget ? ' AND id NOT IN (SELECT id FROM target)' : '';
    return `DELETE FROM ${c.table} WHERE expires_at <= ${bind(params, this.#now().getTime())}::bigint${except} AND (${clauses.join(' OR ')}) RETURNING 1`;
  }

  async #write(ns: Namespace, c: Ensured, sql: string, params: unknown[]): Promise<void> {
    try {
      await this.#query(sql, params, 'write');
    } catch (err) {
      throw isUniqueViolation(err) ? duplicate(ns, c, err) : err;
    }
  }

  /** One statement on a pooled connection; one that ran out of time is a `StorageError` naming the bound. */
  async #query<R extends QueryResultRow>(text: string, values: readonly unknown[], operation: string): Promise<QueryResult<R>> {
    try {
      return await this.#session.query<R>(text, values);
    } catch (err) {
      throw this.#session.nameError(err, operation);
    }
  }

  /** Catalog reads on a pooled connection, timeouts named as `#query` names them. */
  async #catalog<T>(read: (pool: Pick<Pool, 'query'>) => Promise<T>): Promise<T> {
    try {
      return await read(this.#session.pool());
    } catch (err) {
      throw this.#session.nameError(err, 'catalog');
    }
  }

  /** The table of a collection that exists, else `null` (reads of it find nothing). A schema of that name that is not Xronox's is refused. */
  async #existing(ns: Namespace): Promise<string | null> {
    const key = nsKey(ns);
    const known = this.#tables.get(key);
    if (known) return known;
    const names = this.#names(ns);
    const found = await this.#query<{ marker: boolean; tbl: boolean }>('SELECT to_regclass($1) IS NOT NULL AS marker, to_regclass($2) IS NOT NULL AS tbl', [names.markerSql, names.tableSql], 'open');
    const row = found.rows[0]!;
    if (!row.tbl) return null;
    if (!this.#schemas.has(names.schema)) {
      if (!row.marker) throw foreignSchema(names, 'it has no Xronox marker table');
      checkMarker(names, await this.#catalog((pool) => readMarker(pool, names)), this.#prefix);
      this.#schemas.add(names.schema);
    }
    this.#tables.set(key, names.tableSql);
    return names.tableSql;
  }

  #writable(ns: Namespace): Ensured {
    const c = this.#ensured.get(nsKey(ns));
    if (!c) throw new ValidationError(`${ns.dbName}.${ns.collection} has not been ensured in this process; call ensureCollection first`);
    return c;
  }

  #names(ns: Namespace): Names {
    return namesOf(this.#prefix, ns);
  }

  /** A transaction whose statements the server cancels after the statement timeout (`SET LOCAL`: nothing stays on the session). */
  async #transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    try {
      return await inTransaction(this.#session.pool(), work, `SET LOCAL statement_timeout = ${this.#session.statementTimeoutMs}`);
    } catch (err) {
      throw this.#session.nameError(err, 'transaction');
    }
  }
}

/** Fields the filter pins by equality at its top level (what an upsert's key is). */
function pinnedFields(filter: DocFilter): Set<string> {
  const items = filter.kind === 'and' ? filter.items : [filter];
  return new Set(items.flatMap((n) => (n.kind === 'compare' && n.op === '$eq' && n.value !== null ? [n.field] : [])));
}

function duplicate(ns: Namespace, c: Ensured, err: { constraint?: string }): DuplicateKeyError {
  return new DuplicateKeyError(ns.collection, (err.constraint !== undefined ? c.names.get(err.constraint) : undefined) ?? err.constraint ?? 'unique', { cause: err });
}

function checkLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new ValidationError('limit must be a positive integer', { path: 'limit' });
}

/** `expires_at`: milliseconds since 1970 UTC, for dates in the years 0000-9999 (what every store keeps). */
function expiryMillis(date: Date | undefined): number | null {
  if (date === undefined) return null;
  const year = Number.isFinite(date.getTime()) ? date.getUTCFullYear() : NaN;
  if (!(year >= 0 && year <= 9999)) throw new ValidationError('expiresAt must be a valid date in the years 0000-9999', { path: 'expiresAt' });
  return date.getTime();
}
