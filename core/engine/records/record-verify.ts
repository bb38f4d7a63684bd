/**
 * Tamper evidence of a record collection: recomputes each record's hash chain from its stored
 * versions (in the index or the versions bucket) and checks that the head, what reads return, is
 * exactly the newest version. Reports the first broken link; never repairs.
 */
import type { VersionRow } from '../../contracts/index-store.js';
import { NotFoundError, StorageError } from '../../errors.js';
import { assertName } from '../../foundation/names.js';
import type { RecordDocument } from '../documents.js';
import { type CollectionVerifyReport, versionHash, type VerifyReport } from '../hash-chain.js';
import { canonicalJson } from '../merge.js';
import type { RecordAccess } from './record-access.js';

const VERIFY_PAGE = 500;

export class RecordVerify {
  readonly #access: RecordAccess;

  constructor(access: RecordAccess) {
    this.#access = access;
  }

  async verify(id: string): Promise<VerifyReport> {
    this.#access.requireVersioned('verify');
    assertName('id', id);
    const { index, ns } = this.#access;
    const head = await index.getHead(ns, id);
    if (!head) throw new NotFoundError(`Record ${id} does not exist in ${this.#access.route.label}`);
    let broken: { ov: number; reason: string } | null = null;
    const flag = (ov: number, reason: string) => {
      if (!broken || ov <= broken.ov) broken = { ov, reason };
    };
    if (head.hash === null) flag(head.ov, 'the head carries no hash');
    let checked = 0;
    let newer: VersionRow | undefined;
    let newest: VersionRow | undefined;
    let newestPrevious: VersionRow | undefined;
    let before: number | undefined;
    for (;;) {
      const rows = await index.listVersions(ns, id, { limit: VERIFY_PAGE, ...(before !== undefined ? { beforeOv: before } : {}) });
      if (rows.length === 0) break;
      if (!newest) {
        newest = rows[0];
        newestPrevious = rows[1] ?? (await index.listVersions(ns, id, { limit: 1, beforeOv: rows[0]!.ov }))[0];
      }
      for (const row of rows) {
        checked++;
        if (newer === undefined && (row.ov !== head.ov || row.hash !== head.hash)) flag(row.ov, 'the head does not point at the newest version');
        if (newer !== undefined && newer.ov !== row.ov + 1) flag(row.ov + 1, `version ${row.ov + 1} is missing`);
        // Each version is checked against the hash stored on the one before it (the next row).
        newer = row;
      }
      // Verify links now that each row's predecessor is known (within this page and across pages).
      before = rows[rows.length - 1]!.ov;
      const previousPage = await index.listVersions(ns, id, { limit: 1, beforeOv: before });
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i]!;
        const predecessor = i + 1 < rows.length ? rows[i + 1] : previousPage[0];
        const reason = await this.#checkLink(row, predecessor);
        if (reason) flag(row.ov, reason);
      }
      if (rows.length < VERIFY_PAGE) break;
    }
    // The head is what reads serve: it must be exactly the newest version.
    if (newest) {
      const newestDoc = await this.#access.readVersionDoc(newest).catch(() => null);
      const headDoc = await this.#access.headDoc(head).catch(() => null);
      // When retention pruned everything before the newest version, that version anchors the
      // chain (as in #checkLink): its hash cannot be recomputed without its predecessor's.
      const anchored = newestPrevious === undefined && newest.ov > 0;
      if (
        !newestDoc ||
        !headDoc ||
        canonicalJson(headDoc) !== canonicalJson(newestDoc) ||
        (!anchored && versionHash(newestPrevious?.hash ?? null, headDoc) !== head.hash)
      ) {
        flag(head.ov, 'the head (what reads return) does not match its newest version');
      }
    }
    return { id, ok: broken === null, checked, brokenAt: broken };
  }

  async verifyCollection(): Promise<CollectionVerifyReport> {
    this.#access.requireVersioned('verifyCollection');
    const report: CollectionVerifyReport = { ok: true, records: 0, versions: 0, broken: [] };
    let afterId: string | undefined;
    for (;;) {
      const ids = await this.#access.index.listHeadIds(this.#access.ns, { limit: 500, ...(afterId ? { afterId } : {}) });
      if (ids.length === 0) return report;
      for (const id of ids) {
        const r = await this.verify(id);
        report.records++;
        report.versions += r.checked;
        if (r.brokenAt) {
          report.ok = false;
          report.broken.push({ id, ...r.brokenAt });
        }
      }
      afterId = ids[ids.length - 1];
    }
  }

  async #checkLink(row: VersionRow, predecessor: VersionRow | undefined): Promise<string | null> {
    let doc: RecordDocument;
    try {
      doc = await this.#access.readVersionDoc(row);
    } catch (err) {
      if (err instanceof StorageError && err.cause === undefined) return 'its stored document is missing';
      if (err instanceof SyntaxError) return 'its stored document is not valid JSON';
      throw err;
    }
    if (doc.id !== row.id || doc.ov !== row.ov) return 'its stored document belongs to another version';
    // The oldest retained version anchors the chain when older ones were pruned.
    const previousHash = predecessor ? predecessor.hash : row.ov === 0 ? null : undefined;
    if (previousHash === undefined) return null;
    if (predecessor && predecessor.ov !== row.ov - 1) return `version ${row.ov - 1} is missing`;
    return versionHash(previousHash, doc) === row.hash ? null : 'its content or metadata does not match its hash';
  }
}
