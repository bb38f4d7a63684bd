import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FilterNode } from '../../core/foundation/filter-tree.js';
import type {
  Actor,
  CounterDelta,
  CounterWindow,
  HeadRow,
  IndexedValue,
  IndexStore,
  Namespace,
  RecordWrite,
  SortField,
  VersionOp,
  VersionRow,
} from '../../core/contracts/index-store.js';
import { matches } from '../../core/foundation/filter.js';

/**
 * The index store port's conformance suite. Every adapter runs it through a ten-line test file:
 * `indexStoreConformance('sqlite', async () => ({ store, cleanup }))`.
 *
 * It checks only what the TSDoc of `core/contracts/index-store.ts` promises, never how an adapter
 * stores things. `open` is called once per test and must return an empty, ready store; every test
 * also uses fresh random namespaces and ids, so tests run in any order and may share a server.
 */
export function indexStoreConformance(
  name: string,
  open: () => Promise<{ store: IndexStore; cleanup: () => Promise<void> }>,
): void {
  describe(`index store conformance: ${name}`, () => {
    let store: IndexStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await open());
    });
    afterEach(async () => {
      await cleanup();
    });

    const commitOk = async (ns: Namespace, writes: RecordWrite | readonly RecordWrite[], counters?: readonly CounterDelta[]) => {
      const result = await store.commit(ns, { writes: Array.isArray(writes) ? writes : [writes], ...(counters ? { counters } : {}) });
      if (!result.ok) throw new Error(`Expected the commit to succeed, got ${JSON.stringify(result)}`);
      return result.cvs;
    };
    const seedFilterRows = (ns: Namespace) => seedFilterRowsInto(store, ns);

    describe('heads and commit', () => {
      it('getHead returns null for a missing record, in a used and in an unused namespace', async () => {
        const ns = freshNs();
        expect(await store.getHead(ns, randomUUID())).toBeNull();
        await commitOk(ns, create(randomUUID()));
        expect(await store.getHead(ns, randomUUID())).toBeNull();
      });

      it('creates with expectedOv null, then updates when expectedOv matches', async () => {
        const ns = freshNs();
        const id = randomUUID();
        const first = create(id, { meta: { tier: 'gold' } });
        const [cv1] = await commitOk(ns, first);
        expect(await store.getHead(ns, id)).toEqual(expectedHead(first, cv1!));

        const second = update(id, 1, { meta: { tier: 'silver', n: 2 } });
        const [cv2] = await commitOk(ns, second);
        expect(await store.getHead(ns, id)).toEqual(expectedHead(second, cv2!));
        expect((await store.getVersion(ns, id, 1))?.body).toBe(first.head!.body);
        expect((await store.getVersion(ns, id, 2))?.body).toBe(second.head!.body);
      });

      it('refuses an update whose expectedOv is stale, names it, and writes nothing', async () => {
        const ns = freshNs();
        const id = randomUUID();
        await commitOk(ns, create(id));
        const [cv2] = await commitOk(ns, update(id, 1));
        const seq = await store.getPendingSeq(ns, id);
        expect(seq).not.toBeNull();
        expect(await store.completeSync(ns, id, { archivedOvs: [], seq: seq! })).toBe(true);
        const headBefore = await store.getHead(ns, id);

        const result = await store.commit(ns, {
          writes: [update(id, 1, { body: '{"stale":true}' })],
          counters: [{ dbName: ns.dbName, collection: ns.collection, deltas: { edits: 1 } }],
        });
        expect(result).toEqual({ ok: false, reason: 'version', index: 0, id, expectedOv: 1, actualOv: 2 });
        expect(await store.getHead(ns, id)).toEqual(headBefore);
        expect(await store.getVersion(ns, id, 2)).toMatchObject({ cv: cv2, body: headBefore!.body });
        expect(await store.listVersions(ns, id, { limit: 10 })).toHaveLength(2);
        expect(await store.getPendingSeq(ns, id)).toBeNull();
        expect(await store.getCounters(ns.dbName, ns.collection)).toEqual({});
      });

      it('refuses an update of a missing record with actualOv null', async () => {
        const ns = freshNs();
        const id = randomUUID();
        const result = await store.commit(ns, { writes: [update(id, 1)] });
        expect(result).toEqual({ ok: false, reason: 'version', index: 0, id, expectedOv: 1, actualOv: null });
        expect(await store.getHead(ns, id)).toBeNull();
        expect(await store.getPendingSeq(ns, id)).toBeNull();
      });

      it('refuses to create a record that exists, even soft-deleted', async () => {
        const ns = freshNs();
        const id = randomUUID();
        await commitOk(ns, create(id));
        expect(await store.commit(ns, { writes: [create(id, { body: '{"again":1}' })] })).toEqual({
          ok: false, reason: 'version', index: 0, id, expectedOv: null, actualOv: 1,
        });
        await commitOk(ns, update(id, 1, { deleted: true, op: 'delete' }));
        expect(await store.commit(ns, { writes: [create(id)] })).toEqual({
          ok: false, reason: 'version', index: 0, id, expectedOv: null, actualOv: 2,
        });
        const head = await store.getHead(ns, id);
        expect(head).toMatchObject({ ov: 2, deleted: true });
      });

      it('applies a batch atomically: when the third write fails nothing is written, no cv is used, counters and outbox stay', async () => {
        const ns = freshNs();
        const existing = randomUUID();
        const [cv0] = await commitOk(ns, create(existing), [{ dbName: ns.dbName, collection: ns.collection, deltas: { records: 1 } }]);
        expect(await store.completeSync(ns, existing, { archivedOvs: [], seq: (await store.getPendingSeq(ns, existing))! })).toBe(true);
        const countersBefore = await store.getCounters(ns.dbName, ns.collection);
        expect(countersBefore).toEqual({ records: 1 });

        const a = randomUUID();
        const b = randomUUID();
        const result = await store.commit(ns, {
          writes: [create(a), create(b), update(existing, 7)],
          counters: [
            { dbName: ns.dbName, collection: ns.collection, deltas: { records: 2 } },
            { dbName: ns.dbName, collection: 'other', deltas: { records: 5 } },
          ],
        });
        expect(result).toEqual({ ok: false, reason: 'version', index: 2, id: existing, expectedOv: 7, actualOv: 1 });
        expect(await store.getHead(ns, a)).toBeNull();
        expect(await store.getHead(ns, b)).toBeNull();
        expect(await store.getVersion(ns, a, 1)).toBeNull();
        expect(await store.listHeadIds(ns, { limit: 10 })).toEqual([existing]);
        expect(await store.getCounters(ns.dbName, ns.collection)).toEqual(countersBefore);
        expect(await store.getCounters(ns.dbName, 'other')).toEqual({});
        expect(await store.listPendingSync(ns.dbName, { limit: 10 })).toEqual([]);
        expect(await store.getPendingSeq(ns, a)).toBeNull();
        // The failed batch consumed no collection version: the next write gets the one after cv0.
        expect(await commitOk(ns, create(randomUUID()))).toEqual([cv0! + 1]);
      });

      it('applies the writes of a batch in order, so a batch may create and then update one record', async () => {
        const ns = freshNs();
        const id = randomUUID();
        const other = randomUUID();
        const writes = [create(id), create(other), update(id, 1, { meta: { step: 2 } })];
        const cvs = await commitOk(ns, writes);
        expect(cvs).toEqual([0, 1, 2]);
        expect(await store.getHead(ns, id)).toEqual(expectedHead(writes[2]!, 2));
        expect(await store.getHead(ns, other)).toEqual(expectedHead(writes[1]!, 1));
        expect((await store.listVersions(ns, id, { limit: 10 })).map((v) => [v.ov, v.cv])).toEqual([[2, 2], [1, 0]]);
      });

      it('accepts an empty batch', async () => {
        const ns = freshNs();
        expect(await store.commit(ns, { writes: [] })).toEqual({ ok: true, cvs: [] });
      });
    });

    // Commits issued together may be grouped into one transaction (core/store/group-commit.ts):
    // each must still be decided alone, in the order issued, and answered alone.
    describe('concurrent commits', () => {
      it('16 concurrent writers on their own records: the one with a stale expectedOv is refused alone, the other 15 commit', async () => {
        const ns = freshNs();
        const ids = Array.from({ length: 16 }, () => randomUUID());
        const base = await commitOk(ns, ids.map((id) => create(id)));
        const counters = [{ dbName: ns.dbName, collection: ns.collection, deltas: { updated: 1 } }];
        const writes = ids.map((id, i) => update(id, i === 7 ? 0 : 1, { body: `{"writer":${i}}` }));
        const results = await Promise.all(writes.map((w) => store.commit(ns, { writes: [w], counters })));
        expect(results[7]).toEqual({ ok: false, reason: 'version', index: 0, id: ids[7], expectedOv: 0, actualOv: 1 });
        const accepted = results.filter((r, i) => i !== 7);
        expect(accepted.every((r) => r.ok)).toBe(true);
        // Every accepted write got its own cv, in the order the writers issued them, after the creates'.
        const cvs = accepted.flatMap((r) => (r.ok ? r.cvs : []));
        expect(cvs).toEqual(Array.from({ length: 15 }, (_, i) => base.at(-1)! + 1 + i));
        for (const [i, id] of ids.entries()) {
          const head = await store.getHead(ns, id);
          if (i === 7) expect(head).toMatchObject({ ov: 1, body: create(id).head!.body });
          else expect(head).toEqual(expectedHead(writes[i]!, (results[i] as { cvs: number[] }).cvs[0]!));
        }
        expect(await store.getCounters(ns.dbName, ns.collection)).toEqual({ updated: 15 });
        expect(await store.getCollectionVersion(ns)).toBe(base.at(-1)! + 15);
      });

      it('each write sees the ones issued before it: a chain on one record, claims and intents taken in order', async () => {
        const ns = freshNs();
        const [a, b, c, d, e, f] = [randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID()];
        const t = randomUUID();
        const intent = { bucket: 'b', key: `content/${ns.collection}/${f}/f/${'a'.repeat(64)}/blob.bin`, token: t };
        await commitOk(ns, [create(a), { ...create(b), claims: [{ key: 'held' }] }]);
        expect(await store.recordUploads(ns, [{ id: f, ...intent }])).toEqual({ ok: true });
        const results = await Promise.all([
          store.commit(ns, { writes: [update(a, 1, { body: '{"step":2}' })] }),
          store.commit(ns, { writes: [update(a, 2, { body: '{"step":3}' })] }),
          // Read before the two above: stale by the time it is decided.
          store.commit(ns, { writes: [update(a, 1, { body: '{"late":true}' })] }),
          store.commit(ns, { writes: [{ ...create(c), claims: [{ key: 'k' }] }] }),
          store.commit(ns, { writes: [{ ...create(d), claims: [{ key: 'k' }] }] }),
          // b gives its claim back by being deleted; e then takes it.
          store.commit(ns, { writes: [update(b, 1, { deleted: true, op: 'delete' })] }),
          store.commit(ns, { writes: [{ ...create(e), claims: [{ key: 'held' }] }] }),
          store.commit(ns, { writes: [{ ...create(f), uploads: [intent] }] }),
          store.commit(ns, { writes: [{ ...create(randomUUID()), uploads: [intent] }] }),
        ]);
        expect(results.map((r) => (r.ok ? 'ok' : r.reason))).toEqual(['ok', 'ok', 'version', 'ok', 'claim', 'ok', 'ok', 'ok', 'upload']);
        expect(results[2]).toMatchObject({ actualOv: 3 });
        expect(results[4]).toMatchObject({ heldBy: c });
        expect(await store.getHead(ns, a)).toMatchObject({ ov: 3, body: '{"step":3}' });
        expect((await store.listVersions(ns, a, { limit: 10 })).map((v) => v.body)).toEqual(['{"step":3}', '{"step":2}', create(a).head!.body]);
        expect(await store.getHead(ns, d)).toBeNull();
        expect(await store.getClaim(ns, 'k')).toBe(c);
        expect(await store.getClaim(ns, 'held')).toBe(e);
        expect(await store.getHead(ns, f)).toMatchObject({ ov: 1 });
        const cvs = results.flatMap((r) => (r.ok ? r.cvs : []));
        expect(cvs).toEqual([2, 3, 4, 5, 6, 7]);
      });

      it('completed syncs issued together: each record is archived and leaves the outbox; a second one of a record finds its seq gone', async () => {
        const ns = freshNs();
        const ids = Array.from({ length: 5 }, () => randomUUID());
        const seqs = await commitOk(ns, ids.map((id) => create(id)));
        const results = await Promise.all([
          ...ids.map((id, i) => store.completeSync(ns, id, { archivedOvs: [1], seq: seqs[i]! })),
          store.completeSync(ns, ids[0]!, { archivedOvs: [1], seq: seqs[0]! }),
        ]);
        expect(results).toEqual([true, true, true, true, true, false]);
        expect(await store.listPendingSync(ns.dbName, { limit: 10 })).toEqual([]);
        for (const id of ids) {
          expect(await store.listUnarchived(ns, id)).toEqual([]);
          expect(await store.getVersion(ns, id, 1)).toMatchObject({ archived: true });
        }
      });

      it('concurrent writers in several namespaces each count their own collection versions', async () => {
        const spaces = [freshNs(), freshNs(), freshNs()];
        const results = await Promise.all(spaces.flatMap((ns) => [0, 1, 2].map(() => store.commit(ns, { writes: [create(randomUUID())] }))));
        expect(results.map((r) => (r.ok ? r.cvs : r))).toEqual([[0], [1], [2], [0], [1], [2], [0], [1], [2]]);
        for (const ns of spaces) expect(await store.getCollectionVersion(ns)).toBe(2);
      });
    });

    describe('collection versions', () => {
      it('start at 0 and grow by one per write, independently per namespace', async () => {
        const nsA = freshNs();
        const nsB = { dbName: nsA.dbName, collection: `${nsA.collection}_b` };
        const nsC = { dbName: `${nsA.dbName}_c`, collection: nsA.collection };
        const ids = [randomUUID(), randomUUID(), randomUUID()] as const;

        expect(await commitOk(nsA, create(ids[0]))).toEqual([0]);
        expect(await commitOk(nsB, create(ids[0]))).toEqual([0]);
        expect(await commitOk(nsA, [create(ids[1]), create(ids[2])])).toEqual([1, 2]);
        expect(await commitOk(nsC, create(ids[1]))).toEqual([0]);
        expect(await commitOk(nsA, update(ids[0], 1))).toEqual([3]);
        expect(await commitOk(nsB, update(ids[0], 1))).toEqual([1]);
        // A soft delete and a hard delete are writes too.
        expect(await commitOk(nsA, update(ids[1], 1, { deleted: true, op: 'delete' }))).toEqual([4]);
        expect(await commitOk(nsA, hardDelete(ids[2], 1))).toEqual([5]);
        expect(await commitOk(nsC, create(ids[2]))).toEqual([1]);

        expect((await store.getHead(nsA, ids[0]))?.cv).toBe(3);
        expect((await store.getVersion(nsA, ids[0], 2))?.cv).toBe(3);
        expect((await store.getVersion(nsA, ids[0], 1))?.cv).toBe(0);
        expect((await store.getHead(nsB, ids[0]))?.cv).toBe(1);
        expect((await store.getHead(nsA, ids[1]))?.cv).toBe(4);
        expect((await store.getHead(nsC, ids[2]))?.cv).toBe(1);
      });
    });

    describe('deletes', () => {
      it('a soft delete keeps the head, flagged deleted, and its versions', async () => {
        const ns = freshNs();
        const id = randomUUID();
        await commitOk(ns, create(id));
        const del = update(id, 1, { deleted: true, op: 'delete' });
        const [cv] = await commitOk(ns, del);
        expect(await store.getHead(ns, id)).toEqual(expectedHead(del, cv!));
        expect((await store.listVersions(ns, id, { limit: 10 })).map((v) => [v.ov, v.op, v.deleted])).toEqual([
          [2, 'delete', true],
          [1, 'create', false],
        ]);
      });

      it('a write with head null removes the head and every version; the id can then be created afresh', async () => {
        const ns = freshNs();
        const id = randomUUID();
        const keep = randomUUID();
        await commitOk(ns, [create(id), create(keep)]);
        await commitOk(ns, update(id, 1));
        await commitOk(ns, update(id, 2));
        const [cv] = await commitOk(ns, hardDelete(id, 3));

        expect(await store.getHead(ns, id)).toBeNull();
        for (const ov of [1, 2, 3]) expect(await store.getVersion(ns, id, ov)).toBeNull();
        expect(await store.listVersions(ns, id, { limit: 10 })).toEqual([]);
        expect(await store.findVersionAt(ns, id, { cv: cv! })).toBeNull();
        expect(await store.findVersionAt(ns, id, { at: ts(1000) })).toBeNull();
        expect(await store.listUnarchived(ns, id)).toEqual([]);
        expect(await store.listHeadIds(ns, { limit: 10 })).toEqual([keep]);
        expect(await allHeads(store, ns, true)).toEqual([keep]);
        // The blobs of the removed record must be purged, so the outbox lists it.
        expect(await store.getPendingSeq(ns, id)).not.toBeNull();
        expect(await store.getHead(ns, keep)).not.toBeNull();

        const again = create(id, { body: '{"reborn":true}' });
        const [cv2] = await commitOk(ns, again);
        expect(await store.getHead(ns, id)).toEqual(expectedHead(again, cv2!));
        expect((await store.listVersions(ns, id, { limit: 10 })).map((v) => v.ov)).toEqual([1]);
        expect((await store.getVersion(ns, id, 1))?.body).toBe('{"reborn":true}');
      });

      it('a hard delete with a stale expectedOv is refused and removes nothing', async () => {
        const ns = freshNs();
        const id = randomUUID();
        await commitOk(ns, create(id));
        await commitOk(ns, update(id, 1));
        expect(await store.commit(ns, { writes: [hardDelete(id, 1)] })).toEqual({ ok: false, reason: 'version', index: 0, id, expectedOv: 1, actualOv: 2 });
        expect((await store.getHead(ns, id))?.ov).toBe(2);
        expect(await store.listVersions(ns, id, { limit: 10 })).toHaveLength(2);
      });
    });

    describe('version entries', () => {
      it('round-trip every field, and bodies byte for byte', async () => {
        const ns = freshNs();
        for (const [i, body] of TRICKY_BODIES.entries()) {
          const id = randomUUID();
          const first = create(id, {
            body,
            meta: TRICKY_META,
            actor: 'actör 🎭 "quoted" \\ back',
            reason: null,
            at: '2024-02-29T23:59:59.999Z',
            createdAt: '2024-02-29T23:59:59.999Z',
          });
          const [cv1] = await commitOk(ns, first);
          expect(await store.getHead(ns, id), `head of body #${i}`).toEqual(expectedHead(first, cv1!));
          expect(await store.getVersion(ns, id, 1), `version of body #${i}`).toEqual(expectedVersion(first, cv1!));

          const second = update(id, 1, { body: `${body} `, reason: 'line one\nline two — ✓', op: VERSION_OP_CYCLE[i % VERSION_OP_CYCLE.length]! });
          const [cv2] = await commitOk(ns, second);
          expect(await store.getVersion(ns, id, 2), `second version of body #${i}`).toEqual(expectedVersion(second, cv2!));
          expect(await store.getVersion(ns, id, 1)).toEqual(expectedVersion(first, cv1!));
          expect((await store.listVersions(ns, id, { limit: 10 }))[0]).toEqual(expectedVersion(second, cv2!));
          expect((await store.findVersionAt(ns, id, { cv: cv1! }))?.body).toBe(body);
        }
      });

      it('record every op', async () => {
        const ns = freshNs();
        const id = randomUUID();
        const ops: VersionOp[] = ['create', 'update', 'enrich', 'delete', 'restore'];
        for (const [i, op] of ops.entries()) {
          const write = i === 0 ? create(id) : update(id, i, { op, deleted: op === 'delete' });
          await commitOk(ns, write);
        }
        expect((await store.listVersions(ns, id, { limit: 10 })).map((v) => v.op)).toEqual([...ops].reverse());
      });

      it('getVersion returns null for a missing ov or record', async () => {
        const ns = freshNs();
        const id = randomUUID();
        await commitOk(ns, create(id));
        expect(await store.getVersion(ns, id, 2)).toBeNull();
        expect(await store.getVersion(ns, id, 0)).toBeNull();
        expect(await store.getVersion(ns, randomUUID(), 1)).toBeNull();
      });

      it('findVersionAt by time: exact, between, before the first, after the last', async () => {
        const ns = freshNs();
        const id = randomUUID();
        await commitOk(ns, create(id, { at: '2024-03-01T10:00:00.000Z' }));
        await commitOk(ns, update(id, 1, { at: '2024-03-01T10:00:05.000Z' }));
        await commitOk(ns, update(id, 2, { at: '2024-03-01T10:00:05.001Z' }));
        await commitOk(ns, update(id, 3, { at: '2024-03-02T00:00:00.000Z' }));

        const ovAt = async (at: string) => (await store.findVersionAt(ns, id, { at }))?.ov ?? null;
        expect(await ovAt('2024-03-01T09:59:59.999Z')).toBeNull();
        expect(await ovAt('2024-03-01T10:00:00.000Z')).toBe(1);
        expect(await ovAt('2024-03-01T10:00:04.999Z')).toBe(1);
        expect(await ovAt('2024-03-01T10:00:05.000Z')).toBe(2);
        expect(await ovAt('2024-03-01T10:00:05.001Z')).toBe(3);
        expect(await ovAt('2024-03-01T23:00:00.000Z')).toBe(3);
        expect(await ovAt('2024-03-02T00:00:00.000Z')).toBe(4);
        expect(await ovAt('2030-01-01T00:00:00.000Z')).toBe(4);
        expect(await store.findVersionAt(ns, randomUUID(), { at: '2030-01-01T00:00:00.000Z' })).toBeNull();
        const row = await store.findVersionAt(ns, id, { at: '2024-03-01T10:00:05.000Z' });
        expect(row).toEqual(await store.getVersion(ns, id, 2));
      });

      it('findVersionAt by collection version, with other records writing in between', async () => {
        const ns = freshNs();
        const id = randomUUID();
        const noise = randomUUID();
        const [n0] = await commitOk(ns, create(noise));
        const [c1] = await commitOk(ns, create(id));
        const [n1] = await commitOk(ns, update(noise, 1));
        const [c2] = await commitOk(ns, update(id, 1));
        await commitOk(ns, update(noise, 2));
        await commitOk(ns, update(noise, 3));
        const [c3] = await commitOk(ns, update(id, 2));

        const ovAt = async (cv: number) => (await store.findVersionAt(ns, id, { cv }))?.ov ?? null;
        expect(await ovAt(n0!)).toBeNull();
        expect(await ovAt(c1!)).toBe(1);
        expect(await ovAt(n1!)).toBe(1);
        expect(await ovAt(c2!)).toBe(2);
        expect(await ovAt(c3! - 1)).toBe(2);
        expect(await ovAt(c3!)).toBe(3);
        expect(await ovAt(c3! + 1000)).toBe(3);
        expect(await store.findVersionAt(ns, id, { cv: c2! })).toEqual(await store.getVersion(ns, id, 2));
      });

      it('listVersions lists newest first and pages with beforeOv', async () => {
        const ns = freshNs();
        const id = randomUUID();
        await commitOk(ns, create(id));
        for (let ov = 1; ov < 7; ov++) await commitOk(ns, update(id, ov));
        await commitOk(ns, create(randomUUID()));

        const ovs = async (options: { beforeOv?: number; limit: number }) => (await store.listVersions(ns, id, options)).map((v) => v.ov);
        expect(await ovs({ limit: 100 })).toEqual([7, 6, 5, 4, 3, 2, 1]);
        expect(await ovs({ limit: 3 })).toEqual([7, 6, 5]);
        expect(await ovs({ beforeOv: 5, limit: 3 })).toEqual([4, 3, 2]);
        expect(await ovs({ beforeOv: 2, limit: 3 })).toEqual([1]);
        expect(await ovs({ beforeOv: 1, limit: 3 })).toEqual([]);
        expect(await ovs({ beforeOv: 100, limit: 2 })).toEqual([7, 6]);
        expect(await store.listVersions(ns, randomUUID(), { limit: 10 })).toEqual([]);

        const paged: number[] = [];
        let before: number | undefined;
        // Bounded: a cursor that does not advance must fail the test, not spin forever.
        for (let pages = 0; pages < 20; pages++) {
          const page = await ovs({ limit: 2, ...(before === undefined ? {} : { beforeOv: before }) });
          if (page.length === 0) break;
          paged.push(...page);
          before = page[page.length - 1];
        }
        expect(paged).toEqual([7, 6, 5, 4, 3, 2, 1]);
      });

      it('listHistory gives the page listVersions gives, without indexed values, document or hash, and follows archival', async () => {
        const ns = freshNs();
        const id = randomUUID();
        const other = randomUUID();
        const typed: Actor = { type: 'agent', identifier: 'bot-7', name: 'Bot' };
        await commitOk(ns, create(id, { meta: { tier: 'gold' }, actor: typed, reason: 'import' }));
        await commitOk(ns, update(id, 1, { op: 'enrich', reason: null, body: `{"bigger":"${'x'.repeat(300)}"}` }));
        await commitOk(ns, update(id, 2, { op: 'delete', deleted: true }));
        await commitOk(ns, update(id, 3, { op: 'restore' }));
        await commitOk(ns, create(other));

        const summary = (v: VersionRow) => ({
          id: v.id, ov: v.ov, cv: v.cv, op: v.op, at: v.at, actor: v.actor, reason: v.reason, deleted: v.deleted, size: v.size, archived: v.archived,
        });
        const compare = async (options: { beforeOv?: number; limit: number }) => {
          const history = await store.listHistory(ns, id, options);
          expect(history).toEqual((await store.listVersions(ns, id, options)).map(summary));
          for (const row of history) expect(Object.keys(row).sort()).toEqual(['actor', 'archived', 'at', 'cv', 'deleted', 'id', 'op', 'ov', 'reason', 'size']);
          return history;
        };
        expect((await compare({ limit: 10 })).map((v) => [v.ov, v.op, v.deleted, v.actor, v.reason])).toEqual([
          [4, 'restore', false, 'tester', null],
          [3, 'delete', true, 'tester', null],
          [2, 'enrich', false, 'tester', null],
          [1, 'create', false, typed, 'import'],
        ]);
        expect((await compare({ beforeOv: 3, limit: 1 })).map((v) => v.ov)).toEqual([2]);
        expect(await compare({ beforeOv: 1, limit: 5 })).toEqual([]);
        expect(await store.listHistory(ns, randomUUID(), { limit: 10 })).toEqual([]);
        expect(await store.listHistory(freshNs(), id, { limit: 10 })).toEqual([]);

        await store.completeSync(ns, id, { archivedOvs: [1, 2], seq: null });
        expect((await compare({ limit: 10 })).map((v) => [v.ov, v.archived])).toEqual([[4, false], [3, false], [2, true], [1, true]]);
      });
    });

    describe('listHeads', () => {
      it('filters like the in-memory evaluator (core/foundation/filter.ts matches)', async () => {
        const ns = freshNs();
        const rows = await seedFilterRows(ns);
        const mismatches: string[] = [];
        for (const filter of FILTERS) {
          for (const includeDeleted of [false, true]) {
            const expected = rows
              .filter((r) => (includeDeleted || !r.deleted) && matches(filter, r.meta))
              .map((r) => r.id)
              .sort(compareIds);
            const actual = (await store.listHeads(ns, { filter, includeDeleted, sort: { field: 'id', direction: 1 }, limit: 100 })).map(
              (h) => h.id,
            );
            if (JSON.stringify(actual) !== JSON.stringify(expected)) {
              mismatches.push(`${JSON.stringify(filter)} includeDeleted=${includeDeleted}: expected ${label(rows, expected)}, got ${label(rows, actual)}`);
            }
          }
        }
        expect(mismatches).toEqual([]);
      });

      // and[] is true and or[] is false; the public parser yields such nodes ({ $and: [{}] }).
      it('filters with empty and/or nodes like the in-memory evaluator', async () => {
        const ns = freshNs();
        const rows = await seedFilterRows(ns);
        for (const filter of EMPTY_GROUP_FILTERS) {
          const expected = rows.filter((r) => !r.deleted && matches(filter, r.meta)).map((r) => r.id).sort(compareIds);
          const actual = await store.listHeads(ns, { filter, includeDeleted: false, sort: { field: 'id', direction: 1 }, limit: 100 });
          expect(actual.map((h) => h.id), JSON.stringify(filter)).toEqual(expected);
        }
      });

      it('returns whole heads, and leaves deleted ones out unless includeDeleted', async () => {
        const ns = freshNs();
        const live = create(randomUUID(), { meta: TRICKY_META, body: TRICKY_BODIES[1]! });
        const gone = create(randomUUID(), { meta: { tier: 'gold' } });
        const cvs = await commitOk(ns, [live, gone]);
        const [delCv] = await commitOk(ns, update(gone.id, 1, { deleted: true, op: 'delete', meta: { tier: 'gold' } }));
        const query = { filter: null, sort: { field: 'id' as const, direction: 1 as const }, limit: 10 };

        expect(await store.listHeads(ns, { ...query, includeDeleted: false })).toEqual([expectedHead(live, cvs[0]!)]);
        const all = await store.listHeads(ns, { ...query, includeDeleted: true });
        expect(all.map((h) => h.id).sort(compareIds)).toEqual([live.id, gone.id].sort(compareIds));
        expect(all.find((h) => h.id === gone.id)).toMatchObject({ deleted: true, cv: delCv, ov: 2 });
        expect(await store.listHeads(ns, { ...query, includeDeleted: false, filter: eq('tier', 'gold') })).toEqual([]);
      });

      it('sorts by id, createdAt and updatedAt both ways, and keyset paging visits every row exactly once', async () => {
        const ns = freshNs();
        const created = ['2024-01-01T00:00:00.000Z', '2024-01-02T00:00:00.000Z', '2024-01-03T00:00:00.000Z', '2024-01-03T00:00:00.001Z'];
        const updated = ['2024-06-01T00:00:00.000Z', '2024-05-01T00:00:00.000Z', '2024-07-01T00:00:00.000Z'];
        const writes = Array.from({ length: 13 }, (_, i) =>
          create(randomUUID(), { createdAt: created[i % created.length]!, at: updated[i % updated.length]!, meta: { i } }),
        );
        await commitOk(ns, writes);
        // A deleted head, which only shows up with includeDeleted.
        const deletedId = randomUUID();
        await commitOk(ns, create(deletedId, { createdAt: created[1]!, at: updated[1]! }));
        await commitOk(ns, update(deletedId, 1, { deleted: true, op: 'delete', createdAt: created[1]!, at: updated[1]! }));
        await commitOk(freshNs(), create(randomUUID()));

        const problems: string[] = [];
        for (const field of ['id', 'createdAt', 'updatedAt'] as const satisfies readonly SortField[]) {
          for (const direction of [1, -1] as const) {
            for (const includeDeleted of [false, true]) {
              const base = { filter: null, includeDeleted, sort: { field, direction } };
              const full = await store.listHeads(ns, { ...base, limit: 1000 });
              const what = `sort ${field} ${direction} includeDeleted=${includeDeleted}`;
              const expectedCount = includeDeleted ? 14 : 13;
              if (full.length !== expectedCount) problems.push(`${what}: ${full.length} rows, expected ${expectedCount}`);
              for (let i = 1; i < full.length; i++) {
                const order = compareIds(sortValue(full[i - 1]!, field), sortValue(full[i]!, field)) * direction;
                if (order > 0 || (field === 'id' && order === 0)) problems.push(`${what}: rows ${i - 1} and ${i} out of order`);
              }
              for (const limit of [1, 3, 5, 13, 50]) {
                const seen: string[] = [];
                let after: { value: string; id: string } | undefined;
                for (let pages = 0; pages < 100; pages++) {
                  const page = await store.listHeads(ns, { ...base, limit, ...(after ? { after } : {}) });
                  if (page.length > limit) problems.push(`${what} limit ${limit}: page of ${page.length}`);
                  if (page.length === 0) break;
                  seen.push(...page.map((h) => h.id));
                  const last = page[page.length - 1]!;
                  after = { value: sortValue(last, field), id: last.id };
                }
                if (JSON.stringify(seen) !== JSON.stringify(full.map((h) => h.id))) {
                  problems.push(`${what} limit ${limit}: paging visited ${seen.length} rows (${new Set(seen).size} distinct), not the ${full.length} of one listing in order`);
                }
              }
            }
          }
        }
        expect(problems).toEqual([]);
      });

      it('pages a filtered listing', async () => {
        const ns = freshNs();
        const writes = Array.from({ length: 10 }, (_, i) => create(randomUUID(), { meta: { even: i % 2 === 0 } }));
        await commitOk(ns, writes);
        const expected = writes.filter((w) => w.head!.meta.even === true).map((w) => w.id).sort(compareIds);
        const seen: string[] = [];
        let after: { value: string; id: string } | undefined;
        for (let pages = 0; pages < 20; pages++) {
          const page = await store.listHeads(ns, {
            filter: eq('even', true), includeDeleted: false, sort: { field: 'id', direction: 1 }, limit: 2, ...(after ? { after } : {}),
          });
          if (page.length === 0) break;
          seen.push(...page.map((h) => h.id));
          after = { value: page[page.length - 1]!.id, id: page[page.length - 1]!.id };
        }
        expect(seen).toEqual(expected);
      });
    });

    describe('listHeadIds', () => {
      it('lists every head (deleted ones included) in id order, paged with afterId', async () => {
        const ns = freshNs();
        const ids = Array.from({ length: 9 }, () => randomUUID());
        await commitOk(ns, ids.map((id) => create(id)));
        await commitOk(ns, update(ids[0]!, 1, { deleted: true, op: 'delete' }));
        await commitOk(ns, hardDelete(ids[1]!, 1));
        await commitOk(freshNs(), create(randomUUID()));
        const expected = ids.filter((id) => id !== ids[1]).sort(compareIds);

        expect(await store.listHeadIds(ns, { limit: 100 })).toEqual(expected);
        for (const limit of [1, 2, 8, 20]) {
          const seen: string[] = [];
          let afterId: string | undefined;
          for (let pages = 0; pages < 100; pages++) {
            const page = await store.listHeadIds(ns, { limit, ...(afterId === undefined ? {} : { afterId }) });
            expect(page.length).toBeLessThanOrEqual(limit);
            if (page.length === 0) break;
            seen.push(...page);
            afterId = page[page.length - 1];
          }
          expect(seen, `limit ${limit}`).toEqual(expected);
        }
        expect(await store.listHeadIds(ns, { afterId: expected[3]!, limit: 2 })).toEqual(expected.slice(4, 6));
        expect(await store.listHeadIds(freshNs(), { limit: 10 })).toEqual([]);
      });
    });

    describe('counters', () => {
      it('add up across commits, per (dbName, collection), wherever the commit itself writes', async () => {
        const ns = freshNs();
        const analytics = `${ns.dbName}_analytics`;
        expect(await store.getCounters(ns.dbName, ns.collection)).toEqual({});

        await commitOk(ns, create(randomUUID()), [
          { dbName: ns.dbName, collection: ns.collection, deltas: { records: 1, bytes: 120 } },
          { dbName: analytics, collection: ns.collection, deltas: { records: 1 } },
        ]);
        await commitOk(ns, create(randomUUID()), [{ dbName: ns.dbName, collection: ns.collection, deltas: { records: 1, bytes: 30 } }]);
        const other = { dbName: ns.dbName, collection: `${ns.collection}_2` };
        await commitOk(other, create(randomUUID()), [
          { dbName: ns.dbName, collection: other.collection, deltas: { records: 1 } },
          { dbName: ns.dbName, collection: ns.collection, deltas: { bytes: -50, deletes: 1 } },
        ]);
        await commitOk(ns, [], [{ dbName: analytics, collection: ns.collection, deltas: { records: 4 } }]);

        expect(await store.getCounters(ns.dbName, ns.collection)).toEqual({ records: 2, bytes: 100, deletes: 1 });
        expect(await store.getCounters(ns.dbName, other.collection)).toEqual({ records: 1 });
        expect(await store.getCounters(analytics, ns.collection)).toEqual({ records: 5 });
        expect(await store.getCounters(analytics, other.collection)).toEqual({});
        expect(await store.getCounters(`${ns.dbName}_none`, ns.collection)).toEqual({});
      });

      it('windows: commit adds each delta to each listed window as well as to the totals, per key', async () => {
        const ns = freshNs();
        const at = (deltas: Record<string, number>, windows?: string[]): CounterDelta[] => [
          { dbName: ns.dbName, collection: ns.collection, deltas, ...(windows ? { windows } : {}) },
        ];
        await commitOk(ns, create(randomUUID()), at({ created: 1 }, ['day:2026-01-30', 'week:2026-W05', 'month:2026-01']));
        await commitOk(ns, create(randomUUID()), at({ created: 1, updated: 2 }, ['day:2026-01-31', 'week:2026-W05', 'month:2026-01']));
        await commitOk(ns, create(randomUUID()), at({ created: 1, zero: 0 }, ['day:2026-02-01', 'week:2026-W05', 'month:2026-02']));
        await commitOk(ns, create(randomUUID()), at({ created: 1 }));
        await commitOk(ns, [], at({ deleted: 1 }, ['day:2026-01-30']));

        expect(await store.getCounters(ns.dbName, ns.collection)).toEqual({ created: 4, updated: 2, deleted: 1 });
        expect(await store.getCounterWindows(ns.dbName, ns.collection, { granularity: 'day' })).toEqual([
          { window: 'day:2026-01-30', counts: { created: 1, deleted: 1 } },
          { window: 'day:2026-01-31', counts: { created: 1, updated: 2 } },
          { window: 'day:2026-02-01', counts: { created: 1 } },
        ]);
        expect(await store.getCounterWindows(ns.dbName, ns.collection, { granularity: 'week' })).toEqual([
          { window: 'week:2026-W05', counts: { created: 3, updated: 2 } },
        ]);
        expect(await store.getCounterWindows(ns.dbName, ns.collection, { granularity: 'month' })).toEqual([
          { window: 'month:2026-01', counts: { created: 2, updated: 2 } },
          { window: 'month:2026-02', counts: { created: 1 } },
        ]);
        expect(await store.getCounterWindows(ns.dbName, `${ns.collection}_2`, { granularity: 'day' })).toEqual([]);
        expect(await store.getCounterWindows(`${ns.dbName}_none`, ns.collection, { granularity: 'day' })).toEqual([]);
      });

      it('windows: getCounterWindows honours inclusive from / to bounds on the key, ascending', async () => {
        const ns = freshNs();
        const days = ['day:2026-03-01', 'day:2026-03-02', 'day:2026-03-03', 'day:2026-03-04'];
        for (const [i, day] of days.entries()) {
          await commitOk(ns, create(randomUUID()), [{ dbName: ns.dbName, collection: ns.collection, deltas: { n: i + 1 }, windows: [day, 'month:2026-03'] }]);
        }
        const list = (q: { from?: string; to?: string }) => store.getCounterWindows(ns.dbName, ns.collection, { granularity: 'day', ...q });
        expect((await list({ from: 'day:2026-03-02', to: 'day:2026-03-03' })).map((w) => w.window)).toEqual(['day:2026-03-02', 'day:2026-03-03']);
        expect((await list({ from: 'day:2026-03-03' })).map((w) => w.window)).toEqual(['day:2026-03-03', 'day:2026-03-04']);
        expect(await list({ to: 'day:2026-03-01' })).toEqual([{ window: 'day:2026-03-01', counts: { n: 1 } }]);
        expect(await list({ from: 'day:2026-03-05' })).toEqual([]);
        // Other granularities never leak into a range, even with wide bounds.
        expect((await list({ from: 'a', to: 'z' })).map((w) => w.window)).toEqual(days);
        expect(await store.getCounterWindows(ns.dbName, ns.collection, { granularity: 'month', from: 'month:2026-03', to: 'month:2026-03' })).toEqual([
          { window: 'month:2026-03', counts: { n: 10 } },
        ]);
      });

      it('windows: a failed batch adds to no window', async () => {
        const ns = freshNs();
        const existing = randomUUID();
        await commitOk(ns, create(existing), [{ dbName: ns.dbName, collection: ns.collection, deltas: { n: 1 }, windows: ['day:2026-01-01'] }]);
        const result = await store.commit(ns, {
          writes: [create(randomUUID()), update(existing, 9)],
          counters: [{ dbName: ns.dbName, collection: ns.collection, deltas: { n: 5 }, windows: ['day:2026-01-01', 'day:2026-01-02'] }],
        });
        expect(result).toMatchObject({ ok: false, reason: 'version', index: 1 });
        expect(await store.getCounterWindows(ns.dbName, ns.collection, { granularity: 'day' })).toEqual([{ window: 'day:2026-01-01', counts: { n: 1 } }]);
        expect(await store.getCounters(ns.dbName, ns.collection)).toEqual({ n: 1 });
      });

      it('windows: pruneCounterWindows removes exactly the windows below each bound; totals and other granularities stay', async () => {
        const ns = freshNs();
        const other = { dbName: ns.dbName, collection: `${ns.collection}_2` };
        const windows = ['day:2025-12-31', 'day:2026-01-01', 'day:2026-01-02', 'week:2025-W52', 'week:2026-W01', 'month:2025-12', 'month:2026-01'];
        await commitOk(ns, create(randomUUID()), [
          { dbName: ns.dbName, collection: ns.collection, deltas: { n: 1 }, windows },
          { dbName: other.dbName, collection: other.collection, deltas: { n: 1 }, windows },
        ]);
        expect(await store.pruneCounterWindows(ns.dbName, ns.collection, { day: 'day:2026-01-02', week: 'week:2026-W01' })).toBe(3);
        const keys = async (g: 'day' | 'week' | 'month', c = ns) => (await store.getCounterWindows(c.dbName, c.collection, { granularity: g })).map((w) => w.window);
        expect(await keys('day')).toEqual(['day:2026-01-02']);
        expect(await keys('week')).toEqual(['week:2026-W01']);
        expect(await keys('month')).toEqual(['month:2025-12', 'month:2026-01']);
        expect(await store.getCounters(ns.dbName, ns.collection)).toEqual({ n: 1 });
        // Idempotent, and other collections are untouched.
        expect(await store.pruneCounterWindows(ns.dbName, ns.collection, { day: 'day:2026-01-02', week: 'week:2026-W01' })).toBe(0);
        expect(await keys('day', other)).toEqual(['day:2025-12-31', 'day:2026-01-01', 'day:2026-01-02']);
        expect(await store.pruneCounterWindows(ns.dbName, ns.collection, { month: 'month:2027-01' })).toBe(2);
        expect(await keys('month')).toEqual([]);
        expect(await keys('day')).toEqual(['day:2026-01-02']);
        expect(await store.pruneCounterWindows(ns.dbName, ns.collection, {})).toBe(0);
      });
    });

    describe('sync outbox', () => {
      it('a commit marks the record; listPendingSync lists it oldest first, filtered by collection and limited', async () => {
        const ns = freshNs();
        const ns2 = { dbName: ns.dbName, collection: `${ns.collection}_2` };
        const [x, y, z] = [randomUUID(), randomUUID(), randomUUID()] as const;
        expect(await store.getPendingSeq(ns, x)).toBeNull();
        await commitOk(ns, create(x));
        await commitOk(ns2, create(y));
        await commitOk(ns, create(z));
        await commitOk({ dbName: `${ns.dbName}_other`, collection: ns.collection }, create(randomUUID()));

        const seqX = await store.getPendingSeq(ns, x);
        const seqY = await store.getPendingSeq(ns2, y);
        const seqZ = await store.getPendingSeq(ns, z);
        expect([seqX, seqY, seqZ].every((s) => typeof s === 'number')).toBe(true);
        expect(await store.getPendingSeq(ns2, x)).toBeNull();

        expect(await store.listPendingSync(ns.dbName, { limit: 10 })).toEqual([
          { collection: ns.collection, id: x, seq: seqX },
          { collection: ns2.collection, id: y, seq: seqY },
          { collection: ns.collection, id: z, seq: seqZ },
        ]);
        expect(await store.listPendingSync(ns.dbName, { limit: 2 })).toEqual([
          { collection: ns.collection, id: x, seq: seqX },
          { collection: ns2.collection, id: y, seq: seqY },
        ]);
        expect(await store.listPendingSync(ns.dbName, { limit: 10, collection: ns.collection })).toEqual([
          { collection: ns.collection, id: x, seq: seqX },
          { collection: ns.collection, id: z, seq: seqZ },
        ]);
        expect(await store.listPendingSync(ns.dbName, { limit: 10, collection: ns2.collection })).toEqual([
          { collection: ns2.collection, id: y, seq: seqY },
        ]);
        expect(await store.listPendingSync(ns.dbName, { limit: 10, collection: `${ns.collection}_none` })).toEqual([]);
      });

      it('completeSync refuses to clear a stale seq after a newer write and clears the current one', async () => {
        const ns = freshNs();
        const id = randomUUID();
        const other = randomUUID();
        await commitOk(ns, [create(id), create(other)]);
        const first = await store.getPendingSeq(ns, id);
        await commitOk(ns, update(id, 1));
        const second = await store.getPendingSeq(ns, id);
        expect(second).not.toBeNull();
        expect(second).not.toBe(first);

        expect(await store.completeSync(ns, id, { archivedOvs: [], seq: first! })).toBe(false);
        expect(await store.getPendingSeq(ns, id)).toBe(second);
        expect((await store.listPendingSync(ns.dbName, { limit: 10 })).map((p) => p.id)).toContain(id);

        expect(await store.completeSync(ns, id, { archivedOvs: [], seq: second! })).toBe(true);
        expect(await store.getPendingSeq(ns, id)).toBeNull();
        expect((await store.listPendingSync(ns.dbName, { limit: 10 })).map((p) => p.id)).toEqual([other]);

        // A later write marks the record again.
        await commitOk(ns, update(id, 2));
        const third = await store.getPendingSeq(ns, id);
        expect(third).not.toBeNull();
        expect((await store.listPendingSync(ns.dbName, { limit: 10 })).find((p) => p.id === id)?.seq).toBe(third);
      });

      it('listPendingUpTo pages one collection in id order up to a cv; later writes stay out; countPendingSync counts the database', async () => {
        const ns = freshNs();
        const ns2 = { dbName: ns.dbName, collection: `${ns.collection}_2` };
        const ids = Array.from({ length: 5 }, () => randomUUID()).sort(compareIds);
        for (const id of ids) await commitOk(ns, create(id));
        await commitOk(ns2, create(randomUUID()));
        const cv = (await store.getCollectionVersion(ns))!;
        // After the snapshot: one new record and a second write of a listed one.
        const late = randomUUID();
        await commitOk(ns, create(late));
        await commitOk(ns, update(ids[1]!, 1));
        expect(await store.countPendingSync(ns.dbName)).toBe(7);

        const all = await store.listPendingUpTo(ns, { maxSeq: cv, limit: 10 });
        const expected = ids.filter((id) => id !== ids[1]);
        expect(all.map((p) => p.id)).toEqual(expected);
        for (const p of all) {
          expect(p).toEqual({ collection: ns.collection, id: p.id, seq: await store.getPendingSeq(ns, p.id) });
          expect(p.seq).toBeLessThanOrEqual(cv);
        }
        const first = await store.listPendingUpTo(ns, { maxSeq: cv, limit: 2 });
        expect(first.map((p) => p.id)).toEqual(expected.slice(0, 2));
        const rest = await store.listPendingUpTo(ns, { maxSeq: cv, afterId: first[1]!.id, limit: 10 });
        expect(rest.map((p) => p.id)).toEqual(expected.slice(2));
        expect(await store.listPendingUpTo(ns, { maxSeq: cv, afterId: expected.at(-1)!, limit: 10 })).toEqual([]);
        // A higher bound takes in the later writes; another collection's and database's entries never appear.
        expect((await store.listPendingUpTo(ns, { maxSeq: cv + 100, limit: 10 })).map((p) => p.id)).toEqual([...ids, late].sort(compareIds));
        expect(await store.listPendingUpTo({ dbName: `${ns.dbName}_none`, collection: ns.collection }, { maxSeq: cv + 100, limit: 10 })).toEqual([]);

        await store.completeSync(ns, ids[0]!, { archivedOvs: [], seq: (await store.getPendingSeq(ns, ids[0]!))! });
        expect((await store.listPendingUpTo(ns, { maxSeq: cv, limit: 10 })).map((p) => p.id)).toEqual(expected.slice(1));
        expect(await store.countPendingSync(ns.dbName)).toBe(6);
        expect(await store.countPendingSync(`${ns.dbName}_none`)).toBe(0);
      });
    });

    describe('archiving', () => {
      it('listUnarchived pages with afterOv and limit, ov ascending, and skips what is archived', async () => {
        const ns = freshNs();
        const id = randomUUID();
        await commitOk(ns, create(id));
        for (let ov = 1; ov < 7; ov++) await commitOk(ns, update(id, ov));
        await commitOk(ns, create(randomUUID()));
        await store.completeSync(ns, id, { archivedOvs: [2, 5], seq: null });

        const ovs = async (page?: { afterOv?: number; limit?: number }) => (await store.listUnarchived(ns, id, page)).map((v) => v.ov);
        expect(await ovs()).toEqual([1, 3, 4, 6, 7]);
        expect(await ovs({ limit: 2 })).toEqual([1, 3]);
        expect(await ovs({ afterOv: 3, limit: 2 })).toEqual([4, 6]);
        expect(await ovs({ afterOv: 6, limit: 2 })).toEqual([7]);
        expect(await ovs({ afterOv: 7 })).toEqual([]);
        expect(await ovs({ afterOv: 1 })).toEqual([3, 4, 6, 7]);
        expect((await store.listUnarchived(ns, id, { afterOv: 3, limit: 1 }))[0]?.body).not.toBeNull();

        const paged: number[] = [];
        let afterOv: number | undefined;
        // Bounded: a cursor that does not advance must fail the test, not spin forever.
        for (let pages = 0; pages < 10; pages++) {
          const page = await ovs({ limit: 2, ...(afterOv === undefined ? {} : { afterOv }) });
          paged.push(...page);
          if (page.length < 2) break;
          afterOv = page[page.length - 1];
        }
        expect(paged).toEqual([1, 3, 4, 6, 7]);

        // The engine creates records at ov 0: the first page starts there.
        const fromZero = randomUUID();
        await commitOk(ns, put(fromZero, null, 0, {}));
        await commitOk(ns, put(fromZero, 0, 1, {}));
        expect((await store.listUnarchived(ns, fromZero)).map((v) => v.ov)).toEqual([0, 1]);
        expect((await store.listUnarchived(ns, fromZero, { limit: 1 })).map((v) => v.ov)).toEqual([0]);
        expect((await store.listUnarchived(ns, fromZero, { afterOv: 0 })).map((v) => v.ov)).toEqual([1]);
      });

      it('listUnarchived lists ov ascending; completeSync drops bodies, sets archived, and is idempotent', async () => {
        const ns = freshNs();
        const id = randomUUID();
        const writes = [create(id), update(id, 1), update(id, 2)];
        const cvs: number[] = [];
        for (const w of writes) cvs.push(...(await commitOk(ns, w)));
        const versions = writes.map((w, i) => expectedVersion(w, cvs[i]!));

        expect(await store.listUnarchived(ns, id)).toEqual(versions);
        await store.completeSync(ns, id, { archivedOvs: [1, 2], seq: null });
        const archived = (v: VersionRow): VersionRow => ({ ...v, body: null, archived: true });
        const check = async () => {
          expect(await store.listUnarchived(ns, id)).toEqual([versions[2]]);
          expect(await store.getVersion(ns, id, 1)).toMatchObject(omitSize(archived(versions[0]!)));
          expect(await store.getVersion(ns, id, 2)).toMatchObject(omitSize(archived(versions[1]!)));
          expect(await store.getVersion(ns, id, 3)).toEqual(versions[2]);
          expect((await store.listVersions(ns, id, { limit: 10 })).map((v) => [v.ov, v.archived, v.body])).toEqual([
            [3, false, versions[2]!.body],
            [2, true, null],
            [1, true, null],
          ]);
          expect(await store.findVersionAt(ns, id, { cv: cvs[0]! })).toMatchObject({ ov: 1, body: null, archived: true });
          expect(await store.getHead(ns, id)).toEqual(expectedHead(writes[2]!, cvs[2]!));
        };
        await check();
        await store.completeSync(ns, id, { archivedOvs: [2, 1], seq: null });
        await store.completeSync(ns, id, { archivedOvs: [], seq: null });
        await check();

        await store.completeSync(ns, id, { archivedOvs: [3], seq: null });
        expect(await store.listUnarchived(ns, id)).toEqual([]);
        expect(await store.listUnarchived(ns, randomUUID())).toEqual([]);
      });

      it('queued blobs ride with the commit, are served until uploaded, and leave with completeSync or a hard delete', async () => {
        const ns = freshNs();
        const [id, gone] = [randomUUID(), randomUUID()];
        const body = new Uint8Array([0, 1, 2, 255]);
        await commitOk(ns, { ...create(id), blobs: [{ bucket: 'b', key: `content/c/${id}/f/v1/blob.bin`, contentType: 'application/pdf', body }] });
        await commitOk(ns, { ...create(gone), blobs: [{ bucket: 'b', key: `content/c/${gone}/f/v1/blob.bin`, contentType: 'x/y', body }] });
        const queued = await store.listPendingBlobs(ns, id);
        expect(queued).toEqual([{ bucket: 'b', key: `content/c/${id}/f/v1/blob.bin`, contentType: 'application/pdf', body }]);
        expect(await store.getPendingBlob(ns, 'b', `content/c/${id}/f/v1/blob.bin`)).toEqual(queued[0]);
        expect(await store.getPendingBlob(freshNs(), 'b', `content/c/${id}/f/v1/blob.bin`)).toBeNull();
        // A failed batch queues nothing.
        const failed = await store.commit(ns, { writes: [{ ...create(randomUUID()), blobs: [{ bucket: 'b', key: 'k/x', contentType: 'x/y', body }] }, create(id)] });
        expect(failed.ok).toBe(false);
        expect(await store.getPendingBlob(ns, 'b', 'k/x')).toBeNull();
        await store.completeSync(ns, id, { archivedOvs: [], uploaded: [{ bucket: 'b', key: `content/c/${id}/f/v1/blob.bin` }], seq: null });
        expect(await store.listPendingBlobs(ns, id)).toEqual([]);
        await commitOk(ns, hardDelete(gone, 1));
        expect(await store.listPendingBlobs(ns, gone)).toEqual([]);
      });

      it('dead letters: only the current seq moves a record out of the outbox; requeue puts it back', async () => {
        const ns = freshNs();
        const id = randomUUID();
        await commitOk(ns, create(id));
        const stale = (await store.getPendingSeq(ns, id))!;
        await commitOk(ns, update(id, 1));
        expect(await store.deadLetterSync(ns, id, stale, 'boom')).toBe(false);
        const seq = (await store.getPendingSeq(ns, id))!;
        expect(await store.deadLetterSync(ns, id, seq, 'disk on fire')).toBe(true);
        expect(await store.getPendingSeq(ns, id)).toBeNull();
        expect(await store.listDeadLetters(ns.dbName, { limit: 10 })).toEqual([{ collection: ns.collection, id, reason: 'disk on fire', failedAt: expect.any(String) }]);
        expect(await store.listDeadLetters(freshNs().dbName, { limit: 10 })).toEqual([]);
        expect(await store.requeueDeadLetters(ns.dbName)).toBe(1);
        expect(await store.listDeadLetters(ns.dbName, { limit: 10 })).toEqual([]);
        expect(await store.getPendingSeq(ns, id)).not.toBeNull();
        expect((await store.listUnarchived(ns, id)).map((v) => v.ov)).toEqual([1, 2]);
      });

      it('listPendingDatabases names exactly the databases with records waiting for sync', async () => {
        const [a, b] = [freshNs(), freshNs()];
        const id = randomUUID();
        await commitOk(a, create(id));
        await commitOk(b, create(id));
        const pending = await store.listPendingDatabases();
        expect(pending).toEqual(expect.arrayContaining([a.dbName, b.dbName]));
        await store.completeSync(a, id, { archivedOvs: [1], seq: (await store.getPendingSeq(a, id))! });
        const after = await store.listPendingDatabases();
        expect(after).toContain(b.dbName);
        expect(after).not.toContain(a.dbName);
      });

      it('completeSync archives what the blob store holds even when a newer write keeps the outbox entry', async () => {
        const ns = freshNs();
        const id = randomUUID();
        await commitOk(ns, create(id));
        const stale = await store.getPendingSeq(ns, id);
        await commitOk(ns, update(id, 1));
        expect(await store.completeSync(ns, id, { archivedOvs: [1], seq: stale! })).toBe(false);
        expect(await store.getVersion(ns, id, 1)).toMatchObject({ archived: true, body: null });
        expect((await store.listUnarchived(ns, id)).map((v) => v.ov)).toEqual([2]);
        expect(await store.getPendingSeq(ns, id)).not.toBeNull();
      });
    });

    describe('unique claims', () => {
      it('a claim is held by one record; another record taking it fails the whole batch and writes nothing', async () => {
        const ns = freshNs();
        const [a, b] = [randomUUID(), randomUUID()];
        await commitOk(ns, { ...create(a), claims: [{ key: 'email:ada' }] });
        expect(await store.getClaim(ns, 'email:ada')).toBe(a);
        const result = await store.commit(ns, { writes: [create(randomUUID()), { ...create(b), claims: [{ key: 'email:ada' }] }] });
        expect(result).toEqual({ ok: false, reason: 'claim', index: 1, id: b, key: 'email:ada', heldBy: a });
        expect(await store.getHead(ns, b)).toBeNull();
        // The same record may claim again (an update keeping its key).
        await commitOk(ns, { ...update(a, 1), claims: [{ key: 'email:ada' }] });
        expect(await store.getClaim(ns, 'email:ada')).toBe(a);
      });

      it('a claim naming its stale holder in `replacing` is taken over, and only then', async () => {
        const ns = freshNs();
        const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
        await commitOk(ns, { ...create(a), claims: [{ key: 'k' }] });
        await commitOk(ns, { ...create(b), claims: [{ key: 'k', replacing: a }] });
        expect(await store.getClaim(ns, 'k')).toBe(b);
        // c read the claim when `a` held it: too late now.
        expect(await store.commit(ns, { writes: [{ ...create(c), claims: [{ key: 'k', replacing: a }] }] })).toMatchObject({ ok: false, reason: 'claim', heldBy: b });
      });

      it('deleting a record, logically or for good, releases its claims; claims are per namespace', async () => {
        const ns = freshNs();
        const other = freshNs();
        const [a, b] = [randomUUID(), randomUUID()];
        await commitOk(ns, { ...create(a), claims: [{ key: 'k1' }] });
        await commitOk(ns, { ...create(b), claims: [{ key: 'k2' }] });
        await commitOk(other, { ...create(a), claims: [{ key: 'k1' }] });
        await commitOk(ns, update(a, 1, { deleted: true }));
        await commitOk(ns, hardDelete(b, 1));
        expect(await store.getClaim(ns, 'k1')).toBeNull();
        expect(await store.getClaim(ns, 'k2')).toBeNull();
        expect(await store.getClaim(other, 'k1')).toBe(a);
      });
    });

    describe('as-of queries and actors', () => {
      it('queryAt answers with each record as it stood then, filtered on that version, in id order with paging', async () => {
        const ns = freshNs();
        const ids = [randomUUID(), randomUUID(), randomUUID(), randomUUID()].sort();
        // At t1: every record is "open"; at t3 the first two are "closed"; the third is deleted at t3; the fourth only exists from t3.
        for (const id of ids.slice(0, 3)) await commitOk(ns, create(id, { at: ts(1), meta: { state: 'open' } }));
        for (const id of ids.slice(0, 2)) await commitOk(ns, update(id, 1, { at: ts(3), meta: { state: 'closed' } }));
        await commitOk(ns, update(ids[2]!, 1, { at: ts(3), deleted: true, meta: { state: 'open' } }));
        await commitOk(ns, create(ids[3]!, { at: ts(3), meta: { state: 'open' } }));
        const q = (at: string, extra: Partial<Parameters<IndexStore['queryAt']>[1]> = {}) =>
          store.queryAt(ns, { at, filter: null, includeDeleted: false, direction: 1, limit: 100, ...extra });
        expect((await q(ts(0))).map((r) => r.id)).toEqual([]);
        expect((await q(ts(2))).map((r) => [r.id, r.ov, r.meta.state])).toEqual(ids.slice(0, 3).map((id) => [id, 1, 'open']));
        const open: FilterNode = { kind: 'compare', field: 'state', op: '$eq', value: 'open' };
        expect((await q(ts(2), { filter: open })).map((r) => r.id)).toEqual(ids.slice(0, 3));
        expect((await q(ts(4), { filter: open })).map((r) => r.id)).toEqual([ids[3]]);
        expect((await q(ts(4), { includeDeleted: true, filter: open })).map((r) => r.id)).toEqual([ids[2], ids[3]]);
        const page1 = await q(ts(2), { limit: 2 });
        const page2 = await q(ts(2), { limit: 2, afterId: page1[1]!.id });
        expect([...page1, ...page2].map((r) => r.id)).toEqual(ids.slice(0, 3));
        expect((await q(ts(2), { direction: -1 })).map((r) => r.id)).toEqual(ids.slice(0, 3).reverse());
      });

      it('listVersionsByActor finds what one actor wrote, typed identities included, by time range and pages', async () => {
        const ns = freshNs();
        const user: Actor = { type: 'user', identifier: 'user-123', name: 'Ada' };
        const id = randomUUID();
        const other = randomUUID();
        await commitOk(ns, create(id, { actor: user, at: ts(1) }));
        await commitOk(ns, update(id, 1, { actor: 'someone-else', at: ts(2) }));
        await commitOk(ns, update(id, 2, { actor: user, at: ts(3) }));
        await commitOk(ns, create(other, { actor: 'user-123', at: ts(4) }));
        const all = await store.listVersionsByActor(ns, 'user-123', { limit: 10 });
        expect(all.map((v) => [v.id, v.ov])).toEqual([[other, 1], [id, 3], [id, 1]]);
        expect(all[1]!.actor).toEqual(user);
        expect(all[0]!.actor).toBe('user-123');
        expect((await store.listVersionsByActor(ns, 'user-123', { limit: 10, from: ts(2), to: ts(3) })).map((v) => v.ov)).toEqual([3]);
        const first = await store.listVersionsByActor(ns, 'user-123', { limit: 2 });
        const last = first[1]!;
        const rest = await store.listVersionsByActor(ns, 'user-123', { limit: 2, before: { at: last.at, id: last.id, ov: last.ov } });
        expect([...first, ...rest].map((v) => v.ov)).toEqual([1, 3, 1]);
        expect(await store.listVersionsByActor(freshNs(), 'user-123', { limit: 10 })).toEqual([]);
      });
    });

    describe('content upload intents', () => {
      const HOUR = 3_600_000;
      const key = (ns: Namespace, id: string, n = 1) => `content/${ns.collection}/${id}/f/${'a'.repeat(63)}${n}/blob.bin`;
      const staleRows = async (ns: Namespace, olderThanMs = 0) =>
        (await store.listStaleUploads(ns.dbName, { olderThanMs, limit: 100 })).map((r) => ({ collection: r.collection, id: r.id, key: r.key, token: r.token, cleaning: r.cleaning }));

      it('a commit takes its intents with the write; an intent that is gone fails the batch (reason upload) and writes nothing', async () => {
        const ns = freshNs();
        const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
        const t = randomUUID();
        expect(await store.recordUploads(ns, [{ id: a, bucket: 'b', key: key(ns, a), token: t }, { id: b, bucket: 'b', key: key(ns, b), token: t }])).toEqual({ ok: true });
        expect(await staleRows(ns)).toEqual(
          expect.arrayContaining([
            { collection: ns.collection, id: a, key: key(ns, a), token: t, cleaning: false },
            { collection: ns.collection, id: b, key: key(ns, b), token: t, cleaning: false },
          ]),
        );
        // Just recorded: not stale for an hour.
        expect(await staleRows(ns, HOUR)).toEqual([]);
        await commitOk(ns, { ...create(a), uploads: [{ bucket: 'b', key: key(ns, a), token: t }] });
        expect((await staleRows(ns)).map((r) => r.key)).toEqual([key(ns, b)]);
        // The same intent cannot be taken twice; a batch with a missing one writes nothing of itself.
        const cvBefore = await store.getCollectionVersion(ns);
        const failed = await store.commit(ns, {
          writes: [
            { ...create(b), uploads: [{ bucket: 'b', key: key(ns, b), token: t }] },
            { ...create(c), uploads: [{ bucket: 'b', key: key(ns, a), token: t }] },
          ],
          counters: [{ ...ns, deltas: { created: 2 } }],
        });
        expect(failed).toEqual({ ok: false, reason: 'upload', index: 1, id: c, key: key(ns, a) });
        expect(await store.getHead(ns, b)).toBeNull();
        expect(await store.getHead(ns, c)).toBeNull();
        expect(await store.getCollectionVersion(ns)).toBe(cvBefore);
        expect(await store.getCounters(ns.dbName, ns.collection)).toEqual({});
        expect((await staleRows(ns)).map((r) => r.key)).toEqual([key(ns, b)]);
        // Another write's token does not fit an intent.
        expect(await store.commit(ns, { writes: [{ ...create(b), uploads: [{ bucket: 'b', key: key(ns, b), token: randomUUID() }] }] })).toMatchObject({ ok: false, reason: 'upload', index: 0 });
        await commitOk(ns, { ...create(b), uploads: [{ bucket: 'b', key: key(ns, b), token: t }] });
        expect(await staleRows(ns)).toEqual([]);
      });

      it('recording an intent again renews it; intents are per namespace, listed per database, oldest first, limited', async () => {
        const ns = freshNs();
        const other = { dbName: ns.dbName, collection: `${ns.collection}x` };
        const elsewhere = freshNs();
        const id = randomUUID();
        const t = randomUUID();
        await store.recordUploads(ns, [{ id, bucket: 'b', key: key(ns, id, 1), token: t }]);
        await sleep(5);
        await store.recordUploads(other, [{ id, bucket: 'b', key: key(ns, id, 1), token: t }]);
        await sleep(5);
        await store.recordUploads(ns, [{ id, bucket: 'b', key: key(ns, id, 2), token: t }]);
        await store.recordUploads(elsewhere, [{ id, bucket: 'b', key: key(ns, id, 1), token: t }]);
        const rows = await store.listStaleUploads(ns.dbName, { olderThanMs: 0, limit: 10 });
        expect(rows.map((r) => [r.collection, r.key])).toEqual([
          [ns.collection, key(ns, id, 1)],
          [other.collection, key(ns, id, 1)],
          [ns.collection, key(ns, id, 2)],
        ]);
        expect((await store.listStaleUploads(ns.dbName, { olderThanMs: 0, limit: 2 })).length).toBe(2);
        // Renewed: the first is now the youngest.
        await sleep(5);
        expect(await store.recordUploads(ns, [{ id, bucket: 'b', key: key(ns, id, 1), token: t }])).toEqual({ ok: true });
        expect((await store.listStaleUploads(ns.dbName, { olderThanMs: 0, limit: 10 })).map((r) => [r.collection, r.key])).toEqual([
          [other.collection, key(ns, id, 1)],
          [ns.collection, key(ns, id, 2)],
          [ns.collection, key(ns, id, 1)],
        ]);
        // A commit in one namespace takes only that namespace's intent.
        await commitOk(other, { ...create(id), uploads: [{ bucket: 'b', key: key(ns, id, 1), token: t }] });
        expect((await store.listStaleUploads(ns.dbName, { olderThanMs: 0, limit: 10 })).map((r) => r.collection)).toEqual([ns.collection, ns.collection]);
        expect((await store.listStaleUploads(elsewhere.dbName, { olderThanMs: 0, limit: 10 })).length).toBe(1);
      });

      it('a cleanup marks a key only when every intent on it may go; the mark refuses new intents and the commit of a taken one until released', async () => {
        const ns = freshNs();
        const id = randomUUID();
        const k = key(ns, id);
        const [a, b, mark, rival] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
        await store.recordUploads(ns, [{ id, bucket: 'b', key: k, token: a }]);
        // Young, not its own: nothing happens.
        expect(await store.claimUploadCleanup(ns, { bucket: 'b', key: k, token: a }, { olderThanMs: HOUR, markToken: mark })).toBe(false);
        expect((await staleRows(ns)).map((r) => r.token)).toEqual([a]);
        // A token that names nothing on the key: nothing happens.
        expect(await store.claimUploadCleanup(ns, { bucket: 'b', key: k, token: randomUUID() }, { olderThanMs: 0, markToken: mark })).toBe(false);
        expect(await store.claimUploadCleanup(ns, { bucket: 'b', key: k, token: a }, { olderThanMs: 0, markToken: mark })).toBe(true);
        expect(await staleRows(ns)).toEqual([{ collection: ns.collection, id, key: k, token: mark, cleaning: true }]);
        // While marked: no intent on the key can be recorded (the whole call is refused), and the taken intent cannot commit.
        const k2 = key(ns, id, 2);
        expect(await store.recordUploads(ns, [{ id, bucket: 'b', key: k2, token: b }, { id, bucket: 'b', key: k, token: b }])).toEqual({ ok: false, key: k });
        expect((await staleRows(ns)).map((r) => r.key)).toEqual([k]);
        expect(await store.commit(ns, { writes: [{ ...create(id), uploads: [{ bucket: 'b', key: k, token: a }] }] })).toMatchObject({ ok: false, reason: 'upload' });
        // The holder renews its mark; another cleanup takes it over only once it is stale.
        expect(await store.claimUploadCleanup(ns, { bucket: 'b', key: k, token: mark }, { olderThanMs: HOUR, markToken: mark })).toBe(true);
        expect(await store.claimUploadCleanup(ns, { bucket: 'b', key: k, token: mark }, { olderThanMs: HOUR, markToken: rival })).toBe(false);
        expect(await store.claimUploadCleanup(ns, { bucket: 'b', key: k, token: mark }, { olderThanMs: 0, markToken: rival })).toBe(true);
        expect((await staleRows(ns)).map((r) => [r.token, r.cleaning])).toEqual([[rival, true]]);
        // Only the holder releases.
        await store.releaseUploadCleanup(ns, { bucket: 'b', key: k }, mark);
        expect(await store.recordUploads(ns, [{ id, bucket: 'b', key: k, token: b }])).toEqual({ ok: false, key: k });
        await store.releaseUploadCleanup(ns, { bucket: 'b', key: k }, rival);
        expect(await staleRows(ns)).toEqual([]);
        expect(await store.recordUploads(ns, [{ id, bucket: 'b', key: k, token: b }])).toEqual({ ok: true });
      });

      it('another write\'s younger intent keeps the key: only the own (or stale) intent goes; a release with retry leaves a stale intent', async () => {
        const ns = freshNs();
        const id = randomUUID();
        const k = key(ns, id);
        const [a, b, mark] = [randomUUID(), randomUUID(), randomUUID()];
        await store.recordUploads(ns, [{ id, bucket: 'b', key: k, token: a }]);
        await store.recordUploads(ns, [{ id, bucket: 'b', key: k, token: b }]);
        expect(await store.claimUploadCleanup(ns, { bucket: 'b', key: k, token: a }, { olderThanMs: HOUR, markToken: mark, own: true })).toBe(false);
        expect((await staleRows(ns)).map((r) => r.token)).toEqual([b]);
        // b's own cleanup, with no other intent left, marks the key.
        expect(await store.claimUploadCleanup(ns, { bucket: 'b', key: k, token: b }, { olderThanMs: HOUR, markToken: mark, own: true })).toBe(true);
        await store.releaseUploadCleanup(ns, { bucket: 'b', key: k }, mark, { retry: true });
        // Back to an intent, stale for any age, and no longer a mark.
        expect(await staleRows(ns, 10 * 365 * 24 * HOUR)).toEqual([{ collection: ns.collection, id, key: k, token: mark, cleaning: false }]);
        expect(await store.recordUploads(ns, [{ id, bucket: 'b', key: k, token: a }])).toEqual({ ok: true });
        // With both stale, one claim takes every intent of the key.
        expect(await store.claimUploadCleanup(ns, { bucket: 'b', key: k, token: mark }, { olderThanMs: 0, markToken: b })).toBe(true);
        expect(await staleRows(ns)).toEqual([{ collection: ns.collection, id, key: k, token: b, cleaning: true }]);
        // Keys are per namespace: the same key elsewhere is untouched by this mark.
        const elsewhere = freshNs();
        expect(await store.recordUploads(elsewhere, [{ id, bucket: 'b', key: k, token: a }])).toEqual({ ok: true });
      });
    });

    describe('locks', () => {
      it('one owner at a time; the owner renews; another takes over after expiry', async () => {
        const ns = freshNs();
        const key = `job-${randomUUID()}`;
        expect(await store.acquireLock(ns, key, 'A', 60_000)).toBe(true);
        expect(await store.acquireLock(ns, key, 'B', 60_000)).toBe(false);
        expect(await store.acquireLock(ns, key, 'A', 60_000)).toBe(true);
        expect(await store.acquireLock(ns, key, 'B', 60_000)).toBe(false);

        // A short lease, renewed before it runs out, is still held past its first expiry.
        const other = `${key}-renew`;
        expect(await store.acquireLock(ns, other, 'A', 400)).toBe(true);
        await sleep(250);
        expect(await store.acquireLock(ns, other, 'A', 400)).toBe(true);
        await sleep(250);
        expect(await store.acquireLock(ns, other, 'B', 400)).toBe(false);

        // An expired lease may be taken over; the former owner is then refused.
        const short = `${key}-expire`;
        expect(await store.acquireLock(ns, short, 'A', 50)).toBe(true);
        await sleep(150);
        expect(await store.acquireLock(ns, short, 'B', 60_000)).toBe(true);
        expect(await store.acquireLock(ns, short, 'A', 60_000)).toBe(false);
      });

      it('only the owner releases', async () => {
        const ns = freshNs();
        const key = `job-${randomUUID()}`;
        await store.releaseLock(ns, key, 'A');
        expect(await store.acquireLock(ns, key, 'A', 60_000)).toBe(true);
        await store.releaseLock(ns, key, 'B');
        expect(await store.acquireLock(ns, key, 'B', 60_000)).toBe(false);
        await store.releaseLock(ns, key, 'A');
        expect(await store.acquireLock(ns, key, 'B', 60_000)).toBe(true);
        expect(await store.acquireLock(ns, key, 'A', 60_000)).toBe(false);
      });

      it('different keys are independent', async () => {
        const ns = freshNs();
        expect(await store.acquireLock(ns, 'k1', 'A', 60_000)).toBe(true);
        expect(await store.acquireLock(ns, 'k2', 'B', 60_000)).toBe(true);
        expect(await store.acquireLock(ns, 'k1', 'B', 60_000)).toBe(false);
      });
    });

    describe('namespace isolation', () => {
      it('the same id in two databases and in two collections never interferes', async () => {
        const id = randomUUID();
        const a = freshNs();
        const b = { dbName: `${a.dbName}_b`, collection: a.collection };
        const c = { dbName: a.dbName, collection: `${a.collection}_c` };
        const counterOf = (ns: Namespace, n: number): CounterDelta[] => [{ dbName: ns.dbName, collection: ns.collection, deltas: { n } }];

        const wa = create(id, { body: '{"ns":"a"}', meta: { ns: 'a' } });
        const wb = create(id, { body: '{"ns":"b"}', meta: { ns: 'b' } });
        expect(await commitOk(a, wa, counterOf(a, 1))).toEqual([0]);
        expect(await commitOk(b, wb, counterOf(b, 10))).toEqual([0]);
        expect(await store.getHead(c, id)).toBeNull();
        expect(await store.getPendingSeq(c, id)).toBeNull();
        const wc = create(id, { body: '{"ns":"c"}', meta: { ns: 'c' } });
        expect(await commitOk(c, wc, counterOf(c, 100))).toEqual([0]);
        expect(await commitOk(a, update(id, 1, { body: '{"ns":"a2"}' }), counterOf(a, 1))).toEqual([1]);
        expect(await commitOk(a, update(id, 2, { body: '{"ns":"a3"}' }))).toEqual([2]);

        // Heads and versions.
        expect(await store.getHead(b, id)).toEqual(expectedHead(wb, 0));
        expect(await store.getHead(c, id)).toEqual(expectedHead(wc, 0));
        expect((await store.getHead(a, id))?.body).toBe('{"ns":"a3"}');
        expect(await store.getVersion(b, id, 2)).toBeNull();
        expect((await store.listVersions(c, id, { limit: 10 })).map((v) => v.body)).toEqual(['{"ns":"c"}']);
        expect(await store.findVersionAt(b, id, { cv: 2 })).toMatchObject({ ov: 1, body: '{"ns":"b"}' });
        expect(await store.commit(b, { writes: [update(id, 3)] })).toMatchObject({ ok: false, actualOv: 1 });
        expect((await store.listHeads(c, { filter: null, includeDeleted: true, sort: { field: 'id', direction: 1 }, limit: 10 })).map((h) => h.meta)).toEqual([
          { ns: 'c' },
        ]);
        expect(await store.listHeads(b, { filter: eq('ns', 'a'), includeDeleted: true, sort: { field: 'id', direction: 1 }, limit: 10 })).toEqual([]);

        // Counters.
        expect(await store.getCounters(a.dbName, a.collection)).toEqual({ n: 2 });
        expect(await store.getCounters(b.dbName, b.collection)).toEqual({ n: 10 });
        expect(await store.getCounters(c.dbName, c.collection)).toEqual({ n: 100 });

        // Outbox.
        const seqA = await store.getPendingSeq(a, id);
        const seqB = await store.getPendingSeq(b, id);
        const seqC = await store.getPendingSeq(c, id);
        expect(sortPending(await store.listPendingSync(a.dbName, { limit: 10 }))).toEqual(
          sortPending([{ collection: a.collection, id, seq: seqA! }, { collection: c.collection, id, seq: seqC! }]),
        );
        expect(await store.listPendingSync(b.dbName, { limit: 10 })).toEqual([{ collection: b.collection, id, seq: seqB }]);
        expect(await store.completeSync(a, id, { archivedOvs: [], seq: seqA! })).toBe(true);
        expect(await store.getPendingSeq(b, id)).toBe(seqB);
        expect(await store.getPendingSeq(c, id)).toBe(seqC);
        // Sequences may coincide across namespaces (here b and c both wrote once); clearing b leaves c.
        expect(await store.completeSync(b, id, { archivedOvs: [], seq: seqB! })).toBe(true);
        expect(await store.getPendingSeq(c, id)).toBe(seqC);

        // Archiving.
        await store.completeSync(b, id, { archivedOvs: [1], seq: null });
        expect((await store.getVersion(c, id, 1))?.body).toBe('{"ns":"c"}');
        expect((await store.getVersion(a, id, 1))?.archived).toBe(false);

        // Hard delete.
        await commitOk(a, hardDelete(id, 3));
        expect(await store.getHead(a, id)).toBeNull();
        expect(await store.getHead(b, id)).not.toBeNull();
        expect(await store.listVersions(c, id, { limit: 10 })).toHaveLength(1);
        expect(await store.listHeadIds(b, { limit: 10 })).toEqual([id]);
        expect(await store.listHeadIds(a, { limit: 10 })).toEqual([]);

        // Locks.
        expect(await store.acquireLock(a, id, 'owner-a', 60_000)).toBe(true);
        expect(await store.acquireLock(b, id, 'owner-b', 60_000)).toBe(true);
        expect(await store.acquireLock(c, id, 'owner-c', 60_000)).toBe(true);
        expect(await store.acquireLock(a, id, 'owner-b', 60_000)).toBe(false);
        await store.releaseLock(b, id, 'owner-b');
        expect(await store.acquireLock(a, id, 'owner-b', 60_000)).toBe(false);
        expect(await store.acquireLock(c, id, 'owner-b', 60_000)).toBe(false);
      });
    });

    describe('background jobs', () => {
      it('listDatabases and listCollections name every namespace written, sorted, and nothing else', async () => {
        const a = freshNs();
        const b = freshNs();
        const a2 = { dbName: a.dbName, collection: `${a.collection}_a2` };
        expect(await store.listCollections(a.dbName)).toEqual([]);
        await commitOk(a2, create(randomUUID()));
        await commitOk(a, create(randomUUID()));
        await commitOk(b, create(randomUUID()));
        // Counters alone (an analytics database) do not make a namespace.
        await commitOk(a, create(randomUUID()), [{ dbName: `${a.dbName}_analytics`, collection: a.collection, deltas: { n: 1 } }]);
        const dbs = await store.listDatabases();
        expect(dbs).toEqual(expect.arrayContaining([a.dbName, b.dbName]));
        expect(dbs).not.toContain(`${a.dbName}_analytics`);
        expect([...dbs].sort(compareIds)).toEqual(dbs);
        expect(await store.listCollections(a.dbName)).toEqual([a.collection, a2.collection].sort(compareIds));
        expect(await store.listCollections(b.dbName)).toEqual([b.collection]);
      });

      it('listUnarchivedRecords lists records with unarchived entries written by a time, in (collection, id) order, paged', async () => {
        const ns = freshNs();
        const ns2 = { dbName: ns.dbName, collection: `${ns.collection}_z` };
        const [r1, r2, r3] = [randomUUID(), randomUUID(), randomUUID()].sort(compareIds) as [string, string, string];
        await commitOk(ns, create(r1, { at: ts(10) }));
        await commitOk(ns, update(r1, 1, { at: ts(20) }));
        await commitOk(ns, create(r2, { at: ts(30) }));
        await commitOk(ns2, create(r3, { at: ts(5) }));
        await commitOk(freshNs(), create(randomUUID(), { at: ts(1) }));

        expect(await store.listUnarchivedRecords(ns.dbName, { writtenBefore: ts(100), limit: 10 })).toEqual([
          { collection: ns.collection, id: r1, oldestAt: ts(10) },
          { collection: ns.collection, id: r2, oldestAt: ts(30) },
          { collection: ns2.collection, id: r3, oldestAt: ts(5) },
        ]);
        // Written at or before the time, judged by the oldest unarchived entry.
        expect((await store.listUnarchivedRecords(ns.dbName, { writtenBefore: ts(10), limit: 10 })).map((r) => r.id)).toEqual([r1, r3]);
        expect((await store.listUnarchivedRecords(ns.dbName, { writtenBefore: ts(9), limit: 10 })).map((r) => r.id)).toEqual([r3]);
        // Paging.
        const first = await store.listUnarchivedRecords(ns.dbName, { writtenBefore: ts(100), limit: 2 });
        expect(first.map((r) => r.id)).toEqual([r1, r2]);
        const last = first[1]!;
        expect((await store.listUnarchivedRecords(ns.dbName, { writtenBefore: ts(100), limit: 2, after: { collection: last.collection, id: last.id } })).map((r) => r.id)).toEqual([r3]);
        // Archiving the oldest entry moves oldestAt; archiving every entry drops the record.
        await store.completeSync(ns, r1, { archivedOvs: [1], seq: null });
        expect((await store.listUnarchivedRecords(ns.dbName, { writtenBefore: ts(100), limit: 1 }))[0]).toEqual({ collection: ns.collection, id: r1, oldestAt: ts(20) });
        await store.completeSync(ns, r1, { archivedOvs: [2], seq: null });
        expect((await store.listUnarchivedRecords(ns.dbName, { writtenBefore: ts(100), limit: 10 })).map((r) => r.id)).toEqual([r2, r3]);
        expect(await store.listUnarchivedRecords(`${ns.dbName}_none`, { writtenBefore: ts(100), limit: 10 })).toEqual([]);
      });

      it('summariseVersions counts entries per record with their ov range and when the oldest was superseded', async () => {
        const ns = freshNs();
        const [a, b] = [randomUUID(), randomUUID()].sort(compareIds) as [string, string];
        await commitOk(ns, create(a, { at: ts(1) }));
        for (let ov = 1; ov < 4; ov++) await commitOk(ns, update(a, ov, { at: ts(ov + 1) }));
        await commitOk(ns, create(b, { at: ts(50) }));
        await commitOk(freshNs(), create(a));
        expect(await store.summariseVersions(ns, { limit: 10 })).toEqual([
          { id: a, count: 4, oldestOv: 1, newestOv: 4, oldestSupersededAt: ts(2) },
          { id: b, count: 1, oldestOv: 1, newestOv: 1, oldestSupersededAt: null },
        ]);
        expect((await store.summariseVersions(ns, { limit: 1 })).map((s) => s.id)).toEqual([a]);
        expect((await store.summariseVersions(ns, { limit: 10, afterId: a })).map((s) => s.id)).toEqual([b]);
        expect(await store.pruneVersions(ns, a, 3)).toBe(2);
        expect((await store.summariseVersions(ns, { limit: 1 }))[0]).toEqual({ id: a, count: 2, oldestOv: 3, newestOv: 4, oldestSupersededAt: ts(4) });
      });

      it('offloadHead empties the body of a head at the expected ov only when it is in sync and archived', async () => {
        const ns = freshNs();
        const [id, unarchived, dead] = [randomUUID(), randomUUID(), randomUUID()];
        await commitOk(ns, [create(id), create(unarchived), create(dead)]);
        // Pending sync and unarchived versions: refused, nothing changes.
        const fresh = await store.getHead(ns, id);
        expect(await store.offloadHead(ns, id, 1)).toBe(false);
        expect(await store.getHead(ns, id)).toEqual(fresh);
        await store.completeSync(ns, id, { archivedOvs: [1], seq: (await store.getPendingSeq(ns, id))! });
        expect(await store.offloadHead(ns, id, 0)).toBe(false);
        expect(await store.offloadHead(ns, id, 2)).toBe(false);
        expect(await store.offloadHead(ns, id, 1)).toBe(true);
        // Every field but the body is kept; a second call changes nothing.
        expect(await store.getHead(ns, id)).toEqual({ ...fresh, body: '' });
        expect(await store.offloadHead(ns, id, 1)).toBe(false);
        expect((await store.listHeads(ns, { filter: null, includeDeleted: true, sort: { field: 'id', direction: 1 }, limit: 10 })).find((h) => h.id === id)?.body).toBe('');
        expect(await store.offloadHead(freshNs(), id, 1)).toBe(false);
        // In sync but a version entry is not archived yet.
        await store.completeSync(ns, unarchived, { archivedOvs: [], seq: (await store.getPendingSeq(ns, unarchived))! });
        expect(await store.offloadHead(ns, unarchived, 1)).toBe(false);
        await store.completeSync(ns, unarchived, { archivedOvs: [1], seq: null });
        expect(await store.offloadHead(ns, unarchived, 1)).toBe(true);
        // A dead letter is a sync that never finished: its objects are not trusted.
        await store.completeSync(ns, dead, { archivedOvs: [1], seq: null });
        expect(await store.deadLetterSync(ns, dead, (await store.getPendingSeq(ns, dead))!, 'blob store down')).toBe(true);
        expect(await store.offloadHead(ns, dead, 1)).toBe(false);
        // A commit writes a full head again.
        const next = update(id, 1);
        const result = await store.commit(ns, { writes: [next] });
        expect(result.ok).toBe(true);
        expect((await store.getHead(ns, id))?.body).toBe(next.head!.body);
      });

      it('pruneVersions removes older entries only, never the current one, and is idempotent', async () => {
        const ns = freshNs();
        const id = randomUUID();
        const other = randomUUID();
        await commitOk(ns, [create(id, { at: ts(1) }), create(other, { at: ts(1) })]);
        for (let ov = 1; ov < 5; ov++) await commitOk(ns, update(id, ov, { at: ts(ov + 1) }));
        const head = await store.getHead(ns, id);
        expect(await store.pruneVersions(ns, id, 3)).toBe(2);
        expect(await store.pruneVersions(ns, id, 3)).toBe(0);
        expect((await store.listVersions(ns, id, { limit: 10 })).map((v) => v.ov)).toEqual([5, 4, 3]);
        expect(await store.getVersion(ns, id, 2)).toBeNull();
        expect(await store.findVersionAt(ns, id, { at: ts(2) })).toBeNull();
        expect((await store.findVersionAt(ns, id, { at: ts(3) }))?.ov).toBe(3);
        // Asking for more than the history is capped at the head's ov: the current entry stays.
        expect(await store.pruneVersions(ns, id, 1_000)).toBe(2);
        expect((await store.listVersions(ns, id, { limit: 10 })).map((v) => v.ov)).toEqual([5]);
        expect(await store.getHead(ns, id)).toEqual(head);
        expect((await store.listVersions(ns, other, { limit: 10 })).map((v) => v.ov)).toEqual([1]);
        expect(await store.pruneVersions(ns, randomUUID(), 5)).toBe(0);
        // A soft-deleted record keeps its tombstone (its current entry) too.
        await commitOk(ns, update(other, 1, { deleted: true, op: 'delete', at: ts(9) }));
        expect(await store.pruneVersions(ns, other, 10)).toBe(1);
        expect((await store.listVersions(ns, other, { limit: 10 })).map((v) => [v.ov, v.deleted])).toEqual([[2, true]]);
      });

      it('getCollectionVersion is the last cv assigned; listClaims pages claims in key order', async () => {
        const ns = freshNs();
        expect(await store.getCollectionVersion(ns)).toBeNull();
        const [a, b] = [randomUUID(), randomUUID()];
        await commitOk(ns, [{ ...create(a), claims: [{ key: 'k2' }, { key: 'k1' }] }, { ...create(b), claims: [{ key: 'k3' }] }]);
        await commitOk(ns, hardDelete(b, 1));
        expect(await store.getCollectionVersion(ns)).toBe(2);
        await commitOk(ns, { ...create(randomUUID()), claims: [{ key: 'k0' }] });
        expect(await store.getCollectionVersion(ns)).toBe(3);
        const all = await store.listClaims(ns, { limit: 10 });
        expect(all.map((c) => c.key)).toEqual(['k0', 'k1', 'k2']);
        expect(all.find((c) => c.key === 'k1')?.id).toBe(a);
        expect(await store.listClaims(ns, { limit: 2, afterKey: 'k0' })).toEqual([{ key: 'k1', id: a }, { key: 'k2', id: a }]);
        expect(await store.listClaims(freshNs(), { limit: 10 })).toEqual([]);
      });

      it('importRecords writes heads and entries exactly as given, raises the cv, marks the records, and is idempotent', async () => {
        const source = freshNs();
        const target = freshNs();
        const [a, b] = [randomUUID(), randomUUID()].sort(compareIds) as [string, string];
        await commitOk(source, [{ ...create(a, { meta: TRICKY_META, body: TRICKY_BODIES[1] }), claims: [{ key: 'ka' }] }, create(b)]);
        await commitOk(source, update(a, 1, { actor: { type: 'agent', identifier: 'bot', name: 'Bot' }, reason: 'why', body: TRICKY_BODIES[0] }));
        await commitOk(source, update(b, 1, { deleted: true, op: 'delete' }));
        await commitOk(source, hardDelete(b, 2));
        await commitOk(source, create(b));
        await store.completeSync(source, a, { archivedOvs: [1], seq: null });
        const snapshot = async (ns: Namespace) => ({
          heads: await Promise.all([a, b].map((id) => store.getHead(ns, id))),
          versions: await Promise.all([a, b].map((id) => store.listVersions(ns, id, { limit: 10 }))),
        });
        const before = await snapshot(source);
        const cv = await store.getCollectionVersion(source);
        const batch = {
          records: [a, b].map((id, i) => ({ head: before.heads[i]!, versions: [...before.versions[i]!].reverse() })),
          claims: await store.listClaims(source, { limit: 10 }),
          collectionVersion: cv!,
        };
        await store.importRecords(target, batch);
        expect(await snapshot(target)).toEqual(before);
        expect(await store.getVersion(target, a, 1)).toMatchObject({ archived: true, body: null, size: Buffer.byteLength(TRICKY_BODIES[1]!, 'utf8') });
        expect(await store.getCollectionVersion(target)).toBe(cv);
        expect(await store.getClaim(target, 'ka')).toBe(a);
        expect(await store.listCollections(target.dbName)).toEqual([target.collection]);
        expect((await store.listPendingSync(target.dbName, { limit: 10 })).map((p) => p.id).sort(compareIds)).toEqual([a, b]);
        expect((await store.listVersionsByActor(target, 'bot', { limit: 10, actorType: 'agent' })).map((v) => v.ov)).toEqual([2]);

        await store.importRecords(target, batch);
        expect(await snapshot(target)).toEqual(before);
        // The cv never goes down, and later commits never reuse an imported cv.
        await store.importRecords(target, { records: [], collectionVersion: 0 });
        expect(await store.getCollectionVersion(target)).toBe(cv);
        expect(await commitOk(target, update(a, 2))).toEqual([cv! + 1]);
        // Importing a record replaces the entries it had.
        await store.importRecords(target, { records: [batch.records[0]!] });
        expect(await store.listVersions(target, a, { limit: 10 })).toEqual(before.versions[0]);
      });

      it('replaceCollections copies staged collections in whole, empties the rest, sets counters exactly, and refuses a non-empty target with onlyIfEmpty', async () => {
        const live = freshNs();
        const stage = { dbName: `${live.dbName}_stage`, collection: live.collection };
        const analytics = `${live.dbName}_an`;
        const gone = { dbName: live.dbName, collection: `${live.collection}_gone` };
        const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()].sort(compareIds) as [string, string, string];
        // Live: records a (updated twice) and c, a claim, counters and windows; another collection.
        await commitOk(live, [{ ...create(a), claims: [{ key: 'ka' }] }, create(c)], [{ dbName: analytics, collection: live.collection, deltas: { created: 2, extra: 5 }, windows: ['day:2026-01-01'] }]);
        await commitOk(live, update(a, 1));
        await commitOk(live, update(a, 2));
        await commitOk(gone, create(randomUUID()), [{ dbName: analytics, collection: gone.collection, deltas: { created: 1 } }]);
        expect(await store.countRecords(live)).toBe(2);
        expect(await store.countRecords(freshNs())).toBe(0);
        // Staged (as a restore stages a snapshot): a at ov 1 and b, not marked for sync.
        const source = freshNs();
        await commitOk(source, [{ ...create(a), claims: [{ key: 'kb' }] }, create(b)]);
        await commitOk(source, update(a, 1));
        const staged = async (ns: Namespace) => ({
          heads: await store.listHeads(ns, { filter: null, includeDeleted: true, sort: { field: 'id', direction: 1 }, limit: 10 }),
          versions: await Promise.all([a, b, c].map((id) => store.listVersions(ns, id, { limit: 10 }))),
          claims: await store.listClaims(ns, { limit: 10 }),
          cv: await store.getCollectionVersion(ns),
        });
        const wanted = await staged(source);
        await store.importRecords(stage, {
          records: wanted.heads.map((head) => ({ head, versions: wanted.versions[[a, b, c].indexOf(head.id)]! })),
          claims: wanted.claims,
          collectionVersion: wanted.cv!,
          sync: false,
        });
        expect(await store.listPendingSync(stage.dbName, { limit: 10 })).toEqual([]);
        const counters = { totals: { created: 7 }, windows: [{ window: 'day:2026-01-02', counts: { created: 7 } }] };

        // onlyIfEmpty: the live collection holds records, so nothing changes.
        const before = await staged(live);
        expect(await store.replaceCollections(live.dbName, [{ collection: live.collection, from: stage.dbName, counters }], { countersDb: analytics, wholeDatabase: false, onlyIfEmpty: true })).toEqual({
          replaced: false,
          held: 2,
        });
        expect(await staged(live)).toEqual(before);
        expect(await store.replaceCollections(live.dbName, [{ collection: live.collection, from: stage.dbName, counters }], { countersDb: analytics, wholeDatabase: true, onlyIfEmpty: true })).toEqual({
          replaced: false,
          held: 3,
        });

        // Replace the whole database: the live collection equals the staged one, the other is emptied.
        for (let round = 0; round < 2; round++) {
          expect(await store.replaceCollections(live.dbName, [{ collection: live.collection, from: stage.dbName, counters }], { countersDb: analytics, wholeDatabase: true, onlyIfEmpty: false })).toEqual({
            replaced: true,
            held: round === 0 ? 3 : 2,
          });
          expect(await staged(live)).toEqual(wanted);
          expect(await store.getCounters(analytics, live.collection)).toEqual({ created: 7 });
          expect(await store.getCounterWindows(analytics, live.collection, { granularity: 'day' })).toEqual(counters.windows);
          expect(await store.countRecords(gone)).toBe(0);
          expect(await store.getCounters(analytics, gone.collection)).toEqual({});
          expect(await store.listCollections(live.dbName)).toEqual([live.collection]);
          // Every record copied in is marked for blob sync; the staging area is left as it was.
          expect((await store.listPendingSync(live.dbName, { limit: 10 })).map((p) => p.id).sort(compareIds)).toEqual([a, b]);
          expect(await store.countRecords(stage)).toBe(2);
        }
        // Later commits continue from the copied collection version.
        expect(await commitOk(live, update(a, 2))).toEqual([wanted.cv! + 1]);
        // from: null empties a collection (a staging area, here).
        expect(await store.replaceCollections(stage.dbName, [{ collection: stage.collection, from: null }], { countersDb: stage.dbName, wholeDatabase: true, onlyIfEmpty: false })).toEqual({ replaced: true, held: 2 });
        expect(await store.countRecords(stage)).toBe(0);
        expect(await store.listCollections(stage.dbName)).toEqual([]);
        expect(await store.replaceCollections(live.dbName, [{ collection: live.collection, from: stage.dbName }], { countersDb: analytics, wholeDatabase: false, onlyIfEmpty: false })).toEqual({ replaced: true, held: 2 });
        expect(await store.countRecords(live)).toBe(0);
        expect(await store.getCounters(analytics, live.collection)).toEqual({});
      });

      it('setCounters sets the named totals only, idempotently', async () => {
        const ns = freshNs();
        await commitOk(ns, create(randomUUID()), [{ dbName: ns.dbName, collection: ns.collection, deltas: { created: 3, kept: 7 } }]);
        await store.setCounters(ns.dbName, ns.collection, { created: 10, fresh: 2 });
        await store.setCounters(ns.dbName, ns.collection, { created: 10, fresh: 2 });
        expect(await store.getCounters(ns.dbName, ns.collection)).toEqual({ created: 10, kept: 7, fresh: 2 });
        await commitOk(ns, create(randomUUID()), [{ dbName: ns.dbName, collection: ns.collection, deltas: { created: 1 } }]);
        expect(await store.getCounters(ns.dbName, ns.collection)).toEqual({ created: 11, kept: 7, fresh: 2 });
      });

      it('setCounterWindows sets the named counters of the listed windows only, idempotently; totals and other windows stay', async () => {
        const ns = freshNs();
        const other = { dbName: ns.dbName, collection: `${ns.collection}_2` };
        await commitOk(ns, create(randomUUID()), [
          { dbName: ns.dbName, collection: ns.collection, deltas: { created: 3, kept: 7 }, windows: ['day:2026-01-01', 'week:2026-W01', 'month:2026-01'] },
        ]);
        const windows: CounterWindow[] = [
          { window: 'day:2026-01-01', counts: { created: 10, fresh: 2 } },
          { window: 'day:2026-01-03', counts: { created: 1 } },
          { window: 'week:2026-W02', counts: { created: 4 } },
        ];
        await store.setCounterWindows(ns.dbName, ns.collection, windows);
        await store.setCounterWindows(ns.dbName, ns.collection, windows);
        await store.setCounterWindows(ns.dbName, ns.collection, []);
        const all = async (c: { dbName: string; collection: string } = ns) =>
          Promise.all((['day', 'week', 'month'] as const).map((granularity) => store.getCounterWindows(c.dbName, c.collection, { granularity })));
        expect(await all()).toEqual([
          [
            { window: 'day:2026-01-01', counts: { created: 10, kept: 7, fresh: 2 } },
            { window: 'day:2026-01-03', counts: { created: 1 } },
          ],
          [
            { window: 'week:2026-W01', counts: { created: 3, kept: 7 } },
            { window: 'week:2026-W02', counts: { created: 4 } },
          ],
          [{ window: 'month:2026-01', counts: { created: 3, kept: 7 } }],
        ]);
        expect(await store.getCounters(ns.dbName, ns.collection)).toEqual({ created: 3, kept: 7 });
        expect(await all(other)).toEqual([[], [], []]);
        // Later deltas add to the values set.
        await commitOk(ns, create(randomUUID()), [{ dbName: ns.dbName, collection: ns.collection, deltas: { created: 1 }, windows: ['day:2026-01-03'] }]);
        expect((await all())[0]).toEqual([
          { window: 'day:2026-01-01', counts: { created: 10, kept: 7, fresh: 2 } },
          { window: 'day:2026-01-03', counts: { created: 2 } },
        ]);
      });
    });

    describe('lifecycle', () => {
      it('ping resolves', async () => {
        await expect(store.ping()).resolves.toBeUndefined();
      });

      it('prepareDatabase makes a database ahead of time, idempotently; it then serves as one made by its first write', async () => {
        const ns = freshNs();
        expect(typeof (await store.prepareDatabase(ns.dbName))).toBe('boolean');
        expect(await store.prepareDatabase(ns.dbName)).toBe(false);
        expect(await store.getHead(ns, 'nobody')).toBeNull();
        expect(await store.listCollections(ns.dbName)).toEqual([]);
        const id = randomUUID();
        await commitOk(ns, create(id));
        expect(await store.getHead(ns, id)).toMatchObject({ id });
        expect(await store.prepareDatabase(ns.dbName)).toBe(false);
        expect(await store.listCollections(ns.dbName)).toEqual([ns.collection]);
      });

      it('after close, calls fail', async () => {
        const ns = freshNs();
        const id = randomUUID();
        await commitOk(ns, create(id));
        await store.close();
        await expect(store.ping()).rejects.toThrow();
        await expect(store.getHead(ns, id)).rejects.toThrow();
        await expect(store.commit(ns, { writes: [update(id, 1)] })).rejects.toThrow();
        await expect(store.listHeads(ns, { filter: null, includeDeleted: false, sort: { field: 'id', direction: 1 }, limit: 1 })).rejects.toThrow();
        await expect(store.listPendingSync(ns.dbName, { limit: 1 })).rejects.toThrow();
        await expect(store.acquireLock(ns, 'k', 'A', 1000)).rejects.toThrow();
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/** A namespace no other test uses. Names stay short and plain so any backend accepts them. */
function freshNs(): Namespace {
  const tag = randomUUID().replace(/-/g, '').slice(0, 16);
  return { dbName: `xc_${tag}`, collection: `items_${tag.slice(0, 6)}` };
}

const BASE_TIME = Date.UTC(2024, 0, 1);
function ts(offsetSeconds: number): string {
  return new Date(BASE_TIME + offsetSeconds * 1000).toISOString();
}

interface WriteOptions {
  body?: string;
  meta?: Record<string, IndexedValue>;
  at?: string;
  createdAt?: string;
  deleted?: boolean;
  op?: VersionOp;
  actor?: Actor;
  reason?: string | null;
  hash?: string;
}

function put(id: string, expectedOv: number | null, ov: number, o: WriteOptions): RecordWrite {
  const at = o.at ?? ts(ov);
  const deleted = o.deleted ?? false;
  const body = o.body ?? JSON.stringify({ id, ov, op: o.op ?? (expectedOv === null ? 'create' : 'update'), at, data: { n: ov } });
  // Hashes are opaque to the store: any string must round-trip.
  const hash = o.hash ?? `hash-${id}-${ov}`;
  return {
    id,
    expectedOv,
    head: { ov, deleted, createdAt: o.createdAt ?? ts(0), updatedAt: at, deletedAt: deleted ? at : null, meta: o.meta ?? {}, body, hash },
    version: { op: o.op ?? (expectedOv === null ? 'create' : 'update'), at, actor: o.actor ?? 'tester', reason: o.reason ?? null, deleted, body, hash },
  };
}

function create(id: string, o: WriteOptions = {}): RecordWrite {
  return put(id, null, 1, o);
}

function update(id: string, fromOv: number, o: WriteOptions = {}): RecordWrite {
  return put(id, fromOv, fromOv + 1, o);
}

function hardDelete(id: string, fromOv: number): RecordWrite {
  return { id, expectedOv: fromOv, head: null };
}

function expectedHead(write: RecordWrite, cv: number): HeadRow {
  const h = write.head!;
  return { id: write.id, ov: h.ov, cv, deleted: h.deleted, createdAt: h.createdAt, updatedAt: h.updatedAt, deletedAt: h.deletedAt, meta: h.meta, body: h.body, hash: h.hash };
}

function expectedVersion(write: RecordWrite, cv: number): VersionRow {
  const v = write.version!;
  return {
    id: write.id,
    ov: write.head!.ov,
    cv,
    op: v.op,
    at: v.at,
    actor: v.actor,
    reason: v.reason,
    deleted: v.deleted,
    // Not stated in the port's TSDoc; the UTF-8 byte length of the body is what the engine reports.
    size: Buffer.byteLength(v.body, 'utf8'),
    body: v.body,
    archived: false,
    meta: write.head!.meta,
    hash: v.hash,
  };
}

/** Whether `size` survives archiving is not stated by the port, so archived rows are compared without it. */
function omitSize(v: VersionRow): Partial<VersionRow> {
  const rest: Partial<VersionRow> = { ...v };
  delete rest.size;
  return rest;
}

const VERSION_OP_CYCLE: readonly VersionOp[] = ['update', 'enrich', 'restore'];

/**
 * Bodies an adapter must not re-serialise: escapes that parse to the same string, number
 * spellings JSON.parse would normalise, whitespace, duplicate keys, non-BMP characters.
 */
const TRICKY_BODIES: readonly string[] = [
  JSON.stringify({ id: 'x', data: { text: 'héllo wörld — 日本語 🎉 👩‍👩‍👧 e\u0301 \u202eRTL\u202c \u2028\u2029', nul: '\u0000', lone: '\ud800' } }),
  '{"a":"\\u00e9\\u0000\\n\\t\\"\\\\\\/","b":1.0,"c":1e3,"d":-0.0,"e":[ ],"f" : { } ,"k":1,"k":2}',
  '{\n  "pretty": true,\n\t"tab": "\t",\n  "big": 123456789012345678901234567890\n}\n',
  '{}',
  JSON.stringify({ long: '🎉'.repeat(20_000) + 'x'.repeat(100_000) }),
  '{"emoji":"\\ud83c\\udf89","raw":"🎉","mixed":"\\uD83C🎉"}',
];

const TRICKY_META: Record<string, IndexedValue> = {
  'customer.id': 'c1',
  zero: 0,
  negative: -12.5,
  big: Number.MAX_SAFE_INTEGER,
  t: true,
  f: false,
  nothing: null,
  empty: '',
  text: 'ü🎉 "q" \\ \n',
};

function eq(field: string, value: IndexedValue): FilterNode {
  return { kind: 'compare', field, op: '$eq', value };
}
function cmp(field: string, op: '$ne' | '$gt' | '$gte' | '$lt' | '$lte', value: IndexedValue): FilterNode {
  return { kind: 'compare', field, op, value };
}
function isIn(field: string, values: IndexedValue[], negate = false): FilterNode {
  return { kind: 'in', field, negate, values };
}
function exists(field: string, yes: boolean): FilterNode {
  return { kind: 'exists', field, exists: yes };
}

interface FilterRow {
  id: string;
  name: string;
  deleted: boolean;
  meta: Record<string, IndexedValue>;
}

/** Metadata chosen to tell apart missing vs null, number vs string, case, and UTF-8 vs UTF-16 order. */
const FILTER_ROWS: ReadonlyArray<Omit<FilterRow, 'id'>> = [
  { name: 'gold1', deleted: false, meta: { tier: 'gold', n: 1, flag: true, 'customer.id': 'c1' } },
  { name: 'silver2', deleted: false, meta: { tier: 'silver', n: 2, flag: false } },
  { name: 'nullTier', deleted: false, meta: { tier: null, n: '2' } },
  { name: 'empty', deleted: false, meta: {} },
  { name: 'gold35', deleted: false, meta: { tier: 'gold', n: 3.5, 'customer.id': 'c2' } },
  { name: 'Gold', deleted: false, meta: { tier: 'Gold', n: -1, flag: true } },
  { name: 'emoji', deleted: false, meta: { tier: '\u{1F600}', n: 0 } },
  { name: 'fullwidth', deleted: false, meta: { tier: '\uFF5E', n: 2 } },
  { name: 'blank', deleted: false, meta: { tier: '', n: 1e6, flag: false } },
  { name: 'eclair', deleted: false, meta: { tier: 'éclair', n: 2.0000001, 'customer.id': null } },
  { name: 'deletedGold', deleted: true, meta: { tier: 'gold', n: 1 } },
];

const FILTERS: readonly FilterNode[] = [
  eq('tier', 'gold'),
  eq('tier', null),
  cmp('tier', '$ne', null),
  cmp('tier', '$ne', 'gold'),
  eq('tier', ''),
  eq('n', 2),
  eq('n', '2'),
  cmp('n', '$ne', 2),
  cmp('n', '$gt', 1),
  cmp('n', '$gte', 2),
  cmp('n', '$lt', 2),
  cmp('n', '$lte', 0),
  cmp('n', '$gt', '1'),
  cmp('tier', '$gt', 'gold'),
  cmp('tier', '$lt', '\uFF5E'),
  cmp('tier', '$gte', '\u{1F600}'),
  cmp('tier', '$gt', ''),
  cmp('tier', '$lte', 'Gold'),
  eq('flag', true),
  eq('flag', false),
  cmp('flag', '$ne', true),
  cmp('flag', '$gt', false),
  cmp('flag', '$lt', true),
  isIn('tier', ['gold', 'silver']),
  isIn('tier', [null, 'Gold']),
  isIn('tier', ['gold'], true),
  isIn('tier', [null], true),
  isIn('tier', []),
  isIn('tier', [], true),
  isIn('n', [2, '2', true]),
  exists('tier', true),
  exists('tier', false),
  exists('customer.id', true),
  eq('customer.id', null),
  eq('customer.id', 'c1'),
  { kind: 'and', items: [cmp('n', '$gte', 1), cmp('tier', '$ne', 'silver')] },
  { kind: 'or', items: [eq('flag', true), eq('tier', null)] },
  { kind: 'and', items: [{ kind: 'or', items: [eq('tier', 'gold'), eq('tier', 'silver')] }, cmp('n', '$lt', 3)] },
  { kind: 'or', items: [{ kind: 'and', items: [exists('flag', true), eq('flag', false)] }, isIn('tier', ['Gold'])] },
  { kind: 'and', items: [exists('n', true), { kind: 'or', items: [isIn('n', [1, 2], true), exists('flag', false)] }] },
];

const EMPTY_GROUP_FILTERS: readonly FilterNode[] = [
  { kind: 'and', items: [] },
  { kind: 'or', items: [] },
  { kind: 'and', items: [{ kind: 'and', items: [] }, eq('tier', 'gold')] },
  { kind: 'or', items: [{ kind: 'or', items: [] }, eq('tier', 'gold')] },
];

async function seedFilterRowsInto(store: IndexStore, ns: Namespace): Promise<FilterRow[]> {
  const rows = FILTER_ROWS.map((r) => ({ ...r, id: randomUUID() }));
  const result = await store.commit(ns, { writes: rows.map((r) => create(r.id, { meta: r.meta })) });
  if (!result.ok) throw new Error(`Seeding failed: ${JSON.stringify(result)}`);
  for (const r of rows.filter((r) => r.deleted)) {
    const del = await store.commit(ns, { writes: [update(r.id, 1, { meta: r.meta, deleted: true, op: 'delete' })] });
    if (!del.ok) throw new Error(`Seeding failed: ${JSON.stringify(del)}`);
  }
  return rows;
}

function label(rows: readonly FilterRow[], ids: readonly string[]): string {
  return `[${ids.map((id) => rows.find((r) => r.id === id)?.name ?? id).join(', ')}]`;
}

/** Byte order of the UTF-8 encodings, which is the order the port's string comparisons use. */
function compareIds(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function sortValue(head: HeadRow, field: SortField): string {
  return field === 'id' ? head.id : field === 'createdAt' ? head.createdAt : head.updatedAt;
}

function sortPending<T extends { collection: string; id: string }>(rows: T[]): T[] {
  return [...rows].sort((x, y) => compareIds(`${x.collection}/${x.id}`, `${y.collection}/${y.id}`));
}

async function allHeads(store: IndexStore, ns: Namespace, includeDeleted: boolean): Promise<string[]> {
  return (await store.listHeads(ns, { filter: null, includeDeleted, sort: { field: 'id', direction: 1 }, limit: 1000 })).map((h) => h.id);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
