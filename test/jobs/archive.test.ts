/**
 * Archival through the Lambda handlers, called as Lambda calls them (real S3 event and scheduled
 * event payloads, a Lambda context), with `jobs.archive.mode: 'deferred'` so that writes leave
 * their versions to the archive function. Runs on the embedded default, on s3rver (a real
 * process started here) and on Ceph when its gateway runs.
 */
import { describe, expect, it } from 'vitest';
import type { Collection } from '../../core/engine/collection.js';
import type { Xronox } from '../../core/xronox.js';
import { ValidationError } from '../../core/errors.js';
import type { JobReport } from '../../core/jobs/job.js';
import { initXronox } from '../../core/xronox.js';
import { archive, archiveSweep, container } from '../../functions/jobs/handlers.js';
import {
  allKeys,
  freshNames,
  JOB_BACKENDS,
  jobConfig,
  lambdaContext,
  type Names,
  openIndex,
  s3Event,
  s3Record,
  scheduledEvent,
  seeded,
  shuffle,
  useJobBackend,
  writeConfig,
} from './support.js';


describe.each(JOB_BACKENDS)('archival through the handlers: $name', (backend) => {
  if (backend.skip) {
    it.skip(`skipped: ${backend.skip}`, () => undefined);
    return;
  }
  const fx = useJobBackend(backend, 'xronox-jobs-archive');

  /** A writer instance, and the handlers' container pointed at the same config file. */
  async function start(): Promise<{ x: Xronox; names: Names; orders: Collection }> {
    const names = freshNames();
    await fx.inst.prepare(Object.values(names));
    const config = jobConfig(fx.inst, fx.dir.path, names);
    process.env.XRONOX_CONFIG_FILE = writeConfig(fx.dir.path, config);
    await container.close();
    const x = initXronox(config);
    fx.open.push(x);
    return { x, names, orders: x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' }) };
  }

  const currentKey = (id: string) => `records/orders/${id}/current.json`;

  async function versionObjects(names: Names, id: string): Promise<Map<number, string>> {
    const bucket = fx.inst.bucketOf(names.rt);
    const out = new Map<number, string>();
    for (const key of await allKeys(fx.inspect, bucket, `versions/orders/${id}/`)) {
      const bytes = await fx.inspect.get(bucket, key);
      out.set(Number(/v(\d+)\.json$/.exec(key)![1]), Buffer.from(bytes!).toString('utf8'));
    }
    return out;
  }

  /** The exact committed text of every version, read from the index before archival. */
  async function committedBodies(names: Names, id: string): Promise<Map<number, string>> {
    const store = openIndex(fx.dir.path);
    try {
      const rows = await store.listVersions({ dbName: names.rt, collection: 'orders' }, id, { limit: 10_000 });
      return new Map(rows.map((r) => [r.ov, r.body!]));
    } finally {
      await store.close();
    }
  }

  async function archivedFlags(names: Names, id: string): Promise<boolean[]> {
    const store = openIndex(fx.dir.path);
    try {
      return (await store.listVersions({ dbName: names.rt, collection: 'orders' }, id, { limit: 10_000 })).map((r) => r.archived && r.body === null);
    } finally {
      await store.close();
    }
  }

  it('100 rapid updates of one record, then its S3 events: every version is in the versions bucket with exactly the committed bytes', async () => {
    const { x, names, orders } = await start();
    const { id } = await orders.create({ status: 'new', sku: 'A-1', total: 1 }, 'alice', 'checkout');
    for (let i = 1; i <= 100; i++) await orders.update(id, { status: 'busy', sku: 'A-1', total: i, note: `é ✓ ${'x'.repeat(i)}` }, i - 1, 'bob', `edit ${i}`);
    await x.flush();
    const committed = await committedBodies(names, id);
    expect(committed.size).toBe(101);
    // Deferred: the write's sync wrote current.json only.
    expect(await versionObjects(names, id)).toEqual(new Map());
    expect(await fx.inspect.head(fx.inst.bucketOf(names.rt), currentKey(id))).not.toBeNull();

    // Reads before, during and after archival return the same records.
    const read = async () => ({
      versions: await Promise.all([...committed.keys()].map((ov) => orders.getVersion(id, ov))),
      asOf: await Promise.all([...committed.values()].map((body) => orders.getAsOf(id, (JSON.parse(body) as { at: string }).at))),
      // `archived` is bookkeeping, not data: it is the one field archival changes.
      history: (await orders.history(id, { limit: 500 })).items.map(({ archived: _archived, ...rest }) => rest),
    });
    const before = await read();

    // One S3 event per PUT of current.json, each its own invocation, as S3 delivers them.
    const bucket = fx.inst.bucketOf(names.rt);
    const reports: JobReport[] = [];
    let archiving = true;
    let readsDuring = 0;
    await Promise.all([
      (async () => {
        for (let i = 0; i <= 100; i++) reports.push(await archive(s3Event([s3Record(bucket, currentKey(id), 1024)]), lambdaContext('xronox-archive')));
        archiving = false;
      })(),
      (async () => {
        // Each full read is compared as it is made (keeping them would fill the heap). Reads
        // served by SQLite alone never leave the microtask queue, so each round yields once to
        // let the archiver's I/O run.
        while (archiving) {
          expect(await read()).toEqual(before);
          readsDuring++;
          await new Promise((r) => setImmediate(r));
        }
      })(),
    ]);
    expect(reports.reduce((n, r) => n + (r.counts.archivedVersions ?? 0), 0)).toBe(101);
    expect(reports.every((r) => r.failures.length === 0 && r.counts.events === 1)).toBe(true);

    expect(await versionObjects(names, id)).toEqual(committed);
    expect(await archivedFlags(names, id)).toEqual(new Array(101).fill(true));
    expect(readsDuring).toBeGreaterThan(0);
    expect(await read()).toEqual(before);
    expect(await orders.verify(id)).toMatchObject({ ok: true, checked: 101 });
  });

  it('events duplicated, shuffled, late and 10% dropped: the handled ones archive, the sweep catches up, the result is exact', async () => {
    const { x, names, orders } = await start();
    const random = seeded(20260101);
    const bucket = fx.inst.bucketOf(names.rt);
    const ids: string[] = [];
    // What was written at each ov: the oracle for the objects (their bytes are also checked to be
    // the engine's serialisation, and the hash chain, computed at commit, to hold).
    const written = new Map<string, Array<{ data: Record<string, unknown>; reason: string }>>();
    for (let r = 0; r < 20; r++) {
      const data = { status: 'new', sku: `S-${r}`, total: r };
      const { id } = await orders.create(data, 'writer', 'create');
      ids.push(id);
      written.set(id, [{ data, reason: 'create' }]);
    }
    // Every event of these two records is lost: only the sweep can archive them.
    const lost = new Set(ids.slice(0, 2));
    const queue: Array<{ id: string }> = ids.filter((id) => !lost.has(id)).map((id) => ({ id }));
    let writing = true;
    const delivered: JobReport[] = [];

    const writer = async () => {
      for (let round = 1; round <= 10; round++) {
        for (const id of shuffle(ids, random)) {
          const data = { status: 'busy', sku: id.slice(-4), total: round * 10 };
          await orders.update(id, data, round - 1, 'writer', `round ${round}`);
          written.get(id)!.push({ data, reason: `round ${round}` });
          if (lost.has(id) || random() < 0.1) continue; // dropped
          queue.push({ id });
          if (random() < 0.3) queue.push({ id }); // duplicated
        }
        await x.flush();
      }
      writing = false;
    };
    // Concurrent invocations, picking queued events in random order: late and reordered.
    const invoker = async () => {
      while (writing || queue.length > 0) {
        if (queue.length === 0) {
          await new Promise((r) => setImmediate(r));
          continue;
        }
        const batch = queue.splice(Math.floor(random() * queue.length), 1 + Math.floor(random() * 3));
        delivered.push(await archive(s3Event(batch.map((e) => s3Record(bucket, currentKey(e.id)))), lambdaContext('xronox-archive')));
      }
    };
    await Promise.all([writer(), invoker(), invoker(), invoker()]);
    await x.flush();
    expect(delivered.every((r) => r.failures.length === 0)).toBe(true);

    // The lost records are still pending, their bodies in the index.
    for (const id of lost) {
      expect(await versionObjects(names, id)).toEqual(new Map());
      expect((await committedBodies(names, id)).size).toBe(11);
    }
    const lostBodies = new Map([...lost].map((id) => [id, committedBodies(names, id)] as const));

    // The scheduled sweep, at a time past the sweep age of every pending version.
    const later = new Date(Date.now() + 16 * 60_000);
    const sweep = await archiveSweep(scheduledEvent(later, 'xronox-archive-sweep'), lambdaContext('xronox-archive-sweep'));
    expect(sweep).toMatchObject({ job: 'archive', complete: true, failures: [] });
    expect(sweep.counts.archivedVersions).toBeGreaterThanOrEqual(22);

    for (const id of ids) {
      const objects = await versionObjects(names, id);
      expect([...objects.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      for (const [ov, body] of objects) {
        const doc = JSON.parse(body) as { id: string; ov: number; actor: string; reason: string; data: unknown };
        expect(JSON.stringify(doc)).toBe(body);
        expect(doc).toMatchObject({ id, ov, actor: 'writer', reason: written.get(id)![ov]!.reason, data: written.get(id)![ov]!.data });
      }
      if (lost.has(id)) expect(objects).toEqual(await lostBodies.get(id));
      expect(await archivedFlags(names, id)).toEqual(new Array(11).fill(true));
      expect(await orders.verify(id)).toMatchObject({ ok: true, checked: 11 });
    }
    // Late duplicates, and the sweep again: nothing left to do, nothing changes.
    const late = await archive(s3Event(ids.map((id) => s3Record(bucket, currentKey(id)))), lambdaContext('xronox-archive'));
    expect(late.counts.archivedVersions ?? 0).toBe(0);
    expect((await archiveSweep(scheduledEvent(later, 'xronox-archive-sweep'), lambdaContext('xronox-archive-sweep'))).counts.archivedVersions ?? 0).toBe(0);
  });

  it('the sweep leaves versions younger than its age alone', async () => {
    const { x, names, orders } = await start();
    const { id } = await orders.create({ status: 'new', sku: 'Y', total: 1 });
    await x.flush();
    const report = await archiveSweep(scheduledEvent(new Date(), 'xronox-archive-sweep'), lambdaContext('xronox-archive-sweep'));
    expect(report.counts.archivedVersions ?? 0).toBe(0);
    expect(await versionObjects(names, id)).toEqual(new Map());
  });

  it('refuses what is not an S3 event before doing anything; ignores other objects and event types', async () => {
    const { x, names, orders } = await start();
    const { id } = await orders.create({ status: 'new', sku: 'Z', total: 1 });
    const facts = x.with({ databaseType: 'knowledge', tier: 'generic', collection: 'facts' });
    const fact = await facts.create({ text: 'water is wet' });
    await x.flush();
    const ctx = lambdaContext('xronox-archive');
    await expect(archive({ hello: 'world' } as never, ctx)).rejects.toBeInstanceOf(ValidationError);
    await expect(archive(s3Event([{ ...s3Record('b', 'k'), eventSource: 'aws:sqs' }]), ctx)).rejects.toBeInstanceOf(ValidationError);
    await expect(archive(s3Event([s3Record(fx.inst.bucketOf(names.rt), currentKey(id)), { nonsense: true } as never]), ctx)).rejects.toBeInstanceOf(ValidationError);
    // Refused as a whole: the valid record of that event was not acted on either.
    expect(await versionObjects(names, id)).toEqual(new Map());

    const removed = { ...s3Record(fx.inst.bucketOf(names.rt), currentKey(id)), eventName: 'ObjectRemoved:Delete' };
    const report = await archive(
      s3Event([
        removed,
        s3Record('no-such-bucket', currentKey(id)),
        s3Record(fx.inst.bucketOf(names.rt), `records/orders/${id}/other.json`),
        s3Record(fx.inst.bucketOf(names.rt), 'records/orders/../../etc/current.json'),
        s3Record(fx.inst.bucketOf(names.kn), `records/facts/${fact.id}/current.json`),
      ]),
      ctx,
    );
    expect(report.counts).toMatchObject({ events: 4, unknownObjects: 3, unversionedObjects: 1 });
    expect(report.counts.archivedVersions ?? 0).toBe(0);
    expect(await versionObjects(names, id)).toEqual(new Map());
    await expect(archiveSweep({ 'detail-type': 'Object Created', source: 'aws.s3' } as never, lambdaContext('xronox-archive-sweep'))).rejects.toBeInstanceOf(ValidationError);
  });
});
