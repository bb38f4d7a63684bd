/**
 * Engine benchmark, side by side with a raw baseline (see BENCHMARKS.md).
 *
 *   npx tsx bench/engine.bench.ts          (or: npm run bench)
 *
 * Knobs (environment): BENCH_N (writes per side per write phase, default 5000), BENCH_VERSIONS (versions
 * of the deep record, default 100000), BENCH_QUERIES (samples per read measurement, default 5000),
 * BENCH_KEEP=1 keeps the temp folder.
 *
 * Both sides use one SQLite file (WAL, synchronous=FULL) and fsync every blob file (temp file +
 * fsync + rename + directory fsync). The engine acknowledges a write after its index commit and
 * writes blob files in the background; `flush()` waits for them. The baseline writes the same
 * record-document bytes in the caller's critical path.
 *
 * The machine may be shared, so engine and baseline are measured in alternation: each write
 * phase runs in rounds (engine, baseline, baseline index-only, in a rotating order, `sync` before
 * each), and read latencies interleave engine and baseline calls one by one.
 */
import { execSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { type Collection, initXronox } from '../core/index.js';
import { fmtLatency, fmtNumber, fmtRate, fmtRatio, inFlight, type Latency, latencyInterleaved, markdownTable, now, progressLog, randomInstants, rate, secondsSince, summarise, type Throughput } from './support/measure.js';
import { RawBaseline } from './support/raw-baseline.js';
import { makeData } from './support/document.js';

const N = envInt('BENCH_N', 5000);
const VERSIONS = envInt('BENCH_VERSIONS', 100_000);
const QUERIES = envInt('BENCH_QUERIES', 5000);
const HISTORY_QUERIES = Math.max(100, Math.floor(QUERIES / 5));
const WORKERS = 16;
const ROUNDS = 3;
const WARMUP = 300;
const READ_WARMUP = 500;
const ACTOR = 'bench';
const REASON = 'benchmark';
const TENANT = 'bench';
const DB_NAME = 'rt_bench';

const runStart = now();
const loadBefore = os.loadavg();
const dir = await mkdtemp(join(os.tmpdir(), 'xronox-bench-'));
const sqlitePath = join(dir, 'xronox.sqlite');
const backgroundErrors: unknown[] = [];
const xronox = initXronox(
  {
    dbConnections: { local: { sqlitePath } },
    databases: { runtime: { tenantDatabases: [{ tenantId: TENANT, dbConnRef: 'local', dbName: DB_NAME }] } },
    localStorage: { basePath: join(dir, 'blobs'), enabled: true },
  },
  { onBackgroundError: (err) => backgroundErrors.push(err) },
);
const collection = (name: string): Collection => xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: TENANT, collection: name });
// Opening a collection opens the SQLite file and creates the engine's schema; the baseline then
// opens the same file with its own connection and its own tables.
collection('warmup');
const raw = new RawBaseline({ sqlitePath, blobBasePath: join(dir, 'raw-blobs'), bucket: DB_NAME });


const log = progressLog(runStart, { rss: true });

/** Flushes dirty pages (ours and other processes') so one side does not pay for the other's writes. */
async function settle(): Promise<void> {
  execSync('sync');
  await new Promise((r) => setTimeout(r, 100));
}

// ---- write phases -----------------------------------------------------------------------

interface WriteResult {
  /** Engine, until the last write was acknowledged (index commit). */
  engineAcked: Throughput;
  /** Engine, until the blob files of every write were on disk (loop + flush). */
  engineEndToEnd: Throughput;
  engineFlushSeconds: number;
  /** Baseline: transaction, then both files, in the critical path. */
  rawFull: Throughput;
  /** Baseline: the transaction alone (no files). */
  rawIndex: Throughput;
}

interface WriteOps {
  engine: (i: number) => Promise<unknown>;
  rawFull: (i: number) => Promise<unknown>;
  rawIndex: (i: number) => Promise<unknown>;
}

/** Runs `total` writes per side in `ROUNDS` rounds, the three sides alternating in a rotating order. */
async function writePhase(label: string, total: number, workers: number, ops: WriteOps): Promise<WriteResult> {
  log(`${label} (${total} per side, ${workers === 1 ? 'sequential awaits' : `${workers} in flight`})`);
  const per = Math.ceil(total / ROUNDS);
  const time = { ack: 0, e2e: 0, flush: 0, full: 0, index: 0 };
  const sides = ['engine', 'rawFull', 'rawIndex'] as const;
  for (let round = 0; round < ROUNDS; round++) {
    const from = round * per;
    const count = Math.min(total, from + per) - from;
    for (let k = 0; k < sides.length; k++) {
      const side = sides[(k + round) % sides.length]!;
      await xronox.flush();
      await settle();
      const start = now();
      await inFlight(count, workers, (i) => ops[side](from + i));
      const end = now();
      if (side === 'engine') {
        const report = await xronox.flush();
        if (report.failed > 0) throw new Error(`blob sync failed for ${report.failed} records`);
        const done = now();
        time.ack += secondsSince(start, end);
        time.e2e += secondsSince(start, done);
        time.flush += secondsSince(end, done);
      } else if (side === 'rawFull') time.full += secondsSince(start, end);
      else time.index += secondsSince(start, end);
    }
  }
  return {
    engineAcked: rate(total, time.ack),
    engineEndToEnd: rate(total, time.e2e),
    engineFlushSeconds: time.flush,
    rawFull: rate(total, time.full),
    rawIndex: rate(total, time.index),
  };
}

/** Ids written by the create phases, per side, reused by the update phases. */
interface Ids {
  engine: string[];
  rawFull: string[];
  rawIndex: string[];
}

function createOps(coll: string, ids: Ids): WriteOps {
  const e = collection(coll);
  return {
    engine: async (i) => {
      ids.engine[i] = (await e.create(makeData(i), ACTOR, REASON)).id;
    },
    rawFull: async (i) => {
      ids.rawFull[i] = (await raw.create(coll, makeData(i), true)).id;
    },
    rawIndex: async (i) => {
      ids.rawIndex[i] = (await raw.create(`${coll}_idx`, makeData(i), false)).id;
    },
  };
}

/** Moves every record of `ids` from ov 0 to ov 1. */
function updateOps(coll: string, ids: Ids): WriteOps {
  const e = collection(coll);
  return {
    engine: (i) => e.update(ids.engine[i]!, makeData(i + 1), 0, ACTOR, REASON),
    rawFull: (i) => raw.update(coll, ids.rawFull[i]!, makeData(i + 1), 0, true),
    rawIndex: (i) => raw.update(`${coll}_idx`, ids.rawIndex[i]!, makeData(i + 1), 0, false),
  };
}

/** Write `i` moves one record per side from ov `i` to `i + 1` (sequential only). */
async function hotRecordOps(coll: string): Promise<WriteOps> {
  const e = collection(coll);
  const engineId = (await e.create(makeData(0), ACTOR, REASON)).id;
  const fullId = (await raw.create(coll, makeData(0), true)).id;
  const indexId = (await raw.create(`${coll}_idx`, makeData(0), false)).id;
  return {
    engine: (i) => e.update(engineId, makeData(i + 1), i, ACTOR, REASON),
    rawFull: (i) => raw.update(coll, fullId, makeData(i + 1), i, true),
    rawIndex: (i) => raw.update(`${coll}_idx`, indexId, makeData(i + 1), i, false),
  };
}

const newIds = (): Ids => ({ engine: [], rawFull: [], rawIndex: [] });

// ---- deep records -----------------------------------------------------------------------

interface Seeded {
  id: string;
  /** `at` of every version, by ov. */
  times: string[];
}

interface EngineSeed {
  rec: Seeded;
  ackSeconds: number;
  flushSeconds: number;
  /** Acknowledged updates/s per tenth of the versions. */
  tenths: number[];
}

/**
 * Seeds a record with `versions` versions through the engine's public API: one create, then
 * sequential `update`s, each awaited (default durability). Flushes after each tenth, so the
 * blob sync time is counted, and so that a slowdown with depth would show per tenth.
 */
async function seedEngine(coll: Collection, versions: number, progress: boolean): Promise<EngineSeed> {
  await xronox.flush();
  await settle();
  let ackSeconds = 0;
  let flushSeconds = 0;
  const tenths: number[] = [];
  let start = now();
  const created = await coll.create(makeData(0), ACTOR, REASON);
  const times = [created.createdAt];
  const step = Math.max(1, Math.ceil(versions / 10));
  for (let ov = 1; ov < versions; ov++) {
    times.push((await coll.update(created.id, makeData(ov), ov - 1, ACTOR, REASON)).updatedAt);
    if ((ov + 1) % step === 0 || ov === versions - 1) {
      const acked = now();
      await xronox.flush();
      const flushed = now();
      ackSeconds += secondsSince(start, acked);
      flushSeconds += secondsSince(acked, flushed);
      const done = ((ov + 1) % step || step) as number;
      tenths.push(done / secondsSince(start, acked));
      if (progress) {
        log(`  engine: ${ov + 1} versions; last ${done}: ${fmtNumber(done / secondsSince(start, acked))} acknowledged updates/s, then flush ${secondsSince(acked, flushed).toFixed(1)} s`);
      }
      start = now();
    }
  }
  return { rec: { id: created.id, times }, ackSeconds, flushSeconds, tenths };
}

/** Baseline deep record: created through the write path, the rest bulk-loaded (read benchmarks only). */
async function seedRaw(coll: string, versions: number): Promise<{ rec: Seeded; seconds: number }> {
  const start = now();
  const created = await raw.create(coll, makeData(0), true);
  const times = [created.at, ...raw.bulkAppend(coll, created.id, 0, versions - 1, makeData)];
  return { rec: { id: created.id, times }, seconds: secondsSince(start) };
}

/**
 * An ISO time with its fraction padded to microseconds. The engine stamps versions to the
 * microsecond (`…05.678901Z`); the baseline and the sampled instants have milliseconds
 * (`…05.678Z`). Compared as raw strings, `…05.678901Z` would sort before `…05.678Z`.
 */
function toMicroIso(t: string): string {
  return t.replace(/\.(\d{1,6})Z$/, (_, f: string) => `.${f.padEnd(6, '0')}Z`);
}

/** The ov whose time is the newest at or before `at` (times strictly increase), or -1. */
function expectedOv(times: readonly string[], at: string): number {
  const target = toMicroIso(at);
  let lo = 0;
  let hi = times.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (toMicroIso(times[mid]!) <= target) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

interface Reads {
  engineAsOf: Latency;
  rawAsOf: Latency;
  rawAsOfFile: Latency;
  engineHistory: Latency;
  rawHistory: Latency;
}

async function measureReads(coll: Collection, rawColl: string, e: Seeded, r: Seeded): Promise<Reads> {
  const eTimes = randomInstants(e.times[0]!, e.times[e.times.length - 1]!, QUERIES + READ_WARMUP);
  const rTimes = randomInstants(r.times[0]!, r.times[r.times.length - 1]!, QUERIES + READ_WARMUP);
  // Correctness first: every answer must be the version the recorded times predict.
  for (const at of eTimes.slice(0, 500)) {
    const got = await coll.getAsOf(e.id, at);
    if ((got?.ov ?? -1) !== expectedOv(e.times, at)) throw new Error(`engine getAsOf(${at}) returned ov ${got?.ov}, expected ${expectedOv(e.times, at)}`);
  }
  for (const at of rTimes.slice(0, 500)) {
    const got = (await raw.getAsOf(rawColl, r.id, at)) as { ov: number } | null;
    const fromFile = (await raw.getAsOfFromFile(rawColl, r.id, at)) as { ov: number } | null;
    if ((got?.ov ?? -1) !== expectedOv(r.times, at) || fromFile?.ov !== got?.ov) throw new Error(`raw getAsOf(${at}) disagrees`);
  }
  const asOf = (offset: number) => [
    (i: number) => coll.getAsOf(e.id, eTimes[offset + i]!),
    (i: number) => raw.getAsOf(rawColl, r.id, rTimes[offset + i]!),
    (i: number) => raw.getAsOfFromFile(rawColl, r.id, rTimes[offset + i]!),
  ];
  const history = [() => coll.history(e.id), () => raw.history(rawColl, r.id)];
  await latencyInterleaved(READ_WARMUP, asOf(0));
  const [engineAsOf, rawAsOf, rawAsOfFile] = await latencyInterleaved(QUERIES, asOf(READ_WARMUP));
  await latencyInterleaved(READ_WARMUP, history);
  const [engineHistory, rawHistory] = await latencyInterleaved(HISTORY_QUERIES, history);
  return { engineAsOf: engineAsOf!, rawAsOf: rawAsOf!, rawAsOfFile: rawAsOfFile!, engineHistory: engineHistory!, rawHistory: rawHistory! };
}

interface UpdateLatencies {
  engineAck: Latency;
  engineEndToEnd: Latency;
  raw: Latency;
}

/**
 * One more version on an existing record, one at a time: the engine's acknowledgement, then its
 * `flush()` (the record's blob sync), against the baseline's transaction + 2 files. Interleaved.
 */
async function measureUpdateLatency(coll: Collection, rawColl: string, e: Seeded, r: Seeded, samples: number): Promise<UpdateLatencies> {
  let eOv = e.times.length - 1;
  let rOv = r.times.length - 1;
  const ack = new Float64Array(samples);
  const e2e = new Float64Array(samples);
  const rawTimes = new Float64Array(samples);
  await xronox.flush();
  for (let i = 0; i < samples; i++) {
    const start = now();
    await coll.update(e.id, makeData(eOv + 1), eOv, ACTOR, REASON);
    const acked = now();
    await xronox.flush();
    const done = now();
    eOv++;
    ack[i] = Number(acked - start) / 1e3;
    e2e[i] = Number(done - start) / 1e3;
    const rawStart = now();
    await raw.update(rawColl, r.id, makeData(rOv + 1), rOv, true);
    rawTimes[i] = Number(now() - rawStart) / 1e3;
    rOv++;
  }
  return { engineAck: summarise(ack), engineEndToEnd: summarise(e2e), raw: summarise(rawTimes) };
}

// ---- run --------------------------------------------------------------------------------

const cpus = os.cpus();
const machine = [
  `cpu      ${cpus[0]?.model ?? 'unknown'} × ${cpus.length}`,
  `memory   ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
  `os       ${os.type()} ${os.release()} (${os.arch()})`,
  `node     ${process.version}`,
  `sqlite   ${raw.sqliteVersion} (better-sqlite3), journal_mode=WAL, synchronous=FULL`,
  `disk     ${describeDisk(dir)}`,
  `load     ${loadBefore.map((l) => l.toFixed(2)).join(' ')} (1/5/15 min average at start)`,
];
console.log('Machine');
for (const line of machine) console.log(`  ${line}`);
console.log(`Command    npx tsx bench/engine.bench.ts${envSuffix()}`);
console.log(`Sizes      N=${N} writes per side per write phase (${ROUNDS} alternating rounds), ${WORKERS} writers when concurrent,`);
console.log(`           deep record ${VERSIONS} versions, ${QUERIES} getAsOf and ${HISTORY_QUERIES} history samples per measurement,`);
console.log(`           warm-up ${WARMUP} writes / ${READ_WARMUP} reads, data ${Buffer.byteLength(JSON.stringify(makeData(0)))} B of JSON per write`);
console.log(`Folder     ${dir}`);
console.log();

log('warm-up');
{
  const warmIds = newIds();
  await writePhase('  warm-up creates', WARMUP, 1, createOps('warmup', warmIds));
  await writePhase('  warm-up updates', WARMUP, WORKERS, updateOps('warmup', warmIds));
  const warm = collection('warmup');
  for (const id of warmIds.engine.slice(0, 100)) {
    await warm.getAsOf(id, new Date().toISOString());
    await warm.history(id);
  }
}

const seqIds = newIds();
const parIds = newIds();
const createSeq = await writePhase('create, sequential', N, 1, createOps('seq', seqIds));
const createPar = await writePhase(`create, ${WORKERS} in flight`, N, WORKERS, createOps('par', parIds));
const updateSeq = await writePhase('update, sequential', N, 1, updateOps('seq', seqIds));
const updatePar = await writePhase(`update, ${WORKERS} in flight`, N, WORKERS, updateOps('par', parIds));
const updateHot = await writePhase('update, one hot record, sequential', N, 1, await hotRecordOps('hot'));

log('record with 10 versions');
const deep = collection('deep');
const eShallow = await seedEngine(deep, 10, false);
const rShallow = await seedRaw('deep', 10);

log(`record with ${VERSIONS} versions: seeding through the engine's update API (sequential awaits, synchronous=FULL)`);
const eDeep = await seedEngine(deep, VERSIONS, true);
log(`  engine: ${VERSIONS} versions: ${eDeep.ackSeconds.toFixed(1)} s acknowledging + ${eDeep.flushSeconds.toFixed(1)} s waiting for flush()`);
log(`record with ${VERSIONS} versions: baseline bulk load (index rows in transactions of 1,000, files without fsync)`);
const rDeep = await seedRaw('deep', VERSIONS);
log(`  raw: ${VERSIONS} versions in ${rDeep.seconds.toFixed(1)} s`);

log('reads: getAsOf and history, 10 versions');
const reads10 = await measureReads(deep, 'deep', eShallow.rec, rShallow.rec);
log(`reads: getAsOf and history, ${VERSIONS} versions`);
const readsDeep = await measureReads(deep, 'deep', eDeep.rec, rDeep.rec);
const UPDATE_SAMPLES = 100;
log(`one more version, ${UPDATE_SAMPLES} times: record with 10 versions`);
const update10 = await measureUpdateLatency(deep, 'deep', eShallow.rec, rShallow.rec, UPDATE_SAMPLES);
log(`one more version, ${UPDATE_SAMPLES} times: record with ${VERSIONS} versions`);
const updateDeep = await measureUpdateLatency(deep, 'deep', eDeep.rec, rDeep.rec, UPDATE_SAMPLES);
log('done measuring; shutting down and removing the folder');

// Same bytes on both sides: the version files of equivalent writes have the same size and keys.
const versionFile = (root: string, coll: string, id: string, ov: number) => join(dir, root, DB_NAME, 'versions', coll, id, `v${ov}.json`);
const eFile = versionFile('blobs', 'seq', seqIds.engine[0]!, 1);
const rFile = versionFile('raw-blobs', 'seq', seqIds.rawFull[0]!, 1);
const filesCompared = existsSync(eFile) && existsSync(rFile)
  ? `${statSync(eFile).size} B (engine) vs ${statSync(rFile).size} B (baseline); keys ${Object.keys(JSON.parse(readFileSync(eFile, 'utf8')) as object).join(',')} vs ${Object.keys(JSON.parse(readFileSync(rFile, 'utf8')) as object).join(',')}`
  : `MISSING (${existsSync(eFile) ? '' : eFile} ${existsSync(rFile) ? '' : rFile})`;
const deepLast = versionFile('blobs', 'deep', eDeep.rec.id, VERSIONS - 1);

await xronox.shutdown();
raw.close();
const sqliteBytes = statSync(sqlitePath).size;
// Before removing the folder: recursive removal of 200,000 files is itself memory-hungry.
const peakRssMiB = process.resourceUsage().maxRSS / 1024;
const deepLastExists = existsSync(deepLast);
if (process.env.BENCH_KEEP !== '1') await rm(dir, { recursive: true, force: true });
log('done');

// ---- report -----------------------------------------------------------------------------

const RAW_INDEX = 'raw: SQLite transaction only';
const RAW_FULL = 'raw: transaction + 2 fsynced files';
const rows: string[][] = [];
const writeRows = (label: string, w: WriteResult) => {
  rows.push([`${label}: acknowledged (index commit)`, fmtRate(w.engineAcked), fmtRate(w.rawIndex), RAW_INDEX, fmtRatio(w.engineAcked.opsPerSecond, w.rawIndex.opsPerSecond)]);
  rows.push([`${label}: acknowledged (index commit)`, fmtRate(w.engineAcked), fmtRate(w.rawFull), RAW_FULL, fmtRatio(w.engineAcked.opsPerSecond, w.rawFull.opsPerSecond)]);
  rows.push([`${label}: end-to-end incl. blob sync`, fmtRate(w.engineEndToEnd), fmtRate(w.rawFull), RAW_FULL, fmtRatio(w.engineEndToEnd.opsPerSecond, w.rawFull.opsPerSecond)]);
};
const phases: Array<[string, WriteResult]> = [
  ['create, sequential', createSeq],
  [`create, ${WORKERS} in flight`, createPar],
  ['update, sequential', updateSeq],
  [`update, ${WORKERS} in flight`, updatePar],
  ['update one hot record, sequential', updateHot],
];
for (const [label, w] of phases) writeRows(label, w);
const readRows = (versions: string, r: Reads) => {
  const ratio = (e: Latency, b: Latency) => `${fmtRatio(e.p50, b.p50)} / ${fmtRatio(e.p99, b.p99)}`;
  rows.push([`getAsOf p50 / p99, ${versions} versions`, fmtLatency(r.engineAsOf), fmtLatency(r.rawAsOf), 'raw: indexed SELECT of the body', ratio(r.engineAsOf, r.rawAsOf)]);
  rows.push([`getAsOf p50 / p99, ${versions} versions`, fmtLatency(r.engineAsOf), fmtLatency(r.rawAsOfFile), 'raw: indexed SELECT + read v{ov}.json', ratio(r.engineAsOf, r.rawAsOfFile)]);
  rows.push([`history (newest 50) p50 / p99, ${versions} versions`, fmtLatency(r.engineHistory), fmtLatency(r.rawHistory), 'raw: indexed SELECT, 51 rows', ratio(r.engineHistory, r.rawHistory)]);
};
readRows('10', reads10);
readRows(fmtNumber(VERSIONS), readsDeep);
const updateRows = (versions: string, u: UpdateLatencies) => {
  const ratio = (e: Latency, b: Latency) => `${fmtRatio(e.p50, b.p50)} / ${fmtRatio(e.p99, b.p99)}`;
  rows.push([`1 update p50 / p99, ${versions} versions: acknowledged`, fmtLatency(u.engineAck), fmtLatency(u.raw), RAW_FULL, ratio(u.engineAck, u.raw)]);
  rows.push([`1 update p50 / p99, ${versions} versions: + flush()`, fmtLatency(u.engineEndToEnd), fmtLatency(u.raw), RAW_FULL, ratio(u.engineEndToEnd, u.raw)]);
};
updateRows('10', update10);
updateRows(fmtNumber(VERSIONS), updateDeep);

const flushRows = phases.map(([label, w]) => [
  label,
  `${w.engineFlushSeconds.toFixed(2)} s`,
  `${fmtNumber((w.engineFlushSeconds / w.engineEndToEnd.seconds) * 100)} %`,
]);

console.log();
console.log('Results (ratio = engine / baseline: above 1× is faster for ops/s, slower for latency)');
console.log();
console.log(markdownTable(['operation', 'engine', 'baseline', 'baseline is', 'engine/baseline'], rows));
console.log();
console.log(`Time spent in flush() after the write loops (${N} writes, all rounds together)`);
console.log();
console.log(markdownTable(['phase', 'flush() time', 'share of end-to-end time'], flushRows));
console.log();
const total = eDeep.ackSeconds + eDeep.flushSeconds;
console.log(`Seeding ${VERSIONS} versions of one record through the engine: ${eDeep.ackSeconds.toFixed(1)} s acknowledging`);
console.log(`  (${fmtNumber(VERSIONS / eDeep.ackSeconds)} updates/s) + ${eDeep.flushSeconds.toFixed(1)} s in flush() = ${total.toFixed(1)} s end-to-end (${fmtNumber(VERSIONS / total)} updates/s)`);
console.log(`  acknowledged updates/s per tenth: ${eDeep.tenths.map(fmtNumber).join(', ')}`);
console.log(`  last version file on disk: ${deepLastExists ? 'yes' : 'NO'}; baseline bulk load took ${rDeep.seconds.toFixed(1)} s (untimed for comparison)`);
console.log(`Version files of one update: ${filesCompared}`);
console.log(`SQLite file after the run: ${(sqliteBytes / 2 ** 20).toFixed(1)} MiB; peak RSS ${peakRssMiB.toFixed(0)} MiB; background errors: ${backgroundErrors.length}`);
console.log(`Load average at end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log(`Total run time: ${secondsSince(runStart).toFixed(1)} s`);
if (backgroundErrors.length > 0) {
  console.error(backgroundErrors[0]);
  process.exitCode = 1;
}

function describeDisk(path: string): string {
  try {
    return execSync(`df -hT ${JSON.stringify(path)} | tail -1`, { encoding: 'utf8' }).trim().replace(/\s+/g, ' ');
  } catch {
    return 'unknown';
  }
}

function envSuffix(): string {
  const set = ['BENCH_N', 'BENCH_VERSIONS', 'BENCH_QUERIES'].filter((k) => process.env[k]);
  return set.length ? `   (with ${set.map((k) => `${k}=${process.env[k]}`).join(' ')})` : '';
}

function envInt(name: string, fallback: number): number {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 10) throw new Error(`${name} must be a whole number of at least 10, got ${value}`);
  return n;
}
