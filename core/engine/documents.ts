import type { CollectionMapConfig } from '../config/schema.js';
import type { Actor, IndexedValue, VersionOp } from '../contracts/index-store.js';
import { ValidationError } from '../errors.js';
import { isValidName } from '../foundation/names.js';
import { isPlainObject, isWellFormed } from '../foundation/filter.js';
import type { SystemInfo } from './lineage.js';

/** User data: a plain JSON object. */
export type Data = Record<string, unknown>;

/**
 * The record document: what `current.json` and `v{ov}.json` hold, and what the index keeps as
 * `body` until archival. One format for every database type, so a version file is readable on
 * its own (who, when, why, what).
 */
export interface RecordDocument {
  id: string;
  ov: number;
  op: VersionOp;
  at: string;
  actor: Actor;
  reason: string | null;
  functionId?: string;
  deleted: boolean;
  createdAt: string;
  /** Lineage and enrichment provenance; absent when there is none. */
  system?: SystemInfo;
  data: Data;
}

export const DEFAULT_MAX_DOCUMENT_BYTES = 1024 * 1024;
const MAX_DEPTH = 64;
const MAX_KEY_LENGTH = 1024;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Checks that `input` is a plain JSON object within the size limit and returns a normalised copy:
 * `Date` values become ISO strings (as JSON would), `undefined` properties are dropped. Refuses
 * values JSON cannot carry faithfully (functions, symbols, bigints, NaN, Infinity, cycles), keys
 * starting with `$` (operator injection in document stores) and prototype-polluting keys.
 */
export function normaliseData(input: unknown, maxBytes: number, label = 'data'): { data: Data; bytes: number } {
  if (!isPlainObject(input)) {
    throw new ValidationError(`${label} must be a plain JSON object, got ${describe(input)}`, { path: label });
  }
  const data = normaliseValue(input, label, 0, new Set()) as Data;
  const bytes = jsonByteLength(data);
  if (bytes > maxBytes) {
    throw new ValidationError(`${label} is ${bytes} bytes of JSON, over the limit of ${maxBytes} bytes`, { path: label });
  }
  return { data, bytes };
}

function normaliseValue(value: unknown, path: string, depth: number, seen: Set<object>): unknown {
  if (typeof value === 'string') {
    if (!isWellFormed(value)) throw new ValidationError(`${path} is not well-formed Unicode (it has a lone surrogate)`, { path });
    return value;
  }
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ValidationError(`${path} is ${value}, which JSON cannot represent`, { path });
    return value;
  }
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new ValidationError(`${path} is an invalid Date`, { path });
    return value.toISOString();
  }
  if (typeof value !== 'object') throw new ValidationError(`${path} is ${describe(value)}, which JSON cannot represent`, { path });
  if (depth >= MAX_DEPTH) throw new ValidationError(`${path} is nested deeper than ${MAX_DEPTH} levels`, { path });
  if (seen.has(value)) throw new ValidationError(`${path} refers back to itself (a cycle)`, { path });
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      return value.map((item, i) => {
        if (item === undefined) throw new ValidationError(`${path}[${i}] is undefined, which JSON cannot represent`, { path: `${path}[${i}]` });
        return normaliseValue(item, `${path}[${i}]`, depth + 1, seen);
      });
    }
    if (!isPlainObject(value)) throw new ValidationError(`${path} is ${describe(value)}, not a plain object`, { path });
    const out: Data = {};
    for (const [key, child] of Object.entries(value)) {
      const childPath = `${path}.${key}`;
      if (key.startsWith('$')) throw new ValidationError(`${childPath}: keys may not start with "$"`, { path: childPath });
      if (FORBIDDEN_KEYS.has(key)) throw new ValidationError(`${childPath}: the key "${key}" is not allowed`, { path: childPath });
      if (key.length > MAX_KEY_LENGTH || key.includes('\u0000') || !isWellFormed(key)) {
        throw new ValidationError(`${path} has a key that is over ${MAX_KEY_LENGTH} characters, contains NUL or is not well-formed Unicode`, { path });
      }
      if (child === undefined) continue;
      out[key] = normaliseValue(child, childPath, depth + 1, seen);
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

/** Characters JSON.stringify escapes in a string (lone surrogates too, but normalised data has none). */
// eslint-disable-next-line no-control-regex -- control characters are exactly what JSON escapes
const JSON_ESCAPED = /["\\\u0000-\u001f]/;

/**
 * `Buffer.byteLength(JSON.stringify(value))` for normalised data (plain objects, arrays, possibly
 * sparse, strings, finite numbers, booleans, null; strings well-formed), without making the JSON text: a document
 * carrying 64 MiB of base64 content would otherwise be copied whole just to be measured.
 */
export function jsonByteLength(value: unknown): number {
  if (typeof value === 'string') return stringJsonBytes(value);
  if (typeof value === 'number') return String(value).length;
  if (typeof value === 'boolean') return value ? 4 : 5;
  if (value === null) return 4;
  if (Array.isArray(value)) {
    let bytes = 2 + Math.max(0, value.length - 1);
    // A hole of a sparse array (kept by the normalising `map`) is written as `null`.
    for (const item of value) bytes += item === undefined ? 4 : jsonByteLength(item);
    return bytes;
  }
  let bytes = 2;
  let members = 0;
  for (const [key, child] of Object.entries(value as Data)) {
    if (child === undefined) continue;
    bytes += stringJsonBytes(key) + 1 + jsonByteLength(child);
    members++;
  }
  return bytes + Math.max(0, members - 1);
}

function stringJsonBytes(value: string): number {
  let bytes = Buffer.byteLength(value, 'utf8') + 2;
  if (!JSON_ESCAPED.test(value)) return bytes;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x22 || c === 0x5c || c === 0x08 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d) bytes += 1;
    else if (c < 0x20) bytes += 5;
  }
  return bytes;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return `an instance of ${(value as object).constructor?.name ?? 'an unknown class'}`;
  return `a ${typeof value}`;
}

/** Serialises a record document; the resulting text is stored and archived byte for byte. */
export function serialiseDocument(doc: RecordDocument): string {
  return JSON.stringify(doc);
}

export function parseDocument(body: string): RecordDocument {
  return JSON.parse(body) as RecordDocument;
}

/** Reads a property by dotted path; `undefined` when any step is missing. */
export function readPath(data: Data, path: string): unknown {
  let current: unknown = data;
  for (const part of path.split('.')) {
    if (!isPlainObject(current) || !Object.hasOwn(current, part)) return undefined;
    current = current[part];
  }
  return current;
}

/**
 * The indexed values of a document, flat (`{ "customer.id": "c1" }`). With no collection map, or
 * an empty `indexedProps`, every top-level scalar is indexed. Non-scalar values are not indexed.
 */
export function extractMeta(data: Data, map: CollectionMapConfig | undefined): Record<string, IndexedValue> {
  const props = map && map.indexedProps.length > 0 ? map.indexedProps : Object.keys(data).filter((k) => isValidName('property', k));
  const meta: Record<string, IndexedValue> = {};
  for (const prop of props) {
    const value = readPath(data, prop);
    if (value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))) {
      meta[prop] = value;
    }
  }
  return meta;
}

/** Every scalar leaf of a document by dotted path, for counter rules over the payload. */
export function flattenScalars(data: Data, prefix = '', out: Record<string, IndexedValue> = {}, depth = 0): Record<string, IndexedValue> {
  if (depth > 8) return out;
  for (const [key, value] of Object.entries(data)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (value === null || typeof value === 'string' || typeof value === 'boolean' || typeof value === 'number') out[path] = value;
    else if (isPlainObject(value)) flattenScalars(value, path, out, depth + 1);
  }
  return out;
}

/** Fails when a property that `validation.requiredIndexed` lists is missing or null. */
export function checkRequired(data: Data, map: CollectionMapConfig | undefined, collection: string, label = 'data'): void {
  for (const prop of map?.validation?.requiredIndexed ?? []) {
    const value = readPath(data, prop);
    if (value === undefined || value === null) {
      throw new ValidationError(`${collection} requires "${prop}" (validation.requiredIndexed), but the document has none`, {
        path: `${label}.${prop}`,
      });
    }
  }
}

/** Keeps only the listed properties (dotted paths allowed), preserving nesting. */
export function project(data: Data, projection: readonly string[] | undefined): Data {
  if (!projection) return data;
  const out: Data = {};
  for (const path of projection) {
    const value = readPath(data, path);
    if (value === undefined) continue;
    const parts = path.split('.');
    let target = out;
    for (const part of parts.slice(0, -1)) {
      if (!isPlainObject(target[part])) target[part] = {};
      target = target[part] as Data;
    }
    target[parts[parts.length - 1]!] = value;
  }
  return out;
}
