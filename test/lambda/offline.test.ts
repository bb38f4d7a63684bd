/**
 * `npm run offline` (`osls offline start --stage local`): serverless-offline runs the same
 * function from the same serverless.yml, bundled by serverless-esbuild, behind a local HTTP API
 * emulation. Smoke test over real HTTP: start it, create and read a record, fetch the public
 * routes, stop it.
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../functions/api/api-keys.js';
import { tempDir } from '../support/temp.js';
import { type Offline, serviceDir, startOffline } from './osls.js';

const KEY = 'xrx_offline-smoke-test-key';
const service = serviceDir('xronox-offline');
const data = tempDir('xronox-offline-data');
let offline: Offline | undefined;
let skip: string | undefined;

/** A port nothing listens on right now, or why there is none. */
function freePort(): Promise<number | { skip: string }> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err) => resolve({ skip: `cannot listen on 127.0.0.1 here (${err.message}), so serverless-offline cannot run` }));
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  const ports = [await freePort(), await freePort()];
  const refused = ports.find((p) => typeof p !== 'number');
  if (refused) {
    skip = (refused as { skip: string }).skip;
    return;
  }
  const configFile = join(data.path, 'xronox.config.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      dbConnections: { local: { sqlitePath: 'xronox.sqlite' } },
      localStorage: { basePath: 'blobs', enabled: true },
      databases: { runtime: { tenantDatabases: [{ tenantId: 'demo', dbConnRef: 'local', dbName: 'rt_offline_demo' }] } },
      api: { keys: [{ id: 'offline-test', sha256: hashApiKey(KEY), role: 'write', tenants: ['demo'] }] },
    }),
  );
  offline = await startOffline(service, { httpPort: ports[0] as number, lambdaPort: ports[1] as number, env: { XRONOX_CONFIG_FILE: configFile } });
}, 180_000);

afterAll(async () => {
  await offline?.stop();
  service.cleanup();
  data.cleanup();
}, 60_000);

describe('npm run offline (osls offline start --stage local)', () => {
  it('serves the API over HTTP from the bundled handler', async (ctx) => {
    if (skip) {
      console.warn(`skipped: ${skip}`);
      ctx.skip();
    }
    const base = offline!.url;
    const auth = { authorization: `Bearer ${KEY}` };
    const created = await fetch(`${base}/v1/tenants/demo/runtime/orders`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ customer: 'ada', total: 12 }),
    });
    expect(created.status, offline!.output()).toBe(201);
    const { id } = (await created.json()) as { id: string };
    expect(created.headers.get('etag')).toBe('"0"');

    const read = await fetch(`${base}/v1/tenants/demo/runtime/orders/${id}`, { headers: auth });
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({ id, ov: 0, data: { customer: 'ada', total: 12 } });

    const updated = await fetch(`${base}/v1/tenants/demo/runtime/orders/${id}`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/json', 'if-match': '"0"' },
      body: JSON.stringify({ customer: 'ada', total: 14 }),
    });
    expect(updated.status).toBe(200);
    expect(updated.headers.get('etag')).toBe('"1"');

    expect((await fetch(`${base}/v1/tenants/demo/runtime/orders`)).status).toBe(401);
    const openapi = await fetch(`${base}/openapi.json`);
    expect(openapi.status).toBe(200);
    expect(((await openapi.json()) as { openapi: string }).openapi).toBe('3.1.0');
    expect((await fetch(`${base}/`)).status).toBe(200);
  });
});
