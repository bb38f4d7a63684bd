/**
 * Child process of `large-content.test.ts`: one content round trip of `sizeMiB` MiB through a
 * fresh Xronox (create, then getLatest), in a process of its own so that its peak RSS
 * (`resourceUsage().maxRSS`) measures that round trip and nothing else of the test run. Then,
 * with the round trip's memory released, content one byte over the limit (`limits.maxContentBytes`,
 * default 64 MiB) must be refused. Prints one JSON line (`LargeContentReport`).
 *
 * Argument: JSON `LargeContentArgs`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { DEFAULT_MAX_CONTENT_BYTES } from '../../../core/engine/content.js';
import { ValidationError } from '../../../core/errors.js';
import { initXronox } from '../../../core/xronox.js';

export interface LargeContentArgs {
  sizeMiB: number;
  sqlitePath: string;
  /** The local blob folder, or an S3 endpoint (s3rver, through the test's counting proxy). */
  blobs: { basePath: string } | { endpoint: string; bucket: string };
  /** Also try one byte over the default limit. */
  overLimit: boolean;
}

export interface LargeContentReport {
  bytes: number;
  roundTripOk: boolean;
  contentKey: string;
  writeMs: number;
  readMs: number;
  /** RSS when the input string was ready, before the write. */
  rssBeforeMiB: number;
  /** Peak RSS of the process up to the end of the read. */
  peakRssMiB: number;
  /** Milliseconds from the start of the process to each step, to see where a slow run spends its time. */
  steps: Record<string, number>;
  /** With `overLimit`: the refusal's class and message, and whether any record was written. */
  overLimit?: { error: string; message: string; recordsAfter: number };
}

const MiB = 1024 * 1024;
const args = JSON.parse(process.argv[2] ?? '{}') as LargeContentArgs;
const steps: Record<string, number> = {};
const step = (name: string) => (steps[name] = Math.round(performance.now()));

const x = initXronox({
  dbConnections: { local: { sqlitePath: args.sqlitePath } },
  ...('basePath' in args.blobs
    ? { localStorage: { basePath: args.blobs.basePath, enabled: true } }
    : {
        spacesConnections: {
          s3: {
            endpoint: args.blobs.endpoint,
            region: 'us-east-1',
            accessKey: 'S3RVER',
            secretKey: 'S3RVER',
            forcePathStyle: true,
            conditionalWrites: false,
            buckets: { records: args.blobs.bucket, versions: args.blobs.bucket, content: args.blobs.bucket, backups: args.blobs.bucket },
          },
        },
      }),
  databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', ...('endpoint' in args.blobs ? { spaceConnRef: 's3' } : {}), dbName: 'rt_acme' }] } },
  collectionMaps: { docs: { indexedProps: ['title'], base64Props: { file: { contentType: 'application/octet-stream' } } } },
});
const docs = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'docs' });

let input: string;
let sha256: string;
{
  const bytes = randomBytes(args.sizeMiB * MiB);
  sha256 = createHash('sha256').update(bytes).digest('hex');
  input = bytes.toString('base64');
}
step('inputReady');
const rssBefore = process.memoryUsage().rss;
const t0 = performance.now();
const created = await docs.create({ title: 'big', file: input });
const t1 = performance.now();
const read = await docs.getLatest(created.id);
const t2 = performance.now();
const report: LargeContentReport = {
  bytes: args.sizeMiB * MiB,
  roundTripOk: read?.data.file === input,
  contentKey: `content/docs/${created.id}/file/${sha256}/blob.bin`,
  writeMs: Math.round(t1 - t0),
  readMs: Math.round(t2 - t1),
  rssBeforeMiB: Math.round(rssBefore / MiB),
  // maxRSS is in KiB.
  peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  steps,
};

step('roundTrip');
if (args.overLimit) {
  const over = Buffer.alloc(DEFAULT_MAX_CONTENT_BYTES + 1, 7).toString('base64');
  try {
    await docs.create({ title: 'too big', file: over });
    report.overLimit = { error: 'none', message: 'accepted', recordsAfter: -1 };
  } catch (err) {
    report.overLimit = {
      error: err instanceof ValidationError ? 'ValidationError' : err instanceof Error ? err.name : String(err),
      message: err instanceof Error ? err.message.slice(0, 300) : String(err),
      recordsAfter: (await docs.listByMeta({ includeDeleted: true })).items.length,
    };
  }
}
step('overLimit');
await x.shutdown();
step('shutdown');
process.stdout.write(`${JSON.stringify(report)}\n`);
