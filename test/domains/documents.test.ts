import { Query } from 'mingo';
import { BSON } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { duplicateKeyIndex, EXPIRY_INDEX_NAME, fromMongoIndex, toMongoIndexes } from '../../core/adapters/mongodb/mongodb-document-store.js';
import { toMongoDocumentFilter, toMongoSort } from '../../core/adapters/mongodb/mongodb-filter.js';
import { fromDocumentJson, toDocumentJson, type Doc, type DocFilter, type DocScalar } from '../../core/contracts/document-store.js';
import { checkDocument } from '../../core/domains/documents/document-check.js';
import { parseDocumentFilter, parseSort } from '../../core/domains/documents/document-filter.js';
import { ValidationError } from '../../core/errors.js';
import { byPath, matches } from '../../core/foundation/filter.js';
import { SPEC } from '../conformance/document-store.suite.js';
import { seededRandom } from '../support/random.js';

/**
 * The pure parts of document collections: document checks, the filter language, and the MongoDB
 * translations. No MongoDB server exists here, so the MongoDB filter translation is checked
 * against mingo (an independent implementation of MongoDB's query language) over documents sent
 * through a BSON round trip as the driver would, with `matches` (core/foundation/filter.ts) as the reference. The
 * string pool has no character at or above U+E000, where mingo's UTF-16 order would part from
 * MongoDB's UTF-8 byte order (see test/unit/mongodb-filter.test.ts).
 */

const FIELDS = new Set(SPEC.fields);

function validationError(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected a ValidationError, but nothing was thrown');
}

/** `[1, <hole>, 3]`. */
function holey(): unknown[] {
  const list: unknown[] = [1];
  list[2] = 3;
  return list;
}

function wire<T extends object>(value: T): BSON.Document {
  return BSON.deserialize(BSON.serialize(value));
}

describe('checkDocument', () => {
  it('returns a normalised deep copy: undefined properties dropped, -0 as 0, dates copied', () => {
    const at = new Date(Date.UTC(2024, 0, 1));
    const input = { k: 'a', g: 'b', n: -0, skip: undefined, nested: { at, list: [1, { x: undefined }] } };
    const { doc, bytes } = checkDocument(input, SPEC, 1000);
    expect(doc).toEqual({ k: 'a', g: 'b', n: 0, nested: { at, list: [1, {}] } });
    expect(Object.is(doc.n, 0)).toBe(true);
    expect((doc.nested as { at: Date }).at).not.toBe(at);
    at.setTime(0);
    expect(((doc.nested as { at: Date }).at).getTime()).toBe(Date.UTC(2024, 0, 1));
    expect(bytes).toBe(Buffer.byteLength(toDocumentJson(doc)));
  });

  const ok = { k: 'a', g: 'b' };
  it.each([
    ['a non-object', 'text', 'doc'],
    ['an array', [ok], 'doc'],
    ['a $ key', { ...ok, $where: 1 }, 'doc.$where'],
    ['a nested $ key', { ...ok, a: { $gt: 1 } }, 'doc.a.$gt'],
    ['a dotted key', { ...ok, 'a.b': 1 }, 'doc.a.b'],
    ['an empty key', { ...ok, '': 1 }, 'doc.'],
    ['a NUL in a key', { ...ok, 'a\u0000': 1 }, 'doc.a\u0000'],
    ['__proto__', JSON.parse('{"k":"a","g":"b","__proto__":{"x":1}}') as object, 'doc.__proto__'],
    ['_id', { ...ok, _id: 'x' }, 'doc._id'],
    ['_xronox', { ...ok, _xronox: { expiresAt: new Date() } }, 'doc._xronox'],
    ['a lone surrogate', { ...ok, s: 'a\ud800' }, 'doc.s'],
    ['NaN', { ...ok, n: Number.NaN }, 'doc.n'],
    ['Infinity', { ...ok, x: { y: Infinity } }, 'doc.x.y'],
    ['an invalid date', { ...ok, at: new Date('nope') }, 'doc.at'],
    ['a five-digit year', { ...ok, at: new Date(Date.UTC(10000, 0, 1)) }, 'doc.at'],
    ['a negative year', { ...ok, at: new Date(Date.UTC(-1, 0, 1)) }, 'doc.at'],
    ['a bigint', { ...ok, n: 1n }, 'doc.n'],
    ['a function', { ...ok, f: () => 1 }, 'doc.f'],
    ['a Map', { ...ok, m: new Map() }, 'doc.m'],
    ['a Buffer', { ...ok, b: Buffer.from('x') }, 'doc.b'],
    ['a hole', { ...ok, list: holey() }, 'doc.list[1]'],
    ['undefined in an array', { ...ok, list: [undefined] }, 'doc.list[0]'],
    ['an object in a declared field', { ...ok, n: { $date: 'x' } }, 'doc.n.$date'],
    ['an array in a declared field', { ...ok, n: [1] }, 'doc.n'],
    ['a declared field under a non-object', { ...ok, _system: 'x' }, 'doc._system'],
    ['a declared field under an array', { ...ok, _system: [{ updatedAt: 1 }] }, 'doc._system'],
    ['a unique key field missing', { k: 'a' }, 'doc.g'],
    ['a unique key field null', { k: 'a', g: null }, 'doc.g'],
    ['a unique key field boolean', { k: 'a', g: true }, 'doc.g'],
    ['a sparse unique field present but a date', { ...ok, code: new Date() }, 'doc.code'],
  ])('refuses %s, naming the path', (_label, input, path) => {
    expect(validationError(() => checkDocument(input, SPEC, 1 << 20)).path).toBe(path);
  });

  it('refuses nesting beyond 32 levels and documents over the size limit', () => {
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 40; i++) deep = { d: deep };
    validationError(() => checkDocument({ ...ok, deep }, SPEC, 1 << 20));
    expect(validationError(() => checkDocument({ ...ok, big: 'x'.repeat(2000) }, SPEC, 1000)).message).toContain('limits.maxDocumentBytes');
  });
});

describe('document JSON', () => {
  it('round-trips dates as dates and everything else as JSON does', () => {
    const doc = checkDocument({ k: 'a', g: 'b', at: new Date('0001-01-01T00:00:00.000Z'), x: [{ d: new Date(0) }, 'é🎉'], n: 1.5 }, SPEC, 1 << 20).doc;
    const back = fromDocumentJson(toDocumentJson(doc));
    expect(back).toEqual(doc);
    expect((back.at as Date).toISOString()).toBe('0001-01-01T00:00:00.000Z');
    expect(toDocumentJson({ at: new Date(0) })).toBe('{"at":{"$date":"1970-01-01T00:00:00.000Z"}}');
  });

  it('round-trips through BSON as the MongoDB driver stores it', () => {
    const doc = checkDocument(
      { k: 'a', g: 'b', at: new Date(Date.UTC(2024, 1, 29)), n: 2 ** 40, f: 0.1, i: -7, s: 'é🎉\u2028', nested: { list: [null, true, {}, []] } },
      SPEC,
      1 << 20,
    ).doc;
    const { _id, ...back } = wire({ _id: 1, ...doc });
    void _id;
    expect(back).toEqual(doc);
  });
});

describe('parseDocumentFilter and parseSort', () => {
  it.each([
    ['a non-object', 'x', 'filter'],
    ['an undeclared field', { secret: 1 }, 'filter.secret'],
    ['$where', { $where: 'sleep(1)' }, 'filter.$where'],
    ['$expr', { $expr: { $eq: [1, 1] } }, 'filter.$expr'],
    ['$regex', { k: { $regex: '.*' } }, 'filter.k.$regex'],
    ['an object value', { k: { a: 1 } }, 'filter.k.a'],
    ['an array value', { k: ['a'] }, 'filter.k'],
    ['a range over null', { n: { $gt: null } }, 'filter.n.$gt'],
    ['an empty $and', { $and: [] }, 'filter.$and'],
    ['$in of a non-array', { n: { $in: 1 } }, 'filter.n.$in'],
    ['$exists of a non-boolean', { n: { $exists: 1 } }, 'filter.n.$exists'],
    ['an invalid date', { at: new Date('x') }, 'filter.at'],
    ['NaN', { n: Number.NaN }, 'filter.n'],
    ['a lone surrogate', { k: '\udc00' }, 'filter.k'],
    ['an empty operator object', { n: {} }, 'filter.n'],
  ])('refuses %s, naming the path', (_label, input, path) => {
    expect(validationError(() => parseDocumentFilter(input, FIELDS)).path).toBe(path);
  });

  it('parses dates, nested fields and sorts', () => {
    const at = new Date(5);
    expect(parseDocumentFilter({ '_system.updatedAt': { $gte: at }, k: 'a' }, FIELDS)).toEqual({
      kind: 'and',
      items: [
        { kind: 'compare', field: '_system.updatedAt', op: '$gte', value: at },
        { kind: 'compare', field: 'k', op: '$eq', value: 'a' },
      ],
    });
    expect(parseDocumentFilter({}, FIELDS)).toBeNull();
    expect(parseSort({ at: -1, k: 1 }, FIELDS)).toEqual([['at', -1], ['k', 1]]);
    expect(validationError(() => parseSort({ at: 0 }, FIELDS)).path).toBe('sort.at');
    expect(validationError(() => parseSort({ secret: 1 }, FIELDS)).path).toBe('sort.secret');
  });
});

describe('toMongoDocumentFilter', () => {
  it('wraps every value in an operator and folds empty lists', () => {
    const at = new Date(0);
    expect(toMongoDocumentFilter(parseDocumentFilter({ k: 'a', at: { $lt: at }, $or: [{ n: 1 }, { n: { $in: [] } }] }, FIELDS))).toEqual({
      $and: [{ k: { $eq: 'a' } }, { at: { $lt: at } }, { n: { $eq: 1 } }],
    });
    expect(toMongoDocumentFilter({ kind: 'in', field: 'n', negate: false, values: [] })).toEqual({ _id: { $in: [] } });
    expect(toMongoDocumentFilter({ kind: 'in', field: 'n', negate: true, values: [] })).toEqual({});
    expect(toMongoDocumentFilter(null)).toEqual({});
    expect(toMongoDocumentFilter(parseDocumentFilter({ k: '$where' }, FIELDS))).toEqual({ k: { $eq: '$where' } });
  });

  it.each<[string, unknown]>([
    ['a $ field', { kind: 'compare', field: '$where', op: '$eq', value: 1 }],
    ['a field with an operator segment', { kind: 'exists', field: 'a.$gt', exists: true }],
    ['an unknown operator', { kind: 'compare', field: 'k', op: '$regex', value: 'x' }],
    ['an object value', { kind: 'compare', field: 'k', op: '$eq', value: { $gt: '' } }],
    ['an array value', { kind: 'in', field: 'k', negate: false, values: [['a']] }],
    ['an unknown node', { kind: 'where', field: 'k' }],
    ['a numeric path segment', { kind: 'compare', field: 'a.0', op: '$eq', value: 1 }],
  ])('refuses a hand-built node with %s', (_label, node) => {
    validationError(() => toMongoDocumentFilter(node as DocFilter));
  });

  it('sorts with _id last, so ties come in insertion order', () => {
    expect(toMongoSort([['at', -1]])).toEqual([['at', -1], ['_id', 1]]);
    expect(toMongoSort(undefined)).toEqual([['_id', 1]]);
  });

  describe.each([1, 2, 3, 20240601])('differential: matches vs the MongoDB translation under mingo (seed %i)', (seed) => {
    it('agrees on 1,500 random filters over 80 documents, and the filters are not vacuous', () => {
      const next = seededRandom(seed);
      const pick = <T,>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
      const pool: Array<DocScalar | undefined> = [
        undefined, null, true, false, 0, 1, -1, 2.5, 1e15, 'a', 'b', 'B', 'é', '', '10', 'a\u0000', '🎉',
        new Date(Date.UTC(2024, 0, 1)), new Date(Date.UTC(2024, 0, 2)), new Date(Date.UTC(1999, 5, 1)), new Date(0),
      ];
      const fields = ['n', 'at', 'flag', 'v', 'g', '_system.updatedAt'];
      const docs: Doc[] = Array.from({ length: 80 }, (_, i) => {
        const raw: Record<string, unknown> = { k: `d${i}`, g: pick(['x', 'y']) };
        for (const f of ['n', 'at', 'flag', 'v']) {
          const v = pick(pool);
          if (v !== undefined) raw[f] = v;
        }
        const u = pick(pool);
        if (next() < 0.7) raw._system = u === undefined ? {} : { updatedAt: u };
        return checkDocument(raw, SPEC, 1 << 20).doc;
      });
      const stored = docs.map((d) => wire(d));
      const condition = (depth: number): Record<string, unknown> => {
        if (depth < 2 && next() < 0.2) return { [pick(['$and', '$or'])]: Array.from({ length: 1 + Math.floor(next() * 3) }, () => condition(depth + 1)) };
        const field = pick(fields);
        const op = pick(['$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$exists', 'plain']);
        const value = pick(pool) ?? null;
        if (op === 'plain') return { [field]: value };
        if (op === '$exists') return { [field]: { $exists: next() < 0.5 } };
        if (op === '$in' || op === '$nin') return { [field]: { [op]: Array.from({ length: Math.floor(next() * 4) }, () => pick(pool) ?? null) } };
        return { [field]: { [op]: value === null && op !== '$eq' && op !== '$ne' ? 1 : value } };
      };
      let nonEmpty = 0;
      let notAll = 0;
      for (let i = 0; i < 1500; i++) {
        const input = condition(0);
        const node = parseDocumentFilter(input, FIELDS);
        const expected = docs.filter((d) => matches(node, byPath(d))).map((d) => d.k);
        const query = new Query(wire(toMongoDocumentFilter(node)));
        const got = stored.filter((d) => query.test(d)).map((d) => d.k);
        expect({ input, got }).toEqual({ input, got: expected });
        if (expected.length > 0) nonEmpty++;
        if (expected.length < docs.length) notAll++;
      }
      expect(nonEmpty).toBeGreaterThan(500);
      expect(notAll).toBeGreaterThan(500);
    });
  });
});

describe('MongoDB index specs', () => {
  it('declares each index as the product document writes it, plus the expiry TTL index', () => {
    expect(toMongoIndexes(SPEC.indexes)).toEqual([
      { key: { k: 1, g: 1 }, name: 'k_1_g_1', unique: true },
      { key: { at: -1 }, name: 'at_-1' },
      { key: { g: 1, at: -1 }, name: 'g_1_at_-1' },
      { key: { '_system.updatedAt': -1 }, name: '_system.updatedAt_-1' },
      { key: { '_system.deletedAt': 1 }, name: '_system.deletedAt_1', sparse: true },
      { key: { code: 1 }, name: 'code_1', unique: true, sparse: true },
      { key: { '_xronox.expiresAt': 1 }, name: EXPIRY_INDEX_NAME, expireAfterSeconds: 0 },
    ]);
  });

  it('reads listIndexes output back into the port shape, leaving out _id_ and the expiry index', () => {
    expect(fromMongoIndex({ v: 2, key: { _id: 1 }, name: '_id_' })).toBeNull();
    expect(fromMongoIndex({ v: 2, key: { '_xronox.expiresAt': 1 }, name: EXPIRY_INDEX_NAME, expireAfterSeconds: 0 })).toBeNull();
    expect(fromMongoIndex({ v: 2, key: { topic: 1, firstSeenAt: -1 }, name: 'topic_1_firstSeenAt_-1' })).toEqual({
      name: 'topic_1_firstSeenAt_-1', keys: [['topic', 1], ['firstSeenAt', -1]], unique: false, sparse: false,
    });
    expect(fromMongoIndex({ v: 2, key: { '_system.deletedAt': 1 }, name: 'd', sparse: true, unique: true })).toMatchObject({ unique: true, sparse: true });
  });

  it('names the index behind a duplicate-key error from the message, else from keyPattern', () => {
    expect(duplicateKeyIndex({ errmsg: 'E11000 duplicate key error collection: db.shared_memory index: key_1_namespace_1_tenantId_1 dup key: { key: "a" }' }, [])).toBe('key_1_namespace_1_tenantId_1');
    expect(duplicateKeyIndex({ message: 'x', keyPattern: { k: 1, g: 1 } }, SPEC.indexes)).toBe('k_1_g_1');
    expect(duplicateKeyIndex({ message: 'x', keyPattern: { g: 1, k: 1 } }, SPEC.indexes)).toBeNull();
  });
});
