import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, configSchema } from '../../core/index.js';
import { CORS_ORIGINS_VARIABLE, corsSettings } from '../../functions/api/cors.js';
import { call, KEYS, ok, type Reply, startServer, testApiConfig, type TestServer } from './harness.js';

/**
 * CORS over real HTTP: a server with `api.cors.allowedOrigins`, and one without. What a browser
 * does with the answers is its business; what is checked is exactly what it is told.
 */

const ALLOWED = 'https://app.example.com';
const ALSO_ALLOWED = 'http://localhost:5173';
const OTHER = 'https://evil.example.net';

let withCors: TestServer;
let without: TestServer;

beforeAll(async () => {
  withCors = await startServer({ api: testApiConfig({ cors: { allowedOrigins: [ALLOWED, ALSO_ALLOWED] } }) });
  without = await startServer();
});
afterAll(async () => {
  await withCors?.close();
  await without?.close();
});

function corsHeaders(reply: Reply): Record<string, string> {
  return Object.fromEntries([...reply.headers].filter(([name]) => name.startsWith('access-control-')));
}
const list = (value: string | null) => (value ?? '').split(',').map((v) => v.trim().toLowerCase());

function preflight(s: TestServer, origin: string, method = 'PUT', path = '/v1/tenants/acme/runtime/orders/some-id'): Promise<Reply> {
  return call(s.base, 'OPTIONS', path, {
    key: null,
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'authorization,content-type,if-match' },
  });
}

describe('CORS with allowed origins', () => {
  it('answers a preflight from an allowed origin: methods, Authorization and If-Match allowed, cached', async () => {
    for (const origin of [ALLOWED, ALSO_ALLOWED]) {
      const reply = await preflight(withCors, origin);
      expect(reply.status, origin).toBe(204);
      expect(reply.headers.get('access-control-allow-origin')).toBe(origin);
      expect(list(reply.headers.get('access-control-allow-methods'))).toEqual(expect.arrayContaining(['get', 'post', 'put', 'patch', 'delete']));
      expect(list(reply.headers.get('access-control-allow-headers'))).toEqual(expect.arrayContaining(['authorization', 'content-type', 'if-match', 'x-xronox-reason']));
      expect(reply.headers.get('access-control-max-age')).toBe('3600');
      expect(list(reply.headers.get('vary'))).toContain('origin');
      // The preflight carries no credential and is still answered: it never reaches authentication.
      expect(reply.headers.get('access-control-allow-credentials')).toBeNull();
    }
  });

  it('lets the allowed origin read ETag, Location and X-Request-Id of real answers, problems included', async () => {
    const created = await call(withCors.base, 'POST', '/v1/tenants/acme/runtime/cors', { key: KEYS.acmeWriter, body: { n: 1 }, headers: { origin: ALLOWED } });
    expect(created.status).toBe(201);
    expect(created.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(list(created.headers.get('access-control-expose-headers'))).toEqual(expect.arrayContaining(['etag', 'location', 'x-request-id']));
    expect(list(created.headers.get('vary'))).toContain('origin');
    const id = (created.json as { id: string }).id;

    // A conditional update, as a browser client would send it after the preflight above.
    const updated = await call(withCors.base, 'PUT', `/v1/tenants/acme/runtime/cors/${id}`, { key: KEYS.acmeWriter, body: { n: 2 }, headers: { origin: ALLOWED, 'if-match': created.headers.get('etag')! } });
    expect(updated.status).toBe(200);
    expect(updated.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(updated.headers.get('etag')).toBe('"1"');

    // Problems too: a browser script must be able to read why it was refused.
    for (const refused of [
      await call(withCors.base, 'GET', `/v1/tenants/acme/runtime/cors/${id}`, { key: null, headers: { origin: ALLOWED } }),
      await call(withCors.base, 'GET', `/v1/tenants/beta/runtime/cors/${id}`, { key: KEYS.acmeReader, headers: { origin: ALLOWED } }),
      await call(withCors.base, 'PUT', `/v1/tenants/acme/runtime/cors/${id}`, { key: KEYS.acmeWriter, body: { n: 3 }, headers: { origin: ALLOWED, 'if-match': '"0"' } }),
    ]) {
      expect([401, 403, 412]).toContain(refused.status);
      expect(refused.headers.get('content-type')).toBe('application/problem+json');
      expect(refused.headers.get('access-control-allow-origin'), `${refused.status}`).toBe(ALLOWED);
    }
  });

  it('tells any other origin nothing: no CORS header on a preflight or an answer', async () => {
    for (const origin of [OTHER, `${ALLOWED}/`, ALLOWED.toUpperCase(), `${ALLOWED}:443`, 'null', 'https://app.example.com.evil.example.net']) {
      const pre = await preflight(withCors, origin);
      expect(corsHeaders(pre), origin).toEqual({});
      // Not answered as a preflight: it meets authentication like any request without a key.
      expect(pre.status, origin).toBe(401);
      const get = await call(withCors.base, 'GET', '/v1/tenants/acme/runtime/cors', { key: KEYS.acmeReader, headers: { origin } });
      expect(get.status, origin).toBe(200);
      expect(corsHeaders(get), origin).toEqual({});
      // Still varies by Origin: a cache must not give this answer to an allowed origin, or the reverse.
      expect(list(get.headers.get('vary')), origin).toContain('origin');
    }
    // Nor a request with no Origin (not from a browser page on another origin).
    const plain = await ok(withCors.base, 'GET', '/v1/tenants/acme/runtime/cors', { key: KEYS.acmeReader });
    expect(corsHeaders(plain.reply)).toEqual({});
  });
});

describe('CORS for any origin', () => {
  it('answers every origin with its own name, and a request without Origin with no CORS header', async () => {
    const any = await startServer({ api: testApiConfig({ cors: { allowedOrigins: ['*'], maxAgeSeconds: 60 } }) });
    try {
      for (const origin of [ALLOWED, OTHER, 'null']) {
        const pre = await preflight(any, origin);
        expect(pre.status, origin).toBe(204);
        expect(pre.headers.get('access-control-allow-origin'), origin).toBe(origin);
        expect(pre.headers.get('access-control-max-age')).toBe('60');
      }
      const plain = await call(any.base, 'GET', '/v1/tenants/acme/runtime/cors', { key: KEYS.acmeReader });
      expect(corsHeaders(plain)).toEqual({});
    } finally {
      await any.close();
    }
  });
});

describe('CORS without configuration', () => {
  it('sends no CORS headers to anyone, and answers no preflight', async () => {
    for (const origin of [ALLOWED, OTHER]) {
      const pre = await preflight(without, origin);
      expect(corsHeaders(pre), origin).toEqual({});
      // Not answered as a preflight: it meets authentication like any request without a key.
      expect(pre.status, origin).toBe(401);
      const get = await call(without.base, 'GET', '/v1/tenants/acme/runtime/cors', { key: KEYS.acmeReader, headers: { origin } });
      expect(get.status).toBe(200);
      expect(corsHeaders(get), origin).toEqual({});
    }
  });
});

describe('api.cors settings', () => {
  it('accepts only exact origins in the config, naming the bad entry', () => {
    for (const bad of ['https://app.example.com/', 'https://app.example.com/path', 'HTTPS://APP.EXAMPLE.COM', 'https://app.example.com:443', 'ftp://files.example.com', 'app.example.com', '', '**']) {
      const parsed = configSchema.safeParse({ api: { cors: { allowedOrigins: [ALLOWED, bad] } } });
      expect(parsed.success, bad).toBe(false);
      const issue = parsed.error!.issues.find((i) => i.path.join('.') === 'api.cors.allowedOrigins.1');
      expect(issue?.message, bad).toMatch(/must be an origin such as https:\/\/app\.example\.com/);
    }
    for (const good of [[ALLOWED, ALSO_ALLOWED, 'https://[::1]:8443'], ['*']]) {
      const parsed = configSchema.safeParse({ api: { cors: { allowedOrigins: good } } });
      expect(parsed.error?.issues.filter((i) => i.path[0] === 'api') ?? [], good.join()).toEqual([]);
    }
    const mixed = configSchema.safeParse({ api: { cors: { allowedOrigins: [ALLOWED, '*'] } } });
    expect(mixed.error?.issues.find((i) => i.path.join('.') === 'api.cors.allowedOrigins')?.message).toMatch(/either \["\*"\] \(any origin\) or a list of origins/);
  });

  it(`takes ${CORS_ORIGINS_VARIABLE} over the config, and refuses a bad origin in it by name`, () => {
    const config = { allowedOrigins: [ALLOWED], maxAgeSeconds: 60 };
    expect(corsSettings(config, {})).toBe(config);
    expect(corsSettings(undefined, {})).toBeUndefined();
    expect(corsSettings(config, { [CORS_ORIGINS_VARIABLE]: '  ' })).toBe(config);
    expect(corsSettings(config, { [CORS_ORIGINS_VARIABLE]: `${ALSO_ALLOWED}, ${OTHER}` })).toEqual({ allowedOrigins: [ALSO_ALLOWED, OTHER], maxAgeSeconds: 60 });
    expect(corsSettings(undefined, { [CORS_ORIGINS_VARIABLE]: OTHER })).toEqual({ allowedOrigins: [OTHER] });
    expect(corsSettings(undefined, { [CORS_ORIGINS_VARIABLE]: '*' })).toEqual({ allowedOrigins: ['*'] });
    let error: unknown;
    try {
      corsSettings(undefined, { [CORS_ORIGINS_VARIABLE]: `${OTHER},https://app.example.com/` });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues).toEqual([{ path: `${CORS_ORIGINS_VARIABLE}[1]`, message: expect.stringMatching(/must be an origin/) }]);
  });
});
