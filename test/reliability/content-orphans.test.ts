import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3BlobStore } from '../../core/adapters/s3/s3-blob-store.js';
import type { XronoxConfigInput } from '../../core/config/schema.js';
import type { Collection } from '../../core/engine/collection.js';
import type { Xronox } from '../../core/xronox.js';
import { StorageError, VersionConflictError, XronoxError } from '../../core/errors.js';
import { runJob } from '../../core/jobs/run.js';
import { initXronox } from '../../core/xronox.js';
import { type Fault, type FaultProxy, startFaultProxy } from '../support/fault-proxy.js';
import { Gen } from '../support/random.js';
import { type S3rverHandle, startS3rver } from '../support/s3rver.js';
import { tempDir } from '../support/temp.js';
import { reliabilityScale, reliabilitySeed } from './support/fault-schedule.js';

/**
 * Content of writes that are refused must not stay behind. Content goes to the content bucket
 * before the write's commit; here S3 carries uploads out and then reports failure (a 500 after
 * the write, a response held past the client's timeout, a response cut off), or never gets them
 * (held before forwarding past the timeout), on a real s3rver behind the fault proxy, with no
 * `fallback` (so such writes are refused), amid version conflicts and content set back to an
 * earlier version's bytes (one object shared by a committed version and a refused attempt).
 * After the faults stop and the intents are older than `limits.maxUploadSeconds`, one
 * `repair()` (and the archive job, for what is left after it) must leave exactly the objects
 * that committed versions reference, each with its bytes.
 *
 * Reproduce: XRONOX_RELIABILITY_SEED=<seed> npx vitest run test/reliability/content-orphans.test.ts
 */

const SCALE = reliabilityScale();
const SEED = reliabilitySeed(52_026);
const REQUEST_TIMEOUT_MS = 400;
/** `limits.maxUploadSeconds` of these tests: intents this old are the sweep's. */
const STALE_SECONDS = 1;
const BUCKET = 'orphans';
const MiB = 1024 * 1024;

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const errorName = (err: unknown) => (err instanceof XronoxError ? err.constructor.name : `NOT A XRONOX ERROR: ${String(err)}`);

/** Every acknowledged version of a record: the SHA-256 of its content, or null for a deletion. */
type Model = Map<string, Array<string | null>>;

describe(`content of refused writes on S3 (s3rver behind a fault proxy, seed ${SEED}, scale ${SCALE})`, () => {
  let server: S3rverHandle;
  let proxy: FaultProxy;
  let x: Xronox;
  /** The same database through a client that waits 10 s for an answer: for uploads held (not failed) at the proxy. */
  let patient: Xronox;
  let inspect: S3BlobStore;
  const dir = tempDir('xronox-content-orphans-s3');
  /** Faults by the SHA-256 in the request's key (content objects are named by it), and by request line. */
  const doomed = new Map<string, Fault>();
  let faultFor: ((method: string, url: string) => Fault | null) | null = null;
  const seen: Array<{ method: string; url: string }> = [];

  beforeAll(async () => {
    server = await startS3rver({ buckets: [BUCKET] });
    proxy = await startFaultProxy(server.endpoint, (req) => {
      seen.push({ method: req.method, url: req.url });
      if (!req.url.includes('/content/')) return null;
      const custom = faultFor?.(req.method, req.url);
      if (custom) return custom;
      if (req.method !== 'PUT' && req.method !== 'POST') return null;
      for (const [sha, fault] of doomed) if (req.url.includes(sha)) return fault;
      return null;
    });
    const config = (requestTimeoutMs: number): XronoxConfigInput => ({
      dbConnections: { local: { sqlitePath: join(dir.path, 'xronox.sqlite') } },
      spacesConnections: {
        s3: {
          endpoint: proxy.endpoint,
          region: server.region,
          accessKey: server.accessKey,
          secretKey: server.secretKey,
          forcePathStyle: true,
          conditionalWrites: false,
          requestTimeoutMs,
          buckets: { records: BUCKET, versions: BUCKET, content: BUCKET, backups: BUCKET },
        },
      },
      databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', spaceConnRef: 's3', dbName: 'rt_acme' }] } },
      collectionMaps: { docs: { indexedProps: ['n'], base64Props: { file: { contentType: 'application/octet-stream' } } } },
      limits: { maxUploadSeconds: STALE_SECONDS },
    });
    x = initXronox(config(REQUEST_TIMEOUT_MS), { onBackgroundError: () => undefined });
    patient = initXronox(config(10_000), { onBackgroundError: () => undefined });
    inspect = new S3BlobStore({ ref: 'inspect', connection: { endpoint: server.endpoint, region: server.region, accessKey: server.accessKey, secretKey: server.secretKey, forcePathStyle: true } });
  });
  afterAll(async () => {
    await x?.shutdown();
    await patient?.shutdown();
    await inspect?.close();
    await proxy?.close();
    await server?.dispose();
    dir.cleanup();
  });

  const docs = (via: Xronox = x): Collection => via.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'docs' });
  /** Holds the first request that `matches` at the proxy for `ms` (then forwards it); resolves when it arrives. */
  const hold = (matches: (method: string, url: string) => boolean, ms: number): Promise<void> =>
    new Promise((arrived) => {
      let held = false;
      faultFor = (method, url) => {
        if (held || !matches(method, url)) return null;
        held = true;
        arrived();
        return { kind: 'slow', delayMs: ms };
      };
    });

  async function contentKeys(): Promise<string[]> {
    const keys: string[] = [];
    let startAfter: string | undefined;
    do {
      const page = await inspect.list(BUCKET, 'content/docs/', startAfter ? { startAfter } : {});
      keys.push(...page.keys);
      startAfter = page.nextStartAfter ?? undefined;
    } while (startAfter);
    return keys.sort();
  }

  /** Upload intents and cleanup marks still in the index (-1 without the table). */
  function intentRows(): number {
    const sqlite = new Database(join(dir.path, 'xronox.sqlite'), { readonly: true });
    try {
      return (sqlite.prepare('SELECT count(*) AS n FROM content_uploads').get() as { n: number }).n;
    } catch {
      return -1;
    } finally {
      sqlite.close();
    }
  }

  /**
   * Every acknowledged version reads back with its content's SHA-256 (the engine checks the bytes
   * against it too), and the content bucket holds exactly the objects those versions reference.
   */
  async function checkAgainst(model: Model): Promise<{ versions: number; objects: number }> {
    const expected = new Set<string>();
    let versions = 0;
    for (const [id, shas] of model) {
      for (const [ov, sha] of shas.entries()) {
        const version = await docs().getVersion(id, ov);
        expect(version, `${id} v${ov}`).not.toBeNull();
        if (sha === null) {
          expect(version!.deleted, `${id} v${ov}`).toBe(true);
          continue;
        }
        const bytes = Buffer.from(version!.data.file as string, 'base64');
        expect(sha256(bytes), `${id} v${ov}`).toBe(sha);
        expected.add(`content/docs/${id}/file/${sha}/blob.bin`);
        versions++;
      }
    }
    expect(await contentKeys()).toEqual([...expected].sort());
    return { versions, objects: expected.size };
  }

  it('scripted: refused uploads (performed then 500, timed out after the write, never forwarded, multipart completed then 500) leave nothing; a shared object stays', async () => {
    const model: Model = new Map();
    const c = docs();
    const content = (n: number) => randomBytes(n);
    const errors: Record<string, number> = {};
    const refused = async (run: () => Promise<unknown>) => {
      const err = await run().then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, 'the write was refused').toBeInstanceOf(StorageError);
      errors[errorName(err)] = (errors[errorName(err)] ?? 0) + 1;
    };

    const X = content(20_000);
    const Y = content(30_000);
    const r1 = await c.create({ n: 1, file: X.toString('base64') });
    await c.update(r1.id, { n: 1, file: Y.toString('base64') }, 0);
    model.set(r1.id, [sha256(X), sha256(Y)]);

    // Back to X, performed then answered 500 on every attempt: refused, and X is v0's object.
    doomed.set(sha256(X), { kind: 'ghost' });
    await refused(() => c.update(r1.id, { n: 1, file: X.toString('base64') }, 1));
    // New content Z, performed then 500: an orphan unless cleaned.
    const Z = content(25_000);
    doomed.set(sha256(Z), { kind: 'ghost' });
    await refused(() => c.update(r1.id, { n: 1, file: Z.toString('base64') }, 1));
    // W: carried out at once, answered after the client's timeout.
    const W = content(25_000);
    doomed.set(sha256(W), { kind: 'late', delayMs: REQUEST_TIMEOUT_MS * 3 });
    await refused(() => c.update(r1.id, { n: 1, file: W.toString('base64') }, 1));
    // A create whose content was stored but answered late: no record, an object in its folder.
    const V = content(25_000);
    doomed.set(sha256(V), { kind: 'late', delayMs: REQUEST_TIMEOUT_MS * 3 });
    await refused(() => c.create({ n: 2, file: V.toString('base64') }));
    // The response cut off after the write.
    const R = content(25_000);
    doomed.set(sha256(R), { kind: 'reset' });
    await refused(() => c.update(r1.id, { n: 1, file: R.toString('base64') }, 1));
    // Held past the timeout before forwarding: never stored; only an intent to clean.
    const Q = content(25_000);
    doomed.set(sha256(Q), { kind: 'slow', delayMs: REQUEST_TIMEOUT_MS * 3 });
    await refused(() => c.update(r1.id, { n: 1, file: Q.toString('base64') }, 1));
    // Multipart (above 8 MiB): the parts and the completion are carried out, the completion answered 500.
    const M = content(9 * MiB);
    faultFor = (method, url) => (method === 'POST' && url.includes(sha256(M)) && /[?&]uploadId=/.test(url) ? { kind: 'ghost' } : null);
    await refused(() => c.update(r1.id, { n: 1, file: M.toString('base64') }, 1));
    faultFor = null;
    expect(seen.some((r) => r.method === 'PUT' && r.url.includes(sha256(M)) && /[?&]partNumber=2/.test(r.url)), 'the 9 MiB content went up in parts').toBe(true);

    // A version conflict after the upload (held at the proxy while another write commits): the
    // loser's own cleanup removes its object at once.
    const A = content(40_000);
    const B = content(1_000);
    const aArrived = hold((method, url) => method === 'PUT' && url.includes(sha256(A)), 2_500);
    const loser = docs(patient)
      .update(r1.id, { n: 1, file: A.toString('base64') }, 1)
      .then(
        () => null,
        (e: unknown) => e,
      );
    await aArrived;
    await c.update(r1.id, { n: 1, file: B.toString('base64') }, 1);
    model.get(r1.id)!.push(sha256(B));
    expect(await loser).toBeInstanceOf(VersionConflictError);
    faultFor = null;
    expect((await contentKeys()).some((k) => k.includes(sha256(A))), "the loser's content is gone before any sweep").toBe(false);

    // A restore brings v0's X back (an intent protects it until the commit).
    await c.restoreObject(r1.id, { ov: 0 }, { expectedOv: 2 });
    model.get(r1.id)!.push(sha256(X));

    const leftBefore = (await contentKeys()).length;
    const intentsBefore = intentRows();
    doomed.clear();
    await sleep(STALE_SECONDS * 1000 + 200);
    const report = await x.repair();
    const checked = await checkAgainst(model);
    console.log(
      `[reliability] content orphans on S3 (scripted): ${Object.values(errors).reduce((a, b) => a + b, 0)} refused writes ${JSON.stringify(errors)}; ` +
        `before the sweep ${leftBefore} content objects, ${intentsBefore} upload intents; repair ${JSON.stringify(report.uploads)}; ` +
        `after it ${checked.objects} objects, each referenced, ${checked.versions} versions read back by SHA-256; proxy faults ${JSON.stringify(proxy.injected)}`,
    );
    // Z, W, V, R and M were stored and belong to no version, Q's intent had no object; X is kept for v0.
    expect(report.uploads.deleted).toBe(6);
    expect(report.uploads.kept).toBe(1);
    expect(report.uploads.failed).toBe(0);
    expect(intentRows()).toBe(0);

    // The scheduled archive sweep removes them too (here: one more refused write).
    const L = content(10_000);
    doomed.set(sha256(L), { kind: 'ghost' });
    await refused(() => c.update(r1.id, { n: 1, file: L.toString('base64') }, 3));
    doomed.clear();
    expect((await contentKeys()).some((k) => k.includes(sha256(L)))).toBe(true);
    await sleep(STALE_SECONDS * 1000 + 200);
    const job = await runJob(x, 'archive', { log: null, waitForLease: true });
    expect(job.failures).toEqual([]);
    expect(job.counts).toMatchObject({ orphanContentDeleted: 1 });
    await checkAgainst(model);
    expect(intentRows()).toBe(0);
  }, 120_000);

  it('seeded: concurrent writers on shared records, a quarter of the new content doomed to a fault; nothing acknowledged lost, nothing left', async () => {
    const gen = new Gen(SEED);
    const c = docs();
    const WRITERS = 3;
    const OPS = Math.round(20 * SCALE);
    const kinds: Fault[] = [{ kind: 'ghost' }, { kind: 'late', delayMs: REQUEST_TIMEOUT_MS * 3 }, { kind: 'reset' }, { kind: 'slow', delayMs: REQUEST_TIMEOUT_MS * 3 }, { kind: 'error', status: 500, code: 'InternalError' }];
    const model: Model = new Map();
    const acked = new Map<string, Map<number, string | null>>();
    const tally: Record<string, number> = {};
    const count = (what: string) => (tally[what] = (tally[what] ?? 0) + 1);
    const shared: string[] = [];
    for (let i = 0; i < 4; i++) {
      const bytes = randomBytes(2_000 + gen.int(30_000));
      const r = await c.create({ n: i, file: bytes.toString('base64') });
      shared.push(r.id);
      acked.set(r.id, new Map([[0, sha256(bytes)]]));
    }
    const fresh = () => {
      const bytes = randomBytes(1_000 + gen.int(60_000));
      if (gen.chance(0.25)) doomed.set(sha256(bytes), gen.pick(kinds));
      return bytes;
    };
    const writer = async (w: number) => {
      for (let i = 0; i < OPS; i++) {
        const id = gen.pick(shared);
        const roll = gen.float();
        let op = 'update';
        try {
          const head = (await c.getLatest(id, { includeDeleted: true }))!;
          if (roll < 0.5) {
            const bytes = fresh();
            const r = await c.update(id, { n: w, file: bytes.toString('base64') }, head.ov);
            acked.get(id)!.set(r.ov, sha256(bytes));
          } else if (roll < 0.8) {
            op = 'revert';
            const earlier = await c.getVersion(id, gen.int(head.ov + 1));
            if (!earlier || earlier.deleted) continue;
            const r = await c.update(id, { n: w, file: earlier.data.file }, head.ov);
            acked.get(id)!.set(r.ov, sha256(Buffer.from(earlier.data.file as string, 'base64')));
          } else if (roll < 0.9) {
            op = 'restore';
            const target = gen.int(head.ov + 1);
            const version = await c.getVersion(id, target);
            const r = await c.restoreObject(id, { ov: target }, { expectedOv: head.ov });
            acked.get(id)!.set(r.ov, version!.deleted ? null : sha256(Buffer.from(version!.data.file as string, 'base64')));
          } else {
            op = 'create';
            const bytes = fresh();
            const r = await c.create({ n: w, file: bytes.toString('base64') });
            acked.set(r.id, new Map([[0, sha256(bytes)]]));
          }
          count(`${op} acknowledged`);
        } catch (err) {
          count(`${op} ${errorName(err)}`);
          if (!(err instanceof StorageError) && !(err instanceof VersionConflictError)) throw err;
        }
      }
    };
    await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
    doomed.clear();
    const leftBefore = (await contentKeys()).length;
    await sleep(STALE_SECONDS * 1000 + 200);
    const report = await x.repair();
    // The model: every version of every record this test wrote (acknowledged ones must match).
    for (const [id, versions] of acked) {
      const head = (await c.getLatest(id, { includeDeleted: true }))!;
      const shas: Array<string | null> = [];
      for (let ov = 0; ov <= head.ov; ov++) {
        const version = (await c.getVersion(id, ov))!;
        const sha = version.deleted ? null : sha256(Buffer.from(version.data.file as string, 'base64'));
        if (versions.has(ov)) expect(sha, `${id} v${ov}`).toBe(versions.get(ov));
        shas.push(sha);
      }
      model.set(id, shas);
    }
    // Records of the scripted test share the bucket: they are checked again too.
    for (let afterId: string | undefined; ; ) {
      const page = await c.listByMeta({ includeDeleted: true, limit: 100, ...(afterId ? { afterId } : {}) });
      for (const r of page.items) {
        if (model.has(r.id)) continue;
        const shas: Array<string | null> = [];
        for (let ov = 0; ov <= r.ov; ov++) {
          const version = (await c.getVersion(r.id, ov))!;
          shas.push(version.deleted ? null : sha256(Buffer.from(version.data.file as string, 'base64')));
        }
        model.set(r.id, shas);
      }
      if (page.nextAfterId === null) break;
      afterId = page.nextAfterId;
    }
    const checked = await checkAgainst(model);
    console.log(
      `[reliability] content orphans on S3 (seed ${SEED}): ${WRITERS} writers x ${OPS} ops on ${shared.length} shared records: ${JSON.stringify(tally)}; ` +
        `${leftBefore} content objects before the sweep, repair ${JSON.stringify(report.uploads)}, ${checked.objects} after it (each referenced); ${checked.versions} versions read back by SHA-256`,
    );
    expect(report.uploads.failed).toBe(0);
    expect(intentRows()).toBe(0);
    expect(Object.keys(tally).some((k) => k.endsWith('StorageError'))).toBe(true);
  }, 180_000);

  it('a write slower than limits.maxUploadSeconds is refused at its commit, and leaves nothing', async () => {
    const c = docs();
    const first = randomBytes(5_000);
    const r = await c.create({ n: 3, file: first.toString('base64') });
    const slow = randomBytes(5_000);
    // Held, then forwarded while the (patient) client still waits: the upload lands after the sweep below.
    const atProxy = hold((method, url) => method === 'PUT' && url.includes(sha256(slow)), STALE_SECONDS * 1000 + 2_000);
    const pending = docs(patient)
      .update(r.id, { n: 3, file: slow.toString('base64') }, 0)
      .then(
        () => null,
        (e: unknown) => e,
      );
    await atProxy;
    await sleep(STALE_SECONDS * 1000 + 100);
    // The sweep takes the writer's intent as stale (nothing is at the key yet, so nothing to delete).
    expect((await x.repair()).uploads).toEqual({ deleted: 1, kept: 0, failed: 0 });
    const err = await pending;
    faultFor = null;
    // The commit finds its intent gone and is refused; the object that landed after the sweep
    // looked is removed by the writer itself (it records the key again and cleans it up).
    expect(err).toBeInstanceOf(StorageError);
    expect(String((err as Error).message)).toMatch(/maxUploadSeconds/);
    expect((await contentKeys()).some((k) => k.includes(sha256(slow)))).toBe(false);
    expect((await docs().getLatest(r.id))?.ov).toBe(0);
    await sleep(STALE_SECONDS * 1000 + 200);
    await x.repair();
    expect((await contentKeys()).filter((k) => k.includes(r.id))).toEqual([`content/docs/${r.id}/file/${sha256(first)}/blob.bin`]);
    expect(intentRows()).toBe(0);
  }, 60_000);
});
