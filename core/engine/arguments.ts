import { sha256Base64url } from '../foundation/digest.js';
import { SORT_FIELDS, type SortField } from '../contracts/index-store.js';
import { ValidationError } from '../errors.js';
import { isValidName } from '../foundation/names.js';
import { parseAsOf, parseInstant } from '../foundation/clock.js';
import { isPlainObject } from '../foundation/filter.js';

/** Checks of the arguments callers pass to collection methods; each throws a `ValidationError`. */

export const MAX_PAGE = 1000;

/**
 * An options object (or any object argument with a fixed set of keys): a plain object, or
 * `undefined` (omitted), holding only keys the method knows. An unknown key is a
 * `ValidationError` naming it (`options.presing`) and the keys there are: a misspelt option must
 * never be silently ignored, since the call would then do something other than what was asked.
 * Keys holding `undefined` count as absent. Returns the object (`{}` when omitted).
 */
export function checkOptions(value: unknown, known: readonly string[], label = 'options', method?: string): Record<string, unknown> {
  if (value === undefined) return {};
  const of = method ? ` of ${method}` : '';
  if (!isPlainObject(value)) {
    throw new ValidationError(`${label}${of} must be an object with ${describeKeys(known)}`, { path: label });
  }
  const unknown = Object.keys(value).filter((key) => !known.includes(key) && value[key] !== undefined);
  if (unknown.length > 0) {
    const named = unknown.slice(0, 5).map((key) => JSON.stringify(key.slice(0, 64)));
    throw new ValidationError(`${label}${of} has ${unknown.length === 1 ? 'an unknown key' : 'unknown keys'} ${named.join(', ')}; it takes ${describeKeys(known)}`, {
      path: `${label}.${unknown[0]!.slice(0, 64)}`,
    });
  }
  return value;
}

/**
 * Refuses arguments past the last one a method declares (`extra` is its rest parameter, which
 * starts at argument index `declared`): an argument the method would drop is a `ValidationError`
 * naming it (`arguments[2]`), never ignored. Trailing `undefined`s drop nothing and pass.
 */
export function checkNoExtraArguments(method: string, declared: number, extra: readonly unknown[]): void {
  const first = extra.findIndex((arg) => arg !== undefined);
  if (first < 0) return;
  const index = declared + first;
  throw new ValidationError(`${method} takes ${declared === 0 ? 'no arguments' : `at most ${declared} argument${declared === 1 ? '' : 's'}`}; argument ${index + 1} (arguments[${index}]) would be ignored`, {
    path: `arguments[${index}]`,
  });
}

function describeKeys(known: readonly string[]): string {
  return known.length === 0 ? 'no keys' : `only ${known.join(', ')}`;
}

export function checkOv(value: unknown, label: string): asserts value is number {
  // Number.isSafeInteger is false for anything but a number.
  if (!Number.isSafeInteger(value) || (value as number) < 0) {
    throw new ValidationError(`${label} must be a whole number of at least 0`, { path: label });
  }
}

export function checkReason(reason: unknown): string | null {
  if (reason === undefined || reason === null) return null;
  if (typeof reason !== 'string' || reason.length > 1024) {
    throw new ValidationError('reason must be a string of at most 1024 characters', { path: 'reason' });
  }
  return reason;
}

export function checkLimit(limit: unknown): number {
  if (limit === undefined) return 50;
  // Number.isInteger is false for anything but a number.
  if (!Number.isInteger(limit) || (limit as number) < 1 || (limit as number) > MAX_PAGE) {
    throw new ValidationError(`limit must be a whole number from 1 to ${MAX_PAGE}`, { path: 'limit' });
  }
  return limit as number;
}

export function checkSort(sort: unknown, allowed: readonly SortField[] = SORT_FIELDS): { field: SortField; direction: 1 | -1 } {
  if (sort === undefined) return { field: 'id', direction: 1 };
  // Stryker disable next-line ArrayDeclaration: any one-item stand-in names no allowed field, so it is refused all the same.
  const entries = isPlainObject(sort) ? Object.entries(sort) : [];
  // Stryker disable next-line ArrayDeclaration: as above, and an empty list is refused by its length anyway.
  const [field, direction] = entries[0] ?? [];
  if (entries.length !== 1 || !allowed.includes(field as SortField) || (direction !== 1 && direction !== -1)) {
    throw new ValidationError(`sort must be one of ${allowed.map((f) => `{ ${f}: 1 | -1 }`).join(', ')}`, { path: 'sort' });
  }
  return { field: field as SortField, direction };
}

export function checkProjection(projection: unknown): string[] | undefined {
  if (projection === undefined) return undefined;
  if (!Array.isArray(projection) || projection.length > 64 || !projection.every((p) => isValidName('property', p))) {
    throw new ValidationError('projection must be a list of at most 64 property paths', { path: 'projection' });
  }
  return projection as string[];
}

export function parsePoint(target: unknown): { cv: number } | { at: string } {
  if (isPlainObject(target)) {
    checkOptions(target, ['cv', 'at'], 'target', 'restoreCollection');
    if (target.cv !== undefined && target.at !== undefined) throw new ValidationError('The restore target must be { cv } or { at }, not both', { path: 'target' });
    if ('cv' in target) {
      checkOv(target.cv, 'cv');
      return { cv: target.cv };
    }
    if ('at' in target) return { at: parseAsOf(target.at) };
  }
  throw new ValidationError('The restore target must be { cv } or { at }');
}

/**
 * Page tokens of `query`: opaque to callers, bound to one collection of one database, so a token
 * from another tenant or collection is refused rather than reinterpreted.
 */
export interface PageState {
  at: string | null;
  afterId: string;
  direction: 1 | -1;
}

export function encodePageToken(scope: string, state: PageState): string {
  // Stryker disable next-line StringLiteral: Buffer.from reads a string as UTF-8 when no encoding is named.
  return Buffer.from(JSON.stringify({ v: 1, s: scopeHash(scope), ...state }), 'utf8').toString('base64url');
}

export function decodePageToken(scope: string, token: unknown): PageState {
  const invalid = () => new ValidationError('pageToken is not a token this collection issued', { path: 'pageToken' });
  // Stryker disable next-line ConditionalExpression: a token that is not a string makes Buffer.from throw below, which is refused the same way.
  if (typeof token !== 'string') throw invalid();
  if (token.length > 2048) throw invalid();
  let parsed: unknown;
  // Without a parse result the plain-object check below refuses the token the same way.
  // Stryker disable BlockStatement: see above.
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  // Stryker restore BlockStatement
  if (!isPlainObject(parsed) || parsed.v !== 1 || parsed.s !== scopeHash(scope)) throw invalid();
  const { at, afterId, direction } = parsed;
  if ((at !== null && typeof at !== 'string') || !isValidName('id', afterId) || (direction !== 1 && direction !== -1)) throw invalid();
  return { at: at === null ? null : parseInstant(at, 'pageToken'), afterId, direction };
}

function scopeHash(scope: string): string {
  return sha256Base64url(scope).slice(0, 16);
}
