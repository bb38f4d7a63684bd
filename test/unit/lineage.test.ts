/**
 * Lineage and actors through the collection API on the embedded default (SQLite × local files):
 * what `create` accepts as a parent and an origin, what it records and makes filterable, and which
 * actors every write accepts. Bad input gets a ValidationError naming the option, and writes nothing.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Collection } from '../../core/engine/collection.js';
import type { Xronox } from '../../core/xronox.js';
import { ValidationError } from '../../core/errors.js';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';

const dir = tempDir('xronox-lineage');
let xronox: Xronox;
/** A collection with no collection map: only the system fields are filterable. */
let notes: Collection;
let other: Collection;

beforeAll(() => {
  xronox = initXronox({
    dbConnections: { local: { sqlitePath: join(dir.path, 'xronox.sqlite') } },
    localStorage: { basePath: join(dir.path, 'blobs'), enabled: true },
    databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme' }] } },
  });
  notes = xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'notes' });
  other = xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'sources' });
});
afterAll(async () => {
  await xronox.shutdown();
  dir.cleanup();
});

/** The ValidationError `write` rejects with, after checking nothing was written. */
async function refused(write: () => Promise<unknown>): Promise<ValidationError> {
  const before = (await notes.listByMeta({ limit: 1000, includeDeleted: true })).items.length;
  const err = await write().then(
    () => {
      throw new Error('expected a ValidationError, but the write succeeded');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ValidationError);
  expect((await notes.listByMeta({ limit: 1000, includeDeleted: true })).items.length).toBe(before);
  return err as ValidationError;
}

const ids = (r: { items: { id: string }[] }) => r.items.map((i) => i.id).sort();

describe('lineage: parentRecord', () => {
  it('defaults the parent collection to the record\'s own, and keeps an explicit one', async () => {
    const source = await other.create({ n: 1 });
    const sibling = await notes.create({ n: 2 });
    const own = await notes.create({ n: 3 }, 'a', 'r', { parentRecord: { id: sibling.id } });
    const cross = await notes.create({ n: 4 }, 'a', 'r', { parentRecord: { id: source.id, collection: 'sources', ov: 0 } });
    expect((await notes.getLatest(own.id))?._system.parent).toStrictEqual({ id: sibling.id, collection: 'notes' });
    expect((await notes.getLatest(cross.id))?._system.parent).toStrictEqual({ id: source.id, collection: 'sources', ov: 0 });
    // Both parts are filterable, on a collection whose map names no property at all.
    expect(ids(await notes.listByMeta({ filter: { '_system.parentId': source.id } }))).toEqual([cross.id]);
    expect(ids(await notes.listByMeta({ filter: { '_system.parentCollection': 'sources' } }))).toEqual([cross.id]);
    expect(ids(await notes.listByMeta({ filter: { '_system.parentCollection': 'notes' } }))).toEqual([own.id]);
    // A record without a parent has neither field.
    expect((await notes.getLatest(sibling.id))?._system.parent).toBeNull();
    expect(ids(await notes.listByMeta({ filter: { '_system.parentId': { $exists: true } } }))).toEqual([own.id, cross.id].sort());
  });

  it('accepts a parent ov of 0 and above, and refuses any other ov with a ValidationError on parentRecord.ov', async () => {
    const parent = await notes.create({ n: 1 });
    const late = await notes.create({ n: 2 }, 'a', 'r', { parentRecord: { id: parent.id, ov: Number.MAX_SAFE_INTEGER } });
    expect((await notes.getLatest(late.id))?._system.parent?.ov).toBe(Number.MAX_SAFE_INTEGER);
    for (const ov of [-1, 1.5, '1', null, Number.MAX_SAFE_INTEGER + 1, Number.NaN]) {
      const err = await refused(() => notes.create({ n: 3 }, 'a', 'r', { parentRecord: { id: parent.id, ov } as never }));
      expect({ ov, path: err.path, message: err.message }).toEqual({ ov, path: 'parentRecord.ov', message: 'parentRecord.ov must be a whole number of at least 0' });
    }
  });

  it('refuses a parent that is not { id, collection?, ov? }, a bad id and a bad collection, each named', async () => {
    const cases: [unknown, string][] = [
      ['some-id', 'parentRecord'],
      [['some-id'], 'parentRecord'],
      [null, 'parentRecord'],
      [{ id: '../etc' }, 'parentRecord.id'],
      [{}, 'parentRecord.id'],
      [{ id: 'ok-id', collection: '$where' }, 'parentRecord.collection'],
      [{ id: 'ok-id', collection: 7 }, 'parentRecord.collection'],
    ];
    for (const [parentRecord, path] of cases) {
      const err = await refused(() => notes.create({ n: 1 }, 'a', 'r', { parentRecord } as never));
      expect({ parentRecord, path: err.path }).toEqual({ parentRecord, path });
      if (path === 'parentRecord') expect(err.message).toBe('parentRecord must be { id, collection?, ov? }');
    }
  });
});

describe('lineage: origin', () => {
  it('takes a label or { type, id? }, and records and indexes exactly what was given', async () => {
    const label = await notes.create({ n: 1 }, 'a', 'r', { origin: 'import' });
    const typed = await notes.create({ n: 2 }, 'a', 'r', { origin: { type: 'agent-run', id: 'run:42' } });
    const typeOnly = await notes.create({ n: 3 }, 'a', 'r', { origin: { type: 'agent-run' } });
    expect((await notes.getLatest(label.id))?._system.origin).toStrictEqual({ type: 'import' });
    expect((await notes.getLatest(typed.id))?._system.origin).toStrictEqual({ type: 'agent-run', id: 'run:42' });
    expect((await notes.getLatest(typeOnly.id))?._system.origin).toStrictEqual({ type: 'agent-run' });
    expect(ids(await notes.listByMeta({ filter: { '_system.originType': 'agent-run' } }))).toEqual([typed.id, typeOnly.id].sort());
    expect(ids(await notes.listByMeta({ filter: { '_system.originId': 'run:42' } }))).toEqual([typed.id]);
    // An origin without an id indexes no id: not even an empty one.
    expect(ids(await notes.listByMeta({ filter: { '_system.originType': 'agent-run', '_system.originId': { $exists: false } } }))).toEqual([typeOnly.id]);
  });

  it('accepts labels of letters, digits and ._:@/- up to 128 characters, starting with a letter or digit', async () => {
    for (const type of ['a', 'Z9', '0', 'a._:@/-b', 'x'.repeat(128), `A${'._:@/-'.repeat(21)}`]) {
      const { id } = await notes.create({ n: 1 }, 'a', 'r', { origin: { type, id: type } });
      expect((await notes.getLatest(id))?._system.origin).toStrictEqual({ type, id: type });
    }
  });

  it('refuses any other label, as type or as id, and an origin that is not a label or { type, id? }', async () => {
    const bad = ['', 'x'.repeat(129), '-lead', '.lead', ' lead', 'trail ', 'trail!', 'mid dle', 'tab\tx', 'new\nline', 'é'];
    const origins: unknown[] = [
      ...bad,
      ...bad.map((type) => ({ type })),
      ...bad.map((id) => ({ type: 'ok', id })),
      { type: 'ok', id: 7 },
      { type: 7 },
      { id: 'no-type' },
      ['import'],
      null,
      42,
    ];
    for (const origin of origins) {
      const err = await refused(() => notes.create({ n: 1 }, 'a', 'r', { origin } as never));
      expect({ origin, path: err.path, message: err.message }).toEqual({
        origin,
        path: 'origin',
        message: 'origin must be a label or { type, id? } of letters, digits and ._:@/- (at most 128)',
      });
    }
  });
});

describe('lineage: create options', () => {
  it('are optional, and must be an object of parentRecord and origin only', async () => {
    const plain = await notes.create({ n: 1 }, 'a', 'r', undefined);
    expect((await notes.getLatest(plain.id))?._system).toMatchObject({ parent: null, origin: null });
    const notObject = await refused(() => notes.create({ n: 1 }, 'a', 'r', 'origin' as never));
    expect({ path: notObject.path, message: notObject.message }).toEqual({ path: 'options', message: 'options of create must be an object with only parentRecord, origin' });
    expect((await refused(() => notes.create({ n: 1 }, 'a', 'r', null as never))).path).toBe('options');
    const unknown = await refused(() => notes.create({ n: 1 }, 'a', 'r', { origin: 'x', parent: { id: 'y' } } as never));
    expect({ path: unknown.path, message: unknown.message }).toEqual({ path: 'options.parent', message: 'options of create has an unknown key "parent"; it takes only parentRecord, origin' });
  });
});

describe('system fields', () => {
  it('insertedAt and updatedAt are filterable on any collection: the first stays, the second moves', async () => {
    const { id, createdAt } = await notes.create({ n: 1, tag: 'timed' });
    const updated = await notes.update(id, { n: 2, tag: 'timed' }, 0);
    expect(updated.updatedAt > createdAt).toBe(true);
    expect(ids(await notes.listByMeta({ filter: { '_system.insertedAt': createdAt } }))).toEqual([id]);
    expect(ids(await notes.listByMeta({ filter: { '_system.updatedAt': updated.updatedAt } }))).toEqual([id]);
    expect(ids(await notes.listByMeta({ filter: { '_system.updatedAt': createdAt } }))).toEqual([]);
    // Any other `_system.` name is not a system field, and this collection has no map that allows it.
    await refused(() => notes.listByMeta({ filter: { '_system.deletedAt': null } }));
  });
});

describe('actors', () => {
  it('accepts a name of 1 to 256 characters and a typed identity, and records what was given', async () => {
    const long = 'n'.repeat(256);
    const a = await notes.create({ n: 1 }, long, 'r');
    const ada = { type: 'user', identifier: 'user-123', name: 'Ada' } as const;
    const b = await notes.create({ n: 2 }, ada);
    const bot = { type: 'agent', identifier: 'i'.repeat(256) } as const;
    const c = await notes.create({ n: 3 }, bot);
    const named = { type: 'api', identifier: 'key-1', name: 'x'.repeat(256) } as const;
    const d = await notes.create({ n: 4 }, named);
    const emptyName = { type: 'system', identifier: 'cron', name: '' } as const;
    const e = await notes.create({ n: 5 }, emptyName);
    expect((await notes.getVersion(a.id, 0))?.actor).toBe(long);
    expect((await notes.getVersion(b.id, 0))?.actor).toStrictEqual(ada);
    expect((await notes.getVersion(c.id, 0))?.actor).toStrictEqual(bot);
    expect((await notes.getVersion(d.id, 0))?.actor).toStrictEqual(named);
    expect((await notes.getVersion(e.id, 0))?.actor).toStrictEqual(emptyName);
    // Looked up by identifier: the typed actor by its own, a name by itself.
    expect((await notes.changesBy(ada)).items.map((i) => i.id)).toEqual([b.id]);
    expect((await notes.changesBy('user-123')).items.map((i) => i.id)).toEqual([b.id]);
    expect((await notes.changesBy(long)).items.map((i) => i.id)).toEqual([a.id]);
  });

  it('refuses any other actor with a ValidationError on actor, and changesBy without one', async () => {
    const actors: unknown[] = [
      '',
      'n'.repeat(257),
      42,
      null,
      ['user'],
      { type: 'robot', identifier: 'r' },
      { type: 'user' },
      { type: 'user', identifier: '' },
      { type: 'user', identifier: 'i'.repeat(257) },
      { type: 'user', identifier: 7 },
      { type: 'user', identifier: 'u', name: 'x'.repeat(257) },
      { type: 'user', identifier: 'u', name: 7 },
      // Has a length, but is not a string.
      { type: 'user', identifier: 'u', name: ['Ada'] },
      { type: 'user', identifier: 'u', role: 'admin' },
    ];
    for (const actor of actors) {
      const err = await refused(() => notes.create({ n: 1 }, actor as never));
      expect({ actor, path: err.path, message: err.message }).toEqual({
        actor,
        path: 'actor',
        message:
          typeof actor === 'string'
            ? 'actor must be a non-empty string of at most 256 characters'
            : 'actor must be a string or { type: user|agent|system|api, identifier, name? }',
      });
    }
    const none = await refused(() => notes.changesBy(undefined as never));
    expect({ path: none.path, message: none.message }).toEqual({ path: 'actor', message: 'changesBy needs an actor' });
  });
});
