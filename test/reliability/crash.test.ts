/**
 * Crash injection on the embedded default: writer processes on one SQLite file and one blob
 * folder, killed with SIGKILL at seeded random points of their write path, trial after trial;
 * after each kill, a restart and one `repair()`, and the history checker holds everything to
 * every log so far. The trials themselves are `support/crash-scenario.ts`, shared with
 * `crash-postgres.test.ts`.
 *
 * XRONOX_RELIABILITY_SCALE multiplies the number of trials (default 1: 50);
 * XRONOX_RELIABILITY_SEED changes the seed (printed).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { tempDir } from '../support/temp.js';
import { buildCrashWriter, expectCrashHolds, runCrashLane } from './support/crash-scenario.js';

const SCALE = Number(process.env.XRONOX_RELIABILITY_SCALE ?? 1);
const SEED = Number(process.env.XRONOX_RELIABILITY_SEED ?? 11_2026);
const TRIALS = Math.max(50, Math.round(50 * SCALE));

describe('writers killed with SIGKILL at random points of the write path', () => {
  const dir = tempDir('xronox-reliability-crash');
  const writer = join(dir.path, 'crash-writer.mjs');
  afterAll(() => dir.cleanup());
  beforeAll(() => buildCrashWriter(writer));

  it(`${TRIALS} trials: after a restart and one repair pass, no acknowledged write is lost and no orphan is visible`, async () => {
    const lane = await runCrashLane({ lane: 0, backend: { kind: 'sqlite' }, dir: dir.path, writer, trials: TRIALS, seed: SEED });
    expectCrashHolds({ label: 'crash', seed: SEED, scale: SCALE }, [lane]);
  }, 600_000 * Math.max(1, SCALE));
});
