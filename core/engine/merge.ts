import { isPlainObject } from '../foundation/filter.js';
import type { Data } from './documents.js';

/**
 * Enrichment merge: objects merge deeply, arrays are unioned (existing items first, then new
 * items not already present, compared by JSON value), anything else in the patch replaces the
 * existing value. Neither input is modified.
 */
export function deepMerge(base: Data, patch: Data): Data {
  const out: Data = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    const existing = Object.hasOwn(out, key) ? out[key] : undefined;
    const merged =
      isPlainObject(existing) && isPlainObject(value)
        ? deepMerge(existing, value)
        : Array.isArray(existing) && Array.isArray(value)
          ? unionArrays(existing, value)
          : value;
    // Defined, not assigned: a "__proto__" key stays a plain property and never swaps the prototype.
    Object.defineProperty(out, key, { value: merged, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function unionArrays(existing: readonly unknown[], added: readonly unknown[]): unknown[] {
  const seen = new Set(existing.map(canonicalJson));
  const out = [...existing];
  for (const item of added) {
    const key = canonicalJson(item);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(item);
  }
  return out;
}

/**
 * JSON with object keys sorted, so that equal values have equal text whatever their key order.
 * Every read hashes it (the tamper checks), so it is built in one pass of string appends. (A hole
 * or `undefined` in an array becomes nothing between its commas, as `Array#join` would.)
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      const item = i in value ? canonicalJson(value[i]) : undefined;
      if (item !== undefined) out += item;
    }
    return `${out}]`;
  }
  if (!isPlainObject(value)) return JSON.stringify(value);
  const keys = Object.keys(value).sort();
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (i > 0) out += ',';
    out += `${JSON.stringify(key)}:${canonicalJson(value[key])}`;
  }
  return `${out}}`;
}
