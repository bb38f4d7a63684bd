import { Aggregator } from 'mingo';
import { type Document, MongoClient, type MongoClientOptions, MongoNetworkError, MongoServerError } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { clientOptions, DEFAULT_CLIENT_OPTIONS } from '../../core/adapters/mongodb/mongodb-client-pool.js';
import { HISTORY_PROJECTION, historyRowOf, versionDoc } from '../../core/adapters/mongodb/mongodb-documents.js';
import { planWrites, type Step, type Write, writtenCollections } from '../../core/adapters/mongodb/mongodb-effects.js';
import { versionQuery } from '../../core/adapters/mongodb/mongodb-index-driver.js';
import { planReads, type ReadQuery } from '../../core/adapters/mongodb/mongodb-read-set.js';
import { mongoOptions } from '../../core/adapters/mongodb/mongodb-settings.js';
import { buildIndexes, indexNames, MIN_WIRE_VERSION, serverIssues, setupOf } from '../../core/adapters/mongodb/mongodb-setup.js';
import { clientModel, retryOf } from '../../core/adapters/mongodb/mongodb-transaction.js';
import { loadConfig } from '../../core/config/load.js';
import { type Effect, nsKey, type ReadSet, refKey, uploadKey } from '../../core/contracts/index-driver.js';
import type { Namespace, VersionRow } from '../../core/contracts/index-store.js';
import { ConfigError, StorageError } from '../../core/errors.js';
import { emptyRows, type RowsBuilder } from '../../core/store/driver-kit.js';

/**
 * The MongoDB index driver without a server (none can run here; the conformance suite runs it
 * against one when MONGODB_URI is set): the decisions it takes before talking to a server (which
 * servers it refuses, which errors it retries), the queries a transaction's read set becomes and
 * the writes its effects become. The aggregation pipelines the driver sends are evaluated with
 * mingo, an independent implementation of MongoDB's query language (`$$NOW` is its clock), and
 * folded into rows by the driver's own code.
 */

const ns: Namespace = { dbName: 'rt_acme', collection: 'orders' };
const DLQ = 'xronox_dead_letters';

/** Runs the planned queries over `docs` (by collection name) as the driver does: in order, follow-ups last. */
function readWith(queries: readonly ReadQuery[], docs: Record<string, Document[]>): RowsBuilder {
  const rows = emptyRows();
  const todo = [...queries];
  for (let q = todo.shift(); q !== undefined; q = todo.shift()) {
    const out = new Aggregator(q.pipeline as never).run((docs[`${q.coll.db}.${q.coll.name}`] ?? []).map((d) => structuredClone(d))) as Document[];
    todo.push(...(q.fold(out, rows) ?? []));
  }
  return rows;
}

/** Applies a pipeline update (`[{ $set }]`) to one document, as the server does for `updateOne` (an upsert starts from `{ _id }`). */
function applyPipeline(doc: Document, pipeline: Document[]): Document {
  const [out] = new Aggregator(pipeline as never).run([structuredClone(doc)]) as Document[];
  return Object.fromEntries(Object.entries(out!).filter(([, v]) => v !== undefined)); // mingo leaves `$$REMOVE`d keys as undefined
}

/** The operations the steps write to collection `name`, in order. */
function bulkOf(steps: readonly Step[], name: string, db = 'rt_acme'): Document[] {
  return steps.flatMap((s) => ('copy' in s || s.coll.name !== name || s.coll.db !== db ? [] : [s.op as Document]));
}



const hello = (fields: Document): Document => ({ ok: 1, isWritablePrimary: true, maxBsonObjectSize: 16777216, minWireVersion: 0, maxWireVersion: 21, ...fields });

describe('which servers the driver refuses (hello)', () => {
  it('runs on a replica set member and on mongos, 5.0 or newer', () => {
    expect(serverIssues(hello({ setName: 'rs0', hosts: ['db:27017'] }), 'dbConnections.primary.mongoUri')).toEqual([]);
    expect(serverIssues(hello({ msg: 'isdbgrid' }), 'x')).toEqual([]);
    expect(serverIssues(hello({ setName: 'rs0', maxWireVersion: MIN_WIRE_VERSION }), 'x')).toEqual([]);
  });

  it('refuses a standalone server, saying how to run a one-node replica set', () => {
    const issues = serverIssues(hello({}), 'dbConnections.primary.mongoUri');
    expect(issues).toHaveLength(1);
    expect(issues[0]!.path).toBe('dbConnections.primary.mongoUri');
    expect(issues[0]!.message).toContain('standalone');
    expect(issues[0]!.message).toContain('mongod --replSet rs0');
    expect(issues[0]!.message).toContain('rs.initiate()');
    const err = new ConfigError(issues);
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain('dbConnections.primary.mongoUri: is a standalone MongoDB server');
  });

  it('refuses a server older than 5.0 (wire version 13), and one that does not say', () => {
    expect(serverIssues(hello({ setName: 'rs0', maxWireVersion: 9 }), 'x')[0]!.message).toMatch(/older than 5\.0 \(wire version 9\)/);
    expect(serverIssues(hello({ setName: 'rs0', maxWireVersion: undefined }), 'x')).toHaveLength(1);
    expect(serverIssues(hello({ maxWireVersion: 8 }), 'x')).toHaveLength(2);
  });

  it('the config refuses transactions.enabled: false next to a MongoDB connection, at load', () => {
    const databases = (ref: string) => ({ runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: ref, dbName: 'rt_acme' }] } });
    const base = { localStorage: { basePath: '/tmp/xronox-mongo-unit', enabled: true } };
    const mongo = { ...base, dbConnections: { primary: { mongoUri: 'mongodb://127.0.0.1:1/' } }, databases: databases('primary') };
    let err: unknown;
    try {
      loadConfig({ ...mongo, transactions: { enabled: false } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const issue = (err as ConfigError).issues.find((i) => i.path === 'transactions.enabled');
    expect(issue?.message).toContain('"primary"');
    expect(issue?.message).toContain('mongod --replSet rs0');
    // Without MongoDB, or without the setting, nothing to refuse.
    expect(() => loadConfig({ ...base, dbConnections: { main: { sqlitePath: '/tmp/x.sqlite' } }, databases: databases('main'), transactions: { enabled: false } })).not.toThrow();
    expect(() => loadConfig({ ...mongo, transactions: { enabled: true, autoDetect: true } })).not.toThrow();
  });

  it('the registry names the connection in errors about its server and passes the dead-letter collection', () => {
    const config = { collectionMaps: { orders: { indexedProps: ['status'] } }, fallback: { enabled: true, deadLetterCollection: 'dlq' } } as unknown as Parameters<typeof mongoOptions>[1];
    const opts = mongoOptions('mongodb://h', config, 'primary');
    expect(opts.configPath).toBe('dbConnections.primary.mongoUri');
    expect(opts.deadLetterCollection).toBe('dlq');
    expect(opts.indexSettings?.('orders')).toEqual({ indexedProps: ['status'] });
    expect(opts.indexSettings?.('other')).toEqual({ indexedProps: [] });
    // What `xronox migrate` creates in every database (`prepareDatabase`).
    expect(opts.collections).toEqual(['orders']);
  });
});

describe('client options: the URI wins over the defaults (read back through the real driver, which connects nothing)', () => {
  const optionsOf = (uri: string, code?: MongoClientOptions) => new MongoClient(uri, clientOptions(uri, code)).options;

  it('defaults where the URI sets nothing: majority, a small pool, waits bounded well inside a Lambda', () => {
    const o = optionsOf('mongodb://db.example:27017/?replicaSet=rs0');
    expect(o.writeConcern).toMatchObject({ w: 'majority', journal: true });
    expect(o.readConcern).toMatchObject({ level: 'majority' });
    const { retryWrites, appName, maxPoolSize, maxIdleTimeMS, serverSelectionTimeoutMS, connectTimeoutMS, socketTimeoutMS } = o;
    expect({ retryWrites, appName, maxPoolSize, maxIdleTimeMS, serverSelectionTimeoutMS, connectTimeoutMS, socketTimeoutMS }).toEqual({
      retryWrites: true, appName: 'xronox', maxPoolSize: 10, maxIdleTimeMS: 60_000, serverSelectionTimeoutMS: 5_000, connectTimeoutMS: 5_000, socketTimeoutMS: 20_000,
    });
  });

  it('what the URI sets is kept, whatever the case of its names: retryWrites=false (Amazon DocumentDB), appName, w, the pool, a timeout', () => {
    const o = optionsOf('mongodb://u:p%3Fw@db.example/app?RETRYWRITES=false&appName=shop&w=1&maxPoolSize=3&readConcernLevel=local&serverSelectionTimeoutMS=900');
    expect(o.retryWrites).toBe(false);
    expect(o.appName).toBe('shop');
    expect(o.writeConcern?.w).toBe(1);
    expect(o.readConcern).toMatchObject({ level: 'local' });
    expect([o.maxPoolSize, o.serverSelectionTimeoutMS, o.maxIdleTimeMS]).toEqual([3, 900, 60_000]);
    // `?w` inside the (encoded) password is not an option.
    expect(clientOptions('mongodb://u:p%3Fw@h/')).toMatchObject({ writeConcern: DEFAULT_CLIENT_OPTIONS.writeConcern });
  });

  it('options set in code win over both', () => {
    expect(optionsOf('mongodb://h/?maxPoolSize=3', { maxPoolSize: 50, appName: 'job' })).toMatchObject({ maxPoolSize: 50, appName: 'job' });
  });
});

describe('which errors a transaction retries', () => {
  it('the whole transaction on TransientTransactionError, the commit alone on UnknownTransactionCommitResult', () => {
    const conflict = new MongoServerError({ message: 'WriteConflict', code: 112, codeName: 'WriteConflict', errorLabels: ['TransientTransactionError'] });
    const unknown = new MongoServerError({ message: 'not primary', code: 10107, errorLabels: ['UnknownTransactionCommitResult', 'RetryableWriteError'] });
    expect(retryOf(conflict, 'work')).toBe('transaction');
    expect(retryOf(conflict, 'commit')).toBe('transaction');
    expect(retryOf(unknown, 'commit')).toBe('commit');
    // Only a commit can have an unknown outcome.
    expect(retryOf(unknown, 'work')).toBeNull();
    const network = new MongoNetworkError('connection reset');
    network.addErrorLabel('TransientTransactionError');
    expect(retryOf(network, 'work')).toBe('transaction');
  });

  it('never anything else: a duplicate key, a decision that throws, a non-Mongo error', () => {
    expect(retryOf(new MongoServerError({ message: 'E11000 duplicate key', code: 11000 }), 'work')).toBeNull();
    expect(retryOf(new StorageError('mongodb', 'read head', undefined), 'work')).toBeNull();
    expect(retryOf(new Error('boom'), 'commit')).toBeNull();
  });
});

describe('a read set becomes few queries', () => {
  it("a commit of many records: one aggregation per kind and collection, every key in one $in", () => {
    const ids = ['a', 'b', 'c'];
    const reads: ReadSet = {
      heads: ids.map((id) => ({ ...ns, id })),
      collectionVersions: [ns],
      claims: [{ ...ns, key: 'email:x' }, { ...ns, key: 'email:y' }],
      uploads: [{ ...ns, bucket: 'content', key: 'k1' }, { ...ns, bucket: 'content', key: 'k2' }],
    };
    const queries = planReads(reads, { deadLetterCollection: DLQ });
    expect(queries.map((q) => `${q.coll.db}.${q.coll.name}`)).toEqual(['rt_acme.orders_head', 'rt_acme.orders_claims', 'rt_acme.orders_counter', 'rt_acme.xronox_content_uploads']);
    expect(queries[0]!.pipeline[0]).toEqual({ $match: { _id: { $in: ids } } });
    expect(queries[1]!.pipeline[0]).toEqual({ $match: { _id: { $in: ['email:x', 'email:y'] } } });
    expect(queries[3]!.pipeline[0]).toEqual({ $match: { _id: { $in: ['orders|content|k1', 'orders|content|k2'] } } });
  });

  it('keys repeated in the set are asked once; namespaces and databases get their own queries', () => {
    const other = { dbName: 'rt_globex', collection: 'orders' };
    const reads: ReadSet = {
      heads: [{ ...ns, id: 'a' }, { ...ns, id: 'a' }, { ...other, id: 'b' }],
      outbox: [{ ...ns, id: 'a' }, { dbName: ns.dbName, collection: 'invoices', id: 'i' }, { ...other, id: 'b' }],
    };
    const queries = planReads(reads, { deadLetterCollection: DLQ });
    expect(queries.map((q) => [`${q.coll.db}.${q.coll.name}`, q.pipeline[0]])).toEqual([
      ['rt_acme.orders_head', { $match: { _id: { $in: ['a'] } } }],
      ['rt_globex.orders_head', { $match: { _id: { $in: ['b'] } } }],
      // The outbox is per database: one query covers every collection of it.
      ['rt_acme.xronox_sync_outbox', { $match: { _id: { $in: ['orders/a', 'invoices/i'] } } }],
      ['rt_globex.xronox_sync_outbox', { $match: { _id: { $in: ['orders/b'] } } }],
    ]);
  });

  it('folds heads into states, and refuses a head an older version left mid-write, naming collection and record', () => {
    const heads = [
      { _id: 'a', ov: 2, cv: 7, deleted: false, body: '{"x":1}', meta: {} },
      { _id: 'b', ov: 1, cv: 3, deleted: true, body: '', meta: {} },
    ];
    const rows = readWith(planReads({ heads: ['a', 'b', 'c'].map((id) => ({ ...ns, id })) }, { deadLetterCollection: DLQ }), { 'rt_acme.orders_head': heads });
    expect(rows.heads.get(refKey(ns, 'a'))).toEqual({ ov: 2, cv: 7, deleted: false, offloaded: false });
    expect(rows.heads.get(refKey(ns, 'b'))).toEqual({ ov: 1, cv: 3, deleted: true, offloaded: true });
    expect(rows.heads.has(refKey(ns, 'c'))).toBe(false);

    const leftover = [{ ...heads[0], pending: { opId: 'x', since: new Date() } }];
    let err: unknown;
    try {
      readWith(planReads({ heads: [{ ...ns, id: 'a' }] }, { deadLetterCollection: DLQ }), { 'rt_acme.orders_head': leftover });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toContain('Record "a" in collection "orders_head" of database "rt_acme"');
    expect((err as Error).message).toContain('transactions.enabled: false');
  });

  it('counts default to 0; collection versions are seq - 1; windows below the bounds, in key order', () => {
    const ver = [
      { _id: 'a@1', id: 'a', ov: 1, archived: true },
      { _id: 'a@2', id: 'a', ov: 2, archived: false },
      { _id: 'a@3', id: 'a', ov: 3, archived: false },
    ];
    const counter = [
      { _id: 'cv', seq: 10 },
      { _id: 'totals', counts: { n: 1 } },
      { _id: 'window:day:2026-01-01', counts: {} },
      { _id: 'window:day:2026-02-01', counts: {} },
      { _id: 'window:month:2025-12', counts: {} },
    ];
    const reads: ReadSet = {
      unarchived: [{ ...ns, id: 'a' }, { ...ns, id: 'z' }],
      versionCounts: [{ ...ns, id: 'a', belowOv: 3 }],
      collectionVersions: [ns, { ...ns, collection: 'never' }],
      counterWindows: { dbName: ns.dbName, collection: ns.collection, before: { day: 'day:2026-02-01', month: 'month:2026-01' } },
    };
    const rows = readWith(planReads(reads, { deadLetterCollection: DLQ }), { 'rt_acme.orders_ver': ver, 'rt_acme.orders_counter': counter });
    expect(rows.unarchived.get(refKey(ns, 'a'))).toBe(2);
    expect(rows.unarchived.get(refKey(ns, 'z'))).toBe(0);
    expect(rows.versionCounts.get(refKey(ns, 'a'))).toBe(2);
    expect(rows.collectionVersions.get(nsKey(ns))).toBe(9);
    expect(rows.collectionVersions.has(nsKey({ ...ns, collection: 'never' }))).toBe(false);
    expect(rows.counterWindows).toEqual(['day:2026-01-01', 'month:2025-12']);
  });

  it('dead letters oldest first, each with its head cv read by a follow-up query per collection', () => {
    const letters = [
      { _id: 'orders/b', coll: 'orders', id: 'b', reason: 'r', failedAt: '2026-01-02T00:00:00.000Z' },
      { _id: 'orders/a', coll: 'orders', id: 'a', reason: 'r', failedAt: '2026-01-01T00:00:00.000Z' },
      { _id: 'invoices/i', coll: 'invoices', id: 'i', reason: 'r', failedAt: '2026-01-03T00:00:00.000Z' },
    ];
    const rows = readWith(planReads({ allDeadLetters: ns.dbName }, { deadLetterCollection: DLQ }), {
      'rt_acme.xronox_dead_letters': letters,
      'rt_acme.orders_head': [{ _id: 'a', cv: 4 }],
    });
    expect(rows.allDeadLetters.map((l) => [l.collection, l.id, l.headCv])).toEqual([
      ['orders', 'a', 4],
      ['orders', 'b', null],
      ['invoices', 'i', null],
    ]);
  });

  it('leases expire and uploads age by the store clock ($$NOW); stale uploads come oldest first', () => {
    const now = Date.now();
    const locks = [
      { _id: 'run', owner: 'p1', expiresAt: new Date(now + 60_000) },
      { _id: 'old', owner: 'p2', expiresAt: new Date(now - 1) },
    ];
    const uploads = [
      { _id: 'orders|content|k1', coll: 'orders', id: 'r1', bucket: 'content', key: 'k1', intents: [{ token: 't1', at: new Date(now - 5_000), id: 'r1' }, { token: 't0', at: new Date(now - 90_000) }] },
      { _id: 'orders|content|k2', coll: 'orders', id: 'r2', bucket: 'content', key: 'k2', intents: [], cleaning: { token: 'm', at: new Date(0) } },
    ];
    const reads: ReadSet = {
      locks: [{ ...ns, key: 'run' }, { ...ns, key: 'old' }],
      uploads: [{ ...ns, bucket: 'content', key: 'k1' }, { ...ns, bucket: 'content', key: 'k2' }, { ...ns, bucket: 'content', key: 'k3' }],
    };
    const rows = readWith(planReads(reads, { deadLetterCollection: DLQ }), { 'rt_acme.orders_locks': locks, 'rt_acme.xronox_content_uploads': uploads });
    expect(rows.locks.get(refKey(ns, 'run'))).toEqual({ owner: 'p1', expired: false });
    expect(rows.locks.get(refKey(ns, 'old'))).toEqual({ owner: 'p2', expired: true });
    const k1 = rows.uploads.get(uploadKey(ns, 'content', 'k1'))!;
    // An intent of an older version has no id of its own: the document's stands in.
    expect(k1.map((r) => [r.token, r.id, r.cleaning])).toEqual([
      ['t1', 'r1', false],
      ['t0', 'r1', false],
    ]);
    expect(k1[0]!.ageMs).toBeGreaterThanOrEqual(5_000);
    expect(k1[0]!.ageMs).toBeLessThan(60_000);
    expect(rows.uploads.get(uploadKey(ns, 'content', 'k2'))!.map((r) => [r.token, r.cleaning])).toEqual([['m', true]]);
    expect(rows.uploads.has(uploadKey(ns, 'content', 'k3'))).toBe(false);

    const stale = readWith(planReads({ staleUploads: { dbName: ns.dbName, olderThanMs: 60_000, limit: 10 } }, { deadLetterCollection: DLQ }), {
      'rt_acme.xronox_content_uploads': uploads,
    }).staleUploads;
    expect(stale.map((r) => [r.key, r.token, r.cleaning, r.collection])).toEqual([
      ['k2', 'm', true, 'orders'],
      ['k1', 't0', false, 'orders'],
    ]);
    expect(planReads({ staleUploads: { dbName: ns.dbName, olderThanMs: 0, limit: 0 } }, { deadLetterCollection: DLQ })).toEqual([]);
  });

  it('namespaces: the listed counter collections with a cv, in byte order', () => {
    const reads: ReadSet = { namespaces: ['rt_acme'] };
    const queries = planReads(reads, { deadLetterCollection: DLQ, counterCollections: new Map([['rt_acme', ['orders', 'Items', 'totalsOnly']]]) });
    const rows = readWith(queries, {
      'rt_acme.orders_counter': [{ _id: 'cv', seq: 3 }],
      'rt_acme.Items_counter': [{ _id: 'cv', seq: 1 }],
      'rt_acme.totalsOnly_counter': [{ _id: 'totals', counts: { n: 1 } }],
    });
    expect(rows.namespaces).toEqual([
      { dbName: 'rt_acme', collection: 'Items', cv: 0 },
      { dbName: 'rt_acme', collection: 'orders', cv: 2 },
    ]);
  });
});

describe('effects become single-collection writes, in order', () => {
  const version = (id: string, ov: number): VersionRow => ({
    id, ov, cv: ov, op: 'create', at: '2026-01-01T00:00:00.000Z', actor: 'ada', reason: null, deleted: false, size: 2, body: '{}', archived: false, meta: { tier: 'gold' }, hash: 'h',
  });
  const head = { ov: 1, cv: 0, deleted: false, createdAt: 't', updatedAt: 't', deletedAt: null, meta: { 'customer.id': 'c1' }, body: '{}', hash: 'h' };
  const names = (steps: readonly Step[]) => steps.map((s) => ('copy' in s ? `copy ${s.copy.from.dbName}→${s.copy.to.dbName}` : `${s.coll.db}.${s.coll.name}`));

  it('a commit of two records: the writes in the order the effects gave, each value behind $eq', () => {
    const effects: Effect[] = [];
    for (const id of ['a', 'b']) {
      effects.push({ kind: 'putHead', ns, id, head }, { kind: 'putVersion', ns, version: version(id, 1) }, { kind: 'putOutbox', ns, id, seq: 0 });
    }
    effects.push({ kind: 'setCollectionVersion', ns, cv: 1 }, ...[null, 'day:2026-01-01'].map((window): Effect => ({ kind: 'counters', dbName: 'an_acme', collection: 'orders', window, counts: { n: 2 }, add: true })));
    const steps = planWrites(effects, DLQ);
    const once = ['rt_acme.orders_head', 'rt_acme.orders_ver', 'rt_acme.xronox_sync_outbox'];
    expect(names(steps)).toEqual([...once, ...once, 'rt_acme.orders_counter', 'an_acme.orders_counter', 'an_acme.orders_counter']);
    const [putA] = bulkOf(steps, 'orders_head');
    // Layout of today: meta keys with ':' for '.', the id in `_id`.
    expect(putA).toEqual({ replaceOne: { filter: { _id: { $eq: 'a' } }, replacement: { ov: 1, cv: 0, deleted: false, createdAt: 't', updatedAt: 't', deletedAt: null, meta: { 'customer:id': 'c1' }, body: '{}', hash: 'h' }, upsert: true } });
    // A version entry is an insert: one already at that ov fails the transaction.
    expect(bulkOf(steps, 'orders_ver')[0]).toMatchObject({ insertOne: { document: { _id: 'a@1', id: 'a', ov: 1, actorId: 'ada', actorType: null } } });
    expect(bulkOf(steps, 'orders_counter')[0]).toEqual({ updateOne: { filter: { _id: { $eq: 'cv' } }, update: { $max: { seq: 2 } }, upsert: true } });
    expect(new Set(writtenCollections(steps).map((c) => `${c.db}.${c.name}`))).toEqual(new Set([...once, 'rt_acme.orders_counter', 'an_acme.orders_counter']));
    // On MongoDB 8.0 the same writes go out as models of one `bulkWrite` command.
    expect(clientModel(steps[0] as Write)).toEqual({ name: 'replaceOne', namespace: 'rt_acme.orders_head', ...(putA!.replaceOne as Document) });
    expect(clientModel(steps.at(-1) as Write)).toEqual({ name: 'updateOne', namespace: 'an_acme.orders_counter', filter: { _id: { $eq: 'window:day:2026-01-01' } }, update: { $inc: { 'counts.n': 2 } }, upsert: true });
  });

  it('keeps the order within a collection (a hard delete then a re-create), and copies at their place', () => {
    const staged = { dbName: 'stage', collection: 'orders' };
    const steps = planWrites(
      [
        { kind: 'deleteRecord', ns, id: 'a', tables: ['heads', 'versions'] },
        { kind: 'putVersion', ns, version: version('a', 1) },
        { kind: 'clearNamespace', ns },
        { kind: 'copyNamespace', from: staged, to: ns },
        { kind: 'counters', dbName: 'an_acme', collection: 'orders', window: null, counts: { n: 3 }, add: false },
      ],
      DLQ,
    );
    expect(names(steps)).toEqual([
      'rt_acme.orders_head',
      'rt_acme.orders_ver',
      'rt_acme.orders_ver',
      'rt_acme.orders_head',
      'rt_acme.orders_ver',
      'rt_acme.orders_claims',
      'rt_acme.orders_counter',
      'rt_acme.orders_counter',
      'rt_acme.xronox_sync_outbox',
      'rt_acme.xronox_dead_letters',
      'copy stage→rt_acme',
      'an_acme.orders_counter',
    ]);
    expect(bulkOf(steps, 'orders_ver')).toEqual([{ deleteMany: { filter: { id: { $eq: 'a' } } } }, expect.objectContaining({ insertOne: expect.anything() }), { deleteMany: { filter: {} } }]);
    // Clearing writes the cv document even when it is absent, so a first commit racing it conflicts.
    expect(bulkOf(steps, 'orders_counter')).toEqual([
      { updateOne: { filter: { _id: { $eq: 'cv' } }, update: { $setOnInsert: { seq: 0 } }, upsert: true } },
      { deleteOne: { filter: { _id: { $eq: 'cv' } } } },
    ]);
    expect(writtenCollections(steps).map((c) => `${c.db}.${c.name}`)).toContain('rt_acme.xronox_sync_outbox');
  });

  it('values in update pipelines are literals: an owner or a token that looks like an operator stays a string', () => {
    const steps = planWrites(
      [
        { kind: 'putLock', ns, key: 'job', owner: '$where', leaseMs: 30_000 },
        { kind: 'putUpload', ns, bucket: 'b', key: 'k', row: { id: 'r', token: '$$ROOT', cleaning: false }, stamp: 'now' },
      ],
      DLQ,
    );
    const [lock] = bulkOf(steps, 'orders_locks');
    expect(lock).toEqual({ updateOne: { filter: { _id: { $eq: 'job' } }, update: [{ $set: { owner: { $literal: '$where' }, expiresAt: { $add: ['$$NOW', { $literal: 30_000 }] } } }], upsert: true } });
    const [upload] = bulkOf(steps, 'xronox_content_uploads') as Array<{ updateOne: { update: Document[] } }>;
    const doc = applyPipeline({ _id: 'orders|b|k' }, upload!.updateOne.update);
    expect(doc.intents).toEqual([{ token: '$$ROOT', id: 'r', at: expect.any(Date) }]);
  });

  it('upload intents and the cleanup mark of a key share one document; writing a token replaces what it held', () => {
    const put = (row: { id: string; token: string; cleaning: boolean }, stamp: 'now' | 'past' = 'now') =>
      (bulkOf(planWrites([{ kind: 'putUpload', ns, bucket: 'b', key: 'k', row, stamp }], DLQ), 'xronox_content_uploads')[0] as { updateOne: { update: Document[] } }).updateOne.update;
    const del = (token: string) => bulkOf(planWrites([{ kind: 'deleteUpload', ns, bucket: 'b', key: 'k', token }], DLQ), 'xronox_content_uploads') as Array<Document>;

    let doc: Document = { _id: 'orders|b|k' };
    doc = applyPipeline(doc, put({ id: 'r1', token: 't1', cleaning: false }));
    doc = applyPipeline(doc, put({ id: 'r2', token: 't2', cleaning: false }));
    expect(doc).toMatchObject({ coll: 'orders', bucket: 'b', key: 'k', id: 'r2' });
    expect(doc.intents.map((i: { token: string }) => i.token)).toEqual(['t1', 't2']);
    expect(doc.cleaning).toBeUndefined();

    // Renewing t1 stamps it again (one intent per token).
    const renewed = applyPipeline(doc, put({ id: 'r1', token: 't1', cleaning: false }));
    expect(renewed.intents.map((i: { token: string }) => i.token)).toEqual(['t2', 't1']);

    // A cleanup's mark; then its retry turns the mark into an intent stamped at the epoch.
    let marked = applyPipeline({ _id: 'orders|b|k', intents: [] }, put({ id: 'r1', token: 'm', cleaning: true }));
    expect(marked.cleaning).toEqual({ token: 'm', at: expect.any(Date) });
    marked = applyPipeline(marked, put({ id: 'r1', token: 'm', cleaning: false }, 'past'));
    expect(marked.cleaning).toBeUndefined();
    expect(marked.intents).toEqual([{ token: 'm', id: 'r1', at: new Date(0) }]);

    // deleteUpload: the token's intent or mark goes; a document left with neither is removed.
    const [pull, dropEmpty] = del('m') as [{ updateOne: { update: Document[] } }, { deleteOne: { filter: Document } }];
    expect(applyPipeline(marked, pull.updateOne.update).intents).toEqual([]);
    expect(dropEmpty.deleteOne.filter).toEqual({ _id: { $eq: 'orders|b|k' }, intents: { $size: 0 }, cleaning: { $exists: false } });
    const unmarked = applyPipeline({ _id: 'orders|b|k', intents: [], cleaning: { token: 'm', at: new Date() } }, pull.updateOne.update);
    expect(unmarked.cleaning).toBeUndefined();
  });

  it('a re-marked outbox entry keeps its place in the queue (order and queuedAt are kept)', () => {
    const [mark] = bulkOf(planWrites([{ kind: 'putOutbox', ns, id: 'a', seq: 5 }], DLQ), 'xronox_sync_outbox') as Array<{ updateOne: { filter: Document; update: Document[] } }>;
    expect(mark!.updateOne.filter).toEqual({ _id: { $eq: 'orders/a' } });
    const fresh = applyPipeline({ _id: 'orders/a' }, mark!.updateOne.update);
    expect(fresh).toMatchObject({ coll: 'orders', id: 'a', seq: 5 });
    const earlier = { _id: 'orders/a', coll: 'orders', id: 'a', seq: 1, queuedAt: new Date(0), order: fresh.order };
    const again = applyPipeline(earlier, (bulkOf(planWrites([{ kind: 'putOutbox', ns, id: 'a', seq: 9 }], DLQ), 'xronox_sync_outbox')[0] as { updateOne: { update: Document[] } }).updateOne.update);
    expect(again).toEqual({ ...earlier, seq: 9 });
  });

  it('the dead-letter collection is the configured one; empty counter and archive effects write nothing', () => {
    const steps = planWrites(
      [
        { kind: 'putDeadLetter', ns, id: 'a', reason: 'x', failedAt: 't' },
        { kind: 'counters', dbName: 'an', collection: 'orders', window: null, counts: {}, add: true },
        { kind: 'dropBodies', ns, id: 'a', ovs: [] },
        { kind: 'deletePendingBlobs', ns, keys: [] },
      ],
      'my_dlq',
    );
    expect(steps.map((s) => ('copy' in s ? 'copy' : s.coll.name))).toEqual(['my_dlq']);
  });

  it("deleteRecord finds a record's rows in each table where the layout keeps them; versions only below belowOv when given", () => {
    const all = planWrites([{ kind: 'deleteRecord', ns, id: 'a', tables: ['heads', 'versions', 'claims', 'outbox', 'pendingBlobs', 'deadLetters'] }], 'my_dlq');
    expect(all.map((s) => ('copy' in s ? 'copy' : [s.coll.db, s.coll.name, s.op]))).toEqual([
      ['rt_acme', 'orders_head', { deleteOne: { filter: { _id: { $eq: 'a' } } } }],
      ['rt_acme', 'orders_ver', { deleteMany: { filter: { id: { $eq: 'a' } } } }],
      ['rt_acme', 'orders_claims', { deleteMany: { filter: { id: { $eq: 'a' } } } }],
      ['rt_acme', 'xronox_sync_outbox', { deleteOne: { filter: { _id: { $eq: 'orders/a' } } } }],
      ['rt_acme', 'xronox_pending_blobs', { deleteMany: { filter: { coll: { $eq: 'orders' }, id: { $eq: 'a' } } } }],
      ['rt_acme', 'my_dlq', { deleteOne: { filter: { _id: { $eq: 'orders/a' } } } }],
    ]);
    const pruned = planWrites([{ kind: 'deleteRecord', ns, id: 'a', tables: ['versions'], belowOv: 4 }], DLQ);
    expect(bulkOf(pruned, 'orders_ver')).toEqual([{ deleteMany: { filter: { id: { $eq: 'a' }, ov: { $lt: 4 } } } }]);
  });

  it('dropBodies empties a head body or archives entries; counters add or set totals and windows; deleteCounters one window or all', () => {
    const an = { dbName: 'an_acme', collection: 'orders' };
    const steps = planWrites(
      [
        { kind: 'dropBodies', ns, id: 'a', ovs: null },
        { kind: 'dropBodies', ns, id: 'a', ovs: [1, 2] },
        { kind: 'counters', ...an, window: null, counts: { n: 2 }, add: true },
        { kind: 'counters', ...an, window: 'day:2026-01-01', counts: { n: 5 }, add: false },
        { kind: 'counters', ...an, window: 'day:2026-01-02', counts: {}, add: false },
        { kind: 'deleteCounters', ...an, window: 'day:2026-01-01' },
        { kind: 'deleteCounters', ...an, window: null },
      ],
      DLQ,
    );
    expect(bulkOf(steps, 'orders_head')).toEqual([{ updateOne: { filter: { _id: { $eq: 'a' } }, update: { $set: { body: '' } } } }]);
    expect(bulkOf(steps, 'orders_ver')).toEqual([{ updateMany: { filter: { id: { $eq: 'a' }, ov: { $in: [1, 2] } }, update: { $set: { archived: true, body: null } } } }]);
    expect(bulkOf(steps, 'orders_counter', 'an_acme')).toEqual([
      { updateOne: { filter: { _id: { $eq: 'totals' } }, update: { $inc: { 'counts.n': 2 } }, upsert: true } },
      { updateOne: { filter: { _id: { $eq: 'window:day:2026-01-01' } }, update: { $set: { 'counts.n': 5 } }, upsert: true } },
      // A window set to no counts still exists afterwards, with none.
      { updateOne: { filter: { _id: { $eq: 'window:day:2026-01-02' } }, update: { $setOnInsert: { counts: {} } }, upsert: true } },
      { deleteOne: { filter: { _id: { $eq: 'window:day:2026-01-01' } } } },
      { deleteMany: { filter: { $or: [{ _id: { $eq: 'totals' } }, { _id: { $gte: 'window:', $lt: 'window;' } }] } } },
    ]);
  });
});

describe('setting up a collection before its first write', () => {
  const settings = { deadLetterCollection: 'my_dlq', indexSettings: (c: string) => ({ indexedProps: c === 'orders' ? ['customer.id'] : [] }) };
  const names = (ref: { db: string; name: string }) => setupOf(ref, settings).specs.map((s) => s.name);

  it("a record collection gets its role's indexes, and its namespace is checked for leftovers", () => {
    expect(setupOf({ db: 'rt_acme', name: 'orders_head' }, settings)).toMatchObject({ ns: { dbName: 'rt_acme', collection: 'orders' } });
    expect(names({ db: 'rt_acme', name: 'orders_head' })).toEqual(['by_updated', 'by_created', 'pending_writes', 'meta_customer.id']);
    expect(setupOf({ db: 'rt_acme', name: 'orders_head' }, settings).specs.at(-1)!.key).toEqual({ 'meta.customer:id': 1, _id: 1 });
    expect(names({ db: 'rt_acme', name: 'notes_head' })).toContain('meta_all');
    expect(names({ db: 'rt_acme', name: 'orders_ver' })).toEqual(['by_record', 'by_time', 'by_cv', 'by_actor', 'unarchived']);
    // No index: only created, so that no transaction has to create it.
    expect(setupOf({ db: 'an_acme', name: 'orders_counter' }, settings)).toEqual({ specs: [], ns: { dbName: 'an_acme', collection: 'orders' } });
  });

  it('an index build that races another (IndexBuildAborted 276, IndexBuildAlreadyInProgress 285) is tried again, at most 5 times', async () => {
    const raced = (code: number) => new MongoServerError({ message: 'index build raced', code });
    const calls: number[] = [];
    const failing = (errors: Error[]) => ({
      createIndexes: async () => {
        calls.push(errors.length);
        const err = errors.shift();
        if (err) throw err;
        return ['by_order'];
      },
    });
    await expect(buildIndexes(failing([raced(285), raced(276)]), [{ key: { order: 1 } }], 1)).resolves.toBeUndefined();
    expect(calls).toEqual([2, 1, 0]);
    calls.length = 0;
    await expect(buildIndexes(failing(Array.from({ length: 9 }, () => raced(276))), [{ key: { order: 1 } }], 1)).rejects.toMatchObject({ code: 276 });
    expect(calls).toHaveLength(5);
    calls.length = 0;
    // Anything else (an index of that name defined otherwise, no right to create) at once.
    await expect(buildIndexes(failing([raced(85), raced(285)]), [{ key: { order: 1 } }], 1)).rejects.toMatchObject({ code: 85 });
    expect(calls).toHaveLength(1);
  });

  it('a collection that does not exist has no index names (NamespaceNotFound), one that does lists them', async () => {
    const listing = (result: () => Document[]) => ({ listIndexes: () => ({ toArray: async () => result() }) }) as never;
    expect(await indexNames(listing(() => [{ name: '_id_' }, { name: 'by_order' }]))).toEqual(new Set(['_id_', 'by_order']));
    expect(await indexNames(listing(() => { throw new MongoServerError({ message: 'ns does not exist', code: 26 }); }))).toBeNull();
    await expect(indexNames(listing(() => { throw new MongoServerError({ message: 'not authorized', code: 13 }); }))).rejects.toMatchObject({ code: 13 });
  });

  it("a database's queues by name, the dead letters under their configured name", () => {
    expect(names({ db: 'rt_acme', name: 'xronox_sync_outbox' })).toEqual(['by_order', 'by_collection']);
    expect(names({ db: 'rt_acme', name: 'my_dlq' })).toEqual(['by_age']);
    expect(setupOf({ db: 'rt_acme', name: 'xronox_content_uploads' }, settings)).toEqual({ specs: [] });
  });
});

describe('a history page', () => {
  it("is one range of the `by_record` index with a limit, and only the history fields leave the server", () => {
    const { filter, sort, limit } = versionQuery('a', { beforeOv: 4, limit: 2 });
    expect({ sort, limit }).toEqual({ sort: { ov: -1 }, limit: 2 });
    const entry = (ov: number) => versionDoc({ id: 'a', ov, cv: ov, op: 'update', at: '2026-01-01', actor: { type: 'user', identifier: 'ada' }, reason: null, deleted: false, size: 3, body: '{"big":1}', archived: false, meta: { n: ov }, hash: 'h' });
    const docs = [0, 1, 2, 3, 4, 5].map(entry);
    const page = new Aggregator([{ $match: filter }, { $sort: sort }, { $limit: limit }, { $project: HISTORY_PROJECTION }] as never).run(docs) as Document[];
    expect(page.map((d) => Object.keys(d).sort())).toEqual(Array(2).fill(['actor', 'archived', 'at', 'cv', 'deleted', 'id', 'op', 'ov', 'reason', 'size']));
    expect(page.map((d) => historyRowOf(d as never))).toEqual([3, 2].map((ov) => ({ id: 'a', ov, cv: ov, op: 'update', at: '2026-01-01', actor: { type: 'user', identifier: 'ada' }, reason: null, deleted: false, size: 3, archived: false })));
  });
});

describe('version ranges', () => {
  it('ov bounds, unarchived only, order; a point in time or cv is one row on its index', () => {
    const id = { $eq: 'a' };
    expect(versionQuery('a', { beforeOv: 5, afterOv: 1, unarchived: true, order: 'asc', limit: 10 })).toEqual({ filter: { id, ov: { $lt: 5, $gt: 1 }, archived: false }, sort: { ov: 1 }, limit: 10 });
    expect(versionQuery('a', { limit: 3 })).toEqual({ filter: { id }, sort: { ov: -1 }, limit: 3 });
    expect(versionQuery('a', { at: { at: '2026-01-01' } })).toEqual({ filter: { id, at: { $lte: '2026-01-01' } }, sort: { at: -1, ov: -1 }, limit: 1 });
    expect(versionQuery('a', { at: { cv: 7 } })).toEqual({ filter: { id, cv: { $lte: 7 } }, sort: { cv: -1 }, limit: 1 });
  });
});
