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
 * Every read hashes it (the tamper checks), so it is built in one pass of string appends. What
 * JSON cannot hold is treated as `JSON.stringify` treats it (see `canonicalOf`).
 */
export function canonicalJson(value: unknown): string {
  return canonicalOf(value) ?? 'null';
}

/**
 * The canonical text of a value as `JSON.stringify` would store it, or `undefined` where JSON has
 * nothing (undefined, a function, a symbol): such an array item is `null` and such an object key
 * is left out, exactly as in the stored JSON, so a document hashes the same before it is written
 * and after it is read back (a sparse array's holes come back as nulls).
 */
function canonicalOf(value: unknown): string | undefined {
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    return canonicalOf((value as { toJSON(): unknown }).toJSON());
  }
  if (value === null || typeof value !== 'object') return JSON.stringify(value) as string | undefined;
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      out += (i in value ? canonicalOf(value[i]) : undefined) ?? 'null';
    }
    return `${out}]`;
  }
  if (!isPlainObject(value)) return JSON.stringify(value);
  const keys = Object.keys(value).sort();
  let out = '{';
  for (const key of keys) {
    const item = canonicalOf(value[key]);
    if (item === undefined) continue;
    if (out.length > 1) out += ',';
    out += `${JSON.stringify(key)}:${item}`;
  }
  return `${out}}`;
}
