import type { Effect, HeadState, ReadRows, ReadSet, Transaction, UploadRow } from '../contracts/index-driver.js';
import { isDecision, nsKey, refKey, uploadKey } from '../contracts/index-driver.js';
import type { CommitBatch, CommitResult, Namespace } from '../contracts/index-store.js';
import * as plans from './plans.js';

/**
 * Group commit: record commits that arrive while another is being committed, or in the same turn
 * of the event loop, go to the driver as one transaction, so that a burst of concurrent writers
 * pays one transaction and one fsync (one round trip set and one WAL flush on a server) instead of
 * one each.
 *
 * Each commit is still decided alone, by its own plan (`plans.commit`), in arrival order, over
 * the rows as the earlier commits of the group left them: a commit that conflicts (a stale
 * `expectedOv`, a claim held, an upload intent gone) gets its own refusal and contributes no
 * effect, and the others go on, exactly as if each had been its own transaction in that order.
 * What the group applies is the effects of the accepted commits, in order, atomically. When the
 * transaction itself fails (the file's write lock not had within the busy timeout, COMMIT refused,
 * a server connection lost with the outcome unknown), every commit of the group fails with that
 * error: none is acknowledged.
 *
 * Record commits are grouped; they all have the default durability (`'always'`), so a group
 * never mixes durability levels. The rows a commit's plan reads are heads, claims, upload intents
 * and collection versions; the group reads the union of its members' reads. Completed syncs of
 * the background blob sync (durability `'never'`) are grouped too, in a queue of their own, one
 * per record in a group (`completedSyncGroup`). Leases and the rest go to the driver alone.
 */

/** How much one group may carry: a group stays a transaction any backend can hold. */
export interface GroupLimits {
  /** Commits in one group. Default 64. */
  readonly members: number;
  /** Record writes over all its commits (a `createMany` of 1,000 is one commit of 1,000). Default 1,000. */
  readonly writes: number;
  /** UTF-8-ish size of the heads' and versions' bodies (string length). Default 8 MiB. */
  readonly bytes: number;
}

export const DEFAULT_GROUP_LIMITS: GroupLimits = { members: 64, writes: 1_000, bytes: 8 * 1024 * 1024 };

/** After the current turn of the event loop: Node's check phase, or a zero timer where a runtime has no `setImmediate`. */
const afterThisTurn: (run: () => void) => void =
  typeof globalThis.setImmediate === 'function' ? (run) => void globalThis.setImmediate(run) : (run) => void setTimeout(run, 0);

/** A queued item with its weight and its promise's settlers. */
interface Waiting<I, R> {
  readonly item: I;
  readonly writes: number;
  readonly bytes: number;
  readonly key: string | undefined;
  resolve(result: R): void;
  reject(err: unknown): void;
}

/** What a member of a group transaction got: its own result, its own error, or `alone` (its plan took a further step). */
export type MemberOutcome<R = CommitResult> = { readonly result: R } | { readonly error: unknown } | 'alone';

/** A group transaction of commits: the members' outcomes, in order. `group` is the number of commits it carries. */
export type GroupTransaction = Transaction<MemberOutcome[]> & { readonly group: number };

/** A record commit waiting for its group. */
export interface CommitItem {
  readonly ns: Namespace;
  readonly batch: CommitBatch;
}

/**
 * One transaction deciding every commit of `members` in order (see above). Its `decide` is pure
 * (a driver may call it again when it retries a transaction that lost a race).
 */
export function commitGroup(members: readonly CommitItem[]): GroupTransaction {
  const txs = members.map((m) => plans.commit(m.ns, m.batch));
  return {
    group: members.length,
    reads: unionReads(txs.map((tx) => tx.reads)),
    decide(rows) {
      const view = new RowsView(rows);
      const effects: Effect[] = [];
      const outcomes = txs.map((tx, i): MemberOutcome => {
        const { ns, batch } = members[i]!;
        let outcome;
        try {
          outcome = tx.decide(view.rows);
        } catch (error) {
          // A plan that throws fails its own commit only: it contributed nothing yet.
          return { error };
        }
        if (!isDecision(outcome)) return 'alone';
        effects.push(...outcome.effects);
        if (outcome.result.ok) view.committed(ns, batch, outcome.result.cvs);
        return { result: outcome.result };
      });
      return { effects, result: outcomes };
    },
  };
}

/** The read sets together: every list concatenated, each item once. */
function unionReads(sets: readonly ReadSet[]): ReadSet {
  const lists = new Map<string, Map<string, unknown>>();
  for (const set of sets) {
    for (const [kind, items] of Object.entries(set) as Array<[string, unknown]>) {
      if (items === undefined) continue;
      // Commit plans read lists of rows only; anything else would need a merge rule of its own.
      if (!Array.isArray(items)) throw new Error(`A grouped commit plan reads ${kind}, which is not a list`);
      let list = lists.get(kind);
      if (!list) lists.set(kind, (list = new Map()));
      for (const item of items as unknown[]) list.set(JSON.stringify(item), item);
    }
  }
  return Object.fromEntries([...lists].map(([kind, items]) => [kind, [...items.values()]])) as ReadSet;
}

/**
 * The rows a group read, as the accepted commits so far changed them: what the next member's
 * plan sees. Only what a commit plan reads is tracked (heads, claims, upload intents, collection
 * versions); it follows `RecordIndex.commit`'s contract, not the effects' vocabulary.
 */
class RowsView {
  readonly rows: ReadRows;
  readonly #heads: Map<string, HeadState>;
  readonly #claims: Map<string, string>;
  readonly #uploads: Map<string, readonly UploadRow[]>;
  readonly #cvs: Map<string, number>;

  constructor(read: ReadRows) {
    this.#heads = new Map(read.heads);
    this.#claims = new Map(read.claims);
    this.#uploads = new Map(read.uploads);
    this.#cvs = new Map(read.collectionVersions);
    this.rows = { ...read, heads: this.#heads, claims: this.#claims, uploads: this.#uploads, collectionVersions: this.#cvs };
  }

  /** Applies an accepted commit: its heads and cvs, the claims it took and released, the intents it used. */
  committed(ns: Namespace, batch: CommitBatch, cvs: readonly number[]): void {
    const ofNamespace = `${JSON.stringify([ns.dbName, ns.collection]).slice(0, -1)},`;
    batch.writes.forEach((write, i) => {
      const { id, head } = write;
      const key = refKey(ns, id);
      if (head) this.#heads.set(key, { ov: head.ov, cv: cvs[i]!, deleted: head.deleted, offloaded: false });
      else this.#heads.delete(key);
      for (const claim of write.claims ?? []) this.#claims.set(refKey(ns, claim.key), id);
      for (const u of write.uploads ?? []) {
        const k = uploadKey(ns, u.bucket, u.key);
        const left = (this.#uploads.get(k) ?? []).filter((r) => r.token !== u.token);
        this.#uploads.set(k, left);
      }
      // A record removed or deleted gives back every claim it holds in its namespace.
      if (!head || head.deleted) {
        for (const [k, holder] of this.#claims) if (holder === id && k.startsWith(ofNamespace)) this.#claims.delete(k);
      }
    });
    const last = cvs.at(-1);
    if (last !== undefined) this.#cvs.set(nsKey(ns), last);
  }
}

/** A record's completed sync (`SyncOutbox.completeSync`) waiting for its group. */
export interface CompletedSyncItem {
  readonly ns: Namespace;
  readonly id: string;
  readonly done: Parameters<typeof plans.completeSync>[2];
}

/**
 * Completed syncs of several records as one transaction: the blob sync finishes records side by
 * side, and each marks its versions archived and clears its outbox entry. A group never holds
 * two of one record (the queue keeps them apart), so each is decided on rows no other member
 * changes, exactly as alone. They all have the same durability (`'never'`: a crash that undoes
 * one leaves the record queued, and its objects are written again).
 */
export function completedSyncGroup(members: readonly CompletedSyncItem[]): Transaction<Array<MemberOutcome<boolean>>> & { readonly completedSyncs: number } {
  const txs = members.map((m) => plans.completeSync(m.ns, m.id, m.done));
  const durability = txs[0]?.durability;
  if (txs.some((tx) => tx.durability !== durability)) throw new Error('Completed syncs of different durability cannot share a transaction');
  return {
    completedSyncs: members.length,
    reads: unionReads(txs.map((tx) => tx.reads)),
    ...(durability === undefined ? {} : { durability }),
    decide(rows) {
      const effects: Effect[] = [];
      const result = txs.map((tx): MemberOutcome<boolean> => {
        let outcome;
        try {
          outcome = tx.decide(rows);
        } catch (error) {
          return { error };
        }
        if (!isDecision(outcome)) return 'alone';
        effects.push(...outcome.effects);
        return { result: outcome.result };
      });
      return { effects, result };
    },
  };
}

/** How a queue turns its items into transactions (see `GroupQueue`). */
export interface Grouping<I, R> {
  /** One item as its own transaction (a group of one, or an item whose plan took a further step). */
  alone(item: I): Transaction<R>;
  /** Several items as one transaction, each answered alone. */
  group(items: readonly I[]): Transaction<Array<MemberOutcome<R>>>;
  /** What an item weighs against the limits. */
  weight(item: I): { writes: number; bytes: number };
  /** Items of one key never share a group (their plans would read rows an earlier one changes). */
  key?(item: I): string;
}

/** The weight of a commit: its record writes and the size of their bodies. */
export function commitWeight(item: CommitItem): { writes: number; bytes: number } {
  let bytes = 0;
  for (const w of item.batch.writes) bytes += (w.head?.body.length ?? 0) + (w.version?.body.length ?? 0);
  return { writes: item.batch.writes.length, bytes };
}

/**
 * One `GroupQueue` per key (a namespace), made when a key's first item comes and dropped once
 * it is idle, so that groups of different keys go to the driver side by side.
 */
export class KeyedGroupQueues<I, R> {
  readonly #queues = new Map<string, GroupQueue<I, R>>();
  readonly #make: () => GroupQueue<I, R>;
  readonly #keyOf: (item: I) => string;

  constructor(make: () => GroupQueue<I, R>, keyOf: (item: I) => string) {
    this.#make = make;
    this.#keyOf = keyOf;
  }

  submit(item: I): Promise<R> {
    const key = this.#keyOf(item);
    let queue = this.#queues.get(key);
    if (!queue) {
      const made = this.#make();
      this.#queues.set(key, (queue = made));
      // Forget the queue once it has drained, unless a newer one took its key meanwhile.
      const forget = (): void =>
        void made.settled().then(() => {
          if (this.#queues.get(key) !== made) return;
          if (made.idle) this.#queues.delete(key);
          else forget();
        });
      queueMicrotask(forget);
    }
    return queue.submit(item);
  }

  /** Resolves once no queue has anything waiting or in flight. */
  async settled(): Promise<void> {
    while (this.#queues.size > 0) await Promise.all([...this.#queues.values()].map((q) => q.settled()));
  }
}

/**
 * Transactions of one index store, grouped (see above): at most one group in flight; what
 * arrives meanwhile, or in the same turn of the event loop, waits for the next group.
 */
export class GroupQueue<I, R> {
  readonly #transact: <T>(tx: Transaction<T>) => Promise<T>;
  readonly #grouping: Grouping<I, R>;
  readonly #limits: GroupLimits;
  #waiting: Array<Waiting<I, R>> = [];
  #busy = false;
  #idle: Array<() => void> = [];

  constructor(transact: <T>(tx: Transaction<T>) => Promise<T>, grouping: Grouping<I, R>, limits: GroupLimits = DEFAULT_GROUP_LIMITS) {
    this.#transact = transact;
    this.#grouping = grouping;
    this.#limits = limits;
  }

  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const { writes, bytes } = this.#grouping.weight(item);
      this.#waiting.push({ item, writes, bytes, key: this.#grouping.key?.(item), resolve, reject });
      if (!this.#busy) {
        this.#busy = true;
        // The turn's other writers join: a writer that gets its answer and writes again does so
        // in microtasks, which all run before the check phase.
        afterThisTurn(() => void this.#drain());
      }
    });
  }

  /** Nothing waits and no group is in flight. */
  get idle(): boolean {
    return !this.#busy;
  }

  /** Resolves once nothing waits and no group is in flight (closing waits for it). */
  settled(): Promise<void> {
    if (!this.#busy) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  async #drain(): Promise<void> {
    while (this.#waiting.length > 0) await this.#run(this.#take());
    this.#busy = false;
    for (const wake of this.#idle.splice(0)) wake();
  }

  /** The next group: the oldest items, as many as the limits allow (at least one), up to a second item of one key. */
  #take(): Array<Waiting<I, R>> {
    const limits = this.#limits;
    const keys = new Set<string>();
    let [n, writes, bytes] = [0, 0, 0];
    for (const m of this.#waiting) {
      if (n > 0 && (n + 1 > limits.members || writes + m.writes > limits.writes || bytes + m.bytes > limits.bytes)) break;
      if (m.key !== undefined) {
        if (keys.has(m.key)) break;
        keys.add(m.key);
      }
      [n, writes, bytes] = [n + 1, writes + m.writes, bytes + m.bytes];
    }
    return this.#waiting.splice(0, n);
  }

  async #run(group: Array<Waiting<I, R>>): Promise<void> {
    if (group.length === 1) return this.#alone(group[0]!);
    let outcomes: Array<MemberOutcome<R>>;
    try {
      outcomes = await this.#transact(this.#grouping.group(group.map((m) => m.item)));
    } catch (err) {
      // The transaction failed as a whole: nothing of it is committed, or its outcome is unknown.
      for (const m of group) m.reject(err);
      return;
    }
    const alone: Array<Waiting<I, R>> = [];
    outcomes.forEach((outcome, i) => {
      const m = group[i]!;
      if (outcome === 'alone') alone.push(m);
      else if ('error' in outcome) m.reject(outcome.error);
      else m.resolve(outcome.result);
    });
    for (const m of alone) await this.#alone(m);
  }

  async #alone(m: Waiting<I, R>): Promise<void> {
    try {
      m.resolve(await this.#transact(this.#grouping.alone(m.item)));
    } catch (err) {
      m.reject(err);
    }
  }
}
