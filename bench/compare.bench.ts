/**
 * Xronox next to what one would use instead, side by side in one run (see BENCHMARKS.md,
 * "Xronox, MariaDB and PostgreSQL side by side").
 *
 *   npx tsx bench/compare.bench.ts          (or: npm run bench:compare)
 *
 * Sides, all on this machine: Xronox on the embedded default (SQLite file + local folder), Xronox
 * with its index store on PostgreSQL (objects in a local folder as for the first), a MariaDB table
 * `WITH SYSTEM VERSIONING`, a PostgreSQL table with a trigger-maintained history table, and the
 * unversioned twin of each (Xronox's `knowledge` type, plain tables), so each system's own cost of
 * versioning shows. MariaDB and PostgreSQL are reached on loopback; a server that does not answer
 * is skipped with a message. Xronox on PostgreSQL works in schemas under a random prefix of this
 * run, dropped at the end (only those).
 *
 * Per document size (~1 KB and 100 KB of JSON): RECORDS records per side, then sequential
 * updates round-robin over them (each checks the version it replaces), in ROUNDS rounds whose
 * order rotates, `sync` before each; then `getAsOf` at random instants of random records,
 * interleaved call by call across the versioned sides, every answer checked against the times
 * each store recorded.
 *
 * Then, at 1 KB, every versioned side again with CLIENTS clients at once in this process (each
 * awaits its own updates, on records of its own; then as many getAsOf readers): Xronox on the
 * embedded default (its commits grouped, one fsync per group: core/store/group-commit.ts), MariaDB
 * with a pool of CLIENTS connections, Xronox on PostgreSQL and the PostgreSQL trigger table (both
 * with CLIENTS connections; Xronox's pool is 10 by default). Goals printed at the end: Xronox on
 * PostgreSQL against the trigger table (writes ≥ 0.8×, getAsOf p50 ≤ 1.2×, at 1 and CLIENTS
 * clients), and the embedded default against MariaDB (issue 20: at CLIENTS clients acknowledged ≥
 * 1.5× and end to end ≥ 1.0×; at one client acknowledged ≥ 1.0×, end to end ≥ 0.8×, p99 ≤ 2×).
 *
 * Knobs (environment): BENCH_COMPARE_N (updates per side for ~1 KB, default 3000; 100 KB does a
 * fifth), BENCH_COMPARE_QUERIES (getAsOf samples per side and size, default 3000),
 * BENCH_COMPARE_SIZES (comma-separated bytes, default 1024,102400), BENCH_COMPARE_CLIENTS
 * (concurrent clients, default 16), BENCH_KEEP=1 keeps the folder.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { initXronox, type Xronox } from '../core/index.js';
import type { Data } from '../core/engine/documents.js';
import { type ConcurrentResult, runConcurrent, type Tracked } from './support/concurrent-compare.js';
import { describeMachine, envInt, loadAverage, settle } from './support/machine.js';
import { finishRun, fmtNumber, type Latency, latencyInterleaved, markdownTable, now, progressLog, secondsSince, summarise } from './support/measure.js';
import { makeSizedData } from './support/sized-document.js';
import { type ComparedStore, connectMariadb, connectMariadbPool, connectPostgres, MariadbStore, mariadbInfo, microsToIso, PostgresStore, postgresInfo, type ServerInfo } from './support/sql-versioned.js';
import { dropXronoxSchemas, postgresUri, randomSchemaPrefix, xronoxOnPostgres } from './support/xronox-postgres.js';
import { XronoxStore } from './support/xronox-store.js';

const N = envInt('BENCH_COMPARE_N', 3000, 30);
const QUERIES = envInt('BENCH_COMPARE_QUERIES', 3000, 10);
const SIZES = (process.env.BENCH_COMPARE_SIZES ?? '1024,102400').split(',').map(Number);
const CLIENTS = envInt('BENCH_COMPARE_CLIENTS', 16, 2);
const RECORDS = 50;
const ROUNDS = 3;
const WARMUP = 100;
const READ_WARMUP = 300;
const TENANT = 'bench';
const runStart = now();
const machine = describeMachine(os.tmpdir());

const log = progressLog(runStart, { rss: true });

// ---- Xronox -----------------------------------------------------------------------------

const dir = await mkdtemp(join(os.tmpdir(), 'xronox-compare-'));
const backgroundErrors: unknown[] = [];
const xronox = initXronox(
  {
    dbConnections: { local: { sqlitePath: join(dir, 'xronox.sqlite') } },
    databases: {
      runtime: { tenantDatabases: [{ tenantId: TENANT, dbConnRef: 'local', dbName: 'rt_compare' }] },
      knowledge: { tenantDatabases: [{ tenantId: TENANT, dbConnRef: 'local', dbName: 'kn_compare' }] },
    },
    localStorage: { basePath: join(dir, 'blobs'), enabled: true },
  },
  { onBackgroundError: (err) => backgroundErrors.push(err) },
);

// ---- the servers ------------------------------------------------------------------------

const servers: Array<{ name: string; info: ServerInfo | null; skipped?: string }> = [];
const pgClient = await connectPostgres().catch((err: unknown) => {
  servers.push({ name: 'PostgreSQL', info: null, skipped: `skipped: no server at 127.0.0.1:5432 (${(err as Error).message})` });
  return null;
});
if (pgClient) servers.push({ name: 'PostgreSQL', info: await postgresInfo(pgClient) });
const pgPool = pgClient ? new pg.Pool({ connectionString: postgresUri(), max: CLIENTS }) : null;
const schemaPrefix = randomSchemaPrefix();
/** `BENCH_COMPARE_XRONOX_PG=0` leaves Xronox on PostgreSQL out (the sides of runs made before it existed). */
const WITH_XRONOX_PG = process.env.BENCH_COMPARE_XRONOX_PG !== '0';
const xronoxPg: Xronox | null = pgClient && WITH_XRONOX_PG
  ? xronoxOnPostgres({
      schemaPrefix,
      basePath: join(dir, 'pg-blobs'),
      tenant: TENANT,
      runtimeDb: 'rt_compare',
      knowledgeDb: 'kn_compare',
      poolMax: CLIENTS,
      onBackgroundError: (err) => backgroundErrors.push(err),
    })
  : null;
const ON_PG = 'on PostgreSQL';
const mariaConn = await connectMariadb().catch((err: unknown) => {
  servers.push({ name: 'MariaDB', info: null, skipped: `skipped: no server at 127.0.0.1:3306 (${(err as Error).message})` });
  return null;
});
if (mariaConn) servers.push({ name: 'MariaDB', info: await mariadbInfo(mariaConn) });
const mariaPool = mariaConn ? connectMariadbPool(CLIENTS) : null;
for (const s of servers) if (s.skipped) console.log(`${s.name} ${s.skipped}`);

const XRONOX_DURABILITY =
  'SQLite WAL, synchronous=FULL: fsync at every commit, before any write of it is acknowledged (concurrent writes share one commit: group commit); the version files are fsynced after it, in the background';
const XRONOX_PG_DURABILITY =
  "the server's commit (synchronous_commit as the server has it, as for the trigger table; the version's body is in the committed row) is the acknowledgement; the version files are fsynced after it, in the background";
const pgServer = () => servers.find((s) => s.name === 'PostgreSQL')?.info;
/** The table's short form: is the write on disk when it is acknowledged? */
const durableWhenAcked = (side: string): string => {
  if (side.startsWith(`Xronox ${ON_PG}`)) return pgServer()?.fsyncPerCommit ? 'yes (PostgreSQL commit fsynced; files later)' : 'NO (commits not fsynced one by one)';
  if (side.startsWith('Xronox')) return 'yes (SQLite fsync; files later)';
  const server = servers.find((s) => side.startsWith(s.name));
  if (!server?.info) return 'unknown';
  return server.info.fsyncPerCommit ? 'yes (commit fsynced)' : 'NO (commits not fsynced one by one)';
};

const sizeLabel = (bytes: number) => `${Number.isInteger(bytes / 1024) ? bytes / 1024 : (bytes / 1024).toFixed(1)} KB`;

// ---- one size ---------------------------------------------------------------------------

interface SideResult {
  name: string;
  versioned: boolean;
  updates: number;
  /** Seconds in the update loops (acknowledged writes). */
  ackSeconds: number;
  /** Plus `settleWrites()` after each loop (Xronox's blob sync). */
  endToEndSeconds: number;
  latency: Latency;
  asOf?: Latency;
  asOfChecked?: number;
}


async function openStores(tag: string): Promise<ComparedStore[]> {
  const stores: ComparedStore[] = [new XronoxStore(xronox, 'runtime', TENANT, `c${tag}`), new XronoxStore(xronox, 'knowledge', TENANT, `c${tag}`)];
  if (mariaConn) stores.push(await MariadbStore.open(mariaConn, true), await MariadbStore.open(mariaConn, false));
  if (xronoxPg) stores.push(new XronoxStore(xronoxPg, 'runtime', TENANT, `c${tag}`, ON_PG), new XronoxStore(xronoxPg, 'knowledge', TENANT, `c${tag}`, ON_PG));
  if (pgClient) stores.push(await PostgresStore.open(pgClient, true), await PostgresStore.open(pgClient, false));
  return stores;
}

async function updateOne(t: Tracked, i: number, bytes: number): Promise<void> {
  const r = i % RECORDS;
  const seq = t.nextSeq++;
  await t.store.update(t.ids[r]!, makeSizedData(seq, bytes), t.ovs[r]!);
  t.ovs[r]!++;
  t.seqs[r]![t.ovs[r]!] = seq;
}

async function runSize(bytes: number): Promise<SideResult[]> {
  const updates = bytes > 10_000 ? Math.max(ROUNDS * 10, Math.floor(N / 5)) : N;
  const label = sizeLabel(bytes);
  log(`${label}: ${RECORDS} records per side, ${WARMUP} warm-up updates, then ${updates} timed updates in ${ROUNDS} rounds`);
  const stores = await openStores(String(bytes));
  const tracked: Tracked[] = [];
  for (const store of stores) {
    const t: Tracked = { store, ids: [], ovs: [], seqs: [], nextSeq: 0 };
    for (let r = 0; r < RECORDS; r++) {
      const seq = t.nextSeq++;
      t.ids.push(await store.create(makeSizedData(seq, bytes)));
      t.ovs.push(0);
      t.seqs.push([seq]);
    }
    for (let i = 0; i < WARMUP; i++) await updateOne(t, i, bytes);
    await store.settleWrites();
    tracked.push(t);
  }
  const results: SideResult[] = tracked.map((t) => ({ name: t.store.name, versioned: t.store.versioned, updates, ackSeconds: 0, endToEndSeconds: 0, latency: summarise(new Float64Array(0)) }));
  const latencies = tracked.map(() => new Float64Array(updates));
  const per = Math.ceil(updates / ROUNDS);
  for (let round = 0; round < ROUNDS; round++) {
    const from = round * per;
    const to = Math.min(updates, from + per);
    for (let k = 0; k < tracked.length; k++) {
      const s = (k + round) % tracked.length;
      const t = tracked[s]!;
      await settle();
      const start = now();
      for (let i = from; i < to; i++) {
        const opStart = now();
        await updateOne(t, WARMUP + i, bytes);
        latencies[s]![i] = Number(now() - opStart) / 1e3;
      }
      const acked = now();
      await t.store.settleWrites();
      results[s]!.ackSeconds += secondsSince(start, acked);
      results[s]!.endToEndSeconds += secondsSince(start);
    }
    log(`  round ${round + 1}: ${tracked.map((t, s) => `${t.store.name} ${fmtNumber(to / results[s]!.ackSeconds)}/s`).join('; ')}`);
  }
  tracked.forEach((_, s) => (results[s]!.latency = summarise(latencies[s]!)));

  // getAsOf: instants uniform over a random record's lifetime; the right answer is the newest
  // version that began at or before the instant, by the times the store itself recorded.
  const versioned = tracked.map((t, s) => ({ t, s })).filter(({ t }) => t.store.versioned);
  const plans: Array<{ t: Tracked; queries: Array<{ r: number; at: number; ov: number }>; answers: Array<{ ov: number; data: Data } | null> }> = [];
  for (const { t } of versioned) {
    // One by one: the servers' sides share one connection each.
    const times: number[][] = [];
    for (const id of t.ids) times.push(await t.store.versionTimes(id));
    times.forEach((ts, r) => {
      if (ts.length !== t.ovs[r]! + 1) throw new Error(`${t.store.name}: record ${r} has ${ts.length} versions, expected ${t.ovs[r]! + 1}`);
    });
    const queries = Array.from({ length: QUERIES + READ_WARMUP }, () => {
      const r = Math.floor(Math.random() * RECORDS);
      const ts = times[r]!;
      const at = ts[0]! + Math.floor(Math.random() * (ts[ts.length - 1]! - ts[0]! + 1));
      let ov = 0;
      while (ov + 1 < ts.length && ts[ov + 1]! <= at) ov++;
      return { r, at, ov };
    });
    plans.push({ t, queries, answers: new Array<{ ov: number; data: Data } | null>(QUERIES + READ_WARMUP) });
  }
  log(`${label}: getAsOf, ${QUERIES} samples per versioned side (after ${READ_WARMUP} warm-up), interleaved`);
  const ops = (offset: number) =>
    plans.map((p) => async (i: number) => {
      const q = p.queries[offset + i]!;
      p.answers[offset + i] = await p.t.store.getAsOf(p.t.ids[q.r]!, q.at);
    });
  await latencyInterleaved(READ_WARMUP, ops(0));
  const asOf = await latencyInterleaved(QUERIES, ops(READ_WARMUP));
  plans.forEach((p, k) => {
    p.queries.forEach((q, i) => {
      const got = p.answers[i];
      const seq = p.t.seqs[q.r]![q.ov]!;
      if (got?.ov !== q.ov || (got.data as { seq?: number }).seq !== 1_000_000 + seq) {
        throw new Error(`${p.t.store.name}: getAsOf(${microsToIso(q.at)}) returned ov ${got?.ov}, expected ${q.ov} (seq ${seq})`);
      }
    });
    const s = versioned[k]!.s;
    results[s]!.asOf = asOf[k]!;
    results[s]!.asOfChecked = p.queries.length;
  });
  for (const store of stores) await store.close();
  return results;
}

// ---- run --------------------------------------------------------------------------------

console.log('Machine');
for (const line of machine) console.log(`  ${line}`);
for (const s of servers) if (s.info) console.log(`  ${s.name.padEnd(8)} ${s.info.version} on 127.0.0.1, ${JSON.stringify(s.info.durability)}`);
if (xronoxPg) console.log(`  Xronox on PostgreSQL: schemas ${schemaPrefix}* (dropped at the end), pools of ${CLIENTS} connections on both PostgreSQL sides`);
console.log(`Command    npx tsx bench/compare.bench.ts${['BENCH_COMPARE_N', 'BENCH_COMPARE_QUERIES', 'BENCH_COMPARE_SIZES', 'BENCH_COMPARE_CLIENTS', 'BENCH_COMPARE_XRONOX_PG'].filter((k) => process.env[k]).map((k) => ` ${k}=${process.env[k]}`).join('')}`);
console.log(`Folder     ${dir}`);
console.log();

const CONCURRENT_BYTES = 1024;
const bySize: Array<[number, SideResult[]]> = [];
let concurrent: ConcurrentResult[];
try {
  for (const bytes of SIZES) bySize.push([bytes, await runSize(bytes)]);
  log(`${sizeLabel(CONCURRENT_BYTES)}, ${CLIENTS} clients at once: every versioned side, ${N} timed updates and ${QUERIES} getAsOf each`);
  const stores: ComparedStore[] = [new XronoxStore(xronox, 'runtime', TENANT, `k${CONCURRENT_BYTES}`)];
  if (mariaPool) stores.push(await MariadbStore.open(mariaPool, true));
  if (xronoxPg) stores.push(new XronoxStore(xronoxPg, 'runtime', TENANT, `k${CONCURRENT_BYTES}`, ON_PG));
  if (pgPool) stores.push(await PostgresStore.open(pgPool, true));
  try {
    concurrent = await runConcurrent(stores, {
      clients: CLIENTS, recordsPerClient: 4, updates: N, warmup: WARMUP, rounds: ROUNDS, queries: QUERIES, readWarmup: READ_WARMUP, bytes: CONCURRENT_BYTES, log,
    });
  } finally {
    for (const store of stores) await store.close();
  }
} finally {
  await xronox.shutdown();
  await xronoxPg?.shutdown();
  if (pgClient) log(`dropped ${await dropXronoxSchemas(pgClient, schemaPrefix)} schemas of prefix ${schemaPrefix}`);
  await pgPool?.end();
  await pgClient?.end();
  await mariaPool?.end();
  await mariaConn?.end();
  if (process.env.BENCH_KEEP !== '1') await rm(dir, { recursive: true, force: true });
}

const XRONOX = 'Xronox runtime (versioned)';
const XRONOX_PG = `Xronox ${ON_PG}, runtime (versioned)`;
const PG_TRIGGER = 'PostgreSQL, trigger + history table';
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
const writeRows: string[][] = [];
const readRows: string[][] = [];
const overheadRows: string[][] = [];
for (const [bytes, results] of bySize) {
  const x = results.find((r) => r.name === XRONOX)!;
  for (const r of results.filter((r) => r.versioned)) {
    const ack = r.updates / r.ackSeconds;
    const e2e = r.updates / r.endToEndSeconds;
    writeRows.push([
      sizeLabel(bytes),
      r.name,
      durableWhenAcked(r.name),
      `${fmtNumber(ack)} /s`,
      r.name.startsWith('Xronox') ? `${fmtNumber(e2e)} /s` : '= acknowledged',
      `${fmtNumber(r.latency.p50)} / ${fmtNumber(r.latency.p99)} µs`,
      r.name === XRONOX ? '1.00×' : ratio(x.updates / x.ackSeconds, ack),
      r.name === XRONOX ? '1.00×' : ratio(x.updates / x.endToEndSeconds, e2e),
    ]);
    if (r.asOf) {
      readRows.push([
        sizeLabel(bytes),
        r.name,
        `${fmtNumber(r.asOf.p50)} / ${fmtNumber(r.asOf.p99)} µs`,
        `${ratio(x.asOf!.p50, r.asOf.p50)} / ${ratio(x.asOf!.p99, r.asOf.p99)}`,
        `${r.asOfChecked} of ${r.asOfChecked}`,
      ]);
    }
  }
  const pairs: Array<[string, string, string]> = [
    ['Xronox', XRONOX, 'Xronox knowledge (unversioned)'],
    [`Xronox ${ON_PG}`, XRONOX_PG, `Xronox ${ON_PG}, knowledge (unversioned)`],
    ['MariaDB', 'MariaDB, WITH SYSTEM VERSIONING', 'MariaDB, plain table'],
    ['PostgreSQL', 'PostgreSQL, trigger + history table', 'PostgreSQL, plain table'],
  ];
  for (const [system, v, u] of pairs) {
    const a = results.find((r) => r.name === v);
    const b = results.find((r) => r.name === u);
    if (!a || !b) continue;
    overheadRows.push([
      sizeLabel(bytes),
      system,
      `${fmtNumber(a.updates / a.ackSeconds)} /s`,
      `${fmtNumber(b.updates / b.ackSeconds)} /s`,
      ratio(a.updates / a.ackSeconds, b.updates / b.ackSeconds),
      system.startsWith('Xronox') ? `${fmtNumber(a.updates / a.endToEndSeconds)} /s vs ${fmtNumber(b.updates / b.endToEndSeconds)} /s: ${ratio(a.updates / a.endToEndSeconds, b.updates / b.endToEndSeconds)}` : '—',
    ]);
  }
}

console.log();
console.log('Durability class of each side (as the servers reported it at run time)');
console.log();
console.log(markdownTable(['system', 'durability'], [['Xronox (embedded default)', XRONOX_DURABILITY], ...(xronoxPg ? [[`Xronox ${ON_PG}`, XRONOX_PG_DURABILITY]] : []), ...servers.map((s) => [s.name, s.info ? s.info.durabilityClass : s.skipped ?? ''])]));
console.log();
console.log(`Versioned updates, one client, sequential awaits, round-robin over ${RECORDS} records (ratio = Xronox on the embedded default / side: above 1× Xronox is faster)`);
console.log();
console.log(markdownTable(['document', 'side', 'durable when acknowledged', 'updates/s acknowledged', 'updates/s incl. blob sync', 'latency p50 / p99', 'Xronox / side, acknowledged', 'Xronox / side, incl. blob sync'], writeRows));
console.log();
console.log(`getAsOf at random instants of random records, after the updates (ratio = Xronox on the embedded default / side: above 1× Xronox is slower)`);
console.log();
console.log(markdownTable(['document', 'side', 'getAsOf p50 / p99', 'Xronox / side (p50 / p99)', 'answers checked'], readRows));
console.log();
console.log('Versioning overhead on each backend: versioned / unversioned update throughput (same document, same loop)');
console.log();
console.log(markdownTable(['document', 'system', 'versioned', 'unversioned', 'versioned / unversioned', 'Xronox incl. blob sync'], overheadRows));
console.log();
if (concurrent.length > 0) {
  console.log(`${sizeLabel(CONCURRENT_BYTES)}, ${CLIENTS} clients at once: each awaits its own updates on 4 records of its own, then as many clients read getAsOf`);
  console.log();
  console.log(
    markdownTable(
      ['side', 'durable when acknowledged', 'updates/s acknowledged', 'updates/s incl. blob sync', 'update latency p50 / p99', 'getAsOf p50 / p99', 'getAsOf calls/s', 'answers checked'],
      concurrent.map((r) => [
        r.name,
        durableWhenAcked(r.name),
        `${fmtNumber(r.updates / r.ackSeconds)} /s`,
        r.name.startsWith('Xronox') ? `${fmtNumber(r.updates / r.endToEndSeconds)} /s` : '= acknowledged',
        `${fmtNumber(r.latency.p50)} / ${fmtNumber(r.latency.p99)} µs`,
        `${fmtNumber(r.asOf.p50)} / ${fmtNumber(r.asOf.p99)} µs`,
        `${fmtNumber(QUERIES / r.asOfSeconds)} /s`,
        `${r.asOfChecked} of ${r.asOfChecked}`,
      ]),
    ),
  );
  console.log();
}
const goalRows: string[][] = [];
const goalRow = (clients: number, bytes: number, x: { updates: number; ackSeconds: number; asOf?: Latency }, b: { updates: number; ackSeconds: number; asOf?: Latency }) => {
  const writes = x.updates / x.ackSeconds / (b.updates / b.ackSeconds);
  const reads = x.asOf!.p50 / b.asOf!.p50;
  const goals = bytes === CONCURRENT_BYTES;
  goalRows.push([
    String(clients),
    sizeLabel(bytes),
    `${fmtNumber(x.updates / x.ackSeconds)} / ${fmtNumber(b.updates / b.ackSeconds)} /s`,
    `${writes.toFixed(2)}×${goals ? (writes >= 0.8 ? ' (met)' : ' (MISSED)') : ''}`,
    `${fmtNumber(x.asOf!.p50)} / ${fmtNumber(b.asOf!.p50)} µs`,
    `${reads.toFixed(2)}×${goals ? (reads <= 1.2 ? ' (met)' : ' (MISSED)') : ''}`,
  ]);
};
for (const [bytes, results] of bySize) {
  const x = results.find((r) => r.name === XRONOX_PG);
  const b = results.find((r) => r.name === PG_TRIGGER);
  if (x && b) goalRow(1, bytes, x, b);
}
const cx = concurrent.find((r) => r.name === XRONOX_PG);
const cb = concurrent.find((r) => r.name === PG_TRIGGER);
if (cx && cb) goalRow(CLIENTS, CONCURRENT_BYTES, cx, cb);
if (goalRows.length > 0) {
  console.log(`Xronox on PostgreSQL / PostgreSQL trigger + history table, same server (goals at ${sizeLabel(CONCURRENT_BYTES)}: acknowledged updates/s ≥ 0.8×, getAsOf p50 ≤ 1.2×)`);
  console.log();
  console.log(markdownTable(['clients', 'document', 'updates/s acknowledged (Xronox / trigger)', 'write ratio', 'getAsOf p50 (Xronox / trigger)', 'getAsOf p50 ratio'], goalRows));
  console.log();
}
// Issue 20's goals: the embedded default against MariaDB WITH SYSTEM VERSIONING, same machine, both fsyncing each acknowledgement.
const MARIA = 'MariaDB, WITH SYSTEM VERSIONING';
const mariaGoals: string[][] = [];
const verdict = (value: number, goal: number, atLeast: boolean) => `${value.toFixed(2)}× (goal ${atLeast ? '≥' : '≤'} ${goal}×: ${(atLeast ? value >= goal : value <= goal) ? 'met' : 'MISSED'})`;
const one = bySize.find(([bytes]) => bytes === CONCURRENT_BYTES)?.[1];
const [x1, m1] = [one?.find((r) => r.name === XRONOX), one?.find((r) => r.name === MARIA)];
if (x1 && m1) {
  const [ack, e2e, maria] = [x1.updates / x1.ackSeconds, x1.updates / x1.endToEndSeconds, m1.updates / m1.ackSeconds];
  mariaGoals.push(['1', `${fmtNumber(ack)} / ${fmtNumber(e2e)} /s`, `${fmtNumber(maria)} /s`, verdict(ack / maria, 1.0, true), verdict(e2e / maria, 0.8, true), `${fmtNumber(x1.latency.p99)} / ${fmtNumber(m1.latency.p99)} µs: ${verdict(x1.latency.p99 / m1.latency.p99, 2, false)}`]);
}
const [xc, mc] = [concurrent.find((r) => r.name === XRONOX), concurrent.find((r) => r.name === MARIA)];
if (xc && mc) {
  const [ack, e2e, maria] = [xc.updates / xc.ackSeconds, xc.updates / xc.endToEndSeconds, mc.updates / mc.ackSeconds];
  mariaGoals.push([String(CLIENTS), `${fmtNumber(ack)} / ${fmtNumber(e2e)} /s`, `${fmtNumber(maria)} /s`, verdict(ack / maria, 1.5, true), verdict(e2e / maria, 1.0, true), `${fmtNumber(xc.latency.p99)} / ${fmtNumber(mc.latency.p99)} µs`]);
}
if (mariaGoals.length > 0) {
  console.log(`Xronox on the embedded default / MariaDB WITH SYSTEM VERSIONING, ${sizeLabel(CONCURRENT_BYTES)} versioned updates (issue 20, goals 1 and 2)`);
  console.log();
  console.log(markdownTable(['clients', 'Xronox acknowledged / end to end', 'MariaDB', 'acknowledged ratio', 'end-to-end ratio', 'update p99 (Xronox / MariaDB)'], mariaGoals));
  console.log();
}
finishRun(runStart, backgroundErrors, loadAverage());
