/**
 * S3 blob store benchmark (see BENCHMARKS.md, section "S3 blob store").
 *
 *   npx tsx bench/s3.bench.ts
 *
 * Knobs (environment): BENCH_S3_SCALE (multiplies every operation count, default 1),
 * BENCH_S3_CEPH=0 skips Ceph even when a gateway is running.
 *
 * For each server (s3rver in a child process, always; then the Ceph gateway that
 * `test/support/ceph.ts` reports, if it answers, i.e. after `bash infra/local/ceph-s3.sh start`;
 * otherwise the run prints why Ceph was skipped):
 * 1. PUT and GET of 1 KiB and 1 MiB objects with 1 and 16 requests in flight, through `S3BlobStore`
 *    (`put` / `get`) and through the raw SDK (`PutObjectCommand` with the same Buffer body,
 *    `GetObjectCommand` + `transformToByteArray`). The raw side sends on the very S3Client the
 *    adapter holds (`acquireS3Client` with the same connection: one pool entry), so the two
 *    differ only by the adapter's code path. Sides alternate round by round (adapter first in
 *    even rounds, raw first in odd ones) after an untimed warm-up, same bucket, same key count.
 * 2. Versioned creates (~1 KB document) on sqlite × s3 through `initXronox`: acknowledged
 *    creates/s (sequential, and 16 in flight), and end-to-end including `flush()`, which waits for
 *    the background archival of each version to S3.
 * Once per run, without a server: the adapter's own cost per call, with the SDK's middleware
 * stack answering at its first step on both sides.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { S3BlobStore } from '../core/adapters/s3/s3-blob-store.js';
import { acquireS3Client } from '../core/adapters/s3/s3-client-pool.js';
import type { SpacesConnectionConfig } from '../core/config/schema.js';
import { initXronox, type Xronox } from '../core/index.js';
import { type CephS3, cephS3 } from '../test/support/ceph.js';
import { s3rverConnection, startS3rver } from '../test/support/s3rver.js';
import { packageVersion, shell } from './support/machine.js';
import { fmtNumber, fmtRatio, inFlight, markdownTable, median, now, progressLog, secondsSince } from './support/measure.js';
import { makeData } from './support/document.js';

const SCALE = envScale('BENCH_S3_SCALE');
const ROUNDS = 10;
const WORKERS = 16;
/** Distinct keys per side and size: PUTs overwrite them in turn, GETs read them in turn. */
const KEYS = 64;
const SIZES = [
  { label: '1 KiB', tag: '1k', bytes: 1024 },
  { label: '1 MiB', tag: '1m', bytes: 1024 * 1024 },
] as const;
type Size = (typeof SIZES)[number];
/** Timed operations per side per (size, in flight), split over the rounds; warm-up is extra. */
const OBJECT_OPS: Record<Size['tag'], Record<'1' | '16', number>> = {
  '1k': { '1': count(800), '16': count(2400) },
  '1m': { '1': count(240), '16': count(960) },
};
/** Versioned creates per mode (sequential, 16 in flight), split over the rounds. */
const CREATES = count(1200);
const CREATE_WARMUP = 100;
/** Calls per side per round when measuring the adapter's own cost with the SDK stubbed. */
const OVERHEAD_CALLS = count(3000);
const TENANT = 'bench';
const DB_NAME = 'rt_bench';
const ACTOR = 'bench';
const REASON = 'benchmark';

const runStart = now();
const loadBefore = os.loadavg();

const log = progressLog(runStart);

// ---- object throughput: adapter vs raw -----------------------------------------------------

type Side = 'adapter' | 'raw';
type Op = 'PUT' | 'GET';

interface SideTotals {
  ops: number;
  seconds: number;
  /** Client-side CPU (this process: user + system), microseconds. */
  cpuMicros: number;
}

interface ObjectResult {
  op: Op;
  size: Size;
  workers: number;
  adapter: SideTotals;
  raw: SideTotals;
  /** Adapter ops/s over raw ops/s, round by round: how much the two sides move between rounds. */
  roundRatios: number[];
}

interface Target {
  name: string;
  connection: SpacesConnectionConfig;
  /** Creates a bucket for this run; `cleanup` removes it with its objects (s3rver: its whole data directory). */
  bucket: (purpose: string) => Promise<string>;
  cleanup: () => Promise<void>;
}

async function objectBenchmarks(target: Target): Promise<ObjectResult[]> {
  const bucket = await target.bucket('objects');
  const store = new S3BlobStore({ ref: target.name, connection: target.connection });
  const { client, release } = acquireS3Client(target.connection);
  const bodies = new Map(SIZES.map((s) => [s.tag, randomBytes(s.bytes)]));
  const key = (side: Side, size: Size, i: number) => `bench/${side}/${size.tag}/k${String(i % KEYS).padStart(3, '0')}`;

  const ops = (op: Op, size: Size): Record<Side, (i: number) => Promise<unknown>> => {
    const body = bodies.get(size.tag)!;
    const check = (side: Side, got: Uint8Array | null | undefined) => {
      if (got?.byteLength !== size.bytes) throw new Error(`${side} GET returned ${got?.byteLength ?? 'nothing'} bytes, expected ${size.bytes}`);
    };
    if (op === 'PUT') {
      return {
        adapter: (i) => store.put(bucket, key('adapter', size, i), body),
        raw: (i) => client.send(new PutObjectCommand({ Bucket: bucket, Key: key('raw', size, i), Body: body })),
      };
    }
    return {
      adapter: async (i) => check('adapter', await store.get(bucket, key('adapter', size, i))),
      raw: async (i) => {
        const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key('raw', size, i) }));
        check('raw', await res.Body?.transformToByteArray());
      },
    };
  };

  const results: ObjectResult[] = [];
  try {
    for (const size of SIZES) {
      for (const op of ['PUT', 'GET'] as const) {
        for (const workers of [1, WORKERS]) {
          const total = OBJECT_OPS[size.tag][workers === 1 ? '1' : '16'];
          log(`  ${target.name}: ${op} ${size.label}, ${workers} in flight (${total} per side)`);
          results.push(await alternate(op, size, workers, total, ops(op, size)));
        }
      }
    }
  } finally {
    await store.close();
    release();
  }
  return results;
}

/** Untimed warm-up (every key once per side), then `ROUNDS` timed rounds, the sides taking turns. */
async function alternate(op: Op, size: Size, workers: number, total: number, ops: Record<Side, (i: number) => Promise<unknown>>): Promise<ObjectResult> {
  for (const side of ['adapter', 'raw'] as const) await inFlight(KEYS, workers, ops[side]);
  const totals: Record<Side, SideTotals> = { adapter: { ops: 0, seconds: 0, cpuMicros: 0 }, raw: { ops: 0, seconds: 0, cpuMicros: 0 } };
  const roundRatios: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const [from, n] = share(total, round);
    const order: Side[] = round % 2 === 0 ? ['adapter', 'raw'] : ['raw', 'adapter'];
    const roundSeconds: Record<Side, number> = { adapter: 0, raw: 0 };
    for (const side of order) {
      const cpu = process.cpuUsage();
      const start = now();
      await inFlight(n, workers, (i) => ops[side](from + i));
      const seconds = secondsSince(start);
      const used = process.cpuUsage(cpu);
      totals[side].ops += n;
      totals[side].seconds += seconds;
      totals[side].cpuMicros += used.user + used.system;
      roundSeconds[side] = seconds;
    }
    roundRatios.push(roundSeconds.raw / roundSeconds.adapter);
  }
  return { op, size, workers, ...totals, roundRatios };
}

// ---- the adapter's own cost, without a server -------------------------------------------

interface CallCost {
  op: Op;
  adapterMicros: number;
  rawMicros: number;
}

/**
 * The adapter's code path alone: a pooled client whose middleware stack answers at its first step
 * (`initialize`, high priority), so neither side serialises, signs or sends anything. What is left
 * is command construction and the stack for both sides, plus, for the adapter, `checkKey`, the
 * params object and the `#call` wrapper. Sides alternate in rounds of `OVERHEAD_CALLS` calls.
 */
async function adapterCost(): Promise<CallCost[]> {
  const connection: SpacesConnectionConfig = { endpoint: 'http://127.0.0.1:9', region: 'us-east-1', accessKey: 'stub', secretKey: 'stub', forcePathStyle: true };
  const { client, release } = acquireS3Client(connection);
  const store = new S3BlobStore({ ref: 'stub', connection });
  const body = randomBytes(1024);
  const stubBody = { transformToByteArray: async () => body };
  client.middlewareStack.add(
    () => async () => ({ output: { $metadata: {}, Body: stubBody } as never, response: {} }),
    { step: 'initialize', priority: 'high', name: 'xronoxBenchStub' },
  );
  const key = 'bench/adapter/1k/k000';
  const ops: Record<Op, Record<Side, () => Promise<unknown>>> = {
    PUT: {
      adapter: () => store.put('stub-bucket', key, body),
      raw: () => client.send(new PutObjectCommand({ Bucket: 'stub-bucket', Key: key, Body: body })),
    },
    GET: {
      adapter: () => store.get('stub-bucket', key),
      raw: async () => (await client.send(new GetObjectCommand({ Bucket: 'stub-bucket', Key: key }))).Body?.transformToByteArray(),
    },
  };
  const results: CallCost[] = [];
  try {
    for (const op of ['PUT', 'GET'] as const) {
      const perCall: Record<Side, number[]> = { adapter: [], raw: [] };
      for (const side of ['adapter', 'raw'] as const) await inFlight(OVERHEAD_CALLS, 1, ops[op][side]);
      for (let round = 0; round < ROUNDS; round++) {
        for (const side of round % 2 === 0 ? (['adapter', 'raw'] as const) : (['raw', 'adapter'] as const)) {
          const start = now();
          await inFlight(OVERHEAD_CALLS, 1, ops[op][side]);
          perCall[side].push((secondsSince(start) / OVERHEAD_CALLS) * 1e6);
        }
      }
      results.push({ op, adapterMicros: median(perCall.adapter), rawMicros: median(perCall.raw) });
    }
  } finally {
    await store.close();
    release();
  }
  return results;
}

// ---- versioned creates on sqlite × s3 -----------------------------------------------------

interface CreateResult {
  workers: number;
  creates: number;
  ackSeconds: number;
  flushSeconds: number;
}

interface EngineResult {
  modes: CreateResult[];
  /** S3 requests the pooled client sent during the timed creates (and their flushes), by command. */
  requests: Record<string, number>;
  backgroundErrors: number;
}

async function engineBenchmarks(target: Target): Promise<EngineResult> {
  const bucket = await target.bucket('engine');
  const dir = await mkdtemp(join(os.tmpdir(), 'xronox-s3-bench-'));
  const backgroundErrors: unknown[] = [];
  // The engine's store acquires the same pooled client (same connection settings); counting its
  // requests tells how many S3 calls one create costs.
  const { client, release } = acquireS3Client(target.connection);
  const requests: Record<string, number> = {};
  let counting = false;
  const MIDDLEWARE = 'xronoxBenchRequestCounter';
  addCounter(client, MIDDLEWARE, (command) => {
    if (counting) requests[command] = (requests[command] ?? 0) + 1;
  });
  let xronox: Xronox | undefined;
  try {
    xronox = initXronox(
      {
        dbConnections: { local: { sqlitePath: join(dir, 'xronox.sqlite') } },
        spacesConnections: { s3: target.connection },
        databases: { runtime: { tenantDatabases: [{ tenantId: TENANT, dbConnRef: 'local', spaceConnRef: 's3', dbName: DB_NAME, bucket }] } },
      },
      { onBackgroundError: (err) => backgroundErrors.push(err) },
    );
    const engine = xronox;
    const coll = engine.with({ databaseType: 'runtime', tier: 'tenant', tenantId: TENANT, collection: 'orders' });
    const flush = async () => {
      const report = await engine.flush();
      if (report.failed > 0 || report.deadLettered > 0) throw new Error(`blob sync failed for ${report.failed} records (${report.deadLettered} dead-lettered)`);
    };
    await inFlight(CREATE_WARMUP, 1, (i) => coll.create(makeData(i), ACTOR, REASON));
    await flush();
    const modes: CreateResult[] = [1, WORKERS].map((workers) => ({ workers, creates: 0, ackSeconds: 0, flushSeconds: 0 }));
    let seq = CREATE_WARMUP;
    counting = true;
    for (let round = 0; round < ROUNDS; round++) {
      const [, n] = share(CREATES, round);
      for (const mode of round % 2 === 0 ? modes : [...modes].reverse()) {
        const base = seq;
        seq += n;
        const start = now();
        await inFlight(n, mode.workers, (i) => coll.create(makeData(base + i), ACTOR, REASON));
        const acked = now();
        await flush();
        mode.creates += n;
        mode.ackSeconds += secondsSince(start, acked);
        mode.flushSeconds += secondsSince(acked);
      }
    }
    counting = false;
    return { modes, requests, backgroundErrors: backgroundErrors.length };
  } finally {
    await xronox?.shutdown();
    client.middlewareStack.remove(MIDDLEWARE);
    release();
    await rm(dir, { recursive: true, force: true });
    if (backgroundErrors.length > 0) console.error(backgroundErrors[0]);
  }
}

function addCounter(client: S3Client, name: string, onRequest: (command: string) => void): void {
  client.middlewareStack.add(
    (next, context) => (args) => {
      onRequest(String(context.commandName ?? 'unknown'));
      return next(args);
    },
    { step: 'initialize', name },
  );
}

// ---- servers ------------------------------------------------------------------------------

async function s3rverTarget(): Promise<Target> {
  const server = await startS3rver();
  const connection: SpacesConnectionConfig = s3rverConnection(server);
  return {
    name: 's3rver',
    connection,
    bucket: async (purpose) => {
      const name = `xr-bench-${purpose}`;
      await server.createBuckets([name]);
      return name;
    },
    // The data directory goes with the server.
    cleanup: () => server.dispose(),
  };
}

/**
 * The gateway `test/support/ceph.ts` reports, if it answers a ListBuckets within 3 s: a gateway
 * that is configured but gone skips with the reason instead of failing mid-run.
 */
async function findCeph(): Promise<CephS3 | { skip: string }> {
  if (process.env.BENCH_S3_CEPH === '0') return { skip: 'BENCH_S3_CEPH=0' };
  const found = cephS3();
  if ('skip' in found) return found;
  const { client, release } = acquireS3Client({ ...found, forcePathStyle: true });
  try {
    await client.send(new ListBucketsCommand({}), { abortSignal: AbortSignal.timeout(3_000) });
    return found;
  } catch (err) {
    return { skip: `the Ceph S3 gateway at ${found.endpoint} did not answer ListBuckets (${describe(err)})` };
  } finally {
    release();
  }
}

function cephTarget(gateway: CephS3): Target {
  const { endpoint, region, accessKey, secretKey } = gateway;
  const connection: SpacesConnectionConfig = { endpoint, region, accessKey, secretKey, forcePathStyle: true, conditionalWrites: true };
  const { client, release } = acquireS3Client(connection);
  const run = randomBytes(4).toString('hex');
  const buckets: string[] = [];
  return {
    name: 'Ceph',
    connection,
    bucket: async (purpose) => {
      // Bucket names are global to the gateway, which other runs (tests) share: one per run.
      const name = `xr-bench-${purpose}-${run}`;
      await client.send(new CreateBucketCommand({ Bucket: name }));
      buckets.push(name);
      return name;
    },
    cleanup: async () => {
      try {
        for (const bucket of buckets) await emptyAndDelete(client, bucket);
      } finally {
        release();
      }
    },
  };
}

async function emptyAndDelete(client: S3Client, bucket: string): Promise<void> {
  for (;;) {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1000 }));
    const keys = (page.Contents ?? []).map((o) => o.Key).filter((k): k is string => typeof k === 'string');
    if (keys.length === 0) break;
    await inFlight(keys.length, WORKERS, (i) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: keys[i]! })));
  }
  await client.send(new DeleteBucketCommand({ Bucket: bucket }));
}

// ---- run ----------------------------------------------------------------------------------

interface Block {
  target: string;
  objects: ObjectResult[];
  engine: EngineResult;
  seconds: number;
}

async function runBlock(target: Target): Promise<Block> {
  const start = now();
  let block: Block;
  try {
    log(`${target.name}: object PUT/GET, adapter vs raw SDK`);
    const objects = await objectBenchmarks(target);
    log(`${target.name}: versioned creates on sqlite × s3 (${CREATES} per mode)`);
    const engine = await engineBenchmarks(target);
    block = { target: target.name, objects, engine, seconds: secondsSince(start) };
  } catch (err) {
    // The measurement's error is the one to report; a cleanup against a dead server fails too.
    await target.cleanup().catch(() => {});
    throw err;
  }
  await target.cleanup();
  return block;
}

const cpus = os.cpus();
const machine = [
  `cpu      ${cpus[0]?.model ?? 'unknown'} × ${cpus.length}`,
  `memory   ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
  `os       ${os.type()} ${os.release()} (${os.arch()})`,
  `node     ${process.version}`,
  `sdk      @aws-sdk/client-s3 ${packageVersion('@aws-sdk/client-s3')}`,
  `s3rver   ${packageVersion('s3rver')} (child process on 127.0.0.1, plain files in ${os.tmpdir()})`,
  `disk     ${shell(`df -hT ${JSON.stringify(os.tmpdir())} | tail -1`).replace(/\s+/g, ' ')}`,
  `load     ${loadBefore.map((l) => l.toFixed(2)).join(' ')} (1/5/15 min average at start)`,
];

const ceph = await findCeph();
if ('endpoint' in ceph) machine.push(`ceph     ${shell('ceph --version').replace(/ \(.*$/, '') || 'version unknown'}, radosgw at ${ceph.endpoint}`);
console.log('Machine');
for (const line of machine) console.log(`  ${line}`);
console.log(`Command    npx tsx bench/s3.bench.ts${process.env.BENCH_S3_SCALE ? `   (with BENCH_S3_SCALE=${process.env.BENCH_S3_SCALE})` : ''}`);
console.log(
  `Sizes      per side: 1 KiB ${OBJECT_OPS['1k']['1']} (1 in flight) / ${OBJECT_OPS['1k']['16']} (${WORKERS} in flight) ops, ` +
    `1 MiB ${OBJECT_OPS['1m']['1']} / ${OBJECT_OPS['1m']['16']} ops, in ${ROUNDS} alternating rounds after a warm-up of ${KEYS} ops; ${KEYS} keys per side and size`,
);
console.log(`           versioned creates: ${CREATES} per mode in ${ROUNDS} alternating rounds after ${CREATE_WARMUP} warm-up creates, ${Buffer.byteLength(JSON.stringify(makeData(0)))} B of JSON data each`);
console.log();

log('adapter code path alone (SDK answered at its first middleware step, no server)');
const costs = await adapterCost();
const blocks: Block[] = [];
blocks.push(await runBlock(await s3rverTarget()));
/** Why there is no Ceph block. The gateway is shared with other runs, so losing it mid-run only ends its block. */
let cephSkipped = 'skip' in ceph ? `skipped, ${ceph.skip}` : undefined;
if ('endpoint' in ceph) {
  try {
    blocks.push(await runBlock(cephTarget(ceph)));
  } catch (err) {
    cephSkipped = `block abandoned after ${secondsSince(runStart).toFixed(1)} s: ${describe(err)}`;
    process.exitCode = 1;
  }
}
if (cephSkipped) log(`Ceph: ${cephSkipped}`);
log('done');

// ---- report -------------------------------------------------------------------------------

const mib = (r: SideTotals, size: Size) => (r.ops * size.bytes) / 2 ** 20 / r.seconds;
const objectRows = blocks.flatMap((b) =>
  b.objects.map((r) => [
    b.target,
    `${r.op} ${r.size.label}`,
    String(r.workers),
    `${fmtNumber(r.adapter.ops / r.adapter.seconds)} ops/s, ${fmtNumber(mib(r.adapter, r.size))} MiB/s`,
    `${fmtNumber(r.raw.ops / r.raw.seconds)} ops/s, ${fmtNumber(mib(r.raw, r.size))} MiB/s`,
    fmtRatio(r.adapter.ops / r.adapter.seconds, r.raw.ops / r.raw.seconds),
    `${Math.min(...r.roundRatios).toFixed(2)}–${Math.max(...r.roundRatios).toFixed(2)}`,
    `${fmtNumber(r.adapter.cpuMicros / r.adapter.ops)} / ${fmtNumber(r.raw.cpuMicros / r.raw.ops)}`,
  ]),
);
const engineRows = blocks.flatMap((b) =>
  b.engine.modes.flatMap((m) => {
    const label = m.workers === 1 ? 'sequential' : `${m.workers} in flight`;
    return [
      [b.target, `create, ${label}: acknowledged (index commit)`, `${fmtNumber(m.creates / m.ackSeconds)} ops/s`],
      [b.target, `create, ${label}: end-to-end incl. flush() to S3`, `${fmtNumber(m.creates / (m.ackSeconds + m.flushSeconds))} ops/s`],
    ];
  }),
);

console.log();
console.log('Object throughput (ratio = adapter / raw ops/s over all rounds; above 1× is faster; per round = lowest and highest ratio of one round; MiB = 2^20 B; CPU = this process, user + system)');
console.log();
console.log(markdownTable(['server', 'operation', 'in flight', 'S3BlobStore', 'raw S3Client', 'adapter/raw', 'per round', 'client CPU µs/op adapter / raw'], objectRows));
console.log();
console.log(`The adapter's own cost per call, SDK answered at its first middleware step (no serialising, signing or I/O; median of ${ROUNDS} alternating rounds of ${OVERHEAD_CALLS} sequential calls per side)`);
console.log();
console.log(
  markdownTable(
    ['operation', 'S3BlobStore', 'raw S3Client', 'adapter adds'],
    costs.map((c) => [c.op, `${fmtNumber(c.adapterMicros)} µs/call`, `${fmtNumber(c.rawMicros)} µs/call`, `${fmtNumber(c.adapterMicros - c.rawMicros)} µs/call`]),
  ),
);
console.log();
console.log(`Versioned creates on sqlite × s3 (~1 KB document; flush() waits for every version's archival to S3)`);
console.log();
console.log(markdownTable(['server', 'operation', 'throughput'], engineRows));
console.log();
for (const b of blocks) {
  const creates = b.engine.modes.reduce((n, m) => n + m.creates, 0);
  const perCreate = Object.entries(b.engine.requests)
    .sort(([a], [c]) => a.localeCompare(c))
    .map(([command, n]) => `${command.replace(/Command$/, '')} ${(n / creates).toFixed(2)}`)
    .join(', ');
  const flushShare = b.engine.modes.map((m) => `${m.workers === 1 ? 'sequential' : `${m.workers} in flight`} ${fmtNumber((m.flushSeconds / (m.ackSeconds + m.flushSeconds)) * 100)} %`).join(', ');
  console.log(`${b.target}: S3 requests per timed create: ${perCreate || 'none counted'}; share of end-to-end time in flush(): ${flushShare}; background errors: ${b.engine.backgroundErrors}; block run time ${b.seconds.toFixed(1)} s`);
}
if (cephSkipped) console.log(`Ceph: ${cephSkipped}`);
console.log(`Load average at end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log(`Total run time: ${secondsSince(runStart).toFixed(1)} s`);
if (blocks.some((b) => b.engine.backgroundErrors > 0)) process.exitCode = 1;

/** An error with its cause (the adapter's StorageError wraps the SDK's, which names the socket error). */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  const own = `${err.name}${typeof code === 'string' ? ` ${code}` : ''}: ${err.message}`;
  return err.cause === undefined ? own : `${own} <- ${describe(err.cause)}`;
}

/** Round `round`'s part of `total` operations: its first index and its count. */
function share(total: number, round: number): [number, number] {
  const from = Math.floor((total * round) / ROUNDS);
  return [from, Math.floor((total * (round + 1)) / ROUNDS) - from];
}

function count(n: number): number {
  return Math.max(ROUNDS, Math.round(n * SCALE));
}

function envScale(name: string): number {
  const value = process.env[name];
  if (value === undefined || value === '') return 1;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${value}`);
  return n;
}
