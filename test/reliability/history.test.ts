/**
 * History checker under contention on the embedded default: clients in child processes, in
 * worker threads and in this process run random create / update / enrich / delete / restore
 * operations with optimistic locking on one SQLite file and one blob folder, mostly on a handful
 * of shared records, and log every acknowledged and rejected result. Afterwards the checker
 * (`support/history-checker.ts`) reads everything back through the API and the blob folder: no
 * acknowledged write lost, no ov or cv assigned twice, gapless histories, strictly increasing
 * version times, every `getAsOf` answer the version the acknowledged order says, and the objects
 * equal to the index. The run itself is `support/history-scenario.ts`, shared with
 * `history-postgres.test.ts`.
 *
 * XRONOX_RELIABILITY_SCALE multiplies the operations per client (default 1);
 * XRONOX_RELIABILITY_SEED changes the seed (printed).
 */
import { afterAll, describe, it } from 'vitest';
import { tempDir } from '../support/temp.js';
import { expectHistoryHolds, type HistoryScenario, runHistoryScenario } from './support/history-scenario.js';

const SCALE = Number(process.env.XRONOX_RELIABILITY_SCALE ?? 1);
const SEED = Number(process.env.XRONOX_RELIABILITY_SEED ?? 9_2026);

describe('concurrent clients in processes, threads and this process', () => {
  const dir = tempDir('xronox-reliability-history');
  afterAll(() => dir.cleanup());

  it('lose no acknowledged write and leave histories the acknowledged order explains', async () => {
    const scenario: HistoryScenario = {
      label: 'history',
      backend: { kind: 'sqlite' },
      dir: dir.path,
      processes: 3,
      threads: 2,
      clientsPerHost: 2,
      inProcessClients: 2,
      opsPerClient: Math.round(120 * SCALE),
      sharedRecords: 6,
      seed: SEED,
      scale: SCALE,
    };
    expectHistoryHolds(scenario, await runHistoryScenario(scenario));
  }, 180_000 * Math.max(1, SCALE));
});
