import type { XronoxConfig } from '../config/load.js';
import { BLOB_KINDS, DATABASE_TYPES, type BlobKind, type CollectionMapConfig, type DatabaseType, type Tier, TIERS } from '../config/schema.js';
import { RouteNotFoundError, ValidationError } from '../errors.js';
import { assertName } from './names.js';
import { policyFor, type StoragePolicy } from './policy.js';

/** What a caller asks for: `xronox.with({ databaseType, tier, tenantId | domain, collection })`. */
export interface RouteRequest {
  databaseType: DatabaseType;
  tier: Tier;
  tenantId?: string;
  domain?: string;
  collection: string;
}

/** Where one kind of blob data of a database goes. */
export interface BlobLocation {
  readonly bucket: string;
  /** Folder prefix inside the bucket, without slashes at either end (`records`). */
  readonly prefix: string;
}

/** Everything the engine needs to serve one collection of one database. */
export interface Route {
  readonly databaseType: DatabaseType;
  readonly tier: Tier;
  readonly tenantId: string | undefined;
  readonly domain: string | undefined;
  readonly collection: string;
  /** Name of the `dbConnections` entry holding the index. */
  readonly dbConnRef: string;
  readonly dbName: string;
  /** Database that holds this collection's counter totals. */
  readonly analyticsDbName: string;
  /** `spacesConnections` entry for blobs, or `null` for the local filesystem. */
  readonly spaceConnRef: string | null;
  /** One location per blob kind this database type writes; kinds it never writes are absent. */
  readonly blobs: Readonly<Partial<Record<BlobKind, BlobLocation>>>;
  readonly policy: StoragePolicy;
  readonly collectionMap: CollectionMapConfig | undefined;
  /** Human-readable route, for errors and logs: `runtime/tenant:acme/orders`. */
  readonly label: string;
}

type Entry = {
  dbConnRef: string;
  spaceConnRef?: string | undefined;
  dbName: string;
  tenantId?: string;
  domain?: string;
  analyticsDbName?: string | undefined;
} & Partial<Record<`${BlobKind}Bucket`, string | undefined>>;

/** Resolves route requests against a loaded config. Pure and cheap; safe to call per request. */
export class Router {
  readonly #config: XronoxConfig;

  constructor(config: XronoxConfig) {
    this.#config = config;
  }

  resolve(request: RouteRequest): Route {
    if (typeof request !== 'object' || request === null) throw new ValidationError('with() takes { databaseType, tier, collection, ... }');
    const { databaseType, tier } = request;
    if (!DATABASE_TYPES.includes(databaseType)) {
      throw new ValidationError(`Unknown databaseType ${JSON.stringify(databaseType)}; expected one of ${DATABASE_TYPES.join(', ')}`, {
        path: 'databaseType',
      });
    }
    if (!TIERS.includes(tier)) {
      throw new ValidationError(`Unknown tier ${JSON.stringify(tier)}; expected one of ${TIERS.join(', ')}`, { path: 'tier' });
    }
    const collection = assertName('collection', request.collection);
    const entry = this.#findEntry(request);
    const policy = policyFor(databaseType, this.#config.versioning.enabled);
    return {
      databaseType,
      tier,
      tenantId: tier === 'tenant' ? entry.tenantId : undefined,
      domain: tier === 'domain' ? entry.domain : undefined,
      collection,
      dbConnRef: entry.dbConnRef,
      dbName: entry.dbName,
      analyticsDbName: entry.analyticsDbName ?? entry.dbName,
      spaceConnRef: entry.spaceConnRef ?? null,
      blobs: this.#blobLocations(entry, policy),
      policy,
      collectionMap: Object.hasOwn(this.#config.collectionMaps, collection) ? this.#config.collectionMaps[collection] : undefined,
      label: `${databaseType}/${tier}${tier === 'tenant' ? `:${entry.tenantId}` : tier === 'domain' ? `:${entry.domain}` : ''}/${collection}`,
    };
  }

  /** Every configured database, for jobs that walk all of them (repair, backups). */
  databases(): Array<Omit<Route, 'collection' | 'collectionMap' | 'label'>> {
    const out: Array<Omit<Route, 'collection' | 'collectionMap' | 'label'>> = [];
    for (const databaseType of DATABASE_TYPES) {
      const section = this.#config.databases[databaseType] as
        | { genericDatabase?: Entry; domainsDatabases?: Entry[]; tenantDatabases?: Entry[] }
        | undefined;
      if (!section) continue;
      const policy = policyFor(databaseType, this.#config.versioning.enabled);
      const add = (tier: Tier, entry: Entry) =>
        out.push({
          databaseType,
          tier,
          tenantId: entry.tenantId,
          domain: entry.domain,
          dbConnRef: entry.dbConnRef,
          dbName: entry.dbName,
          analyticsDbName: entry.analyticsDbName ?? entry.dbName,
          spaceConnRef: entry.spaceConnRef ?? null,
          blobs: this.#blobLocations(entry, policy),
          policy,
        });
      if (section.genericDatabase) add('generic', section.genericDatabase);
      for (const e of section.domainsDatabases ?? []) add('domain', e);
      for (const e of section.tenantDatabases ?? []) add('tenant', e);
    }
    return out;
  }

  #findEntry(request: RouteRequest): Entry {
    const { databaseType, tier } = request;
    const section = this.#config.databases[databaseType] as
      | { genericDatabase?: Entry; domainsDatabases?: Entry[]; tenantDatabases?: Entry[] }
      | undefined;
    if (tier === 'generic') {
      if (request.tenantId !== undefined || request.domain !== undefined) {
        throw new ValidationError('The generic tier takes neither tenantId nor domain');
      }
      const entry = section?.genericDatabase;
      if (!entry) throw new RouteNotFoundError(`No generic ${databaseType} database is configured${available(section)}`);
      return entry;
    }
    if (tier === 'domain') {
      if (request.tenantId !== undefined) throw new ValidationError('The domain tier takes a domain, not a tenantId');
      const domain = assertName('domain', request.domain);
      const entry = section?.domainsDatabases?.find((e) => e.domain === domain);
      if (!entry) throw new RouteNotFoundError(`No ${databaseType} database is configured for domain "${domain}"${available(section)}`);
      return entry;
    }
    if (request.domain !== undefined) throw new ValidationError('The tenant tier takes a tenantId, not a domain');
    const tenantId = assertName('tenantId', request.tenantId);
    const entry = section?.tenantDatabases?.find((e) => e.tenantId === tenantId);
    if (!entry) throw new RouteNotFoundError(`No ${databaseType} database is configured for tenant "${tenantId}"${available(section)}`);
    return entry;
  }

  #blobLocations(entry: Entry, policy: StoragePolicy): Partial<Record<BlobKind, BlobLocation>> {
    const conn = entry.spaceConnRef ? this.#config.spacesConnections[entry.spaceConnRef] : undefined;
    const out: Partial<Record<BlobKind, BlobLocation>> = {};
    for (const kind of BLOB_KINDS) {
      if (!policy.blobKinds.includes(kind)) continue;
      // Per-database buckets win over the connection's; the local filesystem defaults to one
      // folder per database so tenants never share a directory.
      const bucket = entry[`${kind}Bucket`] ?? conn?.buckets?.[kind] ?? (conn ? undefined : entry.dbName);
      if (bucket === undefined) continue;
      out[kind] = { bucket, prefix: conn?.folderPrefixes?.[kind] ?? kind };
    }
    return out;
  }
}

function available(section: { genericDatabase?: Entry; domainsDatabases?: Entry[]; tenantDatabases?: Entry[] } | undefined): string {
  if (!section) return ' (this database type is not configured at all)';
  const parts: string[] = [];
  if (section.genericDatabase) parts.push('generic');
  for (const e of section.domainsDatabases ?? []) parts.push(`domain "${e.domain}"`);
  for (const e of section.tenantDatabases ?? []) parts.push(`tenant "${e.tenantId}"`);
  if (parts.length === 0) return ' (none are configured)';
  const shown = parts.slice(0, 10).join(', ');
  return ` (configured: ${shown}${parts.length > 10 ? `, and ${parts.length - 10} more` : ''})`;
}
