import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { link, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { setImmediate } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import type { BlobInfo, BlobListing, BlobStore, PutOptions } from '../../contracts/blob-store.js';
import { ConflictError, StorageError, ValidationError } from '../../errors.js';
import { fsReason, makeFolder } from './fs-folders.js';
import { FS_BLOB_STORE_MEMBERS } from './fs-settings.js';

export interface FsBlobStoreOptions {
  /** Root folder; each bucket is a folder below it. */
  basePath: string;
}

const TEMP_SUFFIX = '.xronox-tmp';
/**
 * Where puts write before renaming into place: one folder in each bucket's folder, which no key
 * can name (key segments never start with a dot) and which is on the bucket's filesystem (a
 * rename cannot cross filesystems, and a bucket folder may be a mount). A put cut off by a crash
 * leaves its file here, where the next store to write to the bucket removes it.
 */
const TEMP_FOLDER = '.xronox-tmp';
/** A temporary file this old belongs to no put still running (a put takes at most `maxPutMs`). */
const STALE_TEMP_MS = 60_000;
const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;
/** The largest object `get` reads synchronously. */
const SYNC_READ_MAX_BYTES = 256 * 1024;

/**
 * The local filesystem as a blob store: `{basePath}/{bucket}/{key}`. Writes go to a temporary
 * file (in `{basePath}/{bucket}/.xronox-tmp/`) that is fsynced and renamed into place, so a
 * reader or a crash never sees half an object, and an acknowledged put survives a crash.
 */
export class FsBlobStore implements BlobStore {
  readonly name = FS_BLOB_STORE_MEMBERS.name;
  readonly capabilities = FS_BLOB_STORE_MEMBERS.capabilities;
  readonly maxPutMs = FS_BLOB_STORE_MEMBERS.maxPutMs;
  readonly #root: string;

  /** Per bucket, its temporary folder once prepared. */
  readonly #tempReady = new Map<string, Promise<string>>();
  /** Folder fsyncs, shared by the puts into one folder that wait at the same time. */
  readonly #dirSyncs = new DirSyncs();

  constructor(options: FsBlobStoreOptions) {
    this.#root = resolve(options.basePath);
  }

  async put(bucket: string, key: string, body: Uint8Array, options: PutOptions = {}): Promise<void> {
    const path = this.#path(bucket, key);
    const dir = path.slice(0, path.lastIndexOf(sep));
    await makeFolder(dir);
    const temp = join(await this.#temp(bucket), `${randomBytes(8).toString('hex')}${TEMP_SUFFIX}`);
    const handle = await open(temp, 'w');
    try {
      await handle.writeFile(body);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      // link() refuses an existing target, which makes a create-only put atomic; rename() replaces.
      if (options.ifNoneMatch) await link(temp, path);
      else await rename(temp, path);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      if (options.ifNoneMatch && (err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new ConflictError(`${bucket}/${key} already exists (a create-only write was refused)`);
      }
      throw err;
    }
    if (options.ifNoneMatch) await unlink(temp);
    await this.#dirSyncs.sync(dir);
  }

  /**
   * Objects up to `SYNC_READ_MAX_BYTES` are read synchronously. An asynchronous read is four
   * thread-pool round trips (open, stat, read, close), which took 150 to 250 µs per object here
   * and was most of a `getAsOf`; a synchronous read of a few KiB takes about 10 µs when the file
   * is cached. It is the trade the embedded SQLite index store already makes on every query.
   * Larger objects (content files) are read asynchronously, so no read blocks the event loop long.
   * Every read first yields one turn of the event loop: a caller reading in a loop must not keep
   * timers and other requests' I/O waiting (the blob conformance suite's concurrent overwrite
   * test starves without it).
   */
  async get(bucket: string, key: string): Promise<Uint8Array | null> {
    const path = this.#path(bucket, key);
    await setImmediate();
    try {
      return readSmallFileSync(this.name, path) ?? (await readFile(path));
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async head(bucket: string, key: string): Promise<BlobInfo | null> {
    try {
      const info = await stat(this.#path(bucket, key));
      if (!info.isFile()) return null;
      return { size: info.size, contentType: key.endsWith('.json') ? 'application/json' : undefined, lastModified: info.mtime.toISOString() };
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async delete(bucket: string, key: string): Promise<void> {
    try {
      await unlink(this.#path(bucket, key));
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
  }

  async list(bucket: string, prefix: string, options: { startAfter?: string; limit?: number } = {}): Promise<BlobListing> {
    const limit = options.limit ?? 1000;
    // Walk only the folder the prefix pins down, not the whole bucket.
    const folder = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    const start = this.#resolve(bucket, folder ? checkedSegments(folder) : []);
    const keys: string[] = [];
    await walk(start, folder, keys);
    const selected = keys
      .filter((k) => k.startsWith(prefix) && (options.startAfter === undefined || k > options.startAfter))
      .sort()
      .slice(0, limit + 1);
    const page = selected.slice(0, limit);
    return { keys: page, nextStartAfter: selected.length > limit ? (page[page.length - 1] ?? null) : null };
  }

  async presign(bucket: string, key: string, _ttlSeconds: number): Promise<string> {
    // A local file needs no signature; the URL is only meaningful on this machine.
    return pathToFileURL(this.#path(bucket, key)).href;
  }

  async check(bucket: string): Promise<void> {
    try {
      const probe = join(await this.#temp(bucket), `${randomBytes(8).toString('hex')}${TEMP_SUFFIX}`);
      const handle = await open(probe, 'w');
      try {
        await handle.writeFile('probe');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await unlink(probe);
    } catch (err) {
      throw new StorageError(this.name, 'check', err, `The blob folder ${this.#resolve(bucket, [])} cannot be written: ${fsReason(err)}`);
    }
  }

  async close(): Promise<void> {}

  /** The bucket's temporary folder, prepared by the first put (a failed preparation is tried again by the next). */
  #temp(bucket: string): Promise<string> {
    let ready = this.#tempReady.get(bucket);
    if (!ready) {
      ready = this.#prepareTemp(bucket).catch((err: unknown) => {
        this.#tempReady.delete(bucket);
        throw err;
      });
      this.#tempReady.set(bucket, ready);
    }
    return ready;
  }

  /** Creates a bucket's temporary folder, and removes what puts cut off by a crash left in it. */
  async #prepareTemp(bucket: string): Promise<string> {
    const folder = this.#resolve(bucket, [TEMP_FOLDER]);
    await makeFolder(folder);
    const cutoff = Date.now() - STALE_TEMP_MS;
    for (const name of await readdir(folder)) {
      const file = join(folder, name);
      const info = await stat(file).catch(() => null);
      if (info && info.mtimeMs < cutoff) await unlink(file).catch(() => undefined);
    }
    return folder;
  }

  #path(bucket: string, key: string): string {
    return this.#resolve(bucket, checkedSegments(key));
  }

  #resolve(bucket: string, parts: string[]): string {
    if (!SEGMENT.test(bucket)) throw new ValidationError(`Invalid bucket name ${JSON.stringify(bucket)}`);
    return join(this.#root, bucket, ...parts);
  }
}

/** The `/`-separated segments of an object key; refuses empty keys, empty segments, `.` and `..`. */
function checkedSegments(key: string): string[] {
  const parts = key.split('/');
  for (const part of parts) {
    if (!SEGMENT.test(part) || part === '.' || part === '..') throw new ValidationError(`Invalid object key ${JSON.stringify(key.slice(0, 200))}`);
  }
  return parts;
}

async function walk(dir: string, relative: string, out: string[]): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isMissing(err)) return;
    throw err;
  }
  for (const entry of entries) {
    const rel = relative ? `${relative}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      if (entry.name !== TEMP_FOLDER) await walk(join(dir, entry.name), rel, out);
    }
    else if (entry.isFile() && !entry.name.endsWith(TEMP_SUFFIX)) out.push(rel);
  }
}

/**
 * Folder fsyncs as a group commit: a put needs an fsync of its folder that starts after its
 * rename. When none is running, one starts; while one runs (it may have started before the
 * rename), the next one is booked to start when it ends, and every put that arrives meanwhile
 * waits for that same next one. A backlog of versions of one record (`v{ov}.json` side by side)
 * then costs one folder fsync per round instead of one per file.
 */
class DirSyncs {
  readonly #folders = new Map<string, { running: Promise<void>; next?: Promise<void> }>();

  sync(dir: string): Promise<void> {
    const state = this.#folders.get(dir);
    if (!state) return this.#start(dir);
    state.next ??= state.running.catch(() => undefined).then(() => this.#start(dir));
    return state.next;
  }

  #start(dir: string): Promise<void> {
    const running = syncDir(dir).finally(() => {
      const state = this.#folders.get(dir);
      if (state?.running !== running) return;
      // The booked one (if any) becomes the running one as it starts; nothing booked: done.
      if (state.next === undefined) this.#folders.delete(dir);
    });
    const state = this.#folders.get(dir);
    if (state) {
      state.running = running;
      delete state.next;
    } else this.#folders.set(dir, { running });
    return running;
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Codes that mean "no object at that key": nothing there, or only a folder of other keys. */
function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

/**
 * The file's bytes when it is a regular file of at most `SYNC_READ_MAX_BYTES`, else `null` (the
 * caller reads it asynchronously). Objects are renamed into place and never written in place, so
 * the size read from the open file is the size of the object this read returns. A folder at the
 * path is no object (EISDIR, as a missing one); a FIFO, socket or device is refused: no put makes
 * one, and reading it could wait forever (a FIFO without a writer holds a thread-pool thread).
 */
function readSmallFileSync(store: string, path: string): Buffer | null {
  // Non-blocking, so a FIFO at the path cannot stall the event loop in open().
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = fstatSync(fd);
    if (info.isDirectory()) throw Object.assign(new Error(`EISDIR: ${path} is a folder`), { code: 'EISDIR' });
    if (!info.isFile()) throw new StorageError(store, 'get', undefined, `${path} is not a regular file (a FIFO, socket or device), so it holds no object`);
    if (info.size > SYNC_READ_MAX_BYTES) return null;
    // Its own memory, as readFile's result has, not a slice of Node's shared pool.
    const bytes = Buffer.allocUnsafeSlow(info.size);
    let filled = 0;
    while (filled < bytes.length) {
      const n = readSync(fd, bytes, filled, bytes.length - filled, filled);
      if (n === 0) break;
      filled += n;
    }
    return filled === bytes.length ? bytes : bytes.subarray(0, filled);
  } finally {
    closeSync(fd);
  }
}
