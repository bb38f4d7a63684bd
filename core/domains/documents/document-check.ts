import type { CollectionSpec, Doc, DocValue } from '../../contracts/document-store.js';
import { toDocumentJson } from '../../contracts/document-store.js';
import { ValidationError } from '../../errors.js';
import { isPlainObject, isWellFormed } from '../../foundation/filter.js';
import { isStorableDate, valueAt } from './document-filter.js';

const MAX_DEPTH = 32;
/** Top-level keys the stores keep for themselves. */
const RESERVED_TOP = new Set(['_id', '_xronox']);

/**
 * Checks a document before it reaches a store and returns a normalised deep copy: JSON values
 * and `Date`s only; undefined properties dropped (as JSON does); `-0` stored as `0`. Refused, with
 * a `ValidationError` naming the path: keys that are empty, start with `$`, hold `.` or NUL, or are
 * `__proto__`; top-level `_id`/`_xronox`; lone surrogates; non-finite numbers; invalid dates or
 * years outside 0000-9999; class instances, functions, bigints; arrays with holes or undefined;
 * nesting beyond 32 levels; a declared field holding a non-scalar (or under an array); a unique
 * index field that is not a string or a number; more than `maxBytes` of document JSON.
 */
export function checkDocument(input: unknown, spec: CollectionSpec, maxBytes: number, label = 'doc'): { doc: Doc; bytes: number } {
  if (!isPlainObject(input)) throw new ValidationError('A document must be a plain object', { path: label });
  const doc = copyObject(input, label, 0, true);
  for (const field of spec.fields) checkDeclaredField(doc, field, label);
  for (const index of spec.indexes) {
    if (!index.unique) continue;
    for (const [field] of index.keys) {
      const value = valueAt(doc, field);
      if (value === undefined && index.sparse) continue;
      if (typeof value !== 'string' && typeof value !== 'number') {
        throw new ValidationError(`${field} is part of the unique key ${index.name}, so it must be a string or a number${value === undefined ? ', and present' : ''}`, { path: `${label}.${field}` });
      }
    }
  }
  const bytes = Buffer.byteLength(toDocumentJson(doc), 'utf8');
  if (bytes > maxBytes) throw new ValidationError(`The document is ${bytes} bytes; the limit is ${maxBytes} (limits.maxDocumentBytes)`, { path: label });
  return { doc, bytes };
}

function checkDeclaredField(doc: Doc, field: string, label: string): void {
  let current: DocValue | undefined = doc;
  const segments = field.split('.');
  for (const [i, segment] of segments.entries()) {
    if (current === undefined) return;
    if (!isPlainObject(current)) {
      throw new ValidationError(`${segments.slice(0, i).join('.')} must be an object, since ${field} is a field of this collection`, { path: `${label}.${segments.slice(0, i).join('.')}` });
    }
    current = Object.hasOwn(current, segment) ? (current as Record<string, DocValue>)[segment] : undefined;
  }
  if (current !== undefined && current !== null && typeof current === 'object' && !(current instanceof Date)) {
    throw new ValidationError(`${field} must hold a string, number, boolean, null or Date`, { path: `${label}.${field}` });
  }
}

function copyObject(input: Record<string, unknown>, path: string, depth: number, top: boolean): Doc {
  if (depth > MAX_DEPTH) throw new ValidationError(`The document is nested deeper than ${MAX_DEPTH} levels`, { path });
  const out: Doc = {};
  for (const [key, value] of Object.entries(input)) {
    const at = `${path}.${key}`;
    if (key === '' || key.startsWith('$') || key.includes('.') || key.includes('\u0000') || key === '__proto__' || !isWellFormed(key)) {
      throw new ValidationError(`Invalid key ${JSON.stringify(key).slice(0, 80)}: keys may not be empty, start with "$", hold "." or NUL, or be __proto__`, { path: at });
    }
    if (top && RESERVED_TOP.has(key)) throw new ValidationError(`${key} is kept by the store; documents may not set it`, { path: at });
    if (value === undefined) continue;
    out[key] = copyValue(value, at, depth + 1);
  }
  return out;
}

function copyValue(value: unknown, path: string, depth: number): DocValue {
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    if (!isWellFormed(value)) throw new ValidationError('Strings must be well-formed Unicode (no lone surrogates)', { path });
    return value;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ValidationError('Numbers must be finite', { path });
    return Object.is(value, -0) ? 0 : value;
  }
  if (value instanceof Date) {
    if (!isStorableDate(value)) throw new ValidationError('Dates must be valid, in the years 0000-9999', { path });
    return new Date(value.getTime());
  }
  if (Array.isArray(value)) {
    if (depth > MAX_DEPTH) throw new ValidationError(`The document is nested deeper than ${MAX_DEPTH} levels`, { path });
    const out: DocValue[] = [];
    for (let i = 0; i < value.length; i++) {
      if (!(i in value) || value[i] === undefined) throw new ValidationError('Arrays may not hold undefined or holes', { path: `${path}[${i}]` });
      out.push(copyValue(value[i], `${path}[${i}]`, depth + 1));
    }
    return out;
  }
  if (isPlainObject(value)) return copyObject(value, path, depth, false);
  const kind = typeof value === 'object' ? (Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null)?.constructor?.name ?? 'object' : typeof value;
  throw new ValidationError(`Documents hold JSON values and Dates only; got a ${kind}`, { path });
}
