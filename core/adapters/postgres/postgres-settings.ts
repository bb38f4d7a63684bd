import type { DbConnectionConfig } from '../../config/schema.js';
import type { DocumentStore } from '../../contracts/document-store.js';
import type { IndexStore } from '../../contracts/index-store.js';
import type { AdapterMembers } from '../../store/guard.js';

/** What the registry says of the PostgreSQL index store before its module (and pg) is loaded. */
export const POSTGRES_INDEX_STORE_MEMBERS = {
  name: 'postgres',
  capabilities: { multiProcess: true },
} as const satisfies AdapterMembers<IndexStore>;

/** What the registry says of the PostgreSQL document store before its module (and pg) is loaded. */
export const POSTGRES_DOCUMENT_STORE_MEMBERS = {
  name: 'postgres',
  capabilities: { nativeExpiry: false, atomicReplace: true },
} as const satisfies AdapterMembers<DocumentStore>;

/**
 * The options both PostgreSQL stores of a connection take from its config: the same pool
 * options, so that the index store and the document store share one pool.
 */
export function postgresOptions(connection: DbConnectionConfig): { schemaPrefix?: string; pool?: { statementTimeoutMillis?: number; max?: number } } {
  const { schemaPrefix, statementTimeoutMs, maxConnections } = connection;
  const pool = {
    ...(statementTimeoutMs === undefined ? {} : { statementTimeoutMillis: statementTimeoutMs }),
    ...(maxConnections === undefined ? {} : { max: maxConnections }),
  };
  return {
    ...(schemaPrefix === undefined ? {} : { schemaPrefix }),
    ...(Object.keys(pool).length === 0 ? {} : { pool }),
  };
}
