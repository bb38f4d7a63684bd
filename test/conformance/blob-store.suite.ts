import { randomBytes, randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobStore } from '../../core/contracts/blob-store.js';
import { ConflictError, NotFoundError, ValidationError } from '../../core/errors.js';
import { copyBlob } from '../../core/store/blob-copy.js';

/**
 * The blob store port's conformance suite. Every adapter runs it through a ten-line test file:
 * `blobStoreConformance('fs', async () => ({ store, bucket, cleanup }))`.
 *
 * It checks only what the TSDoc of `core/contracts/blob-store.ts` promises. `open` is called once
 * per test; the bucket may be shared with other tests (as on S3), so every test writes under its
 * own random key prefix and never lists outside it. Keys use only `[A-Za-z0-9._-]` segments, the
 * subset every backend accepts.
 */
/**
 * Behaviours a test server may lack although every production S3 has them. A backend that
 * declares one skips that case with its reason printed; a server that has it (Ceph in CI) runs it.
 */
export interface ServerLimits {
  /** Readers can see a half-written object during an overwrite. */
  nonAtomicOverwrite?: string;
  /** ListObjectsV2 is not in byte order when one key prefixes another. */
  unorderedListing?: string;
}

export function blobStoreConformance(
  name: string,
  open: () => Promise<{ store: BlobStore; bucket: string; cleanup: () => Promise<void> }>,
  limits: ServerLimits = {},
): void {
  const unless = (reason: string | undefined) => (ctx: { skip: () => void }) => {
    if (reason === undefined) return;
    console.warn(`[skipped] ${name}: ${reason}`);
    ctx.skip();
  };
  describe(`blob store conformance: ${name}`, () => {
    let store: BlobStore;
    let bucket: string;
    let cleanup: () => Promise<void>;
    /** This test's own key prefix, without a trailing slash. */
    let root: string;

    beforeEach(async () => {
      ({ store, bucket, cleanup } = await open());
      root = `t${randomUUID().replace(/-/g, '').slice(0, 16)}`;
    });
    afterEach(async () => {
      await cleanup();
    });

    const putAll = async (keys: readonly string[]) => {
      for (const key of keys) await store.put(bucket, key, new TextEncoder().encode(key));
    };

    describe('get, put, head', () => {
      it('get and head of a missing object return null', async () => {
        expect(await store.get(bucket, `${root}/missing.json`)).toBeNull();
        expect(await store.head(bucket, `${root}/missing.json`)).toBeNull();
        expect(await store.get(bucket, `${root}/no/such/folder/x.bin`)).toBeNull();
        expect(await store.head(bucket, `${root}/no/such/folder/x.bin`)).toBeNull();
        // A key that only prefixes other keys is not an object.
        await store.put(bucket, `${root}/dir/child.bin`, bytes([1]));
        expect(await store.head(bucket, `${root}/dir`)).toBeNull();
        // An object's key with a slash appended is not an object either.
        expect(await store.get(bucket, `${root}/dir/child.bin/x`)).toBeNull();
        expect(await store.head(bucket, `${root}/dir/child.bin/x`)).toBeNull();
      });

      it('returns the exact bytes put: every byte value, zero bytes, views into larger buffers', async () => {
        const all = new Uint8Array(2 + 256 * 4 + 3);
        for (let i = 0; i < 256 * 4; i++) all[2 + i] = i % 256;
        await store.put(bucket, `${root}/all-bytes.bin`, all);
        expectBytes(await store.get(bucket, `${root}/all-bytes.bin`), all);

        const zeros = new Uint8Array(4096);
        await store.put(bucket, `${root}/zeros.bin`, zeros);
        expectBytes(await store.get(bucket, `${root}/zeros.bin`), zeros);

        // A view: only its own window may be stored, not the buffer around it.
        const backing = randomBytes(1000);
        const view = new Uint8Array(backing.buffer, backing.byteOffset + 100, 50);
        await store.put(bucket, `${root}/view.bin`, view);
        expectBytes(await store.get(bucket, `${root}/view.bin`), backing.subarray(100, 150));

        const utf8 = new TextEncoder().encode('{"t":"héllo 🎉 日本"}');
        await store.put(bucket, `${root}/doc.json`, utf8, { contentType: 'application/json' });
        const got = await store.get(bucket, `${root}/doc.json`);
        expect(got).toBeInstanceOf(Uint8Array);
        expect(new TextDecoder().decode(got!)).toBe('{"t":"héllo 🎉 日本"}');
      });

      it('keeps the bytes, not the caller buffer: changing it after put changes nothing', async () => {
        const body = randomBytes(256);
        const copy = Buffer.from(body);
        await store.put(bucket, `${root}/owned.bin`, body);
        body.fill(0xff);
        expectBytes(await store.get(bucket, `${root}/owned.bin`), copy);
      });

      it('stores an empty object, which exists and has size 0', async () => {
        await store.put(bucket, `${root}/empty.bin`, new Uint8Array(0));
        const got = await store.get(bucket, `${root}/empty.bin`);
        expect(got).not.toBeNull();
        expect(got!.byteLength).toBe(0);
        expect((await store.head(bucket, `${root}/empty.bin`))?.size).toBe(0);
        expect((await store.list(bucket, `${root}/`)).keys).toEqual([`${root}/empty.bin`]);
      });

      it('stores a 5 MB object', async () => {
        const big = randomBytes(5 * 1024 * 1024);
        await store.put(bucket, `${root}/big.bin`, big);
        expectBytes(await store.get(bucket, `${root}/big.bin`), big);
        expect((await store.head(bucket, `${root}/big.bin`))?.size).toBe(big.byteLength);
      });

      it('head reports size, a content type for JSON put as JSON, and a parseable lastModified', async () => {
        const body = randomBytes(12_345);
        await store.put(bucket, `${root}/sized.bin`, body);
        const info = await store.head(bucket, `${root}/sized.bin`);
        expect(info).not.toBeNull();
        expect(info!.size).toBe(12_345);
        expect(Number.isNaN(Date.parse(info!.lastModified))).toBe(false);

        await store.put(bucket, `${root}/doc.json`, new TextEncoder().encode('{"a":1}'), { contentType: 'application/json' });
        expect(await store.head(bucket, `${root}/doc.json`)).toMatchObject({ size: 7, contentType: 'application/json' });
      });

      it('an overwrite replaces the object, including with a shorter one', async () => {
        const key = `${root}/over.bin`;
        await store.put(bucket, key, randomBytes(10_000));
        const shorter = randomBytes(10);
        await store.put(bucket, key, shorter);
        expectBytes(await store.get(bucket, key), shorter);
        expect((await store.head(bucket, key))?.size).toBe(10);
        expect((await store.list(bucket, `${root}/`)).keys).toEqual([key]);
      });

      it('overwrites atomically: concurrent readers during 50 overwrites see only whole old or new values', async (ctx) => {
        unless(limits.nonAtomicOverwrite)(ctx);
        const key = `${root}/atomic.bin`;
        // Version v is `sizeOf(v)` bytes, all equal to v: a torn read shows as a wrong size or a mixed byte.
        const sizeOf = (v: number) => 64 * 1024 + v * 4099;
        const valueOf = (v: number) => new Uint8Array(sizeOf(v)).fill(v);
        await store.put(bucket, key, valueOf(0));

        let writing = true;
        const problems: string[] = [];
        const seen = new Set<number>();
        let reads = 0;
        const reader = async () => {
          while (writing) {
            const got = await store.get(bucket, key);
            reads++;
            if (got === null) {
              problems.push('read null during an overwrite');
              continue;
            }
            const v = got[0]!;
            seen.add(v);
            if (got.byteLength !== sizeOf(v)) problems.push(`version ${v} read with ${got.byteLength} bytes, not ${sizeOf(v)}`);
            else if (!got.every((b) => b === v)) problems.push(`version ${v} read with mixed bytes`);
          }
        };
        const writer = async () => {
          try {
            for (let v = 1; v <= 50; v++) await store.put(bucket, key, valueOf(v));
          } finally {
            writing = false;
          }
        };
        await Promise.all([writer(), reader(), reader(), reader()]);

        expect(problems.slice(0, 5)).toEqual([]);
        expect(reads).toBeGreaterThan(0);
        expectBytes(await store.get(bucket, key), valueOf(50));
      });
    });

    describe('create-only puts', () => {
      it('ifNoneMatch creates a missing object', async () => {
        await store.put(bucket, `${root}/once.json`, bytes([1, 2]), { ifNoneMatch: true });
        expectBytes(await store.get(bucket, `${root}/once.json`), bytes([1, 2]));
      });

      it('ifNoneMatch refuses to replace an existing object with a ConflictError, leaving it intact', async (ctx) => {
        if (!store.capabilities.conditionalWrites) {
          console.warn(`[skipped] ${name}: capabilities.conditionalWrites is false (the server ignores If-None-Match)`);
          ctx.skip();
        }
        await store.put(bucket, `${root}/once.json`, bytes([1]));
        await expect(store.put(bucket, `${root}/once.json`, bytes([9]), { ifNoneMatch: true })).rejects.toBeInstanceOf(ConflictError);
        expectBytes(await store.get(bucket, `${root}/once.json`), bytes([1]));
        // Of many concurrent create-only writers exactly one wins.
        const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => store.put(bucket, `${root}/race.json`, bytes([i]), { ifNoneMatch: true })));
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ConflictError);
      });
    });

    describe('copy', () => {
      it('copies the exact bytes (the store\'s own copy when it has one, else a get and a put), replacing the destination; a missing source is a NotFoundError and writes nothing', async () => {
        const body = randomBytes(70_000);
        await store.put(bucket, `${root}/from/v0.json`, body);
        await store.put(bucket, `${root}/to/v0.json`, bytes([1]));
        await copyBlob(store, { bucket, key: `${root}/from/v0.json` }, { bucket, key: `${root}/to/v0.json` });
        expectBytes(await store.get(bucket, `${root}/to/v0.json`), body);
        expectBytes(await store.get(bucket, `${root}/from/v0.json`), body);
        if (typeof store.copy === 'function') {
          await store.copy(bucket, `${root}/from/v0.json`, bucket, `${root}/direct/v0.json`);
          expectBytes(await store.get(bucket, `${root}/direct/v0.json`), body);
        }
        await expect(copyBlob(store, { bucket, key: `${root}/missing.json` }, { bucket, key: `${root}/never.json` })).rejects.toBeInstanceOf(NotFoundError);
        expect(await store.head(bucket, `${root}/never.json`)).toBeNull();
      });
    });

    describe('delete', () => {
      it('removes the object, and removing a missing object is not an error', async () => {
        await store.delete(bucket, `${root}/never.bin`);
        await store.delete(bucket, `${root}/no/such/folder/never.bin`);

        const key = `${root}/gone/x.bin`;
        await store.put(bucket, key, bytes([1, 2, 3]));
        await store.put(bucket, `${root}/gone/keep.bin`, bytes([4]));
        await store.delete(bucket, key);
        expect(await store.get(bucket, key)).toBeNull();
        expect(await store.head(bucket, key)).toBeNull();
        expect((await store.list(bucket, `${root}/`)).keys).toEqual([`${root}/gone/keep.bin`]);
        await store.delete(bucket, key);
        expectBytes(await store.get(bucket, `${root}/gone/keep.bin`), bytes([4]));

        await store.put(bucket, key, bytes([9]));
        expectBytes(await store.get(bucket, key), bytes([9]));
      });
    });

    describe('list', () => {
      it('lists keys under the prefix in lexicographic (byte) order, at any depth', async (ctx) => {
        unless(limits.unorderedListing)(ctx);
        const names = ['a-x', 'a.x', 'a/x', 'a/y/z', 'a0', 'aa', 'A', '_u', 'b/c/d', 'Z9', '9', 'a_', 'b.json'];
        const keys = names.map((n) => `${root}/${n}`);
        await putAll(shuffle(keys));
        await store.put(bucket, `${root}-sibling/a.x`, bytes([1]));

        const listing = await store.list(bucket, `${root}/`);
        expect(listing.keys).toEqual([...keys].sort(byteOrder));
        expect(listing.nextStartAfter).toBeNull();
      });

      it('treats the prefix as a string prefix: `a/b` matches `a/bc`, `a/b/` does not', async () => {
        const r = root;
        await putAll([`${r}/a/b/1`, `${r}/a/b/2`, `${r}/a/bc`, `${r}/a/bcd/1`, `${r}/a/c`, `${r}/ab`]);
        const keysOf = async (prefix: string) => (await store.list(bucket, prefix)).keys;

        expect(await keysOf(`${r}/a/b/`)).toEqual([`${r}/a/b/1`, `${r}/a/b/2`]);
        expect(await keysOf(`${r}/a/b`)).toEqual([`${r}/a/b/1`, `${r}/a/b/2`, `${r}/a/bc`, `${r}/a/bcd/1`]);
        expect(await keysOf(`${r}/a/bc`)).toEqual([`${r}/a/bc`, `${r}/a/bcd/1`]);
        expect(await keysOf(`${r}/a/bc/`)).toEqual([]);
        expect(await keysOf(`${r}/a/b/1`)).toEqual([`${r}/a/b/1`]);
        expect(await keysOf(`${r}/a/b/1/`)).toEqual([]);
        expect(await keysOf(`${r}/a/`)).toEqual([`${r}/a/b/1`, `${r}/a/b/2`, `${r}/a/bc`, `${r}/a/bcd/1`, `${r}/a/c`]);
        expect(await keysOf(`${r}/a`)).toEqual([`${r}/a/b/1`, `${r}/a/b/2`, `${r}/a/bc`, `${r}/a/bcd/1`, `${r}/a/c`, `${r}/ab`]);
        expect(await store.list(bucket, `${r}/nothing/`)).toEqual({ keys: [], nextStartAfter: null });
        expect(await store.list(bucket, `${r}/nothing`)).toEqual({ keys: [], nextStartAfter: null });
      });

      it('pages with startAfter and limit, visiting each key once; the last page says null', async () => {
        const prefix = `${root}/p/`;
        const keys = Array.from({ length: 25 }, (_, i) => `${prefix}k${String(i).padStart(2, '0')}`);
        await putAll(shuffle(keys));
        await putAll([`${root}/p-decoy`, `${root}/q/k00`, `${root}/pk`]);

        for (const limit of [1, 4, 5, 7, 24, 25, 26, 1000]) {
          const seen: string[] = [];
          let startAfter: string | undefined;
          let lastNext: string | null = 'unset';
          for (let pages = 0; pages < 100; pages++) {
            const page = await store.list(bucket, prefix, { limit, ...(startAfter === undefined ? {} : { startAfter }) });
            expect(page.keys.length, `limit ${limit}`).toBeLessThanOrEqual(limit);
            seen.push(...page.keys);
            lastNext = page.nextStartAfter;
            if (page.nextStartAfter === null) break;
            startAfter = page.nextStartAfter;
          }
          expect(lastNext, `limit ${limit}`).toBeNull();
          expect(seen, `limit ${limit}`).toEqual(keys);
        }

        expect(await store.list(bucket, prefix, { limit: 25 })).toEqual({ keys, nextStartAfter: null });
        expect(await store.list(bucket, prefix)).toEqual({ keys, nextStartAfter: null });
        // startAfter need not be a key: listing resumes after the position it names.
        expect((await store.list(bucket, prefix, { startAfter: `${prefix}k05x`, limit: 2 })).keys).toEqual([`${prefix}k06`, `${prefix}k07`]);
        expect((await store.list(bucket, prefix, { startAfter: `${root}/a`, limit: 1 })).keys).toEqual([`${prefix}k00`]);
        expect(await store.list(bucket, prefix, { startAfter: `${prefix}k24` })).toEqual({ keys: [], nextStartAfter: null });
        expect(await store.list(bucket, prefix, { startAfter: `${prefix}k22`, limit: 2 })).toEqual({
          keys: [`${prefix}k23`, `${prefix}k24`],
          nextStartAfter: null,
        });
      });
    });

    describe('presign', () => {
      it('returns a URL string', async () => {
        const key = `${root}/signed.bin`;
        await store.put(bucket, key, bytes([1, 2, 3]));
        const url = await store.presign(bucket, key, 60);
        expect(typeof url).toBe('string');
        expect(() => new URL(url)).not.toThrow();
      });

      it('a remote presigned URL serves the exact bytes over HTTP', async (ctx) => {
        if (!store.capabilities.remotePresign) {
          const reason = `${name}: capabilities.remotePresign is false, so its presigned URLs are only meaningful on this machine; not fetching`;
          console.info(`[skipped] ${reason}`);
          ctx.skip(reason);
        }
        const key = `${root}/signed.bin`;
        const body = randomBytes(70_000);
        await store.put(bucket, key, body);
        const response = await fetch(await store.presign(bucket, key, 60));
        expect(response.status).toBe(200);
        expectBytes(new Uint8Array(await response.arrayBuffer()), body);
      });
    });

    describe('keys', () => {
      const badKeys = ['..', '../x', 'a/../b', 'a/..', '/a', 'a//b', 'a/', '/'];

      /** The contract's refusal: a ValidationError naming the key, not whatever the backend would throw (ENOENT, a TypeError…). */
      const refusal = (key: string) => expect.objectContaining({ name: 'ValidationError', message: `Invalid object key ${JSON.stringify(key)}` });
      async function expectRefused(key: string, call: () => Promise<unknown>): Promise<void> {
        const err = await call().then(
          () => new Error(`${JSON.stringify(key)} was accepted`),
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(ValidationError);
        expect(err).toEqual(refusal(key));
      }

      it.each(badKeys)('rejects the key %j in put, get, head and delete with a ValidationError', async (bad) => {
        const key = bad.startsWith('/') || bad.startsWith('..') ? bad : `${root}/${bad}`;
        await expectRefused(key, () => store.put(bucket, key, bytes([1])));
        await expectRefused(key, () => store.get(bucket, key));
        await expectRefused(key, () => store.head(bucket, key));
        await expectRefused(key, () => store.delete(bucket, key));
      });

      it('rejects the empty key in put, get, head and delete with a ValidationError, and the bucket stays usable', async () => {
        await expectRefused('', () => store.put(bucket, '', bytes([1])));
        await expectRefused('', () => store.get(bucket, ''));
        await expectRefused('', () => store.head(bucket, ''));
        await expectRefused('', () => store.delete(bucket, ''));
        await store.put(bucket, `${root}/after.bin`, bytes([2]));
        expectBytes(await store.get(bucket, `${root}/after.bin`), bytes([2]));
      });

      // S3 has no folders: a key that only prefixes other keys names no object.
      it('get, head and delete of a key that only prefixes other keys treat it as missing', async () => {
        await store.put(bucket, `${root}/folder/child.bin`, bytes([1]));
        expect(await store.get(bucket, `${root}/folder`)).toBeNull();
        expect(await store.head(bucket, `${root}/folder`)).toBeNull();
        await store.delete(bucket, `${root}/folder`);
        expectBytes(await store.get(bucket, `${root}/folder/child.bin`), bytes([1]));
      });
    });
  });
}

function bytes(values: number[]): Uint8Array {
  return new Uint8Array(values);
}

function expectBytes(actual: Uint8Array | null, expected: Uint8Array): void {
  expect(actual).not.toBeNull();
  expect(actual!.byteLength).toBe(expected.byteLength);
  // Buffer.equals instead of toEqual: fast on megabytes, and blind to the Buffer/Uint8Array class.
  const same = Buffer.from(actual!.buffer, actual!.byteOffset, actual!.byteLength).equals(
    Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength),
  );
  expect(same, 'bytes differ').toBe(true);
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function shuffle<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
