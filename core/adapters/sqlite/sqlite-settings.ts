import type { DocumentStore } from '../../contracts/document-store.js';
import type { IndexStore } from '../../contracts/index-store.js';
import type { AdapterMembers } from '../../store/guard.js';

/** What the registry says of the SQLite stores before their modules (and better-sqlite3) are loaded. */

/** The SQLite index store's plain members. */
export const SQLITE_INDEX_STORE_MEMBERS = {
  name: 'sqlite',
  capabilities: { multiProcess: true },
} as const satisfies AdapterMembers<IndexStore>;

/** The SQLite document store's plain members. */
export const SQLITE_DOCUMENT_STORE_MEMBERS = {
  name: 'sqlite',
  capabilities: { nativeExpiry: false, atomicReplace: true },
} as const satisfies AdapterMembers<DocumentStore>;
