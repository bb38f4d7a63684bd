import type { IndexStore } from '../../contracts/index-store.js';
import type { AdapterMembers } from '../../store/guard.js';

/** What the registry says of the PostgreSQL index store before its module (and pg) is loaded. */
export const POSTGRES_INDEX_STORE_MEMBERS = {
  name: 'postgres',
  capabilities: { multiProcess: true },
} as const satisfies AdapterMembers<IndexStore>;
