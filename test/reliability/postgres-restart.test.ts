/**
 * PostgreSQL restarted in the middle of a write load. Clients in this process write to a
 * PostgreSQL index store (random create / update / enrich / delete / restore on a few hot
 * records, with optimistic locking, every result logged) while the server is restarted twice:
 * once cleanly (`pg_ctl -m fast restart`: sessions ended, a checkpoint) and once as a crash
 * (`pg_ctl -m immediate stop`, then a start that recovers from the WAL). The Xronox instance is
 * never restarted: it must reconnect by itself, and the writes must go on after each restart.
 * A write the server's going away interrupted is answered with a `StorageError` (its outcome is
 * unknown to the client, which logs it as such); a read, likewise.
 *
 * Then a fresh instance runs one `repair()` and the history checker holds the store to every
 * log: every acknowledged write there and exact, nothing half-written, no version of a rejected
 * write, each write the client was told failed either whole or absent.
 *
 * The server is a cluster of this file's own (`test/support/private-postgres.ts`: initdb in a
 * temporary folder, a free port), never the machine's shared one, and is stopped and removed
 * afterwards, when the test fails too. XRONOX_RELIABILITY_SCALE multiplies the writes between
 * two restarts (default 1); XRONOX_RELIABILITY_SEED changes the seed (printed).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Collection } from '../../core/engine/collection.js';
import { initXronox } from '../../core/xronox.js';
import { createPrivateCluster, type PrivateCluster, privateClusterAvailability } from '../support/private-postgres.js';
import { randomSchemaPrefix } from '../support/postgres.js';
import { tempDir } from '../support/temp.js';
import { checkHistory } from './support/history-checker.js';
import { type ClientFigures, ordersRoute, pendingOutbox, RELIABILITY_DB, reliabilityConfig, runClient, seedRecords } from './support/history-client.js';
import { OpLog, readOpLog } from './support/history-log.js';
import { problemCounts } from './support/history-scenario.js';

const SCALE = Number(process.env.XRONOX_RELIABILITY_SCALE ?? 1);
const SEED = Number(process.env.XRONOX_RELIABILITY_SEED ?? 15_2026);
const CLIENTS = 4;
const SHARED_RECORDS = 4;
/** Acknowledged writes before the first restart, between the two, and after the second. */
const ACKS_PER_PHASE = Math.round(150 * SCALE);
/** How long the crashed server stays down before it is started again. */
const DOWN_MS = 1_000;
/** The longest the writers may take to get an ack through once the server answers again. */
const RECONNECT_BOUND_MS = 20_000;
/**
 * Once the server answers again, errors may still reach a caller for a moment (an operation that
 * began during the outage, a commit whose outcome is being asked of the new server). Later than
 * this, an error means a connection the pool kept although its server had gone.
 */
const SETTLE_MS = 5_000;

const availability = privateClusterAvailability();
const optional = process.env.XRONOX_POSTGRES_OPTIONAL === '1';
if (!availability.ok && optional) console.warn(`Skipping the PostgreSQL restart test: ${availability.reason} (XRONOX_POSTGRES_OPTIONAL=1)`);

describe.skipIf(!availability.ok && optional)('PostgreSQL restarted under a write load', () => {
  const dir = tempDir('xronox-reliability-pg-restart');
  let cluster: PrivateCluster | undefined;
  beforeAll(async () => {
    if (!availability.ok) throw new Error(`A private PostgreSQL cluster cannot be made: ${availability.reason}. Set XRONOX_POSTGRES_OPTIONAL=1 to skip.`);
    cluster = await createPrivateCluster();
  }, 120_000);
  // Runs when the test fails too: the cluster is stopped (immediate) and its folder removed.
  afterAll(async () => {
    await cluster?.destroy();
    dir.cleanup();
  }, 120_000);

  it('keeps every acknowledged write, and the same instance writes on after a clean restart and after a crash', async () => {
    const server = cluster!;
    const config = reliabilityConfig(dir.path, { kind: 'postgres', uri: server.uri, schemaPrefix: randomSchemaPrefix() });
    const logPath = (client: string) => join(dir.path, `${client}.jsonl`);
    // Background work (the blob sync) fails during the outages and retries: counted, not printed.
    const backgroundErrors: string[] = [];
    const x = initXronox(config, { onBackgroundError: (err) => backgroundErrors.push(err instanceof Error ? err.message : String(err)) });
    const orders = x.with(ordersRoute) as Collection;
    const seedLog = new OpLog(logPath('seed'));
    const sharedIds = await seedRecords(orders, SHARED_RECORDS, seedLog);
    seedLog.close();

    const ackTimes: number[] = [];
    const storageErrors: Array<{ at: number; message: string }> = [];
    let stop = false;
    const names = Array.from({ length: CLIENTS }, (_, i) => `w${i}`);
    const logs = names.map((name) => new OpLog(logPath(name)));
    const clients = names.map((client, i) =>
      runClient(orders, {
        client,
        seed: SEED + i,
        ops: Number.MAX_SAFE_INTEGER,
        sharedIds,
        log: logs[i]!,
        onAck: () => ackTimes.push(Date.now()),
        stop: () => stop,
        outagePauseMs: 50,
        onStorageError: (err) => storageErrors.push({ at: Date.now(), message: err.message }),
      }),
    );
    // A client that ends early (an error other than a StorageError) ends every wait below.
    const ended = Promise.all(clients).then(() => {
      throw new Error('the writers stopped before they were told to');
    });
    ended.catch(() => undefined);
    const acksReach = (n: number, label: string) =>
      Promise.race([
        ended,
        (async () => {
          const deadline = Date.now() + 120_000 * Math.max(1, SCALE);
          while (ackTimes.length < n) {
            if (Date.now() > deadline) throw new Error(`${label}: ${ackTimes.length} of ${n} acks after 120 s\n${server.log().slice(-3000)}`);
            await new Promise((r) => setTimeout(r, 20));
          }
        })(),
      ]);

    const restarts: Array<{ kind: string; pidBefore?: number; pidAfter?: number; down: number; up: number; acksBefore: number; firstAckAfterMs?: number }> = [];
    try {
      await acksReach(ACKS_PER_PHASE, 'before the first restart');
      for (const kind of ['fast restart', 'crash (immediate stop) and start'] as const) {
        const pidBefore = server.postmasterPid();
        const acksBefore = ackTimes.length;
        const down = Date.now();
        if (kind === 'fast restart') {
          await server.restart();
        } else {
          await server.stop('immediate');
          await new Promise((r) => setTimeout(r, DOWN_MS));
          await server.start();
        }
        const up = Date.now();
        const restart = { kind, pidBefore, pidAfter: server.postmasterPid(), down, up, acksBefore };
        restarts.push(restart);
        // The same instance, reconnecting by itself: an ack within the bound once the server answers.
        await acksReach(ackTimes.length + 1, `the first ack after the ${kind}`);
        const firstAfter = ackTimes.find((t) => t >= up)!;
        restarts[restarts.length - 1] = { ...restart, firstAckAfterMs: firstAfter - up };
        await acksReach(acksBefore + ACKS_PER_PHASE, `after the ${kind}`);
      }
    } finally {
      stop = true;
    }
    const figures: ClientFigures[] = await Promise.all(clients);
    for (const log of logs) log.close();
    await x.shutdown();

    // A fresh instance, as after a restart of the application: one repair, then the checker.
    const fresh = initXronox(config);
    try {
      const check = fresh.with(ordersRoute) as Collection;
      const repair = await fresh.repair();
      const pendingAfterRepair = await pendingOutbox(fresh);
      const report = await checkHistory({
        orders: check,
        logs: ['seed', ...names].map((name) => ({ name, entries: readOpLog(logPath(name)), killed: false })),
        blobRoot: join(dir.path, 'blobs', RELIABILITY_DB),
        seed: SEED,
        concurrency: 4,
      });
      const verified = await check.verifyCollection();
      const count = (field: 'acked' | 'rejected' | 'failed') => figures.reduce((a, f) => a + Object.values(f[field]).reduce((b, n) => b + n, 0), 0);
      const readFailures = figures.reduce((a, f) => a + f.readFailures, 0);
      // Errors that no outage explains: later than SETTLE_MS after the server was back.
      const late = storageErrors.filter((e) => !restarts.some((r) => e.at >= r.down && e.at <= r.up + SETTLE_MS));
      console.log(
        `[reliability] postgres restart: seed ${SEED}, scale ${SCALE}: ${CLIENTS} writers in one process on ${SHARED_RECORDS} hot records, one Xronox instance throughout; ` +
          `${restarts.map((r) => `${r.kind}: postmaster ${r.pidBefore} → ${r.pidAfter}, server back after ${r.up - r.down} ms, first ack ${r.firstAckAfterMs} ms after that, ${r.acksBefore} acks before it`).join('; ')}; ` +
          `${count('acked')} writes acknowledged, ${count('rejected')} rejected by optimistic locking, ${count('failed')} answered with a StorageError (outcome unknown; ${report.figures.failedApplied} of them stored), ` +
          `${readFailures} reads failed, ${late.length} errors later than ${SETTLE_MS} ms after a restart; ${backgroundErrors.length} background sync errors (retried); repair synced ${repair.synced}; checked ${report.figures.records} records, ${report.figures.versions} versions, ${report.figures.ackedChecked} acknowledged writes, ` +
          `${report.figures.asOfQueries} getAsOf answers, ${report.figures.blobObjects} blob objects; hash chains: ${verified.versions} versions, ok ${verified.ok}; ` +
          `${problemCounts(report.problems)}, problems: ${report.problems.length}`,
      );
      expect(report.problems).toEqual([]);
      expect(verified.broken).toEqual([]);
      expect({ failed: repair.failed, pendingAfterRepair }).toEqual({ failed: 0, pendingAfterRepair: 0 });
      expect(report.figures.ackedChecked).toBe(count('acked') + SHARED_RECORDS);
      expect(report.figures.failed).toBe(count('failed'));
      for (const r of restarts) {
        // The server really went away (a new postmaster), and the instance got writes through again soon.
        expect(r.pidAfter).not.toBe(r.pidBefore);
        expect(r.firstAckAfterMs).toBeLessThan(RECONNECT_BOUND_MS);
      }
      expect(late).toEqual([]);
      expect(ackTimes.length).toBeGreaterThanOrEqual(3 * ACKS_PER_PHASE);
    } finally {
      await fresh.shutdown();
    }
  }, 300_000 * Math.max(1, SCALE));
});
