import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MemoryIndexDriver } from '../../core/adapters/memory/memory-index-driver.js';
import type { Decision, Effect, HeadState, ReadRows, Transaction, UploadRow } from '../../core/contracts/index-driver.js';
import { isDecision, nsKey, refKey, uploadKey } from '../../core/contracts/index-driver.js';
import type { Namespace, RecordWrite } from '../../core/contracts/index-store.js';
import { IndexRuntime } from '../../core/store/index-runtime.js';
import { emptyRows } from '../../core/store/driver-kit.js';
import * as plans from '../../core/store/plans.js';

/**
 * The plans of core/store/plans.ts, two ways: their decisions over rows made up here (pure
 * functions: exactly which effects, or which refusal), and their run on the reference driver with
 * a clock the test moves (leases and upload ages without sleeping).
 */

const ns: Namespace = { dbName: 'db1', collection: 'orders' };
const at = '2026-01-01T00:00:00.000Z';

function rows(over: Partial<ReadRows> = {}): ReadRows {
  return { ...emptyRows(), ...over };
}

/** The decision of a one-step plan. */
function decide<T>(tx: Transaction<T>, read: ReadRows = rows()): Decision<T> {
  const outcome = tx.decide(read);
  if (!isDecision(outcome)) throw new Error('expected a decision, got a further step');
  return outcome;
}

const head = (ov: number, over: Partial<HeadState> = {}): HeadState => ({ ov, cv: ov, deleted: false, offloaded: false, ...over });
const heads = (entries: Record<string, HeadState>) => new Map(Object.entries(entries).map(([id, h]) => [refKey(ns, id), h]));
const kinds = (effects: readonly Effect[]) => effects.map((e) => e.kind);

function write(id: string, expectedOv: number | null, over: Partial<RecordWrite> = {}): RecordWrite {
  const ov = (expectedOv ?? 0) + 1;
  const body = JSON.stringify({ id, ov });
  return {
    id,
    expectedOv,
    head: { ov, deleted: false, createdAt: at, updatedAt: at, deletedAt: null, meta: { n: ov }, body, hash: `h${ov}` },
    version: { op: expectedOv === null ? 'create' : 'update', at, actor: 'tester', reason: null, deleted: false, body, hash: `h${ov}` },
    ...over,
  };
}

function runtime() {
  let now = 1_000_000;
  const store = IndexRuntime.of(new MemoryIndexDriver({ now: () => now }));
  return { store, advance: (ms: number) => (now += ms) };
}

describe('plans: commit', () => {
  it('assigns cvs after the namespace last one, in batch order, seq = cv, and sets the namespace cv once', () => {
    const d = decide(plans.commit(ns, { writes: [write('a', null), write('b', 3)] }), rows({ heads: heads({ b: head(3) }), collectionVersions: new Map([[nsKey(ns), 41]]) }));
    expect(d.result).toEqual({ ok: true, cvs: [42, 43] });
    expect(kinds(d.effects)).toEqual(['putHead', 'putVersion', 'putOutbox', 'putHead', 'putVersion', 'putOutbox', 'setCollectionVersion']);
    expect(d.effects.filter((e) => e.kind === 'putOutbox')).toEqual([
      { kind: 'putOutbox', ns, id: 'a', seq: 42 },
      { kind: 'putOutbox', ns, id: 'b', seq: 43 },
    ]);
    expect(d.effects.at(-1)).toEqual({ kind: 'setCollectionVersion', ns, cv: 43 });
    const version = d.effects.find((e) => e.kind === 'putVersion');
    expect(version).toMatchObject({ version: { id: 'a', ov: 1, cv: 42, archived: false, size: Buffer.byteLength('{"id":"a","ov":1}'), meta: { n: 1 } } });
    // The first write of a namespace gets cv 0.
    expect(decide(plans.commit(ns, { writes: [write('a', null)] })).result).toEqual({ ok: true, cvs: [0] });
  });

  it('checks each write against the heads as the earlier writes of the batch left them', () => {
    const again = plans.commit(ns, { writes: [write('a', null), write('a', 1), { id: 'a', expectedOv: 2, head: null }, write('a', null)] });
    const d = decide(again);
    expect(d.result).toEqual({ ok: true, cvs: [0, 1, 2, 3] });
    expect(decide(plans.commit(ns, { writes: [write('a', null), write('a', null)] })).result).toEqual({
      ok: false, reason: 'version', index: 1, id: 'a', expectedOv: null, actualOv: 1,
    });
  });

  it('refuses with no effects at all: a stale ov, a claim held by another record, a missing upload intent, in that order of checks', () => {
    const stale = decide(plans.commit(ns, { writes: [write('a', null), write('b', 1)], counters: [{ ...ns, deltas: { n: 1 } }] }), rows({ heads: heads({ b: head(2) }) }));
    expect(stale).toEqual({ effects: [], result: { ok: false, reason: 'version', index: 1, id: 'b', expectedOv: 1, actualOv: 2 } });

    const claimed = rows({ claims: new Map([[refKey(ns, 'email'), 'x']]) });
    const both = { ...write('a', null), claims: [{ key: 'email' }], uploads: [{ bucket: 'b', key: 'k', token: 't' }] };
    expect(decide(plans.commit(ns, { writes: [both] }), claimed)).toEqual({ effects: [], result: { ok: false, reason: 'claim', index: 0, id: 'a', key: 'email', heldBy: 'x' } });
    expect(decide(plans.commit(ns, { writes: [{ ...write('a', 5), claims: [{ key: 'email' }] }] }), claimed).result).toMatchObject({ reason: 'version' });
    expect(decide(plans.commit(ns, { writes: [both] })).result).toEqual({ ok: false, reason: 'upload', index: 0, id: 'a', key: 'k' });
  });

  it('claims: the holder itself and a named stale holder (`replacing`) pass; a claim taken earlier in the batch binds later writes', () => {
    const held = rows({ claims: new Map([[refKey(ns, 'k'), 'old']]) });
    expect(decide(plans.commit(ns, { writes: [{ ...write('old', null), claims: [{ key: 'k' }] }] }), held).result.ok).toBe(true);
    const taken = decide(plans.commit(ns, { writes: [{ ...write('new', null), claims: [{ key: 'k', replacing: 'old' }] }] }), held);
    expect(taken.effects[0]).toEqual({ kind: 'putClaim', ns, key: 'k', id: 'new' });
    expect(decide(plans.commit(ns, { writes: [{ ...write('new', null), claims: [{ key: 'k', replacing: 'other' }] }] }), held).result).toMatchObject({ reason: 'claim', heldBy: 'old' });
    const inBatch = plans.commit(ns, { writes: [{ ...write('a', null), claims: [{ key: 'z' }] }, { ...write('b', null), claims: [{ key: 'z' }] }] });
    expect(decide(inBatch).result).toMatchObject({ ok: false, reason: 'claim', index: 1, heldBy: 'a' });
    // A record deleted earlier in the batch has released its claims.
    const released = plans.commit(ns, {
      writes: [{ ...write('a', null), claims: [{ key: 'z' }] }, { ...write('a', 1), head: { ...write('a', 1).head!, deleted: true } }, { ...write('b', null), claims: [{ key: 'z' }] }],
    });
    expect(decide(released).result.ok).toBe(true);
  });

  it('a hard delete removes the head, every version entry, claim and queued object; a soft delete releases the claims only', () => {
    const hard = decide(plans.commit(ns, { writes: [{ id: 'a', expectedOv: 2, head: null, version: write('a', 2).version! }] }), rows({ heads: heads({ a: head(2) }) }));
    expect(hard.effects).toEqual([
      { kind: 'deleteRecord', ns, id: 'a', tables: ['heads', 'versions', 'claims', 'pendingBlobs'] },
      { kind: 'putOutbox', ns, id: 'a', seq: 0 },
      { kind: 'setCollectionVersion', ns, cv: 0 },
    ]);
    const soft = write('a', 2);
    const deleted = decide(plans.commit(ns, { writes: [{ ...soft, head: { ...soft.head!, deleted: true } }] }), rows({ heads: heads({ a: head(2) }) }));
    expect(kinds(deleted.effects)).toEqual(['putHead', 'deleteRecord', 'putVersion', 'putOutbox', 'setCollectionVersion']);
    expect(deleted.effects[1]).toEqual({ kind: 'deleteRecord', ns, id: 'a', tables: ['claims'] });
  });

  it('takes each upload intent once, and only an intent (not a cleanup mark) of that token', () => {
    const intent = (token: string, cleaning = false): UploadRow => ({ id: 'a', token, cleaning, ageMs: 0 });
    const uploads = new Map([[uploadKey(ns, 'b', 'k'), [intent('t'), intent('m', true)]]]);
    const u = { bucket: 'b', key: 'k', token: 't' };
    expect(decide(plans.commit(ns, { writes: [{ ...write('a', null), uploads: [u] }] }), rows({ uploads })).effects).toContainEqual({ kind: 'deleteUpload', ns, bucket: 'b', key: 'k', token: 't' });
    expect(decide(plans.commit(ns, { writes: [{ ...write('a', null), uploads: [u] }, { ...write('c', null), uploads: [u] }] }), rows({ uploads })).result).toMatchObject({ reason: 'upload', index: 1 });
    expect(decide(plans.commit(ns, { writes: [{ ...write('a', null), uploads: [{ ...u, token: 'm' }] }] }), rows({ uploads })).result).toMatchObject({ reason: 'upload', index: 0 });
  });

  it('counters: zero deltas are dropped, the totals and each window (once) get the rest; a batch of counters alone writes no cv', () => {
    const d = decide(plans.commit(ns, { writes: [], counters: [{ ...ns, deltas: { a: 0, b: 2 }, windows: ['day:2026-01-01', 'day:2026-01-01'] }, { ...ns, deltas: { c: 0 } }] }));
    const add = { kind: 'counters', dbName: ns.dbName, collection: ns.collection, counts: { b: 2 }, add: true };
    expect(d.effects).toEqual([{ ...add, window: null }, { ...add, window: 'day:2026-01-01' }]);
    expect(decide(plans.commit(ns, { writes: [] }))).toEqual({ effects: [], result: { ok: true, cvs: [] } });
  });
});

describe('plans: offload, sync and dead letters', () => {
  it('offloadHead needs the head at the expected ov, not offloaded, no outbox entry, no dead letter, nothing unarchived', () => {
    const key = refKey(ns, 'a');
    const ok = rows({ heads: heads({ a: head(3) }), unarchived: new Map([[key, 0]]) });
    expect(decide(plans.offloadHead(ns, 'a', 3), ok)).toEqual({ effects: [{ kind: 'dropBodies', ns, id: 'a', ovs: null }], result: true });
    const refusals: ReadRows[] = [
      rows(),
      rows({ ...ok, heads: heads({ a: head(4) }) }),
      rows({ ...ok, heads: heads({ a: head(3, { offloaded: true }) }) }),
      rows({ ...ok, outbox: new Map([[key, 7]]) }),
      rows({ ...ok, deadLetters: new Set([key]) }),
      rows({ ...ok, unarchived: new Map([[key, 1]]) }),
    ];
    for (const refusal of refusals) expect(decide(plans.offloadHead(ns, 'a', 3), refusal)).toEqual({ effects: [], result: false });
  });

  it('completeSync archives and drops uploaded objects whatever the outbox says, and clears the entry only at its seq', () => {
    const outbox = rows({ outbox: new Map([[refKey(ns, 'a'), 5]]) });
    const sync = { archivedOvs: [1, 2], uploaded: [{ bucket: 'b', key: 'k' }] };
    const stale = decide(plans.completeSync(ns, 'a', { ...sync, seq: 4 }), outbox);
    expect(stale).toEqual({
      result: false,
      effects: [
        { kind: 'dropBodies', ns, id: 'a', ovs: [1, 2] },
        { kind: 'deletePendingBlobs', ns, keys: [{ bucket: 'b', key: 'k' }] },
      ],
    });
    expect(decide(plans.completeSync(ns, 'a', { ...sync, seq: 5 }), outbox)).toEqual({ result: true, effects: [...stale.effects, { kind: 'deleteRecord', ns, id: 'a', tables: ['outbox'] }] });
    expect(plans.completeSync(ns, 'a', { archivedOvs: [], seq: null }).reads).toEqual({});
    expect(decide(plans.completeSync(ns, 'a', { archivedOvs: [], seq: null }))).toEqual({ result: true, effects: [] });
  });

  it('deadLetterSync moves only the entry at its seq, with the reason cut to 2000 characters', () => {
    const outbox = rows({ outbox: new Map([[refKey(ns, 'a'), 5]]) });
    expect(decide(plans.deadLetterSync(ns, 'a', 4, 'x', at), outbox)).toEqual({ effects: [], result: false });
    const moved = decide(plans.deadLetterSync(ns, 'a', 5, 'é'.repeat(3000), at), outbox);
    expect(moved.result).toBe(true);
    expect(moved.effects).toEqual([
      { kind: 'deleteRecord', ns, id: 'a', tables: ['outbox'] },
      { kind: 'putDeadLetter', ns, id: 'a', reason: 'é'.repeat(2000), failedAt: at },
    ]);
  });

  it('requeueDeadLetters puts each back at its head cv, 0 without a head', () => {
    const letters = [
      { collection: 'c1', id: 'a', reason: 'r', failedAt: at, headCv: 9 },
      { collection: 'c2', id: 'b', reason: 'r', failedAt: at, headCv: null },
    ];
    const d = decide(plans.requeueDeadLetters('db1'), rows({ allDeadLetters: letters }));
    expect(d.result).toBe(2);
    expect(d.effects.filter((e) => e.kind === 'putOutbox')).toEqual([
      { kind: 'putOutbox', ns: { dbName: 'db1', collection: 'c1' }, id: 'a', seq: 9 },
      { kind: 'putOutbox', ns: { dbName: 'db1', collection: 'c2' }, id: 'b', seq: 0 },
    ]);
    expect(d.effects.filter((e) => e.kind === 'deleteRecord')).toEqual([
      { kind: 'deleteRecord', ns: { dbName: 'db1', collection: 'c1' }, id: 'a', tables: ['deadLetters'] },
      { kind: 'deleteRecord', ns: { dbName: 'db1', collection: 'c2' }, id: 'b', tables: ['deadLetters'] },
    ]);
  });

  it('on the reference driver: the outbox keeps queue order across rewrites; requeue appends', async () => {
    const { store } = runtime();
    for (const id of ['a', 'b', 'c']) expect((await store.commit(ns, { writes: [write(id, null)] })).ok).toBe(true);
    expect((await store.commit(ns, { writes: [write('a', 1)] })).ok).toBe(true);
    expect((await store.listPendingSync(ns.dbName, { limit: 10 })).map((p) => [p.id, p.seq])).toEqual([['a', 3], ['b', 1], ['c', 2]]);
    expect(await store.deadLetterSync(ns, 'a', 3, 'down')).toBe(true);
    expect(await store.requeueDeadLetters(ns.dbName)).toBe(1);
    expect((await store.listPendingSync(ns.dbName, { limit: 10 })).map((p) => p.id)).toEqual(['b', 'c', 'a']);
    expect(await store.listPendingDatabases()).toEqual([ns.dbName]);
    expect(await store.listDeadLetterDatabases()).toEqual([]);
  });
});

describe('plans: maintenance', () => {
  it('pruneVersions reads the head first, then counts below the cap at its ov; no head, no second step', () => {
    const tx = plans.pruneVersions(ns, 'a', 10);
    expect(decide(tx)).toEqual({ effects: [], result: 0 });
    const step = tx.decide(rows({ heads: heads({ a: head(4) }) }));
    if (isDecision(step)) throw new Error('expected a second step');
    expect(step.reads).toEqual({ versionCounts: [{ ...ns, id: 'a', belowOv: 4 }] });
    expect(decide(step, rows({ versionCounts: new Map([[refKey(ns, 'a'), 3]]) }))).toEqual({ effects: [{ kind: 'deleteRecord', ns, id: 'a', tables: ['versions'], belowOv: 4 }], result: 3 });
    expect(decide(step, rows())).toEqual({ effects: [], result: 0 });
  });

  it('importRecords raises the cv to the highest given, never lowers it, and marks the records unless sync is false', () => {
    const h = { id: 'a', ov: 2, cv: 7, deleted: false, createdAt: at, updatedAt: at, deletedAt: null, meta: {}, body: '{}', hash: null };
    const v = { id: 'x', ov: 1, cv: 9, op: 'create' as const, at, actor: 'a', reason: null, deleted: false, size: 2, body: null, archived: true, meta: {}, hash: 'h' };
    const d = decide(plans.importRecords(ns, { records: [{ head: h, versions: [v] }], claims: [{ key: 'k', id: 'a' }] }), rows({ collectionVersions: new Map([[nsKey(ns), 3]]) }));
    expect(d.effects).toEqual([
      { kind: 'deleteRecord', ns, id: 'a', tables: ['versions'] },
      { kind: 'putHead', ns, id: 'a', head: { ov: 2, cv: 7, deleted: false, createdAt: at, updatedAt: at, deletedAt: null, meta: {}, body: '{}', hash: null } },
      { kind: 'putVersion', ns, version: { ...v, id: 'a' } },
      { kind: 'putOutbox', ns, id: 'a', seq: 7 },
      { kind: 'putClaim', ns, key: 'k', id: 'a' },
      { kind: 'setCollectionVersion', ns, cv: 9 },
    ]);
    const lower = decide(plans.importRecords(ns, { records: [{ head: h, versions: [] }], sync: false, collectionVersion: 8 }), rows({ collectionVersions: new Map([[nsKey(ns), 30]]) }));
    expect(kinds(lower.effects)).toEqual(['deleteRecord', 'putHead']);
    expect(decide(plans.importRecords(ns, { records: [] })).effects).toEqual([]);
  });

  it('replaceCollections: with wholeDatabase a first step finds the other collections; onlyIfEmpty counts them all', () => {
    const options = { countersDb: 'an', wholeDatabase: true, onlyIfEmpty: true };
    const tx = plans.replaceCollections('db1', [{ collection: 'a', from: 'stage' }], options);
    expect(tx.reads).toEqual({ namespaces: ['db1'] });
    const step = tx.decide(rows({ namespaces: [{ dbName: 'db1', collection: 'a', cv: 1 }, { dbName: 'db1', collection: 'b', cv: 4 }] }));
    if (isDecision(step)) throw new Error('expected a second step');
    expect(step.reads).toEqual({ headCounts: [{ dbName: 'db1', collection: 'a' }, { dbName: 'db1', collection: 'b' }] });
    const counts = (a: number, b: number) => rows({ headCounts: new Map([[nsKey({ dbName: 'db1', collection: 'a' }), a], [nsKey({ dbName: 'db1', collection: 'b' }), b]]) });
    expect(decide(step, counts(0, 2))).toEqual({ effects: [], result: { replaced: false, held: 2 } });
    const done = decide(step, counts(0, 0));
    expect(done.result).toEqual({ replaced: true, held: 0 });
    expect(kinds(done.effects)).toEqual(['clearNamespace', 'deleteCounters', 'copyNamespace', 'clearNamespace', 'deleteCounters']);
    // Without wholeDatabase: one step, the listed collections only.
    expect(plans.replaceCollections('db1', [{ collection: 'a', from: null }], { ...options, wholeDatabase: false }).reads).toEqual({ headCounts: [{ dbName: 'db1', collection: 'a' }] });
  });

  it('pruneCounterWindows removes each window read', () => {
    const d = decide(plans.pruneCounterWindows('db1', 'c', { day: 'day:2026-01-02' }), rows({ counterWindows: ['day:2025-12-31', 'day:2026-01-01'] }));
    expect(d.result).toBe(2);
    expect(d.effects).toEqual([
      { kind: 'deleteCounters', dbName: 'db1', collection: 'c', window: 'day:2025-12-31' },
      { kind: 'deleteCounters', dbName: 'db1', collection: 'c', window: 'day:2026-01-01' },
    ]);
  });

  it('the reference driver applies a transaction whole or not at all', async () => {
    const { store } = runtime();
    const h = { id: 'a', ov: 1, cv: 0, deleted: false, createdAt: at, updatedAt: at, deletedAt: null, meta: {}, body: '{}', hash: null };
    const v = { id: 'a', ov: 1, cv: 0, op: 'create' as const, at, actor: 'a', reason: null, deleted: false, size: 2, body: '{}', archived: false, meta: {}, hash: 'h' };
    // The same entry twice: the second insert fails, and the head and first entry written before it go too.
    await expect(store.importRecords(ns, { records: [{ head: h, versions: [v, v] }], claims: [{ key: 'k', id: 'a' }] })).rejects.toThrow(/exists/);
    expect(await store.getHead(ns, 'a')).toBeNull();
    expect(await store.getVersion(ns, 'a', 1)).toBeNull();
    expect(await store.getClaim(ns, 'k')).toBeNull();
    expect(await store.listCollections(ns.dbName)).toEqual([]);
    expect(await store.countPendingSync(ns.dbName)).toBe(0);
  });
});

describe('plans: upload intents', () => {
  const u = (token: string) => ({ id: 'r1', bucket: 'b', key: 'k', token });
  const ref = (token: string) => ({ bucket: 'b', key: 'k', token });
  const row = (token: string, ageMs: number, cleaning = false, id = 'r1'): UploadRow => ({ id, token, cleaning, ageMs });
  const on = (...list: UploadRow[]) => rows({ uploads: new Map([[uploadKey(ns, 'b', 'k'), list]]) });

  it('recordUploads is refused whole on a marked key; renewing an intent keeps the record it was recorded for', () => {
    expect(decide(plans.recordUploads(ns, [{ ...u('t'), key: 'other' }, u('t')]), on(row('m', 0, true)))).toEqual({ effects: [], result: { ok: false, key: 'k' } });
    const renewed = decide(plans.recordUploads(ns, [{ ...u('t'), id: 'r2' }]), on(row('t', 50)));
    expect(renewed.effects).toEqual([{ kind: 'putUpload', ns, bucket: 'b', key: 'k', row: { id: 'r1', token: 't', cleaning: false }, stamp: 'now' }]);
  });

  it('claimUploadCleanup: every branch of the port rules', () => {
    const claim = (token: string, read: ReadRows, own = false) => decide(plans.claimUploadCleanup(ns, ref(token), { olderThanMs: 100, markToken: 'm', own }), read);
    const mark = { kind: 'putUpload', ns, bucket: 'b', key: 'k', row: { id: 'r1', token: 'm', cleaning: true }, stamp: 'now' };
    const remove = (token: string) => ({ kind: 'deleteUpload', ns, bucket: 'b', key: 'k', token });
    // Nothing named: nothing happens.
    expect(claim('t', on(row('x', 500)))).toEqual({ effects: [], result: false });
    // Every intent stale: all go, the key is marked.
    expect(claim('t', on(row('t', 500), row('x', 100)))).toEqual({ effects: [remove('t'), remove('x'), mark], result: true });
    // Young and not its own: nothing; its own: marked.
    expect(claim('t', on(row('t', 10)))).toEqual({ effects: [], result: false });
    expect(claim('t', on(row('t', 10)), true)).toEqual({ effects: [remove('t'), mark], result: true });
    // Another write's younger intent keeps the key: only the own (or stale) intent goes.
    expect(claim('t', on(row('t', 500), row('x', 10)))).toEqual({ effects: [remove('t')], result: false });
    expect(claim('t', on(row('t', 10), row('x', 10)))).toEqual({ effects: [], result: false });
    // A mark: renewed by its holder, taken over once stale, kept while young.
    expect(claim('m', on(row('m', 10, true)))).toEqual({ effects: [remove('m'), mark], result: true });
    expect(claim('z', on(row('z', 500, true)))).toEqual({ effects: [remove('z'), mark], result: true });
    expect(claim('z', on(row('z', 10, true)))).toEqual({ effects: [], result: false });
  });

  it('releaseUploadCleanup ends only its own mark; with retry the mark becomes an intent stamped long ago', () => {
    expect(decide(plans.releaseUploadCleanup(ns, { bucket: 'b', key: 'k' }, 'm'), on(row('x', 0, true))).effects).toEqual([]);
    expect(decide(plans.releaseUploadCleanup(ns, { bucket: 'b', key: 'k' }, 'm'), on(row('m', 0)))).toEqual({ effects: [], result: undefined });
    expect(decide(plans.releaseUploadCleanup(ns, { bucket: 'b', key: 'k' }, 'm'), on(row('m', 0, true))).effects).toEqual([{ kind: 'deleteUpload', ns, bucket: 'b', key: 'k', token: 'm' }]);
    expect(decide(plans.releaseUploadCleanup(ns, { bucket: 'b', key: 'k' }, 'm', { retry: true }), on(row('m', 0, true, 'r9'))).effects).toEqual([
      { kind: 'putUpload', ns, bucket: 'b', key: 'k', row: { id: 'r9', token: 'm', cleaning: false }, stamp: 'past' },
    ]);
  });

  it('on the reference driver, ages come from the store clock', async () => {
    const { store, advance } = runtime();
    const token = randomUUID();
    expect(await store.recordUploads(ns, [u(token)])).toEqual({ ok: true });
    expect(await store.listStaleUploads(ns.dbName, { olderThanMs: 1000, limit: 10 })).toEqual([]);
    advance(1000);
    expect(await store.listStaleUploads(ns.dbName, { olderThanMs: 1000, limit: 10 })).toEqual([{ collection: ns.collection, id: 'r1', bucket: 'b', key: 'k', token, cleaning: false }]);
    expect(await store.claimUploadCleanup(ns, ref(token), { olderThanMs: 1000, markToken: 'm' })).toBe(true);
    expect(await store.recordUploads(ns, [u('late')])).toEqual({ ok: false, key: 'k' });
  });
});

describe('plans: leases', () => {
  const lock = (owner: string, expired: boolean) => rows({ locks: new Map([[refKey(ns, 'job'), { owner, expired }]]) });

  it('acquireLock takes a free, expired or own lease, never another live one; a lease taken outlives a server crash, one given back need not', () => {
    const take = { kind: 'putLock', ns, key: 'job', owner: 'A', leaseMs: 500 };
    expect(plans.acquireLock(ns, 'job', 'A', 500).durability).toBe('withClients');
    expect(plans.releaseLock(ns, 'job', 'A').durability).toBe('never');
    expect(decide(plans.acquireLock(ns, 'job', 'A', 500))).toEqual({ effects: [take], result: true });
    expect(decide(plans.acquireLock(ns, 'job', 'A', 500), lock('A', false))).toEqual({ effects: [take], result: true });
    expect(decide(plans.acquireLock(ns, 'job', 'A', 500), lock('B', true))).toEqual({ effects: [take], result: true });
    expect(decide(plans.acquireLock(ns, 'job', 'A', 500), lock('B', false))).toEqual({ effects: [], result: false });
  });

  it('releaseLock removes only the owner lease', () => {
    expect(decide(plans.releaseLock(ns, 'job', 'A'), lock('B', false)).effects).toEqual([]);
    expect(decide(plans.releaseLock(ns, 'job', 'A'), lock('A', true)).effects).toEqual([{ kind: 'deleteLock', ns, key: 'job' }]);
  });

  it('on the reference driver, a lease expires by the store clock', async () => {
    const { store, advance } = runtime();
    expect(await store.acquireLock(ns, 'job', 'A', 1000)).toBe(true);
    advance(999);
    expect(await store.acquireLock(ns, 'job', 'B', 1000)).toBe(false);
    advance(1);
    expect(await store.acquireLock(ns, 'job', 'B', 1000)).toBe(true);
    expect(await store.acquireLock(ns, 'job', 'A', 1000)).toBe(false);
  });
});
