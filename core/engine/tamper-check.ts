/**
 * The tamper checks of one stored head or version, as reads apply them before serving it: its
 * index columns and document against its hash (see `hash-chain.ts`). A format-2 hash checks on
 * its own, with no further lookup; a format-1 hash (older data) needs its predecessor's hash,
 * read here. The chain as a whole (missing versions, the head against the newest version, the
 * signed digests) is `verify`'s.
 */
import type { HeadRow, Namespace, RecordIndex, VersionRow } from '../contracts/index-store.js';
import { canonicalJson } from './merge.js';
import type { RecordDocument } from './documents.js';
import { legacyPending, sealProblem, type VersionFields } from './hash-chain.js';

export type VersionLookup = Pick<RecordIndex, 'getVersion'>;

/** The columns a head row states, with what only its document holds (op, actor, reason). */
export function headFields(head: HeadRow, doc: RecordDocument): VersionFields {
  return { id: head.id, ov: head.ov, cv: head.cv, op: doc.op, at: head.updatedAt, actor: doc.actor, reason: doc.reason, deleted: head.deleted };
}

export function versionFields(row: VersionFields): VersionFields {
  return { id: row.id, ov: row.ov, cv: row.cv, op: row.op, at: row.at, actor: row.actor, reason: row.reason, deleted: row.deleted };
}

/** What is wrong with a head of a versioned collection and its document, or `null`. */
export async function headProblem(index: VersionLookup, ns: Namespace, head: HeadRow, doc: RecordDocument): Promise<string | null> {
  if (head.hash === null) return 'it carries no hash';
  if (doc === null || typeof doc !== 'object') return 'its stored document is not a record document';
  if (doc.createdAt !== head.createdAt) return 'its createdAt column differs from its stored document';
  const fields = headFields(head, doc);
  if (!legacyPending(head.hash)) return sealProblem(fields, head.hash, doc);
  const previous = await previousHash(index, ns, head.id, head.ov);
  if (previous !== undefined) return sealProblem(fields, head.hash, doc, previous);
  // Retention pruned the predecessor of a format-1 head: its own version entry (never pruned)
  // anchors the check instead.
  const own = await index.getVersion(ns, head.id, head.ov);
  if (!own || own.hash !== head.hash) return 'it does not match its newest version';
  if (own.body !== null && canonicalJson(JSON.parse(own.body)) !== canonicalJson(doc)) return 'it does not match its newest version';
  return sealProblem(fields, head.hash, doc);
}

/** What is wrong with a version entry and its document, or `null`. */
export async function versionProblem(index: VersionLookup, ns: Namespace, row: VersionRow, doc: RecordDocument): Promise<string | null> {
  const fields = versionFields(row);
  if (!legacyPending(row.hash)) return sealProblem(fields, row.hash, doc);
  return sealProblem(fields, row.hash, doc, await previousHash(index, ns, row.id, row.ov));
}

/** The stored hash of version `ov - 1`: `null` before version 0, `undefined` when pruned. */
async function previousHash(index: VersionLookup, ns: Namespace, id: string, ov: number): Promise<string | null | undefined> {
  if (ov === 0) return null;
  return (await index.getVersion(ns, id, ov - 1))?.hash;
}
