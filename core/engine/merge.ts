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

/** JSON with object keys sorted, so that equal values have equal text whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isPlainObject(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
