/**
 * The per-container singleton (functions/api/container.ts): where the config comes from, that a
 * build happens once and is reused, and that a failed build is retried rather than kept.
 *
 * SSM cannot run here, so its cases use a stand-in endpoint on 127.0.0.1 that speaks the SSM
 * JSON protocol; the real SSM client talks to it (AWS_ENDPOINT_URL_SSM), so what is tested is
 * the request the function sends and how it reads the answer.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Hono } from 'hono';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createContainer, type Container } from '../../functions/api/container.js';
import type { Xronox } from '../../core/xronox.js';
import { ConfigError } from '../../core/errors.js';
import { tempDir } from '../support/temp.js';

const dir = tempDir('xronox-container');
afterAll(() => dir.cleanup());

function embeddedConfig(name: string, extra: Record<string, unknown> = {}) {
  return {
    dbConnections: { local: { sqlitePath: join(dir.path, `${name}.sqlite`) } },
    localStorage: { basePath: join(dir.path, `${name}-blobs`), enabled: true },
    databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: `rt_${name}` }] } },
    ...extra,
  };
}

/** A small real app over the engine: one route that writes and one that reads. */
function buildApp({ xronox }: { xronox: Xronox }) {
  const orders = () => xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
  return new Hono()
    .post('/orders', async (c) => c.json(await orders().create(await c.req.json()), 201))
    .get('/orders/:id', async (c) => c.json(await orders().getLatest(c.req.param('id'))));
}

const containers: Container[] = [];
afterEach(async () => {
  await Promise.all(containers.splice(0).map((c) => c.close()));
});
function track<C extends Container>(c: C): C {
  containers.push(c);
  return c;
}

describe('config from XRONOX_CONFIG_FILE', () => {
  it('builds once: every get() returns the same engine and app, and stores are opened once', async () => {
    const file = join(dir.path, 'file.json');
    writeFileSync(file, JSON.stringify(embeddedConfig('file')));
    const container = track(createContainer({ buildApp, env: { XRONOX_CONFIG_FILE: file, XRONOX_CONFIG_SSM: '/not/used' } }));

    const first = await container.get();
    expect(first.source).toEqual({ kind: 'file', path: file });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const built = await container.get();
      expect(built).toBe(first);
      const res = await built.app.request('/orders', { method: 'POST', body: JSON.stringify({ n: i }), headers: { 'content-type': 'application/json' } });
      expect(res.status).toBe(201);
      ids.push(((await res.json()) as { id: string }).id);
    }
    const read = await (await container.get()).app.request(`/orders/${ids[3]}`);
    expect(((await read.json()) as { data: unknown }).data).toEqual({ n: 3 });
    expect(container.stats).toEqual({ builds: 1, failedBuilds: 0, engines: 1, indexStores: 1, blobStores: 1, documentStores: 0, ssmClients: 0, apps: 1 });
  });

  it('concurrent first calls share one build', async () => {
    const file = join(dir.path, 'concurrent.json');
    writeFileSync(file, JSON.stringify(embeddedConfig('concurrent')));
    const container = track(createContainer({ buildApp, env: { XRONOX_CONFIG_FILE: file } }));
    const all = await Promise.all(Array.from({ length: 8 }, () => container.get()));
    expect(new Set(all).size).toBe(1);
    expect(container.stats.builds).toBe(1);
    expect(container.stats.engines).toBe(1);
  });

  it('a failed build is not kept: the next get() builds again and succeeds once the cause is fixed', async () => {
    const file = join(dir.path, 'later.json');
    writeFileSync(file, '{ "dbConnections": ');
    const container = track(createContainer({ buildApp, env: { XRONOX_CONFIG_FILE: file } }));

    const err = await container.get().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(`The config file ${file} is not valid JSON`);

    writeFileSync(file, JSON.stringify(embeddedConfig('later')));
    const built = await container.get();
    expect(built.config.databases.runtime?.tenantDatabases?.[0]?.tenantId).toBe('acme');
    expect(container.stats).toMatchObject({ builds: 2, failedBuilds: 1, engines: 1, apps: 1 });
  });

  it('an app that fails to build leaves no engine open, and is retried', async () => {
    const file = join(dir.path, 'app-fails.json');
    writeFileSync(file, JSON.stringify(embeddedConfig('app-fails')));
    let attempts = 0;
    const engines: Array<{ closed: boolean }> = [];
    const container = track(
      createContainer({
        env: { XRONOX_CONFIG_FILE: file },
        buildApp: (built) => {
          engines.push(built.xronox);
          // Opening a store first (with() alone opens nothing; reading the store's name is a use), so that the failed build has something to close.
          const route = built.xronox.route({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
          expect(built.xronox.jobTarget(route).index.name).toBe('sqlite');
          if (++attempts === 1) throw new Error('app wiring failed');
          return buildApp(built);
        },
      }),
    );
    await expect(container.get()).rejects.toThrow('app wiring failed');
    expect(engines[0]?.closed).toBe(true);
    await container.get();
    expect(engines[1]?.closed).toBe(false);
    expect(container.stats).toMatchObject({ builds: 2, failedBuilds: 1, engines: 2, indexStores: 2, apps: 1 });
  });

  it('close() shuts the engine down; the next get() builds a new one (and the counts say so)', async () => {
    const file = join(dir.path, 'close.json');
    writeFileSync(file, JSON.stringify(embeddedConfig('close')));
    const container = track(createContainer({ buildApp, env: { XRONOX_CONFIG_FILE: file } }));
    const first = await container.get();
    await first.app.request('/orders', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    await container.close();
    expect(first.xronox.closed).toBe(true);
    const second = await container.get();
    expect(second).not.toBe(first);
    await second.app.request('/orders', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(container.stats).toMatchObject({ builds: 2, engines: 2, indexStores: 2, blobStores: 2, apps: 2 });
  });
});

describe('config bundled with the function', () => {
  it('with neither variable set, reads xronox.config.json from LAMBDA_TASK_ROOT', async () => {
    const taskRoot = join(dir.path, 'task');
    mkdirSync(taskRoot);
    // Relative paths in a file are resolved against its folder, as on Lambda (/var/task).
    writeFileSync(join(taskRoot, 'xronox.config.json'), JSON.stringify({ ...embeddedConfig('bundled'), dbConnections: { local: { sqlitePath: 'bundled.sqlite' } } }));
    const container = track(createContainer({ buildApp, env: { LAMBDA_TASK_ROOT: taskRoot, XRONOX_CONFIG_FILE: '', XRONOX_CONFIG_SSM: '' } }));
    const built = await container.get();
    expect(built.source).toEqual({ kind: 'bundled', searchedFrom: taskRoot });
    expect(built.config.dbConnections.local?.sqlitePath).toBe(join(taskRoot, 'bundled.sqlite'));
  });
});

describe('config from an SSM parameter', () => {
  interface SsmCall {
    target: string | undefined;
    body: { Name?: string; WithDecryption?: boolean };
  }
  const calls: SsmCall[] = [];
  /** What the stand-in answers next: a parameter value, or an SSM error type. */
  let answer: { value: string } | { error: string } = { error: 'ParameterNotFound' };
  let server: Server;
  const saved: Record<string, string | undefined> = {};

  beforeAll(async () => {
    server = createServer((req, res) => {
      void readBody(req).then((text) => {
        const body = JSON.parse(text) as SsmCall['body'];
        calls.push({ target: req.headers['x-amz-target'] as string | undefined, body });
        res.setHeader('content-type', 'application/x-amz-json-1.1');
        if ('error' in answer) {
          res.statusCode = 400;
          res.end(JSON.stringify({ __type: answer.error, message: `${answer.error} for ${body.Name}` }));
        } else {
          res.end(JSON.stringify({ Parameter: { Name: body.Name, Type: 'SecureString', Value: answer.value, Version: 3, DataType: 'text' } }));
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const vars = {
      AWS_ENDPOINT_URL_SSM: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      AWS_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'AKIDLAMBDATEST',
      AWS_SECRET_ACCESS_KEY: 'lambda-test-secret',
    };
    for (const [k, v] of Object.entries(vars)) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
  });
  afterAll(async () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('asks for the decrypted parameter; a failure is retried on the next call with the same client', async () => {
    calls.length = 0;
    const container = track(createContainer({ buildApp, env: { XRONOX_CONFIG_SSM: '/xronox/test/config' } }));

    answer = { error: 'ParameterNotFound' };
    const err = await container.get().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain('Cannot read the config from the SSM parameter /xronox/test/config (ParameterNotFound');

    answer = { value: JSON.stringify(embeddedConfig('ssm')) };
    const built = await container.get();
    expect(built.source).toEqual({ kind: 'ssm', parameter: '/xronox/test/config' });
    expect(await container.get()).toBe(built);

    expect(calls).toEqual([
      { target: 'AmazonSSM.GetParameter', body: { Name: '/xronox/test/config', WithDecryption: true } },
      { target: 'AmazonSSM.GetParameter', body: { Name: '/xronox/test/config', WithDecryption: true } },
    ]);
    expect(container.stats).toEqual({ builds: 2, failedBuilds: 1, engines: 1, indexStores: 0, blobStores: 0, documentStores: 0, ssmClients: 1, apps: 1 });
  });

  it('an invalid config in the parameter names the parameter and never shows the secrets it holds', async () => {
    const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
    answer = {
      value: JSON.stringify(
        embeddedConfig('bad', { spacesConnections: { s3: { region: 'eu-west-1', accessKey: 'AKIAEXAMPLE', secretKey: secret, bucket: 7 } } }),
      ),
    };
    const container = track(createContainer({ buildApp, env: { XRONOX_CONFIG_SSM: '/xronox/test/config' } }));
    const err = (await container.get().then(() => null, (e: unknown) => e)) as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/^Invalid Xronox config in the SSM parameter \/xronox\/test\/config/);
    expect(err.issues.map((i) => i.path)).toContain('spacesConnections.s3.bucket');
    expect(err.message).not.toContain(secret);

    answer = { value: `{"secretKey": "${secret}", oops}` };
    const notJson = (await track(createContainer({ buildApp, env: { XRONOX_CONFIG_SSM: '/xronox/test/config' } }))
      .get()
      .then(() => null, (e: unknown) => e)) as ConfigError;
    expect(notJson.message).toContain('The SSM parameter /xronox/test/config does not hold valid JSON');
    expect(notJson.message).not.toContain(secret);
  });
});

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
