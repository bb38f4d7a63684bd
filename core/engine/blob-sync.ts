import { randomUUID } from 'node:crypto';
import type { BlobStore } from '../contracts/blob-store.js';
import { ConflictError, StorageError } from '../errors.js';
import { type IndexStore, type Namespace, processTag } from '../contracts/index-store.js';
import type { BlobKind } from '../config/schema.js';
import type { BlobLocation } from '../routing/router.js';

/** What the syncer needs to know about the database a record lives in. */
export interface SyncTarget {
  readonly index: IndexStore;
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
  /** Records still behind because the blob store failed; they stay in the outbox. */
  failed: number;
  /** Records moved to the dead-letter list after `maxRetries` failed attempts. */
  deadLettered: number;
}

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
const DEFAULT_RETRY_DELAY_MS = 250;
const DEFAULT_MAX_DELAY_MS = 30_000;
/** A record's sync lease outlasts the blob store's slowest put by this much. */
const LEASE_MARGIN_MS = 1_000;
/** How often `repair()` looks again at a record another process's lease holds. */
const LEASED_POLL_MS = 100;
/** The longest `repair()` waits for records another process holds (a crashed one's lease may be long); the rest stay in the outbox. */
const MAX_REPAIR_WAIT_MS = 30_000;
/** The longest `close()` waits for such records. */
const CLOSE_WAIT_MS = 10_000;

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
 * by syncing again: `repair()` does that for every record left in the outbox.
 *
 * Syncs of one record never overlap, so an older `current.json` can never land after a newer
 * one: in this process a record is synced by one task at a time, and across processes each sync
 * holds a lease on the record in the index store (`sync:{id}`, longer than the blob store's
 * `maxPutMs`). A record whose lease another process holds is retried later, or waited for by
 * `repair()`; a lease left by a crashed process runs out by itself. A sync whose outbox entry
 * was re-marked while it ran loops, still holding its lease, and writes the newer state.
 */
export class BlobSync {
  readonly #queue = new Map<string, { target: SyncTarget; ns: Namespace; id: string }>();
  readonly #running = new Map<string, Promise<void>>();
  /** Records written again while their sync ran: they go back in the queue when it ends. */
  readonly #again = new Map<string, { target: SyncTarget; ns: Namespace; id: string }>();
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
  readonly #onError: (err: unknown) => void;
  /** This syncer's name on the record leases it takes (with its process: see `processTag`). */
  readonly #owner = `sync:${randomUUID()}@${processTag()}`;
  /** Records last skipped because another process held their lease (cleared when synced or retried). */
  readonly #leasedKeys = new Set<string>();
  /** Databases with such records: `close()` gives them a last pass. */
  readonly #leasedTargets = new Set<SyncTarget>();
  /** `repair()` calls under way (`close()` waits for them). */
  readonly #repairs = new Set<Promise<unknown>>();
  /** `close()` has begun: background retries and repairs stop waiting. */
  #closing = false;
  /** The background retry pass under way, if any (`close()` waits for it). */
  #retrying: Promise<void> | undefined;

  constructor(onError: (err: unknown) => void, policy: RetryPolicy = {}) {
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
    const key = `${target.dbName}\u0000${ns.collection}\u0000${id}`;
    if (this.#running.has(key)) this.#again.set(key, { target, ns, id });
    else this.#queue.set(key, { target, ns, id });
    this.#pump();
    // Index stores like SQLite answer synchronously, so a loop of awaited writes would never let
    // the event loop run the sync's I/O. Past a small backlog, each write yields once; past a
    // large one, writers wait for room, which bounds memory.
    if (this.#queue.size > YIELD_ABOVE) await new Promise<void>((r) => setImmediate(r));
    while (this.#queue.size > MAX_QUEUED) await new Promise<void>((r) => this.#space.push(r));
  }

  /** Resolves once every queued record has been tried; failed ones stay in the outbox. */
  async flush(): Promise<SyncReport> {
    if (this.#queue.size > 0 || this.#active > 0) await new Promise<void>((r) => this.#idle.push(r));
    const report = { synced: this.#synced, failed: this.#failed, deadLettered: this.#deadLettered };
    this.#synced = 0;
    this.#failed = 0;
    this.#deadLettered = 0;
    return report;
  }

  /**
   * Syncs every record the outbox of `target` lists (after a crash or a blob store outage).
   * Records whose sync lease another process holds are waited for, up to one lease: a live
   * holder finishes them, and a crashed one's lease runs out, after which they are synced here.
   * `onPage` hears how many records were synced so far after each page of the outbox.
   */
  async repair(target: SyncTarget, collection?: string, onPage?: (synced: number) => Promise<void> | void): Promise<SyncReport> {
    const run = this.#repair(target, collection, Math.min(this.#leaseMs(target), MAX_REPAIR_WAIT_MS), false, onPage);
    this.#repairs.add(run);
    try {
      return await run;
    } finally {
      this.#repairs.delete(run);
    }
  }

  /** One pass over the outbox, then more while records are leased by another process, for up to `waitMs`. */
  async #repair(target: SyncTarget, collection: string | undefined, waitMs: number, closingPass = false, onPage?: (synced: number) => Promise<void> | void): Promise<SyncReport> {
    const seen = new Set<string>();
    const deadline = Date.now() + waitMs;
    for (;;) {
      const retried = new Set<string>();
      for (;;) {
        if (this.#closed) break;
        const page = await target.index.listPendingSync(target.dbName, { limit: 500, ...(collection ? { collection } : {}) });
        const fresh = page.filter((p) => !retried.has(`${target.dbName}\u0000${p.collection}\u0000${p.id}`));
        if (fresh.length === 0) break;
        for (const p of fresh) {
          const key = `${target.dbName}\u0000${p.collection}\u0000${p.id}`;
          retried.add(key);
          seen.add(key);
          this.#leasedKeys.delete(key);
          await this.schedule(target, { dbName: target.dbName, collection: p.collection }, p.id);
        }
        await this.flush();
        await onPage?.(seen.size);
      }
      const leased = [...retried].some((k) => this.#leasedKeys.has(k));
      // Once `close()` has begun, only its own last pass still waits.
      if (!leased || this.#closed || (this.#closing && !closingPass) || Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, LEASED_POLL_MS));
    }
    if (this.#closed) return { synced: 0, failed: 0, deadLettered: 0 };
    const left = await target.index.listPendingSync(target.dbName, { limit: 1, ...(collection ? { collection } : {}) });
    return { synced: seen.size, failed: left.length, deadLettered: 0 };
  }

  async close(): Promise<void> {
    this.#closing = true;
    await this.flush();
    clearTimeout(this.#retryTimer);
    await this.#retrying;
    await Promise.allSettled([...this.#repairs]);
    // Records skipped because another process held them: once that process lets go, they are
    // ours to write (it may have finished before our write); a short wait, then they stay in the
    // outbox for the next repair.
    for (const target of this.#leasedTargets) await this.#repair(target, undefined, Math.min(this.#leaseMs(target), CLOSE_WAIT_MS), true).catch((err: unknown) => this.#onError(err));
    this.#leasedTargets.clear();
    await this.flush();
    this.#closed = true;
  }

  #pump(): void {
    while (this.#active < CONCURRENCY) {
      const next = this.#queue.entries().next();
      if (next.done) break;
      const [key, job] = next.value;
      this.#queue.delete(key);
      this.#wake(this.#space);
      this.#active++;
      const run = this.syncRecord(job.target, job.ns, job.id)
        // A write in another process while we held the record found it leased and left it to
        // us, perhaps after our last look: one more look now (it comes back through `#again`).
        .then(async () => {
          if (!this.#closed && (await job.target.index.getPendingSeq(job.ns, job.id)) !== null) await this.schedule(job.target, job.ns, job.id);
        })
        .then(() => {
          this.#leasedKeys.delete(key);
          this.#synced++;
          this.#failures.delete(key);
          this.#retryDelay = this.#policy.retryDelayMs;
        })
        .catch(async (err: unknown) => {
          if (err instanceof SyncLeased) {
            // Not a failure: the lease holder writes the record; if it dies, the lease runs out.
            this.#leasedKeys.add(key);
            this.#leasedTargets.add(job.target);
            this.#scheduleRetry(job.target);
            return;
          }
          this.#failed++;
          this.#onError(err);
          const failures = (this.#failures.get(key) ?? 0) + 1;
          this.#failures.set(key, failures);
          if (this.#policy.maxRetries !== undefined && failures > this.#policy.maxRetries) {
            await this.#deadLetter(job, key, err).catch((e: unknown) => this.#onError(e));
          } else this.#scheduleRetry(job.target);
        })
        .finally(() => {
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
        for (const t of targets) if (!this.#closing) await this.#repair(t, undefined, 0).catch((err: unknown) => this.#onError(err));
      })();
    }, delay);
    this.#retryTimer.unref();
  }

  async #deadLetter(job: { target: SyncTarget; ns: Namespace; id: string }, key: string, err: unknown): Promise<void> {
    const seq = await job.target.index.getPendingSeq(job.ns, job.id);
    const reason = err instanceof Error ? err.message : String(err);
    if (seq !== null && (await job.target.index.deadLetterSync(job.ns, job.id, seq, reason))) this.#deadLettered++;
    this.#failures.delete(key);
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
      await lease.release().catch((err: unknown) => this.#onError(err));
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
        await forEachUnarchived(index, ns, id, async (ov, body) => {
          await putVersionOnce(blob, loc.bucket, blobKeys.version(loc, ns.collection, id, ov), body);
          archivedOvs.push(ov);
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
  index: Pick<IndexStore, 'listUnarchived'>,
  ns: Namespace,
  id: string,
  visit: (ov: number, body: Buffer) => Promise<void>,
): Promise<void> {
  let afterOv = -1;
  for (;;) {
    const page = await index.listUnarchived(ns, id, { afterOv, limit: UNARCHIVED_PAGE });
    for (const v of page) if (v.body !== null) await visit(v.ov, Buffer.from(v.body, 'utf8'));
    if (page.length < UNARCHIVED_PAGE) return;
    afterOv = page[page.length - 1]!.ov;
  }
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
