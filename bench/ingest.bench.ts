/**
 * Batched ingest: versioned creates per second through `createMany` (one index-store commit per
 * batch) with batches of 1, 100 and 1,000, next to a loop of `create` (see BENCHMARKS.md,
 * "Batched ingest").
 *
 *   npx tsx bench/ingest.bench.ts          (or: npm run bench:ingest)
 *
 * Embedded default (SQLite WAL synchronous=FULL + local folder), ~1 KB documents, one writer.
 * Each side writes BENCH_INGEST_N records in ROUNDS rounds whose order rotates, `sync` and an
 * idle blob sync before each. *Acknowledged* = the write loop alone (index commits). *End to
 * end* = the loop plus `flush()`, until every record's `v0.json` and `current.json` are on disk.
 * A round's records fit under the blob sync's queue bound (10,000 records), so writers never
 * wait for the sync inside the loop; bench/memory.bench.ts measures the sustained rate, where
 * they do.
 *
 * Knobs (environment): BENCH_INGEST_N (records per side, default 9000), BENCH_KEEP=1.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { initXronox } from '../core/index.js';
import { makeData } from './support/document.js';
import { describeMachine, envInt, loadAverage, settle } from './support/machine.js';
import { finishRun, fmtNumber, type Latency, markdownTable, now, progressLog, secondsSince, summarise } from './support/measure.js';

const N = envInt('BENCH_INGEST_N', 9000, 3000);
const ROUNDS = 3;
const TENANT = 'bench';
const runStart = now();
const machine = describeMachine(os.tmpdir());

const log = progressLog(runStart);

const dir = await mkdtemp(join(os.tmpdir(), 'xronox-ingest-'));
const backgroundErrors: unknown[] = [];
const xronox = initXronox(
  {
    dbConnections: { local: { sqlitePath: join(dir, 'xronox.sqlite') } },
    databases: { runtime: { tenantDatabases: [{ tenantId: TENANT, dbConnRef: 'local', dbName: 'rt_ingest' }] } },
    localStorage: { basePath: join(dir, 'blobs'), enabled: true },
  },
  { onBackgroundError: (err) => backgroundErrors.push(err) },
);

interface Side {
  label: string;
  /** Records per call. */
  batch: number;
  collection: string;
  /** One call: writes `count` records starting at `seq`, returns their ids. */
  write: (seq: number, count: number) => Promise<string[]>;
}

const sides: Side[] = [
  { label: 'create(), one record per call', batch: 1, collection: 'single' },
  { label: 'createMany(), batches of 1', batch: 1, collection: 'b1' },
  { label: 'createMany(), batches of 100', batch: 100, collection: 'b100' },
  { label: 'createMany(), batches of 1,000', batch: 1000, collection: 'b1000' },
].map((s) => {
  const coll = xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: TENANT, collection: s.collection });
  const write =
    s.collection === 'single'
      ? async (seq: number) => [(await coll.create(makeData(seq), 'bench', 'ingest')).id]
      : async (seq: number, count: number) => (await coll.createMany(Array.from({ length: count }, (_, i) => makeData(seq + i)), 'bench', 'ingest')).map((r) => r.id);
  return { ...s, write };
});

interface Result {
  ackSeconds: number;
  endToEndSeconds: number;
  /** Per call, µs. */
  calls: number[];
  /** ids[seq] = id of the record written with data seq. */
  ids: string[];
}

const results: Result[] = sides.map(() => ({ ackSeconds: 0, endToEndSeconds: 0, calls: [], ids: [] }));

console.log('Machine');
for (const line of machine) console.log(`  ${line}`);
console.log(`Command    npx tsx bench/ingest.bench.ts${process.env.BENCH_INGEST_N ? ` BENCH_INGEST_N=${N}` : ''}`);
console.log(`Folder     ${dir}`);
console.log();

try {
  log('warm-up: 1,000 records per side');
  for (const side of sides) {
    for (let seq = 0; seq < 1000; seq += side.batch) await side.write(seq, side.batch);
  }
  await xronox.flush();

  const per = Math.ceil(N / ROUNDS);
  for (let round = 0; round < ROUNDS; round++) {
    const from = round * per;
    const to = Math.min(N, from + per);
    for (let k = 0; k < sides.length; k++) {
      const s = (k + round) % sides.length;
      const side = sides[s]!;
      const r = results[s]!;
      await xronox.flush();
      await settle();
      const start = now();
      for (let seq = from; seq < to; seq += side.batch) {
        const count = Math.min(side.batch, to - seq);
        const callStart = now();
        const ids = await side.write(1000 + seq, count);
        r.calls.push(Number(now() - callStart) / 1e3);
        ids.forEach((id, i) => (r.ids[seq + i] = id));
      }
      const acked = now();
      const report = await xronox.flush();
      if (report.failed > 0) throw new Error(`blob sync failed for ${report.failed} records`);
      r.ackSeconds += secondsSince(start, acked);
      r.endToEndSeconds += secondsSince(start);
    }
    log(`round ${round + 1}: ${sides.map((side, s) => `${side.label} ${fmtNumber(to / results[s]!.ackSeconds)}/s`).join('; ')}`);
  }

  // What was measured must be right: every record there once, with its data.
  log('checking every side: counters, distinct ids, a sample of records read back');
  for (let s = 0; s < sides.length; s++) {
    const side = sides[s]!;
    const r = results[s]!;
    const coll = xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: TENANT, collection: side.collection });
    const totals = await xronox.counters.getTotals({ databaseType: 'runtime', tier: 'tenant', tenantId: TENANT, collection: side.collection });
    if (totals.created !== N + 1000) throw new Error(`${side.label}: counters say ${totals.created} created, expected ${N + 1000}`);
    if (new Set(r.ids).size !== N) throw new Error(`${side.label}: ${new Set(r.ids).size} distinct ids for ${N} records`);
    for (let seq = 0; seq < N; seq += 97) {
      const got = await coll.getLatest(r.ids[seq]!);
      if ((got?.data as { seq?: number } | undefined)?.seq !== 1_000_000 + 1000 + seq) throw new Error(`${side.label}: record ${seq} reads back wrong`);
    }
  }
} finally {
  await xronox.shutdown();
  if (process.env.BENCH_KEEP !== '1') await rm(dir, { recursive: true, force: true });
}

const single = results[0]!;
const lat = (l: Latency) => `${fmtNumber(l.p50 / 1000)} / ${fmtNumber(l.p99 / 1000)} ms`;
console.log();
console.log(`Versioned creates, ~1 KB each, one writer, ${N} records per side in ${ROUNDS} rounds (ratio = side / create() loop)`);
console.log();
console.log(
  markdownTable(
    ['how', 'index commits', 'creates/s acknowledged', 'creates/s end to end (incl. flush)', 'per call p50 / p99', 'acknowledged vs create()', 'end to end vs create()'],
    sides.map((side, s) => {
      const r = results[s]!;
      return [
        side.label,
        (Math.ceil(N / ROUNDS / side.batch) * ROUNDS).toLocaleString('en-US'),
        `${fmtNumber(N / r.ackSeconds)} /s`,
        `${fmtNumber(N / r.endToEndSeconds)} /s`,
        lat(summarise(Float64Array.from(r.calls))),
        `${(single.ackSeconds / r.ackSeconds).toFixed(2)}×`,
        `${(single.endToEndSeconds / r.endToEndSeconds).toFixed(2)}×`,
      ];
    }),
  ),
);
console.log();
console.log(`Share of end-to-end time in flush(): ${sides.map((side, s) => `${side.label} ${(100 * (1 - results[s]!.ackSeconds / results[s]!.endToEndSeconds)).toFixed(1)} %`).join('; ')}`);
finishRun(runStart, backgroundErrors, loadAverage());
