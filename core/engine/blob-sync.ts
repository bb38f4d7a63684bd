import { randomUUID } from '../foundation/digest.js';
import type { BlobStore } from '../contracts/blob-store.js';
import { ConflictError, StorageError } from '../errors.js';
import type { IndexMaintenance, Leases, Namespace, PendingSync, RecordIndex, SyncOutbox } from '../contracts/index-store.js';
import { processTag } from '../foundation/process.js';
import type { BlobKind } from '../config/schema.js';
import type { BlobLocation } from '../routing/router.js';

/** The roles of the index store the syncer uses: the outbox and leases, and a few reads. */
export type SyncIndex = SyncOutbox & Leases & Pick<RecordIndex, 'getHead' | 'listPendingBlobs'> & Pick<IndexMaintenance, 'listCollections' | 'getCollectionVersion'>;

/** What the syncer needs to know about the database a record lives in. */
export interface SyncTarget {
  readonly index: SyncIndex;
  readonly blob: BlobStore;
  readonly dbName: string;
  readonly versioned: boolean;
  readonly appendOnly: boolean;
  readonly blobs: Readonly<Partial<Record<BlobKind, BlobLocation>>>;
  /**
   * `jobs.archive.mode: 'deferred'`: leave versions in the index for the archive job
   * (`core/jobs/archive.ts`), so a write costs one object (`current.json`) instead of two.
   */
  readonly deferVersions?: boolean;
}

export interface SyncReport {
  /** Records whose blobs were brought up to date. */
  synced: number;
  /** Records whose sync failed because the blob store did; they stay in the outbox and are retried. */
  failed: number;
  /** Records moved to the dead-letter list after `maxRetries` failed attempts. */
  deadLettered: number;
  /**
   * `repair()`: records still in the outbox when the pass ended. A pass handles what was pending
   * when it began, so this counts the failed ones, those another process was still syncing, and
   * records written after the pass began (their writer's own sync, or the next pass, takes them).
   * `flush()`: records still queued in this process (0 unless it is shutting down).
   */
  left: number;
}

/** Where a background failure happened, as far as the syncer knows: the database, and the record when there is one. */
export interface SyncErrorSource {
  readonly dbName?: string;
  readonly collection?: string;
  readonly id?: string;
}

/** Receives every failure of background work; must not throw. */
export type SyncErrorHandler = (err: unknown, source?: SyncErrorSource) => void;

/** How failed syncs are retried (`fallback` in the config). */
export interface RetryPolicy {
  /** Failed attempts of one record before it goes to the dead-letter list; unset: retry forever. */
  maxRetries?: number;
  /** First delay before a retry; doubles each time. Default 250 ms. */
  retryDelayMs?: number;
  /** Longest delay between retries. Default 30 s. */
  maxDelayMs?: number;
}

/** Object keys of the documented layout. */
export const blobKeys = {
  current: (loc: BlobLocation, collection: string, id: string) => `${loc.prefix}/${collection}/${id}/current.json`,
  /** Append-only records (logs) never change, so they are filed by day, as the storage layout documents. */
  dated: (loc: BlobLocation, collection: string, id: string, createdAt: string) => `${loc.prefix}/${collection}/${createdAt.slice(0, 10)}/${id}.json`,
  version: (loc: BlobLocation, collection: string, id: string, ov: number) => `${loc.prefix}/${collection}/${id}/v${ov}.json`,
  recordFolder: (loc: BlobLocation, collection: string, id: string) => `${loc.prefix}/${collection}/${id}/`,
};

const MAX_QUEUED = 10_000;
/** Unarchived versions are read this many at a time, so a long backlog never sits in memory whole. */
const UNARCHIVED_PAGE = 256;
const YIELD_ABOVE = 64;
const CONCURRENCY = 8;
/**
 * Version objects of one record put at once: a record with a backlog (many updates while its
 * sync ran, or while the blob store was down) writes them side by side, so a filesystem store
 * fsyncs their folder once per round (see `FsBlobStore`) and S3 has several requests in flight.
 */
const VERSION_PUTS_IN_FLIGHT = 8;
const DEFAULT_RETRY_DELAY_MS = 250;
const DEFAULT_MAX_DELAY_MS = 30_000;
/** A record's sync lease outlasts the blob store's slowest put by this much. */
const LEASE_MARGIN_MS = 1_000;
/** How long `repair()` first waits before it looks again at records another process's lease holds; doubles each time. */
const LEASED_POLL_MS = 100;
/** The longest wait between two such looks. */
const MAX_LEASED_POLL_MS = 2_000;
/** Outbox entries a repair pass reads and syncs at a time. */
const REPAIR_PAGE = 500;
/** The longest `repair()` waits for records another process holds (a crashed one's lease may be long); the rest stay in the outbox. */
const MAX_REPAIR_WAIT_MS = 30_000;
/** The longest `close()` waits for such records. */
const CLOSE_WAIT_MS = 10_000;
/** The longest `close()` takes by default, waiting for syncs in flight included (see `close`). */
export const DEFAULT_CLOSE_MS = 15_000;

/** How one run of a record's sync ended, for a repair pass that waits for it. */
type Outcome = 'synced' | 'leased' | 'failed' | 'deadLettered' | 'dropped';

interface SyncJob {
  target: SyncTarget;
  ns: Namespace;
  id: string;
}

function recordKey(dbName: string, collection: string, id: string): string {
  return `${dbName}\u0000${collection}\u0000${id}`;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** What one `repair()` pass covers, and who hears of its progress. */
export interface RepairOptions {
  /** Only this collection's records. Default: every collection of the database. */
  collection?: string;
  /** Called after each page of the outbox with how many records the pass has synced so far. */
  onPage?: (synced: number) => Promise<void> | void;
}

/** Another process is syncing the record (it holds the record's sync lease): try again later. */
export class SyncLeased extends Error {}

/**
 * Brings the blob store in line with the index, record by record.
 *
 * The index store is the source of truth: a commit marks the record in the sync outbox in the
 * same transaction. Syncing a record writes its unarchived versions (`v{ov}.json`, the exact
 * committed text), refreshes `current.json` (or removes the record's objects after a hard
 * delete), then, in one index transaction, marks those versions archived and clears the outbox
 * entry if no newer write re-marked it. Each step is idempotent, so a crash anywhere is repaired
 * by syncing again: `repair()` does that, in one pass, for every record in the outbox when the
 * pass begins.
 *
 * Syncs of one record never overlap, so an older `current.json` can never land after a newer
 * one: in this process a record is synced by one task at a time, and across processes each sync
 * holds a lease on the record in the index store (`sync:{id}`, longer than the blob store's
 * `maxPutMs`). A record whose lease another process holds is retried later, or waited for by
 * `repair()`; a lease left by a crashed process runs out by itself. A sync whose outbox entry
 * was re-marked while it ran loops, still holding its lease, and writes the newer state.
 */
export class BlobSync {
  readonly #queue = new Map<string, SyncJob>();
  readonly #running = new Map<string, Promise<void>>();
  /** Records written again while their sync ran: they go back in the queue when it ends. */
  readonly #again = new Map<string, SyncJob>();
  /** Repair passes waiting for how the next run of a record's sync ends, by record key. */
  readonly #watchers = new Map<string, Array<(outcome: Outcome) => void>>();
  readonly #idle: Array<() => void> = [];
  readonly #space: Array<() => void> = [];
  #active = 0;
  #failed = 0;
  #synced = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  readonly #policy: Required<Pick<RetryPolicy, 'retryDelayMs' | 'maxDelayMs'>> & Pick<RetryPolicy, 'maxRetries'>;
  #retryDelay: number;
  /** Consecutive failed attempts per record (reset by a success). */
  readonly #failures = new Map<string, number>();
  #deadLettered = 0;
  readonly #retryTargets = new Set<SyncTarget>();
  #closed = false;
  readonly #onError: SyncErrorHandler;
  /** This syncer's name on the record leases it takes (with its process: see `processTag`). */
  readonly #owner = `sync:${randomUUID()}@${processTag()}`;
  /** Databases with records last skipped because another process held them: `close()` gives them a last pass. */
  readonly #leasedTargets = new Set<SyncTarget>();
  /** `repair()` calls under way (`close()` waits for them). */
  readonly #repairs = new Set<Promise<unknown>>();
  /** `close()` has begun: background retries and repairs stop waiting. */
  #closing = false;
  /** The background retry pass under way, if any (`close()` waits for it). */
  #retrying: Promise<unknown> | undefined;

  constructor(onError: SyncErrorHandler, policy: RetryPolicy = {}) {
    this.#onError = onError;
    this.#policy = {
      retryDelayMs: policy.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS,
      maxDelayMs: policy.maxDelayMs ?? DEFAULT_MAX_DELAY_MS,
      ...(policy.maxRetries !== undefined ? { maxRetries: policy.maxRetries } : {}),
    };
    this.#retryDelay = this.#policy.retryDelayMs;
  }

  /** Queues a record for sync. Waits while too many records are queued, to bound memory. */
  async schedule(target: SyncTarget, ns: Namespace, id: string): Promise<void> {
    if (this.#closed) return;
    const key = recordKey(target.dbName, ns.collection, id);
    if (this.#running.has(key)) this.#again.set(key, { target, ns, id });
    else this.#queue.set(key, { target, ns, id });
    this.#pump();
    // Index stores like SQLite answer synchronously, so a loop of awaited writes would never let
    // the event loop run the sync's I/O. Past a small backlog, each write yields once; past a
    // large one, writers wait for room, which bounds memory.
    if (this.#queue.size > YIELD_ABOVE) await new Promise<void>((r) => setImmediate(r));
    while (this.#queue.size > MAX_QUEUED && !this.#closed) await new Promise<void>((r) => this.#space.push(r));
  }

  /** Resolves once every queued record has been tried; failed ones stay in the outbox. */
  async flush(): Promise<SyncReport> {
    if ((this.#queue.size > 0 || this.#active > 0) && !this.#closed) await new Promise<void>((r) => this.#idle.push(r));
    const report = { synced: this.#synced, failed: this.#failed, deadLettered: this.#deadLettered, left: this.#queue.size + this.#again.size };
    this.#synced = 0;
    this.#failed = 0;
    this.#deadLettered = 0;
    return report;
  }

  /**
   * One pass over the outbox of `target`, after a crash or a blob store outage. The pass takes
   * what was pending when it began (each collection's cv at that moment bounds the outbox
   * entries it reads) and syncs each of those records once, so it ends however fast other
   * processes write; what they write meanwhile is their own sync's, or the next pass's, and is
   * counted in `left`. Records whose sync lease another process holds are looked at again, with
   * backoff, for up to one lease: a live holder finishes them, and a crashed one's lease runs
   * out, after which they are synced here.
   */
  async repair(target: SyncTarget, options: RepairOptions = {}): Promise<SyncReport> {
    const run = this.#pass(target, Math.min(this.#leaseMs(target), MAX_REPAIR_WAIT_MS), false, options);
    this.#repairs.add(run);
    try {
      return await run;
    } finally {
      this.#repairs.delete(run);
    }
  }

  /** The repair pass; records leased by another process are looked at again for up to `waitMs` after it has read every page. */
  async #pass(target: SyncTarget, waitMs: number, closingPass = false, options: RepairOptions = {}): Promise<SyncReport> {
    const { index, dbName } = target;
    const report: SyncReport = { synced: 0, failed: 0, deadLettered: 0, left: 0 };
    if (this.#closed || (await index.listPendingSync(dbName, { limit: 1 })).length === 0) return report;
    // The snapshot. A write committed after it has a higher cv than its collection's here, and
    // its outbox entry (seq = that cv) is outside every page read below.
    const bounds = new Map<string, number>();
    for (const collection of options.collection !== undefined ? [options.collection] : await index.listCollections(dbName)) {
      const cv = await index.getCollectionVersion({ dbName, collection });
      if (cv !== null) bounds.set(collection, cv);
    }
    let leased: PendingSync[] = [];
    const syncAll = async (entries: readonly PendingSync[]) => {
      const outcomes = await Promise.all(entries.map(async (p) => [p, await this.#syncOnce(target, p)] as const));
      for (const [p, outcome] of outcomes) {
        if (outcome === 'synced') report.synced++;
        else if (outcome === 'failed') report.failed++;
        else if (outcome === 'deadLettered') report.deadLettered++;
        else if (outcome === 'leased') leased.push(p);
      }
    };
    for (const [collection, maxSeq] of bounds) {
      // Ends: each page starts after the last id of the one before, and no entry at or below
      // `maxSeq` can appear once the snapshot is taken.
      for (let afterId: string | undefined; !this.#closed; ) {
        const page = await index.listPendingUpTo({ dbName, collection }, { maxSeq, limit: REPAIR_PAGE, ...(afterId !== undefined ? { afterId } : {}) });
        await syncAll(page);
        await options.onPage?.(report.synced);
        if (page.length < REPAIR_PAGE) break;
        afterId = page[page.length - 1]!.id;
      }
    }
    // Once `close()` has begun, only its own last pass still waits.
    const deadline = Date.now() + waitMs;
    for (let delay = LEASED_POLL_MS; leased.length > 0; delay = Math.min(delay * 2, MAX_LEASED_POLL_MS)) {
      if (this.#closed || (this.#closing && !closingPass) || Date.now() >= deadline) break;
      await sleep(Math.min(delay, deadline - Date.now()));
      const again: PendingSync[] = [];
      for (const p of leased) {
        const seq = await index.getPendingSeq({ dbName, collection: p.collection }, p.id);
        // Gone: its holder synced it. Above the snapshot: written again since the pass began.
        if (seq !== null && seq <= bounds.get(p.collection)!) again.push(p);
      }
      leased = [];
      await syncAll(again);
    }
    if (!this.#closed) report.left = await index.countPendingSync(dbName);
    return report;
  }

  /** Syncs one record through the queue (so it never overlaps this process's other syncs of it) and says how that run ended. */
  async #syncOnce(target: SyncTarget, p: PendingSync): Promise<Outcome> {
    if (this.#closed) return 'dropped';
    const key = recordKey(target.dbName, p.collection, p.id);
    const outcome = new Promise<Outcome>((resolve) => {
      const list = this.#watchers.get(key);
      if (list) list.push(resolve);
      else this.#watchers.set(key, [resolve]);
    });
    await this.schedule(target, { dbName: target.dbName, collection: p.collection }, p.id);
    return outcome;
  }

  /**
   * Stops the sync: waits for the records queued and in flight, gives records another process
   * held a last look (briefly), then refuses new work. Takes at most `timeoutMs`: a sync still
   * running then (a blob store that hangs) is left to end on its own, unreported, and every
   * record not synced stays in the outbox for the next `repair()`.
   */
  async close(timeoutMs = DEFAULT_CLOSE_MS): Promise<void> {
    if (this.#closed) return;
    this.#closing = true;
    clearTimeout(this.#retryTimer);
    const deadline = Date.now() + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<false>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
    const drained = await Promise.race([this.#drain(deadline).then(() => true as const), expired]);
    clearTimeout(timer);
    this.#closed = true;
    if (drained) return;
    const left = new Set([...this.#queue.keys(), ...this.#again.keys(), ...this.#running.keys()]).size;
    this.#queue.clear();
    this.#again.clear();
    for (const watchers of this.#watchers.values()) for (const resolve of watchers) resolve('dropped');
    this.#watchers.clear();
    this.#wake(this.#idle);
    this.#wake(this.#space);
    this.#onError(new StorageError('blob sync', 'close', undefined, `The blob sync did not finish within ${timeoutMs} ms of shutdown; ${left} record(s) stay in the outbox for the next repair`));
  }

  async #drain(deadline: number): Promise<void> {
    await this.flush();
    await this.#retrying;
    await Promise.allSettled([...this.#repairs]);
    // Records skipped because another process held them: once that process lets go, they are
    // ours to write (it may have finished before our write); a short wait, then they stay in the
    // outbox for the next repair.
    for (const target of this.#leasedTargets) {
      await this.#pass(target, Math.min(this.#leaseMs(target), CLOSE_WAIT_MS, Math.max(0, deadline - Date.now())), true).catch((err: unknown) => this.#onError(err, { dbName: target.dbName }));
    }
    this.#leasedTargets.clear();
    await this.flush();
  }

  #pump(): void {
    while (this.#active < CONCURRENCY) {
      const next = this.#queue.entries().next();
      if (next.done) break;
      const [key, job] = next.value;
      this.#queue.delete(key);
      this.#wake(this.#space);
      this.#active++;
      const watchers = this.#watchers.get(key) ?? [];
      this.#watchers.delete(key);
      let outcome: Outcome = 'synced';
      const run = this.syncRecord(job.target, job.ns, job.id)
        // A write in another process while we held the record found it leased and left it to
        // us, perhaps after our last look: one more look now (it comes back through `#again`).
        .then(async () => {
          if (!this.#closed && (await job.target.index.getPendingSeq(job.ns, job.id)) !== null) await this.schedule(job.target, job.ns, job.id);
        })
        .then(() => {
          this.#synced++;
          this.#failures.delete(key);
          this.#retryDelay = this.#policy.retryDelayMs;
        })
        .catch(async (err: unknown) => {
          // After a shutdown that did not wait for this sync, nothing is reported: the outbox keeps the record.
          if (this.#closed) {
            outcome = 'dropped';
            return;
          }
          if (err instanceof SyncLeased) {
            // Not a failure: the lease holder writes the record; if it dies, the lease runs out.
            // A repair pass waiting for this run looks again itself; otherwise a later sweep does.
            outcome = 'leased';
            this.#leasedTargets.add(job.target);
            if (watchers.length === 0) this.#scheduleRetry(job.target);
            return;
          }
          outcome = 'failed';
          this.#failed++;
          this.#onError(err, { dbName: job.target.dbName, collection: job.ns.collection, id: job.id });
          const failures = (this.#failures.get(key) ?? 0) + 1;
          this.#failures.set(key, failures);
          if (this.#policy.maxRetries !== undefined && failures > this.#policy.maxRetries) {
            if (await this.#deadLetter(job, key, err).catch((e: unknown) => (this.#onError(e, { dbName: job.target.dbName, collection: job.ns.collection, id: job.id }), false))) outcome = 'deadLettered';
          } else this.#scheduleRetry(job.target);
        })
        .finally(() => {
          for (const resolve of watchers) resolve(outcome);
          this.#active--;
          this.#running.delete(key);
          const again = this.#again.get(key);
          if (again) {
            this.#again.delete(key);
            this.#queue.set(key, again);
          }
          this.#pump();
          if (this.#queue.size === 0 && this.#active === 0 && this.#again.size === 0) this.#wake(this.#idle);
        });
      this.#running.set(key, run);
    }
  }

  /**
   * After a failure, sweeps the failed database's outbox again with exponential backoff: the
   * outbox still lists every record that failed, so one sweep retries all of them.
   */
  #scheduleRetry(target: SyncTarget): void {
    if (this.#closing) return;
    this.#retryTargets.add(target);
    if (this.#retryTimer) return;
    const delay = this.#retryDelay;
    this.#retryDelay = Math.min(this.#retryDelay * 2, this.#policy.maxDelayMs);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      const targets = [...this.#retryTargets];
      this.#retryTargets.clear();
      // One pass each, no waiting for leases: what is still leased schedules the next retry.
      this.#retrying = (async () => {
        for (const t of targets) if (!this.#closing) await this.#pass(t, 0).catch((err: unknown) => this.#onError(err, { dbName: t.dbName }));
      })();
    }, delay);
    this.#retryTimer.unref();
  }

  /** Moves the record to the dead-letter list; `true` when it was moved (its outbox entry was still the one that failed). */
  async #deadLetter(job: SyncJob, key: string, err: unknown): Promise<boolean> {
    this.#failures.delete(key);
    const seq = await job.target.index.getPendingSeq(job.ns, job.id);
    const reason = err instanceof Error ? err.message : String(err);
    if (seq === null || !(await job.target.index.deadLetterSync(job.ns, job.id, seq, reason))) return false;
    this.#deadLettered++;
    return true;
  }

  #wake(waiters: Array<() => void>): void {
    for (const resolve of waiters.splice(0)) resolve();
  }

  #leaseMs(target: SyncTarget): number {
    return target.blob.maxPutMs + LEASE_MARGIN_MS;
  }

  /**
   * Makes the blob store reflect the index for one record, under the record's sync lease.
   * Idempotent; safe to rerun after a crash. Throws `SyncLeased` when another process holds the lease.
   */
  async syncRecord(target: SyncTarget, ns: Namespace, id: string): Promise<void> {
    const lease = new RecordLease(target, ns, `sync:${id}`, this.#owner, this.#leaseMs(target));
    if (!(await lease.acquire())) throw new SyncLeased(`${ns.collection}/${id} is being synced by another process`);
    try {
      await this.#syncLeased(target, ns, id, lease);
    } finally {
      await lease.release().catch((err: unknown) => this.#onError(err, { dbName: target.dbName, collection: ns.collection, id }));
    }
  }

  async #syncLeased(target: SyncTarget, ns: Namespace, id: string, lease: RecordLease): Promise<void> {
    const { index, blobs } = target;
    // Every object is put under the lease: a put starts only while the lease has at least the
    // blob store's longest put left, so it lands before any other process may take the record.
    const blob = lease.guard(target.blob);
    let mustRefresh = false;
    for (let attempt = 0; attempt < 10; attempt++) {
      const seq = await index.getPendingSeq(ns, id);
      if (seq === null && !mustRefresh) return;
      const uploaded: Array<{ bucket: string; key: string }> = [];
      for (const b of await index.listPendingBlobs(ns, id)) {
        await blob.put(b.bucket, b.key, b.body, { contentType: b.contentType });
        uploaded.push({ bucket: b.bucket, key: b.key });
      }
      const archivedOvs: number[] = [];
      if (target.versioned && blobs.versions && !target.deferVersions) {
        const loc = blobs.versions;
        await forEachUnarchivedPage(index, ns, id, async (page) => {
          await inParallel(page, VERSION_PUTS_IN_FLIGHT, ({ ov, body }) => putVersionOnce(blob, loc.bucket, blobKeys.version(loc, ns.collection, id, ov), body));
          // Marked archived only once every put of the page was acknowledged.
          for (const { ov } of page) archivedOvs.push(ov);
        });
      }
      const head = await index.getHead(ns, id);
      // An offloaded head (empty body) is only ever set while its object holds its document.
      if (head && blobs.records && head.body !== '') {
        const key = target.appendOnly
          ? blobKeys.dated(blobs.records, ns.collection, id, head.createdAt)
          : blobKeys.current(blobs.records, ns.collection, id);
        await blob.put(blobs.records.bucket, key, Buffer.from(head.body, 'utf8'), {
          contentType: 'application/json',
        });
      } else if (!head) {
        await this.#purge(target, blob, ns.collection, id);
      }
      // Only now, with every object acknowledged, may the index drop its copies of the payloads.
      if (await index.completeSync(ns, id, { archivedOvs, uploaded, seq })) return;
      // Someone wrote (or synced) the record meanwhile; what we put may be older than theirs.
      mustRefresh = true;
    }
  }

  async #purge(target: SyncTarget, blob: LeasedBlob, collection: string, id: string): Promise<void> {
    for (const kind of ['records', 'versions', 'content'] as const) {
      const loc = target.blobs[kind];
      if (!loc) continue;
      let startAfter: string | undefined;
      do {
        const page = await blob.list(loc.bucket, blobKeys.recordFolder(loc, collection, id), {
          limit: 1000,
          ...(startAfter ? { startAfter } : {}),
        });
        for (const key of page.keys) await blob.delete(loc.bucket, key);
        startAfter = page.nextStartAfter ?? undefined;
      } while (startAfter);
    }
  }
}

/** The blob store as a sync uses it: writes only under the record's lease. */
type LeasedBlob = Pick<BlobStore, 'name' | 'get' | 'put' | 'delete' | 'list'>;

/**
 * A record's sync lease (`IndexStore.acquireLock`), with its expiry as this process sees it
 * (taken from before the acquire call, so never later than the store's).
 */
class RecordLease {
  #expiresAt = 0;

  constructor(
    readonly target: SyncTarget,
    readonly ns: Namespace,
    readonly key: string,
    readonly owner: string,
    readonly leaseMs: number,
  ) {}

  async acquire(): Promise<boolean> {
    const asked = Date.now();
    if (!(await this.target.index.acquireLock(this.ns, this.key, this.owner, this.leaseMs))) return false;
    this.#expiresAt = asked + this.leaseMs;
    return true;
  }

  /** Renews the lease unless it has `needMs` left; throws `SyncLeased` when it was lost. */
  async ensure(needMs: number): Promise<void> {
    if (this.#expiresAt - Date.now() >= needMs) return;
    if (!(await this.acquire())) throw new SyncLeased(`${this.ns.collection}: the sync lease on ${this.key} was lost`);
  }

  release(): Promise<void> {
    return this.target.index.releaseLock(this.ns, this.key, this.owner);
  }

  /** The blob store, with every write made under this lease. */
  guard(blob: BlobStore): LeasedBlob {
    const margin = blob.maxPutMs + LEASE_MARGIN_MS / 2;
    return {
      name: blob.name,
      get: (bucket, key) => blob.get(bucket, key),
      put: async (bucket, key, body, options) => {
        await this.ensure(margin);
        return blob.put(bucket, key, body, options);
      },
      delete: async (bucket, key) => {
        await this.ensure(margin);
        return blob.delete(bucket, key);
      },
      list: (bucket, prefix, options) => blob.list(bucket, prefix, options),
    };
  }
}

/**
 * Visits a record's unarchived versions that still hold their payload, ov ascending, reading the
 * index a page at a time: a record updated many times while the blob store was down may have
 * thousands, and only one page of their payloads is in memory at once.
 */
export async function forEachUnarchived(
  index: Pick<SyncOutbox, 'listUnarchived'>,
  ns: Namespace,
  id: string,
  visit: (ov: number, body: Buffer) => Promise<void>,
): Promise<void> {
  await forEachUnarchivedPage(index, ns, id, async (page) => {
    for (const v of page) await visit(v.ov, v.body);
  });
}

/** `forEachUnarchived`, a page at a time (at most `UNARCHIVED_PAGE` versions, ov ascending). */
export async function forEachUnarchivedPage(
  index: Pick<SyncOutbox, 'listUnarchived'>,
  ns: Namespace,
  id: string,
  visit: (page: Array<{ ov: number; body: Buffer }>) => Promise<void>,
): Promise<void> {
  let afterOv = -1;
  for (;;) {
    const page = await index.listUnarchived(ns, id, { afterOv, limit: UNARCHIVED_PAGE });
    const withBodies = page.flatMap((v) => (v.body === null ? [] : [{ ov: v.ov, body: Buffer.from(v.body, 'utf8') }]));
    if (withBodies.length > 0) await visit(withBodies);
    if (page.length < UNARCHIVED_PAGE) return;
    afterOv = page[page.length - 1]!.ov;
  }
}

/**
 * Runs `work` on every item, at most `limit` at once; resolves when all have succeeded, and
 * rejects with the first failure once every started item has settled (none is left running).
 */
export async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const lane = async () => {
    while (failure === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure) throw failure.err;
}

/**
 * Version objects are immutable: written create-only. Finding one already there is normal after
 * a crash or a duplicate sync, and fine when its bytes are the committed ones; different bytes
 * mean something else wrote that key, which is reported (the record stays in the outbox, its
 * index copy intact) and never overwritten.
 */
export async function putVersionOnce(blob: Pick<BlobStore, 'name' | 'get' | 'put'>, bucket: string, key: string, body: Buffer): Promise<void> {
  try {
    await blob.put(bucket, key, body, { contentType: 'application/json', ifNoneMatch: true });
  } catch (err) {
    if (!(err instanceof ConflictError)) throw err;
    const existing = await blob.get(bucket, key);
    if (existing && Buffer.from(existing).equals(body)) return;
    throw new StorageError(blob.name, 'put', err, `${bucket}/${key} already holds different bytes than the committed version; it was not overwritten`);
  }
}
