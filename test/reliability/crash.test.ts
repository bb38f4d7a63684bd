/**
 * Crash injection: a writer process (`support/crash-writer.ts`: random create / update / enrich /
 * delete / restore over every record in the store) is killed with SIGKILL at a seeded random
 * point of its write path, in each trial one of five kinds of point: a signal from this process
 * after the k-th ack plus a random delay (wherever the writer is), or the writer killing itself
 * as its k-th index commit returns (before the ack), right after its k-th ack, or as its k-th blob
 * put starts or ends. In every other trial a second writer process works beside it on the same
 * few records (so the kill comes amid optimistic-locking conflicts) and finishes normally.
 * Trials run one after another on the same SQLite file and blob folder, so each continues the
 * histories of the ones before.
 *
 * After each kill, a fresh instance counts what the outbox still lists (the kill landed between
 * an index commit and its blob writes); in every fourth trial a repair process then starts and is
 * killed at one of its first blob puts (a crash during recovery). The instance checks that every
 * write the killed writer acknowledged is already readable, runs one `repair()`, and the history
 * checker holds the records the trial touched (and any record no ack explains; versions an
 * earlier trial checked are not read again) to every log so far, blob objects included: no
 * acknowledged write lost, nothing visible that was not acknowledged or the killed writer's one
 * in-flight operation, `current.json` and every `v{ov}.json` equal to the index. A full check
 * of every record and `verifyCollection()` end the run.
 *
 * The writer runs as a bundle esbuild makes once from its TypeScript (the same transform tsx
 * applies, in one file): a process then starts in about half the time `node --import tsx` takes,
 * which is most of a trial's cost.
 *
 * XRONOX_RELIABILITY_SCALE multiplies the number of trials (default 1: 50);
 * XRONOX_RELIABILITY_SEED changes the seed (printed).
 */
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Collection } from '../../core/engine/collection.js';
import { initXronox } from '../../core/xronox.js';
import { seededRandom } from '../support/random.js';
import { tempDir } from '../support/temp.js';
import { type CrashWriterArgs, KILL_MODES, type KillMode } from './support/crash-kill.js';
import { type CheckFigures, checkHistory, type ClientLog } from './support/history-checker.js';
import { ordersRoute, pendingOutbox, RELIABILITY_DB, reliabilityConfig, seedRecords } from './support/history-client.js';
import { OpLog, readOpLog } from './support/history-log.js';

const SCALE = Number(process.env.XRONOX_RELIABILITY_SCALE ?? 1);
const SEED = Number(process.env.XRONOX_RELIABILITY_SEED ?? 11_2026);
const TRIALS = Math.max(50, Math.round(50 * SCALE));
const SEED_RECORDS = 6;
const WRITER_SOURCE = new URL('./support/crash-writer.ts', import.meta.url).pathname;
/** Operations of the writer that runs beside the killed one in every other trial. */
const SURVIVOR_OPS = 30;
/** The k of each mode is drawn from 1..K_MAX[mode]: a few ops to a few dozen into the writer's run. */
const K_MAX: Record<KillMode, number> = { signal: 40, 'after-commit': 40, 'after-ack': 40, 'before-put': 80, 'after-put': 80 };

interface TrialOutcome {
  trial: number;
  mode: KillMode;
  k: number;
  survivor: boolean;
  /** Whether a repair process ran first and was killed (true) or finished (false). */
  repairKilled: boolean | undefined;
  acked: number;
  /** Conflicts of the killed writer and the one beside it. */
  rejected: number;
  pendingAtRestart: number;
  repaired: number;
  inFlight: boolean;
}

describe('writers killed with SIGKILL at random points of the write path', () => {
  const dir = tempDir('xronox-reliability-crash');
  const writer = join(dir.path, 'crash-writer.mjs');
  afterAll(() => dir.cleanup());

  beforeAll(async () => {
    await build({
      entryPoints: [WRITER_SOURCE],
      outfile: writer,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      logLevel: 'warning',
      // The native addon stays where npm built it; everything else goes in the bundle.
      plugins: [{ name: 'native-addon', setup: (b) => void b.onResolve({ filter: /^better-sqlite3$/ }, () => ({ path: createRequire(import.meta.url).resolve('better-sqlite3'), external: true })) }],
    });
  });

  it(`${TRIALS} trials: after a restart and one repair pass, no acknowledged write is lost and no orphan is visible`, async () => {
    const config = reliabilityConfig(dir.path);
    const blobRoot = join(dir.path, 'blobs', RELIABILITY_DB);
    const logPath = (client: string) => join(dir.path, `${client}.jsonl`);
    const seedInstance = initXronox(config);
    const seedLog = new OpLog(logPath('seed'));
    const hotIds = await seedRecords(seedInstance.with(ordersRoute) as Collection, SEED_RECORDS, seedLog);
    seedLog.close();
    await seedInstance.shutdown();

    const random = seededRandom(SEED);
    const logs: ClientLog[] = [{ name: 'seed', entries: readOpLog(logPath('seed')), killed: false }];
    const outcomes: TrialOutcome[] = [];
    /**
     * What the checker found, trial by trial. The trials go on after a finding (a later trial
     * may show it again, or show more), and the test fails at the end with all of them.
     */
    const findings: Array<{ trial: number; mode: KillMode; k: number; survivor: boolean; problems: string[] }> = [];
    const totals: Pick<CheckFigures, 'versions' | 'ackedChecked' | 'asOfQueries' | 'blobObjects'> = { versions: 0, ackedChecked: 0, asOfQueries: 0, blobObjects: 0 };
    /** Per record, the first ov no trial has checked yet. */
    const checkedUpTo = new Map<string, number>();

    for (let trial = 0; trial < TRIALS; trial++) {
      const mode = KILL_MODES[trial % KILL_MODES.length]!;
      const k = 1 + Math.floor(random() * K_MAX[mode]);
      const client = `k${trial}`;
      // Every other trial, a second writer works on the same few records while the first is killed.
      const survivor = trial % 2 === 1 ? `s${trial}` : undefined;
      const go = join(dir.path, `go-${trial}`);
      const contended = survivor ? { sharedIds: hotIds } : {};
      const args: CrashWriterArgs = { config, logPath: logPath(client), client, seed: SEED * 1000 + trial, mode, k, ...contended, ...(survivor ? { barrier: { ready: `${go}-k`, go } } : {}) };
      const runs = [runWriter(writer, args, mode === 'signal' ? { killAfterAcks: k, spinMs: random() * 2 } : {})];
      if (survivor) {
        const survivorArgs: CrashWriterArgs = { config, logPath: logPath(survivor), client: survivor, seed: SEED * 1000 + 500 + trial, mode: 'survive', k: 0, ops: SURVIVOR_OPS, ...contended, barrier: { ready: `${go}-s`, go } };
        runs.push(runWriter(writer, survivorArgs));
        try {
          await Promise.race([waitForFiles([`${go}-k`, `${go}-s`]), Promise.all(runs)]);
        } finally {
          // Also when one failed to start: the other must not wait forever.
          writeFileSync(go, '');
        }
      }
      const [run, survived] = await Promise.all(runs);
      expect({ trial, mode, k, signal: run!.signal, stderr: run!.stderr }).toEqual({ trial, mode, k, signal: 'SIGKILL', stderr: '' });
      if (survived) expect({ trial, survivor, code: survived.code, stderr: survived.stderr }).toEqual({ trial, survivor, code: 0, stderr: '' });

      const entries = readOpLog(args.logPath);
      logs.push({ name: client, entries, killed: true });
      const survivorEntries = survivor ? readOpLog(logPath(survivor)) : [];
      if (survivor) logs.push({ name: survivor, entries: survivorEntries, killed: false });
      const x = initXronox(config);
      try {
        const orders = x.with(ordersRoute) as Collection;
        const pendingAtRestart = await pendingOutbox(x);
        // Every fourth trial, the first repair is itself killed, at one of its first blob puts.
        // These are trials without a second writer: one would sync the killed writer's records as
        // it shuts down, leaving the repair nothing to put.
        let repairKilled: boolean | undefined;
        if (trial % 4 === 2) {
          const repairRun = await runWriter(writer, { config, logPath: logPath(`r${trial}`), client: `r${trial}`, seed: 0, mode: 'repair', k: 1 + Math.floor(random() * 6) });
          expect({ trial, code: repairRun.code, signal: repairRun.signal, stderr: repairRun.stderr }).toEqual({ trial, code: repairRun.signal ? null : 0, signal: repairRun.signal ? 'SIGKILL' : null, stderr: '' });
          repairKilled = repairRun.signal === 'SIGKILL';
        }
        // The index commit is the point of acknowledgement: before any repair, every ack reads back.
        const acks = entries.filter((e) => e.t === 'ack');
        for (const a of acks) expect({ trial, tag: a.tag, ov: (await orders.getVersion(a.id, a.ov))?.ov }).toEqual({ trial, tag: a.tag, ov: a.ov });

        const repair = await x.repair();
        expect({ trial, failed: repair.failed, pendingAfterRepair: await pendingOutbox(x) }).toEqual({ trial, failed: 0, pendingAfterRepair: 0 });

        const trialEntries = [...entries, ...survivorEntries];
        const scope = new Set(trialEntries.flatMap((e) => (e.t === 'ack' ? [e.id] : e.t === 'intent' && e.id ? [e.id] : [])));
        const ours = (tag: string) => tag.startsWith(`${client}:`) || (survivor !== undefined && tag.startsWith(`${survivor}:`));
        const report = await checkHistory({ orders, logs, blobRoot, scope, seed: SEED + trial, probeTags: ours, fromOv: checkedUpTo });
        for (const [id, head] of report.heads) checkedUpTo.set(id, head + 1);
        if (report.problems.length > 0) findings.push({ trial, mode, k, survivor: survivor !== undefined, problems: report.problems });
        for (const key of ['versions', 'ackedChecked', 'asOfQueries', 'blobObjects'] as const) totals[key] += report.figures[key];
        const rejected = survivorEntries.filter((e) => e.t === 'reject').length + entries.filter((e) => e.t === 'reject').length;
        outcomes.push({ trial, mode, k, survivor: survivor !== undefined, repairKilled, acked: acks.length, rejected, pendingAtRestart, repaired: repair.synced, inFlight: report.inFlightApplied.some((tag) => tag.startsWith(`${client}:`)) });
      } finally {
        await x.shutdown();
      }
    }

    // Every record and every log, once more, after the last trial.
    const x = initXronox(config);
    try {
      const orders = x.with(ordersRoute) as Collection;
      const final = await checkHistory({ orders, logs, blobRoot, seed: SEED });
      const verified = await orders.verifyCollection();
      const byMode = Object.fromEntries(
        KILL_MODES.map((mode) => {
          const of = outcomes.filter((o) => o.mode === mode);
          return [mode, { trials: of.length, pendingAtRestart: of.filter((o) => o.pendingAtRestart > 0).length, inFlightApplied: of.filter((o) => o.inFlight).length, withSurvivor: of.filter((o) => o.survivor).length }];
        }),
      );
      const betweenCommitAndBlob = outcomes.filter((o) => o.pendingAtRestart > 0).length;
      console.log(
        `[reliability] crash: seed ${SEED}, scale ${SCALE}: ${outcomes.length} trials, ${outcomes.length} SIGKILLs; ` +
          `${betweenCommitAndBlob} landed between an index commit and its blob writes (outbox non-empty at restart: ${outcomes.reduce((a, o) => a + o.pendingAtRestart, 0)} records, ` +
          `repair synced ${outcomes.reduce((a, o) => a + o.repaired, 0)}); ${final.figures.inFlightApplied} committed writes the killed writer never acknowledged (allowed: in flight); ` +
          `by kind ${JSON.stringify(byMode)}; ${outcomes.reduce((a, o) => a + o.acked, 0)} acknowledged writes by killed writers; ` +
          `${outcomes.filter((o) => o.repairKilled).length} repair processes killed mid-repair (${outcomes.filter((o) => o.repairKilled === false).length} more finished before their kill point); ` +
          `${outcomes.filter((o) => o.survivor).length} trials with a second writer beside the killed one (${SURVIVOR_OPS} ops each), ${outcomes.reduce((a, o) => a + o.rejected, 0)} writes rejected by optimistic locking; ` +
          `per-trial checks: ${totals.ackedChecked} acknowledged writes, ${totals.versions} versions, ${totals.asOfQueries} getAsOf answers, ${totals.blobObjects} blob objects; ` +
          `final check: ${final.figures.records} records, ${final.figures.versions} versions, ${final.figures.ackedChecked} acknowledged writes, ${final.figures.asOfQueries} getAsOf answers, ` +
          `${final.figures.blobObjects} blob objects, ${final.figures.tempFiles} temp files left by killed puts; hash chains: ${verified.versions} versions, ok ${verified.ok}; ` +
          `trials with findings: ${findings.length}; problems in the final check: ${final.problems.length}`,
      );
      for (const f of findings) console.log(`[reliability] crash finding: ${JSON.stringify(f)}`);
      expect(findings).toEqual([]);
      expect(final.problems).toEqual([]);
      expect(verified.broken).toEqual([]);
      // The trials really hit the window between the commit and the blob write, and crashed recoveries.
      expect(betweenCommitAndBlob).toBeGreaterThan(0);
      expect(outcomes.filter((o) => o.repairKilled).length).toBeGreaterThan(0);
      // Alone, a writer killed right after an ack always leaves that write's blobs to the repair
      // (beside another writer, that writer may sync the record first).
      const aloneAfterAck = outcomes.filter((o) => o.mode === 'after-ack' && !o.survivor);
      expect(aloneAfterAck.filter((o) => o.pendingAtRestart > 0)).toEqual(aloneAfterAck);
      // And the window between the commit and the ack: committed, never acknowledged, still whole.
      expect(byMode['after-commit']!.inFlightApplied).toBe(byMode['after-commit']!.trials);
    } finally {
      await x.shutdown();
    }
  }, 600_000 * Math.max(1, SCALE));
});

/**
 * Runs the writer; with `killAfterAcks`, sends SIGKILL once that many ack lines arrived, after
 * spinning `spinMs` (a sub-millisecond to two-millisecond delay timers cannot give).
 */
async function waitForFiles(paths: readonly string[]): Promise<void> {
  while (!paths.every((p) => existsSync(p))) await new Promise((r) => setTimeout(r, 5));
}

function runWriter(writer: string, args: CrashWriterArgs, options: { killAfterAcks?: number; spinMs?: number } = {}): Promise<{ signal: NodeJS.Signals | null; code: number | null; stderr: string }> {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, [writer, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let acks = 0;
  let killed = false;
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    acks += chunk.split('\n').length - 1;
    if (options.killAfterAcks !== undefined && acks >= options.killAfterAcks && !killed) {
      killed = true;
      const until = performance.now() + (options.spinMs ?? 0);
      while (performance.now() < until) {
        // spin: the writer keeps running meanwhile
      }
      child.kill('SIGKILL');
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}
