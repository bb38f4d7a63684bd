/**
 * The tenant isolation fuzzer's world on PostgreSQL, where the boundary between tenants is a
 * schema per database that every statement must name correctly. Two checks the SQLite world
 * has no counterpart for:
 *
 * - **Roles.** acme and beta (and the generic databases) share one connection, as tenants of one
 *   deployment usually do, under a role of their own; gamma's databases are on a second
 *   connection under another role, with the same schema prefix. Neither role may use the other's
 *   schemas (each owns only the schemas it made). So any statement run for gamma that names an
 *   acme or beta schema, or the other way round, whatever the request was, fails in PostgreSQL
 *   itself with "permission denied", which the fuzzer sees as a 5xx or a StorageError.
 * - **Placement.** Read behind the engine's back, every row of every schema is the schema's own
 *   tenant's (by the `owner` and `tenantId` each tenant writes), and each tenant's schemas hold
 *   exactly the records its model holds. This covers acme and beta, which share a role.
 *
 * Roles and schemas carry the run's random prefix; only they are dropped.
 */
import { randomBytes } from 'node:crypto';
import { escapeIdentifier, escapeLiteral } from 'pg';
import { POSTGRES_URI, randomSchemaPrefix, withPostgres } from '../../support/postgres.js';

export interface PostgresTenantConnections {
  schemaPrefix: string;
  /** Connection `local` (acme, beta, the generic databases) and `confined` (gamma). */
  dbConnections: Record<'local' | 'confined', { postgresUri: string; schemaPrefix: string }>;
  roles: Record<'local' | 'confined', string>;
  /** Drops the two roles (after the schemas: a role that owns a schema cannot be dropped). */
  dropRoles(): Promise<void>;
}

export async function postgresTenantConnections(): Promise<PostgresTenantConnections> {
  const schemaPrefix = randomSchemaPrefix();
  const roles = { local: `${schemaPrefix}shared`, confined: `${schemaPrefix}confined` };
  const uris = {} as Record<'local' | 'confined', string>;
  await withPostgres(async (client) => {
    const database = (await client.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db;
    for (const [ref, role] of Object.entries(roles) as Array<['local' | 'confined', string]>) {
      const password = randomBytes(12).toString('hex');
      await client.query(`CREATE ROLE ${escapeIdentifier(role)} LOGIN PASSWORD ${escapeLiteral(password)}`);
      // Schemas are made on first use: the roles may create them, and use only their own.
      await client.query(`GRANT CREATE ON DATABASE ${escapeIdentifier(database)} TO ${escapeIdentifier(role)}`);
      const uri = new URL(POSTGRES_URI);
      uri.username = role;
      uri.password = password;
      uris[ref] = uri.toString();
    }
  });
  return {
    schemaPrefix,
    dbConnections: {
      local: { postgresUri: uris.local, schemaPrefix },
      confined: { postgresUri: uris.confined, schemaPrefix },
    },
    roles,
    dropRoles: () =>
      withPostgres(async (client) => {
        for (const role of Object.values(roles)) {
          // Revokes the database grant (and drops anything of the role's the schema drop left).
          await client.query(`DROP OWNED BY ${escapeIdentifier(role)}`);
          await client.query(`DROP ROLE ${escapeIdentifier(role)}`);
        }
      }),
  };
}

/**
 * What a role gets when it reads the `heads` of `dbName`'s schema directly: a row count, or the
 * SQLSTATE it was refused with (42501: insufficient privilege).
 */
export async function readAs(uri: string, schemaPrefix: string, dbName: string): Promise<number | string> {
  return withPostgres(async (client) => {
    try {
      const rows = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${escapeIdentifier(`${schemaPrefix}${dbName}`)}._heads`);
      return rows.rows[0]!.n;
    } catch (err) {
      return (err as { code?: string }).code ?? String(err);
    }
  }, uri);
}

/** One schema of the prefix as the catalogue shows it: its database and what its rows say of their tenant. */
interface SchemaCensus {
  schema: string;
  dbName: string;
  kind: 'index' | 'documents';
  /** Per table (`_heads`, `_versions`, or a document collection): each `owner`/`tenantId` value found, with its count. */
  tenantsByTable: Record<string, Record<string, number>>;
  /** Index schemas: the ids in `heads`, by collection. */
  heads: Record<string, string[]>;
}

/** Every schema of `prefix`, read directly (as the server's superuser, not through Xronox). */
export async function schemaCensus(prefix: string): Promise<SchemaCensus[]> {
  return withPostgres(async (client) => {
    const schemas = await client.query<{ nspname: string; index: boolean; documents: boolean }>(
      `SELECT n.nspname,
              to_regclass(quote_ident(n.nspname) || '._schema_info') IS NOT NULL AS index,
              to_regclass(quote_ident(n.nspname) || '._xronox_documents') IS NOT NULL AS documents
       FROM pg_namespace n WHERE left(n.nspname, length($1)) = $1 ORDER BY n.nspname`,
      [prefix],
    );
    const out: SchemaCensus[] = [];
    for (const { nspname, index, documents } of schemas.rows) {
      const s = escapeIdentifier(nspname);
      if (!index && !documents) throw new Error(`Schema ${nspname} of the run's prefix is neither an index nor a document schema`);
      const dbName = (await client.query<{ db_name: string }>(`SELECT db_name FROM ${s}.${index ? '_schema_info' : '_xronox_documents'}`)).rows[0]!.db_name;
      const census: SchemaCensus = { schema: nspname, dbName, kind: index ? 'index' : 'documents', tenantsByTable: {}, heads: {} };
      const tally = async (table: string, column: string) => {
        const rows = await client.query<{ t: string | null; n: number }>(
          `SELECT t, count(*)::int AS n FROM ${s}.${escapeIdentifier(table)},
             LATERAL (VALUES (${column} ->> 'owner'), (${column} ->> 'tenantId')) AS v(t)
           WHERE t IS NOT NULL GROUP BY t`,
        );
        census.tenantsByTable[table] = Object.fromEntries(rows.rows.map((r) => [r.t, r.n]));
      };
      // A messaging database's schema may hold both: the index store's tables (the jobs' leases),
      // all named `_…`, and the document store's, named as their collections.
      if (index) {
        await tally('_heads', 'meta');
        await tally('_versions', 'meta');
        const heads = await client.query<{ coll: string; id: string }>(`SELECT coll, id FROM ${s}._heads ORDER BY coll, id`);
        for (const { coll, id } of heads.rows) (census.heads[coll] ??= []).push(id);
      }
      if (documents) {
        const tables = await client.query<{ relname: string }>(
          `SELECT c.relname FROM pg_class c WHERE c.relnamespace = quote_ident($1)::regnamespace AND c.relkind = 'r' AND left(c.relname, 1) <> '_'`,
          [nspname],
        );
        for (const { relname } of tables.rows) await tally(relname, 'doc');
      }
      out.push(census);
    }
    return out;
  });
}

export interface ExpectedPlacement {
  /** Every configured database, with its tenant (`null`: the generic or a domain tier). */
  configured: Map<string, string | null>;
  /** The record ids each tenant's model holds, by database and collection. */
  records: Array<{ tenant: string; dbName: string; collection: string; ids: string[] }>;
}

/**
 * What is out of place in `census`: a schema of no configured database, a row whose `owner` or
 * `tenantId` is not the schema's tenant, or a tenant's collection whose rows differ from its model.
 */
export function placementProblems(census: SchemaCensus[], expected: ExpectedPlacement): string[] {
  const problems: string[] = [];
  for (const schema of census) {
    if (!expected.configured.has(schema.dbName)) {
      problems.push(`schema ${schema.schema} holds database ${schema.dbName}, which the config does not name`);
      continue;
    }
    const owner = expected.configured.get(schema.dbName);
    for (const [table, tenants] of Object.entries(schema.tenantsByTable)) {
      for (const [tenant, rows] of Object.entries(tenants)) {
        if (tenant !== owner) problems.push(`${schema.schema}.${table} (tenant ${owner ?? 'none'}) holds ${rows} row(s) of ${tenant}`);
      }
    }
  }
  for (const { tenant, dbName, collection, ids } of expected.records) {
    const held = census.find((c) => c.kind === 'index' && c.dbName === dbName)?.heads[collection] ?? [];
    const want = [...ids].sort();
    if (JSON.stringify([...held].sort()) !== JSON.stringify(want)) {
      problems.push(`${tenant}'s ${collection} in ${dbName}: the schema holds ${held.length} record(s), the model ${want.length}`);
    }
  }
  return problems;
}
