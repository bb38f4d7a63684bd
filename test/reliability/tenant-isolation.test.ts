import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Collection } from '../../core/engine/collection.js';
import { NotFoundError, TenantAccessError, ValidationError, type XronoxError } from '../../core/errors.js';
import { BACKEND, call, type Reply, type TestServer } from '../http/harness.js';
import { Gen } from '../support/random.js';
import { reliabilityScale, reliabilitySeed } from './support/fault-schedule.js';
import { placementProblems, type PostgresTenantConnections, readAs, schemaCensus } from './support/tenant-world-postgres.js';
import {
  CONFINED,
  emptyModel,
  INJECTION_KEYS,
  injectionValues,
  marker,
  startTenantWorld,
  TENANT_KEYS,
  TENANTS,
  type Tenant,
  type TenantModel,
  type TenantWorld,
} from './support/tenant-world.js';

/**
 * Tenant isolation fuzzer: three tenants write through the library and over HTTP, while a large
 * share of the seeded operations use the wrong tenant on purpose: another tenant's key on every
 * route the OpenAPI document lists, another tenant's record ids on one's own routes, another
 * tenant's cursors (`query` and `changesBy` page tokens, `listByMeta` afterId / `after`, history
 * `before`), another tenant's id inside messaging documents and filters. Oracle: each tenant's
 * model of what it wrote. Every cross-tenant attempt must be refused (403/404, or
 * NotFound/Validation/TenantAccess from the library) or answer only the caller's own data; no
 * answer to anyone may contain another tenant's secret or ids; and at every checkpoint every
 * tenant's data equals its model (so no attempt changed anything). Filters built to break out of
 * a SQL string or name another tenant's schema are among the attempts.
 *
 * It runs on SQLite and (vitest project `postgres`) on PostgreSQL. There, at every checkpoint,
 * the schemas are also read behind the engine's back: every row is in its own tenant's schema.
 * And gamma's databases are on a connection whose role cannot use the other tenants' schemas, nor
 * theirs gamma's: a statement for one that named the other's schema would fail in PostgreSQL.
 *
 * Reproduce: XRONOX_RELIABILITY_SEED=<seed> npx vitest run test/reliability/tenant-isolation.test.ts
 */

const SCALE = reliabilityScale();
const SEED = reliabilitySeed(30_2026);
const OPERATIONS = Math.round(1200 * SCALE);
const CHECK_EVERY = 100;

let world: TenantWorld;
let s: TestServer;
const models = Object.fromEntries(TENANTS.map((t) => [t, emptyModel()])) as Record<Tenant, TenantModel>;
const gen = new Gen(SEED);
const failures: string[] = [];
const stats = { operations: 0, legit: 0, crossTenant: 0, crossByKind: {} as Record<string, number>, routeSweep: 0, answersScanned: 0, checkpoints: 0 };
let markerCount = 0;

type RecordCollection = 'orders' | 'notes';
const TYPE_OF: Record<RecordCollection, 'runtime' | 'knowledge'> = { orders: 'runtime', notes: 'knowledge' };

const records = (t: Tenant, c: RecordCollection): Collection => s.xronox.with({ databaseType: TYPE_OF[c], tier: 'tenant', tenantId: t, collection: c });
const memory = (t: Tenant) => s.xronox.with({ databaseType: 'messaging', tier: 'tenant', tenantId: t, collection: 'shared_memory' });
const users = (t: Tenant) => s.xronox.with({ databaseType: 'identities', tier: 'tenant', tenantId: t, collection: 'users' });
const path = (t: Tenant, c: RecordCollection) => `/v1/tenants/${t}/${TYPE_OF[c]}/${c}`;
const others = (t: Tenant) => TENANTS.filter((o) => o !== t);
const enc = encodeURIComponent;

beforeAll(async () => {
  world = await startTenantWorld();
  s = world.server;
});
afterAll(() => world?.close());

// ---- leaks ----------------------------------------------------------------------------------------

/** Ids and emails a tenant owns, for the leak scan. */
function ownedStrings(t: Tenant): string[] {
  const m = models[t];
  return [...m.records.orders.keys(), ...m.records.notes.keys(), ...m.users.keys()];
}

/** Fails the run if `text`, answered to `caller`, holds another tenant's secret or an id the request did not name. */
function scan(caller: Tenant, what: string, text: string, named: string[] = []): void {
  stats.answersScanned++;
  for (const v of others(caller)) {
    if (text.includes(`secret-of-${v}-`)) failures.push(`LEAK ${what}: the answer to ${caller} holds a secret of ${v}: ${text.slice(0, 300)}`);
    for (const id of ownedStrings(v)) if (!named.includes(id) && text.includes(id)) failures.push(`LEAK ${what}: the answer to ${caller} names ${v}'s ${id}`);
  }
}

function json(value: unknown): string {
  return JSON.stringify(value) ?? 'undefined';
}

// ---- legitimate operations (the model follows them) ---------------------------------------------

const payload = (t: Tenant, n: number) => ({ owner: t, n, marker: marker(t, n), body: `${t} private ${n}` });

async function createRecord(t: Tenant, c: RecordCollection, viaHttp: boolean): Promise<void> {
  const data = payload(t, markerCount++);
  let id: string;
  if (viaHttp) {
    const reply = await call(s.base, 'POST', path(t, c), { key: TENANT_KEYS[t], body: data });
    expect(reply.status, reply.text).toBe(201);
    id = (reply.json as { id: string }).id;
  } else {
    id = (await records(t, c).create(data, `${t}-user`)).id;
  }
  models[t].records[c].set(id, { ov: 0, data });
}

async function updateRecord(t: Tenant, c: RecordCollection, viaHttp: boolean): Promise<void> {
  const ids = [...models[t].records[c].keys()];
  if (ids.length === 0) return createRecord(t, c, viaHttp);
  const id = gen.pick(ids);
  const current = models[t].records[c].get(id)!;
  const data = payload(t, markerCount++);
  if (viaHttp) {
    const reply = await call(s.base, 'PUT', `${path(t, c)}/${id}`, { key: TENANT_KEYS[t], body: data, headers: { 'if-match': `"${current.ov}"` } });
    expect(reply.status, reply.text).toBe(200);
  } else {
    await records(t, c).update(id, data, current.ov, `${t}-user`);
  }
  models[t].records[c].set(id, { ov: current.ov + 1, data });
}

async function readOwn(t: Tenant, c: RecordCollection, viaHttp: boolean): Promise<void> {
  const ids = [...models[t].records[c].keys()];
  if (ids.length === 0) return;
  const id = gen.pick(ids);
  const want = models[t].records[c].get(id)!;
  if (viaHttp) {
    const reply = await call(s.base, 'GET', `${path(t, c)}/${id}`, { key: TENANT_KEYS[t] });
    scan(t, `GET own ${c}`, reply.text, [id]);
    expect(reply.json).toMatchObject({ id, ov: want.ov, data: want.data });
  } else {
    const got = await records(t, c).getLatest(id);
    scan(t, `getLatest own ${c}`, json(got), [id]);
    expect(got).toMatchObject({ id, ov: want.ov, data: want.data });
  }
}

async function upsertMemory(t: Tenant, viaHttp: boolean): Promise<void> {
  const key = `k${gen.int(6)}`;
  const val = { marker: marker(t, markerCount++) };
  const now = new Date();
  if (viaHttp) {
    const doc = { key, namespace: 'app', tenantId: t, val, _system: { createdAt: { $date: now.toISOString() }, updatedAt: { $date: now.toISOString() } } };
    const reply = await call(s.base, 'PUT', `/v1/tenants/${t}/messaging/shared_memory`, { key: TENANT_KEYS[t], body: { filter: { key, namespace: 'app', tenantId: t }, doc } });
    expect([200, 201], reply.text).toContain(reply.status);
  } else {
    await memory(t).upsert({ key, namespace: 'app', tenantId: t }, { key, namespace: 'app', tenantId: t, val, _system: { createdAt: now, updatedAt: now } });
  }
  models[t].memory.set(key, val);
}

async function insertUser(t: Tenant, viaHttp: boolean): Promise<void> {
  const n = markerCount++;
  const userId = `user-${t}-${n}`;
  const doc = { userId, tenantId: t, email: `${userId}@example.com`, name: marker(t, n) };
  if (viaHttp) {
    const reply = await call(s.base, 'POST', `/v1/tenants/${t}/identities/users`, { key: TENANT_KEYS[t], body: doc });
    expect(reply.status, reply.text).toBe(201);
  } else {
    await users(t).insert(doc, { actor: `${t}-admin`, reason: 'fuzz' });
  }
  models[t].users.set(userId, doc.email);
  models[t].identityEvents++;
}

// ---- cross-tenant attempts ------------------------------------------------------------------------

/** An HTTP attempt: refused with one of `allowed`, or (2xx allowed) judged by `check`; always scanned for leaks. */
async function attemptHttp(kind: string, t: Tenant, method: string, url: string, options: Parameters<typeof call>[3], allowed: number[], named: string[], check?: (reply: Reply) => void): Promise<void> {
  stats.crossTenant++;
  stats.crossByKind[kind] = (stats.crossByKind[kind] ?? 0) + 1;
  const reply = await call(s.base, method, url, { ...options, key: options?.key ?? TENANT_KEYS[t] });
  scan(t, `${kind} ${method} ${url}`, reply.text, named);
  if (!allowed.includes(reply.status)) failures.push(`${kind}: ${t} ${method} ${url} answered ${reply.status} (allowed ${allowed.join('/')}): ${reply.text.slice(0, 200)}`);
  else if (reply.status < 300) check?.(reply);
}

/** A library attempt: throws one of `allowed`, or returns something `check` accepts; always scanned for leaks. */
async function attemptLibrary(kind: string, t: Tenant, run: () => Promise<unknown>, allowed: Array<abstract new (...args: never[]) => XronoxError>, named: string[], check: (result: unknown) => boolean): Promise<void> {
  stats.crossTenant++;
  stats.crossByKind[kind] = (stats.crossByKind[kind] ?? 0) + 1;
  try {
    const result = await run();
    scan(t, kind, json(result), named);
    if (!check(result)) failures.push(`${kind}: ${t} got ${json(result).slice(0, 300)}`);
  } catch (err) {
    scan(t, kind, err instanceof Error ? `${err.message} ${json(err)}` : String(err), named);
    if (!allowed.some((type) => err instanceof type)) failures.push(`${kind}: ${t} got ${err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err)}`);
  }
}

const onlyOwn = (t: Tenant, c: RecordCollection) => (items: Array<{ id: string }>) => items.every((i) => models[t].records[c].has(i.id));

function victimRecord(v: Tenant): { c: RecordCollection; id: string } | null {
  const c = gen.pick(['orders', 'notes'] as const);
  const ids = [...models[v].records[c].keys()];
  return ids.length === 0 ? null : { c, id: gen.pick(ids) };
}

/** Routes the server's OpenAPI document lists, with their methods: new routes are covered without editing this test. */
let routes: Array<{ template: string; method: string }> = [];

/** Fills a route template with the victim's tenant and ids (and the victim's id as the record id). */
function fillRoute(template: string, v: Tenant, target: { c: RecordCollection; id: string }): string {
  return template
    .replace('{tenantId}', v)
    .replace('{domain}', gen.pick(['health', 'nowhere']))
    .replace('{databaseType}', TYPE_OF[target.c])
    .replace('{collection}', template.includes('/messaging/') ? 'shared_memory' : template.includes('/identities/') ? 'users' : target.c)
    .replace('{id}', target.id);
}

function bodyFor(template: string, method: string, v: Tenant): Parameters<typeof call>[3] {
  if (method === 'get' || method === 'delete') return { headers: { 'if-match': '"0"' } };
  if (template.endsWith('/restore')) return { body: template.includes('{id}') ? { ov: 0 } : { cv: 0, dryRun: true }, headers: { 'if-match': '"0"' } };
  if (template.endsWith('/batch')) return { body: { items: [payload(v, 0)] } };
  if (template.includes('/messaging/')) return { body: { filter: { key: 'k0', namespace: 'app', tenantId: v }, doc: { key: 'k0', namespace: 'app', tenantId: v, val: 1 } } };
  if (template.includes('/identities/')) return { body: { userId: 'x', tenantId: v, email: 'x@example.com' } };
  return { body: { owner: 'intruder' }, headers: { 'if-match': '"0"' } };
}

async function crossTenant(t: Tenant): Promise<void> {
  const v = gen.pick(others(t));
  const target = victimRecord(v);
  if (!target) return;
  const named = [target.id];
  const own = [...models[t].records[target.c].keys()];
  const kind = gen.int(15);
  switch (kind) {
    case 0: {
      // Another tenant's path with one's own key, on any listed route: access is checked first.
      const route = gen.pick(routes);
      const url = fillRoute(route.template, v, target);
      const query = route.method === 'get' && !url.includes(`/${target.id}`) ? `?filter=${enc(json({ marker: target.id }))}` : route.method === 'delete' && !url.includes(`/${target.id}`) ? '?filter=%7B%7D&many=true' : '';
      return attemptHttp('victim path, own key', t, route.method.toUpperCase(), url + query, bodyFor(route.template, route.method, v), [403], named);
    }
    case 1: {
      // One's own path with the victim's record id, every record operation.
      const [method, suffix, options] = gen.pick<[string, string, Parameters<typeof call>[3]]>([
        ['GET', '', {}],
        ['GET', '?ov=0', {}],
        ['GET', `?at=${enc(new Date().toISOString())}`, {}],
        ['GET', '?includeDeleted=true', {}],
        ['GET', '/versions', {}],
        ['PUT', '', { body: { owner: t }, headers: { 'if-match': '"0"' } }],
        ['PATCH', '', { body: { owner: t }, headers: { 'if-match': '"0"' } }],
        ['DELETE', '', { headers: { 'if-match': '"0"' } }],
        ['POST', '/restore', { body: { ov: 0 }, headers: { 'if-match': '"0"' } }],
      ]);
      const [url, query] = suffix.startsWith('?') ? [`${path(t, target.c)}/${target.id}`, suffix] : [`${path(t, target.c)}/${target.id}${suffix}`, ''];
      // `/versions` of an id the tenant never wrote is an empty history, not an error; knowledge
      // keeps no history, so its history routes are a 400 whatever the id.
      const historyRoute = ['?ov=0', '?at=', '/versions', '/restore'].some((p) => suffix.startsWith(p));
      const allowed = [404, ...(suffix === '/versions' ? [200] : []), ...(historyRoute && target.c === 'notes' ? [400] : [])];
      return attemptHttp('own path, victim id', t, method, url + query, options, allowed, named, (r) => {
        if ((r.json as { items?: unknown[] }).items?.length !== 0) failures.push(`own path, victim id: ${method} ${url} answered items`);
      });
    }
    case 2:
      // The victim's id as one's own list cursor: a page of one's own records only.
      return attemptHttp('victim id as list cursor', t, 'GET', `${path(t, target.c)}?after=${enc(target.id)}&includeDeleted=true`, {}, [200], named, (r) => {
        if (!onlyOwn(t, target.c)((r.json as { items: Array<{ id: string }> }).items)) failures.push('victim id as list cursor: foreign items');
      });
    case 3: {
      const secret = models[v].records[target.c].get(target.id)!.data.marker as string;
      return attemptHttp('victim secret as filter', t, 'GET', `${path(t, target.c)}?filter=${enc(json({ marker: secret }))}`, {}, [200], [...named, secret], (r) => {
        if ((r.json as { items: unknown[] }).items.length !== 0) failures.push('victim secret as filter: items found');
      });
    }
    case 4: {
      // Messaging documents naming the victim as their tenant, sent to one's own database.
      const now = { $date: new Date().toISOString() };
      const doc = { key: 'k0', namespace: 'app', tenantId: v, val: { intruder: t }, _system: { createdAt: now, updatedAt: now } };
      const [method, query, options, allowed] = gen.pick<[string, string, Parameters<typeof call>[3], number[]]>([
        ['POST', '', { body: doc }, [400, 403]],
        ['PUT', '', { body: { filter: { key: 'k0', namespace: 'app', tenantId: v }, doc } }, [400, 403]],
        ['GET', `?filter=${enc(json({ tenantId: v }))}`, {}, [200, 400, 403]],
        ['DELETE', `?filter=${enc(json({ tenantId: v }))}&many=true`, {}, [200, 400, 403]],
      ]);
      return attemptHttp('victim tenantId in messaging', t, method, `/v1/tenants/${t}/messaging/shared_memory${query}`, options, allowed, named, (r) => {
        const body = r.json as { items?: unknown[]; deleted?: number };
        if ((body.items?.length ?? 0) !== 0 || (body.deleted ?? 0) !== 0) failures.push(`victim tenantId in messaging: ${method} touched documents: ${r.text.slice(0, 200)}`);
      });
    }
    case 5: {
      const emails = [...models[v].users.values()];
      if (emails.length === 0) return;
      const email = gen.pick(emails);
      return attemptHttp('victim email in identities', t, 'GET', `/v1/tenants/${t}/identities/users?filter=${enc(json({ email }))}`, {}, [200, 400, 403], [...named, email], (r) => {
        if ((r.json as { items: unknown[] }).items.length !== 0) failures.push('victim email in identities: found');
      });
    }
    case 6: {
      // The victim's history cursor on one's own record.
      const mine = own.length ? gen.pick(own) : null;
      const victimHistory = await records(v, target.c).history(target.id, { limit: 1 }).catch(() => null);
      if (!mine || target.c !== 'orders') return;
      const before = victimHistory?.nextBefore ?? models[v].records.orders.get(target.id)!.ov;
      return attemptHttp('victim history cursor', t, 'GET', `${path(t, 'orders')}/${mine}/versions?before=${before}`, {}, [200, 400], [], (r) => {
        const items = (r.json as { items: Array<{ ov: number }> }).items;
        if (items.some((i) => i.ov >= before || i.ov > models[t].records.orders.get(mine)!.ov)) failures.push('victim history cursor: versions beyond the cursor');
      });
    }
    case 7: {
      // Every library call on the victim's id through one's own collection.
      const c = records(t, target.c);
      const [name, run, check] = gen.pick<[string, () => Promise<unknown>, (r: unknown) => boolean]>([
        ['getLatest', () => c.getLatest(target.id, { includeDeleted: true }), (r) => r === null],
        ['getVersion', () => c.getVersion(target.id, 0), (r) => r === null],
        ['getAsOf', () => c.getAsOf(target.id, new Date().toISOString()), (r) => r === null],
        ['history', () => c.history(target.id), (r) => (r as { items: unknown[] }).items.length === 0],
        ['update', () => c.update(target.id, { owner: t }, 0), () => false],
        ['enrich', () => c.enrich(target.id, { owner: t }, { functionId: 'fuzz' }), () => false],
        ['delete', () => c.delete(target.id, 0), () => false],
        ['restoreObject', () => c.restoreObject(target.id, { ov: 0 }), () => false],
        ['verify', () => c.verify(target.id), (r) => (r as { checked: number }).checked === 0],
      ]);
      return attemptLibrary(`library ${name} with victim id`, t, run, [NotFoundError, ValidationError], named, check);
    }
    case 8: {
      // Page tokens are bound to their tenant's collection.
      const victim = records(v, target.c);
      // changesBy reads version history, which only runtime keeps.
      const byActor = target.c === 'orders' && gen.chance(0.5);
      const token = !byActor
        ? (await victim.query({}, { limit: 1 })).nextPageToken
        : (await victim.changesBy(`${v}-user`, { limit: 1 })).nextPageToken;
      if (!token) return;
      const mine = records(t, target.c);
      return attemptLibrary('library victim page token', t, () => (byActor ? mine.changesBy(`${t}-user`, { pageToken: token }) : mine.query({}, { pageToken: token })), [ValidationError], [], () => false);
    }
    case 9:
      return attemptLibrary('library victim id as afterId', t, () => records(t, target.c).listByMeta({ afterId: target.id, includeDeleted: true }), [ValidationError], named, (r) => onlyOwn(t, target.c)((r as { items: Array<{ id: string }> }).items));
    case 10: {
      const secret = models[v].records[target.c].get(target.id)!.data.marker as string;
      return attemptLibrary('library victim secret as filter', t, () => records(t, target.c).listByMeta({ filter: { marker: secret } }), [ValidationError], [secret], (r) => (r as { items: unknown[] }).items.length === 0);
    }
    case 11: {
      const now = new Date();
      const doc = { key: 'k0', namespace: 'app', tenantId: v, val: { intruder: t }, _system: { createdAt: now, updatedAt: now } };
      const m = memory(t);
      const [name, run, check] = gen.pick<[string, () => Promise<unknown>, (r: unknown) => boolean]>([
        ['insert', () => m.insert(doc), () => false],
        ['upsert', () => m.upsert({ key: 'k0', namespace: 'app', tenantId: v }, doc), () => false],
        ['find', () => m.find({ tenantId: v }), (r) => (r as unknown[]).length === 0],
        ['findOne', () => m.findOne({ key: 'k0', namespace: 'app', tenantId: v }), (r) => r === null],
        ['deleteMany', () => m.deleteMany({ tenantId: v }), (r) => r === 0 || (r as { deleted?: number }).deleted === 0],
      ]);
      return attemptLibrary(`library messaging ${name} naming victim`, t, run, [TenantAccessError, ValidationError], [], check);
    }
    case 12: {
      const emails = [...models[v].users.values()];
      if (emails.length === 0) return;
      const email = gen.pick(emails);
      return attemptLibrary('library identities victim email', t, () => users(t).findOne({ email }), [TenantAccessError, ValidationError], [email], (r) => r === null);
    }
    case 13:
      return injectionAttempt(t, v, target);
    default: {
      // A key of the victim's tenant used on one's own path (the reverse direction of case 0).
      return attemptHttp('own path, victim key', t, 'GET', path(t, target.c), { key: TENANT_KEYS[v] }, [403], []);
    }
  }
}

/** The name a filter would need to reach the victim's records table. */
function victimTable(v: Tenant): string {
  return world.postgres ? `"${world.postgres.schemaPrefix}xronox_dev_runtime_${v}"` : 'main';
}

/**
 * A filter meant to break out of a SQL string or to name the victim's schema, as a value or as a
 * key, on one's own records, messaging and identities, over HTTP or through the library: a 400
 * (ValidationError), or an answer holding only the caller's own data.
 */
async function injectionAttempt(t: Tenant, v: Tenant, target: { c: RecordCollection; id: string }): Promise<void> {
  const named = [target.id];
  const value = gen.pick(injectionValues(target.id, victimTable(v)));
  const asKey = gen.chance(0.25);
  const key = gen.pick(INJECTION_KEYS);
  const place = gen.pick(['records', 'messaging', 'identities'] as const);
  const field = { records: 'marker', messaging: 'key', identities: 'email' }[place];
  const filter = asKey ? { [key]: value } : gen.pick([{ [field]: value }, { [field]: { $in: [value, `${value}'`] } }, { $or: [{ [field]: value }, { [field]: { $gt: value } }] }]);
  const mine = (items: Array<Record<string, unknown>>) =>
    place === 'records' ? onlyOwn(t, target.c)(items as Array<{ id: string }>) : items.every((d) => d.tenantId === t);
  if (gen.chance(0.5)) {
    const url = place === 'records' ? path(t, target.c) : `/v1/tenants/${t}/${place}/${place === 'messaging' ? 'shared_memory' : 'users'}`;
    return attemptHttp(`injection filter (${place})`, t, 'GET', `${url}?filter=${enc(json(filter))}`, {}, [200, 400], named, (r) => {
      if (!mine((r.json as { items: Array<Record<string, unknown>> }).items)) failures.push(`injection filter: ${json(filter)} answered foreign items: ${r.text.slice(0, 200)}`);
    });
  }
  const run = place === 'records' ? () => records(t, target.c).listByMeta({ filter }) : place === 'messaging' ? () => memory(t).find(filter) : () => users(t).find(filter);
  return attemptLibrary(`library injection filter (${place})`, t, run, [ValidationError], named, (r) =>
    mine(place === 'records' ? (r as { items: Array<Record<string, unknown>> }).items : (r as Array<Record<string, unknown>>)),
  );
}

// ---- checkpoints ------------------------------------------------------------------------------------

async function checkpoint(): Promise<void> {
  stats.checkpoints++;
  for (const t of TENANTS) {
    const m = models[t];
    for (const c of ['orders', 'notes'] as const) {
      const { items } = await records(t, c).listByMeta({ limit: 1000, includeDeleted: true });
      const got = new Map(items.map((r) => [r.id, { ov: r.ov, data: r.data }]));
      expect(got, `${t} ${c}`).toEqual(m.records[c]);
    }
    const memoryDocs = await memory(t).find({});
    expect(new Map(memoryDocs.map((d) => [d.key as string, d.val])), `${t} shared_memory`).toEqual(m.memory);
    expect(memoryDocs.every((d) => d.tenantId === t)).toBe(true);
    const userDocs = await users(t).find({});
    expect(new Map(userDocs.map((d) => [d.userId as string, d.email as string])), `${t} users`).toEqual(m.users);
    const audit = s.xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: t, collection: 'identity_events' });
    expect((await audit.listByMeta({ limit: 1000 })).items.length, `${t} identity_events`).toBe(m.identityEvents);
  }
  if (world.postgres) await checkPlacement(world.postgres.schemaPrefix);
}

/**
 * PostgreSQL: the world's roles are confined as it says, so that the attempts meet PostgreSQL's
 * refusal: each reads its own tenants' records table, and is refused (42501) the others'.
 */
async function checkRolesConfined(pg: PostgresTenantConnections): Promise<void> {
  const runtime = (t: Tenant) => s.xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: t, collection: 'orders' }).route.dbName;
  for (const t of TENANTS) {
    const [own, other] = t === CONFINED ? [pg.dbConnections.confined, pg.dbConnections.local] : [pg.dbConnections.local, pg.dbConnections.confined];
    expect(await readAs(own.postgresUri, pg.schemaPrefix, runtime(t)), `${t} by its own role`).toBeGreaterThan(0);
    expect(await readAs(other.postgresUri, pg.schemaPrefix, runtime(t)), `${t} by the other role`).toBe('42501');
  }
}

/** PostgreSQL: each tenant's rows, read from the catalogue's schemas directly, are where they belong and nowhere else. */
async function checkPlacement(prefix: string): Promise<void> {
  const configured = new Map((await s.xronox.jobTargets({ dynamic: false })).map((d) => [d.dbName, d.tenantId ?? null]));
  const records = TENANTS.flatMap((tenant) =>
    (['orders', 'notes'] as const).map((collection) => ({ tenant, dbName: s.xronox.with({ databaseType: TYPE_OF[collection], tier: 'tenant', tenantId: tenant, collection }).route.dbName, collection, ids: [...models[tenant].records[collection].keys()] })),
  );
  expect(placementProblems(await schemaCensus(prefix), { configured, records })).toEqual([]);
}

describe(`tenant isolation fuzzer on ${BACKEND} (seed ${SEED}, scale ${SCALE})`, () => {
  it('every route with the wrong tenant\'s key, ids and cursors: refused, nothing leaked, nothing changed', async () => {
    const doc = (await call(s.base, 'GET', '/openapi.json', { key: null })).json as { paths: Record<string, Record<string, unknown>> };
    routes = Object.entries(doc.paths).flatMap(([template, ops]) => Object.keys(ops).map((method) => ({ template, method })));
    expect(routes.length).toBeGreaterThan(20);

    // Every tenant starts with data in every collection, half through each channel.
    for (const t of TENANTS) {
      for (const c of ['orders', 'notes'] as const) for (let i = 0; i < 3; i++) await createRecord(t, c, i % 2 === 0);
      await updateRecord(t, 'orders', true);
      await upsertMemory(t, true);
      await upsertMemory(t, false);
      await insertUser(t, true);
      await insertUser(t, false);
    }

    if (world.postgres) await checkRolesConfined(world.postgres);

    // A sweep of every listed route and method, for every ordered pair of tenants.
    for (const t of TENANTS) {
      for (const v of others(t)) {
        for (const route of routes) {
          const target = { c: 'orders' as const, id: [...models[v].records.orders.keys()][0]! };
          const reply = await call(s.base, route.method.toUpperCase(), fillRoute(route.template, v, target), { ...bodyFor(route.template, route.method, v), key: TENANT_KEYS[t] });
          stats.routeSweep++;
          scan(t, `sweep ${route.method} ${route.template}`, reply.text, [target.id]);
          if (reply.status !== 403) failures.push(`sweep: ${t} → ${v} ${route.method} ${route.template} answered ${reply.status}`);
        }
      }
    }
    await checkpoint();

    for (let i = 0; i < OPERATIONS; i++) {
      const t = gen.pick(TENANTS);
      const viaHttp = gen.chance(0.5);
      stats.operations++;
      if (gen.chance(0.55)) {
        await crossTenant(t);
      } else {
        stats.legit++;
        const roll = gen.int(7);
        const c = gen.pick(['orders', 'notes'] as const);
        if (roll === 0) await createRecord(t, c, viaHttp);
        else if (roll <= 2) await updateRecord(t, c, viaHttp);
        else if (roll <= 4) await readOwn(t, c, viaHttp);
        else if (roll === 5) await upsertMemory(t, viaHttp);
        else await insertUser(t, viaHttp);
      }
      if ((i + 1) % CHECK_EVERY === 0) await checkpoint();
    }
    await checkpoint();

    console.log(
      `[reliability] tenant isolation on ${BACKEND}: seed ${SEED}, scale ${SCALE}: ${stats.operations} operations (${stats.legit} legitimate, ${stats.crossTenant} cross-tenant attempts), ` +
        `route sweep ${stats.routeSweep} requests over ${routes.length} listed route×method pairs × 6 tenant pairs, ${stats.answersScanned} answers scanned for leaks, ` +
        `${stats.checkpoints} full-state checkpoints; attempts by kind ${JSON.stringify(stats.crossByKind)}; failures/leaks: ${failures.length}`,
    );
    expect(failures).toEqual([]);
    // Background work (the blob sync of every tenant's writes) met no refusal either.
    await s.xronox.flush();
    expect(s.backgroundErrors.map(String)).toEqual([]);
  }, 60_000 * Math.max(1, SCALE));
});
