import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ACTOR_TYPES, type CounterWindow, type HeadRow, type ImportedRecord, type Namespace, VERSION_OPS, type VersionRow } from '../contracts/index-store.js';
import { blobKeys, putVersionOnce } from '../engine/blob-sync.js';
import { COUNTER_WINDOW_GRANULARITIES } from '../engine/counter-windows.js';
import { headBody } from '../engine/offloaded.js';
import type { JobTarget } from '../engine/xronox.js';
import { NotFoundError, StorageError, ValidationError } from '../errors.js';
import { isValidName } from '../routing/names.js';
import type { BlobLocation } from '../routing/router.js';
import type { JobContext } from './job.js';

/**
 * Backups: per database and collection, a snapshot in the backups bucket at
 * `backups/{collection}/{YYYY-MM-DD}/{dbName}/` (the documented folder; the database name keeps
 * databases that share a bucket apart):
 *
 * - `part-00000.jsonl.gz`, … : gzip-compressed JSON lines, one per head, version entry and unique
 *   claim, records in id order, each head followed by its version entries. A version already
 *   archived carries its document text (`doc`), read from the versions bucket, so a snapshot is
 *   complete on its own;
 * - `manifest.json`, written last: the commit point. It holds the counts, the collection
 *   version, the counter totals, every counter window (`retention.counters`) and, per file, its
 *   line count, size and SHA-256.
 *
 * Logs are never backed up (their storage policy has no backups bucket). A run that finds a
 * collection's manifest for the day already there skips it, so a run that crashed resumes with
 * the collections it had not finished; a collection cut off mid-way is written again from the
 * start (file names are deterministic) and any file its manifest does not list is removed.
 */
export const BACKUP_FORMAT = 'xronox-backup/1';

export interface BackupManifest {
  format: typeof BACKUP_FORMAT;
  dbName: string;
  databaseType: string;
  collection: string;
  /** The day of the run (UTC), as in the folder name. */
  date: string;
  /** The namespace's last collection version when the snapshot began; `null` if never written. */
  collectionVersion: number | null;
  /** The collection's counter totals (kept in the analytics database for runtime). */
  counters: Record<string, number>;
  /**
   * Every counter window of the collection (kept next to the totals), of each granularity in
   * `day`, `week`, `month` order, keys ascending. Absent in manifests written before windows
   * existed, which restore as having none.
   */
  counterWindows?: CounterWindow[];
  counts: { heads: number; versions: number; claims: number };
  /** Compressed bytes of every part. */
  bytes: number;
  files: BackupFile[];
}

export interface BackupFile {
  /** File name inside the snapshot folder. */
  name: string;
  lines: number;
  bytes: number;
  sha256: string;
}

type Line =
  | { t: 'head'; head: HeadRow }
  | { t: 'version'; version: VersionRow; doc: string | null }
  | { t: 'claim'; key: string; id: string };

/** A part holds about this many uncompressed bytes before the next one starts. */
const PART_BYTES = 16 * 1024 * 1024;
const PAGE = 200;
const VERSION_PAGE = 500;
const FETCH_CONCURRENCY = 8;
const IMPORT_RECORDS = 100;
const IMPORT_VERSIONS = 2000;

/** The folder of one snapshot. */
export function snapshotFolder(loc: BlobLocation, collection: string, date: string, dbName: string): string {
  return `${loc.prefix}/${collection}/${date}/${dbName}/`;
}

export function backupDate(now: Date): string {
  return now.toISOString().slice(0, 10);
}

/** Backs up every collection of one database. */
export async function backupDatabase(target: JobTarget, ctx: JobContext): Promise<void> {
  const loc = target.blobs.backups;
  if (!loc) return;
  const date = backupDate(ctx.now);
  for (const collection of await target.index.listCollections(target.dbName)) {
    await ctx.checkpoint();
    await backupCollection(target, loc, collection, date, ctx);
  }
}

async function backupCollection(target: JobTarget, loc: BlobLocation, collection: string, date: string, ctx: JobContext): Promise<void> {
  const ns: Namespace = { dbName: target.dbName, collection };
  const folder = snapshotFolder(loc, collection, date, target.dbName);
  const existing = await target.blob.get(loc.bucket, `${folder}manifest.json`);
  if (existing) {
    // Done by this run before a crash, or by an earlier run today: only finish its clean-up.
    await removeUnlisted(target, loc, folder, parseManifest(existing, `${folder}manifest.json`));
    ctx.tally.add('collectionsAlreadyBackedUp');
    return;
  }
  const collectionVersion = await target.index.getCollectionVersion(ns);
  const counters = await target.index.getCounters(target.analyticsDbName, collection);
  const counterWindows: CounterWindow[] = [];
  for (const granularity of COUNTER_WINDOW_GRANULARITIES) {
    counterWindows.push(...(await target.index.getCounterWindows(target.analyticsDbName, collection, { granularity })));
  }
  const parts = new PartWriter(target, loc.bucket, folder);
  const offloadTarget = { index: target.index, blob: target.blob, versioned: target.policy.versioned, appendOnly: target.policy.appendOnly, blobs: target.blobs };
  const counts = { heads: 0, versions: 0, claims: 0 };

  let after: { value: string; id: string } | undefined;
  for (;;) {
    await ctx.checkpoint();
    const heads = await target.index.listHeads(ns, { filter: null, includeDeleted: true, sort: { field: 'id', direction: 1 }, limit: PAGE, ...(after ? { after } : {}) });
    for (const head of heads) {
      // An offloaded head is backed up with its real document, so a restore is exact.
      const body = await headBody(offloadTarget, ns, head);
      await parts.add({ t: 'head', head: body === head.body ? head : { ...head, body } });
      counts.heads++;
      // Entries up to the head's ov only: the record as it was when its head was read.
      let beforeOv = head.ov + 1;
      for (;;) {
        const rows = await target.index.listVersions(ns, head.id, { beforeOv, limit: VERSION_PAGE });
        const docs = await mapInParallel(rows, (row) => archivedDoc(target, ns, row));
        for (let i = 0; i < rows.length; i++) {
          if (docs[i] === undefined) continue; // pruned while we read it
          await parts.add({ t: 'version', version: rows[i]!, doc: docs[i]! });
          counts.versions++;
        }
        if (rows.length < VERSION_PAGE) break;
        beforeOv = rows[rows.length - 1]!.ov;
      }
      ctx.step();
    }
    if (heads.length < PAGE) break;
    const last = heads[heads.length - 1]!;
    after = { value: last.id, id: last.id };
  }
  let afterKey: string | undefined;
  for (;;) {
    const claims = await target.index.listClaims(ns, { limit: PAGE, ...(afterKey !== undefined ? { afterKey } : {}) });
    for (const c of claims) await parts.add({ t: 'claim', key: c.key, id: c.id });
    counts.claims += claims.length;
    if (claims.length < PAGE) break;
    afterKey = claims[claims.length - 1]!.key;
  }
  await parts.flush();

  const manifest: BackupManifest = {
    format: BACKUP_FORMAT,
    dbName: target.dbName,
    databaseType: target.databaseType,
    collection,
    date,
    collectionVersion,
    counters,
    counterWindows,
    counts,
    bytes: parts.files.reduce((n, f) => n + f.bytes, 0),
    files: parts.files,
  };
  await target.blob.put(loc.bucket, `${folder}manifest.json`, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`), { contentType: 'application/json' });
  await removeUnlisted(target, loc, folder, manifest);
  ctx.tally.add('backedUpCollections');
  ctx.tally.add('backedUpRecords', counts.heads);
  ctx.tally.add('backedUpVersions', counts.versions);
  ctx.tally.bytes += manifest.bytes;
}

/** The document text of an archived version (from the versions bucket); `null` when the entry holds it; `undefined` when the entry is gone. */
async function archivedDoc(target: JobTarget, ns: Namespace, row: VersionRow): Promise<string | null | undefined> {
  if (row.body !== null) return null;
  const loc = target.blobs.versions;
  const bytes = loc ? await target.blob.get(loc.bucket, blobKeys.version(loc, ns.collection, row.id, row.ov)) : null;
  if (bytes) return Buffer.from(bytes).toString('utf8');
  // Retention prunes the object before the entry: an entry that is gone now was pruned.
  if (!(await target.index.getVersion(ns, row.id, row.ov))) return undefined;
  throw new StorageError(target.blob.name, 'get', undefined, `Version ${row.ov} of ${row.id} in ${target.dbName}/${ns.collection} is archived but its object is missing; the backup cannot be complete`);
}

/** Writes parts as they fill up. */
class PartWriter {
  readonly files: BackupFile[] = [];
  #lines: string[] = [];
  #size = 0;

  constructor(
    readonly target: JobTarget,
    readonly bucket: string,
    readonly folder: string,
  ) {}

  async add(line: Line): Promise<void> {
    const text = JSON.stringify(line);
    this.#lines.push(text);
    this.#size += text.length + 1;
    if (this.#size >= PART_BYTES) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#lines.length === 0 && this.files.length > 0) return;
    const name = `part-${String(this.files.length).padStart(5, '0')}.jsonl.gz`;
    // gzip with no file name and mtime 0: the same data always gives the same bytes.
    const body = gzipSync(Buffer.from(this.#lines.length > 0 ? `${this.#lines.join('\n')}\n` : '', 'utf8'));
    await this.target.blob.put(this.bucket, `${this.folder}${name}`, body, { contentType: 'application/gzip' });
    this.files.push({ name, lines: this.#lines.length, bytes: body.byteLength, sha256: sha256(body) });
    this.#lines = [];
    this.#size = 0;
  }
}

async function removeUnlisted(target: JobTarget, loc: BlobLocation, folder: string, manifest: BackupManifest): Promise<void> {
  const keep = new Set([...manifest.files.map((f) => `${folder}${f.name}`), `${folder}manifest.json`]);
  let startAfter: string | undefined;
  do {
    const page = await target.blob.list(loc.bucket, folder, { limit: 1000, ...(startAfter ? { startAfter } : {}) });
    for (const key of page.keys) if (!keep.has(key)) await target.blob.delete(loc.bucket, key);
    startAfter = page.nextStartAfter ?? undefined;
  } while (startAfter);
}

// ---- restore --------------------------------------------------------------------------------

export interface RestoreOptions {
  /** The snapshot's day, `YYYY-MM-DD`. */
  date: string;
  /** Only these collections. Default: every collection the snapshot holds. */
  collections?: readonly string[];
}

/**
 * Rebuilds a database from the snapshots of one day: every head, version entry (with its cv,
 * archived flag and document), unique claim, collection version, counter total and counter
 * window, as they were.
 *
 * Every file of every snapshot is checked first (manifest shape, size, SHA-256, line counts,
 * every line's shape): on any mismatch the restore writes nothing and names the file. Then
 * records are imported in batches; archived versions get their object back in the versions
 * bucket (create-only, same bytes) before their entry is imported, so no entry ever points at a
 * missing object. Idempotent: a restore cut off anywhere is finished by running it again. Meant
 * for an empty (wiped) database: records created after the snapshot are left as they are.
 */
export async function restoreDatabase(target: JobTarget, ctx: JobContext, options: RestoreOptions): Promise<void> {
  const loc = target.blobs.backups;
  if (!loc) throw new ValidationError(`${target.dbName} has no backups bucket (${target.databaseType} is never backed up)`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(options.date)) throw new ValidationError('date must be YYYY-MM-DD', { path: 'date' });
  for (const c of options.collections ?? []) if (!isValidName('collection', c)) throw new ValidationError(`Invalid collection name ${JSON.stringify(c)}`, { path: 'collections' });
  const folders = await snapshotFolders(target, loc, options);
  if (folders.length === 0) {
    throw new NotFoundError(`No backup of ${target.dbName} dated ${options.date} in ${loc.bucket}/${loc.prefix}/${options.collections ? ` for ${options.collections.join(', ')}` : ''}`);
  }

  // Pass 1: check everything, write nothing.
  const manifests: Array<{ folder: string; manifest: BackupManifest }> = [];
  for (const { folder, collection } of folders) {
    await ctx.checkpoint();
    const key = `${folder}manifest.json`;
    const bytes = await target.blob.get(loc.bucket, key);
    if (!bytes) throw new NotFoundError(`${loc.bucket}/${key} is missing: the backup of ${collection} on ${options.date} never finished`);
    const manifest = parseManifest(bytes, `${loc.bucket}/${key}`);
    if (manifest.dbName !== target.dbName || manifest.collection !== collection || manifest.date !== options.date) {
      throw new ValidationError(`${loc.bucket}/${key} describes ${manifest.dbName}/${manifest.collection} on ${manifest.date}, not the folder it is in`);
    }
    const counts = { heads: 0, versions: 0, claims: 0 };
    let currentId: string | null = null;
    for (const file of manifest.files) {
      for (const line of await readPart(target, loc.bucket, folder, file)) {
        if (line.t === 'head') currentId = line.head.id;
        else if (line.t === 'version' && line.version.id !== currentId) throw new ValidationError(`${loc.bucket}/${folder}${file.name}: version ${line.version.ov} of ${line.version.id} does not follow its head`);
        counts[line.t === 'head' ? 'heads' : line.t === 'version' ? 'versions' : 'claims']++;
      }
    }
    if (counts.heads !== manifest.counts.heads || counts.versions !== manifest.counts.versions || counts.claims !== manifest.counts.claims) {
      throw new ValidationError(`${loc.bucket}/${key}: the files hold ${JSON.stringify(counts)}, the manifest promises ${JSON.stringify(manifest.counts)}`);
    }
    manifests.push({ folder, manifest });
  }

  // Pass 2: import.
  for (const { folder, manifest } of manifests) {
    const ns: Namespace = { dbName: target.dbName, collection: manifest.collection };
    const claims: Array<{ key: string; id: string }> = [];
    let batch: SnapshotRecord[] = [];
    let batchVersions = 0;
    let current: SnapshotRecord | null = null;
    const flush = async () => {
      if (batch.length === 0) return;
      await ctx.checkpoint();
      await importBatch(target, ns, batch, ctx);
      batch = [];
      batchVersions = 0;
    };
    const close = async () => {
      if (!current) return;
      batch.push(current);
      batchVersions += current.versions.length;
      current = null;
      if (batch.length >= IMPORT_RECORDS || batchVersions >= IMPORT_VERSIONS) await flush();
    };
    for (const file of manifest.files) {
      ctx.tally.bytes += file.bytes;
      for (const line of await readPart(target, loc.bucket, folder, file)) {
        if (line.t === 'head') {
          await close();
          current = { head: line.head, versions: [] };
        } else if (line.t === 'version') current!.versions.push({ row: line.version, doc: line.doc });
        else claims.push({ key: line.key, id: line.id });
      }
    }
    await close();
    await flush();
    await target.index.importRecords(ns, { records: [], claims, ...(manifest.collectionVersion !== null ? { collectionVersion: manifest.collectionVersion } : {}) });
    if (Object.keys(manifest.counters).length > 0) await target.index.setCounters(target.analyticsDbName, manifest.collection, manifest.counters);
    if (manifest.counterWindows && manifest.counterWindows.length > 0) await target.index.setCounterWindows(target.analyticsDbName, manifest.collection, manifest.counterWindows);
    ctx.tally.add('restoredCollections');
  }
}

/** A record as read from a snapshot: archived entries come with their document. */
interface SnapshotRecord {
  head: HeadRow;
  versions: Array<{ row: VersionRow; doc: string | null }>;
}

async function importBatch(target: JobTarget, ns: Namespace, batch: readonly SnapshotRecord[], ctx: JobContext): Promise<void> {
  const loc = target.blobs.versions;
  const objects: Array<{ key: string; body: Buffer }> = [];
  const records: ImportedRecord[] = batch.map((r) => ({
    head: r.head,
    versions: r.versions.map(({ row, doc }) => {
      if (doc === null) return row;
      // A database without a versions bucket (any more) keeps the document in the index instead.
      if (!loc) return { ...row, archived: false, body: doc };
      objects.push({ key: blobKeys.version(loc, ns.collection, row.id, row.ov), body: Buffer.from(doc, 'utf8') });
      return row;
    }),
  }));
  // Objects before the entries that lead to them.
  await mapInParallel(objects, (o) => putVersionOnce(target.blob, loc!.bucket, o.key, o.body));
  await target.index.importRecords(ns, { records });
  ctx.tally.add('restoredRecords', records.length);
  ctx.tally.add('restoredVersions', records.reduce((n, r) => n + r.versions.length, 0));
  ctx.step(records.length);
}

async function snapshotFolders(target: JobTarget, loc: BlobLocation, options: RestoreOptions): Promise<Array<{ folder: string; collection: string }>> {
  if (options.collections) return options.collections.map((collection) => ({ collection, folder: snapshotFolder(loc, collection, options.date, target.dbName) }));
  const found: Array<{ folder: string; collection: string }> = [];
  const head = `${loc.prefix}/`;
  let startAfter: string | undefined;
  do {
    const page = await target.blob.list(loc.bucket, head, { limit: 1000, ...(startAfter ? { startAfter } : {}) });
    for (const key of page.keys) {
      const parts = key.slice(head.length).split('/');
      if (parts.length === 4 && parts[1] === options.date && parts[2] === target.dbName && parts[3] === 'manifest.json' && isValidName('collection', parts[0])) {
        found.push({ collection: parts[0]!, folder: snapshotFolder(loc, parts[0]!, options.date, target.dbName) });
      }
    }
    startAfter = page.nextStartAfter ?? undefined;
  } while (startAfter);
  return found;
}

async function readPart(target: JobTarget, bucket: string, folder: string, file: BackupFile): Promise<Line[]> {
  const where = `${bucket}/${folder}${file.name}`;
  const bytes = await target.blob.get(bucket, `${folder}${file.name}`);
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
  return lines.map((raw, i) => parseLine(raw, `${where} line ${i + 1}`));
}

function parseLine(raw: string, where: string): Line {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new ValidationError(`${where} is not JSON`);
  }
  const bad = (what: string) => new ValidationError(`${where}: ${what}`);
  if (!isObject(value)) throw bad('not an object');
  if (value.t === 'head') {
    const h = value.head;
    if (!isObject(h) || !isValidName('id', h.id) || !isCount(h.ov) || !isCount(h.cv) || typeof h.deleted !== 'boolean' || typeof h.createdAt !== 'string' ||
      typeof h.updatedAt !== 'string' || !(h.deletedAt === null || typeof h.deletedAt === 'string') || !isObject(h.meta) || typeof h.body !== 'string' ||
      !(h.hash === null || typeof h.hash === 'string')) {
      throw bad('not a valid head');
    }
    return value as Line;
  }
  if (value.t === 'version') {
    const v = value.version;
    const doc = value.doc;
    if (!isObject(v) || !isValidName('id', v.id) || !isCount(v.ov) || !isCount(v.cv) || !VERSION_OPS.includes(v.op as never) || typeof v.at !== 'string' ||
      !isActor(v.actor) || !(v.reason === null || typeof v.reason === 'string') || typeof v.deleted !== 'boolean' || !isCount(v.size) ||
      typeof v.archived !== 'boolean' || !isObject(v.meta) || typeof v.hash !== 'string' ||
      !(v.archived ? v.body === null && typeof doc === 'string' : typeof v.body === 'string' && doc === null)) {
      throw bad('not a valid version entry');
    }
    return value as Line;
  }
  if (value.t === 'claim') {
    if (typeof value.key !== 'string' || value.key.length === 0 || !isValidName('id', value.id)) throw bad('not a valid claim');
    return value as Line;
  }
  throw bad('unknown line type');
}

export function parseManifest(bytes: Uint8Array, where: string): BackupManifest {
  let m: unknown;
  try {
    m = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new ValidationError(`${where} is not JSON`);
  }
  const ok =
    isObject(m) && m.format === BACKUP_FORMAT && typeof m.dbName === 'string' && typeof m.collection === 'string' && typeof m.date === 'string' &&
    (m.collectionVersion === null || isCount(m.collectionVersion)) && isObject(m.counters) && Object.values(m.counters).every((n) => Number.isSafeInteger(n)) &&
    (m.counterWindows === undefined || (Array.isArray(m.counterWindows) && m.counterWindows.every(isCounterWindow))) &&
    isObject(m.counts) && isCount(m.counts.heads) && isCount(m.counts.versions) && isCount(m.counts.claims) && Array.isArray(m.files) &&
    m.files.every((f) => isObject(f) && typeof f.name === 'string' && /^part-\d{5}\.jsonl\.gz$/.test(f.name) && isCount(f.lines) && isCount(f.bytes) && typeof f.sha256 === 'string');
  if (!ok) throw new ValidationError(`${where} is not an ${BACKUP_FORMAT} manifest`);
  return m as unknown as BackupManifest;
}

/** A manifest's counter window: a known granularity's key and safe-integer counts. */
function isCounterWindow(value: unknown): boolean {
  return (
    isObject(value) && typeof value.window === 'string' && COUNTER_WINDOW_GRANULARITIES.some((g) => (value.window as string).startsWith(`${g}:`)) &&
    isObject(value.counts) && Object.values(value.counts).every((n) => Number.isSafeInteger(n))
  );
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isActor(value: unknown): boolean {
  if (typeof value === 'string') return true;
  return isObject(value) && ACTOR_TYPES.includes(value.type as never) && typeof value.identifier === 'string' && (value.name === undefined || typeof value.name === 'string');
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function mapInParallel<T, R>(items: readonly T[], run: (item: T) => Promise<R>): Promise<R[]> {
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
