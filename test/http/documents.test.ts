import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, KEYS, ok, startServer, type TestServer } from './harness.js';

/**
 * Messaging and identities over real HTTP: insert, upsert, find and delete with Extended JSON
 * dates, the same auth and problem rules as the record routes, tenant isolation, and the identity
 * audit trail carrying the caller as actor.
 */

let s: TestServer;
beforeAll(async () => {
  s = await startServer();
});
afterAll(() => s.close());

const base = (tenant: string, type = 'messaging', collection = 'shared_memory') => `/v1/tenants/${tenant}/${type}/${collection}`;
const memory = (key: string, tenantId = 'acme', val: unknown = { theme: 'dark' }) => ({
  key, namespace: 'app', tenantId, val, _system: { createdAt: { $date: '2026-01-02T03:04:05.678Z' }, updatedAt: { $date: '2026-01-02T03:04:05.678Z' } },
});
const q = (value: unknown) => encodeURIComponent(JSON.stringify(value));

describe('messaging over HTTP', () => {
  it('inserts, upserts, finds (dates as {"$date"}) and deletes', async () => {
    const inserted = await call(s.base, 'POST', base('acme'), { body: memory('a') });
    expect(inserted.status).toBe(201);
    expect(inserted.json).toEqual({ inserted: true });
    const found = await ok<{ items: unknown[] }>(s.base, 'GET', `${base('acme')}?filter=${q({ key: 'a' })}`);
    expect(found.body.items).toEqual([memory('a')]);

    const filter = { key: 'b', namespace: 'app', tenantId: 'acme' };
    expect((await call(s.base, 'PUT', base('acme'), { body: { filter, doc: memory('b', 'acme', 1) } })).status).toBe(201);
    const replaced = await call(s.base, 'PUT', base('acme'), { body: { filter, doc: memory('b', 'acme', 2) } });
    expect({ status: replaced.status, body: replaced.json }).toEqual({ status: 200, body: { created: false } });
    const byDate = await ok<{ items: Array<{ key: string }> }>(s.base, 'GET', `${base('acme')}?filter=${q({ '_system.updatedAt': { $gte: { $date: '2026-01-01T00:00:00.000Z' } } })}&sort=${q({ key: -1 })}&limit=10`);
    expect(byDate.body.items.map((d) => d.key)).toEqual(['b', 'a']);

    const dup = await call(s.base, 'POST', base('acme'), { body: memory('a') });
    expect(dup.status).toBe(409);
    expect(dup.json).toMatchObject({ code: 'CONFLICT', detail: expect.stringContaining('key_1_namespace_1_tenantId_1') });

    expect((await ok(s.base, 'DELETE', `${base('acme')}?filter=${q({ key: { $in: ['a', 'b'] } })}`)).body).toEqual({ deleted: 1 });
    expect((await ok(s.base, 'DELETE', `${base('acme')}?filter=${q({ key: { $in: ['a', 'b'] } })}&many=true`)).body).toEqual({ deleted: 1 });
    expect((await ok<{ items: unknown[] }>(s.base, 'GET', base('acme'))).body.items).toEqual([]);
  });

  it('refuses another tenant the same way whether it exists or not, and a body naming another tenant', async () => {
    await ok(s.base, 'POST', base('beta'), { key: KEYS.betaAdmin, body: memory('secret', 'beta') });
    for (const method of ['GET', 'POST', 'PUT', 'DELETE']) {
      const body = method === 'POST' ? memory('x') : method === 'PUT' ? { filter: { key: 'x', namespace: 'app' }, doc: memory('x') } : undefined;
      const query = method === 'DELETE' ? `?filter=${q({ key: 'secret' })}` : '';
      const beta = await call(s.base, method, `${base('beta')}${query}`, { body });
      const gamma = await call(s.base, method, `${base('gamma')}${query}`, { body });
      expect({ method, status: beta.status, code: (beta.json as { code: string }).code }).toEqual({ method, status: 403, code: 'FORBIDDEN' });
      expect((gamma.json as { detail: string }).detail).toBe((beta.json as { detail: string }).detail);
    }
    const asBeta = await call(s.base, 'POST', base('acme'), { body: memory('x', 'beta') });
    expect(asBeta.status).toBe(403);
    expect(asBeta.text).not.toContain('beta');
    expect((await ok<{ items: unknown[] }>(s.base, 'GET', base('beta'), { key: KEYS.betaAdmin })).body.items).toEqual([memory('secret', 'beta')]);
    expect((await ok<{ items: unknown[] }>(s.base, 'GET', `${base('acme')}?filter=${q({ tenantId: 'beta' })}`)).body.items).toEqual([]);
  });

  it('applies roles, and turns hostile input into a 400 with nothing written', async () => {
    expect((await call(s.base, 'GET', base('acme'), { key: KEYS.acmeReader })).status).toBe(200);
    expect((await call(s.base, 'POST', base('acme'), { key: KEYS.acmeReader, body: memory('r') })).status).toBe(403);
    const bad: Array<[string, string, unknown]> = [
      ['POST', base('acme'), { ...memory('d'), _system: { createdAt: { $date: 'yesterday' }, updatedAt: { $date: '2026-01-01T00:00:00Z' } } }],
      // An impossible date is refused, not rolled over into March.
      ['POST', base('acme'), { ...memory('d'), _system: { createdAt: { $date: '2024-02-31T00:00:00Z' }, updatedAt: { $date: '2026-01-01T00:00:00Z' } } }],
      ['POST', base('acme'), { ...memory('d'), $where: '1' }],
      ['POST', base('acme'), { ...memory('d'), _id: 'x' }],
      ['POST', base('acme', 'messaging', 'orders'), memory('d')],
      ['POST', base('acme', 'messaging', 'deliveries'), memory('d')],
      ['PUT', base('acme'), { filter: { key: 'd' }, doc: memory('d') }],
      ['PUT', base('acme'), { doc: memory('d') }],
      ['GET', `${base('acme')}?filter=${q({ $where: 'sleep(1)' })}`, undefined],
      ['GET', `${base('acme')}?filter=${q({ val: 1 })}`, undefined],
      ['GET', `${base('acme')}?limit=0`, undefined],
      ['GET', `${base('acme')}?sort=${q({ key: 2 })}`, undefined],
      ['DELETE', base('acme'), undefined],
      ['DELETE', `${base('acme')}?filter=${q({})}`, undefined],
      ['GET', `${base('acme')}/some-id`, undefined],
      ['PUT', `${base('acme')}/some-id`, memory('d')],
    ];
    for (const [method, path, body] of bad) {
      const reply = await call(s.base, method, path, { body, headers: { 'if-match': '"0"' } });
      expect({ method, path, status: reply.status }).toEqual({ method, path, status: 400 });
    }
    expect((await ok<{ items: unknown[] }>(s.base, 'GET', `${base('acme')}?filter=${q({ key: 'd' })}`)).body.items).toEqual([]);
  });
});

describe('identities over HTTP', () => {
  it('audits a change with the caller as actor and X-Xronox-Reason as reason', async () => {
    const users = base('acme', 'identities', 'users');
    const ada = { userId: 'u1', tenantId: 'acme', email: 'Ada@Example.com', roles: ['user'] };
    await ok(s.base, 'POST', users, { key: KEYS.acmeWriter, body: ada });
    const promoted = await call(s.base, 'PUT', users, {
      key: KEYS.acmeWriter,
      headers: { 'x-xronox-reason': 'promotion' },
      body: { filter: { userId: 'u1' }, doc: { ...ada, roles: ['admin'] } },
    });
    expect(promoted.status).toBe(200);
    const events = await s.xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'identity_events' }).listByMeta({ sort: { createdAt: -1 }, limit: 1 });
    const event = events.items[0]!;
    expect(event.data).toMatchObject({ op: 'update', collection: 'users', changes: [{ field: 'roles', oldValue: ['user'], newValue: ['admin'] }] });
    const history = await s.xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'identity_events' }).history(event.id);
    expect(history.items[0]).toMatchObject({ actor: { type: 'api', identifier: 'acme-writer' }, reason: 'promotion' });
    expect((await ok<{ items: Array<{ email: string }> }>(s.base, 'GET', `${users}?filter=${q({ email: 'ADA@example.com' })}`)).body.items.map((u) => u.email)).toEqual(['ada@example.com']);
    const dup = await call(s.base, 'POST', users, { key: KEYS.acmeWriter, body: { ...ada, userId: 'u2' } });
    expect(dup.json).toMatchObject({ status: 409, code: 'CONFLICT' });
  });
});
