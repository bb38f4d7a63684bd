import { sha256 } from '../../foundation/digest.js';
import type { PoolClient, QueryResult, QueryResultRow } from 'pg';
import { type Effect, nsKey, type ReadRows, type ReadSet } from '../../contracts/index-driver.js';
import type { Namespace } from '../../contracts/index-store.js';
import { byteOrder, groupBy } from '../../store/driver-kit.js';
import { type EffectScope, renderEffect } from './postgres-effects.js';
import { inlineParams } from './postgres-inline.js';
import { readRows, type ReadScope } from './postgres-read-set.js';
import { createSchemaInTransaction, schemaNameFor, schemaState, tablesOf, type Tables } from './postgres-schema.js';
import type { IndexSession } from './postgres-statements.js';

/**
 * What to ask the server about when the answer to a transaction's COMMIT is lost: its id (see
 * `PostgresIndexDriver`, `#commitStatus`, for what the answer can and cannot tell).
 */
export interface CommitTicket {
  readonly xid: string;
}

/** The select-list column that returns a `CommitTicket`. */
export const COMMIT_TICKET = 'txid_current()::text AS xid';

/**
 * One attempt of a transaction on one connection: its locks, reads and effects (see
 * `PostgresIndexDriver` for the locking scheme). The first statement carries BEGIN, the reads
 * each take a round trip, and the effects are rendered with their values (`postgres-inline.ts`)
 * to go with COMMIT in one simple query.
 */
export class PostgresTransaction implements ReadScope, EffectScope {
  readonly #s: IndexSession;
  readonly #client: PoolClient;
  /** `nsKey` → cv (null: never written) of every namespace locked so far. */
  readonly #locked = new Map<string, number | null>();
  /** Schemas this transaction created: ready for everyone once it commits. */
  readonly #created = new Set<string>();
  /** Lease keys (advisory lock keys) locked so far. */
  readonly #leases = new Set<string>();
  /** A read-only plan: one snapshot, no locks, no schema created. */
  readonly #readOnly: boolean;
  /** This transaction's id, as the first namespace lock returned it. */
  ticket: CommitTicket | undefined;
  /** `BEGIN …`, until the first statement carries it to the server. */
  #prelude: string | undefined;
  /** Statements of the effects, rendered with their values. */
  #writes: string[] = [];

  constructor(s: IndexSession, client: PoolClient, prelude: string, readOnly: boolean) {
    this.#s = s;
    this.#client = client;
    this.#prelude = prelude;
    this.#readOnly = readOnly;
  }

  /** Whether the transaction has begun on the server. */
  get started(): boolean {
    return this.#prelude === undefined;
  }

  get createdSchemas(): boolean {
    return this.#created.size > 0;
  }

  /** Sends statements as one simple query (after the prelude, if it has not gone yet); the rows of the last one. */
  async send(statements: readonly string[]): Promise<Array<Record<string, unknown>>> {
    const all = this.#prelude === undefined ? statements : [this.#prelude, ...statements];
    this.#prelude = undefined;
    const text = all.join(';\n');
    this.#s.session.onQuery?.(text, []);
    const result = (await this.#client.query(text)) as unknown as QueryResult | QueryResult[];
    const last = Array.isArray(result) ? result.at(-1) : result;
    return (last?.rows ?? []) as Array<Record<string, unknown>>;
  }

  committed(): void {
    for (const schema of this.#created) this.#s.ready.add(schema);
  }

  read(reads: ReadSet): Promise<ReadRows> {
    return readRows(this, reads);
  }

  /** The effects as statements, in order; the locks and schemas they need are taken meanwhile. */
  async prepare(effects: readonly Effect[]): Promise<string[]> {
    this.#writes = [];
    for (const effect of effects) await renderEffect(this, effect);
    return this.#writes;
  }

  async query<R extends QueryResultRow>(text: string, values: readonly unknown[] = []): Promise<R[]> {
    // The first statement carries BEGIN: rendered, so both go in one round trip.
    if (this.#prelude !== undefined) return (await this.send([inlineParams(text, values)])) as R[];
    return (await this.#s.session.query<R>(text, values, this.#client)).rows;
  }

  emit(text: string, values: readonly unknown[] = []): void {
    this.#writes.push(inlineParams(text, values));
  }

  cvOf(ns: Namespace): number | null | undefined {
    return this.#locked.get(nsKey(ns));
  }

  setCv(ns: Namespace, cv: number | null): void {
    this.#locked.set(nsKey(ns), cv);
  }

  async tables(dbName: string, wanted: boolean): Promise<Tables | null> {
    const schema = schemaNameFor(this.#s.prefix, dbName);
    if (this.#s.ready.has(schema) || this.#created.has(schema)) return tablesOf(schema);
    // What follows runs on the connection directly: the transaction must have begun.
    if (this.#prelude !== undefined) await this.send([]);
    if ((await schemaState(this.#client, schema, this.#s.prefix, dbName)) === 'ready') {
      // Visible to this statement, so committed by its creator.
      this.#s.ready.add(schema);
      return tablesOf(schema);
    }
    if (!wanted || this.#readOnly) return null;
    await createSchemaInTransaction(this.#client, schema, this.#s.prefix, dbName);
    this.#created.add(schema);
    return tablesOf(schema);
  }

  async target(ns: Namespace): Promise<Tables> {
    if (!this.#locked.has(nsKey(ns))) await this.lock([ns]);
    return (await this.tables(ns.dbName, true))!;
  }

  /**
   * Locks the namespaces' rows (creating them, and their database's schema, when missing), in
   * (schema, collection) order, so two transactions that lock the same set never deadlock. The
   * upsert always takes the row lock (waiting for its holder) and returns the latest committed cv.
   */
  async lock(namespaces: readonly Namespace[]): Promise<void> {
    const wanted = groupBy(
      namespaces.filter((ns) => !this.#locked.has(nsKey(ns))),
      (ns) => ns.dbName,
    );
    const dbs = [...wanted.keys()].map((db) => ({ db, schema: schemaNameFor(this.#s.prefix, db) })).sort((a, b) => byteOrder(a.schema, b.schema));
    for (const { db } of dbs) {
      const colls = [...new Set(wanted.get(db)!.map((ns) => ns.collection))].sort(byteOrder);
      let rows: Array<{ coll: string; cv: number | null } & Partial<CommitTicket>>;
      if (this.#readOnly) {
        // Nothing to lock: the collection versions, as of the snapshot.
        for (const collection of colls) this.setCv({ dbName: db, collection }, null);
        const t = await this.tables(db, false);
        if (!t) continue;
        rows = await this.query(`SELECT coll, cv FROM ${t.namespaces} WHERE coll = ANY($1::text[])`, [colls]);
      } else {
        const t = (await this.tables(db, true))!;
        rows = await this.query(
          `INSERT INTO ${t.namespaces} AS n (coll) SELECT c FROM unnest($1::text[]) WITH ORDINALITY AS u(c, i) ORDER BY i
           ON CONFLICT (coll) DO UPDATE SET cv = n.cv RETURNING coll, cv, ${COMMIT_TICKET}`,
          [colls],
        );
        const [first] = rows;
        if (first?.xid !== undefined) this.ticket ??= { xid: first.xid };
      }
      for (const r of rows) this.setCv({ dbName: db, collection: r.coll }, r.cv);
    }
  }

  /**
   * Locks leases by key, in key order: a transaction-scoped advisory lock per (schema,
   * collection, key), so a lease (which may not exist yet) is taken by one owner at a time
   * without queuing behind the namespace's commits. Every transaction that reads or writes a
   * lease takes it, so all of them agree. Two keys whose 64-bit hashes collide only wait for
   * each other.
   */
  async lockLeases(keys: ReadonlyArray<Namespace & { readonly key: string }>): Promise<void> {
    const wanted = new Set<string>();
    for (const k of keys) {
      const lock = leaseLockKey(schemaNameFor(this.#s.prefix, k.dbName), k.collection, k.key);
      if (!this.#leases.has(lock)) wanted.add(lock);
    }
    if (wanted.size === 0 || this.#readOnly) return;
    const sorted = [...wanted].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0));
    await this.query('SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) WITH ORDINALITY AS u(k, i) ORDER BY i', [sorted]);
    for (const lock of sorted) this.#leases.add(lock);
  }
}

/** The advisory lock key of a lease: 64 bits of a hash, as a signed decimal (PostgreSQL's bigint). */
function leaseLockKey(schema: string, collection: string, key: string): string {
  const digest = sha256(`xronox.lease\u0000${schema}\u0000${collection}\u0000${key}`);
  return new DataView(digest.buffer, digest.byteOffset, 8).getBigInt64(0).toString();
}
