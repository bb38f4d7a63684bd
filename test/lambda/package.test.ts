/**
 * `npx osls package` on the repository's serverless.yml (what CI runs before a deploy), and what
 * it produced: the CloudFormation template (functions, HTTP API routes, S3 notification,
 * schedules, IAM roles) and the functions' zips, each of which is then loaded and invoked as
 * Lambda would, with the events AWS would send.
 *
 * osls runs with no AWS credentials, and with every AWS endpoint and proxy pointed at a closed
 * port (test/lambda/osls.ts), so packaging provably needs no AWS account.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../core/config/file.js';
import type { JobReport } from '../../core/jobs/job.js';
import { initXronox } from '../../core/xronox.js';
import { hashApiKey } from '../../functions/api/api-keys.js';
import { tempDir } from '../support/temp.js';
import { describePostgres, dropSchemas, POSTGRES_URI, postgresAvailability, randomSchemaPrefix } from '../support/postgres.js';
import { httpApiEvent } from './http-api-event.js';
import { s3PutEvent, scheduledEvent } from './job-events.js';
import { type CloudFormationTemplate, oslsPackage, type Packaged, REPO, serviceDir, type ServiceDir } from './osls.js';
import { readZip } from './zip.js';

const STAGE = 'ci';
/** One bucket given on the command line; the other two keep their stage-named defaults. */
const BUCKETS = { records: 'acme-ci-records', versions: `xronox-${STAGE}-versions`, content: `xronox-${STAGE}-content` };
/** Written by the backup job only: the API's role never gets it. */
const BACKUPS_BUCKET = `xronox-${STAGE}-backups`;
/** The background jobs: function key, logical id, handler export, timeout (s), memory (MB), schedule. */
const JOBS = [
  { key: 'archive', id: 'ArchiveLambdaFunction', timeout: 60, memory: 512, schedule: undefined },
  { key: 'archiveSweep', id: 'ArchiveSweepLambdaFunction', timeout: 900, memory: 512, schedule: 'rate(15 minutes)' },
  { key: 'retention', id: 'RetentionLambdaFunction', timeout: 900, memory: 512, schedule: 'cron(30 3 * * ? *)' },
  { key: 'backup', id: 'BackupLambdaFunction', timeout: 900, memory: 1024, schedule: 'cron(0 2 * * ? *)' },
  { key: 'offload', id: 'OffloadLambdaFunction', timeout: 900, memory: 512, schedule: 'cron(0 4 * * ? *)' },
] as const;
/** The function the framework adds to attach the archive function's notification to the existing records bucket. */
const EXISTING_S3_FUNCTION = 'CustomDashresourceDashexistingDashs3LambdaFunction';
const PARAMETER = `/xronox/${STAGE}/config`;
/** CloudFormation pseudo parameters, as a stack in this region and account would resolve them. */
const PSEUDO = { 'AWS::Region': 'eu-west-1', 'AWS::AccountId': '123456789012', 'AWS::Partition': 'aws' } as Record<string, string>;

const pgAvailability = await postgresAvailability();
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

/** The inline policy statements of a role (each role here has exactly one inline policy and no managed ones). */
function roleStatements(t: CloudFormationTemplate, logicalId: string): Statement[] {
  const role = t.Resources[logicalId];
  expect(role?.Type).toBe('AWS::IAM::Role');
  expect(role!.Properties.ManagedPolicyArns).toBeUndefined();
  const policies = role!.Properties.Policies as Array<{ PolicyDocument: { Statement: Statement[] } }>;
  expect(policies).toHaveLength(1);
  return policies[0]!.PolicyDocument.Statement;
}

/** Unpacks a function's zip into `dir` (the task root Lambda would run it from). */
function extractZip(zipPath: string, dir: string): string {
  for (const entry of readZip(zipPath)) {
    mkdirSync(dirname(join(dir, entry.name)), { recursive: true });
    writeFileSync(join(dir, entry.name), entry.read());
  }
  return dir;
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
    // The API, the four jobs, and the framework's function for the existing bucket's notification.
    expect(functions.map(([name]) => name).sort()).toEqual(['ApiLambdaFunction', ...JOBS.map((j) => j.id), EXISTING_S3_FUNCTION].sort());
    const fn = packaged.template.Resources.ApiLambdaFunction!.Properties;
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
      XRONOX_POSTGRES_URI: '',
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
    // API Gateway may invoke the API function, and only it.
    const permissions = resources(t, 'AWS::Lambda::Permission').map(([, r]) => r.Properties);
    expect(permissions.filter((p) => p.Principal === 'apigateway.amazonaws.com')).toEqual([
      expect.objectContaining({ Action: 'lambda:InvokeFunction', FunctionName: { 'Fn::GetAtt': ['ApiLambdaFunction', 'Arn'] } }),
    ]);
    expect(permissions.filter((p) => p.Principal !== 'apigateway.amazonaws.com').every((p) => p.Principal === 'events.amazonaws.com')).toBe(true);
  });

  it('grants least privilege: S3 object actions and listing on the three configured buckets only, the one SSM parameter, KMS only through SSM for it', () => {
    const t = packaged.template;
    // The API's role, the jobs' role, and the framework's role for the existing-bucket notification.
    expect(resources(t, 'AWS::IAM::Role').map(([name]) => name).sort()).toEqual(['IamRoleCustomResourcesLambdaExecution', 'IamRoleLambdaExecution', 'XronoxJobsRole']);
    expect(resources(t, 'AWS::IAM::Policy')).toEqual([]);
    // The API function, and only it, runs with the framework's default role.
    const withDefaultRole = resources(t, 'AWS::Lambda::Function').filter(([, r]) => JSON.stringify(r.Properties.Role) === JSON.stringify({ 'Fn::GetAtt': ['IamRoleLambdaExecution', 'Arn'] }));
    expect(withDefaultRole.map(([name]) => name)).toEqual(['ApiLambdaFunction']);
    const statements = roleStatements(t, 'IamRoleLambdaExecution');

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
    expect(JSON.stringify(statements)).not.toContain(BACKUPS_BUCKET);

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
    // The jobs are functions of their own: none of their code is in the API's bundle.
    expect(map.sources.some((s) => s.includes('functions/jobs/'))).toBe(false);
    expect(map.sourcesContent).toBeUndefined();
  });

  describe('the packaged function, loaded from its zip', () => {
    const work = tempDir('xronox-artifact');
    const key = 'xrx_artifact-test-key';
    let taskRoot: string;
    let configFile: string;
    afterAll(() => work.cleanup());

    beforeAll(() => {
      taskRoot = extractZip(packaged.zipPath, join(work.path, 'task'));
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
      return { results: results.map((r) => ({ status: r.statusCode, json: JSON.parse(r.body) as Record<string, unknown> })), stats, logs: `${run.stdout}\n${run.stderr}` };
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

    describePostgres('with a PostgreSQL config', pgAvailability, () => {
      it('serves a create and a read, its connection string from XRONOX_POSTGRES_URI, with nothing but the zip (pg is bundled)', async () => {
        const schemaPrefix = randomSchemaPrefix();
        const file = join(work.path, 'config', 'xronox.postgres.json');
        const pg = { dbConnections: { pg: { postgresUri: 'ENV.XRONOX_POSTGRES_URI', schemaPrefix } }, localStorage: { basePath: 'blobs-pg', enabled: true } };
        const databases = { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'pg', dbName: 'rt_acme' }] } };
        writeFileSync(file, JSON.stringify({ ...pg, databases, api: { keys: [{ id: 'artifact', sha256: hashApiKey(key), role: 'write', tenants: ['acme'] }] } }));
        // No NODE_PATH: as on Lambda, only what the zip holds can be loaded.
        const env = { XRONOX_CONFIG_FILE: file, XRONOX_POSTGRES_URI: POSTGRES_URI };
        try {
          const auth = { authorization: `Bearer ${key}` };
          const first = invokeBundle([httpApiEvent({ method: 'POST', url: '/v1/tenants/acme/runtime/orders', headers: auth, body: { customer: 'ada' } })], env);
          expect(first.results[0]).toMatchObject({ status: 201, json: { ov: 0 } });
          const read = httpApiEvent({ method: 'GET', url: `/v1/tenants/acme/runtime/orders/${first.results[0]!.json.id as string}`, headers: auth });
          const second = invokeBundle([read, read], env);
          expect(second.results.map((r) => r.status)).toEqual([200, 200]);
          expect(second.results[1]!.json).toMatchObject({ data: { customer: 'ada' } });
          expect(second.stats).toMatchObject({ builds: 1, engines: 1, indexStores: 1, apps: 1 });
        } finally {
          await dropSchemas(schemaPrefix);
        }
      });
    });

    it('without better-sqlite3 (as on Lambda) it still loads, and a SQLite config fails with a message that says why', () => {
      const create = httpApiEvent({ method: 'POST', url: '/v1/tenants/acme/runtime/orders', headers: { authorization: `Bearer ${key}` }, body: {} });
      const run = invokeBundle([create], {});
      expect(run.results[0]).toMatchObject({ status: 500, json: { code: 'STORAGE_FAILED' } });
      // In the 500's request line (an error line, so on stderr), under its correlation id.
      const line = run.logs.split('\n').find((l) => l.startsWith('{"time"') && (JSON.parse(l) as { msg?: string }).msg === 'request');
      expect(JSON.parse(line!)).toMatchObject({ level: 'error', status: 500, awsRequestId: 'artifact-0', error: { code: 'STORAGE_FAILED' } });
      expect(line).toContain('The native module better-sqlite3 is not part of this bundle');
    });
  });
  describe('the background-job functions', () => {
    const t = () => packaged.template;

    it('declares archive, archiveSweep, retention and backup: the job handlers with their timeouts and memory, on the jobs role, with the API config source', () => {
      for (const job of JOBS) {
        const fn = t().Resources[job.id];
        expect(fn?.Type, job.key).toBe('AWS::Lambda::Function');
        expect(fn!.Properties).toMatchObject({
          Handler: `functions/jobs/handlers.${job.key}`,
          FunctionName: `xronox-${STAGE}-${job.key}`,
          Runtime: 'nodejs22.x',
          Architectures: ['arm64'],
          Timeout: job.timeout,
          MemorySize: job.memory,
          Role: { 'Fn::GetAtt': ['XronoxJobsRole', 'Arn'] },
        });
        expect(list(fn!.DependsOn ?? [])).toContain('XronoxJobsRole');
        // The same config source as the API: the stage's SSM parameter.
        expect((fn!.Properties.Environment as { Variables: Record<string, string> }).Variables).toEqual({
          NODE_OPTIONS: '--enable-source-maps',
          XRONOX_CONFIG_SSM: PARAMETER,
          XRONOX_CONFIG_FILE: '',
          XRONOX_POSTGRES_URI: '',
        });
      }
    });

    it('runs archiveSweep, retention and backup on EventBridge schedules (UTC), each rule targeting its function, which only that rule may invoke', () => {
      const rules = resources(t(), 'AWS::Events::Rule');
      const byTarget = Object.fromEntries(
        rules.map(([name, r]) => {
          const targets = r.Properties.Targets as Array<{ Arn: unknown }>;
          expect(targets, name).toHaveLength(1);
          expect(r.Properties.State).toBe('ENABLED');
          return [(targets[0]!.Arn as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0], { rule: name, expression: r.Properties.ScheduleExpression }];
        }),
      );
      const scheduled = JOBS.filter((j) => j.schedule);
      expect(Object.keys(byTarget).sort()).toEqual(scheduled.map((j) => j.id).sort());
      for (const job of scheduled) {
        expect(byTarget[job.id]!.expression, job.key).toBe(job.schedule);
        const permissions = resources(t(), 'AWS::Lambda::Permission').filter(([, p]) => JSON.stringify(p.Properties.FunctionName) === JSON.stringify({ 'Fn::GetAtt': [job.id, 'Arn'] }));
        expect(permissions.map(([, p]) => p.Properties), job.key).toEqual([
          { Action: 'lambda:InvokeFunction', Principal: 'events.amazonaws.com', FunctionName: { 'Fn::GetAtt': [job.id, 'Arn'] }, SourceArn: { 'Fn::GetAtt': [byTarget[job.id]!.rule, 'Arn'] } },
        ]);
      }
    });

    it("invokes archive on every current.json created in the (existing) records bucket, through the framework's custom resource, whose role is the template's only wildcard", () => {
      const notifications = resources(t(), 'Custom::S3');
      expect(notifications).toHaveLength(1);
      const [, notification] = notifications[0]!;
      // The bucket is not declared in this stack (`existing: true`): no AWS::S3::Bucket but the framework's deployment bucket.
      expect(resources(t(), 'AWS::S3::Bucket').map(([name]) => name)).toEqual(['ServerlessDeploymentBucket']);
      expect(notification.Properties).toEqual({
        ServiceToken: { 'Fn::GetAtt': [EXISTING_S3_FUNCTION, 'Arn'] },
        FunctionName: `xronox-${STAGE}-archive`,
        BucketName: BUCKETS.records,
        BucketConfigs: [{ Event: 's3:ObjectCreated:*', Rules: [{ Suffix: 'current.json' }] }],
      });
      expect(list(notification.DependsOn ?? [])).toEqual(expect.arrayContaining(['ArchiveLambdaFunction', EXISTING_S3_FUNCTION]));
      // S3's permission to invoke archive is added by that custom resource at deploy time
      // (lambda:AddPermission, principal s3.amazonaws.com, source the bucket), so it is not in the template.
      expect(resources(t(), 'AWS::Lambda::Permission').filter(([, p]) => p.Properties.Principal === 's3.amazonaws.com')).toEqual([]);

      // The custom resource's function: the framework's code, in its own zip, with its own role.
      const custom = t().Resources[EXISTING_S3_FUNCTION]!.Properties;
      expect(custom).toMatchObject({ Handler: 's3/handler.handler', Role: { 'Fn::GetAtt': ['IamRoleCustomResourcesLambdaExecution', 'Arn'] } });
      expect((custom.Code as { S3Key: string }).S3Key).toMatch(/\/custom-resources\.zip$/);
      expect(readZip(join(packaged.outDir, 'custom-resources.zip')).map((e) => e.name)).toContain('s3/handler.js');
      // Its role: read and replace the records bucket's notification configuration, and add or
      // remove a function's resource policy statement. The function ARN is a wildcard (the
      // framework's choice for every function of the account and region; it cannot be narrowed
      // from serverless.yml). It runs only while CloudFormation deploys or removes the stack.
      const statements = roleStatements(t(), 'IamRoleCustomResourcesLambdaExecution');
      expect(statements.map((s) => [list(s.Action).sort(), list(s.Resource).map(render)])).toEqual([
        [['s3:GetBucketNotification', 's3:PutBucketNotification'], [`arn:aws:s3:::${BUCKETS.records}`]],
        [['lambda:AddPermission', 'lambda:RemovePermission'], ['arn:aws:lambda:eu-west-1:123456789012:function:*']],
      ]);
    });

    it('gives the jobs role (and only it) the backups bucket: objects and listing on the four buckets, the config parameter as the API has it, its own four log groups', () => {
      const role = t().Resources.XronoxJobsRole!.Properties;
      expect(role.AssumeRolePolicyDocument).toEqual({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
      });
      const statements = roleStatements(t(), 'XronoxJobsRole');
      for (const s of statements) {
        expect(s.Effect).toBe('Allow');
        for (const action of list(s.Action)) expect(action, `no wildcard actions (${s.Sid})`).not.toMatch(/\*/);
        for (const r of list(s.Resource)) expect(render(r), `no "*" resource (${s.Sid})`).not.toBe('*');
      }
      const bySid = Object.fromEntries(statements.map((s) => [s.Sid, [list(s.Action).sort(), list(s.Resource).map(render).sort()]]));
      const buckets = [...Object.values(BUCKETS), BACKUPS_BUCKET];
      const logGroups = JOBS.map((j) => `arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/xronox-${STAGE}-${j.key}:*`);
      expect(bySid).toEqual({
        XronoxJobsObjects: [['s3:AbortMultipartUpload', 's3:DeleteObject', 's3:GetObject', 's3:PutObject'], buckets.map((b) => `arn:aws:s3:::${b}/*`).sort()],
        XronoxJobsListBuckets: [['s3:ListBucket'], buckets.map((b) => `arn:aws:s3:::${b}`).sort()],
        XronoxConfigParameter: [['ssm:GetParameter'], [`arn:aws:ssm:eu-west-1:123456789012:parameter${PARAMETER}`]],
        // Key ARN wildcard, as for the API: restricted to decryptions SSM makes for the one parameter (below).
        XronoxConfigDecrypt: [['kms:Decrypt'], ['arn:aws:kms:eu-west-1:123456789012:key/*']],
        // The log streams of the four functions' own log groups (the framework creates the groups).
        XronoxJobsLogs: [['logs:CreateLogStream', 'logs:PutLogEvents'], logGroups.sort()],
      });
      // Word for word the API role's statements for the config (one YAML anchor in serverless.yml).
      const api = roleStatements(t(), 'IamRoleLambdaExecution');
      for (const sid of ['XronoxConfigParameter', 'XronoxConfigDecrypt']) {
        expect(statements.find((s) => s.Sid === sid)).toEqual(api.find((s) => s.Sid === sid));
      }
      // No other role may touch the backups bucket.
      for (const [name] of resources(t(), 'AWS::IAM::Role').filter(([n]) => n !== 'XronoxJobsRole')) {
        expect(JSON.stringify(t().Resources[name]), name).not.toContain(BACKUPS_BUCKET);
      }
    });

    it('zips, for each job, only the one jobs bundle and its source map, without the HTTP app or a native addon', () => {
      const bundles = JOBS.map((job) => {
        const entries = readZip(packaged.zipOf(job.key));
        expect(entries.map((e) => e.name).sort(), job.key).toEqual(['functions/jobs/handlers.cjs', 'functions/jobs/handlers.cjs.map']);
        return entries.find((e) => e.name === 'functions/jobs/handlers.cjs')!.read();
      });
      // One build, zipped once per function.
      for (const b of bundles.slice(1)) expect(b.equals(bundles[0]!)).toBe(true);
      const bundle = bundles[0]!.toString('utf8');
      expect(bundle.trimEnd().endsWith('//# sourceMappingURL=handlers.cjs.map')).toBe(true);
      expect(bundle.split('\n').length).toBeLessThan(bundle.length / 2000);
      // better-sqlite3 stays out, required lazily, once (infra/esbuild/plugins.cjs).
      expect(bundle.match(/require\("better-sqlite3"\)/g)).toHaveLength(1);
      expect(bundle).not.toContain('better_sqlite3.node');
      const entries = readZip(packaged.zipOf('archive'));
      const map = JSON.parse(entries.find((e) => e.name === 'functions/jobs/handlers.cjs.map')!.read().toString('utf8')) as { sources: string[] };
      const ours = map.sources.filter((s) => !s.includes('node_modules/')).map((s) => s.replace(/^(\.\.\/)+/, ''));
      expect(ours.filter((s) => s.startsWith('functions/')).sort()).toEqual(['functions/api/container.ts', 'functions/jobs/handlers.ts', 'functions/observability/telemetry.ts']);
      expect(map.sources.some((s) => /node_modules\/(hono|@hono|jose)\//.test(s))).toBe(false);
    });

    describe('each job function, loaded from its own zip and invoked with the event AWS sends', () => {
      const work = tempDir('xronox-job-artifacts');
      const DB = 'rt_jobs';
      let configFile: string;
      let blobs: string;
      const ids: string[] = [];
      /** The instant of the scheduled events (the backup's day, the sweep's and retention's cut): set once the records are written. */
      let at: Date;
      afterAll(() => work.cleanup());

      beforeAll(async () => {
        // The embedded default, with versions left to the jobs (deferred), swept at once, two kept per record.
        configFile = join(work.path, 'config', 'xronox.config.json');
        mkdirSync(dirname(configFile), { recursive: true });
        writeFileSync(
          configFile,
          JSON.stringify({
            dbConnections: { local: { sqlitePath: 'xronox.sqlite' } },
            localStorage: { basePath: 'blobs', enabled: true },
            databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: DB }] } },
            jobs: { archive: { mode: 'deferred', sweepAfterMinutes: 0 } },
            retention: { ver: { maxPerItem: 2 } },
          }),
        );
        blobs = join(dirname(configFile), 'blobs', DB);
        // Two records with three versions each, written as the API writes them; none archived yet.
        const x = initXronox(loadConfigFile(configFile));
        try {
          const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
          for (const customer of ['ada', 'grace']) {
            const { id } = await orders.create({ customer, total: 1 });
            await orders.update(id, { customer, total: 2 }, 0);
            await orders.update(id, { customer, total: 3 }, 1);
            ids.push(id);
          }
          await x.flush();
        } finally {
          await x.shutdown();
        }
        // The schedules fire after the writes: the next whole second (an event's `time` has no milliseconds).
        at = new Date(Math.ceil((Date.now() + 1) / 1000) * 1000);
      });

      const versionFiles = (id: string) => (existsSync(join(blobs, 'versions', 'orders', id)) ? readdirSync(join(blobs, 'versions', 'orders', id)).sort() : []);

      interface Outcome {
        results: Array<{ ok?: JobReport; error?: string }>;
        stats: Record<string, number>;
        logs: string;
      }

      /**
       * Unzips the function's own zip into a fresh task root, and in a fresh Node process (a cold
       * container) resolves the template's Handler there as the Lambda Node.js runtime does
       * (`<file>.js|.mjs|.cjs`, then the export), and invokes it once per event, with a context
       * whose deadline is the template's Timeout.
       */
      function invokeJob(key: string, events: unknown[], env: Record<string, string> = { NODE_PATH: join(REPO, 'node_modules') }): Outcome {
        const job = JOBS.find((j) => j.key === key)!;
        const fn = t().Resources[job.id]!.Properties;
        const taskRoot = extractZip(packaged.zipOf(key), join(work.path, `task-${key}-${Math.random().toString(36).slice(2)}`));
        const handler = fn.Handler as string;
        const script = `
          const { existsSync } = require('node:fs');
          const { join } = require('node:path');
          const handler = process.env.HANDLER;
          const dot = handler.lastIndexOf('.');
          const base = join(process.env.LAMBDA_TASK_ROOT, handler.slice(0, dot));
          const file = ['.js', '.mjs', '.cjs'].map((ext) => base + ext).find((f) => existsSync(f));
          if (!file) throw new Error('Runtime.ImportModuleError: cannot find ' + base);
          const mod = require(file);
          const fn = mod[handler.slice(dot + 1)];
          if (typeof fn !== 'function') throw new Error('Runtime.HandlerNotFound: ' + handler);
          (async () => {
            const results = [];
            for (const event of JSON.parse(process.env.EVENTS)) {
              const deadline = Date.now() + Number(process.env.TIMEOUT_S) * 1000;
              const context = {
                awsRequestId: 'job-' + results.length, functionName: process.env.FUNCTION_NAME, functionVersion: '$LATEST',
                invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:' + process.env.FUNCTION_NAME,
                memoryLimitInMB: process.env.MEMORY_MB, logGroupName: '/aws/lambda/' + process.env.FUNCTION_NAME,
                logStreamName: '2026/01/01/[$LATEST]0123456789abcdef', callbackWaitsForEmptyEventLoop: true,
                getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
              };
              try {
                results.push({ ok: await fn(event, context) });
              } catch (err) {
                results.push({ error: String(err && err.message) });
              }
            }
            await mod.container.close();
            process.stdout.write('RESULT ' + JSON.stringify({ results, stats: mod.container.stats }) + '\\n');
          })().catch((err) => { console.error(err); process.exit(1); });`;
        const run = spawnSync(process.execPath, ['--enable-source-maps', '-e', script], {
          cwd: taskRoot,
          encoding: 'utf8',
          env: {
            PATH: process.env.PATH,
            LAMBDA_TASK_ROOT: taskRoot,
            HANDLER: handler,
            FUNCTION_NAME: fn.FunctionName as string,
            TIMEOUT_S: String(fn.Timeout),
            MEMORY_MB: String(fn.MemorySize),
            ...(fn.Environment as { Variables: Record<string, string> }).Variables,
            // What the deployed function reads from SSM, from a file here.
            XRONOX_CONFIG_FILE: configFile,
            EVENTS: JSON.stringify(events),
            ...env,
          },
          timeout: 60_000,
        });
        const line = run.stdout.split('\n').find((l) => l.startsWith('RESULT '));
        if (run.status !== 0 || !line) throw new Error(`the ${key} bundle failed (status ${run.status}):\n${run.stdout}\n${run.stderr}`);
        const { results, stats } = JSON.parse(line.slice('RESULT '.length)) as Omit<Outcome, 'logs'>;
        return { results, stats, logs: `${run.stdout}\n${run.stderr}` };
      }

      it('archive: an S3 notification for a current.json (delivered twice, as S3 may) archives that record\'s pending versions, once; a scheduled event is refused', () => {
        const [ada] = ids;
        // In a folder store, a database's "bucket" is its folder, named like the database.
        const notification = s3PutEvent(DB, [`records/orders/${ada}/current.json`, `records/orders/${ada}/current.json`]);
        const out = invokeJob('archive', [scheduledEvent(at, 'wrong-target'), notification]);
        expect(out.results[0]!.error).toMatch(/takes S3 events|not an S3 event record/);
        expect(out.results[1]!.error).toBeUndefined();
        expect(out.results[1]!.ok).toMatchObject({ job: 'archive', complete: true, counts: { events: 2, duplicateEvents: 1, archivedRecords: 1, archivedVersions: 3 } });
        expect(versionFiles(ada!)).toEqual(['v0.json', 'v1.json', 'v2.json']);
        expect(versionFiles(ids[1]!)).toEqual([]);
        // One container: one engine for both invocations (the refused event built nothing twice).
        expect(out.stats).toMatchObject({ engines: 1, failedBuilds: 0 });
      });

      it('archiveSweep: its scheduled event archives the versions no S3 event covered; an S3 event is refused', () => {
        const out = invokeJob('archiveSweep', [s3PutEvent(DB, ['records/orders/x/current.json']), scheduledEvent(at, `xronox-${STAGE}-archiveSweep`)]);
        expect(out.results[0]!.error).toMatch(/takes EventBridge scheduled events/);
        expect(out.results[1]!.ok).toMatchObject({ job: 'archive', complete: true, databases: { total: 1, done: 1 }, counts: { archivedRecords: 1, archivedVersions: 3 } });
        expect(versionFiles(ids[1]!)).toEqual(['v0.json', 'v1.json', 'v2.json']);
      });

      it("backup: its scheduled event writes the day's snapshot of every record and version to the backups location", () => {
        const out = invokeJob('backup', [scheduledEvent(at, `xronox-${STAGE}-backup`)]);
        expect(out.results[0]!.ok).toMatchObject({ job: 'backup', complete: true, counts: { backedUpCollections: 1, backedUpRecords: 2, backedUpVersions: 6 } });
        const day = at.toISOString().slice(0, 10);
        // One snapshot per run, named after the schedule's time (`T020000.000Z`), its manifest written last.
        const snapshot = `T${at.toISOString().slice(11, 19).replaceAll(':', '')}.${at.toISOString().slice(20, 23)}Z`;
        expect(existsSync(join(blobs, 'backups', 'orders', day, DB, snapshot, 'manifest.json'))).toBe(true);
      });

      it('retention: its scheduled event prunes each record to the versions the config keeps', () => {
        const out = invokeJob('retention', [scheduledEvent(at, `xronox-${STAGE}-retention`)]);
        expect(out.results[0]!.ok).toMatchObject({ job: 'retention', complete: true, counts: { prunedRecords: 2, prunedVersions: 2 } });
        for (const id of ids) expect(versionFiles(id)).toEqual(['v1.json', 'v2.json']);
      });

      it('without better-sqlite3 (as on Lambda) the bundle still loads, and a SQLite config fails the run with a message that says why', () => {
        const out = invokeJob('retention', [scheduledEvent(at, `xronox-${STAGE}-retention`)], {});
        expect(out.results[0]!.error).toBeDefined();
        expect(`${out.results[0]!.error}\n${out.logs}`).toContain('The native module better-sqlite3 is not part of this bundle');
      });
    });
  });
});
