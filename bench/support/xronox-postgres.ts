import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { escapeIdentifier } from 'pg';
import { defaultAdapters } from '../../core/adapters/registry.js';
import { PostgresIndexDriver } from '../../core/adapters/postgres/postgres-index-driver.js';
import { tablesOf } from '../../core/adapters/postgres/postgres-schema.js';
import { loadConfig, Xronox } from '../../core/index.js';
import { IndexRuntime } from '../../core/store/index-runtime.js';

/**
 * Xronox with its index store on the machine's PostgreSQL (the server the SQL baselines use) and
 * its objects in a local folder, as the embedded default keeps them. Every database is a schema
 * under a random prefix of this run; `dropXronoxSchemas` removes exactly those at the end.
 */

/** The server of `connectPostgres` (bench/support/sql-versioned.ts), as a connection string. */
export function postgresUri(): string {
  const user = process.env.BENCH_PG_USER ?? 'postgres';
  const host = process.env.BENCH_PG_HOST ?? '127.0.0.1';
  const port = process.env.BENCH_PG_PORT ?? '5432';
  const database = process.env.BENCH_PG_DATABASE ?? 'test';
  return `postgres://${encodeURIComponent(user)}@${host}:${port}/${encodeURIComponent(database)}`;
}

/** `xb_` and 10 random hex digits: a schema prefix no other run uses. */
export function randomSchemaPrefix(): string {
  return `xb_${randomBytes(5).toString('hex')}_`;
}

export interface XronoxOnPostgresOptions {
  schemaPrefix: string;
  /** The local folder of the objects (`localStorage.basePath`). */
  basePath: string;
  tenant: string;
  /** dbName of the tenant's runtime (versioned) database, and of its knowledge (unversioned) one if given. */
  runtimeDb: string;
  knowledgeDb?: string;
  /** Connections of the pool (the driver's default is 10). */
  poolMax?: number;
  /**
   * `synchronous_commit = off` for every session of this instance: commits are not waited for
   * (setup only, like SQLite's synchronous=NORMAL for the setup instance of history.bench.ts).
   */
  asynchronousCommit?: boolean;
  /** Sees every statement (round-trip counts). */
  onQuery?: (text: string, values: readonly unknown[]) => void;
  onBackgroundError: (err: unknown) => void;
}

/**
 * The config a user would write (`postgresUri`, `schemaPrefix`, `localStorage`); the index store
 * is built here only to set the pool size and the query hook, which the config does not carry.
 */
export function xronoxOnPostgres(o: XronoxOnPostgresOptions): Xronox {
  const uri = postgresUri() + (o.asynchronousCommit ? `?options=${encodeURIComponent('-c synchronous_commit=off')}` : '');
  const config = loadConfig({
    dbConnections: { pg: { postgresUri: uri, schemaPrefix: o.schemaPrefix } },
    databases: {
      runtime: { tenantDatabases: [{ tenantId: o.tenant, dbConnRef: 'pg', dbName: o.runtimeDb }] },
      ...(o.knowledgeDb ? { knowledge: { tenantDatabases: [{ tenantId: o.tenant, dbConnRef: 'pg', dbName: o.knowledgeDb }] } } : {}),
    },
    localStorage: { basePath: o.basePath, enabled: true },
  });
  const driverOptions = {
    connectionString: uri,
    schemaPrefix: o.schemaPrefix,
    ...(o.poolMax ? { pool: { max: o.poolMax } } : {}),
    ...(o.onQuery ? { onQuery: o.onQuery } : {}),
  };
  return new Xronox(config, { ...defaultAdapters, indexStore: () => IndexRuntime.of(new PostgresIndexDriver(driverOptions)) }, { onBackgroundError: o.onBackgroundError });
}

/**
 * Drops the schemas this run's prefix made: those whose name starts with it and whose
 * schema-info row names it. Nothing else is touched. Returns how many were dropped.
 */
export async function dropXronoxSchemas(client: pg.Client, prefix: string): Promise<number> {
  const found = await client.query<{ nspname: string }>('SELECT nspname FROM pg_namespace WHERE left(nspname, length($1)) = $1', [prefix]);
  let dropped = 0;
  for (const { nspname } of found.rows) {
    const info = tablesOf(nspname).info;
    const exists = await client.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [info]);
    if (!exists.rows[0]?.ok) continue;
    const owner = await client.query<{ prefix: string }>(`SELECT prefix FROM ${info}`);
    if (owner.rows.length !== 1 || owner.rows[0]!.prefix !== prefix) continue;
    await client.query(`DROP SCHEMA ${escapeIdentifier(nspname)} CASCADE`);
    dropped++;
  }
  return dropped;
}
