import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MemoryIndexDriver } from '../../core/adapters/memory/memory-index-driver.js';
import type { IndexDriver, Transaction } from '../../core/contracts/index-driver.js';
import type { Namespace, RecordWrite } from '../../core/contracts/index-store.js';
import { IndexRuntime } from '../../core/store/index-runtime.js';

/**
 * How record commits are grouped (core/store/group-commit.ts), seen from the driver: how many
 * transactions a burst of concurrent commits becomes, and what each commit gets when one of them,
 * or the whole transaction, fails. The rules each commit is decided by are the conformance
 * suite's ("concurrent commits", run against every backend).
 */

/** The reference driver, counting its transactions and the commits each carried, and failing the next one when told. */
function countingDriver() {
  const driver = new MemoryIndexDriver();
  const groups: number[] = [];
  let failNext: Error | undefined;
  const transact = driver.transact.bind(driver);
  const own = {
    async transact<T>(tx: Transaction<T>): Promise<T> {
      groups.push((tx as { group?: number }).group ?? 1);
      if (failNext) {
        const err = failNext;
        failNext = undefined;
        // As a failed COMMIT: the plan was decided, nothing was applied.
        tx.decide({ heads: new Map(), claims: new Map(), outbox: new Map(), deadLetters: new Set(), allDeadLetters: [], unarchived: new Map(), versionCounts: new Map(), collectionVersions: new Map(), counterWindows: [], locks: new Map(), uploads: new Map(), staleUploads: [], headCounts: new Map(), outboxCounts: new Map(), namespaces: [] });
        throw err;
      }
      return transact(tx);
    },
  };
  const counted = new Proxy(driver, {
    get: (target, property) => {
      if (property === 'transact') return own.transact;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  }) as IndexDriver;
  return { store: IndexRuntime.of(counted), groups, failNextWith: (err: Error) => (failNext = err) };
}

const ns = (): Namespace => ({ dbName: 'db', collection: `c_${randomUUID().slice(0, 8)}` });
function create(id: string, body = `{"id":"${id}"}`): RecordWrite {
  const at = new Date().toISOString();
  return {
    id,
    expectedOv: null,
    head: { ov: 0, deleted: false, createdAt: at, updatedAt: at, deletedAt: null, meta: {}, body, hash: 'h' },
    version: { op: 'create', at, actor: 'a', reason: null, deleted: false, body, hash: 'h' },
  };
}

describe('group commit', () => {
  it('16 commits issued in one turn become one transaction; a commit issued alone is its own', async () => {
    const { store, groups } = countingDriver();
    const space = ns();
    const results = await Promise.all(Array.from({ length: 16 }, () => store.commit(space, { writes: [create(randomUUID())] })));
    expect(results.map((r) => r.ok && r.cvs)).toEqual(Array.from({ length: 16 }, (_, i) => [i]));
    expect(groups).toEqual([16]);
    await store.commit(space, { writes: [create(randomUUID())] });
    expect(groups).toEqual([16, 1]);
  });

  it('commits issued while a group is in flight go together in the next one', async () => {
    const { store, groups } = countingDriver();
    const space = ns();
    const first = Promise.all([0, 1].map(() => store.commit(space, { writes: [create(randomUUID())] })));
    // Issued once the first group has gone to the driver (a turn later), before it answered.
    await new Promise((r) => setImmediate(r));
    const second = Promise.all([0, 1, 2].map(() => store.commit(space, { writes: [create(randomUUID())] })));
    await Promise.all([first, second]);
    expect(groups).toEqual([2, 3]);
  });

  it('a group holds at most 64 commits and 1,000 writes; the rest waits for the next', async () => {
    const { store, groups } = countingDriver();
    const space = ns();
    const many = Array.from({ length: 70 }, () => store.commit(space, { writes: [create(randomUUID())] }));
    const big = store.commit(space, { writes: Array.from({ length: 995 }, () => create(randomUUID())) });
    await Promise.all([...many, big]);
    expect(groups).toEqual([64, 6, 1]);
  });

  it('a failed transaction fails every commit of the group with its error, and none is written', async () => {
    const { store, groups, failNextWith } = countingDriver();
    const space = ns();
    const ids = Array.from({ length: 8 }, () => randomUUID());
    failNextWith(Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' }));
    const settled = await Promise.allSettled(ids.map((id) => store.commit(space, { writes: [create(id)] })));
    expect(groups).toEqual([8]);
    expect(settled.map((s) => s.status)).toEqual(ids.map(() => 'rejected'));
    for (const s of settled) expect((s as PromiseRejectedResult).reason).toMatchObject({ code: 'SQLITE_BUSY' });
    for (const id of ids) expect(await store.getHead(space, id)).toBeNull();
    expect(await store.getCollectionVersion(space)).toBeNull();
  });

  it('a commit whose plan throws fails alone; the others of its group are written', async () => {
    const { store, groups } = countingDriver();
    const space = ns();
    const [good1, bad, good2] = [randomUUID(), randomUUID(), randomUUID()];
    const broken = create(bad);
    // Not a string: the plan's size computation throws while it decides.
    (broken.version as { body: unknown }).body = 42;
    const settled = await Promise.allSettled([
      store.commit(space, { writes: [create(good1)] }),
      store.commit(space, { writes: [broken] }),
      store.commit(space, { writes: [create(good2)] }),
    ]);
    expect(groups).toEqual([3]);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : 'error'))).toEqual([{ ok: true, cvs: [0] }, 'error', { ok: true, cvs: [1] }]);
    expect(await store.getHead(space, bad)).toBeNull();
    expect(await store.getHead(space, good2)).toMatchObject({ cv: 1 });
  });

  it('close answers the commits already issued before the driver closes', async () => {
    const { store } = countingDriver();
    const space = ns();
    const pending = Promise.all([0, 1, 2].map(() => store.commit(space, { writes: [create(randomUUID())] })));
    await store.close();
    expect((await pending).map((r) => r.ok)).toEqual([true, true, true]);
  });
});

describe('group commit of completed syncs', () => {
  it('completed syncs of different records share one transaction; two of one record never do, and each is answered as alone', async () => {
    const driver = new MemoryIndexDriver();
    const transact = driver.transact.bind(driver);
    const groups: string[] = [];
    const counted = new Proxy(driver, {
      get: (target, property) => {
        if (property === 'transact') {
          return <T>(tx: Transaction<T>) => {
            const t = tx as { group?: number; completedSyncs?: number };
            groups.push(t.completedSyncs !== undefined ? `syncs:${t.completedSyncs}` : t.group !== undefined ? `commits:${t.group}` : 'alone');
            return transact(tx);
          };
        }
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    }) as IndexDriver;
    const store = IndexRuntime.of(counted);
    const space = ns();
    const ids = Array.from({ length: 6 }, () => randomUUID());
    const cvs = await Promise.all(ids.map((id) => store.commit(space, { writes: [create(id)] })));
    const seqs = cvs.map((r) => (r.ok ? r.cvs[0]! : -1));
    const results = await Promise.all([
      ...ids.map((id, i) => store.completeSync(space, id, { archivedOvs: [0], seq: seqs[i]! })),
      // The first record again: its outbox entry is gone by then, as if its sync had run twice.
      store.completeSync(space, ids[0]!, { archivedOvs: [], seq: seqs[0]! }),
    ]);
    expect(results).toEqual([true, true, true, true, true, true, false]);
    expect(groups).toEqual(['commits:6', 'syncs:6', 'alone']);
    expect(await store.listPendingSync(space.dbName, { limit: 10 })).toEqual([]);
    for (const id of ids) expect((await store.listUnarchived(space, id)).map((v) => v.ov)).toEqual([]);
  });
});
