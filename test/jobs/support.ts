/**
 * Shared pieces of the job tests: the backends they run on (the embedded default, s3rver started
 * by the test, Ceph when running), configs written to files (the handlers and the CLI read their
 * config from a file, as deployed), real event payloads, and state snapshots to compare.
 */
import { createHash, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { Context, S3Event, S3EventRecord, ScheduledEvent } from 'aws-lambda';
import Database from 'better-sqlite3';
import { FsBlobStore } from '../../core/adapters/fs/fs-blob-store.js';
import { S3BlobStore } from '../../core/adapters/s3/s3-blob-store.js';
import { sqliteIndexStore } from '../support/sqlite-index.js';
import type { XronoxConfigInput } from '../../core/config/schema.js';
import type { BlobStore } from '../../core/contracts/blob-store.js';
import type { IndexStore } from '../../core/contracts/index-store.js';
import { cephS3 } from '../support/ceph.js';
import { type S3rverHandle, s3rverConnection, startS3rver } from '../support/s3rver.js';
import { seededRandom } from '../support/random.js';
import { tempDir } from '../support/temp.js';
import { afterAll, beforeAll } from 'vitest';
import type { Xronox } from '../../core/xronox.js';
import { container } from '../../functions/jobs/handlers.js';
import { main } from '../../functions/cli/xronox.js';

type TempDir = ReturnType<typeof tempDir>;

// ---- backends -------------------------------------------------------------------------------

export interface JobBackend {
  name: string;
  /** Why it cannot run here (printed, never silent). */
  skip?: string;
  /** Connections and per-database fields for a config whose files live in `dir`. */
  setup(): Promise<BackendInstance>;
}

export interface BackendInstance {
  connections(dir: string): Pick<XronoxConfigInput, 'spacesConnections' | 'localStorage'>;
  /** Fields of a database entry (its own bucket on S3, so tests never share a key space). */
  databaseFields(dbName: string): Record<string, string>;
  /** The bucket each kind of a database's blobs lands in. */
  bucketOf(dbName: string): string;
  /** Creates the buckets of these databases (S3 only). */
  prepare(dbNames: string[]): Promise<void>;
  /** A blob store over the same storage, for inspecting what the jobs wrote. */
  inspect(dir: string): BlobStore;
  dispose(): Promise<void>;
}

let s3rver: S3rverHandle | undefined;

const run = Date.now().toString(36);
const s3Bucket = (dbName: string) => `xj-${run}-${dbName.replace(/_/g, '-')}`.slice(0, 63).replace(/-+$/, '');

export const JOB_BACKENDS: JobBackend[] = [
  {
    name: 'sqlite × fs (embedded default)',
    async setup() {
      return {
        connections: (dir) => ({ localStorage: { basePath: join(dir, 'blobs'), enabled: true } }),
        databaseFields: () => ({}),
        bucketOf: (dbName) => dbName,
        prepare: async () => undefined,
        inspect: (dir) => new FsBlobStore({ basePath: join(dir, 'blobs') }),
        dispose: async () => undefined,
      };
    },
  },
  {
    name: 'sqlite × s3 (s3rver)',
    async setup() {
      const server = (s3rver ??= await startS3rver());
      return {
        connections: () => ({ spacesConnections: { s3: s3rverConnection(server) } }),
        databaseFields: (dbName) => ({ spaceConnRef: 's3', bucket: s3Bucket(dbName) }),
        bucketOf: s3Bucket,
        prepare: (dbNames) => server.createBuckets(dbNames.map(s3Bucket)),
        inspect: () => new S3BlobStore({ ref: 'inspect', connection: s3rverConnection(server) }),
        dispose: async () => {
          await s3rver?.dispose();
          s3rver = undefined;
        },
      };
    },
  },
  (() => {
    const ceph = cephS3();
    if ('skip' in ceph) return { name: 'sqlite × s3 (Ceph)', skip: ceph.skip, setup: () => Promise.reject(new Error(ceph.skip)) };
    const connection = { endpoint: ceph.endpoint, region: ceph.region, accessKey: ceph.accessKey, secretKey: ceph.secretKey, forcePathStyle: true };
    return {
      name: 'sqlite × s3 (Ceph)',
      async setup(): Promise<BackendInstance> {
        return {
          connections: () => ({ spacesConnections: { s3: connection } }),
          databaseFields: (dbName) => ({ spaceConnRef: 's3', bucket: s3Bucket(dbName) }),
          bucketOf: s3Bucket,
          prepare: async (dbNames) => {
            const client = new S3Client({ region: ceph.region, endpoint: ceph.endpoint, forcePathStyle: true, credentials: { accessKeyId: ceph.accessKey, secretAccessKey: ceph.secretKey } });
            try {
              for (const Bucket of dbNames.map(s3Bucket)) {
                await client.send(new CreateBucketCommand({ Bucket })).catch((err: { name?: string }) => {
                  if (err.name !== 'BucketAlreadyOwnedByYou' && err.name !== 'BucketAlreadyExists') throw err;
                });
              }
            } finally {
              client.destroy();
            }
          },
          inspect: () => new S3BlobStore({ ref: 'inspect', connection }),
          dispose: async () => undefined,
        };
      },
    };
  })(),
];

for (const b of JOB_BACKENDS) if (b.skip) console.warn(`[xronox] SKIPPED the job tests on ${b.name}: ${b.skip}`);

// ---- configs --------------------------------------------------------------------------------

export interface Names {
  rt: string;
  analytics: string;
  kn: string;
  msg: string;
  logs: string;
}

export function freshNames(): Names {
  const s = randomUUID().replace(/-/g, '').slice(0, 8);
  return { rt: `rt_${s}`, analytics: `an_${s}`, kn: `kn_${s}`, msg: `msg_${s}`, logs: `logs_${s}` };
}

/** A config with a runtime tenant `acme` (counters in its own analytics database), knowledge, messaging and logs. */
export function jobConfig(inst: BackendInstance, dir: string, names: Names, extra: Partial<XronoxConfigInput> = {}): XronoxConfigInput {
  const db = (dbName: string) => ({ dbConnRef: 'local', dbName, ...inst.databaseFields(dbName) });
  return {
    dbConnections: { local: { sqlitePath: join(dir, 'xronox.sqlite') } },
    ...inst.connections(dir),
    databases: {
      runtime: { tenantDatabases: [{ tenantId: 'acme', ...db(names.rt), analyticsDbName: names.analytics }] },
      knowledge: { genericDatabase: db(names.kn) },
      messaging: { genericDatabase: db(names.msg) },
      logs: { genericDatabase: db(names.logs) },
    },
    collectionMaps: { orders: { indexedProps: ['status', 'sku', 'total'] } },
    counterRules: { rules: [{ name: 'bigOrders', on: ['CREATE', 'UPDATE'], when: { total: { $gte: 100 } } }] },
    jobs: { archive: { mode: 'deferred', sweepAfterMinutes: 15 }, leaseSeconds: 2 },
    ...extra,
  };
}

/** Writes the config where the handlers (XRONOX_CONFIG_FILE) and the CLI (--config) read it. */
export function writeConfig(dir: string, config: XronoxConfigInput): string {
  const file = join(dir, 'xronox.config.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

// ---- events ---------------------------------------------------------------------------------

let sequencer = 0;

/** An S3 `ObjectCreated:Put` record as S3 sends it (event structure 2.1), key URL-encoded. */
export function s3Record(bucket: string, key: string, size = 0): S3EventRecord {
  sequencer++;
  return {
    eventVersion: '2.1',
    eventSource: 'aws:s3',
    awsRegion: 'us-east-1',
    eventTime: new Date().toISOString(),
    eventName: 'ObjectCreated:Put',
    userIdentity: { principalId: 'AWS:AIDAEXAMPLEXRONOX' },
    requestParameters: { sourceIPAddress: '127.0.0.1' },
    responseElements: { 'x-amz-request-id': randomUUID().replace(/-/g, '').slice(0, 16).toUpperCase(), 'x-amz-id-2': createHash('sha256').update(key).digest('base64') },
    s3: {
      s3SchemaVersion: '1.0',
      configurationId: 'xronox-archive-current-json',
      bucket: { name: bucket, ownerIdentity: { principalId: 'A3NL1KOZZKExample' }, arn: `arn:aws:s3:::${bucket}` },
      object: {
        key: encodeURIComponent(key).replace(/%2F/g, '/').replace(/%20/g, '+'),
        size,
        eTag: createHash('md5').update(`${key}${sequencer}`).digest('hex'),
        sequencer: sequencer.toString(16).toUpperCase().padStart(16, '0'),
      },
    },
  };
}

export function s3Event(records: S3EventRecord[]): S3Event {
  return { Records: records };
}

/** An EventBridge scheduled event as a `schedule` (rate or cron) rule delivers it. */
export function scheduledEvent(at: Date, rule: string): ScheduledEvent {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: '123456789012',
    time: at.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region: 'us-east-1',
    resources: [`arn:aws:events:us-east-1:123456789012:rule/${rule}`],
    detail: {},
  };
}

/** A Lambda context with a deadline, as Lambda passes it. */
export function lambdaContext(functionName: string, remainingMs = 900_000): Context {
  const deadline = Date.now() + remainingMs;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`,
    memoryLimitInMB: '1024',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `2026/01/01/[$LATEST]${randomUUID().replace(/-/g, '')}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

// ---- randomness ---------------------------------------------------------------------------

/** A seeded generator: the same seed gives the same shuffles and drops every run. */
export const seeded = seededRandom;

export function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

// ---- state snapshots ----------------------------------------------------------------------

/**
 * Everything the index holds for these databases, through the port, field by field: per
 * collection every head, every version entry, the collection version, the claims, and the
 * counter totals (in `countersDb`, the analytics database for runtime).
 */
export async function indexState(store: IndexStore, databases: Array<{ dbName: string; countersDb: string }>) {
  const out: Record<string, unknown> = {};
  for (const { dbName, countersDb } of databases) {
    for (const collection of await store.listCollections(dbName)) {
      const ns = { dbName, collection };
      const heads = await store.listHeads(ns, { filter: null, includeDeleted: true, sort: { field: 'id', direction: 1 }, limit: 100_000 });
      out[`${dbName}/${collection}`] = {
        heads,
        versions: await Promise.all(heads.map((h) => store.listVersions(ns, h.id, { limit: 100_000 }))),
        cv: await store.getCollectionVersion(ns),
        claims: await store.listClaims(ns, { limit: 100_000 }),
        counters: await store.getCounters(countersDb, collection),
      };
    }
  }
  return out;
}

export function openIndex(dir: string): IndexStore {
  return sqliteIndexStore({ path: join(dir, 'xronox.sqlite') });
}

/** Every row of every table of the SQLite file, sorted: the whole index, byte for byte. */
export function sqliteDump(path: string): Record<string, unknown[]> {
  const db = new Database(path, { readonly: true });
  try {
    const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as Array<{ name: string }>).map((t) => t.name);
    const out: Record<string, unknown[]> = {};
    for (const table of tables) {
      const rows = db.prepare(`SELECT * FROM "${table}"`).all() as Array<Record<string, unknown>>;
      out[table] = rows.map((r) => JSON.stringify(r, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('base64') : v))).sort();
    }
    return out;
  } finally {
    db.close();
  }
}

/**
 * Every object under a local blob folder with the SHA-256 of its bytes. Temporary files of a
 * put cut off by SIGKILL (`*.xronox-tmp`) are not objects (no listing or read ever sees them).
 */
export function blobFiles(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (!entry.name.endsWith('.xronox-tmp')) out[relative(root, path)] = createHash('sha256').update(readFileSync(path)).digest('hex');
    }
  };
  walk(root);
  return out;
}

/** Every key under a prefix (paged). */
export async function allKeys(blob: BlobStore, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let startAfter: string | undefined;
  for (let pages = 0; pages < 10_000; pages++) {
    const page = await blob.list(bucket, prefix, startAfter ? { startAfter } : {});
    keys.push(...page.keys);
    startAfter = page.nextStartAfter ?? undefined;
    if (!startAfter) return keys;
  }
  throw new Error(`listing ${bucket}/${prefix} did not end`);
}

/**
 * The backend of one handler test file: set up once, a blob store on it for inspection, a temp
 * folder, the Xronox instances the tests open (shut down after), and the handlers' container and
 * XRONOX_CONFIG_FILE restored at the end. Registers its own beforeAll and afterAll.
 */
export function useJobBackend(backend: JobBackend, folder: string): { inst: BackendInstance; inspect: BlobStore; dir: TempDir; open: Xronox[] } {
  const savedConfigFile = process.env.XRONOX_CONFIG_FILE;
  const fixture = { dir: tempDir(folder), open: [] as Xronox[] } as { inst: BackendInstance; inspect: BlobStore; dir: TempDir; open: Xronox[] };
  beforeAll(async () => {
    fixture.inst = await backend.setup();
    fixture.inspect = fixture.inst.inspect(fixture.dir.path);
  });
  afterAll(async () => {
    await Promise.all(fixture.open.map((x) => x.shutdown()));
    await container.close();
    await fixture.inspect?.close();
    await fixture.inst?.dispose();
    if (savedConfigFile === undefined) delete process.env.XRONOX_CONFIG_FILE;
    else process.env.XRONOX_CONFIG_FILE = savedConfigFile;
    fixture.dir.cleanup();
  });
  return fixture;
}

/** Runs the CLI (`xronox <args>`) in this process; returns its exit code and what it wrote. */
export async function cliInProcess(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const sink = (append: (s: string) => void) => ({ write: (chunk: string) => (append(chunk), true) }) as unknown as NodeJS.WritableStream;
  const code = await main(args, { stdout: sink((s) => (stdout += s)), stderr: sink((s) => (stderr += s)) });
  return { code, stdout, stderr };
}
