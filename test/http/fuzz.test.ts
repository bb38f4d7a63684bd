import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RecordRouteRequest as RouteRequest } from '../../core/domains/open.js';
import { call, KEYS, ok, type RequestOptions, seededRandom, startServer, testApiConfig, type TestServer } from './harness.js';

/**
 * A fuzz pass of malformed requests. Each request starts from a valid one (right key, right
 * If-Match, valid body) and gets one defect, or is pure noise; so every write the server accepted
 * would be a bug the engine snapshot shows. Asserts: no 5xx, no 2xx on a write, and the data
 * (every record, every version, every counter, every blob file) unchanged.
 *
 * Reproduce a failure with its seed: XRONOX_FUZZ_SEED=<seed> npx vitest run test/http/fuzz.test.ts
 */

const SEED = Number(process.env.XRONOX_FUZZ_SEED ?? 20261122);
const REQUESTS = 1200;
const BODY_LIMIT = 16 * 1024;

let s: TestServer;
let random: () => number;
const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;

/** What the fuzzer aims at: each has records whose ids and current ovs it knows. */
interface Target {
  route: RouteRequest;
  path: string;
  key: string;
  ids: string[];
  ovs: Map<string, number>;
}
const targets: Target[] = [];

beforeAll(async () => {
  random = seededRandom(SEED);
  s = await startServer({ api: testApiConfig({ bodyLimitBytes: BODY_LIMIT }) });
  const add = async (route: RouteRequest, path: string, key: string) => {
    const target: Target = { route, path, key, ids: [], ovs: new Map() };
    for (let i = 0; i < 3; i++) {
      const { body } = await ok<{ id: string }>(s.base, 'POST', path, { key, body: { n: i, status: 'seed', tags: ['a'] } });
      target.ids.push(body.id);
      target.ovs.set(body.id, 0);
    }
    // One record with history, so time travel and restore have something to find.
    const id = target.ids[0]!;
    await ok(s.base, 'PUT', `${path}/${id}`, { key, body: { n: 0, status: 'updated' }, headers: { 'if-match': '"0"' } });
    target.ovs.set(id, 1);
    targets.push(target);
  };
  await add({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' }, '/v1/tenants/acme/runtime/orders', KEYS.acmeAdmin);
  await add({ databaseType: 'runtime', tier: 'tenant', tenantId: 'beta', collection: 'orders' }, '/v1/tenants/beta/runtime/orders', KEYS.betaAdmin);
  await add({ databaseType: 'knowledge', tier: 'generic', collection: 'policies' }, '/v1/generic/knowledge/policies', KEYS.acmeAdmin);
  await add({ databaseType: 'knowledge', tier: 'domain', domain: 'health', collection: 'articles' }, '/v1/domains/health/knowledge/articles', KEYS.acmeAdmin);
});
afterAll(() => s.close());

/** Every record, version and counter of the targets, and every blob file, as one string. */
async function snapshot(): Promise<string> {
  await s.xronox.flush();
  const state: Record<string, unknown> = {};
  for (const t of targets) {
    const records = s.xronox.with(t.route);
    const { items } = await records.listByMeta({ limit: 1000, includeDeleted: true });
    const history = records.route.policy.versioned ? await Promise.all(items.map((r) => records.history(r.id, { limit: 1000 }))) : null;
    const counters = t.route.tier === 'tenant' ? await s.xronox.counters.getTotals(t.route) : null;
    state[t.path] = { items, history, counters };
  }
  state.blobs = blobFiles(join(s.dataDir, 'blobs'));
  return JSON.stringify(state);
}

function blobFiles(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (folder: string) => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const full = join(folder, entry.name);
      if (entry.isDirectory()) walk(full);
      else out[relative(dir, full)] = createHash('sha256').update(readFileSync(full)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

// ---- the request a defect is applied to ---------------------------------------------------------

type Kind = 'create' | 'list' | 'restoreCollection' | 'read' | 'update' | 'enrich' | 'delete' | 'versions' | 'restoreRecord';
const KINDS: Kind[] = ['create', 'list', 'restoreCollection', 'read', 'update', 'enrich', 'delete', 'versions', 'restoreRecord'];

interface Planned {
  kind: Kind;
  method: string;
  /** `prefix` + `/` + type + `/` + collection + `suffix`, kept apart so defects can replace a part. */
  prefix: string;
  type: string;
  collection: string;
  suffix: string;
  query: string;
  options: RequestOptions & { headers: Record<string, string> };
}

function valid(kind: Kind, t: Target): Planned {
  const id = pick(t.ids);
  const [, , tierPart, scopePart, type, collection] = t.path.split('/') as [string, string, string, string, string, string];
  const prefix = t.route.tier === 'generic' ? '/v1/generic' : `/v1/${tierPart}/${scopePart}`;
  const [typePart, collectionPart] = t.route.tier === 'generic' ? [scopePart, type] : [type, collection];
  const ifMatch = { 'if-match': `"${t.ovs.get(id)!}"` };
  const base = { kind, prefix, type: typePart, collection: collectionPart, query: '', options: { key: t.key, headers: {} as Record<string, string> } };
  switch (kind) {
    case 'create':
      return { ...base, method: 'POST', suffix: '', options: { ...base.options, body: { fuzz: true } } };
    case 'list':
      return { ...base, method: 'GET', suffix: '' };
    case 'restoreCollection':
      return { ...base, method: 'POST', suffix: '/restore', options: { ...base.options, body: { cv: 0 } } };
    case 'read':
      return { ...base, method: 'GET', suffix: `/${id}` };
    case 'update':
      return { ...base, method: 'PUT', suffix: `/${id}`, options: { ...base.options, body: { fuzz: true }, headers: ifMatch } };
    case 'enrich':
      return { ...base, method: 'PATCH', suffix: `/${id}`, options: { ...base.options, body: { fuzz: true }, headers: ifMatch } };
    case 'delete':
      return { ...base, method: 'DELETE', suffix: `/${id}`, options: { ...base.options, headers: ifMatch } };
    case 'versions':
      return { ...base, method: 'GET', suffix: `/${id}/versions` };
    case 'restoreRecord':
      return { ...base, method: 'POST', suffix: `/${id}/restore`, options: { ...base.options, body: { ov: 0 } } };
  }
}

const hasBody = (p: Planned) => p.options.body !== undefined || p.options.raw !== undefined;
const isWrite = (p: Planned) => p.method !== 'GET';

// ---- hostile material ---------------------------------------------------------------------------

const enc = encodeURIComponent;
/**
 * Dot segments are URL syntax, not names: the server adapter resolves them (WHATWG URL rules)
 * before routing and authorization, so `/orders/%2E/restore` is `/orders/restore`, a valid
 * request. They are only used in `noise()`, which can never form a valid write.
 */
const DOT_SEGMENTS = ['.', '..', '%2e', '%2E', '%2e%2e', '.%2E', '%2e.'];
const HOSTILE_NAMES = [
  enc('../etc/passwd'), 'a%2Fb', enc('a\\b'), '%00', enc('a\u0000b'), '$where', enc('$cmd'), enc('{"$gt":""}'),
  '__proto__', 'x'.repeat(200), enc('ü'), enc('😀'), '%zz', '%', enc(' '), enc('a b'), '-leading', '_leading', enc('a.b'), enc('a;b'),
  enc("' OR 1=1 --"), enc('<script>'), 'system.profile', '%C0%AE%C0%AE', '%252e%252e', enc('\r\nX-Injected: 1'),
];
const BAD_TYPES = ['Runtime', 'RUNTIME', 'runtime%00', enc('runtime '), '$runtime', 'counters', 'versions', 'nosuchtype', enc('logs\n')];
const BAD_TENANT_PARTS = ['a%2Fb', '$admin', 'x'.repeat(80), '%00', enc('acme '), 'gamma', 'no-such-tenant'];

const BROKEN_JSON = [
  '{', '}', '{"a":', '{"a":1,}', "{'a':1}", '{"a":1}garbage', '{"a":undefined}', '{"a":NaN}', 'NaN', '[', '"', '\u0000',
  '{"a":"\\x41"}', '{"a" 1}', '\ufeff{"a":1}x', '[[[[[[[[[[', '{"a":01}', '{"a":.5}', '{"a":+1}', '',
];
const NON_OBJECT_JSON = ['[]', '[{"a":1}]', '1', '-1.5', '"text"', 'null', 'true', '[[]]', '""'];
const HOSTILE_DATA = [
  '{"$set":{"admin":true}}', '{"a":{"$where":"sleep(100)"}}', '{"a":[{"$function":{"body":"x"}}]}', '{"__proto__":{"admin":true}}',
  '{"constructor":{"prototype":{"admin":true}}}', '{"_system":{"parentId":"x"}}', '{"a":"\\ud800"}', '{"\\ud800":1}', '{"a\\u0000b":1}',
  `{"${'k'.repeat(2000)}":1}`, '{"a":1e400}', '{"a":-1e400}', `${'{"a":'.repeat(100)}1${'}'.repeat(100)}`, `{"a":${'['.repeat(100)}${']'.repeat(100)}}`,
];
const BAD_RECORD_RESTORE = ['{}', '{"ov":"0"}', '{"ov":-1}', '{"ov":1.5}', '{"ov":1e300}', '{"ov":null}', '{"at":12}', '{"at":"yesterday"}', '{"ov":0,"at":"2024-01-01"}', '{"ov":0,"x":1}', '{"$where":1}', '{"__proto__":{"ov":0}}'];
const BAD_COLLECTION_RESTORE = ['{}', '{"cv":"0"}', '{"cv":-1}', '{"cv":0.5}', '{"cv":0,"dryRun":"no"}', '{"at":"2024-13-01"}', '{"cv":0,"at":"2024-01-01"}', '{"cv":0,"extra":true}', '{"__proto__":{"cv":0}}'];
const BAD_IF_MATCH = ['', '*', 'W/"0"', '"0", "1"', '"-1"', '"abc"', '"99999999999999999999"', '"0', '0', '"1.0"', '" 0"', '"57"', '"1000"'];
const BAD_CONTENT_TYPES = ['text/plain', 'application/xml', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/merge-patch+json', 'application/jsonx', 'json', '*/*'];
const BAD_QUERIES: Record<'list' | 'read' | 'versions' | 'other', string[]> = {
  list: [
    'limit=0', 'limit=-1', 'limit=1001', 'limit=abc', 'limit=1e3', 'limit=%201', 'limit=1&limit=2', 'after=..', 'after=', `after=${enc('a/b')}`, 'includeDeleted=yes', 'unknown=1',
    `filter=${enc('{"$where":"this.a > 1"}')}`, `filter=${enc('{"a":{"$function":{"body":"return 1"}}}')}`, `filter=${enc('{"$expr":{"$gt":["$a",1]}}')}`,
    `filter=${enc('{"a":{"$regex":".*"}}')}`, `filter=${enc('{"a":{"$gt":{}}}')}`, `filter=${enc('{"$or":[]}')}`, `filter=${enc('{"a":[1,2]}')}`,
    `filter=${enc('{"__proto__":{"x":1}}')}`, `filter=${enc('{"_system":1}')}`, `filter=${enc('{"a.b.c.d.e.f.g.h.i":1}')}`, `filter=${enc('[1]')}`, 'filter=%7B',
    `filter=${enc(`{"a":{"$in":[${Array.from({ length: 1001 }, (_, i) => i).join(',')}]}}`)}`, `filter=${'%7B%22a%22%3A1%7D'.repeat(600)}`,
    `filter=${enc(`${'{"$and":['.repeat(20)}{"a":1}${']}'.repeat(20)}`)}`, `filter=${enc('{"$a":1}')}`, `filter=${enc('{"a":{"b":1}}')}`,
  ],
  read: ['ov=-1', 'ov=01', 'ov=1.0', 'ov=abc', 'ov=1&at=2024-01-01', 'at=notadate', 'at=2024-13-01', 'at=2024-02-31T00:00:00Z', 'at=2024-01-01T00:00:00+01:00', 'includeDeleted=1', 'x=1', 'ov=99999999999999999999'],
  versions: ['limit=0', 'limit=x', 'before=-1', 'before=a', 'limit=1&limit=2', 'cursor=1'],
  other: ['x=1', 'limit=1', 'dryRun=true', 'ov=0', `filter=${enc('{"$where":1}')}`],
};

// ---- defects ------------------------------------------------------------------------------------

type Defect = (p: Planned) => Planned | null;

const withRaw = (p: Planned, raw: string, contentType: string | null = 'application/json'): Planned => {
  const options = { ...p.options, raw, contentType };
  delete options.body;
  return { ...p, options };
};

const DEFECTS: Record<string, Defect> = {
  brokenJson: (p) => (hasBody(p) ? withRaw(p, pick(BROKEN_JSON)) : null),
  nonObjectJson: (p) => (hasBody(p) ? withRaw(p, pick(NON_OBJECT_JSON)) : null),
  hostileData: (p) => (['create', 'update', 'enrich'].includes(p.kind) ? withRaw(p, pick(HOSTILE_DATA)) : null),
  badRestoreTarget: (p) =>
    p.kind === 'restoreRecord' ? withRaw(p, pick(BAD_RECORD_RESTORE)) : p.kind === 'restoreCollection' ? withRaw(p, pick(BAD_COLLECTION_RESTORE)) : null,
  hugeBody: (p) => (hasBody(p) ? withRaw(p, `{"big":"${'x'.repeat(BODY_LIMIT + Math.floor(random() * 4 * BODY_LIMIT))}"}`) : null),
  wrongContentType: (p) => (hasBody(p) ? withRaw(p, JSON.stringify(p.options.body ?? {}), pick([...BAD_CONTENT_TYPES, null])) : null),
  noBody: (p) => (hasBody(p) ? { ...p, options: { ...p.options, body: undefined, contentType: pick([null, 'application/json']) } } : null),
  hostileId: (p) => (p.suffix.length > 1 && p.suffix !== '/restore' ? { ...p, suffix: p.suffix.replace(/^\/[^/]+/, `/${pick(HOSTILE_NAMES)}`) } : null),
  hostileCollection: (p) => ({ ...p, collection: pick(HOSTILE_NAMES) }),
  hostileType: (p) => ({ ...p, type: pick(BAD_TYPES) }),
  hostileTenant: (p) => (p.prefix.startsWith('/v1/tenants/') ? { ...p, prefix: `/v1/tenants/${pick(BAD_TENANT_PARTS)}`, options: { ...p.options, key: KEYS.everywhere } } : null),
  hostileDomain: (p) => (p.prefix.startsWith('/v1/domains/') ? { ...p, prefix: `/v1/domains/${pick(BAD_TENANT_PARTS)}`, options: { ...p.options, key: KEYS.everywhere } } : null),
  badQuery: (p) => ({ ...p, query: pick(p.kind === 'list' ? BAD_QUERIES.list : p.kind === 'read' ? BAD_QUERIES.read : p.kind === 'versions' ? BAD_QUERIES.versions : BAD_QUERIES.other) }),
  badIfMatch: (p) => (['update', 'enrich', 'delete'].includes(p.kind) ? { ...p, options: { ...p.options, headers: { 'if-match': pick(BAD_IF_MATCH) } } } : null),
  missingIfMatch: (p) => (['update', 'enrich', 'delete'].includes(p.kind) ? { ...p, options: { ...p.options, headers: {} } } : null),
  badReason: (p) => (isWrite(p) ? { ...p, options: { ...p.options, headers: { ...p.options.headers, 'x-xronox-reason': pick(['', 'r'.repeat(1025), 'r'.repeat(5000)]) } } } : null),
  badFunctionId: (p) => (p.kind === 'enrich' ? { ...p, options: { ...p.options, headers: { ...p.options.headers, 'x-xronox-function-id': pick(['', 'f'.repeat(257)]) } } } : null),
  badAuth: (p) => ({
    ...p,
    options: {
      ...p.options,
      key: null,
      headers: { ...p.options.headers, ...pick<Record<string, string>>([{}, { authorization: 'Bearer nope' }, { authorization: 'Basic abc' }, { authorization: `Bearer ${KEYS.acmeAdmin} extra` }, { authorization: 'Bearer a.b.c' }]) },
    },
  }),
  wrongTenantKey: (p) => (isWrite(p) ? { ...p, options: { ...p.options, key: p.options.key === KEYS.betaAdmin ? KEYS.acmeAdmin : KEYS.betaAdmin } } : null),
  readerWrites: (p) => (isWrite(p) ? { ...p, options: { ...p.options, key: KEYS.acmeReader } } : null),
  wrongMethod: (p) => {
    const others: Record<Kind, string[]> = {
      create: ['PUT', 'PATCH', 'DELETE'],
      list: ['PUT', 'PATCH', 'DELETE'],
      restoreCollection: ['PUT', 'PATCH', 'DELETE'],
      read: ['POST'],
      update: ['POST'],
      enrich: ['POST'],
      delete: ['POST'],
      versions: ['POST', 'PUT', 'PATCH', 'DELETE'],
      restoreRecord: ['PUT', 'PATCH', 'DELETE'],
    };
    return { ...p, method: pick(others[p.kind]) };
  },
};
const DEFECT_NAMES = Object.keys(DEFECTS);

/** Pure noise: random segments under /v1 with a key that reaches everything; bodies are never JSON objects. */
function noise(): Planned {
  const segments = Array.from({ length: 1 + Math.floor(random() * 7) }, () => pick([...HOSTILE_NAMES, ...DOT_SEGMENTS, ...BAD_TYPES, 'tenants', 'acme', 'runtime', 'orders', 'restore', 'versions', 'counters', 'generic', 'domains']));
  const method = pick(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);
  const raw = method === 'GET' || method === 'DELETE' ? undefined : pick([...BROKEN_JSON, ...NON_OBJECT_JSON]);
  return {
    kind: 'read',
    method,
    prefix: `/v1/${segments.join('/')}`,
    type: '',
    collection: '',
    suffix: '',
    query: random() < 0.3 ? pick(BAD_QUERIES.list) : '',
    options: { key: KEYS.everywhere, headers: {}, ...(raw !== undefined ? { raw, contentType: 'application/json' } : {}) },
  };
}

function urlOf(p: Planned): string {
  const path = p.type === '' && p.collection === '' ? p.prefix : `${p.prefix}/${p.type}/${p.collection}${p.suffix}`;
  return p.query ? `${path}?${p.query}` : path;
}

describe(`fuzz (seed ${SEED})`, () => {
  it(`${REQUESTS} malformed requests: no 5xx, no write accepted, no data changed`, async () => {
    const before = await snapshot();
    const statuses = new Map<number, number>();
    const defectsUsed = new Set<string>();
    const failures: string[] = [];
    for (let i = 0; i < REQUESTS; i++) {
      let planned: Planned | null = null;
      let label = 'noise';
      if (random() < 0.1) planned = noise();
      while (!planned) {
        label = pick(DEFECT_NAMES);
        planned = DEFECTS[label]!(valid(pick(KINDS), pick(targets)));
      }
      defectsUsed.add(label);
      const url = urlOf(planned);
      const reply = await call(s.base, planned.method, url, planned.options);
      statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
      const where = `#${i} ${label}: ${planned.method} ${url.slice(0, 160)}`;
      if (reply.status >= 500) failures.push(`${where} -> ${reply.status} ${reply.text.slice(0, 200)}`);
      if (reply.status < 300 && planned.method !== 'GET') failures.push(`${where} -> ${reply.status}: a malformed write was accepted`);
      if (reply.status >= 400 && reply.headers.get('content-type') !== 'application/problem+json') failures.push(`${where} -> ${reply.status} without problem+json`);
    }
    expect(failures, `seed ${SEED}; statuses ${JSON.stringify(Object.fromEntries(statuses))}`).toEqual([]);
    expect(defectsUsed.size).toBe(DEFECT_NAMES.length + 1);
    // The defects reach every refusal the API has (a sanity check that the fuzzer is not just hitting one wall).
    for (const status of [400, 401, 403, 404, 412, 413, 415, 428]) expect(statuses.get(status) ?? 0, `status ${status}`).toBeGreaterThan(0);
    expect(await snapshot()).toBe(before);
  });
});
