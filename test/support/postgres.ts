import { randomBytes } from 'node:crypto';
import { Client, escapeIdentifier } from 'pg';
import { describe, it } from 'vitest';
import { POSTGRES_URI, type PostgresAvailability } from './postgres-server.js';

export { POSTGRES_URI, postgresAvailability, type PostgresAvailability } from './postgres-server.js';

/**
 * `describe` when PostgreSQL answers; otherwise a suite of one failing test naming the reason, or
 * (with `XRONOX_POSTGRES_OPTIONAL=1`) a skipped suite whose reason is printed.
 */
export function describePostgres(name: string, availability: PostgresAvailability, body: () => void): void {
  if (availability.ok) {
    describe(name, body);
    return;
  }
  if (availability.optional) {
    console.warn(`Skipping "${name}": ${availability.reason} (XRONOX_POSTGRES_OPTIONAL=1)`);
    describe.skip(name, body);
    return;
  }
  describe(name, () => {
    it('needs PostgreSQL', () => {
      throw new Error(`${availability.reason}. Start PostgreSQL, point XRONOX_POSTGRES_URI at one, or set XRONOX_POSTGRES_OPTIONAL=1 to skip these suites.`);
    });
  });
}

/** A schema prefix no other test file uses: `xt_` and 10 random hex digits. */
export function randomSchemaPrefix(): string {
  return `xt_${randomBytes(5).toString('hex')}_`;
}

/**
 * Drops the schemas a test file's stores created: those whose name starts with its random prefix
 * and whose `_schema_info` row says they were made with that prefix. Nothing else is touched.
 */
export async function dropSchemas(prefix: string, uri = POSTGRES_URI): Promise<string[]> {
  const client = new Client({ connectionString: uri });
  await client.connect();
  try {
    const found = await client.query<{ nspname: string }>(
      `SELECT n.nspname FROM pg_namespace n WHERE left(n.nspname, length($1)) = $1 ORDER BY n.nspname`,
      [prefix],
    );
    const dropped: string[] = [];
    for (const { nspname } of found.rows) {
      const info = await client.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [`${escapeIdentifier(nspname)}._schema_info`]);
      if (!info.rows[0]?.ok) continue;
      const owner = await client.query<{ prefix: string }>(`SELECT prefix FROM ${escapeIdentifier(nspname)}._schema_info`);
      if (owner.rows.length !== 1 || owner.rows[0]!.prefix !== prefix) continue;
      await client.query(`DROP SCHEMA ${escapeIdentifier(nspname)} CASCADE`);
      dropped.push(nspname);
    }
    return dropped;
  } finally {
    await client.end();
  }
}

/** Runs `body` with a connection of its own (for what a test does behind the store's back). */
export async function withPostgres<T>(body: (client: Client) => Promise<T>, uri = POSTGRES_URI): Promise<T> {
  const client = new Client({ connectionString: uri });
  await client.connect();
  try {
    return await body(client);
  } finally {
    await client.end();
  }
}
