import { escapeIdentifier } from 'pg';
import { withPostgres } from './postgres.js';

/**
 * What the document store tests add to `test/support/postgres.ts` (the server, its availability,
 * random schema prefixes): the schemas the PostgreSQL document store made, and dropping them.
 */
export { describePostgres, POSTGRES_URI, postgresAvailability, randomSchemaPrefix, withPostgres } from './postgres.js';

/** The schemas whose names start with `prefix` (compared as text: `_` is no wildcard here). */
export async function schemasOf(prefix: string): Promise<string[]> {
  return withPostgres(async (client) => {
    const rows = await client.query<{ nspname: string }>('SELECT nspname FROM pg_namespace WHERE left(nspname, length($1)) = $1 ORDER BY nspname', [prefix]);
    return rows.rows.map((r) => r.nspname);
  });
}

/**
 * Drops the schemas a test file's document stores created: those whose name starts with its
 * random prefix and whose `_xronox_documents` marker says they were made with that prefix, plus
 * `alsoDrop` (schemas the test made by hand under its prefix). Nothing else is touched.
 */
export async function dropDocumentSchemas(prefix: string, alsoDrop: readonly string[] = []): Promise<string[]> {
  return withPostgres(async (client) => {
    const dropped: string[] = [];
    for (const schema of await schemasOf(prefix)) {
      const marker = `${escapeIdentifier(schema)}._xronox_documents`;
      const held = (await client.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [marker])).rows[0]!.ok;
      const ours = held && (await client.query<{ prefix: string }>(`SELECT prefix FROM ${marker}`)).rows.every((r) => r.prefix === prefix);
      if (!ours && !alsoDrop.includes(schema)) continue;
      await client.query(`DROP SCHEMA ${escapeIdentifier(schema)} CASCADE`);
      dropped.push(schema);
    }
    return dropped;
  });
}
