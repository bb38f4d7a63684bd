/**
 * Run by test/edge/native-serve.test.ts as `bun` / `deno` process: the HTTP API served by the
 * runtime's own server (`Bun.serve`, `Deno.serve`) over the embedded default (SQLite on the
 * runtime's driver, blobs in a folder), and exercised over real HTTP: create, conditional update
 * (and a 412 on the stale If-Match), an as-of read and the history. Prints one JSON line of what
 * it saw; the test judges it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initXronox } from '../../../core/index.js';
import { createApp, hashApiKey } from '../../../functions/api/index.js';

const KEY = `xrx_native-${crypto.randomUUID()}`;
const dir = mkdtempSync(join(tmpdir(), 'xronox-native-'));
const xronox = initXronox({
  dbConnections: { local: { sqlitePath: join(dir, 'xronox.sqlite') } },
  localStorage: { basePath: join(dir, 'blobs'), enabled: true },
  databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'native_rt_acme' }] } },
  api: { keys: [{ id: 'native', sha256: hashApiKey(KEY), role: 'admin', tenants: ['acme'] }] },
});
const app = createApp({ xronox, logger: () => undefined });

interface Served {
  url: string;
  stop: () => Promise<void>;
}

function serve(): Promise<Served> {
  const g = globalThis as { Bun?: { serve(o: object): { port: number; stop(force?: boolean): unknown } }; Deno?: { serve(o: object, h: unknown): { finished: Promise<void>; shutdown(): Promise<void> } } };
  if (g.Bun) {
    const server = g.Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: app.fetch });
    return Promise.resolve({ url: `http://127.0.0.1:${server.port}`, stop: async () => void server.stop(true) });
  }
  if (g.Deno) {
    const deno = g.Deno;
    return new Promise((resolve) => {
      const server = deno.serve({ port: 0, hostname: '127.0.0.1', onListen: ({ port }: { port: number }) => resolve({ url: `http://127.0.0.1:${port}`, stop: () => server.shutdown() }) }, app.fetch);
    });
  }
  throw new Error('Neither Bun nor Deno: this script is for their own servers');
}

const served = await serve();
const seen: Record<string, unknown> = { runtime: (globalThis as { Bun?: unknown }).Bun ? 'bun' : 'deno' };
try {
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    fetch(`${served.url}${path}`, { method, headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json', ...headers }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const created = await call('POST', '/v1/tenants/acme/runtime/orders', { total: 12 });
  const { id, createdAt } = (await created.json()) as { id: string; createdAt: string };
  seen.create = { status: created.status, etag: created.headers.get('etag') };
  const updated = await call('PUT', `/v1/tenants/acme/runtime/orders/${id}`, { total: 14 }, { 'If-Match': '"0"' });
  seen.update = { status: updated.status, etag: updated.headers.get('etag') };
  const stale = await call('PUT', `/v1/tenants/acme/runtime/orders/${id}`, { total: 99 }, { 'If-Match': '"0"' });
  seen.stale = { status: stale.status, type: stale.headers.get('content-type') };
  const asOf = await call('GET', `/v1/tenants/acme/runtime/orders/${id}?at=${encodeURIComponent(createdAt)}`);
  seen.asOf = { status: asOf.status, total: ((await asOf.json()) as { data: { total: number } }).data.total };
  const latest = await call('GET', `/v1/tenants/acme/runtime/orders/${id}`);
  seen.latest = { status: latest.status, total: ((await latest.json()) as { data: { total: number } }).data.total };
  const history = await call('GET', `/v1/tenants/acme/runtime/orders/${id}/versions`);
  seen.history = { status: history.status, ovs: ((await history.json()) as { items: Array<{ ov: number }> }).items.map((v) => v.ov) };
  await xronox.flush();
} finally {
  await served.stop();
  await xronox.shutdown();
  rmSync(dir, { recursive: true, force: true });
}
console.log(`NATIVE_SERVE ${JSON.stringify(seen)}`);
