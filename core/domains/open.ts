import type { XronoxConfig } from '../config/load.js';
import type { DatabaseType } from '../config/schema.js';
import type { BlobStore } from '../contracts/blob-store.js';
import type { CollectionSpec, DocumentStore } from '../contracts/document-store.js';
import type { Namespace } from '../contracts/index-store.js';
import type { DatabaseRoute, Route, RouteRequest } from '../routing/router.js';
import { IdentitiesCollection, type IdentityAudit, identityCollectionName, IDENTITY_COLLECTIONS, IDENTITY_SPECS } from './identities/identities.js';
import { MESSAGING_COLLECTIONS, MESSAGING_SPECS, MessagingCollection, messagingCollectionName, type MessagingSettings } from './messaging/messaging.js';

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
