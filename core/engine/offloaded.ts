import type { BlobStore } from '../contracts/blob-store.js';
import type { HeadRow, Namespace, RecordIndex } from '../contracts/index-store.js';
import type { BlobKind } from '../config/schema.js';
import { StorageError } from '../errors.js';
import type { BlobLocation } from '../routing/router.js';
import { blobKeys } from './blob-sync.js';
import { parseDocument, type RecordDocument } from './documents.js';
import { versionHash } from './hash-chain.js';
import { canonicalJson } from './merge.js';

/** What reading an offloaded head needs to know about its database. */
export interface OffloadTarget {
  readonly index: Pick<RecordIndex, 'getVersion'>;
  readonly blob: BlobStore;
  readonly versioned: boolean;
  readonly appendOnly: boolean;
  readonly blobs: Readonly<Partial<Record<BlobKind, BlobLocation>>>;
}

/** Whether the head's document lives in the records bucket only (see `HeadRow.body`). */
export function isOffloaded(head: HeadRow): boolean {
  return head.body === '';
}

/** The records object that holds a head's document: `current.json`, or the dated key of a log. */
export function recordObjectKey(loc: BlobLocation, appendOnly: boolean, collection: string, head: Pick<HeadRow, 'id' | 'createdAt'>): string {
  return appendOnly ? blobKeys.dated(loc, collection, head.id, head.createdAt) : blobKeys.current(loc, collection, head.id);
}

/**
 * The exact JSON text of a head's record document: its `body`, or for an offloaded head the
 * records object, checked to be that record at that ov and, for versioned types, to match the
 * head's hash. A missing or mismatching object is a `StorageError`: never served.
 */
export async function headBody(target: OffloadTarget, ns: Namespace, head: HeadRow): Promise<string> {
  if (!isOffloaded(head)) return head.body;
  const loc = target.blobs.records;
  const where = `${ns.dbName}/${ns.collection}/${head.id}`;
  if (!loc) throw new StorageError(target.blob.name, 'get', undefined, `Record ${where} is offloaded but its database has no records bucket`);
  const key = recordObjectKey(loc, target.appendOnly, ns.collection, head);
  const bytes = await target.blob.get(loc.bucket, key);
  if (!bytes) throw new StorageError(target.blob.name, 'get', undefined, `Record ${where} is offloaded but ${loc.bucket}/${key} is missing`);
  const body = Buffer.from(bytes).toString('utf8');
  let doc: RecordDocument;
  try {
    doc = parseDocument(body);
  } catch (err) {
    throw new StorageError(target.blob.name, 'get', err, `Record ${where} is offloaded but ${loc.bucket}/${key} is not a record document`);
  }
  if (!(await matchesHead(target, ns, head, doc))) {
    throw new StorageError(target.blob.name, 'get', undefined, `Record ${where} is offloaded but ${loc.bucket}/${key} does not hold its version ${head.ov}`);
  }
  return body;
}

/** `headBody`, parsed. */
export async function headDocument(target: OffloadTarget, ns: Namespace, head: HeadRow): Promise<RecordDocument> {
  return isOffloaded(head) ? parseDocument(await headBody(target, ns, head)) : parseDocument(head.body);
}

async function matchesHead(target: OffloadTarget, ns: Namespace, head: HeadRow, doc: RecordDocument): Promise<boolean> {
  if (typeof doc !== 'object' || doc === null || doc.id !== head.id || doc.ov !== head.ov) return false;
  if (!target.versioned || head.hash === null) return true;
  if (head.ov === 0) return versionHash(null, doc) === head.hash;
  const previous = await target.index.getVersion(ns, head.id, head.ov - 1);
  if (previous) return versionHash(previous.hash, doc) === head.hash;
  // Retention pruned the predecessor: the version entry at the head's ov (never pruned) anchors
  // the check instead, through its own copy (index body or versions object).
  const own = await target.index.getVersion(ns, head.id, head.ov);
  if (!own || own.hash !== head.hash) return false;
  let ownBody = own.body;
  const versions = target.blobs.versions;
  if (ownBody === null && versions) {
    const bytes = await target.blob.get(versions.bucket, blobKeys.version(versions, ns.collection, head.id, head.ov));
    ownBody = bytes ? Buffer.from(bytes).toString('utf8') : null;
  }
  return ownBody !== null && canonicalJson(parseDocument(ownBody)) === canonicalJson(doc);
}
