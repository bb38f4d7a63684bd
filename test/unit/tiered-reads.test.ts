import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tier } from '../../core/config/schema.js';
import type { Xronox } from '../../core/xronox.js';
import { RouteNotFoundError, ValidationError } from '../../core/errors.js';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';

/**
 * `getKnowledge` / `getMetadata` account for every tier asked: which were read (`consulted`),
 * which have no database (`notConfigured`), consistently with `with()` on the same tier; and a
 * read where no tier asked has a database is the `RouteNotFoundError` that `with()` is, not a
 * silent `null` (issue 15, item 12).
 */

const dir = tempDir('xronox-tiers');
let x: Xronox;

beforeAll(async () => {
  const db = (dbName: string) => ({ dbConnRef: 'local', dbName });
  x = initXronox({
    dbConnections: { local: { sqlitePath: join(dir.path, 'x.sqlite') } },
    localStorage: { basePath: join(dir.path, 'blobs'), enabled: true },
    databases: {
      knowledge: { genericDatabase: db('kn_generic'), domainsDatabases: [{ domain: 'health', ...db('kn_health') }], tenantDatabases: [{ tenantId: 'acme', ...db('kn_acme') }] },
      // Metadata has no generic database: only the tenant acme's.
      metadata: { tenantDatabases: [{ tenantId: 'acme', ...db('md_acme') }] },
    },
    collectionMaps: { policies: { indexedProps: ['name'] } },
  });
  await x.with({ databaseType: 'knowledge', tier: 'generic', collection: 'policies' }).create({ name: 'retention', days: 30 });
  await x.with({ databaseType: 'metadata', tier: 'tenant', tenantId: 'acme', collection: 'policies' }).create({ name: 'theme', color: 'dark' });
});
afterAll(async () => {
  await x.shutdown();
  dir.cleanup();
});

/** What `with()` says of a tier: `configured`, or the error's class name. */
function withSays(databaseType: 'knowledge' | 'metadata', tier: Tier, options: { tenantId?: string; domain?: string }): string {
  try {
    x.with({ databaseType, tier, collection: 'policies', ...(tier === 'tenant' ? { tenantId: options.tenantId! } : tier === 'domain' ? { domain: options.domain! } : {}) });
    return 'configured';
  } catch (err) {
    return (err as Error).name;
  }
}

describe('tiered reads', () => {
  it('list the tiers asked that have no database, match or no match, as with() refuses them', async () => {
    const asked = { tenantId: 'globex', domain: 'finance' };
    const found = await x.getKnowledge('policies', { name: 'retention' }, asked);
    expect(found).toMatchObject({ data: { name: 'retention', days: 30 }, tiers: ['generic'], consulted: ['generic'], notConfigured: ['domain', 'tenant'] });
    const missing = await x.getKnowledge('policies', { name: 'nothing' }, asked);
    expect(missing).toEqual({ data: null, tiers: [], records: {}, consulted: ['generic'], notConfigured: ['domain', 'tenant'] });
    for (const tier of missing.consulted) expect(withSays('knowledge', tier, asked)).toBe('configured');
    for (const tier of missing.notConfigured) expect(withSays('knowledge', tier, asked)).toBe('RouteNotFoundError');
  });

  it('say which tiers were read when every tier asked has a database', async () => {
    const result = await x.getKnowledge('policies', { name: 'nothing' }, { tenantId: 'acme', domain: 'health' });
    expect(result).toEqual({ data: null, tiers: [], records: {}, consulted: ['generic', 'domain', 'tenant'], notConfigured: [] });
  });

  it('are a RouteNotFoundError naming the tiers when none of those asked has a database, as with() is', async () => {
    expect(withSays('metadata', 'generic', {})).toBe('RouteNotFoundError');
    await expect(x.getMetadata('policies', { name: 'theme' })).rejects.toThrow(RouteNotFoundError);
    await expect(x.getMetadata('policies', { name: 'theme' }, { tenantId: 'globex' })).rejects.toThrow(/No metadata database is configured for any tier asked \(generic, tenant "globex"\)/);
    // With a tier that has one, the others are listed, not fatal.
    expect(await x.getMetadata('policies', { name: 'theme' }, { tenantId: 'acme' })).toMatchObject({
      data: { color: 'dark' },
      tiers: ['tenant'],
      consulted: ['tenant'],
      notConfigured: ['generic'],
    });
  });

  it('check every tier and the options before reading any', async () => {
    await expect(x.getKnowledge('policies', { name: 'retention' }, { tenantId: '../x' })).rejects.toBeInstanceOf(ValidationError);
    await expect(x.getKnowledge('policies', { name: 'retention' }, { merge: 'yes' } as never)).rejects.toBeInstanceOf(ValidationError);
    // A fresh instance on a file that does not exist yet: a refused read creates nothing.
    const empty = tempDir('xronox-tiers-empty');
    const y = initXronox({
      dbConnections: { local: { sqlitePath: join(empty.path, 'y.sqlite') } },
      localStorage: { basePath: join(empty.path, 'blobs'), enabled: true },
      databases: { knowledge: { genericDatabase: { dbConnRef: 'local', dbName: 'kn' } } },
    });
    try {
      await expect(y.getKnowledge('policies', { name: 'a' }, { tenantId: 'Not Valid' })).rejects.toBeInstanceOf(ValidationError);
      expect(existsSync(join(empty.path, 'y.sqlite'))).toBe(false);
    } finally {
      await y.shutdown();
      empty.cleanup();
    }
  });
});
