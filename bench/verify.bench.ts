/**
 * What verifiable history costs (BENCHMARKS.md, "Verifiable history"):
 * - the read checks: `getLatest` and `getAsOf` p50/p99 with `integrity.verifyReads` on (the
 *   default) and off, interleaved on the same store so both see the same machine (goal: on within
 *   1.1× of off at p50);
 * - verify throughput: versions per second of `verifyCollection` (every chain, every column,
 *   the latest signed digest), and of `writeDigest`.
 *
 *   npx tsx bench/verify.bench.ts
 *
 * On the embedded default (SQLite, version files in a local folder). Knobs (environment):
 * BENCH_VERIFY_RECORDS (default 1000), BENCH_VERIFY_VERSIONS (per record, default 10),
 * BENCH_VERIFY_QUERIES (samples per read, default 5000), BENCH_KEEP=1 keeps the folder.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { initXronox, type Xronox } from '../core/index.js';
import { describeMachine, envInt } from './support/machine.js';
import { fmtLatency, fmtNumber, latencyInterleaved, now, secondsSince } from './support/measure.js';

const RECORDS = envInt('BENCH_VERIFY_RECORDS', 1000, 1);
const VERSIONS = envInt('BENCH_VERIFY_VERSIONS', 10, 1);
const QUERIES = envInt('BENCH_VERIFY_QUERIES', 5000, 10);

async function main(): Promise<void> {
  const dir = await mkdtemp(join(os.tmpdir(), 'xronox-bench-verify-'));
  const config = (verifyReads: boolean) => ({
    dbConnections: { local: { sqlitePath: join(dir, 'x.sqlite') } },
    localStorage: { basePath: join(dir, 'blobs'), enabled: true },
    databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_bench' }] } },
    integrity: { digestKey: randomBytes(32).toString('hex'), verifyReads },
  });
  const route = { databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' } as const;
  console.log(describeMachine(dir).join('\n'));
  let writer: Xronox | undefined = initXronox(config(true));
  const ids: string[] = [];
  const times: string[] = [];
  try {
    const orders = writer.with(route);
    for (let r = 0; r < RECORDS; r++) {
      const { id } = await orders.create({ status: 'new', n: r, note: 'x'.repeat(200) });
      for (let v = 1; v < VERSIONS; v++) await orders.update(id, { status: `s${v}`, n: r, note: 'y'.repeat(200) }, v - 1);
      ids.push(id);
      times.push((await orders.getVersion(id, Math.floor(VERSIONS / 2)))!.updatedAt);
    }
    await writer.flush();
    await writer.shutdown();
    writer = undefined;

    const on = initXronox(config(true));
    const off = initXronox(config(false));
    try {
      const [a, b] = [on.with(route), off.with(route)];
      const pick = (i: number) => i % ids.length;
      const [latestOn, latestOff] = await latencyInterleaved(QUERIES, [(i) => a.getLatest(ids[pick(i)]!), (i) => b.getLatest(ids[pick(i)]!)]);
      const [asOfOn, asOfOff] = await latencyInterleaved(QUERIES, [(i) => a.getAsOf(ids[pick(i)]!, times[pick(i)]!), (i) => b.getAsOf(ids[pick(i)]!, times[pick(i)]!)]);
      console.log(`getLatest  checks on ${fmtLatency(latestOn!)}, off ${fmtLatency(latestOff!)}: p50 ×${(latestOn!.p50 / latestOff!.p50).toFixed(2)}`);
      console.log(`getAsOf    checks on ${fmtLatency(asOfOn!)}, off ${fmtLatency(asOfOff!)}: p50 ×${(asOfOn!.p50 / asOfOff!.p50).toFixed(2)}`);

      let start = now();
      const digest = await a.writeDigest();
      const digestSeconds = secondsSince(start);
      start = now();
      const report = await a.verifyCollection();
      const verifySeconds = secondsSince(start);
      if (!report.ok || !report.digest?.ok) throw new Error(`verify found problems: ${JSON.stringify(report).slice(0, 500)}`);
      console.log(`writeDigest ${fmtNumber(report.versions / digestSeconds)} versions/s (${digest.digest.records} records)`);
      console.log(`verifyCollection ${fmtNumber(report.versions / verifySeconds)} versions/s (${report.records} records, ${report.versions} versions, ${verifySeconds.toFixed(2)} s)`);
    } finally {
      await on.shutdown();
      await off.shutdown();
    }
  } finally {
    await writer?.shutdown();
    if (process.env.BENCH_KEEP !== '1') await rm(dir, { recursive: true, force: true });
  }
}

await main();
