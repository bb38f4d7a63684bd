import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3rver, type S3rverHandle } from '../support/s3rver.js';

const BUCKET = 'harness';
const md5 = (data: Buffer) => `"${createHash('md5').update(data).digest('hex')}"`;

async function readAll(body: unknown): Promise<Buffer> {
  return Buffer.from(await (body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
}

/** Runs `tasks` with at most `width` in flight. */
async function pool<T>(items: T[], width: number, task: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await task(items[next++]!);
    }),
  );
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('s3rver harness', () => {
  let s3: S3rverHandle;
  let client: S3Client;

  beforeAll(async () => {
    s3 = await startS3rver({ buckets: [BUCKET] });
    client = s3.client();
  });
  afterAll(async () => {
    await s3?.dispose();
  });

  it('serves path-style S3 on 127.0.0.1 with s3rver’s account, and keeps Content-Type, metadata and MD5 ETags', async () => {
    expect(s3.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(s3.endpoint).toBe(`http://127.0.0.1:${s3.port}`);
    expect({ region: s3.region, accessKey: s3.accessKey, secretKey: s3.secretKey }).toEqual({
      region: 'us-east-1',
      accessKey: 'S3RVER',
      secretKey: 'S3RVER',
    });
    expect(s3.running).toBe(true);

    const body = Buffer.from('{"hello":"world"}');
    const put = await client.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: 'docs/hello.json', Body: body, ContentType: 'application/json', Metadata: { origin: 'test' } }),
    );
    expect(put.ETag).toBe(md5(body));

    const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'docs/hello.json' }));
    expect(head).toMatchObject({ ContentType: 'application/json', ContentLength: body.length, ETag: md5(body), Metadata: { origin: 'test' } });

    const get = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'docs/hello.json' }));
    expect(get.ContentType).toBe('application/json');
    expect(get.ETag).toBe(md5(body));
    expect(await readAll(get.Body)).toEqual(body);

    await expect(client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'docs/missing.json' }))).rejects.toMatchObject({ name: 'NoSuchKey' });
    // createBuckets is idempotent.
    await s3.createBuckets([BUCKET, 'harness-extra']);
    const buckets = await client.send(new ListBucketsCommand({}));
    expect(buckets.Buckets?.map((b) => b.Name).sort()).toEqual([BUCKET, 'harness-extra']);
  });

  it('paginates ListObjectsV2 over 2,500 keys in pages of 1,000 (continuation tokens need --openssl-legacy-provider)', async () => {
    const keys = Array.from({ length: 2_500 }, (_, i) => `many/${String(i).padStart(5, '0')}`);
    await pool(keys, 50, (key) => client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: key })));

    const pages: string[][] = [];
    let token: string | undefined;
    do {
      const res = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'many/', MaxKeys: 1000, ContinuationToken: token }));
      pages.push((res.Contents ?? []).map((o) => o.Key!));
      expect(res.KeyCount).toBe(res.Contents?.length ?? 0);
      token = res.NextContinuationToken;
      expect(res.IsTruncated).toBe(token !== undefined);
    } while (token);
    expect(pages.map((p) => p.length)).toEqual([1000, 1000, 500]);
    expect(pages.flat()).toEqual(keys);

    // StartAfter (what the S3 blob store pages with) is exclusive, and a truncated answer still carries a token.
    const after = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'many/', StartAfter: 'many/01999', MaxKeys: 1000 }));
    expect(after.Contents?.map((o) => o.Key)).toEqual(keys.slice(2000));
    expect(after.IsTruncated).toBe(false);
    const truncated = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'many/', StartAfter: 'many/00499', MaxKeys: 10 }));
    expect(truncated.Contents?.map((o) => o.Key)).toEqual(keys.slice(500, 510));
    expect(truncated.IsTruncated).toBe(true);
    expect(truncated.NextContinuationToken).toBeTruthy();
  });

  it('round-trips a 5 MB object byte-exactly from a streamed (Readable) body and from a Buffer body', async () => {
    const data = randomBytes(5 * 1024 * 1024);
    const chunks = function* () {
      for (let i = 0; i < data.length; i += 64 * 1024) yield data.subarray(i, i + 64 * 1024);
    };

    const streamed = await client.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: 'big/streamed.bin', Body: Readable.from(chunks()), ContentLength: data.length, ContentType: 'application/octet-stream' }),
    );
    const buffered = await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'big/buffered.bin', Body: data }));
    expect(streamed.ETag).toBe(md5(data));
    expect(buffered.ETag).toBe(md5(data));

    for (const key of ['big/streamed.bin', 'big/buffered.bin']) {
      const res = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
      expect(res.ContentLength).toBe(data.length);
      const back = await readAll(res.Body);
      expect(back.length).toBe(data.length);
      expect(back.equals(data)).toBe(true);
    }
  });

  it('stop() refuses connections and cuts uploads off; start() brings back the same port, buckets and objects', async () => {
    const fast = s3.client({ maxAttempts: 1 });
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'outage/kept.txt', Body: 'kept', ContentType: 'text/plain' }));

    // An upload in flight when the server stops: the client sees the connection drop.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let firstChunkSent!: () => void;
    const sent = new Promise<void>((resolve) => (firstChunkSent = resolve));
    const chunk = Buffer.alloc(1024 * 1024, 7);
    const body = async function* () {
      yield chunk;
      firstChunkSent();
      await gate;
      yield chunk;
    };
    const torn = fast.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'outage/torn.bin', Body: Readable.from(body()), ContentLength: 2 * chunk.length }));
    torn.catch(() => {});
    await sent;

    const port = s3.port;
    await s3.stop();
    release();
    expect(s3.running).toBe(false);
    await expect(torn).rejects.toThrow();
    await expect(fast.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'outage/kept.txt' }))).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await s3.stop(); // idempotent

    await s3.start();
    expect(s3.running).toBe(true);
    expect(s3.port).toBe(port);
    // The client made before the outage works again (its kept-alive sockets were dropped).
    const kept = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'outage/kept.txt' }));
    expect(kept.ContentType).toBe('text/plain');
    expect((await readAll(kept.Body)).toString()).toBe('kept');
    // The cut-off upload left nothing visible (the harness makes s3rver's puts atomic).
    await expect(fast.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'outage/torn.bin' }))).rejects.toMatchObject({ name: 'NotFound' });
    const listed = await fast.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'outage/' }));
    expect(listed.Contents?.map((o) => o.Key)).toEqual(['outage/kept.txt']);
    const many = await fast.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'many/', StartAfter: 'many/02489' }));
    expect(many.Contents).toHaveLength(10);
  });

  it('start() retries while the port is still taken (EADDRINUSE)', async () => {
    await s3.stop();
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(s3.port, '127.0.0.1', resolve));
    setTimeout(() => squatter.close(), 600);
    const started = Date.now();
    await s3.start();
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    const res = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'outage/kept.txt' }));
    expect((await readAll(res.Body)).toString()).toBe('kept');
  });

  it('dispose() stops the server and removes its data directory', async () => {
    const other = await startS3rver();
    await other.createBuckets(['one', 'two']);
    const c = other.client({ maxAttempts: 1 });
    await c.send(new PutObjectCommand({ Bucket: 'one', Key: 'k', Body: 'v' }));
    expect(existsSync(other.directory)).toBe(true);
    expect(other.port).not.toBe(s3.port);

    await other.dispose();
    expect(other.running).toBe(false);
    expect(existsSync(other.directory)).toBe(false);
    expect(await accepts(other.port)).toBe(false);
    await other.dispose(); // idempotent
    await expect(other.start()).rejects.toThrow(/disposed/);
  });

  it.each(['exit', 'SIGKILL'] as const)('takes the server down when the test process ends by %s', async (how) => {
    const harness = new URL('../support/s3rver.ts', import.meta.url).href;
    const script = `
      const { startS3rver } = await import(${JSON.stringify(harness)});
      const s3 = await startS3rver();
      process.stdout.write(JSON.stringify({ port: s3.port, directory: s3.directory }) + '\\n', () => {
        if (${JSON.stringify(how)} === 'exit') process.exit(0);
        else process.kill(process.pid, 'SIGKILL');
      });`;
    const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    parent.stdout.on('data', (d: Buffer) => (out += d.toString()));
    parent.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await new Promise((resolve) => parent.once('close', resolve));
    const line = out.split('\n').find((l) => l.startsWith('{'));
    expect(line, err).toBeDefined();
    const { port, directory } = JSON.parse(line!) as { port: number; directory: string };

    const deadline = Date.now() + 5_000;
    while (await accepts(port)) {
      if (Date.now() > deadline) throw new Error(`s3rver on port ${port} outlived its parent (${how})`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // A normal exit also removes the data directory; after SIGKILL nothing in the parent can.
    if (how === 'exit') expect(existsSync(directory)).toBe(false);
    else rmSync(directory, { recursive: true, force: true });
  });
});
