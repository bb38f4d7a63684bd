import type { Document, Filter, IndexDescription } from 'mongodb';
import type { DocFilter, DocScalar, IndexInfo, IndexKey, IndexSpec, SortSpec } from '../../contracts/document-store.js';
import { ValidationError } from '../../errors.js';
import { isValidName } from '../../foundation/names.js';

/**
 * Pure translations for the MongoDB document store (`mongodb-document-store.ts`), kept apart so
 * they are tested without a server: filters, sorts, index specs, and duplicate-key errors.
 *
 * Filters: a sibling of `toMongoFilter` (`mongodb-filter.ts`, which addresses the index store's
 * `meta.` subdocument) for plain collections whose fields are the documents' own paths. The
 * semantics are MongoDB's, which are the ones `matchesDocument` implements: type-strict equality
 * (a `Date` equals the same instant), ranges within the operand's type bracket (dates with
 * dates), `{ $eq: null }` matching null or missing. Declared fields never sit under arrays
 * (`checkDocument`), so array traversal never applies.
 *
 * Injection: fields must be identifiers joined by dots (never `$`-prefixed, never all digits),
 * values must be strings, finite numbers, booleans, null or `Date`s, and every value is the
 * operand of an operator (`{ f: { $eq: v } }`), so the server reads it as a literal.
 */

/** A filter no document matches: `$in` of nothing over `_id`, which every document has. */
const NEVER: Filter<Document> = { _id: { $in: [] } };
const MAX_DEPTH = 24;

/** The MongoDB query of a validated filter; throws a `ValidationError` for anything outside the AST. */
export function toMongoDocumentFilter(node: DocFilter | null): Filter<Document> {
  if (node === null) return {};
  const compiled = compile(node, 0);
  return compiled === true ? {} : compiled === false ? NEVER : compiled;
}

function compile(node: DocFilter, depth: number): Filter<Document> | boolean {
  if (depth > MAX_DEPTH) throw new ValidationError(`Filter is nested deeper than ${MAX_DEPTH} levels`);
  switch (node.kind) {
    case 'and':
    case 'or': {
      const isAnd = node.kind === 'and';
      const parts: Array<Filter<Document>> = [];
      for (const item of node.items) {
        const c = compile(item, depth + 1);
        if (c === !isAnd) return !isAnd; // "never" absorbs an and, "always" an or
        if (c !== isAnd) parts.push(c as Filter<Document>);
      }
      if (parts.length === 0) return isAnd;
      return parts.length === 1 ? parts[0]! : { [isAnd ? '$and' : '$or']: parts };
    }
    case 'exists':
      if (typeof node.exists !== 'boolean') throw new ValidationError('$exists takes true or false');
      return { [field(node.field)]: { $exists: node.exists } };
    case 'in': {
      if (!Array.isArray(node.values)) throw new ValidationError('$in takes an array');
      const values = node.values.map(value);
      if (values.length === 0) return node.negate; // $nin of nothing: always; $in of nothing: never
      return { [field(node.field)]: { [node.negate ? '$nin' : '$in']: values } };
    }
    case 'compare': {
      if (!['$eq', '$ne', '$gt', '$gte', '$lt', '$lte'].includes(node.op)) throw new ValidationError(`Operator ${String(node.op)} is not allowed`);
      const v = value(node.value);
      if (v === null && node.op !== '$eq' && node.op !== '$ne') throw new ValidationError(`${node.op} cannot compare with null`);
      return { [field(node.field)]: { [node.op]: v } };
    }
    default:
      throw new ValidationError(`Unknown filter node ${JSON.stringify((node as { kind?: unknown }).kind)}`);
  }
}

function field(path: unknown): string {
  if (typeof path !== 'string' || !isValidName('property', path)) throw new ValidationError(`Invalid field path ${JSON.stringify(path)?.slice(0, 80)}: expected identifiers joined by "."`, { path: 'field' });
  return path;
}

function value(v: unknown): DocScalar {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (v instanceof Date && Number.isFinite(v.getTime())) return v;
  throw new ValidationError('Filter values must be strings, finite numbers, booleans, null or Dates');
}

/** A sort with `_id` last, so ties come in `_id` (insertion) order. */
export function toMongoSort(sort: SortSpec | undefined): Array<[string, 1 | -1]> {
  return [...(sort ?? []).map(([f, dir]): [string, 1 | -1] => [field(f), dir === -1 ? -1 : 1]), ['_id', 1]];
}

/** The index that makes the store's own expiry native: a TTL index on the hidden `_xronox.expiresAt`. */
export const EXPIRY_FIELD = '_xronox.expiresAt';
export const EXPIRY_INDEX_NAME = 'xronox_expiry';

/** `createIndexes` descriptions of a spec's indexes, plus the expiry TTL index. No collation, ever (see `mongodb-filter.ts`). */
export function toMongoIndexes(indexes: readonly IndexSpec[]): IndexDescription[] {
  return [
    ...indexes.map((i): IndexDescription => ({
      key: Object.fromEntries(i.keys.map(([f, dir]) => [field(f), dir === -1 ? -1 : 1])),
      name: i.name,
      ...(i.unique ? { unique: true } : {}),
      ...(i.sparse ? { sparse: true } : {}),
    })),
    { key: { [EXPIRY_FIELD]: 1 }, name: EXPIRY_INDEX_NAME, expireAfterSeconds: 0 },
  ];
}

/** An index as `listIndexes` reports it, in the port's shape; `null` for `_id_` and the store's own. */
export function fromMongoIndex(index: Document): IndexInfo | null {
  if (index.name === '_id_' || index.name === EXPIRY_INDEX_NAME) return null;
  const keys = Object.entries((index.key ?? {}) as Record<string, unknown>).map(([f, dir]): IndexKey => [f, Number(dir) === -1 ? -1 : 1]);
  return { name: String(index.name), keys, unique: index.unique === true, sparse: index.sparse === true };
}

/**
 * The name of the index behind a duplicate-key error (code 11000): from the server's message
 * (`E11000 duplicate key error collection: db.c index: key_1_namespace_1 dup key: …`), else by
 * matching its `keyPattern` against the declared indexes; `null` when neither tells.
 */
export function duplicateKeyIndex(err: { errmsg?: unknown; message?: unknown; keyPattern?: unknown }, declared: readonly IndexSpec[]): string | null {
  for (const text of [err.errmsg, err.message]) {
    const m = typeof text === 'string' ? / index: (\S+) dup key/.exec(text) : null;
    if (m) return m[1]!;
  }
  if (err.keyPattern && typeof err.keyPattern === 'object') {
    const fields = Object.keys(err.keyPattern);
    const hit = declared.find((i) => i.unique && i.keys.length === fields.length && i.keys.every(([f], n) => f === fields[n]));
    if (hit) return hit.name;
  }
  return null;
}
