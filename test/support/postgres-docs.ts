import { randomBytes } from 'node:crypto';
import { Client, escapeIdentifier } from 'pg';

/**
 * The PostgreSQL server the document store tests run against: `XRONOX_POSTGRES_URI`, else the
 * local one (127.0.0.1:5432, user postgres, database test). A server that does not answer fails
 * the test file loudly, unless `XRONOX_POSTGRES_OPTIONAL=1` (then the suites say they skipped).
 */
export const POSTGRES_URI = process.env.XRONOX_POSTGRES_URI ?? 'postgres://postgres@127.0.0.1:5432/test';

export async function postgresAvailability(): Promise<{ ok: true } | { skip: string }> {
  const client = new Client({ connectionString: POSTGRES_URI, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return { ok: true };
  } catch (err) {
    const reason = `PostgreSQL at ${POSTGRES_URI.replace(/\/\/[^@/]*@/, '//***@')} does not answer (${err instanceof Error ? err.message : String(err)})`;
    if (process.env.XRONOX_POSTGRES_OPTIONAL === '1') return { skip: reason };
    throw new Error(`${reason}. Start it, point XRONOX_POSTGRES_URI at one, or set XRONOX_POSTGRES_OPTIONAL=1 to skip the PostgreSQL suites.`, { cause: err });
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A schema prefix of its own for one test file (`xt<random>_`), so its schemas are told apart from everyone else's. */
export function randomSchemaPrefix(): string {
  return `xt${randomBytes(5).toString('hex')}_`;
}

/** Runs `work` on a client of its own, outside every store's pool. */
export async function withPostgres<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: POSTGRES_URI, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** The schemas whose names start with `prefix` (compared as text: `_` is no wildcard here). */
export async function schemasOf(prefix: string): Promise<string[]> {
  return withPostgres(async (client) => {
    const rows = await client.query<{ nspname: string }>('SELECT nspname FROM pg_namespace WHERE left(nspname, length($1)) = $1 ORDER BY nspname', [prefix]);
    return rows.rows.map((r) => r.nspname);
  });
}

/**
 * Drops the schemas a test file created: those of its random prefix, and no other. Returns their names.
 */
export async function dropSchemas(prefix: string): Promise<string[]> {
  if (!/^xt[0-9a-f]{10}_$/.test(prefix)) throw new Error(`Refusing to drop schemas of ${JSON.stringify(prefix)}: not a test prefix`);
  const schemas = await schemasOf(prefix);
  await withPostgres(async (client) => {
    for (const schema of schemas) await client.query(`DROP SCHEMA ${escapeIdentifier(schema)} CASCADE`);
  });
  return schemas;
}
