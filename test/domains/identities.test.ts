import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Xronox } from '../../core/xronox.js';
import type { IdentitiesCollection } from '../../core/domains/identities/identities.js';
import { expireDocuments, migrateDocuments } from '../../core/domains/maintenance.js';
import { DuplicateKeyError, RouteNotFoundError, TenantAccessError, ValidationError } from '../../core/errors.js';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';
import { domainDeployment, sqliteIndexes, sqliteRows } from './support.js';

/**
 * The identities database type on the embedded backend: its collections and unique keys, expiring
 * sessions, tenant isolation, and the audit events every identity change writes into the tenant's
 * runtime database (versioned).
 */

const DAY = 86_400_000;

describe('identities', () => {
  const dep = domainDeployment();
  let x: Xronox;
  const ids = (tenantId: string, collection: string): IdentitiesCollection => x.with({ databaseType: 'identities', tier: 'tenant', tenantId, collection });
  const events = (tenantId: string) => x.with({ databaseType: 'runtime', tier: 'tenant', tenantId, collection: 'identity_events' });
  const allEvents = async (tenantId: string) => (await events(tenantId).listByMeta({ limit: 1000 })).items.map((r) => r.data);

  beforeAll(() => {
    x = dep.open();
  });
  afterAll(async () => {
    await x.shutdown();
    dep.dir.cleanup();
  });

  const ada = { userId: 'u1', tenantId: 'acme', email: 'ada@example.com', name: 'Ada', roles: ['user'], passwordHash: 'scrypt$abc' };

  it('round-trips each collection and creates its indexes', async () => {
    const docs = {
      users: ada,
      accounts: { accountId: 'a1', tenantId: 'acme', name: 'Acme Ltd', plan: { tier: 'gold', seats: 5 } },
      sessions: { sessionId: 's1', tenantId: 'acme', userId: 'u1', createdAt: new Date(), expiresAt: new Date(Date.now() + DAY) },
      roles: { name: 'admin', tenantId: 'acme', permissions: ['users:write', 'billing:read'] },
      permissions: { name: 'users:write', tenantId: 'acme', description: 'Create and change users' },
    };
    for (const [collection, doc] of Object.entries(docs)) {
      await ids('acme', collection).insert(doc, { actor: 'setup' });
      expect(await ids('acme', collection).find({})).toEqual([doc]);
    }
    expect(dep.inspect((db) => sqliteIndexes(db, 'ids_acme', 'users').map((i) => [i.name, i.unique]))).toEqual([
      ['tenantId_1_accountId_1', false],
      ['tenantId_1_email_1', true],
      ['tenantId_1_userId_1', true],
    ]);
    expect(dep.inspect((db) => sqliteIndexes(db, 'ids_acme', 'sessions').map((i) => i.name))).toEqual(['expiresAt_1', 'tenantId_1_sessionId_1', 'tenantId_1_userId_1']);
  });

  it('one email is one user per tenant, whatever its case; another tenant may use it', async () => {
    const before = dep.inspect((db) => sqliteRows(db, 'ids_acme', 'users').length);
    const err = await ids('acme', 'users').insert({ ...ada, userId: 'u2', email: '  ADA@Example.com ' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DuplicateKeyError);
    expect(err).toMatchObject({ index: 'tenantId_1_email_1', collection: 'users' });
    expect(await ids('acme', 'users').insert({ ...ada, email: 'other@example.com' }).catch((e: unknown) => e)).toMatchObject({ index: 'tenantId_1_userId_1' });
    expect(dep.inspect((db) => sqliteRows(db, 'ids_acme', 'users').length)).toBe(before);
    await ids('beta', 'users').insert({ ...ada, tenantId: 'beta' });
    expect(await ids('acme', 'users').findOne({ email: 'Ada@EXAMPLE.com' })).toEqual(ada);
    expect(await ids('beta', 'users').find({ email: { $in: ['ADA@example.com'] } })).toEqual([{ ...ada, tenantId: 'beta' }]);
  });

  it("a role change is audited in the tenant's runtime database: old and new values, who and why, versioned; secrets redacted", async () => {
    const before = (await allEvents('acme')).length;
    const key = { tenantId: 'acme', userId: 'u1' };
    expect(await ids('acme', 'users').upsert(key, { ...ada, roles: ['admin'], passwordHash: 'scrypt$new' }, { actor: { type: 'user', identifier: 'super-admin' }, reason: 'promotion' })).toEqual({ created: false });
    const after = await events('acme').listByMeta({ limit: 1000, sort: { createdAt: -1 } });
    expect(after.items).toHaveLength(before + 1);
    const event = after.items[0]!;
    expect(event.data).toEqual({
      eventType: 'identity_change',
      collection: 'users',
      op: 'update',
      tenantId: 'acme',
      key: { tenantId: 'acme', email: 'ada@example.com' },
      changes: [
        { field: 'roles', oldValue: ['user'], newValue: ['admin'] },
        { field: 'passwordHash', oldValue: '[redacted]', newValue: '[redacted]' },
      ],
    });
    const history = await events('acme').history(event.id);
    expect(history.items[0]).toMatchObject({ ov: 0, actor: { type: 'user', identifier: 'super-admin' }, reason: 'promotion' });
    // An upsert that changes nothing writes no event; a delete does.
    await ids('acme', 'users').upsert(key, { ...ada, roles: ['admin'], passwordHash: 'scrypt$new' });
    expect(await allEvents('acme')).toHaveLength(before + 1);
    expect(await ids('acme', 'roles').deleteOne({ name: 'admin' }, { actor: 'super-admin', reason: 'cleanup' })).toBe(1);
    const last = (await events('acme').listByMeta({ limit: 1, sort: { createdAt: -1 } })).items[0]!.data;
    expect(last).toMatchObject({ collection: 'roles', op: 'delete', key: { tenantId: 'acme', name: 'admin' }, changes: [{ field: 'name', oldValue: 'admin', newValue: null }, expect.anything(), expect.anything()] });
    // Beta's audit trail has only beta's changes.
    expect((await allEvents('beta')).every((e) => e.tenantId === 'beta')).toBe(true);
  });

  it('refuses an identity change that cannot be audited (no runtime database for the tenant), writing nothing', async () => {
    const users = ids('noaudit', 'users');
    const err = await users.insert({ ...ada, tenantId: 'noaudit' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RouteNotFoundError);
    expect(await users.find({})).toEqual([]);
    // Sessions are not audited, so they need no runtime database.
    await ids('noaudit', 'sessions').insert({ sessionId: 's', tenantId: 'noaudit', userId: 'u', createdAt: new Date(), expiresAt: new Date(Date.now() + DAY) });
  });

  it('refuses an identity change whose audit event the runtime database would refuse, writing nothing', async () => {
    const users = ids('acme', 'users');
    const eventsBefore = await allEvents('acme');
    // "constructor" is a key the record engine refuses (prototype pollution); the audit event would carry it.
    const doc = { ...ada, userId: 'u-audit', email: 'audit@example.com', profile: { constructor: 'x' } };
    await expect(users.insert(doc)).rejects.toBeInstanceOf(ValidationError);
    await expect(users.upsert({ tenantId: 'acme', userId: 'u-audit' }, doc)).rejects.toBeInstanceOf(ValidationError);
    await expect(users.insert({ ...doc, profile: {} }, { actor: { type: 'robot', identifier: 'x' } as never })).rejects.toBeInstanceOf(ValidationError);
    expect(await users.findOne({ userId: 'u-audit' })).toBeNull();
    expect(await allEvents('acme')).toEqual(eventsBefore);
    // The same user without the refused key goes through, with its event.
    await users.insert({ ...doc, profile: { bio: 'x' } });
    expect((await allEvents('acme')).length).toBe(eventsBefore.length + 1);
  });

  it('sessions expire at expiresAt: never returned after it, removed by the retention sweep', async () => {
    const sessions = ids('acme', 'sessions');
    const now = Date.now();
    for (let i = 0; i < 6; i++) {
      await sessions.insert({ sessionId: `exp${i}`, tenantId: 'acme', userId: 'u1', createdAt: new Date(now - 2 * DAY), expiresAt: new Date(now + (i % 2 ? DAY : -DAY)) });
    }
    expect((await sessions.find({ sessionId: { $in: ['exp0', 'exp1', 'exp2', 'exp3', 'exp4', 'exp5'] } })).map((s) => s.sessionId)).toEqual(['exp1', 'exp3', 'exp5']);
    const report = await expireDocuments(x, new Date(now), { databaseTypes: ['identities'], tenants: ['acme'] });
    expect(report).toEqual([{ databaseType: 'identities', tier: 'tenant', tenantId: 'acme', dbName: 'ids_acme', collections: { users: 0, accounts: 0, sessions: 3, roles: 0, permissions: 0 } }]);
    expect(dep.inspect((db) => sqliteRows(db, 'ids_acme', 'sessions').map((r) => JSON.parse(r.doc).sessionId))).toEqual(['s1', 'exp1', 'exp3', 'exp5']);
  });

  it('keeps tenants apart through every call', async () => {
    const beta = ids('beta', 'users');
    const acmeUsers = dep.inspect((db) => sqliteRows(db, 'ids_acme', 'users').map((r) => r.doc));
    for (const filter of [{}, { tenantId: 'acme' }, { userId: 'u1', tenantId: 'acme' }, { email: 'ada@example.com' }]) {
      expect((await beta.find(filter)).every((u) => u.tenantId === 'beta')).toBe(true);
      expect((await beta.findOne(filter))?.tenantId ?? 'beta').toBe('beta');
    }
    expect(await beta.deleteMany({ tenantId: 'acme' })).toBe(0);
    expect(await beta.insert({ ...ada, userId: 'x9' }).catch((e: unknown) => e)).toBeInstanceOf(TenantAccessError);
    expect(await beta.upsert({ tenantId: 'acme', userId: 'u1' }, { ...ada, roles: ['owner'] }).catch((e: unknown) => e)).toBeInstanceOf(TenantAccessError);
    expect(dep.inspect((db) => sqliteRows(db, 'ids_acme', 'users').map((r) => r.doc))).toEqual(acmeUsers);
    expect(() => x.with({ databaseType: 'identities', tier: 'tenant', tenantId: 'acme', collection: 'orders' })).toThrow(ValidationError);
    expect(await ids('acme', 'users').insert({ ...ada, userId: 'u5', email: 'not-an-email' }).catch((e: unknown) => (e as ValidationError).path)).toBe('doc.email');
  });

  it('migrate creates the identities collections with their indexes', async () => {
    const report = await migrateDocuments(x, { databaseTypes: ['identities'], tenants: ['beta'] });
    expect(report).toEqual([
      {
        databaseType: 'identities', tier: 'tenant', tenantId: 'beta', dbName: 'ids_beta',
        collections: {
          users: ['tenantId_1_accountId_1', 'tenantId_1_email_1', 'tenantId_1_userId_1'],
          accounts: ['tenantId_1_accountId_1'],
          sessions: ['expiresAt_1', 'tenantId_1_sessionId_1', 'tenantId_1_userId_1'],
          roles: ['tenantId_1_name_1'],
          permissions: ['tenantId_1_name_1'],
        },
      },
    ]);
  });
});

describe('identities near the size limit', () => {
  it('are still renamed and deleted: an audit event too large to record in full truncates its largest values', async () => {
    const dir = tempDir('xronox-identities-limit');
    const x = initXronox({
      dbConnections: { local: { sqlitePath: join(dir.path, 'x.sqlite') } },
      localStorage: { basePath: join(dir.path, 'blobs'), enabled: true },
      limits: { maxDocumentBytes: 8192 },
      databases: {
        runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme' }] },
        identities: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'ids_acme' }] },
      },
    });
    try {
      const users = x.with({ databaseType: 'identities', tier: 'tenant', tenantId: 'acme', collection: 'users' });
      const user = { userId: 'u1', tenantId: 'acme', email: 'a@example.com', roles: [], name: 'A', bio: 'b'.repeat(4000), notes: 'n'.repeat(4000) };
      await users.insert(user, { actor: 'setup' });
      await users.upsert({ tenantId: 'acme', userId: 'u1' }, { ...user, name: 'B' }, { actor: 'app' });
      expect(await users.deleteOne({ userId: 'u1' }, { actor: 'gdpr' })).toBe(1);
      expect(await users.findOne({ userId: 'u1' })).toBeNull();
      const events = (await x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'identity_events' }).listByMeta({ limit: 10 })).items.map((r) => r.data as { op: string; changes: Array<{ field: string; oldValue: unknown }> });
      expect(events.map((e) => e.op).sort()).toEqual(['create', 'delete', 'update']);
      const deleted = events.find((e) => e.op === 'delete')!;
      expect(deleted.changes.find((c) => c.field === 'bio')!.oldValue).toMatchObject({ truncated: true, bytes: 4002 });
      expect(deleted.changes.find((c) => c.field === 'name')!.oldValue).toBe('B');
    } finally {
      await x.shutdown();
      dir.cleanup();
    }
  });
});
