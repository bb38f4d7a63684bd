import type { XronoxConfig } from '../config/load.js';
import type { DbConnectionConfig, SpacesConnectionConfig } from '../config/schema.js';
import type { BlobStore } from '../contracts/blob-store.js';
import type { IndexStore } from '../contracts/index-store.js';
import { ClosedError, StorageError, ValidationError, XronoxError } from '../errors.js';
import { assertName } from '../routing/names.js';
import { type Route, type RouteRequest, Router } from '../routing/router.js';
import { BlobSync, type SyncReport } from './blob-sync.js';
import { Collection, type ParsedCounterRule } from './collection.js';
import { DEFAULT_MAX_DOCUMENT_BYTES } from './documents.js';
import { parseFilter } from './filter.js';
import { guardAdapter } from './guard.js';

/** How the engine obtains adapters; the composition root (`core/xronox.ts`) provides the defaults. */
export interface AdapterFactories {
  indexStore(ref: string, connection: DbConnectionConfig): IndexStore;
  /** `ref`/`connection` are `null` for the local filesystem (`localStorage.basePath`). */
  blobStore(ref: string | null, connection: SpacesConnectionConfig | null, localBasePath: string | undefined): BlobStore;
}

export interface CounterTotalsRequest extends Partial<RouteRequest> {
  /** Alternatively, the documented form: a database (or analytics database) name. */
  dbName?: string;
  collection: string;
}

/**
 * One Xronox instance: a config, the adapters it opened (lazily, one per connection) and the
 * background blob sync. Instances share nothing, so two in one process never see each other's
 * clients or queues.
 */
export class Xronox {
  readonly config: XronoxConfig;
  readonly #router: Router;
  readonly #factories: AdapterFactories;
  readonly #indexStores = new Map<string, IndexStore>();
  readonly #blobStores = new Map<string, BlobStore>();
  readonly #sync: BlobSync;
  readonly #counterRules: readonly ParsedCounterRule[];
  #closed = false;

  /** Counter totals per collection: created, updated, deleted, restored and each counter rule. */
  readonly counters = {
    getTotals: (request: CounterTotalsRequest): Promise<Record<string, number>> => this.#getTotals(request),
  };

  constructor(config: XronoxConfig, factories: AdapterFactories, options: { onBackgroundError?: (err: unknown) => void } = {}) {
    this.config = config;
    this.#router = new Router(config);
    this.#factories = factories;
    this.#sync = new BlobSync(options.onBackgroundError ?? logBackgroundError);
    this.#counterRules = (config.counterRules?.rules ?? []).map((r) => ({
      name: r.name,
      on: new Set(r.on ?? ['CREATE', 'UPDATE', 'DELETE']),
      scope: r.scope ?? 'payload',
      filter: parseFilter(r.when, () => true),
    }));
  }

  /** A collection of the database that the type, tier and tenant (or domain) route to. */
  with(request: RouteRequest): Collection {
    this.#assertOpen();
    const route = this.#router.resolve(request);
    return new Collection({
      route,
      index: this.#indexFor(route),
      blob: this.#blobFor(route),
      sync: this.#sync,
      maxDocumentBytes: this.config.limits?.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES,
      logicalDelete: this.config.logicalDelete.enabled,
      counterRules: this.#counterRules,
    });
  }

  /** Resolves a route without opening anything (for inspection and tests). */
  route(request: RouteRequest): Route {
    return this.#router.resolve(request);
  }

  /** Waits until the blob copies of every write so far have been attempted. */
  async flush(): Promise<SyncReport> {
    return this.#sync.flush();
  }

  /**
   * Finishes the blob sync of every record the index still lists as pending, in every configured
   * database: run after a crash or an outage. Idempotent.
   */
  async repair(): Promise<SyncReport> {
    this.#assertOpen();
    const total: SyncReport = { synced: 0, failed: 0 };
    for (const db of this.#router.databases()) {
      const report = await this.#sync.repair({
        index: this.#indexFor(db),
        blob: this.#blobFor(db),
        dbName: db.dbName,
        versioned: db.policy.versioned,
        blobs: db.blobs,
      });
      total.synced += report.synced;
      total.failed += report.failed;
    }
    return total;
  }

  /** Drains the blob sync, then closes every client this instance opened. Idempotent. */
  async shutdown(): Promise<void> {
    if (this.#closed) return;
    await this.#sync.close();
    this.#closed = true;
    const stores = [...this.#indexStores.values(), ...this.#blobStores.values()];
    this.#indexStores.clear();
    this.#blobStores.clear();
    await Promise.all(stores.map((s) => s.close()));
  }

  get closed(): boolean {
    return this.#closed;
  }

  async #getTotals(request: CounterTotalsRequest): Promise<Record<string, number>> {
    this.#assertOpen();
    if (typeof request !== 'object' || request === null) throw new ValidationError('getTotals takes { databaseType, tier, tenantId, collection } or { dbName, collection }');
    const collection = assertName('collection', request.collection);
    if (request.dbName !== undefined) {
      const db = this.#router.databases().find((d) => d.analyticsDbName === request.dbName || d.dbName === request.dbName);
      if (!db) throw new ValidationError(`No configured database is named "${String(request.dbName)}"`, { path: 'dbName' });
      return this.#indexFor(db).getCounters(db.analyticsDbName, collection);
    }
    const route = this.#router.resolve(request as RouteRequest);
    return this.#indexFor(route).getCounters(route.analyticsDbName, collection);
  }

  #indexFor(route: { dbConnRef: string }): IndexStore {
    let store = this.#indexStores.get(route.dbConnRef);
    if (!store) {
      const connection = this.config.dbConnections[route.dbConnRef]!;
      store = guardAdapter(opening('index store', () => this.#factories.indexStore(route.dbConnRef, connection)), () => this.#closed);
      this.#indexStores.set(route.dbConnRef, store);
    }
    return store;
  }

  #blobFor(route: { spaceConnRef: string | null }): BlobStore {
    const key = route.spaceConnRef ?? '\u0000local';
    let store = this.#blobStores.get(key);
    if (!store) {
      const connection = route.spaceConnRef ? this.config.spacesConnections[route.spaceConnRef]! : null;
      store = guardAdapter(
        opening('blob store', () => this.#factories.blobStore(route.spaceConnRef, connection, this.config.localStorage?.basePath)),
        () => this.#closed,
      );
      this.#blobStores.set(key, store);
    }
    return store;
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError();
  }
}

function opening<T>(what: string, open: () => T): T {
  try {
    return open();
  } catch (err) {
    if (err instanceof XronoxError) throw err;
    throw new StorageError(what, 'open', err, `Could not open the ${what}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** The default for background failures: one line on stderr. The outbox keeps the work; it is retried. */
function logBackgroundError(err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  console.error(`[xronox] background blob sync failed, will retry: ${message}`);
}
