import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CollectionSpec, Doc, DocFilter, DocScalar, DocumentStore, IndexInfo } from '../../core/contracts/document-store.js';
import type { Namespace } from '../../core/contracts/index-store.js';
import { checkDocument } from '../../core/domains/documents/document-check.js';
import { parseDocumentFilter } from '../../core/domains/documents/document-filter.js';
import { DuplicateKeyError, ValidationError, XronoxError } from '../../core/errors.js';
import { byPath, matches } from '../../core/foundation/filter.js';
import { seededRandom } from '../support/random.js';

/**
 * The document store port's conformance suite: every adapter runs it through a short test file,
 * `documentStoreConformance('sqlite', async () => ({ store, cleanup }))`. It checks only what the
 * TSDoc of `core/contracts/document-store.ts` promises. `open` is called once per test; every test
 * uses fresh random namespaces, so tests run in any order and may share a server.
 */
export function documentStoreConformance(
  name: string,
  open: () => Promise<{ store: DocumentStore; cleanup: () => Promise<void>; openAnother?: () => Promise<DocumentStore> }>,
): void {
  describe(`document store conformance: ${name}`, () => {
    let store: DocumentStore;
    let cleanup: () => Promise<void>;
    let openAnother: (() => Promise<DocumentStore>) | undefined;

    beforeEach(async () => {
      ({ store, cleanup, openAnother } = await open());
    });
    afterEach(async () => {
      await cleanup();
    });

    const ready = async (spec: CollectionSpec = SPEC, ns = freshNs()) => {
      await store.ensureCollection(ns, spec);
      return ns;
    };
    const all = (ns: Namespace, filter: DocFilter | null = null) => store.find(ns, filter, { limit: 10_000 });
    const f = (input: unknown, spec: CollectionSpec = SPEC) => parseDocumentFilter(input, new Set(spec.fields));

    describe('collections and indexes', () => {
      it('creates every declared index, exactly as declared, and reports it', async () => {
        const ns = await ready();
        expect(await store.listIndexes(ns)).toEqual(expectedIndexes(SPEC));
      });

      it('is idempotent and safe when many callers (and a second connection) race', async () => {
        const ns = freshNs();
        const others = openAnother ? [await openAnother()] : [];
        try {
          await Promise.all([...Array.from({ length: 8 }, () => store.ensureCollection(ns, SPEC)), ...others.map((o) => o.ensureCollection(ns, SPEC))]);
          await store.ensureCollection(ns, SPEC);
          expect(await store.listIndexes(ns)).toEqual(expectedIndexes(SPEC));
          for (const o of others) expect(await o.listIndexes(ns)).toEqual(expectedIndexes(SPEC));
        } finally {
          for (const o of others) await o.close();
        }
      });

      it('refuses to redefine an existing index, and changes nothing', async () => {
        const ns = await ready();
        const changed: CollectionSpec = { ...SPEC, indexes: SPEC.indexes.map((i) => (i.name === 'at_-1' ? { ...i, keys: [['at', 1]] as const } : i)) };
        const err = await store.ensureCollection(ns, changed).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(XronoxError);
        expect(String((err as Error).message)).toContain('at_-1');
        expect(await store.listIndexes(ns)).toEqual(expectedIndexes(SPEC));
      });

      it('lists no indexes and no documents for a collection never created', async () => {
        const ns = freshNs();
        expect(await store.listIndexes(ns)).toEqual([]);
        expect(await store.find(ns, null, { limit: 10 })).toEqual([]);
        expect(await store.findOne(ns, null)).toBeNull();
        expect(await store.deleteMany(ns, null)).toBe(0);
        expect(await store.deleteExpired(ns, new Date())).toBe(0);
      });
    });

    describe('documents', () => {
      it('round-trips documents exactly: dates, nesting, arrays, unicode, numbers', async () => {
        const ns = await ready();
        const docs = ROUND_TRIP.map((d) => checkDocument(d, SPEC, 1 << 20).doc);
        for (const d of docs) await store.insertOne(ns, d);
        const back = await all(ns);
        expect(back).toEqual(docs);
        // Dates come back as Dates, not strings.
        expect(back[0]!.at).toBeInstanceOf(Date);
        expect(((back[0]!._system as Doc).updatedAt as Date).getTime()).toBe((docs[0]!._system as Doc & { updatedAt: Date }).updatedAt.getTime());
        expect(await store.findOne(ns, f({ k: docs[2]!.k }))).toEqual(docs[2]);
      });

      it('a unique index refuses a duplicate key with DuplicateKeyError naming the index, and writes nothing', async () => {
        const ns = await ready();
        await store.insertOne(ns, doc({ k: 'a', g: 'x', n: 1 }));
        await store.insertOne(ns, doc({ k: 'a', g: 'y', n: 2 }));
        const err = await store.insertOne(ns, doc({ k: 'a', g: 'x', n: 3 })).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(DuplicateKeyError);
        expect(err).toMatchObject({ code: 'CONFLICT', index: 'k_1_g_1', collection: ns.collection });
        const code = await store.insertOne(ns, doc({ k: 'z', g: 'z', code: 'c1' })).then(() => store.insertOne(ns, doc({ k: 'w', g: 'w', code: 'c1' }))).catch((e: unknown) => e);
        expect(code).toMatchObject({ index: 'code_1' });
        expect((await all(ns)).map((d) => d.n ?? d.code)).toEqual([1, 2, 'c1']);
      });

      it('a sparse unique index lets many documents lack the field', async () => {
        const ns = await ready();
        for (let i = 0; i < 5; i++) await store.insertOne(ns, doc({ k: `s${i}`, g: 'g' }));
        expect(await all(ns)).toHaveLength(5);
      });

      it('keeps namespaces apart: databases, collections, and names that differ only in case', async () => {
        const tag = randomUUID().slice(0, 8);
        const upper = { dbName: `dA${tag}`, collection: 'items' };
        const otherColl = { dbName: `dA${tag}`, collection: 'Items' };
        const otherDb = { dbName: `xd_${tag}`, collection: 'items' };
        // MongoDB refuses a database whose name differs from an existing one only in case;
        // SQLite keeps the two apart. Either is safe; sharing one would not be.
        const lower = { dbName: `da${tag}`, collection: 'items' };
        const names: Namespace[] = [upper, otherColl, otherDb];
        for (const ns of names) await store.ensureCollection(ns, SPEC);
        const lowerOpen = await store.ensureCollection(lower, SPEC).then(() => true, () => false);
        if (lowerOpen) names.push(lower);
        for (const [i, ns] of names.entries()) await store.insertOne(ns, doc({ k: 'same', g: 'same', n: i }));
        for (const [i, ns] of names.entries()) {
          expect((await all(ns)).map((d) => d.n)).toEqual([i]);
          expect(await store.listIndexes(ns)).toEqual(expectedIndexes(SPEC));
        }
        expect(await store.deleteMany(upper, null)).toBe(1);
        for (const [i, ns] of names.entries()) if (i > 0) expect((await all(ns)).map((d) => d.n)).toEqual([i]);
      });
    });

    describe('upsert', () => {
      it('inserts, then replaces the matching document in place', async () => {
        const ns = await ready();
        const key = f({ k: 'u', g: 'g' })!;
        expect(await store.upsertOne(ns, key, doc({ k: 'u', g: 'g', n: 1, extra: [1] }))).toEqual({ created: true });
        expect(await store.upsertOne(ns, key, doc({ k: 'u', g: 'g', n: 2 }))).toEqual({ created: false });
        expect(await all(ns)).toEqual([doc({ k: 'u', g: 'g', n: 2 })]);
      });

      it('16 concurrent upserts of one key leave exactly one document holding one of the written values', async () => {
        const ns = await ready();
        const others = openAnother ? await Promise.all([openAnother(), openAnother()]) : [];
        try {
          for (const o of others) await o.ensureCollection(ns, SPEC);
          const stores = [store, ...others];
          const key = f({ k: 'race', g: 'g' })!;
          const written = Array.from({ length: 16 }, (_, i) => doc({ k: 'race', g: 'g', n: i }));
          const results = await Promise.all(written.map((d, i) => stores[i % stores.length]!.upsertOne(ns, key, d)));
          const docs = await all(ns);
          expect(docs).toHaveLength(1);
          expect(written).toContainEqual(docs[0]);
          expect(results.filter((r) => r.created)).toHaveLength(1);
        } finally {
          for (const o of others) await o.close();
        }
      });

      it('refuses a replacement that takes another document\'s unique key, and changes nothing', async () => {
        const ns = await ready();
        await store.insertOne(ns, doc({ k: 'a', g: 'g', code: 'one' }));
        await store.insertOne(ns, doc({ k: 'b', g: 'g', code: 'two' }));
        const err = await store.upsertOne(ns, f({ k: 'b', g: 'g' })!, doc({ k: 'b', g: 'g', code: 'one' })).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(DuplicateKeyError);
        expect(err).toMatchObject({ index: 'code_1' });
        expect((await all(ns)).map((d) => d.code)).toEqual(['one', 'two']);
      });
    });

    describe('reads and deletes', () => {
      it('sorts by declared fields (dates descending), ties in insertion order, and limits', async () => {
        const ns = await ready();
        const t = (m: number) => new Date(Date.UTC(2025, 0, 1, 0, m));
        const order = [3, 1, 3, 2, 0, 3];
        for (const [i, m] of order.entries()) await store.insertOne(ns, doc({ k: `k${i}`, g: 'g', at: t(m), n: i }));
        const byAtDesc = await store.find(ns, null, { sort: [['at', -1]], limit: 4 });
        expect(byAtDesc.map((d) => d.n)).toEqual([0, 2, 5, 3]);
        expect((await store.find(ns, null, { sort: [['at', 1], ['n', -1]], limit: 10 })).map((d) => d.n)).toEqual([4, 1, 3, 5, 2, 0]);
        expect((await store.findOne(ns, f({ at: { $gte: t(2) } }), { sort: [['at', 1]] }))?.n).toBe(3);
        expect((await store.find(ns, f({ at: { $gt: t(0), $lt: t(3) } }), { limit: 10 })).map((d) => d.n)).toEqual([1, 3]);
      });

      it('deleteOne removes exactly the first match in insertion order; deleteMany every match; both report counts', async () => {
        const ns = await ready();
        // Keys in the reverse of insertion order: no key index can stand in for insertion order.
        for (let i = 0; i < 6; i++) await store.insertOne(ns, doc({ k: `d${5 - i}`, g: i % 2 ? 'odd' : 'even', n: i }));
        expect(await store.deleteOne(ns, f({ g: 'odd' })!)).toBe(1);
        const left = (await all(ns)).map((d) => d.n as number);
        expect(left.filter((n) => n % 2 === 1)).toEqual([3, 5]);
        expect(left.filter((n) => n % 2 === 0)).toEqual([0, 2, 4]);
        expect(await store.deleteOne(ns, f({ g: 'none' })!)).toBe(0);
        expect(await store.deleteMany(ns, f({ n: { $gte: 2 } }))).toBe(left.filter((n) => n >= 2).length);
        expect((await all(ns)).map((d) => d.n)).toEqual(left.filter((n) => n < 2));
        expect(await store.deleteMany(ns, null)).toBe(left.filter((n) => n < 2).length);
        expect(await all(ns)).toEqual([]);
      });

      it('agrees with matches (the in-memory evaluator) on seeded random documents and filters (dates, nulls, missing, mixed types)', async () => {
        for (const seed of [1, 7, 20240601]) {
          const ns = await ready();
          const g = new Gen(seed);
          const docs = Array.from({ length: 60 }, (_, i) => g.document(i));
          for (const d of docs) await store.insertOne(ns, d);
          for (let i = 0; i < 150; i++) {
            const input = g.filter();
            const node = f(input);
            const expected = docs.filter((d) => matches(node, byPath(d))).map((d) => d.k);
            const got = (await store.find(ns, node, { limit: 1000 })).map((d) => d.k);
            expect({ seed, filter: input, got }).toEqual({ seed, filter: input, got: expected });
          }
        }
      });
    });

    describe('expiry', () => {
      it('hides expired documents from every read, removes exactly them, and lets their keys be reused', async () => {
        const ns = await ready();
        const now = Date.now();
        const past = new Date(now - 60_000);
        const future = new Date(now + 3_600_000);
        await store.insertOne(ns, doc({ k: 'gone1', g: 'g', n: 1 }), { expiresAt: past });
        await store.insertOne(ns, doc({ k: 'gone2', g: 'g', n: 2 }), { expiresAt: past });
        await store.insertOne(ns, doc({ k: 'later', g: 'g', n: 3 }), { expiresAt: future });
        await store.insertOne(ns, doc({ k: 'never', g: 'g', n: 4 }));
        expect((await all(ns)).map((d) => d.n)).toEqual([3, 4]);
        expect(await store.findOne(ns, f({ k: 'gone1' }))).toBeNull();
        expect(await store.deleteMany(ns, f({ n: { $lt: 3 } }))).toBe(0);
        // A new document may take an expired one's key; an upsert replaces (and revives) it.
        await store.insertOne(ns, doc({ k: 'gone1', g: 'g', n: 5 }));
        expect(await store.upsertOne(ns, f({ k: 'gone2', g: 'g' })!, doc({ k: 'gone2', g: 'g', n: 6 }))).toEqual({ created: false });
        expect((await all(ns)).map((d) => d.n).sort()).toEqual([3, 4, 5, 6]);
        await store.insertOne(ns, doc({ k: 'gone3', g: 'g', n: 7 }), { expiresAt: past });
        expect(await store.deleteExpired(ns, new Date(now))).toBe(1);
        expect(await store.deleteExpired(ns, new Date(now))).toBe(0);
        expect(await store.deleteExpired(ns, new Date(future.getTime()))).toBe(1);
        expect((await all(ns)).map((d) => d.n).sort()).toEqual([4, 5, 6]);
      });
    });

    describe('export, import and clear (backups)', () => {
      it('exports every document with its expiry in insertion order, page by page; import and clear round-trip them', async () => {
        const ns = await ready();
        const past = new Date(Date.now() - 60_000);
        const future = new Date(Date.UTC(2999, 0, 1));
        const docs = ROUND_TRIP.map((d) => checkDocument(d, SPEC, 1 << 20).doc);
        for (let i = 0; i < 23; i++) docs.push(doc({ k: `p${i}`, g: 'g', n: i }));
        const expiries = docs.map((_, i) => (i % 5 === 1 ? past : i % 5 === 3 ? future : null));
        for (const [i, d] of docs.entries()) await store.insertOne(ns, d, expiries[i] ? { expiresAt: expiries[i] } : {});
        const exported = [];
        let after: string | undefined;
        for (let pages = 0; pages < 100; pages++) {
          const page = await store.exportDocuments(ns, { limit: 4, ...(after !== undefined ? { after } : {}) });
          expect(page.documents.length).toBeLessThanOrEqual(4);
          exported.push(...page.documents);
          if (page.next === null) break;
          after = page.next;
        }
        // Expired documents are part of the data until removed.
        expect(exported).toEqual(docs.map((d, i) => ({ doc: d, expiresAt: expiries[i] })));

        const copy = await ready();
        await store.importDocuments(copy, exported.slice(0, 10));
        await store.importDocuments(copy, exported.slice(10));
        expect((await store.exportDocuments(copy, { limit: 1000 })).documents).toEqual(exported);
        expect(await all(copy)).toEqual(docs.filter((_, i) => expiries[i] !== past));
        // A clash with a unique key already present is named.
        const clash = await store.importDocuments(copy, [{ doc: doc({ k: 'p0', g: 'g', n: 99 }), expiresAt: null }]).catch((e: unknown) => e);
        expect(clash).toMatchObject({ index: 'k_1_g_1' });
        expect(clash).toBeInstanceOf(DuplicateKeyError);
        expect(await store.clearCollection(copy)).toBe(docs.length);
        expect((await store.exportDocuments(copy, { limit: 10 })).documents).toEqual([]);
        expect(await store.listIndexes(copy)).toEqual(expectedIndexes(SPEC));
        // The source is untouched; an unknown collection exports and clears nothing.
        expect((await store.exportDocuments(ns, { limit: 1000 })).documents).toHaveLength(docs.length);
        expect(await store.exportDocuments(freshNs(), { limit: 10 })).toEqual({ documents: [], next: null });
        expect(await store.clearCollection(freshNs())).toBe(0);
        for (const bad of [{ limit: 0 }, { limit: 1.5 }, { limit: 10, after: 'not a cursor' }]) {
          await expect(store.exportDocuments(ns, bad)).rejects.toBeInstanceOf(ValidationError);
        }
      });

      it('replaceCollections copies staged collections in, in order and with expiry, empties the others, and refuses a non-empty target with onlyIfEmpty', async () => {
        const live = await ready();
        const other = await ready(SPEC, { dbName: live.dbName, collection: `${live.collection}_2` });
        const stage = await ready(SPEC, { dbName: `${live.dbName}_stage`, collection: live.collection });
        const future = new Date(Date.UTC(2999, 0, 1));
        for (const k of ['old1', 'old2']) await store.insertOne(live, doc({ k, g: 'g' }));
        await store.insertOne(other, doc({ k: 'o', g: 'g' }));
        // Staged out of key order, with an expiry: the copy keeps both.
        const staged = ['z', 'old1', 'a'].map((k, i) => ({ doc: doc({ k, g: 'g', n: i }), expiresAt: i === 1 ? future : null }));
        await store.importDocuments(stage, staged);
        expect(await store.countDocuments(live)).toBe(2);
        expect(await store.countDocuments(freshNs())).toBe(0);
        const both = [{ collection: live.collection, from: stage.dbName }, { collection: other.collection, from: null }];

        const before = [await store.exportDocuments(live, { limit: 100 }), await store.exportDocuments(other, { limit: 100 })];
        expect(await store.replaceCollections(live.dbName, both, { onlyIfEmpty: true })).toEqual({ replaced: false, held: 3 });
        expect([await store.exportDocuments(live, { limit: 100 }), await store.exportDocuments(other, { limit: 100 })]).toEqual(before);

        for (let round = 0; round < 2; round++) {
          // Held before: old1, old2 and o the first time, the three copied documents the second.
          expect(await store.replaceCollections(live.dbName, both, { onlyIfEmpty: false })).toEqual({ replaced: true, held: 3 });
          expect((await store.exportDocuments(live, { limit: 100 })).documents).toEqual(staged);
          expect(await store.countDocuments(other)).toBe(0);
          expect(await store.countDocuments(stage)).toBe(3);
        }
        // Unique indexes hold on the copy; an empty target passes onlyIfEmpty.
        await expect(store.insertOne(live, doc({ k: 'a', g: 'g' }))).rejects.toBeInstanceOf(DuplicateKeyError);
        expect(await store.replaceCollections(live.dbName, [{ collection: other.collection, from: null }], { onlyIfEmpty: true })).toEqual({ replaced: true, held: 0 });
        expect(await store.listIndexes(live)).toEqual(expectedIndexes(SPEC));
      });

      it('an import that clashes with itself writes nothing (SQLite) or a prefix (MongoDB)', async () => {
        const ns = await ready();
        const batch = [0, 1, 1, 2].map((n) => ({ doc: doc({ k: `d${n}`, g: 'g' }), expiresAt: null }));
        await expect(store.importDocuments(ns, batch)).rejects.toBeInstanceOf(DuplicateKeyError);
        const left = (await all(ns)).map((d) => d.k);
        expect(store.name === 'mongodb' ? ['d0', 'd1'] : []).toEqual(left);
      });
    });

    describe('hostile input', () => {
      it('refuses field paths that are not identifiers, whatever the caller validated, and changes nothing', async () => {
        const ns = await ready();
        await store.insertOne(ns, doc({ k: 'a', g: 'g' }));
        const hostile: DocFilter[] = [
          { kind: 'compare', field: `k') OR 1=1 --`, op: '$eq', value: 'x' },
          { kind: 'exists', field: '$where', exists: true },
          { kind: 'compare', field: 'k"]', op: '$gt', value: 1 },
        ];
        for (const node of hostile) {
          const err = await store.find(ns, node, { limit: 10 }).catch((e: unknown) => e);
          expect(err).toBeInstanceOf(ValidationError);
          const del = await store.deleteMany(ns, node).catch((e: unknown) => e);
          expect(del).toBeInstanceOf(ValidationError);
        }
        expect(await all(ns)).toEqual([doc({ k: 'a', g: 'g' })]);
      });

      it('treats operator-looking and SQL-looking strings as plain values', async () => {
        const ns = await ready();
        const nasty = ["'; DROP TABLE x; --", '$where', '{"$gt":""}', '\\', '"', '%', '_'];
        for (const [i, v] of nasty.entries()) await store.insertOne(ns, doc({ k: v, g: 'g', n: i }));
        for (const [i, v] of nasty.entries()) expect((await store.find(ns, f({ k: v }), { limit: 10 })).map((d) => d.n)).toEqual([i]);
        expect(await all(ns)).toHaveLength(nasty.length);
      });
    });
  });
}

/** A collection spec that exercises every index kind. */
export const SPEC: CollectionSpec = {
  fields: ['k', 'g', 'n', 'at', 'code', 'flag', 'v', '_system.updatedAt', '_system.deletedAt'],
  indexes: [
    { name: 'k_1_g_1', keys: [['k', 1], ['g', 1]], unique: true },
    { name: 'at_-1', keys: [['at', -1]] },
    { name: 'g_1_at_-1', keys: [['g', 1], ['at', -1]] },
    { name: '_system.updatedAt_-1', keys: [['_system.updatedAt', -1]] },
    { name: '_system.deletedAt_1', keys: [['_system.deletedAt', 1]], sparse: true },
    { name: 'code_1', keys: [['code', 1]], unique: true, sparse: true },
  ],
};

export function expectedIndexes(spec: CollectionSpec): IndexInfo[] {
  return spec.indexes
    .map((i) => ({ name: i.name, keys: i.keys.map(([k, d]) => [k, d] as const), unique: i.unique === true, sparse: i.sparse === true }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function doc(fields: Record<string, unknown>): Doc {
  return checkDocument(fields, SPEC, 1 << 20).doc;
}

const ROUND_TRIP: Array<Record<string, unknown>> = [
  {
    k: 'r1', g: 'g', at: new Date(Date.UTC(2024, 1, 29, 23, 59, 59, 999)), n: 12.5,
    _system: { createdAt: new Date(0), updatedAt: new Date(Date.UTC(9999, 11, 31)), retentionDays: 7, tombstone: false },
    val: { theme: 'dark', nested: { list: [1, 'two', null, true, { d: new Date(Date.UTC(2000, 0, 1)) }, []], empty: {} } },
  },
  { k: 'r2', g: 'g', n: -0.000001, big: 9007199254740991, neg: -42, e: 1e300, s: 'é🎉\u2028\u0000 "quoted" \\ back', flag: true, v: null },
  { k: 'r3', g: 'h', headers: { 'content-type': 'application/json', 'x-trace': 'a b' }, payload: [[[]]], at: new Date('0001-01-01T00:00:00.000Z') },
  { k: 'r4', g: 'h', constructor: 'not a prototype', toString: 1, valueOf: { a: 1 } },
];

function freshNs(): Namespace {
  const tag = randomUUID().replace(/-/g, '').slice(0, 16);
  return { dbName: `xd_${tag}`, collection: `items_${tag.slice(0, 6)}` };
}

/** Seeded documents and filters over the suite's fields, mixing types on purpose. */
class Gen {
  readonly #next: () => number;
  constructor(seed: number) {
    this.#next = seededRandom(seed);
  }
  int(n: number): number {
    return Math.floor(this.#next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  scalar(): DocScalar | undefined {
    return this.pick<DocScalar | undefined>([
      undefined, null, true, false, 0, 1, 2, -1, 2.5, 'a', 'b', 'B', 'é', '', '10', 'a\u0000',
      new Date(Date.UTC(2024, 0, 1)), new Date(Date.UTC(2024, 0, 2)), new Date(Date.UTC(1999, 5, 1)),
    ]);
  }
  document(i: number): Doc {
    const raw: Record<string, unknown> = { k: `doc${i}`, g: this.pick(['x', 'y', 'z']) };
    for (const field of ['n', 'at', 'flag', 'v']) {
      const v = this.scalar();
      if (v !== undefined) raw[field] = v;
    }
    const u = this.scalar();
    if (this.int(3) > 0) raw._system = u === undefined ? {} : { updatedAt: u };
    return checkDocument(raw, SPEC, 1 << 20).doc;
  }
  condition(depth: number): Record<string, unknown> {
    if (depth < 2 && this.int(5) === 0) {
      return { [this.pick(['$and', '$or'])]: Array.from({ length: 1 + this.int(3) }, () => this.condition(depth + 1)) };
    }
    const field = this.pick(['n', 'at', 'flag', 'v', 'g', '_system.updatedAt']);
    const op = this.pick(['$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$exists', 'plain']);
    let value = this.scalar();
    if (value === undefined) value = null;
    if (op === 'plain') return { [field]: value };
    if (op === '$exists') return { [field]: { $exists: this.int(2) === 0 } };
    if (op === '$in' || op === '$nin') return { [field]: { [op]: Array.from({ length: this.int(4) }, () => this.scalar() ?? null) } };
    if (value === null && op !== '$eq' && op !== '$ne') value = 1;
    return { [field]: { [op]: value } };
  }
  filter(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (let i = 0; i <= this.int(2); i++) Object.assign(out, this.condition(0));
    return out;
  }
}

