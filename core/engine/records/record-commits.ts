/**
 * How a change to a record becomes one atomic index-store commit, for writes and restores alike:
 * the next version document (lineage carried over, provenance accumulated), the index-store write
 * (head, hashed version entry, unique claims), the commit with its counters, the hand-over to the
 * blob sync, the upload session that cleans up what no commit took, and retries after lost races.
 */
import type { CommitResult, CounterDelta, HeadRow, NewHead, RecordWrite } from '../../contracts/index-store.js';
import { ConflictError, StorageError, VersionConflictError, type XronoxError } from '../../errors.js';
import { untilClockReaches } from '../../foundation/clock.js';
import { matches } from '../../foundation/filter.js';
import { UploadSession } from '../content-uploads.js';
import { windowKeysAt } from '../counter-windows.js';
import { type Data, extractMeta, flattenScalars, type RecordDocument, serialiseDocument } from '../documents.js';
import { versionSealer } from '../hash-chain.js';
import { type SystemInfo, systemMeta } from '../lineage.js';
import type { RecordAccess } from './record-access.js';

const UNSEALED = 'unsealed';

/** How often a write tries again after losing a race before it gives up. */
export const MAX_RETRIES = 100;

type Event = 'CREATE' | 'UPDATE' | 'DELETE';
/** Which counter a change adds to when it is not the event's own (`created`, `updated`, `deleted`). */
type Counter = 'restored' | 'deleted';

export class RecordCommits {
  readonly #access: RecordAccess;

  constructor(access: RecordAccess) {
    this.#access = access;
  }

  /** The next version document of a record: lineage carried over, provenance accumulated. */
  nextDoc(
    previous: RecordDocument,
    head: HeadRow,
    change: Pick<RecordDocument, 'op' | 'at' | 'actor' | 'reason' | 'deleted' | 'data'>,
    functionId?: string,
  ): RecordDocument {
    const doc: RecordDocument = { id: head.id, ov: head.ov + 1, ...change, createdAt: previous.createdAt, data: change.data };
    const system: SystemInfo = { ...previous.system };
    if (functionId) {
      doc.functionId = functionId;
      const ids = system.functionIds ?? [];
      system.functionIds = ids.includes(functionId) ? ids : [...ids, functionId];
    }
    if (Object.keys(system).length > 0) doc.system = system;
    return doc;
  }

  /** The index-store write that makes `doc` the record's head (and, when versioned, its newest version). */
  write(id: string, head: HeadRow | null, doc: RecordDocument): RecordWrite {
    const route = this.#access.route;
    const body = serialiseDocument(doc);
    const versioned = route.policy.versioned;
    // The hash covers the cv, which the commit assigns: `seal` computes it there. The placeholder
    // is never stored (every driver commits through the plan, which applies the seal).
    const previousHash = head?.hash ?? null;
    const hash = versioned ? UNSEALED : null;
    const newHead: NewHead = {
      ov: doc.ov,
      deleted: doc.deleted,
      createdAt: doc.createdAt,
      updatedAt: doc.at,
      deletedAt: doc.deleted ? (head?.deleted ? head.deletedAt : doc.at) : null,
      meta: { ...extractMeta(doc.data, route.collectionMap), ...systemMeta(doc.system, doc.createdAt, doc.at) },
      body,
      hash,
    };
    const write: RecordWrite = { id, expectedOv: head ? head.ov : null, head: newHead };
    if (versioned) write.seal = versionSealer(previousHash, doc);
    // A deleted record released its unique claims; coming back to life it must take them again,
    // and fails (ConflictError) when another live record holds them now.
    if (head?.deleted && !doc.deleted && doc.system?.uniqueKeys) {
      write.claims = [{ key: this.#access.uniqueKey(doc.data, doc.system.uniqueKeys).claimKey }];
    }
    if (versioned && hash !== null) {
      write.version = { op: doc.op, at: doc.at, actor: doc.actor, reason: doc.reason, deleted: doc.deleted, body, hash };
    }
    return write;
  }

  /** Commits one write and its counters; returns its cv once the clock has passed its time. */
  async commitOne(write: RecordWrite, event: Event, data: Data, expectedOv: number | null, counter?: Counter, session?: UploadSession): Promise<number> {
    const deltas: Record<string, number> = {};
    this.countInto(deltas, event, data, counter);
    const result = await this.commit([write], deltas, session);
    if (!result.ok) throw result.reason === 'version' ? new VersionConflictError(write.id, expectedOv, result.actualOv) : this.refused(result);
    if (write.head) await untilClockReaches(write.head.updatedAt);
    return result.cvs[0]!;
  }

  /**
   * Commits writes and their counters in one index-store commit. Once committed, the session
   * keeps their uploads and the blob sync is told; when an upload intent was gone, the session is
   * told first (see `UploadSession.lost`). A refused commit is returned, for `refused` to name.
   */
  async commit(writes: readonly RecordWrite[], deltas: Record<string, number>, session?: UploadSession): Promise<CommitResult> {
    const { index, ns } = this.#access;
    const result = await index.commit(ns, { writes, counters: [this.#counterDelta(deltas)] });
    if (!result.ok) {
      if (result.reason === 'upload') await session?.lost(writes.flatMap((w) => w.uploads ?? []));
      return result;
    }
    for (const w of writes) session?.committed(w.uploads ?? []);
    for (const w of writes) await this.#access.ctx.sync.schedule(this.#access.syncTarget, ns, w.id);
    return result;
  }

  /** The error for a refused commit. */
  refused(result: Extract<CommitResult, { ok: false }>): XronoxError {
    switch (result.reason) {
      case 'version':
        return new VersionConflictError(result.id, result.expectedOv, result.actualOv);
      case 'claim':
        return new ConflictError(`Record ${result.id} cannot take a unique key held by record ${result.heldBy}`);
      case 'upload':
        return new StorageError(
          this.#access.index.name,
          'commit',
          undefined,
          `The write of record ${result.id} took longer than limits.maxUploadSeconds after starting its content upload, and its upload of ${result.key} was taken for cleanup; nothing was written, try again`,
        );
    }
  }

  /** Adds a change to the counters: its event's (or `counter`) and every counter rule it matches. */
  countInto(deltas: Record<string, number>, event: Event, data: Data, counter?: Counter): void {
    const base = counter ?? (event === 'CREATE' ? 'created' : event === 'UPDATE' ? 'updated' : 'deleted');
    deltas[base] = (deltas[base] ?? 0) + 1;
    const map = this.#access.route.collectionMap;
    for (const rule of this.#access.ctx.counterRules) {
      if (!rule.on.has(event)) continue;
      const subject = rule.scope === 'meta' ? extractMeta(data, map) : flattenScalars(data);
      if (matches(rule.filter, subject)) deltas[rule.name] = (deltas[rule.name] ?? 0) + 1;
    }
  }

  #counterDelta(deltas: Record<string, number>): CounterDelta {
    const granularities = this.#access.ctx.counterWindows ?? [];
    const delta: CounterDelta = { dbName: this.#access.route.analyticsDbName, collection: this.#access.route.collection, deltas };
    return granularities.length > 0 ? { ...delta, windows: windowKeysAt(granularities, Date.now()) } : delta;
  }

  /** Runs a write call with an upload session; what no commit took is cleaned up when it ends. */
  async uploading<R>(run: (session: UploadSession) => Promise<R>): Promise<R> {
    const session = new UploadSession(this.#access.syncTarget, this.#access.ns, this.#access.ctx.uploadStaleMs);
    try {
      return await run(session);
    } finally {
      await session.finish();
    }
  }
}

/** Runs `attempt`, retrying on version conflicts when the caller gave no `expectedOv`. */
export async function retrying<R>(expectedOv: number | undefined, attempt: () => Promise<R>): Promise<R> {
  for (let i = 0; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof VersionConflictError) || expectedOv !== undefined || i >= MAX_RETRIES) throw err;
      await pause(i);
    }
  }
}

/** A short random back-off after a lost race, longer with each attempt (at most 50 ms). */
export function pause(attempt: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.random() * Math.min(2 ** attempt, 50)));
}
