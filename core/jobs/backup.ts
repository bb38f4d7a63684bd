import { ACTOR_TYPES, type CounterWindow, type HeadRow, type ImportedRecord, type Namespace, VERSION_OPS, type VersionRow } from '../contracts/index-store.js';
import { blobKeys, putVersionOnce } from '../engine/blob-sync.js';
import { COUNTER_WINDOW_GRANULARITIES } from '../engine/counter-windows.js';
import { headBody } from '../engine/offloaded.js';
import type { JobTarget } from '../engine/xronox.js';
import { NotFoundError, StorageError, ValidationError } from '../errors.js';
import { isValidName } from '../routing/names.js';
import type { BlobLocation } from '../routing/router.js';
import type { JobContext } from './job.js';
import {
  BACKUP_FORMAT,
  backupDate,
  commitSnapshot,
  isCount,
  isObject,
  type ManifestBase,
  mapInParallel,
  PartWriter,
  parseManifestBase,
  readManifest,
  readPartLines,
  removeUnlisted,
  snapshotFolder,
  snapshotFolders,
} from './snapshot.js';

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
export interface BackupManifest extends ManifestBase {
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
}

type Line =
  | { t: 'head'; head: HeadRow }
  | { t: 'version'; version: VersionRow; doc: string | null }
  | { t: 'claim'; key: string; id: string };

const PAGE = 200;
const VERSION_PAGE = 500;
const IMPORT_RECORDS = 100;
const IMPORT_VERSIONS = 2000;

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
    await removeUnlisted(target.blob, loc, folder, parseManifest(existing, `${folder}manifest.json`));
    ctx.tally.add('collectionsAlreadyBackedUp');
    return;
  }
  const collectionVersion = await target.index.getCollectionVersion(ns);
  const counters = await target.index.getCounters(target.analyticsDbName, collection);
  const counterWindows: CounterWindow[] = [];
  for (const granularity of COUNTER_WINDOW_GRANULARITIES) {
    counterWindows.push(...(await target.index.getCounterWindows(target.analyticsDbName, collection, { granularity })));
  }
  const parts = new PartWriter(target.blob, loc.bucket, folder);
  const add = (line: Line) => parts.add(JSON.stringify(line));
  const offloadTarget = { index: target.index, blob: target.blob, versioned: target.policy.versioned, appendOnly: target.policy.appendOnly, blobs: target.blobs };
  const counts = { heads: 0, versions: 0, claims: 0 };

  let after: { value: string; id: string } | undefined;
  for (;;) {
    await ctx.checkpoint();
    const heads = await target.index.listHeads(ns, { filter: null, includeDeleted: true, sort: { field: 'id', direction: 1 }, limit: PAGE, ...(after ? { after } : {}) });
    for (const head of heads) {
      // An offloaded head is backed up with its real document, so a restore is exact.
      const body = await headBody(offloadTarget, ns, head);
      await add({ t: 'head', head: body === head.body ? head : { ...head, body } });
      counts.heads++;
      // Entries up to the head's ov only: the record as it was when its head was read.
      let beforeOv = head.ov + 1;
      for (;;) {
        const rows = await target.index.listVersions(ns, head.id, { beforeOv, limit: VERSION_PAGE });
        const docs = await mapInParallel(rows, (row) => archivedDoc(target, ns, row));
        for (let i = 0; i < rows.length; i++) {
          if (docs[i] === undefined) continue; // pruned while we read it
          await add({ t: 'version', version: rows[i]!, doc: docs[i]! });
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
    for (const c of claims) await add({ t: 'claim', key: c.key, id: c.id });
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
  await commitSnapshot(target.blob, loc, folder, manifest);
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
  const { loc, folders } = await snapshotsToRestore(target, options);

  // Pass 1: check everything, write nothing.
  const manifests: Array<{ folder: string; manifest: BackupManifest }> = [];
  for (const { folder, collection } of folders) {
    await ctx.checkpoint();
    const manifest = checkRecordsManifest(await readManifest(target.blob, loc, folder, { dbName: target.dbName, collection, date: options.date }), `${loc.bucket}/${folder}manifest.json`);
    const key = `${folder}manifest.json`;
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

/** Checks a restore request and finds the snapshots it names (every collection's, by default). */
export async function snapshotsToRestore(target: JobTarget, options: RestoreOptions): Promise<{ loc: BlobLocation; folders: Array<{ folder: string; collection: string }> }> {
  const loc = target.blobs.backups;
  if (!loc) throw new ValidationError(`${target.dbName} has no backups bucket (${target.databaseType} is never backed up)`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(options.date)) throw new ValidationError('date must be YYYY-MM-DD', { path: 'date' });
  for (const c of options.collections ?? []) if (!isValidName('collection', c)) throw new ValidationError(`Invalid collection name ${JSON.stringify(c)}`, { path: 'collections' });
  const folders = await snapshotFolders(target.blob, loc, target.dbName, options.date, options.collections);
  if (folders.length === 0) {
    throw new NotFoundError(`No backup of ${target.dbName} dated ${options.date} in ${loc.bucket}/${loc.prefix}/${options.collections ? ` for ${options.collections.join(', ')}` : ''}`);
  }
  return { loc, folders };
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

async function readPart(target: JobTarget, bucket: string, folder: string, file: ManifestBase['files'][number]): Promise<Line[]> {
  return (await readPartLines(target.blob, bucket, folder, file)).map(({ raw, where }) => parseLine(raw, where));
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
  return checkRecordsManifest(parseManifestBase(bytes, where), where);
}

/** The fields of a records snapshot's manifest (a documents manifest is refused here). */
function checkRecordsManifest(m: Record<string, unknown> & ManifestBase, where: string): BackupManifest {
  const ok =
    m.kind === undefined && (m.collectionVersion === null || isCount(m.collectionVersion)) && isObject(m.counters) && Object.values(m.counters).every((n) => Number.isSafeInteger(n)) &&
    (m.counterWindows === undefined || (Array.isArray(m.counterWindows) && m.counterWindows.every(isCounterWindow))) &&
    isObject(m.counts) && isCount(m.counts.heads) && isCount(m.counts.versions) && isCount(m.counts.claims);
  if (!ok) throw new ValidationError(`${where} is not the manifest of a records snapshot`);
  return m as unknown as BackupManifest;
}

/** A manifest's counter window: a known granularity's key and safe-integer counts. */
function isCounterWindow(value: unknown): boolean {
  return (
    isObject(value) && typeof value.window === 'string' && COUNTER_WINDOW_GRANULARITIES.some((g) => (value.window as string).startsWith(`${g}:`)) &&
    isObject(value.counts) && Object.values(value.counts).every((n) => Number.isSafeInteger(n))
  );
}

function isActor(value: unknown): boolean {
  if (typeof value === 'string') return true;
  return isObject(value) && ACTOR_TYPES.includes(value.type as never) && typeof value.identifier === 'string' && (value.name === undefined || typeof value.name === 'string');
}
