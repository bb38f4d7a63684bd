import { DATABASE_TYPES, type DatabaseType } from '../config/schema.js';
import { ensureDocumentDatabase } from '../domains/maintenance.js';
import { isDocumentDatabaseType } from '../domains/open.js';
import { ValidationError } from '../errors.js';
import { Router } from '../routing/router.js';
import type { JobHost } from './job.js';

/** One configured database that `migrateDatabases` worked on. */
export interface MigrationReport {
  databaseType: DatabaseType;
  tier: 'generic' | 'domain' | 'tenant';
  tenantId?: string;
  domain?: string;
  dbName: string;
  /**
   * The index store's part, per database name it needs (the database itself, and a runtime
   * database's analytics database when that has a name of its own): `created` by this run, or
   * `present` already (a store that makes everything when it opens, SQLite, always says `present`).
   */
  index: Record<string, 'created' | 'present'>;
  /** Messaging and identities: per collection, the index names the document store holds afterwards. */
  collections?: Record<string, string[]>;
  /** Why this database failed; the others were still done. */
  error?: string;
}

export interface MigrateOptions {
  /** Only these types (default: every type). */
  databaseTypes?: readonly DatabaseType[];
  /** Only the tenant databases of these tenants (default: every configured database of the types). */
  tenants?: readonly string[];
}

/**
 * `xronox migrate`: creates ahead of time everything each configured database needs on its
 * stores, so that the role the service then runs as needs no right to create anything: on
 * PostgreSQL the database's schema with the index store's tables (every database has them: its
 * records, or at least the jobs' leases), the analytics database's; on MongoDB the database's
 * queues, the collections of every configured collection and every index, builds awaited; and for messaging and
 * identities every collection with its declared indexes. Idempotent, and safe while the service
 * runs or another migrate does the same (creators queue on a lock per schema, and the ones that
 * follow find it done). A database that fails is reported and the others are still done.
 * Dynamic tenants are in no config list: their databases are created on first use, which needs
 * a role that may create them.
 */
export async function migrateDatabases(host: Pick<JobHost, 'config' | 'jobTarget' | 'documentStoreFor'>, options: MigrateOptions = {}): Promise<MigrationReport[]> {
  const types = options.databaseTypes ?? DATABASE_TYPES;
  for (const t of types) {
    if (!(DATABASE_TYPES as readonly string[]).includes(t)) throw new ValidationError(`databaseTypes: expected ${DATABASE_TYPES.join(', ')}; got "${String(t)}"`, { path: 'databaseTypes' });
  }
  const tenants = options.tenants ? new Set(options.tenants) : null;
  const out: MigrationReport[] = [];
  for (const db of new Router(host.config).databases()) {
    if (!types.includes(db.databaseType)) continue;
    if (tenants && !(db.tier === 'tenant' && db.tenantId !== undefined && tenants.has(db.tenantId))) continue;
    const report: MigrationReport = {
      databaseType: db.databaseType,
      tier: db.tier,
      ...(db.tenantId !== undefined ? { tenantId: db.tenantId } : {}),
      ...(db.domain !== undefined ? { domain: db.domain } : {}),
      dbName: db.dbName,
      index: {},
    };
    try {
      const { index } = host.jobTarget(db);
      for (const dbName of new Set([db.dbName, db.analyticsDbName])) {
        report.index[dbName] = (await index.prepareDatabase(dbName)) ? 'created' : 'present';
      }
      if (isDocumentDatabaseType(db.databaseType)) report.collections = await ensureDocumentDatabase(host.documentStoreFor(db), host.config, db);
    } catch (err) {
      report.error = err instanceof Error ? err.message : String(err);
    }
    out.push(report);
  }
  return out;
}
