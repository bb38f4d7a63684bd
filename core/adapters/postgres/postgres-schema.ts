import { sha256Hex } from '../../foundation/digest.js';
import { escapeIdentifier, type ClientBase, type Pool } from 'pg';
import { StorageError, ValidationError } from '../../errors.js';
import { assertName } from '../../foundation/names.js';
import { inTransaction } from './postgres-pool.js';

/**
 * The PostgreSQL layout: one schema per Xronox database (`<prefix><dbName>`), the same tables in
 * each, keyed by collection. A database's rows live only in its own schema, so a query reaches
 * another database only by naming its schema, which the driver derives from the namespace alone.
 *
 * The document store (`postgres-document-store.ts`) keeps a messaging or identities database in
 * the same schema (the jobs take their leases in the index store of every database, so such a
 * schema holds both): its tables are named as their collections, which start with a letter
 * (`core/foundation/names.ts`), and every relation of the index store (table, index, sequence)
 * starts with `_`, so the two never collide.
 */

/**
 * Bumped whenever the tables below change shape; a schema of another version is refused (there
 * is no older layout to upgrade from yet).
 */
export const SCHEMA_VERSION = 1;

/** A prefix is part of every schema name: lowercase so it reads the same quoted or not. */
const PREFIX = /^[a-z_][a-z0-9_]{0,29}$/;
/** PostgreSQL truncates identifiers longer than this (NAMEDATALEN - 1 bytes). */
const MAX_IDENTIFIER = 63;

export function assertSchemaPrefix(prefix: string): string {
  if (!PREFIX.test(prefix)) {
    throw new ValidationError(
      `Invalid PostgreSQL schema prefix: got ${JSON.stringify(prefix)}; expected a lowercase letter or "_" then up to 29 lowercase letters, digits or "_"`,
      { path: 'schemaPrefix' },
    );
  }
  return prefix;
}

/**
 * The schema of a database: the prefix and the name when they fit in an identifier, else the
 * prefix, the start of the name, `$` and a hash of the whole name. No database name contains `$`,
 * so the two forms never meet; the schema's `_schema_info` row keeps the real name.
 */
export function schemaNameFor(prefix: string, dbName: string): string {
  assertName('dbName', dbName, 'database name');
  const direct = `${prefix}${dbName}`;
  if (direct.length <= MAX_IDENTIFIER) return direct;
  const hash = sha256Hex(dbName).slice(0, 16);
  return `${prefix}${dbName.slice(0, MAX_IDENTIFIER - prefix.length - hash.length - 1)}$${hash}`;
}

/** Qualified, quoted table names of one schema: the only way SQL text names a table. */
export interface Tables {
  readonly schema: string;
  readonly info: string;
  readonly namespaces: string;
  readonly heads: string;
  readonly versions: string;
  readonly claims: string;
  readonly outbox: string;
  readonly deadLetters: string;
  readonly pendingBlobs: string;
  readonly counters: string;
  readonly counterWindows: string;
  readonly uploads: string;
  readonly locks: string;
}

export function tablesOf(schema: string): Tables {
  const s = escapeIdentifier(schema);
  return {
    schema: s,
    info: `${s}._schema_info`,
    namespaces: `${s}._namespaces`,
    heads: `${s}._heads`,
    versions: `${s}._versions`,
    claims: `${s}._claims`,
    outbox: `${s}._outbox`,
    deadLetters: `${s}._dead_letters`,
    pendingBlobs: `${s}._pending_blobs`,
    counters: `${s}._counters`,
    counterWindows: `${s}._counter_windows`,
    uploads: `${s}._uploads`,
    locks: `${s}._locks`,
  };
}

/**
 * Every text column that is compared or ordered uses the "C" collation: byte order, which for
 * UTF-8 is code point order, as every other store orders ids, keys and ISO-8601 times.
 */
function ddl(t: Tables): string[] {
  const key = 'text COLLATE "C" NOT NULL';
  return [
    `CREATE TABLE ${t.info} (version integer NOT NULL, prefix text NOT NULL, db_name ${key})`,
    // One row per namespace ever locked. A transaction locks its namespaces' rows first, so
    // writes of a namespace are serialised and cvs are assigned in commit order. cv is NULL
    // until the namespace is written (a lease or a counter can lock a namespace never written).
    `CREATE TABLE ${t.namespaces} (coll ${key} PRIMARY KEY, cv bigint)`,
    `CREATE TABLE ${t.heads} (
       coll ${key}, id ${key}, ov bigint NOT NULL, cv bigint NOT NULL, deleted boolean NOT NULL,
       created_at ${key}, updated_at ${key}, deleted_at text COLLATE "C",
       meta jsonb NOT NULL, body text NOT NULL, hash text,
       PRIMARY KEY (coll, id))`,
    `CREATE INDEX _heads_by_updated ON ${t.heads} (coll, updated_at, id)`,
    `CREATE INDEX _heads_by_created ON ${t.heads} (coll, created_at, id)`,
    // Equality filters on indexed properties compile to containment (meta @> '{"k": v}').
    `CREATE INDEX _heads_by_meta ON ${t.heads} USING gin (meta jsonb_path_ops)`,
    `CREATE TABLE ${t.versions} (
       coll ${key}, id ${key}, ov bigint NOT NULL, cv bigint NOT NULL, op text NOT NULL, at ${key},
       actor jsonb NOT NULL, actor_id ${key}, actor_type text, reason text, deleted boolean NOT NULL,
       size bigint NOT NULL, body text, archived boolean NOT NULL, meta jsonb NOT NULL, hash text NOT NULL,
       PRIMARY KEY (coll, id, ov))`,
    `CREATE INDEX _versions_by_actor ON ${t.versions} (coll, actor_id, at, id, ov)`,
    `CREATE INDEX _versions_by_time ON ${t.versions} (coll, id, at, ov)`,
    `CREATE INDEX _versions_by_cv ON ${t.versions} (coll, id, cv)`,
    // A history page is one range of this index (an index-only scan): the table's rows are wide.
    `CREATE INDEX _versions_history ON ${t.versions} (coll, id, ov) INCLUDE (cv, op, at, actor, reason, deleted, size, archived)`,
    // Only the versions still waiting for archival, so finding them never scans a long history.
    `CREATE INDEX _versions_unarchived ON ${t.versions} (coll, id, ov) INCLUDE (at) WHERE NOT archived`,
    `CREATE TABLE ${t.claims} (coll ${key}, key ${key}, id ${key}, PRIMARY KEY (coll, key))`,
    `CREATE INDEX _claims_by_record ON ${t.claims} (coll, id)`,
    // `queued` is the entry's place in the queue: taken when the entry is made, kept when a later
    // write re-marks the record at a higher seq.
    `CREATE TABLE ${t.outbox} (
       coll ${key}, id ${key}, seq bigint NOT NULL, queued bigint GENERATED ALWAYS AS IDENTITY, PRIMARY KEY (coll, id))`,
    `CREATE INDEX _outbox_by_queue ON ${t.outbox} (queued)`,
    `CREATE INDEX _outbox_by_collection ON ${t.outbox} (coll, queued)`,
    // Oldest first: by failed_at, then by when the letter was made (`made`, kept when it is re-written).
    `CREATE TABLE ${t.deadLetters} (
       coll ${key}, id ${key}, reason text NOT NULL, failed_at ${key}, made bigint GENERATED ALWAYS AS IDENTITY, PRIMARY KEY (coll, id))`,
    `CREATE INDEX _dead_letters_by_age ON ${t.deadLetters} (failed_at, made)`,
    `CREATE TABLE ${t.pendingBlobs} (
       coll ${key}, id ${key}, bucket ${key}, key ${key}, content_type text NOT NULL, body bytea NOT NULL,
       PRIMARY KEY (coll, bucket, key))`,
    `CREATE INDEX _pending_blobs_by_record ON ${t.pendingBlobs} (coll, id)`,
    `CREATE TABLE ${t.counters} (coll ${key}, name ${key}, value double precision NOT NULL, PRIMARY KEY (coll, name))`,
    `CREATE TABLE ${t.counterWindows} (
       coll ${key}, win ${key}, name ${key}, value double precision NOT NULL, PRIMARY KEY (coll, win, name))`,
    // Upload intents (cleaning = false) and cleanup marks on content object keys, stamped by the
    // server's clock; see core/engine/content-uploads.ts.
    `CREATE TABLE ${t.uploads} (
       coll ${key}, bucket ${key}, key ${key}, token ${key}, id ${key}, cleaning boolean NOT NULL,
       stamped_at timestamptz NOT NULL, PRIMARY KEY (coll, bucket, key, token))`,
    `CREATE INDEX _uploads_by_age ON ${t.uploads} (stamped_at)`,
    `CREATE TABLE ${t.locks} (coll ${key}, key ${key}, owner text NOT NULL, expires_at timestamptz NOT NULL, PRIMARY KEY (coll, key))`,
  ];
}

export type SchemaState = 'missing' | 'ready';

/** The document store's marker table (`postgres-document-store.ts`): its schema may hold the index store's tables too. */
export const DOCUMENTS_MARKER = '_xronox_documents';

/** SQLSTATE insufficient_privilege: the role may not use or create what a statement names. */
const INSUFFICIENT_PRIVILEGE = '42501';

/**
 * Whether the schema holds a Xronox index schema of this version, prefix and database
 * (`ready`), or not yet (`missing`: no such schema, or one that holds only this database's
 * document tables, into which the index tables may go). A schema of that name holding anything
 * else, or nothing, is refused, never written into.
 */
export async function schemaState(client: Pick<ClientBase, 'query'>, schema: string, prefix: string, dbName: string): Promise<SchemaState> {
  const t = tablesOf(schema);
  const row = await privileged(schema, dbName, 'use', async () => {
    const found = await client.query<{ nsp: boolean; info: boolean; documents: boolean }>(
      `SELECT n.oid IS NOT NULL AS nsp, to_regclass($2) IS NOT NULL AS info, to_regclass($3) IS NOT NULL AS documents
       FROM (SELECT $1::text AS name) AS wanted LEFT JOIN pg_namespace AS n ON n.nspname = wanted.name`,
      [schema, t.info, `${t.schema}.${escapeIdentifier(DOCUMENTS_MARKER)}`],
    );
    return found.rows[0]!;
  });
  if (!row.nsp) return 'missing';
  if (!row.info) {
    // This database's document tables (`postgres-document-store.ts`) are the only company the
    // index tables accept; a schema someone else made, even an empty one, is left alone.
    if (row.documents) {
      const marker = await client.query<{ prefix: string; db_name: string }>(`SELECT prefix, db_name FROM ${t.schema}.${escapeIdentifier(DOCUMENTS_MARKER)}`);
      if (marker.rows.length === 1 && marker.rows[0]!.prefix === prefix && marker.rows[0]!.db_name === dbName) return 'missing';
    }
    throw foreignSchema(schema, 'it has no _schema_info table');
  }
  const info = await client.query<{ version: number; prefix: string; db_name: string }>(`SELECT version, prefix, db_name FROM ${t.info}`);
  const held = info.rows[0];
  if (!held || info.rows.length !== 1) throw foreignSchema(schema, 'its _schema_info table does not hold one row');
  if (held.prefix !== prefix || held.db_name !== dbName) {
    throw foreignSchema(schema, `it belongs to database ${JSON.stringify(held.db_name)} under prefix ${JSON.stringify(held.prefix)}`);
  }
  if (held.version !== SCHEMA_VERSION) {
    throw new StorageError(
      'postgres',
      'open schema',
      undefined,
      `PostgreSQL schema ${schema} holds Xronox index schema ${held.version}, but this version needs schema ${SCHEMA_VERSION}`,
    );
  }
  return 'ready';
}

/**
 * Queues the caller's transaction behind every other creator of the schema's objects (the index
 * store's tables, the document store's tables and indexes): a transaction-scoped advisory lock
 * named after the schema, released at commit or rollback, so no session state outlives it.
 */
export async function lockSchema(client: Pick<ClientBase, 'query'>, schema: string): Promise<void> {
  await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`xronox.schema:${schema}`]);
}

/**
 * Creates the index tables of a database (and its schema) unless they exist, inside the caller's
 * transaction (DDL is transactional in PostgreSQL: other sessions see all of it or none of it).
 * Concurrent creators queue on `lockSchema`; the ones that follow find it ready. When the tables
 * exist nothing is created, so a role without the right to create anything runs on a schema
 * made ahead (`xronox migrate`). Returns whether it created the tables.
 */
export async function createSchemaInTransaction(client: ClientBase, schema: string, prefix: string, dbName: string): Promise<boolean> {
  await lockSchema(client, schema);
  if ((await schemaState(client, schema, prefix, dbName)) === 'ready') return false;
  const t = tablesOf(schema);
  const exists = (await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rows.length > 0;
  await privileged(schema, dbName, 'create', async () => {
    // One round trip: the statements have no parameters, so they go as one simple query.
    await client.query([...(exists ? [] : [`CREATE SCHEMA ${t.schema}`]), ...ddl(t)].join(';\n'));
  });
  await client.query(`INSERT INTO ${t.info} (version, prefix, db_name) VALUES ($1, $2, $3)`, [SCHEMA_VERSION, prefix, dbName]);
  return true;
}

/**
 * `createSchemaInTransaction` in a transaction of its own on a pooled connection: what
 * `xronox migrate` runs for each database. Returns whether it created the tables.
 */
export async function prepareSchema(pool: Pool, schema: string, prefix: string, dbName: string): Promise<boolean> {
  return inTransaction(pool, (client) => createSchemaInTransaction(client, schema, prefix, dbName));
}

/**
 * Runs `body`, turning "permission denied" into a `StorageError` that says which schema of which
 * database the role may not use or create, and what to do: the runtime role of a least-privilege
 * setup has no right to create schemas, so a database that `xronox migrate` has not made fails
 * here, by name, rather than with the server's bare message.
 */
export async function privileged<T>(schema: string, dbName: string, action: 'use' | 'create', body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    if ((err as { code?: unknown } | null)?.code !== INSUFFICIENT_PRIVILEGE) throw err;
    const reason = err instanceof Error ? err.message : String(err);
    throw new StorageError(
      'postgres',
      action === 'create' ? 'create schema' : 'open schema',
      err,
      action === 'create'
        ? `PostgreSQL schema ${schema} of database "${dbName}" is not set up, and this role may not create it (${reason}): run \`npx xronox migrate\` as a role that may, then grant this role the runtime privileges (docs/postgresql.md, "PostgreSQL roles")`
        : `This role may not use PostgreSQL schema ${schema} of database "${dbName}" (${reason}): grant it the runtime privileges (docs/postgresql.md, "PostgreSQL roles")`,
    );
  }
}

/**
 * How many schemas one statement reads across (a `UNION ALL` branch each, a parameter each): a
 * store with a schema per tenant may have many thousands, and one statement may bind at most
 * 65,535 parameters (and should stay quick to plan).
 */
export const SCHEMAS_PER_STATEMENT = 500;

/** `items` in consecutive groups of at most `SCHEMAS_PER_STATEMENT`. */
export function schemaGroups<T>(items: readonly T[]): T[][] {
  const groups: T[][] = [];
  for (let i = 0; i < items.length; i += SCHEMAS_PER_STATEMENT) groups.push(items.slice(i, i + SCHEMAS_PER_STATEMENT));
  return groups;
}

/** The schemas of one prefix that hold a Xronox index schema, with their database names. */
export async function listSchemas(client: Pick<ClientBase, 'query'>, prefix: string): Promise<Array<{ schema: string; dbName: string }>> {
  // A LIKE pattern would treat "_" in the prefix as a wildcard: compare the start instead.
  const found = await client.query<{ nspname: string }>(
    `SELECT n.nspname FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid
     WHERE c.relname = '_schema_info' AND left(n.nspname, length($1)) = $1 ORDER BY n.nspname`,
    [prefix],
  );
  // One statement per group of schemas; each branch reads that schema's own one-row table.
  const infos: Array<{ schema: string; version: number; prefix: string; db_name: string }> = [];
  for (const group of schemaGroups(found.rows)) {
    const union = group.map((r, i) => `SELECT $${i + 1}::text AS schema, version, prefix, db_name FROM ${tablesOf(r.nspname).info}`).join(' UNION ALL ');
    infos.push(...(await client.query<(typeof infos)[number]>(union, group.map((r) => r.nspname))).rows);
  }
  const mine = infos.filter((r) => r.prefix === prefix && r.schema === schemaNameForSafe(prefix, r.db_name));
  // A database of this store in another layout is not left out of the lists (jobs would skip it): refused.
  const other = mine.find((r) => r.version !== SCHEMA_VERSION);
  if (other) {
    throw new StorageError(
      'postgres',
      'open schema',
      undefined,
      `PostgreSQL schema ${other.schema} holds Xronox index schema ${other.version}, but this version needs schema ${SCHEMA_VERSION}`,
    );
  }
  return mine.map((r) => ({ schema: r.schema, dbName: r.db_name }));
}

function schemaNameForSafe(prefix: string, dbName: string): string | null {
  try {
    return schemaNameFor(prefix, dbName);
  } catch {
    return null;
  }
}

function foreignSchema(schema: string, why: string): StorageError {
  return new StorageError('postgres', 'open schema', undefined, `PostgreSQL schema ${schema} exists but is not a Xronox index schema of this store: ${why}`);
}
