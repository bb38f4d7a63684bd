import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { BlobStore } from '../contracts/blob-store.js';
import { NotFoundError, ValidationError } from '../errors.js';
import { isValidName } from '../routing/names.js';
import type { BlobLocation } from '../routing/router.js';

/**
 * The files every snapshot is made of, whatever it holds (records of an index store, documents
 * of a document store): a folder `backups/{collection}/{YYYY-MM-DD}/{dbName}/` of gzip-compressed
 * JSON-lines parts and a `manifest.json`, written last, that lists each part with its line count,
 * size and SHA-256. Reading a part checks all three before a single line is trusted.
 */
export const BACKUP_FORMAT = 'xronox-backup/1';

export interface BackupFile {
  /** File name inside the snapshot folder. */
  name: string;
  lines: number;
  bytes: number;
  sha256: string;
}

/** What every manifest holds, whatever the snapshot's kind. */
export interface ManifestBase {
  format: typeof BACKUP_FORMAT;
  dbName: string;
  databaseType: string;
  collection: string;
  /** The day of the run (UTC), as in the folder name. */
  date: string;
  /** Compressed bytes of every part. */
  bytes: number;
  files: BackupFile[];
}

/** A part holds about this many uncompressed bytes before the next one starts. */
const PART_BYTES = 16 * 1024 * 1024;
const FETCH_CONCURRENCY = 8;

/** The folder of one snapshot. */
export function snapshotFolder(loc: BlobLocation, collection: string, date: string, dbName: string): string {
  return `${loc.prefix}/${collection}/${date}/${dbName}/`;
}

export function backupDate(now: Date): string {
  return now.toISOString().slice(0, 10);
}

/** Writes parts as they fill up. */
export class PartWriter {
  readonly files: BackupFile[] = [];
  #lines: string[] = [];
  #size = 0;

  constructor(
    readonly blob: BlobStore,
    readonly bucket: string,
    readonly folder: string,
  ) {}

  /** Adds one line (JSON text without a newline). */
  async add(line: string): Promise<void> {
    this.#lines.push(line);
    this.#size += line.length + 1;
    if (this.#size >= PART_BYTES) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#lines.length === 0 && this.files.length > 0) return;
    const name = `part-${String(this.files.length).padStart(5, '0')}.jsonl.gz`;
    // gzip with no file name and mtime 0: the same data always gives the same bytes.
    const body = gzipSync(Buffer.from(this.#lines.length > 0 ? `${this.#lines.join('\n')}\n` : '', 'utf8'));
    await this.blob.put(this.bucket, `${this.folder}${name}`, body, { contentType: 'application/gzip' });
    this.files.push({ name, lines: this.#lines.length, bytes: body.byteLength, sha256: sha256(body) });
    this.#lines = [];
    this.#size = 0;
  }
}

/** Writes the manifest (the snapshot's commit point), then removes any file it does not list. */
export async function commitSnapshot(blob: BlobStore, loc: BlobLocation, folder: string, manifest: ManifestBase): Promise<void> {
  await blob.put(loc.bucket, `${folder}manifest.json`, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`), { contentType: 'application/json' });
  await removeUnlisted(blob, loc, folder, manifest);
}

/** Removes the files of a snapshot folder that its manifest does not list (left by a run cut off mid-way). */
export async function removeUnlisted(blob: BlobStore, loc: BlobLocation, folder: string, manifest: ManifestBase): Promise<void> {
  const keep = new Set([...manifest.files.map((f) => `${folder}${f.name}`), `${folder}manifest.json`]);
  let startAfter: string | undefined;
  do {
    const page = await blob.list(loc.bucket, folder, { limit: 1000, ...(startAfter ? { startAfter } : {}) });
    for (const key of page.keys) if (!keep.has(key)) await blob.delete(loc.bucket, key);
    startAfter = page.nextStartAfter ?? undefined;
  } while (startAfter);
}

/** The snapshot folders of one database and day: those of `collections`, or every one that has a manifest. */
export async function snapshotFolders(
  blob: BlobStore,
  loc: BlobLocation,
  dbName: string,
  date: string,
  collections: readonly string[] | undefined,
): Promise<Array<{ folder: string; collection: string }>> {
  if (collections) return collections.map((collection) => ({ collection, folder: snapshotFolder(loc, collection, date, dbName) }));
  const found: Array<{ folder: string; collection: string }> = [];
  const head = `${loc.prefix}/`;
  let startAfter: string | undefined;
  do {
    const page = await blob.list(loc.bucket, head, { limit: 1000, ...(startAfter ? { startAfter } : {}) });
    for (const key of page.keys) {
      const parts = key.slice(head.length).split('/');
      if (parts.length === 4 && parts[1] === date && parts[2] === dbName && parts[3] === 'manifest.json' && isValidName('collection', parts[0])) {
        found.push({ collection: parts[0]!, folder: snapshotFolder(loc, parts[0]!, date, dbName) });
      }
    }
    startAfter = page.nextStartAfter ?? undefined;
  } while (startAfter);
  return found;
}

/** Reads a snapshot's manifest, checked to be a manifest of this database, collection and day. */
export async function readManifest(blob: BlobStore, loc: BlobLocation, folder: string, expected: { dbName: string; collection: string; date: string }): Promise<Record<string, unknown> & ManifestBase> {
  const key = `${folder}manifest.json`;
  const bytes = await blob.get(loc.bucket, key);
  if (!bytes) throw new NotFoundError(`${loc.bucket}/${key} is missing: the backup of ${expected.collection} on ${expected.date} never finished`);
  const manifest = parseManifestBase(bytes, `${loc.bucket}/${key}`);
  if (manifest.dbName !== expected.dbName || manifest.collection !== expected.collection || manifest.date !== expected.date) {
    throw new ValidationError(`${loc.bucket}/${key} describes ${manifest.dbName}/${manifest.collection} on ${manifest.date}, not the folder it is in`);
  }
  return manifest;
}

/** Parses what every manifest shares; the caller checks the fields of its kind. */
export function parseManifestBase(bytes: Uint8Array, where: string): Record<string, unknown> & ManifestBase {
  let m: unknown;
  try {
    m = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new ValidationError(`${where} is not JSON`);
  }
  const ok =
    isObject(m) && m.format === BACKUP_FORMAT && typeof m.dbName === 'string' && typeof m.databaseType === 'string' && typeof m.collection === 'string' &&
    typeof m.date === 'string' && isCount(m.bytes) && Array.isArray(m.files) &&
    m.files.every((f) => isObject(f) && typeof f.name === 'string' && /^part-\d{5}\.jsonl\.gz$/.test(f.name) && isCount(f.lines) && isCount(f.bytes) && typeof f.sha256 === 'string');
  if (!ok) throw new ValidationError(`${where} is not an ${BACKUP_FORMAT} manifest`);
  return m as Record<string, unknown> & ManifestBase;
}

/** The lines of one part, after its size, SHA-256, gzip framing and line count are checked against the manifest. */
export async function readPartLines(blob: BlobStore, bucket: string, folder: string, file: BackupFile): Promise<Array<{ raw: string; where: string }>> {
  const where = `${bucket}/${folder}${file.name}`;
  const bytes = await blob.get(bucket, `${folder}${file.name}`);
  if (!bytes) throw new NotFoundError(`${where} is listed in its manifest but missing`);
  if (bytes.byteLength !== file.bytes || sha256(bytes) !== file.sha256) {
    throw new ValidationError(`${where} does not match its manifest (size or SHA-256): it was changed or damaged`);
  }
  let text: string;
  try {
    text = gunzipSync(bytes).toString('utf8');
  } catch {
    throw new ValidationError(`${where} is not valid gzip`);
  }
  const lines = text.length === 0 ? [] : text.replace(/\n$/, '').split('\n');
  if (lines.length !== file.lines) throw new ValidationError(`${where} holds ${lines.length} lines, its manifest says ${file.lines}`);
  return lines.map((raw, i) => ({ raw, where: `${where} line ${i + 1}` }));
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** `run` over `items` with a few calls in flight at a time; results in the order of `items`. */
export async function mapInParallel<T, R>(items: readonly T[], run: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await run(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(FETCH_CONCURRENCY, items.length) }, worker));
  return out;
}
