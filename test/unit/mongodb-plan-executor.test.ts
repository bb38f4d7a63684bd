import { MongoServerError } from 'mongodb';
import { afterEach, describe, expect, it } from 'vitest';
import type { CollRef } from '../../core/adapters/mongodb/mongodb-layout.js';
import { IMPORT_LIMIT, MongoPlanExecutor, type SetupPort } from '../../core/adapters/mongodb/mongodb-transaction.js';
import type { IndexDriver, Transaction } from '../../core/contracts/index-driver.js';
import type { ImportedRecord, Namespace, RecordWrite, VersionRow } from '../../core/contracts/index-store.js';
import { IndexRuntime } from '../../core/store/index-runtime.js';
import * as plans from '../../core/store/plans.js';
import { type RecordedCall, RecordingMongoPort } from '../support/mongodb-recording-port.js';

/**
 * The MongoDB plan executor without a server (none can run here; the conformance suites run the
 * whole driver against one wherever MONGODB_URI or Docker exists): how many round trips a plan
 * costs (each recorded call is one), that every operation of a transaction carries its session,
 * and how the whole transaction, or its commit alone, is run again. The plans are the core's own
 * (`core/store/plans.ts`); the sessions are the real driver's.
 */

const ns: Namespace = { dbName: 'rt_acme', collection: 'orders' };
const T = '2026-01-01T00:00:00.000Z';
const ports: RecordingMongoPort[] = [];
afterEach(async () => {
  for (const p of ports.splice(0)) await p.close();
});

/** Every collection is set up already (setting up runs outside transactions, once per process). */
const ready: SetupPort = { missing: () => [], ensure: async () => undefined, verify: async () => undefined };

function executor(data: ConstructorParameters<typeof RecordingMongoPort>[0], options: { crossCollection?: boolean; setup?: SetupPort } = {}) {
  const port = new RecordingMongoPort(data, options);
  ports.push(port);
  const plans = new MongoPlanExecutor(port, options.setup ?? ready, 'xronox_dead_letters');
  return { port, run: <R>(tx: Transaction<R>) => plans.transact(tx) };
}

function write(id: string, expectedOv: number | null): RecordWrite {
  const ov = (expectedOv ?? -1) + 1;
  return {
    id,
    expectedOv,
    head: { ov, deleted: false, createdAt: T, updatedAt: T, deletedAt: null, meta: { status: 'open' }, body: '{"n":1}', hash: 'h' },
    version: { op: ov === 0 ? 'create' : 'update', at: T, actor: 'ada', reason: null, deleted: false, body: '{"n":1}', hash: 'h' },
  };
}

/** An existing record `a` at ov 0, its namespace at cv 4. */
const existing = () => ({
  'rt_acme.orders_head': [{ _id: 'a', ov: 0, cv: 4, deleted: false, createdAt: T, updatedAt: T, deletedAt: null, meta: {}, body: '{}', hash: 'h' }],
  'rt_acme.orders_counter': [{ _id: 'cv', seq: 5 }],
});

const shape = (calls: readonly RecordedCall[]) => calls.map((c) => `${c.kind} ${c.target}`);
/** Ops as JSON, with the ObjectIds that order new outbox entries (fresh for each plan) masked. */
const writesOf = (calls: readonly RecordedCall[]) => JSON.stringify(calls.filter((c) => c.kind !== 'aggregate' && c.kind !== 'commit').map((c) => c.ops)).replace(/"[0-9a-f]{24}"/g, '"oid"');

const transient = () => new MongoServerError({ message: 'WriteConflict', code: 112, codeName: 'WriteConflict', errorLabels: ['TransientTransactionError'] });

describe('round trips of a commit (each driver call is one)', () => {
  it('a single versioned write: 4 on MongoDB 8.0 (heads, cv, one bulkWrite, commit)', async () => {
    const { port, run } = executor(existing(), { crossCollection: true });
    expect(await run(plans.commit(ns, { writes: [write('a', 0)] }))).toEqual({ ok: true, cvs: [5] });
    expect(shape(port.calls)).toEqual(['aggregate rt_acme.orders_head', 'aggregate rt_acme.orders_counter', 'clientBulkWrite *', 'commit admin']);
    // One call writes the head, the version entry, the outbox mark and the cv, in the plan's order.
    const models = port.calls[2]!.ops as Array<{ name: string; namespace: string }>;
    expect(models.map((m) => `${m.name} ${m.namespace}`)).toEqual([
      'replaceOne rt_acme.orders_head',
      'insertOne rt_acme.orders_ver',
      'updateOne rt_acme.xronox_sync_outbox',
      'updateOne rt_acme.orders_counter',
    ]);
  });

  it('before 8.0 the writes go one bulkWrite per collection: 7', async () => {
    const { port, run } = executor(existing());
    await run(plans.commit(ns, { writes: [write('a', 0)] }));
    expect(shape(port.calls)).toEqual([
      'aggregate rt_acme.orders_head',
      'aggregate rt_acme.orders_counter',
      'bulkWrite rt_acme.orders_head',
      'bulkWrite rt_acme.orders_ver',
      'bulkWrite rt_acme.xronox_sync_outbox',
      'bulkWrite rt_acme.orders_counter',
      'commit admin',
    ]);
  });

  it('a batch of 1,000 creates costs what one write costs: 4 on 8.0, 7 before', async () => {
    const writes = Array.from({ length: 1000 }, (_, i) => write(`r${String(i).padStart(4, '0')}`, null));
    for (const crossCollection of [true, false]) {
      const { port, run } = executor({}, { crossCollection });
      const result = await run(plans.commit(ns, { writes }));
      expect(result.ok && result.cvs.length).toBe(1000);
      expect(port.calls).toHaveLength(crossCollection ? 4 : 7);
      // Every head is read with one $in.
      expect((port.calls[0]!.ops[0] as Array<{ $match: { _id: { $in: string[] } } }>)[0]!.$match._id.$in).toHaveLength(1000);
    }
  });
});

describe('the session', () => {
  it('every operation of a transaction carries it; it is ended afterwards', async () => {
    const { port, run } = executor(existing(), { crossCollection: false });
    await run(plans.commit(ns, { writes: [write('a', 0), write('b', null)], counters: [{ dbName: 'an_acme', collection: 'orders', deltas: { n: 1 }, windows: ['day:2026-01-01'] }] }));
    await run(plans.replaceCollections(ns.dbName, [{ collection: 'orders', from: null }], { onlyIfEmpty: false, wholeDatabase: true, countersDb: 'an_acme' }));
    expect(port.sessions).toHaveLength(2);
    for (const call of port.calls) {
      // Only the listing of collections runs outside (listCollections cannot run in a transaction).
      if (call.kind === 'listCollections') expect(call.session).toBeUndefined();
      else expect(port.sessions).toContain(call.session);
    }
    for (const s of port.sessions) expect(s.hasEnded).toBe(true);
  });
});

describe('retries', () => {
  it('TransientTransactionError runs the whole transaction again, which decides afresh and writes the same', async () => {
    const clean = executor(existing());
    await clean.run(plans.commit(ns, { writes: [write('a', 0)] }));

    const { port, run } = executor(existing());
    port.fail('bulkWrite', transient());
    let decisions = 0;
    const tx = plans.commit(ns, { writes: [write('a', 0)] });
    const counted: typeof tx = { ...tx, decide: (rows) => (decisions++, tx.decide(rows)) };
    expect(await run(counted)).toEqual({ ok: true, cvs: [5] });
    expect(decisions).toBe(2);
    const second = port.calls.slice(port.calls.findIndex((c, i) => i > 0 && c.kind === 'aggregate' && c.target.endsWith('_head')));
    expect(shape(second)).toEqual(shape(clean.port.calls));
    expect(writesOf(second)).toBe(writesOf(clean.port.calls));
    expect(port.sessions).toHaveLength(1); // one session, two transactions on it
  });

  it('an unknown commit result retries the commit alone', async () => {
    const { port, run } = executor(existing(), { crossCollection: true });
    port.fail('commit', new MongoServerError({ message: 'not primary', code: 10107, errorLabels: ['UnknownTransactionCommitResult', 'RetryableWriteError'] }));
    expect(await run(plans.commit(ns, { writes: [write('a', 0)] }))).toEqual({ ok: true, cvs: [5] });
    expect(shape(port.calls)).toEqual(['aggregate rt_acme.orders_head', 'aggregate rt_acme.orders_counter', 'clientBulkWrite *', 'commit admin', 'commit admin']);
  });

  it('any other error ends the transaction at once: a duplicate key, a refusal', async () => {
    const { port, run } = executor(existing());
    port.fail('bulkWrite', new MongoServerError({ message: 'E11000 duplicate key', code: 11000 }));
    await expect(run(plans.commit(ns, { writes: [write('a', 0)] }))).rejects.toMatchObject({ code: 11000 });
    expect(port.calls.filter((c) => c.kind === 'aggregate')).toHaveLength(2);
    expect(port.sessions[0]!.hasEnded).toBe(true);
  });

  it('collections not set up yet: the transaction stops before writing, they are set up, and it runs again', async () => {
    const ensured: CollRef[] = [];
    const setup: SetupPort = { ...ready, missing: (refs) => refs.filter((r) => !ensured.some((e) => e.db === r.db && e.name === r.name)), ensure: async (refs) => void ensured.push(...refs) };
    const { port, run } = executor({}, { setup });
    await run(plans.commit(ns, { writes: [write('n', null)] }));
    expect(ensured.map((r) => r.name).sort()).toEqual(['orders_counter', 'orders_head', 'orders_ver', 'xronox_sync_outbox']);
    expect(shape(port.calls).filter((c) => c.startsWith('bulkWrite'))).toHaveLength(4); // written once, in the second run
  });

  it('a server that refuses the 8.0 bulkWrite command (feature compatibility below 8.0) is written per collection from then on', async () => {
    const { port, run } = executor(existing(), { crossCollection: true });
    port.fail('clientBulkWrite', new MongoServerError({ message: "no such command: 'bulkWrite'", code: 59, codeName: 'CommandNotFound' }));
    await run(plans.commit(ns, { writes: [write('a', 0)] }));
    await run(plans.commit(ns, { writes: [write('a', 0)] }));
    expect(shape(port.calls).filter((c) => !c.startsWith('aggregate'))).toEqual([
      'clientBulkWrite *',
      ...Array.from({ length: 2 }, () => ['bulkWrite rt_acme.orders_head', 'bulkWrite rt_acme.orders_ver', 'bulkWrite rt_acme.xronox_sync_outbox', 'bulkWrite rt_acme.orders_counter', 'commit admin']).flat(),
    ]);
  });
});

describe('copying a namespace (a restore)', () => {
  it('streams what it copies in its session, marks every head for sync in id order, and carries the cv over', async () => {
    const staged = { dbName: 'stage', collection: 'orders' };
    const heads = Array.from({ length: 2500 }, (_, i) => ({ _id: `r${String(2499 - i).padStart(4, '0')}`, cv: i }));
    const { port, run } = executor({ 'stage.orders_head': heads, 'stage.orders_counter': [{ _id: 'cv', seq: 2500 }] }, { crossCollection: true });
    await run(plans.replaceCollections(ns.dbName, [{ collection: 'orders', from: staged.dbName }], { onlyIfEmpty: false, wholeDatabase: false, countersDb: 'an_acme' }));
    const writes = port.calls.filter((c) => c.kind === 'clientBulkWrite');
    // The clear, then batches of at most 1,000 writes (a head and its mark), then the rest and the cv.
    expect(writes.map((w) => w.ops.length)).toEqual([8, 1000, 1000, 1000, 1000, 1000, 1]);
    const models = writes.slice(1).flatMap((w) => w.ops as Array<{ name: string; namespace: string; document?: { _id: string }; filter?: { _id: { $eq: string } } }>);
    const inserted = models.filter((m) => m.namespace === 'rt_acme.orders_head').map((m) => m.document!._id);
    expect(inserted).toEqual([...inserted].sort());
    expect(models.filter((m) => m.namespace === 'rt_acme.xronox_sync_outbox')).toHaveLength(2500);
    expect(models.at(-1)).toMatchObject({ name: 'replaceOne', namespace: 'rt_acme.orders_counter', filter: { _id: { $eq: 'cv' } }, replacement: { seq: 2500 } });
  });
});

describe('a large import (a restore staging its records and claims)', () => {
  /** The index store as the core runs it (`IndexRuntime`), over the executor: only `transact` and the declared limit are used. */
  function importer(data: ConstructorParameters<typeof RecordingMongoPort>[0] = {}) {
    const { port, run } = executor(data, { crossCollection: true });
    const driver = { name: 'mongodb', multiProcess: true, importLimit: IMPORT_LIMIT, transact: run } as unknown as IndexDriver;
    return { port, store: IndexRuntime.of(driver) };
  }
  const record = (i: number, versions: number, body = '{}'): ImportedRecord => {
    const id = `r${String(i).padStart(5, '0')}`;
    const row = (ov: number): VersionRow => ({ id, ov, cv: i * 10 + ov, op: ov === 0 ? 'create' : 'update', at: T, actor: 'ada', reason: null, deleted: false, size: body.length, body, archived: false, meta: {}, hash: 'h' });
    return { head: { id, ov: versions - 1, cv: i * 10 + versions - 1, deleted: false, createdAt: T, updatedAt: T, deletedAt: null, meta: {}, body, hash: 'h' }, versions: Array.from({ length: versions }, (_, ov) => row(ov)) };
  };
  /** Per transaction (a commit ends each), the documents it wrote: heads, version entries and claims. */
  const perTransaction = (calls: readonly RecordedCall[]) => {
    const out: Array<{ documents: number; namespaces: string[] }> = [];
    let current = { documents: 0, namespaces: [] as string[] };
    for (const c of calls) {
      if (c.kind === 'commit') [out[out.length], current] = [current, { documents: 0, namespaces: [] }];
      if (c.kind !== 'clientBulkWrite') continue;
      const models = c.ops as Array<{ name: string; namespace: string }>;
      current.documents += models.filter((m) => m.name === 'insertOne' || (m.name === 'replaceOne' && !m.namespace.endsWith('_counter'))).length;
      current.namespaces.push(...new Set(models.map((m) => m.namespace)));
    }
    return out;
  };

  it('goes in transactions of at most 1,000 documents, a record never split, the claims after the records, the cv raised by each', async () => {
    const { port, store } = importer();
    // 700 records of 3 version entries (4 documents each) and 2,500 claims.
    const records = Array.from({ length: 700 }, (_, i) => record(i, 3));
    const claims = Array.from({ length: 2500 }, (_, i) => ({ key: `k${i}`, id: records[i % 700]!.head.id }));
    await store.importRecords(ns, { records, claims, collectionVersion: 9999, sync: false });
    const txs = perTransaction(port.calls);
    // 2,800 documents of records (250 records a transaction), then the claims fill up the third.
    expect(txs.map((t) => t.documents)).toEqual([1000, 1000, 1000, 1000, 1000, 300]);
    // Every transaction raises the cv (it never lowers it, so the order of the parts does not matter to it).
    expect(txs.every((t) => t.namespaces.includes('rt_acme.orders_counter'))).toBe(true);
    expect(txs.slice(0, 2).every((t) => !t.namespaces.includes('rt_acme.orders_claims'))).toBe(true);
    expect(txs[2]!.namespaces).toContain('rt_acme.orders_claims');
    expect(txs.slice(3).every((t) => t.namespaces.join() === 'rt_acme.orders_claims,rt_acme.orders_counter')).toBe(true);
    // Every record's head and entries went, each exactly once.
    const heads = port.calls.flatMap((c) => (c.kind === 'clientBulkWrite' ? (c.ops as Array<{ name: string; namespace: string; filter?: { _id: { $eq: string } } }>) : []));
    const written = heads.filter((m) => m.namespace === 'rt_acme.orders_head').map((m) => m.filter!._id.$eq);
    expect(written).toEqual(records.map((r) => r.head.id));
  });

  it('large bodies cut it by size (4 MiB a transaction); a record larger than that goes alone', async () => {
    const { port, store } = importer();
    const mib = 'x'.repeat(1024 * 1024);
    const records = [record(0, 1, mib), record(1, 1, mib), record(2, 1, mib.repeat(5)), record(3, 1, '{}')];
    await store.importRecords(ns, { records, sync: false });
    // r0 and r1: 2 MiB each (head and entry) fill one; r2 (10 MiB) alone; r3 in the last.
    expect(perTransaction(port.calls).map((t) => t.documents)).toEqual([4, 2, 2]);
  });

  it('an import within the limit, or of only a cv, is one transaction', async () => {
    const { port, store } = importer();
    await store.importRecords(ns, { records: [record(0, 2)], claims: [{ key: 'k', id: 'r00000' }] });
    await store.importRecords(ns, { records: [], collectionVersion: 5 });
    expect(port.calls.filter((c) => c.kind === 'commit')).toHaveLength(2);
  });
});
