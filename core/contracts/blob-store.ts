/**
 * The blob store port: objects addressed by bucket and key, as on S3. The local filesystem
 * adapter lays them out as `{basePath}/{bucket}/{key}`.
 *
 * Keys are `/`-separated segments of letters, digits, `_`, `.` and `-` (no empty segment, no
 * `.` or `..`); any other key is refused with a `ValidationError` before the store is touched.
 * A key that only prefixes other keys (a "folder") names no object. Callers must not
 * store an object at a key that is also the folder of other objects (`a/b` and `a/b/c`): S3
 * allows it, a filesystem cannot, and Xronox's layout never needs it.
 */
export interface BlobStore {
  /** Short adapter name used in errors and logs, e.g. `fs`. */
  readonly name: string;
  readonly capabilities: BlobStoreCapabilities;
  /**
   * The longest one `put` can take before the store gives up on it (its timeouts and retries
   * together). A record's sync holds a lease longer than this, so a put from a sync that lost its
   * lease can never land after another sync's newer one.
   */
  readonly maxPutMs: number;

  /**
   * Stores the bytes under the key, replacing any previous object atomically (readers see old or
   * new, never a mix). Resolves only once the object is durable.
   */
  put(bucket: string, key: string, body: Uint8Array, options?: PutOptions): Promise<void>;

  /** The object's bytes; `null` when there is no such object. */
  get(bucket: string, key: string): Promise<Uint8Array | null>;

  /** The object's size and type without its bytes; `null` when there is no such object. */
  head(bucket: string, key: string): Promise<BlobInfo | null>;

  /** Removes the object. Removing a missing object is not an error. */
  delete(bucket: string, key: string): Promise<void>;

  /** Keys under `prefix`, in lexicographic order, after `startAfter` when given, at most `limit`. */
  list(bucket: string, prefix: string, options?: { startAfter?: string; limit?: number }): Promise<BlobListing>;

  /**
   * Optional: copies an object inside the store (S3 CopyObject: server side, the bytes never
   * reach the caller), replacing any object at the destination atomically, as `put` does. A
   * missing source rejects with a `NotFoundError` and writes nothing. Stores without it are
   * copied by a get and a put (`copyBlob` in `core/store/blob-copy.ts`).
   */
  copy?(fromBucket: string, fromKey: string, toBucket: string, toKey: string): Promise<void>;

  /** A URL that lets its holder GET the object for `ttlSeconds`. */
  presign(bucket: string, key: string, ttlSeconds: number): Promise<string>;

  /**
   * Optional: proves the bucket takes writes now, leaving nothing behind, so a process can refuse
   * to start instead of failing its first write (the local folder creates the bucket's folder
   * and writes, fsyncs and removes a probe file). Rejects with a `StorageError` naming the place
   * and the reason. Stores without it are checked by their first use.
   */
  check?(bucket: string): Promise<void>;

  /**
   * Optional: connects to the backend (a client's first connection). The core's guard
   * (`core/store/guard.ts`) calls it once, before the first other call; when it fails, that call
   * fails and the next one calls it again; never after close. So methods need no connect of their own.
   */
  open?(): Promise<void>;

  /** Releases clients and handles. */
  close(): Promise<void>;
}

export interface BlobStoreCapabilities {
  /** `presign` yields URLs usable by other machines (S3), not just this one (file URLs). */
  readonly remotePresign: boolean;
  /** `put` with `ifNoneMatch` is enforced by the store (S3 If-None-Match); otherwise it overwrites. */
  readonly conditionalWrites: boolean;
}

export interface PutOptions {
  contentType?: string;
  /**
   * Create only: when an object already exists at the key, the put fails with a
   * `ConflictError` and the object is left as it was (on stores with `conditionalWrites`).
   */
  ifNoneMatch?: boolean;
}

export interface BlobInfo {
  size: number;
  contentType: string | undefined;
  lastModified: string;
}

export interface BlobListing {
  keys: string[];
  /** Pass as `startAfter` to read the next page; `null` when this page is the last. */
  nextStartAfter: string | null;
}
