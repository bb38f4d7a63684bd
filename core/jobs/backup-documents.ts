import { type CollectionSpec, type Doc, type DocumentStore, fromDocumentJson, type StoredDocument, toDocumentJson } from '../contracts/document-store.js';
import type { Namespace } from '../contracts/index-store.js';
import { checkDocument } from '../domains/documents/document-check.js';
import { valueAt } from '../domains/documents/document-filter.js';
import { documentCollectionsOf, storedDocumentRules } from '../domains/open.js';
import { ConflictError, RestoreTargetNotEmptyError, ValidationError, XronoxError } from '../errors.js';
import { restoreStagingDbName } from '../foundation/names.js';
import { type RestoreOptions, snapshotsToRestore } from './backup.js';
import { type JobContext, type JobTarget, moveCheckpoint } from './job.js';
import {
  BACKUP_FORMAT,
  backupDate,
  commitSnapshot,
  isCount,
  isObject,
  type ManifestBase,
  PartWriter,
  parseManifestBase,
  planSnapshot,
  readManifest,
  readPartLines,
  removeUnlisted,
  snapshotFolder,
} from './snapshot.js';

/**
 * Backups of document databases (messaging, identities): per collection, the same snapshot
 * files as records (`backups/{collection}/{YYYY-MM-DD}/{dbName}/{snapshot}/`, gzip JSON-lines
 * parts and a manifest written last, see `snapshot.ts`), one line per stored document in insertion order:
 * `{"t":"doc","expiresAt":<ISO time or null>,"doc":<document JSON>}` (dates as `{"$date": …}`).
 * The manifest says `"kind": "documents"` and counts the documents.
 *
 * What a snapshot holds is the documents as the export read them, page by page (a document
 * store has no history to pin a snapshot to). Payloads that messaging keeps in the content
 * bucket are immutable objects there and are referenced, not copied.
 */
export interface DocumentBackupManifest extends ManifestBase {
  kind: 'documents';
  counts: { documents: number };
}

const EXPORT_PAGE = 500;
const IMPORT_BATCH = 500;
/** Documents were checked against the size limit when written; a restore must not refuse them for a lower one set since. */
const RESTORE_MAX_DOCUMENT_BYTES = 64 * 1024 * 1024;

/** Backs up every collection of one messaging or identities database. */
export async function backupDocumentDatabase(target: JobTarget, ctx: JobContext, store: DocumentStore): Promise<void> {
  const loc = target.blobs.backups;
  if (!loc) return;
  const date = backupDate(ctx.now);
  const specs = new Map(documentCollectionsOf(ctx.config, target).map((c) => [c.collection, c.spec]));
  const plan = await planSnapshot(target.blob, loc, target.dbName, date, ctx.now, [...specs.keys()]);
  if (plan.resumed) ctx.tally.add('snapshotsResumed');
  for (const collection of plan.collections) {
    const spec = specs.get(collection);
    if (!spec) throw new ValidationError(`${target.databaseType} databases have no collection ${JSON.stringify(collection)}; snapshot ${plan.id} of ${target.dbName} cannot be finished`);
    // A collection of documents is written whole (its export is not resumable): a run that has
    // not moved forward yet finishes one before it stops, so every run commits at least one.
    await moveCheckpoint(ctx);
    const ns: Namespace = { dbName: target.dbName, collection };
    const folder = snapshotFolder(loc, collection, date, target.dbName, plan.id);
    const existing = await target.blob.get(loc.bucket, `${folder}manifest.json`);
    if (existing) {
      // Done by the run this one finishes (or, retried, by this run itself): only finish its clean-up.
      await removeUnlisted(target.blob, loc, folder, parseDocumentManifest(existing, `${loc.bucket}/${folder}manifest.json`));
      ctx.tally.add('collectionsAlreadyBackedUp');
      continue;
    }
    const { parts, documents } = await exportCollection(target, ctx, store, ns, spec, loc.bucket, folder);
    const manifest: DocumentBackupManifest = {
      format: BACKUP_FORMAT,
      kind: 'documents',
      dbName: target.dbName,
      databaseType: target.databaseType,
      collection,
      date,
      snapshot: { id: plan.id, collections: plan.collections },
      counts: { documents },
      bytes: parts.files.reduce((n, f) => n + f.bytes, 0),
      files: parts.files,
    };
    await commitSnapshot(target.blob, loc, folder, manifest);
    ctx.advanced();
    ctx.tally.add('backedUpCollections');
    ctx.tally.add('backedUpDocuments', documents);
    ctx.tally.bytes += manifest.bytes;
  }
}

/** How often a collection's export starts again when documents changed under it (see `exportCollection`). */
const EXPORT_ATTEMPTS = 3;

/**
 * Writes one collection's documents to snapshot parts. The export reads page by page while
 * writes go on, so a document deleted and another written with its unique key (or two that
 * swapped keys) can both be read: a snapshot that would hold two documents with one unique key
 * could never be restored, so the export then starts again, and after `EXPORT_ATTEMPTS` fails
 * the collection (the job reports it; the next run tries again).
 */
async function exportCollection(
  target: JobTarget,
  ctx: JobContext,
  store: DocumentStore,
  ns: Namespace,
  spec: CollectionSpec,
  bucket: string,
  folder: string,
): Promise<{ parts: PartWriter; documents: number }> {
  for (let attempt = 1; ; attempt++) {
    const parts = new PartWriter(target.blob, bucket, folder);
    const keys = new UniqueKeys(spec);
    let documents = 0;
    let clash: string | null = null;
    let after: string | undefined;
    for (;;) {
      await moveCheckpoint(ctx);
      const page = await store.exportDocuments(ns, { limit: EXPORT_PAGE, ...(after !== undefined ? { after } : {}) });
      for (const d of page.documents) {
        clash ??= keys.add(d.doc);
        await parts.add(documentLine(d));
      }
      documents += page.documents.length;
      ctx.step(page.documents.length);
      if (clash !== null || page.next === null) break;
      after = page.next;
    }
    if (clash === null) {
      await parts.flush();
      return { parts, documents };
    }
    ctx.tally.add('exportsRestarted');
    if (attempt >= EXPORT_ATTEMPTS) {
      throw new ConflictError(`${ns.dbName}.${ns.collection} kept changing while it was backed up (${clash}); the next run tries again`);
    }
  }
}

/** The unique keys of a collection's documents, to find two documents holding one key. */
class UniqueKeys {
  readonly #seen: Array<{ name: string; fields: string[]; sparse: boolean; keys: Set<string> }>;

  constructor(spec: CollectionSpec) {
    this.#seen = spec.indexes.filter((i) => i.unique).map((i) => ({ name: i.name, fields: i.keys.map(([f]) => f), sparse: i.sparse === true, keys: new Set<string>() }));
  }

  /** Records a document's keys; returns which index it clashes on, or `null`. */
  add(doc: Doc): string | null {
    for (const index of this.#seen) {
      const values = index.fields.map((f) => valueAt(doc, f));
      if (index.sparse && values.every((v) => v === undefined)) continue;
      const key = JSON.stringify(values.map((v) => (v === undefined ? null : v)));
      if (index.keys.has(key)) return `two documents hold one ${index.name} key`;
      index.keys.add(key);
    }
    return null;
  }
}

/**
 * Rebuilds the document collections of one database from one snapshot (`RestoreOptions` says
 * which, and what happens to documents already there). Every file is checked first (sizes,
 * SHA-256, line counts, and every document against its collection's spec, as a write would be);
 * on any mismatch nothing is written. The documents are then staged, in their order and with
 * their expiry, in collections of a staging database (`restoreStagingDbName`), and
 * `replaceCollections` swaps them in (on SQLite in one transaction: readers see every
 * collection as it was or as the snapshot). Without `collections`, every collection of the
 * database type is replaced, those the snapshot lacks emptied. A restore cut off anywhere is
 * finished by running it again (after the swap, with `replace`).
 */
export async function restoreDocumentDatabase(target: JobTarget, ctx: JobContext, store: DocumentStore, options: RestoreOptions): Promise<void> {
  const { loc, snapshot } = await snapshotsToRestore(target, options);
  const replace = options.mode === 'replace';
  ctx.phase(`checking snapshot ${options.date}${snapshot.id !== null ? `/${snapshot.id}` : ''}`);
  const checked: Array<{ collection: string; rules: DocumentRules; folder: string; manifest: DocumentBackupManifest }> = [];
  for (const { folder, collection } of snapshot.folders) {
    await ctx.checkpoint();
    const rules = storedDocumentRules(target.databaseType, collection, target.tier === 'tenant' ? target.tenantId : undefined);
    if (!rules) throw new ValidationError(`${target.databaseType} databases have no collection ${JSON.stringify(collection)}; the snapshot in ${loc.bucket}/${folder} cannot be restored here`);
    const where = `${loc.bucket}/${folder}manifest.json`;
    const manifest = checkDocumentManifest(await readManifest(target.blob, loc, folder, { dbName: target.dbName, collection, date: options.date, snapshot: snapshot.id }), where);
    let documents = 0;
    const keys = new UniqueKeys(rules.spec);
    for (const file of manifest.files) {
      for (const d of await readDocumentPart(target, loc.bucket, folder, file, rules)) {
        const clash = keys.add(d.doc);
        // Checked before anything is written: such a snapshot could never be restored.
        if (clash !== null) throw new ValidationError(`${loc.bucket}/${folder}${file.name}: ${clash}; the snapshot cannot be restored`);
        documents++;
      }
    }
    if (documents !== manifest.counts.documents) throw new ValidationError(`${where}: the files hold ${documents} documents, the manifest promises ${manifest.counts.documents}`);
    checked.push({ collection, rules, folder, manifest });
  }
  // The collections replaced: the snapshot's and, for the whole database, every other one of the type (emptied).
  const specs = new Map(documentCollectionsOf(ctx.config, target).map((c) => [c.collection, c.spec]));
  for (const c of checked) specs.set(c.collection, c.rules.spec);
  const scope = options.collections ? checked.map((c) => c.collection) : [...specs.keys()];
  if (!replace) {
    const held = await documentsHeld(target, store, scope);
    if (held > 0) throw new RestoreTargetNotEmptyError(target.dbName, held, 'documents', options.collections);
  }

  ctx.phase('staging', { total: checked.reduce((n, c) => n + c.manifest.counts.documents, 0), unit: 'documents' });
  const staging = restoreStagingDbName(target.dbName);
  for (const { collection, rules, folder, manifest } of checked) {
    await ctx.checkpoint();
    const ns: Namespace = { dbName: staging, collection };
    await store.ensureCollection(ns, rules.spec);
    await store.clearCollection(ns);
    for (const file of manifest.files) {
      ctx.tally.bytes += file.bytes;
      const documents = await readDocumentPart(target, loc.bucket, folder, file, rules);
      for (let i = 0; i < documents.length; i += IMPORT_BATCH) {
        await ctx.checkpoint();
        const batch = documents.slice(i, i + IMPORT_BATCH);
        await store.importDocuments(ns, batch);
        ctx.tally.add('restoredDocuments', batch.length);
        ctx.step(batch.length);
      }
    }
  }

  await ctx.checkpoint();
  ctx.phase('replacing');
  for (const collection of scope) await store.ensureCollection({ dbName: target.dbName, collection }, specs.get(collection)!);
  const staged = new Set(checked.map((c) => c.collection));
  const result = await store.replaceCollections(target.dbName, scope.map((collection) => ({ collection, from: staged.has(collection) ? staging : null })), { onlyIfEmpty: !replace });
  for (const collection of staged) await store.clearCollection({ dbName: staging, collection });
  if (!result.replaced) throw new RestoreTargetNotEmptyError(target.dbName, result.held, 'documents', options.collections);
  ctx.tally.add('restoredCollections', checked.length);
  if (replace) ctx.tally.add('replacedDocuments', result.held);
}

/** How many documents `collections` of the database hold. */
export async function documentsHeld(target: JobTarget, store: DocumentStore, collections: readonly string[]): Promise<number> {
  let held = 0;
  for (const collection of collections) held += await store.countDocuments({ dbName: target.dbName, collection });
  return held;
}

function documentLine(d: StoredDocument): string {
  return `{"t":"doc","expiresAt":${JSON.stringify(d.expiresAt === null ? null : d.expiresAt.toISOString())},"doc":${toDocumentJson(d.doc)}}`;
}

type DocumentRules = NonNullable<ReturnType<typeof storedDocumentRules>>;

async function readDocumentPart(target: JobTarget, bucket: string, folder: string, file: ManifestBase['files'][number], rules: DocumentRules): Promise<StoredDocument[]> {
  return (await readPartLines(target.blob, bucket, folder, file)).map(({ raw, where }) => {
    let value: unknown;
    try {
      value = fromDocumentJson(raw);
    } catch {
      throw new ValidationError(`${where} is not JSON`);
    }
    if (!isObject(value) || value.t !== 'doc' || !isObject(value.doc)) throw new ValidationError(`${where}: not a document line`);
    const expiresAt = value.expiresAt === null ? null : typeof value.expiresAt === 'string' ? new Date(value.expiresAt) : undefined;
    if (expiresAt === undefined || (expiresAt !== null && !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(value.expiresAt as string)) || (expiresAt && Number.isNaN(expiresAt.getTime()))) {
      throw new ValidationError(`${where}: expiresAt must be null or an ISO time`);
    }
    try {
      const { doc } = checkDocument(value.doc, rules.spec, RESTORE_MAX_DOCUMENT_BYTES, 'doc');
      rules.check(doc);
      return { doc, expiresAt };
    } catch (err) {
      if (!(err instanceof XronoxError)) throw err;
      throw new ValidationError(`${where}: ${err.message}`, { ...(err instanceof ValidationError && err.path !== undefined ? { path: err.path } : {}), cause: err });
    }
  });
}

export function parseDocumentManifest(bytes: Uint8Array, where: string): DocumentBackupManifest {
  return checkDocumentManifest(parseManifestBase(bytes, where), where);
}

function checkDocumentManifest(m: Record<string, unknown> & ManifestBase, where: string): DocumentBackupManifest {
  if (m.kind !== 'documents' || !isObject(m.counts) || !isCount(m.counts.documents)) throw new ValidationError(`${where} is not the manifest of a documents snapshot`);
  return m as unknown as DocumentBackupManifest;
}
