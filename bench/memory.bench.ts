/**
 * Memory while ingesting: peak RSS of a process that writes 1,000,000 versions through the
 * embedded default (see BENCHMARKS.md, "Memory while ingesting").
 *
 *   npx tsx bench/memory.bench.ts          (or: npm run bench:memory)
 *
 * Knobs (environment): BENCH_MEMORY_TOTAL (versions, default 1000000), BENCH_MEMORY_EVERY (checkpoint
 * interval, default 100000), BENCH_MEMORY_MODES (comma-separated, default `createMany`; also
 * `updates`), BENCH_KEEP=1 keeps the temp folders.
 *
 * The writer runs in a child process (bench/support/memory-ingest.ts), so this process's own
 * memory is not counted. The child reports `process.memoryUsage()` at every checkpoint; this
 * process also reads the child's VmRSS from /proc every 200 ms, so a peak between checkpoints is
 * not missed. Bounded memory = RSS flat after the warm-up, whatever the number of versions.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describeMachine, envInt, loadAverage } from './support/machine.js';
import { fmtNumber, markdownTable, now, secondsSince } from './support/measure.js';
import type { Checkpoint } from './support/memory-ingest.js';

const TOTAL = envInt('BENCH_MEMORY_TOTAL', 1_000_000, 2000);
const EVERY = envInt('BENCH_MEMORY_EVERY', 100_000, 1000);
const MODES = (process.env.BENCH_MEMORY_MODES ?? 'createMany').split(',').map((m) => m.trim()).filter(Boolean);
const CHILD = fileURLToPath(new URL('./support/memory-ingest.ts', import.meta.url));
const runStart = now();

interface Row extends Checkpoint {
  /** Highest VmRSS this process saw since the previous checkpoint. */
  sampledPeakMiB: number;
}

function log(message: string): void {
  console.log(`[${secondsSince(runStart).toFixed(1).padStart(7)} s] ${message}`);
}

/** VmRSS of a process in MiB, or 0 once it is gone. */
function vmRss(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

async function ingest(mode: string): Promise<{ rows: Row[]; seconds: number; checks: string }> {
  const dir = await mkdtemp(join(os.tmpdir(), 'xronox-memory-'));
  log(`${mode}: ${TOTAL} versions into ${dir}`);
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
    env: { ...process.env, MEMORY_DIR: dir, MEMORY_TOTAL: String(TOTAL), MEMORY_EVERY: String(EVERY), MEMORY_MODE: mode },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const rows: Row[] = [];
  let peakSinceLast = 0;
  const sampler = setInterval(() => {
    peakSinceLast = Math.max(peakSinceLast, vmRss(child.pid!));
  }, 200);
  let checks = 'the child reported no result';
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    const point = JSON.parse(line) as Checkpoint;
    const row: Row = { ...point, sampledPeakMiB: Math.max(peakSinceLast, point.rssMiB) };
    peakSinceLast = 0;
    rows.push(row);
    if (point.checks !== undefined) checks = point.checks;
    log(`  ${point.kind} ${point.versions.toLocaleString('en-US').padStart(9)} versions at ${point.seconds.toFixed(1)} s: rss ${point.rssMiB.toFixed(0)} MiB (peak sampled ${row.sampledPeakMiB.toFixed(0)}), heap ${point.heapUsedMiB.toFixed(0)} MiB, sqlite ${point.sqliteMiB.toFixed(0)} MiB`);
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearInterval(sampler);
  if (code !== 0) checks = `child exited with ${code}: ${checks}`;
  const seconds = rows[rows.length - 1]?.seconds ?? Number.NaN;
  log(`  checks: ${checks}`);
  folders.push(dir);
  return { rows, seconds, checks };
}

/** Folders to remove once the report is out: millions of files take many minutes to delete. */
const folders: string[] = [];

const machine = describeMachine(os.tmpdir());
const results: Array<[string, Awaited<ReturnType<typeof ingest>>]> = [];
for (const mode of MODES) results.push([mode, await ingest(mode)]);

console.log();
console.log('Machine');
for (const line of machine) console.log(`  ${line}`);
console.log(`Command    npx tsx bench/memory.bench.ts${process.env.BENCH_MEMORY_TOTAL || process.env.BENCH_MEMORY_MODES ? ` (BENCH_MEMORY_TOTAL=${TOTAL} BENCH_MEMORY_MODES=${MODES.join(',')})` : ''}`);
console.log('Durability SQLite WAL synchronous=FULL (fsync per commit); blob files fsynced (temp file, rename, directory fsync)');
console.log();
const describe: Record<string, string> = {
  createMany: 'new records, createMany batches of 1,000 (one index commit per batch), ~1 KB each',
  updates: '1,000 records updated round-robin by 16 writers, ~1 KB each; history per record grows to total / 1,000',
};
for (const [mode, r] of results) {
  console.log(`${mode}: ${describe[mode] ?? mode}`);
  console.log();
  console.log(
    markdownTable(
      ['versions', 'elapsed', 'RSS at checkpoint', 'peak RSS sampled since previous', 'V8 heap used', 'SQLite file + WAL'],
      r.rows.map((row) => [
        row.kind === 'checkpoint' ? row.versions.toLocaleString('en-US') : `${row.versions.toLocaleString('en-US')} (${row.kind === 'flushed' ? 'after flush()' : 'after shutdown()'})`,
        `${row.seconds.toFixed(1)} s`,
        `${row.rssMiB.toFixed(0)} MiB`,
        `${row.sampledPeakMiB.toFixed(0)} MiB`,
        `${row.heapUsedMiB.toFixed(0)} MiB`,
        `${row.sqliteMiB.toFixed(0)} MiB`,
      ]),
    ),
  );
  const peak = Math.max(...r.rows.map((row) => Math.max(row.maxRssMiB, row.sampledPeakMiB)));
  console.log();
  console.log(`peak RSS (getrusage maxRSS of the child) ${peak.toFixed(0)} MiB; ${fmtNumber(TOTAL / r.seconds)} versions/s end to end over ${r.seconds.toFixed(1)} s; checks: ${r.checks}`);
  console.log();
}
console.log(`Load average at end: ${loadAverage()}`);
console.log(`Total run time: ${secondsSince(runStart).toFixed(1)} s (before removing the folders)`);
if (results.some(([, r]) => !r.checks.startsWith('ok'))) process.exitCode = 1;
if (process.env.BENCH_KEEP !== '1') {
  // rm(1) rather than fs.rm: Node's recursive removal of 2,000,000 files grew to 3.6 GiB of RSS.
  for (const dir of folders) execFileSync('rm', ['-rf', '--', dir]);
  log('removed the folders');
}
