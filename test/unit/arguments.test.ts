import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Collection } from '../../core/engine/collection.js';
import type { Xronox } from '../../core/xronox.js';
import { ValidationError } from '../../core/errors.js';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';

/**
 * Nothing a caller passes is silently dropped: an options object with a key the method does not
 * know, or an argument past the last one it takes, is a `ValidationError` naming it (issue 15,
 * item 10). And `listByMeta` takes the product documents' two-argument form.
 */

const dir = tempDir('xronox-arguments');
let x: Xronox;
let orders: Collection;
let id: string;
let createdAt: string;
const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex').toString('base64');

beforeAll(async () => {
  x = initXronox({
    dbConnections: { local: { sqlitePath: join(dir.path, 'x.sqlite') } },
    localStorage: { basePath: join(dir.path, 'blobs'), enabled: true },
    databases: {
      runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme' }] },
      knowledge: { genericDatabase: { dbConnRef: 'local', dbName: 'kn_generic' } },
      messaging: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'msg_acme' }] },
      identities: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'ids_acme' }] },
    },
    collectionMaps: { orders: { indexedProps: ['status', 'email'], base64Props: { logo: { contentType: 'image/png' } } } },
  });
  orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
  ({ id, createdAt } = await orders.create({ status: 'paid', email: 'ada@example.com', logo: PNG }, 'alice', 'seed'));
});
afterAll(async () => {
  await x.shutdown();
  dir.cleanup();
});

/** `run` is refused with a ValidationError whose path is `path`. */
async function refuses(label: string, run: () => unknown, path: string): Promise<void> {
  let caught: unknown;
  try {
    await run();
  } catch (err) {
    caught = err;
  }
  expect(caught, `${label}: nothing was thrown`).toBeInstanceOf(ValidationError);
  expect({ label, path: (caught as ValidationError).path }).toEqual({ label, path });
  expect((caught as Error).message, label).toContain(path.replace(/^.*\./, ''));
}

describe('listByMeta', () => {
  it('takes the query and the read options apart, as the product documents write it', async () => {
    const inline = await orders.listByMeta({ filter: { status: 'paid' }, limit: 10 });
    expect(inline.items[0]?.data.logo).toBe(PNG);
    const presigned = await orders.listByMeta({ filter: { status: 'paid' }, limit: 10 }, { presign: true, ttlSeconds: 60 });
    expect(presigned.items.map((r) => r.id)).toEqual([id]);
    expect(presigned.items[0]?.data.logo).toMatch(/^file:\/\//);
    // The one-object form still works.
    expect((await orders.listByMeta({ filter: { status: 'paid' }, presign: true })).items[0]?.data.logo).toMatch(/^file:\/\//);
  });

  it('checks the second argument as it checks the first, and refuses an option given twice', async () => {
    await refuses('ttlSeconds', () => orders.listByMeta({}, { presign: true, ttlSeconds: 0 }), 'ttlSeconds');
    await refuses('presign twice', () => orders.listByMeta({ presign: true }, { presign: false }), 'options.presign');
    await refuses('a query key in the options', () => orders.listByMeta({}, { limit: 5 } as never), 'options.limit');
  });
});

describe('an option the method does not know is refused, naming it', () => {
  it('on every record collection method', async () => {
    const cases: Array<[string, () => unknown, string]> = [
      ['create', () => orders.create({ status: 'x' }, 'a', 'r', { parent: { id } } as never), 'options.parent'],
      ['create parentRecord', () => orders.create({ status: 'x' }, 'a', 'r', { parentRecord: { id, ovv: 0 } } as never), 'parentRecord.ovv'],
      ['create origin', () => orders.create({ status: 'x' }, 'a', 'r', { origin: { type: 'import', idd: 'b' } } as never), 'origin.idd'],
      ['enrich', () => orders.enrich(id, { status: 'y' }, { functionid: 'f' } as never), 'options.functionid'],
      ['smartInsert', () => orders.smartInsert({ email: 'b@example.com' }, { uniqueKeys: ['email'], reasn: 'r' } as never), 'options.reasn'],
      ['getLatest', () => orders.getLatest(id, { presing: true } as never), 'options.presing'],
      ['getVersion', () => orders.getVersion(id, 0, { ttl: 5 } as never), 'options.ttl'],
      ['getAsOf', () => orders.getAsOf(id, createdAt, { includedeleted: true } as never), 'options.includedeleted'],
      ['history', () => orders.history(id, { limt: 5 } as never), 'options.limt'],
      ['changesBy', () => orders.changesBy('alice', { form: createdAt } as never), 'options.form'],
      ['listByMeta', () => orders.listByMeta({ filtr: { status: 'paid' } } as never), 'query.filtr'],
      ['query', () => orders.query({}, { pagetoken: 'x' } as never), 'options.pagetoken'],
      ['restoreObject', () => orders.restoreObject(id, { ov: 0 }, { dryRun: true } as never), 'options.dryRun'],
      ['restoreObject target', () => orders.restoreObject(id, { ov: 0, cv: 0 } as never), 'target.cv'],
      ['restoreCollection', () => orders.restoreCollection({ cv: 0 }, { expectedOv: 0 } as never), 'options.expectedOv'],
      ['restoreCollection target', () => orders.restoreCollection({ cv: 0, ov: 0 } as never), 'target.ov'],
      ['insertWithEntities', () => orders.insertWithEntities({ c: { email: 'c@example.com' } }, [{ property: 'c', collection: 'customers', keyProperty: 'email', unique: true }] as never), 'mappings[0].unique'],
      ['getWithEntities', () => orders.getWithEntities(id, [{ property: 'c', collection: 'customers', keyProperty: 'email', x: 1 }] as never), 'mappings[0].x'],
    ];
    for (const [label, run, path] of cases) await refuses(label, run, path);
  });

  it('on messaging and identities collections', async () => {
    const memory = x.with({ databaseType: 'messaging', tier: 'tenant', tenantId: 'acme', collection: 'shared_memory' });
    const users = x.with({ databaseType: 'identities', tier: 'tenant', tenantId: 'acme', collection: 'users' });
    await refuses('find', () => memory.find({}, { limt: 5 } as never), 'options.limt');
    await refuses('findOne', () => memory.findOne({}, { sort: { key: 1 }, limit: 1 } as never), 'options.limit');
    await refuses('identities insert', () => users.insert({ userId: 'u', tenantId: 'acme', email: 'u@example.com' }, { actor: 'a', reasn: 'r' } as never), 'options.reasn');
    await refuses('identities deleteOne', () => users.deleteOne({ userId: 'u' }, { who: 'a' } as never), 'options.who');
    expect(await users.find({})).toEqual([]);
  });

  it('on the facade: routes, tiered reads, counters, job targets', async () => {
    await refuses('with', () => x.with({ databaseType: 'knowledge', tier: 'generic', collection: 'c', domian: 'x' } as never), 'request.domian');
    await refuses('route', () => x.route({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'c', tenant: 'beta' } as never), 'request.tenant');
    await refuses('getKnowledge', () => x.getKnowledge('c', {}, { tenantID: 'acme' } as never), 'options.tenantID');
    await refuses('getMetadata', () => x.getMetadata('c', {}, { merged: true } as never), 'options.merged');
    await refuses('getTotals', () => x.counters.getTotals({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders', dbname: 'x' } as never), 'request.dbname');
    await refuses('getWindows', () => x.counters.getWindows({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' }, { granularity: 'day', form: 'x' } as never), 'options.form');
    await refuses('jobTargets', () => x.jobTargets({ dynamc: false } as never), 'options.dynamc');
  });
});

describe('an argument past the last one a method takes is refused, naming it', () => {
  it('on every record collection method, and nothing is written', async () => {
    const extra = 'dropped' as never;
    const cases: Array<[string, () => unknown, string]> = [
      ['create', () => orders.create({ status: 'x' }, 'a', 'r', {}, extra), 'arguments[4]'],
      ['createMany', () => orders.createMany([{ status: 'x' }], 'a', 'r', extra), 'arguments[3]'],
      ['update', () => orders.update(id, { status: 'x' }, 0, 'a', 'r', extra), 'arguments[5]'],
      ['enrich', () => orders.enrich(id, { status: 'x' }, {}, extra), 'arguments[3]'],
      ['delete', () => orders.delete(id, 0, 'a', 'r', extra), 'arguments[4]'],
      ['smartInsert', () => orders.smartInsert({ email: 'd@example.com' }, { uniqueKeys: ['email'] }, extra), 'arguments[2]'],
      ['insertWithEntities', () => orders.insertWithEntities({ c: { email: 'e@example.com' } }, [{ property: 'c', collection: 'customers', keyProperty: 'email' }], 'a', 'r', extra), 'arguments[4]'],
      ['getWithEntities', () => orders.getWithEntities(id, [{ property: 'c', collection: 'customers', keyProperty: 'email' }], extra), 'arguments[2]'],
      ['getLatest', () => orders.getLatest(id, {}, extra), 'arguments[2]'],
      ['getVersion', () => orders.getVersion(id, 0, {}, extra), 'arguments[3]'],
      ['getAsOf', () => orders.getAsOf(id, createdAt, {}, extra), 'arguments[3]'],
      ['history', () => orders.history(id, {}, extra), 'arguments[2]'],
      ['changesBy', () => orders.changesBy('alice', {}, extra), 'arguments[2]'],
      ['listByMeta', () => orders.listByMeta({}, {}, extra), 'arguments[2]'],
      ['query', () => orders.query({}, {}, extra), 'arguments[2]'],
      ['verify', () => orders.verify(id, extra), 'arguments[1]'],
      ['verifyCollection', () => orders.verifyCollection({}, extra), 'arguments[1]'],
      ['restoreObject', () => orders.restoreObject(id, { ov: 0 }, {}, extra), 'arguments[3]'],
      ['restoreCollection', () => orders.restoreCollection({ cv: 0 }, {}, extra), 'arguments[2]'],
    ];
    for (const [label, run, path] of cases) await refuses(label, run, path);
    expect((await orders.getLatest(id))?.ov).toBe(0);
    expect((await orders.listByMeta({ limit: 100 })).items.map((r) => r.id)).toEqual([id]);
  });

  it('on messaging and identities collections: insert(doc, { actor }) on messaging is an error, not a silently dropped audit', async () => {
    const memory = x.with({ databaseType: 'messaging', tier: 'tenant', tenantId: 'acme', collection: 'shared_memory' });
    const users = x.with({ databaseType: 'identities', tier: 'tenant', tenantId: 'acme', collection: 'users' });
    const doc = { key: 'k', namespace: 'app', tenantId: 'acme', val: 1, _system: { createdAt: new Date(), updatedAt: new Date() } };
    const filter = { key: 'k', namespace: 'app', tenantId: 'acme' };
    await refuses('messaging insert', () => memory.insert(doc, { actor: 'alice' } as never), 'arguments[1]');
    await refuses('messaging upsert', () => memory.upsert(filter, doc, { actor: 'alice' } as never), 'arguments[2]');
    await refuses('messaging find', () => memory.find({}, {}, 'x' as never), 'arguments[2]');
    await refuses('messaging findOne', () => memory.findOne({}, {}, 'x' as never), 'arguments[2]');
    await refuses('messaging deleteOne', () => memory.deleteOne(filter, { actor: 'alice' } as never), 'arguments[1]');
    await refuses('messaging deleteMany', () => memory.deleteMany(filter, { actor: 'alice' } as never), 'arguments[1]');
    await refuses('identities insert', () => users.insert({ userId: 'u', tenantId: 'acme', email: 'u@example.com' }, {}, 'x' as never), 'arguments[2]');
    await refuses('identities upsert', () => users.upsert({ tenantId: 'acme', userId: 'u' }, { userId: 'u', tenantId: 'acme', email: 'u@example.com' }, {}, 'x' as never), 'arguments[3]');
    expect(await memory.find({})).toEqual([]);
    expect(await users.find({})).toEqual([]);
  });

  it('on the facade', async () => {
    const extra = 'dropped' as never;
    // with()'s overloads declare one argument, so TypeScript refuses a second at compile time too.
    const withAny = x.with.bind(x) as (...args: unknown[]) => unknown;
    await refuses('with', () => withAny({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' }, extra), 'arguments[1]');
    await refuses('getKnowledge', () => x.getKnowledge('c', {}, {}, extra), 'arguments[3]');
    await refuses('getTotals', () => x.counters.getTotals({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' }, extra), 'arguments[1]');
    await refuses('flush', () => x.flush(extra), 'arguments[0]');
    await refuses('repair', () => x.repair(extra), 'arguments[0]');
    await refuses('health', () => x.admin.health(extra), 'arguments[0]');
  });

  it('lets trailing undefined arguments pass: they drop nothing', async () => {
    expect((await orders.getLatest(id, undefined, undefined as never))?.id).toBe(id);
    expect((await orders.listByMeta({ filter: { status: 'paid' } }, undefined)).items).toHaveLength(1);
  });
});
