import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, KEYS, startServer, type TestServer } from './harness.js';

/** The OpenAPI 3.1 document is generated from the route schemas, complete, and consistent. */

type Operation = {
  operationId?: string;
  security?: unknown[];
  parameters?: Array<{ name: string; in: string; required?: boolean; schema?: { type?: string } }>;
  requestBody?: { required?: boolean; content: Record<string, unknown> };
  responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
};
type Document = { openapi: string; info: { title: string }; servers?: Array<{ url: string }>; paths: Record<string, Record<string, Operation>>; components: Record<string, Record<string, unknown>> };

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/** Every operation the issue asks for, per tier. */
function expectedOperations(): string[] {
  const out = ['get /v1/tenants/{tenantId}/{databaseType}/{collection}/_counters'];
  for (const base of ['/v1/tenants/{tenantId}', '/v1/domains/{domain}', '/v1/generic']) {
    const collection = `${base}/{databaseType}/{collection}`;
    const record = `${collection}/{id}`;
    out.push(
      `post ${collection}`,
      `get ${collection}`,
      `post ${collection}/batch`,
      `post ${collection}/restore`,
      `post ${collection}/verify`,
      `get ${record}`,
      `put ${record}`,
      `patch ${record}`,
      `delete ${record}`,
      `get ${record}/versions`,
      `get ${record}/versions/{ov}/proof`,
      `post ${record}/restore`,
    );
    // Messaging and identities: document collections (insert, upsert, find, delete).
    for (const type of ['messaging', 'identities']) out.push(...['post', 'put', 'get', 'delete'].map((m) => `${m} ${base}/${type}/{collection}`));
  }
  return out.sort();
}

let s: TestServer;
let doc: Document;

beforeAll(async () => {
  s = await startServer();
  const reply = await call(s.base, 'GET', '/openapi.json', { key: null });
  expect(reply.status).toBe(200);
  doc = reply.json as Document;
});
afterAll(() => s.close());

describe('GET /openapi.json', () => {
  it('is public OpenAPI 3.1 and lists exactly the operations of the API', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info.title).toBe('Xronox API');
    const operations = Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).filter((m) => METHODS.includes(m)).map((m) => `${m} ${path}`));
    expect(operations.sort()).toEqual(expectedOperations());
  });

  it('gives every operation a unique id, bearer security, its path parameters and problem responses', () => {
    const ids = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const label = `${method} ${path}`;
        expect(op.operationId, label).toBeTruthy();
        expect(ids.has(op.operationId!), label).toBe(false);
        ids.add(op.operationId!);
        expect(op.security, label).toEqual([{ bearerAuth: [] }]);
        const declared = (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name).sort();
        const templated = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
        expect(declared, label).toEqual(templated);
        for (const p of op.parameters ?? []) if (p.in === 'path') expect(p.required, `${label} ${p.name}`).toBe(true);
        for (const status of ['401', '403', '500']) expect(op.responses[status]?.content?.['application/problem+json'], `${label} ${status}`).toBeDefined();
        // Verify is an action on what is stored: it takes no body.
        if ((method === 'post' && !path.endsWith('/verify')) || method === 'put' || method === 'patch') {
          expect(op.requestBody?.required, label).toBe(true);
          expect(Object.keys(op.requestBody!.content), label).toEqual(['application/json']);
        }
        // Record writes name the version they replace; document collections have no versions.
        const documents = /\/(messaging|identities)\/\{collection\}$/.test(path);
        if (!documents && (method === 'put' || method === 'patch' || method === 'delete')) {
          expect(op.parameters?.find((p) => p.in === 'header' && p.name === 'if-match'), label).toBeDefined();
          expect(op.responses['428'], label).toBeDefined();
        }
      }
    }
    expect(doc.components.securitySchemes).toEqual({ bearerAuth: expect.objectContaining({ type: 'http', scheme: 'bearer' }) });
  });

  it('has no dangling $ref, and its schemas are the route schemas (e.g. record data is any JSON object)', () => {
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/(\w+)\/([^"]+)"/g)];
    expect(refs.length).toBeGreaterThan(10);
    for (const [, kind, name] of refs) expect(doc.components[kind!]?.[name!], `${kind}/${name}`).toBeDefined();
    expect(doc.components.schemas?.RecordData).toMatchObject({ type: 'object', additionalProperties: true });
    expect(doc.components.schemas?.Problem).toMatchObject({ type: 'object' });
  });

  it('describes only routes the server answers, with the method it documents', async () => {
    for (const [path, item] of Object.entries(doc.paths)) {
      const concrete = path
        .replace('{tenantId}', 'acme')
        .replace('{domain}', 'health')
        .replace('{databaseType}', path.startsWith('/v1/tenants') ? 'runtime' : 'knowledge')
        .replace('{collection}', 'openapi-check')
        .replace('{id}', 'no-such-id');
      for (const method of Object.keys(item)) {
        const reply = await call(s.base, method.toUpperCase(), concrete, { key: KEYS.everywhere, ...(['post', 'put', 'patch'].includes(method) ? { body: {} } : {}) });
        // Whatever the outcome (201, 400, 404 for the record, 428), a route answered: none says "No route answers".
        expect(reply.text, `${method} ${concrete}`).not.toContain('No route answers');
        expect(reply.status, `${method} ${concrete}`).toBeLessThan(500);
      }
    }
  });
});

describe('the document for clients and linters', () => {
  it('names its server relative to itself, so it holds behind a path prefix', () => {
    // Resolved against the document's URL: https://host/stage/openapi.json -> https://host/stage.
    expect(doc.servers).toEqual([expect.objectContaining({ url: '.' })]);
    expect(new URL(doc.servers![0]!.url, 'https://api.example.com/stage/openapi.json').href).toBe('https://api.example.com/stage/');
  });

  it('types numeric and boolean query parameters as integers and booleans', () => {
    const expected: Record<string, string> = { limit: 'integer', ov: 'integer', before: 'integer', includeDeleted: 'boolean', many: 'boolean' };
    const seen = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        for (const p of op.parameters ?? []) {
          if (p.in !== 'query' || !(p.name in expected)) continue;
          expect(p.schema?.type, `${method} ${path} ?${p.name}`).toBe(expected[p.name]);
          seen.add(p.name);
        }
      }
    }
    expect([...seen].sort()).toEqual(Object.keys(expected).sort());
  });

  it("passes Redocly's recommended rules with no error or warning (no ambiguous paths among them)", async () => {
    // @redocly/openapi-core: the linter openapi-typescript itself validates documents with.
    const { createConfig, lintFromString } = await import('@redocly/openapi-core');
    const problems = await lintFromString({ source: JSON.stringify(doc), absoluteRef: `${s.base}/openapi.json`, config: await createConfig({ extends: ['recommended'] }) });
    expect(problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message}`)).toEqual([]);
  });

  it('keeps the earlier counters path answering, outside the document', async () => {
    expect(Object.keys(doc.paths)).not.toContain('/v1/tenants/{tenantId}/counters/{databaseType}/{collection}');
    const reply = await call(s.base, 'GET', '/v1/tenants/acme/counters/runtime/orders', { key: KEYS.acmeReader });
    expect(reply.status).toBe(200);
    expect(reply.json).toEqual({ totals: {} });
  });
});

describe('GET /docs', () => {
  it('serves Swagger UI from its own assets, by relative URLs only, under a Content-Security-Policy', async () => {
    const page = await call(s.base, 'GET', '/docs', { key: null });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toContain('unsafe');
    // Nothing from elsewhere, no inline script: every src and href is relative to the page.
    const urls = [...page.text.matchAll(/(?:src|href)="([^"]*)"/g)].map((m) => m[1]!);
    expect(urls.sort()).toEqual(['./docs/init.js', './docs/swagger-ui-bundle.js', './docs/swagger-ui.css']);
    expect(page.text).not.toMatch(/<script>|<script [^>]*>[^<]/);

    for (const url of urls) {
      const asset = await call(s.base, 'GET', url.replace('./', '/'), { key: null });
      expect(asset.status, url).toBe(200);
      expect(asset.headers.get('content-security-policy'), url).toBe(csp);
      expect(asset.headers.get('x-content-type-options'), url).toBe('nosniff');
      expect(asset.headers.get('content-type'), url).toMatch(url.endsWith('.css') ? /^text\/css/ : /^text\/javascript/);
    }
    // The pinned package's own files, byte for byte.
    const bundle = await call(s.base, 'GET', '/docs/swagger-ui-bundle.js', { key: null });
    expect(bundle.text).toBe(readFileSync(createRequire(import.meta.url).resolve('swagger-ui-dist/swagger-ui-bundle.js'), 'utf8'));
    const init = await call(s.base, 'GET', '/docs/init.js', { key: null });
    expect(init.text).toContain("new URL('../openapi.json', script.src)");
  });

  it('answers only its own files under /docs/', async () => {
    for (const path of ['/docs/index.html', '/docs/package.json', '/docs/..%2fpackage.json', '/docs/swagger-ui-bundle.js.map', '/docs/constructor', '/docs/__proto__']) {
      const reply = await call(s.base, 'GET', path, { key: null });
      expect(reply.status, path).toBe(404);
      expect(reply.headers.get('content-type'), path).toBe('application/problem+json');
    }
  });
});
