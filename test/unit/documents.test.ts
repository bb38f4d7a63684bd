import { describe, expect, it } from 'vitest';
import type { CollectionMapConfig } from '../../core/config/schema.js';
import {
  checkRequired,
  DEFAULT_MAX_DOCUMENT_BYTES,
  extractMeta,
  flattenScalars,
  jsonByteLength,
  normaliseData,
  project,
  readPath,
  type Data,
} from '../../core/engine/documents.js';
import { ValidationError } from '../../core/errors.js';

const MAX = DEFAULT_MAX_DOCUMENT_BYTES;

function normaliseError(input: unknown, maxBytes = MAX): ValidationError {
  try {
    normaliseData(input, maxBytes);
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('normaliseData accepted the input');
}

function map(indexedProps: string[], requiredIndexed?: string[]): CollectionMapConfig {
  return requiredIndexed ? { indexedProps, validation: { requiredIndexed } } : { indexedProps };
}

function nested(levels: number): Data {
  let value: Data = { leaf: 1 };
  for (let i = 0; i < levels; i++) value = { n: value };
  return value;
}

describe('normaliseData', () => {
  it('returns an equal copy of a plain JSON object, and its JSON size in bytes', () => {
    const input = { s: 'é', n: -1.5, b: false, z: null, arr: [1, 'two', { three: 3 }, [4]], obj: { deep: { x: 'y' } } };
    const { data, bytes } = normaliseData(input, MAX);
    expect(data).toEqual(input);
    expect(data).not.toBe(input);
    expect(data.obj).not.toBe(input.obj);
    expect(bytes).toBe(Buffer.byteLength(JSON.stringify(input), 'utf8'));
    // 'é' is two UTF-8 bytes: the size is in bytes, not characters.
    expect(bytes).toBe(JSON.stringify(input).length + 1);
  });

  it('turns Dates into ISO strings at any depth', () => {
    const at = new Date('2024-03-04T05:06:07.089Z');
    const { data } = normaliseData({ at, list: [at], inner: { at } }, MAX);
    expect(data).toEqual({ at: '2024-03-04T05:06:07.089Z', list: ['2024-03-04T05:06:07.089Z'], inner: { at: '2024-03-04T05:06:07.089Z' } });
  });

  it('rejects an invalid Date', () => {
    expect(normaliseError({ at: new Date(Number.NaN) }).path).toBe('data.at');
  });

  it('drops undefined properties but refuses undefined array items', () => {
    const { data } = normaliseData({ a: 1, gone: undefined, inner: { gone: undefined, kept: 2 } }, MAX);
    expect(data).toEqual({ a: 1, inner: { kept: 2 } });
    expect(Object.hasOwn(data, 'gone')).toBe(false);
    expect(normaliseError({ list: [1, undefined] }).path).toBe('data.list[1]');
  });

  it('accepts objects with a null prototype', () => {
    const bare = Object.assign(Object.create(null) as Data, { a: 1 });
    expect(normaliseData({ bare }, MAX).data).toEqual({ bare: { a: 1 } });
  });

  it.each([
    ['a function', () => 1],
    ['a symbol', Symbol('s')],
    ['a bigint', 10n],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
    ['a Map', new Map([['a', 1]])],
    ['a Set', new Set([1])],
    ['a class instance', new (class Point { x = 1 })()],
    ['a RegExp', /x/],
    ['a Buffer', Buffer.from('x')],
  ])('rejects %s, naming where it is', (_label, value) => {
    expect(normaliseError({ v: value }).path).toBe('data.v');
    expect(normaliseError({ outer: { list: [0, value] } }).path).toBe('data.outer.list[1]');
  });

  it.each([
    ['an array', [1, 2]],
    ['null', null],
    ['a string', '{"a":1}'],
    ['a number', 1],
    ['undefined', undefined],
    ['a Map', new Map()],
    ['a Date', new Date(0)],
  ])('rejects %s at the top level', (_label, value) => {
    const err = normaliseError(value);
    expect(err.path).toBe('data');
    expect(err.message).toMatch(/plain JSON object/);
  });

  it('uses the label in paths and messages', () => {
    try {
      normaliseData({ a: Number.NaN }, MAX, 'patch');
      expect.unreachable();
    } catch (err) {
      expect((err as ValidationError).path).toBe('patch.a');
    }
  });

  it('rejects cycles through objects and arrays', () => {
    const obj: Data = { a: 1 };
    obj.self = obj;
    expect(normaliseError(obj).message).toMatch(/cycle/);
    const list: unknown[] = [];
    list.push(list);
    expect(normaliseError({ list }).message).toMatch(/cycle/);
  });

  it('accepts the same object twice when it is not a cycle', () => {
    const shared = { x: 1 };
    const { data } = normaliseData({ a: shared, b: shared, list: [shared, shared] }, MAX);
    expect(data).toEqual({ a: { x: 1 }, b: { x: 1 }, list: [{ x: 1 }, { x: 1 }] });
  });

  it.each(['$where', '$set', '$'])('rejects the key %s at any depth', (key) => {
    expect(normaliseError({ [key]: 1 }).path).toBe(`data.${key}`);
    expect(normaliseError({ a: { b: { [key]: 1 } } }).path).toBe(`data.a.b.${key}`);
    expect(normaliseError({ a: [{ [key]: 1 }] }).path).toBe(`data.a[0].${key}`);
  });

  it('allows $ inside a key and in values', () => {
    expect(normaliseData({ price$: '$5', a: { 'x$y': '$where' } }, MAX).data).toEqual({ price$: '$5', a: { 'x$y': '$where' } });
  });

  it.each(['__proto__', 'constructor', 'prototype'])('rejects the key %s at any depth', (key) => {
    const top = JSON.parse(`{"${key}": {"polluted": true}}`) as unknown;
    expect(Object.hasOwn(top as object, key)).toBe(true);
    expect(normaliseError(top).path).toBe(`data.${key}`);
    const deep = JSON.parse(`{"a": [{"b": {"${key}": 1}}]}`) as unknown;
    expect(normaliseError(deep).path).toBe(`data.a[0].b.${key}`);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('rejects keys with NUL or over 1024 characters', () => {
    expect(normaliseError({ a: { 'x\u0000y': 1 } }).path).toBe('data.a');
    expect(normaliseError({ ['k'.repeat(1025)]: 1 }).path).toBe('data');
    expect(normaliseData({ ['k'.repeat(1024)]: 1 }, MAX).data).toEqual({ ['k'.repeat(1024)]: 1 });
  });

  it('accepts 63 levels of nesting below the root and rejects 64', () => {
    expect(() => normaliseData(nested(63), MAX)).not.toThrow();
    expect(normaliseError(nested(64)).message).toMatch(/nested deeper than 64/);
    let list: unknown = 1;
    for (let i = 0; i < 100; i++) list = [list];
    expect(normaliseError({ list }).message).toMatch(/nested deeper/);
  });

  it('enforces maxBytes on the JSON size, with the size in the message', () => {
    const data = { s: 'x'.repeat(100) };
    const bytes = Buffer.byteLength(JSON.stringify(data));
    expect(normaliseData(data, bytes).bytes).toBe(bytes);
    const err = normaliseError(data, bytes - 1);
    expect(err.path).toBe('data');
    expect(err.message).toContain(`${bytes} bytes`);
    expect(err.message).toContain(`${bytes - 1} bytes`);
    // Multi-byte characters count by their UTF-8 size.
    expect(() => normaliseData({ s: '😀'.repeat(30) }, 100)).toThrow(ValidationError);
  });

  it('measures the size after normalising (dropped undefined, Dates as strings)', () => {
    const { bytes } = normaliseData({ a: undefined, at: new Date(0) }, MAX);
    expect(bytes).toBe(Buffer.byteLength('{"at":"1970-01-01T00:00:00.000Z"}'));
  });
});

describe('jsonByteLength', () => {
  it('equals the UTF-8 length of JSON.stringify for every kind of value, escapes and non-ASCII included', () => {
    const strings = ['', 'plain', 'quote " and \\ backslash', 'controls \b\f\n\r\t \u0000 \u0001 \u001f', 'é ü 中文 😀', '\u2028\u2029', '\u007f\u0080'];
    const numbers = [0, -0, 1, -1.5, 1e21, 1e-7, 123456789.123, Number.MAX_SAFE_INTEGER, Number.MIN_VALUE, 2 ** 70];
    const values: unknown[] = [
      ...strings,
      ...numbers,
      true,
      false,
      null,
      {},
      [],
      [[]],
      { a: undefined, b: 1 },
      // Sparse arrays: JSON writes their holes as null.
      new Array(3),
      Object.assign(new Array(3), { 0: 1, 2: 3 }),
      { sparse: Object.assign(new Array(2), { 1: 'x' }) },
      { 'k"ey\n': strings, nested: { deep: [numbers, { x: null }] }, 'é': 'ü' },
    ];
    // Seeded random documents on top of the listed cases.
    let seed = 7;
    const rand = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const anyValue = (depth: number): unknown => {
      const r = rand();
      if (depth > 3 || r < 0.3) return strings[Math.floor(rand() * strings.length)]! + String.fromCharCode(Math.floor(rand() * 0x3000));
      if (r < 0.45) return numbers[Math.floor(rand() * numbers.length)]! * rand();
      if (r < 0.5) return rand() < 0.5 ? null : rand() < 0.5;
      if (r < 0.75) return Array.from({ length: Math.floor(rand() * 4) }, () => anyValue(depth + 1));
      return Object.fromEntries(Array.from({ length: Math.floor(rand() * 4) }, (_, i) => [`${strings[i % strings.length]}${i}`, anyValue(depth + 1)]));
    };
    for (let i = 0; i < 300; i++) values.push(anyValue(0));
    for (const value of values) expect(jsonByteLength(value), JSON.stringify(value)).toBe(Buffer.byteLength(JSON.stringify(value), 'utf8'));
  });
});

describe('readPath', () => {
  it('reads dotted paths and returns undefined through missing steps and non-objects', () => {
    const data: Data = { a: { b: { c: 1 } }, list: [{ x: 1 }], s: 'str' };
    expect(readPath(data, 'a.b.c')).toBe(1);
    expect(readPath(data, 'a.b')).toEqual({ c: 1 });
    expect(readPath(data, 'a.x.c')).toBeUndefined();
    expect(readPath(data, 'list.0.x')).toBeUndefined();
    expect(readPath(data, 's.length')).toBeUndefined();
    expect(readPath(data, 'toString')).toBeUndefined();
  });
});

describe('extractMeta', () => {
  const data: Data = {
    status: 'open',
    total: 12.5,
    paid: false,
    note: null,
    customer: { id: 'c1', address: { city: 'Oslo' }, tags: ['x'] },
    items: [1, 2],
    nested: { deep: 1 },
  };

  it('reads indexedProps, dotted paths included, into flat keys', () => {
    expect(extractMeta(data, map(['status', 'customer.id', 'customer.address.city', 'note']))).toEqual({
      status: 'open',
      'customer.id': 'c1',
      'customer.address.city': 'Oslo',
      note: null,
    });
  });

  it('skips missing and non-scalar indexed values', () => {
    expect(extractMeta(data, map(['items', 'customer', 'customer.tags', 'missing', 'customer.missing', 'paid']))).toEqual({ paid: false });
  });

  it.each([
    ['no collection map', undefined],
    ['empty indexedProps', map([])],
  ])('indexes every top-level scalar with %s', (_label, collectionMap) => {
    expect(extractMeta(data, collectionMap)).toEqual({ status: 'open', total: 12.5, paid: false, note: null });
  });

  it('does not index top-level keys that are not valid property names', () => {
    expect(extractMeta({ ok: 1, 'has space': 2, 'dotted.key': 3, '9lives': 4, _under: 5 }, undefined)).toEqual({ ok: 1, _under: 5 });
  });
});

describe('checkRequired', () => {
  it('passes when every required property is present and non-null', () => {
    expect(() => checkRequired({ a: 0, b: { c: '' }, d: false }, map([], ['a', 'b.c', 'd']), 'orders')).not.toThrow();
  });

  it.each([
    ['missing', { b: 1 }, 'a'],
    ['null', { a: null }, 'a'],
    ['missing nested', { a: 1, b: {} }, 'b.c'],
  ])('fails when a required property is %s', (_label, data, prop) => {
    try {
      checkRequired(data, map([], ['a', 'b.c']), 'orders');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).path).toBe(`data.${prop}`);
      expect((err as ValidationError).message).toContain('orders');
      expect((err as ValidationError).message).toContain(`"${prop}"`);
    }
  });

  it('requires nothing without a map or without validation', () => {
    expect(() => checkRequired({}, undefined, 'c')).not.toThrow();
    expect(() => checkRequired({}, map(['a']), 'c')).not.toThrow();
  });
});

describe('project', () => {
  const data: Data = { a: 1, b: { c: 2, d: { e: 3, f: 4 } }, g: [1, 2], h: null };

  it('returns the data itself without a projection', () => {
    expect(project(data, undefined)).toBe(data);
  });

  it('keeps only the listed properties', () => {
    expect(project(data, ['a', 'g', 'h'])).toEqual({ a: 1, g: [1, 2], h: null });
    expect(project(data, [])).toEqual({});
  });

  it('keeps nesting for dotted paths and merges siblings', () => {
    expect(project(data, ['b.d.e', 'b.c'])).toEqual({ b: { c: 2, d: { e: 3 } } });
    expect(project(data, ['b.d.e', 'a'])).toEqual({ a: 1, b: { d: { e: 3 } } });
  });

  it('skips paths that do not exist', () => {
    expect(project(data, ['missing', 'b.missing', 'a.x', 'g.0'])).toEqual({});
  });

  it('does not modify the input', () => {
    const before = JSON.stringify(data);
    project(data, ['b.d.e']);
    expect(JSON.stringify(data)).toBe(before);
  });
});

describe('flattenScalars', () => {
  it('flattens scalar leaves by dotted path, skipping arrays', () => {
    expect(flattenScalars({ a: 1, b: { c: 'x', d: { e: null, f: true } }, g: [1, 2], h: {} })).toEqual({
      a: 1,
      'b.c': 'x',
      'b.d.e': null,
      'b.d.f': true,
    });
  });

  it('stops below nine levels', () => {
    const flat = flattenScalars(nested(12));
    expect(Object.keys(flat)).toEqual([]);
    const shallow = flattenScalars(nested(8));
    expect(shallow).toEqual({ [`${'n.'.repeat(8)}leaf`]: 1 });
  });
});
