import type { BlobKind, DatabaseType, Tier } from './schema.js';

/**
 * The database-type matrix of the storage architecture: what each type stores and where.
 * Everything type-specific in routing and in the engine reads this table; nothing tests a type
 * by name.
 */
export interface StoragePolicy {
  /** Keeps an immutable version index and writes `versions/` objects. */
  readonly versioned: boolean;
  /** Records may only be created, never updated or deleted. */
  readonly appendOnly: boolean;
  /** The kinds of blob data this type may write. */
  readonly blobKinds: readonly BlobKind[];
  /** Tiers at which this type may be configured. */
  readonly tiers: readonly Tier[];
  /** Whether S3 is required, optional or unused for this type. */
  readonly s3: 'yes' | 'optional';
  /**
   * `required`: the type keeps objects (current records, versions) that its database does not,
   * so it needs a spaces connection or `localStorage`. `optional`: its data lives whole in its
   * (document) database, and object storage only receives what it offloads (large payloads) and
   * its backups: without any, nothing is offloaded and the backup job skips it.
   */
  readonly objectStorage: 'required' | 'optional';
}

const ALL_TIERS: readonly Tier[] = ['generic', 'domain', 'tenant'];
const STATIC_KINDS: readonly BlobKind[] = ['records', 'content', 'backups'];

export const STORAGE_POLICIES: Readonly<Record<DatabaseType, StoragePolicy>> = {
  runtime: { versioned: true, appendOnly: false, blobKinds: ['records', 'versions', 'content', 'backups'], tiers: ['tenant'], s3: 'yes', objectStorage: 'required' },
  knowledge: { versioned: false, appendOnly: false, blobKinds: STATIC_KINDS, tiers: ALL_TIERS, s3: 'yes', objectStorage: 'required' },
  metadata: { versioned: false, appendOnly: false, blobKinds: STATIC_KINDS, tiers: ALL_TIERS, s3: 'yes', objectStorage: 'required' },
  messaging: { versioned: false, appendOnly: false, blobKinds: STATIC_KINDS, tiers: ALL_TIERS, s3: 'yes', objectStorage: 'optional' },
  identities: { versioned: false, appendOnly: false, blobKinds: STATIC_KINDS, tiers: ALL_TIERS, s3: 'yes', objectStorage: 'optional' },
  logs: { versioned: false, appendOnly: true, blobKinds: ['records', 'content'], tiers: ALL_TIERS, s3: 'optional', objectStorage: 'required' },
};

/** The policy in force for a type, given the global `versioning.enabled` switch. */
export function policyFor(type: DatabaseType, versioningEnabled: boolean): StoragePolicy {
  const base = STORAGE_POLICIES[type];
  if (versioningEnabled || !base.versioned) return base;
  return { ...base, versioned: false, blobKinds: base.blobKinds.filter((k) => k !== 'versions') };
}
