/**
 * `npx osls package` on the repository's serverless.yml (what CI runs before a deploy), and what
 * it produced: the CloudFormation template (function, HTTP API routes, IAM statements) and the
 * function's zip, which is then loaded and invoked as Lambda would.
 *
 * osls runs with no AWS credentials, and with every AWS endpoint and proxy pointed at a closed
 * port (test/lambda/osls.ts), so packaging provably needs no AWS account.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../functions/api/api-keys.js';
import { tempDir } from '../support/temp.js';
import { httpApiEvent } from './http-api-event.js';
import { type CloudFormationTemplate, oslsPackage, type Packaged, REPO, serviceDir, type ServiceDir } from './osls.js';
import { readZip } from './zip.js';

const STAGE = 'ci';
/** One bucket given on the command line; the other two keep their stage-named defaults. */
const BUCKETS = { records: 'acme-ci-records', versions: `xronox-${STAGE}-versions`, content: `xronox-${STAGE}-content` };
const PARAMETER = `/xronox/${STAGE}/config`;
/** CloudFormation pseudo parameters, as a stack in this region and account would resolve them. */
const PSEUDO = { 'AWS::Region': 'eu-west-1', 'AWS::AccountId': '123456789012', 'AWS::Partition': 'aws' } as Record<string, string>;

let service: ServiceDir;
let packaged: Packaged;

beforeAll(() => {
  service = serviceDir();
  packaged = oslsPackage(service, { stage: STAGE, params: { recordsBucket: BUCKETS.records } });
}, 300_000);
afterAll(() => service?.cleanup());

interface Statement {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}

function resources(t: CloudFormationTemplate, type: string) {
  return Object.entries(t.Resources).filter(([, r]) => r.Type === type);
}

function list<T>(value: T | T[]): T[] {
  return Array.isArray(value) ? value : [value];
}

/** A template value with Ref, Fn::Join and Fn::Sub of pseudo parameters resolved to a string. */
function render(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, unknown>;
  if ('Ref' in v && typeof v.Ref === 'string' && v.Ref in PSEUDO) return PSEUDO[v.Ref]!;
  if ('Fn::Join' in v) {
    const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map(render).join(sep);
  }
  if ('Fn::Sub' in v && typeof v['Fn::Sub'] === 'string') return v['Fn::Sub'].replace(/\$\{([^}]+)\}/g, (_, name: string) => PSEUDO[name] ?? `\${${name}}`);
  throw new Error(`cannot render ${JSON.stringify(value)}`);
}

describe('npx osls package', () => {
  it('declares the API function: Node.js 22 on arm64, the Hono handler, its config from the stage SSM parameter', () => {
    const functions = resources(packaged.template, 'AWS::Lambda::Function');
    expect(functions.map(([name]) => name)).toEqual(['ApiLambdaFunction']);
    const fn = functions[0]![1].Properties;
    expect(fn).toMatchObject({
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      Handler: 'functions/api/lambda.handler',
      FunctionName: `xronox-${STAGE}-api`,
      MemorySize: 512,
      Timeout: 29,
    });
    expect((fn.Environment as { Variables: Record<string, string> }).Variables).toEqual({
      NODE_OPTIONS: '--enable-source-maps',
      XRONOX_CONFIG_SSM: PARAMETER,
      XRONOX_CONFIG_FILE: '',
    });
    expect(packaged.output).toContain(`Packaging xronox for stage ${STAGE}`);
  });

  it('routes the HTTP API to it with payload format 2.0: the catch-all, the root and the two public documentation routes', () => {
    const t = packaged.template;
    const routes = resources(t, 'AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties);
    expect(routes.map((r) => r.RouteKey).sort()).toEqual(['ANY /', 'ANY /{proxy+}', 'GET /docs', 'GET /openapi.json']);
    const integrations = resources(t, 'AWS::ApiGatewayV2::Integration');
    expect(integrations).toHaveLength(1);
    const [integrationName, integration] = integrations[0]!;
    expect(integration.Properties).toMatchObject({ IntegrationType: 'AWS_PROXY', PayloadFormatVersion: '2.0', IntegrationUri: { 'Fn::GetAtt': ['ApiLambdaFunction', 'Arn'] } });
    for (const route of routes) expect(route.Target).toEqual({ 'Fn::Join': ['/', ['integrations', { Ref: integrationName }]] });
    expect(resources(t, 'AWS::ApiGatewayV2::Api').map(([, r]) => r.Properties.ProtocolType)).toEqual(['HTTP']);
    const permissions = resources(t, 'AWS::Lambda::Permission').map(([, r]) => r.Properties);
    expect(permissions).toEqual([expect.objectContaining({ Action: 'lambda:InvokeFunction', Principal: 'apigateway.amazonaws.com' })]);
  });

  it('grants least privilege: S3 object actions and listing on the three configured buckets only, the one SSM parameter, KMS only through SSM for it', () => {
    const t = packaged.template;
    const roles = resources(t, 'AWS::IAM::Role');
    expect(roles.map(([name]) => name)).toEqual(['IamRoleLambdaExecution']);
    const role = roles[0]![1].Properties;
    expect(role.ManagedPolicyArns).toBeUndefined();
    expect(resources(t, 'AWS::IAM::Policy')).toEqual([]);
    const policies = role.Policies as Array<{ PolicyDocument: { Statement: Statement[] } }>;
    expect(policies).toHaveLength(1);
    const statements = policies[0]!.PolicyDocument.Statement;

    for (const s of statements) {
      expect(s.Effect).toBe('Allow');
      for (const action of list(s.Action)) expect(action, `no wildcard actions (${s.Sid})`).not.toMatch(/\*/);
      for (const r of list(s.Resource)) expect(render(r), `no "*" resource (${s.Sid})`).not.toBe('*');
    }

    const s3 = statements.filter((s) => list(s.Action).some((a) => a.startsWith('s3:')));
    expect(s3.every((s) => list(s.Action).every((a) => a.startsWith('s3:')))).toBe(true);
    const objectArns = Object.values(BUCKETS).map((b) => `arn:aws:s3:::${b}/*`);
    const bucketArns = Object.values(BUCKETS).map((b) => `arn:aws:s3:::${b}`);
    const byActions = new Map(s3.map((s) => [list(s.Action).sort().join(' '), list(s.Resource).map(render).sort()]));
    expect(byActions).toEqual(
      new Map([
        ['s3:AbortMultipartUpload s3:DeleteObject s3:GetObject s3:PutObject', objectArns.sort()],
        ['s3:ListBucket', bucketArns.sort()],
      ]),
    );
    // Nothing for the backups bucket: the API never writes backups.
    expect(JSON.stringify(statements)).not.toMatch(/backups/);

    const parameterArn = `arn:aws:ssm:eu-west-1:123456789012:parameter${PARAMETER}`;
    const ssm = statements.filter((s) => list(s.Action).some((a) => a.startsWith('ssm:')));
    expect(ssm.map((s) => [list(s.Action), list(s.Resource).map(render)])).toEqual([[['ssm:GetParameter'], [parameterArn]]]);

    const kms = statements.filter((s) => list(s.Action).some((a) => a.startsWith('kms:')));
    expect(kms).toHaveLength(1);
    expect(list(kms[0]!.Action)).toEqual(['kms:Decrypt']);
    expect(list(kms[0]!.Resource).map(render)).toEqual(['arn:aws:kms:eu-west-1:123456789012:key/*']);
    const condition = kms[0]!.Condition!.StringEquals!;
    expect(render(condition['kms:ViaService'])).toBe('ssm.eu-west-1.amazonaws.com');
    expect(render(condition['kms:EncryptionContext:PARAMETER_ARN'])).toBe(parameterArn);

    // The rest is the framework's own: writing the function's logs.
    const ours = new Set([...s3, ...ssm, ...kms]);
    for (const s of statements.filter((x) => !ours.has(x))) {
      for (const a of list(s.Action)) expect(a).toMatch(/^logs:/);
      for (const r of list(s.Resource)) expect(render(r)).toMatch(/^arn:aws:logs:eu-west-1:123456789012:log-group:\/aws\/lambda\/xronox-ci/);
    }
  });

  it('zips only the minified bundle and its source map: no node_modules, no native addon, no sources', () => {
    const entries = readZip(packaged.zipPath);
    expect(entries.map((e) => e.name).sort()).toEqual(['functions/api/lambda.cjs', 'functions/api/lambda.cjs.map']);
    const bundle = entries.find((e) => e.name === 'functions/api/lambda.cjs')!.read().toString('utf8');
    expect(bundle.trimEnd().endsWith('//# sourceMappingURL=lambda.cjs.map')).toBe(true);
    // Minified: a few long lines, not one per statement.
    expect(bundle.split('\n').length).toBeLessThan(bundle.length / 2000);
    // better-sqlite3 is left out and required lazily (infra/esbuild/plugins.cjs), once.
    expect(bundle.match(/require\("better-sqlite3"\)/g)).toHaveLength(1);
    expect(bundle).not.toContain('better_sqlite3.node');
    const map = JSON.parse(entries.find((e) => e.name === 'functions/api/lambda.cjs.map')!.read().toString('utf8')) as { sources: string[]; sourcesContent?: unknown };
    expect(map.sources.some((s) => s.endsWith('functions/api/lambda.ts'))).toBe(true);
    expect(map.sourcesContent).toBeUndefined();
  });

  describe('the packaged function, loaded from its zip', () => {
    const work = tempDir('xronox-artifact');
    const key = 'xrx_artifact-test-key';
    let taskRoot: string;
    let configFile: string;
    afterAll(() => work.cleanup());

    beforeAll(() => {
      taskRoot = join(work.path, 'task');
      for (const entry of readZip(packaged.zipPath)) {
        mkdirSync(dirname(join(taskRoot, entry.name)), { recursive: true });
        writeFileSync(join(taskRoot, entry.name), entry.read());
      }
      configFile = join(work.path, 'config', 'xronox.config.json');
      mkdirSync(dirname(configFile));
      writeFileSync(
        configFile,
        JSON.stringify({
          dbConnections: { local: { sqlitePath: 'xronox.sqlite' } },
          localStorage: { basePath: 'blobs', enabled: true },
          databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme' }] } },
          api: { keys: [{ id: 'artifact', sha256: hashApiKey(key), role: 'write', tenants: ['acme'] }] },
        }),
      );
    });

    /** Loads the bundle in a fresh Node process (like a cold container) and invokes its handler once per event. */
    function invokeBundle(events: unknown[], env: Record<string, string>) {
      const script = `
        const { handler, container } = require(${JSON.stringify(join(taskRoot, 'functions/api/lambda.cjs'))});
        (async () => {
          const results = [];
          for (const event of JSON.parse(process.env.EVENTS)) results.push(await handler(event, { awsRequestId: 'artifact-' + results.length }));
          await container.close();
          process.stdout.write('RESULT ' + JSON.stringify({ results, stats: container.stats }) + '\\n');
        })().catch((err) => { console.error(err); process.exit(1); });`;
      const run = spawnSync(process.execPath, ['--enable-source-maps', '-e', script], {
        cwd: taskRoot,
        encoding: 'utf8',
        env: { PATH: process.env.PATH, LAMBDA_TASK_ROOT: taskRoot, XRONOX_CONFIG_FILE: configFile, EVENTS: JSON.stringify(events), ...env },
        timeout: 60_000,
      });
      const line = run.stdout.split('\n').find((l) => l.startsWith('RESULT '));
      if (run.status !== 0 || !line) throw new Error(`the bundle failed (status ${run.status}):\n${run.stdout}\n${run.stderr}`);
      const { results, stats } = JSON.parse(line.slice('RESULT '.length)) as { results: Array<{ statusCode: number; body: string }>; stats: Record<string, number> };
      return { results: results.map((r) => ({ status: r.statusCode, json: JSON.parse(r.body) as Record<string, unknown> })), stats, logs: run.stdout };
    }

    it('serves a create and a read with the embedded SQLite store, where better-sqlite3 is installed', () => {
      const auth = { authorization: `Bearer ${key}` };
      const create = httpApiEvent({ method: 'POST', url: '/v1/tenants/acme/runtime/orders', headers: auth, body: { customer: 'ada' } });
      const first = invokeBundle([create], { NODE_PATH: join(REPO, 'node_modules') });
      expect(first.results[0]).toMatchObject({ status: 201, json: { ov: 0 } });
      const id = first.results[0]!.json.id as string;
      const read = httpApiEvent({ method: 'GET', url: `/v1/tenants/acme/runtime/orders/${id}`, headers: auth });
      const second = invokeBundle([read, read], { NODE_PATH: join(REPO, 'node_modules') });
      expect(second.results.map((r) => r.status)).toEqual([200, 200]);
      expect(second.results[1]!.json).toMatchObject({ id, data: { customer: 'ada' } });
      expect(second.stats).toMatchObject({ builds: 1, engines: 1, indexStores: 1, apps: 1 });
    });

    it('without better-sqlite3 (as on Lambda) it still loads, and a SQLite config fails with a message that says why', () => {
      const create = httpApiEvent({ method: 'POST', url: '/v1/tenants/acme/runtime/orders', headers: { authorization: `Bearer ${key}` }, body: {} });
      const run = invokeBundle([create], {});
      expect(run.results[0]).toMatchObject({ status: 500, json: { code: 'STORAGE_FAILED' } });
      expect(run.logs).toContain('The native module better-sqlite3 is not part of this bundle');
    });
  });
});
