/**
 * The history checker (`support/history-scenario.ts`, as `history.test.ts` runs it on SQLite) on
 * a PostgreSQL index store: 4 writer processes with 2 clients each, and 2 clients in this
 * process, on 6 hot records with optimistic locking (about three quarters of the operations go to
 * them), until 5,000 writes are acknowledged at the default scale, 20,000 at scale 4 (each client stops at its
 * share). Then the checker holds the store (read back through the API) and the blob folder to
 * every log: 0 lost, 0 duplicated, every history 0..head without gaps, every `getAsOf` answer
 * exact (at, between and just before every version, with and without deleted ones).
 *
 * This is the longest file of the suite: every acknowledged write costs about 25 round trips to
 * the server (its reads, its commit, its blob sync with leases) and the check reads every version
 * back about 7 times; on 2 busy cores the run takes several minutes (RELIABILITY.md has the
 * figures). XRONOX_RELIABILITY_SCALE multiplies the acknowledged writes: default 1 (5,000, what
 * `npm test` runs, about a minute and a half on idle cores); 4 (`npm run test:reliability:long`)
 * is the 20,000-write run RELIABILITY.md reports; XRONOX_RELIABILITY_SEED changes the seed (printed). The schemas live under a
 * random prefix this file made up, and only those are dropped.
 */
import { afterAll, expect, it } from 'vitest';
import { describePostgres, dropSchemas, POSTGRES_URI, postgresAvailability, randomSchemaPrefix } from '../support/postgres.js';
import { tempDir } from '../support/temp.js';
import { expectHistoryHolds, type HistoryScenario, runHistoryScenario } from './support/history-scenario.js';

const SCALE = Number(process.env.XRONOX_RELIABILITY_SCALE ?? 1);
const SEED = Number(process.env.XRONOX_RELIABILITY_SEED ?? 17_2026);
const PROCESSES = 4;
const CLIENTS_PER_PROCESS = 2;
const IN_PROCESS_CLIENTS = 2;
const CLIENTS = PROCESSES * CLIENTS_PER_PROCESS + IN_PROCESS_CLIENTS;
/** The figure: at least 20,000 acknowledged writes at the default scale, shared evenly by the clients. */
const ACKS = Math.round(5_000 * SCALE);
const ACKS_PER_CLIENT = Math.ceil(ACKS / CLIENTS);
const availability = await postgresAvailability();

describePostgres('concurrent writer processes on a PostgreSQL index store', availability, () => {
  const dir = tempDir('xronox-reliability-history-pg');
  const schemaPrefix = randomSchemaPrefix();
  afterAll(async () => {
    await dropSchemas(schemaPrefix);
    dir.cleanup();
  });

  it('lose no acknowledged write and leave histories the acknowledged order explains', async () => {
    const scenario: HistoryScenario = {
      label: 'history on postgres',
      backend: { kind: 'postgres', uri: POSTGRES_URI, schemaPrefix },
      dir: dir.path,
      processes: PROCESSES,
      threads: 0,
      clientsPerHost: CLIENTS_PER_PROCESS,
      inProcessClients: IN_PROCESS_CLIENTS,
      acksPerClient: ACKS_PER_CLIENT,
      // A bound, not the goal: every client stops at its acks long before (about 30% of the operations are turned away).
      opsPerClient: ACKS_PER_CLIENT * 4,
      sharedRecords: 6,
      checkConcurrency: 8,
      seed: SEED,
      scale: SCALE,
    };
    const outcome = await runHistoryScenario(scenario);
    expectHistoryHolds(scenario, outcome);
    expect(outcome.acked.total).toBe(ACKS_PER_CLIENT * CLIENTS);
  }, 900_000 * Math.max(1, SCALE));
});
