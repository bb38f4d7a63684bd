import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Xronox } from '../../core/xronox.js';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';

/**
 * An embedded deployment (one real SQLite file, a local blob folder) with messaging, identities,
 * runtime and logs databases for the tenants `acme` and `beta` (`acme` captures deliveries), plus
 * generic messaging. Every test file gets its own folder.
 */
export function domainDeployment(settings: Record<string, unknown> = {}) {
  const dir = tempDir('xronox-domains');
  const sqlitePath = join(dir.path, 'index.db');
  const tenant = (type: string, tenantId: string, extra: Record<string, unknown> = {}) => ({ tenantId, dbConnRef: 'local', dbName: `${type}_${tenantId}`, ...extra });
  const config = {
    dbConnections: { local: { sqlitePath } },
    localStorage: { basePath: join(dir.path, 'blobs'), enabled: true },
    databases: {
      runtime: { tenantDatabases: [tenant('rt', 'acme'), tenant('rt', 'beta')] },
      messaging: {
        genericDatabase: { dbConnRef: 'local', dbName: 'msg_generic' },
        tenantDatabases: [tenant('msg', 'acme', { captureDeliveries: true }), tenant('msg', 'beta')],
      },
      identities: { tenantDatabases: [tenant('ids', 'acme'), tenant('ids', 'beta'), tenant('ids', 'noaudit')] },
      logs: { genericDatabase: { dbConnRef: 'local', dbName: 'logs_generic' } },
    },
    ...settings,
  };
  const open = (): Xronox => initXronox(config);
  return {
    dir,
    sqlitePath,
    blobsPath: join(dir.path, 'blobs'),
    config,
    open,
    /** A raw look at the SQLite file: what is really there, independent of the adapter. */
    inspect<T>(query: (db: Database.Database) => T): T {
      const db = new Database(sqlitePath, { readonly: true });
      try {
        return query(db);
      } finally {
        db.close();
      }
    },
  };
}

/** The indexes SQLite holds on a document collection's table, read from `sqlite_master` and `PRAGMA index_list`. */
export function sqliteIndexes(db: Database.Database, dbName: string, collection: string): Array<{ name: string; unique: boolean; partial: boolean; sql: string }> {
  const enc = (n: string) => n.replace(/[A-Z]/g, (c) => `^${c.toLowerCase()}`);
  const table = `docs/${enc(dbName)}/${enc(collection)}`;
  const list = db.pragma(`index_list("${table}")`) as Array<{ name: string; unique: number; partial: number }>;
  return list
    .filter((i) => !i.name.endsWith('/~expiry'))
    .map((i) => ({
      // SQLite names ignore case, so the adapter writes an upper-case letter as `^` + lower case.
      name: i.name.slice(table.length + 1).replace(/\^([a-z])/g, (_m, c: string) => c.toUpperCase()),
      unique: i.unique === 1,
      partial: i.partial === 1,
      sql: (db.prepare(`SELECT sql FROM sqlite_master WHERE name = ?`).get(i.name) as { sql: string }).sql,
    }))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** Every row of a document collection's table, raw. */
export function sqliteRows(db: Database.Database, dbName: string, collection: string): Array<{ doc: string; expires_at: string | null }> {
  const enc = (n: string) => n.replace(/[A-Z]/g, (c) => `^${c.toLowerCase()}`);
  const exists = db.prepare(`SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?`).get(`docs/${enc(dbName)}/${enc(collection)}`) as { n: number };
  if (exists.n === 0) return [];
  return db.prepare(`SELECT doc, expires_at FROM "docs/${enc(dbName)}/${enc(collection)}" ORDER BY id`).all() as Array<{ doc: string; expires_at: string | null }>;
}
