import type { IndexedValue } from '../../contracts/index-store.js';
import { StorageError, ValidationError } from '../../errors.js';
import { isValidName } from '../../foundation/names.js';

/**
 * How indexed values are laid out in MongoDB head and version documents.
 *
 * The engine's meta is flat and keyed by dotted property paths (`{ "customer.id": "c1" }`).
 * MongoDB reads a dot in a query path as "descend into a subdocument", so a stored key
 * `"customer.id"` could never be addressed by a query (and `meta.customer.id` would look for
 * `{ meta: { customer: { id } } }`). Each key is therefore stored with `.` replaced by `:`,
 * under one `meta` subdocument: `{ meta: { "customer:id": "c1" } }`, queried as
 * `"meta.customer:id"`.
 *
 * The mapping is a bijection: property paths are identifiers (`[A-Za-z_][A-Za-z0-9_]*`) joined
 * by `.` (see `core/foundation/names.ts`), so they never contain `:`, and an encoded key never
 * contains `.`, never starts with `$` (MongoDB's operator prefix) and never is all digits (which
 * MongoDB would read as an array index).
 */

/** The subdocument of head and version documents that holds the encoded indexed values. */
export const META_FIELD = 'meta';

const ENCODED_KEY = /^[A-Za-z_][A-Za-z0-9_]*(?::[A-Za-z_][A-Za-z0-9_]*)*$/;
const LONE_SURROGATE = /\p{Cs}/u;

/** The stored key of a property: `"customer.id"` → `"customer:id"`. Throws a `ValidationError` for an invalid property name. */
export function metaKey(prop: string): string {
  if (!isValidName('property', prop)) {
    throw new ValidationError(`Invalid indexed property: got ${show(prop)}; expected identifiers joined by "." (at most 8 levels)`, {
      path: 'property',
    });
  }
  return prop.replaceAll('.', ':');
}

/** The MongoDB query path of a property: `"customer.id"` → `"meta.customer:id"`. */
export function metaPath(prop: string): string {
  return `${META_FIELD}.${metaKey(prop)}`;
}

/**
 * The `meta` subdocument to store for flat indexed values. Throws a `ValidationError` when a key
 * is not a property name or a value is not a scalar (string without lone surrogates, finite
 * number, boolean or null): BSON would otherwise change it silently (`undefined` → null, a lone
 * surrogate → U+FFFD), and stored values would stop matching what `matches()` sees.
 */
export function encodeMeta(meta: Readonly<Record<string, IndexedValue>>): Record<string, IndexedValue> {
  if (!isPlainObject(meta)) throw new ValidationError('Indexed values must be a plain object', { path: 'meta' });
  const out: Record<string, IndexedValue> = {};
  for (const prop of Object.keys(meta)) {
    const key = metaKey(prop);
    const value = ownValue(meta, prop);
    const problem = scalarProblem(value);
    if (problem !== undefined) throw new ValidationError(`Indexed value of "${prop}" is ${problem}`, { path: `meta.${prop}` });
    out[key] = value as IndexedValue;
  }
  return out;
}

/**
 * The flat indexed values of a stored `meta` subdocument (the inverse of `encodeMeta`). Anything
 * `encodeMeta` cannot have written (a nested document, an array, a BSON wrapper such as `Long` or
 * `Decimal128`, a key that does not decode to a property name) is a `StorageError`: the stored
 * data is corrupt or was written by something else, which is a backend failure, not bad input.
 */
export function decodeMeta(doc: unknown): Record<string, IndexedValue> {
  if (!isPlainObject(doc)) throw corrupt(`is ${describe(doc)}, not a subdocument`);
  const out: Record<string, IndexedValue> = {};
  for (const key of Object.keys(doc)) {
    const prop = key.replaceAll(':', '.');
    if (!ENCODED_KEY.test(key) || !isValidName('property', prop)) throw corrupt(`has the key ${show(key)}, which is not an encoded property name`);
    const value = ownValue(doc, key);
    const problem = scalarProblem(value);
    if (problem !== undefined) throw corrupt(`holds ${problem} under "${key}"`);
    out[prop] = value as IndexedValue;
  }
  return out;
}

/** Why a value is not an indexed scalar, or `undefined` when it is one. */
export function scalarProblem(value: unknown): string | undefined {
  if (value === null || typeof value === 'boolean') return undefined;
  if (typeof value === 'string') return LONE_SURROGATE.test(value) ? 'a string with a lone surrogate (not well-formed Unicode)' : undefined;
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : `${String(value)} (numbers must be finite)`;
  return describe(value);
}

function corrupt(detail: string): StorageError {
  return new StorageError('mongodb', 'decode meta', undefined, `Stored indexed values (meta) ${detail}`);
}

/** An own data property; an accessor or a missing key reads as `undefined` (which no check accepts). */
function ownValue(obj: object, key: string): unknown {
  const desc = Object.getOwnPropertyDescriptor(obj, key);
  return desc !== undefined && 'value' in desc ? (desc.value as unknown) : undefined;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') {
    const name = (Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null)?.constructor?.name;
    return name === undefined || name === 'Object' ? 'an object' : `an instance of ${name}`;
  }
  return `a ${typeof value}`;
}

function show(value: unknown): string {
  if (typeof value !== 'string') return describe(value);
  return value.length > 40 ? `a ${value.length}-character string` : JSON.stringify(value);
}
