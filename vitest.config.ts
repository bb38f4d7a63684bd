import { defineConfig } from 'vitest/config';
import { postgresAvailability } from './test/support/postgres-server.js';

/**
 * The suites that run a second time with PostgreSQL as the index and document store (the
 * project `postgres`, which sets `XRONOX_TEST_BACKEND` for the harness in test/http/harness.ts):
 * every HTTP suite whose answers come from the store, and the tenant-isolation fuzzer. Left out:
 * `openapi.test.ts` (the document is generated from the route schemas; no request reaches a
 * store) and `start.test.ts` (`npm start` is the embedded SQLite default, run as a process).
 */
const ON_POSTGRES = [
  'test/http/auth.test.ts',
  'test/http/documents.test.ts',
  'test/http/errors.test.ts',
  'test/http/fuzz.test.ts',
  'test/http/records.test.ts',
  'test/http/refusals.test.ts',
  'test/reliability/tenant-isolation.test.ts',
];

/**
 * PostgreSQL may be left out only when `XRONOX_POSTGRES_OPTIONAL=1` says so (as for the other
 * PostgreSQL suites, test/support/postgres.ts); otherwise a server that does not answer fails
 * those suites, naming why.
 */
async function postgresProjectSkipped(): Promise<boolean> {
  if (process.env.XRONOX_POSTGRES_OPTIONAL !== '1') return false;
  const availability = await postgresAvailability();
  if (availability.ok) return false;
  console.warn(`Skipping the vitest project "postgres": ${availability.reason} (XRONOX_POSTGRES_OPTIONAL=1)`);
  return true;
}

export default defineConfig({
  test: {
    // Test files open real SQLite files and spawn processes; two workers suit these 2-core machines.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      { extends: true, test: { name: 'default', include: ['test/**/*.test.ts'] } },
      ...((await postgresProjectSkipped())
        ? []
        : [{ extends: true as const, test: { name: 'postgres', include: ON_POSTGRES, env: { XRONOX_TEST_BACKEND: 'postgres' } } }]),
    ],
  },
});
