import type { XronoxConfig } from '../config/load.js';
import type { DocumentStore } from '../contracts/document-store.js';
import { ValidationError } from '../errors.js';
import { type DatabaseRoute, Router } from '../routing/router.js';
import { DOCUMENT_DATABASE_TYPES, type DocumentDatabaseType, documentCollectionsOf, isDocumentDatabaseType } from './open.js';

/** What document maintenance needs of the facade (`Xronox` implements it; this layer never imports it). */
export interface DocumentHost {
  readonly config: XronoxConfig;
  documentStoreFor(db: Pick<DatabaseRoute, 'dbConnRef'>): DocumentStore;
}

/** One database that `migrateDocuments` or `expireDocuments` worked on. */
export interface DocumentDatabaseReport {
  databaseType: DocumentDatabaseType;
  tier: DatabaseRoute['tier'];
  tenantId?: string;
  domain?: string;
  dbName: string;
  /** Per collection: the index names the backend holds afterwards (migrate), or how many documents expired (expire). */
  collections: Record<string, string[] | number>;
  /** Why this database failed; the others were still done. */
  error?: string;
}

export interface DocumentMaintenanceOptions {
  /** Only these types (default: messaging and identities). */
  databaseTypes?: readonly DocumentDatabaseType[];
  /** Only the tenant databases of these tenants (default: every configured database of the types). */
  tenants?: readonly string[];
}

/**
 * The document part of `xronox migrate` (which runs `migrateDatabases`, core/jobs/migrate.ts):
 * creates every collection of every configured messaging (and identities) database with its
 * indexes, idempotently, and reports the indexes each one holds afterwards. Dynamic tenants are in no config list; their collections are created on first use.
 * A database that fails is reported and the others are still done.
 */
export async function migrateDocuments(xronox: DocumentHost, options: DocumentMaintenanceOptions = {}): Promise<DocumentDatabaseReport[]> {
  return eachDatabase(xronox, options, async (db, report) => {
    report.collections = await ensureDocumentDatabase(xronox.documentStoreFor(db), xronox.config, db);
  });
}

/** One database's part of `migrateDocuments`: its collections and indexes, and the index names each holds afterwards. */
export async function ensureDocumentDatabase(store: DocumentStore, config: XronoxConfig, db: DatabaseRoute): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const { collection, spec } of documentCollectionsOf(config, db)) {
    const ns = { dbName: db.dbName, collection };
    await store.ensureCollection(ns, spec);
    out[collection] = (await store.listIndexes(ns)).map((i) => i.name);
  }
  return out;
}

/**
 * Retention of document databases: deletes, in every collection of every configured messaging
 * and identities database, the documents that expired by `now` (shared memory past its
 * `retentionDays`, sessions past `expiresAt`…). Reads already skip them; this frees the space
 * (MongoDB's TTL monitor does the same by itself within a minute or so). The retention job calls it.
 */
export async function expireDocuments(xronox: DocumentHost, now: Date = new Date(), options: DocumentMaintenanceOptions = {}): Promise<DocumentDatabaseReport[]> {
  return eachDatabase(xronox, options, async (db, report) => {
    report.collections = await expireDocumentDatabase(xronox.documentStoreFor(db), xronox.config, db, now);
  });
}

/**
 * One database's part of `expireDocuments`, over the port alone (for the retention job, which
 * holds `xronox.documentStoreFor(db)`): how many documents expired, per collection. Idempotent.
 */
export async function expireDocumentDatabase(store: DocumentStore, config: XronoxConfig, db: DatabaseRoute, now: Date): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const { collection } of documentCollectionsOf(config, db)) out[collection] = await store.deleteExpired({ dbName: db.dbName, collection }, now);
  return out;
}

async function eachDatabase(
  xronox: DocumentHost,
  options: DocumentMaintenanceOptions,
  work: (db: DatabaseRoute & { databaseType: DocumentDatabaseType }, report: DocumentDatabaseReport) => Promise<void>,
): Promise<DocumentDatabaseReport[]> {
  const types = options.databaseTypes ?? DOCUMENT_DATABASE_TYPES;
  for (const t of types) if (!isDocumentDatabaseType(t)) throw new ValidationError(`Only ${DOCUMENT_DATABASE_TYPES.join(' and ')} databases hold document collections; got "${String(t)}"`, { path: 'databaseTypes' });
  const tenants = options.tenants ? new Set(options.tenants) : null;
  const out: DocumentDatabaseReport[] = [];
  for (const db of new Router(xronox.config).databases()) {
    const type = db.databaseType;
    if (!isDocumentDatabaseType(type) || !types.includes(type)) continue;
    if (tenants && !(db.tier === 'tenant' && db.tenantId !== undefined && tenants.has(db.tenantId))) continue;
    const report: DocumentDatabaseReport = {
      databaseType: type,
      tier: db.tier,
      ...(db.tenantId !== undefined ? { tenantId: db.tenantId } : {}),
      ...(db.domain !== undefined ? { domain: db.domain } : {}),
      dbName: db.dbName,
      collections: {},
    };
    try {
      await work({ ...db, databaseType: type }, report);
    } catch (err) {
      report.error = err instanceof Error ? err.message : String(err);
    }
    out.push(report);
  }
  return out;
}
