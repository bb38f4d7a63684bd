import { readdirSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, KEYS, ok, parseRawResponse, rawExchange, type Reply, startServer, testApiConfig, type TestServer } from './harness.js';

/**
 * What a refused request leaves behind (nothing), bodies that are not UTF-8 JSON, and what a
 * client sees when its body is refused before it arrived (a 413 it can read, then a clean close).
 */

type Problem = { status: number; code: string; errors?: Array<{ path: string; message: string }> };

function problem(reply: Reply, status: number, code?: string): Problem {
  expect(reply.status, reply.text).toBe(status);
  expect(reply.headers.get('content-type')).toBe('application/problem+json');
  const body = reply.json as Problem;
  if (code) expect(body.code).toBe(code);
  return body;
}

/**
 * Every file under the server's data folder (with its size), minus the SQLite file, and every
 * object of its store (`storeObjects`: the file and its tables and indexes on SQLite, the schemas
 * and their relations on PostgreSQL): what a refused request must not change.
 */
async function dataSnapshot(s: TestServer): Promise<{ files: string[]; schema: string[] }> {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        files.push(`${relative(s.dataDir, path)}/`);
        walk(path);
      } else files.push(`${relative(s.dataDir, path)} ${statSync(path).size}`);
    }
  };
  walk(s.dataDir);
  return { files: files.filter((f) => !f.startsWith('xronox.sqlite')), schema: await s.storeObjects() };
}

const q = (value: unknown) => encodeURIComponent(JSON.stringify(value));
const memory = (key: string, val: unknown = 1) => ({
  key,
  namespace: 'app',
  tenantId: 'acme',
  val,
  _system: { createdAt: { $date: '2026-01-01T00:00:00.000Z' }, updatedAt: { $date: '2026-01-01T00:00:00.000Z' } },
});

describe('a refused request changes nothing', () => {
  let s: TestServer;
  beforeAll(async () => {
    // Documents above 4 KiB are refused by the engine, bodies up to 64 KiB reach it.
    s = await startServer({ config: { limits: { maxDocumentBytes: 4096 } }, api: testApiConfig({ bodyLimitBytes: 65_536 }) });
  });
  afterAll(() => s.close());

  it('creates no database file, schema, table or folder, whichever check refuses it', async () => {
    const before = await dataSnapshot(s);
    expect(before).toEqual({ files: [], schema: [] });
    const messaging = '/v1/tenants/acme/messaging/shared_memory';
    const identities = '/v1/tenants/acme/identities/users';
    const orders = '/v1/tenants/acme/runtime/orders';
    const user = { userId: 'u1', tenantId: 'acme', email: 'ada@example.com' };
    const refused: Array<[string, string, Parameters<typeof call>[3], number]> = [
      // The first messaging POST of the issue: a document without its documented fields.
      ['POST', messaging, { body: { key: 'k' } }, 400],
      ['POST', messaging, { body: memory('big', 'x'.repeat(8000)) }, 400],
      ['PUT', messaging, { body: { filter: { key: 'k', namespace: 'app', tenantId: 'acme' }, doc: memory('other') } }, 400],
      ['GET', `${messaging}?filter=${q({ $where: '1' })}`, {}, 400],
      ['DELETE', `${messaging}?filter=${q({})}`, {}, 400],
      ['POST', '/v1/tenants/acme/messaging/nope', { body: memory('k') }, 400],
      ['POST', identities, { body: { userId: 'u1', tenantId: 'acme', email: 'not an email' } }, 400],
      // An upsert whose document does not hold the key its filter names: refused before the read that would create the collection.
      ['PUT', identities, { body: { filter: { tenantId: 'acme', email: 'bob@example.com' }, doc: user } }, 400],
      ['POST', orders, { body: { $set: { admin: true } } }, 400],
      ['POST', orders, { body: { big: 'x'.repeat(8000) } }, 400],
      ['POST', `${orders}/batch`, { body: { items: [{ a: 1 }, { $bad: 1 }] } }, 400],
      ['GET', `${orders}?filter=${q({ a: { $regex: '.' } })}`, {}, 400],
      ['GET', `${orders}?unknown=1`, {}, 400],
      ['POST', orders, { raw: '{"a":1}', contentType: 'text/plain' }, 415],
      ['POST', orders, { raw: '{"a":', contentType: 'application/json' }, 400],
      ['POST', orders, { raw: Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), contentType: 'application/json' }, 400],
      ['POST', orders, { raw: 'x'.repeat(70_000), contentType: 'application/json' }, 413],
      ['GET', `/v1/generic/knowledge/policies?filter=${q({ $where: '1' })}`, {}, 400],
    ];
    for (const [method, path, options, status] of refused) {
      const reply = await call(s.base, method, path, options);
      expect.soft({ method, path: path.slice(0, 60), status: reply.status }).toEqual({ method, path: path.slice(0, 60), status });
    }
    expect(await dataSnapshot(s)).toEqual(before);
  });
});

describe('a refused request changes nothing in a database that exists', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({ config: { limits: { maxDocumentBytes: 4096 } }, api: testApiConfig({ bodyLimitBytes: 65_536 }) });
  });
  afterAll(() => s.close());

  it('creates no collection there: a document over the size limit, an upsert whose document does not hold its key', async () => {
    await ok(s.base, 'POST', '/v1/tenants/acme/runtime/orders', { body: { a: 1 } });
    await s.xronox.flush();
    const before = await dataSnapshot(s);
    expect(before.schema.length).toBeGreaterThan(0);
    // No messaging or identities collection exists yet: a refused write must not create one (with its indexes).
    problem(await call(s.base, 'POST', '/v1/tenants/acme/messaging/topics', { body: { topic: 't', tenantId: 'acme', shards: 1, createdAt: { $date: '2026-01-01T00:00:00.000Z' }, _system: { updatedAt: { $date: '2026-01-01T00:00:00.000Z' } }, note: 'x'.repeat(8000) } }), 400, 'VALIDATION_FAILED');
    problem(await call(s.base, 'PUT', '/v1/tenants/acme/identities/users', { body: { filter: { tenantId: 'acme', userId: 'u2' }, doc: { userId: 'u1', tenantId: 'acme', email: 'a@example.com' } } }), 400, 'VALIDATION_FAILED');
    expect(await dataSnapshot(s)).toEqual(before);
  });
});

describe('JSON bodies are UTF-8', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.close());
  const orders = '/v1/tenants/acme/runtime/orders';
  const json = (text: string) => Buffer.from(text, 'utf8');

  it('refuses bytes that are not UTF-8 with a 400 naming where, on every route with a body, and stores nothing', async () => {
    // {"a":"\xff\xfe"}: what a lenient decoder would store as "\uFFFD\uFFFD".
    const invalid = Buffer.concat([json('{"a":"'), Buffer.from([0xff, 0xfe]), json('"}')]);
    const body = problem(await call(s.base, 'POST', orders, { raw: invalid, contentType: 'application/json' }), 400, 'BAD_REQUEST');
    expect(body.errors).toEqual([{ path: 'body', message: expect.stringContaining('from byte 6') }]);
    // Overlong encodings, lone surrogates (CESU-8), a truncated sequence at the end.
    for (const bad of [[0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) {
      problem(await call(s.base, 'POST', orders, { raw: Buffer.concat([json('{"a":"'), Buffer.from(bad), json('"}')]), contentType: 'application/json' }), 400, 'BAD_REQUEST');
    }
    const { body: created } = await ok<{ id: string }>(s.base, 'POST', orders, { body: { a: 1 } });
    const routes: Array<[string, string, Record<string, string>]> = [
      ['POST', `${orders}/batch`, {}],
      ['PUT', `${orders}/${created.id}`, { 'if-match': '"0"' }],
      ['PATCH', `${orders}/${created.id}`, { 'if-match': '"0"' }],
      ['POST', `${orders}/${created.id}/restore`, {}],
      ['POST', `${orders}/restore`, {}],
      ['POST', '/v1/tenants/acme/messaging/shared_memory', {}],
      ['PUT', '/v1/tenants/acme/identities/users', {}],
    ];
    for (const [method, path, headers] of routes) {
      problem(await call(s.base, method, path, { raw: invalid, contentType: 'application/json', headers }), 400, 'BAD_REQUEST');
    }
    const listed = await ok<{ items: Array<{ data: unknown; ov: number }> }>(s.base, 'GET', orders);
    expect(listed.body.items.map((r) => [r.data, r.ov])).toEqual([[{ a: 1 }, 0]]);
  });

  it('stores valid UTF-8 exactly as sent, a U+FFFD the client wrote included', async () => {
    const data = { text: 'é ✓ 😀 \uFFFD', nested: ['\u0000', 'ü'] };
    for (const contentType of ['application/json', 'application/json; charset=utf-8', 'application/json;charset="UTF-8"', 'Application/JSON; Charset=utf8']) {
      const { body } = await ok<{ id: string }>(s.base, 'POST', orders, { raw: json(JSON.stringify(data)), contentType });
      expect((await ok<{ data: unknown }>(s.base, 'GET', `${orders}/${body.id}`)).body.data).toEqual(data);
    }
    // A byte order mark is allowed and not part of the JSON (RFC 8259 §8.1).
    const { body } = await ok<{ id: string }>(s.base, 'POST', orders, { raw: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), json('{"bom":true}')]), contentType: 'application/json' });
    expect((await ok<{ data: unknown }>(s.base, 'GET', `${orders}/${body.id}`)).body.data).toEqual({ bom: true });
  });

  it('answers 415 to a charset other than UTF-8, quoted or not, in any case, instead of reading it as UTF-8', async () => {
    const before = (await ok<{ items: unknown[] }>(s.base, 'GET', `${orders}?limit=1000`)).body.items.length;
    const cases: Array<[string, Buffer]> = [
      ['application/json; charset=utf-16', Buffer.from('{"a":"é"}', 'utf16le')],
      ['application/json; charset="UTF-16LE"', Buffer.from('{"a":"é"}', 'utf16le')],
      ['application/json; charset=latin1', Buffer.from('{"a":"é"}', 'latin1')],
      ['application/json;CHARSET=ISO-8859-1', Buffer.from('{"a":"é"}', 'latin1')],
      ['application/json; charset=us-ascii', json('{"a":"x"}')],
      ['application/json; charset=no-such-charset', json('{"a":"x"}')],
      ['application/json; charset=utf-8; charset=latin1', json('{"a":"x"}')],
    ];
    for (const [contentType, raw] of cases) {
      const body = problem(await call(s.base, 'POST', orders, { raw, contentType }), 415, 'UNSUPPORTED_MEDIA_TYPE');
      expect(JSON.stringify(body), contentType).toMatch(/UTF-8/);
    }
    expect((await ok<{ items: unknown[] }>(s.base, 'GET', `${orders}?limit=1000`)).body.items.length).toBe(before);
  });
});

describe('a body over the limit', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({ api: testApiConfig({ bodyLimitBytes: 1024 * 1024 }) });
  });
  afterAll(() => s.close());
  const head = (framing: string) =>
    `POST /v1/tenants/acme/runtime/orders HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${KEYS.acmeAdmin}\r\nContent-Type: application/json\r\n${framing}\r\n`;

  it('is answered with a 413 the client reads whole, then a clean close: no reset while the client sends the rest of its body', async () => {
    const bytes = 32 * 1024 * 1024;
    for (const chunked of [false, true]) {
      const framing = chunked ? 'Transfer-Encoding: chunked\r\n' : `Content-Length: ${bytes}\r\n`;
      const result = await rawExchange(s.base, head(framing), { bytes, chunked });
      expect({ chunked, error: result.error, closedByServer: result.closedByServer, sent: result.sent }).toEqual({ chunked, error: null, closedByServer: true, sent: bytes });
      const response = parseRawResponse(result.response);
      expect(response.status).toBe(413);
      expect(response.headers.connection).toBe('close');
      expect(response.headers['content-type']).toBe('application/problem+json');
      expect(Buffer.byteLength(response.body, 'latin1')).toBe(Number(response.headers['content-length']));
      expect(JSON.parse(response.body)).toMatchObject({ status: 413, code: 'CONTENT_TOO_LARGE' });
    }
    // Nothing was written, and the server serves the next connection as usual.
    expect((await ok<{ items: unknown[] }>(s.base, 'GET', '/v1/tenants/acme/runtime/orders')).body.items).toEqual([]);
  });

  it('reaches a client that uses fetch and streams its body, which reads the 413 instead of failing with a reset', async () => {
    // A body that takes a while to send (a slow link): 200 chunks of 64 KiB, one per timer turn.
    let chunks = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        if (++chunks > 200) controller.close();
        else controller.enqueue(new Uint8Array(65_536).fill(97));
      },
    });
    const reply = await fetch(`${s.base}/v1/tenants/acme/runtime/orders`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEYS.acmeAdmin}`, 'content-type': 'application/json' },
      body,
      duplex: 'half',
    } as RequestInit);
    expect(reply.status).toBe(413);
    expect(await reply.json()).toMatchObject({ code: 'CONTENT_TOO_LARGE' });
  });

  it('keeps the connection when the body had arrived whole, and answers the next request on it', async () => {
    const small = await startServer({ api: testApiConfig({ bodyLimitBytes: 64 }) });
    try {
      const { hostname, port } = new URL(small.base);
      const body = JSON.stringify({ pad: 'x'.repeat(200) });
      const request = (json: string) =>
        `POST /v1/tenants/acme/runtime/orders HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${KEYS.acmeAdmin}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`;
      const replies = await new Promise<string>((done, fail) => {
        const socket = connect({ host: hostname, port: Number(port) });
        let text = '';
        let answered = 0;
        socket.on('error', fail);
        socket.on('end', () => fail(new Error(`the server closed the connection after:\n${text}`)));
        socket.on('data', (data: Buffer) => {
          text += data.toString('latin1');
          // Count whole responses (head and Content-Length bytes of body).
          let rest = text;
          let complete = 0;
          for (;;) {
            const end = rest.indexOf('\r\n\r\n');
            const length = /content-length: (\d+)/i.exec(rest.slice(0, end));
            if (end < 0 || !length || rest.length < end + 4 + Number(length[1])) break;
            complete++;
            rest = rest.slice(end + 4 + Number(length[1]));
          }
          if (complete > answered && complete === 1) socket.write(request('{"n":1}'));
          answered = complete;
          if (complete === 2) {
            socket.removeAllListeners('end');
            socket.end();
            done(text);
          }
        });
        // One write: the whole request (headers and body) arrives before the answer is made.
        socket.write(request(body));
      });
      expect(replies).toMatch(/^HTTP\/1\.1 413 [\s\S]*connection: keep-alive[\s\S]*HTTP\/1\.1 201 /i);
    } finally {
      await small.close();
    }
  });
});

describe('query parameters', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.close());

  it('an unknown one is a 400 naming it on every route the OpenAPI document lists, never ignored', async () => {
    const doc = (await call(s.base, 'GET', '/openapi.json', { key: null })).json as {
      paths: Record<string, Record<string, { parameters?: Array<{ in: string; name: string }> }>>;
    };
    const { body: created } = await ok<{ id: string }>(s.base, 'POST', '/v1/tenants/acme/runtime/orders', { body: { a: 1 } });
    const fill = (template: string) =>
      template
        .replace('{tenantId}', 'acme')
        .replace('{domain}', 'health')
        .replace('{databaseType}', template.startsWith('/v1/tenants/') ? 'runtime' : 'knowledge')
        .replace('{collection}', template.includes('/identities/') ? 'users' : template.includes('/messaging/') ? 'shared_memory' : 'orders')
        .replace('{id}', created.id);
    let checked = 0;
    for (const [template, operations] of Object.entries(doc.paths)) {
      if (!template.startsWith('/v1/')) continue;
      for (const [method, operation] of Object.entries(operations)) {
        const known = (operation.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
        // A misspelt known parameter where there are some (limit → limt), else any name.
        const unknown = known.includes('limit') ? 'limt' : known.includes('filter') ? 'filtr' : 'bogus';
        const required = known.includes('filter') && method === 'delete' ? `filter=${q({ key: 'k' })}&` : '';
        const reply = await call(s.base, method.toUpperCase(), `${fill(template)}?${required}${unknown}=1`, {
          key: KEYS.everywhere,
          headers: { 'if-match': '"0"' },
          ...(['post', 'put', 'patch'].includes(method) ? { body: {} } : {}),
        });
        const body = problem(reply, 400, 'VALIDATION_FAILED');
        expect(body.errors?.map((e) => e.path), `${method} ${template}`).toContain(`query.${unknown}`);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(20);
    // Nothing any of them would have done was done.
    const { body } = await ok<{ ov: number }>(s.base, 'GET', `/v1/tenants/acme/runtime/orders/${created.id}`);
    expect(body.ov).toBe(0);
  });
});
