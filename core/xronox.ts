import { loadConfig, type XronoxConfig } from './config/load.js';
import type { DocumentHost } from './domains/maintenance.js';
import type { JobHost, JobTarget } from './jobs/job.js';
import { defaultAdapters } from './adapters/registry.js';
import type { Environment } from './config/env.js';
import { findConfigFile, loadConfigFile } from './config/file.js';
import { maskConfig, maskSecretsIn } from './config/secrets.js';
import type { DbConnectionConfig, SpacesConnectionConfig } from './config/schema.js';
import type { BlobStore } from './contracts/blob-store.js';
import type { DocumentStore } from './contracts/document-store.js';
import type { CounterWindow, CounterWindowGranularity, DeadLetter, IndexStore } from './contracts/index-store.js';
import { ClosedError, ConfigError, ValidationError } from './errors.js';
import { assertName } from './foundation/names.js';
import { type DatabaseRoute, type Route, type RouteRequest, Router } from './routing/router.js';
import type { IdentitiesCollection, IdentityAudit } from './domains/identities/identities.js';
import { IDENTITY_EVENTS_COLLECTION } from './domains/identities/identities.js';
import type { MessagingCollection } from './domains/messaging/messaging.js';
import { isDocumentDatabaseType, openDocumentCollection, type RecordRouteRequest } from './domains/open.js';
import { BlobSync, DEFAULT_CLOSE_MS, type SyncErrorSource, type SyncReport } from './engine/blob-sync.js';
import { Collection, type ParsedCounterRule } from './engine/collection.js';
import { DEFAULT_MAX_CONTENT_BYTES } from './engine/content.js';
import { sweepUploads, uploadStaleMs, type UploadSweepReport } from './engine/content-uploads.js';
import { COUNTER_WINDOW_GRANULARITIES, windowGranularities } from './engine/counter-windows.js';
import { type Data, DEFAULT_MAX_DOCUMENT_BYTES } from './engine/documents.js';
import { readTiers, type TieredReadOptions, type TieredReadResult } from './engine/tiered-read.js';
import { checkNoExtraArguments, checkOptions } from './engine/arguments.js';
import { parseFilter } from './foundation/filter.js';
import { type AdapterSource, guardAdapter } from './store/guard.js';

/**
 * How the engine obtains adapters; the composition root (`core/xronox.ts`) provides the defaults
 * (`defaultAdapters`). Each is called once per connection, when its store is first used, and
 * returns the adapter, or an `AdapterSource` that loads it (its module, its SDK) when it is first
 * called; the engine wraps either once (`core/store/guard.ts`).
 */
export interface AdapterFactories {
  /** `config` lets an adapter derive per-collection settings (indexes, retention, transactions). */
  indexStore(ref: string, connection: DbConnectionConfig, config: XronoxConfig): IndexStore | AdapterSource<IndexStore>;
  /** `ref`/`connection` are `null` for the local filesystem (`localStorage.basePath`). */
  blobStore(ref: string | null, connection: SpacesConnectionConfig | null, localBasePath: string | undefined): BlobStore | AdapterSource<BlobStore>;
  /** The document store of a connection (messaging, identities); without it those types cannot be opened. */
  documentStore?(ref: string, connection: DbConnectionConfig, config: XronoxConfig): DocumentStore | AdapterSource<DocumentStore>;
}

/**
 * Where a background failure happened (the second argument of `onBackgroundError`): what failed,
 * and as much of where as is known. A record's sync names its database, collection and id; the
 * tier, tenant or domain and database type are added when the database is one the config lists
 * (a dynamic tenant's database is named by `dbName` only).
 */
export interface BackgroundErrorContext {
  /** `blob sync`: copying writes to the blob store (retried from the outbox); `upload sweep`: removing content of writes that never committed (retried by the next sweep). */
  operation: 'blob sync' | 'upload sweep';
  dbName?: string;
  collection?: string;
  id?: string;
  databaseType?: string;
  tier?: string;
  tenantId?: string;
  domain?: string;
}

/** Receives errors of background work; they never reject a caller's promise. Must not throw. */
export type BackgroundErrorHandler = (err: unknown, context: BackgroundErrorContext) => void;

/** What `with()` returns: a record collection, or a messaging or identities document collection. */
export type AnyCollection = Collection | MessagingCollection | IdentitiesCollection;

export interface CounterTotalsRequest extends Partial<RouteRequest> {
  /** Alternatively, the documented form: a database (or analytics database) name. */
  dbName?: string;
  collection: string;
}

export interface CounterWindowsOptions {
  granularity: CounterWindowGranularity;
  /** Lowest window returned (inclusive), e.g. `day:2026-01-01` or `2026-01-01`. */
  from?: string;
  /** Highest window returned (inclusive). */
  to?: string;
}

/**
 * One Xronox instance: a config, the adapters it opened (lazily, one per connection) and the
 * background blob sync. Instances share nothing, so two in one process never see each other's
 * clients or queues.
 */
export class Xronox implements JobHost, DocumentHost {
  readonly config: XronoxConfig;
  readonly #router: Router;
  readonly #factories: AdapterFactories;
  readonly #indexStores = new Map<string, IndexStore>();
  readonly #blobStores = new Map<string, BlobStore>();
  readonly #documentStores = new Map<string, DocumentStore>();
  readonly #sync: BlobSync;
  readonly #onBackgroundError: BackgroundErrorHandler;
  readonly #counterRules: readonly ParsedCounterRule[];
  readonly #counterWindows: readonly CounterWindowGranularity[];
  #closed = false;

  /** Operations: a health report of every store, and shutdown. */
  readonly admin = {
    /**
     * Reaches every configured database's index store and blob store and reports each with its
     * latency. Secrets (keys, passwords in URIs) are masked everywhere in the report.
     */
    health: async (...extra: never[]): Promise<HealthReport> => {
      checkNoExtraArguments('admin.health', 0, extra);
      return this.#health();
    },
    /**
     * Opens the stores of every configured database (and of each dynamic tenants' connection)
     * and proves them usable, so a process can refuse to start instead of failing its first
     * request: each index and document store opens (an SQLite file is created with its folder,
     * or its schema checked) and answers a ping, and each bucket the databases use takes a write
     * where its store can show that cheaply (`BlobStore.check`: the local folder writes and
     * removes a probe file; S3 buckets are checked by their first use). Rejects with the first
     * failure, a `StorageError` naming the path (or connection) and the reason. `databases`:
     * only the configured databases of these names (dynamic tenants' connections are then left out).
     */
    checkStorage: async (options: { databases?: readonly string[] } = {}, ...extra: never[]): Promise<void> => {
      checkOptions(options, ['databases'], 'options', 'admin.checkStorage');
      checkNoExtraArguments('admin.checkStorage', 1, extra);
      return this.#checkStorage(options.databases);
    },
    /** Same as `shutdown()`: drains the blob sync, then closes every client and timer. */
    shutdown: (options?: { timeoutMs?: number }, ...extra: never[]): Promise<void> => this.shutdown(options, ...extra),
    /** Records whose blob sync failed `fallback.maxRetries` times, per configured database. */
    deadLetters: async (...extra: never[]): Promise<Array<DeadLetter & { dbName: string }>> => {
      checkNoExtraArguments('admin.deadLetters', 0, extra);
      this.#assertOpen();
      const out: Array<DeadLetter & { dbName: string }> = [];
      for (const db of await this.#databasesWith('dead')) {
        for (const d of await this.#indexFor(db).listDeadLetters(db.dbName, { limit: 10_000 })) out.push({ ...d, dbName: db.dbName });
      }
      return out;
    },
    /** Puts every dead letter back into the outbox and syncs it again (after fixing the cause). */
    retryDeadLetters: async (...extra: never[]): Promise<RepairReport> => {
      checkNoExtraArguments('admin.retryDeadLetters', 0, extra);
      this.#assertOpen();
      for (const db of await this.#databasesWith('dead')) await this.#indexFor(db).requeueDeadLetters(db.dbName);
      return this.repair();
    },
  };

  /** Counter totals per collection: created, updated, deleted, restored and each counter rule. */
  readonly counters = {
    getTotals: async (request: CounterTotalsRequest, ...extra: never[]): Promise<Record<string, number>> => {
      checkNoExtraArguments('counters.getTotals', 1, extra);
      return this.#getTotals(request);
    },
    /**
     * Counter windows of one granularity (kept when `retention.counters` sets it), key ascending,
     * within `[from, to]` inclusive. Bounds are window keys (`day:2026-01-31`, `week:2026-W05`,
     * `month:2026-01`); the prefix may be left out.
     */
    getWindows: async (request: CounterTotalsRequest, options: CounterWindowsOptions, ...extra: never[]): Promise<CounterWindow[]> => {
      checkNoExtraArguments('counters.getWindows', 2, extra);
      return this.#getWindows(request, options);
    },
  };

  constructor(config: XronoxConfig, factories: AdapterFactories, options: { onBackgroundError?: BackgroundErrorHandler } = {}) {
    this.config = config;
    this.#router = new Router(config);
    this.#factories = factories;
    const fallback = config.fallback;
    const report = options.onBackgroundError ?? ((err: unknown, context: BackgroundErrorContext) => logBackgroundError(err, context, config));
    this.#onBackgroundError = (err, context) => {
      try {
        report(err, context);
      } catch {
        // A failing handler must not stop the sync that called it; the outbox still holds the work.
      }
    };
    this.#sync = new BlobSync(
      (err, source) => this.#onBackgroundError(err, this.#backgroundContext('blob sync', source)),
      fallback?.enabled
        ? {
            ...(fallback.maxRetries !== undefined ? { maxRetries: fallback.maxRetries } : {}),
            ...(fallback.retryDelayMs !== undefined ? { retryDelayMs: fallback.retryDelayMs } : {}),
            ...(fallback.maxDelayMs !== undefined ? { maxDelayMs: fallback.maxDelayMs } : {}),
          }
        : {},
    );
    this.#counterWindows = windowGranularities(config.retention?.counters);
    this.#counterRules = (config.counterRules?.rules ?? []).map((r) => ({
      name: r.name,
      on: new Set(r.on ?? ['CREATE', 'UPDATE', 'DELETE']),
      scope: r.scope ?? 'payload',
      filter: parseFilter(r.when, () => true),
    }));
  }

  /**
   * A collection of the database that the type, tier and tenant (or domain) route to: a record
   * collection (`Collection`) for runtime, knowledge, metadata and logs; a document collection
   * (`insert`, `upsert`, `findOne`, `find`, `deleteOne`, `deleteMany`) for messaging and identities.
   */
  with(request: RouteRequest & { databaseType: 'messaging' }): MessagingCollection;
  with(request: RouteRequest & { databaseType: 'identities' }): IdentitiesCollection;
  with(request: RecordRouteRequest): Collection;
  with(request: RouteRequest): AnyCollection;
  with(request: RouteRequest, ...extra: never[]): AnyCollection {
    checkNoExtraArguments('with', 1, extra);
    this.#assertOpen();
    const route = this.#router.resolve(checkRouteRequest(request, 'with'));
    if (!isDocumentDatabaseType(route.databaseType)) return this.#collection(route);
    return openDocumentCollection(route, {
      config: this.config,
      store: this.#documentFor(route),
      blob: () => this.#blobFor(route),
      maxDocumentBytes: this.config.limits?.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES,
      audit: this.#identityAudit,
    });
  }

  /**
   * The document store (guarded) that holds a messaging or identities database: for maintenance
   * such as `migrateDocuments` and `expireDocuments` (`core/domains/maintenance.ts`).
   */
  documentStoreFor(db: Pick<DatabaseRoute, 'dbConnRef'>): DocumentStore {
    this.#assertOpen();
    return this.#documentFor(db);
  }

  #identityEvents(tenantId: string): Collection {
    return this.with({ databaseType: 'runtime', tier: 'tenant', tenantId, collection: IDENTITY_EVENTS_COLLECTION });
  }

  /** Identity changes are audited in the tenant's runtime database (versioned). */
  readonly #identityAudit: IdentityAudit = {
    check: (tenantId) => void this.#router.resolve({ databaseType: 'runtime', tier: 'tenant', tenantId, collection: IDENTITY_EVENTS_COLLECTION }),
    validate: (event, options) => this.#identityEvents(event.tenantId).checkCreate(event, options.actor, options.reason ?? `${event.op} ${event.collection}`),
    write: async (event, options) => {
      await this.#identityEvents(event.tenantId).create(event, options.actor, options.reason ?? `${event.op} ${event.collection}`);
    },
  };

  #collection(route: Route): Collection {
    return new Collection({
      route,
      index: this.#indexFor(route),
      blob: this.#blobFor(route),
      sync: this.#sync,
      maxDocumentBytes: this.config.limits?.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES,
      maxContentBytes: this.config.limits?.maxContentBytes ?? DEFAULT_MAX_CONTENT_BYTES,
      uploadStaleMs: this.#uploadStaleMs,
      queueBlobsOnFailure: this.config.fallback?.enabled === true,
      logicalDelete: this.config.logicalDelete.enabled,
      deferVersions: this.#deferVersions,
      counterRules: this.#counterRules,
      counterWindows: this.#counterWindows,
      sibling: (collection) => this.#collection(this.#router.resolve({ ...routeRequestOf(route), collection })),
    });
  }

  /**
   * Reads a knowledge item across tiers: the first record matching `filter` in the generic, the
   * domain (with `domain`) and the tenant (with `tenantId`) knowledge databases; returns the most
   * specific one, or with `merge` their deep merge (generic ← domain ← tenant). The result says
   * which tiers had a match (`tiers`), which were read (`consulted`) and which of those asked
   * have no database (`notConfigured`); `data` is `null` when no tier has a match. When no tier
   * asked has a database, it is a `RouteNotFoundError`, as `with()` is for each of them.
   */
  getKnowledge<T extends Data = Data>(collection: string, filter: Record<string, unknown>, options: TieredReadOptions = {}, ...extra: never[]): Promise<TieredReadResult<T>> {
    return this.#readTiers<T>('knowledge', collection, filter, options, extra);
  }

  /** `getKnowledge` for the metadata database type. */
  getMetadata<T extends Data = Data>(collection: string, filter: Record<string, unknown>, options: TieredReadOptions = {}, ...extra: never[]): Promise<TieredReadResult<T>> {
    return this.#readTiers<T>('metadata', collection, filter, options, extra);
  }

  async #readTiers<T extends Data>(
    databaseType: 'knowledge' | 'metadata',
    collection: string,
    filter: Record<string, unknown>,
    options: TieredReadOptions,
    extra: readonly never[],
  ): Promise<TieredReadResult<T>> {
    checkNoExtraArguments(databaseType === 'knowledge' ? 'getKnowledge' : 'getMetadata', 3, extra);
    this.#assertOpen();
    return readTiers<T>(
      databaseType,
      (tier) =>
        this.with({
          databaseType,
          tier,
          collection,
          ...(tier === 'tenant' ? { tenantId: options.tenantId! } : {}),
          ...(tier === 'domain' ? { domain: options.domain! } : {}),
        }),
      filter,
      options,
    );
  }

  /** Resolves a route without opening anything (for inspection and tests). */
  route(request: RouteRequest, ...extra: never[]): Route {
    checkNoExtraArguments('route', 1, extra);
    return this.#router.resolve(checkRouteRequest(request, 'route'));
  }

  /** Waits until the blob copies of every write so far have been attempted. */
  async flush(...extra: never[]): Promise<SyncReport> {
    checkNoExtraArguments('flush', 0, extra);
    return this.#sync.flush();
  }

  /**
   * Finishes the blob sync of every record the index lists as pending, in every configured
   * database (and every dynamic tenant's with pending records), and removes the content of writes
   * that never committed (upload intents older than `limits.maxUploadSeconds`, see
   * `content-uploads.ts`): run after a crash or an outage. One pass per database, over what was
   * pending when that pass began: records written meanwhile are their writers' to sync (or the
   * next pass's) and are counted in `left`, with those whose sync failed and those another
   * process still held. Idempotent.
   */
  async repair(...extra: never[]): Promise<RepairReport> {
    checkNoExtraArguments('repair', 0, extra);
    this.#assertOpen();
    const total: RepairReport = { synced: 0, failed: 0, deadLettered: 0, left: 0, uploads: { deleted: 0, kept: 0, failed: 0 } };
    for (const db of await this.#databasesWith('pending')) {
      const report = await this.#sync.repair({
        index: this.#indexFor(db),
        blob: this.#blobFor(db),
        dbName: db.dbName,
        versioned: db.policy.versioned,
        appendOnly: db.policy.appendOnly,
        blobs: db.blobs,
        deferVersions: this.#deferVersions,
      });
      total.synced += report.synced;
      total.failed += report.failed;
      total.deadLettered += report.deadLettered;
      total.left += report.left;
    }
    for (const target of await this.jobTargets()) {
      if (isDocumentDatabaseType(target.databaseType) || !target.blobs.content) continue;
      const swept = await sweepUploads(
        { index: target.index, blob: target.blob, dbName: target.dbName, versioned: target.policy.versioned, appendOnly: target.policy.appendOnly, blobs: target.blobs },
        { olderThanMs: this.#uploadStaleMs, onError: (err, source) => this.#onBackgroundError(err, this.#backgroundContext('upload sweep', source)) },
      );
      total.uploads.deleted += swept.deleted;
      total.uploads.kept += swept.kept;
      total.uploads.failed += swept.failed;
    }
    return total;
  }

  /**
   * For background jobs (`core/jobs`): every database this instance serves, with the instance's
   * own (guarded) index and blob stores. Configured databases first, then (unless `dynamic` is
   * false) the databases of dynamic tenants that their connection's store holds: no config
   * lists those, so finding them asks each dynamic connection's store.
   */
  async jobTargets(options: { dynamic?: boolean } = {}, ...extra: never[]): Promise<JobTarget[]> {
    checkNoExtraArguments('jobTargets', 1, extra);
    checkOptions(options, ['dynamic'], 'options', 'jobTargets');
    this.#assertOpen();
    const databases = this.#router.databases();
    const seen = new Set(databases.map((d) => `${d.dbConnRef}\u0000${d.dbName}`));
    for (const ref of options.dynamic === false ? [] : this.#router.dynamicConnections()) {
      for (const dbName of await this.#indexFor({ dbConnRef: ref }).listDatabases()) {
        const db = seen.has(`${ref}\u0000${dbName}`) ? null : this.#router.databaseNamed(ref, dbName);
        // databaseNamed also answers for an analytics database name; keep each database once.
        if (!db || seen.has(`${ref}\u0000${db.dbName}`)) continue;
        seen.add(`${ref}\u0000${db.dbName}`);
        databases.push(db);
      }
    }
    return databases.map((db) => this.jobTarget(db));
  }

  /** One database (a route, or an entry of `jobTargets()`) with this instance's stores for it. */
  jobTarget(db: DatabaseRoute): JobTarget {
    this.#assertOpen();
    const { databaseType, tier, tenantId, domain, dbConnRef, dbName, analyticsDbName, spaceConnRef, blobs, policy } = db;
    return { databaseType, tier, tenantId, domain, dbConnRef, dbName, analyticsDbName, spaceConnRef, blobs, policy, index: this.#indexFor(db), blob: this.#blobFor(db) };
  }

  /** `limits.maxUploadSeconds`: how old an upload intent must be before a cleanup may take it. */
  get #uploadStaleMs(): number {
    return uploadStaleMs(this.config);
  }

  get #deferVersions(): boolean {
    return this.config.jobs?.archive?.mode === 'deferred';
  }

  /**
   * Drains the blob sync, then closes every client this instance opened. Idempotent. Takes at
   * most `timeoutMs` (default 15 s) to drain: a store that hangs does not hold the process, and
   * what the sync did not finish stays in the outbox for the next `repair()`. Closing the clients
   * gets at most that long again.
   */
  async shutdown(options: { timeoutMs?: number } = {}, ...extra: never[]): Promise<void> {
    checkOptions(options, ['timeoutMs'], 'options', 'shutdown');
    checkNoExtraArguments('shutdown', 1, extra);
    if (this.#closed) return;
    const timeoutMs = options.timeoutMs ?? DEFAULT_CLOSE_MS;
    await this.#sync.close(timeoutMs);
    this.#closed = true;
    const stores = [...this.#indexStores.values(), ...this.#blobStores.values(), ...this.#documentStores.values()];
    this.#indexStores.clear();
    this.#blobStores.clear();
    this.#documentStores.clear();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([Promise.all(stores.map((s) => s.close())), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    } finally {
      clearTimeout(timer);
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Every configured database, plus the dynamic tenants' databases that a store reports with
   * pending syncs or dead letters (dynamic tenants are in no config list).
   */
  async #databasesWith(work: 'pending' | 'dead'): Promise<DatabaseRoute[]> {
    const databases = this.#router.databases();
    for (const ref of this.#router.dynamicConnections()) {
      const store = this.#indexFor({ dbConnRef: ref });
      const known = new Set(databases.filter((d) => d.dbConnRef === ref).map((d) => d.dbName));
      for (const dbName of work === 'pending' ? await store.listPendingDatabases() : await store.listDeadLetterDatabases()) {
        const db = known.has(dbName) ? null : this.#router.databaseNamed(ref, dbName);
        if (db) databases.push(db);
      }
    }
    return databases;
  }

  /** The configured databases by name, for naming the tenant of a background failure. */
  #databasesByName: Map<string, DatabaseRoute> | undefined;

  #backgroundContext(operation: BackgroundErrorContext['operation'], source: SyncErrorSource | undefined): BackgroundErrorContext {
    const context: BackgroundErrorContext = { operation, ...source };
    if (source?.dbName === undefined) return context;
    this.#databasesByName ??= new Map(this.#router.databases().map((db) => [db.dbName, db]));
    const db = this.#databasesByName.get(source.dbName);
    if (!db) return context;
    return {
      ...context,
      databaseType: db.databaseType,
      tier: db.tier,
      ...(db.tenantId !== undefined ? { tenantId: db.tenantId } : {}),
      ...(db.domain !== undefined ? { domain: db.domain } : {}),
    };
  }

  async #health(): Promise<HealthReport> {
    this.#assertOpen();
    const probe = async (run: () => Promise<unknown>): Promise<ProbeResult> => {
      const started = performance.now();
      try {
        await run();
        return { ok: true, latencyMs: elapsedMs(started) };
      } catch (err) {
        const message = err instanceof Error ? `${err.message}${err.cause instanceof Error ? `: ${err.cause.message}` : ''}` : String(err);
        return { ok: false, latencyMs: elapsedMs(started), error: maskSecretsIn(message, this.config) };
      }
    };
    // One probe per connection (and per bucket), however many databases share it.
    const indexProbes = new Map<string, Promise<ProbeResult>>();
    const blobProbes = new Map<string, Promise<ProbeResult>>();
    const databases: HealthReport['databases'] = [];
    for (const db of this.#router.databases()) {
      const records = db.blobs.records;
      if (!indexProbes.has(db.dbConnRef)) indexProbes.set(db.dbConnRef, probe(() => this.#indexFor(db).ping()));
      const blobKey = `${db.spaceConnRef ?? ''}\u0000${records?.bucket ?? ''}`;
      if (records && !blobProbes.has(blobKey)) blobProbes.set(blobKey, probe(() => this.#blobFor(db).list(records.bucket, `${records.prefix}/`, { limit: 1 })));
      databases.push({
        databaseType: db.databaseType,
        tier: db.tier,
        ...(db.tenantId !== undefined ? { tenantId: db.tenantId } : {}),
        ...(db.domain !== undefined ? { domain: db.domain } : {}),
        dbName: db.dbName,
        index: { connection: db.dbConnRef, adapter: this.#indexFor(db).name, ...(await indexProbes.get(db.dbConnRef)!) },
        blobs: records
          ? { connection: db.spaceConnRef ?? 'localStorage', adapter: this.#blobFor(db).name, bucket: records.bucket, ...(await blobProbes.get(blobKey)!) }
          : null,
      });
    }
    const ok = databases.every((d) => d.index.ok && (d.blobs === null || d.blobs.ok));
    return { ok, checkedAt: new Date().toISOString(), databases, config: maskConfig(this.config) };
  }

  async #checkStorage(only: readonly string[] | undefined): Promise<void> {
    this.#assertOpen();
    const done = new Set<string>();
    const once = async (key: string, run: () => Promise<unknown> | undefined) => {
      if (done.has(key)) return;
      done.add(key);
      await run();
    };
    for (const db of this.#router.databases()) {
      if (only && !only.includes(db.dbName)) continue;
      await once(`index\u0000${db.dbConnRef}`, () => this.#indexFor(db).ping());
      if (isDocumentDatabaseType(db.databaseType)) await once(`documents\u0000${db.dbConnRef}`, () => this.#documentFor(db).ping());
      for (const loc of Object.values(db.blobs)) {
        await once(`blob\u0000${db.spaceConnRef ?? ''}\u0000${loc.bucket}`, () => this.#blobFor(db).check?.(loc.bucket));
      }
    }
    for (const ref of only ? [] : this.#router.dynamicConnections()) await once(`index\u0000${ref}`, () => this.#indexFor({ dbConnRef: ref }).ping());
  }

  async #getTotals(request: CounterTotalsRequest): Promise<Record<string, number>> {
    const { index, dbName, collection } = this.#countersOf(request, 'getTotals');
    return index.getCounters(dbName, collection);
  }

  async #getWindows(request: CounterTotalsRequest, options: CounterWindowsOptions): Promise<CounterWindow[]> {
    if (typeof options !== 'object' || options === null) throw new ValidationError('getWindows takes { granularity, from?, to? }', { path: 'options' });
    checkOptions(options, ['granularity', 'from', 'to'], 'options', 'getWindows');
    const { index, dbName, collection } = this.#countersOf(request, 'getWindows');
    const granularity = options.granularity;
    if (!COUNTER_WINDOW_GRANULARITIES.includes(granularity)) {
      throw new ValidationError(`granularity must be one of ${COUNTER_WINDOW_GRANULARITIES.join(', ')}`, { path: 'granularity' });
    }
    const bound = (value: unknown, label: 'from' | 'to'): string | undefined => {
      if (value === undefined) return undefined;
      if (typeof value !== 'string' || value.length === 0 || value.length > 32) throw new ValidationError(`${label} must be a window key such as ${granularity}:…`, { path: label });
      return value.startsWith(`${granularity}:`) ? value : `${granularity}:${value}`;
    };
    const from = bound(options.from, 'from');
    const to = bound(options.to, 'to');
    return index.getCounterWindows(dbName, collection, { granularity, ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}) });
  }

  /** Where a collection's counters live: the index store and analytics database of the request's route. */
  #countersOf(request: CounterTotalsRequest, method: string): { index: IndexStore; dbName: string; collection: string } {
    this.#assertOpen();
    if (typeof request !== 'object' || request === null) throw new ValidationError(`${method} takes { databaseType, tier, tenantId, collection } or { dbName, collection }`);
    checkOptions(request, request.dbName !== undefined ? ['dbName', 'collection'] : ROUTE_REQUEST_KEYS, 'request', method);
    const collection = assertName('collection', request.collection);
    if (request.dbName !== undefined) {
      const refs = Object.keys(this.config.dbConnections);
      const db = typeof request.dbName === 'string' ? refs.map((ref) => this.#router.databaseNamed(ref, request.dbName!)).find((d) => d !== null) : undefined;
      if (!db) throw new ValidationError(`No configured or dynamic tenant database is named "${String(request.dbName).slice(0, 64)}"`, { path: 'dbName' });
      return { index: this.#indexFor(db), dbName: db.analyticsDbName, collection };
    }
    const route = this.#router.resolve(request as RouteRequest);
    return { index: this.#indexFor(route), dbName: route.analyticsDbName, collection };
  }

  #indexFor(route: { dbConnRef: string }): IndexStore {
    let store = this.#indexStores.get(route.dbConnRef);
    if (!store) {
      const connection = this.config.dbConnections[route.dbConnRef]!;
      store = guardAdapter('index store', () => this.#factories.indexStore(route.dbConnRef, connection, this.config), () => this.#closed);
      this.#indexStores.set(route.dbConnRef, store);
    }
    return store;
  }

  /** The document store of a connection (messaging, identities); one per connection, guarded like the others. */
  #documentFor(route: { dbConnRef: string }): DocumentStore {
    let store = this.#documentStores.get(route.dbConnRef);
    if (!store) {
      const connection = this.config.dbConnections[route.dbConnRef]!;
      const factory = this.#factories.documentStore;
      if (!factory) throw new ConfigError([{ path: `dbConnections.${route.dbConnRef}`, message: 'this Xronox instance was built without a documentStore adapter factory, so messaging and identities cannot be opened' }]);
      store = guardAdapter('document store', () => factory.call(this.#factories, route.dbConnRef, connection, this.config), () => this.#closed);
      this.#documentStores.set(route.dbConnRef, store);
    }
    return store;
  }

  #blobFor(route: { spaceConnRef: string | null }): BlobStore {
    const key = route.spaceConnRef ?? '\u0000local';
    let store = this.#blobStores.get(key);
    if (!store) {
      const connection = route.spaceConnRef ? this.config.spacesConnections[route.spaceConnRef]! : null;
      store = guardAdapter('blob store', () => this.#factories.blobStore(route.spaceConnRef, connection, this.config.localStorage?.basePath), () => this.#closed);
      this.#blobStores.set(key, store);
    }
    return store;
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError();
  }
}

/** What `repair()` did: the blob sync's report, and the cleanup of content no write committed. */
export interface RepairReport extends SyncReport {
  /**
   * Content objects of writes that never committed (upload intents older than
   * `limits.maxUploadSeconds`): deleted, kept because a record references them, or whose cleanup
   * failed (the next repair or archive sweep tries again).
   */
  uploads: UploadSweepReport;
}

export type { JobTarget } from './jobs/job.js';

export interface ProbeResult {
  ok: boolean;
  latencyMs: number;
  /** Why the probe failed, with secrets masked. */
  error?: string;
}

export interface HealthReport {
  ok: boolean;
  checkedAt: string;
  databases: Array<{
    databaseType: string;
    tier: string;
    tenantId?: string;
    domain?: string;
    dbName: string;
    index: ProbeResult & { connection: string; adapter: string };
    blobs: (ProbeResult & { connection: string; adapter: string; bucket: string }) | null;
  }>;
  /** The config in force, secrets masked. */
  config: XronoxConfig;
}

/** Web-standard `performance.now()`, which every runtime has (Workers too); a monotonic clock like process.hrtime. */
function elapsedMs(started: number): number {
  return performance.now() - started;
}

/**
 * The default for background failures: one JSON line on stderr, as every other log line of
 * Xronox (config secrets masked). The outbox keeps the work; it is retried.
 */
function logBackgroundError(err: unknown, context: BackgroundErrorContext, config: XronoxConfig): void {
  const error =
    err instanceof Error
      ? { name: err.name, ...('code' in err && typeof err.code === 'string' ? { code: err.code } : {}), message: maskSecretsIn(err.message, config) }
      : { message: maskSecretsIn(String(err), config) };
  const line = { time: new Date().toISOString(), level: 'error', msg: `xronox background ${context.operation} failed; it is retried`, ...context, error };
  process.stderr.write(`${JSON.stringify(line)}\n`);
}

/** The keys of a `RouteRequest`. */
const ROUTE_REQUEST_KEYS = ['databaseType', 'tier', 'tenantId', 'domain', 'collection'] as const;

/** A route request holds only the keys of one: a misspelt `tenantID` or a stray key is refused, not ignored. */
function checkRouteRequest(request: unknown, method: string): RouteRequest {
  if (typeof request !== 'object' || request === null) return request as RouteRequest; // the router names what it needs
  checkOptions(request, ROUTE_REQUEST_KEYS, 'request', method);
  return request as RouteRequest;
}

function routeRequestOf(route: Route): RouteRequest {
  return {
    databaseType: route.databaseType,
    tier: route.tier,
    collection: route.collection,
    ...(route.tenantId !== undefined ? { tenantId: route.tenantId } : {}),
    ...(route.domain !== undefined ? { domain: route.domain } : {}),
  };
}

export interface InitOptions {
  /**
   * Called with errors of background work (blob sync, the sweep of abandoned uploads) and where
   * they happened; they never reject a caller's promise. Default: one JSON line on stderr.
   */
  onBackgroundError?: BackgroundErrorHandler;
  /** Where `ENV.NAME` config values are looked up. Default `process.env`. */
  env?: Environment;
}

/**
 * Validates the config and returns a ready Xronox instance. Nothing is opened until first use:
 * a MongoDB client connects on the first operation, an SQLite file opens on the first access,
 * and a backend's module (the MongoDB driver, the AWS SDK, better-sqlite3) is loaded only then.
 *
 * Without a config, it is read from `xronox.config.json` (else `.xronox.json`) in the working
 * directory or, failing that, in the nearest package root above it (see `findConfigFile`).
 */
export function initXronox(config?: unknown, options: InitOptions = {}): Xronox {
  const env = options.env ?? process.env;
  const loaded: XronoxConfig = config === undefined ? loadConfigFile(findConfigFile(), env) : loadConfig(config, env);
  return new Xronox(loaded, defaultAdapters, options);
}
