import type { Namespace, VersionRow } from '../contracts/index-store.js';
import { blobKeys } from '../engine/blob-sync.js';
import { StorageError } from '../errors.js';
import { copyBlob } from '../store/blob-copy.js';
import type { BlobLocation } from '../routing/router.js';
import type { JobTarget } from './job.js';
import { type BackupFile, isCount, isObject, mapInParallel, parseManifestBase, readPartLines, sha256, snapshotFolder } from './snapshot.js';

/**
 * How a snapshot holds the archived versions of its records (`jobs.backup.format`):
 *
 * - `self-contained`: each archived version's document is in the snapshot's parts (`doc`), read
 *   from the versions bucket (one GetObject per archived version, every backup).
 * - `reference`: each archived version is named (`ref`: its key in the versions bucket, size and
 *   SHA-256). A version's SHA-256 comes from the previous reference snapshot of the collection
 *   when that one named it (version objects are immutable and create-only), else from reading the
 *   object once; so a daily backup reads only the versions archived since the day before.
 * - `copy`: as `reference`, and each version not copied by an earlier snapshot is copied, server
 *   side (S3 CopyObject), into the backups bucket under `{prefix}/_objects/{dbName}/…`, named in
 *   `ref.copy`; a restore reads it from there when the versions bucket has lost it.
 *
 * A restore checks every referenced object's size and SHA-256 before it writes anything.
 */
export type BackupFormat = 'self-contained' | 'reference' | 'copy';
export const BACKUP_FORMATS: readonly BackupFormat[] = ['self-contained', 'reference', 'copy'];

/** An archived version as a reference snapshot names it. */
export interface VersionRef {
  /** Its key in the versions bucket (`versionObjects.bucket` of the manifest). */
  key: string;
  size: number;
  sha256: string;
  /** `copy` format: its copy's key in the backups bucket. */
  copy?: string;
}

/** Where a reference snapshot's versions are (the manifest's `versionObjects`). */
export interface VersionObjects {
  format: Exclude<BackupFormat, 'self-contained'>;
  /** The versions bucket the references' keys are in. */
  bucket: string;
  /** `copy` format: the backups bucket the copies are in. */
  copies?: string;
}

export type VersionLine = { t: 'version'; version: VersionRow; doc: string | null; ref?: VersionRef };

export function isVersionRef(value: unknown): value is VersionRef {
  return (
    isObject(value) && typeof value.key === 'string' && value.key.length > 0 && isCount(value.size) && typeof value.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(value.sha256) && (value.copy === undefined || (typeof value.copy === 'string' && value.copy.length > 0))
  );
}

export function isVersionObjects(value: unknown): value is VersionObjects {
  return isObject(value) && (value.format === 'reference' || value.format === 'copy') && typeof value.bucket === 'string' && (value.copies === undefined || typeof value.copies === 'string');
}

/** Where the last committed reference snapshot of a collection is, for the next one to carry its SHA-256s forward. */
function lastRefsKey(backups: BlobLocation, dbName: string, collection: string): string {
  return `${backups.prefix}/_refs/${dbName}/${collection}.json`;
}

/** The copy of a version in the backups bucket (`copy` format); `_objects` is no collection name, so no snapshot folder is ever there. */
export function copyKey(backups: BlobLocation, dbName: string, collection: string, id: string, ov: number): string {
  return `${backups.prefix}/_objects/${dbName}/${collection}/${id}/v${ov}.json`;
}

/** Records that `folder` (a committed reference snapshot) is the collection's newest, for the next backup. */
export async function rememberRefs(target: JobTarget, backups: BlobLocation, collection: string, snapshot: { date: string; id: string }): Promise<void> {
  await target.blob.put(backups.bucket, lastRefsKey(backups, target.dbName, collection), Buffer.from(JSON.stringify(snapshot)), { contentType: 'application/json' });
}

/**
 * The references of the collection's previous reference snapshot, read part by part in record
 * order alongside the backup (which also goes in record id order), so memory holds one part.
 * Any doubt (no previous snapshot, another bucket, a damaged part) only costs reads: a version
 * it cannot vouch for is read and hashed.
 */
class PriorRefs {
  #files: BackupFile[];
  #file = 0;
  #lines: string[] = [];
  #line = 0;
  /** The record whose references `#refs` holds, and the one read after it (or null at the end). */
  #id: string | null = null;
  #refs = new Map<number, VersionRef>();
  #next: { id: string; ov: number; ref: VersionRef } | null | undefined;
  #broken = false;

  private constructor(
    readonly target: JobTarget,
    readonly bucket: string,
    readonly folder: string,
    files: BackupFile[],
  ) {
    this.#files = files;
  }

  static async open(target: JobTarget, backups: BlobLocation, collection: string, versionsBucket: string, format: BackupFormat): Promise<PriorRefs | null> {
    const pointer = await target.blob.get(backups.bucket, lastRefsKey(backups, target.dbName, collection));
    if (!pointer) return null;
    try {
      const { date, id } = JSON.parse(Buffer.from(pointer).toString('utf8')) as { date: string; id: string };
      const folder = snapshotFolder(backups, collection, date, target.dbName, id);
      const bytes = await target.blob.get(backups.bucket, `${folder}manifest.json`);
      if (!bytes) return null;
      const manifest = parseManifestBase(bytes, folder);
      const objects = manifest.versionObjects;
      // Copies are only vouched for by a `copy` snapshot into the same backups bucket.
      if (manifest.dbName !== target.dbName || manifest.collection !== collection || !isVersionObjects(objects) || objects.bucket !== versionsBucket) return null;
      if (format === 'copy' && objects.copies !== backups.bucket) return null;
      return new PriorRefs(target, backups.bucket, folder, manifest.files);
    } catch {
      return null;
    }
  }

  /** The previous snapshot's reference of version `ov` of record `id`; calls come in record id order. */
  async find(id: string, ov: number): Promise<VersionRef | undefined> {
    while (!this.#broken && (this.#id === null || this.#id < id)) {
      if (!(await this.#advance())) break;
    }
    return this.#id === id ? this.#refs.get(ov) : undefined;
  }

  /** Loads the next record's references; false at the end. */
  async #advance(): Promise<boolean> {
    if (this.#next === undefined) this.#next = await this.#read();
    if (this.#next === null) {
      this.#id = null;
      this.#broken = true; // the end: nothing more to find
      return false;
    }
    const id = this.#next.id;
    this.#refs = new Map();
    while (this.#next && this.#next.id === id) {
      this.#refs.set(this.#next.ov, this.#next.ref);
      this.#next = await this.#read();
    }
    this.#id = id;
    return true;
  }

  /** The next version line with a reference, across parts. */
  async #read(): Promise<{ id: string; ov: number; ref: VersionRef } | null> {
    for (;;) {
      while (this.#line < this.#lines.length) {
        const raw = this.#lines[this.#line++]!;
        if (!raw.startsWith('{"t":"version"')) continue;
        const line = JSON.parse(raw) as { version?: { id?: unknown; ov?: unknown }; ref?: unknown };
        if (isVersionRef(line.ref) && typeof line.version?.id === 'string' && isCount(line.version.ov)) return { id: line.version.id, ov: line.version.ov, ref: line.ref };
      }
      const file = this.#files[this.#file++];
      if (!file) return null;
      try {
        this.#lines = (await readPartLines(this.target.blob, this.bucket, this.folder, file)).map((l) => l.raw);
      } catch {
        return null;
      }
      this.#line = 0;
    }
  }
}

/**
 * The version lines of a backup, in the collection's format: reads (or copies) the objects of
 * archived versions `concurrency` at a time. Counts the objects it read and copied.
 */
export class VersionReader {
  reads = 0;
  copies = 0;
  #prior: Promise<PriorRefs | null> | undefined;

  constructor(
    readonly target: JobTarget,
    readonly ns: Namespace,
    readonly format: BackupFormat,
    readonly backups: BlobLocation,
    readonly concurrency: number,
  ) {}

  /** A line per row, in order; `undefined` for an entry pruned while it was read. */
  async lines(rows: readonly VersionRow[]): Promise<Array<VersionLine | undefined>> {
    const loc = this.target.blobs.versions;
    if (this.format === 'self-contained' || !loc) {
      return mapInParallel(rows, async (row) => {
        if (row.body !== null) return { t: 'version', version: row, doc: null };
        const doc = await this.#read(loc, row);
        return doc === undefined ? undefined : { t: 'version', version: row, doc: Buffer.from(doc).toString('utf8') };
      }, this.concurrency);
    }
    // What the previous snapshot vouches for, looked up in record order before the reads fan out.
    this.#prior ??= PriorRefs.open(this.target, this.backups, this.ns.collection, loc.bucket, this.format);
    const prior = await this.#prior;
    const known: Array<VersionRef | undefined> = [];
    for (const row of rows) known.push(row.body === null && prior ? await prior.find(row.id, row.ov) : undefined);
    return mapInParallel(rows.map((row, i) => ({ row, known: known[i] })), async ({ row, known }): Promise<VersionLine | undefined> => {
      if (row.body !== null) return { t: 'version', version: row, doc: null };
      const key = blobKeys.version(loc, this.ns.collection, row.id, row.ov);
      let ref: VersionRef;
      if (known && known.key === key) ref = this.format === 'copy' ? known : { key, size: known.size, sha256: known.sha256 };
      else {
        const bytes = await this.#read(loc, row);
        if (bytes === undefined) return undefined;
        ref = { key, size: bytes.byteLength, sha256: sha256(bytes) };
      }
      if (this.format === 'copy' && ref.copy === undefined) {
        const copy = copyKey(this.backups, this.target.dbName, this.ns.collection, row.id, row.ov);
        await copyBlob(this.target.blob, { bucket: loc.bucket, key }, { bucket: this.backups.bucket, key: copy });
        this.copies++;
        ref = { ...ref, copy };
      }
      return { t: 'version', version: row, doc: null, ref };
    }, this.concurrency);
  }

  /** The bytes of an archived version; `undefined` when its entry is gone (pruned while we read). */
  async #read(loc: BlobLocation | undefined, row: VersionRow): Promise<Uint8Array | undefined> {
    const bytes = loc ? await this.target.blob.get(loc.bucket, blobKeys.version(loc, this.ns.collection, row.id, row.ov)) : null;
    this.reads++;
    if (bytes) return bytes;
    // Retention prunes the object before the entry: an entry that is gone now was pruned.
    if (!(await this.target.index.getVersion(this.ns, row.id, row.ov))) return undefined;
    throw new StorageError(this.target.blob.name, 'get', undefined, `Version ${row.ov} of ${row.id} in ${this.target.dbName}/${this.ns.collection} is archived but its object is missing; the backup cannot be complete`);
  }
}
