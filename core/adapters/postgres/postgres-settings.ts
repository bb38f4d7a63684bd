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
