import type { ObjectId } from 'mongodb';
import type { HeadWrite } from '../../contracts/index-driver.js';
import type { Actor, HeadRow, HistoryRow, IndexedValue, PendingBlob, VersionOp, VersionRow } from '../../contracts/index-store.js';
import { StorageError } from '../../errors.js';
import { type CollRef, pendingBlobId, versionId } from './mongodb-layout.js';
import { decodeMeta, encodeMeta } from './mongodb-meta.js';

/** The documents of the MongoDB index store (`mongodb-layout.ts` says where each lives). */

/** A record's latest state in `{c}_head`. */
export interface HeadDoc {
  _id: string;
  ov: number;
  cv: number;
  deleted: boolean;
  createdAt: string;
  updatedAt: string;
  deletedAt: string | null;
  meta: Record<string, IndexedValue>;
  body: string;
  hash: string | null;
  /** Only in data an older version wrote on a standalone server and left mid-write: refused (`leftoverWrite`). */
  pending?: unknown;
}

/** One entry of `{c}_ver`. `_id` is `versionId(id, ov)`. */
export interface VersionDoc {
  _id: string;
  id: string;
  ov: number;
  cv: number;
  op: VersionOp;
  at: string;
  actor: Actor;
  /** The actor's identifier (the name itself for a plain-name actor): `changesBy` looks it up. */
  actorId: string;
  actorType: string | null;
  reason: string | null;
  deleted: boolean;
  size: number;
  body: string | null;
  archived: boolean;
  meta: Record<string, IndexedValue>;
  hash: string;
}

/** `xronox_sync_outbox`: `_id` is `recordKey(collection, id)`. */
export interface OutboxDoc {
  _id: string;
  coll: string;
  id: string;
  seq: number;
  /** When the record joined the outbox (server time), and an ObjectId older versions sorted on. */
  queuedAt: Date;
  order: ObjectId;
}

export interface DeadLetterDoc {
  _id: string;
  coll: string;
  id: string;
  reason: string;
  failedAt: string;
}

export interface PendingBlobDoc {
  _id: string;
  coll: string;
  id: string;
  bucket: string;
  key: string;
  contentType: string;
  body: Uint8Array;
}

export interface ClaimDoc {
  _id: string;
  id: string;
}

export interface CounterDoc {
  _id: string;
  /** The `cv` document: the last collection version plus one. */
  seq?: number;
  counts?: Record<string, number>;
}

export interface LockDoc {
  _id: string;
  owner: string;
  /** Server time (`$$NOW` + lease) at which the lease lapses. */
  expiresAt: Date;
}

/**
 * `xronox_content_uploads`: one document per object key (`uploadDocId`), holding its upload
 * intents or its cleanup mark, never both; stamps are the server's clock.
 */
export interface UploadDoc {
  _id: string;
  coll: string;
  /** The record of the latest intent (documents of older versions carry no `id` per intent). */
  id: string;
  bucket: string;
  key: string;
  intents: Array<{ token: string; at: Date; id?: string }>;
  cleaning?: { token: string; at: Date };
}

/**
 * A head an older version's standalone protocol left mid-write (`head.pending`): its version
 * entry, outbox mark or counters may be missing, so serving it would be wrong, and this version
 * has no roll-forward. Refused, naming where it is and how to finish it.
 */
export function leftoverWrite(heads: CollRef, id: string): StorageError {
  return new StorageError(
    'mongodb',
    'read head',
    undefined,
    `Record "${id}" in collection "${heads.name}" of database "${heads.db}" has an unfinished write of the standalone protocol ` +
      '(a "pending" field), which this version no longer completes. Run repair() once with the previous Xronox version and ' +
      'transactions.enabled: false against this database (it rolls such writes forward), then start this version again.',
  );
}

export function headDoc(id: string, head: HeadWrite): HeadDoc {
  return {
    _id: id,
    ov: head.ov,
    cv: head.cv,
    deleted: head.deleted,
    createdAt: head.createdAt,
    updatedAt: head.updatedAt,
    deletedAt: head.deletedAt,
    meta: encodeMeta(head.meta),
    body: head.body,
    hash: head.hash,
  };
}

/** The head a document holds; a leftover of the standalone protocol is refused (`leftoverWrite`). */
export function headRowOf(doc: HeadDoc, heads: CollRef): HeadRow {
  if (doc.pending !== undefined) throw leftoverWrite(heads, doc._id);
  return {
    id: doc._id,
    ov: doc.ov,
    cv: doc.cv,
    deleted: doc.deleted,
    createdAt: doc.createdAt,
    updatedAt: doc.updatedAt,
    deletedAt: doc.deletedAt,
    meta: decodeMeta(doc.meta),
    body: doc.body,
    hash: doc.hash,
  };
}

/** A version entry exactly as given (cv, archived flag and body kept). */
export function versionDoc(row: VersionRow): VersionDoc {
  return {
    _id: versionId(row.id, row.ov),
    id: row.id,
    ov: row.ov,
    cv: row.cv,
    op: row.op,
    at: row.at,
    actor: row.actor,
    actorId: typeof row.actor === 'string' ? row.actor : row.actor.identifier,
    actorType: typeof row.actor === 'string' ? null : row.actor.type,
    reason: row.reason,
    deleted: row.deleted,
    size: row.size,
    body: row.body,
    archived: row.archived,
    meta: encodeMeta(row.meta),
    hash: row.hash,
  };
}

export function versionRowOf(doc: VersionDoc): VersionRow {
  return { ...historyRowOf(doc), body: doc.body, meta: decodeMeta(doc.meta), hash: doc.hash };
}

/** The fields of a history page, which `HISTORY_PROJECTION` reads without the version's payloads. */
export function historyRowOf(doc: Pick<VersionDoc, keyof HistoryRow>): HistoryRow {
  return {
    id: doc.id,
    ov: doc.ov,
    cv: doc.cv,
    op: doc.op,
    at: doc.at,
    actor: doc.actor,
    reason: doc.reason,
    deleted: doc.deleted,
    size: doc.size,
    archived: doc.archived,
  };
}

/** Exactly a `HistoryRow`'s fields: a page of history carries no body, meta or hash over the wire. */
export const HISTORY_PROJECTION = { _id: 0, id: 1, ov: 1, cv: 1, op: 1, at: 1, actor: 1, reason: 1, deleted: 1, size: 1, archived: 1 } as const satisfies Record<keyof HistoryRow | '_id', 0 | 1>;

export function pendingBlobDoc(collection: string, id: string, blob: PendingBlob): PendingBlobDoc {
  return { _id: pendingBlobId(collection, blob.bucket, blob.key), coll: collection, id, bucket: blob.bucket, key: blob.key, contentType: blob.contentType, body: blob.body };
}

/** Binary fields come back from the driver as BSON `Binary`; the port speaks `Uint8Array`. */
export function pendingBlobOf(doc: { bucket: string; key: string; contentType: string; body: Uint8Array | { buffer: Uint8Array } }): PendingBlob {
  const body = doc.body instanceof Uint8Array ? doc.body : doc.body.buffer;
  return { bucket: doc.bucket, key: doc.key, contentType: doc.contentType, body: new Uint8Array(body) };
}
