import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../core/config/file.js';
import { loadConfig } from '../../core/config/load.js';
import type { Collection } from '../../core/engine/collection.js';
import type { Data } from '../../core/engine/documents.js';
import type { Xronox } from '../../core/xronox.js';
import { ConfigError, XronoxError } from '../../core/errors.js';
import { initXronox } from '../../core/xronox.js';
import { call, KEYS, ok, type RequestOptions, startServer, testApiConfig, type TestServer } from '../http/harness.js';
import { Gen } from '../support/random.js';
import { tempDir } from '../support/temp.js';
import { reliabilityScale, reliabilitySeed } from './support/fault-schedule.js';
import {
  HOSTILE_ACTORS,
  HOSTILE_NAMES,
  HOSTILE_OPTIONS,
  PROTOTYPE_NAMES,
  hostileConfigFiles,
  hostileConfigs,
  hostileDocuments,
  hostileFilters,
  type HostileItem,
} from './support/hostile-corpus.js';
import { stateDiff, storedFingerprint, storedState } from './support/hostile-snapshot.js';

/**
 * Hostile input corpus: generated (seeded) malformed configs and config files, hostile
 * documents (deep nesting, huge keys, `__proto__`, `$`-keys, cycles, values JSON cannot carry,
 * giant strings), hostile filters (forbidden operators, objects and regexes as values, random
 * trees), hostile names, options and actors, and malformed HTTP requests on every kind of route.
 * Oracle: every input is answered with a XronoxError subclass (library) or a 4xx problem+json
 * (HTTP), never anything else; whatever is refused leaves the stored state (every SQLite row,
 * every blob file) exactly as it was; whatever is accepted reads back as its JSON form.
 *
 * Reproduce: XRONOX_RELIABILITY_SEED=<seed> npx vitest run test/reliability/hostile-input.test.ts
 */

const SCALE = reliabilityScale();
const SEED = reliabilitySeed(41_2026);
const MAX_BYTES = 256 * 1024;
const dir = tempDir('xronox-hostile');
const sqlitePath = join(dir.path, 'xronox.sqlite');
const blobRoot = join(dir.path, 'blobs');
let x: Xronox;
const figures: Record<string, number> = {};
const errorKinds: Record<string, number> = {};

function tally(name: string, n = 1): void {
  figures[name] = (figures[name] ?? 0) + n;
}

beforeAll(() => {
  x = initXronox({
    dbConnections: { local: { sqlitePath } },
    localStorage: { basePath: blobRoot, enabled: true },
    databases: {
      runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme' }] },
      knowledge: { genericDatabase: { dbConnRef: 'local', dbName: 'kn' } },
      logs: { genericDatabase: { dbConnRef: 'local', dbName: 'logs' } },
      messaging: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'msg_acme' }] },
      identities: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'id_acme' }] },
    },
    collectionMaps: {
      orders: { indexedProps: ['name', 'n'], base64Props: { invoice: { contentType: 'application/pdf' } } },
      facts: { indexedProps: ['name', 'n'] },
    },
    limits: { maxDocumentBytes: MAX_BYTES },
  });
});
afterAll(async () => {
  await x?.shutdown();
  console.log(`[reliability] hostile input: seed ${SEED}, scale ${SCALE}: ${JSON.stringify(figures)}; refusals by error ${JSON.stringify(errorKinds)}`);
  dir.cleanup();
});

/** What a refusal was, for the figures; anything not a XronoxError is a finding. */
function classify(err: unknown): string {
  const name = err instanceof XronoxError ? err.constructor.name : `NOT A XRONOX ERROR ${err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err)}`;
  errorKinds[name] = (errorKinds[name] ?? 0) + 1;
  return name;
}

async function outcome(run: () => unknown): Promise<{ accepted: true; result: unknown } | { accepted: false; error: unknown }> {
  try {
    return { accepted: true, result: await run() };
  } catch (error) {
    return { accepted: false, error };
  }
}

async function snapshot(): Promise<string> {
  await x.flush();
  return storedState(sqlitePath, blobRoot);
}

async function fingerprint(): Promise<string> {
  await x.flush();
  return storedFingerprint(sqlitePath, blobRoot);
}

/** The JSON form of a value, as a store that accepted it must give it back. */
const jsonForm = (value: unknown): unknown => JSON.parse(JSON.stringify(value)) as unknown;

const describeItem = (item: HostileItem) => item.label;

describe(`hostile input corpus (seed ${SEED}, scale ${SCALE})`, () => {
  it('malformed configs and config files: a ConfigError with paths, never a TypeError, nothing polluted', async () => {
    const gen = new Gen(SEED);
    const findings: string[] = [];
    const configs = hostileConfigs(gen, dir.path, Math.round(300 * SCALE));
    for (const item of configs) {
      for (const [entry, run] of [
        ['loadConfig', () => loadConfig(item.value, {})],
        ['initXronox', () => initXronox(item.value, { env: {}, onBackgroundError: () => undefined })],
      ] as const) {
        tally('configs tried');
        const result = await outcome(run);
        if (result.accepted) {
          tally('configs accepted (the mutation left them valid)');
          if (item.reject) findings.push(`${entry} accepted ${describeItem(item)}`);
          if (entry === 'initXronox') await (result.result as Xronox).shutdown();
          continue;
        }
        const kind = classify(result.error);
        if (!(result.error instanceof ConfigError)) findings.push(`${entry} ${describeItem(item)}: ${kind}`);
        else if (result.error.issues.length === 0 || result.error.issues.some((i) => typeof i.path !== 'string' || typeof i.message !== 'string' || i.message === '')) {
          findings.push(`${entry} ${describeItem(item)}: a ConfigError without a path and message for each issue`);
        }
      }
    }
    for (const item of hostileConfigFiles(dir.path)) {
      tally('config files tried');
      const file = join(dir.path, `hostile-${figures['config files tried']}.json`);
      writeFileSync(file, item.value);
      const result = await outcome(() => loadConfigFile(file, {}));
      if (result.accepted) findings.push(`config file ${item.label} accepted`);
      else if (!(result.error instanceof ConfigError) || !result.error.message.includes(file)) findings.push(`config file ${item.label}: ${classify(result.error)} ${String(result.error).slice(0, 200)}`);
      else classify(result.error);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(findings).toEqual([]);
  }, 60_000 * Math.max(1, SCALE));

  it('hostile documents on every write call: refused with a XronoxError and nothing stored, or stored exactly as their JSON', async () => {
    const gen = new Gen(SEED + 1);
    const findings: string[] = [];
    const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    const facts = x.with({ databaseType: 'knowledge', tier: 'generic', collection: 'facts' });
    const logs = x.with({ databaseType: 'logs', tier: 'generic', collection: 'activity' });
    const memory = x.with({ databaseType: 'messaging', tier: 'tenant', tenantId: 'acme', collection: 'shared_memory' });
    const users = x.with({ databaseType: 'identities', tier: 'tenant', tenantId: 'acme', collection: 'users' });
    // One record per versioned-or-not record type, updated in place by the accepted updates.
    const seeded = new Map<Collection, string>();
    for (const c of [orders, facts] as const) seeded.set(c, (await c.create({ name: 'seed', n: 0 })).id);
    const idOf = (c: Collection) => seeded.get(c)!;

    const documents = hostileDocuments(gen, Math.round(160 * SCALE), MAX_BYTES);
    const now = new Date();
    /** Reads an accepted write back; returns what differs from the document's JSON form, or null. */
    type ReadBack = (written: unknown, doc: unknown) => Promise<string | null>;
    const recordReadBack = (c: Collection): ReadBack => async (written, doc) => {
      const { id } = written as { id: string };
      const stored = JSON.stringify((await c.getLatest(id))?.data);
      return stored === JSON.stringify(jsonForm(doc)) ? null : `stored ${stored?.slice(0, 120)}`;
    };
    const userReadBack: ReadBack = async (written, doc) => {
      const stored = await users.findOne({ userId: written as string });
      return JSON.stringify(stored?.profile) === JSON.stringify(doc) ? null : `stored ${JSON.stringify(stored?.profile)?.slice(0, 120)}`;
    };
    const insertUser = async (doc: unknown) => {
      const userId = `u${gen.int(1e9)}`;
      await users.insert({ userId, tenantId: 'acme', email: `${userId}@example.com`, profile: doc });
      return userId;
    };
    interface Operation {
      name: string;
      /** Record writes take the item as the document; document writes take it as a field's value. */
      kind: 'record' | 'document';
      run: (doc: unknown) => Promise<unknown>;
      readBack?: ReadBack;
    }
    const operations: Operation[] = [
      { name: 'runtime create', kind: 'record', run: (doc) => orders.create(doc as Data), readBack: recordReadBack(orders) },
      // Updates name the current ov (enrich and smartInsert move it too), so they reach validation.
      { name: 'runtime update', kind: 'record', run: async (doc) => orders.update(idOf(orders), doc as Data, (await orders.getLatest(idOf(orders)))!.ov), readBack: recordReadBack(orders) },
      { name: 'runtime enrich', kind: 'record', run: (doc) => orders.enrich(idOf(orders), doc as never, { functionId: 'hostile' }) },
      { name: 'runtime smartInsert', kind: 'record', run: (doc) => orders.smartInsert(doc as Data, { uniqueKeys: ['n'] }) },
      { name: 'runtime createMany (a valid document first)', kind: 'record', run: (doc) => orders.createMany([{ name: 'valid', n: 1 }, doc as Data]) },
      { name: 'knowledge create', kind: 'record', run: (doc) => facts.create(doc as Data), readBack: recordReadBack(facts) },
      { name: 'knowledge update', kind: 'record', run: async (doc) => facts.update(idOf(facts), doc as Data, (await facts.getLatest(idOf(facts)))!.ov), readBack: recordReadBack(facts) },
      { name: 'logs create', kind: 'record', run: (doc) => logs.create(doc as Data), readBack: recordReadBack(logs) },
      { name: 'messaging insert (as val)', kind: 'document', run: (doc) => memory.insert({ key: `k${gen.int(1e9)}`, namespace: 'ns', tenantId: 'acme', val: doc, _system: { createdAt: now, updatedAt: now } }) },
      { name: 'identities insert (as a field)', kind: 'document', run: insertUser, readBack: userReadBack },
    ];
    const applies = (op: Operation, item: HostileItem) => op.kind === 'record' || !item.topLevel;
    // enrich takes a patch or an array of patches, so an array of objects is a valid patch list.
    const mustRefuse = (op: Operation, item: HostileItem) =>
      op.kind === 'document' ? (item.rejectInDocuments ?? item.reject) : op.name === 'runtime enrich' && item.label === 'array' ? false : item.reject;

    // Everything that must be refused, together: one snapshot proves none of it left a trace.
    const before = await snapshot();
    for (const item of documents) {
      for (const op of operations.filter((o) => applies(o, item) && mustRefuse(o, item))) {
        tally('document writes that must be refused');
        const result = await outcome(() => op.run(item.value));
        if (result.accepted) findings.push(`${op.name} accepted ${item.label}`);
        else if (classify(result.error).startsWith('NOT')) findings.push(`${op.name} ${item.label}: ${classify(result.error)}`);
      }
    }
    expect.soft(stateDiff(before, await snapshot()), 'stored state after the refused documents').toEqual([]);

    // What may be accepted: refused cleanly (checked with a fingerprint each), or read back exactly.
    for (const item of documents) {
      for (const op of operations.filter((o) => applies(o, item) && !mustRefuse(o, item))) {
        tally('document writes that may be accepted');
        const was = await fingerprint();
        const result = await outcome(() => op.run(item.value));
        if (!result.accepted) {
          if (classify(result.error).startsWith('NOT')) findings.push(`${op.name} ${item.label}: ${classify(result.error)}`);
          if ((await fingerprint()) !== was) findings.push(`${op.name} ${item.label}: refused, but the stored state changed`);
          continue;
        }
        tally('document writes accepted');
        const differs = await op.readBack?.(result.result, item.value);
        if (differs) findings.push(`${op.name} ${item.label}: ${differs}, not its JSON form`);
      }
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(findings).toEqual([]);
  }, 60_000 * Math.max(1, SCALE));

  it('hostile filters, names, options and actors: a XronoxError or a correct answer, and nothing stored', async () => {
    const gen = new Gen(SEED + 2);
    const findings: string[] = [];
    const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    const memory = x.with({ databaseType: 'messaging', tier: 'tenant', tenantId: 'acme', collection: 'shared_memory' });
    const { id } = await orders.create({ name: 'filter-target', n: 5 }, 'alice');
    const known = new Set((await orders.listByMeta({ limit: 1000, includeDeleted: true })).items.map((r) => r.id));
    const before = await snapshot();

    for (const item of hostileFilters(gen, Math.round(600 * SCALE))) {
      for (const [name, run] of [
        ['listByMeta', () => orders.listByMeta({ filter: item.value as never, includeDeleted: true })],
        ['query', () => orders.query(item.value as never)],
        ['messaging find', () => memory.find(item.value)],
      ] as const) {
        tally('filters tried');
        const result = await outcome(run);
        if (!result.accepted) {
          if (classify(result.error).startsWith('NOT')) findings.push(`${name} ${item.label} ${String(JSON.stringify(item.value)).slice(0, 120)}: ${classify(result.error)}`);
          continue;
        }
        tally('filters answered');
        if (item.reject) findings.push(`${name} answered the forbidden filter ${item.label}`);
        const items = Array.isArray(result.result) ? result.result : (result.result as { items: Array<{ id: string }> }).items;
        if (name !== 'messaging find' && (items as Array<{ id: string }>).some((r) => !known.has(r.id))) findings.push(`${name} ${item.label}: answered records that do not exist`);
      }
    }

    for (const name of HOSTILE_NAMES) {
      for (const [label, run] of [
        ['collection', () => x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: name as string })],
        ['tenantId', () => x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: name as string, collection: 'orders' })],
        ['databaseType', () => x.with({ databaseType: name as 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' })],
        ['tier', () => x.with({ databaseType: 'runtime', tier: name as 'tenant', tenantId: 'acme', collection: 'orders' })],
        ['getLatest id', () => orders.getLatest(name as string)],
        ['update id', () => orders.update(name as string, { n: 1 }, 0)],
        ['delete id', () => orders.delete(name as string, 0)],
        ['history id', () => orders.history(name as string)],
        ['restoreObject id', () => orders.restoreObject(name as string, { ov: 0 })],
      ] as const) {
        tally('names tried');
        const result = await outcome(run);
        if (result.accepted) findings.push(`${label} ${String(typeof name === 'symbol' ? 'Symbol' : JSON.stringify(name))?.slice(0, 40)} was accepted`);
        else if (classify(result.error).startsWith('NOT')) findings.push(`${label} ${typeof name === 'symbol' ? 'Symbol' : String(JSON.stringify(name)).slice(0, 40)}: ${classify(result.error)}`);
      }
    }

    expect(stateDiff(before, await snapshot()), 'stored state after filters and hostile names').toEqual([]);
    for (const name of PROTOTYPE_NAMES) {
      tally('prototype-named collections and ids tried');
      const result = await outcome(async () => {
        const c = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: name });
        const created = await c.create({ name, n: 1 });
        const back = await c.getLatest(created.id);
        const listed = await c.listByMeta({ filter: { n: 1 } });
        const asId = await orders.getLatest(name);
        return back?.data.name === name && listed.items.length === 1 && asId === null;
      });
      if (result.accepted ? result.result !== true : classify(result.error).startsWith('NOT')) findings.push(`the name ${name} does not work like any other name`);
    }
    const afterPrototypeNames = await snapshot();

    for (const options of HOSTILE_OPTIONS) {
      for (const [label, run] of [
        ['listByMeta', () => orders.listByMeta(options as never)],
        ['query', () => orders.query({}, options as never)],
        ['history', () => orders.history(id, options as never)],
        ['getLatest', () => orders.getLatest(id, options as never)],
        ['changesBy', () => orders.changesBy('alice', options as never)],
        ['messaging find', () => memory.find({}, options as never)],
      ] as const) {
        tally('option bags tried');
        const result = await outcome(run);
        if (!result.accepted && classify(result.error).startsWith('NOT')) findings.push(`${label} ${String(JSON.stringify(options))}: ${classify(result.error)}`);
      }
    }
    expect(stateDiff(afterPrototypeNames, await snapshot()), 'stored state after the option bags').toEqual([]);

    let ov = 0;
    for (const actor of HOSTILE_ACTORS) {
      for (const reason of ['why', 42, 'r'.repeat(100_000), { $where: 1 }]) {
        tally('actor and reason pairs tried');
        const was = await fingerprint();
        const result = await outcome(() => orders.update(id, { name: 'filter-target', n: 5 }, ov, actor as never, reason as never));
        if (result.accepted) {
          tally('actor and reason pairs accepted');
          ov++;
          const stored = await orders.getVersion(id, ov);
          if (stored?.reason !== reason && !(reason === undefined && stored?.reason === null)) findings.push(`update with reason ${String(reason).slice(0, 30)} stored reason ${String(stored?.reason).slice(0, 30)}`);
        } else {
          if (classify(result.error).startsWith('NOT')) findings.push(`update with actor ${String(typeof actor === 'symbol' ? 'Symbol' : JSON.stringify(actor))?.slice(0, 40)}: ${classify(result.error)}`);
          if ((await fingerprint()) !== was) findings.push(`update with a hostile actor was refused but changed the stored state`);
        }
      }
    }
    expect(findings).toEqual([]);
  }, 60_000 * Math.max(1, SCALE));
});

// ---- HTTP -------------------------------------------------------------------------------------------

describe(`hostile HTTP requests (seed ${SEED}, scale ${SCALE})`, () => {
  const BODY_LIMIT = 32 * 1024;
  let s: TestServer;
  let orderId: string;
  beforeAll(async () => {
    s = await startServer({ api: testApiConfig({ bodyLimitBytes: BODY_LIMIT }) });
    orderId = (await ok<{ id: string }>(s.base, 'POST', '/v1/tenants/acme/runtime/orders', { body: { n: 1 } })).body.id;
    const now = { $date: new Date().toISOString() };
    await ok(s.base, 'POST', '/v1/tenants/acme/messaging/shared_memory', { body: { key: 'k', namespace: 'ns', tenantId: 'acme', val: 1, _system: { createdAt: now, updatedAt: now } } });
    await ok(s.base, 'POST', '/v1/tenants/acme/identities/users', { body: { userId: 'u1', tenantId: 'acme', email: 'u1@example.com' } });
  });
  afterAll(() => s?.close());

  it('messaging, identities, batch, counters and record routes with malformed requests: 4xx problem+json, no 5xx, nothing stored', async () => {
    const gen = new Gen(SEED + 3);
    const enc = encodeURIComponent;
    const date = (v: unknown) => ({ createdAt: { $date: v }, updatedAt: { $date: new Date().toISOString() } });
    const memoryDoc = (over: Record<string, unknown>) => ({ key: 'k2', namespace: 'ns', tenantId: 'acme', val: 1, _system: date(new Date().toISOString()), ...over });
    const deep = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
    type Planned = [method: string, path: string, options: RequestOptions];
    const M = '/v1/tenants/acme/messaging/shared_memory';
    const U = '/v1/tenants/acme/identities/users';
    const R = '/v1/tenants/acme/runtime/orders';
    const raw = (text: string, contentType: string | null = 'application/json'): RequestOptions => ({ raw: text, contentType });
    const generators: Array<() => Planned> = [
      () => ['POST', M, raw(gen.pick(['{', '[]', 'null', '"x"', '{"a":1}x', '\ufeff{}', '{"key":"k","key":"k"', deep(100)]))],
      () => ['POST', M, { body: memoryDoc(gen.pick([{ _system: date('not a date') }, { _system: date(12) }, { _system: date({}) }, { _system: date('2024-02-31T00:00:00Z') }, { key: undefined }, { tenantId: 'beta' }, { key: { $gt: '' } }, { $where: 1 }, { val: undefined }, { key: 'x'.repeat(5000) }, { namespace: 'n'.repeat(600) }])) }],
      () => ['POST', M, { raw: JSON.stringify(memoryDoc({ val: 'v'.repeat(BODY_LIMIT) })), contentType: 'application/json' }],
      () => ['POST', M, { raw: JSON.stringify(memoryDoc({})), contentType: gen.pick(['text/plain', 'application/xml', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', null]) }],
      () => ['PUT', M, { body: gen.pick([{}, { filter: { key: 'k' }, doc: memoryDoc({}) }, { filter: { $where: '1' }, doc: memoryDoc({}) }, { filter: { key: 'k2', namespace: 'ns', tenantId: 'acme' } }, { doc: memoryDoc({}) }, { filter: { key: 'k2', namespace: 'ns', tenantId: 'acme' }, doc: memoryDoc({ key: 'other' }) }, { filter: 'x', doc: 'y' }]) }],
      () => ['GET', `${M}?${gen.pick(['filter=%7B', `filter=${enc('{"$where":"1"}')}`, `filter=${enc('{"key":{"$regex":"."}}')}`, `sort=${enc('{"key":2}')}`, 'sort=x', 'limit=0', 'limit=-1', 'limit=20000', 'limit=abc', 'unknown=1', `filter=${enc('{"key":{"$date":"x"}}')}`])}`, {}],
      () => ['DELETE', `${M}${gen.pick(['', '?filter=%7B', `?filter=${enc('{"$where":"1"}')}`, '?many=yes', `?filter=${enc('{"key":{"$in":"x"}}')}&many=true`])}`, {}],
      () => ['POST', U, { body: gen.pick([{ userId: 'u9', tenantId: 'acme', email: 'not-an-email' }, { tenantId: 'acme', email: 'a@example.com' }, { userId: 'u9', tenantId: 'beta', email: 'b@example.com' }, { userId: '', tenantId: 'acme', email: 'c@example.com' }, { userId: 'u1', tenantId: 'acme', email: 'U1@example.com' }, { userId: 'u9', tenantId: 'acme', email: 'd@example.com', roles: 'admin' }, { userId: 'u8', tenantId: 'acme', email: 'e@example.com', profile: { constructor: 1 } }]) }],
      () => ['POST', `${R}/batch`, { body: gen.pick([{}, { items: 'x' }, { items: [] }, { items: [{ n: 1 }, { $set: 1 }] }, { items: [{ n: 1 }, 'x'] }, { items: [{ n: 1 }, { _system: {} }] }, { items: Array.from({ length: 2000 }, (_, i) => ({ n: i })) }, { items: [{ n: 1 }], extra: true }]) }],
      () => ['GET', `/v1/tenants/acme/counters/${gen.pick(['runtime', 'nosuch', '$x', '..', 'logs'])}/${gen.pick(['orders', '%2e%2e', 'a%2Fb', '$cmd', 'x'.repeat(300)])}`, {}],
      () => ['GET', `${R}/${gen.pick(['%2e%2e%2f%2e%2e%2fetc%2fpasswd', '..%5c..%5cwindows', '%00', '%C0%AE%C0%AE', enc('😀'), enc('\u202e'), 'x'.repeat(2000), '%uD800', enc('id with spaces')])}`, {}],
      () => ['PUT', `${R}/${orderId}`, { body: { n: 2 }, headers: { 'if-match': gen.pick(['', '*', '"-1"', '"0x0"', 'W/"0"', '"0"'.repeat(2000), '"\u00ff"']) } }],
      () => ['PATCH', `${R}/${orderId}`, { raw: gen.pick(['{"a":', deep(80), '{"$inc":{"n":1}}', '{"__proto__":{"x":1}}', '[1,2]']), contentType: 'application/json', headers: { 'if-match': '"0"' } }],
      () => ['POST', R, { body: { n: 1 }, key: gen.pick(['', ' ', 'a.b.c', 'x'.repeat(5000), `${KEYS.acmeAdmin}\u0000`.replace('\u0000', '%00'), 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.']) }],
      () => ['POST', R, { body: { n: 1 }, headers: { authorization: gen.pick(['Basic YTpi', 'Bearer', 'bearer', `Bearer ${KEYS.acmeAdmin}, Bearer ${KEYS.betaAdmin}`, 'Digest x', 'Bearer \u00e9t\u00e9']) }, key: null }],
      () => ['POST', R, { raw: JSON.stringify({ n: 1, x: 'y'.repeat(BODY_LIMIT) }), contentType: 'application/json', headers: { 'x-xronox-reason': 'r'.repeat(gen.pick([1025, 4000])) } }],
      () => ['POST', `/v1/tenants/${gen.pick(['acme%2F..%2Fbeta', '..', 'ACME', 'acme%00', '*'])}/runtime/orders`, { body: { n: 1 } }],
    ];
    await s.xronox.flush();
    const before = storedState(join(s.dataDir, 'xronox.sqlite'), join(s.dataDir, 'blobs'));
    const findings: string[] = [];
    const statuses: Record<number, number> = {};
    const total = Math.round(700 * SCALE);
    for (let i = 0; i < total; i++) {
      const [method, path, options] = gen.pick(generators)();
      const reply = await call(s.base, method, path, options);
      statuses[reply.status] = (statuses[reply.status] ?? 0) + 1;
      const where = `#${i} ${method} ${path.slice(0, 120)} ${JSON.stringify(options).slice(0, 160)}`;
      if (reply.status >= 500) findings.push(`${where} → ${reply.status} ${reply.text.slice(0, 200)}`);
      else if (reply.status < 400 && method !== 'GET') findings.push(`${where} → ${reply.status}: a malformed write was accepted`);
      else if (reply.status >= 400 && reply.headers.get('content-type') !== 'application/problem+json') findings.push(`${where} → ${reply.status} without problem+json`);
    }
    await s.xronox.flush();
    tally('HTTP requests', total);
    console.log(`[reliability] hostile HTTP: ${total} requests, statuses ${JSON.stringify(statuses)}, findings ${findings.length}`);
    // Soft, so a run that finds something also reports what it left in the store.
    expect.soft(findings).toEqual([]);
    expect(stateDiff(before, storedState(join(s.dataDir, 'xronox.sqlite'), join(s.dataDir, 'blobs')))).toEqual([]);
  }, 60_000 * Math.max(1, SCALE));
});
