/**
 * Group commit under faults (core/store/group-commit.ts): when the one transaction that carries a
 * group of concurrent commits fails, every commit of the group fails, and none is acknowledged.
 *
 * - SQLite, two processes on one file: another process holds the file's write lock past the busy
 *   timeout, so the group's transaction fails with SQLITE_BUSY (in WAL mode SQLite takes the write
 *   lock when the transaction begins, `BEGIN IMMEDIATE`: that is where a busy file refuses it).
 * - PostgreSQL, a failure at COMMIT itself: a deferred constraint trigger (made in this test's
 *   own schema) refuses one write of the group when the server commits; the whole group fails.
 * - PostgreSQL, the answer to COMMIT lost: the group did commit, but no member may claim it did
 *   or did not; each is told its outcome is unknown, and reading back finds all or nothing.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Client } from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { PostgresIndexDriver } from '../../core/adapters/postgres/postgres-index-driver.js';
import { schemaNameFor, tablesOf } from '../../core/adapters/postgres/postgres-schema.js';
import type { IndexStore, Namespace, RecordWrite } from '../../core/contracts/index-store.js';
import { StorageError } from '../../core/errors.js';
import { guardAdapter } from '../../core/store/guard.js';
import { IndexRuntime } from '../../core/store/index-runtime.js';
import { startCommitProxy } from '../support/commit-proxy.js';
import { describePostgres, dropSchemas, postgresAvailability, randomSchemaPrefix } from '../support/postgres.js';
import { sqliteIndexStore } from '../support/sqlite-index.js';
import { tempDir } from '../support/temp.js';

const WRITERS = 16;

function create(id: string, body = JSON.stringify({ id })): RecordWrite {
  const at = new Date().toISOString();
  return {
    id,
    expectedOv: null,
    head: { ov: 0, deleted: false, createdAt: at, updatedAt: at, deletedAt: null, meta: {}, body, hash: `h-${id}` },
    version: { op: 'create', at, actor: 'group-test', reason: null, deleted: false, body, hash: `h-${id}` },
  };
}

/** The store as the core wraps every adapter: driver errors become StorageErrors naming the operation. */
function guarded(store: IndexRuntime): IndexStore {
  return guardAdapter('index store', () => store, () => false);
}

/** Another process holding the SQLite file's write lock until told to let go. */
async function lockHolder(path: string) {
  const betterSqlite = createRequire(import.meta.url).resolve('better-sqlite3');
  const script = `
    const Database = require(${JSON.stringify(betterSqlite)});
    const db = new Database(${JSON.stringify(path)});
    db.exec('BEGIN IMMEDIATE');
    process.stdout.write('locked\\n');
    process.stdin.once('data', () => { db.exec('ROLLBACK'); db.close(); process.exit(0); });
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the lock holder exited (${code})`)));
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => chunk.includes('locked') && resolve());
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return {
    release: async () => {
      child.stdin.write('go\n');
      return exited;
    },
  };
}

describe('group commit on SQLite, another process holding the write lock', () => {
  it('fails every commit of the group with SQLITE_BUSY, writes none of them, and the next group commits', async () => {
    const dir = tempDir('xronox-group-busy');
    const path = join(dir.path, 'index.sqlite');
    const runtime = sqliteIndexStore({ path, busyTimeoutMs: 150 });
    const store = guarded(runtime);
    const ns: Namespace = { dbName: 'gdb', collection: 'items' };
    try {
      expect(await store.commit(ns, { writes: [create(randomUUID())] })).toEqual({ ok: true, cvs: [0] });
      const holder = await lockHolder(path);
      const ids = Array.from({ length: WRITERS }, () => randomUUID());
      const settled = await Promise.allSettled(ids.map((id) => store.commit(ns, { writes: [create(id)] })));
      expect(await holder.release()).toBe(0);

      // Each commit got its own named error; not one was acknowledged.
      expect(settled.map((s) => s.status)).toEqual(ids.map(() => 'rejected'));
      for (const s of settled) {
        const err = (s as PromiseRejectedResult).reason as StorageError;
        expect(err).toBeInstanceOf(StorageError);
        expect({ operation: err.operation, cause: (err.cause as { code?: string }).code }).toEqual({ operation: 'commit', cause: 'SQLITE_BUSY' });
      }
      expect(new Set(settled.map((s) => (s as PromiseRejectedResult).reason)).size).toBe(WRITERS);
      for (const id of ids) expect(await store.getHead(ns, id)).toBeNull();
      expect(await store.getCollectionVersion(ns)).toBe(0);

      // The lock gone, the same writes commit as one group.
      const again = await Promise.all(ids.map((id) => store.commit(ns, { writes: [create(id)] })));
      expect(again.map((r) => r.ok && r.cvs[0])).toEqual(ids.map((_, i) => i + 1));
    } finally {
      await store.close();
      dir.cleanup();
    }
  });
});

const availability = await postgresAvailability();
const prefix = randomSchemaPrefix();
/** The commit proxy speaks to the server's `postgres` database; the schemas are made there. */
const SERVER_DB = 'postgres://postgres@127.0.0.1:5432/postgres';

describePostgres('group commit on PostgreSQL, failures at COMMIT', availability, () => {
  afterAll(async () => {
    await dropSchemas(prefix, SERVER_DB);
  });

  it('a write the server refuses at COMMIT (a deferred constraint) fails every commit of its group; none is written', async () => {
    const store = guarded(IndexRuntime.of(new PostgresIndexDriver({ connectionString: SERVER_DB, schemaPrefix: prefix, pool: { max: 2 } })));
    const ns: Namespace = { dbName: `g_${randomUUID().slice(0, 8)}`, collection: 'items' };
    const admin = new Client({ connectionString: SERVER_DB });
    await admin.connect();
    try {
      expect(await store.commit(ns, { writes: [create(randomUUID())] })).toEqual({ ok: true, cvs: [0] });
      const t = tablesOf(schemaNameFor(prefix, ns.dbName));
      // Checked when the transaction commits, not when the row is written.
      await admin.query(`CREATE FUNCTION ${t.schema}.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.body LIKE '%poison%' THEN RAISE EXCEPTION 'poisoned head' USING ERRCODE = 'check_violation'; END IF; RETURN NULL; END $$`);
      await admin.query(`CREATE CONSTRAINT TRIGGER refuse_poison AFTER INSERT OR UPDATE ON ${t.heads} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${t.schema}.refuse_poison()`);

      const ids = Array.from({ length: WRITERS }, () => randomUUID());
      const settled = await Promise.allSettled(ids.map((id, i) => store.commit(ns, { writes: [create(id, i === 5 ? '{"poison":true}' : JSON.stringify({ id }))] })));
      expect(settled.map((s) => s.status)).toEqual(ids.map(() => 'rejected'));
      for (const s of settled) expect(((s as PromiseRejectedResult).reason as StorageError).cause).toMatchObject({ code: '23514' });
      for (const id of ids) expect(await store.getHead(ns, id)).toBeNull();
      expect(await store.getCollectionVersion(ns)).toBe(0);

      // Without the poisoned write, the others commit.
      const again = await Promise.all(ids.filter((_, i) => i !== 5).map((id) => store.commit(ns, { writes: [create(id)] })));
      expect(again.every((r) => r.ok)).toBe(true);
      expect(await store.getCollectionVersion(ns)).toBe(WRITERS - 1);
    } finally {
      await admin.end();
      await store.close();
    }
  });

  it('when the answer to a group COMMIT is lost, every commit of the group is told its outcome is unknown; the group is all there', async () => {
    const proxy = await startCommitProxy(5432);
    const store = guarded(IndexRuntime.of(new PostgresIndexDriver({ connectionString: proxy.uri, schemaPrefix: prefix, pool: { max: 2 } })));
    const ns: Namespace = { dbName: `g_${randomUUID().slice(0, 8)}`, collection: 'items' };
    try {
      expect(await store.commit(ns, { writes: [create(randomUUID())] })).toEqual({ ok: true, cvs: [0] });
      const marker = `marker-${randomUUID()}`;
      const caught = proxy.arm('drop-answer', marker);
      const ids = Array.from({ length: WRITERS }, () => randomUUID());
      const settled = await Promise.allSettled(ids.map((id, i) => store.commit(ns, { writes: [create(id, i === 0 ? JSON.stringify({ marker }) : JSON.stringify({ id }))] })));
      await caught;
      expect(settled.map((s) => s.status)).toEqual(ids.map(() => 'rejected'));
      for (const s of settled) expect(((s as PromiseRejectedResult).reason as StorageError).message).toMatch(/may or may not have been applied/);
      // The server did commit: the whole group, never a part of it.
      const heads = await Promise.all(ids.map((id) => store.getHead(ns, id)));
      expect(heads.filter((h) => h !== null)).toHaveLength(WRITERS);
      expect(await store.getCollectionVersion(ns)).toBe(WRITERS);
    } finally {
      await store.close();
      await proxy.close();
    }
  });
});
