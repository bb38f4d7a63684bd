import { ACTOR_TYPES, type CounterWindow, type HeadRow, type ImportedRecord, type Namespace, VERSION_OPS, type VersionRow } from '../contracts/index-store.js';
import { BlobSync, blobKeys, putVersionOnce } from '../engine/blob-sync.js';
import { COUNTER_WINDOW_GRANULARITIES } from '../engine/counter-windows.js';
import { headBody } from '../engine/offloaded.js';
import { RestoreTargetNotEmptyError, ValidationError } from '../errors.js';
import { isValidName, restoreStagingDbName } from '../foundation/names.js';
import { gunzip, gzip } from '../foundation/compression.js';
import type { BlobLocation } from '../routing/router.js';
import { JobStopped, type JobContext, moveCheckpoint, syncTargetOf, type JobTarget } from './job.js';
import { BACKUP_FORMATS, type BackupFormat, isVersionObjects, isVersionRef, rememberRefs, type VersionLine, type VersionObjects, VersionReader, type VersionRef } from './backup-versions.js';
import {
  BACKUP_FORMAT,
  backupDate,
  chooseSnapshot,
  type ChosenSnapshot,
  commitSnapshot,
  isCount,
  isObject,
  loadProgress,
  type ManifestBase,
  mapInParallel,
  PartWriter,
  parseManifestBase,
  planSnapshot,
  readManifest,
  readPartLines,
  removeUnlisted,
  saveProgress,
  sha256,
  SNAPSHOT_ID,
  snapshotFolder,
  type SnapshotPlan,
} from './snapshot.js';

/**
 * Backups: per database and collection, a snapshot in the backups bucket at
 * `backups/{collection}/{YYYY-MM-DD}/{dbName}/{snapshot}/` (the documented folder; the database
 * name keeps databases that share a bucket apart, the snapshot id, the run's time of day, keeps
 * the runs of one day apart; see `snapshot.ts`):
 *
 * - `part-00000.jsonl.gz`, … : gzip-compressed JSON lines, one per head, version entry and unique
 *   claim, records in id order, each head followed by its version entries. A version already
 *   archived carries its document text (`doc`), read from the versions bucket, so a snapshot is
 *   complete on its own;
 * - `manifest.json`, written last: the commit point. It holds the counts, the collection
 *   version, the counter totals, every counter window (`retention.counters`) and, per file, its
 *   line count, size and SHA-256.
 *
 * Logs are never backed up (their storage policy has no backups bucket). Every run takes a new
 * snapshot, except that a run finding the day's last snapshot of its database incomplete (a run
 * cut off) finishes that one: it skips the collections whose manifest is there, and carries a
 * collection cut off mid-way on from its saved progress (`progress.json` and `pending.jsonl.gz`,
 * see `saveProgress`; without them, from the start: file names and part boundaries are
 * deterministic, so either way the parts are the ones an uninterrupted run writes), removing any
 * file its manifest does not list.
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
  /**
   * Reference snapshots (`jobs.backup.format` `reference` or `copy`): where the objects their
   * version lines name are. Absent: every archived version's document is in the parts.
   */
  versionObjects?: VersionObjects;
}

type Line = { t: 'head'; head: HeadRow } | VersionLine | { t: 'claim'; key: string; id: string };

const PAGE = 200;
const VERSION_PAGE = 500;
const IMPORT_RECORDS = 100;
const IMPORT_VERSIONS = 2000;

/** Backs up every collection of one database: a new snapshot, or the end of one a run cut off left. */
export async function backupDatabase(target: JobTarget, ctx: JobContext): Promise<void> {
  const loc = target.blobs.backups;
  if (!loc) return;
  const date = backupDate(ctx.now);
  const plan = await planSnapshot(target.blob, loc, target.dbName, date, ctx.now, await target.index.listCollections(target.dbName));
  if (plan.resumed) ctx.tally.add('snapshotsResumed');
  // Counted first, so progress has a total (and an ETA).
  const sizes = await Promise.all(plan.collections.map((collection) => target.index.countRecords({ dbName: target.dbName, collection })));
  ctx.expect(sizes.reduce((a, b) => a + b, 0));
  for (const [i, collection] of plan.collections.entries()) {
    await moveCheckpoint(ctx);
    await backupCollection(target, loc, collection, date, plan, ctx, sizes[i]!);
  }
}

/** What a backup of one collection keeps in its progress (`BackupProgress.state`) to carry on where a run stopped. */
interface CollectionState {
  /** How archived versions are written (the setting when the collection began; a resumed run keeps it). */
  format: BackupFormat;
  collectionVersion: number | null;
  counters: Record<string, number>;
  counterWindows: CounterWindow[];
  counts: { heads: number; versions: number; claims: number };
  /** The last record whose lines are all written (in parts or the pending lines); `null`: none yet. */
  afterId: string | null;
  /** `null` while records remain; then the last claim written (`''`: none yet). */
  afterKey: string | null;
}

function isCollectionState(value: unknown): value is CollectionState {
  return (
    isObject(value) && BACKUP_FORMATS.includes(value.format as BackupFormat) && (value.collectionVersion === null || isCount(value.collectionVersion)) &&
    isObject(value.counters) && Array.isArray(value.counterWindows) && isObject(value.counts) && isCount(value.counts.heads) && isCount(value.counts.versions) &&
    isCount(value.counts.claims) && (value.afterId === null || typeof value.afterId === 'string') && (value.afterKey === null || typeof value.afterKey === 'string')
  );
}

/**
 * A run that has not saved its progress for this long saves it at its next checkpoint (besides
 * after every part and when it stops), so a run killed outright (SIGKILL, a Lambda timeout that
 * gave it no warning) loses at most this much work.
 */
const PROGRESS_EVERY_MS = 60_000;

async function backupCollection(target: JobTarget, loc: BlobLocation, collection: string, date: string, plan: SnapshotPlan, ctx: JobContext, size: number): Promise<void> {
  const ns: Namespace = { dbName: target.dbName, collection };
  const folder = snapshotFolder(loc, collection, date, target.dbName, plan.id);
  const existing = await target.blob.get(loc.bucket, `${folder}manifest.json`);
  if (existing) {
    // Done by the run this one finishes (or, retried, by this run itself): only finish its clean-up.
    await removeUnlisted(target.blob, loc, folder, parseManifest(existing, `${folder}manifest.json`));
    ctx.tally.add('collectionsAlreadyBackedUp');
    ctx.step(size);
    return;
  }
  const parts = new PartWriter(target.blob, loc.bucket, folder, ctx.settings.partBytes);
  const saved = await loadProgress(target.blob, loc.bucket, folder, isCollectionState);
  let state: CollectionState;
  if (saved) {
    // Carried on from the record after the last one a stopped run wrote: its parts stay, its pending lines start the next part.
    parts.resume(saved.progress.files, saved.pending);
    state = saved.progress.state;
    ctx.tally.add('collectionsResumed');
    ctx.step(state.counts.heads);
  } else {
    const counterWindows: CounterWindow[] = [];
    for (const granularity of COUNTER_WINDOW_GRANULARITIES) {
      counterWindows.push(...(await target.index.getCounterWindows(target.analyticsDbName, collection, { granularity })));
    }
    state = {
      format: target.blobs.versions ? ctx.settings.backupFormat : 'self-contained',
      collectionVersion: await target.index.getCollectionVersion(ns),
      counters: await target.index.getCounters(target.analyticsDbName, collection),
      counterWindows,
      counts: { heads: 0, versions: 0, claims: 0 },
      afterId: null,
      afterKey: null,
    };
  }
  const add = (line: Line) => parts.add(JSON.stringify(line));
  let savedParts = parts.files.length;
  let savedAt = Date.now();
  const save = async () => {
    await saveProgress(target.blob, loc.bucket, folder, parts, state);
    savedParts = parts.files.length;
    savedAt = Date.now();
  };
  // Between pages, so between records: what is saved is always whole records.
  const checkpoint = async () => {
    try {
      await moveCheckpoint(ctx);
    } catch (err) {
      if (err instanceof JobStopped && err.reason === 'aborted' && (await ctx.holdsLease())) await save();
      throw err;
    }
    if (parts.files.length !== savedParts || Date.now() - savedAt >= PROGRESS_EVERY_MS) await save();
  };
  const concurrency = ctx.settings.concurrency;
  // Pages sized to the reads in flight: each page is a stop point, and a page's reads all go out at once.
  const pageSize = Math.min(PAGE, Math.max(32, concurrency * 8));
  const versions = new VersionReader(target, ns, state.format, loc, concurrency);

  while (state.afterKey === null) {
    await checkpoint();
    const heads = await target.index.listHeads(ns, {
      filter: null,
      includeDeleted: true,
      sort: { field: 'id', direction: 1 },
      limit: pageSize,
      ...(state.afterId !== null ? { after: { value: state.afterId, id: state.afterId } } : {}),
    });
    // A page's records are read together: heads (an offloaded one from its object), entries, then
    // every archived version's document or reference, `concurrency` object reads in flight.
    const records = await mapInParallel(heads, (head) => recordOf(target, ns, head), concurrency);
    const lines = await versions.lines(records.flatMap((r) => r.rows));
    let n = 0;
    for (const record of records) {
      await add({ t: 'head', head: record.head });
      state.counts.heads++;
      for (let i = 0; i < record.rows.length; i++) {
        const line = lines[n++];
        if (line === undefined) continue; // pruned while we read it
        await add(line);
        state.counts.versions++;
      }
      state.afterId = record.head.id;
      ctx.step();
    }
    ctx.advanced();
    if (heads.length < pageSize) state.afterKey = '';
  }
  for (;;) {
    await checkpoint();
    const claims = await target.index.listClaims(ns, { limit: PAGE, ...(state.afterKey ? { afterKey: state.afterKey } : {}) });
    for (const c of claims) await add({ t: 'claim', key: c.key, id: c.id });
    state.counts.claims += claims.length;
    if (claims.length > 0) state.afterKey = claims[claims.length - 1]!.key;
    ctx.advanced();
    if (claims.length < PAGE) break;
  }
  await parts.flush();

  const manifest: BackupManifest = {
    format: BACKUP_FORMAT,
    dbName: target.dbName,
    databaseType: target.databaseType,
    collection,
    date,
    snapshot: { id: plan.id, collections: plan.collections },
    ...(state.format !== 'self-contained'
      ? { versionObjects: { format: state.format, bucket: target.blobs.versions!.bucket, ...(state.format === 'copy' ? { copies: loc.bucket } : {}) } }
      : {}),
    collectionVersion: state.collectionVersion,
    counters: state.counters,
    counterWindows: state.counterWindows,
    counts: state.counts,
    bytes: parts.files.reduce((n, f) => n + f.bytes, 0),
    files: parts.files,
  };
  await commitSnapshot(target.blob, loc, folder, manifest);
  if (state.format !== 'self-contained') await rememberRefs(target, loc, collection, { date, id: plan.id });
  ctx.tally.add('backedUpCollections');
  ctx.tally.add('backedUpRecords', state.counts.heads);
  ctx.tally.add('backedUpVersions', state.counts.versions);
  // Reference snapshots say what they read and copied (the self-contained format reads every archived version, always).
  if (state.format !== 'self-contained') {
    ctx.tally.add('versionObjectsRead', versions.reads);
    ctx.tally.add('versionObjectsCopied', versions.copies);
  }
  ctx.tally.bytes += manifest.bytes;
}

/** A head as backed up (an offloaded one with its real document, so a restore is exact) and its entries up to the head's ov. */
async function recordOf(target: JobTarget, ns: Namespace, head: HeadRow): Promise<{ head: HeadRow; rows: VersionRow[] }> {
  const offloadTarget = { index: target.index, blob: target.blob, versioned: target.policy.versioned, appendOnly: target.policy.appendOnly, blobs: target.blobs };
  const body = await headBody(offloadTarget, ns, head);
  const rows: VersionRow[] = [];
  // Entries up to the head's ov only: the record as it was when its head was read.
  let beforeOv = head.ov + 1;
  for (;;) {
    const page = await target.index.listVersions(ns, head.id, { beforeOv, limit: VERSION_PAGE });
    rows.push(...page);
    if (page.length < VERSION_PAGE) break;
    beforeOv = page[page.length - 1]!.ov;
  }
  return { head: body === head.body ? head : { ...head, body }, rows };
}

// ---- restore --------------------------------------------------------------------------------

/** What a restore does with the data the database holds: refuse it, or replace it. */
export const RESTORE_MODES = ['empty', 'replace'] as const;
export type RestoreMode = (typeof RESTORE_MODES)[number];

export interface RestoreOptions {
  /** The snapshot's day, `YYYY-MM-DD`. */
  date: string;
  /** One snapshot of that day, by id (`T101502.123Z`). Default: the day's last complete one. */
  snapshot?: string;
  /** Only these collections. Default: every collection the snapshot holds, and the whole database is restored. */
  collections?: readonly string[];
  /**
   * `empty` (default): what is restored (the database, or the collections named) must hold
   * nothing; otherwise the restore is refused with `RestoreTargetNotEmptyError` and writes
   * nothing. `replace`: it is replaced by the snapshot, so records written since the backup are
   * gone, records changed since are as they were, and counters are the snapshot's.
   */
  mode?: RestoreMode;
}

/**
 * Rebuilds a database from one snapshot (see `RestoreOptions` for which, and for what happens to
 * data already there): every head, version entry (with its cv, archived flag and document),
 * unique claim, collection version, counter total and counter window, as they were.
 *
 * 1. Checking: every file of every collection's snapshot (manifest shape, size, SHA-256, line
 *    counts, every line's shape); on any mismatch nothing is written and the file is named.
 * 2. Staging: records are imported in batches into a staging database of their own
 *    (`restoreStagingDbName`), which no reader, job or sync ever sees. Archived versions get
 *    their object back in the versions bucket first (create-only, same bytes).
 * 3. Replacing: `replaceCollections` swaps the staged collections in whole, with their
 *    collection versions and exactly the snapshot's counters (the whole database unless
 *    `collections` are named). On SQLite that is one transaction: readers see the database as it
 *    was or as the snapshot, never a mix, and the `empty` mode's check cannot race a write.
 * 4. With `replace`: objects of the data replaced that the snapshot lacks are removed (see
 *    `writeStalePlan`), then the staging database is emptied.
 * 5. Writing objects: every restored record's `current.json` (and, inline, its pending
 *    versions), with progress.
 *
 * A restore cut off anywhere is finished by running it again: before step 3 the database is
 * untouched, after it the rerun replaces it with the same snapshot again (in `empty` mode a
 * rerun after step 3 finds the database holding the snapshot: pass `replace`).
 */
export async function restoreDatabase(target: JobTarget, ctx: JobContext, options: RestoreOptions): Promise<void> {
  const { loc, snapshot } = await snapshotsToRestore(target, options);
  const replace = options.mode === 'replace';
  const date = options.date;

  ctx.phase(`checking snapshot ${date}${snapshot.id !== null ? `/${snapshot.id}` : ''}`);
  const manifests: Array<{ folder: string; manifest: BackupManifest }> = [];
  // References whose object the versions bucket lost, restored from their copy (`copy` snapshots).
  const fromCopies = new Set<string>();
  for (const { folder, collection } of snapshot.folders) {
    await ctx.checkpoint();
    const manifest = checkRecordsManifest(
      await readManifest(target.blob, loc, folder, { dbName: target.dbName, collection, date, snapshot: snapshot.id }),
      `${loc.bucket}/${folder}manifest.json`,
    );
    const key = `${folder}manifest.json`;
    const counts = { heads: 0, versions: 0, claims: 0 };
    let currentId: string | null = null;
    for (const file of manifest.files) {
      const refs: VersionRef[] = [];
      for (const line of await readPart(target, loc.bucket, folder, file)) {
        if (line.t === 'head') currentId = line.head.id;
        else if (line.t === 'version' && line.version.id !== currentId) throw new ValidationError(`${loc.bucket}/${folder}${file.name}: version ${line.version.ov} of ${line.version.id} does not follow its head`);
        if (line.t === 'version' && line.ref) {
          if (!manifest.versionObjects) throw new ValidationError(`${loc.bucket}/${folder}${file.name}: version ${line.version.ov} of ${line.version.id} is a reference, but the manifest names no versionObjects`);
          refs.push(line.ref);
        }
        counts[line.t === 'head' ? 'heads' : line.t === 'version' ? 'versions' : 'claims']++;
      }
      // Every referenced object, before anything is written: there, with its size and SHA-256.
      await mapInParallel(refs, async (ref) => {
        const source = await checkRef(target, manifest.versionObjects!, ref, `${loc.bucket}/${folder}${file.name}`);
        if (source.key !== ref.key || source.bucket !== manifest.versionObjects!.bucket) fromCopies.add(ref.key);
      }, ctx.settings.concurrency);
      ctx.tally.add('checkedVersionObjects', refs.length);
    }
    if (counts.heads !== manifest.counts.heads || counts.versions !== manifest.counts.versions || counts.claims !== manifest.counts.claims) {
      throw new ValidationError(`${loc.bucket}/${key}: the files hold ${JSON.stringify(counts)}, the manifest promises ${JSON.stringify(manifest.counts)}`);
    }
    manifests.push({ folder, manifest });
  }
  // Refused before anything is written (checked again when swapping in).
  if (!replace) {
    const held = await recordsHeld(target, options.collections);
    if (held > 0) throw new RestoreTargetNotEmptyError(target.dbName, held, 'records', options.collections);
  }

  const snapshotRecords = manifests.reduce((n, m) => n + m.manifest.counts.heads, 0);
  ctx.phase('staging', { total: snapshotRecords });
  const staging = restoreStagingDbName(target.dbName);
  await clearStaging(target, staging);
  for (const { folder, manifest } of manifests) {
    const ns: Namespace = { dbName: staging, collection: manifest.collection };
    const claims: Array<{ key: string; id: string }> = [];
    let batch: SnapshotRecord[] = [];
    let batchVersions = 0;
    let current: SnapshotRecord | null = null;
    const flush = async () => {
      if (batch.length === 0) return;
      await ctx.checkpoint();
      await importBatch(target, ns, batch, ctx, manifest.versionObjects, fromCopies);
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
        } else if (line.t === 'version') current!.versions.push({ row: line.version, doc: line.doc, ...(line.ref ? { ref: line.ref } : {}) });
        else claims.push({ key: line.key, id: line.id });
      }
    }
    await close();
    await flush();
    await target.index.importRecords(ns, { records: [], claims, sync: false, ...(manifest.collectionVersion !== null ? { collectionVersion: manifest.collectionVersion } : {}) });
  }

  await ctx.checkpoint();
  ctx.phase('replacing');
  const collections = manifests.map((m) => m.manifest.collection);
  const wholeDatabase = options.collections === undefined;
  if (replace) {
    // A list a replace cut off after its swap left: its objects go first (writing the new list replaces it).
    await applyStalePlan(target, loc, ctx);
    await writeStalePlan(target, loc, staging, collections, wholeDatabase);
  }
  const result = await target.index.replaceCollections(
    target.dbName,
    manifests.map(({ manifest }) => ({ collection: manifest.collection, from: staging, counters: { totals: manifest.counters, windows: manifest.counterWindows ?? [] } })),
    { countersDb: target.analyticsDbName, wholeDatabase, onlyIfEmpty: !replace },
  );
  if (!result.replaced) {
    await clearStaging(target, staging);
    throw new RestoreTargetNotEmptyError(target.dbName, result.held, 'records', options.collections);
  }
  ctx.tally.add('restoredCollections', manifests.length);
  if (replace) ctx.tally.add('replacedRecords', result.held);
  if (replace) {
    ctx.phase('removing replaced objects');
    await applyStalePlan(target, loc, ctx);
  }
  await clearStaging(target, staging);

  ctx.phase('writing objects', { total: snapshotRecords });
  await syncRestored(target, ctx, collections);
}

/** How many records `collections` (default: every collection of the database) hold, deleted ones included. */
export async function recordsHeld(target: JobTarget, collections?: readonly string[]): Promise<number> {
  let held = 0;
  for (const collection of collections ?? (await target.index.listCollections(target.dbName))) held += await target.index.countRecords({ dbName: target.dbName, collection });
  return held;
}

/** Empties a restore's staging database (what a restore cut off before left in it, or what one finished copied out). */
async function clearStaging(target: JobTarget, staging: string): Promise<void> {
  await target.index.replaceCollections(staging, [], { countersDb: staging, wholeDatabase: true, onlyIfEmpty: false });
}

/** Checks a restore request and finds the snapshot it names (every collection's, by default). */
export async function snapshotsToRestore(target: JobTarget, options: RestoreOptions): Promise<{ loc: BlobLocation; snapshot: ChosenSnapshot }> {
  const loc = target.blobs.backups;
  if (!loc) throw new ValidationError(`${target.dbName} has no backups bucket (${target.databaseType} is never backed up)`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(options.date)) throw new ValidationError('date must be YYYY-MM-DD', { path: 'date' });
  if (options.snapshot !== undefined && !SNAPSHOT_ID.test(options.snapshot)) {
    throw new ValidationError(`snapshot must be a snapshot id such as T101502.123Z (the time of its run, UTC); got ${JSON.stringify(options.snapshot).slice(0, 40)}`, { path: 'snapshot' });
  }
  if (options.mode !== undefined && !RESTORE_MODES.includes(options.mode)) throw new ValidationError(`mode must be one of ${RESTORE_MODES.join(', ')}`, { path: 'mode' });
  for (const c of options.collections ?? []) if (!isValidName('collection', c)) throw new ValidationError(`Invalid collection name ${JSON.stringify(c)}`, { path: 'collections' });
  return { loc, snapshot: await chooseSnapshot(target.blob, loc, target.dbName, options.date, options) };
}

/** A record as read from a snapshot: archived entries come with their document, or (reference snapshots) the reference to its object. */
interface SnapshotRecord {
  head: HeadRow;
  versions: Array<{ row: VersionRow; doc: string | null; ref?: VersionRef }>;
}

/** Where a referenced version is read from: the versions bucket, else (`copy` snapshots) its copy in the backups bucket. */
async function refSource(target: JobTarget, objects: VersionObjects, ref: VersionRef): Promise<{ bucket: string; key: string; bytes: Uint8Array } | null> {
  const inPlace = await target.blob.get(objects.bucket, ref.key);
  if (inPlace && inPlace.byteLength === ref.size && sha256(inPlace) === ref.sha256) return { bucket: objects.bucket, key: ref.key, bytes: inPlace };
  if (ref.copy !== undefined && objects.copies !== undefined) {
    const copy = await target.blob.get(objects.copies, ref.copy);
    if (copy && copy.byteLength === ref.size && sha256(copy) === ref.sha256) return { bucket: objects.copies, key: ref.copy, bytes: copy };
  }
  return null;
}

/** A referenced version's object is there and holds exactly what the snapshot recorded; otherwise the restore stops before writing. */
async function checkRef(target: JobTarget, objects: VersionObjects, ref: VersionRef, where: string): Promise<{ bucket: string; key: string }> {
  const source = await refSource(target, objects, ref);
  if (source) return { bucket: source.bucket, key: source.key };
  throw new ValidationError(
    `${where} references ${objects.bucket}/${ref.key}${ref.copy !== undefined ? ` (copied to ${objects.copies}/${ref.copy})` : ''}, which is missing or does not match its size and SHA-256: it was changed, damaged or removed`,
  );
}

/** Stages records (in `ns`, the staging database); their archived versions' objects go where the restored records will read them. */
async function importBatch(
  target: JobTarget,
  ns: Namespace,
  batch: readonly SnapshotRecord[],
  ctx: JobContext,
  objects: VersionObjects | undefined,
  fromCopies: ReadonlySet<string>,
): Promise<void> {
  const loc = target.blobs.versions;
  const puts: Array<{ key: string; body: Buffer }> = [];
  const refs: Array<{ ref: VersionRef; key: string | null; set: (body: string) => void }> = [];
  const records: ImportedRecord[] = batch.map((r) => ({
    head: r.head,
    versions: r.versions.map(({ row, doc, ref }) => {
      if (ref) {
        // Checked before staging began; read again only when it is not already where the restored record reads it.
        const key = loc ? blobKeys.version(loc, ns.collection, row.id, row.ov) : null;
        const entry: VersionRow = { ...row };
        // In place already (the usual case): checked before staging began, and version objects are create-only.
        if (loc && objects!.bucket === loc.bucket && ref.key === key && !fromCopies.has(ref.key)) return entry;
        refs.push({ ref, key, set: (body) => Object.assign(entry, { archived: false, body }) });
        return entry;
      }
      if (doc === null) return row;
      // A database without a versions bucket (any more) keeps the document in the index instead.
      if (!loc) return { ...row, archived: false, body: doc };
      puts.push({ key: blobKeys.version(loc, ns.collection, row.id, row.ov), body: Buffer.from(doc, 'utf8') });
      return row;
    }),
  }));
  // Objects before the entries that lead to them.
  await mapInParallel(
    refs,
    async ({ ref, key, set }) => {
      const source = await refSource(target, objects!, ref);
      if (!source) throw new ValidationError(`${objects!.bucket}/${ref.key} no longer matches the snapshot's SHA-256`);
      if (loc && key !== null) await putVersionOnce(target.blob, loc.bucket, key, Buffer.from(source.bytes));
      else set(Buffer.from(source.bytes).toString('utf8'));
    },
    ctx.settings.concurrency,
  );
  await mapInParallel(puts, (o) => putVersionOnce(target.blob, loc!.bucket, o.key, o.body), ctx.settings.concurrency);
  await target.index.importRecords(ns, { records, sync: false });
  ctx.tally.add('restoredRecords', records.length);
  ctx.tally.add('restoredVersions', records.reduce((n, r) => n + r.versions.length, 0));
  ctx.step(records.length);
}

/** One record's objects that a replace may leave without an owner: versions `from`…`to` and, with `current`, its `current.json`. */
interface StaleObjects {
  c: string;
  id: string;
  from: number;
  to: number;
  current: boolean;
}

/** Where a replace keeps its list of objects to remove until they are gone (`_restore` is no collection name). */
function stalePlanKey(loc: BlobLocation, dbName: string): string {
  return `${loc.prefix}/_restore/${dbName}/stale-objects.jsonl.gz`;
}

/**
 * Before a replace swaps the snapshot in: every record of the collections replaced whose head is
 * past the snapshot's, or that the snapshot lacks, owns objects the snapshot does not: versions
 * above the snapshot's ov and, for a record the snapshot lacks, its `current.json`. Left behind,
 * such a version object would refuse the restored record's next version of that number (version
 * objects are create-only), and such a `current.json` would outlive its record. The list goes to
 * the backups bucket before the swap, so a restore cut off after the swap still removes them when
 * it is run again (a rerun applies a list it finds before writing its own; `applyStalePlan` only
 * removes objects no record of the database owns, so a list from a run cut off before its swap
 * removes nothing).
 */
async function writeStalePlan(target: JobTarget, loc: BlobLocation, staging: string, collections: readonly string[], wholeDatabase: boolean): Promise<void> {
  const lines: string[] = [];
  const others = wholeDatabase ? (await target.index.listCollections(target.dbName)).filter((c) => !collections.includes(c)) : [];
  for (const collection of [...collections, ...others]) {
    const ns: Namespace = { dbName: target.dbName, collection };
    const inSnapshot = collections.includes(collection);
    let after: { value: string; id: string } | undefined;
    for (;;) {
      const heads = await target.index.listHeads(ns, { filter: null, includeDeleted: true, sort: { field: 'id', direction: 1 }, limit: PAGE, ...(after ? { after } : {}) });
      const staged = inSnapshot ? await mapInParallel(heads, (h) => target.index.getHead({ dbName: staging, collection }, h.id)) : heads.map(() => null);
      for (const [i, head] of heads.entries()) {
        const from = staged[i] ? staged[i].ov + 1 : 0;
        if (head.ov >= from) lines.push(JSON.stringify({ c: collection, id: head.id, from, to: head.ov, current: !staged[i] } satisfies StaleObjects));
      }
      if (heads.length < PAGE) break;
      after = { value: heads[heads.length - 1]!.id, id: heads[heads.length - 1]!.id };
    }
  }
  if (lines.length > 0) await target.blob.put(loc.bucket, stalePlanKey(loc, target.dbName), await gzip(`${lines.join('\n')}\n`), { contentType: 'application/gzip' });
}

/** Removes the objects `writeStalePlan` listed that no record of the database owns now, then the list. */
async function applyStalePlan(target: JobTarget, loc: BlobLocation, ctx: JobContext): Promise<void> {
  const key = stalePlanKey(loc, target.dbName);
  const bytes = await target.blob.get(loc.bucket, key);
  if (!bytes) return;
  const entries = new TextDecoder()
    .decode(await gunzip(bytes))
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as StaleObjects);
  const versions = target.policy.versioned ? target.blobs.versions : undefined;
  const records = target.blobs.records;
  for (let i = 0; i < entries.length; i += PAGE) {
    await ctx.checkpoint();
    const page = entries.slice(i, i + PAGE);
    const keys: Array<{ bucket: string; key: string }> = [];
    const heads = await mapInParallel(page, (e) => target.index.getHead({ dbName: target.dbName, collection: e.c }, e.id));
    for (const [n, e] of page.entries()) {
      const head = heads[n];
      // An object a record of the database owns now stays, whoever wrote it.
      if (versions) for (let ov = Math.max(e.from, head ? head.ov + 1 : 0); ov <= e.to; ov++) keys.push({ bucket: versions.bucket, key: blobKeys.version(versions, e.c, e.id, ov) });
      if (records && e.current && !head) keys.push({ bucket: records.bucket, key: blobKeys.current(records, e.c, e.id) });
    }
    await mapInParallel(keys, (k) => target.blob.delete(k.bucket, k.key));
    ctx.tally.add('removedObjects', keys.length);
  }
  await target.blob.delete(loc.bucket, key);
}

/** Writes the restored records' objects (the outbox marks every one), reporting progress page by page. */
async function syncRestored(target: JobTarget, ctx: JobContext, collections: readonly string[]): Promise<void> {
  const sync = new BlobSync(() => undefined);
  try {
    for (const collection of collections) {
      let counted = 0;
      const report = await sync.repair(syncTargetOf(target, ctx.settings.archiveMode === 'deferred'), {
        collection,
        onPage: (synced) => {
          ctx.tally.add('syncedRecords', synced - counted);
          ctx.step(synced - counted);
          counted = synced;
          ctx.progress();
        },
      });
      if (report.failed > 0) ctx.tally.add('outboxLeft', report.failed);
    }
  } finally {
    await sync.close();
  }
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
      !(v.archived ? v.body === null && (value.ref === undefined ? typeof doc === 'string' : doc === null && isVersionRef(value.ref)) : typeof v.body === 'string' && doc === null && value.ref === undefined)) {
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
    isObject(m.counts) && isCount(m.counts.heads) && isCount(m.counts.versions) && isCount(m.counts.claims) &&
    (m.versionObjects === undefined || isVersionObjects(m.versionObjects));
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
