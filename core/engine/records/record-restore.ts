import { randomUUID } from '../../foundation/digest.js';
/**
 * Restores of a record collection: one record, or every record at once, brought back to its state
 * at an earlier version, collection version or time, as new versions (history is never
 * rewritten). Content an older version referenced is checked to be still there first.
 */
import type { Actor, HeadRow, RecordWrite, VersionRow } from '../../contracts/index-store.js';
import { ConflictError, NotFoundError, StorageError, ValidationError, VersionConflictError } from '../../errors.js';
import { nextVersionTime, parseAsOf, untilClockReaches } from '../../foundation/clock.js';
import { isPlainObject } from '../../foundation/filter.js';
import { assertName } from '../../foundation/names.js';
import { checkOptions, checkOv, parsePoint } from '../arguments.js';
import type { CollectionRestoreReport, RestoreResult } from '../collection-types.js';
import type { UploadSession } from '../content-uploads.js';
import { type Data, type RecordDocument } from '../documents.js';
import { canonicalJson } from '../merge.js';
import { type RecordAccess, who, type Who } from './record-access.js';
import { type RecordCommits, retrying } from './record-commits.js';

const RESTORE_BATCH = 100;
const RESTORE_LEASE_MS = 60_000;

export class RecordRestore {
  readonly #access: RecordAccess;
  readonly #commits: RecordCommits;

  constructor(access: RecordAccess, commits: RecordCommits) {
    this.#access = access;
    this.#commits = commits;
  }

  async restoreObject(id: string, target: { ov: number } | { at: string | Date }, options: { actor?: Actor; reason?: string; expectedOv?: number }): Promise<RestoreResult> {
    this.#access.requireVersioned('restoreObject');
    assertName('id', id);
    checkOptions(options, ['actor', 'reason', 'expectedOv'], 'options', 'restoreObject');
    const by = who(options.actor, options.reason);
    if (options.expectedOv !== undefined) checkOv(options.expectedOv, 'expectedOv');
    const { index, ns, route } = this.#access;
    const row = await this.#findTarget(id, target);
    if (!row) throw new NotFoundError(`Record ${id} has no version at ${describeTarget(target)} in ${route.label}`);
    const targetDoc = await this.#access.readVersionDoc(row);
    return this.#commits.uploading((session) =>
      retrying(options.expectedOv, async () => {
        const head = await index.getHead(ns, id);
        if (!head) throw new NotFoundError(`Record ${id} does not exist in ${route.label}`);
        if (options.expectedOv !== undefined && head.ov !== options.expectedOv) throw new VersionConflictError(id, options.expectedOv, head.ov);
        const at = nextVersionTime(head.updatedAt);
        const current = await this.#access.headDoc(head);
        const next = this.#restoredDoc(current, head, targetDoc, at, by);
        const write = this.#commits.write(id, head, next);
        await this.#protectRestored(write, next.data, current.data, row.ov, session);
        const cv = await this.#commits.commitOne(write, 'UPDATE', targetDoc.data, head.ov, targetDoc.deleted ? 'deleted' : 'restored', session);
        return { id, ov: next.ov, cv, updatedAt: at, restoredFromOv: row.ov };
      }),
    );
  }

  async restoreCollection(target: { cv: number } | { at: string | Date }, options: { dryRun?: boolean; actor?: Actor; reason?: string }): Promise<CollectionRestoreReport> {
    this.#access.requireVersioned('restoreCollection');
    checkOptions(options, ['dryRun', 'actor', 'reason'], 'options', 'restoreCollection');
    const by = who(options.actor, options.reason);
    const point = parsePoint(target);
    const dryRun = options.dryRun === true;
    const report: CollectionRestoreReport = { dryRun, target: point, restored: 0, revived: 0, deleted: 0, unchanged: 0, changes: [] };
    const { index, ns, route } = this.#access;
    const owner = randomUUID();
    if (!dryRun && !(await index.acquireLock(ns, 'restore-collection', owner, RESTORE_LEASE_MS))) {
      throw new ConflictError(`Another collection restore of ${route.label} is running`);
    }
    try {
      let afterId: string | undefined;
      for (;;) {
        const ids = await index.listHeadIds(ns, { limit: RESTORE_BATCH, ...(afterId ? { afterId } : {}) });
        if (ids.length === 0) break;
        afterId = ids[ids.length - 1];
        if (!dryRun && !(await index.acquireLock(ns, 'restore-collection', owner, RESTORE_LEASE_MS))) {
          // The lease expired and another restore took over: stop rather than interleave with it.
          throw new ConflictError(`The collection restore of ${route.label} lost its lock to another restore`);
        }
        await this.#commits.uploading((session) => retrying(undefined, () => this.#restoreBatch(ids, point, by, dryRun, report, session)));
      }
    } finally {
      if (!dryRun) await index.releaseLock(ns, 'restore-collection', owner);
    }
    return report;
  }

  async #restoreBatch(
    ids: readonly string[],
    point: { cv: number } | { at: string },
    by: Who,
    dryRun: boolean,
    report: CollectionRestoreReport,
    session: UploadSession,
  ): Promise<void> {
    const { index, ns } = this.#access;
    const writes: RecordWrite[] = [];
    const planned: CollectionRestoreReport['changes'] = [];
    let unchanged = 0;
    const deltas: Record<string, number> = {};
    for (const id of ids) {
      const head = await index.getHead(ns, id);
      if (!head) continue;
      const row = await index.findVersionAt(ns, id, point);
      const current = await this.#access.headDoc(head);
      const at = nextVersionTime(head.updatedAt);
      if (!row) {
        if (head.deleted) unchanged++;
        else {
          planned.push({ id, action: 'delete', fromOv: head.ov, targetOv: null });
          writes.push(this.#commits.write(id, head, this.#commits.nextDoc(current, head, { op: 'restore', at, ...by, deleted: true, data: current.data })));
          this.#commits.countInto(deltas, 'UPDATE', current.data, 'deleted');
        }
        continue;
      }
      const targetDoc = await this.#access.readVersionDoc(row);
      if (targetDoc.deleted === head.deleted && canonicalJson(targetDoc.data) === canonicalJson(current.data)) {
        unchanged++;
        continue;
      }
      const action = head.deleted && !targetDoc.deleted ? 'revive' : targetDoc.deleted ? 'delete' : 'restore';
      planned.push({ id, action, fromOv: head.ov, targetOv: row.ov });
      const next = this.#restoredDoc(current, head, targetDoc, at, by);
      const write = this.#commits.write(id, head, next);
      if (!dryRun) await this.#protectRestored(write, next.data, current.data, row.ov, session);
      writes.push(write);
      this.#commits.countInto(deltas, 'UPDATE', targetDoc.data, targetDoc.deleted ? 'deleted' : 'restored');
    }
    if (!dryRun && writes.length > 0) {
      const result = await this.#commits.commit(writes, deltas, session);
      if (!result.ok) throw this.#commits.refused(result);
      for (const w of writes) if (w.head) await untilClockReaches(w.head.updatedAt);
    }
    report.unchanged += unchanged;
    for (const change of planned) {
      report.changes.push(change);
      if (change.action === 'revive') report.revived++;
      else if (change.action === 'delete') report.deleted++;
      else report.restored++;
    }
  }

  async #findTarget(id: string, target: unknown): Promise<VersionRow | null> {
    if (isPlainObject(target)) {
      checkOptions(target, ['ov', 'at'], 'target', 'restoreObject');
      if (target.ov !== undefined && target.at !== undefined) throw new ValidationError('The restore target must be { ov } or { at }, not both', { path: 'target' });
    }
    if (isPlainObject(target) && 'ov' in target) {
      checkOv(target.ov, 'ov');
      return this.#access.index.getVersion(this.#access.ns, id, target.ov);
    }
    if (isPlainObject(target) && 'at' in target) return this.#access.index.findVersionAt(this.#access.ns, id, { at: parseAsOf(target.at) });
    throw new ValidationError('The restore target must be { ov } or { at }');
  }

  #restoredDoc(current: RecordDocument, head: HeadRow, target: RecordDocument, at: string, by: Who): RecordDocument {
    const doc = this.#commits.nextDoc(current, head, { op: 'restore', at, ...by, deleted: target.deleted, data: target.data });
    // The restored state includes its lineage and provenance as they were then.
    if (target.system) doc.system = target.system;
    else delete doc.system;
    return doc;
  }

  /**
   * A restore brings back references of an older version: the objects the current head does not
   * reference get upload intents (so no cleanup removes them before the commit), and must still
   * be there, in the content bucket or queued in the index.
   */
  async #protectRestored(write: RecordWrite, next: Data, current: Data, fromOv: number, session: UploadSession): Promise<void> {
    const { blob, index } = this.#access.ctx;
    const objects = this.#access.content.newReferences(write.id, next, current);
    if (objects.length === 0) return;
    write.uploads = await session.record(objects.map((o) => ({ id: write.id, ...o })));
    for (const o of objects) {
      if ((await blob.head(o.bucket, o.key)) !== null || (await index.getPendingBlob(this.#access.ns, o.bucket, o.key)) !== null) continue;
      throw new StorageError(blob.name, 'head', undefined, `Record ${write.id} cannot be restored to version ${fromOv}: its content ${o.key} is no longer in the content bucket`);
    }
  }
}

function describeTarget(target: { ov: number } | { at: string | Date }): string {
  return 'ov' in target ? `ov ${target.ov}` : `time ${String(target.at instanceof Date ? target.at.toISOString() : target.at)}`;
}
