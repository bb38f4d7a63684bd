import type { Actor, SortField, VersionOp, VersionRow } from '../contracts/index-store.js';
import type { Data } from './documents.js';
import type { Origin, ParentRef, SystemView } from './lineage.js';

export interface WriteResult {
  id: string;
  /** Object version: 0 at creation, +1 per write. */
  ov: number;
  /** Collection version: the collection's write counter when this write committed. */
  cv: number;
}
export interface CreateResult extends WriteResult {
  createdAt: string;
}
export interface UpdateResult extends WriteResult {
  updatedAt: string;
}
export interface DeleteResult extends WriteResult {
  deletedAt: string;
}
export interface RestoreResult extends UpdateResult {
  /** The version whose state was restored. */
  restoredFromOv: number;
}
export interface SmartInsertResult extends WriteResult {
  /** True when the record was created, false when an existing one was enriched. */
  created: boolean;
  at: string;
}

/** Lineage given at creation. */
export interface CreateOptions {
  /** The record this one was derived from (collection defaults to this one). */
  parentRecord?: { id: string; collection?: string; ov?: number };
  /** What produced it: a label, or `{ type, id }`. */
  origin?: string | Origin;
}

/** A record as read back. */
export interface XronoxRecord<T extends Data = Data> {
  id: string;
  ov: number;
  cv: number;
  data: T;
  createdAt: string;
  updatedAt: string;
  deletedAt: string | null;
  deleted: boolean;
  /** Engine bookkeeping: times, lineage, and the functions that enriched the record. */
  _system: SystemView;
}

/** One version of a record, with who, when and why. */
export interface VersionRecord<T extends Data = Data> extends XronoxRecord<T> {
  op: VersionOp;
  at: string;
  actor: Actor;
  reason: string | null;
  functionId: string | null;
}

/** One line of a record's history (no payload: read it with `getVersion`); `archived` says whether the payload lives in the versions bucket yet. */
export type HistoryEntry = Pick<VersionRow, 'ov' | 'cv' | 'op' | 'at' | 'actor' | 'reason' | 'deleted' | 'size' | 'archived'>;

/** A change by one actor: which record, which version. */
export interface ActorChange extends HistoryEntry {
  id: string;
}

export interface ListOptions {
  filter?: Record<string, unknown>;
  /** Page size, 1 to 1000. Default 50. */
  limit?: number;
  /** Id of the last record of the previous page. */
  afterId?: string;
  /** One of `id`, `createdAt`, `updatedAt`, ascending (1) or descending (-1). Default `{ id: 1 }`. */
  sort?: Partial<Record<SortField, 1 | -1>>;
  includeDeleted?: boolean;
  projection?: string[];
}

export interface ListResult<T extends Data = Data> {
  items: XronoxRecord<T>[];
  /** Pass as `afterId` for the next page; `null` on the last page. */
  nextAfterId: string | null;
}

export interface QueryOptions {
  /** The point in time to answer for (versioned types). Default: now, fixed for every page. */
  at?: string | Date;
  /** Page size, 1 to 1000. Default 50. */
  limit?: number;
  /** From the previous page; it carries the point in time, so pages never mix two states. */
  pageToken?: string;
  /** `{ id: 1 }` (default) or `{ id: -1 }`. */
  sort?: { id: 1 | -1 };
  projection?: string[];
  includeDeleted?: boolean;
}

export interface QueryResult<T extends Data = Data> {
  items: XronoxRecord<T>[];
  /** The point in time the answer is for (versioned types). */
  at: string | null;
  nextPageToken: string | null;
}

export interface EntityMapping {
  /** Property of the record holding the entity (an object) when inserting, and its link once stored. */
  property: string;
  /** Collection the entity lives in (same database). */
  collection: string;
  /** Indexed property of the entity that identifies it (e.g. `email`). */
  keyProperty: string;
}

export interface CollectionRestoreReport {
  dryRun: boolean;
  target: { cv: number } | { at: string };
  restored: number;
  revived: number;
  deleted: number;
  unchanged: number;
  changes: Array<{ id: string; action: 'restore' | 'revive' | 'delete'; fromOv: number; targetOv: number | null }>;
}

export type { ParentRef, Origin };
