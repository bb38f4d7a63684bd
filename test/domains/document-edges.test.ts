import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Xronox } from '../../core/xronox.js';
import type { IdentitiesCollection } from '../../core/domains/identities/identities.js';
import { ValidationError } from '../../core/errors.js';
import { domainDeployment, sqliteRows } from './support.js';

/** Edge cases of the messaging and identities handles found in review, on the embedded backend. */
describe('document collections: edges', () => {
  const dep = domainDeployment();
  let x: Xronox;
  const shared = () => x.with({ databaseType: 'messaging', tier: 'tenant', tenantId: 'acme', collection: 'shared_memory' });

  beforeAll(() => {
    x = dep.open();
  });
  afterAll(async () => {
    await x.shutdown();
    dep.dir.cleanup();
  });

  it('a retention reaching past the year 9999 keeps the document (never expired at once, never a failed write)', async () => {
    const now = new Date();
    for (const [key, retentionDays] of [['long', 3_000_000], ['huge', 1e12]] as const) {
      await shared().insert({ key, namespace: 'edge', tenantId: 'acme', val: 1, _system: { createdAt: now, updatedAt: now, retentionDays } });
    }
    expect((await shared().find({ namespace: 'edge' })).map((d) => d.key)).toEqual(['long', 'huge']);
    expect(await shared().deleteExpired(new Date(Date.UTC(9999, 11, 31)))).toBe(0);
    const rows = dep.inspect((db) => sqliteRows(db, 'msg_acme', 'shared_memory')).filter((r) => JSON.parse(r.doc).namespace === 'edge');
    expect(rows.map((r) => r.expires_at)).toEqual([null, null]);
  });

  it('a _system.payloadRef of a collection that never offloads is plain data, never followed into the bucket', async () => {
    const now = new Date();
    const doc = { key: 'ref', namespace: 'edge', tenantId: 'acme', val: 1, _system: { createdAt: now, updatedAt: now, payloadRef: { key: '../../x/secret.json', sha256: 'x' } } };
    await shared().insert(doc);
    expect(await shared().findOne({ key: 'ref', namespace: 'edge' })).toEqual(doc);
  });

  it('identities deleteOne refuses an empty filter, as every handle does, and deletes nothing', async () => {
    const users: IdentitiesCollection = x.with({ databaseType: 'identities', tier: 'tenant', tenantId: 'acme', collection: 'users' });
    await users.insert({ userId: 'edge-1', tenantId: 'acme', email: 'edge@example.com' });
    for (const filter of [{}, undefined, null]) {
      await expect(users.deleteOne(filter)).rejects.toBeInstanceOf(ValidationError);
    }
    expect(await users.findOne({ userId: 'edge-1' })).not.toBeNull();
  });
});
