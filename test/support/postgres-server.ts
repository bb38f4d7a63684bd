import { Client } from 'pg';

/**
 * The PostgreSQL server of the test suites, without vitest (vitest.config.ts reads it too).
 *
 * Where the PostgreSQL suites get a server: `XRONOX_POSTGRES_URI`, else the one this project is
 * built with (127.0.0.1:5432, user postgres, database test). When it does not answer, the suites
 * fail, loudly, unless `XRONOX_POSTGRES_OPTIONAL=1` says PostgreSQL may be absent: then they are
 * skipped with the reason printed.
 */
export const POSTGRES_URI = process.env.XRONOX_POSTGRES_URI ?? 'postgres://postgres@127.0.0.1:5432/test';

export type PostgresAvailability = { ok: true } | { ok: false; reason: string; optional: boolean };

export async function postgresAvailability(uri = POSTGRES_URI): Promise<PostgresAvailability> {
  const client = new Client({ connectionString: uri, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return { ok: true };
  } catch (err) {
    const reason = `PostgreSQL does not answer at ${redact(uri)}: ${err instanceof Error ? err.message : String(err)}`;
    return { ok: false, reason, optional: process.env.XRONOX_POSTGRES_OPTIONAL === '1' };
  } finally {
    await client.end().catch(() => undefined);
  }
}

function redact(uri: string): string {
  return uri.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
}
