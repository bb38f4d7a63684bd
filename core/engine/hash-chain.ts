import { sha256Hex } from '../foundation/digest.js';
import type { RecordDocument } from './documents.js';
import { canonicalJson } from './merge.js';

/**
 * Tamper evidence: each version's hash covers its whole record document (payload and metadata:
 * id, ov, op, time, actor, reason, lineage) in canonical JSON, and the previous version's hash.
 * Changing any stored version, or dropping one from the middle, breaks every link from there on.
 */
export function versionHash(previous: string | null, doc: RecordDocument): string {
  return sha256Hex(previous ?? '', '\n', canonicalJson(doc));
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
