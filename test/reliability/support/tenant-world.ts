/**
 * The world of the tenant isolation fuzzer: three tenants, each with its own runtime, knowledge
 * (tenant tier), messaging and identities databases and one API key, served over real HTTP by
 * the test harness on the run's backend (`XRONOX_TEST_BACKEND`); and a model of what each tenant
 * wrote, against which every answer is judged. On PostgreSQL, gamma's databases are on a
 * connection of their own under a role that cannot use the others' schemas
 * (tenant-world-postgres.ts).
 */
import { createDevConfig } from '../../../core/config/presets.js';
import type { XronoxConfigInput } from '../../../core/config/schema.js';
import { hashApiKey } from '../../../functions/api/api-keys.js';
import { BACKEND, requirePostgres, startServer, type TestServer } from '../../http/harness.js';
import { postgresTenantConnections, type PostgresTenantConnections } from './tenant-world-postgres.js';

export const TENANTS = ['acme', 'beta', 'gamma'] as const;
export type Tenant = (typeof TENANTS)[number];

/** One admin key per tenant, granted that tenant only (no domain, no generic tier). */
export const TENANT_KEYS: Record<Tenant, string> = {
  acme: 'xrx_isolation-acme-0123456789abcdef0123',
  beta: 'xrx_isolation-beta-0123456789abcdef0123',
  gamma: 'xrx_isolation-gamma-0123456789abcdef012',
};

/** The tenant whose databases are on a connection (and, on PostgreSQL, a role) of their own. */
export const CONFINED: Tenant = 'gamma';

export interface TenantWorld {
  server: TestServer;
  /** On PostgreSQL: the connections, roles and schema prefix of the world; else `null`. */
  postgres: PostgresTenantConnections | null;
  close(): Promise<void>;
}

export async function startTenantWorld(): Promise<TenantWorld> {
  // Only `databases` is taken from this preset: the harness supplies the store and blob folder.
  const dev = createDevConfig({ sqlitePath: 'unused.sqlite', basePath: 'unused', tenants: [...TENANTS] });
  if (BACKEND === 'postgres') await requirePostgres();
  const postgres = BACKEND === 'postgres' ? await postgresTenantConnections() : null;
  const refOf = (tenantId: Tenant) => (postgres && tenantId === CONFINED ? 'confined' : 'local');
  const perTenant = (dbName: (tenantId: Tenant) => string) => TENANTS.map((tenantId) => ({ tenantId, dbConnRef: refOf(tenantId), dbName: dbName(tenantId) }));
  const databases: XronoxConfigInput['databases'] = {
    ...dev.databases,
    runtime: { tenantDatabases: perTenant((t) => `xronox_dev_runtime_${t}`) },
    messaging: { tenantDatabases: perTenant((t) => `xronox_dev_messaging_${t}`) },
    identities: { tenantDatabases: perTenant((t) => `xronox_dev_identities_${t}`) },
    knowledge: { ...dev.databases.knowledge, tenantDatabases: perTenant((t) => `iso_knowledge_${t}`) },
  };
  try {
    const server = await startServer({
      api: { keys: TENANTS.map((t) => ({ id: `${t}-admin`, sha256: hashApiKey(TENANT_KEYS[t]), role: 'admin' as const, tenants: [t] })) },
      ...(postgres ? { schemaPrefix: postgres.schemaPrefix } : {}),
      config: {
        ...(postgres ? { dbConnections: postgres.dbConnections } : {}),
        databases,
        collectionMaps: {
          orders: { indexedProps: ['owner', 'n', 'marker'] },
          notes: { indexedProps: ['owner', 'n', 'marker'] },
        },
      },
    });
    return {
      server,
      postgres,
      async close() {
        try {
          await server.close();
        } finally {
          await postgres?.dropRoles();
        }
      },
    };
  } catch (err) {
    await postgres?.dropRoles();
    throw err;
  }
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

/**
 * Strings and filter keys that would reach across the boundary if a store spliced filter text into
 * its SQL (quotes, comments, statement breaks, LIKE and regex wildcards, JSON-path and cast syntax,
 * another schema's qualified name), with the victim's record id and schema name worked in. A
 * store that binds every value answers each as a value that matches nothing; a key that is no
 * property name is refused.
 */
export function injectionValues(victimId: string, victimSchema: string): string[] {
  return [
    `' OR '1'='1`,
    `x' OR id = '${victimId}' --`,
    `'); DELETE FROM heads; --`,
    `") OR TRUE --`,
    `\\'; SELECT pg_sleep(1); --`,
    `$$ OR TRUE $$`,
    `%`,
    `_`,
    `.*`,
    `*/ OR 1=1 /*`,
    `a\u0000' OR 1=1`,
    `'||(SELECT string_agg(id, ',') FROM ${victimSchema}._heads)||'`,
    `${victimSchema}._heads`,
    `{"owner": {"$ne": null}}`,
  ];
}

export const INJECTION_KEYS = [`marker' OR '1'='1`, `marker") OR TRUE --`, `meta->>'owner'`, `owner::text`, `marker; DROP TABLE heads`, `doc -> 'tenantId'`] as const;
