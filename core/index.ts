/**
 * Xronox: the public library API. Named exports only; `test/unit/exports.test.ts` pins this list.
 */
export { initXronox, type InitOptions } from './xronox.js';
export { Xronox, type AdapterFactories, type CounterTotalsRequest } from './engine/xronox.js';
export {
  Collection,
  type CollectionRestoreReport,
  type CreateResult,
  type DeleteResult,
  type HistoryEntry,
  type ListOptions,
  type ListResult,
  type RestoreResult,
  type UpdateResult,
  type VersionRecord,
  type WriteResult,
  type XronoxRecord,
} from './engine/collection.js';
export type { Data, RecordDocument } from './engine/documents.js';
export type { SyncReport } from './engine/blob-sync.js';

export { loadConfig, type XronoxConfig } from './config/load.js';
export {
  BLOB_KINDS,
  DATABASE_TYPES,
  TIERS,
  configSchema,
  type BlobKind,
  type DatabaseType,
  type Tier,
  type XronoxConfigInput,
} from './config/schema.js';
export { XronoxConfigBuilder } from './config/builder.js';
export { createDevConfig, createMinimalConfig, createProductionConfig } from './config/presets.js';

export { Router, type BlobLocation, type Route, type RouteRequest } from './routing/router.js';
export { STORAGE_POLICIES, type StoragePolicy } from './routing/policy.js';

export type { BlobStore, BlobInfo, BlobListing } from './contracts/blob-store.js';
export type { IndexStore, Namespace, HeadRow, VersionRow, CommitBatch, CommitResult } from './contracts/index-store.js';
export { FILTER_OPERATORS } from './contracts/filter.js';

export {
  ClosedError,
  ConfigError,
  ConflictError,
  ERROR_CODES,
  NotFoundError,
  RouteNotFoundError,
  StorageError,
  TenantAccessError,
  ValidationError,
  VersionConflictError,
  XronoxError,
  type ConfigIssue,
  type ErrorCode,
} from './errors.js';
