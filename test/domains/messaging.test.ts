import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Xronox } from '../../core/xronox.js';
import { expireDocuments, migrateDocuments } from '../../core/domains/maintenance.js';
import type { MessagingCollection } from '../../core/domains/messaging/messaging.js';
import { DuplicateKeyError, StorageError, TenantAccessError, ValidationError, XronoxError } from '../../core/errors.js';
import { runJob } from '../../core/jobs/run.js';
import { initXronox } from '../../core/xronox.js';
import { seededRandom } from '../support/random.js';
import { tempDir } from '../support/temp.js';
import { runTsx } from '../support/tsx-process.js';
import { domainDeployment, sqliteIndexes, sqliteRows } from './support.js';

/**
 * The messaging database type end to end on the embedded backend (a real SQLite file and a local
 * blob folder): the requirements document's collections, indexes and API, uniqueness, racing
 * upserts, tenant isolation, retention, large payloads, migration and hostile input.
 */

const DAY = 86_400_000;
const T0 = new Date(Date.UTC(2026, 0, 15, 12, 0, 0, 123));
const at = (offsetMs: number) => new Date(T0.getTime() + offsetMs);

/** One document of each collection, shaped exactly as the requirements document shows. */
const examples = (tenantId: string) => ({
  shared_memory: {
    key: 'user-config', namespace: 'app', tenantId, val: { theme: 'dark', list: [1, 'two', null], when: at(5) },
    _system: { createdAt: at(0), updatedAt: at(1), retentionDays: 3650, tombstone: false },
  },
  topics: { topic: 'payments', tenantId, shards: 4, createdAt: at(0), _system: { updatedAt: at(2) } },
  messages: {
    topic: 'payments', msgId: '1712231230-0', tenantId, headers: { 'content-type': 'application/json', 'x-trace': 'é🎉' },
    payload: { amount: 12.5, currency: 'EUR', items: [{ sku: 'a', qty: 1 }] }, firstSeenAt: at(3), size: 61, _system: { createdAt: at(3) },
  },
  dead_letters: {
    topic: 'payments', msgId: '1712231230-0', tenantId, reason: 'handler threw: timeout', headers: {}, payload: null,
    failedAt: at(4), deliveries: 5, _system: { createdAt: at(4) },
  },
  deliveries: { topic: 'payments', msgId: '1712231230-0', tenantId, consumer: 'billing', attempt: 1, deliveredAt: at(3), status: 'nack', _system: { createdAt: at(3) } },
});

/** The indexes the requirements document creates, written out here as it writes them. */
const DOCUMENTED_INDEXES: Record<string, Array<{ name: string; keys: Array<[string, 1 | -1]>; unique: boolean; sparse: boolean }>> = {
  shared_memory: [
    { name: '_system.deletedAt_1', keys: [['_system.deletedAt', 1]], unique: false, sparse: true },
    { name: '_system.updatedAt_-1', keys: [['_system.updatedAt', -1]], unique: false, sparse: false },
    { name: 'key_1_namespace_1_tenantId_1', keys: [['key', 1], ['namespace', 1], ['tenantId', 1]], unique: true, sparse: false },
  ],
  topics: [{ name: 'topic_1_tenantId_1', keys: [['topic', 1], ['tenantId', 1]], unique: true, sparse: false }],
  messages: [
    { name: 'firstSeenAt_-1', keys: [['firstSeenAt', -1]], unique: false, sparse: false },
    { name: 'topic_1_firstSeenAt_-1', keys: [['topic', 1], ['firstSeenAt', -1]], unique: false, sparse: false },
    { name: 'topic_1_msgId_1_tenantId_1', keys: [['topic', 1], ['msgId', 1], ['tenantId', 1]], unique: true, sparse: false },
  ],
  dead_letters: [
    { name: 'failedAt_-1', keys: [['failedAt', -1]], unique: false, sparse: false },
    { name: 'topic_1_failedAt_-1', keys: [['topic', 1], ['failedAt', -1]], unique: false, sparse: false },
  ],
};

const COLLECTIONS = ['shared_memory', 'topics', 'messages', 'dead_letters', 'deliveries'] as const;

describe('messaging', () => {
  const dep = domainDeployment();
  let x: Xronox;
  const handle = (tenantId: string, collection: string) => x.with({ databaseType: 'messaging', tier: 'tenant', tenantId, collection });
  const count = (dbName: string, collection: string) => dep.inspect((db) => sqliteRows(db, dbName, collection).length);

  beforeAll(() => {
    x = dep.open();
  });
  afterAll(async () => {
    await x.shutdown();
    dep.dir.cleanup();
  });

  describe('collections, documents and indexes', () => {
    it('round-trips a document of each collection exactly', async () => {
      for (const collection of COLLECTIONS) {
        const doc = examples('acme')[collection];
        await handle('acme', collection).insert(doc);
        const back = await handle('acme', collection).findOne({ tenantId: 'acme' });
        expect({ collection, back }).toEqual({ collection, back: doc });
        expect(await handle('acme', collection).find({})).toEqual([doc]);
      }
      const memory = await handle('acme', 'shared_memory').findOne({ key: 'user-config', namespace: 'app', tenantId: 'acme' });
      expect((memory!._system as { updatedAt: unknown }).updatedAt).toBeInstanceOf(Date);
    });

    it('creates the documented indexes on first access: the SQLite file holds them, unique and sparse where documented', async () => {
      for (const [collection, documented] of Object.entries(DOCUMENTED_INDEXES)) {
        await handle('beta', collection).findOne({});
        expect(await x.documentStoreFor(x.route({ databaseType: 'messaging', tier: 'tenant', tenantId: 'beta', collection })).listIndexes({ dbName: 'msg_beta', collection })).toEqual(documented);
        // Independently of the adapter: what SQLite itself reports.
        const raw = dep.inspect((db) => sqliteIndexes(db, 'msg_beta', collection));
        expect(raw.map((i) => ({ name: i.name, unique: i.unique, partial: i.partial }))).toEqual(documented.map((d) => ({ name: d.name, unique: d.unique, partial: d.sparse })));
        for (const [i, d] of documented.entries()) {
          for (const [field, dir] of d.keys) {
            const path = `$.${field.split('.').map((s) => `"${s}"`).join('.')}`;
            expect(raw[i]!.sql).toContain(`json_extract(doc, '${path}') ${dir === -1 ? 'DESC' : 'ASC'}`);
          }
        }
      }
      // The planner uses them: a key lookup is an index search, not a scan.
      const plan = dep.inspect((db) =>
        db.prepare(`EXPLAIN QUERY PLAN SELECT doc FROM "docs/msg_beta/shared_memory" WHERE json_extract(doc, '$."key"') = ? AND json_extract(doc, '$."namespace"') = ? AND json_extract(doc, '$."tenantId"') = ?`).all('a', 'b', 'c'),
      ) as Array<{ detail: string }>;
      expect(plan.map((p) => p.detail).join(' ')).toContain('USING INDEX docs/msg_beta/shared_memory/key_1_namespace_1_tenant^id_1');
    });

    it('each unique index refuses a duplicate with DuplicateKeyError naming it, and nothing is written', async () => {
      const cases: Array<[string, string]> = [['shared_memory', 'key_1_namespace_1_tenantId_1'], ['topics', 'topic_1_tenantId_1'], ['messages', 'topic_1_msgId_1_tenantId_1']];
      for (const [collection, index] of cases) {
        const doc = examples('acme')[collection as keyof ReturnType<typeof examples>];
        const before = count('msg_acme', collection);
        const changed = { ...doc, _system: { ...(doc._system as object), createdAt: at(99), updatedAt: at(99) } };
        const err = await handle('acme', collection).insert(changed).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(DuplicateKeyError);
        expect(err).toMatchObject({ code: 'CONFLICT', index, collection });
        expect(count('msg_acme', collection)).toBe(before);
        expect(await handle('acme', collection).find({})).toEqual([doc]);
      }
      // dead_letters has no unique index: the same message may fail twice.
      await handle('acme', 'dead_letters').insert({ ...examples('acme').dead_letters, failedAt: at(50) });
      expect(await handle('acme', 'dead_letters').find({ msgId: '1712231230-0' }, { sort: { failedAt: -1 } })).toHaveLength(2);
    });
  });

  describe('upsert', () => {
    it('works as the requirements document shows', async () => {
      const sharedMemory = handle('acme', 'shared_memory');
      const filter = { key: 'doc-example', namespace: 'app', tenantId: 'acme' };
      const doc = (theme: string) => ({ ...filter, val: { theme }, _system: { createdAt: at(0), updatedAt: at(1) } });
      expect(await sharedMemory.upsert(filter, doc('dark'))).toEqual({ created: true });
      expect(await sharedMemory.upsert(filter, doc('light'))).toEqual({ created: false });
      expect(await sharedMemory.findOne(filter)).toEqual(doc('light'));
      // On a tenant database the tenant may be left out of the filter: the handle pins it.
      expect(await sharedMemory.upsert({ key: 'doc-example', namespace: 'app' }, doc('blue'))).toEqual({ created: false });
      expect(await sharedMemory.find({ key: 'doc-example' })).toEqual([doc('blue')]);
    });

    it('16 concurrent upserts of one key (two instances on one file) leave exactly one document holding one written value', async () => {
      const other = dep.open();
      try {
        for (const round of [1, 2, 3]) {
          const key = `race-${round}`;
          const writes = Array.from({ length: 16 }, (_, i) => ({ key, namespace: 'race', tenantId: 'acme', val: { writer: i, round }, _system: { createdAt: at(i), updatedAt: at(i) } }));
          const handles = [handle('acme', 'shared_memory'), other.with({ databaseType: 'messaging', tier: 'tenant', tenantId: 'acme', collection: 'shared_memory' })];
          const results = await Promise.all(writes.map((w, i) => handles[i % 2]!.upsert({ key, namespace: 'race', tenantId: 'acme' }, w)));
          expect(results.filter((r) => r.created)).toHaveLength(1);
          const docs = await handle('acme', 'shared_memory').find({ key });
          expect(docs).toHaveLength(1);
          expect(writes).toContainEqual(docs[0]);
          expect(dep.inspect((db) => sqliteRows(db, 'msg_acme', 'shared_memory').filter((r) => JSON.parse(r.doc).key === key))).toHaveLength(1);
        }
      } finally {
        await other.shutdown();
      }
    });

    it('16 upserts of one key from 4 OS processes on one SQLite file leave exactly one document', async () => {
      const worker = fileURLToPath(new URL('./fixtures/upsert-worker.ts', import.meta.url));
      await handle('acme', 'shared_memory').findOne({});
      const run = async (id: number) => {
        const { code, stdout, stderr } = await runTsx(worker, [dep.sqlitePath, 'msg_acme', 'proc-race', String(id), '4']);
        if (code !== 0) throw new Error(`worker ${id} exited ${code}: ${stderr}`);
        return JSON.parse(stdout) as { created: number };
      };
      const results = await Promise.all([0, 1, 2, 3].map(run));
      expect(results.reduce((n, r) => n + r.created, 0)).toBe(1);
      const docs = await handle('acme', 'shared_memory').find({ key: 'proc-race' });
      expect(docs).toHaveLength(1);
      expect(docs[0]).toMatchObject({ key: 'proc-race', val: { worker: expect.any(Number), i: expect.any(Number) } });
    });

    it('refuses filters that pin no unique key, documents that disagree with the filter, and collections without a unique key', async () => {
      const memory = handle('acme', 'shared_memory');
      const doc = { key: 'k', namespace: 'n', tenantId: 'acme', val: 1, _system: { createdAt: at(0), updatedAt: at(0) } };
      const before = count('msg_acme', 'shared_memory');
      expect((await memory.upsert({ key: 'k' }, doc).catch((e: unknown) => e)) as ValidationError).toMatchObject({ code: 'VALIDATION_FAILED', path: 'filter' });
      expect((await memory.upsert({ key: { $in: ['k'] }, namespace: 'n' }, doc).catch((e: unknown) => e)) as ValidationError).toMatchObject({ path: 'filter' });
      expect((await memory.upsert({ key: 'other', namespace: 'n' }, doc).catch((e: unknown) => e)) as ValidationError).toMatchObject({ path: 'doc.key' });
      const dl = await handle('acme', 'dead_letters').upsert({ topic: 'payments', msgId: 'x' }, examples('acme').dead_letters).catch((e: unknown) => e);
      expect(dl).toBeInstanceOf(ValidationError);
      expect((dl as Error).message).toContain('no unique key');
      expect(count('msg_acme', 'shared_memory')).toBe(before);
    });
  });

  describe('tenant isolation', () => {
    it("tenant A's data is invisible to tenant B through every call, and B cannot write as A", async () => {
      const secret = { key: 'secret', namespace: 'iso', tenantId: 'acme', val: 'acme only', _system: { createdAt: at(0), updatedAt: at(0) } };
      await handle('acme', 'shared_memory').insert(secret);
      const snapshot = () => dep.inspect((db) => sqliteRows(db, 'msg_acme', 'shared_memory').map((r) => r.doc));
      const before = snapshot();
      const beta = handle('beta', 'shared_memory');
      for (const filter of [{}, { key: 'secret' }, { tenantId: 'acme' }, { key: 'secret', namespace: 'iso', tenantId: 'acme' }, { $or: [{ tenantId: 'acme' }, { tenantId: { $ne: 'beta' } }] }]) {
        expect(await beta.findOne(filter)).toBeNull();
        expect(await beta.find(filter)).toEqual([]);
        expect(await beta.deleteMany(filter)).toBe(0);
        if (Object.keys(filter).length > 0) expect(await beta.deleteOne(filter)).toBe(0);
      }
      // Writing as acme through beta's handle is refused, whatever the filter says.
      expect(await beta.insert(secret).catch((e: unknown) => e)).toBeInstanceOf(TenantAccessError);
      expect(await beta.upsert({ key: 'secret', namespace: 'iso', tenantId: 'acme' }, { ...secret, val: 'stolen' }).catch((e: unknown) => e)).toBeInstanceOf(TenantAccessError);
      expect(await beta.upsert({ key: 'secret', namespace: 'iso' }, { ...secret, tenantId: 'beta', val: 'mine' })).toEqual({ created: true });
      expect(snapshot()).toEqual(before);
      expect(await handle('acme', 'shared_memory').findOne({ key: 'secret' })).toEqual(secret);
      // And the other way round: acme sees only its own.
      expect((await handle('acme', 'shared_memory').find({ key: 'secret' })).map((d) => d.tenantId)).toEqual(['acme']);
      // Separate databases besides: beta's document is not in acme's table at all.
      expect(dep.inspect((db) => sqliteRows(db, 'msg_beta', 'shared_memory').map((r) => JSON.parse(r.doc).val))).toContain('mine');
    });

    it('the generic messaging database takes any tenant id in documents (it has no tenant of its own)', async () => {
      const generic = x.with({ databaseType: 'messaging', tier: 'generic', collection: 'topics' });
      await generic.insert({ ...examples('t1').topics });
      await generic.insert({ ...examples('t2').topics });
      expect((await generic.find({}, { sort: { tenantId: -1 } })).map((d) => d.tenantId)).toEqual(['t2', 't1']);
      expect(await generic.insert({ ...examples('t1').topics }).catch((e: unknown) => e)).toBeInstanceOf(DuplicateKeyError);
    });
  });

  describe('retention', () => {
    it('removes exactly the expired documents: own retentionDays, else the configured sharedMemoryDays', async () => {
      const retained = domainDeployment({ jobs: { retention: { sharedMemoryDays: 10 } } });
      const y = retained.open();
      try {
        const memory = y.with({ databaseType: 'messaging', tier: 'tenant', tenantId: 'acme', collection: 'shared_memory' });
        const now = Date.now();
        const random = seededRandom(42);
        const expected: string[] = [];
        const kept: string[] = [];
        for (let i = 0; i < 60; i++) {
          const ageDays = Math.floor(random() * 40);
          const ownDays = random() < 0.5 ? undefined : 1 + Math.floor(random() * 30);
          const key = `m${i}`;
          const updatedAt = new Date(now - ageDays * DAY - 60_000);
          await memory.insert({ key, namespace: 'ret', tenantId: 'acme', val: i, _system: { createdAt: updatedAt, updatedAt, ...(ownDays ? { retentionDays: ownDays } : {}) } });
          (ageDays * DAY + 60_000 >= (ownDays ?? 10) * DAY ? expected : kept).push(key);
        }
        expect(expected.length).toBeGreaterThan(10);
        expect(kept.length).toBeGreaterThan(10);
        // Expired documents are never returned, even before the sweep.
        expect((await memory.find({ namespace: 'ret' }, { limit: 100 })).map((d) => d.key).sort()).toEqual([...kept].sort());
        const report = await expireDocuments(y, new Date(now));
        const acme = report.find((r) => r.databaseType === 'messaging' && r.tenantId === 'acme')!;
        expect(acme.collections.shared_memory).toBe(expected.length);
        expect(retained.inspect((db) => sqliteRows(db, 'msg_acme', 'shared_memory').map((r) => JSON.parse(r.doc).key).sort())).toEqual([...kept].sort());
        expect((await expireDocuments(y, new Date(now))).find((r) => r.tenantId === 'acme' && r.databaseType === 'messaging')!.collections.shared_memory).toBe(0);
        // A key whose document expired can be written again.
        await memory.insert({ key: expected[0]!, namespace: 'ret', tenantId: 'acme', val: 'again', _system: { createdAt: new Date(now), updatedAt: new Date(now) } });
        expect((await memory.findOne({ key: expected[0]! }))?.val).toBe('again');
      } finally {
        await y.shutdown();
        retained.dir.cleanup();
      }
    });
  });

  describe('a configured TTL on _system.createdAt', () => {
    it('removes exactly the messages created longer ago than jobs.retention.messagingTtlDays.messages; other collections keep theirs', async () => {
      const ttl = domainDeployment({ jobs: { retention: { messagingTtlDays: { messages: 7 } } } });
      const y = ttl.open();
      try {
        const messages = y.with({ databaseType: 'messaging', tier: 'tenant', tenantId: 'acme', collection: 'messages' });
        const topics = y.with({ databaseType: 'messaging', tier: 'tenant', tenantId: 'acme', collection: 'topics' });
        const now = Date.now();
        const expired: string[] = [];
        const kept: string[] = [];
        for (const [i, ageDays] of [0, 3, 6.9, 7.1, 10, 30].entries()) {
          const createdAt = new Date(now - ageDays * DAY);
          const msgId = `ttl-${i}`;
          await messages.insert({ ...examples('acme').messages, msgId, firstSeenAt: createdAt, _system: { createdAt } });
          (ageDays >= 7 ? expired : kept).push(msgId);
        }
        await topics.insert({ ...examples('acme').topics, topic: 'old.topic', createdAt: new Date(now - 30 * DAY), _system: { updatedAt: new Date(now - 30 * DAY) } });
        expect((await messages.find({}, { limit: 100 })).map((d) => d.msgId).sort()).toEqual([...kept].sort());
        const report = (await expireDocuments(y, new Date(now))).find((r) => r.databaseType === 'messaging' && r.tenantId === 'acme')!;
        expect(report.collections.messages).toBe(expired.length);
        expect(ttl.inspect((db) => sqliteRows(db, 'msg_acme', 'messages').map((r) => JSON.parse(r.doc).msgId).sort())).toEqual([...kept].sort());
        expect(await topics.findOne({ topic: 'old.topic' })).not.toBeNull();
      } finally {
        await y.shutdown();
        ttl.dir.cleanup();
      }
    });
  });

  describe('large payloads', () => {
    it('go to the content bucket under content/messages/{topic}/{msgId}/ and come back exactly', async () => {
      const messages = handle('acme', 'messages');
      const big = { blob: 'x'.repeat(100_000), when: at(7), nested: [{ a: 1 }, 'é🎉'] };
      const doc = { ...examples('acme').messages, msgId: '1712231999-7', topic: 'orders.created', payload: big, size: 100_040 };
      await messages.insert(doc);
      expect(await messages.findOne({ msgId: '1712231999-7' })).toEqual(doc);
      // Stored: a reference in the document, the bytes in the bucket (the database's folder on the local filesystem).
      const row = dep.inspect((db) => sqliteRows(db, 'msg_acme', 'messages').map((r) => JSON.parse(r.doc)).find((d) => d.msgId === '1712231999-7'));
      expect(row.payload).toBeNull();
      expect(row._system.payloadRef.key).toMatch(/^content\/messages\/orders\.2Ecreated\/1712231999-7\/[0-9a-f-]{36}\.json$/);
      const bucket = x.route({ databaseType: 'messaging', tier: 'tenant', tenantId: 'acme', collection: 'messages' }).blobs.content!.bucket;
      const file = join(dep.blobsPath, bucket, row._system.payloadRef.key);
      expect(existsSync(file)).toBe(true);
      // A second message with the same key is refused and leaves no object behind.
      const folder = join(dep.blobsPath, bucket, 'content/messages/orders.2Ecreated/1712231999-7');
      expect(await messages.insert({ ...doc, payload: { other: 'y'.repeat(90_000) } }).catch((e: unknown) => e)).toBeInstanceOf(DuplicateKeyError);
      expect(readdirSync(folder)).toHaveLength(1);
      // Small payloads stay in the document.
      expect(dep.inspect((db) => sqliteRows(db, 'msg_acme', 'messages').map((r) => JSON.parse(r.doc)).find((d) => d.msgId === '1712231230-0').payload)).toEqual(examples('acme').messages.payload);
      // A changed object is detected, never served.
      writeFileSync(file, readFileSync(file, 'utf8').replace('x', 'y'));
      const err = await messages.findOne({ msgId: '1712231999-7' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageError);
      expect((err as Error).message).toContain('SHA-256');
    });
  });

  describe('migrate', () => {
    it('creates every collection with its indexes for every configured database, idempotently', async () => {
      const fresh = domainDeployment();
      const y = fresh.open();
      try {
        const first = await migrateDocuments(y, { databaseTypes: ['messaging'] });
        expect(first.map((r) => `${r.tier}:${r.tenantId ?? '-'}:${r.dbName}`)).toEqual(['generic:-:msg_generic', 'tenant:acme:msg_acme', 'tenant:beta:msg_beta']);
        for (const r of first) {
          expect(r.error).toBeUndefined();
          expect(Object.keys(r.collections).sort()).toEqual(r.tenantId === 'acme' ? [...COLLECTIONS].sort() : COLLECTIONS.filter((c) => c !== 'deliveries').sort());
          for (const [collection, documented] of Object.entries(DOCUMENTED_INDEXES)) expect(r.collections[collection]).toEqual(documented.map((d) => d.name));
        }
        expect(await migrateDocuments(y, { databaseTypes: ['messaging'] })).toEqual(first);
        expect(fresh.inspect((db) => sqliteIndexes(db, 'msg_beta', 'messages').map((i) => i.name))).toEqual(DOCUMENTED_INDEXES.messages!.map((d) => d.name));
        expect((await migrateDocuments(y, { tenants: ['beta'] })).map((r) => `${r.databaseType}:${r.dbName}`)).toEqual(['messaging:msg_beta', 'identities:ids_beta']);
      } finally {
        await y.shutdown();
        fresh.dir.cleanup();
      }
    });
  });

  describe('hostile input: a named error, and nothing written', () => {
    it('refuses unknown collections, deliveries without captureDeliveries, bad filters and bad documents', async () => {
      const snapshot = () => dep.inspect((db) => COLLECTIONS.map((c) => [sqliteRows(db, 'msg_beta', c).length, sqliteRows(db, 'msg_acme', c).length]));
      const before = snapshot();
      expect(() => handle('beta', 'orders')).toThrow(ValidationError);
      expect(() => handle('beta', 'deliveries')).toThrow(/captureDeliveries/);
      expect(() => handle('beta', 'shared_memory/../x')).toThrow(ValidationError);
      const memory = handle('beta', 'shared_memory') as MessagingCollection;
      const good = { key: 'k', namespace: 'n', tenantId: 'beta', val: 1, _system: { createdAt: at(0), updatedAt: at(0) } };
      const bad: Array<[string, unknown, string]> = [
        ['no tenantId', { ...good, tenantId: undefined }, 'doc.tenantId'],
        ['a numeric key', { ...good, key: 7 }, 'doc.key'],
        ['no val', { key: 'k', namespace: 'n', tenantId: 'beta', _system: good._system }, 'doc.val'],
        ['a string date', { ...good, _system: { createdAt: '2026-01-01', updatedAt: at(0) } }, 'doc._system.createdAt'],
        ['negative retentionDays', { ...good, _system: { ...good._system, retentionDays: -1 } }, 'doc._system.retentionDays'],
        ['an operator key', { ...good, val: { $set: { admin: true } } }, 'doc.val.$set'],
        ['_id', { ...good, _id: 'x' }, 'doc._id'],
        ['a prototype key', JSON.parse('{"key":"k","namespace":"n","tenantId":"beta","val":1,"__proto__":{"admin":true}}') as object, 'doc.__proto__'],
        ['not an object', 'text', 'doc'],
      ];
      for (const [label, doc, path] of bad) {
        const err = await memory.insert(doc).catch((e: unknown) => e);
        expect({ label, err: err instanceof ValidationError, path: (err as ValidationError).path }).toEqual({ label, err: true, path });
      }
      const topics = handle('beta', 'topics');
      expect(((await topics.insert({ ...examples('beta').topics, shards: 'many' }).catch((e: unknown) => e)) as ValidationError).path).toBe('doc.shards');
      expect(((await handle('beta', 'messages').insert({ ...examples('beta').messages, _system: { createdAt: at(0), payloadRef: { key: '../../etc/passwd' } } }).catch((e: unknown) => e)) as ValidationError).path).toBe('doc._system.payloadRef');
      const filters: unknown[] = [{ $where: 'sleep(100)' }, { key: { $regex: '.*' } }, { val: 1 }, { key: { $gt: { $ne: 1 } } }, 'key', [{ key: 'k' }], { 'key.$ne': 1 }];
      for (const f of filters) {
        for (const call of [() => memory.find(f), () => memory.findOne(f), () => memory.deleteMany(f), () => memory.deleteOne(f), () => memory.upsert(f, good)]) {
          const err = await call().catch((e: unknown) => e);
          expect(err).toBeInstanceOf(ValidationError);
        }
      }
      expect(await memory.deleteOne({}).catch((e: unknown) => e)).toBeInstanceOf(ValidationError);
      expect(await memory.deleteMany(undefined).catch((e: unknown) => e)).toBeInstanceOf(ValidationError);
      expect(await memory.find({}, { limit: 10_001 }).catch((e: unknown) => e)).toBeInstanceOf(ValidationError);
      expect(await memory.find({}, { sort: { val: 1 } }).catch((e: unknown) => e)).toBeInstanceOf(ValidationError);
      expect(snapshot()).toEqual(before);
    });

    it('every refusal is an XronoxError and the instance keeps working; calls after shutdown are ClosedError', async () => {
      const y = dep.open();
      const memory = y.with({ databaseType: 'messaging', tier: 'tenant', tenantId: 'beta', collection: 'shared_memory' });
      expect(await memory.find({ key: 'nothing' })).toEqual([]);
      await y.shutdown();
      const err = await memory.find({}).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(XronoxError);
      expect(err).toMatchObject({ code: 'CLOSED' });
      expect(() => y.with({ databaseType: 'messaging', tier: 'tenant', tenantId: 'beta', collection: 'topics' })).toThrow(/closed/);
    });
  });
});

describe('messaging without object storage (issue 15, item 13)', () => {
  it('runs on the configuration the Chronow requirements write (spaceConnRef "", bucket "", no localStorage): every document in the database', async () => {
    const dir = tempDir('xronox-no-objects');
    const sqlitePath = join(dir.path, 'messaging.sqlite');
    const x = initXronox({
      dbConnections: { 'sqlite-primary': { sqlitePath } },
      spacesConnections: {},
      databases: {
        messaging: {
          tenantDatabases: [
            { tenantId: 'default', dbConnRef: 'sqlite-primary', spaceConnRef: '', bucket: '', dbName: 'chronos_messaging_default' },
            { tenantId: 'tenant-a', dbConnRef: 'sqlite-primary', spaceConnRef: '', bucket: '', dbName: 'chronos_messaging_tenant_a' },
          ],
        },
      },
    });
    try {
      expect(await migrateDocuments(x)).toHaveLength(2);
      const messages = x.with({ databaseType: 'messaging', tier: 'tenant', tenantId: 'tenant-a', collection: 'messages' });
      // Above the 64 KiB that would go to the content bucket: with none, the payload stays in the document.
      const payload = { blob: 'p'.repeat(100 * 1024) };
      const doc = { ...examples('tenant-a').messages, msgId: 'big-1', payload, size: 100 * 1024 };
      await messages.insert(doc);
      expect(await messages.findOne({ msgId: 'big-1' })).toEqual(doc);
      const stored = sqliteRowsOf(sqlitePath, 'chronos_messaging_tenant_a', 'messages');
      expect(stored).toHaveLength(1);
      expect(JSON.parse(stored[0]!).payload).toEqual(payload);
      const memory = x.with({ databaseType: 'messaging', tier: 'tenant', tenantId: 'default', collection: 'shared_memory' });
      await memory.upsert({ key: 'user-config', namespace: 'app', tenantId: 'default' }, examples('default').shared_memory);
      expect((await memory.find({})).map((d) => d.key)).toEqual(['user-config']);
      // A document over the size limit is refused, not moved anywhere.
      await expect(messages.insert({ ...doc, msgId: 'huge', payload: 'h'.repeat(1024 * 1024) })).rejects.toBeInstanceOf(ValidationError);
      const health = await x.admin.health();
      expect(health.ok).toBe(true);
      expect(health.databases.map((d) => d.blobs)).toEqual([null, null]);
      // The backup job has no backups bucket to write to: it skips these databases rather than failing.
      const backup = await runJob(x, 'backup', { log: null });
      expect(backup.failures).toEqual([]);
      // Nothing but the SQLite file (and its WAL) exists: no blob folder anywhere.
      expect(readdirSync(dir.path).filter((f) => !f.startsWith('messaging.sqlite'))).toEqual([]);
    } finally {
      await x.shutdown();
      dir.cleanup();
    }
  });
});

/** The stored document texts of one collection, read from the SQLite file itself. */
function sqliteRowsOf(sqlitePath: string, dbName: string, collection: string): string[] {
  const db = new Database(sqlitePath, { readonly: true });
  try {
    return (db.prepare(`SELECT doc FROM "docs/${dbName}/${collection}" ORDER BY id`).all() as Array<{ doc: string }>).map((r) => r.doc);
  } finally {
    db.close();
  }
}
