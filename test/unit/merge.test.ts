import { describe, expect, it } from 'vitest';
import type { Data } from '../../core/engine/documents.js';
import { canonicalJson, deepMerge } from '../../core/engine/merge.js';

describe('deepMerge', () => {
  it('merges objects deeply, keeping untouched properties', () => {
    const base: Data = { a: 1, nested: { x: 1, keep: 'k', deeper: { p: 1, q: 2 } } };
    const patch: Data = { b: 2, nested: { x: 9, deeper: { q: 3, r: 4 } } };
    expect(deepMerge(base, patch)).toEqual({ a: 1, b: 2, nested: { x: 9, keep: 'k', deeper: { p: 1, q: 3, r: 4 } } });
  });

  it('unions arrays: existing items first, then new ones not already present', () => {
    expect(deepMerge({ tags: ['a', 'b'] }, { tags: ['b', 'c', 'a', 'd'] })).toEqual({ tags: ['a', 'b', 'c', 'd'] });
  });

  it('dedupes array items by JSON value, whatever their key order', () => {
    const merged = deepMerge(
      { items: [{ id: 1, name: 'x' }, [1, 2]] },
      { items: [{ name: 'x', id: 1 }, { id: 2 }, [1, 2], [2, 1], { id: 2 }] },
    );
    expect(merged.items).toEqual([{ id: 1, name: 'x' }, [1, 2], { id: 2 }, [2, 1]]);
  });

  it('dedupes by type as well as value', () => {
    expect(deepMerge({ v: [1, 'x', null] }, { v: ['1', 1, true, null, 'x'] }).v).toEqual([1, 'x', null, '1', true]);
  });

  it('dedupes within the patch too, but keeps duplicates already in the base', () => {
    expect(deepMerge({ v: [1, 1] }, { v: [2, 2, 1] }).v).toEqual([1, 1, 2]);
  });

  it('replaces scalars, including with a different type', () => {
    expect(deepMerge({ a: 1, b: 'x', c: true }, { a: 2, b: 3, c: 'no' })).toEqual({ a: 2, b: 3, c: 'no' });
  });

  it('lets null replace anything, and anything replace null', () => {
    expect(deepMerge({ a: { x: 1 }, b: [1], c: 1 }, { a: null, b: null, c: null })).toEqual({ a: null, b: null, c: null });
    expect(deepMerge({ a: null }, { a: { x: 1 } })).toEqual({ a: { x: 1 } });
  });

  it('replaces when the shapes differ (array onto object or scalar, object onto array)', () => {
    expect(deepMerge({ a: { x: 1 } }, { a: [1] })).toEqual({ a: [1] });
    expect(deepMerge({ a: 'text' }, { a: [1] })).toEqual({ a: [1] });
    expect(deepMerge({ a: [1] }, { a: { x: 1 } })).toEqual({ a: { x: 1 } });
    expect(deepMerge({ a: [1] }, { a: 2 })).toEqual({ a: 2 });
  });

  it('returns plain properties: enumerable, writable and deletable, a "__proto__" key included', () => {
    const merged = deepMerge({ a: 1 }, JSON.parse('{"b": 2, "__proto__": {"polluted": true}}'));
    expect(Object.getOwnPropertyDescriptor(merged, 'b')).toEqual({ value: 2, enumerable: true, writable: true, configurable: true });
    expect(Object.getOwnPropertyDescriptor(merged, '__proto__')).toEqual({ value: { polluted: true }, enumerable: true, writable: true, configurable: true });
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
    merged.b = 3;
    delete merged.a;
    expect(merged).toEqual(JSON.parse('{"b": 3, "__proto__": {"polluted": true}}'));
  });

  it('keeps the base for an empty patch and takes the patch for an empty base', () => {
    expect(deepMerge({ a: 1 }, {})).toEqual({ a: 1 });
    expect(deepMerge({}, { a: { b: [1] } })).toEqual({ a: { b: [1] } });
  });

  it('modifies neither input', () => {
    const base: Data = { a: { b: 1, list: [1, { x: 1 }] }, s: 'x' };
    const patch: Data = { a: { c: 2, list: [2, { x: 1 }] }, s: 'y', n: { m: 1 } };
    const baseBefore = structuredClone(base);
    const patchBefore = structuredClone(patch);
    const merged = deepMerge(base, patch);
    expect(base).toEqual(baseBefore);
    expect(patch).toEqual(patchBefore);
    expect(merged.a).not.toBe(base.a);
    expect((merged.a as Data).list).not.toBe((base.a as Data).list);
    // Mutating the result must not reach back into the base either.
    ((merged.a as Data).list as unknown[]).push('new');
    expect((base.a as Data).list).toEqual([1, { x: 1 }]);
  });

  it('does not pollute Object.prototype through a __proto__ key from JSON', () => {
    // Callers normalise patches first (normaliseData refuses __proto__); this pins only that
    // deepMerge on its own cannot reach the shared prototype, at the top or nested.
    const patch = JSON.parse('{"__proto__": {"polluted": true}, "a": {"__proto__": {"polluted": true}}}') as Data;
    deepMerge({ a: { x: 1 } }, patch);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });
});

describe('canonicalJson', () => {
  it('gives the same text whatever the key order, at any depth', () => {
    const a = { b: 1, a: { y: [1, { q: 1, p: 2 }], x: null } };
    const b = { a: { x: null, y: [1, { p: 2, q: 1 }] }, b: 1 };
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(canonicalJson(a)).toBe('{"a":{"x":null,"y":[1,{"p":2,"q":1}]},"b":1}');
  });

  it('is the same before a document is stored as JSON and after it is read back', () => {
    // eslint-disable-next-line no-sparse-arrays
    const sparse = [1, , 3];
    const docs: unknown[] = [
      { hostile: sparse },
      { a: undefined, b: [undefined, () => 1, Symbol('s')], c: 1 },
      { at: new Date(0), nested: { toJSON: () => ({ z: 1, y: 2 }) } },
      [undefined],
    ];
    for (const doc of docs) {
      const readBack: unknown = JSON.parse(JSON.stringify(doc));
      expect(canonicalJson(doc)).toBe(canonicalJson(readBack));
      expect(JSON.parse(canonicalJson(doc))).toEqual(readBack);
    }
    expect(canonicalJson({ hostile: sparse })).toBe('{"hostile":[1,null,3]}');
  });

  it('keeps array order significant', () => {
    expect(canonicalJson([1, 2])).not.toBe(canonicalJson([2, 1]));
  });

  it('distinguishes types and escapes keys', () => {
    expect(canonicalJson(1)).not.toBe(canonicalJson('1'));
    expect(canonicalJson(true)).toBe('true');
    expect(canonicalJson(null)).toBe('null');
    expect(canonicalJson({ 'a"b': 'c"d' })).toBe('{"a\\"b":"c\\"d"}');
    expect(JSON.parse(canonicalJson({ 'k"}': [{ '\n': 1 }] }))).toEqual({ 'k"}': [{ '\n': 1 }] });
  });

  it('distinguishes values that differ only deep down', () => {
    expect(canonicalJson({ a: { b: [1, { c: 1 }] } })).not.toBe(canonicalJson({ a: { b: [1, { c: 2 }] } }));
  });
});
