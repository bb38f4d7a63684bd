/**
 * The Workers entry (functions/edge) in workerd, the open-source Workers runtime, bundled as for a
 * deploy (infra/edge/bundle.mjs) and run against this machine's PostgreSQL (index and document
 * store, through node-postgres over `cloudflare:sockets`) and s3rver (blobs, through the S3
 * adapter, as R2's S3 API would be): create, conditional update (412 on a stale If-Match), an
 * as-of read and the history over HTTP; one `scheduled` invocation (the archive sweep's cron)
 * archives a record's versions; one `queue` batch of R2-style object-created messages archives
 * another's.
 *
 * workerd serves two Workers here: the Xronox Worker, and a driver in front of it whose service
 * binding passes HTTP through and turns `/__scheduled` and `/__queue` into the Xronox Worker's
 * `scheduled` and `queue` events (workerd's `service_binding_extra_handlers`, as Miniflare does).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../functions/api/index.js';
// @ts-expect-error -- an ES module of infra/ without type declarations
import { bundleWorker } from '../../infra/edge/bundle.mjs';
import { dropSchemas, POSTGRES_URI, postgresAvailability, randomSchemaPrefix } from '../support/postgres.js';
import { type S3rverHandle, startS3rver } from '../support/s3rver.js';
import { tempDir } from '../support/temp.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const KEY = `xrx_edge-${crypto.randomUUID()}`;
const QUEUE = 'xronox-archive';
const ARCHIVE_CRON = '*/15 * * * *';
const availability = await postgresAvailability();

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A capnp text literal. */
const capnpText = (s: string) => JSON.stringify(s);

const DRIVER = `export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === '/__scheduled') {
      return Response.json(await env.XRONOX.scheduled({ cron: url.searchParams.get('cron'), scheduledTime: new Date() }));
    }
    if (url.pathname === '/__queue') {
      const { queue, messages } = await request.json();
      return Response.json(await env.XRONOX.queue(queue, messages.map((m) => ({ ...m, timestamp: new Date(), attempts: 1 }))));
    }
    return env.XRONOX.fetch(request);
  },
};
`;

describe.skipIf(!availability.ok && availability.optional)('the Workers entry in workerd (PostgreSQL × S3)', () => {
  const dir = tempDir('xronox-workerd');
  const schemaPrefix = randomSchemaPrefix();
  const bucketPrefix = `xe-${crypto.randomUUID().slice(0, 8)}`;
  const buckets = { records: `${bucketPrefix}-records`, versions: `${bucketPrefix}-versions`, content: `${bucketPrefix}-content`, backups: `${bucketPrefix}-backups` };
  let s3: S3rverHandle;
  let workerd: ChildProcess;
  let base: string;
  let output = '';

  beforeAll(async () => {
    if (!availability.ok) throw new Error(`${availability.reason}. Start PostgreSQL, point XRONOX_POSTGRES_URI at one, or set XRONOX_POSTGRES_OPTIONAL=1 to skip.`);
    s3 = await startS3rver({ buckets: Object.values(buckets) });
    await bundleWorker({ outfile: join(dir.path, 'worker.js') });
    writeFileSync(join(dir.path, 'driver.js'), DRIVER);
    const location = (extra: Record<string, string> = {}) => ({
      dbConnRef: 'pg',
      spaceConnRef: 'r2',
      recordsBucket: buckets.records,
      versionsBucket: buckets.versions,
      contentBucket: buckets.content,
      backupsBucket: buckets.backups,
      ...extra,
    });
    // What a deploy's XRONOX_CONFIG secret holds; the PostgreSQL URI comes from a binding (Hyperdrive's, in production).
    const config = {
      dbConnections: { pg: { postgresUri: 'ENV.XRONOX_POSTGRES_URI', schemaPrefix } },
      spacesConnections: { r2: { endpoint: s3.endpoint, region: s3.region, accessKey: 'ENV.R2_ACCESS_KEY_ID', secretKey: 'ENV.R2_SECRET_ACCESS_KEY', forcePathStyle: true, conditionalWrites: false } },
      databases: {
        runtime: { tenantDatabases: [{ tenantId: 'acme', dbName: `${schemaPrefix}rt_acme`, ...location() }] },
      },
      // Versions are archived by the R2 event (the queue) or the sweep (the cron), not inline; the sweep takes every one.
      jobs: { archive: { mode: 'deferred', sweepAfterMinutes: 0 } },
      api: { keys: [{ id: 'edge-test', sha256: hashApiKey(KEY), role: 'admin', tenants: ['acme'], generic: true }] },
    };
    const port = await freePort();
    const worker = (name: string, module: string, flags: string[], bindings: string) =>
      `(name = "${name}", worker = (modules = [(name = "${module}", esModule = embed "${module}")], compatibilityDate = "2025-11-01", compatibilityFlags = [${flags.map(capnpText).join(', ')}], bindings = [${bindings}]${name === 'xronox' ? ', globalOutbound = "internet"' : ''}))`;
    const xronoxBindings = [
      `(name = "XRONOX_CONFIG", text = ${capnpText(JSON.stringify(config))})`,
      `(name = "XRONOX_POSTGRES_URI", text = ${capnpText(POSTGRES_URI)})`,
      `(name = "R2_ACCESS_KEY_ID", text = ${capnpText(s3.accessKey)})`,
      `(name = "R2_SECRET_ACCESS_KEY", text = ${capnpText(s3.secretKey)})`,
    ].join(', ');
    writeFileSync(
      join(dir.path, 'config.capnp'),
      `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    ${worker('driver', 'driver.js', ['service_binding_extra_handlers'], '(name = "XRONOX", service = "xronox")')},
    ${worker('xronox', 'worker.js', ['nodejs_compat'], xronoxBindings)},
    (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "driver")],
);
`,
    );
    workerd = spawn(join(ROOT, 'node_modules/.bin/workerd'), ['serve', join(dir.path, 'config.capnp'), '--experimental'], { cwd: dir.path, stdio: ['ignore', 'pipe', 'pipe'] });
    const collect = (c: Buffer) => (output = (output + c.toString()).slice(-50_000));
    workerd.stdout!.on('data', collect);
    workerd.stderr!.on('data', collect);
    base = `http://127.0.0.1:${port}`;
    // Up when it answers; at most 60 tries, 250 ms apart.
    for (let attempt = 0; ; attempt++) {
      if (workerd.exitCode !== null) throw new Error(`workerd exited (${workerd.exitCode}):\n${output}`);
      try {
        await fetch(`${base}/`);
        break;
      } catch (err) {
        if (attempt >= 60) throw new Error(`workerd did not answer\n${output}`, { cause: err });
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  });

  afterAll(async () => {
    if (workerd && workerd.exitCode === null) {
      const exited = new Promise((r) => workerd.once('exit', r));
      workerd.kill('SIGTERM');
      await exited;
    }
    await s3?.dispose();
    if (availability.ok) await dropSchemas(schemaPrefix);
    dir.cleanup();
  });

  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, {
      method,
      headers: { Authorization: `Bearer ${KEY}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  /** The keys under `prefix` of a bucket. */
  async function keys(bucket: string, prefix = ''): Promise<string[]> {
    const client = s3.client();
    try {
      const out = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
      return (out.Contents ?? []).map((o) => o.Key!).sort();
    } finally {
      client.destroy();
    }
  }

  /** Waits for the blob sync the Worker ran under waitUntil to land `key` (at most 80 looks, 250 ms apart). */
  async function objectLanded(bucket: string, key: string): Promise<void> {
    for (let attempt = 0; attempt < 80; attempt++) {
      if ((await keys(bucket, key)).includes(key)) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`${bucket}/${key} never appeared\n${output}`);
  }

  /** The version objects of a record, by their file names (`v0.json`, …). */
  async function versionFiles(collection: string, id: string): Promise<string[]> {
    return (await keys(buckets.versions)).filter((k) => k.includes(`/${collection}/${id}/`)).map((k) => k.slice(k.lastIndexOf('/') + 1));
  }

  /** A record with two versions, and the key of its current.json. */
  async function recordWithTwoVersions(collection: string): Promise<{ id: string; currentKey: string }> {
    const created = await call('POST', `/v1/tenants/acme/runtime/${collection}`, { n: 1 });
    expect(created.status, `${await created.clone().text()}\n${output}`).toBe(201);
    const { id } = (await created.json()) as { id: string };
    expect((await call('PUT', `/v1/tenants/acme/runtime/${collection}/${id}`, { n: 2 }, { 'If-Match': '"0"' })).status).toBe(200);
    const current = (await keys(buckets.records)).find((k) => k.endsWith(`/${collection}/${id}/current.json`));
    const currentKey = current ?? (await (async () => {
      // The sync runs after the response: wait for it.
      for (let attempt = 0; attempt < 80; attempt++) {
        const found = (await keys(buckets.records)).find((k) => k.endsWith(`/${collection}/${id}/current.json`));
        if (found) return found;
        await new Promise((r) => setTimeout(r, 250));
      }
      throw new Error(`current.json of ${id} never appeared\n${output}`);
    })());
    await objectLanded(buckets.records, currentKey);
    return { id, currentKey };
  }

  it("fits Workers' compressed size limit of the Free plan (3 MB), without the adapters a Worker cannot run", () => {
    const bundle = readFileSync(join(dir.path, 'worker.js'));
    expect(gzipSync(bundle, { level: 9 }).length).toBeLessThan(3_000_000);
    const text = bundle.toString('utf8');
    expect(text).toContain('Not available in the Workers bundle: the SQLite index store needs a file system');
    expect(text).not.toContain('better_sqlite3.node');
  });

  it('serves create, conditional update (412 on a stale If-Match), as-of read and history', async () => {
    const created = await call('POST', '/v1/tenants/acme/runtime/orders', { customer: 'ada', total: 12 });
    expect(created.status, `${await created.clone().text()}\n${output}`).toBe(201);
    expect(created.headers.get('etag')).toBe('"0"');
    const { id, createdAt } = (await created.json()) as { id: string; createdAt: string };

    const updated = await call('PUT', `/v1/tenants/acme/runtime/orders/${id}`, { customer: 'ada', total: 14 }, { 'If-Match': '"0"' });
    expect(updated.status, await updated.clone().text()).toBe(200);
    expect(updated.headers.get('etag')).toBe('"1"');

    const stale = await call('PUT', `/v1/tenants/acme/runtime/orders/${id}`, { customer: 'ada', total: 99 }, { 'If-Match': '"0"' });
    expect(stale.status).toBe(412);
    expect(stale.headers.get('content-type')).toContain('application/problem+json');

    const latest = await call('GET', `/v1/tenants/acme/runtime/orders/${id}`);
    expect(latest.status).toBe(200);
    expect(((await latest.json()) as { data: { total: number } }).data.total).toBe(14);

    const asOf = await call('GET', `/v1/tenants/acme/runtime/orders/${id}?at=${encodeURIComponent(createdAt)}`);
    expect(asOf.status, await asOf.clone().text()).toBe(200);
    expect(((await asOf.json()) as { data: { total: number } }).data.total).toBe(12);

    const history = await call('GET', `/v1/tenants/acme/runtime/orders/${id}/versions`);
    expect(history.status).toBe(200);
    const items = ((await history.json()) as { items: Array<{ ov: number }> }).items;
    expect(items.map((v) => v.ov)).toEqual([1, 0]);

    // The blob sync ran under waitUntil, after the responses: current.json reached the bucket.
    const currentKey = (await recordWithTwoVersions('orders')).currentKey;
    expect(currentKey).toMatch(/\/orders\/.+\/current\.json$/);
  });

  it('a queue batch of R2 object-created events archives the versions of the records named', async () => {
    const { id, currentKey } = await recordWithTwoVersions('invoices');
    expect(await versionFiles('invoices', id)).toEqual([]);
    const result = await fetch(`${base}/__queue`, {
      method: 'POST',
      body: JSON.stringify({
        queue: QUEUE,
        messages: [
          { id: 'm1', body: { account: 'test', action: 'PutObject', bucket: buckets.records, object: { key: currentKey, size: 10, eTag: 'x' }, eventTime: new Date().toISOString() } },
          // Not an R2 event: acknowledged, so it does not come back forever.
          { id: 'm2', body: { hello: 'world' } },
        ],
      }),
    });
    const outcome = (await result.json()) as { outcome: string; explicitAcks: string[]; retryMessages: unknown[] };
    expect(outcome.outcome, output).toBe('ok');
    expect(outcome.explicitAcks.sort()).toEqual(['m1', 'm2']);
    expect(outcome.retryMessages).toEqual([]);
    expect(await versionFiles('invoices', id), output).toEqual(['v0.json', 'v1.json']);
  });

  it('a scheduled event on the archive cron runs the archive sweep', async () => {
    const { id } = await recordWithTwoVersions('receipts');
    expect(await versionFiles('receipts', id)).toEqual([]);
    const result = await fetch(`${base}/__scheduled?cron=${encodeURIComponent(ARCHIVE_CRON)}`);
    expect(((await result.json()) as { outcome: string }).outcome, output).toBe('ok');
    expect(await versionFiles('receipts', id), output).toEqual(['v0.json', 'v1.json']);
    expect(output).toContain('xronox job archive finished');
  });

  it('a cron no job runs on fails, naming the crons that do', async () => {
    const result = await fetch(`${base}/__scheduled?cron=${encodeURIComponent('1 1 1 1 *')}`);
    expect(((await result.json()) as { outcome: string }).outcome).toBe('exception');
    expect(output).toContain('No job runs on the cron');
  });
});
