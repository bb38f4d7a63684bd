/**
 * A reliability client: random create / update / enrich / delete / restore operations on a
 * versioned collection, each conditioned on the head it just read (optimistic locking), each
 * logged (see `history-log.ts`) so a checker can later hold the store to every acknowledged
 * result. Several clients share a small set of record ids, so conflicts really happen.
 *
 * Every write carries its operation tag as `reason`, which is how the checker tells which
 * operation wrote each stored version.
 */
import type { Collection } from '../../../core/engine/collection.js';
import type { Xronox } from '../../../core/xronox.js';
import { NotFoundError, StorageError, VersionConflictError } from '../../../core/errors.js';
import { seededRandom } from '../../support/random.js';
import { type IntentEntry, type JsonData, OP_KINDS, type OpKind, type OpLog } from './history-log.js';

export const RELIABILITY_TENANT = 'acme';
export const RELIABILITY_DB = 'rt_reliability';
export const RELIABILITY_COLLECTION = 'orders';

/**
 * Where the reliability runs keep their index: the embedded default (one SQLite file in the run's
 * folder) or a PostgreSQL server, in schemas named by a prefix the run made up (and drops).
 */
export type ReliabilityBackend = { kind: 'sqlite' } | { kind: 'postgres'; uri: string; schemaPrefix: string };

/** One index store (SQLite by default) and one blob folder, which every client opens. */
export function reliabilityConfig(dir: string): ReturnType<typeof configOn<{ sqlitePath: string }>>;
export function reliabilityConfig(dir: string, backend: ReliabilityBackend): ReturnType<typeof configOn<{ sqlitePath?: string; postgresUri?: string; schemaPrefix?: string; maxConnections?: number }>>;
export function reliabilityConfig(dir: string, backend: ReliabilityBackend = { kind: 'sqlite' }) {
  // A few connections per process, as a deployment sizes them: the runs start many processes
  // against one server (crash lanes, writer processes) beside other test files, and PostgreSQL
  // refuses connections past max_connections (100 by default).
  return configOn(dir, backend.kind === 'sqlite' ? { sqlitePath: `${dir}/xronox.sqlite` } : { postgresUri: backend.uri, schemaPrefix: backend.schemaPrefix, maxConnections: 3 });
}

function configOn<C extends object>(dir: string, local: C) {
  return {
    dbConnections: { local },
    localStorage: { basePath: `${dir}/blobs`, enabled: true },
    databases: { runtime: { tenantDatabases: [{ tenantId: RELIABILITY_TENANT, dbConnRef: 'local', dbName: RELIABILITY_DB }] } },
  };
}

export const ordersRoute = { databaseType: 'runtime', tier: 'tenant', tenantId: RELIABILITY_TENANT, collection: RELIABILITY_COLLECTION } as const;

export interface ClientOptions {
  /** Short and unique over the run (a property-name fragment): `p0a`, `t1b`, … */
  client: string;
  seed: number;
  /** Operations to issue (acknowledged or rejected). */
  ops: number;
  /** Stop once this many operations were acknowledged, even if fewer than `ops` were issued. */
  acks?: number;
  /** Records every client works on: the contention set. */
  sharedIds: readonly string[];
  log: OpLog;
  /** Called after each ack line is written, with the number of acks so far. */
  onAck?: (acks: number) => void;
  /** Asked before each operation: the client stops once it says so. */
  stop?: () => boolean;
  /**
   * Rides out outages of the index store (a server restart): a write that fails with a
   * `StorageError` is logged `fail` (its outcome is unknown to the client), a read that fails
   * skips the operation, and either way the client pauses this long before going on. Without
   * it, such an error ends the client.
   */
  outagePauseMs?: number;
  /** With `outagePauseMs`: told of each StorageError the client rode out. */
  onStorageError?: (err: StorageError) => void;
}

export interface ClientFigures {
  client: string;
  acked: Record<OpKind, number>;
  /** Rejected because another client wrote first (VersionConflictError, or NotFoundError for a record deleted meanwhile). */
  rejected: Record<OpKind, number>;
  /** With `outagePauseMs`: writes answered with a StorageError (outcome unknown), and reads that failed so. */
  failed: Record<OpKind, number>;
  readFailures: number;
}

export function emptyCounts(): Record<OpKind, number> {
  return Object.fromEntries(OP_KINDS.map((k) => [k, 0])) as Record<OpKind, number>;
}

export async function runClient(orders: Collection, options: ClientOptions): Promise<ClientFigures> {
  const { client, log } = options;
  const random = seededRandom(options.seed);
  const int = (n: number) => Math.floor(random() * n);
  const own: string[] = [];
  const figures: ClientFigures = { client, acked: emptyCounts(), rejected: emptyCounts(), failed: emptyCounts(), readFailures: 0 };
  let acks = 0;
  const outage = async (err: unknown): Promise<boolean> => {
    if (options.outagePauseMs === undefined || !(err instanceof StorageError)) return false;
    options.onStorageError?.(err);
    await new Promise((r) => setTimeout(r, options.outagePauseMs));
    return true;
  };

  for (let seq = 0; seq < options.ops && acks < (options.acks ?? Infinity) && !options.stop?.(); seq++) {
    const tag = `${client}:${seq}`;
    let intent: IntentEntry;
    try {
      intent = await plan(tag);
    } catch (err) {
      if (!(await outage(err))) throw err;
      figures.readFailures++;
      continue;
    }
    log.write(intent);
    try {
      const result = await perform(intent);
      log.write({ t: 'ack', tag, w: Date.now(), ...result });
      if (intent.kind === 'create') own.push(result.id);
      figures.acked[intent.kind]++;
      acks++;
      options.onAck?.(acks);
    } catch (err) {
      if (err instanceof StorageError && options.outagePauseMs !== undefined) {
        log.write({ t: 'fail', tag, w: Date.now(), error: `${err.name}: ${err.message}` });
        figures.failed[intent.kind]++;
        await outage(err);
        continue;
      }
      if (!(err instanceof VersionConflictError) && !(err instanceof NotFoundError)) throw err;
      log.write({ t: 'reject', tag, w: Date.now(), error: err.name });
      figures.rejected[intent.kind]++;
    }
  }
  return figures;

  /** Reads the head of a random record and decides what to write over it. */
  async function plan(tag: string): Promise<IntentEntry> {
    const base = { t: 'intent', tag, client } as const;
    const pool = own.length > 0 && (options.sharedIds.length === 0 || random() < 0.25) ? own : options.sharedIds;
    if (pool.length === 0 || random() < 0.08) {
      return { ...base, w: Date.now(), kind: 'create', data: payload(tag), deleted: false };
    }
    const id = pool[int(pool.length)]!;
    const head = await orders.getLatest(id, { includeDeleted: true });
    if (!head) throw new Error(`${client}: record ${id} has no head, though it was acknowledged or listed`);
    const roll = random();
    // Yielding between the read and the write lets the other clients of this process get in.
    if (random() < 0.5) await new Promise<void>((r) => setImmediate(r));
    const w = Date.now();
    if (head.ov > 0 && (head.deleted || roll < 0.2)) {
      const targetOv = int(head.ov);
      const target = await orders.getVersion(id, targetOv);
      if (!target) throw new Error(`${client}: version ${targetOv} of ${id} is missing below head ${head.ov}`);
      return { ...base, w, kind: 'restore', id, expectedOv: head.ov, data: target.data, deleted: target.deleted, targetOv };
    }
    if (head.deleted) {
      // A record deleted at ov 0 cannot exist (a create is never a deletion); keep the op well-formed anyway.
      throw new Error(`${client}: record ${id} is deleted at ov ${head.ov}`);
    }
    if (roll < 0.55) return { ...base, w, kind: 'update', id, expectedOv: head.ov, data: payload(tag), deleted: false };
    if (roll < 0.88) {
      // Top-level scalars only: the engine's deep merge then equals a spread, which the checker can recompute.
      const patch = { [`e_${client}`]: seq(tag), enrichedBy: tag };
      return { ...base, w, kind: 'enrich', id, expectedOv: head.ov, data: { ...head.data, ...patch }, deleted: false, base: head.data };
    }
    return { ...base, w, kind: 'delete', id, expectedOv: head.ov, data: head.data, deleted: true, base: head.data };
  }

  async function perform(intent: IntentEntry): Promise<{ id: string; ov: number; cv: number; at: string }> {
    const { tag } = intent;
    switch (intent.kind) {
      case 'create': {
        const r = await orders.create(intent.data, client, tag);
        return { id: r.id, ov: r.ov, cv: r.cv, at: r.createdAt };
      }
      case 'update': {
        const r = await orders.update(intent.id!, intent.data, intent.expectedOv!, client, tag);
        return { id: r.id, ov: r.ov, cv: r.cv, at: r.updatedAt };
      }
      case 'enrich': {
        const patch = { [`e_${client}`]: intent.data[`e_${client}`], enrichedBy: tag };
        const r = await orders.enrich(intent.id!, patch, { actor: client, reason: tag, expectedOv: intent.expectedOv! });
        return { id: r.id, ov: r.ov, cv: r.cv, at: r.updatedAt };
      }
      case 'delete': {
        const r = await orders.delete(intent.id!, intent.expectedOv!, client, tag);
        return { id: r.id, ov: r.ov, cv: r.cv, at: r.deletedAt };
      }
      case 'restore': {
        const r = await orders.restoreObject(intent.id!, { ov: intent.targetOv! }, { actor: client, reason: tag, expectedOv: intent.expectedOv! });
        return { id: r.id, ov: r.ov, cv: r.cv, at: r.updatedAt };
      }
    }
  }

  function payload(tag: string): JsonData {
    return { tag, by: client, n: int(1_000_000), note: random().toString(36).slice(2, 2 + int(12)), nested: { flag: random() < 0.5, list: [int(10), int(10)] } };
  }

  function seq(tag: string): number {
    return Number(tag.slice(tag.lastIndexOf(':') + 1));
  }
}

/** Creates the shared records, logged like any client's creates (client `seed`). */
export async function seedRecords(orders: Collection, count: number, log: OpLog): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const tag = `seed:${i}`;
    const data = { tag, by: 'seed', n: i };
    log.write({ t: 'intent', tag, client: 'seed', w: Date.now(), kind: 'create', data, deleted: false });
    const r = await orders.create(data, 'seed', tag);
    log.write({ t: 'ack', tag, w: Date.now(), id: r.id, ov: r.ov, cv: r.cv, at: r.createdAt });
    ids.push(r.id);
  }
  return ids;
}

/** Records the outbox lists as behind in the blob store, in every configured database (read before any repair). */
export async function pendingOutbox(xronox: Xronox): Promise<number> {
  let pending = 0;
  for (const target of await xronox.jobTargets({ dynamic: false })) pending += (await target.index.listPendingSync(target.dbName, { limit: 100_000 })).length;
  return pending;
}
