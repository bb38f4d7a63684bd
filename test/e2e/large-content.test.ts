import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { XronoxConfigInput } from '../../core/config/schema.js';
import type { Xronox } from '../../core/xronox.js';
import { ValidationError } from '../../core/errors.js';
import { initXronox } from '../../core/xronox.js';
import { type FaultProxy, startFaultProxy } from '../support/fault-proxy.js';
import { type S3rverHandle, s3rverConnection, startS3rver } from '../support/s3rver.js';
import { tempDir } from '../support/temp.js';
import { runTsx } from '../support/tsx-process.js';
import type { LargeContentArgs, LargeContentReport } from './support/large-content-child.js';

/**
 * Content (`base64Props`) of every size up to the limit (64 MiB by default) is stored and read
 * back, on the local filesystem and on a real S3 server (s3rver), where bodies above 8 MiB go up
 * as multipart uploads; one byte over the limit is a `ValidationError` naming the limit. The
 * 64 MiB round trip runs in a process of its own, whose peak RSS is printed and held to a bound:
 * a handful of transient full-size copies (JSON text of the document, a decoding buffer, a copy of
 * the read bytes) would show there.
 */

const MiB = 1024 * 1024;
const CHILD = new URL('./support/large-content-child.ts', import.meta.url).pathname;
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const maps = { docs: { indexedProps: ['title'], base64Props: { file: { contentType: 'application/octet-stream' } } } };

let server: S3rverHandle;
let proxy: FaultProxy;
const requests: Array<{ method: string; url: string }> = [];
const dir = tempDir('xronox-large-content');
const open: Xronox[] = [];
let n = 0;

beforeAll(async () => {
  server = await startS3rver({ buckets: ['large-content'] });
  proxy = await startFaultProxy(server.endpoint, (req) => {
    requests.push({ method: req.method, url: req.url });
    return null;
  });
});
afterAll(async () => {
  await Promise.all(open.map((x) => x.shutdown()));
  await proxy?.close();
  await server?.dispose();
  dir.cleanup();
});

type Backend = 'filesystem' | 's3';

function start(backend: Backend, extra: Partial<XronoxConfigInput> = {}): Xronox {
  const db = { tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme', ...(backend === 's3' ? { spaceConnRef: 's3' } : {}) };
  const x = initXronox({
    dbConnections: { local: { sqlitePath: join(dir.path, `x${n}.sqlite`) } },
    ...(backend === 's3'
      ? { spacesConnections: { s3: { ...s3rverConnection({ ...server, endpoint: proxy.endpoint }), buckets: { records: 'large-content', versions: 'large-content', content: 'large-content', backups: 'large-content' } } } }
      : { localStorage: { basePath: join(dir.path, `blobs${n}`), enabled: true } }),
    databases: { runtime: { tenantDatabases: [db] } },
    collectionMaps: maps,
    ...extra,
  });
  n++;
  open.push(x);
  return x;
}

const multipart = (from: number) => {
  const seen = requests.slice(from);
  return {
    create: seen.filter((r) => r.method === 'POST' && /[?&]uploads(=|&|$)/.test(r.url)).length,
    parts: seen.filter((r) => r.method === 'PUT' && /[?&]partNumber=/.test(r.url)).length,
    complete: seen.filter((r) => r.method === 'POST' && /[?&]uploadId=/.test(r.url)).length,
  };
};

describe.each(['filesystem', 's3'] as const)('large content on %s', (backend) => {
  it.each([1, 8, 12])('%i MiB is stored, read back and kept by its SHA-256', async (sizeMiB) => {
    const x = start(backend);
    const docs = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'docs' });
    const bytes = randomBytes(sizeMiB * MiB);
    const input = bytes.toString('base64');
    const from = requests.length;
    const created = await docs.create({ title: `${sizeMiB} MiB`, file: input });
    const parts = multipart(from);
    expect((await docs.getLatest(created.id))?.data.file === input).toBe(true);
    const key = `content/docs/${created.id}/file/${sha256(bytes)}/blob.bin`;
    const stored = backend === 's3' ? await s3Object(key) : readFileSync(join(dir.path, `blobs${n - 1}`, 'rt_acme', key));
    expect(sha256(stored)).toBe(sha256(bytes));
    if (backend === 's3') {
      // Above 8 MiB the body goes up in 8 MiB parts; at or below it, one PUT.
      const expected = sizeMiB > 8 ? { create: 1, parts: Math.ceil(sizeMiB / 8), complete: 1 } : { create: 0, parts: 0, complete: 0 };
      expect(parts).toEqual(expected);
    }
    // A new version with other content keeps the first one's bytes for history.
    const next = randomBytes(1000);
    await docs.update(created.id, { title: 'small', file: next.toString('base64') }, 0);
    expect((await docs.getVersion(created.id, 0))?.data.file === input).toBe(true);
  });

  it('one byte over a configured limit is a ValidationError naming the limit, and nothing is written', async () => {
    const x = start(backend, { limits: { maxContentBytes: 3 * MiB } });
    const docs = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'docs' });
    const from = requests.length;
    const err = await docs.create({ title: 'over', file: randomBytes(3 * MiB + 1).toString('base64') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).message).toMatch(/3145729 bytes.*limit of 3145728 bytes/);
    expect((err as ValidationError).path).toBe('data.file');
    expect((await docs.listByMeta({ includeDeleted: true })).items).toEqual([]);
    if (backend === 's3') expect(requests.slice(from).filter((r) => r.method !== 'GET' && r.method !== 'HEAD')).toEqual([]);
    // Exactly at the limit is fine.
    const at = randomBytes(3 * MiB);
    const ok = await docs.create({ title: 'at', file: at.toString('base64') });
    expect((await docs.getLatest(ok.id))?.data.file === at.toString('base64')).toBe(true);
  });

  it('64 MiB (the default limit) round trip in its own process: peak RSS bounded; one byte over is refused', async () => {
    const args: LargeContentArgs = {
      sizeMiB: 64,
      sqlitePath: join(dir.path, `child-${backend}.sqlite`),
      blobs: backend === 's3' ? { endpoint: proxy.endpoint, bucket: 'large-content' } : { basePath: join(dir.path, 'child-blobs') },
      overLimit: true,
    };
    const from = requests.length;
    const run = await runTsx(CHILD, [JSON.stringify(args)]);
    const parts = multipart(from);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as LargeContentReport;
    const growth = report.peakRssMiB - report.rssBeforeMiB;
    console.log(
      `[large-content] ${backend}: 64 MiB content (${Math.round((report.bytes * 4) / 3 / MiB)} MiB of base64) written in ${report.writeMs} ms, read back in ${report.readMs} ms; ` +
        `RSS ${report.rssBeforeMiB} MiB with the input ready, peak ${report.peakRssMiB} MiB (+${growth} MiB over the round trip)` +
        `${backend === 's3' ? `; multipart requests ${JSON.stringify(parts)}` : ''}; one byte over: ${report.overLimit?.error}: ${report.overLimit?.message}; ` +
        `steps (ms since the process started) ${JSON.stringify(report.steps)}`,
    );
    expect(report.roundTripOk).toBe(true);
    if (backend === 's3') expect(parts).toEqual({ create: 1, parts: 8, complete: 1 });
    const stored = backend === 's3' ? await s3Object(report.contentKey) : readFileSync(join(dir.path, 'child-blobs', 'rt_acme', report.contentKey));
    expect(stored.byteLength).toBe(64 * MiB);
    expect(report.contentKey).toContain(sha256(stored));
    // What a round trip must hold at once: the decoded bytes (64 MiB) on the way in, the bytes
    // read and the base64 string made of them (64 + 85 MiB) on the way out. Bounded at 4 x 64 MiB.
    expect(growth).toBeLessThan(256);
    expect(report.overLimit).toMatchObject({ error: 'ValidationError', recordsAfter: 1 });
    expect(report.overLimit?.message).toMatch(/67108865 bytes.*limit of 67108864 bytes/);
  }, 180_000);
});

async function s3Object(key: string): Promise<Buffer> {
  const { S3BlobStore } = await import('../../core/adapters/s3/s3-blob-store.js');
  const inspect = new S3BlobStore({ ref: 'inspect', connection: s3rverConnection(server) });
  try {
    return Buffer.from((await inspect.get('large-content', key))!);
  } finally {
    await inspect.close();
  }
}
