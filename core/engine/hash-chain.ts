import type { VersionRow } from '../contracts/index-store.js';
import { sha256Hex } from '../foundation/digest.js';
import type { RecordDocument } from './documents.js';
import { canonicalJson } from './merge.js';

/**
 * Tamper evidence. Each version's hash covers, in canonical JSON (keys sorted), every field of the
 * version: the columns the index keeps beside it (id, ov, cv, op, at, actor, reason, deleted), the
 * SHA-256 of its whole record document (payload, lineage, content references with their SHA-256,
 * createdAt, functionId) and the previous version's digest. Changing any of them, or dropping a
 * version from the middle, breaks every link from there on.
 *
 * The hash column holds a self-describing string, so the format is kept per version entry and
 * data written before this format still verifies:
 * - format 2 (written now): `2:{digest}:{bodyDigest}:{previousDigest}` (the last part empty for
 *   version 0). Carrying the body digest and the previous digest lets a read check one stored row
 *   on its own, with no second lookup, and `history` check its columns without reading bodies.
 * - format 1 (older data): 64 hex characters, `SHA-256(previous + "\n" + canonicalJson(doc))`,
 *   which covers the document (so actor, reason and time) but not the cv.
 * A chain may go from format 1 to format 2, never back: a format-1 link after a format-2 one is
 * a finding (it would drop the cv from what is covered).
 */
export const HASH_FORMAT = 2;

const LEGACY = /^[0-9a-f]{64}$/;
const SEALED = /^2:([0-9a-f]{64}):([0-9a-f]{64}):((?:[0-9a-f]{64})?)$/;

/** A stored hash, parsed. `body` and `previous` are known only for format 2. */
export type Seal = { format: 1; digest: string } | { format: 2; digest: string; body: string; previous: string | null };

/** The parts of a stored hash; `null` when it is not one Xronox writes. */
export function parseSeal(hash: string): Seal | null {
  if (LEGACY.test(hash)) return { format: 1, digest: hash };
  const m = SEALED.exec(hash);
  return m ? { format: 2, digest: m[1]!, body: m[2]!, previous: m[3] === '' ? null : m[3]! } : null;
}

/** The digest a stored hash stands for: what the next version links to and digests commit to. */
export function digestOf(hash: string): string {
  return parseSeal(hash)?.digest ?? hash;
}

/** The fields of a version that the index keeps as columns, all covered by its hash. */
export type VersionFields = Pick<VersionRow, 'id' | 'ov' | 'cv' | 'op' | 'at' | 'actor' | 'reason' | 'deleted'>;

/** SHA-256 of a record document's canonical JSON. */
export function bodyDigest(doc: RecordDocument): string {
  return sha256Hex(canonicalJson(doc));
}

/** The format-2 digest of a version: its columns, its body digest and its predecessor's digest. */
export function sealDigest(fields: VersionFields, body: string, previous: string | null): string {
  const { id, ov, cv, op, at, actor, reason, deleted } = fields;
  return sha256Hex(canonicalJson({ format: 2, id, ov, cv, op, at, actor, reason, deleted, body, previous }));
}

/** The hash stored for a version written now (format 2), given its predecessor's stored hash. */
export function versionHash(previousHash: string | null, cv: number, doc: RecordDocument): string {
  return versionSealer(previousHash, doc)(cv);
}

/**
 * `versionHash` in two steps: the document's digest now, the rest once the cv is known. A commit
 * calls the returned function inside its transaction, so what it does there is kept small (one
 * short canonical JSON and one SHA-256).
 */
export function versionSealer(previousHash: string | null, doc: RecordDocument): (cv: number) => string {
  const body = bodyDigest(doc);
  const previous = previousHash === null ? null : digestOf(previousHash);
  return (cv) => `2:${sealDigest(fieldsOf(doc, cv), body, previous)}:${body}:${previous ?? ''}`;
}

/** The hash of format 1 (data written before format 2): document and previous hash only. */
export function legacyVersionHash(previousHash: string | null, doc: RecordDocument): string {
  return sha256Hex(`${previousHash ?? ''}\n${canonicalJson(doc)}`);
}

/** The columns a document implies for a version with this cv. */
export function fieldsOf(doc: RecordDocument, cv: number): VersionFields {
  return { id: doc.id, ov: doc.ov, cv, op: doc.op, at: doc.at, actor: doc.actor, reason: doc.reason, deleted: doc.deleted };
}

/**
 * What is wrong with one stored version (or head), or `null`: its columns against its hash and,
 * when `doc` is given, its document against both. `previousHash` is the predecessor's stored hash
 * when known (`null` for version 0, `undefined` when not read): format 1 needs it to be checked
 * at all (`legacyPending` says so), format 2 only to check the link as well.
 */
export function sealProblem(fields: VersionFields, hash: string | null, doc: RecordDocument | null, previousHash?: string | null): string | null {
  if (hash === null) return 'it carries no hash';
  const seal = parseSeal(hash);
  if (!seal) return 'its hash is not in a format Xronox writes';
  if (doc) {
    const differs = columnMismatch(fields, doc);
    if (differs) return `its ${differs} column differs from its stored document`;
  }
  if (seal.format === 1) {
    if (!doc || previousHash === undefined) return null;
    if (previousHash !== null && parseSeal(previousHash)?.format === 2) return 'its hash is of the older format after a newer one';
    return legacyVersionHash(previousHash, doc) === hash ? null : 'its content or metadata does not match its hash';
  }
  if (doc && bodyDigest(doc) !== seal.body) return 'its stored document does not match its hash';
  if (fields.ov === 0 && seal.previous !== null) return 'version 0 claims a predecessor';
  if (sealDigest(fields, seal.body, seal.previous) !== seal.digest) return 'its metadata (id, ov, cv, op, time, actor, reason or deleted) does not match its hash';
  if (previousHash !== undefined && previousHash !== null && digestOf(previousHash) !== seal.previous) return `it does not link to version ${fields.ov - 1}`;
  return null;
}

/** Whether checking this hash needs the predecessor's hash (format 1). */
export function legacyPending(hash: string | null): boolean {
  return hash !== null && LEGACY.test(hash);
}

function columnMismatch(fields: VersionFields, doc: RecordDocument): string | null {
  if (doc === null || typeof doc !== 'object') return 'document';
  if (doc.id !== fields.id) return 'id';
  if (doc.ov !== fields.ov) return 'ov';
  if (doc.op !== fields.op) return 'op';
  if (doc.at !== fields.at) return 'time';
  if (doc.reason !== fields.reason) return 'reason';
  if (doc.deleted !== fields.deleted) return 'deleted';
  if (canonicalJson(doc.actor) !== canonicalJson(fields.actor)) return 'actor';
  return null;
}

/** The first broken link of a record's chain, or `null` when the chain holds. */
export interface BrokenLink {
  ov: number;
  reason: string;
}

export interface VerifyReport {
  id: string;
  ok: boolean;
  /** Versions checked. */
  checked: number;
  brokenAt: BrokenLink | null;
}

export interface CollectionVerifyReport {
  ok: boolean;
  records: number;
  versions: number;
  broken: Array<{ id: string } & BrokenLink>;
}
