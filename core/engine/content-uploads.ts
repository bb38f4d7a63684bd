import { randomUUID } from '../foundation/digest.js';
import { sleep } from '../foundation/timers.js';
import type { Namespace, RecordIndex, UploadIntent, UploadIntents, UploadRef } from '../contracts/index-store.js';
import { StorageError } from '../errors.js';
import { blobKeys } from './blob-sync.js';
import { headBody, type OffloadTarget } from './offloaded.js';

/**
 * # Content uploads that leave nothing behind
 *
 * Content (`base64Props`) is uploaded before the write's index commit, at a content-addressed
 * key in the record's folder (`content/{collection}/{id}/{property}/{sha256}/blob.bin`),
 * create-only, an object already there counting as uploaded. A write that uploads and then does
 * not commit (the blob store answered "failed" after storing the object, a timeout, a version
 * conflict, a crash) would leave an object no record references. Two things make removing such
 * objects delicate: one object may be shared by a committed version and a later failed attempt
 * (content set back to an earlier value), and a cleanup deleting an object may race a writer
 * about to commit a reference to the same key. The protocol:
 *
 * 1. **Intent.** Before uploading, a write records an upload intent per key in the index store
 *    (`recordUploads`, its own small transaction: key, a token unique to this write call, the
 *    store's time). It is refused while the key has a cleanup mark (step 3); the writer waits
 *    for the mark to go, at most `MARK_WAIT_MS`, then fails with a `StorageError` (nothing written).
 * 2. **Commit.** The write's commit removes its intents in the same transaction, and fails
 *    (reason `upload`, nothing written, the caller gets a `StorageError`) when one is gone: a
 *    cleanup took it because the write had outlived `limits.maxUploadSeconds`. A write that does
 *    not commit leaves its intents; when its process is still alive it cleans them up at once
 *    (step 3 with `own`), unless the blob store failed it (then the objects' state is unknown and
 *    the sweep cleans up later). A restore, which reuses references of an older version, records
 *    intents too for the keys the current head does not reference, and checks that the objects
 *    are still there, so it is covered like an upload.
 * 3. **Cleanup.** `repair()` and the scheduled archive sweep (`sweepUploads`) take intents older
 *    than `limits.maxUploadSeconds` (default 15 minutes: longer than any live write). For one key,
 *    atomically (`claimUploadCleanup`): unless another write's younger intent exists, every intent
 *    on the key is removed and the key gets a cleanup mark. Holding the mark, the cleanup reads
 *    the record's head and every version (archived ones from the versions bucket), renews the
 *    mark, and deletes the object only when none of them references the key; then it removes
 *    the mark. Every loop is bounded: pages of intents, pages of versions, the writer's wait.
 *
 * Why nothing acknowledged is lost: a commit that references key K either keeps a reference the
 * head it is conditioned on already holds, or introduced K under an intent. An intent recorded
 * before the cleanup marked K is younger than the cleanup's age (else the mark removed it and the
 * commit fails), so the mark is never placed while it lives; one recorded after the mark was
 * placed waits for the mark to go, and the write then uploads K afresh (or, a restore, finds it
 * gone and refuses). A head holding K that the cleanup's read missed was committed after that
 * read, which the two cases above exclude. So when the cleanup deletes K, no committed version
 * or head references it and none can come to.
 *
 * What it assumes: a delete the blob store acknowledged is not carried out again later, and a
 * request is over (carried out or not) within `limits.maxUploadSeconds`; so a cleanup whose
 * delete failed keeps its mark (writes of that key wait or fail until a later sweep takes the
 * stale mark over and finishes), and the default age is above the S3 client's longest request
 * (5 attempts of at most 65 s with backoff, under 7 minutes).
 */

/** Default of `limits.maxUploadSeconds`, in milliseconds. */
export const DEFAULT_UPLOAD_STALE_MS = 15 * 60_000;

/** `limits.maxUploadSeconds` in milliseconds: the age at which an upload intent may be taken by a cleanup. */
export function uploadStaleMs(config: { readonly limits?: { readonly maxUploadSeconds?: number | undefined } | undefined }): number {
  const seconds = config.limits?.maxUploadSeconds;
  return seconds === undefined ? DEFAULT_UPLOAD_STALE_MS : seconds * 1000;
}
/** The longest a write waits for a cleanup mark on a key it must upload. */
const MARK_WAIT_MS = 3_000;
const SWEEP_PAGE = 100;
/** A sweep looks at most this many pages of stale intents per database; the rest wait for the next one. */
const SWEEP_MAX_PAGES = 20;
const VERSION_PAGE = 100;

/** A database as the cleanup sees it. */
export interface UploadTarget extends OffloadTarget {
  readonly index: UploadIndex;
  readonly dbName: string;
}

/** The roles of the index store the upload protocol uses: upload intents, and reads of the records that may use an object. */
export type UploadIndex = UploadIntents & Pick<RecordIndex, 'getHead' | 'getVersion' | 'listVersions'> & { readonly name: string };

/** What a sweep did: objects deleted, objects kept because a record uses them, cleanups that failed (retried later). */
export interface UploadSweepReport {
  deleted: number;
  kept: number;
  failed: number;
}

/**
 * The upload intents of one write call (a create, an update, an enrich with its retries, a
 * `createMany`, a restore): recorded once per key, given to the commit, and what no commit took
 * is cleaned up at the end (`finish`).
 */
export class UploadSession {
  readonly token = randomUUID();
  readonly #target: UploadTarget;
  readonly #ns: Namespace;
  readonly #olderThanMs: number;
  /** Recorded and not taken by a commit yet, by key. */
  readonly #open = new Map<string, UploadIntent>();
  readonly #uploaded = new Set<string>();
  #storeFailed = false;

  constructor(target: UploadTarget, ns: Namespace, olderThanMs: number) {
    this.#target = target;
    this.#ns = ns;
    this.#olderThanMs = olderThanMs;
  }

  /** Records intents for the keys not recorded yet (waiting, bounded, for a cleanup mark); returns the refs of all of them for the commit. */
  async record(objects: ReadonlyArray<{ id: string; bucket: string; key: string }>): Promise<UploadRef[]> {
    const fresh = objects.filter((o) => !this.#open.has(o.key)).map((o) => ({ id: o.id, bucket: o.bucket, key: o.key, token: this.token }));
    if (fresh.length > 0) {
      await recordWaiting(this.#target.index, this.#ns, fresh);
      for (const intent of fresh) this.#open.set(intent.key, intent);
    }
    return objects.map((o) => ({ bucket: o.bucket, key: o.key, token: this.token }));
  }

  /** Whether this session already put the object (a retried write need not put it again). */
  uploaded(key: string): boolean {
    return this.#uploaded.has(key);
  }

  markUploaded(key: string): void {
    this.#uploaded.add(key);
  }

  /** The blob store failed an upload: what it holds is unknown, so cleaning up is left to the sweep. */
  storeFailed(): void {
    this.#storeFailed = true;
  }

  /**
   * A commit found one of its intents gone: a cleanup took it while this write was slower than
   * `limits.maxUploadSeconds`, and the upload may have landed after that cleanup looked. The
   * keys get fresh intents, so `finish` (or the sweep) removes what no record uses.
   */
  async lost(refs: readonly UploadRef[]): Promise<void> {
    const intents = refs.map((r) => this.#open.get(r.key)).filter((i): i is UploadIntent => i !== undefined);
    if (intents.length > 0) await recordWaiting(this.#target.index, this.#ns, intents).catch(() => undefined);
  }

  /** A commit took these intents. */
  committed(refs: readonly UploadRef[]): void {
    for (const ref of refs) {
      this.#open.delete(ref.key);
      this.#uploaded.delete(ref.key);
    }
  }

  /**
   * Cleans up the intents no commit took (a failed write, or keys an earlier attempt of a retried
   * write uploaded): each object is deleted unless a record references it. Never throws: what is
   * left is the sweep's.
   */
  async finish(): Promise<void> {
    if (this.#open.size === 0 || this.#storeFailed) return;
    for (const intent of this.#open.values()) {
      await cleanUpload(this.#target, this.#ns, intent, { olderThanMs: this.#olderThanMs, own: true }).catch(() => undefined);
    }
    this.#open.clear();
  }
}

async function recordWaiting(index: UploadIndex, ns: Namespace, intents: readonly UploadIntent[]): Promise<void> {
  const deadline = Date.now() + MARK_WAIT_MS;
  for (let attempt = 0; ; attempt++) {
    const result = await index.recordUploads(ns, intents);
    if (result.ok) return;
    if (Date.now() >= deadline) {
      throw new StorageError(
        index.name,
        'recordUploads',
        undefined,
        `The content object ${result.key} is being removed by a cleanup (an earlier write of the same content to this record did not commit); nothing was written, try again later`,
      );
    }
    await sleep(Math.min(25 * 2 ** attempt, 400));
  }
}

/**
 * Step 3 for one intent or stale mark: claims the key's cleanup, deletes the object unless the
 * record references it, ends the cleanup. `skipped`: another write or cleanup has the key (or
 * the intent was taken meanwhile). Throws when the check or the delete fails (see the protocol
 * for what is left then).
 */
export async function cleanUpload(
  target: UploadTarget,
  ns: Namespace,
  upload: UploadIntent,
  options: { olderThanMs: number; own?: boolean; markToken?: string },
): Promise<'deleted' | 'kept' | 'skipped'> {
  const { index } = target;
  const markToken = options.markToken ?? randomUUID();
  const claim = { olderThanMs: options.olderThanMs, markToken };
  if (!(await index.claimUploadCleanup(ns, upload, { ...claim, ...(options.own ? { own: true } : {}) }))) return 'skipped';
  let referenced: boolean;
  try {
    referenced = await isReferenced(target, ns, upload.id, upload.key);
  } catch (err) {
    // Nothing was deleted: the key goes back to being a stale intent, for the next sweep.
    await index.releaseUploadCleanup(ns, upload, markToken, { retry: true }).catch(() => undefined);
    throw err;
  }
  if (!referenced) {
    // Renewed right before the delete, so no other cleanup can take the mark over while it runs.
    if (!(await index.claimUploadCleanup(ns, { bucket: upload.bucket, key: upload.key, token: markToken }, claim))) return 'skipped';
    await target.blob.delete(upload.bucket, upload.key);
  }
  await index.releaseUploadCleanup(ns, upload, markToken);
  return referenced ? 'kept' : 'deleted';
}

/**
 * Whether the record's head or any of its versions references the object key. The check is on
 * the documents' JSON text (a reference holds the key as a JSON string), so it needs no config:
 * a reference is found whatever `base64Props` says today, and text that merely mentions the key
 * only keeps an object. A version whose text cannot be read is an error, never a "no".
 */
export async function isReferenced(target: UploadTarget, ns: Namespace, id: string, key: string): Promise<boolean> {
  const needle = JSON.stringify(key);
  const head = await target.index.getHead(ns, id);
  if (head && (await headBody(target, ns, head)).includes(needle)) return true;
  const versions = target.blobs.versions;
  let beforeOv: number | undefined;
  for (;;) {
    const rows = await target.index.listVersions(ns, id, { limit: VERSION_PAGE, ...(beforeOv !== undefined ? { beforeOv } : {}) });
    for (const row of rows) {
      let body = row.body;
      if (body === null) {
        const bytes = versions ? await target.blob.get(versions.bucket, blobKeys.version(versions, ns.collection, id, row.ov)) : null;
        if (!bytes) {
          throw new StorageError(target.blob.name, 'get', undefined, `Version ${row.ov} of ${ns.collection}/${id} is archived but its object is missing, so whether it uses ${key} is unknown; the object is kept`);
        }
        body = Buffer.from(bytes).toString('utf8');
      }
      if (body.includes(needle)) return true;
    }
    if (rows.length < VERSION_PAGE) return false;
    beforeOv = rows[rows.length - 1]!.ov;
  }
}

/**
 * The sweep (step 3 for a database): every upload intent and cleanup mark older than
 * `olderThanMs`, a page at a time, at most `SWEEP_MAX_PAGES` pages; each key is tried once per
 * sweep, and a failure (reported to `onError`) leaves it for the next one.
 */
export async function sweepUploads(
  target: UploadTarget,
  options: { olderThanMs: number; between?: () => Promise<void>; onError?: (err: unknown, source: { dbName: string; collection: string }) => void },
): Promise<UploadSweepReport> {
  const report: UploadSweepReport = { deleted: 0, kept: 0, failed: 0 };
  const tried = new Set<string>();
  const seen = (collection: string, upload: UploadRef) => `${collection}\u0000${upload.bucket}\u0000${upload.key}\u0000${upload.token}`;
  let visited = 0;
  for (let page = 0; page < SWEEP_MAX_PAGES; page++) {
    await options.between?.();
    // Oldest first, and what failed goes back to the front: ask for enough to reach past it.
    const rows = await target.index.listStaleUploads(target.dbName, { olderThanMs: options.olderThanMs, limit: SWEEP_PAGE + visited });
    const fresh = rows.filter((r) => !tried.has(seen(r.collection, r)));
    if (fresh.length === 0) break;
    for (const row of fresh) {
      visited++;
      const markToken = randomUUID();
      tried.add(seen(row.collection, row));
      // A cleanup that fails before deleting turns its mark back into an intent: not again this sweep.
      tried.add(seen(row.collection, { ...row, token: markToken }));
      try {
        const outcome = await cleanUpload(target, { dbName: target.dbName, collection: row.collection }, row, { olderThanMs: options.olderThanMs, markToken });
        if (outcome === 'deleted') report.deleted++;
        else if (outcome === 'kept') report.kept++;
      } catch (err) {
        report.failed++;
        options.onError?.(err, { dbName: target.dbName, collection: row.collection });
      }
    }
  }
  return report;
}
