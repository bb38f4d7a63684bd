/**
 * `xronox migrate` on PostgreSQL, and the least-privilege setup docs/postgresql.md gives ("PostgreSQL
 * roles"), on the machine's real server:
 * - an owner role (CREATE on the database, nothing else) runs `xronox migrate` as a real process:
 *   every configured database gets its schema, tables and collections; a second run finds them all;
 * - runtime roles holding only what docs/postgresql.md grants (USAGE on the schemas; SELECT, INSERT,
 *   UPDATE, DELETE on the tables; USAGE on the sequences; through default privileges, or granted
 *   per schema) write and read every database type and run a job, which also proves that first use
 *   tries no DDL on a schema that is there;
 * - a database migrate has not made (a tenant added to the config since) is a named StorageError
 *   for such a role, and nothing is created; a role without the grants is told which grant it lacks;
 * - several processes starting at once on an empty database create each schema once, without error.
 * Roles and schemas have random names; the test drops exactly those.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { escapeIdentifier } from 'pg';
import { schemaNameFor } from '../../core/adapters/postgres/postgres-schema.js';
import type { XronoxConfigInput } from '../../core/config/schema.js';
import { StorageError } from '../../core/errors.js';
import type { MigrationReport } from '../../core/jobs/migrate.js';
import { runJob } from '../../core/jobs/run.js';
import { initXronox, type Xronox } from '../../core/xronox.js';
import { EXIT } from '../../functions/cli/xronox.js';
import { describePostgres, dropSchemas, POSTGRES_URI, postgresAvailability, randomSchemaPrefix, withPostgres } from '../support/postgres.js';
import { tempDir } from '../support/temp.js';
import { runTsx } from '../support/tsx-process.js';

const CLI = new URL('../../functions/cli/xronox.ts', import.meta.url).pathname;
const FIRST_USE = new URL('./fixtures/postgres-first-use.ts', import.meta.url).pathname;

const availability = await postgresAvailability();
const prefix = randomSchemaPrefix();
const tag = randomBytes(4).toString('hex');
/** Runs `xronox migrate`: may create in the database, nothing more. */
const OWNER = `xt_owner_${tag}`;
/** The runtime role, granted through the owner's default privileges. */
const APP = `xt_app_${tag}`;
/** A runtime role granted per schema, after migrate (schemas made before default privileges were set). */
const GRANTED = `xt_granted_${tag}`;
/** A role with no grant at all. */
const BARE = `xt_bare_${tag}`;
const ROLES = [OWNER, APP, GRANTED, BARE];
const password = randomBytes(12).toString('hex');
const dir = tempDir('xronox-pg-migrate');
const opened: Xronox[] = [];

/** The server's URI with another role (the password matters only where the server asks for one). */
function uriAs(role: string): string {
  const url = new URL(POSTGRES_URI);
  url.username = role;
  url.password = password;
  return url.toString();
}

/** Every database type, for the tenants given; all in this file's schema prefix. */
function configFor(role: string, tenants: readonly string[]): XronoxConfigInput {
  const db = (dbName: string) => ({ dbConnRef: 'pg', dbName });
  return {
    dbConnections: { pg: { postgresUri: uriAs(role), schemaPrefix: prefix } },
    localStorage: { basePath: join(dir.path, 'blobs'), enabled: true },
    databases: {
      runtime: { tenantDatabases: tenants.map((t) => ({ tenantId: t, ...db(`rt_${t}`), analyticsDbName: `an_${t}` })) },
      knowledge: { genericDatabase: db('kn_generic') },
      logs: { genericDatabase: db('logs_generic') },
      messaging: { tenantDatabases: tenants.map((t) => ({ tenantId: t, ...db(`msg_${t}`) })) },
      identities: { tenantDatabases: tenants.map((t) => ({ tenantId: t, ...db(`ids_${t}`) })) },
    },
  };
}

function writeConfig(name: string, config: XronoxConfigInput): string {
  const file = join(dir.path, `${name}.json`);
  writeFileSync(file, JSON.stringify(config));
  return file;
}

function open(config: XronoxConfigInput): Xronox {
  const x = initXronox(config);
  opened.push(x);
  return x;
}

const sql = <R>(text: string, values: unknown[] = []) => withPostgres(async (c) => (await c.query(text, values)).rows as R[]);

/** The database names `migrate` must make for tenant acme (runtime's analytics database included). */
const DATABASES = ['rt_acme', 'an_acme', 'kn_generic', 'logs_generic', 'msg_acme', 'ids_acme'];
const schemaOf = (dbName: string, schemaPrefix = prefix) => schemaNameFor(schemaPrefix, dbName);

/** Schemas whose name starts with `schemaPrefix`, with their owners. */
async function schemas(schemaPrefix = prefix): Promise<Record<string, string>> {
  const rows = await sql<{ nspname: string; owner: string }>(
    'SELECT nspname, pg_get_userbyid(nspowner) AS owner FROM pg_namespace WHERE left(nspname, length($1)) = $1 ORDER BY nspname',
    [schemaPrefix],
  );
  return Object.fromEntries(rows.map((r) => [r.nspname, r.owner]));
}

async function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = await runTsx(CLI, args, { dropEnv: ['XRONOX_CONFIG_FILE'], killAfterMs: 120_000 });
  // The AWS SDK warns about Node 20 on stderr; that is not the CLI's output.
  return { ...run, stderr: run.stderr.replace(/\(node:\d+\) NodeVersionSupportWarning[\s\S]*?--trace-warnings[^\n]*\n/g, '') };
}

/** What a service does with every type: writes, reads back, counters, and a job (leases in every database). */
async function workload(x: Xronox, label: string): Promise<void> {
  const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
  const { id } = await orders.create({ customer: label, total: 1 }, label, 'create');
  await orders.update(id, { customer: label, total: 2 }, 0, label, 'update');
  expect((await orders.getLatest(id))?.data).toEqual({ customer: label, total: 2 });
  expect((await orders.history(id)).items.map((v) => v.ov)).toEqual([1, 0]);
  expect((await x.counters.getTotals({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' })).created).toBeGreaterThanOrEqual(1);

  const policies = x.with({ databaseType: 'knowledge', tier: 'generic', collection: 'policies' });
  const policy = await policies.create({ name: `p-${label}` });
  expect((await policies.getLatest(policy.id))?.data).toEqual({ name: `p-${label}` });
  await x.with({ databaseType: 'logs', tier: 'generic', collection: 'events' }).create({ what: label });

  const topics = x.with({ databaseType: 'messaging', tier: 'tenant', tenantId: 'acme', collection: 'topics' });
  const now = new Date();
  await topics.insert({ topic: `t-${label}`, tenantId: 'acme', shards: 2, createdAt: now, _system: { updatedAt: now } });
  expect(await topics.findOne({ topic: `t-${label}` })).toMatchObject({ shards: 2 });
  // An identity write is audited in the runtime database, in the same call.
  const users = x.with({ databaseType: 'identities', tier: 'tenant', tenantId: 'acme', collection: 'users' });
  await users.insert({ userId: `u-${label}`, tenantId: 'acme', email: `${label}@example.com` }, { actor: label });
  expect(await users.findOne({ userId: `u-${label}` })).toMatchObject({ email: `${label}@example.com` });

  const retention = await runJob(x, 'retention', { log: null });
  expect(retention.failures).toEqual([]);
  expect(retention.databases.done).toBe(DATABASES.length - 1); // an_acme is rt_acme's analytics database, not a job target
}

describePostgres('xronox migrate and least privilege on PostgreSQL', availability, () => {
  beforeAll(async () => {
    await withPostgres(async (c) => {
      const database = escapeIdentifier((await c.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db);
      for (const role of ROLES) await c.query(`CREATE ROLE ${escapeIdentifier(role)} LOGIN PASSWORD '${password}'`);
      await c.query(`GRANT CREATE ON DATABASE ${database} TO ${escapeIdentifier(OWNER)}`);
      // The grants of docs/postgresql.md, word for word but for the role names.
      const [owner, app] = [escapeIdentifier(OWNER), escapeIdentifier(APP)];
      await c.query(`ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} GRANT USAGE ON SCHEMAS TO ${app}`);
      await c.query(`ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${app}`);
      await c.query(`ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} GRANT USAGE ON SEQUENCES TO ${app}`);
    });
  });

  afterAll(async () => {
    for (const x of opened) await x.shutdown();
    await dropSchemas(prefix);
    await withPostgres(async (c) => {
      // Revokes the database grant and the default privileges (the schemas are gone already). One
      // role at a time: given together, PostgreSQL 15 trips over the default privileges that name two of them.
      for (const role of ROLES) await c.query(`DROP OWNED BY ${escapeIdentifier(role)}`);
      for (const role of ROLES) await c.query(`DROP ROLE ${escapeIdentifier(role)}`);
    });
    dir.cleanup();
  });

  it('migrate, as a role that may only create in the database, makes every configured database; a second run finds them all', async () => {
    const file = writeConfig('owner', configFor(OWNER, ['acme']));
    const first = await runCli(['migrate', '--config', file]);
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: EXIT.ok, stderr: '' });
    const reports = first.stdout.trim().split('\n').map((line) => JSON.parse(line) as MigrationReport);
    expect(Object.fromEntries(reports.map((r) => [r.dbName, r.index]))).toEqual({
      rt_acme: { rt_acme: 'created', an_acme: 'created' },
      kn_generic: { kn_generic: 'created' },
      logs_generic: { logs_generic: 'created' },
      msg_acme: { msg_acme: 'created' },
      ids_acme: { ids_acme: 'created' },
    });
    expect(Object.keys(reports.find((r) => r.dbName === 'msg_acme')!.collections!).sort()).toEqual(['dead_letters', 'messages', 'shared_memory', 'topics']);
    expect(Object.keys(reports.find((r) => r.dbName === 'ids_acme')!.collections!).sort()).toEqual(['accounts', 'permissions', 'roles', 'sessions', 'users']);

    // One schema per database, all the owner's; messaging's holds the index tables and the collections side by side.
    expect(await schemas()).toEqual(Object.fromEntries(DATABASES.map((d) => [schemaOf(d), OWNER]).sort()));
    const tables = await sql<{ relname: string }>(`SELECT relname FROM pg_class WHERE relnamespace = $1::regnamespace AND relkind = 'r' ORDER BY relname`, [escapeIdentifier(schemaOf('msg_acme'))]);
    expect(tables.map((t) => t.relname)).toEqual(expect.arrayContaining(['_dead_letters', '_schema_info', '_xronox_documents', 'dead_letters', 'topics']));

    const second = await runCli(['migrate', '--config', file]);
    expect({ code: second.code, stderr: second.stderr }).toEqual({ code: EXIT.ok, stderr: '' });
    const again = second.stdout.trim().split('\n').map((line) => JSON.parse(line) as MigrationReport);
    for (const r of again) expect(Object.values(r.index).every((s) => s === 'present'), r.dbName).toBe(true);
    expect(again.map((r) => r.collections)).toEqual(reports.map((r) => r.collections));
  });

  it("the runtime role, with the default privileges of docs/postgresql.md only, serves every type and runs a job: it may create nothing, and tries nothing", async () => {
    const [database] = await sql<{ db: string }>('SELECT current_database() AS db');
    expect((await sql<{ ok: boolean }>(`SELECT has_database_privilege($1, $2, 'CREATE') AS ok`, [APP, database!.db]))[0]!.ok).toBe(false);
    for (const d of DATABASES) {
      const [p] = await sql<{ usage: boolean; create: boolean }>(`SELECT has_schema_privilege($1, $2, 'USAGE') AS usage, has_schema_privilege($1, $2, 'CREATE') AS create`, [APP, schemaOf(d)]);
      expect({ d, ...p }).toEqual({ d, usage: true, create: false });
    }
    const x = open(configFor(APP, ['acme']));
    await x.admin.checkStorage();
    // Any DDL (a schema, a table, an index) would fail for this role: that every call succeeds
    // shows first use found each database in place and created nothing.
    await workload(x, 'app');
    expect(await schemas()).toEqual(Object.fromEntries(DATABASES.map((d) => [schemaOf(d), OWNER]).sort()));
  });

  it('the same with the grants given per schema (for schemas made before the default privileges were set)', async () => {
    await withPostgres(async (c) => {
      const role = escapeIdentifier(GRANTED);
      for (const schema of Object.keys(await schemas())) {
        const s = escapeIdentifier(schema);
        await c.query(`GRANT USAGE ON SCHEMA ${s} TO ${role}`);
        await c.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${s} TO ${role}`);
        await c.query(`GRANT USAGE ON ALL SEQUENCES IN SCHEMA ${s} TO ${role}`);
      }
    });
    await workload(open(configFor(GRANTED, ['acme'])), 'granted');
  });

  it('a database migrate has not made is a StorageError naming it and `xronox migrate`, for writes of both stores and in a job report; reads find nothing; the instance carries on', async () => {
    // Tenant beta was added to the config after the migration.
    const x = open(configFor(APP, ['acme', 'beta']));
    const beta = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'beta', collection: 'orders' });
    const write = await beta.create({ customer: 'b' }).catch((e: unknown) => e);
    expect(write).toBeInstanceOf(StorageError);
    expect((write as Error).message).toBe(
      `PostgreSQL schema ${schemaOf('rt_beta')} of database "rt_beta" is not set up, and this role may not create it (permission denied for database ${(await sql<{ db: string }>('SELECT current_database() AS db'))[0]!.db}): run \`npx xronox migrate\` as a role that may, then grant this role the runtime privileges (docs/postgresql.md, "PostgreSQL roles")`,
    );
    const now = new Date();
    const topic = await x
      .with({ databaseType: 'messaging', tier: 'tenant', tenantId: 'beta', collection: 'topics' })
      .insert({ topic: 't', tenantId: 'beta', shards: 1, createdAt: now, _system: { updatedAt: now } })
      .catch((e: unknown) => e);
    expect(topic).toBeInstanceOf(StorageError);
    expect((topic as Error).message).toMatch(new RegExp(`^PostgreSQL schema ${schemaOf('msg_beta')} of database "msg_beta" is not set up, and this role may not create it .*npx xronox migrate`));
    // A read of a database that is not there finds nothing, and creates nothing.
    expect(await beta.getLatest('nobody')).toBeNull();
    expect(Object.keys(await schemas()).filter((s) => s.includes('beta'))).toEqual([]);
    // A job run names each database it could not reach and does the others.
    const job = await runJob(x, 'retention', { log: null });
    expect(job.failures.map((f) => f.dbName).sort()).toEqual(['ids_beta', 'msg_beta', 'rt_beta']);
    for (const f of job.failures) expect(f.error).toMatch(/is not set up, and this role may not create it .*npx xronox migrate/);
    expect(job.databases).toMatchObject({ total: 8, done: 5, failed: 3 });
    // The instance is fine: acme's databases still serve.
    const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    const { id } = await orders.create({ customer: 'after' });
    expect((await orders.getLatest(id))?.data).toEqual({ customer: 'after' });
  });

  it('a role without the grants is told which schema it may not use', async () => {
    const x = open(configFor(BARE, ['acme']));
    const err = await x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' }).create({}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toBe(
      `This role may not use PostgreSQL schema ${schemaOf('rt_acme')} of database "rt_acme" (permission denied for schema ${schemaOf('rt_acme')}): grant it the runtime privileges (docs/postgresql.md, "PostgreSQL roles")`,
    );
  });

  it('4 processes starting at once on an empty database create each schema once (index tables and collections together), without an error', async () => {
    const racePrefix = randomSchemaPrefix();
    const { databases } = configFor(OWNER, ['acme']);
    const config: XronoxConfigInput = {
      // The test's own role (a superuser here), as a service that creates on first use.
      dbConnections: { pg: { postgresUri: POSTGRES_URI, schemaPrefix: racePrefix } },
      localStorage: { basePath: join(dir.path, 'race-blobs'), enabled: true },
      databases: { runtime: databases!.runtime!, messaging: databases!.messaging! },
    };
    const file = writeConfig('race', config);
    try {
      // Each process loads its modules first, then they all start at this instant.
      const startAt = Date.now() + 6_000;
      const runs = await Promise.all([0, 1, 2, 3].map((worker) => runTsx(FIRST_USE, [JSON.stringify({ configFile: file, worker, startAt })], { killAfterMs: 120_000 })));
      const results = runs.map((run) => {
        expect({ code: run.code, stderr: run.stderr.replace(/\(node:\d+\) NodeVersionSupportWarning[\s\S]*?--trace-warnings[^\n]*\n/g, '') }).toEqual({ code: 0, stderr: '' });
        return JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { worker: number; id: string; failures: unknown[] };
      });
      for (const r of results) expect(r.failures, `worker ${r.worker}`).toEqual([]);

      expect(Object.keys(await schemas(racePrefix))).toEqual(['an_acme', 'msg_acme', 'rt_acme'].map((d) => schemaOf(d, racePrefix)));
      for (const d of ['rt_acme', 'an_acme', 'msg_acme']) {
        expect(await sql(`SELECT version, db_name FROM ${escapeIdentifier(schemaOf(d, racePrefix))}._schema_info`)).toEqual([{ version: 1, db_name: d }]);
      }
      const check = open(config);
      const orders = check.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
      for (const r of results) expect((await orders.getLatest(r.id))?.data).toEqual({ worker: r.worker });
      const topics = await check.with({ databaseType: 'messaging', tier: 'tenant', tenantId: 'acme', collection: 'topics' }).find({});
      expect(topics.map((t) => t.topic).sort()).toEqual(['t-0', 't-1', 't-2', 't-3']);
    } finally {
      for (const x of opened.splice(0)) await x.shutdown();
      await dropSchemas(racePrefix);
    }
  });
});
