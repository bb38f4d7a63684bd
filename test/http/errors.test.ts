import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND, call, KEYS, ok, type Reply, startServer, testApiConfig, type TestServer } from './harness.js';

/** Every error status the API answers, provoked for real, each as RFC 9457 problem details. */

type Problem = { type: string; title: string; status: number; detail: string; code: string; errors?: Array<{ path: string }>; currentOv?: number; correlationId?: string };

let s: TestServer;
const orders = '/v1/tenants/acme/runtime/orders';

beforeAll(async () => {
  s = await startServer();
});
afterAll(() => s.close());

/** The reply is a problem with this status and code; returns it. */
function problem(reply: Reply, status: number, code?: string): Problem {
  expect(reply.status, reply.text).toBe(status);
  expect(reply.headers.get('content-type')).toBe('application/problem+json');
  const body = reply.json as Problem;
  expect(body).toMatchObject({ type: 'about:blank', status, title: expect.any(String), detail: expect.any(String) });
  if (code) expect(body.code).toBe(code);
  // Nothing internal leaks: no stack frames, no error class names, no file paths.
  expect(reply.text).not.toMatch(/\s{2}at \S|\.(ts|js|mjs):\d+|Error:|\/work\/|node_modules|sqlite|postgres|ECONNREFUSED|relation "/i);
  return body;
}

async function createOrder(data: Record<string, unknown> = { total: 1 }): Promise<string> {
  return (await ok<{ id: string }>(s.base, 'POST', orders, { body: data })).body.id;
}

describe('400 Bad Request', () => {
  it('for path, query, header and body values that fail their schema, naming where', async () => {
    const cases: Array<[string, string, Parameters<typeof call>[3], string]> = [
      ['GET', `${orders}/a%2Fb`, {}, 'path.id'],
      ['GET', '/v1/tenants/acme/runtime/bad$name', {}, 'path.collection'],
      ['GET', '/v1/tenants/acme/nosuchtype/orders', {}, 'path.databaseType'],
      ['GET', `${orders}?limit=abc`, {}, 'query.limit'],
      ['GET', `${orders}?limit=1001`, {}, 'query.limit'],
      ['GET', `${orders}?unknown=1`, {}, 'query.unknown'],
      ['GET', `${orders}/x?ov=-1`, {}, 'query.ov'],
      ['GET', `${orders}/x?ov=1&at=2024-01-01`, {}, 'query.at'],
      ['GET', `${orders}?filter=not-json`, {}, 'query.filter'],
      ['PUT', `${orders}/x`, { body: { a: 1 }, headers: { 'if-match': 'W/"1"' } }, 'header.if-match'],
      ['PUT', `${orders}/x`, { body: { a: 1 }, headers: { 'if-match': '*' } }, 'header.if-match'],
      ['POST', orders, { body: [1, 2] }, 'body'],
      ['POST', orders, { body: 'text' }, 'body'],
      ['POST', `${orders}/x/restore`, { body: { ov: '1' } }, 'body'],
      ['POST', `${orders}/x/restore`, { body: { ov: 1, at: '2024-01-01' } }, 'body'],
      ['POST', `${orders}/restore`, { body: { cv: 1.5 } }, 'body'],
    ];
    for (const [method, path, options, where] of cases) {
      const body = problem(await call(s.base, method, path, options), 400, 'VALIDATION_FAILED');
      expect(body.errors?.map((e) => e.path) ?? [], `${method} ${path}`).toContain(where);
    }
  });

  it('for malformed JSON', async () => {
    problem(await call(s.base, 'POST', orders, { raw: '{"a":', contentType: 'application/json' }), 400, 'BAD_REQUEST');
    problem(await call(s.base, 'POST', orders, { raw: '', contentType: 'application/json' }), 400);
  });

  it('for what the engine refuses: $ keys, reserved keys, operator injection, impossible dates', async () => {
    const refused: Array<[string, string, Parameters<typeof call>[3]]> = [
      ['POST', orders, { body: { $set: { admin: true } } }],
      ['POST', orders, { body: { a: { $where: 'sleep(1000)' } } }],
      ['POST', orders, { raw: '{"__proto__":{"admin":true}}', contentType: 'application/json' }],
      ['POST', orders, { body: { _system: { parentId: 'x' } } }],
      ['GET', `${orders}?filter=${encodeURIComponent('{"$where":"this.a > 1"}')}`, {}],
      ['GET', `${orders}?filter=${encodeURIComponent('{"a":{"$function":{"body":"return 1"}}}')}`, {}],
      ['GET', `${orders}?filter=${encodeURIComponent('{"a":{"$regex":".*"}}')}`, {}],
      ['GET', `${orders}/x?at=2024-02-31T00:00:00Z`, {}],
    ];
    for (const [method, path, options] of refused) problem(await call(s.base, method, path, options), 400, 'VALIDATION_FAILED');
    expect((await ok<{ items: unknown[] }>(s.base, 'GET', orders)).body.items).toEqual([]);
  });
});

describe('401 Unauthorized', () => {
  it('without a key, with another scheme, or with a key or token nobody issued; WWW-Authenticate says Bearer', async () => {
    const missing = await call(s.base, 'GET', orders, { key: null });
    problem(missing, 401, 'UNAUTHORIZED');
    expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="xronox"');
    for (const authorization of ['Basic YWxhZGRpbjpvcGVuc2VzYW1l', 'Bearer', 'Bearer xrx_not-a-key-anyone-issued', 'Bearer a b', `Bearer ${KEYS.acmeAdmin}x`, 'Bearer ey.J.x']) {
      const reply = await call(s.base, 'GET', orders, { key: null, headers: { authorization } });
      problem(reply, 401, 'UNAUTHORIZED');
      expect(reply.headers.get('www-authenticate')).toMatch(/^Bearer realm="xronox"/);
    }
  });

  it('on every /v1 path, even ones that do not exist, before anything else is said', async () => {
    problem(await call(s.base, 'GET', '/v1/nothing/here', { key: null }), 401);
    problem(await call(s.base, 'POST', orders, { key: null, raw: 'x'.repeat(10), contentType: 'text/plain' }), 401);
  });
});

describe('403 Forbidden', () => {
  it('for a tenant the key does not grant, and for a role that is not enough', async () => {
    problem(await call(s.base, 'GET', '/v1/tenants/beta/runtime/orders'), 403, 'FORBIDDEN');
    problem(await call(s.base, 'POST', orders, { body: { a: 1 }, key: KEYS.acmeReader }), 403, 'FORBIDDEN');
  });
});

describe('404 Not Found', () => {
  it('for a record, a version or a route that does not exist', async () => {
    problem(await call(s.base, 'GET', `${orders}/no-such-record`), 404, 'NOT_FOUND');
    problem(await call(s.base, 'GET', `${orders}/no-such-record/versions`), 404, 'NOT_FOUND');
    problem(await call(s.base, 'PUT', `${orders}/no-such-record`, { body: { a: 1 }, headers: { 'if-match': '"0"' } }), 404, 'NOT_FOUND');
    problem(await call(s.base, 'POST', `${orders}/no-such-record/restore`, { body: { ov: 0 } }), 404, 'NOT_FOUND');
    problem(await call(s.base, 'GET', '/nothing'), 404, 'NOT_FOUND');
  });

  it('for a tenant with no database, without naming the tenants that exist', async () => {
    const reply = await call(s.base, 'GET', '/v1/tenants/gamma/runtime/orders', { key: KEYS.everywhere });
    const body = problem(reply, 404, 'ROUTE_NOT_FOUND');
    expect(body.detail).not.toMatch(/acme|beta/);
  });
});

describe('409 Conflict', () => {
  it('when a restore would revive a record whose unique key another record now holds', async () => {
    const users = s.xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'users' });
    const first = await users.smartInsert({ email: 'ada@example.com' }, { uniqueKeys: ['email'] });
    await ok(s.base, 'DELETE', `/v1/tenants/acme/runtime/users/${first.id}`, { headers: { 'if-match': '"0"' } });
    const second = await users.smartInsert({ email: 'ada@example.com' }, { uniqueKeys: ['email'] });
    expect(second.created).toBe(true);
    problem(await call(s.base, 'POST', `/v1/tenants/acme/runtime/users/${first.id}/restore`, { body: { ov: 0 } }), 409, 'CONFLICT');
    expect((await users.getLatest(first.id, { includeDeleted: true }))?.deleted).toBe(true);
  });
});

describe('412 Precondition Failed', () => {
  it('when If-Match is stale, with the current ov in the problem and the ETag', async () => {
    const id = await createOrder();
    for (const method of ['PUT', 'PATCH', 'DELETE']) {
      const reply = await call(s.base, method, `${orders}/${id}`, { ...(method === 'DELETE' ? {} : { body: { a: 2 } }), headers: { 'if-match': '"7"' } });
      expect(problem(reply, 412, 'VERSION_CONFLICT').currentOv).toBe(0);
      expect(reply.headers.get('etag')).toBe('"0"');
    }
    expect(problem(await call(s.base, 'POST', `${orders}/${id}/restore`, { body: { ov: 0 }, headers: { 'if-match': '"3"' } }), 412).currentOv).toBe(0);
    expect((await ok<{ ov: number }>(s.base, 'GET', `${orders}/${id}`)).body.ov).toBe(0);
  });
});

describe('413 Content Too Large', () => {
  let small: TestServer;
  beforeAll(async () => {
    small = await startServer({ api: testApiConfig({ bodyLimitBytes: 2048 }) });
  });
  afterAll(() => small.close());

  it('above the configured api.bodyLimitBytes, with or without Content-Length, writing nothing', async () => {
    const big = { text: 'x'.repeat(4096) };
    problem(await call(small.base, 'POST', orders, { body: big }), 413, 'CONTENT_TOO_LARGE');
    const chunked = await new Promise<{ status: number; type: string | undefined }>((done, fail) => {
      const url = new URL(`${small.base}${orders}`);
      const req = request(
        { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { authorization: `Bearer ${KEYS.acmeAdmin}`, 'content-type': 'application/json' } },
        (res) => {
          res.resume();
          res.on('end', () => done({ status: res.statusCode ?? 0, type: res.headers['content-type'] }));
        },
      );
      req.on('error', fail);
      // No Content-Length: the body streams in chunks and is counted as it arrives.
      req.write('{"text":"');
      for (let i = 0; i < 8; i++) req.write('y'.repeat(1024));
      req.end('"}');
    });
    expect(chunked).toEqual({ status: 413, type: 'application/problem+json' });
    expect((await ok<{ items: unknown[] }>(small.base, 'GET', orders)).body.items).toEqual([]);
    expect((await call(small.base, 'POST', orders, { body: { text: 'fits' } })).status).toBe(201);
  });

  it('defaults to the engine document limit (limits.maxDocumentBytes) when api.bodyLimitBytes is not set', async () => {
    const docs = await startServer({ config: { limits: { maxDocumentBytes: 4096 } } });
    try {
      problem(await call(docs.base, 'POST', orders, { body: { text: 'x'.repeat(5000) } }), 413);
      expect((await call(docs.base, 'POST', orders, { body: { text: 'x'.repeat(3000) } })).status).toBe(201);
    } finally {
      await docs.close();
    }
  });

  it('createApp({ bodyLimitBytes }) overrides the config', async () => {
    const tight = await startServer({ app: { bodyLimitBytes: 16 } });
    try {
      problem(await call(tight.base, 'POST', orders, { body: { text: 'longer than sixteen bytes' } }), 413);
    } finally {
      await tight.close();
    }
  });
});

describe('415 Unsupported Media Type', () => {
  it('for a body that is not declared as JSON, or no body at all where one is needed', async () => {
    problem(await call(s.base, 'POST', orders, { raw: '{"a":1}', contentType: 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    problem(await call(s.base, 'POST', orders, { raw: 'a=1', contentType: 'application/x-www-form-urlencoded' }), 415);
    problem(await call(s.base, 'POST', orders, { raw: '{"a":1}', contentType: null }), 415);
    problem(await call(s.base, 'POST', orders, {}), 415);
    const id = await createOrder();
    problem(await call(s.base, 'PUT', `${orders}/${id}`, { raw: '{"a":1}', contentType: 'application/xml', headers: { 'if-match': '"0"' } }), 415);
  });
});

describe('428 Precondition Required', () => {
  it('for PUT, PATCH and DELETE without If-Match', async () => {
    const id = await createOrder();
    problem(await call(s.base, 'PUT', `${orders}/${id}`, { body: { a: 1 } }), 428, 'PRECONDITION_REQUIRED');
    problem(await call(s.base, 'PATCH', `${orders}/${id}`, { body: { a: 1 } }), 428);
    problem(await call(s.base, 'DELETE', `${orders}/${id}`), 428);
    expect((await ok<{ ov: number }>(s.base, 'GET', `${orders}/${id}`)).body.ov).toBe(0);
  });
});

describe('500 Internal Server Error', () => {
  /** The 500's correlation id is the X-Request-Id, and the log line under that id holds the cause. */
  function expectCorrelated(server: TestServer, reply: Reply, code: string): Record<string, unknown> {
    const body = problem(reply, 500, code);
    expect(body.correlationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(reply.headers.get('x-request-id')).toBe(body.correlationId);
    const line = server.logs.find((l) => l.requestId === body.correlationId);
    expect(line).toMatchObject({ level: 'error', status: 500, error: { code, message: expect.any(String), stack: expect.any(String) } });
    return line!;
  }

  it('when the engine has been shut down', async () => {
    const closing = await startServer();
    await closing.xronox.shutdown();
    try {
      expectCorrelated(closing, await call(closing.base, 'GET', orders), 'CLOSED');
      expectCorrelated(closing, await call(closing.base, 'POST', orders, { body: { a: 1 } }), 'CLOSED');
    } finally {
      await closing.close();
    }
  });

  it('when the index store cannot be opened, without the driver message leaving the server', async () => {
    // SQLite: a folder where the database file should be; PostgreSQL: a port that refuses connections.
    const broken = await startServer({ unopenableStore: true });
    try {
      const line = expectCorrelated(broken, await call(broken.base, 'POST', orders, { body: { a: 1 } }), 'STORAGE_FAILED');
      // The log line holds what went wrong, as the driver said it.
      expect(JSON.stringify(line.error)).toMatch(BACKEND === 'sqlite' ? /Could not open the index store: .*a folder is at that path/ : /postgres store failed .*ECONNREFUSED/);
    } finally {
      await broken.close();
    }
  });

  it('uses the X-Request-Id the client sent, when well-formed, as the correlation id', async () => {
    const closing = await startServer();
    await closing.xronox.shutdown();
    try {
      const reply = await call(closing.base, 'GET', orders, { headers: { 'x-request-id': 'client-trace-42' } });
      expect((reply.json as Problem).correlationId).toBe('client-trace-42');
    } finally {
      await closing.close();
    }
  });
});
