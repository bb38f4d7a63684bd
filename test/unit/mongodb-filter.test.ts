import { Query } from 'mingo';
import { BSON } from 'mongodb';
import { describe, expect, it } from 'vitest';
import {
  META_FIELD,
  MONGO_FIELD_OPERATORS,
  MONGO_FILTER_LIMITS,
  MONGO_LOGICAL_OPERATORS,
  assertSafeMongoFilter,
  decodeMeta,
  encodeMeta,
  metaKey,
  metaPath,
  toMongoDocumentFilter,
  toMongoFilter,
} from '../../core/adapters/mongodb/mongodb-filter.js';
import { FILTER_OPERATORS, type FilterNode } from '../../core/foundation/filter-tree.js';
import type { IndexedValue } from '../../core/contracts/index-store.js';
import { compareSameType, matches, parseFilter } from '../../core/foundation/filter.js';
import { StorageError, ValidationError } from '../../core/errors.js';
import { Gen } from '../support/random.js';

/**
 * There is no MongoDB server here, so the translator is checked against mingo, an independent
 * implementation of MongoDB's query language, evaluating the translated filter over documents
 * shaped like the store's (`{ meta: encodeMeta(meta) }`), both sent through a BSON round trip as
 * the driver would. The reference is `matches()` in `core/foundation/filter.ts`.
 *
 * Where mingo departs from documented MongoDB semantics, this file says so and handles it
 * explicitly (see "mingo deviations" below); nothing is skipped silently:
 * 1. mingo orders strings with JS `<` (UTF-16 code units, `simpleCmp` in mingo's util), MongoDB
 *    with the simple binary collation (memcmp of UTF-8 bytes), as the engine and SQLite do. The
 *    two disagree exactly when, at the first differing code unit, one string has a surrogate
 *    (a character above U+FFFF) and the other a unit in U+E000–U+FFFF. So the differential runs
 *    twice: on raw mingo with a string pool that has no U+E000–U+FFFF character (checked), and
 *    with the full pool after mapping every string value to its UTF-8 bytes read as Latin-1 —
 *    an injective map under which JS order is UTF-8 byte order, i.e. MongoDB's order.
 * 2. mingo accepts an empty `$and`/`$or`, which MongoDB refuses ("$and/$or/$nor must be a
 *    nonempty array"); every translated filter is checked structurally to contain none.
 */

type Meta = Record<string, IndexedValue>;

function validationError(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected a ValidationError, but nothing was thrown');
}

/** What the driver sends and gets back: a BSON round trip. */
function wire<T extends object>(value: T): BSON.Document {
  return BSON.deserialize(BSON.serialize(value));
}

/** An injective map of strings under which JS (UTF-16) `<` is UTF-8 byte order. */
function utf8Ordered(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}

/** Maps every string value (not keys) of a filter or document. */
function mapStrings(value: unknown, f: (s: string) => string): unknown {
  if (typeof value === 'string') return f(value);
  if (Array.isArray(value)) return value.map((v) => mapStrings(v, f));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapStrings(v, f)]));
  }
  return value;
}

function storedDoc(meta: Meta, byteOrder: boolean): BSON.Document {
  const doc = wire({ [META_FIELD]: encodeMeta(meta) });
  return byteOrder ? (mapStrings(doc, utf8Ordered) as BSON.Document) : doc;
}

function mingoQuery(filter: object, byteOrder: boolean): Query {
  const sent = wire(filter);
  return new Query(byteOrder ? (mapStrings(sent, utf8Ordered) as BSON.Document) : sent);
}

/**
 * The translator's own invariants, which mingo cannot see: every value sits inside an operator
 * object (never a bare literal), and no `$and`/`$or` is empty (MongoDB would refuse it).
 */
function assertWellShaped(filter: unknown): void {
  const walk = (f: Record<string, unknown>): void => {
    for (const [key, value] of Object.entries(f)) {
      if (key === '$and' || key === '$or') {
        expect(Array.isArray(value) && value.length >= 2, `${key} with fewer than two items`).toBe(true);
        (value as Record<string, unknown>[]).forEach(walk);
      } else {
        expect(typeof value === 'object' && value !== null && !Array.isArray(value), `bare literal under ${key}`).toBe(true);
        expect(Object.keys(value as object)).toHaveLength(1);
        expect(MONGO_FIELD_OPERATORS as readonly string[]).toContain(Object.keys(value as object)[0]);
      }
    }
  };
  walk(filter as Record<string, unknown>);
}

const NEVER = { _id: { $in: [] } };

// ---------------------------------------------------------------------------------------------

describe('meta encoding', () => {
  it.each([
    ['a', 'a'],
    ['customer.id', 'customer:id'],
    ['_system.insertedAt', '_system:insertedAt'],
    ['a.b.c.d.e.f.g.h', 'a:b:c:d:e:f:g:h'],
  ])('metaKey(%j) is %j and metaPath adds the meta prefix', (prop, key) => {
    expect(metaKey(prop)).toBe(key);
    expect(metaPath(prop)).toBe(`meta.${key}`);
    expect(META_FIELD).toBe('meta');
  });

  it.each(['', '$where', 'a.$gt', 'a..b', '.a', 'a.', 'a:b', '1a', 'a-b', '__proto__', 'a.constructor', 'prototype.x', 'a.b.c.d.e.f.g.h.i', 'a\u0000b'])(
    'metaKey refuses %j',
    (prop) => {
      const err = validationError(() => metaKey(prop));
      expect(err.message).toMatch(/Invalid indexed property/);
      expect(() => metaPath(prop)).toThrow(ValidationError);
    },
  );

  it('encodes keys, keeps values and order, and decodes back exactly (also through BSON)', () => {
    const meta: Meta = { a: 1, 'customer.id': 'c1', '_system.insertedAt': '2024-01-01T00:00:00.000Z', flag: false, none: null, f: 1.5, big: 2 ** 53, neg: -0 };
    const encoded = encodeMeta(meta);
    expect(Object.keys(encoded)).toEqual(['a', 'customer:id', '_system:insertedAt', 'flag', 'none', 'f', 'big', 'neg']);
    expect(encoded['customer:id']).toBe('c1');
    for (const doc of [encoded, wire(encoded)]) {
      const decoded = decodeMeta(doc);
      expect(Object.keys(decoded)).toEqual(Object.keys(meta));
      for (const key of Object.keys(meta)) expect(Object.is(decoded[key], meta[key]), key).toBe(true);
    }
    expect(encodeMeta({})).toEqual({});
    expect(decodeMeta({})).toEqual({});
  });

  it('round-trips random metas through encodeMeta, BSON and decodeMeta', () => {
    const g = new Gen(99);
    for (let i = 0; i < 500; i++) {
      const meta = randomMeta(g, FULL_STRINGS);
      const back = decodeMeta(wire({ meta: encodeMeta(meta) }).meta);
      expect(back).toStrictEqual(meta);
    }
  });

  it.each([
    ['an object value', { a: { $gt: '' } }, /an object/],
    ['an array value', { a: [1] }, /an array/],
    ['undefined (BSON would store null)', { a: undefined }, /undefined/],
    ['NaN', { a: Number.NaN }, /NaN/],
    ['Infinity', { a: Number.POSITIVE_INFINITY }, /Infinity/],
    ['a bigint', { a: 10n }, /bigint/],
    ['a Date', { a: new Date(0) }, /Date/],
    ['a function', { a: () => 1 }, /function/],
    ['a lone surrogate (BSON would store U+FFFD)', { a: '\ud800' }, /lone surrogate/],
    ['a $ key', { $where: 1 }, /Invalid indexed property/],
    ['a key with ":"', { 'a:b': 1 }, /Invalid indexed property/],
    ['a __proto__ key parsed from JSON', JSON.parse('{"__proto__": 1}') as unknown, /Invalid indexed property/],
  ])('encodeMeta refuses %s', (_label, meta, message) => {
    const err = validationError(() => encodeMeta(meta as Meta));
    expect(err.message).toMatch(message);
  });

  it('encodeMeta refuses a non-object and reads no accessor', () => {
    expect(() => encodeMeta(null as unknown as Meta)).toThrow(ValidationError);
    expect(() => encodeMeta([1] as unknown as Meta)).toThrow(ValidationError);
    let reads = 0;
    const tricky = Object.defineProperty({}, 'a', { enumerable: true, get: () => (++reads === 1 ? 'safe' : { $where: '1' }) });
    expect(() => encodeMeta(tricky as Meta)).toThrow(ValidationError);
    expect(reads).toBe(0);
  });

  it.each([
    ['null', null],
    ['a string', 'x'],
    ['an array', [['a', 1]]],
    ['a nested document', { a: { b: 1 } }],
    ['an array value', { a: [1] }],
    ['a Long', { a: BSON.Long.fromNumber(1) }],
    ['a Decimal128', { a: BSON.Decimal128.fromString('1') }],
    ['a Date', { a: new Date(0) }],
    ['undefined', { a: undefined }],
    ['NaN', { a: Number.NaN }],
    ['a dotted key', { 'a.b': 1 }],
    ['a $ key', { $a: 1 }],
    ['an empty segment', { 'a::b': 1 }],
    ['a leading ":"', { ':a': 1 }],
    ['a trailing ":"', { 'a:': 1 }],
    ['a __proto__ key', JSON.parse('{"__proto__": 1}') as unknown],
    ['a constructor segment', { 'a:constructor': 1 }],
    ['nine levels', { 'a:b:c:d:e:f:g:h:i': 1 }],
    ['a class instance', new (class Meta {})()],
  ])('decodeMeta refuses %s as corrupt stored data (StorageError)', (_label, doc) => {
    let caught: unknown;
    try {
      decodeMeta(doc);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(StorageError);
    expect((caught as StorageError).code).toBe('STORAGE_FAILED');
    expect((caught as StorageError).message).toMatch(/^Stored indexed values \(meta\) /);
  });
});

// ---------------------------------------------------------------------------------------------

describe('toMongoFilter: exact output', () => {
  const indexed = new Set(['a', 'b', 'customer.id']);
  const eq = (field: string, value: IndexedValue): FilterNode => ({ kind: 'compare', field, op: '$eq', value });
  const and = (...items: FilterNode[]): FilterNode => ({ kind: 'and', items });
  const or = (...items: FilterNode[]): FilterNode => ({ kind: 'or', items });
  const inList = (field: string, values: IndexedValue[], negate = false): FilterNode => ({ kind: 'in', field, negate, values });

  const cases: ReadonlyArray<[string, FilterNode, object]> = [
    ['$eq string', eq('a', 'x'), { 'meta.a': { $eq: 'x' } }],
    ['$eq number', eq('a', 1.5), { 'meta.a': { $eq: 1.5 } }],
    ['$eq boolean', eq('a', false), { 'meta.a': { $eq: false } }],
    ['$eq null (matches missing too, as in the engine)', eq('a', null), { 'meta.a': { $eq: null } }],
    ['a dotted property', eq('customer.id', 'c1'), { 'meta.customer:id': { $eq: 'c1' } }],
    ['an operator-looking string stays a wrapped literal', eq('a', '$where'), { 'meta.a': { $eq: '$where' } }],
    ['$ne', { kind: 'compare', field: 'a', op: '$ne', value: 1 }, { 'meta.a': { $ne: 1 } }],
    ['$ne null', { kind: 'compare', field: 'a', op: '$ne', value: null }, { 'meta.a': { $ne: null } }],
    ['$gt', { kind: 'compare', field: 'a', op: '$gt', value: 1 }, { 'meta.a': { $gt: 1 } }],
    ['$gte', { kind: 'compare', field: 'a', op: '$gte', value: 'b' }, { 'meta.a': { $gte: 'b' } }],
    ['$lt', { kind: 'compare', field: 'a', op: '$lt', value: true }, { 'meta.a': { $lt: true } }],
    ['$lte', { kind: 'compare', field: 'a', op: '$lte', value: -2.5 }, { 'meta.a': { $lte: -2.5 } }],
    ['$in', inList('a', [1, '1', true, null]), { 'meta.a': { $in: [1, '1', true, null] } }],
    ['$nin', inList('a', ['x', '$gt'], true), { 'meta.a': { $nin: ['x', '$gt'] } }],
    ['$in of nothing is "never"', inList('a', []), NEVER],
    ['$nin of nothing is "always"', inList('a', [], true), {}],
    ['$exists true', { kind: 'exists', field: 'a', exists: true }, { 'meta.a': { $exists: true } }],
    ['$exists false', { kind: 'exists', field: 'b', exists: false }, { 'meta.b': { $exists: false } }],
    ['and', and(eq('a', 1), eq('b', 2)), { $and: [{ 'meta.a': { $eq: 1 } }, { 'meta.b': { $eq: 2 } }] }],
    ['or', or(eq('a', 1), eq('a', 2)), { $or: [{ 'meta.a': { $eq: 1 } }, { 'meta.a': { $eq: 2 } }] }],
    ['and of nothing is "always"', and(), {}],
    ['or of nothing is "never"', or(), NEVER],
    ['and of one is that one', and(eq('a', 1)), { 'meta.a': { $eq: 1 } }],
    ['or of one is that one', or(eq('a', 1)), { 'meta.a': { $eq: 1 } }],
    ['"always" drops out of and', and(eq('a', 1), and(), inList('b', [], true)), { 'meta.a': { $eq: 1 } }],
    ['"never" absorbs and', and(eq('a', 1), or()), NEVER],
    ['"always" absorbs or', or(eq('a', 1), and()), {}],
    ['"never" drops out of or', or(eq('a', 1), or(), inList('b', [])), { 'meta.a': { $eq: 1 } }],
    ['"always" or "never" is "always"', or(inList('a', []), inList('a', [], true)), {}],
    [
      'nesting is kept',
      or(and(eq('a', 1), { kind: 'exists', field: 'b', exists: false }), eq('customer.id', null)),
      { $or: [{ $and: [{ 'meta.a': { $eq: 1 } }, { 'meta.b': { $exists: false } }] }, { 'meta.customer:id': { $eq: null } }] },
    ],
  ];

  it.each(cases)('%s', (_label, node, expected) => {
    const filter = toMongoFilter(node, indexed);
    expect(filter).toStrictEqual(expected);
    assertSafeMongoFilter(filter);
    if (Object.keys(filter).length > 0 && !('_id' in filter)) assertWellShaped(filter);
  });

  it('returns a fresh object each time (callers may add to it)', () => {
    const a = toMongoFilter(or(), indexed);
    const b = toMongoFilter(or(), indexed);
    expect(a).not.toBe(b);
    expect(a._id).not.toBe(b._id);
  });

  it('accepts a predicate as well as a set of indexed properties', () => {
    expect(toMongoFilter(eq('zz', 1), (f) => f === 'zz')).toStrictEqual({ 'meta.zz': { $eq: 1 } });
    expect(() => toMongoFilter(eq('zz', 1), () => false)).toThrow(/"zz" is not indexed/);
  });

  it('emits exactly the operators of the engine filter language (FILTER_OPERATORS)', () => {
    expect([...MONGO_LOGICAL_OPERATORS, ...MONGO_FIELD_OPERATORS].sort()).toEqual([...FILTER_OPERATORS].sort());
  });

  it('does not copy the caller’s $in array by reference', () => {
    const values: IndexedValue[] = [1, 2];
    const filter = toMongoFilter(inList('a', values), indexed);
    values.push({ $gt: '' } as unknown as IndexedValue);
    expect(filter).toStrictEqual({ 'meta.a': { $in: [1, 2] } });
  });
});

// ---------------------------------------------------------------------------------------------

describe('toMongoFilter under mingo: hand-checked semantics', () => {
  const rows: ReadonlyArray<[string, Meta]> = [
    ['int1', { a: 1 }],
    ['str1', { a: '1' }],
    ['true', { a: true }],
    ['false', { a: false }],
    ['null', { a: null }],
    ['missing', {}],
    ['float', { a: 1.5 }],
    ['neg', { a: -2 }],
    ['zero', { a: 0 }],
    ['negzero', { a: -0 }],
    ['int32max+1', { a: 2 ** 31 }],
    ['strB', { a: 'b' }],
    ['empty', { a: '' }],
    ['upperB', { a: 'B' }],
    ['eacute', { a: 'é' }],
    ['emoji', { a: '😀' }],
    ['halfwidth', { a: '\uff61' }],
    ['dollar', { a: '$where' }],
  ];
  const all = rows.map(([n]) => n);
  const except = (...names: string[]): string[] => all.filter((n) => !names.includes(n));
  const cases: ReadonlyArray<[unknown, string[]]> = [
    [{ a: 1 }, ['int1']],
    [{ a: '1' }, ['str1']],
    [{ a: true }, ['true']],
    [{ a: 0 }, ['zero', 'negzero']],
    [{ a: 2 ** 31 }, ['int32max+1']],
    [{ a: null }, ['null', 'missing']],
    [{ a: '$where' }, ['dollar']],
    [{ a: { $ne: null } }, except('null', 'missing')],
    [{ a: { $ne: 1 } }, except('int1')],
    [{ a: { $exists: true } }, except('missing')],
    [{ a: { $exists: false } }, ['missing']],
    [{ a: { $gt: 0 } }, ['int1', 'float', 'int32max+1']],
    [{ a: { $gte: 0 } }, ['int1', 'float', 'zero', 'negzero', 'int32max+1']],
    [{ a: { $lt: 1 } }, ['neg', 'zero', 'negzero']],
    [{ a: { $gt: '' } }, ['str1', 'strB', 'upperB', 'eacute', 'emoji', 'halfwidth', 'dollar']],
    // UTF-8 byte order: '$' < '1' < 'B' < 'b' < 'é' (C3 A9) < '｡' (EF BD A1) < '😀' (F0 9F 98 80).
    [{ a: { $gt: 'b' } }, ['eacute', 'emoji', 'halfwidth']],
    [{ a: { $lt: '😀' } }, ['str1', 'strB', 'empty', 'upperB', 'eacute', 'halfwidth', 'dollar']],
    [{ a: { $gt: '\uff61' } }, ['emoji']],
    [{ a: { $gt: false } }, ['true']],
    [{ a: { $lte: true } }, ['true', 'false']],
    [{ a: { $in: [1, 'b', null] } }, ['int1', 'null', 'missing', 'strB']],
    [{ a: { $nin: [1, 'b', null] } }, except('int1', 'strB', 'null', 'missing')],
    [{ a: { $in: [] } }, []],
    [{ a: { $nin: [] } }, all],
    [{ d: { $ne: 1 } }, all],
    [{ d: { $gt: 0 } }, []],
    [{ d: null }, all],
    [{ $or: [{ a: { $gt: 1 } }, { a: { $lt: '1' } }] }, ['float', 'int32max+1', 'empty', 'dollar']],
  ];

  it.each(cases)('%j', (input, expected) => {
    const node = parseFilter(input, (f) => f === 'a' || f === 'd');
    const filter = node === null ? {} : toMongoFilter(node, new Set(['a', 'd']));
    const query = mingoQuery(filter, true);
    const got = rows.filter(([, meta]) => query.test(storedDoc(meta, true))).map(([n]) => n);
    const want = rows.filter(([, meta]) => matches(node, meta)).map(([n]) => n);
    expect(want).toEqual(expected);
    expect(got).toEqual(expected);
  });
});

// ---------------------------------------------------------------------------------------------

describe('mingo deviations from MongoDB, handled explicitly', () => {
  it('mingo orders strings by UTF-16 code units; MongoDB, the engine and SQLite by UTF-8 bytes', () => {
    // U+FF61 is one UTF-16 unit above the surrogates that encode U+1F600, but 3 UTF-8 bytes below it.
    expect('\uff61' < '😀').toBe(false);
    expect(compareSameType('\uff61', '😀')).toBe(-1);
    const node: FilterNode = { kind: 'compare', field: 'a', op: '$lt', value: '😀' };
    const filter = toMongoFilter(node, new Set(['a']));
    // The translation is exact: MongoDB's binary comparison puts '｡' before '😀', as matches() does.
    expect(filter).toStrictEqual({ 'meta.a': { $lt: '😀' } });
    expect(matches(node, { a: '\uff61' })).toBe(true);
    // Raw mingo says otherwise. If this ever flips, mingo has changed and the split below can go.
    expect(mingoQuery(filter, false).test(storedDoc({ a: '\uff61' }, false))).toBe(false);
    // Under the byte-order map, mingo orders as MongoDB does.
    expect(mingoQuery(filter, true).test(storedDoc({ a: '\uff61' }, true))).toBe(true);
  });

  it('the raw-mingo string pool has no pair whose UTF-16 and UTF-8 orders disagree', () => {
    expect(RAW_STRINGS.filter((s) => /[\ue000-\uffff]/u.test(s))).toEqual([]);
    for (const x of RAW_STRINGS) {
      for (const y of RAW_STRINGS) expect(Math.sign(x < y ? -1 : x > y ? 1 : 0), `${x} vs ${y}`).toBe(compareSameType(x, y));
    }
    // The full pool does have such pairs, so the byte-order run is not vacuous.
    expect(FULL_STRINGS.some((x) => FULL_STRINGS.some((y) => Math.sign(x < y ? -1 : x > y ? 1 : 0) !== compareSameType(x, y)))).toBe(true);
  });

  it('mingo accepts an empty $and/$or that MongoDB refuses; the translator never emits one and the walker refuses it', () => {
    expect(new Query({ $and: [] }).test({})).toBe(true);
    expect(new Query({ $or: [] }).test({})).toBe(false);
    expect(() => assertSafeMongoFilter({ $and: [] })).toThrow(/non-empty array/);
    expect(() => assertSafeMongoFilter({ $or: [] })).toThrow(/non-empty array/);
    expect(toMongoFilter({ kind: 'and', items: [] }, new Set())).toStrictEqual({});
    expect(toMongoFilter({ kind: 'or', items: [] }, new Set())).toStrictEqual(NEVER);
  });
});

// ---------------------------------------------------------------------------------------------
// The differential property test: seeded random FilterNodes against seeded random metas.



/** Strings whose UTF-16 order equals their UTF-8 order: nothing in U+E000–U+FFFF (checked above). */
const RAW_STRINGS = [
  '', ' ', 'a', 'b', 'B', 'ab', 'a ', '1', '0', '-1', '1.5', 'true', 'false', 'null', 'é', 'e\u0301', 'ü', 'Ω', '日本', '\ud7ff',
  '😀', 'a😀', '𝄞', '\u{10ffff}', 'a\u0000b', "O'Brien", '$where', '$gt', '$expr', '{"$gt": ""}', '$.a', 'meta.a', 'a:b', '__proto__',
] as const;
/** Plus the characters where the orders split. */
const FULL_STRINGS = [...RAW_STRINGS, '\ue000', '\uff61', 'a\uff61', '\ufffd', '\uffff'] as const;
const NUMBERS = [0, -0, 1, -1, 2, 10, -2, 1.5, -2.5, 0.1, 0.2, 0.30000000000000004, 1e-7, 123456789, 2 ** 31, -(2 ** 31) - 1, 2 ** 53, -(2 ** 53), 2 ** 63, 1e21, -1e300, 5e-324] as const;

function randomValue(g: Gen, strings: readonly string[]): IndexedValue {
  switch (g.int(6)) {
    case 0:
    case 1:
      return g.pick(strings);
    case 2:
      return g.pick(NUMBERS);
    case 3:
      // Integers (BSON int32) and floats (BSON double), negative included.
      return g.chance(0.5) ? g.int(21) - 10 : (g.float() - 0.5) * 20;
    case 4:
      return g.chance(0.5);
    default:
      return null;
  }
}

const META_FIELDS = ['a', 'b', 'customer.id', '_system.insertedAt'] as const;
/** `d` is indexed but never present: every condition on it hits the missing case. */
const FILTER_FIELDS = [...META_FIELDS, 'd'] as const;
const INDEXED = new Set<string>(FILTER_FIELDS);

function randomMeta(g: Gen, strings: readonly string[]): Meta {
  const meta: Meta = {};
  for (const field of META_FIELDS) if (g.chance(0.75)) meta[field] = randomValue(g, strings);
  return meta;
}

/** A filter value: usually one seen in the data (so equality hits), sometimes fresh. */
function randomOperand(g: Gen, seen: readonly IndexedValue[], strings: readonly string[]): IndexedValue {
  return g.chance(0.6) ? g.pick(seen) : randomValue(g, strings);
}

const RANGE_OPS = ['$gt', '$gte', '$lt', '$lte'] as const;

/** A random node, built directly (so empty and one-item and/or, and empty lists, occur too). Depth ≤ 4. */
function randomNode(g: Gen, seen: readonly IndexedValue[], strings: readonly string[], depth: number): FilterNode {
  if (depth < 4 && g.chance(0.35)) {
    const n = g.chance(0.08) ? 0 : 1 + g.int(3);
    return { kind: g.chance(0.5) ? 'and' : 'or', items: Array.from({ length: n }, () => randomNode(g, seen, strings, depth + 1)) };
  }
  const field = g.pick(FILTER_FIELDS);
  switch (g.int(8)) {
    case 0:
    case 1:
      return { kind: 'compare', field, op: g.chance(0.5) ? '$eq' : '$ne', value: randomOperand(g, seen, strings) };
    case 2:
    case 3:
    case 4: {
      let value = randomOperand(g, seen, strings);
      while (value === null) value = randomOperand(g, seen, strings);
      return { kind: 'compare', field, op: g.pick(RANGE_OPS), value };
    }
    case 5:
    case 6:
      return { kind: 'in', field, negate: g.chance(0.5), values: Array.from({ length: g.int(5) }, () => randomOperand(g, seen, strings)) };
    default:
      return { kind: 'exists', field, exists: g.chance(0.5) };
  }
}

function kindsOf(node: FilterNode, out: Set<string>): Set<string> {
  if (node.kind === 'and' || node.kind === 'or') {
    out.add(node.items.length === 0 ? `${node.kind}[]` : node.kind);
    node.items.forEach((n) => kindsOf(n, out));
  } else if (node.kind === 'compare') out.add(`${node.op}:${node.value === null ? 'null' : typeof node.value}`);
  else if (node.kind === 'in') out.add(`${node.negate ? '$nin' : '$in'}${node.values.length === 0 ? '[]' : ''}`);
  else out.add(`$exists:${node.exists}`);
  return out;
}

const EXPECTED_KINDS = [
  'and', 'or', 'and[]', 'or[]', '$in', '$nin', '$in[]', '$nin[]', '$exists:true', '$exists:false',
  ...['$eq', '$ne'].flatMap((op) => ['null', 'string', 'number', 'boolean'].map((t) => `${op}:${t}`)),
  ...RANGE_OPS.flatMap((op) => ['string', 'number', 'boolean'].map((t) => `${op}:${t}`)),
].sort();

const SEEDS = [1, 2, 3, 20240601];
const ROWS = 200;
const FILTERS = 2500;

describe.each([
  ['raw mingo, strings whose orders agree', false, RAW_STRINGS],
  ['mingo in UTF-8 byte order, all strings', true, FULL_STRINGS],
] as const)('differential: matches() vs mingo over toMongoFilter (%s)', (_label, byteOrder, strings) => {
  it.each(SEEDS)('seed %i', (seed) => {
    const g = new Gen(seed);
    const metas: Meta[] = Array.from({ length: ROWS }, () => randomMeta(g, strings));
    // Rows that pin the mixed-type corners: the same "one" as number, string and boolean; all null; none.
    metas.push({ a: 1, b: '1', 'customer.id': true }, { a: '1', b: true, 'customer.id': 1 }, { a: true, b: 1, 'customer.id': '1' }, {});
    metas.push({ a: null, b: null, 'customer.id': null, '_system.insertedAt': null });
    const seen = metas.flatMap((m) => Object.values(m));
    const docs = metas.map((m) => storedDoc(m, byteOrder));
    // What the store reads back is what it wrote.
    metas.forEach((m) => expect(decodeMeta(wire({ meta: encodeMeta(m) }).meta)).toStrictEqual(m));

    const fg = new Gen(seed * 7919 + (byteOrder ? 2 : 1));
    const kinds = new Set<string>();
    let selective = 0;
    const mismatches: string[] = [];
    for (let i = 0; i < FILTERS; i++) {
      const node = randomNode(fg, seen, strings, 0);
      kindsOf(node, kinds);
      const filter = toMongoFilter(node, INDEXED);
      if (Object.keys(filter).length > 0 && !('_id' in filter)) assertWellShaped(filter);
      const query = mingoQuery(filter, byteOrder);
      const want: number[] = [];
      const got: number[] = [];
      metas.forEach((meta, r) => {
        if (matches(node, meta)) want.push(r);
        if (query.test(docs[r]!)) got.push(r);
      });
      if (want.length > 0 && want.length < metas.length) selective++;
      if (want.join() !== got.join()) {
        const only = (a: number[], b: number[]): Meta[] => a.filter((r) => !b.includes(r)).map((r) => metas[r]!);
        mismatches.push(`node ${JSON.stringify(node)} -> ${JSON.stringify(filter)}: only matches(): ${JSON.stringify(only(want, got))}; only mingo: ${JSON.stringify(only(got, want))}`);
        if (mismatches.length >= 5) break;
      }
    }
    expect(mismatches).toEqual([]);
    // Only meaningful if every node kind, operator and operand type occurred, and most selections were non-trivial.
    expect([...kinds].sort()).toEqual(EXPECTED_KINDS);
    expect(selective).toBeGreaterThan(FILTERS / 3);
  });
});

// ---------------------------------------------------------------------------------------------

describe('toMongoFilter: refusals (nothing reaches the driver)', () => {
  const indexed = new Set(['a', 'b', 'customer.id']);
  const node = (n: unknown): FilterNode => n as FilterNode;
  const cmp = (extra: Record<string, unknown>): FilterNode => node({ kind: 'compare', field: 'a', op: '$eq', value: 1, ...extra });

  it.each([
    ['an unknown node kind', node({ kind: 'where', code: 'sleep(1000)' }), 'filter.kind', /Unknown filter node kind "where"/],
    ['a node without a kind', node({ field: 'a' }), 'filter.kind', /Unknown filter node kind undefined/],
    ['an inherited kind', node(Object.assign(Object.create({ kind: 'exists' }) as object, { field: 'a', exists: true })), 'filter', /must be a plain object/],
    ['a null node', node(null), 'filter', /must be a plain object; got null/],
    ['an array node', node([{ kind: 'and', items: [] }]), 'filter', /got an array/],
    ['$where as an operator', cmp({ op: '$where', value: 'sleep(1000)' }), 'filter.op', /Operator "\$where" is not allowed/],
    ['$expr as an operator', cmp({ op: '$expr' }), 'filter.op', /Operator "\$expr"/],
    ['$regex as an operator', cmp({ op: '$regex', value: '^a' }), 'filter.op', /Operator "\$regex"/],
    ['$in as a compare operator', cmp({ op: '$in', value: 1 }), 'filter.op', /Operator "\$in"/],
    ['a $where field', cmp({ field: '$where' }), 'filter.field', /"\$where" is not a valid property name/],
    ['an operator inside a field path', cmp({ field: 'a.$gt' }), 'filter.field', /not a valid property name/],
    ['a __proto__ field', cmp({ field: '__proto__' }), 'filter.field', /not a valid property name/],
    ['a constructor segment', cmp({ field: 'a.constructor' }), 'filter.field', /not a valid property name/],
    ['a NUL in a field', cmp({ field: 'a\u0000b' }), 'filter.field', /not a valid property name/],
    ['a non-string field', cmp({ field: 1 }), 'filter.field', /a number is not a valid property name/],
    ['a field that is not indexed', cmp({ field: 'secret' }), 'filter.field', /Property "secret" is not indexed/],
    ['an operator object as a value', cmp({ value: { $gt: '' } }), 'filter.value', /got an object/],
    ['$where in an object value', cmp({ value: { $where: 'sleep(1000)' } }), 'filter.value', /got an object/],
    ['an array as a value', cmp({ value: ['x'] }), 'filter.value', /got an array/],
    ['a function', cmp({ value: () => 1 }), 'filter.value', /a function/],
    ['NaN', cmp({ value: Number.NaN }), 'filter.value', /NaN/],
    ['Infinity', cmp({ value: Number.POSITIVE_INFINITY }), 'filter.value', /Infinity/],
    ['-Infinity', cmp({ value: Number.NEGATIVE_INFINITY }), 'filter.value', /-Infinity/],
    ['a bigint', cmp({ value: 10n }), 'filter.value', /bigint/],
    ['undefined', cmp({ value: undefined }), 'filter.value', /undefined/],
    ['a symbol', cmp({ value: Symbol('x') }), 'filter.value', /symbol/],
    ['a Date', cmp({ value: new Date(0) }), 'filter.value', /Date/],
    ['a RegExp', cmp({ value: /x/ }), 'filter.value', /RegExp/],
    ['a boxed string', cmp({ value: new String('x') }), 'filter.value', /String/],
    ['a BSON Code', cmp({ value: new BSON.Code('sleep(1000)') }), 'filter.value', /Code/],
    ['a lone surrogate', cmp({ value: '\udc00' }), 'filter.value', /lone surrogate/],
    ['$gt null', cmp({ op: '$gt', value: null }), 'filter.value', /\$gt cannot compare with null/],
    ['$lte null', cmp({ op: '$lte', value: null }), 'filter.value', /\$lte cannot compare with null/],
    ['$in with an object', node({ kind: 'in', field: 'a', negate: false, values: [1, { $gt: '' }] }), 'filter.values[1]', /got an object/],
    ['$in with a nested list', node({ kind: 'in', field: 'a', negate: false, values: [[1]] }), 'filter.values[0]', /got an array/],
    ['$in with a RegExp', node({ kind: 'in', field: 'a', negate: false, values: [/x/] }), 'filter.values[0]', /RegExp/],
    // eslint-disable-next-line no-sparse-arrays
    ['$in with a hole (BSON would send null)', node({ kind: 'in', field: 'a', negate: false, values: [1, , 2] }), 'filter.values[1]', /undefined/],
    ['$in with a string list', node({ kind: 'in', field: 'a', negate: false, values: 'x' }), 'filter.values', /array of values; got a string/],
    ['in without negate', node({ kind: 'in', field: 'a', values: [1] }), 'filter.negate', /negate: true or false/],
    ['$exists with 1', node({ kind: 'exists', field: 'a', exists: 1 }), 'filter.exists', /exists: true or false/],
    ['and without items', node({ kind: 'and' }), 'filter.items', /"and" node takes an array/],
    ['or with an object for items', node({ kind: 'or', items: { 0: { kind: 'exists', field: 'a', exists: true } } }), 'filter.items', /array/],
    [
      'a hostile node deep inside',
      node({ kind: 'or', items: [{ kind: 'exists', field: 'a', exists: true }, { kind: 'and', items: [cmp({ op: '$function' })] }] }),
      'filter.items[1].items[0].op',
      /Operator "\$function"/,
    ],
    ['a __proto__ field parsed from JSON', node(JSON.parse('{"kind":"compare","field":"__proto__","op":"$eq","value":1}')), 'filter.field', /not a valid/],
  ])('refuses %s', (_label, input, path, message) => {
    const err = validationError(() => toMongoFilter(input, indexed));
    expect(err.code).toBe('VALIDATION_FAILED');
    expect(err.path).toBe(path);
    expect(err.message).toMatch(message);
  });

  it('validates every item of an and/or even after a constant has decided it', () => {
    const hostile = { kind: 'compare', field: 'a', op: '$where', value: '1' };
    expect(() => toMongoFilter(node({ kind: 'or', items: [{ kind: 'and', items: [] }, hostile] }), indexed)).toThrow(/\$where/);
    expect(() => toMongoFilter(node({ kind: 'and', items: [{ kind: 'or', items: [] }, hostile] }), indexed)).toThrow(/\$where/);
    expect(() => toMongoFilter(node({ kind: 'in', field: 'secret', negate: false, values: [] }), indexed)).toThrow(/not indexed/);
  });

  it('does not read accessors or inherited properties of a node', () => {
    let reads = 0;
    const tricky = Object.defineProperty({ kind: 'compare', field: 'a', op: '$eq' }, 'value', {
      enumerable: true,
      get: () => (++reads === 1 ? 1 : { $where: '1' }),
    });
    expect(() => toMongoFilter(node(tricky), indexed)).toThrow(/got undefined/);
    expect(reads).toBe(0);
  });

  const chain = (levels: number): FilterNode => {
    let n: FilterNode = { kind: 'exists', field: 'a', exists: true };
    for (let i = 0; i < levels; i++) n = { kind: i % 2 === 0 ? 'and' : 'or', items: [n, { kind: 'compare', field: 'b', op: '$eq', value: i }] };
    return n;
  };
  const leaves = (count: number): FilterNode => ({ kind: 'or', items: Array.from({ length: count }, (_, i) => ({ kind: 'compare', field: 'a', op: '$eq', value: i })) });

  it(`accepts ${MONGO_FILTER_LIMITS.maxDepth} levels of nesting and refuses one more`, () => {
    expect(() => toMongoFilter(chain(MONGO_FILTER_LIMITS.maxDepth), indexed)).not.toThrow();
    const err = validationError(() => toMongoFilter(chain(MONGO_FILTER_LIMITS.maxDepth + 1), indexed));
    expect(err.message).toMatch(/nested deeper than 20 levels/);
    expect(err.path).toMatch(/^filter(\.items\[0\]){21}$/);
  });

  it(`accepts ${MONGO_FILTER_LIMITS.maxNodes} nodes and refuses one more`, () => {
    expect(() => toMongoFilter(leaves(MONGO_FILTER_LIMITS.maxNodes - 1), indexed)).not.toThrow();
    const err = validationError(() => toMongoFilter(leaves(MONGO_FILTER_LIMITS.maxNodes), indexed));
    expect(err.message).toMatch(/more than 4096 nodes/);
  });

  it(`accepts $in lists of ${MONGO_FILTER_LIMITS.maxList} values and refuses longer ones`, () => {
    const list = (n: number): FilterNode => ({ kind: 'in', field: 'a', negate: true, values: Array.from({ length: n }, (_, i) => i) });
    expect(() => toMongoFilter(list(MONGO_FILTER_LIMITS.maxList), indexed)).not.toThrow();
    expect(validationError(() => toMongoFilter(list(MONGO_FILTER_LIMITS.maxList + 1), indexed)).message).toMatch(/\$nin takes at most 1000 values/);
  });

  it(`refuses more than ${MONGO_FILTER_LIMITS.maxValues} values in all`, () => {
    const values = Array.from({ length: 1000 }, (_, i) => i);
    const items: FilterNode[] = Array.from({ length: 525 }, () => ({ kind: 'in', field: 'a', negate: false, values }));
    expect(validationError(() => toMongoFilter({ kind: 'and', items }, indexed)).message).toMatch(/more than 524288 values/);
  });

  it('translates the deepest and the widest filters parseFilter accepts', () => {
    const any = (): boolean => true;
    // 8 levels of $and/$or, each with a sibling condition, so implicit ANDs wrap the explicit ones.
    let deep: Record<string, unknown> = { a: 1, c: 1 };
    for (let i = 0; i < 8; i++) deep = { b: { $gt: i }, [i % 2 === 0 ? '$and' : '$or']: [deep, { a: 2 }] };
    const deepNode = parseFilter(deep, any)!;
    const depthOf = (n: FilterNode): number => (n.kind === 'and' || n.kind === 'or' ? 1 + Math.max(0, ...n.items.map(depthOf)) : 0);
    expect(depthOf(deepNode)).toBe(17);
    expect(() => toMongoFilter(deepNode, any)).not.toThrow();
    // 256 conditions, each with all nine operators and two full lists.
    const list = Array.from({ length: 1000 }, (_, i) => i);
    const condition = { $eq: 1, $ne: 2, $gt: 0, $gte: 0, $lt: 9, $lte: 9, $in: list, $nin: list, $exists: true };
    const wide = Object.fromEntries(Array.from({ length: 256 }, (_, i) => [`f${i}`, condition]));
    const wideNode = parseFilter(wide, any)!;
    expect(() => toMongoFilter(wideNode, any)).not.toThrow();
  });

  it('bounds what parseFilter does not count: empty sub-filters', () => {
    // parseFilter counts keys, so `{}` members of $or are free; the translator's node limit still applies.
    const node = parseFilter({ $or: [...Array.from({ length: 5000 }, () => ({})), { a: 1 }] }, () => true)!;
    expect(validationError(() => toMongoFilter(node, () => true)).message).toMatch(/more than 4096 nodes/);
  });

  it('keeps an operator-looking string a literal: it matches only itself', () => {
    for (const value of ['$where', '$gt', '$expr', '{"$gt": ""}', '$$ROOT']) {
      const filter = toMongoFilter({ kind: 'compare', field: 'a', op: '$eq', value }, indexed);
      expect(filter).toStrictEqual({ 'meta.a': { $eq: value } });
      const query = mingoQuery(filter, false);
      expect(query.test(storedDoc({ a: value }, false))).toBe(true);
      expect(query.test(storedDoc({ a: 'other' }, false))).toBe(false);
      expect(query.test(storedDoc({}, false))).toBe(false);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('assertSafeMongoFilter', () => {
  const getter = Object.defineProperty({}, 'meta.a', { enumerable: true, get: () => ({ $eq: 1 }) });
  const withToBSON = { 'meta.a': { $eq: 1 }, toBSON: () => ({ $where: 'sleep(1000)' }) };
  const nonEnumerableToBSON = Object.defineProperty({ 'meta.a': { $eq: 1 } }, 'toBSON', { value: () => ({ $where: '1' }) });
  const deep = (levels: number): Record<string, unknown> => {
    let f: Record<string, unknown> = { a: { $eq: 1 } };
    for (let i = 0; i < levels; i++) f = { $and: [f, { b: { $eq: i } }] };
    return f;
  };

  const hostile: ReadonlyArray<[string, unknown, RegExp]> = [
    ['$where at the top', { $where: 'sleep(1000)' }, /operator \$where is not allowed/],
    ['$where with a function', { $where: () => true }, /\$where/],
    ['$function in $expr', { $expr: { $function: { body: 'function() { return true }', args: [], lang: 'js' } } }, /operator \$expr/],
    ['$expr', { $expr: { $eq: ['$a', 1] } }, /operator \$expr/],
    ['$accumulator', { $accumulator: {} }, /operator \$accumulator/],
    ['$jsonSchema', { $jsonSchema: { required: ['a'] } }, /operator \$jsonSchema/],
    ['$text', { $text: { $search: 'x' } }, /operator \$text/],
    ['$comment', { $comment: 'x' }, /operator \$comment/],
    ['$nor', { $nor: [{ a: 1 }] }, /operator \$nor/],
    ['$regex on a field', { a: { $regex: '^a' } }, /operator \$regex is not allowed on a field/],
    ['$where on a field', { a: { $where: '1' } }, /\$where is not allowed on a field/],
    ['$function on a field', { a: { $function: {} } }, /\$function/],
    ['$not on a field', { a: { $not: { $eq: 1 } } }, /\$not/],
    ['$elemMatch', { a: { $elemMatch: { b: 1 } } }, /\$elemMatch/],
    ['$type', { a: { $type: 'string' } }, /\$type/],
    ['$mod', { a: { $mod: [2, 0] } }, /\$mod/],
    ['$options', { a: { $eq: 'x', $options: 'i' } }, /\$options/],
    ['an operator object as an $eq operand', { a: { $eq: { $gt: '' } } }, /operands must be .*got an object/],
    ['an operator object in $in', { a: { $in: [{ $gt: '' }] } }, /got an object/],
    ['a RegExp in $in', { a: { $in: [/x/] } }, /RegExp/],
    ['a nested list in $in', { a: { $in: [[1]] } }, /got an array/],
    // eslint-disable-next-line no-sparse-arrays
    ['a hole in $in', { a: { $in: [1, , 2] } }, /hole/],
    ['$in with a string', { a: { $in: 'x' } }, /\$in takes an array; got a string/],
    ['$exists with 1', { a: { $exists: 1 } }, /\$exists takes true or false/],
    ['an embedded-document match', { a: { b: { $gt: '' } } }, /may hold only operators; "b"/],
    ['an empty condition object', { a: {} }, /empty condition/],
    ['a bare RegExp', { a: /x/ }, /RegExp/],
    ['a bare array', { a: [1, 2] }, /got an array/],
    ['a bare Date', { a: new Date(0) }, /Date/],
    ['a bare BSON Code', { a: new BSON.Code('sleep(1000)') }, /Code/],
    ['a bare Long', { a: BSON.Long.fromNumber(1) }, /Long/],
    ['a bare function', { a: () => 1 }, /function/],
    ['NaN', { a: { $eq: Number.NaN } }, /NaN/],
    ['a bigint', { a: { $gt: 1n } }, /bigint/],
    ['undefined (BSON would send null)', { a: { $eq: undefined } }, /undefined/],
    ['a lone surrogate', { a: { $eq: '\ud800' } }, /lone surrogate/],
    ['a $ key inside a field path', { 'a.$where': 1 }, /not a safe field path/],
    ['a $-prefixed field path', { '$where.x': 1 }, /operator \$where\.x/],
    ['an empty field name', { '': 1 }, /not a safe field path/],
    ['an empty path segment', { 'a..b': 1 }, /not a safe field path/],
    ['a numeric path segment', { 'a.0': 1 }, /not a safe field path/],
    ['a NUL in a field', { 'a\u0000b': 1 }, /not a safe field path/],
    ['__proto__ parsed from JSON', JSON.parse('{"__proto__": {"$gt": ""}}') as unknown, /"__proto__" is not a safe field path/],
    ['a constructor segment', { 'meta.constructor': { $eq: 1 } }, /not a safe field path/],
    ['an empty $and', { $and: [] }, /non-empty array/],
    ['an $or object', { $or: { a: 1 } }, /\$or takes an array/],
    ['a string inside $and', { $and: ['a'] }, /a filter must be a plain object; got a string/],
    ['$where nested in $and/$or', { $and: [{ a: { $eq: 1 } }, { $or: [{ b: { $eq: 2 } }, { $where: '1' }] }] }, /filter\.\$and\[1\]\.\$or\[1\]\.\$where/],
    ['a null filter', null, /got null/],
    ['an array filter', [{ a: 1 }], /got an array/],
    ['a Map filter', new Map([['$where', '1']]), /Map/],
    ['an inherited $where', Object.create({ $where: '1' }) as unknown, /plain object/],
    ['an accessor', getter, /accessor/],
    ['an own toBSON', withToBSON, /toBSON/],
    ['a non-enumerable toBSON', nonEnumerableToBSON, /toBSON/],
    ['nesting deeper than 32 levels', deep(33), /nested deeper than 32 levels/],
  ];

  it.each(hostile)('refuses %s', (_label, filter, message) => {
    const err = validationError(() => assertSafeMongoFilter(filter));
    expect(err.code).toBe('VALIDATION_FAILED');
    expect(err.message).toMatch(/^Unsafe MongoDB filter at filter/);
    expect(err.message).toMatch(message);
    expect(err.path).toMatch(/^filter/);
  });

  it.each([
    ['an empty filter', {}],
    ['translator output', { $or: [{ $and: [{ 'meta.a': { $eq: 1 } }, { 'meta.b': { $exists: false } }] }, { 'meta.customer:id': { $in: [null, '$x'] } }] }],
    ['"never"', { _id: { $in: [] } }],
    ['operator-looking strings as operands', { 'meta.a': { $eq: '$where' }, 'meta.b': { $nin: ['$gt', '{"$expr":1}'] } }],
    ['a store filter around it', { $and: [{ deleted: { $eq: false } }, { _id: { $gt: 'r1' } }, { 'meta.a': { $gte: 1, $lt: 5 } }] }],
    ['bare scalar literals', { deleted: false, _id: 'r1', 'meta.a': null, 'meta.b': '$where' }],
    ['a null-prototype filter', Object.assign(Object.create(null) as object, { 'meta.a': { $eq: 1 } })],
    ['nesting of 32 levels', deep(32)],
  ])('accepts %s', (_label, filter) => {
    expect(() => assertSafeMongoFilter(filter)).not.toThrow();
  });
});

// ---------------------------------------------------------------------------------------------

describe('toMongoDocumentFilter: the same compiler over document paths, with dates', () => {
  it('keeps paths as they are, copies dates, and folds constants as toMongoFilter does', () => {
    const at = new Date(0);
    const filter = toMongoDocumentFilter({
      kind: 'and',
      items: [
        { kind: 'compare', field: '_system.updatedAt', op: '$lt', value: at },
        { kind: 'in', field: 'at', negate: false, values: [at, null] },
        { kind: 'or', items: [] },
      ],
    });
    expect(filter).toStrictEqual(NEVER);
    const live = toMongoDocumentFilter({
      kind: 'and',
      items: [
        { kind: 'compare', field: '_system.updatedAt', op: '$lt', value: at },
        { kind: 'in', field: 'at', negate: true, values: [at, 'x'] },
      ],
    });
    expect(live).toStrictEqual({ $and: [{ '_system.updatedAt': { $lt: new Date(0) } }, { at: { $nin: [new Date(0), 'x'] } }] });
    const copied = (live.$and as Array<Record<string, { $lt: Date }>>)[0]!['_system.updatedAt']!.$lt;
    expect(copied).not.toBe(at);
    at.setTime(1);
    expect(copied.getTime()).toBe(0);
    expect(toMongoDocumentFilter(null)).toStrictEqual({});
  });

  it.each<[string, unknown, string, RegExp]>([
    ['an invalid date', { kind: 'compare', field: 'at', op: '$eq', value: new Date('x') }, 'filter.value', /an invalid Date/],
    ['a date in a list', { kind: 'in', field: 'at', negate: false, values: [1, new Date(Number.NaN)] }, 'filter.values[1]', /an invalid Date/],
    ['a numeric path segment', { kind: 'exists', field: 'a.0', exists: true }, 'filter.field', /not a valid property name/],
    ['a $ field', { kind: 'compare', field: '$where', op: '$eq', value: 1 }, 'filter.field', /not a valid property name/],
    ['a range over null', { kind: 'compare', field: 'at', op: '$gte', value: null }, 'filter.value', /cannot compare with null/],
  ])('refuses %s, naming the path', (_label, node, path, message) => {
    const err = validationError(() => toMongoDocumentFilter(node as FilterNode));
    expect(err.path).toBe(path);
    expect(err.message).toMatch(message);
  });

  it('lets assertSafeMongoFilter admit plain valid dates only when asked to', () => {
    class Sneaky extends Date {
      toBSON(): unknown {
        return { $where: '1' };
      }
    }
    const withOwn = Object.assign(new Date(0), { toBSON: () => ({ $where: '1' }) });
    expect(() => assertSafeMongoFilter({ at: { $lt: new Date(0) }, b: new Date(0), c: { $in: [new Date(0)] } }, { dates: true })).not.toThrow();
    expect(() => assertSafeMongoFilter({ at: { $lt: new Date(0) } })).toThrow(/got an instance of Date/);
    expect(() => assertSafeMongoFilter({ at: { $lt: new Sneaky(0) } }, { dates: true })).toThrow(/Date subclass/);
    expect(() => assertSafeMongoFilter({ at: { $in: [withOwn] } }, { dates: true })).toThrow(/own properties/);
    expect(() => assertSafeMongoFilter({ at: new Date(Number.NaN) }, { dates: true })).toThrow(/invalid Date/);
    // A subclass reaching the translator is copied to a plain Date, so what is sent is what was checked.
    const sent = toMongoDocumentFilter({ kind: 'compare', field: 'at', op: '$eq', value: new Sneaky(5) });
    expect(Object.getPrototypeOf((sent.at as { $eq: Date }).$eq)).toBe(Date.prototype);
  });
});
