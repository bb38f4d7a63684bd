import type { BlobStore } from '../contracts/blob-store.js';
import type { HeadRow, Namespace, RecordIndex } from '../contracts/index-store.js';
import type { BlobKind } from '../config/schema.js';
import { StorageError, TamperError } from '../errors.js';
import type { BlobLocation } from '../routing/router.js';
import { blobKeys } from './blob-sync.js';
import { parseDocument, type RecordDocument } from './documents.js';
import { headProblem } from './tamper-check.js';

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
 * records object, checked to be that record at that ov (else a `StorageError`) and, for versioned
 * types, to match the head's hash (else a `TamperError`): never served otherwise.
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
  if (!matchesHead(head, doc)) {
    throw new StorageError(target.blob.name, 'get', undefined, `Record ${where} is offloaded but ${loc.bucket}/${key} does not hold its version ${head.ov}`);
  }
  if (target.versioned) {
    const problem = await headProblem(target.index, ns, head, doc);
    if (problem) throw new TamperError(`${ns.dbName}/${ns.collection}`, head.id, head.ov, `${loc.bucket}/${key}: ${problem}`);
  }
  return body;
}

/** `headBody`, parsed. */
export async function headDocument(target: OffloadTarget, ns: Namespace, head: HeadRow): Promise<RecordDocument> {
  return isOffloaded(head) ? parseDocument(await headBody(target, ns, head)) : parseDocument(head.body);
}

/** Whether the object holds the head's record at the head's ov (what a lagging object would not). */
function matchesHead(head: HeadRow, doc: RecordDocument): boolean {
  return typeof doc === 'object' && doc !== null && doc.id === head.id && doc.ov === head.ov;
}
