import { sha256Hex } from '../../foundation/digest.js';
import { escapeIdentifier, escapeLiteral, type Pool, type PoolClient } from 'pg';
import type { CollectionSpec, IndexInfo, IndexKey, IndexSpec } from '../../contracts/document-store.js';
import type { Namespace } from '../../contracts/index-store.js';
import { ConflictError, StorageError, ValidationError } from '../../errors.js';
import { assertName } from '../../foundation/names.js';
import { fieldOfIndexColumn, fieldSql, orderSql } from './postgres-filter.js';
import { DOCUMENTS_MARKER, lockSchema, privileged, schemaNameFor, schemaState } from './postgres-schema.js';

/**
 * The document layout on PostgreSQL, and what the catalog says of it. Each Xronox database is a
 * schema, `<prefix><dbName>` (named as the index driver names them, `postgres-schema.ts`), holding
 * a marker table and one table per collection, named as the collection: `id` (identity: insertion
 * order), `doc` (`jsonb`, see `postgres-filter.ts` for the encoding) and `expires_at` (milliseconds
 * since 1970 UTC, exact for every year 0000-9999; NULL: never). Each declared index is a real
 * expression index on `(doc -> 'field')`, `UNIQUE` where declared, partial (`WHERE ... IS NOT NULL
 * OR ...`) where sparse, named `<collection>.<index>` (or a hashed form when that is too long) with
 * the declared name as its comment, so `\d` in psql shows what the spec asks for.
 */

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
/** `pg_index.indoption` bits of the two column orders Xronox declares. */
const ASC_NULLS_FIRST = 2;
const DESC_NULLS_LAST = 1;

/** The names of a collection's schema and tables, validated, and quoted for SQL text. */
export interface Names {
  schema: string;
  collection: string;
  dbName: string;
  schemaSql: string;
  tableSql: string;
  markerSql: string;
}

export interface WantedIndex {
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

export interface State {
  schema: boolean;
  relations: number;
  marker: Marker | null;
  table: boolean;
  indexes: Map<string, HeldIndex>;
}

type Queryable = Pick<Pool, 'query'>;

export function namesOf(prefix: string, ns: Namespace): Names {
  const schema = schemaNameFor(prefix, ns.dbName);
  const collection = assertName('collection', ns.collection, 'collection name');
  const schemaSql = escapeIdentifier(schema);
  return { schema, collection, dbName: ns.dbName, schemaSql, tableSql: `${schemaSql}.${escapeIdentifier(collection)}`, markerSql: `${schemaSql}.${escapeIdentifier(MARKER)}` };
}

export function wantedIndexes(names: Names, spec: CollectionSpec): WantedIndex[] {
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

/**
 * Creates what the collection lacks (schema, marker, table, declared indexes), inside the caller's
 * transaction, queued behind every other creator of the schema's objects (`lockSchema`, which the
 * index store's creators take too); the state as it then is. A role without the right to create
 * (a least-privilege runtime role on a database `xronox migrate` has not made) is told so by name.
 */
export async function createMissing(client: PoolClient, names: Names, wanted: readonly WantedIndex[], prefix: string): Promise<State> {
  await lockSchema(client, names.schema);
  const current = await readState(client, names);
  const create = (sql: string) => privileged(names.schema, names.dbName, 'create', () => client.query(sql));
  if (!current.schema) await create(`CREATE SCHEMA ${names.schemaSql}`);
  if (!current.marker) {
    // The schema may already hold this database's index tables (a job's lease made them).
    const indexSchema =
      current.relations > 0 &&
      (await schemaState(client, names.schema, prefix, names.dbName).catch((err: unknown) => (err instanceof StorageError ? 'foreign' : Promise.reject(err)))) === 'ready';
    if (current.relations > 0 && !indexSchema) throw foreignSchema(names, 'it holds other tables and no Xronox marker');
    await create(`CREATE TABLE ${names.markerSql} (version integer NOT NULL, prefix text NOT NULL, db_name text NOT NULL)`);
    await client.query(`INSERT INTO ${names.markerSql} (version, prefix, db_name) VALUES ($1, $2, $3)`, [LAYOUT_VERSION, prefix, names.dbName]);
    current.marker = { version: LAYOUT_VERSION, prefix, db_name: names.dbName };
  }
  checkMarker(names, current.marker, prefix);
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
}

/** The collection's state, read on a pooled connection; a role that may not use the schema is told so by name. */
export function readStateAs(pool: Queryable, names: Names): Promise<State> {
  return privileged(names.schema, names.dbName, 'use', () => readState(pool, names));
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
  const hash = sha256Hex(`${collection}\u0000${index}`).slice(0, 16);
  return `${collection.slice(0, 20)}.${index.slice(0, 24)}~${hash}`;
}

/** The name of a collection's own objects (`~id`, `~pkey`, `~expiry`): a `~` and no `.`, so never a table's or a declared index's. */
function internalName(collection: string, what: string): string {
  const direct = `${collection}~${what}`;
  if (direct.length <= MAX_IDENTIFIER) return direct;
  return `${collection.slice(0, 40)}~${what}~${sha256Hex(collection).slice(0, 12)}`;
}

export async function readState(client: Queryable, names: Names): Promise<State> {
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

export async function readMarker(client: Queryable, names: Names): Promise<Marker> {
  const rows = await client.query<Marker>(`SELECT version, prefix, db_name FROM ${names.markerSql}`);
  if (rows.rows.length !== 1) throw foreignSchema(names, 'its marker table does not hold one row');
  return rows.rows[0]!;
}

export function checkMarker(names: Names, marker: Marker, prefix: string): void {
  if (marker.prefix !== prefix || marker.db_name !== names.dbName) {
    throw foreignSchema(names, `it belongs to database ${JSON.stringify(marker.db_name)} under prefix ${JSON.stringify(marker.prefix)}`);
  }
  if (marker.version !== LAYOUT_VERSION) {
    throw new StorageError('postgres', 'open schema', undefined, `PostgreSQL schema ${names.schema} holds Xronox document layout ${marker.version}, but this version needs layout ${LAYOUT_VERSION}`);
  }
}

export function foreignSchema(names: Names, why: string): StorageError {
  return new StorageError('postgres', 'open schema', undefined, `PostgreSQL schema ${names.schema} exists but is not the Xronox document database ${names.dbName}: ${why}`);
}

/** The table's indexes by PostgreSQL name, read from the catalog (not from what this process asked for). */
export async function readIndexes(client: Queryable, names: Names): Promise<Map<string, HeldIndex>> {
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

export function isComplete(state: State, wanted: readonly WantedIndex[]): boolean {
  return state.marker !== null && state.table && wanted.every((w) => state.indexes.has(w.pgName));
}

export function checkConflicts(names: Names, state: State, wanted: readonly WantedIndex[]): void {
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

/**
 * Whether `jsonb` strings compare by UTF-8 bytes in this database: its default collation is the
 * libc (or, from PostgreSQL 17, builtin) `C`, `POSIX` or `C.UTF-8`, which compare code points.
 * An ICU default, or any language's collation, does not.
 */
export async function jsonbOrdersBytes(pool: Queryable): Promise<boolean> {
  const found = await pool.query<{ collate: string; provider: string | null }>(
    `SELECT datcollate AS collate, to_jsonb(d) ->> 'datlocprovider' AS provider FROM pg_database AS d WHERE datname = current_database()`,
  );
  const row = found.rows[0];
  if (!row) return false;
  return (row.provider === null || row.provider === 'c' || row.provider === 'b') && ['C', 'POSIX', 'C.UTF-8', 'C.utf8'].includes(row.collate);
}
