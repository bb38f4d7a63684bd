import type { XronoxConfig } from '../config/load.js';
import type { DatabaseType } from '../config/schema.js';
import type { BlobStore } from '../contracts/blob-store.js';
import type { CollectionSpec, Doc, DocumentStore } from '../contracts/document-store.js';
import { TenantAccessError } from '../errors.js';
import type { Namespace } from '../contracts/index-store.js';
import type { DatabaseRoute, Route, RouteRequest } from '../routing/router.js';
import { checkStoredIdentityDoc, IdentitiesCollection, type IdentityAudit, type IdentityCollectionName, identityCollectionName, IDENTITY_COLLECTIONS, IDENTITY_SPECS } from './identities/identities.js';
import { checkStoredMessagingDoc, MESSAGING_COLLECTIONS, MESSAGING_SPECS, MessagingCollection, type MessagingCollectionName, messagingCollectionName, type MessagingSettings } from './messaging/messaging.js';

/** The database types whose collections are plain document collections (the document store), not records. */
export const DOCUMENT_DATABASE_TYPES = ['messaging', 'identities'] as const;
export type DocumentDatabaseType = (typeof DOCUMENT_DATABASE_TYPES)[number];
/** The types served by the record collection API (`Collection`): runtime, knowledge, metadata, logs. */
export type RecordDatabaseType = Exclude<DatabaseType, DocumentDatabaseType>;
/** A route request for a record collection. */
export type RecordRouteRequest = RouteRequest & { databaseType: RecordDatabaseType };

export function isDocumentDatabaseType(type: string): type is DocumentDatabaseType {
  return (DOCUMENT_DATABASE_TYPES as readonly string[]).includes(type);
}

export interface DocumentDeps {
  readonly config: XronoxConfig;
  readonly store: DocumentStore;
  /** The database's blob store, opened on first use (large message payloads). */
  readonly blob: () => BlobStore;
  readonly maxDocumentBytes: number;
  /** Identity audit events: the tenant's runtime database. */
  readonly audit: IdentityAudit;
}

/** The handle of a messaging or identities collection for a resolved route. */
export function openDocumentCollection(route: Route, deps: DocumentDeps): MessagingCollection | IdentitiesCollection {
  const base = {
    store: deps.store,
    ns: { dbName: route.dbName, collection: route.collection } satisfies Namespace,
    maxDocumentBytes: deps.maxDocumentBytes,
    tenantId: route.tier === 'tenant' ? route.tenantId : undefined,
  };
  if (route.databaseType === 'identities') {
    return new IdentitiesCollection({ ...base, collection: identityCollectionName(route.collection), audit: deps.audit });
  }
  const content = route.blobs.content;
  return new MessagingCollection({
    ...base,
    collection: messagingCollectionName(route.collection, captureDeliveries(deps.config, route)),
    content: content ? { location: content, blob: deps.blob } : undefined,
    settings: messagingSettings(deps.config),
  });
}

/** The collections (with their specs) a document database holds; what `migrate` creates. */
export function documentCollectionsOf(config: XronoxConfig, db: DatabaseRoute): Array<{ collection: string; spec: CollectionSpec }> {
  if (db.databaseType === 'identities') return IDENTITY_COLLECTIONS.map((collection) => ({ collection, spec: IDENTITY_SPECS[collection] }));
  if (db.databaseType !== 'messaging') return [];
  const deliveries = captureDeliveries(config, db);
  return MESSAGING_COLLECTIONS.filter((c) => c !== 'deliveries' || deliveries).map((collection) => ({ collection, spec: MESSAGING_SPECS[collection] }));
}

/**
 * A document collection of a messaging or identities database, by its name, as restores need
 * it: its spec and the check of a stored document (the collection's own rules, and in a tenant's
 * database the tenant rule); `null` for a name the type does not have.
 */
export function storedDocumentRules(databaseType: string, collection: string, tenantId: string | undefined): { spec: CollectionSpec; check: (doc: Doc) => void } | null {
  const tenantRule = (doc: Doc) => {
    if (tenantId !== undefined && doc.tenantId !== tenantId) throw new TenantAccessError(`A document of tenant ${JSON.stringify(doc.tenantId)} cannot be in tenant "${tenantId}"'s database`);
  };
  if (databaseType === 'identities' && (IDENTITY_COLLECTIONS as readonly string[]).includes(collection)) {
    const name = collection as IdentityCollectionName;
    return { spec: IDENTITY_SPECS[name], check: (doc) => (checkStoredIdentityDoc(name, doc), tenantRule(doc)) };
  }
  if (databaseType === 'messaging' && (MESSAGING_COLLECTIONS as readonly string[]).includes(collection)) {
    const name = collection as MessagingCollectionName;
    return { spec: MESSAGING_SPECS[name], check: (doc) => (checkStoredMessagingDoc(name, doc), tenantRule(doc)) };
  }
  return null;
}

export function messagingSettings(config: XronoxConfig): MessagingSettings {
  const retention = config.jobs?.retention;
  return {
    ...(retention?.sharedMemoryDays !== undefined ? { sharedMemoryDays: retention.sharedMemoryDays } : {}),
    ...(retention?.messagingTtlDays !== undefined ? { ttlDays: retention.messagingTtlDays } : {}),
  };
}

/** `captureDeliveries` of the configured entry the route comes from (dynamic tenants: off). */
export function captureDeliveries(config: XronoxConfig, route: Pick<DatabaseRoute, 'tier' | 'tenantId' | 'domain'>): boolean {
  const section = config.databases.messaging;
  if (!section) return false;
  const entry =
    route.tier === 'generic'
      ? section.genericDatabase
      : route.tier === 'domain'
        ? section.domainsDatabases?.find((d) => d.domain === route.domain)
        : section.tenantDatabases?.find((d) => d.tenantId === route.tenantId);
  return (entry as { captureDeliveries?: boolean } | undefined)?.captureDeliveries === true;
}
