import type { Effect } from '../../contracts/index-driver.js';
import type { Namespace } from '../../contracts/index-store.js';
import type { Tables } from './postgres-schema.js';
import { HEAD_COLUMNS, metaJson, STORED_VERSION_COLUMNS } from './postgres-statements.js';

/** What rendering effects needs of a transaction attempt (`PostgresTransaction`). */
export interface EffectScope {
  /** The tables of an effect's namespace, its row locked first when the reads did not lock it. */
  target(ns: Namespace): Promise<Tables>;
  /** The tables of a database; made in this transaction when missing and `create`, else `null` when missing. */
  tables(dbName: string, create: boolean): Promise<Tables | null>;
  /** Locks the namespaces' rows (see `PostgresTransaction.lock`). */
  lock(namespaces: readonly Namespace[]): Promise<void>;
  /** Locks leases by key (see `PostgresTransaction.lockLeases`). */
  lockLeases(keys: ReadonlyArray<Namespace & { readonly key: string }>): Promise<void>;
  /** The collection version the namespace holds once this transaction commits (null: never written). */
  setCv(ns: Namespace, cv: number | null): void;
  /** Queues a write, sent with COMMIT. */
  emit(text: string, values?: readonly unknown[]): void;
}

/**
 * Queues the statements of one effect, taking the locks and schemas it needs first. Every
 * statement names the schema of its namespace's database and nothing else.
 */
export async function renderEffect(tx: EffectScope, e: Effect): Promise<void> {
  /** A statement on the namespace's tables; `$1` is its collection. */
  const on = async (ns: Namespace, sql: (t: Tables) => string, values: unknown[]) => tx.emit(sql(await tx.target(ns)), [ns.collection, ...values]);
  /** A statement on the database's tables (made when missing) without a namespace lock; `$1` is the collection. */
  const unlocked = async (dbName: string, collection: string, sql: (t: Tables) => string, values: unknown[]) =>
    tx.emit(sql((await tx.tables(dbName, true))!), [collection, ...values]);
  switch (e.kind) {
    case 'putHead': {
      const h = e.head;
      return on(e.ns, (t) => `INSERT INTO ${t.heads} (coll, id, ov, cv, deleted, created_at, updated_at, deleted_at, meta, body, hash)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11)
        ON CONFLICT (coll, id) DO UPDATE SET ov = excluded.ov, cv = excluded.cv, deleted = excluded.deleted,
          created_at = excluded.created_at, updated_at = excluded.updated_at, deleted_at = excluded.deleted_at,
          meta = excluded.meta, body = excluded.body, hash = excluded.hash`,
        [e.id, h.ov, h.cv, h.deleted, h.createdAt, h.updatedAt, h.deletedAt, metaJson(h.meta), h.body, h.hash]);
    }
    case 'deleteRecord': {
      const t = await tx.target(e.ns);
      for (const table of e.tables) {
        const below = table === 'versions' && e.belowOv !== undefined;
        tx.emit(`DELETE FROM ${t[table]} WHERE coll = $1 AND id = $2${below ? ' AND ov < $3::float8' : ''}`, [e.ns.collection, e.id, ...(below ? [e.belowOv] : [])]);
      }
      return;
    }
    case 'dropBodies':
      if (e.ovs === null) return on(e.ns, (t) => `UPDATE ${t.heads} SET body = '' WHERE coll = $1 AND id = $2`, [e.id]);
      if (e.ovs.length === 0) return;
      return on(e.ns, (t) => `UPDATE ${t.versions} SET archived = TRUE, body = NULL WHERE coll = $1 AND id = $2 AND ov = ANY($3::bigint[])`, [e.id, [...e.ovs]]);
    case 'putVersion': {
      const v = e.version;
      const [actorId, actorType] = typeof v.actor === 'string' ? [v.actor, null] : [v.actor.identifier, v.actor.type];
      return on(e.ns, (t) => `INSERT INTO ${t.versions} (coll, id, ov, cv, op, at, actor, actor_id, actor_type, reason, deleted, size, body, archived, meta, hash)
        VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12, $13, $14, $15::jsonb, $16)`,
        [v.id, v.ov, v.cv, v.op, v.at, JSON.stringify(v.actor), actorId, actorType, v.reason, v.deleted, v.size, v.body, v.archived, metaJson(v.meta), v.hash]);
    }
    case 'putClaim':
      return on(e.ns, (t) => `INSERT INTO ${t.claims} (coll, key, id) VALUES ($1, $2, $3) ON CONFLICT (coll, key) DO UPDATE SET id = excluded.id`, [e.key, e.id]);
    case 'putOutbox':
      return on(e.ns, (t) => `INSERT INTO ${t.outbox} (coll, id, seq) VALUES ($1, $2, $3) ON CONFLICT (coll, id) DO UPDATE SET seq = excluded.seq`, [e.id, e.seq]);
    case 'putPendingBlob': {
      const b = e.blob;
      return on(e.ns, (t) => `INSERT INTO ${t.pendingBlobs} (coll, id, bucket, key, content_type, body) VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (coll, bucket, key) DO UPDATE SET id = excluded.id, content_type = excluded.content_type, body = excluded.body`,
        [e.id, b.bucket, b.key, b.contentType, Buffer.from(b.body.buffer, b.body.byteOffset, b.body.byteLength)]);
    }
    case 'deletePendingBlobs':
      if (e.keys.length === 0) return;
      return on(e.ns, (t) => `DELETE FROM ${t.pendingBlobs} p USING unnest($2::text[], $3::text[]) AS r(bucket, key) WHERE p.coll = $1 AND p.bucket = r.bucket AND p.key = r.key`, [e.keys.map((k) => k.bucket), e.keys.map((k) => k.key)]);
    case 'putDeadLetter':
      return on(e.ns, (t) => `INSERT INTO ${t.deadLetters} (coll, id, reason, failed_at) VALUES ($1, $2, $3, $4)
        ON CONFLICT (coll, id) DO UPDATE SET reason = excluded.reason, failed_at = excluded.failed_at`,
        [e.id, e.reason, e.failedAt]);
    // Counters are written with atomic upserts and no namespace lock: every commit of every tenant
    // adds to the analytics database's counters, and would otherwise queue on them.
    case 'counters': {
      const entries = Object.entries(e.counts);
      if (entries.length === 0) return;
      const [names, values] = [entries.map(([n]) => n), entries.map(([, v]) => v)];
      const value = e.add ? 'c.value + excluded.value' : 'excluded.value';
      if (e.window === null) {
        return unlocked(e.dbName, e.collection, (t) => `INSERT INTO ${t.counters} AS c (coll, name, value) SELECT $1, n, v FROM unnest($2::text[], $3::float8[]) AS u(n, v)
          ON CONFLICT (coll, name) DO UPDATE SET value = ${value}`, [names, values]);
      }
      return unlocked(e.dbName, e.collection, (t) => `INSERT INTO ${t.counterWindows} AS c (coll, win, name, value) SELECT $1, $2, n, v FROM unnest($3::text[], $4::float8[]) AS u(n, v)
        ON CONFLICT (coll, win, name) DO UPDATE SET value = ${value}`, [e.window, names, values]);
    }
    case 'deleteCounters': {
      const t = await tx.tables(e.dbName, false);
      if (!t) return;
      if (e.window !== null) return tx.emit(`DELETE FROM ${t.counterWindows} WHERE coll = $1 AND win = $2`, [e.collection, e.window]);
      for (const table of [t.counters, t.counterWindows]) tx.emit(`DELETE FROM ${table} WHERE coll = $1`, [e.collection]);
      return;
    }
    case 'setCollectionVersion':
      await on(e.ns, (t) => `UPDATE ${t.namespaces} SET cv = $2 WHERE coll = $1`, [e.cv]);
      return tx.setCv(e.ns, e.cv);
    case 'putLock':
      await tx.lockLeases([{ ...e.ns, key: e.key }]);
      return unlocked(e.ns.dbName, e.ns.collection, (t) => `INSERT INTO ${t.locks} (coll, key, owner, expires_at) VALUES ($1, $2, $3, clock_timestamp() + $4::float8 * interval '1 millisecond')
        ON CONFLICT (coll, key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at`,
        [e.key, e.owner, e.leaseMs]);
    case 'deleteLock':
      await tx.lockLeases([{ ...e.ns, key: e.key }]);
      return unlocked(e.ns.dbName, e.ns.collection, (t) => `DELETE FROM ${t.locks} WHERE coll = $1 AND key = $2`, [e.key]);
    case 'putUpload': {
      // 'past' is the epoch: older than any age a sweep asks for.
      const stamp = e.stamp === 'now' ? 'clock_timestamp()' : `'epoch'::timestamptz`;
      return on(e.ns, (t) => `INSERT INTO ${t.uploads} (coll, bucket, key, token, id, cleaning, stamped_at) VALUES ($1, $2, $3, $4, $5, $6, ${stamp})
        ON CONFLICT (coll, bucket, key, token) DO UPDATE SET id = excluded.id, cleaning = excluded.cleaning, stamped_at = excluded.stamped_at`,
        [e.bucket, e.key, e.row.token, e.row.id, e.row.cleaning]);
    }
    case 'deleteUpload':
      return on(e.ns, (t) => `DELETE FROM ${t.uploads} WHERE coll = $1 AND bucket = $2 AND key = $3 AND token = $4`, [e.bucket, e.key, e.token]);
    case 'clearNamespace':
      await clear(tx, e.ns);
      return;
    case 'copyNamespace': {
      // A staging database never written has no schema, and nothing to copy: none is made for it.
      const from = await tx.tables(e.from.dbName, false);
      await tx.lock(from ? [e.from, e.to] : [e.to]);
      const to = await clear(tx, e.to);
      if (!from) return;
      const a = [e.to.collection, e.from.collection];
      tx.emit(`INSERT INTO ${to.heads} (coll, ${HEAD_COLUMNS}) SELECT $1, ${HEAD_COLUMNS} FROM ${from.heads} WHERE coll = $2`, a);
      tx.emit(`INSERT INTO ${to.versions} (coll, ${STORED_VERSION_COLUMNS}) SELECT $1, ${STORED_VERSION_COLUMNS} FROM ${from.versions} WHERE coll = $2`, a);
      tx.emit(`INSERT INTO ${to.claims} (coll, key, id) SELECT $1, key, id FROM ${from.claims} WHERE coll = $2`, a);
      tx.emit(`UPDATE ${to.namespaces} SET cv = (SELECT cv FROM ${from.namespaces} WHERE coll = $2) WHERE coll = $1`, a);
      return tx.emit(`INSERT INTO ${to.outbox} (coll, id, seq) SELECT coll, id, cv FROM ${to.heads} WHERE coll = $1`, [e.to.collection]);
    }
  }
}

/** Empties what a namespace holds (queued objects stay: restored records may point at them). */
async function clear(tx: EffectScope, ns: Namespace): Promise<Tables> {
  const t = await tx.target(ns);
  for (const table of [t.heads, t.versions, t.claims, t.outbox, t.deadLetters]) tx.emit(`DELETE FROM ${table} WHERE coll = $1`, [ns.collection]);
  // The row stays (other transactions may be queued on its lock); NULL means never written.
  tx.emit(`UPDATE ${t.namespaces} SET cv = NULL WHERE coll = $1`, [ns.collection]);
  tx.setCv(ns, null);
  return t;
}
