/**
 * Background jobs benchmark: archival and backup against a raw copy of the same bytes
 * (see BENCHMARKS.md, section "Background jobs: archival and backup").
 *
 *   npx tsx bench/jobs.bench.ts
 *
 * Knobs (environment): BENCH_JOBS_SCALE (multiplies the records per round, default 1: 25 records
 * × 10 versions, 8 rounds), BENCH_JOBS_CONCURRENCY (the jobs' `jobs.concurrency` and the raw
 * sides' requests in flight, default 16), BENCH_JOBS_CEPH=0 skips Ceph even when a gateway answers.
 * After the rounds, on S3 servers: the S3 requests per archived version of `reference` and `copy`
 * backups, first snapshot and next.
 *
 * Servers: s3rver in a child process (always), the Ceph gateway `test/support/ceph.ts` reports
 * (when it answers a ListBuckets; otherwise the run prints why it was skipped), and the local
 * filesystem blob store (`localStorage`, the embedded default).
 *
 * Per server, one `initXronox` (SQLite index, that blob store) with one runtime tenant database
 * per round, each with its own bucket, and `jobs.archive.mode: 'deferred'` so writes leave their
 * versions to the archive job. Each round fills its own database (R records × V versions of the
 * ~1 KB document, then `flush()`), then, sides alternating (job first in rounds 1, 3, 5, 7, raw
 * first in the others; "same client" is the pooled S3Client, or on fs the engine's FsBlobStore):
 * - archive: `runJob(x, 'archive')` (the sweep) against PUTs of the very same version bytes to
 *   another prefix of the same bucket, `jobs.concurrency` in flight, through the same client;
 * - backup: `runJob(x, 'backup')` against GETs of every version object the backup reads,
 *   `jobs.concurrency` in flight, and one PUT of the documents' concatenation, same client.
 * A fresh database per round keeps the work real: the sweep finds every version pending, and a
 * backup finds no snapshot of the day already there. One untimed warm-up round comes first.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { acquireS3Client } from '../core/adapters/s3/s3-client-pool.js';
import type { SpacesConnectionConfig, XronoxConfigInput } from '../core/config/schema.js';
import type { BlobStore } from '../core/contracts/blob-store.js';
import type { Namespace } from '../core/contracts/index-store.js';
import { initXronox, type JobReport, type JobTarget, runJob, type Xronox } from '../core/index.js';
import { type CephS3, cephS3 } from '../test/support/ceph.js';
import { s3rverConnection, startS3rver } from '../test/support/s3rver.js';
import { makeData } from './support/document.js';
import { describeMachine, loadAverage, packageVersion, shell } from './support/machine.js';
import { fmtNumber, inFlight, markdownTable, median, now, progressLog, secondsSince } from './support/measure.js';

const SCALE = envScale('BENCH_JOBS_SCALE');
const RECORDS = Math.max(5, Math.round(25 * SCALE));
const VERSIONS = 10;
const WARMUP_RECORDS = 10;
/**
 * Many short rounds rather than a few long ones: on a shared machine load comes in bursts of
 * seconds, and short alternating rounds spread them over both sides. Even, so each side goes
 * first in as many rounds as the other.
 */
const ROUNDS = 8;
/**
 * Requests in flight on each raw side, matching the job's own limit: the archive sweep awaits
 * each record (`archiveSweep`) and each version of it (`archiveRecord`), so one PUT at a time;
 * the backup fetches a record's archived versions with `mapInParallel`
 * (`FETCH_CONCURRENCY` = 8 in core/jobs/snapshot.ts), records one after another.
 */
/**
 * `jobs.concurrency` of the engine (BENCH_JOBS_CONCURRENCY, default 16, the setting's default):
 * the sweep archives that many records at once and the backup reads that many version objects at
 * once, so each raw side keeps the same number of requests in flight.
 */
const JOB_CONCURRENCY = Math.max(1, Math.round(Number(process.env.BENCH_JOBS_CONCURRENCY ?? 16)));
const ARCHIVE_IN_FLIGHT = JOB_CONCURRENCY;
const BACKUP_IN_FLIGHT = JOB_CONCURRENCY;
/** Concurrent writers while filling a round's database (untimed). */
const WRITERS = 16;
const COLLECTION = 'orders';
const ACTOR = 'bench';
const REASON = 'benchmark';
const MB = 1e6;

const runStart = now();
const loadStart = loadAverage();

const log = progressLog(runStart);

// ---- servers --------------------------------------------------------------------------------

/** How the raw sides reach the blob store: the same client (or, for fs, the same store) the jobs use. */
interface RawClient {
  put(bucket: string, key: string, body: Uint8Array): Promise<void>;
  get(bucket: string, key: string): Promise<Uint8Array>;
}

interface Server {
  name: string;
  /** The blob-store part of the config; `spaceConnRef` is set on each database when S3. */
  config: Pick<XronoxConfigInput, 'spacesConnections' | 'localStorage'>;
  spaceConnRef?: string;
  /** The bucket of one round's database (created now); `undefined`: localStorage's folder named like the database. */
  bucket(purpose: string): Promise<string | undefined>;
  /** The raw client, given the store the engine opened for a database of this server. */
  raw(engineStore: BlobStore): { client: RawClient; requests: RequestCounter | null; release: () => void };
  cleanup(): Promise<void>;
}

/** S3 requests by command, counted while `on`. */
interface RequestCounter {
  on: boolean;
  counts: Record<string, number>;
}

function s3Raw(connection: SpacesConnectionConfig) {
  return () => {
    // The pool hands out the very S3Client the engine's S3BlobStore holds for this connection.
    const { client, release } = acquireS3Client(connection);
    const requests: RequestCounter = { on: false, counts: {} };
    const name = 'xronoxJobsBenchCounter';
    client.middlewareStack.add(
      (next, context) => (args) => {
        if (requests.on) {
          const command = String(context.commandName ?? 'unknown').replace(/Command$/, '');
          requests.counts[command] = (requests.counts[command] ?? 0) + 1;
        }
        return next(args);
      },
      { step: 'initialize', name },
    );
    const raw: RawClient = {
      put: async (bucket, key, body) => {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: 'application/json' }));
      },
      get: async (bucket, key) => {
        const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        const bytes = await res.Body?.transformToByteArray();
        if (!bytes) throw new Error(`GET ${bucket}/${key} returned no body`);
        return bytes;
      },
    };
    return {
      client: raw,
      requests,
      release: () => {
        client.middlewareStack.remove(name);
        release();
      },
    };
  };
}

async function s3rverServer(): Promise<Server> {
  const server = await startS3rver();
  const connection: SpacesConnectionConfig = s3rverConnection(server);
  return {
    name: 's3rver',
    config: { spacesConnections: { s3: connection } },
    spaceConnRef: 's3',
    bucket: async (purpose) => {
      const name = `xr-jobs-${purpose}`;
      await server.createBuckets([name]);
      return name;
    },
    raw: s3Raw(connection),
    // The data directory goes with the server.
    cleanup: () => server.dispose(),
  };
}

function cephServer(gateway: CephS3): Server {
  const { endpoint, region, accessKey, secretKey } = gateway;
  const connection: SpacesConnectionConfig = { endpoint, region, accessKey, secretKey, forcePathStyle: true, conditionalWrites: true };
  const { client, release } = acquireS3Client(connection);
  // Bucket names are global to the gateway, which tests and other benchmarks share.
  const run = randomBytes(4).toString('hex');
  const buckets: string[] = [];
  return {
    name: 'Ceph',
    config: { spacesConnections: { s3: connection } },
    spaceConnRef: 's3',
    bucket: async (purpose) => {
      const name = `xr-jobs-${purpose}-${run}`;
      await client.send(new CreateBucketCommand({ Bucket: name }));
      buckets.push(name);
      return name;
    },
    raw: s3Raw(connection),
    cleanup: async () => {
      try {
        for (const bucket of buckets) await emptyAndDelete(client, bucket);
      } finally {
        release();
      }
    },
  };
}

async function fsServer(): Promise<Server> {
  const dir = await mkdtemp(join(os.tmpdir(), 'xronox-jobs-bench-blobs-'));
  return {
    name: 'fs',
    config: { localStorage: { basePath: dir, enabled: true } },
    bucket: async () => undefined,
    // No client below the store: the raw side calls the very FsBlobStore the jobs write through
    // (fsync of the file and its folder per object, as every put).
    raw: (store) => ({
      client: {
        put: (bucket, key, body) => store.put(bucket, key, body, { contentType: 'application/json' }),
        get: async (bucket, key) => {
          const bytes = await store.get(bucket, key);
          if (!bytes) throw new Error(`${bucket}/${key} is missing`);
          return bytes;
        },
      },
      requests: null,
      release: () => {},
    }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** The gateway `test/support/ceph.ts` reports, if it answers a ListBuckets within 3 s. */
async function findCeph(): Promise<CephS3 | { skip: string }> {
  if (process.env.BENCH_JOBS_CEPH === '0') return { skip: 'BENCH_JOBS_CEPH=0' };
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

async function emptyAndDelete(client: S3Client, bucket: string): Promise<void> {
  for (;;) {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1000 }));
    const keys = (page.Contents ?? []).map((o) => o.Key).filter((k): k is string => typeof k === 'string');
    if (keys.length === 0) break;
    // One request per 1,000 keys: a round leaves thousands of objects on a shared gateway.
    await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true } }));
  }
  await client.send(new DeleteBucketCommand({ Bucket: bucket }));
}

// ---- one round ------------------------------------------------------------------------------

interface SideResult {
  seconds: number;
  /** This process, user + system. The S3 servers run in other processes; fs work is all here. */
  cpuMicros: number;
  /** S3 requests by command (S3 servers only). */
  requests: Record<string, number>;
}

interface RoundResult {
  versions: number;
  records: number;
  /** UTF-8 bytes of the version documents (what the archive writes, one object each). */
  versionBytes: number;
  /** Version documents plus head documents: what a backup reads. */
  logicalBytes: number;
  /** Compressed bytes the backup wrote (`report.bytes`: its parts). */
  backupBytes: number;
  /** Untimed: writing the round's database and waiting for its blob sync. */
  fillSeconds: number;
  /** The raw backup's GETs alone (its one PUT is the rest of its time). */
  rawGetSeconds: number;
  archive: { job: SideResult; raw: SideResult };
  backup: { job: SideResult; raw: SideResult };
}

type Side = 'job' | 'raw';

interface Fixture {
  x: Xronox;
  target: JobTarget;
  raw: RawClient;
  requests: RequestCounter | null;
}

/** Writes R records × V versions into the round's database and waits for the blob sync (current.json only: archival is deferred). */
async function fill(x: Xronox, tenantId: string, records: number): Promise<string[]> {
  const coll = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId, collection: COLLECTION });
  const created = await coll.createMany(Array.from({ length: records }, (_, i) => makeData(i)), ACTOR, REASON);
  const ids = created.map((c) => c.id);
  let seq = records;
  for (let ov = 1; ov < VERSIONS; ov++) {
    const base = seq;
    seq += records;
    await inFlight(records, WRITERS, (i) => coll.update(ids[i]!, makeData(base + i), ov - 1, ACTOR, REASON));
  }
  const report = await x.flush();
  if (report.failed > 0 || report.deadLettered > 0) throw new Error(`blob sync failed for ${report.failed} records (${report.deadLettered} dead-lettered)`);
  return ids;
}

async function timed(fixture: Fixture, work: () => Promise<void>): Promise<SideResult> {
  const counter = fixture.requests;
  if (counter) counter.counts = {};
  if (counter) counter.on = true;
  const cpu = process.cpuUsage();
  const start = now();
  try {
    await work();
  } finally {
    if (counter) counter.on = false;
  }
  const seconds = secondsSince(start);
  const used = process.cpuUsage(cpu);
  return { seconds, cpuMicros: used.user + used.system, requests: { ...(counter?.counts ?? {}) } };
}

async function pair(fixture: Fixture, jobFirst: boolean, job: () => Promise<void>, raw: () => Promise<void>): Promise<Record<Side, SideResult>> {
  const out: Partial<Record<Side, SideResult>> = {};
  for (const side of jobFirst ? (['job', 'raw'] as const) : (['raw', 'job'] as const)) {
    out[side] = await timed(fixture, side === 'job' ? job : raw);
  }
  return out as Record<Side, SideResult>;
}

async function runRound(fixture: Fixture, tenantId: string, records: number, jobFirst: boolean): Promise<RoundResult> {
  const { x, target, raw } = fixture;
  const fillStart = now();
  const ids = await fill(x, tenantId, records);
  const fillSeconds = secondsSince(fillStart);
  const versionsLoc = target.blobs.versions!;
  const ns: Namespace = { dbName: target.dbName, collection: COLLECTION };

  // The exact committed bytes of every pending version, read from the index before either side
  // runs: the raw archive PUTs these, and the objects the job writes must equal them.
  const versions: Array<{ id: string; ov: number; body: Buffer }> = [];
  for (const id of ids) {
    for (const v of await target.index.listUnarchived(ns, id)) versions.push({ id, ov: v.ov, body: Buffer.from(v.body!, 'utf8') });
  }
  if (versions.length !== records * VERSIONS) throw new Error(`${target.dbName}: ${versions.length} versions pending before the archive job, expected ${records * VERSIONS}`);
  const heads = await target.index.listHeads(ns, { filter: null, includeDeleted: true, sort: { field: 'id', direction: 1 }, limit: records + 1 });
  const headBytes = heads.reduce((n, h) => n + Buffer.byteLength(h.body, 'utf8'), 0);
  const versionBytes = versions.reduce((n, v) => n + v.body.byteLength, 0);

  // ---- archive
  let archiveReport: JobReport | undefined;
  const archive = await pair(
    fixture,
    jobFirst,
    async () => {
      archiveReport = await runJob(x, 'archive', { databases: [target.dbName], log: null });
    },
    () => inFlight(versions.length, ARCHIVE_IN_FLIGHT, (i) => raw.put(versionsLoc.bucket, `raw-archive/${COLLECTION}/${versions[i]!.id}/v${versions[i]!.ov}.json`, versions[i]!.body)),
  );
  checkReport(archiveReport, 'archivedVersions', versions.length);
  // The counter sits on the raw side's client: seeing the job's PUTs there proves both sides share it.
  if (fixture.requests && (archive.job.requests['PutObject'] ?? 0) < versions.length) {
    throw new Error(`the raw side's S3Client saw ${archive.job.requests['PutObject'] ?? 0} of the archive job's ${versions.length} PUTs: it is not the adapter's client`);
  }
  const objects = await countKeys(target.blob, versionsLoc.bucket, `${versionsLoc.prefix}/`);
  if (objects !== versions.length) throw new Error(`${target.dbName}: ${objects} objects under ${versionsLoc.bucket}/${versionsLoc.prefix}/ after the archive job, expected ${versions.length}`);

  // ---- backup
  let backupReport: JobReport | undefined;
  let rawGetSeconds = 0;
  const got: Uint8Array[] = new Array<Uint8Array>(versions.length);
  const backup = await pair(
    fixture,
    jobFirst,
    async () => {
      backupReport = await runJob(x, 'backup', { databases: [target.dbName], log: null });
    },
    async () => {
      const getStart = now();
      await inFlight(versions.length, BACKUP_IN_FLIGHT, async (i) => {
        got[i] = await raw.get(versionsLoc.bucket, `${versionsLoc.prefix}/${COLLECTION}/${versions[i]!.id}/v${versions[i]!.ov}.json`);
      });
      rawGetSeconds = secondsSince(getStart);
      // The same logical bytes the backup holds: every version document and every head document
      // (the raw side has the heads in memory; the job reads them from the index).
      const copy = Buffer.concat([...heads.map((h) => Buffer.from(h.body, 'utf8')), ...got]);
      await raw.put(target.blobs.backups!.bucket, `raw-backup/${target.dbName}.bin`, copy);
    },
  );
  checkReport(backupReport, 'backedUpVersions', versions.length);
  // Every object the archive job wrote holds exactly the committed bytes.
  for (let i = 0; i < versions.length; i++) {
    if (!versions[i]!.body.equals(got[i]!)) throw new Error(`${target.dbName}: ${versions[i]!.id} v${versions[i]!.ov} in the versions bucket differs from the committed bytes`);
  }
  return {
    versions: versions.length,
    records,
    versionBytes,
    logicalBytes: versionBytes + headBytes,
    backupBytes: backupReport!.bytes,
    fillSeconds,
    rawGetSeconds,
    archive,
    backup,
  };
}

function checkReport(report: JobReport | undefined, count: string, expected: number): void {
  if (!report) throw new Error('the job did not report');
  if (!report.complete || report.databases.done !== 1 || report.counts[count] !== expected) {
    throw new Error(`${report.job} did not do the whole database: ${count} ${report.counts[count] ?? 0} of ${expected}; ${JSON.stringify({ databases: report.databases, skipped: report.skipped, failures: report.failures })}`);
  }
}

async function countKeys(blob: BlobStore, bucket: string, prefix: string): Promise<number> {
  let n = 0;
  let startAfter: string | undefined;
  do {
    const page = await blob.list(bucket, prefix, { limit: 1000, ...(startAfter ? { startAfter } : {}) });
    n += page.keys.length;
    startAfter = page.nextStartAfter ?? undefined;
  } while (startAfter);
  return n;
}

// ---- one server -----------------------------------------------------------------------------

interface Block {
  server: string;
  rounds: RoundResult[];
  seconds: number;
  /** S3 requests per archived version of reference and copy backups (first and next snapshot); `null` where requests are not counted. */
  references: Record<string, { versions: number; first: Record<string, number>; next: Record<string, number> }> | null;
}

/**
 * Requests per version of the reference formats, on the last round's database (every version
 * archived, a self-contained snapshot already there): a second engine on the same files with
 * `jobs.backup.format` set takes two snapshots; the first reads each version once (and, `copy`,
 * copies it), the next reads none.
 */
async function referenceRequests(
  server: Server,
  dir: string,
  databases: Array<{ tenantId: string; dbConnRef: string; dbName: string; spaceConnRef?: string; bucket?: string }>,
  dbName: string,
  requests: RequestCounter,
): Promise<Block['references']> {
  const out: NonNullable<Block['references']> = {};
  for (const format of ['reference', 'copy'] as const) {
    const xr = initXronox({
      dbConnections: { local: { sqlitePath: join(dir, 'xronox.sqlite') } },
      ...server.config,
      databases: { runtime: { tenantDatabases: databases } },
      jobs: { archive: { mode: 'deferred', sweepAfterMinutes: 0 }, concurrency: JOB_CONCURRENCY, backup: { format } },
    } satisfies XronoxConfigInput);
    try {
      const counted = async (at: string) => {
        requests.counts = {};
        requests.on = true;
        const report = await runJob(xr, 'backup', { databases: [dbName], now: new Date(at), log: null });
        requests.on = false;
        if (!report.complete) throw new Error(`the ${format} backup of ${dbName} did not complete: ${JSON.stringify(report.failures)}`);
        return { versions: report.counts.backedUpVersions ?? 0, counts: { ...requests.counts } };
      };
      const day = format === 'reference' ? '2030-01-01' : '2030-01-02';
      const first = await counted(`${day}T01:00:00.000Z`);
      const next = await counted(`${day}T02:00:00.000Z`);
      out[format] = { versions: first.versions, first: first.counts, next: next.counts };
    } finally {
      await xr.shutdown();
    }
  }
  return out;
}

async function runServer(server: Server): Promise<Block> {
  const start = now();
  const dir = await mkdtemp(join(os.tmpdir(), 'xronox-jobs-bench-'));
  // One database per round, each with its own bucket: version keys do not name the database.
  const names = ['w', ...Array.from({ length: ROUNDS }, (_, r) => `r${r + 1}`)];
  const databases: Array<{ tenantId: string; dbConnRef: string; dbName: string; spaceConnRef?: string; bucket?: string }> = [];
  for (const name of names) {
    const bucket = await server.bucket(name);
    databases.push({
      tenantId: `jobs-${name}`,
      dbConnRef: 'local',
      dbName: `jobs_${name}`,
      ...(server.spaceConnRef ? { spaceConnRef: server.spaceConnRef } : {}),
      ...(bucket ? { bucket } : {}),
    });
  }
  const backgroundErrors: unknown[] = [];
  let x: Xronox | undefined;
  let release = () => {};
  try {
    x = initXronox(
      {
        dbConnections: { local: { sqlitePath: join(dir, 'xronox.sqlite') } },
        ...server.config,
        databases: { runtime: { tenantDatabases: databases } },
        jobs: { archive: { mode: 'deferred', sweepAfterMinutes: 0 }, concurrency: JOB_CONCURRENCY },
      } satisfies XronoxConfigInput,
      { onBackgroundError: (err) => backgroundErrors.push(err) },
    );
    const engine = x;
    const targetOf = (dbName: string) => {
      const t = engine.jobTarget(engine.route({ databaseType: 'runtime', tier: 'tenant', tenantId: databases.find((d) => d.dbName === dbName)!.tenantId, collection: COLLECTION }));
      if (!t.blobs.versions || !t.blobs.backups) throw new Error(`${dbName} has no versions or backups location`);
      return t;
    };
    const raw = server.raw(targetOf(databases[0]!.dbName).blob);
    release = raw.release;
    const fixtureFor = (dbName: string): Fixture => ({ x: engine, target: targetOf(dbName), raw: raw.client, requests: raw.requests });

    log(`${server.name}: warm-up round (${WARMUP_RECORDS} records × ${VERSIONS} versions, untimed)`);
    const warm = await runRound(fixtureFor(databases[0]!.dbName), databases[0]!.tenantId, WARMUP_RECORDS, true);
    log(`${server.name}: warm-up done: fill ${warm.fillSeconds.toFixed(1)} s, archive ${warm.archive.job.seconds.toFixed(1)} / ${warm.archive.raw.seconds.toFixed(1)} s, backup ${warm.backup.job.seconds.toFixed(1)} / ${warm.backup.raw.seconds.toFixed(1)} s`);
    const rounds: RoundResult[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const db = databases[r + 1]!;
      const result = await runRound(fixtureFor(db.dbName), db.tenantId, RECORDS, r % 2 === 0);
      rounds.push(result);
      log(
        `${server.name}: round ${r + 1}/${ROUNDS} (${r % 2 === 0 ? 'job' : 'raw'} first): archive ${fmtNumber(result.versions / result.archive.job.seconds)} vs raw ${fmtNumber(result.versions / result.archive.raw.seconds)} versions/s; ` +
          `backup ${fmtNumber(result.logicalBytes / MB / result.backup.job.seconds)} vs raw ${fmtNumber(result.logicalBytes / MB / result.backup.raw.seconds)} MB/s ` +
          `(raw GETs ${result.rawGetSeconds.toFixed(2)} of ${result.backup.raw.seconds.toFixed(2)} s); fill ${result.fillSeconds.toFixed(1)} s`,
      );
    }
    if (backgroundErrors.length > 0) throw new Error(`${backgroundErrors.length} background errors, the first: ${describe(backgroundErrors[0])}`);
    const references = raw.requests ? await referenceRequests(server, dir, databases, databases[ROUNDS]!.dbName, raw.requests) : null;
    return { server: server.name, rounds, seconds: secondsSince(start), references };
  } finally {
    await x?.shutdown();
    release();
    await rm(dir, { recursive: true, force: true });
  }
}

// ---- run ------------------------------------------------------------------------------------

const ceph = await findCeph();
console.log('Machine');
for (const line of describeMachine(os.tmpdir())) console.log(`  ${line}`);
console.log(`  sdk      @aws-sdk/client-s3 ${packageVersion('@aws-sdk/client-s3')}, s3rver ${packageVersion('s3rver')}, better-sqlite3 ${packageVersion('better-sqlite3')}`);
if (!('skip' in ceph)) console.log(`  ceph     ${shell('ceph --version').replace(/ \(.*$/, '') || 'version unknown'}, radosgw at ${ceph.endpoint}`);
console.log(`Command    npx tsx bench/jobs.bench.ts${process.env.BENCH_JOBS_SCALE ? `   (with BENCH_JOBS_SCALE=${process.env.BENCH_JOBS_SCALE})` : ''}`);
console.log(
  `Work       per round and server: ${RECORDS} records × ${VERSIONS} versions = ${RECORDS * VERSIONS} versions of ${Buffer.byteLength(JSON.stringify(makeData(0)))} B of JSON data; ` +
    `${ROUNDS} rounds (fresh database and bucket each) after one warm-up round of ${WARMUP_RECORDS} records`,
);
console.log(`In flight  jobs.concurrency ${JOB_CONCURRENCY}: archive job and raw PUTs ${ARCHIVE_IN_FLIGHT}; backup job and raw GETs ${BACKUP_IN_FLIGHT}`);
console.log();

const blocks: Block[] = [];
const skipped: string[] = [];
const servers: Array<() => Promise<Server>> = [s3rverServer];
if ('skip' in ceph) skipped.push(`Ceph: skipped, ${ceph.skip}`);
else servers.push(async () => cephServer(ceph));
servers.push(fsServer);
for (const make of servers) {
  const server = await make();
  try {
    blocks.push(await runServer(server));
  } catch (err) {
    // A shared Ceph gateway can go away mid-run: report it and keep the other servers' rows.
    skipped.push(`${server.name}: abandoned after ${secondsSince(runStart).toFixed(1)} s: ${describe(err)}`);
    process.exitCode = 1;
  } finally {
    await server.cleanup().catch((err: unknown) => console.error(`${server.name}: cleanup failed: ${describe(err)}`));
  }
}
for (const line of skipped) log(line);
log('done');

// ---- report ---------------------------------------------------------------------------------

const archiveRows: string[][] = [];
const backupRows: string[][] = [];
const notes: string[] = [];
for (const b of blocks) {
  const first = b.rounds[0]!;
  const rate = (n: number, s: SideResult) => n / s.seconds;
  const med = (f: (r: RoundResult) => number) => median(b.rounds.map(f));
  const spread = (f: (r: RoundResult) => number) => `${Math.min(...b.rounds.map(f)).toFixed(2)}–${Math.max(...b.rounds.map(f)).toFixed(2)}`;
  const cpu = (f: (r: RoundResult) => SideResult) => fmtNumber(med((r) => f(r).cpuMicros / r.versions));

  const aJob = (r: RoundResult) => rate(r.versions, r.archive.job);
  const aRaw = (r: RoundResult) => rate(r.versions, r.archive.raw);
  const aRatio = (r: RoundResult) => aJob(r) / aRaw(r);
  const perVersion = first.versionBytes / first.versions;
  archiveRows.push([
    b.server,
    `${fmtNumber(med(aJob))} versions/s, ${fmtNumber(med((r) => r.versionBytes / MB / r.archive.job.seconds))} MB/s`,
    `${fmtNumber(med(aRaw))} PUTs/s, ${fmtNumber(med((r) => r.versionBytes / MB / r.archive.raw.seconds))} MB/s`,
    `${med(aRatio).toFixed(2)}×`,
    spread(aRatio),
    `${cpu((r) => r.archive.job)} / ${cpu((r) => r.archive.raw)}`,
  ]);

  const bJob = (r: RoundResult) => r.logicalBytes / MB / r.backup.job.seconds;
  const bRaw = (r: RoundResult) => r.logicalBytes / MB / r.backup.raw.seconds;
  const bRatio = (r: RoundResult) => bJob(r) / bRaw(r);
  backupRows.push([
    b.server,
    `${fmtNumber(med(bJob))} MB/s (${fmtNumber(med((r) => r.versions / r.backup.job.seconds))} versions/s)`,
    `${fmtNumber(med(bRaw))} MB/s (${fmtNumber(med((r) => r.versions / r.backup.raw.seconds))} GETs/s)`,
    `${med(bRatio).toFixed(2)}×`,
    spread(bRatio),
    `${fmtNumber(first.logicalBytes / 1e3)} kB → ${fmtNumber(med((r) => r.backupBytes) / 1e3)} kB`,
    `${cpu((r) => r.backup.job)} / ${cpu((r) => r.backup.raw)}`,
  ]);

  const requests = (f: (r: RoundResult) => SideResult) => {
    const total: Record<string, number> = {};
    for (const r of b.rounds) for (const [k, n] of Object.entries(f(r).requests)) total[k] = (total[k] ?? 0) + n;
    const versions = b.rounds.reduce((n, r) => n + r.versions, 0);
    return Object.entries(total).sort(([a], [c]) => a.localeCompare(c)).map(([k, n]) => `${k} ${(n / versions).toFixed(3)}`).join(', ') || 'not counted (no S3 client)';
  };
  notes.push(
    `${b.server}: ${perVersion.toFixed(0)} B per version document; S3 requests per version: archive job ${requests((r) => r.archive.job)}; backup job ${requests((r) => r.backup.job)}; ` +
      `median seconds job/raw: archive ${med((r) => r.archive.job.seconds).toFixed(2)}/${med((r) => r.archive.raw.seconds).toFixed(2)}, backup ${med((r) => r.backup.job.seconds).toFixed(2)}/${med((r) => r.backup.raw.seconds).toFixed(2)}; block run time ${b.seconds.toFixed(1)} s`,
  );
}

console.log();
console.log(`Archival: runJob(x, 'archive') (the sweep) against raw PUTs of the same version bytes, ${ARCHIVE_IN_FLIGHT} in flight, same client (median of ${ROUNDS} rounds; ratio = job / raw throughput, above 1× is faster; per round = lowest and highest ratio of one round; MB = 10^6 B; CPU = this process, user + system, per version)`);
console.log();
console.log(markdownTable(['server', 'archive job', 'raw PUT', 'job/raw', 'per round', 'client CPU µs/version job / raw'], archiveRows));
console.log();
console.log(`Backup: runJob(x, 'backup') against raw GETs of every version object (${BACKUP_IN_FLIGHT} in flight) and one PUT of the documents' concatenation, same client; MB/s of logical bytes (head and version documents), the same bytes on both sides (median of ${ROUNDS} rounds)`);
console.log();
console.log(markdownTable(['server', 'backup job', 'raw copy', 'job/raw', 'per round', 'logical → written (gzip)', 'client CPU µs/version job / raw'], backupRows));
console.log();
console.log(`Reference backups: S3 requests per archived version of one round's database, first snapshot → next snapshot (jobs.backup.format; target 0 GetObject per already-archived version on the next)`);
for (const b of blocks) {
  if (!b.references) continue;
  for (const [format, r] of Object.entries(b.references)) {
    const per = (counts: Record<string, number>) => Object.entries(counts).sort(([a], [c]) => a.localeCompare(c)).map(([k, n]) => `${k} ${(n / Math.max(1, r.versions)).toFixed(3)}`).join(', ') || 'none';
    console.log(`  ${b.server} ${format}: ${r.versions} versions; first ${per(r.first)} → next ${per(r.next)}`);
  }
}
console.log();
for (const line of [...notes, ...skipped]) console.log(line);
console.log(`Load average at start: ${loadStart}; at end: ${loadAverage()}`);
console.log(`Total run time: ${secondsSince(runStart).toFixed(1)} s`);

// ---- helpers --------------------------------------------------------------------------------

/** An error with its cause (StorageError wraps the SDK's error, which names the socket error). */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  const own = `${err.name}${typeof code === 'string' ? ` ${code}` : ''}: ${err.message}`;
  return err.cause === undefined ? own : `${own} <- ${describe(err.cause)}`;
}

function envScale(name: string): number {
  const value = process.env[name];
  if (value === undefined || value === '') return 1;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${value}`);
  return n;
}
