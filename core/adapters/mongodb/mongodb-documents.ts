import type { ObjectId } from 'mongodb';
import type {
  Actor,
  CounterDelta,
  HeadRow,
  IndexedValue,
  NewHead,
  PendingBlob,
  RecordWrite,
  UploadRef,
  VersionOp,
  VersionRow,
  HistoryRow,
} from '../../contracts/index-store.js';
import { decodeMeta, encodeMeta } from './mongodb-filter.js';
import { versionId } from './mongodb-layout.js';

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
  /**
   * A committed write whose side effects (version entry, outbox, queued objects, counters,
   * claim release, purge) are not all applied yet. Only the standalone protocol sets it; see
   * `mongodb-protocol.ts`.
   */
  pending?: PendingWrite;
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

export interface PendingWrite {
  /** Unique per write: makes counter increments idempotent when a roll-forward is repeated. */
  opId: string;
  /**
   * Where the record joins the sync outbox if it is not queued yet. An ObjectId: ordered by
   * creation within a process (its counter) and by second across processes, which gives
   * "oldest first" without relying on millisecond timestamps.
   */
  queueOrder: ObjectId;
  ov: number;
  cv: number;
  since: Date;
  /** `true` for a hard delete: the head is removed once the record's entries are gone. */
  purge: boolean;
  /** `true` when the write leaves the record deleted (or removed): its claims are released. */
  releaseClaims: boolean;
  version: VersionDoc | null;
  blobs: PendingBlobDoc[];
  /** Upload intents the write took (standalone protocol: removed by the roll-forward); absent in heads written before them. */
  uploads?: UploadRef[];
  counters: CounterDelta[];
  countersApplied: boolean;
}

export interface PendingBlobDoc {
  _id: string;
  coll: string;
  id: string;
  /** The cv of the write that queued it: a purge removes only entries of the purged incarnation. */
  cv: number;
  bucket: string;
  key: string;
  contentType: string;
  body: Uint8Array;
}

export function toHeadDoc(id: string, head: NewHead, cv: number): HeadDoc {
  return {
    _id: id,
    ov: head.ov,
    cv,
    deleted: head.deleted,
    createdAt: head.createdAt,
    updatedAt: head.updatedAt,
    deletedAt: head.deletedAt,
    meta: encodeMeta(head.meta),
    body: head.body,
    hash: head.hash,
  };
}

export function toVersionDoc(write: RecordWrite, cv: number): VersionDoc | null {
  const v = write.version;
  const head = write.head;
  if (!v || !head) return null;
  return {
    _id: versionId(write.id, head.ov),
    id: write.id,
    ov: head.ov,
    cv,
    op: v.op,
    at: v.at,
    actor: v.actor,
    actorId: typeof v.actor === 'string' ? v.actor : v.actor.identifier,
    actorType: typeof v.actor === 'string' ? null : v.actor.type,
    reason: v.reason,
    deleted: v.deleted,
    size: Buffer.byteLength(v.body, 'utf8'),
    body: v.body,
    archived: false,
    meta: encodeMeta(head.meta),
    hash: v.hash,
  };
}

/** A version entry exactly as a backup holds it (cv, archived flag and body kept). */
export function versionDocOfRow(row: VersionRow): VersionDoc {
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

export function headRowOf(doc: HeadDoc): HeadRow {
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

export const HISTORY_PROJECTION = { _id: 0, body: 0, meta: 0, hash: 0 } as const;

export function pendingBlobDoc(collection: string, id: string, cv: number, blob: PendingBlob, docId: string): PendingBlobDoc {
  return { _id: docId, coll: collection, id, cv, bucket: blob.bucket, key: blob.key, contentType: blob.contentType, body: blob.body };
}

/** Binary fields come back from the driver as BSON `Binary`; the port speaks `Uint8Array`. */
export function pendingBlobOf(doc: { bucket: string; key: string; contentType: string; body: Uint8Array | { buffer: Uint8Array } }): PendingBlob {
  const body = doc.body instanceof Uint8Array ? doc.body : doc.body.buffer;
  return { bucket: doc.bucket, key: doc.key, contentType: doc.contentType, body: new Uint8Array(body) };
}
