import { randomUUID } from 'node:crypto';
import { type AnyBulkWriteOperation, type ClientSession, type Collection, type Document, type Filter, type FindCursor, type MongoClient, type MongoClientOptions, MongoServerError, ObjectId, type Sort } from 'mongodb';
import type {
  ActorQuery,
  AsOfQuery,
  CommitBatch,
  CommitResult,
  CounterDelta,
  CounterWindow,
  CounterWindowBounds,
  CounterWindowQuery,
  CollectionReplacement,
  DeadLetter,
  HeadQuery,
  HeadRow,
  ImportBatch,
  IndexStore,
  Namespace,
  PendingBlob,
  PendingSync,
  RecordWrite,
  ReplaceCollectionsOptions,
  StaleUpload,
  UploadIntent,
  UploadRef,
  UnarchivedRecord,
  VersionPoint,
  VersionRow,
  VersionSummary,
  HistoryRow,
} from '../../contracts/index-store.js';
import { acquireMongoClient } from './mongodb-client-pool.js';
import {
  type HeadDoc,
  headRowOf,
  pendingBlobDoc,
  pendingBlobOf,
  type PendingBlobDoc,
  type PendingWrite,
  toHeadDoc,
  toVersionDoc,
  type VersionDoc,
  versionDocOfRow,
  versionRowOf,
  historyRowOf,
  HISTORY_PROJECTION,
} from './mongodb-documents.js';
import { type IndexedFields, toMongoFilter } from './mongodb-filter.js';
import { metaPath } from './mongodb-meta.js';
import { collectionName, type CollectionRole, CV_DOC_ID, type IndexSettings, indexSpecs, pendingBlobId, queueIndexSpecs, recordKey, TOTALS_DOC_ID, versionId, WINDOW_DOC_PREFIX } from './mongodb-layout.js';
import {
  acquireLockOp,
  coll,
  type CollRef,
  counterOps,
  windowDocId,
  windowIdRange,
  headCasFilter,
  type MongoOp,
  nextCvOp,
  type ProtocolSettings,
  queue,
  releaseLockOp,
  rollForward,
  sideEffects,
} from './mongodb-protocol.js';
import {
  claimUploadCleanup,
  emptyDocFilter,
  listStaleUploads,
  recordUploads,
  releaseUploadCleanup,
  takeIntentPlan,
  touchIntentPlan,
  type UploadDoc,
  type UploadsCollection,
} from './mongodb-uploads.js';

export interface MongoIndexStoreOptions {
  uri: string;
  /**
   * `auto` (default) uses multi-document transactions when the server is a replica set or a
   * sharded cluster and the standalone protocol otherwise; `required` refuses a standalone
   * server; `off` always uses the standalone protocol.
   */
  transactions?: 'auto' | 'required' | 'off';
  /** The indexes of a collection (from `collectionMaps[c].indexedProps`). */
  indexSettings?: (collection: string) => IndexSettings;
  protocol?: Partial<ProtocolSettings>;
  /** Extra driver options (timeouts, TLS); durability defaults are in `mongodb-client-pool.ts`. */
  clientOptions?: MongoClientOptions;
}

/** Thrown inside a transaction to roll it back when an optimistic check fails. */
class CheckFailed extends Error {
  constructor(readonly result: CommitResult & { ok: false }) {
    super('check failed');
  }
}

const DUPLICATE_KEY = 11000;
/** How often a standalone write re-reads a head that another writer left mid-roll-forward. */
const MAX_ROLL_FORWARD_ROUNDS = 8;

interface ClaimDoc {
  _id: string;
  id: string;
  cv: number;
}
/** A claim a standalone write took, and the claim document it replaced (`null`: it created it). */
interface TakenClaim {
  key: string;
  before: ClaimDoc | null;
}
interface LockDoc {
  _id: string;
  owner: string;
  expiresAt: Date;
}
interface OutboxDoc {
  _id: string;
  coll: string;
  id: string;
  seq: number;
  queuedAt: Date;
  order: ObjectId;
}
interface DeadLetterDoc {
  _id: string;
  coll: string;
  id: string;
  reason: string;
  failedAt: string;
}
interface CounterDoc {
  _id: string;
  seq?: number;
  counts?: Record<string, number>;
}

type Mode = 'transactions' | 'standalone';
/** A failed commit before its batch position is known. */
type Refusal =
  | { ok: false; reason: 'version'; id: string; expectedOv: number | null; actualOv: number | null }
  | { ok: false; reason: 'claim'; id: string; key: string; heldBy: string }
  | { ok: false; reason: 'upload'; id: string; key: string };

/**
 * The production index store on the official MongoDB driver, laid out as the product documents
 * describe (`mongodb-layout.ts`). Writes follow `mongodb-protocol.ts`: one transaction per batch
 * on a replica set, an ordered compare-and-set protocol on a standalone server.
 */
export class MongoIndexStore implements IndexStore {
  readonly name = 'mongodb';
  readonly #client: MongoClient;
  readonly #release: () => Promise<void>;
  readonly #connect: () => Promise<void>;
  readonly #options: MongoIndexStoreOptions;
  readonly #protocol: ProtocolSettings;
  readonly #ready = new Map<string, Promise<void>>();
  #mode: Promise<Mode> | null = null;
  #detected: Mode | null = null;

  constructor(options: MongoIndexStoreOptions) {
    this.#options = options;
    this.#protocol = { deadLetterCollection: 'xronox_dead_letters', ...options.protocol };
    const { client, connect, release } = acquireMongoClient(options.uri, options.clientOptions);
    this.#client = client;
    this.#connect = connect;
    this.#release = release;
  }

  get capabilities(): { atomicBatches: boolean; multiProcess: boolean; atomicReplace: boolean } {
    // Until the first operation has asked the server, only `required` is known to be atomic.
    const mode = this.#detected ?? (this.#options.transactions === 'required' ? 'transactions' : 'standalone');
    return { atomicBatches: mode === 'transactions', multiProcess: true, atomicReplace: false };
  }

  // ---- writes --------------------------------------------------------------------------

  async commit(ns: Namespace, batch: CommitBatch): Promise<CommitResult> {
    await this.#connect();
    await this.#ensure(ns, 'head', 'counter', 'claims');
    if (batch.writes.some((w) => w.version)) await this.#ensure(ns, 'ver');
    await this.#ensureQueues(ns.dbName);
    for (const c of batch.counters ?? []) await this.#ensure({ dbName: c.dbName, collection: c.collection }, 'counter');
    if (batch.writes.length === 0) {
      // No write to carry the counters: they are added on their own (plain increments, as SQLite does).
      await this.#run(counterOps(batch.counters ?? [], null));
      return { ok: true, cvs: [] };
    }
    return (await this.#modeOf()) === 'transactions' ? this.#commitInTransaction(ns, batch) : this.#commitStandalone(ns, batch);
  }

  async #commitInTransaction(ns: Namespace, batch: CommitBatch): Promise<CommitResult> {
    const session = this.#client.startSession();
    try {
      let cvs: number[] = [];
      await session.withTransaction(
        async () => {
          cvs = []; // the callback re-runs from scratch when the transaction is retried
          for (const [index, write] of batch.writes.entries()) {
            const head = await this.#heads(ns).findOne({ _id: write.id }, { session });
            const actualOv = head?.ov ?? null;
            if (actualOv !== write.expectedOv) throw new CheckFailed({ ok: false, reason: 'version', index, id: write.id, expectedOv: write.expectedOv, actualOv });
            for (const ref of write.uploads ?? []) {
              const take = takeIntentPlan(ns.collection, ref);
              if ((await this.#uploads(ns.dbName).updateOne(take.filter, take.update, { session })).matchedCount !== 1) {
                throw new CheckFailed({ ok: false, reason: 'upload', index, id: write.id, key: ref.key });
              }
              await this.#uploads(ns.dbName).deleteOne(emptyDocFilter(ns.collection, ref), { session });
            }
            const cv = await this.#nextCv(ns, session);
            const refused = await this.#takeClaimsInTransaction(ns, write, cv, session);
            if (refused) throw new CheckFailed({ ok: false, reason: 'claim', index, id: write.id, ...refused });
            if (write.head) await this.#heads(ns).replaceOne({ _id: write.id }, toHeadDoc(write.id, write.head, cv), { upsert: true, session });
            else await this.#heads(ns).deleteOne({ _id: write.id }, { session });
            const last = index === batch.writes.length - 1;
            await this.#run(sideEffects(ns, write.id, this.#pendingOf(ns, write, cv, last ? batch.counters : undefined, false), this.#protocol, { idempotentCounters: false }), session);
            cvs.push(cv);
          }
        },
        { readConcern: { level: 'majority' }, writeConcern: { w: 'majority', journal: true }, readPreference: 'primary' },
      );
      return { ok: true, cvs };
    } catch (err) {
      if (err instanceof CheckFailed) return err.result;
      throw err;
    } finally {
      await session.endSession();
    }
  }

  /** The standalone protocol, record by record; see `mongodb-protocol.ts` for the steps and why. */
  async #commitStandalone(ns: Namespace, batch: CommitBatch): Promise<CommitResult> {
    const cvs: number[] = [];
    for (const [index, write] of batch.writes.entries()) {
      const last = index === batch.writes.length - 1;
      const outcome = await this.#commitOneStandalone(ns, write, last ? batch.counters : undefined);
      if ('cv' in outcome) cvs.push(outcome.cv);
      else return { ...outcome, index };
    }
    return { ok: true, cvs };
  }

  async #commitOneStandalone(
    ns: Namespace,
    write: RecordWrite,
    counters: readonly CounterDelta[] | undefined,
  ): Promise<{ cv: number } | Refusal> {
    for (let round = 0; round < MAX_ROLL_FORWARD_ROUNDS; round++) {
      // Step 1: a head left mid-write by another process is finished first.
      const head = await this.#heads(ns).findOne({ _id: write.id });
      if (head?.pending) {
        await this.#rollForward(ns, head as HeadDoc & { pending: PendingWrite });
        continue;
      }
      const actualOv = head?.ov ?? null;
      if (actualOv !== write.expectedOv) return { ok: false, reason: 'version', id: write.id, expectedOv: write.expectedOv, actualOv };
      // Step 1, last part: the upload intents, renewed so that no cleanup takes them before the CAS.
      for (const ref of write.uploads ?? []) {
        const touch = touchIntentPlan(ns.collection, ref);
        if ((await this.#uploads(ns.dbName).updateOne(touch.filter, touch.update)).matchedCount !== 1) return { ok: false, reason: 'upload', id: write.id, key: ref.key };
      }
      // Steps 2 and 3.
      const cv = await this.#nextCv(ns);
      const claims = await this.#takeClaims(ns, write, cv);
      if ('refused' in claims) return { ok: false, reason: 'claim', id: write.id, ...claims.refused };
      // Step 4, the commit point.
      const pending = this.#pendingOf(ns, write, cv, counters, true);
      if (await this.#casHead(ns, write, cv, pending)) {
        // Step 5. Should it fail, the caller sees the error although the write is committed (as with
        // any commit whose acknowledgement is lost); whoever touches the record next, or repair(), finishes it.
        // (`_id` is set explicitly: removing a record that does not exist has no head to spread.)
        await this.#rollForward(ns, { ...(write.head ? toHeadDoc(write.id, write.head, cv) : head!), _id: write.id, pending });
        return { cv };
      }
      await this.#undoClaims(ns, write.id, cv, claims.taken);
    }
    const head = await this.#heads(ns).findOne({ _id: write.id });
    return { ok: false, reason: 'version', id: write.id, expectedOv: write.expectedOv, actualOv: head?.ov ?? null };
  }

  async #casHead(ns: Namespace, write: RecordWrite, cv: number, pending: PendingWrite): Promise<boolean> {
    if (write.expectedOv === null) {
      if (!write.head) return true; // removing a record that does not exist: nothing to do
      try {
        await this.#heads(ns).insertOne({ ...toHeadDoc(write.id, write.head, cv), pending });
        return true;
      } catch (err) {
        if (isDuplicateKey(err)) return false;
        throw err;
      }
    }
    // A hard delete changes nothing but `pending`: readers treat a head with a pending purge as gone.
    const fields = write.head ? withoutId(toHeadDoc(write.id, write.head, cv)) : {};
    const result = await this.#heads(ns).updateOne(headCasFilter(write.id, write.expectedOv), { $set: { ...fields, pending } });
    return result.matchedCount === 1;
  }

  #pendingOf(ns: Namespace, write: RecordWrite, cv: number, counters: readonly CounterDelta[] | undefined, standalone: boolean): PendingWrite {
    // In the standalone protocol, removing a record that does not exist (expectedOv null, head
    // null) purges nothing: nothing guards that "absent" any more by the time the roll-forward
    // runs, and a purge bounded by this cv would reach a record created concurrently with a lower cv.
    const removes = write.head === null && (write.expectedOv !== null || !standalone);
    return {
      opId: randomUUID(),
      queueOrder: new ObjectId(),
      ov: write.head?.ov ?? write.expectedOv ?? 0,
      cv,
      since: new Date(),
      purge: removes,
      releaseClaims: removes || write.head?.deleted === true,
      version: toVersionDoc(write, cv),
      blobs: (write.blobs ?? []).map((b) => pendingBlobDoc(ns.collection, write.id, cv, b, pendingBlobId(ns.collection, b.bucket, b.key))),
      // In a transaction the commit removed them already (checked); standalone, the roll-forward does.
      uploads: standalone ? (write.uploads ?? []).map((u) => ({ bucket: u.bucket, key: u.key, token: u.token })) : [],
      counters: [...(counters ?? [])],
      countersApplied: false,
    };
  }

  async #nextCv(ns: Namespace, session?: ClientSession): Promise<number> {
    const op = nextCvOp(ns);
    const doc = await this.#collection<CounterDoc>(op.coll).findOneAndUpdate(op.filter, op.update, { upsert: true, returnDocument: 'after', ...(session ? { session } : {}) });
    return (doc?.seq ?? 1) - 1;
  }

  /**
   * Inside a transaction: reads each claim, then takes it. A duplicate-key error cannot be used as
   * the check here: the server aborts the whole transaction on it, the next operation fails with
   * NoSuchTransaction (labelled TransientTransactionError), and `withTransaction` would re-run the
   * callback into the same conflict until its 120 s limit. The read is safe: a concurrent change
   * to the claim makes this transaction's write conflict, and the retry reads it.
   */
  async #takeClaimsInTransaction(ns: Namespace, write: RecordWrite, cv: number, session: ClientSession): Promise<{ key: string; heldBy: string } | null> {
    const claims = this.#claims(ns);
    for (const claim of write.claims ?? []) {
      const holder = await claims.findOne({ _id: claim.key }, { session });
      if (holder && holder.id !== write.id && holder.id !== claim.replacing) return { key: claim.key, heldBy: holder.id };
      await claims.updateOne({ _id: claim.key }, { $set: { id: write.id, cv } }, { upsert: true, session });
    }
    return null;
  }

  /**
   * Standalone: takes each claim for the record, stamped with the write's cv, remembering what it
   * replaced. On a claim held by another record, it puts back what it took and names the holder.
   */
  async #takeClaims(ns: Namespace, write: RecordWrite, cv: number): Promise<{ refused: { key: string; heldBy: string } } | { taken: TakenClaim[] }> {
    const claims = this.#claims(ns);
    const taken: TakenClaim[] = [];
    for (const claim of write.claims ?? []) {
      const holders = claim.replacing === undefined ? [write.id] : [write.id, claim.replacing];
      try {
        const before = await claims.findOneAndUpdate({ _id: claim.key, id: { $in: holders } }, { $set: { id: write.id, cv } }, { upsert: true, returnDocument: 'before' });
        taken.push({ key: claim.key, before });
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        const holder = await claims.findOne({ _id: claim.key });
        await this.#undoClaims(ns, write.id, cv, taken);
        return { refused: { key: claim.key, heldBy: holder?.id ?? 'unknown' } };
      }
    }
    return { taken };
  }

  /**
   * Puts back claims a standalone write took but did not commit: removes the ones it created and
   * restores the holder and stamp of the ones it took over (its own, or a `replacing` holder's), so
   * a failed write leaves the claims as they were. Each step only touches a claim still stamped
   * with this write's cv.
   */
  async #undoClaims(ns: Namespace, id: string, cv: number, taken: readonly TakenClaim[]): Promise<void> {
    const claims = this.#claims(ns);
    for (const { key, before } of [...taken].reverse()) {
      if (before === null) await claims.deleteOne({ _id: key, id, cv });
      else await claims.updateOne({ _id: key, id, cv }, { $set: { id: before.id, cv: before.cv } });
    }
  }

  async #rollForward(ns: Namespace, head: HeadDoc & { pending: PendingWrite }): Promise<void> {
    await this.#run(rollForward(ns, head, this.#protocol));
  }

  /** Finishes every write left mid-roll-forward in a namespace (standalone only; uses a partial index). */
  async #settle(ns: Namespace): Promise<void> {
    if ((await this.#modeOf()) === 'transactions') return;
    // The predicate on `pending.since` lets the planner use the partial index `pending_writes`
    // (a filter on `pending` alone names no field of it, so every call would scan the heads).
    const stuck = await this.#heads(ns).find({ pending: { $exists: true }, 'pending.since': { $exists: true } }).sort({ 'pending.since': 1 }).toArray();
    for (const head of stuck) await this.#rollForward(ns, head as HeadDoc & { pending: PendingWrite });
  }

  /** Executes protocol operations in order (inside `session` when given). */
  async #run(ops: readonly MongoOp[], session?: ClientSession): Promise<void> {
    const opts = session ? { session } : {};
    for (const op of ops) {
      switch (op.kind) {
        case 'updateOne':
          try {
            await this.#collection(op.coll).updateOne(op.filter, op.update, { ...opts, ...(op.upsert ? { upsert: true } : {}) });
          } catch (err) {
            if (!(op.duplicateMeansDone && isDuplicateKey(err))) throw err;
          }
          break;
        case 'deleteOne':
          await this.#collection(op.coll).deleteOne(op.filter, opts);
          break;
        case 'deleteMany':
          await this.#collection(op.coll).deleteMany(op.filter, opts);
          break;
        case 'insertVersion': {
          const { _id, ...entry } = op.entry;
          const versions = this.#collection<VersionDoc>(op.coll);
          try {
            await versions.updateOne({ _id, hash: entry.hash }, { $setOnInsert: entry }, { ...opts, upsert: true });
          } catch (err) {
            if (session || !isDuplicateKey(err)) throw err;
            const head = await this.#collection<HeadDoc>(op.head).findOne({ _id: entry.id });
            // `hash: $ne`: a concurrent roll-forward of this same write may have inserted the entry
            // (and a sync archived it) since; only a phantom is replaced.
            if (head?.pending?.opId === op.opId) await versions.replaceOne({ _id, hash: { $ne: entry.hash } }, entry);
          }
          break;
        }
      }
    }
  }

  // ---- reads ---------------------------------------------------------------------------

  async getHead(ns: Namespace, id: string): Promise<HeadRow | null> {
    await this.#connect();
    const doc = await this.#heads(ns).findOne({ _id: id });
    return doc && !doc.pending?.purge ? headRowOf(doc) : null;
  }

  async getVersion(ns: Namespace, id: string, ov: number): Promise<VersionRow | null> {
    await this.#connect();
    const doc = await this.#versions(ns).findOne({ _id: versionId(id, ov) });
    if (doc) return versionRowOf(doc);
    const pending = await this.#pendingVersion(ns, id);
    return pending?.ov === ov ? versionRowOf(pending) : null;
  }

  async findVersionAt(ns: Namespace, id: string, point: VersionPoint): Promise<VersionRow | null> {
    await this.#connect();
    const filter: Filter<VersionDoc> = 'at' in point ? { id, at: { $lte: point.at } } : { id, cv: { $lte: point.cv } };
    const sort: Sort = 'at' in point ? { at: -1, ov: -1 } : { cv: -1 };
    const found = await this.#versions(ns).findOne(filter, { sort });
    const pending = await this.#pendingVersion(ns, id);
    const pendingQualifies = pending && ('at' in point ? pending.at <= point.at : pending.cv <= point.cv);
    if (pendingQualifies && (!found || pending.ov > found.ov)) return versionRowOf(pending);
    return found ? versionRowOf(found) : null;
  }

  async listVersions(ns: Namespace, id: string, options: { beforeOv?: number; limit: number }): Promise<VersionRow[]> {
    const docs = await this.#versionPage(ns, id, options, this.#versions(ns).find({ id, ov: { $lt: options.beforeOv ?? Number.MAX_SAFE_INTEGER } }));
    return docs.map(versionRowOf);
  }

  async listHistory(ns: Namespace, id: string, options: { beforeOv?: number; limit: number }): Promise<HistoryRow[]> {
    const cursor = this.#versions(ns)
      .find({ id, ov: { $lt: options.beforeOv ?? Number.MAX_SAFE_INTEGER } })
      .project<Pick<VersionDoc, keyof HistoryRow>>(HISTORY_PROJECTION);
    return (await this.#versionPage(ns, id, options, cursor)).map(historyRowOf);
  }

  /** A page of `cursor`'s versions, newest first, with a version still pending its commit (no-transaction mode). */
  async #versionPage<T extends Pick<VersionDoc, 'ov'>>(
    ns: Namespace,
    id: string,
    options: { beforeOv?: number; limit: number },
    cursor: FindCursor<T>,
  ): Promise<Array<T | VersionDoc>> {
    await this.#connect();
    const before = options.beforeOv ?? Number.MAX_SAFE_INTEGER;
    const docs: Array<T | VersionDoc> = await cursor.sort({ ov: -1 }).limit(options.limit).toArray();
    const pending = await this.#pendingVersion(ns, id);
    if (pending && pending.ov < before && !docs.some((d) => d.ov === pending.ov)) {
      docs.push(pending);
      docs.sort((a, b) => b.ov - a.ov);
    }
    return docs.slice(0, options.limit);
  }

  async listUnarchived(ns: Namespace, id: string, page: { afterOv?: number; limit?: number } = {}): Promise<VersionRow[]> {
    // The driver reads a limit of 0 as "no limit".
    if (page.limit !== undefined && page.limit <= 0) return [];
    await this.#connect();
    const after = page.afterOv ?? -1;
    const cursor = this.#versions(ns).find({ id, archived: false, ov: { $gt: after } }).sort({ ov: 1 });
    const docs = await (page.limit === undefined ? cursor : cursor.limit(page.limit)).toArray();
    const pending = await this.#pendingVersion(ns, id);
    if (pending && pending.ov > after && !docs.some((d) => d.ov === pending.ov)) {
      docs.push(pending);
      docs.sort((a, b) => a.ov - b.ov);
    }
    return docs.slice(0, page.limit ?? docs.length).map(versionRowOf);
  }

  async listHeads(ns: Namespace, query: HeadQuery): Promise<HeadRow[]> {
    await this.#connect();
    await this.#settle(ns);
    const and: Filter<HeadDoc>[] = [];
    if (!query.includeDeleted) and.push({ deleted: false });
    if (query.filter) and.push(toMongoFilter(query.filter, this.#indexedFields(ns)) as Filter<HeadDoc>);
    const field = query.sort.field === 'id' ? '_id' : query.sort.field;
    const cmp = query.sort.direction === 1 ? '$gt' : '$lt';
    if (query.after) {
      and.push(
        field === '_id'
          ? { _id: { [cmp]: query.after.id } }
          : { $or: [{ [field]: { [cmp]: query.after.value } }, { [field]: query.after.value, _id: { [cmp]: query.after.id } }] },
      );
    }
    const sort: Sort = field === '_id' ? { _id: query.sort.direction } : { [field]: query.sort.direction, _id: query.sort.direction };
    const docs = await this.#heads(ns).find(and.length ? { $and: and } : {}).sort(sort).limit(query.limit).toArray();
    return docs.map(headRowOf);
  }

  async queryAt(ns: Namespace, query: AsOfQuery): Promise<VersionRow[]> {
    await this.#connect();
    await this.#settle(ns);
    const match: Filter<VersionDoc>[] = [];
    if (!query.includeDeleted) match.push({ deleted: false });
    if (query.filter) match.push(toMongoFilter(query.filter, this.#indexedFields(ns)) as Filter<VersionDoc>);
    const range = query.afterId === undefined ? {} : { _id: { [query.direction === 1 ? '$gt' : '$lt']: query.afterId } };
    // Heads in id order drive one index seek per record into `{c}_ver` (by_time), as in SQLite.
    const pipeline: Document[] = [
      { $match: range },
      { $sort: { _id: query.direction } },
      {
        $lookup: {
          from: collectionName(ns.collection, 'ver'),
          localField: '_id',
          foreignField: 'id',
          pipeline: [{ $match: { at: { $lte: query.at } } }, { $sort: { at: -1, ov: -1 } }, { $limit: 1 }],
          as: 'asOf',
        },
      },
      { $unwind: '$asOf' },
      { $replaceRoot: { newRoot: '$asOf' } },
      ...(match.length ? [{ $match: { $and: match } }] : []),
      { $limit: query.limit },
    ];
    const docs = await this.#heads(ns).aggregate<VersionDoc>(pipeline).toArray();
    return docs.map(versionRowOf);
  }

  async listVersionsByActor(ns: Namespace, actorId: string, options: ActorQuery): Promise<VersionRow[]> {
    await this.#connect();
    await this.#settle(ns);
    const and: Filter<VersionDoc>[] = [{ actorId }];
    if (options.actorType !== undefined) and.push({ actorType: options.actorType });
    if (options.from !== undefined) and.push({ at: { $gte: options.from } });
    if (options.to !== undefined) and.push({ at: { $lte: options.to } });
    if (options.before) {
      const b = options.before;
      and.push({ $or: [{ at: { $lt: b.at } }, { at: b.at, id: { $lt: b.id } }, { at: b.at, id: b.id, ov: { $lt: b.ov } }] });
    }
    const docs = await this.#versions(ns).find({ $and: and }).sort({ at: -1, id: -1, ov: -1 }).limit(options.limit).toArray();
    return docs.map(versionRowOf);
  }

  async getClaim(ns: Namespace, key: string): Promise<string | null> {
    await this.#connect();
    return (await this.#claims(ns).findOne({ _id: key }))?.id ?? null;
  }

  async listHeadIds(ns: Namespace, options: { afterId?: string; limit: number }): Promise<string[]> {
    await this.#connect();
    await this.#settle(ns);
    const docs = await this.#heads(ns)
      .find(options.afterId === undefined ? {} : { _id: { $gt: options.afterId } }, { projection: { _id: 1 } })
      .sort({ _id: 1 })
      .limit(options.limit)
      .toArray();
    return docs.map((d) => d._id);
  }

  async getCounterWindows(dbName: string, collection: string, options: CounterWindowQuery): Promise<CounterWindow[]> {
    await this.#connect();
    const range = windowIdRange(options.granularity, { ...(options.from !== undefined ? { from: options.from } : {}), ...(options.to !== undefined ? { to: options.to } : {}) });
    const docs = await this.#counters({ dbName, collection }).find({ _id: range }).sort({ _id: 1 }).toArray();
    return docs.map((d) => ({ window: d._id.slice(WINDOW_DOC_PREFIX.length), counts: { ...(d.counts ?? {}) } }));
  }

  async pruneCounterWindows(dbName: string, collection: string, before: CounterWindowBounds): Promise<number> {
    await this.#connect();
    let removed = 0;
    for (const granularity of ['day', 'week', 'month'] as const) {
      const bound = before[granularity];
      if (bound === undefined) continue;
      const result = await this.#counters({ dbName, collection }).deleteMany({ _id: windowIdRange(granularity, { before: bound }) });
      removed += result.deletedCount;
    }
    return removed;
  }

  async getCounters(dbName: string, collection: string): Promise<Record<string, number>> {
    await this.#connect();
    const doc = await this.#collection<CounterDoc>(coll({ dbName, collection }, 'counter')).findOne({ _id: TOTALS_DOC_ID });
    return { ...(doc?.counts ?? {}) };
  }

  /** A pending write's version entry, while the head still carries it (standalone protocol). */
  async #pendingVersion(ns: Namespace, id: string): Promise<VersionDoc | null> {
    if ((await this.#modeOf()) === 'transactions') return null;
    const head = await this.#heads(ns).findOne({ _id: id, pending: { $exists: true } }, { projection: { pending: 1 } });
    return head?.pending?.version ?? null;
  }

  // ---- the fallback queue -----------------------------------------------------------------

  async listPendingSync(dbName: string, options: { limit: number; collection?: string }): Promise<PendingSync[]> {
    await this.#connect();
    if (options.collection !== undefined) await this.#settle({ dbName, collection: options.collection });
    else for (const collection of await this.#collectionsOf(dbName)) await this.#settle({ dbName, collection });
    const docs = await this.#outbox(dbName)
      .find(options.collection === undefined ? {} : { coll: options.collection })
      .sort({ order: 1 })
      .limit(options.limit)
      .toArray();
    return docs.map((d) => ({ collection: d.coll, id: d.id, seq: d.seq }));
  }

  async listPendingUpTo(ns: Namespace, options: { maxSeq: number; afterId?: string; limit: number }): Promise<PendingSync[]> {
    await this.#connect();
    await this.#settle(ns);
    // An outbox `_id` is `{collection}/{id}`: the namespace's entries are the `_id` range from
    // `{collection}/` up to `{collection}0` ('0' follows '/'), in id order, on the `_id` index.
    const docs = await this.#outbox(ns.dbName)
      .find({ _id: { $gt: recordKey(ns.collection, options.afterId ?? ''), $lt: `${ns.collection}0` }, coll: ns.collection, seq: { $lte: options.maxSeq } })
      .sort({ _id: 1 })
      .limit(options.limit)
      .toArray();
    return docs.map((d) => ({ collection: d.coll, id: d.id, seq: d.seq }));
  }

  async countPendingSync(dbName: string): Promise<number> {
    await this.#connect();
    for (const collection of await this.#collectionsOf(dbName)) await this.#settle({ dbName, collection });
    return this.#outbox(dbName).countDocuments({});
  }

  async getPendingSeq(ns: Namespace, id: string): Promise<number | null> {
    await this.#connect();
    return (await this.#outbox(ns.dbName).findOne({ _id: recordKey(ns.collection, id) }))?.seq ?? null;
  }

  async completeSync(
    ns: Namespace,
    id: string,
    done: { archivedOvs: readonly number[]; uploaded?: ReadonlyArray<{ bucket: string; key: string }>; seq: number | null },
  ): Promise<boolean> {
    await this.#connect();
    // Each step is idempotent and ordered so that a crash in between only causes one more sync.
    if (done.archivedOvs.length > 0) {
      await this.#versions(ns).updateMany({ id, ov: { $in: [...done.archivedOvs] } }, { $set: { archived: true, body: null } });
    }
    if (done.uploaded?.length) {
      await this.#pendingBlobs(ns.dbName).deleteMany({ _id: { $in: done.uploaded.map((b) => pendingBlobId(ns.collection, b.bucket, b.key)) } });
    }
    if (done.seq === null) return true;
    const removed = await this.#outbox(ns.dbName).deleteOne({ _id: recordKey(ns.collection, id), seq: done.seq });
    return removed.deletedCount === 1;
  }

  async listPendingBlobs(ns: Namespace, id: string): Promise<PendingBlob[]> {
    await this.#connect();
    const docs = await this.#pendingBlobs(ns.dbName).find({ coll: ns.collection, id }).sort({ key: 1 }).toArray();
    return docs.map(pendingBlobOf);
  }

  async getPendingBlob(ns: Namespace, bucket: string, key: string): Promise<PendingBlob | null> {
    await this.#connect();
    const doc = await this.#pendingBlobs(ns.dbName).findOne({ _id: pendingBlobId(ns.collection, bucket, key) });
    return doc ? pendingBlobOf(doc) : null;
  }

  async deadLetterSync(ns: Namespace, id: string, seq: number, reason: string): Promise<boolean> {
    await this.#connect();
    // Dead letter first, outbox second: a crash in between leaves the record in both lists
    // (synced once more), never in neither.
    const _id = recordKey(ns.collection, id);
    const failedAt = new Date().toISOString();
    const letters = this.#deadLetters(ns.dbName);
    const outbox = this.#outbox(ns.dbName);
    // A stale seq changes nothing (as in SQLite): in particular it must not overwrite, then
    // remove, a dead letter the record already has.
    if (!(await outbox.findOne({ _id, seq }, { projection: { _id: 1 } }))) return false;
    const previous = await letters.findOne({ _id });
    await letters.updateOne({ _id }, { $set: { coll: ns.collection, id, reason: reason.slice(0, 2000), failedAt } }, { upsert: true });
    const removed = await outbox.deleteOne({ _id, seq });
    if (removed.deletedCount === 1) return true;
    // A newer write re-marked the record in between: undo, restoring an earlier dead letter.
    if (previous) await letters.replaceOne({ _id, failedAt }, previous);
    else await letters.deleteOne({ _id, failedAt });
    return false;
  }

  async listDeadLetters(dbName: string, options: { limit: number }): Promise<DeadLetter[]> {
    await this.#connect();
    const docs = await this.#deadLetters(dbName).find({}).sort({ failedAt: 1, _id: 1 }).limit(options.limit).toArray();
    return docs.map((d) => ({ collection: d.coll, id: d.id, reason: d.reason, failedAt: d.failedAt }));
  }

  async requeueDeadLetters(dbName: string): Promise<number> {
    await this.#connect();
    const letters = await this.#deadLetters(dbName).find({}).toArray();
    for (const letter of letters) {
      const head = await this.#heads({ dbName, collection: letter.coll }).findOne({ _id: letter.id }, { projection: { cv: 1 } });
      await this.#outbox(dbName).updateOne(
        { _id: letter._id },
        { $max: { seq: head?.cv ?? 0 }, $setOnInsert: { coll: letter.coll, id: letter.id, queuedAt: new Date(), order: new ObjectId() } },
        { upsert: true },
      );
      await this.#deadLetters(dbName).deleteOne({ _id: letter._id, failedAt: letter.failedAt });
    }
    return letters.length;
  }

  async listPendingDatabases(): Promise<string[]> {
    await this.#connect();
    return this.#databasesHolding((dbName) => queue(dbName, 'outbox'));
  }

  async listDeadLetterDatabases(): Promise<string[]> {
    await this.#connect();
    return this.#databasesHolding((dbName) => queue(dbName, 'deadLetters', this.#protocol));
  }

  async #databasesHolding(queueOf: (dbName: string) => CollRef): Promise<string[]> {
    const { databases } = await this.#client.db('admin').admin().listDatabases({ nameOnly: true, authorizedDatabases: true });
    const out: string[] = [];
    for (const { name } of databases) {
      if (name === 'admin' || name === 'local' || name === 'config') continue;
      if (await this.#collection(queueOf(name)).findOne({}, { projection: { _id: 1 } })) out.push(name);
    }
    return out.sort();
  }

  // ---- locks, health, lifecycle -------------------------------------------------------------

  // ---- content uploads (mongodb-uploads.ts) --------------------------------------------------

  async recordUploads(ns: Namespace, uploads: readonly UploadIntent[]): Promise<{ ok: true } | { ok: false; key: string }> {
    await this.#connect();
    await this.#ensureQueues(ns.dbName);
    return recordUploads(this.#uploadOps(ns.dbName), ns.collection, uploads);
  }

  async listStaleUploads(dbName: string, options: { olderThanMs: number; limit: number }): Promise<StaleUpload[]> {
    await this.#connect();
    return listStaleUploads(this.#uploadOps(dbName), options);
  }

  async claimUploadCleanup(ns: Namespace, upload: UploadRef, options: { olderThanMs: number; markToken: string; own?: boolean }): Promise<boolean> {
    await this.#connect();
    return claimUploadCleanup(this.#uploadOps(ns.dbName), ns.collection, upload, options);
  }

  async releaseUploadCleanup(ns: Namespace, upload: Omit<UploadRef, 'token'>, markToken: string, options: { retry?: boolean } = {}): Promise<void> {
    await this.#connect();
    await releaseUploadCleanup(this.#uploadOps(ns.dbName), ns.collection, upload, markToken, options);
  }

  #uploadOps(dbName: string): UploadsCollection {
    const coll = this.#uploads(dbName);
    return {
      updateOne: (filter, update, options) => coll.updateOne(filter, update, options),
      deleteOne: (filter) => coll.deleteOne(filter),
      aggregate: (pipeline) => coll.aggregate(pipeline).toArray(),
      isDuplicateKey,
    };
  }

  async acquireLock(ns: Namespace, key: string, owner: string, leaseMs: number): Promise<boolean> {
    await this.#connect();
    await this.#ensure(ns, 'locks');
    const op = acquireLockOp(ns, key, owner, leaseMs);
    try {
      const lock = await this.#collection<LockDoc>(op.coll).findOneAndUpdate(op.filter, op.update as Document[], { upsert: true, returnDocument: 'after' });
      return lock?.owner === owner;
    } catch (err) {
      // Two first acquisitions racing to insert the lock: the loser does not hold it.
      if (isDuplicateKey(err)) return false;
      throw err;
    }
  }

  async releaseLock(ns: Namespace, key: string, owner: string): Promise<void> {
    await this.#connect();
    await this.#run([releaseLockOp(ns, key, owner)]);
  }

  async ping(): Promise<void> {
    await this.#connect();
    await this.#client.db('admin').command({ ping: 1 });
  }

  async close(): Promise<void> {
    await this.#release();
  }

  // ---- plumbing -------------------------------------------------------------------------------

  /** Asks the server once whether it can run transactions (replica set member or mongos). */
  #modeOf(): Promise<Mode> {
    if (!this.#mode) {
      this.#mode = this.#detectMode().then(
        (mode) => (this.#detected = mode),
        (err: unknown) => {
          this.#mode = null; // a failed first contact is retried by the next call
          throw err;
        },
      );
    }
    return this.#mode;
  }

  async #detectMode(): Promise<Mode> {
    const setting = this.#options.transactions ?? 'auto';
    if (setting === 'off') return 'standalone';
    const hello = await this.#client.db('admin').command({ hello: 1 });
    const mode = supportsTransactions(hello) ? 'transactions' : 'standalone';
    if (setting === 'required' && mode === 'standalone') {
      throw new Error('transactions are required (transactions.enabled), but the MongoDB server is a standalone server; use a replica set');
    }
    return mode;
  }

  /** Creates a collection's indexes once per process; racing processes create identical specs, which MongoDB accepts. */
  async #ensure(ns: Namespace, ...roles: CollectionRole[]): Promise<void> {
    await Promise.all(
      roles.map((role) => {
        const ref = coll(ns, role);
        const settings = this.#options.indexSettings?.(ns.collection) ?? { indexedProps: [] };
        return this.#once(`${ref.db}\u0000${ref.name}`, () => createIndexes(this.#collection(ref), indexSpecs(role, settings, metaPath)));
      }),
    );
  }

  async #ensureQueues(dbName: string): Promise<void> {
    const specs = queueIndexSpecs();
    await Promise.all(
      (Object.keys(specs) as Array<keyof typeof specs>).map((which) => {
        const ref = queue(dbName, which, this.#protocol);
        return this.#once(`${ref.db}\u0000${ref.name}`, () => createIndexes(this.#collection(ref), specs[which]));
      }),
    );
  }

  #once(key: string, create: () => Promise<void>): Promise<void> {
    let ready = this.#ready.get(key);
    if (!ready) {
      ready = create().catch((err: unknown) => {
        this.#ready.delete(key);
        throw err;
      });
      this.#ready.set(key, ready);
    }
    return ready;
  }

  /**
   * The properties a filter may name, checked again here so that nothing unindexed or unsafe
   * reaches the driver even if a caller skipped the engine's validation. With no `indexedProps`
   * every top-level property is indexed (the engine's rule; a wildcard index serves it).
   */
  #indexedFields(ns: Namespace): IndexedFields {
    const props = this.#options.indexSettings?.(ns.collection).indexedProps ?? [];
    if (props.length > 0) return new Set(props);
    return (field) => !field.includes('.') && !field.startsWith('_system');
  }

  async #collectionsOf(dbName: string): Promise<string[]> {
    const found = await this.#client.db(dbName).listCollections({ name: { $regex: '_head$' } }, { nameOnly: true }).toArray();
    return found.map((c) => c.name.slice(0, -'_head'.length));
  }

  #collection<T extends Document = Document>(ref: CollRef): Collection<T> {
    return this.#client.db(ref.db).collection<T>(ref.name);
  }

  #heads(ns: Namespace): Collection<HeadDoc> {
    return this.#collection<HeadDoc>(coll(ns, 'head'));
  }
  #versions(ns: Namespace): Collection<VersionDoc> {
    return this.#collection<VersionDoc>(coll(ns, 'ver'));
  }
  #claims(ns: Namespace): Collection<ClaimDoc> {
    return this.#collection<ClaimDoc>(coll(ns, 'claims'));
  }
  #counters(ns: Namespace): Collection<CounterDoc> {
    return this.#collection<CounterDoc>(coll(ns, 'counter'));
  }
  #outbox(dbName: string): Collection<OutboxDoc> {
    return this.#collection<OutboxDoc>(queue(dbName, 'outbox'));
  }
  #pendingBlobs(dbName: string): Collection<PendingBlobDoc> {
    return this.#collection<PendingBlobDoc>(queue(dbName, 'pendingBlobs'));
  }
  #uploads(dbName: string): Collection<UploadDoc> {
    return this.#collection<UploadDoc>(queue(dbName, 'uploads'));
  }
  #deadLetters(dbName: string): Collection<DeadLetterDoc> {
    return this.#collection<DeadLetterDoc>(queue(dbName, 'deadLetters', this.#protocol));
  }

  // ---- background jobs (core/jobs) ------------------------------------------------------------

  /** Databases with a namespace ever written: those holding a `{c}_counter` collection-version document. */
  async listDatabases(): Promise<string[]> {
    await this.#connect();
    const { databases } = await this.#client.db('admin').admin().listDatabases({ nameOnly: true, authorizedDatabases: true });
    const out: string[] = [];
    for (const { name } of databases) {
      if (name === 'admin' || name === 'local' || name === 'config') continue;
      if ((await this.listCollections(name)).length > 0) out.push(name);
    }
    return out.sort(byteOrder);
  }

  async listCollections(dbName: string): Promise<string[]> {
    await this.#connect();
    const found = await this.#client.db(dbName).listCollections({ name: { $regex: '_counter$' } }, { nameOnly: true }).toArray();
    const written: string[] = [];
    for (const { name } of found) {
      const collection = name.slice(0, -'_counter'.length);
      // The analytics database's `{c}_counter` holds totals and windows only: a namespace is written once it has a cv.
      if (await this.#counters({ dbName, collection }).findOne({ _id: CV_DOC_ID }, { projection: { _id: 1 } })) written.push(collection);
    }
    return written.sort(byteOrder);
  }

  async listUnarchivedRecords(
    dbName: string,
    options: { writtenBefore: string; after?: { collection: string; id: string }; limit: number },
  ): Promise<UnarchivedRecord[]> {
    await this.#connect();
    const out: UnarchivedRecord[] = [];
    for (const collection of await this.listCollections(dbName)) {
      if (out.length >= options.limit) break;
      if (options.after && collection < options.after.collection) continue;
      const ns = { dbName, collection };
      await this.#settle(ns);
      const afterId = options.after && collection === options.after.collection ? options.after.id : undefined;
      // `archived: false` is the partial `unarchived` index: archived history is never read.
      const rows = await this.#versions(ns)
        .aggregate<{ _id: string; oldest: string }>([
          { $match: { archived: false, ...(afterId === undefined ? {} : { id: { $gt: afterId } }) } },
          { $group: { _id: '$id', oldest: { $min: '$at' } } },
          { $match: { oldest: { $lte: options.writtenBefore } } },
          { $sort: { _id: 1 } },
          { $limit: options.limit - out.length },
        ])
        .toArray();
      out.push(...rows.map((r) => ({ collection, id: r._id, oldestAt: r.oldest })));
    }
    return out;
  }

  async summariseVersions(ns: Namespace, options: { afterId?: string; limit: number }): Promise<VersionSummary[]> {
    await this.#connect();
    await this.#settle(ns);
    const groups = await this.#versions(ns)
      .aggregate<{ _id: string; count: number; lo: number; hi: number }>([
        { $match: options.afterId === undefined ? {} : { id: { $gt: options.afterId } } },
        { $group: { _id: '$id', count: { $sum: 1 }, lo: { $min: '$ov' }, hi: { $max: '$ov' } } },
        { $sort: { _id: 1 } },
        { $limit: options.limit },
      ])
      .toArray();
    const out: VersionSummary[] = [];
    for (const g of groups) {
      const next = await this.#versions(ns).findOne({ _id: versionId(g._id, g.lo + 1) }, { projection: { at: 1 } });
      out.push({ id: g._id, count: g.count, oldestOv: g.lo, newestOv: g.hi, oldestSupersededAt: next?.at ?? null });
    }
    return out;
  }

  async pruneVersions(ns: Namespace, id: string, belowOv: number): Promise<number> {
    await this.#connect();
    const head = await this.#heads(ns).findOne({ _id: id }, { projection: { ov: 1, pending: 1 } });
    if (!head || head.pending?.purge) return 0;
    // Capped at the head's ov as read: a concurrent write only raises it, so the cap stays below the current version.
    const result = await this.#versions(ns).deleteMany({ id, ov: { $lt: Math.min(belowOv, head.ov) } });
    return result.deletedCount;
  }

  async offloadHead(ns: Namespace, id: string, expectedOv: number): Promise<boolean> {
    await this.#connect();
    const key = recordKey(ns.collection, id);
    if (await this.#outbox(ns.dbName).findOne({ _id: key }, { projection: { _id: 1 } })) return false;
    if (await this.#deadLetters(ns.dbName).findOne({ _id: key }, { projection: { _id: 1 } })) return false;
    if (await this.#versions(ns).findOne({ id, archived: false }, { projection: { _id: 1 } })) return false;
    // Race window (no transaction): a commit that lands between the checks above and this update
    // moves the head past `expectedOv` (or leaves it `pending`), so the filter no longer matches.
    // Only a sync that re-marks the outbox without a commit could slip in, and that happens only
    // for a record already written, i.e. no longer at `expectedOv` or mid-commit.
    const result = await this.#heads(ns).updateOne(
      { _id: id, ov: expectedOv, pending: { $exists: false }, body: { $ne: '' } },
      { $set: { body: '' } },
    );
    return result.modifiedCount === 1;
  }

  async getCollectionVersion(ns: Namespace): Promise<number | null> {
    await this.#connect();
    const doc = await this.#counters(ns).findOne({ _id: CV_DOC_ID });
    return doc?.seq === undefined ? null : doc.seq - 1;
  }

  async listClaims(ns: Namespace, options: { afterKey?: string; limit: number }): Promise<Array<{ key: string; id: string }>> {
    await this.#connect();
    const docs = await this.#claims(ns)
      .find(options.afterKey === undefined ? {} : { _id: { $gt: options.afterKey } })
      .sort({ _id: 1 })
      .limit(options.limit)
      .toArray();
    return docs.map((d) => ({ key: d._id, id: d.id }));
  }

  async importRecords(ns: Namespace, batch: ImportBatch): Promise<void> {
    await this.#connect();
    await this.#ensure(ns, 'head', 'ver', 'counter', 'claims');
    await this.#ensureQueues(ns.dbName);
    const apply = async (session?: ClientSession) => {
      const opts = session ? { session } : {};
      let highest = batch.collectionVersion ?? -1;
      for (const { head, versions } of batch.records) {
        // Entries first, head last: until the head is back, readers of this id see no record.
        await this.#versions(ns).deleteMany({ id: head.id }, opts);
        if (versions.length > 0) await this.#versions(ns).insertMany(versions.map(versionDocOfRow), opts);
        await this.#heads(ns).replaceOne({ _id: head.id }, toHeadDoc(head.id, head, head.cv), { ...opts, upsert: true });
        highest = Math.max(highest, head.cv, ...versions.map((v) => v.cv));
        if (batch.sync === false) continue;
        await this.#outbox(ns.dbName).updateOne(
          { _id: recordKey(ns.collection, head.id) },
          { $max: { seq: head.cv }, $setOnInsert: { coll: ns.collection, id: head.id, queuedAt: new Date(), order: new ObjectId() } },
          { ...opts, upsert: true },
        );
      }
      for (const claim of batch.claims ?? []) {
        await this.#claims(ns).updateOne({ _id: claim.key }, { $set: { id: claim.id, cv: Math.max(highest, 0) } }, { ...opts, upsert: true });
      }
      // `seq` is the next cv's predecessor plus one (see nextCvOp): never lowered, so no imported cv is reused.
      if (highest >= 0) await this.#counters(ns).updateOne({ _id: CV_DOC_ID }, { $max: { seq: highest + 1 } }, { ...opts, upsert: true });
    };
    if ((await this.#modeOf()) === 'standalone') {
      // Without transactions the import is applied record by record; it is idempotent, so a
      // restore cut off half-way is finished by running it again.
      await apply();
      return;
    }
    const session = this.#client.startSession();
    try {
      await session.withTransaction(() => apply(session), { readConcern: { level: 'majority' }, writeConcern: { w: 'majority', journal: true }, readPreference: 'primary' });
    } finally {
      await session.endSession();
    }
  }

  async countRecords(ns: Namespace): Promise<number> {
    await this.#connect();
    return this.#heads(ns).countDocuments({});
  }

  /**
   * Not one transaction (a restore may be larger than a MongoDB transaction can be): collection
   * by collection, each one emptied and then filled with copies of the staging area's documents.
   * Each step is idempotent, so calling again after a cut-off finishes the job. The emptiness
   * check is a count taken before anything changes.
   */
  async replaceCollections(dbName: string, replacements: readonly CollectionReplacement[], options: ReplaceCollectionsOptions): Promise<{ replaced: boolean; held: number }> {
    await this.#connect();
    const listed = new Set(replacements.map((r) => r.collection));
    const others = options.wholeDatabase
      ? [...new Set([...(await this.listCollections(dbName)), ...(await this.#collectionsOf(dbName))])].filter((c) => !listed.has(c))
      : [];
    const all: CollectionReplacement[] = [...replacements, ...others.map((collection) => ({ collection, from: null }))];
    let held = 0;
    for (const r of all) held += await this.#heads({ dbName, collection: r.collection }).countDocuments({});
    if (options.onlyIfEmpty && held > 0) return { replaced: false, held };
    await this.#ensureQueues(dbName);
    for (const r of all) {
      const live: Namespace = { dbName, collection: r.collection };
      await this.#ensure(live, 'head', 'ver', 'counter', 'claims');
      await this.#heads(live).deleteMany({});
      await this.#versions(live).deleteMany({});
      await this.#claims(live).deleteMany({});
      await this.#counters(live).deleteOne({ _id: CV_DOC_ID });
      await this.#outbox(dbName).deleteMany({ coll: r.collection });
      await this.#deadLetters(dbName).deleteMany({ coll: r.collection });
      const counters = { dbName: options.countersDb, collection: r.collection };
      await this.#ensure(counters, 'counter');
      await this.#counters(counters).deleteMany({ $or: [{ _id: TOTALS_DOC_ID }, { _id: { $regex: `^${WINDOW_DOC_PREFIX}` } }] });
      if (r.from !== null) {
        const staged: Namespace = { dbName: r.from, collection: r.collection };
        for (const role of ['head', 'ver', 'claims'] as const) await copyAll(this.#collection(coll(staged, role)), this.#collection(coll(live, role)));
        const cv = await this.#counters(staged).findOne({ _id: CV_DOC_ID });
        if (cv) await this.#counters(live).replaceOne({ _id: CV_DOC_ID }, cv, { upsert: true });
        // Every record copied in is written to the blob store again (current.json, pending versions).
        let marks: Array<AnyBulkWriteOperation<OutboxDoc>> = [];
        const flush = async () => {
          if (marks.length > 0) await this.#outbox(dbName).bulkWrite(marks, { ordered: true });
          marks = [];
        };
        for await (const head of this.#heads(live).find({}, { projection: { _id: 1, cv: 1 } })) {
          marks.push({
            updateOne: {
              filter: { _id: recordKey(r.collection, head._id) },
              update: { $max: { seq: head.cv }, $setOnInsert: { coll: r.collection, id: head._id, queuedAt: new Date(), order: new ObjectId() } },
              upsert: true,
            },
          });
          if (marks.length >= COPY_BATCH) await flush();
        }
        await flush();
      }
      if (r.counters) {
        await this.setCounters(options.countersDb, r.collection, { ...r.counters.totals });
        await this.setCounterWindows(options.countersDb, r.collection, r.counters.windows);
      }
    }
    return { replaced: true, held };
  }

  async setCounters(dbName: string, collection: string, values: Record<string, number>): Promise<void> {
    await this.#connect();
    const set = Object.fromEntries(Object.entries(values).map(([name, value]) => [`counts.${name}`, value]));
    if (Object.keys(set).length === 0) return;
    await this.#counters({ dbName, collection }).updateOne({ _id: TOTALS_DOC_ID }, { $set: set }, { upsert: true });
  }

  async setCounterWindows(dbName: string, collection: string, windows: readonly CounterWindow[]): Promise<void> {
    await this.#connect();
    const ops = windows
      .map((w) => ({ id: windowDocId(w.window), set: Object.fromEntries(Object.entries(w.counts).map(([name, value]) => [`counts.${name}`, value])) }))
      .filter((op) => Object.keys(op.set).length > 0)
      .map((op) => ({ updateOne: { filter: { _id: op.id }, update: { $set: op.set }, upsert: true } }));
    if (ops.length === 0) return;
    const ns = { dbName, collection };
    if ((await this.#modeOf()) === 'standalone') {
      // Without transactions the windows are set one by one; it is idempotent, so a restore cut
      // off half-way is finished by running it again.
      await this.#counters(ns).bulkWrite(ops, { ordered: true });
      return;
    }
    const session = this.#client.startSession();
    try {
      await session.withTransaction(() => this.#counters(ns).bulkWrite(ops, { ordered: true, session }), {
        readConcern: { level: 'majority' },
        writeConcern: { w: 'majority', journal: true },
        readPreference: 'primary',
      });
    } finally {
      await session.endSession();
    }
  }
  // ---- END background-job port methods --------------------------------------------------------
}

/** A replica set member reports `setName`; a mongos router answers `isdbgrid`. Both run transactions. */
export function supportsTransactions(hello: Document): boolean {
  return typeof hello.setName === 'string' || hello.msg === 'isdbgrid';
}

async function createIndexes(collection: Collection, specs: Parameters<Collection['createIndexes']>[0]): Promise<void> {
  if (specs.length === 0) {
    // Creating the collection up front keeps later transactions from having to.
    await collection.db.createCollection(collection.collectionName).catch((err: unknown) => {
      if (!(err instanceof MongoServerError && err.codeName === 'NamespaceExists')) throw err;
    });
    return;
  }
  await collection.createIndexes(specs);
}

/** Documents copied per `insertMany` by `replaceCollections`. */
const COPY_BATCH = 1000;

/** Copies every document of `from` into `to`, `_id`s included, a batch at a time. */
async function copyAll(from: Collection, to: Collection): Promise<void> {
  let batch: Document[] = [];
  for await (const doc of from.find({})) {
    batch.push(doc);
    if (batch.length >= COPY_BATCH) {
      await to.insertMany(batch, { ordered: true });
      batch = [];
    }
  }
  if (batch.length > 0) await to.insertMany(batch, { ordered: true });
}

/** Byte order of UTF-8 names, as the port asks (names here are ASCII, where it equals code-unit order). */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function withoutId<T extends { _id: unknown }>(doc: T): Omit<T, '_id'> {
  const { _id, ...rest } = doc;
  void _id;
  return rest;
}

function isDuplicateKey(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === DUPLICATE_KEY;
}

