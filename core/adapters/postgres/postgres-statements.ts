import type { UploadRow } from '../../contracts/index-driver.js';
import type { HeadRow, HistoryRow, IndexedValue, VersionRow } from '../../contracts/index-store.js';
import { ValidationError } from '../../errors.js';
import type { PostgresSession } from './postgres-pool.js';

/**
 * What the index store's statements on PostgreSQL share: the session they run on, the column
 * lists they select, the rows they return and how those become the port's rows, and how values
 * are written. Table names come only from `tablesOf` (`postgres-schema.ts`); every value is a
 * bound parameter.
 */

/** What the index store's reads and transactions share: the pool, the schema prefix, the schemas known to exist. */
export interface IndexSession {
  readonly session: PostgresSession;
  readonly prefix: string;
  /** Schemas known to exist in this version (the driver never drops one). */
  readonly ready: Set<string>;
}

export interface HeadSqlRow {
  id: string;
  ov: number;
  cv: number;
  deleted: boolean;
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
  meta: Record<string, IndexedValue>;
  body: string;
  hash: string | null;
}

/** A history row as PostgreSQL returns it: the port's own shape. */
export type HistorySqlRow = HistoryRow;

export interface VersionSqlRow extends HistorySqlRow {
  body: string | null;
  meta: Record<string, IndexedValue>;
  hash: string;
}

export interface UploadSqlRow {
  coll: string;
  bucket: string;
  key: string;
  token: string;
  id: string;
  cleaning: boolean;
  age_ms: number;
}

export const HEAD_COLUMNS = 'id, ov, cv, deleted, created_at, updated_at, deleted_at, meta, body, hash';
export const HISTORY_COLUMNS = 'id, ov, cv, op, at, actor, reason, deleted, size, archived';
export const VERSION_COLUMNS = `${HISTORY_COLUMNS}, body, meta, hash`;
/** Every column of a version entry, as a copy of a collection takes it. */
export const STORED_VERSION_COLUMNS = `${VERSION_COLUMNS}, actor_id, actor_type`;
export const SORT_COLUMNS = { id: 'id', createdAt: 'created_at', updatedAt: 'updated_at' } as const;

/** `UploadSqlRow`'s columns (but `coll`) of the uploads table as `alias`: the age by the server's clock, never negative. */
export const uploadColumns = (alias: string): string =>
  `${alias}.bucket, ${alias}.key, ${alias}.token, ${alias}.id, ${alias}.cleaning,
   greatest(0, floor(extract(epoch FROM clock_timestamp() - ${alias}.stamped_at) * 1000))::float8 AS age_ms`;

/** The condition on `stamped_at` of rows stamped at least `$n` milliseconds ago (by the server's clock). */
export const stampedBefore = (param: string): string => `stamped_at <= clock_timestamp() - ${param}::float8 * interval '1 millisecond'`;

/**
 * Indexed values as jsonb text. PostgreSQL's text and jsonb cannot hold U+0000, so a value with
 * one is refused here, by name, rather than by the server.
 */
export function metaJson(meta: Readonly<Record<string, IndexedValue>>): string {
  for (const [key, value] of Object.entries(meta)) {
    if (typeof value === 'string' && value.includes('\0')) {
      throw new ValidationError(`Indexed property ${key} holds the character U+0000, which PostgreSQL cannot store`, { path: key });
    }
  }
  return JSON.stringify(meta);
}

export function toHead(r: HeadSqlRow): HeadRow {
  const { id, ov, cv, deleted, meta, body, hash } = r;
  return { id, ov, cv, deleted, createdAt: r.created_at, updatedAt: r.updated_at, deletedAt: r.deleted_at, meta, body, hash };
}

/** Only the history columns (a version row has more). */
export function toHistory({ id, ov, cv, op, at, actor, reason, deleted, size, archived }: HistorySqlRow): HistoryRow {
  return { id, ov, cv, op, at, actor, reason, deleted, size, archived };
}

export function toVersion(row: VersionSqlRow): VersionRow {
  return { ...toHistory(row), body: row.body, meta: row.meta, hash: row.hash };
}

export function toUpload(row: UploadSqlRow): UploadRow {
  return { id: row.id, token: row.token, cleaning: row.cleaning, ageMs: row.age_ms };
}
