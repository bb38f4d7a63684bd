/**
 * The world of the tenant isolation fuzzer: three tenants, each with its own runtime, knowledge
 * (tenant tier), messaging and identities databases and one API key, served over real HTTP by
 * the test harness; and a model of what each tenant wrote, against which every answer is judged.
 */
import { createDevConfig } from '../../../core/config/presets.js';
import type { XronoxConfigInput } from '../../../core/config/schema.js';
import { hashApiKey } from '../../../functions/api/api-keys.js';
import { startServer, type TestServer } from '../../http/harness.js';

export const TENANTS = ['acme', 'beta', 'gamma'] as const;
export type Tenant = (typeof TENANTS)[number];

/** One admin key per tenant, granted that tenant only (no domain, no generic tier). */
export const TENANT_KEYS: Record<Tenant, string> = {
  acme: 'xrx_isolation-acme-0123456789abcdef0123',
  beta: 'xrx_isolation-beta-0123456789abcdef0123',
  gamma: 'xrx_isolation-gamma-0123456789abcdef012',
};

export async function startTenantWorld(): Promise<TestServer> {
  // Only `databases` is taken from this preset: the harness supplies the SQLite file and blob folder.
  const dev = createDevConfig({ sqlitePath: 'unused.sqlite', basePath: 'unused', tenants: [...TENANTS] });
  const databases: XronoxConfigInput['databases'] = {
    ...dev.databases,
    knowledge: { ...dev.databases.knowledge, tenantDatabases: TENANTS.map((tenantId) => ({ tenantId, dbConnRef: 'local', dbName: `iso_knowledge_${tenantId}` })) },
  };
  return startServer({
    api: { keys: TENANTS.map((t) => ({ id: `${t}-admin`, sha256: hashApiKey(TENANT_KEYS[t]), role: 'admin' as const, tenants: [t] })) },
    config: {
      databases,
      collectionMaps: {
        orders: { indexedProps: ['owner', 'n', 'marker'] },
        notes: { indexedProps: ['owner', 'n', 'marker'] },
      },
    },
  });
}

/** A secret only `tenant` ever writes: finding it in an answer to anyone else is a leak. */
export const marker = (tenant: Tenant, n: number) => `secret-of-${tenant}-${n}`;

/** What one tenant wrote: records by collection (id → ov and data), messaging and identity documents by key. */
export interface TenantModel {
  records: Record<'orders' | 'notes', Map<string, { ov: number; data: Record<string, unknown> }>>;
  memory: Map<string, unknown>;
  users: Map<string, string>;
  /** Identity changes write an audit event each into the tenant's runtime collection `identity_events`. */
  identityEvents: number;
}

export function emptyModel(): TenantModel {
  return { records: { orders: new Map(), notes: new Map() }, memory: new Map(), users: new Map(), identityEvents: 0 };
}
