import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultAdapters } from '../../core/adapters/registry.js';
import { ClosedError, ConflictError, StorageError } from '../../core/errors.js';
import { type AdapterSource, guardAdapter } from '../../core/store/guard.js';
import { tempDir } from '../support/temp.js';

// The guard: made on first use, opened once (and again after a failed open), refused after
// close, errors named. The adapter here is a small one written for these cases: it records
// what the guard asked of it, and its `open` fails while told to.

/** The port of the adapter below: what the guard wraps. */
interface RecordingPort {
  readonly name: string;
  readonly capabilities: { fast: boolean };
  open?(): Promise<void>;
  read(key: string): Promise<string>;
  close(): Promise<void>;
}

class Recording implements RecordingPort {
  readonly name = 'recording';
  readonly capabilities = { fast: true };
  opens = 0;
  closes = 0;
  calls: string[] = [];
  failOpens = 0;
  openGate: Promise<void> | null = null;

  async open(): Promise<void> {
    this.opens++;
    await this.openGate;
    if (this.failOpens > 0) {
      this.failOpens--;
      throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    }
  }

  async read(key: string): Promise<string> {
    this.calls.push(key);
    if (key === 'broken') throw Object.assign(new Error('disk says no'), { code: 'EIO' });
    if (key === 'taken') throw new ConflictError('taken');
    return `value of ${key}`;
  }

  async close(): Promise<void> {
    this.closes++;
  }
}

function guarded(make: () => RecordingPort | AdapterSource<RecordingPort>) {
  const state = { closed: false };
  const store = guardAdapter<RecordingPort>('recording store', make, () => state.closed);
  return { store, close: async () => ((state.closed = true), await store.close()) };
}

function source(adapter: Recording, loads: { count: number }, fail?: () => boolean): AdapterSource<RecordingPort> {
  return {
    members: { name: 'recording', capabilities: { fast: true } },
    open: async () => {
      loads.count++;
      if (fail?.()) throw new Error('Cannot find module ./recording.js');
      return adapter;
    },
  };
}

describe('the adapter guard', () => {
  it('opens an adapter once, before its first call; concurrent first calls share the open', async () => {
    const adapter = new Recording();
    const { store, close } = guarded(() => adapter);
    expect(adapter.opens).toBe(0);
    expect(await Promise.all([store.read('a'), store.read('b'), store.read('c')])).toEqual(['value of a', 'value of b', 'value of c']);
    await store.read('d');
    expect(adapter.opens).toBe(1);
    await close();
    expect(adapter.closes).toBe(1);
  });

  it('fails the call whose open failed, as a StorageError naming the adapter and the call, and opens again on the next call', async () => {
    const adapter = new Recording();
    adapter.failOpens = 2;
    const { store, close } = guarded(() => adapter);
    const first = await store.read('a').catch((e: unknown) => e);
    expect(first).toBeInstanceOf(StorageError);
    expect(first).toMatchObject({ adapter: 'recording', operation: 'read', message: 'recording store failed during read: ECONNREFUSED' });
    await expect(store.read('a')).rejects.toBeInstanceOf(StorageError);
    expect(await store.read('a')).toBe('value of a');
    expect(adapter.opens).toBe(3);
    expect(adapter.calls).toEqual(['a']); // the method ran only once its adapter was open
    await close();
  });

  it('never opens after close: a call is refused, and an open in flight does not let its call through', async () => {
    const adapter = new Recording();
    adapter.failOpens = 1;
    const { store, close } = guarded(() => adapter);
    await expect(store.read('a')).rejects.toBeInstanceOf(StorageError);
    await close();
    await expect(store.read('a')).rejects.toBeInstanceOf(ClosedError);
    expect(adapter.opens).toBe(1);

    const slow = new Recording();
    let release = () => undefined as void;
    slow.openGate = new Promise<void>((r) => (release = r));
    const second = guarded(() => slow);
    const pending = second.store.read('x').catch((e: unknown) => e);
    await Promise.resolve();
    await second.close();
    release();
    expect(await pending).toBeInstanceOf(ClosedError);
    expect(slow.calls).toEqual([]);
    expect(slow.closes).toBe(1);
  });

  it('close of a store never used makes nothing; a call after close makes nothing either', async () => {
    let made = 0;
    const { store, close } = guarded(() => (made++, new Recording()));
    await close();
    expect(() => store.read('a')).toThrow(ClosedError);
    expect(made).toBe(0);
  });

  it('turns errors that are not XronoxErrors into StorageErrors naming adapter and operation, and lets XronoxErrors through', async () => {
    const { store, close } = guarded(() => new Recording());
    const err = await store.read('broken').catch((e: unknown) => e);
    expect(err).toMatchObject({ adapter: 'recording', operation: 'read', message: 'recording store failed during read: EIO' });
    expect((err as StorageError).cause).toBeInstanceOf(Error);
    await expect(store.read('taken')).rejects.toBeInstanceOf(ConflictError);
    await close();
  });

  it('a source: members answer before it is loaded; the first call loads it once; a failed load is a StorageError of the open, tried again', async () => {
    const adapter = new Recording();
    const loads = { count: 0 };
    let failing = true;
    const { store, close } = guarded(() => source(adapter, loads, () => failing));
    expect(store.name).toBe('recording');
    expect(store.capabilities).toEqual({ fast: true });
    expect(loads.count).toBe(0);
    const err = await store.read('a').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(err).toMatchObject({ adapter: 'recording store', operation: 'open', message: 'Could not open the recording store: Cannot find module ./recording.js' });
    failing = false;
    expect(await Promise.all([store.read('a'), store.read('b')])).toEqual(['value of a', 'value of b']);
    expect(loads.count).toBe(2);
    expect(adapter.opens).toBe(1);
    await close();
    expect(adapter.closes).toBe(1);
  });

  it('a source never loaded is not loaded by close, nor by probes (then, symbols, close)', async () => {
    const loads = { count: 0 };
    const { store, close } = guarded(() => source(new Recording(), loads));
    expect((store as unknown as { then?: unknown }).then).toBeUndefined();
    expect(String(Object.prototype.toString.call(store))).toBe('[object Object]');
    expect((store as unknown as { open?: unknown }).open).toBeUndefined();
    await close();
    expect(loads.count).toBe(0);
  });

  it('closing while a source loads closes what it loaded', async () => {
    const adapter = new Recording();
    let release = () => undefined as void;
    const gate = new Promise<void>((r) => (release = r));
    const slow: AdapterSource<RecordingPort> = { members: { name: 'recording', capabilities: { fast: true } }, open: async () => (await gate, adapter) };
    const { store, close } = guarded(() => slow);
    const pending = store.read('a').catch((e: unknown) => e);
    await Promise.resolve();
    const closing = close();
    release();
    await closing;
    expect(await pending).toBeInstanceOf(ClosedError);
    expect(adapter.closes).toBe(1);
    expect(adapter.opens).toBe(0);
  });
});

describe('the default adapters through the guard', () => {
  const dir = tempDir('xronox-guard');
  afterAll(() => dir.cleanup());

  it('an unused store makes no file or folder; a blob store without check says so before it is loaded', async () => {
    const basePath = join(dir.path, `blobs-${randomUUID()}`);
    const sqlitePath = join(dir.path, `x-${randomUUID()}`, 'x.sqlite');
    const closed = () => false;
    const index = guardAdapter('index store', () => defaultAdapters.indexStore('local', { sqlitePath }, {} as never), closed);
    const blobs = guardAdapter('blob store', () => defaultAdapters.blobStore(null, null, basePath), closed);
    const s3 = guardAdapter('blob store', () => defaultAdapters.blobStore('s3', { region: 'us-east-1', endpoint: 'http://127.0.0.1:1', forcePathStyle: true }, undefined), closed);
    expect([index.name, blobs.name, s3.name]).toEqual(['sqlite', 'fs', 's3']);
    expect(typeof blobs.check).toBe('function');
    expect(s3.check).toBeUndefined();
    expect(existsSync(sqlitePath) || existsSync(basePath)).toBe(false);
    await blobs.check!('bucket');
    await index.ping();
    expect(existsSync(sqlitePath)).toBe(true);
    for (const s of [index, blobs, s3]) await s.close();
  });

  it('the registry says of each adapter what the adapter itself says before its first operation', async () => {
    const sqlitePath = join(dir.path, `members-${randomUUID()}.sqlite`);
    const s3 = { region: 'us-east-1', endpoint: 'http://127.0.0.1:1', forcePathStyle: true, requestTimeoutMs: 1234, conditionalWrites: false };
    const config = { collectionMaps: {}, transactions: { enabled: true, autoDetect: false } } as never;
    const sources: Array<AdapterSource<{ readonly name: string; close(): Promise<void> }>> = [
      defaultAdapters.indexStore('local', { sqlitePath }, config),
      defaultAdapters.indexStore('mongo', { mongoUri: 'mongodb://127.0.0.1:1/x' }, config),
      defaultAdapters.indexStore('mongo', { mongoUri: 'mongodb://127.0.0.1:1/x' }, { collectionMaps: {} } as never),
      defaultAdapters.indexStore('pg', { postgresUri: 'postgres://127.0.0.1:1/x', schemaPrefix: 'guard_' }, config),
      defaultAdapters.documentStore('local', { sqlitePath }),
      defaultAdapters.documentStore('mongo', { mongoUri: 'mongodb://127.0.0.1:1/x' }),
      defaultAdapters.blobStore(null, null, join(dir.path, 'members-blobs')),
      defaultAdapters.blobStore('s3', s3, undefined),
      defaultAdapters.blobStore('s3', { region: 'eu-west-1' }, undefined),
    ];
    for (const source of sources) {
      const adapter = await source.open();
      try {
        const own = adapter as unknown as Record<string, unknown>;
        const plain = Object.fromEntries(Object.keys(source.members).map((k) => [k, own[k]]));
        expect(plain).toEqual(source.members);
        // Every plain member of the adapter (own fields, and the getter MongoIndexStore has) is stated.
        const members = [...Object.keys(own), 'capabilities'].filter((k) => own[k] !== undefined && typeof own[k] !== 'function');
        expect(Object.keys(source.members)).toEqual(expect.arrayContaining(members));
        // A blob store lacking `check` says so (`check: undefined`); one that has it does not hide it.
        if ('maxPutMs' in source.members) expect(Object.hasOwn(source.members, 'check')).toBe(typeof own.check !== 'function');
      } finally {
        await adapter.close();
      }
    }
  });
});
