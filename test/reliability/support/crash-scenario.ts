/**
 * The crash trials, whatever the index store (`crash.test.ts` on the embedded SQLite file,
 * `crash-postgres.test.ts` on a PostgreSQL server): a writer process (`crash-writer.ts`: random
 * create / update / enrich / delete / restore over every record in the store) is killed with
 * SIGKILL at a seeded random point of its write path, in each trial one of five kinds of point:
 * a signal from this process after the k-th ack plus a random delay (wherever the writer is), or
 * the writer killing itself as its k-th index commit returns (before the ack), right after its
 * k-th ack, or as its k-th blob put starts or ends. In every other trial a second writer process
 * works beside it on the same few records (so the kill comes amid optimistic-locking conflicts)
 * and finishes normally. Trials run one after another on the same index store and blob folder,
 * so each continues the histories of the ones before.
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
 */
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { build } from 'esbuild';
import { expect } from 'vitest';
import type { Collection } from '../../../core/engine/collection.js';
import { initXronox } from '../../../core/xronox.js';
import { seededRandom } from '../../support/random.js';
import { type CrashWriterArgs, KILL_MODES, type KillMode } from './crash-kill.js';
import { type CheckFigures, type CheckReport, checkHistory, type ClientLog } from './history-checker.js';
import { ordersRoute, pendingOutbox, RELIABILITY_DB, type ReliabilityBackend, reliabilityConfig, seedRecords } from './history-client.js';
import { OpLog, readOpLog } from './history-log.js';

const SEED_RECORDS = 6;
const WRITER_SOURCE = new URL('./crash-writer.ts', import.meta.url).pathname;
/** Operations of the writer that runs beside the killed one in every other trial. */
const SURVIVOR_OPS = 30;
/** The k of each mode is drawn from 1..K_MAX[mode]: a few ops to a few dozen into the writer's run. */
const K_MAX: Record<KillMode, number> = { signal: 40, 'after-commit': 40, 'after-ack': 40, 'before-put': 80, 'after-put': 80 };


/** How long to wait for a killed process's sync lease to run out (the longest lease, 6 s, plus a second). */
const LEASE_RUNS_OUT_MS = 7_000;

export interface TrialOutcome {
  trial: number;
  mode: KillMode;
  k: number;
  survivor: boolean;
  /** Whether a repair process ran first and was killed (true) or finished (false). */
  repairKilled: boolean | undefined;
  acked: number;
  /** Acks of the second writer, when there was one. */
  survivorAcked: number;
  /** Conflicts of the killed writer and the one beside it. */
  rejected: number;
  pendingAtRestart: number;
  repaired: number;
  /** Whether a second repair pass ran, after a dead process's PostgreSQL lease ran out. */
  secondPass: boolean;
  inFlight: boolean;
}

/** One line of trials: one index store (a SQLite file, or PostgreSQL schemas of one prefix) and one blob folder. */
export interface CrashLane {
  /** Numbers the lane in findings (0 when there is one). */
  lane: number;
  backend: ReliabilityBackend;
  /** The lane's folder: logs, barrier files, the blob folder (and the SQLite file). */
  dir: string;
  /** The writer bundle `buildCrashWriter` made. */
  writer: string;
  /**
   * The number of the lane's first trial (default 0): trials are numbered across lanes, so that
   * lanes of a few trials each still cover every kind of kill point with and without a second
   * writer (both follow the trial's number).
   */
  firstTrial?: number;
  trials: number;
  seed: number;
  /** Records the checker reads back at once (see `CheckInput.concurrency`). Default 1. */
  checkConcurrency?: number;
  /** What to print when a repair leaves records in the outbox (the store's leases and outbox, say). */
  diagnose?: () => Promise<unknown>;
}

export interface LaneResult {
  outcomes: TrialOutcome[];
  findings: Array<{ lane: number; trial: number; mode: KillMode; k: number; survivor: boolean; problems: string[] }>;
  /** What the per-trial checks read back, summed. */
  totals: Pick<CheckFigures, 'versions' | 'ackedChecked' | 'asOfQueries' | 'blobObjects'>;
  /** The check of every record and every log after the last trial. */
  final: CheckReport;
  verified: { versions: number; ok: boolean; broken: unknown[] };
}

/** Bundles `crash-writer.ts` into one file at `outfile` (see above: a process starts in half the time). */
export async function buildCrashWriter(outfile: string): Promise<void> {
  await build({
    entryPoints: [WRITER_SOURCE],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
    // pg is CommonJS: its requires of Node's modules need a `require` in the ESM bundle.
    banner: { js: "import { createRequire as createRequireOfBundle } from 'node:module'; const require = createRequireOfBundle(import.meta.url);" },
    // pg's native binding is optional, and not installed: pg loads it only when asked to.
    external: ['pg-native'],
    // The native addon stays where npm built it; everything else goes in the bundle.
    plugins: [{ name: 'native-addon', setup: (b) => void b.onResolve({ filter: /^better-sqlite3$/ }, () => ({ path: createRequire(import.meta.url).resolve('better-sqlite3'), external: true })) }],
  });
}

/**
 * Runs one lane's trials, one after another on its store, and checks each (a failed expectation
 * names the lane's trial). The checker's findings do not stop the trials (a later trial may show
 * them again, or show more): they are returned, with the figures, for `expectCrashHolds`.
 */
export async function runCrashLane(s: CrashLane): Promise<LaneResult> {
  const { dir } = s;
  const config = reliabilityConfig(dir, s.backend);
  const blobRoot = join(dir, 'blobs', RELIABILITY_DB);
  const logPath = (client: string) => join(dir, `${client}.jsonl`);
  const seedInstance = initXronox(config);
  const seedLog = new OpLog(logPath('seed'));
  const hotIds = await seedRecords(seedInstance.with(ordersRoute) as Collection, SEED_RECORDS, seedLog);
  seedLog.close();
  await seedInstance.shutdown();

  const random = seededRandom(s.seed);
  const logs: ClientLog[] = [{ name: 'seed', entries: readOpLog(logPath('seed')), killed: false }];
  const outcomes: TrialOutcome[] = [];
  /**
   * What the checker found, trial by trial. The trials go on after a finding (a later trial
   * may show it again, or show more), and the test fails at the end with all of them.
   */
  const findings: LaneResult['findings'] = [];
  const totals: Pick<CheckFigures, 'versions' | 'ackedChecked' | 'asOfQueries' | 'blobObjects'> = { versions: 0, ackedChecked: 0, asOfQueries: 0, blobObjects: 0 };
  /** Per record, the first ov no trial has checked yet. */
  const checkedUpTo = new Map<string, number>();

  const firstTrial = s.firstTrial ?? 0;
  for (let trial = firstTrial; trial < firstTrial + s.trials; trial++) {
    const mode = KILL_MODES[trial % KILL_MODES.length]!;
    const k = 1 + Math.floor(random() * K_MAX[mode]);
    const client = `k${trial}`;
    // Every other trial, a second writer works on the same few records while the first is killed.
    const survivor = trial % 2 === 1 ? `s${trial}` : undefined;
    const go = join(dir, `go-${trial}`);
    const contended = survivor ? { sharedIds: hotIds } : {};
    const args: CrashWriterArgs = { config, logPath: logPath(client), client, seed: s.seed * 1000 + trial, mode, k, ...contended, ...(survivor ? { barrier: { ready: `${go}-k`, go } } : {}) };
    const runs = [runWriter(s.writer, args, mode === 'signal' ? { killAfterAcks: k, spinMs: random() * 2 } : {})];
    if (survivor) {
      const survivorArgs: CrashWriterArgs = { config, logPath: logPath(survivor), client: survivor, seed: s.seed * 1000 + 500 + trial, mode: 'survive', k: 0, ops: SURVIVOR_OPS, ...contended, barrier: { ready: `${go}-s`, go } };
      runs.push(runWriter(s.writer, survivorArgs));
      try {
        await Promise.race([waitForFiles([`${go}-k`, `${go}-s`]), Promise.all(runs)]);
      } finally {
        // Also when one failed to start: the other must not wait forever.
        writeFileSync(go, '');
      }
    }
    const [run, survived] = await Promise.all(runs);
    expect({ lane: s.lane, trial, mode, k, signal: run!.signal, stderr: run!.stderr }).toEqual({ lane: s.lane, trial, mode, k, signal: 'SIGKILL', stderr: '' });
    if (survived) expect({ lane: s.lane, trial, survivor, code: survived.code, stderr: survived.stderr }).toEqual({ lane: s.lane, trial, survivor, code: 0, stderr: '' });

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
        const repairRun = await runWriter(s.writer, { config, logPath: logPath(`r${trial}`), client: `r${trial}`, seed: 0, mode: 'repair', k: 1 + Math.floor(random() * 6) });
        expect({ lane: s.lane, trial, code: repairRun.code, signal: repairRun.signal, stderr: repairRun.stderr }).toEqual({ lane: s.lane, trial, code: repairRun.signal ? null : 0, signal: repairRun.signal ? 'SIGKILL' : null, stderr: '' });
        repairKilled = repairRun.signal === 'SIGKILL';
      }
      // The index commit is the point of acknowledgement: before any repair, every ack reads back.
      const acks = entries.filter((e) => e.t === 'ack');
      for (const a of acks) expect({ lane: s.lane, trial, tag: a.tag, ov: (await orders.getVersion(a.id, a.ov))?.ov }).toEqual({ lane: s.lane, trial, tag: a.tag, ov: a.ov });

      let secondPass = false;
      let repair = await x.repair();
      // `left` counts what the pass gave up on: records still leased by another process at its end among them.
      let pendingAfterRepair = await pendingOutbox(x);
      if (pendingAfterRepair > 0 && s.diagnose) console.log(`[reliability] lane ${s.lane} trial ${trial}: the repair left ${pendingAfterRepair} records: ${JSON.stringify(await s.diagnose())}`);
      if (s.backend.kind === 'postgres' && repair.failed === 0 && repair.left > 0) {
        // A PostgreSQL server cannot tell that a killed process is gone, so its sync lease lasts
        // until it runs out (6 s here); a killed repair's lease, taken just before the first
        // pass began, can outlast that pass's wait by a moment. One more pass once it has run
        // out must take the rest: anything still left then is a finding.
        await new Promise((resolve) => setTimeout(resolve, LEASE_RUNS_OUT_MS));
        repair = await x.repair();
        pendingAfterRepair = await pendingOutbox(x);
        secondPass = true;
      }
      expect({ lane: s.lane, trial, failed: repair.failed, left: repair.left, pendingAfterRepair }).toEqual({ lane: s.lane, trial, failed: 0, left: 0, pendingAfterRepair: 0 });

      const trialEntries = [...entries, ...survivorEntries];
      const scope = new Set(trialEntries.flatMap((e) => (e.t === 'ack' ? [e.id] : e.t === 'intent' && e.id ? [e.id] : [])));
      const ours = (tag: string) => tag.startsWith(`${client}:`) || (survivor !== undefined && tag.startsWith(`${survivor}:`));
      const report = await checkHistory({ orders, logs, blobRoot, scope, seed: s.seed + trial, probeTags: ours, fromOv: checkedUpTo, concurrency: s.checkConcurrency ?? 1 });
      for (const [id, head] of report.heads) checkedUpTo.set(id, head + 1);
      if (report.problems.length > 0) findings.push({ lane: s.lane, trial, mode, k, survivor: survivor !== undefined, problems: report.problems });
      for (const key of ['versions', 'ackedChecked', 'asOfQueries', 'blobObjects'] as const) totals[key] += report.figures[key];
      const rejected = survivorEntries.filter((e) => e.t === 'reject').length + entries.filter((e) => e.t === 'reject').length;
      outcomes.push({ trial, mode, k, survivor: survivor !== undefined, repairKilled, acked: acks.length, survivorAcked: survivorEntries.filter((e) => e.t === 'ack').length, rejected, pendingAtRestart, repaired: repair.synced, secondPass, inFlight: report.inFlightApplied.some((tag) => tag.startsWith(`${client}:`)) });
    } finally {
      await x.shutdown();
    }
  }

  // Every record and every log, once more, after the last trial.
  const x = initXronox(config);
  try {
    const orders = x.with(ordersRoute) as Collection;
    const final = await checkHistory({ orders, logs, blobRoot, seed: s.seed, concurrency: s.checkConcurrency ?? 1 });
    const verified = await orders.verifyCollection();
    return { outcomes, findings, totals, final, verified };
  } finally {
    await x.shutdown();
  }
}

/** Prints the figures of every lane together (`[reliability] …`) and holds them to what the checker demands. */
export function expectCrashHolds(run: { label: string; seed: number; scale: number }, lanes: readonly LaneResult[]): void {
  const outcomes = lanes.flatMap((l) => l.outcomes);
  const findings = lanes.flatMap((l) => l.findings);
  const sum = <T extends object>(pick: (l: LaneResult) => T, key: keyof T) => lanes.reduce((a, l) => a + Number(pick(l)[key]), 0);
  const totals = (key: keyof LaneResult['totals']) => sum((l) => l.totals, key);
  const final = (key: keyof CheckFigures) => sum((l) => l.final.figures, key);
  const byMode = Object.fromEntries(
    KILL_MODES.map((mode) => {
      const of = outcomes.filter((o) => o.mode === mode);
      return [mode, { trials: of.length, pendingAtRestart: of.filter((o) => o.pendingAtRestart > 0).length, inFlightApplied: of.filter((o) => o.inFlight).length, withSurvivor: of.filter((o) => o.survivor).length }];
    }),
  );
  const betweenCommitAndBlob = outcomes.filter((o) => o.pendingAtRestart > 0).length;
  const finalProblems = lanes.flatMap((l) => l.final.problems);
  // The next writer proceeds: what a killed writer left (its sessions, row locks, leases) never
  // keeps the writers of the next trial from committing.
  const stalled = outcomes.filter((o) => o.acked + o.survivorAcked + (o.inFlight ? 1 : 0) === 0).map((o) => o.trial);
  console.log(
    `[reliability] ${run.label}: seed ${run.seed}, scale ${run.scale}: ${outcomes.length} trials${lanes.length > 1 ? ` in ${lanes.length} lanes side by side` : ''}, ${outcomes.length} SIGKILLs; ` +
      `${betweenCommitAndBlob} landed between an index commit and its blob writes (outbox non-empty at restart: ${outcomes.reduce((a, o) => a + o.pendingAtRestart, 0)} records, ` +
      `repair synced ${outcomes.reduce((a, o) => a + o.repaired, 0)}); ${final('inFlightApplied')} committed writes the killed writer never acknowledged (allowed: in flight); ` +
      `by kind ${JSON.stringify(byMode)}; ${outcomes.reduce((a, o) => a + o.acked, 0)} acknowledged writes by killed writers; ` +
      `${outcomes.filter((o) => o.repairKilled).length} repair processes killed mid-repair (${outcomes.filter((o) => o.repairKilled === false).length} more finished before their kill point); ` +
      `${outcomes.filter((o) => o.secondPass).length} second repair passes after a dead process's lease ran out; ` +
      `${outcomes.filter((o) => o.survivor).length} trials with a second writer beside the killed one (${SURVIVOR_OPS} ops each), ${outcomes.reduce((a, o) => a + o.rejected, 0)} writes rejected by optimistic locking; ` +
      `per-trial checks: ${totals('ackedChecked')} acknowledged writes, ${totals('versions')} versions, ${totals('asOfQueries')} getAsOf answers, ${totals('blobObjects')} blob objects; ` +
      `final check: ${final('records')} records, ${final('versions')} versions, ${final('ackedChecked')} acknowledged writes (lost: ${finalProblems.filter((p) => p.startsWith('lost')).length}), ` +
      `${final('asOfQueries')} getAsOf answers, ${final('blobObjects')} blob objects, ${final('tempFiles')} temp files left by killed puts; ` +
      `hash chains: ${sum((l) => l.verified, 'versions')} versions, ok ${lanes.every((l) => l.verified.ok)}; ` +
      `trials whose writers committed nothing: ${stalled.length}; trials with findings: ${findings.length}; problems in the final check: ${finalProblems.length}`,
  );
  for (const f of findings) console.log(`[reliability] ${run.label} finding: ${JSON.stringify(f)}`);
  expect(findings).toEqual([]);
  expect(finalProblems).toEqual([]);
  expect(stalled).toEqual([]);
  expect(lanes.flatMap((l) => l.verified.broken)).toEqual([]);
  // The trials really hit the window between the commit and the blob write, and crashed recoveries.
  expect(betweenCommitAndBlob).toBeGreaterThan(0);
  expect(outcomes.filter((o) => o.repairKilled).length).toBeGreaterThan(0);
  // Alone, a writer killed right after an ack always leaves that write's blobs to the repair
  // (beside another writer, that writer may sync the record first).
  const aloneAfterAck = outcomes.filter((o) => o.mode === 'after-ack' && !o.survivor);
  expect(aloneAfterAck.filter((o) => o.pendingAtRestart > 0)).toEqual(aloneAfterAck);
  // And the window between the commit and the ack: committed, never acknowledged, still whole.
  expect(byMode['after-commit']!.inFlightApplied).toBe(byMode['after-commit']!.trials);
}

async function waitForFiles(paths: readonly string[]): Promise<void> {
  while (!paths.every((p) => existsSync(p))) await new Promise((r) => setTimeout(r, 5));
}

/**
 * Runs the writer; with `killAfterAcks`, sends SIGKILL once that many ack lines arrived, after
 * spinning `spinMs` (a sub-millisecond to two-millisecond delay timers cannot give).
 */
export function runWriter(writer: string, args: CrashWriterArgs, options: { killAfterAcks?: number; spinMs?: number } = {}): Promise<{ signal: NodeJS.Signals | null; code: number | null; stderr: string }> {
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
