import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, ok, type Reply, startServer, testApiConfig, type TestServer } from './harness.js';

/**
 * What a refused request leaves behind (nothing), bodies that are not UTF-8 JSON, and what a
 * client sees when its body is refused before it arrived (a 413 it can read, then a clean close).
 */

type Problem = { status: number; code: string; errors?: Array<{ path: string; message: string }> };

function problem(reply: Reply, status: number, code?: string): Problem {
  expect(reply.status, reply.text).toBe(status);
  expect(reply.headers.get('content-type')).toBe('application/problem+json');
  const body = reply.json as Problem;
  if (code) expect(body.code).toBe(code);
  return body;
}

/** Every file under the data folder (with its size) and every schema object of the SQLite file: what a refused request must not change. */
function dataSnapshot(dataDir: string): { files: string[]; schema: string[] } {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        files.push(`${relative(dataDir, path)}/`);
        walk(path);
      } else files.push(`${relative(dataDir, path)} ${statSync(path).size}`);
    }
  };
  walk(dataDir);
  const file = join(dataDir, 'xronox.sqlite');
  if (!existsSync(file)) return { files, schema: [] };
  const db = new Database(file, { readonly: true });
  try {
    const schema = (db.prepare('SELECT type, name FROM sqlite_master ORDER BY type, name').all() as Array<{ type: string; name: string }>).map((r) => `${r.type} ${r.name}`);
    return { files: files.filter((f) => !f.startsWith('xronox.sqlite')), schema };
  } finally {
    db.close();
  }
}

const q = (value: unknown) => encodeURIComponent(JSON.stringify(value));
const memory = (key: string, val: unknown = 1) => ({
  key,
  namespace: 'app',
  tenantId: 'acme',
  val,
  _system: { createdAt: { $date: '2026-01-01T00:00:00.000Z' }, updatedAt: { $date: '2026-01-01T00:00:00.000Z' } },
});

describe('a refused request changes nothing', () => {
  let s: TestServer;
  beforeAll(async () => {
    // Documents above 4 KiB are refused by the engine, bodies up to 64 KiB reach it.
    s = await startServer({ config: { limits: { maxDocumentBytes: 4096 } }, api: testApiConfig({ bodyLimitBytes: 65_536 }) });
  });
  afterAll(() => s.close());

  it('creates no database file, schema, table or folder, whichever check refuses it', async () => {
    const before = dataSnapshot(s.dataDir);
    expect(before).toEqual({ files: [], schema: [] });
    const messaging = '/v1/tenants/acme/messaging/shared_memory';
    const identities = '/v1/tenants/acme/identities/users';
    const orders = '/v1/tenants/acme/runtime/orders';
    const user = { userId: 'u1', tenantId: 'acme', email: 'ada@example.com' };
    const refused: Array<[string, string, Parameters<typeof call>[3], number]> = [
      // The first messaging POST of the issue: a document without its documented fields.
      ['POST', messaging, { body: { key: 'k' } }, 400],
      ['POST', messaging, { body: memory('big', 'x'.repeat(8000)) }, 400],
      ['PUT', messaging, { body: { filter: { key: 'k', namespace: 'app', tenantId: 'acme' }, doc: memory('other') } }, 400],
      ['GET', `${messaging}?filter=${q({ $where: '1' })}`, {}, 400],
      ['DELETE', `${messaging}?filter=${q({})}`, {}, 400],
      ['POST', '/v1/tenants/acme/messaging/nope', { body: memory('k') }, 400],
      ['POST', identities, { body: { userId: 'u1', tenantId: 'acme', email: 'not an email' } }, 400],
      // An upsert whose document does not hold the key its filter names: refused before the read that would create the collection.
      ['PUT', identities, { body: { filter: { tenantId: 'acme', email: 'bob@example.com' }, doc: user } }, 400],
      ['POST', orders, { body: { $set: { admin: true } } }, 400],
      ['POST', orders, { body: { big: 'x'.repeat(8000) } }, 400],
      ['POST', `${orders}/batch`, { body: { items: [{ a: 1 }, { $bad: 1 }] } }, 400],
      ['GET', `${orders}?filter=${q({ a: { $regex: '.' } })}`, {}, 400],
      ['GET', `${orders}?unknown=1`, {}, 400],
      ['POST', orders, { raw: '{"a":1}', contentType: 'text/plain' }, 415],
      ['POST', orders, { raw: '{"a":', contentType: 'application/json' }, 400],
      ['POST', orders, { raw: 'x'.repeat(70_000), contentType: 'application/json' }, 413],
      ['GET', `/v1/generic/knowledge/policies?filter=${q({ $where: '1' })}`, {}, 400],
    ];
    for (const [method, path, options, status] of refused) {
      const reply = await call(s.base, method, path, options);
      expect.soft({ method, path: path.slice(0, 60), status: reply.status }).toEqual({ method, path: path.slice(0, 60), status });
    }
    expect(dataSnapshot(s.dataDir)).toEqual(before);
  });
});

describe('a refused request changes nothing in a database that exists', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({ config: { limits: { maxDocumentBytes: 4096 } }, api: testApiConfig({ bodyLimitBytes: 65_536 }) });
  });
  afterAll(() => s.close());

  it('creates no collection there: a document over the size limit, an upsert whose document does not hold its key', async () => {
    await ok(s.base, 'POST', '/v1/tenants/acme/runtime/orders', { body: { a: 1 } });
    await s.xronox.flush();
    const before = dataSnapshot(s.dataDir);
    expect(before.schema.length).toBeGreaterThan(0);
    // No messaging or identities collection exists yet: a refused write must not create one (with its indexes).
    problem(await call(s.base, 'POST', '/v1/tenants/acme/messaging/topics', { body: { topic: 't', tenantId: 'acme', shards: 1, createdAt: { $date: '2026-01-01T00:00:00.000Z' }, _system: { updatedAt: { $date: '2026-01-01T00:00:00.000Z' } }, note: 'x'.repeat(8000) } }), 400, 'VALIDATION_FAILED');
    problem(await call(s.base, 'PUT', '/v1/tenants/acme/identities/users', { body: { filter: { tenantId: 'acme', userId: 'u2' }, doc: { userId: 'u1', tenantId: 'acme', email: 'a@example.com' } } }), 400, 'VALIDATION_FAILED');
    expect(dataSnapshot(s.dataDir)).toEqual(before);
  });
});
