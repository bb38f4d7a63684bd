import { gunzip, gzip } from '../foundation/compression.js';
import { sha256Hex } from '../foundation/digest.js';
import type { BlobStore } from '../contracts/blob-store.js';
import { NotFoundError, ValidationError } from '../errors.js';
import { isValidName } from '../foundation/names.js';
import type { BlobLocation } from '../routing/router.js';

/**
 * The files every snapshot is made of, whatever it holds (records of an index store, documents
 * of a document store): per collection, a folder
 * `backups/{collection}/{YYYY-MM-DD}/{dbName}/{snapshot}/` of gzip-compressed JSON-lines parts and
 * a `manifest.json`, written last, that lists each part with its line count, size and SHA-256.
 * Reading a part checks all three before a single line is trusted.
 *
 * A snapshot is what one backup run takes of one database: its id is the run's time of day
 * (UTC, `T` + `hhmmss.sssZ`), so every run makes a new snapshot, and each of its manifests
 * records the id and the collections the run set out to back up. A snapshot is complete when
 * each of those collections has its manifest. A run that finds the day's last snapshot of its
 * database incomplete (a run cut off) finishes that one instead of starting another. Snapshots
 * written before ids existed sit directly in `{dbName}/` (no id, no list) and stay restorable.
 */
export const BACKUP_FORMAT = 'xronox-backup/1';

/** A snapshot id: the time of day (UTC) its run started, to the millisecond. */
export const SNAPSHOT_ID = /^T\d{6}\.\d{3}Z$/;

/** The id of the snapshot a run started at `now` takes. */
export function snapshotId(now: Date): string {
  const t = now.toISOString();
  return `T${t.slice(11, 13)}${t.slice(14, 16)}${t.slice(17, 19)}.${t.slice(20, 23)}Z`;
}

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
  /** The snapshot (`null`/absent: written before snapshot ids existed), and every collection its run backs up. */
  snapshot?: SnapshotRef;
  /** Compressed bytes of every part. */
  bytes: number;
  files: BackupFile[];
}

export interface SnapshotRef {
  id: string;
  collections: string[];
}

/** A part holds about this many uncompressed bytes before the next one starts. */
const PART_BYTES = 16 * 1024 * 1024;
const FETCH_CONCURRENCY = 8;

/** The folder of one collection's snapshot (`snapshot` `null`: one written before snapshot ids existed). */
export function snapshotFolder(loc: BlobLocation, collection: string, date: string, dbName: string, snapshot: string | null): string {
  return `${loc.prefix}/${collection}/${date}/${dbName}/${snapshot === null ? '' : `${snapshot}/`}`;
}

/** What a backup run of one database writes on its day. */
export interface SnapshotPlan {
  id: string;
  /** The collections of the snapshot: every one the run backs up. */
  collections: string[];
  /** The day's last snapshot, left incomplete by a run cut off, which this run finishes. */
  resumed: boolean;
  /** A complete snapshot taken at or after this run's time exists already (a retried invocation): nothing to write. */
  upToDate: boolean;
}

/**
 * The snapshot a backup run started at `now` writes for `dbName`: the day's last snapshot if a run
 * cut off left it incomplete (with the collections that run set out to back up), else a new one
 * of `collections` named after `now`, unless a complete one at or after `now` exists (then
 * `upToDate`). Finds the day's snapshots by listing each collection's folder of the day.
 */
export async function planSnapshot(blob: BlobStore, loc: BlobLocation, dbName: string, date: string, now: Date, collections: readonly string[]): Promise<SnapshotPlan> {
  const found = new Map<string, Map<string, boolean>>();
  for (const collection of collections) {
    const folder = snapshotFolder(loc, collection, date, dbName, null);
    for (const key of await allKeys(blob, loc.bucket, folder)) {
      const [id, file, ...rest] = key.slice(folder.length).split('/');
      if (rest.length > 0 || file === undefined || !SNAPSHOT_ID.test(id!)) continue;
      let of = found.get(id!);
      if (!of) found.set(id!, (of = new Map()));
      of.set(collection, (of.get(collection) ?? false) || file === 'manifest.json');
    }
  }
  const ids = [...found.keys()].sort();
  const last = ids[ids.length - 1];
  if (last !== undefined) {
    const withManifest = [...found.get(last)!].filter(([, manifest]) => manifest).map(([collection]) => collection);
    const recorded = withManifest.length > 0 ? await recordedCollections(blob, loc, snapshotFolder(loc, withManifest[0]!, date, dbName, last)) : null;
    const complete = recorded !== null && recorded.every((c) => withManifest.includes(c));
    if (!complete) return { id: last, collections: recorded ?? [...collections], resumed: true, upToDate: false };
    if (last >= snapshotId(now)) return { id: last, collections: recorded, resumed: false, upToDate: true };
  }
  return { id: snapshotId(now), collections: [...collections], resumed: false, upToDate: false };
}

async function recordedCollections(blob: BlobStore, loc: BlobLocation, folder: string): Promise<string[] | null> {
  const bytes = await blob.get(loc.bucket, `${folder}manifest.json`);
  if (!bytes) return null;
  const manifest = parseManifestBase(bytes, `${loc.bucket}/${folder}manifest.json`);
  return manifest.snapshot?.collections ?? null;
}

async function allKeys(blob: BlobStore, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let startAfter: string | undefined;
  do {
    const page = await blob.list(bucket, prefix, { limit: 1000, ...(startAfter ? { startAfter } : {}) });
    keys.push(...page.keys);
    startAfter = page.nextStartAfter ?? undefined;
  } while (startAfter);
  return keys;
}

export function backupDate(now: Date): string {
  return now.toISOString().slice(0, 10);
}

/**
 * Writes parts as they fill up. Part boundaries depend only on the lines (a part ends once it
 * holds `partBytes`), so a backup resumed from its progress (`resume`) writes the same parts, byte
 * for byte, as one that was never cut off.
 */
export class PartWriter {
  readonly files: BackupFile[] = [];
  #lines: string[] = [];
  #size = 0;

  constructor(
    readonly blob: BlobStore,
    readonly bucket: string,
    readonly folder: string,
    readonly partBytes = PART_BYTES,
  ) {}

  /** Carries on from saved progress: the parts already written and the lines of the part being filled. */
  resume(files: readonly BackupFile[], pending: readonly string[]): void {
    this.files.push(...files);
    this.#lines = [...pending];
    this.#size = pending.reduce((n, l) => n + l.length + 1, 0);
  }

  /** The lines of the part being filled (not yet written). */
  get pending(): readonly string[] {
    return this.#lines;
  }

  /** Adds one line (JSON text without a newline). */
  async add(line: string): Promise<void> {
    this.#lines.push(line);
    this.#size += line.length + 1;
    if (this.#size >= this.partBytes) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#lines.length === 0 && this.files.length > 0) return;
    const name = `part-${String(this.files.length).padStart(5, '0')}.jsonl.gz`;
    const body = await gzipLines(this.#lines);
    await this.blob.put(this.bucket, `${this.folder}${name}`, body, { contentType: 'application/gzip' });
    this.files.push({ name, lines: this.#lines.length, bytes: body.byteLength, sha256: sha256(body) });
    this.#lines = [];
    this.#size = 0;
  }
}

/** gzip with no file name and mtime 0: the same lines always give the same bytes. */
function gzipLines(lines: readonly string[]): Promise<Uint8Array> {
  return gzip(lines.length > 0 ? `${lines.join('\n')}\n` : '');
}

export const PROGRESS_FORMAT = 'xronox-backup-progress/1';

/**
 * How far a backup of one collection got: written to the snapshot folder (`progress.json`, and
 * the lines of the part being filled in `pending.jsonl.gz`) after every part and whenever the run
 * stops at a checkpoint, so the next run carries on from the record after `cursor` instead of
 * from the start. Neither file is listed in the manifest, so committing the snapshot removes
 * both. `state` is the job's own (what it read when the collection began, its counts, where a
 * later phase is), kept as is.
 */
export interface BackupProgress<S> {
  format: typeof PROGRESS_FORMAT;
  files: BackupFile[];
  /** The pending part's lines: their count and SHA-256 of `pending.jsonl.gz` (`null`: none). */
  pending: { lines: number; sha256: string } | null;
  state: S;
}

/** Saves a collection's progress: the pending lines first, then the record that points at them. */
export async function saveProgress<S>(blob: BlobStore, bucket: string, folder: string, parts: PartWriter, state: S): Promise<void> {
  let pending: BackupProgress<S>['pending'] = null;
  if (parts.pending.length > 0) {
    const body = await gzipLines(parts.pending);
    await blob.put(bucket, `${folder}pending.jsonl.gz`, body, { contentType: 'application/gzip' });
    pending = { lines: parts.pending.length, sha256: sha256(body) };
  }
  const progress: BackupProgress<S> = { format: PROGRESS_FORMAT, files: parts.files, pending, state };
  await blob.put(bucket, `${folder}progress.json`, new TextEncoder().encode(JSON.stringify(progress)), { contentType: 'application/json' });
}

/**
 * A collection's saved progress, its pending lines checked against their SHA-256; `null` when
 * there is none, or when what is there cannot be trusted (damaged, or from another format): the
 * collection is then written again from the start, which gives the same snapshot.
 */
export async function loadProgress<S>(blob: BlobStore, bucket: string, folder: string, isState: (s: unknown) => s is S): Promise<{ progress: BackupProgress<S>; pending: string[] } | null> {
  const bytes = await blob.get(bucket, `${folder}progress.json`);
  if (!bytes) return null;
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
  if (
    !isObject(value) || value.format !== PROGRESS_FORMAT || !Array.isArray(value.files) || !isState(value.state) ||
    !value.files.every((f) => isObject(f) && typeof f.name === 'string' && /^part-\d{5}\.jsonl\.gz$/.test(f.name) && isCount(f.lines) && isCount(f.bytes) && typeof f.sha256 === 'string') ||
    !(value.pending === null || (isObject(value.pending) && isCount(value.pending.lines) && typeof value.pending.sha256 === 'string'))
  ) {
    return null;
  }
  const progress = value as unknown as BackupProgress<S>;
  if (!progress.pending) return { progress, pending: [] };
  const body = await blob.get(bucket, `${folder}pending.jsonl.gz`);
  if (!body || sha256(body) !== progress.pending.sha256) return null;
  let text: string;
  try {
    text = new TextDecoder().decode(await gunzip(body));
  } catch {
    return null;
  }
  const pending = text.length === 0 ? [] : text.replace(/\n$/, '').split('\n');
  return pending.length === progress.pending.lines ? { progress, pending } : null;
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

/** The snapshot a restore reads, and the folder of each of its collections. */
export interface ChosenSnapshot {
  /** `null`: a snapshot written before snapshot ids existed. */
  id: string | null;
  folders: Array<{ folder: string; collection: string }>;
}

/**
 * The snapshot of `dbName` on `date` that a restore reads: the one named `snapshot`, else the
 * day's last complete one (a snapshot written before ids existed counts as complete, and comes
 * before every snapshot with an id). Only `collections` of it when given; each must be in it.
 * Lists the backups folder to find them; a missing or incomplete snapshot is a `NotFoundError`
 * that names the ones the day has.
 */
export async function chooseSnapshot(
  blob: BlobStore,
  loc: BlobLocation,
  dbName: string,
  date: string,
  options: { snapshot?: string; collections?: readonly string[] },
): Promise<ChosenSnapshot> {
  // Collections with a manifest, per snapshot id ('' for the ones without an id).
  const found = new Map<string, Set<string>>();
  const head = `${loc.prefix}/`;
  for (const key of await allKeys(blob, loc.bucket, head)) {
    const parts = key.slice(head.length).split('/');
    if (parts[1] !== date || parts[2] !== dbName || parts[parts.length - 1] !== 'manifest.json' || !isValidName('collection', parts[0])) continue;
    const id = parts.length === 4 ? '' : parts.length === 5 && SNAPSHOT_ID.test(parts[3]!) ? parts[3]! : null;
    if (id === null) continue;
    let of = found.get(id);
    if (!of) found.set(id, (of = new Set()));
    of.add(parts[0]!);
  }
  const where = `${dbName} dated ${date} in ${loc.bucket}/${loc.prefix}/`;
  const described: string[] = [];
  // Newest first; '' (no id) sorts last.
  const candidates = options.snapshot !== undefined ? [options.snapshot] : [...found.keys()].sort().reverse();
  for (const id of candidates) {
    const withManifest = found.get(id);
    if (!withManifest) continue;
    let collections: string[];
    if (id === '') collections = [...withManifest].sort();
    else {
      const recorded = await recordedCollections(blob, loc, snapshotFolder(loc, [...withManifest][0]!, date, dbName, id));
      if (recorded === null) {
        described.push(`${id} (its manifests list no collections)`);
        continue;
      }
      const missing = recorded.filter((c) => !withManifest.has(c));
      if (missing.length > 0) {
        described.push(`${id} (incomplete: no ${missing.join(', ')}; the next backup run finishes it)`);
        continue;
      }
      collections = recorded;
    }
    if (options.collections) {
      const absent = options.collections.filter((c) => !collections.includes(c));
      if (absent.length > 0) throw new NotFoundError(`The backup of ${where}${id === '' ? '' : ` (snapshot ${id})`} holds no ${absent.join(', ')}; it holds ${collections.join(', ') || 'no collection'}`);
      collections = [...options.collections];
    }
    return { id: id === '' ? null : id, folders: collections.map((collection) => ({ collection, folder: snapshotFolder(loc, collection, date, dbName, id === '' ? null : id) })) };
  }
  const ids = [...found.keys()].filter((id) => id !== '').sort();
  if (options.snapshot !== undefined) {
    throw new NotFoundError(`No complete snapshot ${options.snapshot} of ${where}${described.length > 0 ? `: ${described.join('; ')}` : `; the day has ${ids.length > 0 ? ids.join(', ') : 'no snapshot'}`}`);
  }
  throw new NotFoundError(`No backup of ${where}${described.length > 0 ? `: ${described.join('; ')}` : ''}`);
}

/** Reads a snapshot's manifest, checked to be a manifest of this database, collection, day and snapshot. */
export async function readManifest(
  blob: BlobStore,
  loc: BlobLocation,
  folder: string,
  expected: { dbName: string; collection: string; date: string; snapshot: string | null },
): Promise<Record<string, unknown> & ManifestBase> {
  const key = `${folder}manifest.json`;
  const bytes = await blob.get(loc.bucket, key);
  if (!bytes) throw new NotFoundError(`${loc.bucket}/${key} is missing: the backup of ${expected.collection} on ${expected.date} never finished`);
  const manifest = parseManifestBase(bytes, `${loc.bucket}/${key}`);
  if (manifest.dbName !== expected.dbName || manifest.collection !== expected.collection || manifest.date !== expected.date || (manifest.snapshot?.id ?? null) !== expected.snapshot) {
    throw new ValidationError(`${loc.bucket}/${key} describes ${manifest.dbName}/${manifest.collection} on ${manifest.date}${manifest.snapshot ? ` (snapshot ${manifest.snapshot.id})` : ''}, not the folder it is in`);
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
    (m.snapshot === undefined ||
      (isObject(m.snapshot) && typeof m.snapshot.id === 'string' && SNAPSHOT_ID.test(m.snapshot.id) && Array.isArray(m.snapshot.collections) &&
        m.snapshot.collections.every((c) => isValidName('collection', c)))) &&
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
    text = new TextDecoder().decode(await gunzip(bytes));
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

export function sha256(bytes: Uint8Array): string {
  return sha256Hex(bytes);
}

/**
 * `run` over `items` with at most `concurrency` calls in flight (default 8); results in the order
 * of `items`. The first rejection rejects the whole call once the calls in flight settle, and no
 * new call starts after it.
 */
export async function mapInParallel<T, R>(items: readonly T[], run: (item: T) => Promise<R>, concurrency = FETCH_CONCURRENCY): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (next < items.length && !failed) {
      const i = next++;
      try {
        out[i] = await run(items[i]!);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  const rejected = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (rejected) throw rejected.reason;
  return out;
}
