import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdirSync, openSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../core/adapters/fs/fs-blob-store.js';
import { sqliteIndexStore } from '../support/sqlite-index.js';
import { tempDir } from '../support/temp.js';
import { blobStoreConformance } from './blob-store.suite.js';
import { indexStoreConformance } from './index-store.suite.js';

indexStoreConformance('sqlite', async () => {
  const dir = tempDir('xronox-index');
  const store = sqliteIndexStore({ path: join(dir.path, 'index.db') });
  return { store, cleanup: async () => { await store.close(); dir.cleanup(); } };
});

blobStoreConformance('fs', async () => {
  const dir = tempDir('xronox-blob');
  const store = new FsBlobStore({ basePath: dir.path });
  return { store, bucket: 'test-bucket', cleanup: async () => { await store.close(); dir.cleanup(); } };
});

describe('the filesystem blob store: folder fsyncs shared by concurrent puts', () => {
  it('puts into one folder at once all land, each readable with its bytes, and later puts into it still do', async () => {
    const dir = tempDir('xronox-blob-dirsync');
    const store = new FsBlobStore({ basePath: dir.path });
    const keys = Array.from({ length: 40 }, (_, i) => `versions/orders/r1/v${i}.json`);
    const elsewhere = Array.from({ length: 6 }, (_, i) => `versions/orders/r${i + 2}/v0.json`);
    // Three waves: the first starts a folder fsync, the second books the next one while it runs, the third arrives later.
    await Promise.all([...keys, ...elsewhere].map((key) => store.put('bucket', key, Buffer.from(JSON.stringify({ key })), { ifNoneMatch: true })));
    await Promise.all(keys.map((key) => store.put('bucket', key.replace('.json', '.b.json'), Buffer.from(key))));
    await store.put('bucket', 'versions/orders/r1/last.json', Buffer.from('last'));
    for (const key of [...keys, ...elsewhere]) expect(Buffer.from((await store.get('bucket', key))!).toString()).toBe(JSON.stringify({ key }));
    for (const key of keys) expect(Buffer.from((await store.get('bucket', key.replace('.json', '.b.json')))!).toString()).toBe(key);
    expect(readdirSync(join(dir.path, 'bucket', 'versions', 'orders', 'r1'))).toHaveLength(81);
    await store.close();
    dir.cleanup();
  });
});

describe('the filesystem blob store: temporary files', () => {
  it("writes puts through a temporary folder in the bucket's folder that no key can name, and clears what crashed puts left there", async () => {
    const dir = tempDir('xronox-blob-temp');
    const temp = join(dir.path, 'bucket', '.xronox-tmp');
    mkdirSync(temp, { recursive: true });
    // One file of a put cut off long ago, one of a put that may still be running.
    writeFileSync(join(temp, 'old.xronox-tmp'), 'x');
    utimesSync(join(temp, 'old.xronox-tmp'), new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
    writeFileSync(join(temp, 'recent.xronox-tmp'), 'y');
    const store = new FsBlobStore({ basePath: dir.path });
    await store.put('bucket', 'a/b.json', Buffer.from('{}'));
    expect(readdirSync(temp)).toEqual(['recent.xronox-tmp']);
    expect(readdirSync(join(dir.path, 'bucket', 'a'))).toEqual(['b.json']);
    expect(readdirSync(join(dir.path, 'bucket')).sort()).toEqual(['.xronox-tmp', 'a']);
    expect((await store.list('bucket', '')).keys).toEqual(['a/b.json']);
    await store.close();
    dir.cleanup();
  });
});

describe('the filesystem blob store: reads', () => {
  it('reads small and large objects whole, each in its own memory, and a read in a loop lets timers and other I/O run', async () => {
    const dir = tempDir('xronox-blob-read');
    const store = new FsBlobStore({ basePath: dir.path });
    try {
      // Either side of the size up to which reads are synchronous (256 KiB).
      for (const size of [1, 4096, 256 * 1024, 256 * 1024 + 1, 3 * 1024 * 1024]) {
        const body = Buffer.alloc(size, size % 251);
        await store.put('bucket', `sizes/${size}.bin`, body);
        const got = await store.get('bucket', `sizes/${size}.bin`);
        expect(Buffer.from(got!).equals(body)).toBe(true);
        expect(got!.byteOffset).toBe(0);
        expect(got!.buffer.byteLength).toBe(size);
      }
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      const until = Date.now() + 60;
      while (Date.now() < until) await store.get('bucket', 'sizes/4096.bin');
      clearInterval(timer);
      expect(ticks).toBeGreaterThan(0);
    } finally {
      await store.close();
      dir.cleanup();
    }
  });

  it('a FIFO at an object path is refused at once: neither the event loop nor a thread-pool thread waits on it', async () => {
    const dir = tempDir('xronox-blob-fifo');
    const store = new FsBlobStore({ basePath: dir.path });
    const fifo = join(dir.path, 'bucket', 'odd', 'pipe.json');
    try {
      mkdirSync(join(dir.path, 'bucket', 'odd'), { recursive: true });
      execFileSync('mkfifo', [fifo]);
      // Before, the read waited for a writer on a thread-pool thread, forever if none came.
      await expect(store.get('bucket', 'odd/pipe.json')).rejects.toThrow(`${fifo} is not a regular file`);
      // A folder there is no object, as before.
      mkdirSync(join(dir.path, 'bucket', 'odd', 'folder.json'));
      expect(await store.get('bucket', 'odd/folder.json')).toBeNull();
    } finally {
      // A reader still waiting on the FIFO (the defect) gets its end of file; none: ENXIO.
      try {
        closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        // no reader
      }
      await store.close();
      dir.cleanup();
    }
  });
});
