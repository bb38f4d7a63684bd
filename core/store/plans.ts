import type { Decision, Effect, HeadWrite, ImportLimit, ReadRows, ReadSet, RecordRef, Transaction, UploadRow } from '../contracts/index-driver.js';
import { nsKey, refKey, uploadKey } from '../contracts/index-driver.js';
import type {
  CollectionReplacement,
  CommitBatch,
  CommitResult,
  CounterWindow,
  CounterWindowBounds,
  ImportBatch,
  ImportedRecord,
  Namespace,
  ReplaceCollectionsOptions,
  StaleUpload,
  UploadIntent,
  UploadRef,
} from '../contracts/index-store.js';

/**
 * Every write of the index store, planned as a pure transaction (see `IndexDriver.transact`):
 * what it reads, and what it changes given what it read. The rules of the store live here once;
 * the JSDoc of `core/contracts/index-store.ts` states them, and a driver only executes them.
 */

/** A dead letter's reason is kept to this many characters: it is an error message, not a log. */
export const MAX_REASON_LENGTH = 2000;

const done = <T>(result: T, effects: readonly Effect[] = []): Decision<T> => ({ effects, result });
const ref = (ns: Namespace, id: string): RecordRef => ({ dbName: ns.dbName, collection: ns.collection, id });
const uploadRead = (ns: Namespace, upload: { bucket: string; key: string }) => ({ ...ns, bucket: upload.bucket, key: upload.key });
/** What a missing list holds (shared: nothing ever adds to it). */
const NONE: readonly never[] = Object.freeze([]);

/**
 * `RecordIndex.commit`: each write in order checks the head's ov, takes its claims, gets the next
 * cv, writes or removes the head, takes its upload intents, releases the claims of a record it
 * removes or deletes, queues its objects, appends its version entry and marks the record for
 * sync at seq = cv; then the counters. Any failed check writes nothing and names the write.
 */
export function commit(ns: Namespace, batch: CommitBatch): Transaction<CommitResult> {
  const writes = batch.writes;
  // One write (almost every commit) needs no de-duplication.
  const heads = writes.length === 1 ? [ref(ns, writes[0]!.id)] : [...new Set(writes.map((w) => w.id))].map((id) => ref(ns, id));
  const claims = new Set<string>();
  const uploads: Array<Namespace & { bucket: string; key: string }> = [];
  for (const w of writes) {
    for (const c of w.claims ?? NONE) claims.add(c.key);
    for (const u of w.uploads ?? NONE) uploads.push(uploadRead(ns, u));
  }
  const reads: ReadSet = { heads, collectionVersions: [ns], claims: [...claims].map((key) => ({ ...ns, key })), uploads };
  return {
    reads,
    decide(rows) {
      return decideCommit(ns, batch, rows);
    },
  };
}

function decideCommit(ns: Namespace, batch: CommitBatch, rows: ReadRows): Decision<CommitResult> {
  const writes = batch.writes;
  const effects: Effect[] = [];
  const cvs: number[] = [];
  // What the batch's earlier writes changed, over what was read (made when a batch has them).
  let ovs: Map<string, number | null> | undefined;
  let claims: Map<string, string> | undefined;
  let taken: Set<string> | undefined;
  let cv = rows.collectionVersions.get(nsKey(ns)) ?? -1;
  for (let index = 0; index < writes.length; index++) {
    const write = writes[index]!;
    const { id, head } = write;
    const actualOv = ovs?.has(id) ? ovs.get(id)! : (rows.heads.get(refKey(ns, id))?.ov ?? null);
    if (actualOv !== write.expectedOv) return done({ ok: false, reason: 'version', index, id, expectedOv: write.expectedOv, actualOv });
    for (const claim of write.claims ?? NONE) {
      claims ??= new Map(rows.claims);
      const key = refKey(ns, claim.key);
      const holder = claims.get(key);
      if (holder !== undefined && holder !== id && holder !== claim.replacing) return done({ ok: false, reason: 'claim', index, id, key: claim.key, heldBy: holder });
      claims.set(key, id);
      effects.push({ kind: 'putClaim', ns, key: claim.key, id });
    }
    cvs.push(++cv);
    if (head) {
      const { ov, deleted, createdAt, updatedAt, deletedAt, meta, body, hash } = head;
      effects.push({ kind: 'putHead', ns, id, head: { ov, cv, deleted, createdAt, updatedAt, deletedAt, meta, body, hash } });
    } else {
      // A hard delete: every row of the record goes (the claims it just took too).
      effects.push({ kind: 'deleteRecord', ns, id, tables: ['heads', 'versions', 'claims', 'pendingBlobs'] });
    }
    if (writes.length > 1) (ovs ??= new Map()).set(id, head?.ov ?? null);
    for (const u of write.uploads ?? NONE) {
      const intent = JSON.stringify([uploadKey(ns, u.bucket, u.key), u.token]);
      const held = rows.uploads.get(uploadKey(ns, u.bucket, u.key))?.some((r) => r.token === u.token && !r.cleaning) ?? false;
      if (!held || taken?.has(intent)) return done({ ok: false, reason: 'upload', index, id, key: u.key });
      (taken ??= new Set()).add(intent);
      effects.push({ kind: 'deleteUpload', ns, bucket: u.bucket, key: u.key, token: u.token });
    }
    if (!head || head.deleted) {
      if (head) effects.push({ kind: 'deleteRecord', ns, id, tables: ['claims'] });
      claims ??= new Map(rows.claims);
      for (const [key, holder] of claims) if (holder === id) claims.delete(key);
    }
    for (const blob of write.blobs ?? NONE) effects.push({ kind: 'putPendingBlob', ns, id, blob });
    const v = write.version;
    if (v && head) {
      effects.push({
        kind: 'putVersion',
        ns,
        version: {
          id, ov: head.ov, cv, op: v.op, at: v.at, actor: v.actor, reason: v.reason, deleted: v.deleted,
          size: Buffer.byteLength(v.body, 'utf8'), body: v.body, archived: false, meta: head.meta, hash: v.hash,
        },
      });
    }
    effects.push({ kind: 'putOutbox', ns, id, seq: cv });
  }
  if (writes.length > 0) effects.push({ kind: 'setCollectionVersion', ns, cv });
  for (const c of batch.counters ?? NONE) {
    const counts = nonZero(c.deltas);
    if (!counts) continue;
    for (const window of [null, ...new Set(c.windows)]) effects.push({ kind: 'counters', dbName: c.dbName, collection: c.collection, window, counts, add: true });
  }
  return done({ ok: true, cvs }, effects);
}

/** The deltas that change something, or `undefined` when none does. */
function nonZero(deltas: Readonly<Record<string, number>>): Record<string, number> | undefined {
  let out: Record<string, number> | undefined;
  for (const name in deltas) {
    if (deltas[name] !== 0) (out ??= {})[name] = deltas[name]!;
  }
  return out;
}

/**
 * `IndexMaintenance.offloadHead`: only a head at `expectedOv` that is not offloaded yet, whose
 * record has no outbox entry, no dead letter and no unarchived version entry.
 */
export function offloadHead(ns: Namespace, id: string, expectedOv: number): Transaction<boolean> {
  const r = [ref(ns, id)];
  return {
    reads: { heads: r, outbox: r, deadLetters: r, unarchived: r },
    decide(rows) {
      const key = refKey(ns, id);
      const head = rows.heads.get(key);
      const inSync = !rows.outbox.has(key) && !rows.deadLetters.has(key) && (rows.unarchived.get(key) ?? 0) === 0;
      if (!head || head.ov !== expectedOv || head.offloaded || !inSync) return done(false);
      return done(true, [{ kind: 'dropBodies', ns, id, ovs: null }]);
    },
  };
}

/**
 * `SyncOutbox.completeSync`: archives the versions and drops the uploaded objects whatever the
 * outbox holds; clears the outbox entry only if it is still at `seq`.
 */
export function completeSync(
  ns: Namespace,
  id: string,
  sync: { archivedOvs: readonly number[]; uploaded?: ReadonlyArray<{ bucket: string; key: string }>; seq: number | null },
): Transaction<boolean> {
  return {
    reads: sync.seq === null ? {} : { outbox: [ref(ns, id)] },
    // Undone by a crash, the record is still queued and its objects are written again (the same
    // bytes; version objects are create-only), so nothing waits for this commit to be flushed. A
    // later flushed commit flushes it too: the log is written in order.
    durability: 'never',
    decide(rows) {
      const effects: Effect[] = [];
      if (sync.archivedOvs.length > 0) effects.push({ kind: 'dropBodies', ns, id, ovs: sync.archivedOvs });
      if (sync.uploaded?.length) effects.push({ kind: 'deletePendingBlobs', ns, keys: sync.uploaded });
      const current = sync.seq !== null && rows.outbox.get(refKey(ns, id)) === sync.seq;
      if (current) effects.push({ kind: 'deleteRecord', ns, id, tables: ['outbox'] });
      return done(sync.seq === null || current, effects);
    },
  };
}

/** `SyncOutbox.deadLetterSync`: moves the outbox entry, if still at `seq`, to the dead letters. */
export function deadLetterSync(ns: Namespace, id: string, seq: number, reason: string, failedAt: string): Transaction<boolean> {
  return {
    reads: { outbox: [ref(ns, id)] },
    decide(rows) {
      if (rows.outbox.get(refKey(ns, id)) !== seq) return done(false);
      return done(true, [
        { kind: 'deleteRecord', ns, id, tables: ['outbox'] },
        { kind: 'putDeadLetter', ns, id, reason: reason.slice(0, MAX_REASON_LENGTH), failedAt },
      ]);
    },
  };
}

/** `SyncOutbox.requeueDeadLetters`: each dead letter back into the outbox at its head's cv (0 without a head). */
export function requeueDeadLetters(dbName: string): Transaction<number> {
  return {
    reads: { allDeadLetters: dbName },
    decide(rows) {
      const effects = rows.allDeadLetters.flatMap((d): Effect[] => {
        const ns = { dbName, collection: d.collection };
        return [
          { kind: 'putOutbox', ns, id: d.id, seq: d.headCv ?? 0 },
          { kind: 'deleteRecord', ns, id: d.id, tables: ['deadLetters'] },
        ];
      });
      return done(rows.allDeadLetters.length, effects);
    },
  };
}

/**
 * `IndexMaintenance.pruneVersions`: entries below `belowOv`, capped at the head's ov, so the
 * current entry always stays; nothing without a head. Two steps: the cap depends on the head.
 */
export function pruneVersions(ns: Namespace, id: string, belowOv: number): Transaction<number> {
  const key = refKey(ns, id);
  return {
    reads: { heads: [ref(ns, id)] },
    decide(rows) {
      const head = rows.heads.get(key);
      if (!head) return done(0);
      const below = Math.min(belowOv, head.ov);
      return {
        reads: { versionCounts: [{ ...ref(ns, id), belowOv: below }] },
        decide(counted) {
          const n = counted.versionCounts.get(key) ?? 0;
          return done(n, n > 0 ? [{ kind: 'deleteRecord', ns, id, tables: ['versions'], belowOv: below }] : []);
        },
      };
    },
  };
}

/** `CounterIndex.pruneCounterWindows`: every window below its granularity's bound. */
export function pruneCounterWindows(dbName: string, collection: string, before: CounterWindowBounds): Transaction<number> {
  return {
    reads: { counterWindows: { dbName, collection, before } },
    decide(rows) {
      const effects = rows.counterWindows.map((window): Effect => ({ kind: 'deleteCounters', dbName, collection, window }));
      return done(effects.length, effects);
    },
  };
}

/** `CounterIndex.setCounters`. */
export function setCounters(dbName: string, collection: string, values: Record<string, number>): Transaction<void> {
  return { reads: {}, decide: () => done(undefined, [setCounts(dbName, collection, null, values)]) };
}

/** `CounterIndex.setCounterWindows`. */
export function setCounterWindows(dbName: string, collection: string, windows: readonly CounterWindow[]): Transaction<void> {
  return { reads: {}, decide: () => done(undefined, windows.map((w) => setCounts(dbName, collection, w.window, w.counts))) };
}

/** Counts of the totals (`window: null`) or of a window, set name by name. */
function setCounts(dbName: string, collection: string, window: string | null, counts: Readonly<Record<string, number>>): Effect {
  return { kind: 'counters', dbName, collection, window, counts, add: false };
}

// ---- upload intents ---------------------------------------------------------------------------

/**
 * `UploadIntents.recordUploads`: refused as a whole when a key has a cleanup mark; otherwise
 * each intent is written, or renewed (keeping the record it was first recorded for).
 */
export function recordUploads(ns: Namespace, uploads: readonly UploadIntent[]): Transaction<{ ok: true } | { ok: false; key: string }> {
  return {
    reads: { uploads: uploads.map((u) => uploadRead(ns, u)) },
    decide(rows) {
      const effects: Effect[] = [];
      const recorded = new Map<string, string>();
      for (const u of uploads) {
        const onKey = rows.uploads.get(uploadKey(ns, u.bucket, u.key)) ?? [];
        if (onKey.some((r) => r.cleaning)) return done({ ok: false, key: u.key });
        const intent = JSON.stringify([uploadKey(ns, u.bucket, u.key), u.token]);
        const id = recorded.get(intent) ?? onKey.find((r) => r.token === u.token)?.id ?? u.id;
        recorded.set(intent, id);
        effects.push({ kind: 'putUpload', ns, bucket: u.bucket, key: u.key, row: { id, token: u.token, cleaning: false }, stamp: 'now' });
      }
      return done({ ok: true }, effects);
    },
  };
}

/** `UploadIntents.listStaleUploads`, read in a transaction so ages come from the store's clock. */
export function listStaleUploads(dbName: string, options: { olderThanMs: number; limit: number }): Transaction<StaleUpload[]> {
  return {
    readOnly: true,
    reads: { staleUploads: { dbName, olderThanMs: options.olderThanMs, limit: options.limit } },
    decide: (rows) =>
      done(rows.staleUploads.map((r) => ({ collection: r.collection, id: r.id, bucket: r.bucket, key: r.key, token: r.token, cleaning: r.cleaning }))),
  };
}

/** `UploadIntents.claimUploadCleanup`; the rules are in the port's JSDoc. */
export function claimUploadCleanup(ns: Namespace, upload: UploadRef, options: { olderThanMs: number; markToken: string; own?: boolean }): Transaction<boolean> {
  return {
    reads: { uploads: [uploadRead(ns, upload)] },
    decide(rows) {
      const onKey = rows.uploads.get(uploadKey(ns, upload.bucket, upload.key)) ?? [];
      const stale = (r: UploadRow) => r.ageMs >= options.olderThanMs;
      const remove = (token: string): Effect => ({ kind: 'deleteUpload', ns, bucket: upload.bucket, key: upload.key, token });
      const mark = (id: string): Effect => ({
        kind: 'putUpload', ns, bucket: upload.bucket, key: upload.key, row: { id, token: options.markToken, cleaning: true }, stamp: 'now',
      });
      const named = onKey.find((r) => r.token === upload.token);
      if (!named) return done(false);
      if (named.cleaning) {
        if (named.token !== options.markToken && !stale(named)) return done(false);
        return done(true, [remove(named.token), mark(named.id)]);
      }
      const removable = options.own === true || stale(named);
      // Another write's younger intent covers the key (if it commits, the object is used; if
      // not, its own intent leads here again); a mark means another cleanup has it.
      if (!removable || onKey.some((r) => r.cleaning || (r.token !== upload.token && !stale(r)))) {
        return done(false, removable ? [remove(upload.token)] : []);
      }
      return done(true, [...onKey.map((r) => remove(r.token)), mark(named.id)]);
    },
  };
}

/** `UploadIntents.releaseUploadCleanup`: only the mark `markToken`; with `retry` it becomes a stale intent. */
export function releaseUploadCleanup(ns: Namespace, upload: Omit<UploadRef, 'token'>, markToken: string, options: { retry?: boolean } = {}): Transaction<void> {
  return {
    reads: { uploads: [uploadRead(ns, upload)] },
    decide(rows) {
      const held = (rows.uploads.get(uploadKey(ns, upload.bucket, upload.key)) ?? []).find((r) => r.token === markToken && r.cleaning);
      if (!held) return done(undefined);
      const { bucket, key } = upload;
      return done(undefined, [
        options.retry
          ? { kind: 'putUpload', ns, bucket, key, row: { id: held.id, token: markToken, cleaning: false }, stamp: 'past' }
          : { kind: 'deleteUpload', ns, bucket, key, token: markToken },
      ]);
    },
  };
}

// ---- leases -----------------------------------------------------------------------------------

/**
 * `Leases.acquireLock`: free, expired (see `ReadRows.locks`) or already `owner`'s. A lease only
 * matters to live processes, but its holder relies on it for as long as it lives: it must survive
 * a crash of a server its holder outlives (`'withClients'`).
 */
export function acquireLock(ns: Namespace, key: string, owner: string, leaseMs: number): Transaction<boolean> {
  return {
    reads: { locks: [{ ...ns, key }] },
    durability: 'withClients',
    decide(rows) {
      const held = rows.locks.get(refKey(ns, key));
      if (held && held.owner !== owner && !held.expired) return done(false);
      return done(true, [{ kind: 'putLock', ns, key, owner, leaseMs }]);
    },
  };
}

/** `Leases.releaseLock`: only `owner`'s lease. Undone by a crash, the lease runs out instead (`'never'`). */
export function releaseLock(ns: Namespace, key: string, owner: string): Transaction<void> {
  return {
    reads: { locks: [{ ...ns, key }] },
    durability: 'never',
    decide: (rows) => done(undefined, rows.locks.get(refKey(ns, key))?.owner === owner ? [{ kind: 'deleteLock', ns, key }] : []),
  };
}

// ---- maintenance ------------------------------------------------------------------------------

/**
 * `IndexMaintenance.importRecords`: each record's entries replaced by the given ones, its head
 * written as given; the claims taken over; the cv raised to the highest given, never lowered.
 */
export function importRecords(ns: Namespace, batch: ImportBatch): Transaction<void> {
  return {
    reads: { collectionVersions: [ns] },
    decide(rows) {
      const effects: Effect[] = [];
      let highest = batch.collectionVersion ?? -1;
      for (const { head, versions } of batch.records) {
        const { id, ...fields } = head;
        const write: HeadWrite = fields;
        effects.push({ kind: 'deleteRecord', ns, id, tables: ['versions'] }, { kind: 'putHead', ns, id, head: write });
        highest = Math.max(highest, head.cv);
        for (const version of versions) {
          effects.push({ kind: 'putVersion', ns, version: { ...version, id } });
          highest = Math.max(highest, version.cv);
        }
        if (batch.sync !== false) effects.push({ kind: 'putOutbox', ns, id, seq: head.cv });
      }
      for (const c of batch.claims ?? []) effects.push({ kind: 'putClaim', ns, key: c.key, id: c.id });
      const current = rows.collectionVersions.get(nsKey(ns));
      if (highest >= 0 && (current === undefined || highest > current)) effects.push({ kind: 'setCollectionVersion', ns, cv: highest });
      return done(undefined, effects);
    },
  };
}

/**
 * `batch` cut into batches that each stay within `limit` (`IndexDriver.importLimit`): records in
 * order, a record never split (one larger than the limit goes alone), then the claims. Every
 * batch carries the `collectionVersion` and `sync` flag, so each is an import of its own that
 * only raises the cv; importing them in order leaves what importing `batch` at once would.
 */
export function importChunks(batch: ImportBatch, limit: ImportLimit | undefined): ImportBatch[] {
  if (!limit) return [batch];
  const { records, claims = [], ...rest } = batch;
  const out: ImportBatch[] = [];
  let chunk: { records: ImportedRecord[]; claims: Array<{ key: string; id: string }> } = { records: [], claims: [] };
  let [documents, bytes] = [0, 0];
  const add = (n: number, size: number) => {
    if ((chunk.records.length > 0 || chunk.claims.length > 0) && (documents + n > limit.documents || bytes + size > limit.bytes)) {
      out.push({ ...rest, ...chunk });
      [chunk, documents, bytes] = [{ records: [], claims: [] }, 0, 0];
    }
    [documents, bytes] = [documents + n, bytes + size];
    return chunk;
  };
  for (const r of records) add(1 + r.versions.length, utf8Bytes(r.head.body) + r.versions.reduce((n, v) => n + utf8Bytes(v.body ?? ''), 0)).records.push(r);
  for (const c of claims) add(1, 0).claims.push(c);
  out.push({ ...rest, ...chunk });
  return out;
}

/**
 * `IndexMaintenance.replaceCollections`, as one transaction. With `wholeDatabase` a first step
 * reads which collections the database has, so that the second counts them all.
 */
export function replaceCollections(
  dbName: string,
  replacements: readonly CollectionReplacement[],
  options: ReplaceCollectionsOptions,
): Transaction<{ replaced: boolean; held: number }> {
  const replace = (all: readonly CollectionReplacement[]): Transaction<{ replaced: boolean; held: number }> => ({
    reads: { headCounts: all.map((r) => ({ dbName, collection: r.collection })) },
    decide(rows) {
      const held = all.reduce((n, r) => n + (rows.headCounts.get(nsKey({ dbName, collection: r.collection })) ?? 0), 0);
      if (options.onlyIfEmpty && held > 0) return done({ replaced: false, held });
      const effects: Effect[] = [];
      for (const r of all) {
        const ns = { dbName, collection: r.collection };
        const counters = { dbName: options.countersDb, collection: r.collection };
        effects.push({ kind: 'clearNamespace', ns }, { kind: 'deleteCounters', ...counters, window: null });
        // Every record copied in is written to the blob store again (current.json, pending versions).
        if (r.from !== null) effects.push({ kind: 'copyNamespace', from: { dbName: r.from, collection: r.collection }, to: ns });
        if (r.counters) {
          effects.push(setCounts(counters.dbName, r.collection, null, r.counters.totals));
          for (const w of r.counters.windows) effects.push(setCounts(counters.dbName, r.collection, w.window, w.counts));
        }
      }
      return done({ replaced: true, held }, effects);
    },
  });
  if (!options.wholeDatabase) return replace(replacements);
  return {
    reads: { namespaces: [dbName] },
    decide(rows) {
      const listed = new Set(replacements.map((r) => r.collection));
      const others = rows.namespaces.filter((n) => n.dbName === dbName && !listed.has(n.collection));
      return replace([...replacements, ...others.map((n) => ({ collection: n.collection, from: null }))]);
    },
  };
}

/** `IndexMaintenance.countRecords`. */
export function countRecords(ns: Namespace): Transaction<number> {
  return { readOnly: true, reads: { headCounts: [ns] }, decide: (rows) => done(rows.headCounts.get(nsKey(ns)) ?? 0) };
}

/** `SyncOutbox.countPendingSync`. */
export function countPendingSync(dbName: string): Transaction<number> {
  return { readOnly: true, reads: { outboxCounts: [dbName] }, decide: (rows) => done(rows.outboxCounts.get(dbName) ?? 0) };
}

/** `IndexMaintenance.getCollectionVersion`: one namespace's last cv, without listing the database. */
export function collectionVersion(ns: Namespace): Transaction<number | null> {
  return { readOnly: true, reads: { collectionVersions: [ns] }, decide: (rows) => done(rows.collectionVersions.get(nsKey(ns)) ?? null) };
}

const utf8 = new TextEncoder();
/** The UTF-8 size of a body, what a store's size limits count (a string's length counts UTF-16 units). */
function utf8Bytes(text: string): number {
  return utf8.encode(text).length;
}
