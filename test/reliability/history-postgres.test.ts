/**
 * The history checker (`support/history-scenario.ts`, as `history.test.ts` runs it on SQLite) on
 * a PostgreSQL index store: writer processes, each with clients of its own, and clients in this
 * process on a handful of hot records, with optimistic locking; at the default scale at least
 * 20,000 acknowledged writes. Then the checker holds the store (read back through the API) and
 * the blob folder to every log: 0 lost, 0 duplicated, every history 0..head without gaps, every
 * `getAsOf` answer exact.
 *
 * The schemas live under a random prefix this file made up, and only those are dropped.
 * XRONOX_RELIABILITY_SCALE multiplies the operations per client (default 1);
 * XRONOX_RELIABILITY_SEED changes the seed (printed).
 */
import { afterAll, expect, it } from 'vitest';
import { describePostgres, dropSchemas, POSTGRES_URI, postgresAvailability, randomSchemaPrefix } from '../support/postgres.js';
import { tempDir } from '../support/temp.js';
import { expectHistoryHolds, type HistoryScenario, runHistoryScenario } from './support/history-scenario.js';

const SCALE = Number(process.env.XRONOX_RELIABILITY_SCALE ?? 1);
const SEED = Number(process.env.XRONOX_RELIABILITY_SEED ?? 17_2026);
const PROCESSES = 4;
const CLIENTS_PER_PROCESS = Number(process.env.XRONOX_PG_CLIENTS ?? 2);
const IN_PROCESS_CLIENTS = 2;
const CLIENTS = PROCESSES * CLIENTS_PER_PROCESS + IN_PROCESS_CLIENTS;
/** The figure: at least 20,000 acknowledged writes at the default scale, shared evenly by the clients. */
const ACKS = Math.round(Number(process.env.XRONOX_PG_ACKS ?? 20_000) * SCALE);
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
      // A bound, not the goal: every client stops at its acks long before (about a third of the operations are turned away).
      opsPerClient: ACKS_PER_CLIENT * 4,
      sharedRecords: Number(process.env.XRONOX_PG_SHARED ?? 6),
      checkConcurrency: 8,
      seed: SEED,
      scale: SCALE,
    };
    const outcome = await runHistoryScenario(scenario);
    expectHistoryHolds(scenario, outcome);
    expect(outcome.acked.total).toBe(ACKS_PER_CLIENT * CLIENTS);
  }, 300_000 * Math.max(1, SCALE));
});
