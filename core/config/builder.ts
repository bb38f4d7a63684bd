import { ConfigError, type ConfigIssue } from '../errors.js';
import { loadConfig, type XronoxConfig } from './load.js';
import { maskSecretsIn } from './secrets.js';
import { DATABASE_TYPES, type DatabaseType, type dynamicTenantsSchema, TIERS, type Tier, type XronoxConfigInput } from './schema.js';
import type { z } from 'zod';

type SpacesConnectionInput = NonNullable<XronoxConfigInput['spacesConnections']>[string];
type CollectionMapInput = NonNullable<XronoxConfigInput['collectionMaps']>[string];
type CounterRuleInput = NonNullable<NonNullable<XronoxConfigInput['counterRules']>['rules']>[number];
type TieredType = 'knowledge' | 'metadata' | 'messaging' | 'identities' | 'logs';

/** Top-level options without a dedicated builder method; set them with `set(key, value)`. */
export type BuilderSetting = Exclude<keyof XronoxConfigInput, 'dbConnections' | 'spacesConnections' | 'databases' | 'collectionMaps'>;

/**
 * The connections a database uses. `mongoRef` (the documented builder name) and `dbConnRef` (the
 * config name) are aliases, as are `s3Ref` and `spaceConnRef`. Without a spaces connection, the
 * database's blobs go to `localStorage`.
 */
export type DatabaseRefs = ({ mongoRef: string; dbConnRef?: undefined } | { dbConnRef: string; mongoRef?: undefined }) & {
  s3Ref?: string;
  spaceConnRef?: string;
};

type DynamicTenantsInput = z.input<typeof dynamicTenantsSchema>;

/**
 * Dynamic tenants of one database type: connections as for a database (`mongoRef`/`dbConnRef`,
 * `s3Ref`/`spaceConnRef`), the name templates, and `enabled` (default `true`).
 */
export type DynamicTenantsOptions = DatabaseRefs & Omit<DynamicTenantsInput, 'dbConnRef' | 'spaceConnRef' | 'enabled'> & { enabled?: boolean };

/** Per-database buckets; each wins over the connection's `buckets` for that kind of data. */
export interface DatabaseBuckets {
  recordsBucket?: string;
  versionsBucket?: string;
  contentBucket?: string;
  backupsBucket?: string;
  /** Legacy: one bucket for every kind, told apart by folder prefixes. */
  bucket?: string;
}

/** A knowledge or metadata database: `type` picks the tier; `domain` or `tenantId` goes with it. */
export type TieredDatabaseOptions = DatabaseRefs &
  DatabaseBuckets & { type: Tier; domain?: string; tenantId?: string; dbName: string };

/** A messaging, identities or logs database: with `tenantId` it is a tenant database, with `domain` a domain one, otherwise the generic one. */
export type SimpleDatabaseOptions = DatabaseRefs & DatabaseBuckets & { tenantId?: string; domain?: string; dbName: string };

/** A runtime database; runtime exists only per tenant. */
export type RuntimeDatabaseOptions = DatabaseRefs &
  DatabaseBuckets & {
    type?: 'tenant';
    tenantId: string;
    dbName: string;
    /** Where counter totals go. Default: `dbName`. */
    analyticsDbName?: string;
    /** Accepted for compatibility with the documented builder; runtime is always versioned, so only `true`. */
    enableVersioning?: true;
  };

/** A messaging database; `captureDeliveries` keeps one record per delivery attempt. */
export type MessagingDatabaseOptions = SimpleDatabaseOptions & { captureDeliveries?: boolean };

/**
 * Builds a Xronox config step by step. It keeps the plain input object (`toJSON()` returns it, ready
 * to save as `xronox.config.json`) and validates only in `build()`, which reports every problem,
 * the builder's own included, in one `ConfigError`.
 *
 * ```ts
 * const config = new XronoxConfigBuilder()
 *   .addEmbeddedConnection('local', './data/xronox.sqlite')
 *   .withLocalStorage('./data/blobs')
 *   .addRuntimeDatabase({ tenantId: 'acme', mongoRef: 'local', dbName: 'app_runtime_acme' })
 *   .build();
 * ```
 */
export class XronoxConfigBuilder {
  readonly #input: XronoxConfigInput = { dbConnections: {}, databases: {} };
  /** Problems only the builder can see (a name added twice, aliases that disagree). */
  readonly #issues: ConfigIssue[] = [];

  /** Adds a MongoDB connection named `ref`. */
  addMongoConnection(ref: string, mongoUri: string): this {
    return this.#addDbConnection(ref, { mongoUri });
  }

  /**
   * Adds a PostgreSQL connection named `ref` (`postgres://user:password@host:5432/database`), its
   * databases in the schemas `<schemaPrefix><dbName>` (default `xronox_`), each statement bounded
   * by `statementTimeoutMs` (default 30000).
   */
  addPostgresConnection(ref: string, postgresUri: string, options: { schemaPrefix?: string; statementTimeoutMs?: number; maxConnections?: number } = {}): this {
    const { schemaPrefix, statementTimeoutMs, maxConnections } = options;
    return this.#addDbConnection(ref, {
      postgresUri,
      ...(schemaPrefix === undefined ? {} : { schemaPrefix }),
      ...(statementTimeoutMs === undefined ? {} : { statementTimeoutMs }),
      ...(maxConnections === undefined ? {} : { maxConnections }),
    });
  }

  /** Adds an embedded SQLite connection named `ref`, stored in the file at `sqlitePath`. */
  addEmbeddedConnection(ref: string, sqlitePath: string): this {
    return this.#addDbConnection(ref, { sqlitePath });
  }

  /** Adds an S3-compatible connection named `ref`. Omit `endpoint` for AWS S3. */
  addS3Connection(ref: string, options: SpacesConnectionInput): this {
    const connections = (this.#input.spacesConnections ??= {});
    if (this.#isNew(connections, `spacesConnections.${ref}`, ref)) connections[ref] = compact({ ...options });
    return this;
  }

  /** Adds a knowledge database at the tier named by `type`. Knowledge is not versioned. */
  addKnowledgeDatabase(options: TieredDatabaseOptions): this {
    return this.#addTiered('knowledge', options);
  }

  /** Adds a metadata database at the tier named by `type`. Metadata is not versioned. */
  addMetadataDatabase(options: TieredDatabaseOptions): this {
    return this.#addTiered('metadata', options);
  }

  /** Adds a versioned runtime database for one tenant. */
  addRuntimeDatabase(options: RuntimeDatabaseOptions): this {
    const { type, tenantId, analyticsDbName, enableVersioning, ...rest } = options;
    const path = `databases.runtime.tenantDatabases[${this.#input.databases.runtime?.tenantDatabases?.length ?? 0}]`;
    if (type !== undefined && type !== 'tenant') {
      this.#issues.push({ path, message: `runtime databases exist only at the tenant tier, not "${String(type)}"` });
    }
    const entry = compact({ tenantId, ...this.#entry(path, rest), analyticsDbName, enableVersioning });
    ((this.#input.databases.runtime ??= {}).tenantDatabases ??= []).push(entry);
    return this;
  }

  /**
   * Lets tenants without a config entry use databases of `type`, named by the templates
   * (`{tenantId}` is filled in). A tenant added with `tenantId` always wins over these.
   *
   * ```ts
   * builder.enableDynamicTenants('runtime', { dbConnRef: 'local', dbNameTemplate: 'app_runtime_{tenantId}', validation: { pattern: '[a-z0-9-]+' } });
   * ```
   */
  enableDynamicTenants(type: DatabaseType, options: DynamicTenantsOptions): this {
    const { mongoRef, dbConnRef, s3Ref, spaceConnRef, enabled = true, ...rest } = options;
    const path = `databases.${type}.dynamicTenants`;
    const settings = compact({
      enabled,
      dbConnRef: this.#alias(path, ['mongoRef', mongoRef], ['dbConnRef', dbConnRef]) as string,
      spaceConnRef: this.#alias(path, ['s3Ref', s3Ref], ['spaceConnRef', spaceConnRef]),
      ...rest,
    });
    const databases = this.#input.databases as Record<string, { dynamicTenants?: DynamicTenantsInput } | undefined>;
    if (!(DATABASE_TYPES as readonly string[]).includes(type)) {
      this.#issues.push({ path: 'databases', message: `type must be one of ${DATABASE_TYPES.join(', ')}; got ${JSON.stringify(type)}` });
      return this;
    }
    const section = (databases[type] ??= {});
    if (section.dynamicTenants) this.#issues.push({ path, message: `is added twice; ${type} has one dynamicTenants setting` });
    else section.dynamicTenants = settings;
    return this;
  }

  /** Adds a messaging database: per tenant with `tenantId`, otherwise the generic one. */
  addMessagingDatabase(options: MessagingDatabaseOptions): this {
    return this.#addTiered('messaging', { ...options, type: tierOf(options.tenantId, options.domain) });
  }

  /** Adds an identities database: per tenant with `tenantId`, otherwise the generic one. */
  addIdentitiesDatabase(options: SimpleDatabaseOptions): this {
    return this.#addTiered('identities', { ...options, type: tierOf(options.tenantId, options.domain) });
  }

  /** Adds a logs database (append-only): per tenant with `tenantId`, otherwise the generic one. */
  addLogsDatabase(options: SimpleDatabaseOptions): this {
    return this.#addTiered('logs', { ...options, type: tierOf(options.tenantId, options.domain) });
  }

  /** Declares the indexed properties, validation and offload of the collection `name`. */
  addCollectionMap(name: string, map: CollectionMapInput): this {
    const maps = (this.#input.collectionMaps ??= {});
    if (this.#isNew(maps, `collectionMaps.${name}`, name)) maps[name] = map;
    return this;
  }

  /** Stores blobs of databases without a spaces connection under `basePath` on the local filesystem. */
  withLocalStorage(basePath: string, enabled = true): this {
    return this.set('localStorage', { basePath, enabled });
  }

  /** Sets how long version history and counters are kept. */
  withRetention(retention: NonNullable<XronoxConfigInput['retention']>): this {
    return this.set('retention', retention);
  }

  /** Sets the counter rules (replacing earlier ones). */
  withCounterRules(rules: CounterRuleInput[]): this {
    return this.set('counterRules', { rules });
  }

  /** Sets any other top-level option (`versioning`, `logicalDelete`, `limits`, ...), replacing an earlier value. */
  set<K extends BuilderSetting>(key: K, value: XronoxConfigInput[K]): this {
    this.#input[key] = value;
    return this;
  }

  /** The plain config input as built so far (a copy): what a user would write in `xronox.config.json`. */
  toJSON(): XronoxConfigInput {
    return structuredClone(this.#input);
  }

  /** Validates the config; returns it normalised and frozen, or throws one `ConfigError` listing every problem. */
  build(): XronoxConfig {
    // A copy, so that freezing the result never freezes objects the builder (or its caller) still holds.
    if (this.#issues.length === 0) return loadConfig(this.toJSON());
    let later: readonly ConfigIssue[] = [];
    try {
      loadConfig(this.toJSON());
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      later = err.issues;
    }
    // The builder's own messages quote values (alias disagreements), so they are masked like loadConfig's.
    const input = this.toJSON();
    const own = this.#issues.map((i) => ({ path: maskSecretsIn(i.path, input), message: maskSecretsIn(i.message, input) }));
    throw new ConfigError([...own, ...later]);
  }

  #addDbConnection(ref: string, connection: { mongoUri: string } | { postgresUri: string; schemaPrefix?: string; statementTimeoutMs?: number; maxConnections?: number } | { sqlitePath: string }): this {
    const connections = this.#input.dbConnections;
    if (this.#isNew(connections, `dbConnections.${ref}`, ref)) connections[ref] = connection;
    return this;
  }

  #addTiered(type: TieredType, options: TieredDatabaseOptions): this {
    const { type: tier, domain, tenantId, ...rest } = options;
    const section = (this.#input.databases[type] ??= {});
    const base = `databases.${type}`;
    if (tier === 'generic') {
      const path = `${base}.genericDatabase`;
      // tenantId or domain are kept so that validation reports them rather than dropping them silently.
      const entry = compact({ domain, tenantId, ...this.#entry(path, rest) }) as NonNullable<typeof section.genericDatabase>;
      if (section.genericDatabase) this.#issues.push({ path, message: `is added twice; a ${type} section has one generic database` });
      else section.genericDatabase = entry;
    } else if (tier === 'domain') {
      const list = (section.domainsDatabases ??= []);
      list.push(compact({ domain, tenantId, ...this.#entry(`${base}.domainsDatabases[${list.length}]`, rest) }) as (typeof list)[number]);
    } else if (tier === 'tenant') {
      const list = (section.tenantDatabases ??= []);
      list.push(compact({ tenantId, domain, ...this.#entry(`${base}.tenantDatabases[${list.length}]`, rest) }) as (typeof list)[number]);
    } else {
      this.#issues.push({ path: base, message: `type must be one of ${TIERS.join(', ')}; got ${JSON.stringify(tier)}` });
    }
    return this;
  }

  /** The config fields of one database: aliases resolved, unset fields left out. */
  #entry(path: string, options: DatabaseRefs & DatabaseBuckets & { dbName: string }) {
    const { mongoRef, dbConnRef, s3Ref, spaceConnRef, ...rest } = options;
    return compact({
      dbConnRef: this.#alias(path, ['mongoRef', mongoRef], ['dbConnRef', dbConnRef]) as string,
      spaceConnRef: this.#alias(path, ['s3Ref', s3Ref], ['spaceConnRef', spaceConnRef]),
      ...rest,
    });
  }

  #alias(path: string, [name, value]: [string, string | undefined], [other, otherValue]: [string, string | undefined]): string | undefined {
    if (value !== undefined && otherValue !== undefined && value !== otherValue) {
      this.#issues.push({ path: `${path}.${other}`, message: `${name} "${value}" and its alias ${other} "${otherValue}" disagree; give one` });
    }
    return value ?? otherValue;
  }

  #isNew(map: Record<string, unknown>, path: string, key: string): boolean {
    if (!Object.hasOwn(map, key)) return true;
    this.#issues.push({ path, message: `is added twice; "${key}" is already defined` });
    return false;
  }
}

function tierOf(tenantId: string | undefined, domain: string | undefined): Tier {
  return tenantId !== undefined ? 'tenant' : domain !== undefined ? 'domain' : 'generic';
}

/** The object without its `undefined` properties, so the saved JSON holds only what was given. */
function compact<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
