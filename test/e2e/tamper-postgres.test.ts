/**
 * The tamper suite's index cases on PostgreSQL (the index store), objects in a local folder:
 * columns edited, the head body edited, a row deleted, two rows swapped, each found by verify and
 * refused by the reads that touch it.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { escapeIdentifier } from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TamperError } from '../../core/errors.js';
import { initXronox, type Xronox } from '../../core/xronox.js';
import { describePostgres, dropSchemas, POSTGRES_URI, postgresAvailability, randomSchemaPrefix, withPostgres } from '../support/postgres.js';
import { tempDir } from '../support/temp.js';

const availability = await postgresAvailability();

function findFile(root: string, suffix: string): string | undefined {
  for (const name of readdirSync(root)) {
    const path = join(root, name);
    if (statSync(path).isDirectory()) {
      const found = findFile(path, suffix);
      if (found) return found;
    } else if (path.endsWith(suffix)) return path;
  }
  return undefined;
}

describePostgres('tamper suite on PostgreSQL (index columns, head, rows)', availability, () => {
  const dir = tempDir('xronox-tamper-pg');
  const prefix = randomSchemaPrefix();
  const schema = `${prefix}rt_acme`;
  const table = (name: string) => `${escapeIdentifier(schema)}.${escapeIdentifier(`_${name}`)}`;
  let x: Xronox;

  beforeAll(async () => {
    x = initXronox({
      dbConnections: { pg: { postgresUri: POSTGRES_URI, schemaPrefix: prefix } },
      localStorage: { basePath: join(dir.path, 'blobs'), enabled: true },
      databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'pg', dbName: 'rt_acme' }] } },
      integrity: { digestKey: randomBytes(32).toString('hex') },
    });
  });
  afterAll(async () => {
    await x.shutdown();
    await dropSchemas(prefix);
    dir.cleanup();
  });

  /** A record with versions 0..3, synced; its times. */
  async function record() {
    const c = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    const { id } = await c.create({ total: 0 }, 'alice', 'r0');
    const times = [(await c.getLatest(id))!.updatedAt];
    for (let i = 1; i <= 3; i++) {
      await c.update(id, { total: i }, i - 1, 'alice', `r${i}`);
      times.push((await c.getLatest(id))!.updatedAt);
    }
    await x.flush();
    expect(await c.verify(id)).toMatchObject({ ok: true, checked: 4 });
    return { c, id, times };
  }

  const sql = (text: string, values: unknown[]) => withPostgres((client) => client.query(text, values), POSTGRES_URI);

  const columnEdits: Array<[string, string, unknown[]]> = [
    ['actor', `UPDATE ${'%v'} SET actor = $1::jsonb, actor_id = 'mallory' WHERE coll = 'orders' AND id = $2 AND ov = 1`, [JSON.stringify('mallory')]],
    ['reason', `UPDATE ${'%v'} SET reason = $1 WHERE coll = 'orders' AND id = $2 AND ov = 1`, ['nothing to see']],
    ['time', `UPDATE ${'%v'} SET at = $1 WHERE coll = 'orders' AND id = $2 AND ov = 1`, ['2001-01-01T00:00:00.000Z']],
    ['cv', `UPDATE ${'%v'} SET cv = cv + $1 WHERE coll = 'orders' AND id = $2 AND ov = 1`, [100]],
    ['deleted', `UPDATE ${'%v'} SET deleted = $1 WHERE coll = 'orders' AND id = $2 AND ov = 1`, [true]],
  ];
  for (const [what, statement, values] of columnEdits) {
    it(`the ${what} column of a version edited: verify finds it, history and getVersion refuse it`, async () => {
      const { c, id } = await record();
      const result = await sql(statement.replace('%v', table('versions')), [...values, id]);
      expect(result.rowCount).toBe(1);
      expect(await c.verify(id)).toMatchObject({ ok: false, brokenAt: { ov: 1 } });
      await expect(c.history(id)).rejects.toBeInstanceOf(TamperError);
      await expect(c.getVersion(id, 1)).rejects.toBeInstanceOf(TamperError);
      expect((await c.getVersion(id, 2))?.data).toEqual({ total: 2 });
    });
  }

  it('the head body edited: verify finds it, getLatest refuses it', async () => {
    const { c, id } = await record();
    const { rows } = await sql(`SELECT body FROM ${table('heads')} WHERE coll = 'orders' AND id = $1`, [id]);
    const doc = JSON.parse((rows[0] as { body: string }).body);
    doc.data.total = 999;
    await sql(`UPDATE ${table('heads')} SET body = $1 WHERE coll = 'orders' AND id = $2`, [JSON.stringify(doc), id]);
    expect(await c.verify(id)).toMatchObject({ ok: false, brokenAt: { ov: 3, reason: expect.stringMatching(/head/) } });
    await expect(c.getLatest(id)).rejects.toBeInstanceOf(TamperError);
  });

  it('a version row deleted: verify finds the gap, getAsOf refuses to answer across it', async () => {
    const { c, id, times } = await record();
    await sql(`DELETE FROM ${table('versions')} WHERE coll = 'orders' AND id = $1 AND ov = 2`, [id]);
    expect(await c.verify(id)).toMatchObject({ ok: false, brokenAt: { ov: 2, reason: expect.stringMatching(/missing/) } });
    await expect(c.getAsOf(id, times[2]!)).rejects.toBeInstanceOf(TamperError);
  });

  it('two version rows swapped: verify finds it, history refuses', async () => {
    const { c, id } = await record();
    await withPostgres(async (client) => {
      await client.query('BEGIN');
      await client.query(`UPDATE ${table('versions')} SET ov = -1 WHERE coll = 'orders' AND id = $1 AND ov = 1`, [id]);
      await client.query(`UPDATE ${table('versions')} SET ov = 1 WHERE coll = 'orders' AND id = $1 AND ov = 2`, [id]);
      await client.query(`UPDATE ${table('versions')} SET ov = 2 WHERE coll = 'orders' AND id = $1 AND ov = -1`, [id]);
      await client.query('COMMIT');
    });
    expect(await c.verify(id)).toMatchObject({ ok: false, brokenAt: { ov: 1 } });
    await expect(c.history(id)).rejects.toBeInstanceOf(TamperError);
  });

  it('a signed digest holds on PostgreSQL and catches a history truncated behind it', async () => {
    const { c, id } = await record();
    // Earlier cases left tampered records in this collection: the digest is taken over a fresh one.
    const fresh = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'invoices' });
    const { id: inv } = await fresh.create({ n: 1 });
    await fresh.update(inv, { n: 2 }, 0);
    await x.flush();
    await fresh.writeDigest();
    expect(await fresh.verifyCollection()).toMatchObject({ ok: true, digest: { ok: true } });
    const { rows } = await sql(`SELECT cv, at, hash FROM ${table('versions')} WHERE coll = 'invoices' AND id = $1 AND ov = 0`, [inv]);
    const v0 = rows[0] as { cv: string; at: string; hash: string };
    const body = readFileSync(findFile(join(dir.path, 'blobs'), join('invoices', inv, 'v0.json'))!, 'utf8');
    // Version 1 dropped and the head rolled back to version 0: a consistent chain, and current.json too.
    await sql(`DELETE FROM ${table('versions')} WHERE coll = 'invoices' AND id = $1 AND ov = 1`, [inv]);
    await sql(`UPDATE ${table('heads')} SET ov = 0, cv = $1, updated_at = $2, hash = $3, body = $4 WHERE coll = 'invoices' AND id = $5`, [v0.cv, v0.at, v0.hash, body, inv]);
    writeFileSync(findFile(join(dir.path, 'blobs'), join('invoices', inv, 'current.json'))!, body);
    expect(await fresh.verify(inv)).toMatchObject({ ok: true, checked: 1 });
    expect(await fresh.verifyCollection()).toMatchObject({ ok: false, digest: { ok: false } });
    expect(await c.verify(id)).toMatchObject({ ok: true });
  });
});
