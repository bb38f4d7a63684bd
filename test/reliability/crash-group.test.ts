/**
 * Crash injection amid group commits, on the embedded default: a writer process runs several
 * reliability clients at once on the same few records (so their commits are grouped into shared
 * transactions, with optimistic-locking conflicts inside the groups) and is killed with SIGKILL:
 * as the k-th group transaction goes to the SQLite driver (nothing of it committed), as it returns
 * (all of it committed, none of it acknowledged), or by a signal from this process after the k-th
 * ack (anywhere). After each kill, a restart: every acknowledged write reads back; one `repair()`;
 * and the history checker holds the store and the blob folder to every client's log so far (each
 * killed client may have one write in flight, which may or may not exist, whole).
 *
 * XRONOX_RELIABILITY_SCALE multiplies the number of trials (default 1: 12);
 * XRONOX_RELIABILITY_SEED changes the seed (printed).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Collection } from '../../core/engine/collection.js';
import { initXronox } from '../../core/xronox.js';
import { seededRandom } from '../support/random.js';
import { tempDir } from '../support/temp.js';
import { type CrashWriterArgs, clientLogPath } from './support/crash-kill.js';
import { buildCrashWriter, runWriter } from './support/crash-scenario.js';
import { checkHistory, type ClientLog } from './support/history-checker.js';
import { ordersRoute, pendingOutbox, reliabilityConfig, seedRecords } from './support/history-client.js';
import { OpLog, readOpLog } from './support/history-log.js';
import { reliabilityScale, reliabilitySeed } from './support/fault-schedule.js';

const SCALE = reliabilityScale();
const SEED = reliabilitySeed(20_2026);
const TRIALS = Math.max(12, Math.round(12 * SCALE));
const CLIENTS = 6;
const MODES = ['group-before', 'group-after', 'signal'] as const;

describe('a writer of several concurrent clients killed with SIGKILL amid group commits', () => {
  const dir = tempDir('xronox-reliability-crash-group');
  const writer = join(dir.path, 'crash-writer.mjs');
  afterAll(() => dir.cleanup());
  beforeAll(() => buildCrashWriter(writer));

  it(`${TRIALS} trials: no acknowledged write is lost, no group is half there, and the repair leaves nothing behind`, async () => {
    const config = reliabilityConfig(dir.path);
    const blobRoot = join(dir.path, 'blobs', 'rt_reliability');
    const seedLog = new OpLog(join(dir.path, 'seed.jsonl'));
    const seeded = initXronox(config);
    const hotIds = await seedRecords(seeded.with(ordersRoute) as Collection, 8, seedLog);
    seedLog.close();
    await seeded.shutdown();

    const random = seededRandom(SEED);
    const logs: ClientLog[] = [{ name: 'seed', entries: readOpLog(join(dir.path, 'seed.jsonl')), killed: false }];
    const findings: Array<{ trial: number; mode: string; k: number; problems: string[] }> = [];
    const tally = { acked: 0, inFlightApplied: 0, rejected: 0, pendingAtRestart: 0 };
    for (let trial = 0; trial < TRIALS; trial++) {
      const mode = MODES[trial % MODES.length]!;
      const k = 1 + Math.floor(random() * (mode === 'signal' ? 40 : 12));
      // Clients are named `${client}${i}`: the `x` keeps trial 1's client 1 apart from trial 11's.
      const client = `g${trial}x`;
      const logPath = join(dir.path, `${client}.jsonl`);
      const args: CrashWriterArgs = { config, logPath, client, seed: SEED * 1000 + trial * 10, mode: mode === 'signal' ? 'survive' : mode, k, clients: CLIENTS, sharedIds: hotIds, ops: Number.MAX_SAFE_INTEGER };
      const run = await runWriter(writer, args, mode === 'signal' ? { killAfterAcks: k, spinMs: random() * 2 } : {});
      expect({ trial, mode, k, signal: run.signal, stderr: run.stderr }).toEqual({ trial, mode, k, signal: 'SIGKILL', stderr: '' });

      const trialLogs = Array.from({ length: CLIENTS }, (_, i): ClientLog => ({ name: `${client}${i}`, entries: readOpLog(clientLogPath(logPath, i)), killed: true }));
      logs.push(...trialLogs);
      const entries = trialLogs.flatMap((l) => l.entries);
      const x = initXronox(config);
      try {
        const orders = x.with(ordersRoute) as Collection;
        tally.pendingAtRestart += await pendingOutbox(x);
        // The index commit is the point of acknowledgement: before any repair, every ack reads back.
        const acks = entries.filter((e) => e.t === 'ack');
        for (const a of acks) expect({ trial, tag: a.tag, ov: (await orders.getVersion(a.id, a.ov))?.ov }).toEqual({ trial, tag: a.tag, ov: a.ov });
        const repair = await x.repair();
        expect({ trial, failed: repair.failed, left: repair.left, pending: await pendingOutbox(x) }).toEqual({ trial, failed: 0, left: 0, pending: 0 });
        const scope = new Set(entries.flatMap((e) => (e.t === 'ack' ? [e.id] : e.t === 'intent' && e.id ? [e.id] : [])));
        for (const id of hotIds) scope.add(id);
        const report = await checkHistory({ orders, logs, blobRoot, scope, seed: SEED + trial, probeTags: (tag) => tag.startsWith(client) });
        if (report.problems.length > 0) findings.push({ trial, mode, k, problems: report.problems });
        tally.acked += acks.length;
        const applied = report.inFlightApplied.filter((tag) => tag.startsWith(client));
        tally.inFlightApplied += applied.length;
        tally.rejected += entries.filter((e) => e.t === 'reject').length;
        // Killed after its group committed: every write of that group is there, unacknowledged.
        if (mode === 'group-after') expect({ trial, applied: applied.length >= 2 }).toEqual({ trial, applied: true });
        // Killed as its group went to the driver: nothing in flight was committed.
        if (mode === 'group-before') expect({ trial, applied }).toEqual({ trial, applied: [] });
      } finally {
        await x.shutdown();
      }
    }

    const x = initXronox(config);
    try {
      const orders = x.with(ordersRoute) as Collection;
      const final = await checkHistory({ orders, logs, blobRoot, seed: SEED });
      const verified = await orders.verifyCollection();
      console.log(
        `[reliability] crash-group: seed ${SEED}, scale ${SCALE}: ${TRIALS} trials of ${CLIENTS} concurrent clients, ${TRIALS} SIGKILLs ` +
          `(${MODES.map((m) => `${m}: ${Math.ceil((TRIALS - MODES.indexOf(m)) / MODES.length)}`).join(', ')}); ${tally.acked} acknowledged writes by killed writers, ` +
          `${tally.rejected} refused by optimistic locking, ${tally.inFlightApplied} committed but never acknowledged (allowed: in flight), ${tally.pendingAtRestart} records pending at restarts; ` +
          `final check: ${final.figures.records} records, ${final.figures.versions} versions, ${final.figures.ackedChecked} acknowledged writes, problems ${final.problems.length}; hash chains ok ${verified.ok}`,
      );
      expect(findings).toEqual([]);
      expect(final.problems).toEqual([]);
      expect(verified.broken).toEqual([]);
    } finally {
      await x.shutdown();
    }
  }, 600_000 * Math.max(1, SCALE));
});
