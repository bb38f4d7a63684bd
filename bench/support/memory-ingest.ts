/**
 * Child process of bench/memory.bench.ts: ingests versions into a fresh embedded Xronox and
 * prints one JSON line per checkpoint on stdout. Run alone only for debugging:
 *
 *   MEMORY_DIR=/tmp/x MEMORY_TOTAL=100000 npx tsx bench/support/memory-ingest.ts
 *
 * MEMORY_MODE=createMany (default): new records, `createMany` batches of 1,000 (each version is a
 * new record's first). MEMORY_MODE=updates: 1,000 records updated round-robin by 16 writers, so
 * every record's history grows to MEMORY_TOTAL / 1,000 versions.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { initXronox } from '../../core/index.js';
import { makeData } from './document.js';
import { inFlight, now, secondsSince } from './measure.js';

export interface Checkpoint {
  kind: 'checkpoint' | 'flushed' | 'done';
  versions: number;
  seconds: number;
  rssMiB: number;
  maxRssMiB: number;
  heapUsedMiB: number;
  externalMiB: number;
  sqliteMiB: number;
  /** Only on `done`. */
  checks?: string;
}

const dir = required('MEMORY_DIR');
const total = Number(process.env.MEMORY_TOTAL ?? 1_000_000);
const every = Number(process.env.MEMORY_EVERY ?? 100_000);
const mode = process.env.MEMORY_MODE ?? 'createMany';
const BATCH = 1000;
const RECORDS = 1000;
const WRITERS = 16;
const TENANT = 'mem';
const sqlitePath = join(dir, 'xronox.sqlite');

const backgroundErrors: unknown[] = [];
const xronox = initXronox(
  {
    dbConnections: { local: { sqlitePath } },
    databases: { runtime: { tenantDatabases: [{ tenantId: TENANT, dbConnRef: 'local', dbName: 'rt_mem' }] } },
    localStorage: { basePath: join(dir, 'blobs'), enabled: true },
  },
  { onBackgroundError: (err) => backgroundErrors.push(err) },
);
const coll = xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: TENANT, collection: 'ingest' });
const start = now();
let versions = 0;
let nextMark = every;

function emit(kind: Checkpoint['kind'], checks?: string): void {
  const mem = process.memoryUsage();
  let sqliteMiB = 0;
  for (const suffix of ['', '-wal']) {
    try {
      sqliteMiB += statSync(sqlitePath + suffix).size / 2 ** 20;
    } catch {
      // no WAL right after a checkpoint
    }
  }
  const line: Checkpoint = {
    kind,
    versions,
    seconds: secondsSince(start),
    rssMiB: mem.rss / 2 ** 20,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    heapUsedMiB: mem.heapUsed / 2 ** 20,
    externalMiB: (mem.external + mem.arrayBuffers) / 2 ** 20,
    sqliteMiB,
    ...(checks !== undefined ? { checks } : {}),
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function counted(n: number): void {
  versions += n;
  while (versions >= nextMark) {
    emit('checkpoint');
    nextMark += every;
  }
}

emit('checkpoint');
const sampleIds: string[] = [];
if (mode === 'createMany') {
  for (let done = 0; done < total; done += BATCH) {
    const size = Math.min(BATCH, total - done);
    const created = await coll.createMany(Array.from({ length: size }, (_, i) => makeData(done + i)), 'bench', 'ingest');
    if (done % (BATCH * 97) === 0) sampleIds.push(created[0]!.id);
    counted(size);
  }
} else if (mode === 'updates') {
  const ids = (await coll.createMany(Array.from({ length: RECORDS }, (_, i) => makeData(i)), 'bench', 'ingest')).map((r) => r.id);
  counted(RECORDS);
  const ovs = new Array<number>(RECORDS).fill(0);
  // Writer w owns records w, w + 16, …, so no two writers race on one record.
  await inFlight(total - RECORDS, WRITERS, async (i) => {
    const r = i % RECORDS;
    await coll.update(ids[r]!, makeData(RECORDS + i), ovs[r]!, 'bench', 'ingest');
    ovs[r]!++;
    counted(1);
  });
  sampleIds.push(ids[0]!, ids[RECORDS - 1]!);
} else throw new Error(`MEMORY_MODE must be createMany or updates, got ${mode}`);

const acked = secondsSince(start);
const report = await xronox.flush();
emit('flushed');

// What was measured must also be right: the totals, and a sample of records read back.
const totals = await xronox.counters.getTotals({ databaseType: 'runtime', tier: 'tenant', tenantId: TENANT, collection: 'ingest' });
const problems: string[] = [];
const written = (totals.created ?? 0) + (totals.updated ?? 0);
if (written !== total) problems.push(`counters say ${written} versions, expected ${total}`);
for (const id of sampleIds) {
  if (!(await coll.getLatest(id))) problems.push(`record ${id} is missing`);
}
if (mode === 'updates') {
  const history = await coll.history(sampleIds[0]!, { limit: 1 });
  // Record 0 took updates i = 0, 1000, 2000, … below total - RECORDS.
  const expectedOv = Math.ceil((total - RECORDS) / RECORDS);
  if (history.items[0]?.ov !== expectedOv) problems.push(`first record is at ov ${history.items[0]?.ov}, expected ${expectedOv}`);
}
if (report.failed > 0 || backgroundErrors.length > 0) problems.push(`blob sync failed ${report.failed} times; ${backgroundErrors.length} background errors: ${String(backgroundErrors[0])}`);
await xronox.shutdown();
emit('done', problems.length === 0 ? `ok (acknowledged after ${acked.toFixed(1)} s; ${sampleIds.length} records read back)` : problems.join('; '));
if (problems.length > 0) process.exitCode = 1;

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}
