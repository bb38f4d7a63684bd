import { sha256Hex } from './digest.js';
import { ValidationError } from '../errors.js';

/**
 * Rules for every name that becomes part of a database name, a table or collection name, or an
 * object key. They are deliberately narrow: no `$` (MongoDB operators), no `.`-only segments or
 * `..` (path traversal), no path separators, bounded length.
 */

const COLLECTION = /^[A-Za-z][A-Za-z0-9_-]{0,62}$/;
const RECORD_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const TIER_KEY = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const DB_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const PROPERTY_PATH = /^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62}){0,7}$/;
// S3 bucket naming rules (lowercase, digits, dots, hyphens; 3-63), minus dots next to each other.
const BUCKET = /^(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const FOLDER_PREFIX = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}(\/[A-Za-z0-9][A-Za-z0-9_-]{0,62}){0,3}$/;

export const NAME_RULES = {
  collection: { pattern: COLLECTION, describe: 'a letter then up to 62 letters, digits, "_" or "-"' },
  id: { pattern: RECORD_ID, describe: 'a letter or digit then up to 127 letters, digits, "_" or "-"' },
  tenantId: { pattern: TIER_KEY, describe: 'a letter or digit then up to 62 letters, digits, "_" or "-"' },
  domain: { pattern: TIER_KEY, describe: 'a letter or digit then up to 62 letters, digits, "_" or "-"' },
  dbName: { pattern: DB_NAME, describe: 'a letter or digit then up to 62 letters, digits, "_" or "-"' },
  property: { pattern: PROPERTY_PATH, describe: 'identifiers joined by "." (at most 8 levels)' },
  bucket: { pattern: BUCKET, describe: 'an S3 bucket name: 3-63 lowercase letters, digits, "." or "-"' },
  folderPrefix: { pattern: FOLDER_PREFIX, describe: 'one to four "/"-separated segments of letters, digits, "_" or "-"' },
} as const;
export type NameKind = keyof typeof NAME_RULES;

const PROTOTYPE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export function isValidName(kind: NameKind, value: unknown): value is string {
  if (typeof value !== 'string' || !NAME_RULES[kind].pattern.test(value)) return false;
  // Property paths index into plain objects; these segments would reach the prototype instead.
  return kind !== 'property' || !value.split('.').some((segment) => PROTOTYPE_KEYS.has(segment));
}

/** Returns `value` when it is a valid name of that kind; throws a `ValidationError` naming the rule otherwise. */
export function assertName(kind: NameKind, value: unknown, label: string = kind): string {
  if (isValidName(kind, value)) return value;
  const shown =
    typeof value === 'string'
      ? value.length > 40
        ? `a ${value.length}-character string`
        : JSON.stringify(value)
      : value === undefined
        ? 'nothing'
        : `a ${value === null ? 'null' : typeof value}`;
  throw new ValidationError(`Invalid ${label}: got ${shown}; expected ${NAME_RULES[kind].describe}`, { path: label });
}

/**
 * A backup restore stages the snapshot in a database of its own and then swaps it in whole
 * (`core/jobs/backup.ts`). Its name starts with this prefix, which no dynamic tenant's database
 * may take, so that no job, sync or route ever treats a staging area as a tenant's data.
 */
export const RESTORE_STAGING_PREFIX = 'xronox_restore_';

/** The staging database of a restore of `dbName`: the prefix and a hash, a valid name on every backend whatever `dbName`'s length. */
export function restoreStagingDbName(dbName: string): string {
  return `${RESTORE_STAGING_PREFIX}${sha256Hex(dbName).slice(0, 24)}`;
}
