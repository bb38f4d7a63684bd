import { ClosedError } from '../../errors.js';
import { byteOrder as bytes, decideStepsSync, keyed } from '../../store/driver-kit.js';
import type { Effect, IndexDriver, OutboxQuery, ReadRows, ReadSet, Transaction, VersionRange } from '../../contracts/index-driver.js';
import { nsKey, refKey, uploadKey } from '../../contracts/index-driver.js';
import type {
  ActorQuery,
  AsOfQuery,
  CounterWindow,
  CounterWindowQuery,
  DeadLetter,
  HeadQuery,
  HeadRow,
  Namespace,
  PendingBlob,
  PendingSync,
  UnarchivedRecord,
  VersionRow,
} from '../../contracts/index-store.js';
import { matches } from '../../foundation/filter.js';

export interface MemoryIndexDriverOptions {
  /** The store's clock (leases, upload stamps), in epoch milliseconds. Default `Date.now`. */
  now?: () => number;
  /** `false`: restores replace collection by collection, as on MongoDB (see `IndexDriver`). Default `true`. */
  replacesInOneTransaction?: boolean;
}

/** Everything one namespace holds; counters too, which need no written namespace. */
interface Space {
  readonly ns: Namespace;
  /** The last cv assigned; `null` while the namespace was never written. */
  cv: number | null;
  readonly heads: Map<string, HeadRow>;
  readonly versions: Map<string, Map<number, VersionRow>>;
  readonly claims: Map<string, string>;
  /** `order`: when the entry was made, so the queue keeps its order across rewrites. */
  readonly outbox: Map<string, { seq: number; order: number }>;
  readonly deadLetters: Map<string, { reason: string; failedAt: string; order: number }>;
  /** By `JSON.stringify([bucket, key])`. */
  readonly blobs: Map<string, { id: string; blob: PendingBlob }>;
  /** By `JSON.stringify([bucket, key])`, then token. */
  readonly uploads: Map<string, Map<string, { id: string; cleaning: boolean; stampedAt: number }>>;
  readonly locks: Map<string, { owner: string; expiresAt: number }>;
  readonly counters: Map<string, number>;
  readonly windows: Map<string, Map<string, number>>;
}

const copy = <T>(value: T): T => structuredClone(value);

const objectKey = (bucket: string, key: string) => JSON.stringify([bucket, key]);

/** Every change of a transaction, undone in reverse when a later effect fails. */
class Journal {
  readonly #undo: Array<() => void> = [];

  set<K, V>(map: Map<K, V>, key: K, value: V): void {
    const had = map.has(key);
    const previous = map.get(key) as V;
    this.#undo.push(had ? () => map.set(key, previous) : () => map.delete(key));
    map.set(key, value);
  }

  delete<K, V>(map: Map<K, V>, key: K): void {
    if (!map.has(key)) return;
    const previous = map.get(key) as V;
    this.#undo.push(() => map.set(key, previous));
    map.delete(key);
  }

  clear<K, V>(map: Map<K, V>): void {
    for (const key of [...map.keys()]) this.delete(map, key);
  }

  setCv(space: Space, cv: number | null): void {
    const previous = space.cv;
    this.#undo.push(() => (space.cv = previous));
    space.cv = cv;
  }

  rollback(): void {
    for (const undo of this.#undo.reverse()) undo();
  }
}

/**
 * The reference index driver: plain maps in this process, every transaction run to its end
 * synchronously (so no other call interleaves), its effects undone if one fails. It defines what
 * every other driver must do; the conformance suite holds them all to the same answers.
 */
export class MemoryIndexDriver implements IndexDriver {
  readonly name = 'memory';
  readonly multiProcess = false;
  readonly replacesInOneTransaction: boolean;
  readonly #held = new Map<string, Space>();
  #closed = false;
  readonly #now: () => number;
  /** Orders outbox entries and dead letters by when they were made, across namespaces. */
  #made = 0;

  constructor(options: MemoryIndexDriverOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.replacesInOneTransaction = options.replacesInOneTransaction ?? true;
  }

  async transact<T>(tx: Transaction<T>): Promise<T> {
    const outcome = decideStepsSync(tx, (reads) => this.#read(reads));
    const journal = new Journal();
    try {
      for (const effect of outcome.effects) this.#apply(effect, journal);
    } catch (err) {
      journal.rollback();
      throw err;
    }
    return outcome.result;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  /** Every namespace; unreachable after `close`, as a closed file or connection would be. */
  get #spaces(): Map<string, Space> {
    if (this.#closed) throw new ClosedError('The memory index store');
    return this.#held;
  }

  // ---- reads --------------------------------------------------------------------------------

  async getHead(ns: Namespace, id: string): Promise<HeadRow | null> {
    const head = this.#space(ns)?.heads.get(id);
    return head ? copy(head) : null;
  }

  async listVersions(ns: Namespace, id: string, range: VersionRange): Promise<VersionRow[]> {
    let rows = [...(this.#space(ns)?.versions.get(id)?.values() ?? [])].filter(
      (v) =>
        (range.beforeOv === undefined || v.ov < range.beforeOv) &&
        (range.afterOv === undefined || v.ov > range.afterOv) &&
        (!range.unarchived || !v.archived),
    );
    const at = range.at;
    if (at) {
      // The newest at or before the point: by (at, ov) for a time, by cv for a collection version.
      rows = 'at' in at ? rows.filter((v) => bytes(v.at, at.at) <= 0).sort((a, b) => bytes(b.at, a.at) || b.ov - a.ov) : rows.filter((v) => v.cv <= at.cv).sort((a, b) => b.cv - a.cv);
      return rows.slice(0, 1).map(copy);
    }
    rows.sort((a, b) => (range.order === 'asc' ? a.ov - b.ov : b.ov - a.ov));
    return rows.slice(0, range.limit ?? rows.length).map(copy);
  }

  async listHeads(ns: Namespace, query: HeadQuery): Promise<HeadRow[]> {
    const { field, direction } = query.sort;
    const value = (h: HeadRow) => (field === 'id' ? h.id : field === 'createdAt' ? h.createdAt : h.updatedAt);
    const order = (a: { value: string; id: string }, b: { value: string; id: string }) => (bytes(a.value, b.value) || bytes(a.id, b.id)) * direction;
    const after = query.after;
    return [...(this.#space(ns)?.heads.values() ?? [])]
      .filter((h) => (query.includeDeleted || !h.deleted) && (!query.filter || matches(query.filter, h.meta)))
      .filter((h) => !after || order({ value: value(h), id: h.id }, field === 'id' ? { value: after.id, id: after.id } : after) > 0)
      .sort((a, b) => order({ value: value(a), id: a.id }, { value: value(b), id: b.id }))
      .slice(0, query.limit)
      .map(copy);
  }

  async queryAt(ns: Namespace, query: AsOfQuery): Promise<VersionRow[]> {
    const out: VersionRow[] = [];
    const ids = [...(this.#space(ns)?.heads.keys() ?? [])].sort((a, b) => bytes(a, b) * query.direction);
    for (const id of ids) {
      if (out.length === query.limit) break;
      if (query.afterId !== undefined && bytes(id, query.afterId) * query.direction <= 0) continue;
      const [v] = await this.listVersions(ns, id, { at: { at: query.at } });
      if (v && (query.includeDeleted || !v.deleted) && (!query.filter || matches(query.filter, v.meta))) out.push(v);
    }
    return out;
  }

  async listVersionsByActor(ns: Namespace, actorId: string, query: ActorQuery): Promise<VersionRow[]> {
    const newestFirst = (a: VersionRow, b: { at: string; id: string; ov: number }) => bytes(b.at, a.at) || bytes(b.id, a.id) || b.ov - a.ov;
    const before = query.before;
    return [...(this.#space(ns)?.versions.values() ?? [])]
      .flatMap((versions) => [...versions.values()])
      .filter((v) => {
        const [id, type] = typeof v.actor === 'string' ? [v.actor, undefined] : [v.actor.identifier, v.actor.type];
        return (
          id === actorId &&
          (query.actorType === undefined || type === query.actorType) &&
          (query.from === undefined || bytes(v.at, query.from) >= 0) &&
          (query.to === undefined || bytes(v.at, query.to) <= 0) &&
          (!before || newestFirst(v, before) > 0)
        );
      })
      .sort(newestFirst)
      .slice(0, query.limit)
      .map(copy);
  }

  async listClaims(ns: Namespace, query: { key?: string; afterKey?: string; limit: number }): Promise<Array<{ key: string; id: string }>> {
    return [...(this.#space(ns)?.claims ?? [])]
      .filter(([key]) => (query.key === undefined || key === query.key) && (query.afterKey === undefined || bytes(key, query.afterKey) > 0))
      .sort(([a], [b]) => bytes(a, b))
      .slice(0, query.limit)
      .map(([key, id]) => ({ key, id }));
  }

  async listOutbox(dbName: string, query: OutboxQuery): Promise<PendingSync[]> {
    return this.#spacesOf(dbName)
      .filter((s) => query.collection === undefined || s.ns.collection === query.collection)
      .flatMap((s) => [...s.outbox].map(([id, entry]) => ({ collection: s.ns.collection, id, ...entry })))
      .filter(
        (e) =>
          (query.id === undefined || e.id === query.id) &&
          (query.afterId === undefined || bytes(e.id, query.afterId) > 0) &&
          (query.maxSeq === undefined || e.seq <= query.maxSeq),
      )
      .sort((a, b) => (query.order === 'id' ? bytes(a.id, b.id) : a.order - b.order))
      .slice(0, query.limit)
      .map(({ collection, id, seq }) => ({ collection, id, seq }));
  }

  async listDeadLetters(dbName: string, query: { limit: number }): Promise<DeadLetter[]> {
    return this.#deadLettersOf(dbName)
      .slice(0, query.limit)
      .map(({ collection, id, reason, failedAt }) => ({ collection, id, reason, failedAt }));
  }

  async listPendingBlobs(ns: Namespace, id: string | null, query?: { bucket: string; key: string }): Promise<PendingBlob[]> {
    return [...(this.#space(ns)?.blobs.values() ?? [])]
      .filter((b) => (id === null || b.id === id) && (!query || (b.blob.bucket === query.bucket && b.blob.key === query.key)))
      .map((b) => copy(b.blob))
      .sort((a, b) => bytes(a.key, b.key));
  }

  async getCounters(dbName: string, collection: string): Promise<Record<string, number>> {
    return Object.fromEntries(this.#space({ dbName, collection })?.counters ?? []);
  }

  async getCounterWindows(dbName: string, collection: string, query: CounterWindowQuery): Promise<CounterWindow[]> {
    const prefix = `${query.granularity}:`;
    return [...(this.#space({ dbName, collection })?.windows ?? [])]
      .filter(
        ([window]) =>
          window.startsWith(prefix) && bytes(window, query.from ?? '') >= 0 && (query.to === undefined || bytes(window, query.to) <= 0),
      )
      .sort(([a], [b]) => bytes(a, b))
      .map(([window, counts]) => ({ window, counts: Object.fromEntries([...counts].sort(([a], [b]) => bytes(a, b))) }));
  }

  async listNamespaces(dbName?: string): Promise<Array<Namespace & { cv: number }>> {
    return this.#namespaces(dbName);
  }

  #namespaces(dbName?: string): Array<Namespace & { cv: number }> {
    return [...this.#spaces.values()]
      .filter((s) => s.cv !== null && (dbName === undefined || s.ns.dbName === dbName))
      .sort((a, b) => bytes(a.ns.dbName, b.ns.dbName) || bytes(a.ns.collection, b.ns.collection))
      .map((s) => ({ ...s.ns, cv: s.cv! }));
  }

  async listUnarchivedRecords(
    dbName: string,
    query: { writtenBefore: string; after?: { collection: string; id: string }; limit: number },
  ): Promise<UnarchivedRecord[]> {
    const after = query.after;
    const out: UnarchivedRecord[] = [];
    for (const s of this.#spacesOf(dbName)) {
      for (const [id, versions] of s.versions) {
        const times = [...versions.values()].filter((v) => !v.archived).map((v) => v.at);
        if (times.length === 0) continue;
        const oldestAt = times.sort(bytes)[0]!;
        if (bytes(oldestAt, query.writtenBefore) > 0) continue;
        if (after && (bytes(s.ns.collection, after.collection) || bytes(id, after.id)) <= 0) continue;
        out.push({ collection: s.ns.collection, id, oldestAt });
      }
    }
    return out.sort((a, b) => bytes(a.collection, b.collection) || bytes(a.id, b.id)).slice(0, query.limit);
  }

  // ---- transactions: reads --------------------------------------------------------------------

  #read(reads: ReadSet): ReadRows {
    const now = this.#now();
    const ref = (r: Namespace & { id: string }) => refKey(r, r.id);
    const versionsOf = (r: Namespace & { id: string }) => [...(this.#space(r)?.versions.get(r.id)?.values() ?? [])];
    const { counterWindows: prune, staleUploads: stale } = reads;
    const uploads = [...this.#spaces.values()].flatMap((s) =>
      [...s.uploads].flatMap(([object, tokens]) => {
        const [bucket, key] = JSON.parse(object) as [string, string];
        return [...tokens].map(([token, u]) => ({ ...s.ns, bucket, key, token, ...u, ageMs: Math.max(0, now - u.stampedAt) }));
      }),
    );
    return {
      heads: keyed(reads.heads, ref, (r) => {
        const h = this.#space(r)?.heads.get(r.id);
        return h && { ov: h.ov, cv: h.cv, deleted: h.deleted, offloaded: h.body === '' };
      }),
      claims: keyed(reads.claims, (c) => refKey(c, c.key), (c) => this.#space(c)?.claims.get(c.key)),
      outbox: keyed(reads.outbox, ref, (r) => this.#space(r)?.outbox.get(r.id)?.seq),
      deadLetters: new Set((reads.deadLetters ?? []).filter((r) => this.#space(r)?.deadLetters.has(r.id)).map(ref)),
      allDeadLetters: reads.allDeadLetters === undefined ? [] : this.#deadLettersOf(reads.allDeadLetters).map(({ order: _order, ...letter }) => letter),
      unarchived: keyed(reads.unarchived, ref, (r) => versionsOf(r).filter((v) => !v.archived).length),
      versionCounts: keyed(reads.versionCounts, ref, (r) => versionsOf(r).filter((v) => v.ov < r.belowOv).length),
      collectionVersions: keyed(reads.collectionVersions, nsKey, (ns) => this.#space(ns)?.cv ?? undefined),
      counterWindows: [...(prune ? (this.#space(prune)?.windows.keys() ?? []) : [])]
        .filter((w) => (['day', 'week', 'month'] as const).some((g) => prune?.before[g] !== undefined && bytes(w, `${g}:`) >= 0 && bytes(w, prune.before[g]) < 0))
        .sort(bytes),
      locks: keyed(reads.locks, (l) => refKey(l, l.key), (l) => {
        const lock = this.#space(l)?.locks.get(l.key);
        return lock && { owner: lock.owner, expired: lock.expiresAt <= now };
      }),
      uploads: keyed(reads.uploads, (u) => uploadKey(u, u.bucket, u.key), (u) =>
        uploads.filter((r) => nsKey(r) === nsKey(u) && r.bucket === u.bucket && r.key === u.key).map(({ id, token, cleaning, ageMs }) => ({ id, token, cleaning, ageMs })),
      ),
      staleUploads: uploads
        .filter((u) => u.dbName === stale?.dbName && now - u.stampedAt >= stale.olderThanMs)
        .sort((a, b) => a.stampedAt - b.stampedAt || bytes(a.collection, b.collection) || bytes(a.bucket, b.bucket) || bytes(a.key, b.key) || bytes(a.token, b.token))
        .slice(0, stale?.limit)
        .map(({ collection, bucket, key, token, id, cleaning, ageMs }) => ({ collection, bucket, key, token, id, cleaning, ageMs })),
      headCounts: keyed(reads.headCounts, nsKey, (ns) => this.#space(ns)?.heads.size ?? 0),
      outboxCounts: keyed(reads.outboxCounts, (db) => db, (db) => this.#spacesOf(db).reduce((n, s) => n + s.outbox.size, 0)),
      namespaces: (reads.namespaces ?? []).flatMap((db) => this.#namespaces(db)),
    };
  }

  // ---- transactions: effects ------------------------------------------------------------------

  #apply(e: Effect, j: Journal): void {
    switch (e.kind) {
      case 'putHead':
        return j.set(this.#write(e.ns, j).heads, e.id, { id: e.id, ...copy(e.head) });
      case 'putVersion': {
        const versions = this.#write(e.ns, j).versions;
        const own = new Map(versions.get(e.version.id));
        if (own.has(e.version.ov)) throw new Error(`The version entry ${e.version.ov} of ${e.version.id} exists already`);
        own.set(e.version.ov, copy(e.version));
        return j.set(versions, e.version.id, own);
      }
      case 'deleteRecord': {
        const s = this.#write(e.ns, j);
        for (const table of e.tables) {
          if (table === 'versions') {
            const below = e.belowOv ?? Infinity;
            this.#updateVersions(e.ns, e.id, j, (own) => {
              for (const ov of own.keys()) if (ov < below) own.delete(ov);
            });
          } else if (table === 'claims' || table === 'pendingBlobs') {
            // Rows keyed otherwise (claim key, object key) that name the record.
            const rows: Map<string, string | { id: string }> = table === 'claims' ? s.claims : s.blobs;
            for (const [key, row] of [...rows]) if ((typeof row === 'string' ? row : row.id) === e.id) j.delete(rows, key);
          } else {
            j.delete(s[table] as Map<string, unknown>, e.id);
          }
        }
        return;
      }
      case 'dropBodies': {
        const ovs = e.ovs;
        if (ovs === null) {
          const heads = this.#write(e.ns, j).heads;
          const head = heads.get(e.id);
          return head && j.set(heads, e.id, { ...head, body: '' });
        }
        return this.#updateVersions(e.ns, e.id, j, (own) => {
          for (const ov of ovs) {
            const v = own.get(ov);
            if (v) own.set(ov, { ...v, archived: true, body: null });
          }
        });
      }
      case 'putClaim':
        return j.set(this.#write(e.ns, j).claims, e.key, e.id);
      case 'putOutbox': {
        const outbox = this.#write(e.ns, j).outbox;
        return j.set(outbox, e.id, { seq: e.seq, order: outbox.get(e.id)?.order ?? ++this.#made });
      }
      case 'putPendingBlob':
        return j.set(this.#write(e.ns, j).blobs, objectKey(e.blob.bucket, e.blob.key), { id: e.id, blob: copy(e.blob) });
      case 'deletePendingBlobs': {
        const blobs = this.#write(e.ns, j).blobs;
        for (const b of e.keys) j.delete(blobs, objectKey(b.bucket, b.key));
        return;
      }
      case 'putDeadLetter': {
        const letters = this.#write(e.ns, j).deadLetters;
        return j.set(letters, e.id, { reason: e.reason, failedAt: e.failedAt, order: letters.get(e.id)?.order ?? ++this.#made });
      }
      case 'counters': {
        const s = this.#write(e, j);
        // The totals are changed name by name; a window's counts as a copy, put back whole.
        const counts = e.window === null ? s.counters : new Map(s.windows.get(e.window));
        for (const [name, n] of Object.entries(e.counts)) j.set(counts, name, (e.add ? (counts.get(name) ?? 0) : 0) + n);
        return e.window === null ? undefined : j.set(s.windows, e.window, counts);
      }
      case 'deleteCounters': {
        const s = this.#write(e, j);
        if (e.window !== null) return j.delete(s.windows, e.window);
        j.clear(s.counters);
        return j.clear(s.windows);
      }
      case 'setCollectionVersion':
        return j.setCv(this.#write(e.ns, j), e.cv);
      case 'putLock':
        return j.set(this.#write(e.ns, j).locks, e.key, { owner: e.owner, expiresAt: this.#now() + e.leaseMs });
      case 'deleteLock':
        return j.delete(this.#write(e.ns, j).locks, e.key);
      case 'putUpload': {
        const uploads = this.#write(e.ns, j).uploads;
        const object = objectKey(e.bucket, e.key);
        const stampedAt = e.stamp === 'now' ? this.#now() : 0;
        return j.set(uploads, object, new Map(uploads.get(object)).set(e.row.token, { id: e.row.id, cleaning: e.row.cleaning, stampedAt }));
      }
      case 'deleteUpload': {
        const uploads = this.#write(e.ns, j).uploads;
        const object = objectKey(e.bucket, e.key);
        const tokens = new Map(uploads.get(object));
        if (!tokens.delete(e.token)) return;
        return tokens.size > 0 ? j.set(uploads, object, tokens) : j.delete(uploads, object);
      }
      case 'clearNamespace': {
        const s = this.#write(e.ns, j);
        for (const map of [s.heads, s.versions, s.claims, s.outbox, s.deadLetters]) j.clear(map as Map<string, unknown>);
        return j.setCv(s, null);
      }
      case 'copyNamespace': {
        const from = this.#space(e.from);
        const to = this.#write(e.to, j);
        if (!from) return;
        for (const [id, head] of from.heads) j.set(to.heads, id, copy(head));
        for (const [id, versions] of from.versions) j.set(to.versions, id, copy(versions));
        for (const [key, id] of from.claims) j.set(to.claims, key, id);
        if (from.cv !== null) j.setCv(to, from.cv);
        for (const id of [...from.heads.keys()].sort(bytes)) this.#apply({ kind: 'putOutbox', ns: e.to, id, seq: from.heads.get(id)!.cv }, j);
        return;
      }
    }
  }

  #updateVersions(ns: Namespace, id: string, j: Journal, change: (own: Map<number, VersionRow>) => void): void {
    const versions = this.#write(ns, j).versions;
    const before = versions.get(id);
    if (!before) return;
    const own = new Map(before);
    change(own);
    if (own.size > 0) j.set(versions, id, own);
    else j.delete(versions, id);
  }

  // ---- helpers --------------------------------------------------------------------------------

  #space(ns: Namespace): Space | undefined {
    return this.#spaces.get(nsKey(ns));
  }

  /** The namespace's space, made (in the journal) when missing. */
  #write(ns: Namespace, j: Journal): Space {
    const found = this.#space(ns);
    if (found) return found;
    const space: Space = {
      ns: { dbName: ns.dbName, collection: ns.collection },
      cv: null,
      heads: new Map(),
      versions: new Map(),
      claims: new Map(),
      outbox: new Map(),
      deadLetters: new Map(),
      blobs: new Map(),
      uploads: new Map(),
      locks: new Map(),
      counters: new Map(),
      windows: new Map(),
    };
    j.set(this.#spaces, nsKey(ns), space);
    return space;
  }

  #spacesOf(dbName: string): Space[] {
    return [...this.#spaces.values()].filter((s) => s.ns.dbName === dbName);
  }

  /** Dead letters of a database, oldest first (by failure time, then by when they were made). */
  #deadLettersOf(dbName: string): Array<DeadLetter & { order: number; headCv: number | null }> {
    return this.#spacesOf(dbName)
      .flatMap((s) => [...s.deadLetters].map(([id, d]) => ({ collection: s.ns.collection, id, ...d, headCv: s.heads.get(id)?.cv ?? null })))
      .sort((a, b) => bytes(a.failedAt, b.failedAt) || a.order - b.order);
  }
}
