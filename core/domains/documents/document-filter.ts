import type { Doc, DocFilter, DocScalar, DocValue, SortSpec } from '../../contracts/document-store.js';
import { ValidationError } from '../../errors.js';
import { isPlainObject, parseFilterTree, scalar as engineScalar, valueAtPath } from '../../foundation/filter.js';

/**
 * Filters of document collections (messaging, identities): the engine's filter language
 * (`core/foundation/filter.ts`: `$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or`, scalar values,
 * MongoDB semantics) over the collection's declared fields, with `Date` values as well. A `Date`
 * equals the same instant and ranges over dates match dates only, as in MongoDB. Only parsing is
 * here: `matches(node, byPath(doc))` in `core/foundation/filter.ts` evaluates the result.
 */

/** Parses and validates a user filter over `fields`; `null` for an empty one. Throws a `ValidationError` naming the path. */
export function parseDocumentFilter(input: unknown, fields: ReadonlySet<string>): DocFilter | null {
  return parseFilterTree(input, {
    allows: (field) => fields.has(field),
    refusal: (field) => `Field "${field}" cannot be filtered on; the fields of this collection are: ${[...fields].join(', ')}`,
    scalar,
  });
}

/** The engine's filter scalars, plus dates; `-0` is `0`, as documents store it. */
function scalar(value: unknown, path: string): DocScalar {
  if (value instanceof Date) {
    if (!isStorableDate(value)) throw new ValidationError('Filter dates must be valid, in the years 0000-9999', { path });
    return new Date(value.getTime());
  }
  if (value !== null && typeof value === 'object') throw new ValidationError('Filter values must be strings, finite numbers, booleans, null or Dates', { path });
  const v = engineScalar(value, path);
  return Object.is(v, -0) ? 0 : v;
}

/** Parses a sort: `{ field: 1 | -1 }` over declared fields, in key order (at most 4 keys). */
export function parseSort(input: unknown, fields: ReadonlySet<string>): SortSpec | undefined {
  if (input === undefined || input === null) return undefined;
  if (!isPlainObject(input)) throw new ValidationError('sort must be an object like { "firstSeenAt": -1 }', { path: 'sort' });
  const entries = Object.entries(input);
  if (entries.length > 4) throw new ValidationError('sort takes at most 4 fields', { path: 'sort' });
  return entries.map(([field, dir]) => {
    if (!fields.has(field)) throw new ValidationError(`Field "${field}" cannot be sorted on; the fields of this collection are: ${[...fields].join(', ')}`, { path: `sort.${field}` });
    if (dir !== 1 && dir !== -1) throw new ValidationError('A sort direction is 1 or -1', { path: `sort.${field}` });
    return [field, dir] as const;
  });
}

/** Dates whose ISO form has four year digits (what every backend stores and orders alike). */
export function isStorableDate(value: Date): boolean {
  if (!Number.isFinite(value.getTime())) return false;
  const year = value.getUTCFullYear();
  return year >= 0 && year <= 9999;
}

/** The value at a dotted path; `undefined` when a step is missing or not a plain object. */
export function valueAt(doc: Doc, path: string): DocValue | undefined {
  return valueAtPath(doc, path) as DocValue | undefined;
}
