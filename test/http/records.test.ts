import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, KEYS, ok, startServer, type TestServer } from './harness.js';

/** Every resource of the API over real HTTP, with the engine's answers checked end to end. */

type Created = { id: string; ov: number; cv: number; createdAt: string };
type Rec = { id: string; ov: number; data: Record<string, unknown>; deleted: boolean; _system: { functionIds: string[] } };
type Version = Rec & { op: string; at: string; actor: unknown; reason: string | null };
type History = { items: Array<{ ov: number; op: string; actor: unknown; reason: string | null }>; nextBefore: number | null };
type Page = { items: Rec[]; nextAfter: string | null };

let s: TestServer;
const orders = '/v1/tenants/acme/runtime/orders';

beforeAll(async () => {
  s = await startServer();
});
afterAll(() => s.close());

describe('a versioned record over HTTP', () => {
  let id: string;
  let created: Created;

  it('POST creates it: 201 with id, ov, cv, createdAt, a Location and ETag "0"', async () => {
    const reply = await call(s.base, 'POST', orders, { body: { customer: 'ada', items: ['book'], total: 12, status: 'new' } });
    expect(reply.status).toBe(201);
    created = reply.json as Created;
    id = created.id;
    expect(created).toEqual({ id: expect.any(String), ov: 0, cv: expect.any(Number), createdAt: expect.any(String) });
    expect(reply.headers.get('location')).toBe(`${orders}/${id}`);
    expect(reply.headers.get('etag')).toBe('"0"');
    const read = await call(s.base, 'GET', reply.headers.get('location')!);
    expect(read.status).toBe(200);
    expect(read.headers.get('etag')).toBe('"0"');
    expect((read.json as Rec).data).toEqual({ customer: 'ada', items: ['book'], total: 12, status: 'new' });
  });

  it('PUT replaces it under If-Match, storing the key as actor and X-Xronox-Reason as reason', async () => {
    const reply = await call(s.base, 'PUT', `${orders}/${id}`, {
      body: { customer: 'ada', items: ['book', 'pen'], total: 14, status: 'paid' },
      headers: { 'if-match': '"0"', 'x-xronox-reason': 'added a pen' },
    });
    expect(reply.status).toBe(200);
    expect(reply.json).toMatchObject({ id, ov: 1 });
    expect(reply.headers.get('etag')).toBe('"1"');
    const { body: v1 } = await ok<Version>(s.base, 'GET', `${orders}/${id}?ov=1`);
    expect(v1).toMatchObject({ op: 'update', reason: 'added a pen', actor: { type: 'api', identifier: 'acme-admin' } });
  });

  it('PATCH enriches it: objects merge, arrays are unioned, the function id is kept', async () => {
    const reply = await call(s.base, 'PATCH', `${orders}/${id}`, {
      body: { items: ['pen', 'gift-wrap'], shipping: { method: 'express' } },
      headers: { 'if-match': '"1"', 'x-xronox-function-id': 'shipping@v1' },
    });
    expect(reply.status).toBe(200);
    expect(reply.headers.get('etag')).toBe('"2"');
    const { body: latest } = await ok<Rec>(s.base, 'GET', `${orders}/${id}`);
    expect(latest.data).toEqual({ customer: 'ada', items: ['book', 'pen', 'gift-wrap'], total: 14, status: 'paid', shipping: { method: 'express' } });
    expect(latest._system.functionIds).toEqual(['shipping@v1']);
  });

  it('GET ?ov=N reads one version and ?at=<time> reads the record as of that time', async () => {
    const { body: v0 } = await ok<Version>(s.base, 'GET', `${orders}/${id}?ov=0`);
    expect(v0).toMatchObject({ ov: 0, op: 'create', data: { total: 12 } });
    const { body: then } = await ok<Version>(s.base, 'GET', `${orders}/${id}?at=${encodeURIComponent(created.createdAt)}`);
    expect(then).toMatchObject({ ov: 0, data: { total: 12, items: ['book'] } });
    expect((await call(s.base, 'GET', `${orders}/${id}?at=2000-01-01T00:00:00Z`)).status).toBe(404);
    expect((await call(s.base, 'GET', `${orders}/${id}?ov=99`)).status).toBe(404);
  });

  it('GET /{id}/versions pages through the history, newest first, with a cursor', async () => {
    const seen: number[] = [];
    let path = `${orders}/${id}/versions?limit=2`;
    for (;;) {
      const { body } = await ok<History>(s.base, 'GET', path);
      seen.push(...body.items.map((v) => v.ov));
      if (body.nextBefore === null) break;
      path = `${orders}/${id}/versions?limit=2&before=${body.nextBefore}`;
    }
    expect(seen).toEqual([2, 1, 0]);
  });

  it('POST /{id}/restore brings back a version ({ ov }) or a time ({ at }), as a new version', async () => {
    const byOv = await call(s.base, 'POST', `${orders}/${id}/restore`, { body: { ov: 0 }, headers: { 'x-xronox-reason': 'refund' } });
    expect(byOv.status).toBe(200);
    expect(byOv.json).toMatchObject({ ov: 3, restoredFromOv: 0 });
    expect(byOv.headers.get('etag')).toBe('"3"');
    expect((await ok<Rec>(s.base, 'GET', `${orders}/${id}`)).body.data).toMatchObject({ total: 12, items: ['book'] });
    const { body: v2 } = await ok<Version>(s.base, 'GET', `${orders}/${id}?ov=2`);
    const byAt = await call(s.base, 'POST', `${orders}/${id}/restore`, { body: { at: v2.at }, headers: { 'if-match': '"3"' } });
    expect(byAt.json).toMatchObject({ ov: 4, restoredFromOv: 2 });
    const { body: v3 } = await ok<Version>(s.base, 'GET', `${orders}/${id}?ov=3`);
    expect(v3).toMatchObject({ op: 'restore', reason: 'refund' });
  });

  it('DELETE needs If-Match; the record is then gone, readable with includeDeleted, and restorable', async () => {
    const reply = await call(s.base, 'DELETE', `${orders}/${id}`, { headers: { 'if-match': '"4"' } });
    expect(reply.status).toBe(200);
    expect(reply.json).toMatchObject({ id, ov: 5, deletedAt: expect.any(String) });
    expect((await call(s.base, 'GET', `${orders}/${id}`)).status).toBe(404);
    expect((await ok<Rec>(s.base, 'GET', `${orders}/${id}?includeDeleted=true`)).body.deleted).toBe(true);
    const revived = await call(s.base, 'POST', `${orders}/${id}/restore`, { body: { ov: 4 } });
    expect(revived.status).toBe(200);
    expect((await ok<Rec>(s.base, 'GET', `${orders}/${id}`)).body.deleted).toBe(false);
  });
});

describe('a collection over HTTP', () => {
  const invoices = '/v1/tenants/acme/runtime/invoices';
  const ids: string[] = [];
  let firstCv = 0;

  beforeAll(async () => {
    for (let i = 0; i < 5; i++) {
      const { body } = await ok<Created>(s.base, 'POST', invoices, { body: { n: i, status: i % 2 === 0 ? 'paid' : 'open' } });
      ids.push(body.id);
      if (i === 1) firstCv = body.cv;
    }
  });

  it('POST /batch creates many records in one commit (all or none), in order', async () => {
    const batch = '/v1/tenants/acme/runtime/receipts';
    const items = Array.from({ length: 20 }, (_, n) => ({ n, status: 'new' }));
    const reply = await call(s.base, 'POST', `${batch}/batch`, { body: { items }, headers: { 'x-xronox-reason': 'bulk import' } });
    expect(reply.status).toBe(201);
    const created = (reply.json as { items: Created[] }).items;
    expect(created.map((c) => c.cv)).toEqual(created.map((_, i) => created[0]!.cv + i));
    const { body: v0 } = await ok<Version>(s.base, 'GET', `${batch}/${created[7]!.id}?ov=0`);
    expect(v0).toMatchObject({ data: { n: 7, status: 'new' }, op: 'create', reason: 'bulk import' });
    // One bad item (a "$" key) refuses the whole batch with a 400 naming it; nothing is written.
    const bad = await call(s.base, 'POST', `${batch}/batch`, { body: { items: [{ n: 100 }, { n: 101, $set: 1 }] } });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.json)).toMatch(/items\[1\]/);
    for (const body of [{ items: [] }, { items: [1] }, { items: {} }, { records: [{}] }, [{ n: 1 }]]) {
      expect((await call(s.base, 'POST', `${batch}/batch`, { body })).status).toBe(400);
    }
    const { body: page } = await ok<Page>(s.base, 'GET', `${batch}?limit=100`);
    expect(page.items.map((r) => r.data.n).sort((a, b) => Number(a) - Number(b))).toEqual(items.map((i) => i.n));
    expect((await call(s.base, 'POST', `${batch}/batch`, { body: { items }, key: KEYS.acmeReader })).status).toBe(403);
    expect((await call(s.base, 'POST', '/v1/tenants/beta/runtime/receipts/batch', { body: { items } })).status).toBe(403);
  });

  it('GET lists by indexed properties (filter as JSON) and pages with limit and after', async () => {
    const filter = encodeURIComponent(JSON.stringify({ status: 'paid' }));
    const { body: paid } = await ok<Page>(s.base, 'GET', `${invoices}?filter=${filter}`);
    expect(paid.items.map((r) => r.data.n)).toEqual([0, 2, 4]);
    const range = encodeURIComponent(JSON.stringify({ n: { $gte: 1, $lt: 4 } }));
    expect((await ok<Page>(s.base, 'GET', `${invoices}?filter=${range}`)).body.items.map((r) => r.data.n)).toEqual([1, 2, 3]);
    const seen: string[] = [];
    let path = `${invoices}?limit=2`;
    for (;;) {
      const { body } = await ok<Page>(s.base, 'GET', path);
      seen.push(...body.items.map((r) => r.id));
      if (body.nextAfter === null) break;
      path = `${invoices}?limit=2&after=${body.nextAfter}`;
    }
    expect(seen).toEqual(ids);
  });

  it('POST /restore reports with dryRun, then restores the collection to a cv (admin)', async () => {
    const dry = await call(s.base, 'POST', `${invoices}/restore`, { body: { cv: firstCv, dryRun: true } });
    expect(dry.status).toBe(200);
    expect(dry.json).toMatchObject({ dryRun: true, deleted: 3, unchanged: 2 });
    expect((await ok<Page>(s.base, 'GET', invoices)).body.items).toHaveLength(5);
    const real = await call(s.base, 'POST', `${invoices}/restore`, { body: { cv: firstCv }, headers: { 'x-xronox-reason': 'bad import' } });
    expect(real.json).toMatchObject({ dryRun: false, deleted: 3 });
    expect((await ok<Page>(s.base, 'GET', invoices)).body.items.map((r) => r.id)).toEqual(ids.slice(0, 2));
  });

  it('POST /restore with { at } restores the collection as of a time', async () => {
    const { body: last } = await ok<Version>(s.base, 'GET', `${invoices}/${ids[4]}?ov=0`);
    const reply = await call(s.base, 'POST', `${invoices}/restore`, { body: { at: last.at } });
    expect(reply.json).toMatchObject({ revived: 3 });
    expect((await ok<Page>(s.base, 'GET', invoices)).body.items).toHaveLength(5);
  });

  it('GET /v1/tenants/{tenantId}/{databaseType}/{collection}/_counters returns the totals', async () => {
    const { body } = await ok<{ totals: Record<string, number> }>(s.base, 'GET', `${invoices}/_counters`);
    expect(body.totals).toMatchObject({ created: 5, deleted: 3, restored: 3 });
    const { body: none } = await ok<{ totals: Record<string, number> }>(s.base, 'GET', '/v1/tenants/acme/runtime/nothing-here/_counters');
    expect(none.totals).toEqual({});
    // The earlier path answers the same, for existing clients (left out of the OpenAPI document).
    expect((await ok(s.base, 'GET', '/v1/tenants/acme/counters/runtime/invoices')).body).toEqual(body);
    expect((await ok(s.base, 'GET', '/v1/tenants/acme/counters/runtime/nothing-here')).body).toEqual(none);
  });
});

describe('the domain and generic tiers', () => {
  it('serve the unversioned types: create, read, update, list', async () => {
    for (const base of ['/v1/domains/health/knowledge/articles', '/v1/generic/knowledge/policies', '/v1/generic/metadata/schemas']) {
      const { body, reply } = await ok<Created>(s.base, 'POST', base, { body: { title: 'retention', days: 30 } });
      expect(reply.status).toBe(201);
      expect(reply.headers.get('location')).toBe(`${base}/${body.id}`);
      const put = await call(s.base, 'PUT', `${base}/${body.id}`, { body: { title: 'retention', days: 60 }, headers: { 'if-match': '"0"' } });
      expect(put.status).toBe(200);
      expect((await ok<Rec>(s.base, 'GET', `${base}/${body.id}`)).body.data).toEqual({ title: 'retention', days: 60 });
      expect((await ok<Page>(s.base, 'GET', `${base}?filter=${encodeURIComponent('{"days":60}')}`)).body.items).toHaveLength(1);
    }
  });

  it('answer history and restore on an unversioned type with a 400 that says why', async () => {
    const { body } = await ok<Created>(s.base, 'POST', '/v1/generic/knowledge/policies', { body: { title: 'x' } });
    const reply = await call(s.base, 'GET', `/v1/generic/knowledge/policies/${body.id}/versions`);
    expect(reply.status).toBe(400);
    expect((reply.json as { detail: string }).detail).toMatch(/version history, which knowledge does not keep/);
  });

  it('keep logs append-only: an update is a 400', async () => {
    const { body } = await ok<Created>(s.base, 'POST', '/v1/generic/logs/events', { body: { event: 'login' } });
    const reply = await call(s.base, 'PUT', `/v1/generic/logs/events/${body.id}`, { body: { event: 'x' }, headers: { 'if-match': '"0"' } });
    expect(reply.status).toBe(400);
    expect((reply.json as { detail: string }).detail).toMatch(/append-only/);
  });

  it('the runtime type exists only at the tenant tier', async () => {
    expect((await call(s.base, 'GET', '/v1/generic/runtime/orders')).status).toBe(400);
    expect((await call(s.base, 'GET', '/v1/domains/health/runtime/orders')).status).toBe(400);
  });
});

describe('roles', () => {
  it('read may read but not write; write may write but not restore a collection; admin may do all', async () => {
    const { body } = await ok<Created>(s.base, 'POST', orders, { body: { a: 1 }, key: KEYS.acmeWriter });
    expect((await call(s.base, 'GET', `${orders}/${body.id}`, { key: KEYS.acmeReader })).status).toBe(200);
    expect((await call(s.base, 'POST', orders, { body: { a: 1 }, key: KEYS.acmeReader })).status).toBe(403);
    expect((await call(s.base, 'DELETE', `${orders}/${body.id}`, { key: KEYS.acmeReader, headers: { 'if-match': '"0"' } })).status).toBe(403);
    expect((await call(s.base, 'POST', `${orders}/restore`, { body: { cv: 0, dryRun: true }, key: KEYS.acmeWriter })).status).toBe(403);
    expect((await call(s.base, 'POST', `${orders}/${body.id}/restore`, { body: { ov: 0 }, key: KEYS.acmeWriter })).status).toBe(200);
    expect((await call(s.base, 'GET', '/v1/tenants/acme/counters/runtime/orders', { key: KEYS.acmeReader })).status).toBe(200);
  });
});
