/**
 * Crash injection (`support/crash-scenario.ts`, as `crash.test.ts` runs it on SQLite) on a
 * PostgreSQL index store: writer processes killed with SIGKILL at seeded random points of their
 * write path (a signal after k acks, as the k-th commit returns, right after the k-th ack, as the
 * k-th blob put starts or ends), half of them beside a second writer on the same records, a
 * quarter followed by a repair process that is killed too; after each kill a restart and one
 * `repair()`, and the checker holds the store to every log: every acknowledged write there,
 * nothing half-written, the next writer going on from where the killed one stopped.
 *
 * The trials run in lanes side by side, each on schemas and a blob folder of its own. A killed
 * writer's record leases are held until they run out (the blob store's longest put plus a second:
 * 6 s on the local folder), since a PostgreSQL server cannot tell that a client process on some
 * host is gone; the repair, and a second writer shutting down, wait for them. One lane's wait
 * then overlaps the others' work.
 *
 * The schemas live under random prefixes this file made up, and only those are dropped.
 * XRONOX_RELIABILITY_SCALE multiplies the number of trials (default 1: 20);
 * XRONOX_RELIABILITY_SEED changes the seed (printed).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, it } from 'vitest';
import { schemaNameFor, tablesOf } from '../../core/adapters/postgres/postgres-schema.js';
import { describePostgres, dropSchemas, POSTGRES_URI, postgresAvailability, randomSchemaPrefix, withPostgres } from '../support/postgres.js';
import { tempDir } from '../support/temp.js';
import { buildCrashWriter, expectCrashHolds, runCrashLane } from './support/crash-scenario.js';
import { RELIABILITY_DB } from './support/history-client.js';

const SCALE = Number(process.env.XRONOX_RELIABILITY_SCALE ?? 1);
const SEED = Number(process.env.XRONOX_RELIABILITY_SEED ?? 13_2026);
const LANES = 5;
/** The figure: at least 20 SIGKILL trials. */
const TRIALS_PER_LANE = Math.max(4, Math.round(4 * SCALE));
const availability = await postgresAvailability();

/** The lease rows (with the server's clock) and the outbox of one schema, read behind the store's back. */
function leasesAndOutbox(schemaPrefix: string) {
  const t = tablesOf(schemaNameFor(schemaPrefix, RELIABILITY_DB));
  return withPostgres(async (client) => ({
    now: (await client.query<{ now: string }>('SELECT clock_timestamp()::text AS now')).rows[0]?.now,
    locks: (await client.query(`SELECT coll, key, owner, expires_at::text FROM ${t.locks}`)).rows,
    outbox: (await client.query(`SELECT coll, id, seq FROM ${t.outbox}`)).rows,
  }));
}

describePostgres('writers on a PostgreSQL index store killed with SIGKILL at random points of the write path', availability, () => {
  const dir = tempDir('xronox-reliability-crash-pg');
  const writer = join(dir.path, 'crash-writer.mjs');
  const prefixes = Array.from({ length: LANES }, () => randomSchemaPrefix());
  afterAll(async () => {
    for (const prefix of prefixes) await dropSchemas(prefix);
    dir.cleanup();
  });
  beforeAll(() => buildCrashWriter(writer));

  it(`${LANES * TRIALS_PER_LANE} trials: after a restart and one repair pass, no acknowledged write is lost and nothing half-written is visible`, async () => {
    const lanes = await Promise.all(
      prefixes.map(async (schemaPrefix, lane) => {
        const laneDir = join(dir.path, `lane-${lane}`);
        mkdirSync(laneDir);
        return runCrashLane({
          lane,
          backend: { kind: 'postgres', uri: POSTGRES_URI, schemaPrefix },
          dir: laneDir,
          writer,
          firstTrial: lane * TRIALS_PER_LANE,
          trials: TRIALS_PER_LANE,
          seed: SEED + lane * 1_000_000,
          checkConcurrency: 4,
          diagnose: () => leasesAndOutbox(schemaPrefix),
        });
      }),
    );
    expectCrashHolds({ label: 'crash on postgres', seed: SEED, scale: SCALE }, lanes);
  }, 600_000 * Math.max(1, SCALE));
});
