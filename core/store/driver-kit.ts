import type { Decision, HeadState, ReadRows, ReadSet, RecordRef, Transaction, UploadRow, VersionRange } from '../contracts/index-driver.js';
import { isDecision, nsKey, refKey, uploadKey } from '../contracts/index-driver.js';
import type { CounterWindow, CounterWindowBounds, CounterWindowGranularity, DeadLetter, Namespace } from '../contracts/index-store.js';

/**
 * Helpers every index driver uses to build the `ReadRows` of a transaction, so that each one
 * writes only how its backend reads (see `core/contracts/index-driver.ts`).
 */

/** `ReadRows` while a driver fills it in. */
export interface RowsBuilder extends ReadRows {
  heads: Map<string, HeadState>;
  claims: Map<string, string>;
  outbox: Map<string, number>;
  deadLetters: Set<string>;
  allDeadLetters: Array<DeadLetter & { headCv: number | null }>;
  unarchived: Map<string, number>;
  versionCounts: Map<string, number>;
  collectionVersions: Map<string, number>;
  counterWindows: string[];
  locks: Map<string, { owner: string; expired: boolean }>;
  uploads: Map<string, UploadRow[]>;
  staleUploads: Array<UploadRow & { collection: string; bucket: string; key: string }>;
  headCounts: Map<string, number>;
  outboxCounts: Map<string, number>;
  namespaces: Array<Namespace & { cv: number }>;
}

/** Rows with nothing read yet. */
export function emptyRows(): RowsBuilder {
  return {
    heads: new Map(),
    claims: new Map(),
    outbox: new Map(),
    deadLetters: new Set(),
    allDeadLetters: [],
    unarchived: new Map(),
    versionCounts: new Map(),
    collectionVersions: new Map(),
    counterWindows: [],
    locks: new Map(),
    uploads: new Map(),
    staleUploads: [],
    headCounts: new Map(),
    outboxCounts: new Map(),
    namespaces: [],
  };
}

/** A `Map` of the items that have a value, by their key. */
export function keyed<I, V>(items: readonly I[] | undefined, key: (item: I) => string, value: (item: I) => V | undefined): Map<string, V> {
  const out = new Map<string, V>();
  for (const item of items ?? []) {
    const v = value(item);
    if (v !== undefined) out.set(key(item), v);
  }
  return out;
}

/** Counter rows ordered by window, one per (window, name), as the windows they make up. */
export function groupWindows(rows: ReadonlyArray<{ win: string; name: string; value: number }>): CounterWindow[] {
  const out: CounterWindow[] = [];
  for (const r of rows) {
    let last = out[out.length - 1];
    if (last?.window !== r.win) out.push((last = { window: r.win, counts: {} }));
    last.counts[r.name] = r.value;
  }
  return out;
}

/** UTF-8 byte order, the order of every string comparison of the port (SQLite's BINARY). */
export function byteOrder(a: string, b: string): number {
  return a === b ? 0 : Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Namespaces by database, then collection, in byte order (how `listNamespaces` answers). */
export function namespaceOrder(a: Namespace, b: Namespace): number {
  return byteOrder(a.dbName, b.dbName) || byteOrder(a.collection, b.collection);
}

/** The items by key, each list in the items' order, the keys in order of first appearance. */
export function groupBy<T>(items: Iterable<T>, keyOf: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const list = out.get(key);
    if (list) list.push(item);
    else out.set(key, [item]);
  }
  return out;
}

/** The items of a read-set list by namespace, in order of first appearance (what a driver reads per table or collection). */
export function byNamespace<T extends Namespace>(items: readonly T[] | undefined): Array<[Namespace, T[]]> {
  return [...groupBy(items ?? [], nsKey).values()].map((list) => [{ dbName: list[0]!.dbName, collection: list[0]!.collection }, list]);
}

/** Work done once per key per process; a key whose work failed is tried again by the next caller. */
export class OnceEach {
  readonly #runs = new Map<string, Promise<void>>();
  readonly #done = new Set<string>();

  done(key: string): boolean {
    return this.#done.has(key);
  }

  run(key: string, work: () => Promise<void>): Promise<void> {
    let running = this.#runs.get(key);
    if (!running) {
      running = work().then(
        () => void this.#done.add(key),
        (err: unknown) => {
          this.#runs.delete(key);
          throw err;
        },
      );
      this.#runs.set(key, running);
    }
    return running;
  }
}

/** A plan takes a few steps (see `Transaction.decide`); more is a plan that loops. */
const MAX_PLAN_STEPS = 16;

/**
 * The next step of `tx` after `steps` steps, or its decision: the rule both loops below share.
 * Too many steps, or effects from a plan marked read-only, are bugs in a plan (thrown, so the
 * driver rolls back).
 */
function nextStep<T>(tx: Transaction<T>, outcome: Decision<T> | Transaction<T>, steps: number): Transaction<T> | Decision<T> {
  if (isDecision(outcome)) {
    if (tx.readOnly && outcome.effects.length > 0) throw new Error('A plan marked readOnly returned effects');
    return outcome;
  }
  if (steps >= MAX_PLAN_STEPS) throw new Error(`A transaction plan took more than ${MAX_PLAN_STEPS} steps`);
  return outcome;
}

/** Reads what each step of `tx` names (inside the driver's transaction) and decides, until a step returns its decision. */
export async function decideSteps<T>(tx: Transaction<T>, read: (reads: ReadSet) => Promise<ReadRows>): Promise<Decision<T>> {
  let step: Transaction<T> | Decision<T> = tx;
  for (let steps = 1; !isDecision(step); steps++) step = nextStep(tx, step.decide(await read(step.reads)), steps);
  return step;
}

/** `decideSteps` for a driver whose reads are synchronous (SQLite inside its write lock). */
export function decideStepsSync<T>(tx: Transaction<T>, read: (reads: ReadSet) => ReadRows): Decision<T> {
  let step: Transaction<T> | Decision<T> = tx;
  for (let steps = 1; !isDecision(step); steps++) step = nextStep(tx, step.decide(read(step.reads)), steps);
  return step;
}

type KeyRef = Namespace & { readonly key: string };
type ObjectRef = Namespace & { readonly bucket: string; readonly key: string };

/**
 * How a driver that reads row by row reads each kind of a read set (see `readRowByRow`): plain
 * functions, called without `this`; `now` is the store's clock in milliseconds, read once per
 * step. `undefined` means no row.
 */
export interface RowReader {
  head(r: RecordRef): HeadState | undefined;
  claim(c: KeyRef): string | undefined;
  outbox(r: RecordRef): number | undefined;
  hasDeadLetter(r: RecordRef): boolean;
  unarchived(r: RecordRef): number | undefined;
  versionsBelow(r: RecordRef & { readonly belowOv: number }): number | undefined;
  collectionVersion(ns: Namespace): number | undefined;
  lock(l: KeyRef, now: number): { owner: string; expired: boolean } | undefined;
  uploads(u: ObjectRef, now: number): UploadRow[];
  headCount(ns: Namespace): number | undefined;
  outboxCount(dbName: string): number | undefined;
  allDeadLetters(dbName: string): RowsBuilder['allDeadLetters'];
  counterWindows(query: NonNullable<ReadSet['counterWindows']>): string[];
  staleUploads(query: NonNullable<ReadSet['staleUploads']>, now: number): RowsBuilder['staleUploads'];
  namespaces(dbName: string): RowsBuilder['namespaces'];
}

// Kinds a step does not read share these (`ReadRows` is read-only).
const NO_MAP: ReadonlyMap<string, never> = new Map<string, never>();
const NO_SET: ReadonlySet<string> = new Set();
const NO_LIST: readonly never[] = Object.freeze([]);
const recordKey = (r: RecordRef) => refKey(r, r.id);
const keyKey = (k: KeyRef) => refKey(k, k.key);
const objectKey = (u: ObjectRef) => uploadKey(u, u.bucket, u.key);

/** A step's `ReadRows`, read item by item through `reader`; only the kinds `reads` names are read. */
export function readRowByRow(reads: ReadSet, reader: RowReader, now: number): ReadRows {
  const { counterWindows: prune, staleUploads: stale, allDeadLetters: lettersOf, namespaces } = reads;
  return {
    heads: each(reads.heads, recordKey, reader.head),
    claims: each(reads.claims, keyKey, reader.claim),
    outbox: each(reads.outbox, recordKey, reader.outbox),
    deadLetters: reads.deadLetters?.length ? new Set(reads.deadLetters.filter(reader.hasDeadLetter).map(recordKey)) : NO_SET,
    allDeadLetters: lettersOf === undefined ? NO_LIST : reader.allDeadLetters(lettersOf),
    unarchived: each(reads.unarchived, recordKey, reader.unarchived),
    versionCounts: each(reads.versionCounts, recordKey, reader.versionsBelow),
    collectionVersions: each(reads.collectionVersions, nsKey, reader.collectionVersion),
    counterWindows: prune === undefined ? NO_LIST : reader.counterWindows(prune),
    locks: each(reads.locks, keyKey, reader.lock, now),
    uploads: each(reads.uploads, objectKey, reader.uploads, now),
    staleUploads: stale === undefined ? NO_LIST : reader.staleUploads(stale, now),
    headCounts: each(reads.headCounts, nsKey, reader.headCount),
    outboxCounts: each(reads.outboxCounts, (dbName) => dbName, reader.outboxCount),
    namespaces: namespaces?.length ? namespaces.flatMap(reader.namespaces) : NO_LIST,
  };
}

/** The rows of the items a step names, by their key; nothing named, nothing allocated. */
function each<I, V>(items: readonly I[] | undefined, key: (item: I) => string, read: (item: I, now: number) => V | undefined, now = 0): ReadonlyMap<string, V> {
  if (items === undefined || items.length === 0) return NO_MAP;
  const out = new Map<string, V>();
  for (const item of items) {
    const row = read(item, now);
    if (row !== undefined) out.set(key(item), row);
  }
  return out;
}

/** Keys of a granularity's windows are at least `from` (`day:`) and below `below` (`day;`: `;` follows `:`). */
export function windowKeyRange(granularity: CounterWindowGranularity): { from: string; below: string } {
  return { from: `${granularity}:`, below: `${granularity};` };
}

/** The key ranges a prune reads (`ReadSet.counterWindows`): each bounded granularity's windows below its bound. */
export function windowRangesBelow(before: CounterWindowBounds): Array<{ from: string; below: string }> {
  return (['day', 'week', 'month'] as const).flatMap((g) => {
    const bound = before[g];
    return bound === undefined ? [] : [{ from: `${g}:`, below: bound }];
  });
}

/**
 * The one entry a version range asks for, when it is a point read (the hot reads, which a driver
 * answers with a prepared statement): an ov (`IndexRuntime.getVersion` asks for the entries
 * between ov - 1 and ov + 1), or the newest entry at a time or a cv (`findVersionAt`).
 */
export function versionPoint(range: VersionRange): { by: 'ov' | 'cv'; value: number } | { by: 'at'; value: string } | undefined {
  const { at, beforeOv, afterOv } = range;
  if (range.unarchived) return undefined;
  if (at !== undefined) {
    if (beforeOv !== undefined || afterOv !== undefined) return undefined;
    return 'at' in at ? { by: 'at', value: at.at } : { by: 'cv', value: at.cv };
  }
  const oneOv = beforeOv !== undefined && afterOv !== undefined && beforeOv - afterOv === 2 && (range.limit ?? 1) >= 1;
  return oneOv ? { by: 'ov', value: afterOv + 1 } : undefined;
}
