/**
 * Tamper evidence of a record collection: recomputes each record's hash chain from its stored
 * versions (in the index or the versions bucket), checks every index column against the hashed
 * form, the head (what reads return) against the newest version and `current.json` against the
 * versions. Reports the first broken link of each record; never repairs. Streams: a record's
 * versions are read a page at a time and only the newest and the one being linked are kept, so
 * memory stays flat however long a history is.
 */
import type { HeadRow, VersionRow } from '../../contracts/index-store.js';
import { NotFoundError, StorageError, TamperError } from '../../errors.js';
import { assertName } from '../../foundation/names.js';
import { blobKeys } from '../blob-sync.js';
import { parseDocument, type RecordDocument } from '../documents.js';
import { type BrokenLink, type CollectionVerifyReport, sealProblem, type VerifyReport } from '../hash-chain.js';
import { canonicalJson } from '../merge.js';
import { isOffloaded, recordObjectKey } from '../offloaded.js';
import { headProblem, versionFields } from '../tamper-check.js';
import type { RecordAccess } from './record-access.js';

const VERIFY_PAGE = 500;
/** Findings a collection report lists in full; the count goes on past it (`VerifyOptions.onFinding` sees each). */
export const MAX_LISTED_FINDINGS = 1000;

export interface VerifyOptions {
  /** Called with each record's first broken link as it is found. */
  onFinding?: (finding: { id: string } & BrokenLink) => void;
  /** Called after each record with the running totals. */
  onProgress?: (progress: { records: number; versions: number; findings: number }) => void;
}

/** One record's chain as verify saw it: its report, its head, and its chain head as of a cv (for digests). */
export interface ChainResult extends VerifyReport {
  head: HeadRow;
  /** For each cv asked (`chain(head, cvs)`), the newest version with cv ≤ it; `null` when none. */
  asOf: Array<{ ov: number; hash: string } | null>;
}

export class RecordVerify {
  readonly #access: RecordAccess;

  constructor(access: RecordAccess) {
    this.#access = access;
  }

  async verify(id: string): Promise<VerifyReport> {
    this.#access.requireVersioned('verify');
    assertName('id', id);
    const head = await this.#access.index.getHead(this.#access.ns, id);
    if (!head) throw new NotFoundError(`Record ${id} does not exist in ${this.#access.route.label}`);
    const { id: checkedId, ok, checked, brokenAt } = await this.chain(head);
    return { id: checkedId, ok, checked, brokenAt };
  }

  /** Verifies one record's chain from its head. */
  async chain(head: HeadRow, asOfCvs: readonly number[] = []): Promise<ChainResult> {
    const asOf: Array<{ ov: number; hash: string } | null> = asOfCvs.map(() => null);
    const { index, ns } = this.#access;
    const id = head.id;
    let broken: BrokenLink | null = null;
    const flag = (ov: number, reason: string) => {
      if (!broken || ov <= broken.ov) broken = { ov, reason };
    };
    let checked = 0;
    // The newer version still waiting for its predecessor to be read (versions come newest first).
    let pending: { row: VersionRow; doc: RecordDocument | null } | undefined;
    let newest: { row: VersionRow; doc: RecordDocument | null } | undefined;
    let before: number | undefined;
    const link = (newer: { row: VersionRow; doc: RecordDocument | null }, older: VersionRow | undefined) => {
      const { row, doc } = newer;
      // Without its predecessor a version is checked on its own: the oldest retained version
      // anchors the chain when retention pruned older ones.
      let previousHash: string | null | undefined;
      if (older === undefined) previousHash = row.ov === 0 ? null : undefined;
      else if (older.ov !== row.ov - 1) flag(row.ov - 1, `version ${row.ov - 1} is missing`);
      else previousHash = older.hash;
      const problem = sealProblem(versionFields(row), row.hash, doc, previousHash);
      if (problem) flag(row.ov, problem);
    };
    for (;;) {
      const rows = await index.listVersions(ns, id, { limit: VERIFY_PAGE, ...(before !== undefined ? { beforeOv: before } : {}) });
      for (const row of rows) {
        checked++;
        for (let i = 0; i < asOfCvs.length; i++) if (asOf[i] === null && row.cv <= asOfCvs[i]!) asOf[i] = { ov: row.ov, hash: row.hash };
        const doc = await this.#document(row, flag);
        const entry = { row, doc };
        if (pending) link(pending, row);
        else newest = entry;
        pending = entry;
      }
      if (rows.length < VERIFY_PAGE) break;
      before = rows[rows.length - 1]!.ov;
    }
    if (pending) link(pending, undefined);
    await this.#checkHead(head, newest, flag);
    return { id, ok: broken === null, checked, brokenAt: broken, head, asOf };
  }

  async verifyCollection(options: VerifyOptions = {}): Promise<CollectionVerifyReport & { findings: number }> {
    this.#access.requireVersioned('verifyCollection');
    const report: CollectionVerifyReport & { findings: number } = { ok: true, records: 0, versions: 0, findings: 0, broken: [] };
    for await (const r of this.chains()) {
      report.records++;
      report.versions += r.checked;
      if (r.brokenAt) {
        report.ok = false;
        report.findings++;
        const finding = { id: r.id, ...r.brokenAt };
        if (report.broken.length < MAX_LISTED_FINDINGS) report.broken.push(finding);
        options.onFinding?.(finding);
      }
      options.onProgress?.({ records: report.records, versions: report.versions, findings: report.findings });
    }
    return report;
  }

  /** Every record's chain, verified, in id order (what a digest is computed over). */
  async *chains(asOfCvs: readonly number[] = []): AsyncGenerator<ChainResult> {
    const { index, ns } = this.#access;
    let afterId: string | undefined;
    for (;;) {
      const ids = await index.listHeadIds(ns, { limit: VERIFY_PAGE, ...(afterId ? { afterId } : {}) });
      if (ids.length === 0) return;
      for (const id of ids) {
        const head = await index.getHead(ns, id);
        // Removed (hard delete) since the page was read: nothing left to verify.
        if (head) yield await this.chain(head, asOfCvs);
      }
      afterId = ids[ids.length - 1];
    }
  }

  /** A version's stored document, or `null` after flagging why it cannot be read. */
  async #document(row: VersionRow, flag: (ov: number, reason: string) => void): Promise<RecordDocument | null> {
    try {
      return await this.#access.storedVersionDoc(row);
    } catch (err) {
      if (err instanceof StorageError && err.cause === undefined) flag(row.ov, 'its stored document is missing');
      else if (err instanceof SyntaxError) flag(row.ov, 'its stored document is not valid JSON');
      else throw err;
      return null;
    }
  }

  /** The head (what reads return) must be exactly the newest version, and `current.json` a version of the record. */
  async #checkHead(head: HeadRow, newest: { row: VersionRow; doc: RecordDocument | null } | undefined, flag: (ov: number, reason: string) => void): Promise<void> {
    if (head.hash === null) return flag(head.ov, 'the head carries no hash');
    if (!newest) return flag(head.ov, 'the record has no versions');
    if (newest.row.ov !== head.ov || newest.row.hash !== head.hash) return flag(Math.min(head.ov, newest.row.ov), 'the head does not point at the newest version');
    let headDoc: RecordDocument;
    try {
      headDoc = await this.#access.headDoc(head);
    } catch (err) {
      if (err instanceof TamperError) return flag(head.ov, err.reason);
      if (err instanceof StorageError || err instanceof SyntaxError) return flag(head.ov, `the head cannot be read: ${err.message}`);
      throw err;
    }
    const problem = await headProblem(this.#access.index, this.#access.ns, head, headDoc);
    if (problem) return flag(head.ov, `the head: ${problem}`);
    if (newest.doc && canonicalJson(headDoc) !== canonicalJson(newest.doc)) return flag(head.ov, 'the head (what reads return) does not match its newest version');
    if (!isOffloaded(head)) await this.#checkCurrentObject(head, headDoc, flag);
  }

  /**
   * `current.json` must hold the head, or while its sync is pending an older version exactly;
   * anything else was written by someone other than the sync. A missing object is a pending sync.
   */
  async #checkCurrentObject(head: HeadRow, headDoc: RecordDocument, flag: (ov: number, reason: string) => void): Promise<void> {
    const route = this.#access.route;
    const loc = route.blobs.records;
    if (!loc || route.policy.appendOnly) return;
    const bytes = await this.#access.ctx.blob.get(loc.bucket, recordObjectKey(loc, false, route.collection, head));
    if (!bytes) return;
    let doc: RecordDocument;
    try {
      doc = parseDocument(Buffer.from(bytes).toString('utf8'));
    } catch {
      return flag(head.ov, `${blobKeys.current(loc, route.collection, head.id)} is not valid JSON`);
    }
    const what = `${blobKeys.current(loc, route.collection, head.id)}`;
    if (typeof doc !== 'object' || doc === null || doc.id !== head.id || !Number.isSafeInteger(doc.ov) || doc.ov > head.ov || doc.ov < 0) {
      return flag(head.ov, `${what} does not hold a version of this record`);
    }
    let expected: RecordDocument | null = headDoc;
    if (doc.ov !== head.ov) {
      const row = await this.#access.index.getVersion(this.#access.ns, head.id, doc.ov);
      expected = row ? await this.#access.storedVersionDoc(row).catch(() => null) : null;
    }
    if (!expected || canonicalJson(expected) !== canonicalJson(doc)) flag(doc.ov, `${what} does not match version ${doc.ov}`);
  }
}
