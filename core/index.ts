/**
 * Xronox: the public library API. Named exports only; `test/unit/exports.test.ts` pins this list.
 */
export { initXronox, type InitOptions } from './xronox.js';
export { defaultAdapters } from './adapters/registry.js';
export type { AdapterMembers, AdapterSource } from './store/guard.js';
export { Xronox, type AdapterFactories, type AnyCollection, type BackgroundErrorContext, type BackgroundErrorHandler, type CounterTotalsRequest, type CounterWindowsOptions, type HealthReport, type ProbeResult, type RepairReport } from './xronox.js';
export type { UploadSweepReport } from './engine/content-uploads.js';
export { Collection, MAX_CREATE_BATCH } from './engine/collection.js';
export type {
  ActorChange,
  CollectionRestoreReport,
  CreateOptions,
  CreateResult,
  DeleteResult,
  EntityMapping,
  HistoryEntry,
  ListOptions,
  ListResult,
  QueryOptions,
  QueryResult,
  RestoreResult,
  SmartInsertResult,
  UpdateResult,
  VersionRecord,
  WriteResult,
  XronoxRecord,
} from './engine/collection-types.js';
export type { Origin, ParentRef, SystemView } from './engine/lineage.js';
export type { CollectionVerifyReport, VerifyReport } from './engine/hash-chain.js';
export type { TieredReadOptions, TieredReadResult } from './engine/tiered-read.js';
export type { Data, RecordDocument } from './engine/documents.js';
export type { SyncReport } from './engine/blob-sync.js';
export type { JobTarget } from './xronox.js';

export { archiveObjects, restoreBackup, runJob, SCHEDULED_JOBS, type ObjectRef, type ScheduledJob } from './jobs/run.js';
export type { JobProgress, JobReport, RunOptions } from './jobs/job.js';
export { fanOutJob, MAX_CONTINUATIONS, parseJobTask, runJobTask, type FanOutReport, type JobTask, type TaskOutcome } from './jobs/fanout.js';
export type { JobQueue } from './contracts/job-queue.js';
export { SqsJobQueue, type SqsJobQueueOptions } from './adapters/sqs/sqs-job-queue.js';
export { migrateDatabases, type MigrateOptions, type MigrationReport } from './jobs/migrate.js';

export { DocumentCollection, type FindDocumentsOptions } from './domains/documents/document-collection.js';
export {
  MESSAGING_COLLECTIONS,
  MESSAGING_SPECS,
  MessagingCollection,
  type MessagingCollectionName,
  type MessagingSettings,
} from './domains/messaging/messaging.js';
export {
  IDENTITY_COLLECTIONS,
  IDENTITY_EVENTS_COLLECTION,
  IDENTITY_SPECS,
  IdentitiesCollection,
  type IdentityChangeEvent,
  type IdentityChangeOptions,
  type IdentityCollectionName,
} from './domains/identities/identities.js';
export { readLogRange, type LogRangeOptions } from './domains/logs/logs.js';
export { DOCUMENT_DATABASE_TYPES, isDocumentDatabaseType, type DocumentDatabaseType, type RecordDatabaseType, type RecordRouteRequest } from './domains/open.js';
export {
  ensureDocumentDatabase,
  expireDocumentDatabase,
  expireDocuments,
  migrateDocuments,
  type DocumentDatabaseReport,
  type DocumentMaintenanceOptions,
} from './domains/maintenance.js';

export { loadConfig, type XronoxConfig } from './config/load.js';
export { CONFIG_FILE_NAMES, findConfigFile, loadConfigFile } from './config/file.js';
export { maskConfig, maskSecretsIn } from './config/secrets.js';
export {
  API_ROLES,
  apiCorsSchema,
  apiKeySchema,
  BLOB_KINDS,
  DATABASE_TYPES,
  TIERS,
  configSchema,
  type ApiConfig,
  type ApiCorsConfig,
  type ApiJwtConfig,
  type ApiRole,
  type BlobKind,
  type DatabaseType,
  type Tier,
  type XronoxConfigInput,
} from './config/schema.js';
export { XronoxConfigBuilder } from './config/builder.js';
export { createDevConfig, createMinimalConfig, createProductionConfig } from './config/presets.js';

export { Router, type BlobLocation, type Route, type RouteRequest } from './routing/router.js';
export { STORAGE_POLICIES, type StoragePolicy } from './config/policy.js';

export type { BlobStore, BlobInfo, BlobListing } from './contracts/blob-store.js';
export type { Actor, ActorType, IndexStore, Namespace, HeadRow, VersionRow, HistoryRow, CommitBatch, CommitResult, CounterDelta, CounterWindow, CounterWindowBounds, CounterWindowGranularity, CounterWindowQuery, StaleUpload, UploadIntent, UploadRef } from './contracts/index-store.js';
export { ACTOR_TYPES, VERSION_OPS } from './contracts/index-store.js';
export { DATE_KEY, toDocumentJson } from './contracts/document-store.js';
export { parseInstant } from './foundation/clock.js';
export { NAME_RULES, type NameKind } from './foundation/names.js';
export { FILTER_OPERATORS } from './foundation/filter-tree.js';
export type { CollectionSpec, Doc, DocFilter, DocScalar, DocValue, DocumentStore, IndexInfo, IndexKey, IndexSpec } from './contracts/document-store.js';

export {
  AppendOnlyError,
  ClosedError,
  ConfigError,
  ConflictError,
  DuplicateKeyError,
  ERROR_CODES,
  NotFoundError,
  RestoreTargetNotEmptyError,
  RouteNotFoundError,
  StorageError,
  TamperError,
  TenantAccessError,
  ValidationError,
  VersionConflictError,
  XronoxError,
  type ConfigIssue,
  type ErrorCode,
} from './errors.js';
