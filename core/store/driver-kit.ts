import { type Decision, type HeadState, isDecision, nsKey, type ReadRows, type ReadSet, type Transaction, type UploadRow } from '../contracts/index-driver.js';
import type { CounterWindow, DeadLetter, Namespace } from '../contracts/index-store.js';

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

/** The lowest string above every counter window key starting with `prefix` (prefixes end in `:`, so `;` follows). */
export function windowRangeEnd(prefix: string): string {
  return `${prefix.slice(0, -1)};`;
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
export const MAX_PLAN_STEPS = 16;

/** Reads what each step of `tx` names and decides, until a step returns its decision (at most `MAX_PLAN_STEPS`). */
export async function decideSteps<T>(tx: Transaction<T>, read: (reads: ReadSet) => Promise<ReadRows>): Promise<Decision<T>> {
  let step = tx;
  for (let steps = 1; ; steps++) {
    const outcome = step.decide(await read(step.reads));
    if (isDecision(outcome)) return outcome;
    if (steps >= MAX_PLAN_STEPS) throw new Error(`A transaction plan took more than ${MAX_PLAN_STEPS} steps`);
    step = outcome;
  }
}
