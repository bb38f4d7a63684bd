import { createHash } from 'node:crypto';
import { escapeIdentifier, escapeLiteral, type Pool, type PoolClient } from 'pg';
import type {
  CollectionSpec,
  Doc,
  DocFilter,
  DocumentStore,
  FindOptions,
  IndexInfo,
  IndexKey,
  IndexSpec,
  SortSpec,
  StoredDocument,
  WriteOptions,
} from '../../contracts/document-store.js';
import type { Namespace } from '../../contracts/index-store.js';
import { ConflictError, DuplicateKeyError, StorageError, ValidationError } from '../../errors.js';
import { assertName } from '../../foundation/names.js';
import { compileDocumentFilter, type DocumentSqlOptions, fieldOfIndexColumn, fieldSql, fromStoredJson, orderSql, sortSql, toStoredJson } from './postgres-document-filter.js';
import { acquirePostgresPool, type PostgresPoolOptions } from './postgres-pool.js';
import { assertSchemaPrefix, DOCUMENTS_MARKER, lockSchema, privileged, schemaNameFor, schemaState } from './postgres-schema.js';

export interface PostgresDocumentStoreOptions {
  /** The connection's `postgresUri`; the pool is the process-wide one of `postgres-pool.ts`. */
  uri: string;
  /** Every Xronox database is the schema `<schemaPrefix><dbName>`. Default `xronox_`. */
  schemaPrefix?: string;
  /** Pool limits (connections, timeouts); see `PostgresPoolOptions`. */
  pool?: PostgresPoolOptions;
  /** The clock that decides which documents reads skip as expired. Default: the system clock. */
  now?: () => Date;
}

/**
 * The table in each schema that says the schema is a Xronox document database (which prefix,
 * which database, which layout). Collection names start with a letter, so none is this name,
 * nor the name of any of the index store's relations, which the schema may hold too (they all
 * start with `_`, see `postgres-schema.ts`).
 */
const MARKER = DOCUMENTS_MARKER;
/** Bumped whenever the layout changes; a schema of another version is refused. */
const LAYOUT_VERSION = 1;
/** PostgreSQL truncates longer identifiers (NAMEDATALEN - 1 bytes). */
const MAX_IDENTIFIER = 63;
const INDEX_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,119}$/;
const MAX_INDEX_KEYS = 8;
/** Racing upserts of one new key: a loser's retry finds the winner's document and replaces it. */
const MAX_UPSERT_ATTEMPTS = 5;
const UNIQUE_VIOLATION = '23505';
/** `pg_index.indoption` bits of the two column orders Xronox declares. */
const ASC_NULLS_FIRST = 2;
const DESC_NULLS_LAST = 1;

/**
 * The PostgreSQL document store. Each Xronox database is a schema, `<prefix><dbName>` (named as
 * the index driver names them, `postgres-schema.ts`), holding a marker table and one table per
 * collection, named as the collection: `id` (identity: insertion order), `doc` (`jsonb`, see
 * `postgres-document-filter.ts` for the encoding) and `expires_at` (milliseconds since 1970 UTC,
 * exact for every year 0000-9999; NULL: never). Each declared index is a real expression index
 * on `(doc -> 'field')`, `UNIQUE` where declared, partial (`WHERE ... IS NOT NULL OR ...`) where
 * sparse, named `<collection>.<index>` (or a hashed form when that is too long) with the declared
 * name as its comment, so `\d` in psql shows what the spec asks for.
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
  readonly #pool: Pool;
  readonly #release: () => Promise<void>;
  readonly #prefix: string;
  readonly #now: () => Date;
  /** Collections ensured in this process. */
  readonly #ensured = new Map<string, Ensured>();
  /** Tables known to exist (in a verified schema), by namespace key. */
  readonly #tables = new Map<string, string>();
  /** Schemas whose marker was checked. */
  readonly #schemas = new Set<string>();
  #sqlOptions: Promise<DocumentSqlOptions> | null = null;

  constructor(options: PostgresDocumentStoreOptions) {
    this.#prefix = assertSchemaPrefix(options.schemaPrefix ?? 'xronox_');
    const { pool, release } = acquirePostgresPool(options.uri, options.pool);
    this.#pool = pool;
    this.#release = release;
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
   * blocks writers while it builds: run `xronox migrate` before deploying a spec with new indexes.
   * This is what `xronox migrate` runs per collection.
   */
  async ensureCollection(ns: Namespace, spec: CollectionSpec): Promise<void> {
    const names = this.#names(ns);
    const wanted = wantedIndexes(names, spec);
    let state = await privileged(names.schema, ns.dbName, 'use', () => readState(this.#pool, names));
    if (!isComplete(state, wanted)) {
      state = await this.#transaction(async (client) => {
        // The index store's creators of this schema queue on the same lock (postgres-schema.ts).
        await lockSchema(client, names.schema);
        const current = await readState(client, names);
        // Statements that create: a role without that right (a least-privilege runtime role on a
        // database `xronox migrate` has not made) is told so by name.
        const create = (sql: string) => privileged(names.schema, ns.dbName, 'create', () => client.query(sql));
        if (!current.schema) await create(`CREATE SCHEMA ${names.schemaSql}`);
        if (!current.marker) {
          // The schema may already hold this database's index tables (a job's lease made them).
          const indexSchema =
            current.relations > 0 && (await schemaState(client, names.schema, this.#prefix, ns.dbName).catch((err: unknown) => (err instanceof StorageError ? 'foreign' : Promise.reject(err)))) === 'ready';
          if (current.relations > 0 && !indexSchema) throw foreignSchema(names, 'it holds other tables and no Xronox marker');
          await create(`CREATE TABLE ${names.markerSql} (version integer NOT NULL, prefix text NOT NULL, db_name text NOT NULL)`);
          await client.query(`INSERT INTO ${names.markerSql} (version, prefix, db_name) VALUES ($1, $2, $3)`, [LAYOUT_VERSION, this.#prefix, ns.dbName]);
          current.marker = { version: LAYOUT_VERSION, prefix: this.#prefix, db_name: ns.dbName };
        }
        checkMarker(names, current.marker, this.#prefix, ns.dbName);
        if (!current.table) {
          const q = escapeIdentifier;
          await create(
            `CREATE TABLE ${names.tableSql} (
               id bigint GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME ${names.schemaSql}.${q(internalName(names.collection, 'id'))})
                 CONSTRAINT ${q(internalName(names.collection, 'pkey'))} PRIMARY KEY,
               doc jsonb NOT NULL,
               expires_at bigint)`,
          );
          await client.query(`CREATE INDEX ${q(internalName(names.collection, 'expiry'))} ON ${names.tableSql} (expires_at) WHERE expires_at IS NOT NULL`);
        }
        checkConflicts(names, current, wanted);
        for (const w of wanted) {
          if (current.indexes.has(w.pgName)) continue;
          await create(w.createSql);
          await client.query(`COMMENT ON INDEX ${names.schemaSql}.${escapeIdentifier(w.pgName)} IS ${escapeLiteral(w.spec.name)}`);
        }
        return current;
      });
    }
    if (state.marker) checkMarker(names, state.marker, this.#prefix, ns.dbName);
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
    const table = await this.#existing(ns);
    if (!table) return [];
    const names = this.#names(ns);
    const indexes = await readIndexes(this.#pool, names);
    return [...indexes.values()]
      .flatMap((i) => (i.info === null ? [] : [i.info]))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
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
    const sqlOptions = await this.#options();
    const params: unknown[] = [toStoredJson(doc), expiryMillis(options.expiresAt)];
    const where = compileDocumentFilter(filter, params, sqlOptions);
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
        const result = await this.#pool.query(sql, params);
        return { created: result.rowCount === 1 };
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
    const sqlOptions = await this.#options();
    const params: unknown[] = [this.#now().getTime()];
    // Compiled before any query, so a hostile filter is refused whether or not the collection exists.
    const where = filter ? ` AND ${compileDocumentFilter(filter, params, sqlOptions)}` : '';
    const order = sortSql(options.sort, sqlOptions);
    const table = await this.#existing(ns);
    if (!table) return [];
    params.push(options.limit);
    // Output names differ from the columns: ORDER BY would take a bare output name for the column.
    const rows = await this.#pool.query<{ json: string }>(
      `SELECT doc::text AS json FROM ${table} WHERE (expires_at IS NULL OR expires_at > $1::bigint)${where} ORDER BY ${order} LIMIT $${params.length}`,
      params,
    );
    return rows.rows.map((r) => fromStoredJson(r.json));
  }

  async deleteOne(ns: Namespace, filter: DocFilter): Promise<number> {
    const params: unknown[] = [this.#now().getTime()];
    const where = compileDocumentFilter(filter, params, await this.#options());
    const table = await this.#existing(ns);
    if (!table) return 0;
    // A racing deleteOne that took the first match makes this one move on to the next.
    const result = await this.#pool.query(
      `DELETE FROM ${table} AS t USING (SELECT id FROM ${table} WHERE (expires_at IS NULL OR expires_at > $1::bigint) AND ${where} ORDER BY id LIMIT 1 FOR UPDATE) AS hit WHERE t.id = hit.id`,
      params,
    );
    return result.rowCount ?? 0;
  }

  async deleteMany(ns: Namespace, filter: DocFilter | null): Promise<number> {
    const params: unknown[] = [this.#now().getTime()];
    const where = filter ? ` AND ${compileDocumentFilter(filter, params, await this.#options())}` : '';
    const table = await this.#existing(ns);
    if (!table) return 0;
    const result = await this.#pool.query(`DELETE FROM ${table} WHERE (expires_at IS NULL OR expires_at > $1::bigint)${where}`, params);
    return result.rowCount ?? 0;
  }

  async deleteExpired(ns: Namespace, now: Date): Promise<number> {
    const table = await this.#existing(ns);
    if (!table) return 0;
    const result = await this.#pool.query(`DELETE FROM ${table} WHERE expires_at <= $1::bigint`, [now.getTime()]);
    return result.rowCount ?? 0;
  }

  async exportDocuments(ns: Namespace, options: { after?: string; limit: number }): Promise<{ documents: StoredDocument[]; next: string | null }> {
    checkLimit(options.limit);
    const after = options.after === undefined ? 0 : Number(options.after);
    if (!Number.isSafeInteger(after) || after < 0 || (options.after !== undefined && String(after) !== options.after)) {
      throw new ValidationError(`Invalid export cursor ${JSON.stringify(options.after).slice(0, 40)}`, { path: 'after' });
    }
    const table = await this.#existing(ns);
    if (!table) return { documents: [], next: null };
    const rows = await this.#pool.query<{ cursor: string; json: string; expiry: number | null }>(
      `SELECT id::text AS cursor, doc::text AS json, expires_at::float8 AS expiry FROM ${table} WHERE id > $1::bigint ORDER BY id LIMIT $2`,
      [after, options.limit],
    );
    return {
      documents: rows.rows.map((r) => ({ doc: fromStoredJson(r.json), expiresAt: r.expiry === null ? null : new Date(r.expiry) })),
      next: rows.rows.length < options.limit ? null : rows.rows[rows.rows.length - 1]!.cursor,
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
    return (await this.#pool.query(`DELETE FROM ${table}`)).rowCount ?? 0;
  }

  async countDocuments(ns: Namespace): Promise<number> {
    const table = await this.#existing(ns);
    if (!table) return 0;
    return (await this.#pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n;
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
    await this.#pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.#release();
  }

  /**
   * Whether the database orders `jsonb` strings by bytes (see `DocumentSqlOptions`), read once:
   * the default collation of a database never changes.
   */
  #options(): Promise<DocumentSqlOptions> {
    if (!this.#sqlOptions) {
      this.#sqlOptions = jsonbOrdersBytes(this.#pool).then(
        (byteOrder) => ({ byteOrder }),
        (err: unknown) => {
          this.#sqlOptions = null;
          throw err;
        },
      );
    }
    return this.#sqlOptions;
  }

  /** `DELETE` of the expired documents that hold `doc`'s unique keys (they are gone for readers, so they must not refuse it), or `null` when it has none. */
  #purgeSql(c: Ensured, doc: Doc, params: unknown[], exceptTarget: boolean): string | null {
    const clauses: string[] = [];
    for (const index of c.uniques) {
      const values = index.keys.map(([field]) => valueAtPath(doc, field));
      if (values.some((v) => v === undefined)) continue;
      clauses.push(`(${index.keys.map(([field], i) => `${fieldSql(field)} = ${push(params, toStoredJson(values[i] as Doc[string]))}::jsonb`).join(' AND ')})`);
    }
    if (clauses.length === 0) return null;
    const except = exceptTarget ? ' AND id NOT IN (SELECT id FROM target)' : '';
    return `DELETE FROM ${c.table} WHERE expires_at <= ${push(params, this.#now().getTime())}::bigint${except} AND (${clauses.join(' OR ')}) RETURNING 1`;
  }

  async #write(ns: Namespace, c: Ensured, sql: string, params: unknown[]): Promise<void> {
    try {
      await this.#pool.query(sql, params);
    } catch (err) {
      throw isUniqueViolation(err) ? duplicate(ns, c, err) : err;
    }
  }

  /** The table of a collection that exists, else `null` (reads of it find nothing). A schema of that name that is not Xronox's is refused. */
  async #existing(ns: Namespace): Promise<string | null> {
    const key = nsKey(ns);
    const known = this.#tables.get(key);
    if (known) return known;
    const names = this.#names(ns);
    const found = await this.#pool.query<{ marker: boolean; tbl: boolean }>('SELECT to_regclass($1) IS NOT NULL AS marker, to_regclass($2) IS NOT NULL AS tbl', [
      names.markerSql,
      names.tableSql,
    ]);
    const row = found.rows[0]!;
    if (!row.tbl) return null;
    if (!this.#schemas.has(names.schema)) {
      if (!row.marker) throw foreignSchema(names, 'it has no Xronox marker table');
      checkMarker(names, await readMarker(this.#pool, names), this.#prefix, ns.dbName);
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
    const schema = schemaNameFor(this.#prefix, ns.dbName);
    const collection = assertName('collection', ns.collection, 'collection name');
    const schemaSql = escapeIdentifier(schema);
    return { schema, collection, dbName: ns.dbName, schemaSql, tableSql: `${schemaSql}.${escapeIdentifier(collection)}`, markerSql: `${schemaSql}.${escapeIdentifier(MARKER)}` };
  }

  async #transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const out = await work(client);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      // A connection that cannot even roll back is not given back to the pool.
      await client.query('ROLLBACK').catch((e: unknown) => {
        broken = e instanceof Error ? e : new Error(String(e));
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }
}

/**
 * Whether `jsonb` strings compare by UTF-8 bytes in this database: its default collation is the
 * libc (or, from PostgreSQL 17, builtin) `C`, `POSIX` or `C.UTF-8`, which compare code points.
 * An ICU default, or any language's collation, does not.
 */
export async function jsonbOrdersBytes(pool: Pick<Pool, 'query'>): Promise<boolean> {
  const found = await pool.query<{ collate: string; provider: string | null }>(
    `SELECT datcollate AS collate, to_jsonb(d) ->> 'datlocprovider' AS provider FROM pg_database AS d WHERE datname = current_database()`,
  );
  const row = found.rows[0];
  if (!row) return false;
  return (row.provider === null || row.provider === 'c' || row.provider === 'b') && ['C', 'POSIX', 'C.UTF-8', 'C.utf8'].includes(row.collate);
}

interface Names {
  schema: string;
  collection: string;
  dbName: string;
  schemaSql: string;
  tableSql: string;
  markerSql: string;
}

interface Ensured {
  table: string;
  uniques: ReadonlyArray<{ pgName: string; name: string; keys: readonly IndexKey[] }>;
  /** Declared index names by PostgreSQL index name, for naming the index in a `DuplicateKeyError`. */
  names: ReadonlyMap<string, string>;
}

interface WantedIndex {
  spec: IndexSpec;
  pgName: string;
  info: IndexInfo;
  createSql: string;
}

interface Marker {
  version: number;
  prefix: string;
  db_name: string;
}

/** An index of the table as the catalog describes it; `info` is `null` when it is not one Xronox could have made. */
interface HeldIndex {
  pgName: string;
  /** The declared name (the index's comment), when the index carries one that fits its name. */
  name: string | null;
  info: IndexInfo | null;
}

interface State {
  schema: boolean;
  relations: number;
  marker: Marker | null;
  table: boolean;
  indexes: Map<string, HeldIndex>;
}

function wantedIndexes(names: Names, spec: CollectionSpec): WantedIndex[] {
  const seen = new Set<string>();
  return spec.indexes.map((index) => {
    if (!INDEX_NAME.test(index.name)) throw new ValidationError(`Invalid index name ${JSON.stringify(index.name).slice(0, 80)}`);
    if (index.keys.length === 0 || index.keys.length > MAX_INDEX_KEYS) throw new ValidationError(`Index ${index.name} needs 1 to ${MAX_INDEX_KEYS} keys`);
    const pgName = indexNameFor(names.collection, index.name);
    if (seen.has(pgName)) throw new ValidationError(`Index ${index.name} is declared twice`);
    seen.add(pgName);
    for (const [, direction] of index.keys) if (direction !== 1 && direction !== -1) throw new ValidationError(`Index ${index.name}: a direction is 1 or -1`);
    const columns = index.keys.map(([field, direction]) => orderSql(field, direction)).join(', ');
    // MongoDB's sparse index leaves out documents that lack every key field.
    const partial = index.sparse ? ` WHERE ${sparsePredicate(index.keys)}` : '';
    return {
      spec: index,
      pgName,
      info: { name: index.name, keys: index.keys.map(([f, d]) => [f, d] as const), unique: index.unique === true, sparse: index.sparse === true },
      createSql: `CREATE ${index.unique ? 'UNIQUE ' : ''}INDEX ${escapeIdentifier(pgName)} ON ${names.tableSql} (${columns})${partial}`,
    };
  });
}

function sparsePredicate(keys: readonly IndexKey[]): string {
  return keys.map(([field]) => `${fieldSql(field)} IS NOT NULL`).join(' OR ');
}

/** The predicate as compared: without casts, parentheses and spaces, which is how `pg_get_expr` and this file differ. */
function predicateShape(sql: string): string {
  return sql.replace(/::text/g, '').replace(/[()\s]/g, '');
}

/**
 * The PostgreSQL name of a declared index: `<collection>.<index>` when it fits in an identifier,
 * else their starts and a hash after `~`. Collections hold no `.` and index names no `~`, so no
 * index name is a table's, and no two declared indexes share one.
 */
export function indexNameFor(collection: string, index: string): string {
  const direct = `${collection}.${index}`;
  if (direct.length <= MAX_IDENTIFIER) return direct;
  const hash = createHash('sha256').update(`${collection}\u0000${index}`).digest('hex').slice(0, 16);
  return `${collection.slice(0, 20)}.${index.slice(0, 24)}~${hash}`;
}

/** The name of a collection's own objects (`~id`, `~pkey`, `~expiry`): a `~` and no `.`, so never a table's or a declared index's. */
function internalName(collection: string, what: string): string {
  const direct = `${collection}~${what}`;
  if (direct.length <= MAX_IDENTIFIER) return direct;
  return `${collection.slice(0, 40)}~${what}~${createHash('sha256').update(collection).digest('hex').slice(0, 12)}`;
}

async function readState(client: Pick<Pool, 'query'>, names: Names): Promise<State> {
  const found = await client.query<{ schema: boolean; relations: number; marker: boolean; tbl: boolean }>(
    `SELECT n.oid IS NOT NULL AS schema, (SELECT count(*)::int FROM pg_class AS c WHERE c.relnamespace = n.oid) AS relations,
            to_regclass($2) IS NOT NULL AS marker, to_regclass($3) IS NOT NULL AS tbl
     FROM (SELECT $1::text AS name) AS wanted LEFT JOIN pg_namespace AS n ON n.nspname = wanted.name`,
    [names.schema, names.markerSql, names.tableSql],
  );
  const row = found.rows[0]!;
  return {
    schema: row.schema,
    relations: row.relations ?? 0,
    marker: row.marker ? await readMarker(client, names) : null,
    table: row.tbl,
    indexes: row.tbl ? await readIndexes(client, names) : new Map(),
  };
}

async function readMarker(client: Pick<Pool, 'query'>, names: Names): Promise<Marker> {
  const rows = await client.query<Marker>(`SELECT version, prefix, db_name FROM ${names.markerSql}`);
  if (rows.rows.length !== 1) throw foreignSchema(names, 'its marker table does not hold one row');
  return rows.rows[0]!;
}

function checkMarker(names: Names, marker: Marker, prefix: string, dbName: string): void {
  if (marker.prefix !== prefix || marker.db_name !== dbName) {
    throw foreignSchema(names, `it belongs to database ${JSON.stringify(marker.db_name)} under prefix ${JSON.stringify(marker.prefix)}`);
  }
  if (marker.version !== LAYOUT_VERSION) {
    throw new StorageError('postgres', 'open schema', undefined, `PostgreSQL schema ${names.schema} holds Xronox document layout ${marker.version}, but this version needs layout ${LAYOUT_VERSION}`);
  }
}

function foreignSchema(names: Names, why: string): StorageError {
  return new StorageError('postgres', 'open schema', undefined, `PostgreSQL schema ${names.schema} exists but is not the Xronox document database ${names.dbName}: ${why}`);
}

/** The table's indexes by PostgreSQL name, read from the catalog (not from what this process asked for). */
async function readIndexes(client: Pick<Pool, 'query'>, names: Names): Promise<Map<string, HeldIndex>> {
  const rows = await client.query<{ name: string; unique: boolean; predicate: string | null; comment: string | null; plain: boolean; columns: Array<[string, number]> }>(
    `SELECT c.relname AS name, i.indisunique AS unique, pg_get_expr(i.indpred, i.indrelid) AS predicate,
            obj_description(c.oid, 'pg_class') AS comment, am.amname = 'btree' AND i.indnatts = i.indnkeyatts AS plain,
            (SELECT json_agg(json_build_array(pg_get_indexdef(i.indexrelid, k, false), i.indoption[k - 1]) ORDER BY k)
               FROM generate_series(1, i.indnkeyatts::int) AS k) AS columns
     FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid JOIN pg_am AS am ON am.oid = c.relam
     WHERE i.indrelid = to_regclass($1)`,
    [names.tableSql],
  );
  const out = new Map<string, HeldIndex>();
  for (const row of rows.rows) {
    const name = row.comment !== null && indexNameFor(names.collection, row.comment) === row.name ? row.comment : null;
    out.set(row.name, { pgName: row.name, name, info: name === null ? null : describeIndex(name, row) });
  }
  return out;
}

function describeIndex(name: string, row: { unique: boolean; predicate: string | null; plain: boolean; columns: Array<[string, number]> }): IndexInfo | null {
  if (!row.plain) return null;
  const keys: IndexKey[] = [];
  for (const [expression, option] of row.columns) {
    const field = fieldOfIndexColumn(expression);
    const direction = option === ASC_NULLS_FIRST ? 1 : option === DESC_NULLS_LAST ? -1 : null;
    if (field === null || direction === null) return null;
    keys.push([field, direction]);
  }
  if (row.predicate !== null && predicateShape(row.predicate) !== predicateShape(sparsePredicate(keys))) return null;
  return { name, keys, unique: row.unique, sparse: row.predicate !== null };
}

function isComplete(state: State, wanted: readonly WantedIndex[]): boolean {
  return state.marker !== null && state.table && wanted.every((w) => state.indexes.has(w.pgName));
}

function checkConflicts(names: Names, state: State, wanted: readonly WantedIndex[]): void {
  for (const w of wanted) {
    const held = state.indexes.get(w.pgName);
    if (held && !sameIndex(held.info, w.info)) {
      throw new ConflictError(`Index ${w.spec.name} of ${names.dbName}.${names.collection} exists with another definition; drop it to recreate it as declared`);
    }
  }
}

function sameIndex(held: IndexInfo | null, wanted: IndexInfo): boolean {
  return (
    held !== null &&
    held.name === wanted.name &&
    held.unique === wanted.unique &&
    held.sparse === wanted.sparse &&
    held.keys.length === wanted.keys.length &&
    held.keys.every(([f, d], i) => f === wanted.keys[i]![0] && d === wanted.keys[i]![1])
  );
}

/** Fields the filter pins by equality at its top level (what an upsert's key is). */
function pinnedFields(filter: DocFilter): Set<string> {
  const items = filter.kind === 'and' ? filter.items : [filter];
  return new Set(items.flatMap((n) => (n.kind === 'compare' && n.op === '$eq' && n.value !== null ? [n.field] : [])));
}

function duplicate(ns: Namespace, c: Ensured, err: { constraint?: string }): DuplicateKeyError {
  return new DuplicateKeyError(ns.collection, (err.constraint !== undefined ? c.names.get(err.constraint) : undefined) ?? err.constraint ?? 'unique', { cause: err });
}

function isUniqueViolation(err: unknown): err is Error & { code: string; constraint?: string } {
  return err instanceof Error && (err as { code?: unknown }).code === UNIQUE_VIOLATION;
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

function nsKey(ns: Namespace): string {
  return `${ns.dbName}\u0000${ns.collection}`;
}

function push(params: unknown[], value: unknown): string {
  params.push(value);
  return `$${params.length}`;
}

function valueAtPath(doc: Doc, field: string): unknown {
  let current: unknown = doc;
  for (const segment of field.split('.')) {
    if (current === null || typeof current !== 'object' || Array.isArray(current) || current instanceof Date) return undefined;
    current = Object.hasOwn(current, segment) ? (current as Record<string, unknown>)[segment] : undefined;
  }
  return current;
}
