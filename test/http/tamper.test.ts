import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, KEYS, ok, startServer, type TestServer } from './harness.js';

/** Tampered data over HTTP: reads refuse it (500 problem+json, correlation id, alert log line); verify and proofs. */

let s: TestServer;
const orders = '/v1/tenants/acme/runtime/orders';

beforeAll(async () => {
  s = await startServer({ config: { integrity: { digestKey: randomBytes(32).toString('hex'), digestKeyId: 'http-test' } } });
});
afterAll(() => s.close());

function findFile(root: string, suffix: string): string | undefined {
  for (const name of readdirSync(root)) {
    const path = join(root, name);
    if (statSync(path).isDirectory()) {
      const found = findFile(path, suffix);
      if (found) return found;
    } else if (path.endsWith(suffix)) return path;
  }
  return undefined;
}

describe('verifiable history over HTTP', () => {
  it('proofs of versions in a signed digest; POST verify (admin only); a tampered version is refused with an alert', async () => {
    const { id } = (await ok<{ id: string }>(s.base, 'POST', orders, { body: { total: 1 } })).body;
    await ok(s.base, 'PUT', `${orders}/${id}`, { body: { total: 2 }, headers: { 'if-match': '"0"' } });
    await ok(s.base, 'PUT', `${orders}/${id}`, { body: { total: 3 }, headers: { 'if-match': '"1"' } });
    await s.xronox.flush();

    // No digest yet: a proof has nothing to point to.
    expect((await call(s.base, 'GET', `${orders}/${id}/versions/1/proof`)).status).toBe(404);
    const collection = s.xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    const { digest } = await collection.writeDigest();
    const proof = await ok<{ id: string; ov: number; digest: { root: string }; chain: unknown[] }>(s.base, 'GET', `${orders}/${id}/versions/1/proof`, { key: KEYS.acmeReader });
    expect(proof.body).toMatchObject({ id, ov: 1, digest: { root: digest.root } });
    expect(proof.body.chain).toHaveLength(2);
    expect((await call(s.base, 'GET', `${orders}/${id}/versions/9/proof`)).status).toBe(404);
    expect((await call(s.base, 'GET', `${orders}/${id}/versions/x/proof`)).status).toBe(400);

    const verified = await ok<{ ok: boolean; digest: { ok: boolean } }>(s.base, 'POST', `${orders}/verify`);
    expect(verified.body).toMatchObject({ ok: true, records: 1, versions: 3, findings: 0, digest: { ok: true } });
    expect((await call(s.base, 'POST', `${orders}/verify`, { key: KEYS.acmeReader })).status).toBe(403);
    expect((await call(s.base, 'POST', `${orders}/verify`, { key: KEYS.acmeWriter })).status).toBe(403);
    expect((await call(s.base, 'POST', `${orders}/verify`, { key: KEYS.betaAdmin })).status).toBe(403);

    // Someone lowers the total of version 1 in its file.
    const file = findFile(join(s.dataDir, 'blobs'), join('orders', id, 'v1.json'))!;
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    doc.data.total = 0;
    writeFileSync(file, JSON.stringify(doc));
    const reply = await call(s.base, 'GET', `${orders}/${id}?ov=1`);
    expect(reply.status).toBe(500);
    expect(reply.headers.get('content-type')).toBe('application/problem+json');
    const problem = reply.json as { code: string; correlationId: string; detail: string };
    expect(problem.code).toBe('TAMPER_DETECTED');
    expect(problem.correlationId).toBe(reply.headers.get('x-request-id'));
    expect(reply.text).not.toContain('total');
    const line = s.logs.find((l) => l.requestId === problem.correlationId)!;
    expect(line).toMatchObject({ level: 'fatal', alert: 'tamper', status: 500, tamper: { collection: expect.stringContaining('/orders'), id, ov: 1 } });
    // The latest state is untouched and still served.
    expect((await ok<{ data: { total: number } }>(s.base, 'GET', `${orders}/${id}`)).body.data.total).toBe(3);

    const after = await ok<{ ok: boolean; broken: Array<{ id: string; ov: number }> }>(s.base, 'POST', `${orders}/verify`);
    expect(after.body).toMatchObject({ ok: false, findings: 1, broken: [{ id, ov: 1 }] });
  });

  it('the OpenAPI document names the verify and proof operations', async () => {
    const doc = (await ok<{ paths: Record<string, Record<string, { operationId: string }>> }>(s.base, 'GET', '/openapi.json', { key: null })).body;
    expect(doc.paths['/v1/tenants/{tenantId}/{databaseType}/{collection}/verify']?.post?.operationId).toBe('tenantVerifyCollection');
    expect(doc.paths['/v1/tenants/{tenantId}/{databaseType}/{collection}/{id}/versions/{ov}/proof']?.get?.operationId).toBe('tenantGetVersionProof');
  });
});
