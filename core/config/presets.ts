import { sha256Hex } from '../foundation/digest.js';
import { ConfigError } from '../errors.js';
import { XronoxConfigBuilder } from './builder.js';
import type { XronoxConfig } from './load.js';

/**
 * Ready-made configs. Each is built with `XronoxConfigBuilder`, so each is validated, normalised
 * and frozen by `loadConfig`. Dev and production lay databases out the same way (knowledge,
 * metadata and logs generic; runtime, messaging and identities per tenant), so code that works
 * against one works against the other unchanged.
 */

const DATA_DIR = './.xronox-data';
const DEFAULT_SQLITE_PATH = `${DATA_DIR}/xronox.sqlite`;
const DEFAULT_BLOB_PATH = `${DATA_DIR}/blobs`;
const MAX_DB_NAME = 63;

/**
 * The smallest working config: an embedded SQLite file (default `./.xronox-data/xronox.sqlite`),
 * or MongoDB / PostgreSQL when the argument is a `mongodb://`, `mongodb+srv://`, `postgres://` or
 * `postgresql://` URI; blobs under `./.xronox-data/blobs`; generic knowledge, metadata and logs
 * databases and a runtime database for the tenant `default`. The connection is named `local`
 * (SQLite) or `primary` (a server).
 */
export function createMinimalConfig(uriOrSqlitePath?: string): XronoxConfig {
  const target = uriOrSqlitePath ?? DEFAULT_SQLITE_PATH;
  // A URI scheme, not a bare prefix, so that a file named `mongodb.sqlite` stays a SQLite path.
  const server = /^mongodb(\+srv)?:\/\//.test(target) ? 'mongodb' : /^postgres(ql)?:\/\//.test(target) ? 'postgres' : null;
  const ref = server === null ? 'local' : 'primary';
  const builder = new XronoxConfigBuilder().withLocalStorage(DEFAULT_BLOB_PATH);
  if (server === 'mongodb') builder.addMongoConnection(ref, target);
  else if (server === 'postgres') builder.addPostgresConnection(ref, target);
  else builder.addEmbeddedConnection(ref, target);
  return builder
    .addKnowledgeDatabase({ type: 'generic', mongoRef: ref, dbName: 'xronox_knowledge' })
    .addMetadataDatabase({ type: 'generic', mongoRef: ref, dbName: 'xronox_metadata' })
    .addLogsDatabase({ mongoRef: ref, dbName: 'xronox_logs' })
    .addRuntimeDatabase({ tenantId: 'default', mongoRef: ref, dbName: 'xronox_runtime_default' })
    .build();
}

export interface DevConfigOptions {
  /** Embedded SQLite file. Default `./.xronox-data/xronox.sqlite`; give at most one of this, `mongoUri` and `postgresUri`. */
  sqlitePath?: string;
  /** Use MongoDB instead of the embedded SQLite file. */
  mongoUri?: string;
  /** Use PostgreSQL instead of the embedded SQLite file. */
  postgresUri?: string;
  /** Folder for blobs. Default `./.xronox-data/blobs`. */
  basePath?: string;
  /** Prefix of every database name. Default `xronox_dev`. */
  dbName?: string;
  /** Tenants that get runtime, messaging and identities databases. Default `['demo']`. */
  tenants?: string[];
}

/**
 * A development config: one embedded (or MongoDB) connection named `local`, blobs in a local
 * folder, and every database type configured: knowledge, metadata and logs generic; runtime,
 * messaging and identities per tenant, named `${dbName}_runtime_${tenant}` and so on.
 */
export function createDevConfig(options: DevConfigOptions = {}): XronoxConfig {
  const { basePath = DEFAULT_BLOB_PATH, dbName = 'xronox_dev', tenants = ['demo'] } = options;
  const builder = new XronoxConfigBuilder().withLocalStorage(basePath);
  addIndexConnection(builder, 'local', options, DEFAULT_SQLITE_PATH);
  return addEveryDatabase(builder, { ref: 'local', prefix: dbName, tenants, analytics: false }).build();
}

export interface ProductionConfigOptions {
  /** The index store: give exactly one of `mongoUri` (a replica set) and `postgresUri`. */
  mongoUri?: string;
  postgresUri?: string;
  /** Omit for AWS S3; set for MinIO, Spaces, R2, Ceph. */
  s3Endpoint?: string;
  s3Region: string;
  /** Leave both out on AWS to use the SDK's default credentials (the Lambda role). */
  s3AccessKey?: string;
  s3SecretKey?: string;
  /** Path-style addressing, needed by most non-AWS providers. */
  forcePathStyle?: boolean;
  /** Tenants that get runtime, messaging and identities databases. */
  tenants: string[];
  /** Buckets are `${bucketPrefix}-records`, `-versions`, `-content` and `-backups`. */
  bucketPrefix: string;
  /** Prefix of every database name. Default `xronox`. */
  dbName?: string;
}

/**
 * A production config: a MongoDB or PostgreSQL connection and an S3 connection (both named `primary`) with one
 * bucket per kind of data, and every database type configured as in `createDevConfig`; each
 * tenant's runtime database has its own analytics database. Leave the S3 keys out on AWS to use
 * the SDK's default credentials (the Lambda role).
 */
export function createProductionConfig(options: ProductionConfigOptions): XronoxConfig {
  const { bucketPrefix: p } = options;
  const builder = new XronoxConfigBuilder();
  addIndexConnection(builder, 'primary', options, null);
  builder.addS3Connection('primary', {
    endpoint: options.s3Endpoint,
    region: options.s3Region,
    ...(options.s3AccessKey !== undefined ? { accessKey: options.s3AccessKey } : {}),
    ...(options.s3SecretKey !== undefined ? { secretKey: options.s3SecretKey } : {}),
    forcePathStyle: options.forcePathStyle,
    buckets: { records: `${p}-records`, versions: `${p}-versions`, content: `${p}-content`, backups: `${p}-backups` },
  });
  return addEveryDatabase(builder, {
    ref: 'primary',
    s3Ref: 'primary',
    prefix: options.dbName ?? 'xronox',
    tenants: options.tenants,
    analytics: true,
  }).build();
}

interface Layout {
  ref: string;
  s3Ref?: string;
  prefix: string;
  tenants: readonly string[];
  analytics: boolean;
}

function addEveryDatabase(builder: XronoxConfigBuilder, { ref, s3Ref, prefix, tenants, analytics }: Layout): XronoxConfigBuilder {
  const refs = { mongoRef: ref, s3Ref };
  builder
    .addKnowledgeDatabase({ type: 'generic', ...refs, dbName: dbNameOf(prefix, 'knowledge') })
    .addMetadataDatabase({ type: 'generic', ...refs, dbName: dbNameOf(prefix, 'metadata') })
    .addLogsDatabase({ ...refs, dbName: dbNameOf(prefix, 'logs') });
  for (const tenantId of tenants) {
    builder
      .addRuntimeDatabase({
        tenantId,
        ...refs,
        dbName: dbNameOf(prefix, 'runtime', tenantId),
        analyticsDbName: analytics ? dbNameOf(prefix, 'analytics', tenantId) : undefined,
      })
      .addMessagingDatabase({ tenantId, ...refs, dbName: dbNameOf(prefix, 'messaging', tenantId) })
      .addIdentitiesDatabase({ tenantId, ...refs, dbName: dbNameOf(prefix, 'identities', tenantId) });
  }
  return builder;
}

/**
 * `${prefix}_${kind}_${tenant}`, with the tenant id lowercased and its `-` turned into `_`
 * (MongoDB refuses two database names that differ only in case; two tenants that meet here are
 * reported by `loadConfig` as sharing a database). Names over 63 characters keep their start and
 * end in a hash, so they stay valid and distinct.
 */
function dbNameOf(prefix: string, kind: string, tenantId?: string): string {
  const name = tenantId === undefined ? `${prefix}_${kind}` : `${prefix}_${kind}_${tenantId.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`;
  if (name.length <= MAX_DB_NAME) return name;
  const hash = sha256Hex(name).slice(0, 8);
  return `${name.slice(0, MAX_DB_NAME - hash.length - 1)}_${hash}`;
}

/**
 * Adds the one index-store connection the options name (`sqlitePath`, `mongoUri` or
 * `postgresUri`), or the embedded default when they name none and there is one.
 */
function addIndexConnection(
  builder: XronoxConfigBuilder,
  ref: string,
  options: { sqlitePath?: string; mongoUri?: string; postgresUri?: string },
  embeddedDefault: string | null,
): void {
  const given = (['sqlitePath', 'mongoUri', 'postgresUri'] as const).filter((key) => options[key] !== undefined);
  if (given.length > 1) throw new ConfigError([{ path: given[1]!, message: `and ${given[0]} are both given; give one of them` }]);
  if (options.mongoUri !== undefined) builder.addMongoConnection(ref, options.mongoUri);
  else if (options.postgresUri !== undefined) builder.addPostgresConnection(ref, options.postgresUri);
  else if (options.sqlitePath !== undefined || embeddedDefault !== null) builder.addEmbeddedConnection(ref, options.sqlitePath ?? embeddedDefault!);
  else throw new ConfigError([{ path: 'mongoUri', message: 'or postgresUri is needed: a production config names its index store' }]);
}
