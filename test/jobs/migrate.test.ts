/**
 * `xronox migrate`, run as a real process (the CLI through tsx, as `npx xronox` runs it) against
 * an embedded deployment (a SQLite file and a local blob folder): every configured database is
 * reported, every collection of every messaging and identities database exists afterwards with
 * exactly its declared indexes, as the document store and SQLite itself report them, and a second
 * run changes nothing. (On PostgreSQL, where it also creates schemas: test/jobs/migrate-postgres.test.ts.)
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteDocumentStore } from '../../core/adapters/sqlite/sqlite-document-store.js';
import type { XronoxConfigInput } from '../../core/config/schema.js';
import type { CollectionSpec, IndexInfo } from '../../core/contracts/document-store.js';
import type { MigrationReport } from '../../core/jobs/migrate.js';
import { IDENTITY_COLLECTIONS, IDENTITY_SPECS } from '../../core/domains/identities/identities.js';
import { MESSAGING_COLLECTIONS, MESSAGING_SPECS } from '../../core/domains/messaging/messaging.js';
import { initXronox } from '../../core/xronox.js';
import { EXIT } from '../../functions/cli/xronox.js';
import { sqliteIndexes } from '../domains/support.js';
import { tempDir } from '../support/temp.js';
import { type TsxRun, runTsx } from '../support/tsx-process.js';
import { cliInProcess, writeConfig } from './support.js';

const CLI = new URL('../../functions/cli/xronox.ts', import.meta.url).pathname;

/** Runs `xronox <args>` in its own process. */
async function runCli(args: string[]): Promise<TsxRun> {
  const run = await runTsx(CLI, args, { dropEnv: ['XRONOX_CONFIG_FILE'] });
  // The AWS SDK warns about Node 20 on stderr; that is not the CLI's output.
  return { ...run, stderr: run.stderr.replace(/\(node:\d+\) NodeVersionSupportWarning[\s\S]*?--trace-warnings[^\n]*\n/g, '') };
}


/** The indexes a spec declares, as the document store reports indexes (sorted by name). */
const declared = (spec: CollectionSpec): IndexInfo[] =>
  spec.indexes.map((i) => ({ name: i.name, keys: i.keys, unique: i.unique === true, sparse: i.sparse === true })).sort((a, b) => (a.name < b.name ? -1 : 1));

describe('xronox migrate (a real CLI process, SQLite × local folder)', () => {
  const dir = tempDir('xronox-jobs-migrate');
  const sqlitePath = join(dir.path, 'xronox.sqlite');
  const db = (dbName: string, extra: Record<string, unknown> = {}) => ({ dbConnRef: 'local', dbName, ...extra });
  const config: XronoxConfigInput = {
    dbConnections: { local: { sqlitePath } },
    localStorage: { basePath: join(dir.path, 'blobs'), enabled: true },
    databases: {
      runtime: { tenantDatabases: [{ tenantId: 'acme', ...db('rt_acme') }] },
      messaging: {
        genericDatabase: db('msg_generic'),
        tenantDatabases: [{ tenantId: 'acme', ...db('msg_acme', { captureDeliveries: true }) }, { tenantId: 'beta', ...db('msg_beta') }],
      },
      identities: { tenantDatabases: [{ tenantId: 'acme', ...db('ids_acme') }, { tenantId: 'beta', ...db('ids_beta') }] },
    },
  };
  const file = writeConfig(dir.path, config);

  /** Every collection each database must hold afterwards, with its spec. */
  const expected: Record<string, Record<string, CollectionSpec>> = {
    msg_generic: Object.fromEntries(MESSAGING_COLLECTIONS.filter((c) => c !== 'deliveries').map((c) => [c, MESSAGING_SPECS[c]])),
    msg_acme: Object.fromEntries(MESSAGING_COLLECTIONS.map((c) => [c, MESSAGING_SPECS[c]])),
    msg_beta: Object.fromEntries(MESSAGING_COLLECTIONS.filter((c) => c !== 'deliveries').map((c) => [c, MESSAGING_SPECS[c]])),
    ids_acme: Object.fromEntries(IDENTITY_COLLECTIONS.map((c) => [c, IDENTITY_SPECS[c]])),
    ids_beta: Object.fromEntries(IDENTITY_COLLECTIONS.map((c) => [c, IDENTITY_SPECS[c]])),
  };

  /** What the document store (its own connection to the file) and SQLite itself report. */
  async function indexes(): Promise<{ port: Record<string, IndexInfo[]>; sqlite: Record<string, string[]> }> {
    const store = new SqliteDocumentStore({ path: sqlitePath });
    const raw = new Database(sqlitePath, { readonly: true });
    try {
      const port: Record<string, IndexInfo[]> = {};
      const sqlite: Record<string, string[]> = {};
      for (const [dbName, collections] of Object.entries(expected)) {
        for (const collection of [...MESSAGING_COLLECTIONS, ...IDENTITY_COLLECTIONS]) {
          const found = await store.listIndexes({ dbName, collection });
          if (found.length > 0 || collection in collections) port[`${dbName}/${collection}`] = found;
          const names = sqliteIndexes(raw, dbName, collection).map((i) => i.name);
          if (names.length > 0 || collection in collections) sqlite[`${dbName}/${collection}`] = names;
        }
      }
      return { port, sqlite };
    } finally {
      raw.close();
      await store.close();
    }
  }

  /** The whole schema of the file: every table and index SQLite holds, with its SQL. */
  function schema(): unknown[] {
    const raw = new Database(sqlitePath, { readonly: true });
    try {
      return raw.prepare(`SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name`).all();
    } finally {
      raw.close();
    }
  }

  afterAll(() => dir.cleanup());

  it('creates every collection with exactly its declared indexes; a second run changes nothing and keeps the data', async () => {
    const before = await indexes();
    for (const found of Object.values(before.port)) expect(found).toEqual([]);

    const first = await runCli(['migrate', '--config', file]);
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: EXIT.ok, stderr: '' });
    // One JSON line per database (every type), naming the indexes each document collection holds.
    const reports = first.stdout.trim().split('\n').map((line) => JSON.parse(line) as MigrationReport);
    expect(reports.map((r) => `${r.databaseType}:${r.tier}:${r.tenantId ?? '-'}:${r.dbName}`).sort()).toEqual(
      ['runtime:tenant:acme:rt_acme', 'messaging:generic:-:msg_generic', 'messaging:tenant:acme:msg_acme', 'messaging:tenant:beta:msg_beta', 'identities:tenant:acme:ids_acme', 'identities:tenant:beta:ids_beta'].sort(),
    );
    for (const r of reports) {
      expect(r.error).toBeUndefined();
      // SQLite makes its tables when the file opens: nothing is left for migrate to create.
      expect(r.index).toEqual({ [r.dbName]: 'present' });
      if (r.databaseType === 'runtime') expect(r.collections).toBeUndefined();
      else expect(r.collections).toEqual(Object.fromEntries(Object.entries(expected[r.dbName]!).map(([c, spec]) => [c, declared(spec).map((i) => i.name)])));
    }

    // Independently of the CLI's report: the store's listIndexes and SQLite's own index list.
    const after = await indexes();
    const want = Object.fromEntries(Object.entries(expected).flatMap(([dbName, collections]) => Object.entries(collections).map(([c, spec]) => [`${dbName}/${c}`, declared(spec)])));
    expect(after.port).toEqual(want);
    expect(after.sqlite).toEqual(Object.fromEntries(Object.entries(want).map(([k, v]) => [k, v.map((i) => i.name)])));
    // Unique and sparse where declared, as SQLite has them.
    const raw = new Database(sqlitePath, { readonly: true });
    try {
      expect(sqliteIndexes(raw, 'msg_beta', 'shared_memory').map((i) => [i.name, i.unique, i.partial])).toEqual([
        ['_system.deletedAt_1', false, true],
        ['_system.updatedAt_-1', false, false],
        ['key_1_namespace_1_tenantId_1', true, false],
      ]);
    } finally {
      raw.close();
    }

    // Data written in between survives a rerun, which finds everything in place.
    const x = initXronox(config);
    const topic = { topic: 'payments', tenantId: 'acme', shards: 4, createdAt: new Date('2026-01-01T00:00:00.000Z'), _system: { updatedAt: new Date('2026-01-01T00:00:00.000Z') } };
    try {
      await x.with({ databaseType: 'messaging', tier: 'tenant', tenantId: 'acme', collection: 'topics' }).insert(topic);
    } finally {
      await x.shutdown();
    }
    const schemaBefore = schema();
    const second = await runCli(['migrate', 'all', '--config', file]);
    expect({ code: second.code, stderr: second.stderr }).toEqual({ code: EXIT.ok, stderr: '' });
    expect(second.stdout).toBe(first.stdout);
    expect(schema()).toEqual(schemaBefore);
    expect((await indexes()).port).toEqual(want);
    const y = initXronox(config);
    try {
      expect(await y.with({ databaseType: 'messaging', tier: 'tenant', tenantId: 'acme', collection: 'topics' }).find({})).toEqual([topic]);
    } finally {
      await y.shutdown();
    }
  });

  it('narrows to one type and to tenants; refuses what it cannot do with exit code 2', async () => {
    const one = await cliInProcess(['migrate', 'identities', '--tenant', 'beta', '--config', file]);
    expect({ code: one.code, stderr: one.stderr }).toEqual({ code: EXIT.ok, stderr: '' });
    expect(one.stdout.trim().split('\n').map((l) => (JSON.parse(l) as MigrationReport).dbName)).toEqual(['ids_beta']);
    const two = await cliInProcess(['migrate', 'messaging', '--tenant', 'acme', '--tenant', 'beta', '--config', file]);
    expect(two.code).toBe(EXIT.ok);
    expect(two.stdout.trim().split('\n').map((l) => (JSON.parse(l) as MigrationReport).dbName)).toEqual(['msg_acme', 'msg_beta']);
    const runtime = await cliInProcess(['migrate', 'runtime', '--config', file]);
    expect(runtime.stdout.trim().split('\n').map((l) => (JSON.parse(l) as MigrationReport).dbName)).toEqual(['rt_acme']);

    // A tenant with no configured database (a typo, or a dynamic tenant) is named.
    const unknown = await cliInProcess(['migrate', 'messaging', '--tenant', 'nobody', '--config', file]);
    expect(unknown.code).toBe(EXIT.usage);
    expect(unknown.stderr).toContain('No configured messaging database for tenant "nobody"');
    for (const args of [['migrate', 'nonsense'], ['migrate', 'messaging', 'extra'], ['job', 'run', 'retention', '--tenant', 'acme']]) {
      const run = await cliInProcess([...args, '--config', file]);
      expect({ args, code: run.code, stdout: run.stdout }).toEqual({ args, code: EXIT.usage, stdout: '' });
    }
    expect((await cliInProcess(['--help'])).code).toBe(EXIT.ok);
  });
});
