import { z } from 'zod';
import { isValidName, NAME_RULES, type NameKind } from '../foundation/names.js';

/**
 * The Xronox configuration: the single source of truth. Every type the rest of the code uses
 * for config comes from `z.infer` on these schemas. Unknown keys are rejected everywhere.
 *
 * Cross-field rules (references, per-type storage policy) live in `load.ts`, which runs them
 * together with this schema so that all problems are reported at once.
 */

export const DATABASE_TYPES = ['runtime', 'knowledge', 'metadata', 'messaging', 'identities', 'logs'] as const;
export type DatabaseType = (typeof DATABASE_TYPES)[number];

export const TIERS = ['generic', 'domain', 'tenant'] as const;
export type Tier = (typeof TIERS)[number];

export const BLOB_KINDS = ['records', 'versions', 'content', 'backups'] as const;
export type BlobKind = (typeof BLOB_KINDS)[number];

const named = (kind: NameKind) =>
  z.string().refine((v) => isValidName(kind, v), { message: `must be ${NAME_RULES[kind].describe}` });

const positiveInt = z.number().int().positive();

/** The schema prefix of a `postgresUri` connection that names none. */
export const DEFAULT_SCHEMA_PREFIX = 'xronox_';

export const dbConnectionSchema = z
  .strictObject({
    /** MongoDB connection string (production; a replica set). */
    mongoUri: z.string().min(1).optional(),
    /** PostgreSQL connection URI, `postgres://user:password@host:5432/database` (production). */
    postgresUri: z
      .string()
      .regex(/^postgres(?:ql)?:\/\/./i, { message: 'must be a URI starting with postgres:// or postgresql://' })
      .optional(),
    /** Path of an embedded SQLite database file (development, tests, single-machine use). */
    sqlitePath: z.string().min(1).optional(),
    /**
     * With `postgresUri`: every database is the PostgreSQL schema `<schemaPrefix><dbName>`.
     * Default `xronox_` (`DEFAULT_SCHEMA_PREFIX`).
     */
    schemaPrefix: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,29}$/, { message: 'must be a lowercase letter or "_" then up to 29 lowercase letters, digits or "_"' })
      .optional(),
    /**
     * With `postgresUri`: the longest one statement may take, in milliseconds (100 to 900000),
     * so that no call waits on PostgreSQL until a Lambda is killed. Default 30000.
     */
    statementTimeoutMs: z.number().int().min(100).max(900_000).optional(),
    /**
     * With `postgresUri`: the most connections this process opens to the server (1 to 100).
     * Default 10, or 2 inside AWS Lambda, where a container serves one request at a time and
     * hundreds of containers would otherwise exhaust the server's `max_connections`.
     */
    maxConnections: z.number().int().min(1).max(100).optional(),
  })
  .superRefine((conn, ctx) => {
    const kinds = [conn.mongoUri, conn.postgresUri, conn.sqlitePath].filter((v) => v !== undefined).length;
    if (kinds !== 1) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of mongoUri, postgresUri or sqlitePath' });
    }
    for (const key of ['schemaPrefix', 'statementTimeoutMs', 'maxConnections'] as const) {
      if (conn[key] !== undefined && conn.postgresUri === undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'applies to postgresUri connections only' });
    }
  });

const bucketsSchema = z.strictObject({
  records: named('bucket').optional(),
  versions: named('bucket').optional(),
  content: named('bucket').optional(),
  backups: named('bucket').optional(),
});

const folderPrefixesSchema = z.strictObject({
  records: named('folderPrefix').optional(),
  versions: named('folderPrefix').optional(),
  content: named('folderPrefix').optional(),
  backups: named('folderPrefix').optional(),
});

export const spacesConnectionSchema = z.strictObject({
  /** Omit for AWS S3 (derived from the region); set for MinIO, Spaces, R2, Ceph. */
  endpoint: z.url().optional(),
  region: z.string().min(1),
  /**
   * Static credentials. Omit both on AWS to use the SDK's default chain (a Lambda function's
   * role, an instance profile, `AWS_*` environment variables), so no key lives in the config.
   */
  accessKey: z.string().min(1).optional(),
  secretKey: z.string().min(1).optional(),
  /** Path-style addressing (`endpoint/bucket/key`), needed by most non-AWS providers. */
  forcePathStyle: z.boolean().optional(),
  buckets: bucketsSchema.optional(),
  folderPrefixes: folderPrefixesSchema.optional(),
  /** Legacy: one bucket for every kind of data, told apart by folder prefixes. */
  bucket: named('bucket').optional(),
  /**
   * Whether the server enforces `If-None-Match` on PUT (AWS S3, MinIO, R2 do). Xronox writes
   * version objects create-only, so a differing object already at a version's key is reported,
   * never overwritten. Default true; servers that ignore the header are harmless either way.
   */
  conditionalWrites: z.boolean().optional(),
  /**
   * How long one request may wait for the server's response before it fails and is retried.
   * Default 60 s (large uploads go in 8 MiB parts, so no request carries more).
   */
  requestTimeoutMs: positiveInt.max(15 * 60_000).optional(),
}).superRefine((conn, ctx) => {
  if ((conn.accessKey === undefined) !== (conn.secretKey === undefined)) {
    ctx.addIssue({ code: 'custom', message: 'give both accessKey and secretKey, or neither (the SDK default credential chain)' });
  }
});

/** The placeholder of dynamic tenant templates. */
export const TENANT_PLACEHOLDER = '{tenantId}';

/**
 * A name template for dynamic tenants: it must hold `{tenantId}` (so two tenants never share a
 * name) and nothing else in braces, and give a valid name of `kind` once filled in.
 */
const template = (kind: 'dbName' | 'bucket') =>
  z.string().superRefine((value, ctx) => {
    if (!value.includes(TENANT_PLACEHOLDER)) {
      ctx.addIssue({ code: 'custom', message: `must contain ${TENANT_PLACEHOLDER}, so that two tenants never share a ${kind === 'dbName' ? 'database' : 'bucket'}` });
      return;
    }
    if (/[{}]/.test(value.split(TENANT_PLACEHOLDER).join(''))) {
      ctx.addIssue({ code: 'custom', message: `may hold no placeholder but ${TENANT_PLACEHOLDER}` });
      return;
    }
    const sample = value.split(TENANT_PLACEHOLDER).join('a');
    if (!isValidName(kind, sample)) {
      ctx.addIssue({ code: 'custom', message: `gives "${sample}" for the tenant "a", which is not ${NAME_RULES[kind].describe}` });
    }
  });

const regexSource = z.string().min(1).superRefine((value, ctx) => {
  try {
    new RegExp(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `is not a valid regular expression (${err instanceof Error ? err.message : String(err)})` });
  }
});

/**
 * Tenants that need no config entry: any tenant id that passes the checks gets a database named
 * by the templates. A tenant configured in `tenantDatabases` always wins over this.
 */
export const dynamicTenantsSchema = z.strictObject({
  enabled: z.boolean(),
  dbConnRef: z.string().min(1),
  /** Empty or absent: blobs go to `localStorage`. */
  spaceConnRef: z.string().optional(),
  /** The tenant's database name, e.g. `app_runtime_{tenantId}`. */
  dbNameTemplate: template('dbName'),
  /** Runtime only: where counter totals go. Default: the tenant's database. */
  analyticsDbNameTemplate: template('dbName').optional(),
  /** One bucket for every blob kind of the tenant, kinds kept apart by folder prefixes. Default: the connection's buckets (or, in localStorage, a folder named like the database). */
  bucketTemplate: template('bucket').optional(),
  /** Narrows the tenant ids accepted, on top of the tenantId rule. */
  validation: z
    .strictObject({
      /** A regular expression source, anchored automatically (`^(?:pattern)$`). */
      pattern: regexSource.optional(),
      maxLength: positiveInt.optional(),
    })
    .optional(),
  /** How many resolved dynamic tenants the router keeps (least recently used first out). Default 1000. */
  cacheSize: positiveInt.max(1_000_000).optional(),
});

const databaseFields = {
  dbConnRef: z.string().min(1),
  /** Empty or absent: blobs go to `localStorage`. */
  spaceConnRef: z.string().optional(),
  dbName: named('dbName'),
  recordsBucket: named('bucket').optional(),
  versionsBucket: named('bucket').optional(),
  contentBucket: named('bucket').optional(),
  backupsBucket: named('bucket').optional(),
  /** Legacy single bucket, normalised to the four kinds above. */
  bucket: z.union([named('bucket'), z.literal('')]).optional(),
};

export const genericDatabaseSchema = z.strictObject({ ...databaseFields });
export const domainDatabaseSchema = z.strictObject({ domain: named('domain'), ...databaseFields });
export const tenantDatabaseSchema = z.strictObject({ tenantId: named('tenantId'), ...databaseFields });
export const runtimeTenantDatabaseSchema = z.strictObject({
  tenantId: named('tenantId'),
  ...databaseFields,
  /** Where counter totals go; defaults to `dbName`. */
  analyticsDbName: named('dbName').optional(),
  /** Accepted for compatibility with the documented builder. Runtime is always versioned, so only `true` is valid. */
  enableVersioning: z
    .literal(true, { message: 'runtime databases are always versioned; to keep no history anywhere, set versioning.enabled to false' })
    .optional(),
});
export const messagingTenantDatabaseSchema = z.strictObject({
  tenantId: named('tenantId'),
  ...databaseFields,
  captureDeliveries: z.boolean().optional(),
});

const tieredSection = <T extends z.ZodType>(tenant: T, extra: z.ZodRawShape = {}) =>
  z.strictObject({
    genericDatabase: z.strictObject({ ...databaseFields, ...extra }).optional(),
    domainsDatabases: z.array(z.strictObject({ domain: named('domain'), ...databaseFields, ...extra })).optional(),
    tenantDatabases: z.array(tenant).optional(),
    dynamicTenants: dynamicTenantsSchema.optional(),
  });

export const databasesSchema = z.strictObject({
  runtime: z
    .strictObject({ tenantDatabases: z.array(runtimeTenantDatabaseSchema).default([]), dynamicTenants: dynamicTenantsSchema.optional() })
    .optional(),
  knowledge: tieredSection(tenantDatabaseSchema).optional(),
  metadata: tieredSection(tenantDatabaseSchema).optional(),
  messaging: tieredSection(messagingTenantDatabaseSchema, { captureDeliveries: z.boolean().optional() }).optional(),
  identities: tieredSection(tenantDatabaseSchema).optional(),
  logs: tieredSection(tenantDatabaseSchema).optional(),
});

const collectionMapSchema = z.strictObject({
  /** Properties that can be filtered on; an empty array indexes every top-level scalar. */
  indexedProps: z.array(named('property')).max(64),
  base64Props: z
    .record(
      named('property'),
      z.strictObject({
        contentType: z.string().min(1),
        preferredText: z.boolean().optional(),
        textCharset: z.string().min(1).optional(),
      }),
    )
    .optional(),
  validation: z.strictObject({ requiredIndexed: z.array(named('property')).optional() }).optional(),
  s3Offload: z.strictObject({ enabled: z.boolean(), olderThan: positiveInt }).optional(),
});

const counterRuleSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,62}$/, { message: 'must be an identifier' }),
  on: z.array(z.enum(['CREATE', 'UPDATE', 'DELETE'])).min(1).optional(),
  scope: z.enum(['meta', 'payload']).optional(),
  when: z.record(z.string(), z.unknown()),
});

/** What an HTTP API credential may do: `read` < `write` < `admin` (collection restores). */
export const API_ROLES = ['read', 'write', 'admin'] as const;
export type ApiRole = (typeof API_ROLES)[number];

/** `"*"` grants every tenant (or domain); otherwise the exact names listed. */
const grantList = (kind: 'tenantId' | 'domain') => z.array(z.union([z.literal('*'), named(kind)])).max(10_000).default([]);

/** Where a credential may go. The generic tier holds data shared by every tenant, so it is granted separately. */
const apiAccessFields = {
  role: z.enum(API_ROLES),
  tenants: grantList('tenantId'),
  domains: grantList('domain'),
  generic: z.boolean().default(false),
};

/**
 * An API key, stored only as the SHA-256 of the key. A plain hash (rather than bcrypt or
 * scrypt) is right here because keys are generated with at least 256 bits of randomness: no
 * dictionary or brute-force search of the hash space is feasible, so a slow hash would buy no
 * safety and would cost every request its latency. Never store human-chosen passwords here.
 */
export const apiKeySchema = z.strictObject({
  /** Names the key in logs, and is the identifier of the actor stored on every write it makes. */
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, { message: 'must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit' }),
  /** Lowercase hex SHA-256 of the key, e.g. `printf %s "$KEY" | sha256sum`. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/, { message: 'must be the 64 lowercase hex digits of a SHA-256 digest' }),
  ...apiAccessFields,
});

/**
 * A JWKS must come over TLS, or a network attacker could serve their own keys; plain http is
 * accepted only for loopback addresses (local identity providers and tests).
 */
const jwksUrl = z.url().refine(
  (value) => {
    const url = new URL(value);
    return url.protocol === 'https:' || (url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname));
  },
  { message: 'must be an https URL (http only for localhost, 127.0.0.1 or [::1])' },
);

/**
 * Bearer JWTs, verified with a shared HMAC secret (HS256/384/512) or the keys of a JWKS
 * (RS*, PS*, ES*, EdDSA). Tokens must carry `sub` and `exp`; their access is in the claims
 * `role`, `tenants`, `domains` and `generic`, shaped like an API key's.
 */
export const apiJwtSchema = z
  .strictObject({
    /** HMAC secret, at least 32 characters (RFC 7518 asks for a key as long as the hash). Masked like every secret. */
    secret: z.string().min(32).optional(),
    jwksUrl: jwksUrl.optional(),
    /** Required `iss`, when set. */
    issuer: z.string().min(1).optional(),
    /** Required `aud` (one of them, when a list), when set. */
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  })
  .superRefine((jwt, ctx) => {
    if ((jwt.secret === undefined) === (jwt.jwksUrl === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of secret or jwksUrl' });
    }
  });

/**
 * An origin as browsers send it in `Origin`: scheme, host and port only, lowercase, no default
 * port, no path or trailing slash (so the comparison with the header is exact); or `*`, any.
 */
export const corsOrigin = z.string().refine(
  (value) => {
    if (value === '*') return true;
    try {
      const url = new URL(value);
      return (url.protocol === 'https:' || url.protocol === 'http:') && url.origin === value;
    } catch {
      return false;
    }
  },
  { message: 'must be an origin such as https://app.example.com (http or https, host and port only: no path, no trailing slash, lowercase, no default port), or *' },
);

/**
 * Cross-origin requests from browsers (CORS). Without it (the default), no CORS headers are sent
 * and browsers on other origins cannot call the API.
 */
export const apiCorsSchema = z.strictObject({
  /**
   * The origins whose pages may call the API; every other origin gets no CORS headers. `['*']`:
   * any origin (safe only because the API takes bearer credentials, never cookies).
   */
  allowedOrigins: z
    .array(corsOrigin)
    .max(100)
    .refine((origins) => !origins.includes('*') || origins.length === 1, { message: 'is either ["*"] (any origin) or a list of origins, not both' }),
  /** How long a browser may cache a preflight answer, in seconds. Default 3600 (the HTTP API's, infra/serverless/cors.cjs). */
  maxAgeSeconds: z.int().min(0).max(86_400).optional(),
});

/** The HTTP API (`functions/api`): who may call it, how large a request body may be, and which browser origins. */
export const apiSchema = z.strictObject({
  keys: z.array(apiKeySchema).max(10_000).default([]),
  jwt: apiJwtSchema.optional(),
  /** Largest request body accepted, in bytes; larger ones get 413. Default: `limits.maxDocumentBytes` (1 MiB). */
  bodyLimitBytes: positiveInt.max(64 * 1024 * 1024).optional(),
  /** Browser origins allowed to call the API. Default: none (no CORS headers). */
  cors: apiCorsSchema.optional(),
});

/**
 * Background jobs: version archival, retention, backups (`core/jobs`). Defaults are applied by
 * `jobSettings()` in `core/jobs/settings.ts`, so a config without this key parses unchanged.
 */
export const jobsSchema = z.strictObject({
  archive: z
    .strictObject({
      /**
       * `inline` (default): each write's background sync also copies its version to the versions
       * bucket. `deferred`: the sync writes only `current.json`; versions stay in the index until
       * the archive job copies them (the S3 event on `current.json`, or the sweep).
       */
      mode: z.enum(['inline', 'deferred']).optional(),
      /** The sweep archives versions still in the index this many minutes after they were written (0: all of them). Default 15. */
      sweepAfterMinutes: z.number().int().nonnegative().max(7 * 24 * 60).optional(),
    })
    .optional(),
  offload: z
    .strictObject({
      /**
       * Logs (every collection of `logs` databases) not written for this many days have their
       * index copy dropped: they are then read from their day-filed records object. Default: logs
       * are not offloaded. Other collections offload by `collectionMaps[c].s3Offload`.
       */
      logsAfterDays: positiveInt.optional(),
    })
    .optional(),
  /** A job's lease on a database; a crashed run's databases are free again once it runs out. Default 300. */
  leaseSeconds: positiveInt.max(24 * 3600).optional(),
  /**
   * How many object reads and writes one job keeps in flight on a database (archive sweep puts,
   * backup reads and copies, offload checks, retention deletes). Default 16, which a 512 MB–1 GB
   * Lambda function sustains; the S3 client's connection pool (50 sockets) bounds it in practice.
   */
  concurrency: positiveInt.max(256).optional(),
  backup: z
    .strictObject({
      /**
       * `self-contained` (default): each archived version's document is copied into the snapshot's
       * parts (one GetObject per archived version per backup). `reference`: the snapshot lists each
       * archived version by key, size and SHA-256 instead (read once, then carried forward from the
       * previous snapshot); the versions bucket must be kept (versioned or replicated). `copy`: as
       * `reference`, plus a server-side CopyObject of each version not copied before into the
       * backups bucket (`{prefix}/_objects/`), so the backups bucket alone restores. docs/jobs.md.
       */
      format: z.enum(['self-contained', 'reference', 'copy']).optional(),
      /** A snapshot part holds about this many KiB of (uncompressed) lines. Default 16384 (16 MiB). */
      partKilobytes: positiveInt.max(1024 * 1024).optional(),
    })
    .optional(),
  retention: z
    .strictObject({
      /** Logs older than this many days are deleted (record and object). Default: logs are kept. */
      logsDays: positiveInt.optional(),
      /**
       * Messaging `shared_memory` entries not written for this many days are deleted; an entry's
       * own positive `retentionDays` wins. Default: kept unless the entry names its own.
       */
      sharedMemoryDays: positiveInt.optional(),
      /**
       * A TTL on `_system.createdAt` for the other messaging collections: their documents are
       * deleted (and never returned) this many days after they were created. Default: kept.
       */
      messagingTtlDays: z
        .strictObject({ topics: positiveInt.optional(), messages: positiveInt.optional(), dead_letters: positiveInt.optional(), deliveries: positiveInt.optional() })
        .optional(),
    })
    .optional(),
});

export const configSchema = z.strictObject({
  dbConnections: z.record(z.string().min(1), dbConnectionSchema),
  spacesConnections: z.record(z.string().min(1), spacesConnectionSchema).default({}),
  databases: databasesSchema,
  localStorage: z.strictObject({ basePath: z.string().min(1), enabled: z.boolean() }).optional(),
  routing: z
    .strictObject({ hashAlgo: z.enum(['rendezvous', 'jump']).optional(), chooseKey: z.string().optional() })
    .optional(),
  retention: z
    .strictObject({
      ver: z.strictObject({ days: positiveInt.optional(), maxPerItem: positiveInt.optional() }).optional(),
      counters: z
        .strictObject({ days: positiveInt.optional(), weeks: positiveInt.optional(), months: positiveInt.optional() })
        .optional(),
    })
    .optional(),
  collectionMaps: z.record(named('collection'), collectionMapSchema).default({}),
  counterRules: z.strictObject({ rules: z.array(counterRuleSchema).optional() }).optional(),
  devShadow: z
    .strictObject({ enabled: z.boolean(), ttlHours: positiveInt, maxBytesPerDoc: positiveInt.optional() })
    .optional(),
  logicalDelete: z.strictObject({ enabled: z.boolean() }).default({ enabled: true }),
  versioning: z.strictObject({ enabled: z.boolean() }).default({ enabled: true }),
  writeOptimization: z
    .strictObject({
      batchSize: positiveInt.optional(),
      debounceMs: z.number().int().nonnegative().optional(),
      compressionEnabled: z.boolean().optional(),
    })
    .optional(),
  fallback: z
    .strictObject({
      enabled: z.boolean(),
      maxRetries: z.number().int().nonnegative().optional(),
      retryDelayMs: z.number().int().nonnegative().optional(),
      maxDelayMs: z.number().int().nonnegative().optional(),
      deadLetterCollection: named('collection').optional(),
    })
    .optional(),
  /**
   * Kept for configs of older versions. The MongoDB index store always commits with
   * multi-document transactions (it needs a replica set), so `enabled: false` next to a MongoDB
   * connection is refused at load; `autoDetect` has no effect.
   */
  transactions: z.strictObject({ enabled: z.boolean().optional(), autoDetect: z.boolean().optional() }).optional(),
  /** Guards against oversize input. */
  limits: z
    .strictObject({
      /** Largest accepted document, as JSON bytes. Default 1 MiB. */
      maxDocumentBytes: positiveInt.max(64 * 1024 * 1024).optional(),
      /** Largest accepted content of one `base64Props` property, decoded. Default 64 MiB. */
      maxContentBytes: positiveInt.max(5 * 1024 * 1024 * 1024).optional(),
      /**
       * The longest a write may take from recording its content uploads to its commit, in
       * seconds. Content of a write that did not commit is removed by `repair()` and the archive
       * job once it is this old; a write slower than this is refused. Keep it above the blob
       * store's longest request (under 7 minutes with the S3 defaults). Default 900 (15 minutes).
       */
      maxUploadSeconds: positiveInt.max(7 * 24 * 3600).optional(),
    })
    .optional(),
  /** The HTTP API's credentials and limits; absent when Xronox is used as a library only. */
  api: apiSchema.optional(),
  /** Background jobs (`core/jobs`); every setting has a default (see `jobSettings`). */
  jobs: jobsSchema.optional(),
  /** Verifiable history (docs/verifiable-history.md): read checks and signed digests. */
  integrity: z
    .strictObject({
      /**
       * The key digests are signed with: an Ed25519 private key in PEM (PKCS#8), or any other
       * string of at least 32 characters as an HMAC-SHA-256 secret. A secret: give it as
       * `ENV.NAME` (or in a config kept in SSM), never beside the data. Without it no digest is
       * written and verify checks chains only.
       */
      digestKey: z.string().min(32, 'must be at least 32 characters (an HMAC secret) or an Ed25519 private key in PEM').optional(),
      /** A name for the key, written into each digest so a rotated key can be told apart. Default `default`. */
      digestKeyId: z.string().min(1).max(128).regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only').optional(),
      /** Reads check what they return against its hash and refuse tampered data (TamperError). Default true. */
      verifyReads: z.boolean().optional(),
    })
    .optional(),
});

type DatabasesInput = z.input<typeof databasesSchema>;
/** One database object, the form the storage documents show for logs, messaging and identities. */
type SingleDatabaseInput = z.input<typeof genericDatabaseSchema> & { captureDeliveries?: boolean };

/** The config as a user writes it (before defaults), legacy shapes included. */
export type XronoxConfigInput = Omit<z.input<typeof configSchema>, 'databases'> & {
  databases: {
    [K in keyof DatabasesInput]: K extends 'logs' | 'messaging' | 'identities' ? DatabasesInput[K] | SingleDatabaseInput : DatabasesInput[K];
  };
};
/** The config after parsing: defaults applied. */
export type ParsedConfig = z.output<typeof configSchema>;
export type DbConnectionConfig = z.output<typeof dbConnectionSchema>;
export type SpacesConnectionConfig = z.output<typeof spacesConnectionSchema>;
export type CollectionMapConfig = z.output<typeof collectionMapSchema>;
export type DynamicTenantsConfig = z.output<typeof dynamicTenantsSchema>;
export type ApiConfig = z.output<typeof apiSchema>;
export type ApiCorsConfig = z.output<typeof apiCorsSchema>;
export type ApiKeyConfig = z.output<typeof apiKeySchema>;
export type ApiJwtConfig = z.output<typeof apiJwtSchema>;
export type JobsConfig = z.output<typeof jobsSchema>;
