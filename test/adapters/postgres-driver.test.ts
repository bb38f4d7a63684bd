import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Client, escapeIdentifier } from 'pg';
import { nsKey, refKey, type Transaction } from '../../core/contracts/index-driver.js';
import type { Namespace, RecordWrite, VersionRow } from '../../core/contracts/index-store.js';
import { PostgresIndexDriver, type PostgresIndexDriverOptions } from '../../core/adapters/postgres/postgres-index-driver.js';
import { acquirePostgresPool, defaultMaxConnections, pooledPostgresCount } from '../../core/adapters/postgres/postgres-pool.js';
import { postgresOptions } from '../../core/adapters/postgres/postgres-settings.js';
import { schemaNameFor } from '../../core/adapters/postgres/postgres-schema.js';
import { IndexRuntime } from '../../core/store/index-runtime.js';
import { DuplicateKeyError, StorageError, ValidationError } from '../../core/errors.js';
import { initXronox } from '../../core/xronox.js';
import { describePostgres, dropSchemas, POSTGRES_URI, postgresAvailability, randomSchemaPrefix, withPostgres } from '../support/postgres.js';

/**
 * The PostgreSQL driver under real concurrency and faults: many connections writing at once,
 * lease and schema races, backends killed mid-transaction, an unreachable server; and the query
 * plans of the hot reads. Every store here uses this file's random schema prefix, and only the
 * schemas made with it are dropped at the end.
 */

const availability = await postgresAvailability();
const prefix = randomSchemaPrefix();
const opened: PostgresIndexDriver[] = [];

function driver(options: Partial<PostgresIndexDriverOptions> = {}): PostgresIndexDriver {
  const d = new PostgresIndexDriver({ connectionString: POSTGRES_URI, schemaPrefix: prefix, pool: { max: 2 }, ...options });
  opened.push(d);
  return d;
}

/** A pool of its own (pools are shared per connection string and options): a distinct application name. */
function appName(): string {
  return `xronox-test-${randomBytes(4).toString('hex')}`;
}

function freshNs(): Namespace {
  const tag = randomUUID().replace(/-/g, '').slice(0, 12);
  return { dbName: `pd_${tag}`, collection: `c_${tag.slice(0, 6)}` };
}

const AT = '2026-01-01T00:00:00.000Z';

/**
 * A driver-level plan: the record's next version, whatever it holds now (no expected ov), at the
 * namespace's next cv. What eight writers of one record do here is what decides the ov and cv.
 */
function append(ns: Namespace, id: string, token: string): Transaction<{ ov: number; cv: number }> {
  return {
    reads: { heads: [{ ...ns, id }], collectionVersions: [ns] },
    decide(rows) {
      const ov = (rows.heads.get(refKey(ns, id))?.ov ?? 0) + 1;
      const cv = (rows.collectionVersions.get(nsKey(ns)) ?? -1) + 1;
      const body = JSON.stringify({ token });
      const version: VersionRow = {
        id, ov, cv, op: ov === 1 ? 'create' : 'update', at: AT, actor: 'writer', reason: null, deleted: false,
        size: body.length, body, archived: false, meta: { token }, hash: `h${ov}`,
      };
      return {
        result: { ov, cv },
        effects: [
          { kind: 'putHead', ns, id, head: { ov, cv, deleted: false, createdAt: AT, updatedAt: AT, deletedAt: null, meta: { token }, body, hash: `h${ov}` } },
          { kind: 'putVersion', ns, version },
          { kind: 'putOutbox', ns, id, seq: cv },
          { kind: 'setCollectionVersion', ns, cv },
        ],
      };
    },
  };
}

function create(id: string, meta: Record<string, string | number | boolean | null> = {}, at = AT): RecordWrite {
  const body = JSON.stringify({ id, ...meta });
  return {
    id,
    expectedOv: null,
    head: { ov: 1, deleted: false, createdAt: at, updatedAt: at, deletedAt: null, meta, body, hash: 'h1' },
    version: { op: 'create', at, actor: 'tester', reason: null, deleted: false, body, hash: 'h1' },
  };
}

function update(id: string, ov: number, meta: Record<string, string | number | boolean | null> = {}, at = AT): RecordWrite {
  const body = JSON.stringify({ id, ov: ov + 1, ...meta });
  return {
    id,
    expectedOv: ov,
    head: { ov: ov + 1, deleted: false, createdAt: AT, updatedAt: at, deletedAt: null, meta, body, hash: `h${ov + 1}` },
    version: { op: 'update', at, actor: 'tester', reason: null, deleted: false, body, hash: `h${ov + 1}` },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `SELECT …` on a connection of the test's own, outside every store. */
async function sql<R>(text: string, values: unknown[] = []): Promise<R[]> {
  return withPostgres(async (c) => (await c.query(text, values)).rows as R[]);
}

/** A table of the index store (each of their names starts with `_`: see postgres-schema.ts). */
function tableOf(ns: Namespace, table: string): string {
  return `${escapeIdentifier(schemaNameFor(prefix, ns.dbName))}._${table}`;
}

/** Samples, until `stop`, that what a reader sees is always a gapless prefix (0..n-1 or 1..n). */
async function observePrefixes(stop: () => boolean, read: (c: Client) => Promise<number[]>, first: number): Promise<{ samples: number; broken: string[] }> {
  const c = new Client({ connectionString: POSTGRES_URI });
  await c.connect();
  const broken: string[] = [];
  let samples = 0;
  try {
    while (!stop()) {
      const seen = await read(c);
      samples++;
      const bad = seen.findIndex((v, i) => v !== first + i);
      if (bad >= 0 && broken.length < 3) broken.push(`sample ${samples}: ${JSON.stringify(seen.slice(Math.max(0, bad - 2), bad + 3))} at ${bad}`);
      await sleep(2);
    }
  } finally {
    await c.end();
  }
  return { samples, broken };
}

describePostgres('PostgreSQL index driver', availability, () => {
  afterAll(async () => {
    for (const d of opened) await d.close();
    await dropSchemas(prefix);
  });

  describe('concurrency', () => {
    it('8 writers × 100 updates of one record: gapless ov and cv, each visible only after every lower one', async () => {
      const ns = freshNs();
      const id = 'hot';
      const writers = Array.from({ length: 8 }, () => driver({ pool: { max: 2, applicationName: appName() } }));
      await writers[0]!.transact(append(ns, 'seed', 'seed'));
      let done = false;
      const observer = observePrefixes(
        () => done,
        async (c) => (await c.query<{ cv: number }>(`SELECT cv::int AS cv FROM ${tableOf(ns, 'versions')} WHERE coll = $1 ORDER BY cv`, [ns.collection])).rows.map((r) => r.cv),
        0,
      );
      const results = await Promise.all(
        writers.map(async (w, n) => {
          const got: Array<{ ov: number; cv: number }> = [];
          for (let i = 0; i < 100; i++) got.push(await w.transact(append(ns, id, `w${n}-${i}`)));
          return got;
        }),
      ).finally(() => (done = true));
      const { samples, broken } = await observer;
      expect(broken).toEqual([]);
      expect(samples).toBeGreaterThan(5);

      // Each writer saw its own writes in increasing order; all writes together: 1..800, cv 1..800.
      for (const got of results) expect(got.map((r) => r.ov)).toEqual([...got.map((r) => r.ov)].sort((a, b) => a - b));
      const all = results.flat();
      expect(all.map((r) => r.ov).sort((a, b) => a - b)).toEqual(Array.from({ length: 800 }, (_, i) => i + 1));
      const rt = IndexRuntime.of(writers[0]!);
      const versions = await rt.listVersions(ns, id, { limit: 1000 });
      expect(versions.map((v) => v.ov)).toEqual(Array.from({ length: 800 }, (_, i) => 800 - i));
      // cv and ov rise together: the record's nth write got the namespace's nth cv after the seed.
      expect(versions.every((v) => v.cv === v.ov)).toBe(true);
      expect(new Set(versions.map((v) => (JSON.parse(v.body!) as { token: string }).token)).size).toBe(800);
      expect((await rt.getHead(ns, id))?.ov).toBe(800);
      expect(await rt.getCollectionVersion(ns)).toBe(800);
    });

    it('8 writers of their own records in one namespace: cvs are gapless and become visible in cv order', async () => {
      const ns = freshNs();
      const writers = Array.from({ length: 8 }, () => driver({ pool: { max: 2, applicationName: appName() } }));
      await writers[0]!.transact(append(ns, 'seed', 'seed'));
      let done = false;
      const observer = observePrefixes(
        () => done,
        async (c) => (await c.query<{ cv: number }>(`SELECT cv::int AS cv FROM ${tableOf(ns, 'versions')} WHERE coll = $1 ORDER BY cv`, [ns.collection])).rows.map((r) => r.cv),
        0,
      );
      await Promise.all(writers.map(async (w, n) => {
        for (let i = 0; i < 60; i++) await w.transact(append(ns, `r${n}`, `w${n}-${i}`));
      })).finally(() => (done = true));
      const { broken } = await observer;
      expect(broken).toEqual([]);
      const cvs = await sql<{ cv: number }>(`SELECT cv::int AS cv FROM ${tableOf(ns, 'versions')} WHERE coll = $1 ORDER BY cv`, [ns.collection]);
      expect(cvs.map((r) => r.cv)).toEqual(Array.from({ length: 481 }, (_, i) => i));
      // A sync paging with a fixed maxSeq sees exactly the records pending at that cv.
      const rt = IndexRuntime.of(writers[1]!);
      const pending = await rt.listPendingUpTo(ns, { maxSeq: 480, limit: 100 });
      expect(pending.map((p) => p.id).sort()).toEqual(['seed', ...Array.from({ length: 8 }, (_, n) => `r${n}`)].sort());
    });

    it('a lease race: of two owners asking at once, exactly one gets each key; the other takes it after expiry', async () => {
      const ns = freshNs();
      const a = IndexRuntime.of(driver({ pool: { max: 2, applicationName: appName() } }));
      const b = IndexRuntime.of(driver({ pool: { max: 2, applicationName: appName() } }));
      const keys = Array.from({ length: 40 }, (_, i) => `job-${i}`);
      const outcomes = await Promise.all(keys.map((key) => Promise.all([a.acquireLock(ns, key, 'A', 60_000), b.acquireLock(ns, key, 'B', 60_000)])));
      for (const [gotA, gotB] of outcomes) expect(gotA !== gotB).toBe(true);
      // Renewals by the holder succeed, the other still fails.
      for (const [i, key] of keys.entries()) {
        const holder = outcomes[i]![0] ? a : b;
        const other = outcomes[i]![0] ? b : a;
        expect(await holder.acquireLock(ns, key, outcomes[i]![0] ? 'A' : 'B', 60_000)).toBe(true);
        expect(await other.acquireLock(ns, key, outcomes[i]![0] ? 'B' : 'A', 60_000)).toBe(false);
      }
      // A short lease, raced again after it ran out (by the server's clock): again exactly one.
      const short = 'short';
      expect(await a.acquireLock(ns, short, 'A', 50)).toBe(true);
      await sleep(120);
      const race = await Promise.all([b.acquireLock(ns, short, 'B', 60_000), b.acquireLock(ns, short, 'C', 60_000), a.acquireLock(ns, short, 'D', 60_000)]);
      expect(race.filter(Boolean)).toHaveLength(1);
    });

    it('the schema race: 8 clients writing to the same new database at once create its schema once, and all commit', async () => {
      const ns = freshNs();
      // Fresh drivers know no schema, and each has its own pool: eight first uses at once.
      const stores = Array.from({ length: 8 }, () => IndexRuntime.of(driver({ pool: { max: 1, applicationName: appName() } })));
      const results = await Promise.all(stores.map((s, i) => s.commit(i % 2 === 0 ? ns : { ...ns, collection: `${ns.collection}_b` }, { writes: [create(`r${i}`)] })));
      expect(results.every((r) => r.ok)).toBe(true);
      const cvs = results.map((r, i) => ({ coll: i % 2, cv: r.ok ? r.cvs[0]! : -1 }));
      for (const coll of [0, 1]) expect(cvs.filter((c) => c.coll === coll).map((c) => c.cv).sort()).toEqual([0, 1, 2, 3]);
      const schemas = await sql<{ nspname: string }>(`SELECT nspname FROM pg_namespace WHERE nspname = $1`, [schemaNameFor(prefix, ns.dbName)]);
      expect(schemas).toHaveLength(1);
      expect(await sql(`SELECT version, db_name FROM ${tableOf(ns, 'schema_info')}`)).toEqual([{ version: 1, db_name: ns.dbName }]);
      expect((await stores[3]!.listCollections(ns.dbName)).sort()).toEqual([ns.collection, `${ns.collection}_b`].sort());
    });
  });

  describe('faults', () => {
    it('a backend killed while its transaction waits for a lock: the transaction is re-run on a new connection and applied once', async () => {
      const ns = freshNs();
      const name = appName();
      const store = IndexRuntime.of(driver({ pool: { max: 2, applicationName: name } }));
      const id = 'r1';
      expect((await store.commit(ns, { writes: [create(id)] })).ok).toBe(true);
      const blocker = new Client({ connectionString: POSTGRES_URI });
      await blocker.connect();
      try {
        await blocker.query('BEGIN');
        await blocker.query(`SELECT 1 FROM ${tableOf(ns, 'namespaces')} WHERE coll = $1 FOR UPDATE`, [ns.collection]);
        const pending = store.commit(ns, { writes: [update(id, 1)] });
        const pid = await waitFor(async () => {
          const rows = await sql<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, [name]);
          return rows[0]?.pid;
        });
        expect((await sql<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid]))[0]?.ok).toBe(true);
        await sleep(50);
        await blocker.query('ROLLBACK');
        const result = await pending;
        expect(result).toEqual({ ok: true, cvs: [1] });
      } finally {
        await blocker.end();
      }
      expect((await store.getHead(ns, id))?.ov).toBe(2);
      expect((await store.listVersions(ns, id, { limit: 10 })).map((v) => v.ov)).toEqual([2, 1]);
      expect((await store.commit(ns, { writes: [update(id, 2)] })).ok).toBe(true);
    });

    it('backends killed again and again under load: no acknowledged write is lost, no refused one is applied, and the next call works', async () => {
      const ns = freshNs();
      const name = appName();
      const d = driver({ pool: { max: 4, applicationName: name } });
      const store = IndexRuntime.of(d);
      await d.transact(append(ns, 'seed', 'seed'));
      let done = false;
      let kills = 0;
      const killer = (async () => {
        while (!done) {
          const rows = await sql<{ ok: boolean }>('SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1', [name]);
          kills += rows.filter((r) => r.ok).length;
          await sleep(15 + Math.random() * 20);
        }
      })();
      const acknowledged: string[] = [];
      const refused: string[] = [];
      const unknown: string[] = [];
      await Promise.all(
        Array.from({ length: 4 }, async (_, w) => {
          for (let i = 0; i < 40; i++) {
            const token = `w${w}-${i}`;
            try {
              await d.transact(append(ns, `r${w}`, token));
              acknowledged.push(token);
            } catch (err) {
              (err instanceof StorageError && /unknown/.test(err.message) ? unknown : refused).push(token);
            }
          }
        }),
      ).finally(() => (done = true));
      await killer;
      expect(kills).toBeGreaterThan(5);
      // Retries absorb nearly every kill; what is left is bounded, and reported.
      expect(acknowledged.length).toBeGreaterThan(120);
      const present = new Set<string>();
      for (let w = 0; w < 4; w++) {
        for (const v of await store.listVersions(ns, `r${w}`, { limit: 100 })) present.add((JSON.parse(v.body!) as { token: string }).token);
      }
      for (const token of acknowledged) expect(present.has(token), token).toBe(true);
      for (const token of refused) expect(present.has(token), token).toBe(false);
      // Versions per record are gapless whatever happened.
      for (let w = 0; w < 4; w++) {
        const ovs = (await d.listVersions(ns, `r${w}`, { order: 'asc' })).map((v) => v.ov);
        expect(ovs).toEqual(Array.from({ length: ovs.length }, (_, i) => i + 1));
      }
      await store.ping();
      expect((await d.transact(append(ns, 'after', 'after'))).ov).toBe(1);
    });

    it('idle pooled connections killed between calls: the next read and write reconnect', async () => {
      const ns = freshNs();
      const name = appName();
      const store = IndexRuntime.of(driver({ pool: { max: 3, applicationName: name } }));
      expect((await store.commit(ns, { writes: [create('a')] })).ok).toBe(true);
      await store.getHead(ns, 'a');
      const killed = await sql<{ ok: boolean }>('SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1', [name]);
      expect(killed.length).toBeGreaterThan(0);
      expect((await store.getHead(ns, 'a'))?.ov).toBe(1);
      expect((await store.commit(ns, { writes: [update('a', 1)] })).ok).toBe(true);
      await sql('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [name]);
      expect((await store.commit(ns, { writes: [update('a', 2)] })).ok).toBe(true);
      await store.ping();
    });

    it('an unreachable server fails every call within a bounded time, without hanging or retrying forever', async () => {
      const d = new PostgresIndexDriver({
        connectionString: 'postgres://postgres@127.0.0.1:1/test',
        schemaPrefix: prefix,
        maxAttempts: 3,
        pool: { connectionTimeoutMillis: 1_000, applicationName: appName() },
      });
      const store = IndexRuntime.of(d);
      const ns = freshNs();
      const started = Date.now();
      // Named for what it is, with what to check: not "failed during commit".
      const unreachable = /^PostgreSQL at 127\.0\.0\.1:1 cannot be reached \(ECONNREFUSED\) during \w+: is the server running, and is postgresUri right\?$/;
      await expect(store.commit(ns, { writes: [create('a')] })).rejects.toThrow(unreachable);
      await expect(store.getHead(ns, 'a')).rejects.toThrow(unreachable);
      await expect(d.ping()).rejects.toThrow(unreachable);
      expect(Date.now() - started).toBeLessThan(10_000);
      await store.close();
    });

    it('a database that does not exist is named, with what to do', async () => {
      const missing = `xronox_missing_${randomBytes(4).toString('hex')}`;
      const url = new URL(POSTGRES_URI);
      url.pathname = `/${missing}`;
      const d = new PostgresIndexDriver({ connectionString: url.toString(), schemaPrefix: prefix, pool: { applicationName: appName() } });
      const store = IndexRuntime.of(d);
      await expect(store.commit(freshNs(), { writes: [create('a')] })).rejects.toThrow(new RegExp(`database "${missing}" does not exist .*create it, or name another in postgresUri`));
      await store.close();
    });
  });

  describe('pool and session state', () => {
    it('one pool per connection string and options, shared and closed by its last user', async () => {
      const options = { max: 2, applicationName: appName() };
      const before = pooledPostgresCount();
      const a = new PostgresIndexDriver({ connectionString: POSTGRES_URI, schemaPrefix: prefix, pool: options });
      const b = new PostgresIndexDriver({ connectionString: POSTGRES_URI, schemaPrefix: prefix, pool: options });
      await a.open();
      await b.open();
      expect(pooledPostgresCount()).toBe(before + 1);
      await a.close();
      expect(pooledPostgresCount()).toBe(before + 1);
      await b.ping();
      await b.close();
      expect(pooledPostgresCount()).toBe(before);
      await expect(a.ping()).rejects.toThrow(/closed/);
    });

    it('opens at most maxConnections to the server (default 10, 2 inside AWS Lambda); a further caller waits its turn', async () => {
      expect(defaultMaxConnections({})).toBe(10);
      expect(defaultMaxConnections({ AWS_LAMBDA_FUNCTION_NAME: 'xronox-api' })).toBe(2);
      const held = acquirePostgresPool(POSTGRES_URI, { ...postgresOptions({ postgresUri: POSTGRES_URI, maxConnections: 2 }).pool, applicationName: appName() });
      try {
        const first = await held.pool.connect();
        const second = await held.pool.connect();
        const third = held.pool.connect();
        expect(held.pool.totalCount).toBe(2);
        expect(held.pool.waitingCount).toBe(1);
        first.release();
        (await third).release();
        second.release();
        expect(held.pool.totalCount).toBe(2);
      } finally {
        await held.release();
      }
    });

    it('a lease taken (and the schema it may create) waits for the WAL flush; only a lease given back does not', async () => {
      const seen: string[] = [];
      const d = driver({ pool: { max: 1, applicationName: appName() }, onQuery: (text) => seen.push(text) });
      const store = IndexRuntime.of(d);
      const ns = freshNs();
      expect(await store.acquireLock(ns, 'k', 'me', 1000)).toBe(true);
      expect(await store.acquireLock(ns, 'k', 'me', 1000)).toBe(true);
      expect(seen.join('\n')).not.toMatch(/synchronous_commit/);
      seen.length = 0;
      await store.releaseLock(ns, 'k', 'me');
      expect(seen.filter((t) => /^BEGIN/.test(t))).toEqual([expect.stringContaining('SET LOCAL synchronous_commit = off')]);
      await store.close();
    });

    it('leaves no session state on pooled connections (SET LOCAL only, the timeouts too); commits wait for the WAL flush, only a completed sync and a lease given back do not', async () => {
      const options = { max: 1, applicationName: appName() };
      const seen: string[] = [];
      const d = driver({ pool: options, lockTimeoutMs: 1234, onQuery: (text) => seen.push(text) });
      const store = IndexRuntime.of(d);
      const ns = freshNs();
      expect((await store.commit(ns, { writes: [create('a')] })).ok).toBe(true);
      expect((await store.commit(ns, { writes: [update('a', 1)] })).ok).toBe(true);
      expect(seen.some((t) => /synchronous_commit/i.test(t))).toBe(false);
      // A completed sync need not be flushed: undone by a crash, the record is synced again.
      expect(await store.completeSync(ns, 'a', { archivedOvs: [1], seq: null })).toBe(true);
      expect(seen.filter((t) => /^BEGIN/.test(t)).at(-1)).toContain('SET LOCAL synchronous_commit = off');
      const commits = seen.length;
      expect(await store.acquireLock(ns, 'k', 'me', 1000)).toBe(true);
      expect(seen.slice(commits).some((t) => /synchronous_commit/i.test(t))).toBe(false);
      await store.releaseLock(ns, 'k', 'me');
      expect(seen.slice(commits).filter((t) => /^BEGIN/.test(t)).at(-1)).toContain('SET LOCAL synchronous_commit = off');
      // The same pool (same string and options), so the same single connection.
      const shared = acquirePostgresPool(POSTGRES_URI, options);
      try {
        const rows = await shared.pool.query<{ lock_timeout: string }>('SHOW lock_timeout');
        expect(rows.rows[0]?.lock_timeout).toBe('0');
        const statement = await shared.pool.query<{ statement_timeout: string }>('SHOW statement_timeout');
        expect(statement.rows[0]?.statement_timeout).toBe('0');
        const sync = await shared.pool.query<{ synchronous_commit: string }>('SHOW synchronous_commit');
        expect(sync.rows[0]?.synchronous_commit).toBe('on');
      } finally {
        await shared.release();
      }
      const sets = seen.flatMap((text) => text.split(';')).filter((s) => /^\s*SET\b/i.test(s));
      expect(sets.length).toBeGreaterThan(0);
      for (const s of sets) expect(s.trim()).toMatch(/^SET LOCAL (lock_timeout = 1234|statement_timeout = 30000|synchronous_commit = (off|on))$/);
    });
  });

  describe('timeouts', () => {
    /** Runs `body` while another connection holds `sql` (a lock) in an open transaction; rolls it back after. */
    async function whileHeld<T>(hold: string, values: unknown[], body: () => Promise<T>): Promise<T> {
      const blocker = new Client({ connectionString: POSTGRES_URI });
      await blocker.connect();
      try {
        await blocker.query('BEGIN');
        await blocker.query(hold, values);
        return await body();
      } finally {
        await blocker.query('ROLLBACK');
        await blocker.end();
      }
    }

    /** What `call` rejects with, and how long it took. */
    async function failure(call: () => Promise<unknown>): Promise<{ err: unknown; ms: number }> {
      const started = Date.now();
      const err = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      return { err, ms: Date.now() - started };
    }

    it('a write blocked on a row lock another connection holds fails with a StorageError once the statement timeout passes, writes nothing, and the next write works', async () => {
      const ns = freshNs();
      const store = IndexRuntime.of(driver({ pool: { max: 2, applicationName: appName(), statementTimeoutMillis: 500 }, lockTimeoutMs: 60_000 }));
      expect((await store.commit(ns, { writes: [create('a')] })).ok).toBe(true);
      const { err, ms } = await whileHeld(`SELECT 1 FROM ${tableOf(ns, 'namespaces')} WHERE coll = $1 FOR UPDATE`, [ns.collection], () =>
        failure(() => store.commit(ns, { writes: [update('a', 1)] })),
      );
      expect(err).toBeInstanceOf(StorageError);
      expect(err).toMatchObject({ adapter: 'postgres', operation: 'transaction', message: expect.stringMatching(/due to statement timeout.*500 ms/) });
      expect(ms).toBeGreaterThanOrEqual(450);
      expect(ms).toBeLessThan(3_000);
      expect((await store.getHead(ns, 'a'))?.ov).toBe(1);
      expect((await store.commit(ns, { writes: [update('a', 1)] })).ok).toBe(true);
    });

    it('a write waiting longer than lockTimeoutMs for a row lock fails with a StorageError, not retried', async () => {
      const ns = freshNs();
      const store = IndexRuntime.of(driver({ pool: { max: 2, applicationName: appName() }, lockTimeoutMs: 300 }));
      expect((await store.commit(ns, { writes: [create('a')] })).ok).toBe(true);
      const { err, ms } = await whileHeld(`SELECT 1 FROM ${tableOf(ns, 'heads')} WHERE coll = $1 FOR UPDATE`, [ns.collection], () =>
        failure(() => store.commit(ns, { writes: [update('a', 1)] })),
      );
      expect(err).toMatchObject({ name: 'StorageError', operation: 'transaction', message: expect.stringMatching(/due to lock timeout/) });
      expect(ms).toBeLessThan(3_000);
    });

    it('a read that gets no answer (its table locked exclusively by another connection) fails with a StorageError soon after the statement timeout, and the next read works', async () => {
      const ns = freshNs();
      const store = IndexRuntime.of(driver({ pool: { max: 2, applicationName: appName(), statementTimeoutMillis: 500 } }));
      expect((await store.commit(ns, { writes: [create('a')] })).ok).toBe(true);
      const { err, ms } = await whileHeld(`LOCK TABLE ${tableOf(ns, 'heads')} IN ACCESS EXCLUSIVE MODE`, [], () => failure(() => store.getHead(ns, 'a')));
      expect(err).toBeInstanceOf(StorageError);
      expect(err).toMatchObject({ operation: 'read', message: expect.stringMatching(/did not answer .* within 1500 ms/) });
      expect(ms).toBeGreaterThanOrEqual(1_400);
      expect(ms).toBeLessThan(4_000);
      expect((await store.getHead(ns, 'a'))?.ov).toBe(1);
    });

    it('statementTimeoutMs of a postgresUri connection bounds a write blocked on a row lock, through the facade', async () => {
      const schemaPrefix = randomSchemaPrefix();
      const dir = mkdtempSync(join(tmpdir(), 'xronox-pg-timeout-'));
      const dbName = `rt_${randomBytes(4).toString('hex')}`;
      const x = initXronox({
        dbConnections: { pg: { postgresUri: POSTGRES_URI, schemaPrefix, statementTimeoutMs: 500 } },
        localStorage: { basePath: dir, enabled: true },
        databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'pg', dbName }] } },
      });
      try {
        const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
        const { id, ov } = await orders.create({ status: 'new' });
        const namespaces = `${escapeIdentifier(schemaNameFor(schemaPrefix, dbName))}._namespaces`;
        const { err, ms } = await whileHeld(`SELECT 1 FROM ${namespaces} WHERE coll = 'orders' FOR UPDATE`, [], () =>
          failure(() => orders.update(id, { status: 'paid' }, ov, 'alice', 'paid')),
        );
        expect(err).toBeInstanceOf(StorageError);
        expect((err as Error).message).toMatch(/due to statement timeout/);
        expect(ms).toBeLessThan(3_000);
        expect((await orders.getLatest(id))?.data).toEqual({ status: 'new' });
      } finally {
        await x.shutdown();
        await dropSchemas(schemaPrefix);
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('isolation', () => {
    it('every statement for a namespace names its own schema and no other', async () => {
      const seen: string[] = [];
      const d = driver({ onQuery: (text) => seen.push(text) });
      const store = IndexRuntime.of(d);
      const ns = freshNs();
      const other = freshNs();
      expect((await store.commit(other, { writes: [create('x')] })).ok).toBe(true);
      seen.length = 0;
      expect((await store.commit(ns, { writes: [create('a', { tier: 'gold' }), create('b')] })).ok).toBe(true);
      expect((await store.commit(ns, { writes: [update('a', 1, { tier: 'silver' })] })).ok).toBe(true);
      await store.getHead(ns, 'a');
      await store.listVersions(ns, 'a', { limit: 5 });
      await store.listHeads(ns, { filter: { kind: 'compare', field: 'tier', op: '$eq', value: 'silver' }, includeDeleted: false, sort: { field: 'id', direction: 1 }, limit: 5 });
      await store.queryAt(ns, { at: AT, filter: null, includeDeleted: false, direction: 1, limit: 5 });
      const seq = await store.getPendingSeq(ns, 'a');
      await store.completeSync(ns, 'a', { archivedOvs: [1], seq });
      await store.listPendingSync(ns.dbName, { limit: 5 });
      await store.countPendingSync(ns.dbName);
      await store.requeueDeadLetters(ns.dbName);
      await store.listStaleUploads(ns.dbName, { olderThanMs: 0, limit: 5 });
      await store.acquireLock(ns, 'k', 'me', 1000);
      await store.offloadHead(ns, 'b', 1);
      await store.pruneVersions(ns, 'a', 2);
      await store.countRecords(ns);
      await store.replaceCollections(ns.dbName, [{ collection: 'gone', from: null }], { countersDb: ns.dbName, wholeDatabase: false, onlyIfEmpty: true });
      await store.listCollections(ns.dbName);
      expect(seen.length).toBeGreaterThan(20);
      const own = escapeIdentifier(schemaNameFor(prefix, ns.dbName));
      for (const text of seen) {
        const schemas = new Set([...text.matchAll(/("(?:[^"]|"")+")\./g)].map((m) => m[1]));
        for (const s of schemas) expect(s, text).toBe(own);
      }
      // The other database was not written, and its schema not named.
      expect(seen.some((t) => t.includes(schemaNameFor(prefix, other.dbName)))).toBe(false);
    });

    it('listDatabases lists only the schemas of its own prefix', async () => {
      const ns = freshNs();
      const otherPrefix = randomSchemaPrefix();
      const mine = IndexRuntime.of(driver());
      const theirs = IndexRuntime.of(driver({ schemaPrefix: otherPrefix }));
      try {
        expect((await mine.commit(ns, { writes: [create('a')] })).ok).toBe(true);
        expect((await theirs.commit({ ...ns, dbName: `${ns.dbName}_t` }, { writes: [create('a')] })).ok).toBe(true);
        expect(await mine.listDatabases()).toContain(ns.dbName);
        expect(await mine.listDatabases()).not.toContain(`${ns.dbName}_t`);
        expect(await theirs.listDatabases()).toEqual([`${ns.dbName}_t`]);
        expect(await theirs.getHead(ns, 'a')).toBeNull();
      } finally {
        await dropSchemas(otherPrefix);
      }
    });

    it('refuses names that are not valid identifiers, and maps a database name too long for PostgreSQL to a hashed schema', async () => {
      const store = IndexRuntime.of(driver());
      for (const dbName of ['a"b', 'x; DROP SCHEMA public', '', 'a.b', '$x']) {
        await expect(store.getHead({ dbName, collection: 'c' }, 'a')).rejects.toBeInstanceOf(ValidationError);
        await expect(store.commit({ dbName, collection: 'c' }, { writes: [create('a')] })).rejects.toBeInstanceOf(ValidationError);
      }
      for (const schemaPrefix of ['Xronox_', 'a-b', 'a"', '', 'x'.repeat(31)]) {
        expect(() => new PostgresIndexDriver({ connectionString: POSTGRES_URI, schemaPrefix })).toThrow(ValidationError);
      }
      const long = `L${'x'.repeat(50)}${randomBytes(6).toString('hex')}`;
      const twin = `${long.slice(0, -1)}Z`;
      expect(long).toHaveLength(63);
      const schema = schemaNameFor(prefix, long);
      expect(Buffer.byteLength(schema)).toBeLessThanOrEqual(63);
      expect(schemaNameFor(prefix, twin)).not.toBe(schema);
      expect((await store.commit({ dbName: long, collection: 'c' }, { writes: [create('a')] })).ok).toBe(true);
      expect((await store.commit({ dbName: twin, collection: 'c' }, { writes: [create('b')] })).ok).toBe(true);
      expect(await store.listDatabases()).toEqual(expect.arrayContaining([long, twin]));
      expect(await store.getHead({ dbName: long, collection: 'c' }, 'b')).toBeNull();
      expect((await store.getHead({ dbName: twin, collection: 'c' }, 'b'))?.ov).toBe(1);
    });

    it('never writes into a schema of its name that it did not make', async () => {
      const dbName = `foreign_${randomBytes(4).toString('hex')}`;
      const schema = escapeIdentifier(schemaNameFor(prefix, dbName));
      await sql(`CREATE SCHEMA ${schema}`);
      try {
        const store = IndexRuntime.of(driver());
        await expect(store.commit({ dbName, collection: 'c' }, { writes: [create('a')] })).rejects.toThrow(/not a Xronox index schema/);
        await expect(store.getHead({ dbName, collection: 'c' }, 'a')).rejects.toThrow(/not a Xronox index schema/);
        expect(await sql(`SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1`, [schemaNameFor(prefix, dbName)])).toEqual([]);
      } finally {
        await sql(`DROP SCHEMA ${schema}`);
      }
    });

    it('refuses a database whose schema holds another layout version, in lists too, rather than skipping it', async () => {
      const ns = freshNs();
      expect((await IndexRuntime.of(driver()).commit(ns, { writes: [create('a')] })).ok).toBe(true);
      await sql(`UPDATE ${tableOf(ns, 'schema_info')} SET version = 99`);
      try {
        // A fresh driver: it has not seen the schema yet.
        const store = IndexRuntime.of(driver());
        await expect(store.getHead(ns, 'a')).rejects.toThrow(/holds Xronox index schema 99, but this version needs schema 1/);
        await expect(store.listDatabases()).rejects.toThrow(/holds Xronox index schema 99/);
        await expect(store.commit(ns, { writes: [create('b')] })).rejects.toThrow(/holds Xronox index schema 99/);
      } finally {
        await sql(`UPDATE ${tableOf(ns, 'schema_info')} SET version = 1`);
      }
    });

    it('refuses an indexed value holding U+0000 (PostgreSQL cannot store it) by name, writing nothing', async () => {
      const store = IndexRuntime.of(driver());
      const ns = freshNs();
      await expect(store.commit(ns, { writes: [create('a', { name: 'x\u0000y' })] })).rejects.toBeInstanceOf(ValidationError);
      expect(await store.getHead(ns, 'a')).toBeNull();
    });
  });

  describe('as a configured connection', () => {
    it('a postgresUri connection holds record databases and messaging databases, each in a schema under its schemaPrefix', async () => {
      const schemaPrefix = randomSchemaPrefix();
      const dir = mkdtempSync(join(tmpdir(), 'xronox-pg-config-'));
      const tag = randomBytes(4).toString('hex');
      const x = initXronox({
        dbConnections: { pg: { postgresUri: POSTGRES_URI, schemaPrefix } },
        localStorage: { basePath: dir, enabled: true },
        databases: {
          runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'pg', dbName: `rt_${tag}` }] },
          messaging: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'pg', dbName: `msg_${tag}` }] },
        },
      });
      try {
        const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
        const created = await orders.create({ status: 'new' });
        expect((await orders.getLatest(created.id))?.data).toEqual({ status: 'new' });
        expect(await sql(`SELECT db_name FROM ${escapeIdentifier(schemaNameFor(schemaPrefix, `rt_${tag}`))}._schema_info`)).toEqual([{ db_name: `rt_${tag}` }]);
        // Messaging on the same connection: the PostgreSQL document store, in a schema of its own.
        const topics = x.with({ databaseType: 'messaging', tier: 'tenant', tenantId: 'acme', collection: 'topics' });
        const topic = { topic: 'payments', tenantId: 'acme', shards: 4, createdAt: new Date(), _system: { updatedAt: new Date() } };
        await topics.insert(topic);
        expect(await topics.findOne({ topic: 'payments' })).toMatchObject({ topic: 'payments', shards: 4 });
        expect(await topics.insert({ ...topic, shards: 1 }).catch((e: unknown) => e)).toBeInstanceOf(DuplicateKeyError);
        expect(await sql(`SELECT count(*)::int AS n FROM ${escapeIdentifier(schemaNameFor(schemaPrefix, `msg_${tag}`))}.topics`)).toEqual([{ n: 1 }]);
      } finally {
        await x.shutdown();
        await dropSchemas(schemaPrefix);
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('query plans', () => {
    it('getHead, listVersions of a record, queryAt, listHeads by an indexed value and listVersionsByActor use indexes', async () => {
      const seen: Array<{ text: string; values: readonly unknown[] }> = [];
      const d = driver({ pool: { max: 2, applicationName: appName() }, onQuery: (text, values) => seen.push({ text, values }) });
      const store = IndexRuntime.of(d);
      const ns = freshNs();
      // 4000 records of 3 versions each, and a second collection as large, in one schema.
      for (const coll of [ns.collection, `${ns.collection}_2`]) {
        for (let start = 0; start < 4000; start += 500) {
          const records = Array.from({ length: 500 }, (_, k) => {
            const i = start + k;
            const id = `r${String(i).padStart(5, '0')}`;
            const meta = { status: i % 400 === 0 ? 'rare' : `common${i % 7}`, n: i };
            const versions = [1, 2, 3].map((ov): VersionRow => ({
              id, ov, cv: i * 3 + ov, op: ov === 1 ? 'create' : 'update', at: new Date(Date.UTC(2026, 0, 1) + (i * 3 + ov) * 1000).toISOString(),
              actor: { type: 'user', identifier: `u${i % 50}` }, reason: null, deleted: false, size: 20, body: JSON.stringify({ id, ov }), archived: ov < 3, meta, hash: `h${ov}`,
            }));
            const last = versions[2]!;
            return {
              head: { id, ov: 3, cv: last.cv, deleted: false, createdAt: versions[0]!.at, updatedAt: last.at, deletedAt: null, meta, body: last.body!, hash: 'h3' },
              versions,
            };
          });
          await store.importRecords({ ...ns, collection: coll }, { records, sync: false });
        }
      }
      const schema = escapeIdentifier(schemaNameFor(prefix, ns.dbName));
      await sql(`VACUUM ANALYZE ${schema}._heads`);
      await sql(`VACUUM ANALYZE ${schema}._versions`);

      const plan = async (call: () => Promise<unknown>): Promise<string> => {
        seen.length = 0;
        await call();
        const last = seen.at(-1)!;
        const rows = await sql<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${last.text}`, [...last.values]);
        return JSON.stringify(rows[0]!['QUERY PLAN']);
      };
      const noSeqScan = (p: string) => expect(p).not.toMatch(/"Node Type":"Seq Scan"/);

      const head = await plan(() => store.getHead(ns, 'r01234'));
      noSeqScan(head);
      expect(head).toContain('"Index Name":"_heads_pkey"');

      const versions = await plan(() => store.listVersions(ns, 'r01234', { limit: 10 }));
      noSeqScan(versions);
      expect(versions).toMatch(/"Index Name":"_versions_(pkey|history|by_time|by_cv)"/);

      const history = await plan(() => store.listHistory(ns, 'r01234', { limit: 10 }));
      noSeqScan(history);
      expect(history).toContain('"Index Name":"_versions_history"');

      const at = await plan(() => store.findVersionAt(ns, 'r01234', { at: '2026-01-01T01:00:00.000Z' }));
      noSeqScan(at);

      const asOf = await plan(() => store.queryAt(ns, { at: '2026-01-01T02:00:00.000Z', filter: null, includeDeleted: false, direction: 1, limit: 20 }));
      noSeqScan(asOf);
      expect(asOf).toContain('"Index Name":"_heads_pkey"');
      expect(asOf).toContain('"Index Name":"_versions_by_time"');

      const rare = await plan(() =>
        store.listHeads(ns, { filter: { kind: 'compare', field: 'status', op: '$eq', value: 'rare' }, includeDeleted: false, sort: { field: 'id', direction: 1 }, limit: 50 }),
      );
      noSeqScan(rare);
      expect(rare).toContain('"Index Name":"_heads_by_meta"');
      const got = await store.listHeads(ns, { filter: { kind: 'compare', field: 'status', op: '$eq', value: 'rare' }, includeDeleted: false, sort: { field: 'id', direction: 1 }, limit: 50 });
      expect(got).toHaveLength(10);

      const byActor = await plan(() => store.listVersionsByActor(ns, 'u7', { limit: 20 }));
      noSeqScan(byActor);
      expect(byActor).toContain('"Index Name":"_versions_by_actor"');

      const unarchived = await plan(() => store.listUnarchivedRecords(ns.dbName, { writtenBefore: '2026-02-01T00:00:00.000Z', limit: 20 }));
      noSeqScan(unarchived);
      expect(unarchived).toContain('"Index Name":"_versions_unarchived"');
    });
  });
});

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error('Timed out waiting');
    await sleep(20);
  }
}
