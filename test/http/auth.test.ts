import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, KEYS, ok, type Reply, startServer, testApiConfig, type TestServer } from './harness.js';

/** Who may call what: tenant isolation on every route, roles, and JWTs (secret and JWKS). */

type Created = { id: string };

describe('tenant isolation', () => {
  let s: TestServer;
  let betaOrder: string;
  let betaArticle: string;

  beforeAll(async () => {
    s = await startServer();
    betaOrder = (await ok<Created>(s.base, 'POST', '/v1/tenants/beta/runtime/orders', { key: KEYS.betaAdmin, body: { secret: 'beta data' } })).body.id;
    betaArticle = (await ok<Created>(s.base, 'POST', '/v1/domains/health/knowledge/articles', { key: KEYS.acmeAdmin, body: { t: 1 } })).body.id;
  });
  afterAll(() => s.close());

  /** Every operation under a collection path, with a valid request and with broken ones (the 403 must come first). */
  function everyRoute(collection: string, id: string): Array<[string, string, Parameters<typeof call>[3]]> {
    const record = `${collection}/${id}`;
    return [
      ['POST', collection, { body: { a: 1 } }],
      ['POST', collection, { raw: '{broken', contentType: 'application/json' }],
      ['POST', collection, { raw: 'x', contentType: 'text/plain' }],
      ['GET', collection, {}],
      ['GET', `${collection}?filter=${encodeURIComponent('{"secret":"beta data"}')}`, {}],
      ['GET', `${collection}?limit=0`, {}],
      ['POST', `${collection}/restore`, { body: { cv: 0, dryRun: true } }],
      ['GET', record, {}],
      ['GET', `${record}?ov=0`, {}],
      ['GET', `${record}?at=2030-01-01T00:00:00Z`, {}],
      ['PUT', record, { body: { a: 2 }, headers: { 'if-match': '"0"' } }],
      ['PUT', record, { body: { a: 2 } }],
      ['PATCH', record, { body: { a: 2 }, headers: { 'if-match': '"0"' } }],
      ['DELETE', record, { headers: { 'if-match': '"0"' } }],
      ['DELETE', record, {}],
      ['GET', `${record}/versions`, {}],
      ['POST', `${record}/restore`, { body: { ov: 0 } }],
      ['OPTIONS', record, {}],
      ['GET', `${record}/no/such/route`, {}],
    ];
  }

  /** What a client can observe of a reply, minus what differs per request anyway. */
  const observable = (reply: Reply) => ({
    status: reply.status,
    body: reply.text,
    headers: [...reply.headers].filter(([name]) => !['x-request-id', 'date'].includes(name)),
  });

  /** For each route: `key` on `existing` (with a real id) and on `missing` (with a made-up id) answer the same 403. */
  async function expectSameRefusal(key: string, existing: [string, string], missing: [string, string]): Promise<number> {
    const a = everyRoute(...existing);
    const b = everyRoute(...missing);
    for (let i = 0; i < a.length; i++) {
      const [method, pathA, options] = a[i]!;
      const there = await call(s.base, method, pathA, { ...options, key });
      const absent = await call(s.base, method, b[i]![1], { ...options, key });
      expect(there.status, `${method} ${pathA}`).toBe(403);
      expect(observable(absent), `${method} ${b[i]![1]}`).toEqual(observable(there));
    }
    return a.length;
  }

  it('a key for tenant acme gets the same 403 on every route of tenant beta as on a tenant that does not exist', async () => {
    const checked = await expectSameRefusal(KEYS.acmeAdmin, ['/v1/tenants/beta/runtime/orders', betaOrder], ['/v1/tenants/gamma/runtime/orders', 'made-up-id']);
    expect(checked).toBeGreaterThan(15);
    const counters = await call(s.base, 'GET', '/v1/tenants/beta/counters/runtime/orders');
    expect(observable(await call(s.base, 'GET', '/v1/tenants/gamma/counters/runtime/orders'))).toEqual(observable(counters));
    expect(counters.status).toBe(403);
    const head = await call(s.base, 'HEAD', `/v1/tenants/beta/runtime/orders/${betaOrder}`);
    expect(head.status).toBe(403);
  });

  it('the same holds for domains and the generic tier', async () => {
    await expectSameRefusal(KEYS.betaAdmin, ['/v1/domains/health/knowledge/articles', betaArticle], ['/v1/domains/nowhere/knowledge/articles', 'made-up-id']);
    await expectSameRefusal(KEYS.acmeWriter, ['/v1/generic/knowledge/policies', 'some-id'], ['/v1/generic/messaging/policies', 'made-up-id']);
  });

  it("beta's data is untouched and was never shown", async () => {
    const { body } = await ok<{ ov: number; data: unknown }>(s.base, 'GET', `/v1/tenants/beta/runtime/orders/${betaOrder}`, { key: KEYS.betaAdmin });
    expect(body).toMatchObject({ ov: 0, data: { secret: 'beta data' } });
    expect((await ok<{ items: unknown[] }>(s.base, 'GET', '/v1/tenants/beta/runtime/orders', { key: KEYS.betaAdmin })).body.items).toHaveLength(1);
  });

  it('hostile tenant names in the path are refused by authorization, not interpreted', async () => {
    // Compared after decoding, exactly as the route sees them: only "acme" itself is acme.
    const expected: Array<[string, number]> = [
      ['acme%2F..%2Fbeta', 403],
      ['beta%00', 403],
      ['ACME', 403],
      ['acme%20', 403],
      ['*', 403],
      ['%2A', 403],
      ['%61cme', 200],
    ];
    for (const [tenant, status] of expected) {
      const reply = await call(s.base, 'GET', `/v1/tenants/${tenant}/runtime/orders`);
      expect(reply.status, tenant).toBe(status);
      expect(reply.text).not.toContain('beta data');
    }
  });

  it('dot segments are resolved before routing and authorization, so they cannot step into another tenant', async () => {
    // The server adapter parses the URL (WHATWG rules): what is authorized is the resolved path.
    expect((await call(s.base, 'GET', '/v1/tenants/acme/../beta/runtime/orders')).status).toBe(403);
    expect((await call(s.base, 'GET', '/v1/tenants/acme/%2e%2e/beta/runtime/orders')).status).toBe(403);
    expect((await call(s.base, 'GET', '/v1/tenants/beta/../acme/runtime/orders')).status).toBe(200);
    expect((await call(s.base, 'GET', '/v1/tenants/../runtime/orders')).status).toBe(404);
  });
});

describe('JWT with a shared secret', () => {
  const secret = 'a-shared-hmac-secret-of-at-least-32-characters';
  let s: TestServer;

  beforeAll(async () => {
    s = await startServer({ api: testApiConfig({ jwt: { secret, issuer: 'https://issuer.test', audience: 'xronox' } }) });
  });
  afterAll(() => s.close());

  const sign = (claims: JWTPayload, options: { key?: string; exp?: string | number | null; iss?: string; aud?: string } = {}) => {
    const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setIssuer(options.iss ?? 'https://issuer.test').setAudience(options.aud ?? 'xronox');
    if (options.exp !== null) jwt.setExpirationTime(options.exp ?? '5m');
    return jwt.sign(new TextEncoder().encode(options.key ?? secret));
  };
  const claims = { sub: 'user-123', name: 'Ada', role: 'write', tenants: ['acme'] };

  it('a valid token writes as its subject', async () => {
    const token = await sign(claims);
    const { body } = await ok<Created>(s.base, 'POST', '/v1/tenants/acme/runtime/orders', { key: token, body: { a: 1 } });
    const { body: v0 } = await ok<{ actor: unknown }>(s.base, 'GET', `/v1/tenants/acme/runtime/orders/${body.id}?ov=0`, { key: token });
    expect(v0.actor).toEqual({ type: 'user', identifier: 'user-123', name: 'Ada' });
    expect(s.logs.at(-1)).toMatchObject({ principal: 'jwt:user-123', tenant: 'acme', status: 200 });
  });

  it('its claims limit it like a key: other tenants 403, a read role may not write', async () => {
    expect((await call(s.base, 'GET', '/v1/tenants/beta/runtime/orders', { key: await sign(claims) })).status).toBe(403);
    expect((await call(s.base, 'POST', '/v1/tenants/acme/runtime/orders', { key: await sign({ ...claims, role: 'read' }), body: { a: 1 } })).status).toBe(403);
  });

  it('expired, wrongly signed, unsigned, mis-addressed or incomplete tokens are 401', async () => {
    const unsigned = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ ...claims, exp: 9e9 })).toString('base64url')}.`;
    const refused = [
      await sign(claims, { exp: Math.floor(Date.now() / 1000) - 3600 }),
      await sign(claims, { key: 'another-secret-that-is-also-32-characters-long' }),
      await sign(claims, { exp: null }),
      await sign(claims, { iss: 'https://someone-else.test' }),
      await sign(claims, { aud: 'another-service' }),
      await sign({ role: 'write', tenants: ['acme'] }),
      await sign({ ...claims, role: 'root' }),
      await sign({ ...claims, tenants: ['../beta'] }),
      unsigned,
    ];
    for (const token of refused) {
      const reply = await call(s.base, 'GET', '/v1/tenants/acme/runtime/orders', { key: token });
      expect(reply.status, token).toBe(401);
      expect(reply.headers.get('www-authenticate')).toContain('error="invalid_token"');
    }
  });

  it('API keys keep working beside JWTs', async () => {
    expect((await call(s.base, 'GET', '/v1/tenants/acme/runtime/orders', { key: KEYS.acmeReader })).status).toBe(200);
  });
});

type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

describe('JWT with a JWKS', () => {
  let jwks: Server;
  let jwksUrl: string;
  let fetches = 0;
  let s: TestServer;
  let signing: PrivateKey;

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256');
    signing = pair.privateKey;
    const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'key-1', alg: 'ES256', use: 'sig' };
    // A real JWKS endpoint, as an identity provider serves it.
    jwks = createServer((req, res) => {
      fetches++;
      if (req.url !== '/.well-known/jwks.json') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [publicJwk] }));
    });
    await new Promise<void>((done) => jwks.listen(0, '127.0.0.1', done));
    jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`;
    s = await startServer({ api: testApiConfig({ jwt: { jwksUrl } }) });
  });
  afterAll(async () => {
    await s.close();
    await new Promise((done) => jwks.close(done));
  });

  const sign = (key: PrivateKey, kid = 'key-1', claims: JWTPayload = { sub: 'svc-importer', role: 'admin', tenants: ['acme'] }) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid }).setExpirationTime('5m').sign(key);

  it('a token signed with a key of the set is accepted, and the set is fetched once and cached', async () => {
    const token = await sign(signing);
    expect((await call(s.base, 'POST', '/v1/tenants/acme/runtime/orders', { key: token, body: { a: 1 } })).status).toBe(201);
    expect((await call(s.base, 'GET', '/v1/tenants/acme/runtime/orders', { key: token })).status).toBe(200);
    expect(fetches).toBe(1);
  });

  it('a token signed with another key, with an unknown kid, or with HMAC is 401', async () => {
    const other = (await generateKeyPair('ES256')).privateKey;
    const hmac = await new SignJWT({ sub: 'x', role: 'admin', tenants: ['acme'] })
      .setProtectedHeader({ alg: 'HS256', kid: 'key-1' })
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode('guessing-the-verification-key-as-hmac'));
    for (const token of [await sign(other), await sign(other, 'key-2'), hmac]) {
      expect((await call(s.base, 'GET', '/v1/tenants/acme/runtime/orders', { key: token })).status).toBe(401);
    }
  });

  it('an unreachable JWKS is our failure: 500 with a correlation id, not a 401', async () => {
    const idle = createServer();
    await new Promise<void>((done) => idle.listen(0, '127.0.0.1', done));
    const deadUrl = `http://127.0.0.1:${(idle.address() as AddressInfo).port}/jwks.json`;
    // Nothing listens there any more: the fetch is refused at once.
    await new Promise((done) => idle.close(done));
    const broken = await startServer({ api: testApiConfig({ jwt: { jwksUrl: deadUrl } }) });
    try {
      const reply = await call(broken.base, 'GET', '/v1/tenants/acme/runtime/orders', { key: await sign(signing) });
      expect(reply.status).toBe(500);
      const { correlationId } = reply.json as { correlationId: string };
      expect(broken.logs.find((l) => l.requestId === correlationId)).toMatchObject({ level: 'error', status: 500 });
      expect((await call(broken.base, 'GET', '/v1/tenants/acme/runtime/orders', { key: KEYS.acmeReader })).status).toBe(200);
    } finally {
      await broken.close();
    }
  });
});
