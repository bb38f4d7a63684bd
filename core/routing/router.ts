import {
  acceptsTenant,
  compileTenantPattern,
  DEFAULT_DYNAMIC_CACHE_SIZE,
  renderTemplate,
  templateMatcher,
  tenantRuleViolation,
} from '../config/dynamic-tenants.js';
import type { XronoxConfig } from '../config/load.js';
import {
  BLOB_KINDS,
  DATABASE_TYPES,
  type BlobKind,
  type CollectionMapConfig,
  type DatabaseType,
  type DynamicTenantsConfig,
  type Tier,
  TIERS,
} from '../config/schema.js';
import { RouteNotFoundError, ValidationError } from '../errors.js';
import { assertName, isValidName, NAME_RULES, RESTORE_STAGING_PREFIX } from '../foundation/names.js';
import { policyFor, type StoragePolicy } from '../config/policy.js';

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

type Section = { genericDatabase?: Entry; domainsDatabases?: Entry[]; tenantDatabases?: Entry[]; dynamicTenants?: DynamicTenantsConfig };

/** A database as `databases()` lists it: a route without the collection. */
export type DatabaseRoute = Omit<Route, 'collection' | 'collectionMap' | 'label'>;

/** One `dynamicTenants` block, ready to resolve tenants. */
interface DynamicSection {
  readonly type: DatabaseType;
  readonly settings: DynamicTenantsConfig;
  readonly pattern: RegExp | undefined;
  /** Resolved tenants, least recently used first. */
  readonly cache: LruCache<Entry>;
}

/**
 * A template of dynamic tenants, kept under the store its names live in: `db` + connection (index
 * databases), `local` (localStorage folders) or `s3` + connection (buckets). Names of configured
 * databases are kept under the same keys in `#takenNames`.
 */
interface TemplateClaim {
  readonly section: DynamicSection;
  readonly field: 'dbNameTemplate' | 'analyticsDbNameTemplate' | 'bucketTemplate';
  readonly matcher: RegExp;
}

/**
 * Resolves route requests against a loaded config. Cheap; safe to call per request.
 *
 * Tenants of a type with `dynamicTenants.enabled` need no config entry: a valid tenant id gets
 * the databases and bucket its templates name, built into the same route a configured entry
 * gives. Resolved dynamic tenants are kept in a bounded LRU cache per type (`cacheSize`, default
 * 1000). A dynamic tenant is refused when one of its names is that of another database: a
 * configured one on the same connection (or localStorage folder, or bucket), or one that
 * another template could give another tenant.
 */
export class Router {
  readonly #config: XronoxConfig;
  readonly #configured = new Map<string, Entry>();
  readonly #dynamic = new Map<DatabaseType, DynamicSection>();
  /** Names of configured databases per store key, with a label of their owner. */
  readonly #takenNames = new Map<string, Map<string, string>>();
  readonly #templateClaims = new Map<string, TemplateClaim[]>();

  constructor(config: XronoxConfig) {
    this.#config = config;
    for (const databaseType of DATABASE_TYPES) {
      const section = this.#section(databaseType);
      for (const entry of section?.tenantDatabases ?? []) this.#configured.set(`${databaseType}\u0000${entry.tenantId}`, entry);
      const settings = section?.dynamicTenants;
      if (settings) {
        this.#dynamic.set(databaseType, {
          type: databaseType,
          settings,
          pattern: compileTenantPattern(settings),
          cache: new LruCache(settings.cacheSize ?? DEFAULT_DYNAMIC_CACHE_SIZE),
        });
      }
    }
    for (const db of this.databases()) {
      const label = `the configured ${db.databaseType}${db.tier === 'tenant' ? ` database of tenant "${db.tenantId}"` : db.tier === 'domain' ? ` database of domain "${db.domain}"` : ' generic database'}`;
      this.#take(`db\u0000${db.dbConnRef}`, db.dbName, label);
      this.#take(`db\u0000${db.dbConnRef}`, db.analyticsDbName, `${label} (as its analytics database)`);
      for (const loc of Object.values(db.blobs)) this.#take(blobStoreKey(db.spaceConnRef), loc.bucket, label);
    }
    for (const [ref, conn] of Object.entries(config.spacesConnections)) {
      for (const bucket of Object.values(conn.buckets ?? {})) {
        // Stryker disable next-line ConditionalExpression: a loaded config holds only the buckets it names, so there is no empty one to skip; taking one would match no tenant's bucket.
        if (bucket) this.#take(blobStoreKey(ref), bucket, `a bucket of spacesConnections.${ref}, shared by its databases`);
      }
    }
    for (const section of this.#dynamic.values()) {
      if (!section.settings.enabled) continue;
      const { dbConnRef, spaceConnRef, dbNameTemplate, analyticsDbNameTemplate, bucketTemplate } = section.settings;
      this.#claim(`db\u0000${dbConnRef}`, section, 'dbNameTemplate', dbNameTemplate);
      if (analyticsDbNameTemplate !== undefined) this.#claim(`db\u0000${dbConnRef}`, section, 'analyticsDbNameTemplate', analyticsDbNameTemplate);
      if (bucketTemplate !== undefined) this.#claim(blobStoreKey(spaceConnRef ?? null), section, 'bucketTemplate', bucketTemplate);
      // In localStorage the default folder is named like the database.
      else if (!spaceConnRef && this.#localStorage) this.#claim(blobStoreKey(null), section, 'dbNameTemplate', dbNameTemplate);
    }
  }

  /** How many dynamic tenants are cached now, over every database type (each type is bounded by its `cacheSize`). */
  get dynamicCacheSize(): number {
    let size = 0;
    for (const section of this.#dynamic.values()) size += section.cache.size;
    return size;
  }

  /** The dynamic tenants' databases currently cached (those resolved recently), in the shape of `databases()`. */
  cachedDynamicDatabases(): DatabaseRoute[] {
    return [...this.#dynamic.values()].flatMap((section) => {
      const policy = policyFor(section.type, this.#config.versioning.enabled);
      return section.cache.values().map((entry) => this.#database(section.type, 'tenant', entry, policy));
    });
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
      ...this.#database(databaseType, tier, entry, policy),
      collection,
      collectionMap: Object.hasOwn(this.#config.collectionMaps, collection) ? this.#config.collectionMaps[collection] : undefined,
      label: `${databaseType}/${tier}${tier === 'tenant' ? `:${entry.tenantId}` : tier === 'domain' ? `:${entry.domain}` : ''}/${collection}`,
    };
  }

  /**
   * Every configured database, for jobs that walk all of them (repair, backups). Dynamic tenants
   * are not listed: see `cachedDynamicDatabases()`.
   */
  databases(): DatabaseRoute[] {
    const out: DatabaseRoute[] = [];
    for (const databaseType of DATABASE_TYPES) {
      const section = this.#section(databaseType);
      if (!section) continue;
      const policy = policyFor(databaseType, this.#config.versioning.enabled);
      if (section.genericDatabase) out.push(this.#database(databaseType, 'generic', section.genericDatabase, policy));
      for (const e of section.domainsDatabases ?? []) out.push(this.#database(databaseType, 'domain', e, policy));
      for (const e of section.tenantDatabases ?? []) out.push(this.#database(databaseType, 'tenant', e, policy));
    }
    return out;
  }

  /**
   * The database that holds `dbName` (as its database or its analytics database) on connection
   * `dbConnRef`: a configured one, or a dynamic tenant's whose template produces that name.
   * `null` when none does. Lets jobs that find a database name in a store (repair, counters) act
   * on dynamic tenants that are not in the config.
   */
  databaseNamed(dbConnRef: string, dbName: string): DatabaseRoute | null {
    const configured = this.databases().find((d) => d.dbConnRef === dbConnRef && (d.dbName === dbName || d.analyticsDbName === dbName));
    if (configured) return configured;
    for (const section of this.#dynamic.values()) {
      const { enabled, dbNameTemplate, analyticsDbNameTemplate } = section.settings;
      if (!enabled || section.settings.dbConnRef !== dbConnRef) continue;
      for (const template of [dbNameTemplate, analyticsDbNameTemplate]) {
        const tenantId = template === undefined ? undefined : templateMatcher(template).exec(dbName)?.[1];
        if (tenantId === undefined || this.#configured.has(`${section.type}\u0000${tenantId}`)) continue;
        // #dynamicEntry throws only ValidationErrors (its refusals), so rethrowing any other is a guard that no input reaches.
        // Stryker disable BlockStatement,ConditionalExpression: see above.
        try {
          const entry = this.#dynamicEntry(section, tenantId);
          return this.#database(section.type, 'tenant', entry, policyFor(section.type, this.#config.versioning.enabled));
        } catch (err) {
          if (!(err instanceof ValidationError)) throw err;
        }
      }
    }
    // Stryker restore BlockStatement,ConditionalExpression
    return null;
  }

  /** Connections that dynamic tenants keep their index on. */
  dynamicConnections(): string[] {
    return [...new Set([...this.#dynamic.values()].filter((s) => s.settings.enabled).map((s) => s.settings.dbConnRef))];
  }

  #database(databaseType: DatabaseType, tier: Tier, entry: Entry, policy: StoragePolicy): DatabaseRoute {
    return {
      databaseType,
      tier,
      // Stryker disable next-line ConditionalExpression: generic and domain entries have no tenantId (the schema has no such field for them).
      tenantId: tier === 'tenant' ? entry.tenantId : undefined,
      // Stryker disable next-line ConditionalExpression: generic and tenant entries have no domain.
      domain: tier === 'domain' ? entry.domain : undefined,
      dbConnRef: entry.dbConnRef,
      dbName: entry.dbName,
      analyticsDbName: entry.analyticsDbName ?? entry.dbName,
      spaceConnRef: entry.spaceConnRef ?? null,
      blobs: this.#blobLocations(entry, policy),
      policy,
    };
  }

  #section(databaseType: DatabaseType): Section | undefined {
    return this.#config.databases[databaseType] as Section | undefined;
  }

  #findEntry(request: RouteRequest): Entry {
    const { databaseType, tier } = request;
    const section = this.#section(databaseType);
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
    const entry = this.#configured.get(`${databaseType}\u0000${tenantId}`);
    if (entry) return entry;
    const dynamic = this.#dynamic.get(databaseType);
    if (dynamic?.settings.enabled) return this.#dynamicEntry(dynamic, tenantId);
    throw new RouteNotFoundError(`No ${databaseType} database is configured for tenant "${tenantId}"${available(section)}`);
  }

  /** The entry of a tenant without a config entry: from the cache, or checked and built from the templates. */
  #dynamicEntry(section: DynamicSection, tenantId: string): Entry {
    const cached = section.cache.get(tenantId);
    // Stryker disable next-line ConditionalExpression: the cache saves work only; an entry built again is the same, and set() makes it the most recent just as get() does.
    if (cached) return cached;
    const { type, settings } = section;
    const refuse = (why: string) =>
      new ValidationError(`Tenant "${tenantId}" is refused for ${type} dynamic tenants: ${why}`, { path: 'tenantId' });
    const violation = tenantRuleViolation(settings, section.pattern, tenantId);
    if (violation) throw refuse(`the tenantId ${violation}`);

    const dbName = renderTemplate(settings.dbNameTemplate, tenantId);
    const analyticsDbName = settings.analyticsDbNameTemplate === undefined ? undefined : renderTemplate(settings.analyticsDbNameTemplate, tenantId);
    const bucket = settings.bucketTemplate === undefined ? undefined : renderTemplate(settings.bucketTemplate, tenantId);
    const names: Array<[TemplateClaim['field'], string | undefined, 'dbName' | 'bucket']> = [
      ['dbNameTemplate', dbName, 'dbName'],
      ['analyticsDbNameTemplate', analyticsDbName, 'dbName'],
      ['bucketTemplate', bucket, 'bucket'],
    ];
    for (const [field, name, kind] of names) {
      if (name !== undefined && !isValidName(kind, name)) {
        throw refuse(`${field} gives "${name}", which is not a valid ${kind} (${NAME_RULES[kind].describe})`);
      }
      if (name !== undefined && kind === 'dbName' && name.startsWith(RESTORE_STAGING_PREFIX)) {
        throw refuse(`${field} gives "${name}", and database names starting with "${RESTORE_STAGING_PREFIX}" are kept for restores`);
      }
    }

    const spaceConnRef = settings.spaceConnRef || undefined;
    const dbKey = `db\u0000${settings.dbConnRef}`;
    const uses: Array<[string, string, string]> = [[dbKey, dbName, `database "${dbName}" on connection "${settings.dbConnRef}"`]];
    if (analyticsDbName !== undefined) uses.push([dbKey, analyticsDbName, `analytics database "${analyticsDbName}" on connection "${settings.dbConnRef}"`]);
    if (bucket !== undefined) {
      uses.push([blobStoreKey(spaceConnRef ?? null), bucket, spaceConnRef ? `bucket "${bucket}"` : `localStorage folder "${bucket}"`]);
    } else if (!spaceConnRef && this.#localStorage) {
      uses.push([blobStoreKey(null), dbName, `localStorage folder "${dbName}"`]);
    }
    for (const [key, name, what] of uses) {
      const owner = this.#takenNames.get(key)?.get(name);
      if (owner) throw refuse(`its ${what} is already ${owner}; a tenant never shares another's database`);
      // Stryker disable next-line ArrayDeclaration: every key a tenant uses was claimed by its own section in the constructor, so the list is never missing.
      for (const claim of this.#templateClaims.get(key) ?? []) {
        const other = claim.matcher.exec(name)?.[1];
        // A template gives each tenant a name of its own, so a claim of this section that yields
        // this very tenant is the tenant's own name (whichever of the section's templates it is).
        // Stryker disable next-line ConditionalExpression: without a match, `other` is undefined, which acceptsTenant below refuses too.
        if (other === undefined || (claim.section === section && other === tenantId)) continue;
        // Refused even when that tenant is configured today: configs change, databases stay.
        if (!acceptsTenant(claim.section.settings, claim.section.pattern, other)) continue;
        throw refuse(
          `its ${what} is also what databases.${claim.section.type}.dynamicTenants.${claim.field} gives the tenant "${other}"; a tenant never shares another's database`,
        );
      }
    }

    // Unset fields stay undefined: routes read them with their defaults (`?? null`, `?? dbName`, the connection's buckets).
    const entry: Entry = { tenantId, dbConnRef: settings.dbConnRef, dbName, spaceConnRef, analyticsDbName };
    for (const kind of BLOB_KINDS) entry[`${kind}Bucket`] = bucket;
    section.cache.set(tenantId, entry);
    return entry;
  }

  #take(key: string, name: string, owner: string): void {
    let names = this.#takenNames.get(key);
    if (!names) this.#takenNames.set(key, (names = new Map()));
    if (!names.has(name)) names.set(name, owner);
  }

  #claim(key: string, section: DynamicSection, field: TemplateClaim['field'], template: string): void {
    let claims = this.#templateClaims.get(key);
    if (!claims) this.#templateClaims.set(key, (claims = []));
    claims.push({ section, field, matcher: templateMatcher(template) });
  }

  /**
   * Whether databases without a spaceConnRef keep objects in `localStorage`. When it is not
   * enabled, such a database (of a type whose data lives whole in its database: messaging,
   * identities) has no object storage at all: no blob locations.
   */
  get #localStorage(): boolean {
    return this.#config.localStorage?.enabled === true;
  }

  #blobLocations(entry: Entry, policy: StoragePolicy): Partial<Record<BlobKind, BlobLocation>> {
    const conn = entry.spaceConnRef ? this.#config.spacesConnections[entry.spaceConnRef] : undefined;
    const out: Partial<Record<BlobKind, BlobLocation>> = {};
    for (const kind of BLOB_KINDS) {
      if (!policy.blobKinds.includes(kind)) continue;
      // Per-database buckets win over the connection's; the local filesystem defaults to one
      // folder per database so tenants never share a directory.
      // Stryker disable next-line OptionalChaining: loadConfig refuses a database whose connection has no bucket for a kind it writes unless the database names its own, which is read first.
      const bucket = entry[`${kind}Bucket`] ?? conn?.buckets?.[kind] ?? (conn || !this.#localStorage ? undefined : entry.dbName);
      // Stryker disable next-line ConditionalExpression: as above, every kind a loaded config's database writes has a bucket (a messaging database without object storage has none, by design); kept for configs built by hand.
      if (bucket === undefined) continue;
      out[kind] = { bucket, prefix: conn?.folderPrefixes?.[kind] ?? kind };
    }
    return out;
  }
}

// Stryker disable next-line StringLiteral: any key other than the connections' ones names localStorage.
const LOCAL_STORE = 'local';

/** The store blob names live in: one per spaces connection, and localStorage. */
function blobStoreKey(spaceConnRef: string | null): string {
  return spaceConnRef ? `s3\u0000${spaceConnRef}` : LOCAL_STORE;
}

/** A map that keeps its `max` most recently used entries. */
class LruCache<V> {
  readonly #max: number;
  readonly #map = new Map<string, V>();

  constructor(max: number) {
    this.#max = max;
  }

  get size(): number {
    return this.#map.size;
  }

  // Stryker disable next-line BlockStatement: a router that never finds a cached tenant builds the same entry again (see #dynamicEntry).
  get(key: string): V | undefined {
    const value = this.#map.get(key);
    if (value !== undefined) {
      // Map keeps insertion order: re-inserting makes this the most recently used.
      this.#map.delete(key);
      this.#map.set(key, value);
    }
    return value;
  }

  set(key: string, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    while (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value as string);
  }

  values(): V[] {
    return [...this.#map.values()];
  }
}

function available(section: Section | undefined): string {
  if (!section) return ' (this database type is not configured at all)';
  if (section.dynamicTenants && !section.dynamicTenants.enabled) return `${available({ ...section, dynamicTenants: undefined })}; dynamicTenants is disabled`;
  const parts: string[] = [];
  if (section.genericDatabase) parts.push('generic');
  for (const e of section.domainsDatabases ?? []) parts.push(`domain "${e.domain}"`);
  for (const e of section.tenantDatabases ?? []) parts.push(`tenant "${e.tenantId}"`);
  if (parts.length === 0) return ' (none are configured)';
  const shown = parts.slice(0, 10).join(', ');
  return ` (configured: ${shown}${parts.length > 10 ? `, and ${parts.length - 10} more` : ''})`;
}
