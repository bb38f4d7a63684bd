import { ObjectId } from 'mongodb';
import { Query, update, updateOne } from 'mingo';
import { describe, expect, it } from 'vitest';
import type { NewHead, Namespace, RecordWrite } from '../../core/contracts/index-store.js';
import { mongoOptions } from '../../core/adapters/mongodb/mongodb-settings.js';
import { type HeadDoc, type PendingWrite, pendingBlobDoc, toHeadDoc, toVersionDoc, type VersionDoc } from '../../core/adapters/mongodb/mongodb-documents.js';
import { supportsTransactions } from '../../core/adapters/mongodb/mongodb-index-store.js';
import { indexSpecs, pendingBlobId, recordKey, versionId } from '../../core/adapters/mongodb/mongodb-layout.js';
import { metaPath } from '../../core/adapters/mongodb/mongodb-meta.js';
import { acquireLockOp, APPLIED_WINDOW, counterOps, headCasFilter, type MongoOp, releaseLockOp, rollForward, sideEffects, windowDocId, windowIdRange } from '../../core/adapters/mongodb/mongodb-protocol.js';

/**
 * The MongoDB write protocol is planned as data (`mongodb-protocol.ts`). No MongoDB server can run
 * on the machines this project is built on, so these tests replay the plans against an in-memory
 * model of single-document operations, whose query and update semantics come from mingo (an
 * independent implementation of MongoDB's query language), with a crash after every operation.
 * What they prove is the protocol's logic; the adapter's calls to a real server are proven by the
 * conformance suites when MONGODB_URI is set (test/conformance/mongodb.test.ts).
 */

type Doc = Record<string, unknown> & { _id: string };
type State = Map<string, Map<string, Doc>>;

class DuplicateKey extends Error {}

const ns: Namespace = { dbName: 'rt_acme', collection: 'orders' };
const analytics: Namespace = { dbName: 'an_acme', collection: 'orders' };
const settings = { deadLetterCollection: 'xronox_dead_letters' };
const SINCE = new Date('2026-01-01T00:00:00Z');
const QUEUE_ORDER = new ObjectId('65920080aaaaaaaaaa000001');

function table(state: State, db: string, name: string): Map<string, Doc> {
  const key = `${db}.${name}`;
  let t = state.get(key);
  if (!t) state.set(key, (t = new Map()));
  return t;
}

/** Applies one protocol operation with MongoDB's single-document semantics (unique `_id`, upserts). */
function apply(state: State, op: MongoOp): void {
  const t = table(state, op.coll.db, op.coll.name);
  const matching = (filter: Record<string, unknown>) => [...t.values()].filter((d) => new Query(filter).test(d));
  switch (op.kind) {
    case 'deleteOne': {
      const [hit] = matching(op.filter);
      if (hit) t.delete(hit._id);
      return;
    }
    case 'deleteMany':
      for (const hit of matching(op.filter)) t.delete(hit._id);
      return;
    case 'updateOne': {
      const [hit] = matching(op.filter);
      if (Array.isArray(op.update)) {
        // An aggregation-pipeline update (leases): mingo evaluates it, `$$NOW` included.
        // mingo replaces the array element rather than mutating it.
        const target = hit ? [hit] : op.upsert ? [{ _id: op.filter._id as string }] : [];
        if (!hit && op.upsert && t.has(target[0]!._id)) throw new DuplicateKey(target[0]!._id);
        if (target.length === 0) return;
        updateOne(target, {}, op.update as never);
        t.set(target[0]!._id, target[0]!);
        return;
      }
      const { $setOnInsert, ...rest } = op.update as { $setOnInsert?: Record<string, unknown> };
      if (hit) {
        if (Object.keys(rest).length) update(hit, rest as never);
        return;
      }
      if (!op.upsert) return;
      const id = op.filter._id as string;
      if (t.has(id)) {
        if (op.duplicateMeansDone) return;
        throw new DuplicateKey(id);
      }
      const doc: Doc = { _id: id, ...structuredClone($setOnInsert ?? {}) };
      if (Object.keys(rest).length) update(doc, rest as never);
      t.set(id, doc);
      return;
    }
    case 'insertVersion': {
      const { _id, ...entry } = op.entry;
      const existing = t.get(_id);
      if (existing?.hash === entry.hash) return;
      if (!existing) {
        t.set(_id, structuredClone({ _id, ...entry }) as Doc);
        return;
      }
      const head = table(state, op.head.db, op.head.name).get(entry.id) as HeadDoc | undefined;
      if (head?.pending?.opId === op.opId) t.set(_id, structuredClone({ _id, ...entry }) as Doc);
      return;
    }
  }
}

function run(state: State, ops: readonly MongoOp[]): void {
  for (const op of ops) apply(state, op);
}

function snapshot(state: State): string {
  const out: Record<string, Doc[]> = {};
  for (const [key, t] of [...state.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    if (t.size) out[key] = [...t.values()].sort((a, b) => a._id.localeCompare(b._id));
  }
  return JSON.stringify(out);
}

function newHead(ov: number, over: Partial<NewHead> = {}): NewHead {
  return {
    ov,
    deleted: false,
    createdAt: '2026-01-01T00:00:00.000000Z',
    updatedAt: `2026-01-01T00:00:0${ov}.000000Z`,
    deletedAt: null,
    meta: { status: ov % 2 ? 'open' : 'paid', 'customer.id': 'c1' },
    body: JSON.stringify({ ov }),
    hash: `h${ov}`,
    ...over,
  };
}

function writeOf(id: string, ov: number, over: Partial<NewHead> = {}, extra: Partial<RecordWrite> = {}): RecordWrite {
  const head = newHead(ov, over);
  return {
    id,
    expectedOv: ov === 0 ? null : ov - 1,
    head,
    version: { op: ov === 0 ? 'create' : 'update', at: head.updatedAt, actor: { type: 'user', identifier: 'ada' }, reason: null, deleted: head.deleted, body: head.body, hash: `h${ov}-${head.body}` },
    ...extra,
  };
}

function pendingOf(write: RecordWrite, cv: number, opId: string, counters = true): PendingWrite {
  return {
    opId,
    queueOrder: QUEUE_ORDER,
    ov: write.head?.ov ?? write.expectedOv ?? 0,
    cv,
    since: SINCE,
    purge: write.head === null,
    releaseClaims: write.head === null || write.head.deleted,
    version: toVersionDoc(write, cv),
    blobs: (write.blobs ?? []).map((b) => pendingBlobDoc(ns.collection, write.id, cv, b, pendingBlobId(ns.collection, b.bucket, b.key))),
    counters: counters ? [{ dbName: analytics.dbName, collection: analytics.collection, deltas: { created: 1, updated: 0 } }] : [],
    countersApplied: false,
  };
}

/** Step 4 of the standalone protocol as the model sees it: the head now holds the new state and the pending write. */
function commitHead(state: State, write: RecordWrite, cv: number, opId: string): HeadDoc & { pending: PendingWrite } {
  const heads = table(state, ns.dbName, 'orders_head');
  const pending = pendingOf(write, cv, opId);
  const before = heads.get(write.id) as HeadDoc | undefined;
  const head = { ...(write.head ? toHeadDoc(write.id, write.head, cv) : before!), pending };
  heads.set(write.id, structuredClone(head) as unknown as Doc);
  return head;
}

function storedHead(state: State, id: string): (HeadDoc & { pending?: PendingWrite }) | undefined {
  return table(state, ns.dbName, 'orders_head').get(id) as HeadDoc | undefined;
}

/** Whatever a later writer, reader or repair does: finish the pending write it finds. */
function recover(state: State, id: string): void {
  const head = storedHead(state, id);
  if (head?.pending) run(state, rollForward(ns, head as HeadDoc & { pending: PendingWrite }, settings));
}

const blob = { bucket: 'acme-content', key: 'content/orders/o1/pdf/abc/blob.bin', contentType: 'application/pdf', body: new Uint8Array([1, 2, 3]) };

/** A history of writes on one record, each committed then rolled forward with a crash at `crashAt`. */
const SCENARIOS: Array<{ name: string; writes: RecordWrite[] }> = [
  { name: 'create', writes: [writeOf('o1', 0, {}, { blobs: [blob] })] },
  { name: 'create, update, update', writes: [writeOf('o1', 0), writeOf('o1', 1), writeOf('o1', 2)] },
  { name: 'create, soft delete', writes: [writeOf('o1', 0), writeOf('o1', 1, { deleted: true, deletedAt: '2026-01-01T00:00:02.000000Z' })] },
  { name: 'create, update, hard delete', writes: [writeOf('o1', 0), writeOf('o1', 1), { id: 'o1', expectedOv: 1, head: null }] },
];

/** Every crash point from 0 to this many operations is tried; plans longer than it fail the test. */
const PLAN_LENGTH_BOUND = 12;

function runScenario(writes: readonly RecordWrite[], crashAt: (step: number) => number | null): string {
  const state: State = new Map();
  table(state, ns.dbName, 'orders_claims').set('email:ada', { _id: 'email:ada', id: 'o1', cv: 0 });
  writes.forEach((write, step) => {
    recover(state, write.id); // step 1 of the next write: finish what the last one left
    const head = commitHead(state, write, step, `op${step}`);
    const plan = rollForward(ns, head, settings);
    if (plan.length > PLAN_LENGTH_BOUND) throw new Error(`a roll-forward of ${plan.length} operations outgrows the crash points tried`);
    const crash = crashAt(step);
    run(state, crash === null ? plan : plan.slice(0, Math.min(crash, plan.length)));
  });
  recover(state, 'o1');
  return snapshot(state);
}

describe('the standalone protocol, replayed with crashes (in-memory model of single-document operations)', () => {
  for (const { name, writes } of SCENARIOS) {
    it(`${name}: a crash after any operation of any roll-forward, then recovery, ends where an uninterrupted run does`, () => {
      const expected = runScenario(writes, () => null);
      let trials = 0;
      for (let step = 0; step < writes.length; step++) {
        for (let crash = 0; crash <= PLAN_LENGTH_BOUND; crash++) {
          expect(runScenario(writes, (s) => (s === step ? crash : null)), `crash after op ${crash} of write ${step}`).toBe(expected);
          trials++;
        }
      }
      expect(trials).toBeGreaterThanOrEqual(13);
    });
  }

  it('an uninterrupted run leaves exactly the expected documents: versions, outbox, counters once, claims released on delete', () => {
    const state: State = new Map();
    const writes = [writeOf('o1', 0), writeOf('o1', 1), writeOf('o1', 2, { deleted: true, deletedAt: 'x' })];
    table(state, ns.dbName, 'orders_claims').set('email:ada', { _id: 'email:ada', id: 'o1', cv: 0 });
    writes.forEach((w, i) => run(state, rollForward(ns, commitHead(state, w, i, `op${i}`), settings)));
    const versions = table(state, ns.dbName, 'orders_ver');
    expect([...versions.keys()].sort()).toEqual([versionId('o1', 0), versionId('o1', 1), versionId('o1', 2)]);
    expect(storedHead(state, 'o1')!.pending).toBeUndefined();
    expect(table(state, ns.dbName, 'xronox_sync_outbox').get(recordKey('orders', 'o1'))).toMatchObject({ seq: 2, coll: 'orders', id: 'o1' });
    expect(table(state, analytics.dbName, 'orders_counter').get('totals')!.counts).toEqual({ created: 3 });
    expect(table(state, ns.dbName, 'orders_claims').size).toBe(0);
  });

  it('two roll-forwards of one write interleaved operation by operation count its counters once', () => {
    const state: State = new Map();
    const head = commitHead(state, writeOf('o1', 0), 0, 'op0');
    const a = rollForward(ns, head, settings);
    const b = rollForward(ns, structuredClone(head), settings);
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      if (a[i]) apply(state, a[i]!);
      if (b[i]) apply(state, b[i]!);
    }
    expect(table(state, analytics.dbName, 'orders_counter').get('totals')!.counts).toEqual({ created: 1 });
  });

  it('a roll-forward repeated after countersApplied was lost (crash between the increment and the mark) still counts once', () => {
    const state: State = new Map();
    const head = commitHead(state, writeOf('o1', 0), 0, 'op0');
    const plan = rollForward(ns, head, settings);
    const markAt = plan.findIndex((op) => op.kind === 'updateOne' && JSON.stringify(op.update).includes('countersApplied'));
    run(state, plan.slice(0, markAt)); // increment done, mark not written
    recover(state, 'o1');
    expect(table(state, analytics.dbName, 'orders_counter').get('totals')!.counts).toEqual({ created: 1 });
    expect((table(state, analytics.dbName, 'orders_counter').get('totals')!.applied as string[]).length).toBeLessThanOrEqual(APPLIED_WINDOW);
  });

  it('a stalled roll-forward of a hard delete, replayed after the record was re-created, removes nothing of the new record', () => {
    const state: State = new Map();
    run(state, rollForward(ns, commitHead(state, writeOf('o1', 0), 0, 'op0'), settings));
    const purge = rollForward(ns, commitHead(state, { id: 'o1', expectedOv: 0, head: null }, 1, 'op1'), settings);
    run(state, purge); // the purge completes (another process finished it)
    expect(storedHead(state, 'o1')).toBeUndefined();
    // The record is re-created with a claim and a queued object, then the stalled purge replays.
    table(state, ns.dbName, 'orders_claims').set('email:ada', { _id: 'email:ada', id: 'o1', cv: 2 });
    run(state, rollForward(ns, commitHead(state, writeOf('o1', 0, {}, { blobs: [blob] }), 2, 'op2'), settings));
    const before = snapshot(state);
    run(state, purge);
    expect(snapshot(state)).toBe(before);
  });


  it('a stalled roll-forward that writes a dead incarnation’s version entry late is overwritten by the live write of that ov', () => {
    const state: State = new Map();
    const old = commitHead(state, writeOf('o1', 0, { body: '{"old":1}' }), 0, 'op0');
    const stalled = rollForward(ns, old, settings);
    run(state, stalled);
    run(state, rollForward(ns, commitHead(state, { id: 'o1', expectedOv: 0, head: null }, 1, 'op1'), settings));
    // The re-created record's first write is committed; before its roll-forward, the stall replays.
    const fresh = commitHead(state, writeOf('o1', 0, { body: '{"new":1}' }), 2, 'op2');
    run(state, stalled);
    run(state, rollForward(ns, fresh, settings));
    const entry = table(state, ns.dbName, 'orders_ver').get(versionId('o1', 0)) as unknown as VersionDoc;
    expect(entry.body).toBe('{"new":1}');
    expect(entry.cv).toBe(2);
  });
});

describe('leases, replayed in the model with the server clock', () => {
  // As the store does: one upsert, then the lease is held when the document after it names the owner.
  const acquire = (state: State, owner: string, leaseMs = 60_000): boolean => {
    apply(state, acquireLockOp(ns, 'restore-collection', owner, leaseMs));
    return table(state, ns.dbName, 'orders_locks').get('restore-collection')?.owner === owner;
  };
  const lock = (state: State) => table(state, ns.dbName, 'orders_locks').get('restore-collection')!;

  it('one owner at a time; the holder renews; an expired lease is taken over; only the holder releases', () => {
    const state: State = new Map();
    expect(acquire(state, 'server-a')).toBe(true);
    expect(acquire(state, 'server-b')).toBe(false);
    expect(lock(state).owner).toBe('server-a');
    expect(acquire(state, 'server-a')).toBe(true); // renewal
    lock(state).expiresAt = new Date(Date.now() - 1); // the lease runs out (server clock)
    expect(acquire(state, 'server-b')).toBe(true);
    expect(acquire(state, 'server-a')).toBe(false);
    apply(state, releaseLockOp(ns, 'restore-collection', 'server-a')); // not the holder: no-op
    expect(lock(state).owner).toBe('server-b');
    apply(state, releaseLockOp(ns, 'restore-collection', 'server-b'));
    expect(table(state, ns.dbName, 'orders_locks').size).toBe(0);
    expect(acquire(state, 'server-a')).toBe(true);
  });

  it('an owner string that looks like an operator is stored as a plain value', () => {
    const state: State = new Map();
    expect(acquire(state, '$owner')).toBe(true);
    expect(lock(state).owner).toBe('$owner');
    expect(acquire(state, 'someone-else')).toBe(false);
  });
});

describe('protocol operations (pure)', () => {
  it('the head compare-and-set matches only the expected ov with no unfinished write', () => {
    expect(headCasFilter('o1', 4)).toEqual({ _id: 'o1', ov: 4, pending: { $exists: false } });
  });

  it('within a transaction counters are plain increments, and zero deltas are left out', () => {
    const write = writeOf('o1', 1);
    const ops = sideEffects(ns, 'o1', pendingOf(write, 5, 'op'), settings, { idempotentCounters: false });
    const counter = ops.find((op) => op.coll.name === 'orders_counter');
    expect(counter).toEqual({ kind: 'updateOne', coll: { db: 'an_acme', name: 'orders_counter' }, filter: { _id: 'totals' }, update: { $inc: { 'counts.created': 1 } }, upsert: true });
    expect(ops.some((op) => JSON.stringify(op).includes('countersApplied'))).toBe(false);
  });

  it('counter windows: each delta goes to the totals and to every listed window document, plainly in a transaction', () => {
    const ops = counterOps([{ dbName: 'an_acme', collection: 'orders', deltas: { created: 1, zero: 0 }, windows: ['day:2026-01-31', 'month:2026-01'] }], null);
    const coll = { db: 'an_acme', name: 'orders_counter' };
    expect(ops).toEqual([
      { kind: 'updateOne', coll, filter: { _id: 'totals' }, update: { $inc: { 'counts.created': 1 } }, upsert: true },
      { kind: 'updateOne', coll, filter: { _id: 'window:day:2026-01-31' }, update: { $inc: { 'counts.created': 1 } }, upsert: true },
      { kind: 'updateOne', coll, filter: { _id: 'window:month:2026-01' }, update: { $inc: { 'counts.created': 1 } }, upsert: true },
    ]);
    expect(counterOps([{ dbName: 'an_acme', collection: 'orders', deltas: { zero: 0 }, windows: ['day:2026-01-31'] }], null)).toEqual([]);
  });

  it('counter windows: a standalone roll-forward with windows, crashed after any operation or run twice interleaved, counts each window once', () => {
    const windows = ['day:2026-01-31', 'week:2026-W05', 'month:2026-01'];
    const withWindows = (state: State, opId: string) => {
      const head = commitHead(state, writeOf('o1', 0), 0, opId);
      head.pending.counters = [{ dbName: analytics.dbName, collection: analytics.collection, deltas: { created: 1 }, windows }];
      table(state, ns.dbName, 'orders_head').set('o1', structuredClone(head) as unknown as Doc);
      return head;
    };
    const expectOnce = (state: State) => {
      const counters = table(state, analytics.dbName, 'orders_counter');
      expect(counters.get('totals')!.counts).toEqual({ created: 1 });
      for (const w of windows) expect(counters.get(windowDocId(w))!.counts).toEqual({ created: 1 });
    };
    const plan = rollForward(ns, withWindows(new Map(), 'op0'), settings);
    for (let crash = 0; crash <= plan.length; crash++) {
      const state: State = new Map();
      run(state, rollForward(ns, withWindows(state, 'op0'), settings).slice(0, crash));
      recover(state, 'o1');
      expectOnce(state);
    }
    const state: State = new Map();
    const head = withWindows(state, 'op0');
    const a = rollForward(ns, head, settings);
    const b = rollForward(ns, structuredClone(head), settings);
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      if (a[i]) apply(state, a[i]!);
      if (b[i]) apply(state, b[i]!);
    }
    expectOnce(state);
  });

  it('counter windows: the _id ranges select one granularity within inclusive bounds, and prune below a bound', () => {
    const docs: Doc[] = ['cv', 'totals', 'window:day:2026-01-30', 'window:day:2026-01-31', 'window:day:2026-02-01', 'window:month:2026-01', 'window:week:2026-W05'].map((_id) => ({ _id }));
    const ids = (range: Record<string, unknown>) => docs.filter((d) => new Query({ _id: range }).test(d)).map((d) => d._id).sort();
    expect(ids(windowIdRange('day', {}))).toEqual(['window:day:2026-01-30', 'window:day:2026-01-31', 'window:day:2026-02-01']);
    expect(ids(windowIdRange('day', { from: 'day:2026-01-31', to: 'day:2026-01-31' }))).toEqual(['window:day:2026-01-31']);
    expect(ids(windowIdRange('day', { from: 'a', to: 'z' }))).toEqual(['window:day:2026-01-30', 'window:day:2026-01-31', 'window:day:2026-02-01']);
    expect(ids(windowIdRange('day', { before: 'day:2026-02-01' }))).toEqual(['window:day:2026-01-30', 'window:day:2026-01-31']);
    expect(ids(windowIdRange('month', { before: 'month:2026-02' }))).toEqual(['window:month:2026-01']);
    expect(ids(windowIdRange('week', { before: 'week:2026-W05' }))).toEqual([]);
  });

  it('the outbox mark only moves forward ($max) and keeps the first queue time', () => {
    const ops = sideEffects(ns, 'o1', pendingOf(writeOf('o1', 1), 9, 'op'), settings, { idempotentCounters: true });
    expect(ops.find((op) => op.coll.name === 'xronox_sync_outbox')).toMatchObject({
      filter: { _id: 'orders/o1' },
      update: { $max: { seq: 9 }, $setOnInsert: { coll: 'orders', id: 'o1', queuedAt: SINCE, order: QUEUE_ORDER } },
      upsert: true,
    });
  });



  it('indexes: one per indexed property on the encoded meta path, a wildcard when none are listed, unique (id, ov) on versions', () => {
    const head = indexSpecs('head', { indexedProps: ['status', 'customer.id'] }, metaPath);
    expect(head.map((s) => s.key)).toEqual([
      { updatedAt: 1, _id: 1 },
      { createdAt: 1, _id: 1 },
      { 'pending.since': 1 },
      { 'meta.status': 1, _id: 1 },
      { 'meta.customer:id': 1, _id: 1 },
    ]);
    expect(indexSpecs('head', { indexedProps: [] }, metaPath).at(-1)).toEqual({ key: { 'meta.$**': 1 }, name: 'meta_all' });
    expect(indexSpecs('ver', { indexedProps: [] }, metaPath)[0]).toEqual({ key: { id: 1, ov: -1 }, name: 'by_record', unique: true });
    const names = (['head', 'ver', 'counter', 'locks', 'claims'] as const).flatMap((role) => indexSpecs(role, { indexedProps: ['a'] }, metaPath).map((s) => `${role}.${s.name}`));
    expect(new Set(names).size).toBe(names.length);
  });

  it('a lease is one conditional upsert on the server clock; the owner is a literal, never an expression', () => {
    const op = acquireLockOp(ns, 'restore-collection', '$where', 30_000);
    const free = { $or: [{ $eq: [{ $type: '$owner' }, 'missing'] }, { $eq: ['$owner', { $literal: '$where' }] }, { $lte: ['$expiresAt', '$$NOW'] }] };
    expect(op).toEqual({
      kind: 'updateOne',
      coll: { db: 'rt_acme', name: 'orders_locks' },
      // MongoDB refuses `$expr` in the query of an upsert (error 224), so the filter is the key alone.
      filter: { _id: 'restore-collection' },
      update: [{ $set: { owner: { $cond: [free, { $literal: '$where' }, '$owner'] }, expiresAt: { $cond: [free, { $add: ['$$NOW', 30_000] }, '$expiresAt'] } } }],
      upsert: true,
    });
    expect(JSON.stringify(op.filter)).not.toContain('$expr');
  });

  it('transactions are used on replica set members and mongos, not on a standalone server', () => {
    expect(supportsTransactions({ isWritablePrimary: true, setName: 'rs0' })).toBe(true);
    expect(supportsTransactions({ isWritablePrimary: true, msg: 'isdbgrid' })).toBe(true);
    expect(supportsTransactions({ isWritablePrimary: true })).toBe(false);
  });

  it('the config maps to the store settings: transactions, indexed properties, dead letters', () => {
    const base = { collectionMaps: { orders: { indexedProps: ['status'] } } } as unknown as Parameters<typeof mongoOptions>[1];
    expect(mongoOptions('mongodb://h', base).transactions).toBe('auto');
    expect(mongoOptions('mongodb://h', { ...base, transactions: { enabled: false } }).transactions).toBe('off');
    expect(mongoOptions('mongodb://h', { ...base, transactions: { enabled: true, autoDetect: false } }).transactions).toBe('required');
    const opts = mongoOptions('mongodb://h', { ...base, fallback: { enabled: true, deadLetterCollection: 'dlq' } });
    expect(opts.indexSettings('orders')).toEqual({ indexedProps: ['status'] });
    expect(opts.indexSettings('other')).toEqual({ indexedProps: [] });
    expect(opts.protocol).toEqual({ deadLetterCollection: 'dlq' });
  });
});
