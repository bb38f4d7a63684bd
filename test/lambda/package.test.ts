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
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../core/config/file.js';
import type { JobReport } from '../../core/jobs/job.js';
import { initXronox } from '../../core/xronox.js';
import { hashApiKey } from '../../functions/api/api-keys.js';
import { tempDir } from '../support/temp.js';
import { describePostgres, dropSchemas, POSTGRES_URI, postgresAvailability, randomSchemaPrefix } from '../support/postgres.js';
import { httpApiEvent } from './http-api-event.js';
import { writeHandlerConfig } from './handler-config.js';
import { s3PutEvent, scheduledEvent } from './job-events.js';
import { type CloudFormationTemplate, oslsPackage, type Packaged, REPO, serviceDir, type ServiceDir } from './osls.js';
import { node22 } from '../support/node22.js';
import { readZip } from './zip.js';
import { CORS_ALLOW_HEADERS, CORS_ALLOW_METHODS, CORS_EXPOSE_HEADERS } from '../../functions/api/cors.js';

const STAGE = 'ci';
/** One bucket given on the command line; the other two keep their stage-named defaults. */
const BUCKETS = { records: 'acme-ci-records', versions: `xronox-${STAGE}-versions`, content: `xronox-${STAGE}-content` };
/** Written by the backup job only: the API's role never gets it. */
const BACKUPS_BUCKET = `xronox-${STAGE}-backups`;
/** The background jobs: function key, logical id, its role, timeout (s), memory (MB), schedule. */
const JOBS = [
  { key: 'archive', id: 'ArchiveLambdaFunction', role: 'XronoxArchiveRole', timeout: 60, memory: 512, schedule: undefined },
  { key: 'archiveSweep', id: 'ArchiveSweepLambdaFunction', role: 'XronoxArchiveSweepRole', timeout: 900, memory: 512, schedule: 'rate(15 minutes)' },
  { key: 'retention', id: 'RetentionLambdaFunction', role: 'XronoxRetentionRole', timeout: 900, memory: 512, schedule: 'cron(30 3 * * ? *)' },
  { key: 'backup', id: 'BackupLambdaFunction', role: 'XronoxBackupRole', timeout: 900, memory: 1024, schedule: 'cron(0 2 * * ? *)' },
  { key: 'offload', id: 'OffloadLambdaFunction', role: 'XronoxOffloadRole', timeout: 900, memory: 512, schedule: 'cron(0 4 * * ? *)' },
  // Fan-out: the coordinator's schedule is off unless the fanOut param is 'true'.
  { key: 'backupFanOut', id: 'BackupFanOutLambdaFunction', role: 'XronoxBackupFanOutRole', timeout: 60, memory: 512, schedule: 'cron(0 2 * * ? *)' },
  { key: 'jobWorker', id: 'JobWorkerLambdaFunction', role: 'XronoxJobWorkerRole', timeout: 900, memory: 1024, schedule: undefined },
] as const;
/** The function the framework adds to attach the archive function's notification to the existing records bucket. */
const EXISTING_S3_FUNCTION = 'CustomDashresourceDashexistingDashs3LambdaFunction';
const PARAMETER = `/xronox/${STAGE}/config`;
/** CloudFormation pseudo parameters, as a stack in this region and account would resolve them. */
const PSEUDO = { 'AWS::Region': 'eu-west-1', 'AWS::AccountId': '123456789012', 'AWS::Partition': 'aws', 'AWS::URLSuffix': 'amazonaws.com' } as Record<string, string>;

const pgAvailability = await postgresAvailability();

/** The major version of Node.js the template's functions run on (`Runtime: nodejs22.x`). */
function lambdaNodeMajor(t: CloudFormationTemplate): string {
  const runtime = t.Resources.ApiLambdaFunction!.Properties.Runtime as string;
  const major = /^nodejs(\d+)\.x$/.exec(runtime)?.[1];
  if (!major) throw new Error(`not a Node.js runtime: ${runtime}`);
  return major;
}

/** `process.version` in a bundle's run, which prints it on a line `NODE <version>`. */
function nodeVersionIn(logs: string): string | undefined {
  return /^NODE (v\S+)$/m.exec(logs)?.[1];
}

/**
 * The Node.js the bundles run on here: the tests' own (Node 20), and the functions' runtime on
 * AWS (Node 22: the binary of test/support/node22.ts; the test fails, naming the install step,
 * where it is missing). `version` is what `process.version` must say inside the run.
 */
const RUNTIMES = [
  { name: `Node ${process.versions.node}, the tests' own`, node: () => process.execPath, version: () => new RegExp(`^v${process.versions.node.replaceAll('.', '\\.')}$`) },
  { name: "Node 22, the functions' runtime", node: node22, version: () => new RegExp(`^v${lambdaNodeMajor(packaged.template)}\\.`) },
] as const;
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

/** Two `orders` records of tenant acme with three versions each, written as the API writes them and synced; their ids. */
async function seedOrders(configFile: string): Promise<string[]> {
  const ids: string[] = [];
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
  return ids;
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
  // A resource of this stack: named by what it is, as a reader of the template would.
  if ('Fn::GetAtt' in v) return `GetAtt:${(v['Fn::GetAtt'] as string[]).join('.')}`;
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
      // One service name per stage (its metrics apart from other stages'); tracing off by default.
      POWERTOOLS_SERVICE_NAME: `xronox-${STAGE}`,
      POWERTOOLS_METRICS_NAMESPACE: 'Xronox',
      XRONOX_TRACING: 'false',
      // No corsOrigins param: no origin (the HTTP API has no CORS configuration either).
      XRONOX_CORS_ORIGINS: '',
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
    // The API's role, one role per job, and the framework's role for the existing-bucket notification.
    expect(resources(t, 'AWS::IAM::Role').map(([name]) => name).sort()).toEqual(['IamRoleCustomResourcesLambdaExecution', 'IamRoleLambdaExecution', ...JOBS.map((j) => j.role)].sort());
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

  it('writes every ARN with the partition (arn:${AWS::Partition}:…), never arn:aws:, so the stack deploys to aws-cn and aws-us-gov too', () => {
    const text = JSON.stringify(packaged.template);
    expect(text).not.toMatch(/arn:aws[:-]/);
    // The data buckets, the parameter, the key and the logs: each role's ARNs go through Fn::Sub with the partition.
    for (const [name] of resources(packaged.template, 'AWS::IAM::Role').filter(([n]) => n.startsWith('Xronox') || n === 'IamRoleLambdaExecution')) {
      for (const s of roleStatements(packaged.template, name)) {
        for (const r of list(s.Resource)) {
          if (typeof r === 'object' && r !== null && 'Fn::GetAtt' in r) continue;
          expect((r as { 'Fn::Sub'?: string })['Fn::Sub'], `${name} ${s.Sid}`).toMatch(/^arn:\$\{AWS::Partition\}:/);
        }
      }
    }
  });

  it('keeps every log group for logRetentionInDays (default 30): each function\'s, and the HTTP API access log', () => {
    const groups = Object.fromEntries(resources(packaged.template, 'AWS::Logs::LogGroup').map(([name, r]) => [name, r.Properties]));
    // Every function that may log (the framework's custom-resource function has no logs permission) has its group.
    expect(Object.keys(groups).sort()).toEqual(['ApiLogGroup', 'HttpApiLogGroup', ...JOBS.map((j) => `${j.id.replace(/LambdaFunction$/, '')}LogGroup`)].sort());
    for (const [name, group] of Object.entries(groups)) expect(group.RetentionInDays, name).toBe(30);
    expect(groups.HttpApiLogGroup!.LogGroupName).toBe(`/aws/http-api/xronox-${STAGE}`);
  });

  it('writes HTTP API access logs: one JSON line per request, with the request ids, route, status and latencies', () => {
    const stages = resources(packaged.template, 'AWS::ApiGatewayV2::Stage');
    expect(stages).toHaveLength(1);
    const [, stage] = stages[0]!;
    const settings = stage.Properties.AccessLogSettings as { DestinationArn: unknown; Format: string };
    expect(settings.DestinationArn).toEqual({ 'Fn::GetAtt': ['HttpApiLogGroup', 'Arn'] });
    expect(list(stage.DependsOn ?? [])).toContain('HttpApiLogGroup');
    // API Gateway fills in the $context variables; the rest is JSON as written.
    const format = JSON.parse(settings.Format) as Record<string, string>;
    expect(format).toMatchObject({
      requestId: '$context.requestId',
      integrationRequestId: '$context.integration.requestId',
      routeKey: '$context.routeKey',
      path: '$context.path',
      status: '$context.status',
      responseLatency: '$context.responseLatency',
      integrationError: '$context.integrationErrorMessage',
    });
    for (const value of Object.values(format)) expect(value).toMatch(/^\$context\.[A-Za-z.]+$/);
  });

  it('has no CORS configuration by default: the corsOrigins param is empty', () => {
    expect(resources(packaged.template, 'AWS::ApiGatewayV2::Api')[0]![1].Properties.CorsConfiguration).toBeUndefined();
  });

  describe('with the corsOrigins, alarmTopicArn and logRetentionInDays params', () => {
    const ORIGINS = 'https://app.example.com, http://localhost:5173';
    const TOPIC = 'arn:aws-us-gov:sns:us-gov-west-1:123456789012:xronox-ops';
    let other: ServiceDir;
    let withParams: Packaged;
    beforeAll(() => {
      other = serviceDir();
      withParams = oslsPackage(other, { stage: STAGE, params: { corsOrigins: ORIGINS, alarmTopicArn: TOPIC, logRetentionInDays: '14', tracing: 'true' } });
    }, 300_000);
    afterAll(() => other?.cleanup());

    it('tracing on: every function traced by Lambda and told to add its segments, each job role allowed to send them; off by default', () => {
      const xray = (template: CloudFormationTemplate, role: string) =>
        ((template.Resources[role]!.Properties.Policies as Array<{ PolicyDocument: { Statement: Array<{ Sid?: string; Action: string[] }> } }>)[0]!.PolicyDocument.Statement).filter((s) => s.Sid === 'XRayTraces');
      for (const id of ['ApiLambdaFunction', ...JOBS.map((j) => j.id)]) {
        const on = withParams.template.Resources[id]!.Properties;
        expect(on.TracingConfig, id).toEqual({ Mode: 'Active' });
        expect((on.Environment as { Variables: Record<string, string> }).Variables.XRONOX_TRACING, id).toBe('true');
        const off = packaged.template.Resources[id]!.Properties;
        expect((off.TracingConfig as { Mode?: string } | undefined)?.Mode ?? 'PassThrough', id).toBe('PassThrough');
      }
      for (const job of JOBS) {
        expect(xray(withParams.template, job.role)).toEqual([{ Sid: 'XRayTraces', Effect: 'Allow', Action: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], Resource: '*' }]);
        expect(xray(packaged.template, job.role)).toEqual([]);
      }
    });

    it('lets the HTTP API answer those origins (preflight included) and gives the app the same list, normalised', () => {
      const api = resources(withParams.template, 'AWS::ApiGatewayV2::Api')[0]![1].Properties;
      expect(api.CorsConfiguration).toEqual({
        AllowOrigins: ['https://app.example.com', 'http://localhost:5173'],
        // What the app's own CORS allows (functions/api/cors.ts), so a browser gets the same answer
        // from API Gateway as from the app alone: PATCH (enrich) included.
        AllowMethods: CORS_ALLOW_METHODS,
        AllowHeaders: CORS_ALLOW_HEADERS.map((h) => h.toLowerCase()),
        ExposeHeaders: CORS_EXPOSE_HEADERS.map((h) => h.toLowerCase()),
        MaxAge: 3600,
      });
      const env = (withParams.template.Resources.ApiLambdaFunction!.Properties.Environment as { Variables: Record<string, string> }).Variables;
      expect(env.XRONOX_CORS_ORIGINS).toBe('https://app.example.com,http://localhost:5173');
      // The jobs have no use for it.
      for (const job of JOBS) expect((withParams.template.Resources[job.id]!.Properties.Environment as { Variables: Record<string, string> }).Variables).not.toHaveProperty('XRONOX_CORS_ORIGINS');
    });

    it('notifies the topic from both alarms, and keeps every log group 14 days', () => {
      for (const name of ['ArchiveDeadLetterAlarm', 'ArchiveErrorsAlarm']) {
        const alarm = withParams.template.Resources[name]!.Properties;
        expect(alarm.AlarmActions, name).toEqual({ 'Fn::If': ['HasAlarmTopic', [TOPIC], { Ref: 'AWS::NoValue' }] });
        expect(alarm.OKActions, name).toEqual({ 'Fn::If': ['HasAlarmTopic', [TOPIC], { Ref: 'AWS::NoValue' }] });
      }
      expect(withParams.template.Conditions).toEqual({ HasAlarmTopic: { 'Fn::Not': [{ 'Fn::Equals': [TOPIC, ''] }] } });
      const groups = resources(withParams.template, 'AWS::Logs::LogGroup');
      expect(groups).toHaveLength(2 + JOBS.length);
      for (const [name, group] of groups) expect(group.Properties.RetentionInDays, name).toBe(14);
    });

    it('refuses, before building anything, what the app would refuse at its first request: a path (a trailing slash never matches a browser\'s Origin), a default port', () => {
      expect(() => oslsPackage(other, { stage: STAGE, params: { corsOrigins: 'https://app.example.com/' } })).toThrow(
        /The param corsOrigins holds "https:\/\/app\.example\.com\/", which is not an origin/,
      );
      expect(() => oslsPackage(other, { stage: STAGE, params: { corsOrigins: 'https://app.example.com:443' } })).toThrow(
        /The param corsOrigins holds "https:\/\/app\.example\.com:443", which is not an origin/,
      );
    }, 240_000);
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
      mkdirSync(join(work.path, 'config'));
      configFile = writeHandlerConfig(join(work.path, 'config'), { tenant: 'acme', dbName: 'rt_acme', keyId: 'artifact', key });
    });

    /** Loads the bundle in a fresh process of `node` (like a cold container) and invokes its handler once per event. */
    function invokeBundle(events: unknown[], env: Record<string, string>, node = process.execPath) {
      const script = `
        const { handler, container } = require(${JSON.stringify(join(taskRoot, 'functions/api/lambda.cjs'))});
        (async () => {
          const results = [];
          for (const event of JSON.parse(process.env.EVENTS)) results.push(await handler(event, { awsRequestId: 'artifact-' + results.length }));
          await container.close();
          process.stdout.write('NODE ' + process.version + '\\n');
          process.stdout.write('RESULT ' + JSON.stringify({ results, stats: container.stats }) + '\\n');
        })().catch((err) => { console.error(err); process.exit(1); });`;
      const run = spawnSync(node, ['--enable-source-maps', '-e', script], {
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
      it.each(RUNTIMES)('on $name: serves a create and a read, its connection string from XRONOX_POSTGRES_URI, with nothing but the zip (pg is bundled)', async (runtime) => {
        const node = runtime.node();
        const schemaPrefix = randomSchemaPrefix();
        const file = join(work.path, 'config', `xronox.postgres-${schemaPrefix}.json`);
        const pg = { dbConnections: { pg: { postgresUri: 'ENV.XRONOX_POSTGRES_URI', schemaPrefix } }, localStorage: { basePath: 'blobs-pg', enabled: true } };
        const databases = { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'pg', dbName: 'rt_acme' }] } };
        writeFileSync(file, JSON.stringify({ ...pg, databases, api: { keys: [{ id: 'artifact', sha256: hashApiKey(key), role: 'write', tenants: ['acme'] }] } }));
        // No NODE_PATH: as on Lambda, only what the zip holds can be loaded.
        const env = { XRONOX_CONFIG_FILE: file, XRONOX_POSTGRES_URI: POSTGRES_URI };
        try {
          const auth = { authorization: `Bearer ${key}` };
          const first = invokeBundle([httpApiEvent({ method: 'POST', url: '/v1/tenants/acme/runtime/orders', headers: auth, body: { customer: 'ada' } })], env, node);
          expect(nodeVersionIn(first.logs)).toMatch(runtime.version());
          expect(first.results[0]).toMatchObject({ status: 201, json: { ov: 0 } });
          const read = httpApiEvent({ method: 'GET', url: `/v1/tenants/acme/runtime/orders/${first.results[0]!.json.id as string}`, headers: auth });
          const second = invokeBundle([read, read], env, node);
          expect(nodeVersionIn(second.logs)).toMatch(runtime.version());
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

    it('declares archive, archiveSweep, retention, backup and offload: the job handlers with their timeouts and memory, each on its own role, with the API config source', () => {
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
          Role: { 'Fn::GetAtt': [job.role, 'Arn'] },
        });
        expect(list(fn!.DependsOn ?? [])).toContain(job.role);
        // The same config source as the API: the stage's SSM parameter.
        expect((fn!.Properties.Environment as { Variables: Record<string, string> }).Variables).toEqual({
          NODE_OPTIONS: '--enable-source-maps',
          XRONOX_CONFIG_SSM: PARAMETER,
          XRONOX_CONFIG_FILE: '',
          XRONOX_POSTGRES_URI: '',
          POWERTOOLS_SERVICE_NAME: `xronox-${STAGE}`,
          POWERTOOLS_METRICS_NAMESPACE: 'Xronox',
          XRONOX_TRACING: 'false',
          ...(job.key === 'backupFanOut' || job.key === 'jobWorker' ? { XRONOX_JOBS_QUEUE_URL: { Ref: 'JobsQueue' } } : {}),
        });
      }
    });

    it('runs archiveSweep, retention and backup on EventBridge schedules (UTC), each rule targeting its function, which only that rule may invoke', () => {
      const rules = resources(t(), 'AWS::Events::Rule');
      const byTarget = Object.fromEntries(
        rules.map(([name, r]) => {
          const targets = r.Properties.Targets as Array<{ Arn: unknown }>;
          expect(targets, name).toHaveLength(1);
          const fanOut = JSON.stringify(targets[0]!.Arn).includes('BackupFanOut');
          expect(r.Properties.State, name).toBe(fanOut ? 'DISABLED' : 'ENABLED');
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

    /**
     * What each job's role may do, as "action resource" pairs (resources rendered), read off
     * core/jobs independently of infra/serverless/iam.cjs: r = s3:GetObject, w = s3:PutObject and
     * s3:AbortMultipartUpload, d = s3:DeleteObject on the bucket's objects; l = s3:ListBucket on
     * the bucket.
     */
    const JOB_BUCKETS: Record<(typeof JOBS)[number]['key'], Partial<Record<'records' | 'versions' | 'content' | 'backups', string>>> = {
      archive: { versions: 'rwdl' },
      archiveSweep: { records: 'rwdl', versions: 'rwdl', content: 'wdl' },
      retention: { records: 'dl', versions: 'd', content: 'dl' },
      backup: { records: 'rl', versions: 'rl', backups: 'rwdl' },
      offload: { records: 'rwl' },
      backupFanOut: {},
      jobWorker: { records: 'rwdl', versions: 'rwdl', content: 'wdl', backups: 'rwdl' },
    };
    const BUCKET_NAMES = { ...BUCKETS, backups: BACKUPS_BUCKET };

    function bucketGrants(kind: keyof typeof BUCKET_NAMES, what: string): string[] {
      const objects = `arn:aws:s3:::${BUCKET_NAMES[kind]}/*`;
      return [
        ...(what.includes('r') ? [`s3:GetObject ${objects}`] : []),
        ...(what.includes('w') ? [`s3:PutObject ${objects}`, `s3:AbortMultipartUpload ${objects}`] : []),
        ...(what.includes('d') ? [`s3:DeleteObject ${objects}`] : []),
        ...(what.includes('l') ? [`s3:ListBucket arn:aws:s3:::${BUCKET_NAMES[kind]}`] : []),
      ];
    }

    /** A role's statements as sorted "action resource" pairs, every resource rendered. */
    function grants(statements: Statement[]): string[] {
      return statements.flatMap((s) => list(s.Action).flatMap((a) => list(s.Resource).map((r) => `${a} ${render(r)}`))).sort();
    }

    it('gives each job a role of its own, allowed exactly what that job does: its buckets, the config parameter as the API has it, its own log group', () => {
      const roles = resources(t(), 'AWS::IAM::Role').map(([name]) => name);
      for (const job of JOBS) {
        expect(roles, job.key).toContain(job.role);
        const role = t().Resources[job.role]!.Properties;
        expect(role.AssumeRolePolicyDocument).toEqual({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
        });
        const statements = roleStatements(t(), job.role);
        for (const s of statements) {
          expect(s.Effect).toBe('Allow');
          for (const action of list(s.Action)) expect(action, `no wildcard actions (${job.role} ${s.Sid})`).not.toMatch(/\*/);
          for (const r of list(s.Resource)) expect(render(r), `no "*" resource (${job.role} ${s.Sid})`).not.toBe('*');
        }
        const expected = [
          ...Object.entries(JOB_BUCKETS[job.key]).flatMap(([kind, what]) => bucketGrants(kind as keyof typeof BUCKET_NAMES, what)),
          `ssm:GetParameter arn:aws:ssm:eu-west-1:123456789012:parameter${PARAMETER}`,
          // Key ARN wildcard, as for the API: restricted to decryptions SSM makes for the one parameter (checked below).
          'kms:Decrypt arn:aws:kms:eu-west-1:123456789012:key/*',
          // The log streams of its own log group (the framework creates the group).
          `logs:CreateLogStream arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/xronox-${STAGE}-${job.key}:*`,
          `logs:PutLogEvents arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/xronox-${STAGE}-${job.key}:*`,
          // The archive function's failed events go to its dead-letter queue, sent with its own role.
          ...(job.key === 'archive' ? ['sqs:SendMessage GetAtt:ArchiveDeadLetterQueue.Arn'] : []),
          ...(job.key === 'backupFanOut' ? ['sqs:SendMessage GetAtt:JobsQueue.Arn'] : []),
          ...(job.key === 'jobWorker'
            ? ['ReceiveMessage', 'DeleteMessage', 'GetQueueAttributes', 'ChangeMessageVisibility', 'SendMessage'].map((a) => `sqs:${a} GetAtt:JobsQueue.Arn`)
            : []),
        ].sort();
        expect(grants(statements), job.key).toEqual(expected);
        // Word for word the API role's statements for the config parameter and its key.
        const api = roleStatements(t(), 'IamRoleLambdaExecution');
        for (const sid of ['XronoxConfigParameter', 'XronoxConfigDecrypt']) {
          expect(statements.find((s) => s.Sid === sid), `${job.key} ${sid}`).toEqual(api.find((s) => s.Sid === sid));
        }
      }
      // Five job roles, the API's and the framework's custom-resource role: nothing else.
      expect(roles.sort()).toEqual(['IamRoleCustomResourcesLambdaExecution', 'IamRoleLambdaExecution', ...JOBS.map((j) => j.role)].sort());
    });

    it('lets only the backup job touch the backups bucket, and the S3-triggered archive only the versions bucket', () => {
      const backups = `arn:aws:s3:::${BACKUPS_BUCKET}`;
      const archive = grants(roleStatements(t(), 'XronoxArchiveRole'));
      // Archive: nothing in backups (no write, no delete, no read), nothing in records or content.
      expect(archive.filter((g) => g.includes(BACKUPS_BUCKET))).toEqual([]);
      expect(archive.filter((g) => g.startsWith('s3:')).every((g) => g.includes(BUCKETS.versions))).toBe(true);
      // Backup: writes (and finishes, and cleans up) snapshots in the backups bucket, deletes nothing elsewhere.
      const backup = grants(roleStatements(t(), 'XronoxBackupRole'));
      expect(backup).toEqual(expect.arrayContaining([`s3:PutObject ${backups}/*`, `s3:DeleteObject ${backups}/*`, `s3:ListBucket ${backups}`]));
      expect(backup.filter((g) => /^s3:(PutObject|DeleteObject|AbortMultipartUpload) /.test(g) && !g.includes(BACKUPS_BUCKET))).toEqual([]);
      // No other role mentions the backups bucket at all.
      // (The fan-out worker runs backup tasks, so it may too.)
      for (const [name] of resources(t(), 'AWS::IAM::Role').filter(([n]) => n !== 'XronoxBackupRole' && n !== 'XronoxJobWorkerRole')) {
        expect(JSON.stringify(t().Resources[name]), name).not.toContain(BACKUPS_BUCKET);
      }
      // Retention and offload write nothing and delete nothing, respectively, beyond what they must.
      expect(grants(roleStatements(t(), 'XronoxRetentionRole')).filter((g) => /^s3:(GetObject|PutObject) /.test(g))).toEqual([]);
      expect(grants(roleStatements(t(), 'XronoxOffloadRole')).filter((g) => g.startsWith('s3:DeleteObject '))).toEqual([]);
    });

    it('sends the S3 events the archive function failed on (after Lambda\'s retries) to an SQS dead-letter queue, with an alarm on the queue and one on the function\'s errors', () => {
      const queue = t().Resources.ArchiveDeadLetterQueue!;
      expect(queue.Type).toBe('AWS::SQS::Queue');
      expect(queue.Properties).toEqual({ QueueName: `xronox-${STAGE}-archive-failures`, MessageRetentionPeriod: 1_209_600, SqsManagedSseEnabled: true });
      // The function's asynchronous-invocation config: failures to the queue. Only archive has one.
      const configs = resources(t(), 'AWS::Lambda::EventInvokeConfig');
      expect(configs.map(([, c]) => c.Properties)).toEqual([
        { FunctionName: { Ref: 'ArchiveLambdaFunction' }, Qualifier: '$LATEST', DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': ['ArchiveDeadLetterQueue', 'Arn'] } } } },
      ]);
      // Lambda sends to the queue with the function's role, which may (and no other role may).
      for (const [name] of resources(t(), 'AWS::IAM::Role')) {
        const sends = grants(roleStatements(t(), name)).filter((g) => g.startsWith('sqs:') && g.includes('ArchiveDeadLetterQueue'));
        expect(sends, name).toEqual(name === 'XronoxArchiveRole' ? ['sqs:SendMessage GetAtt:ArchiveDeadLetterQueue.Arn'] : []);
      }

      const alarms = Object.fromEntries(resources(t(), 'AWS::CloudWatch::Alarm'));
      expect(Object.keys(alarms).sort()).toEqual(['ArchiveDeadLetterAlarm', 'ArchiveErrorsAlarm', 'JobsDeadLetterAlarm']);
      // No alarmTopicArn param: the alarms notify nobody (Fn::If on an empty topic), but still change state.
      const noTopic = { 'Fn::If': ['HasAlarmTopic', [''], { Ref: 'AWS::NoValue' }] };
      const firesOnAny = { Period: 300, EvaluationPeriods: 1, Threshold: 0, ComparisonOperator: 'GreaterThanThreshold', TreatMissingData: 'notBreaching', AlarmActions: noTopic, OKActions: noTopic };
      expect(alarms.ArchiveDeadLetterAlarm!.Properties).toMatchObject({
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['ArchiveDeadLetterQueue', 'QueueName'] } }],
        Statistic: 'Maximum',
        ...firesOnAny,
      });
      expect(alarms.ArchiveErrorsAlarm!.Properties).toMatchObject({
        Namespace: 'AWS/Lambda',
        MetricName: 'Errors',
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: 'ArchiveLambdaFunction' } }],
        Statistic: 'Sum',
        ...firesOnAny,
      });
      expect(t().Conditions).toEqual({ HasAlarmTopic: { 'Fn::Not': [{ 'Fn::Equals': ['', ''] }] } });
    });

    it('packages the five jobs once: one zip (the same S3 key in every job), holding only the jobs bundle and its source map, without the HTTP app or a native addon', () => {
      const keys = JOBS.map((job) => (t().Resources[job.id]!.Properties.Code as { S3Key: string }).S3Key);
      expect(new Set(keys).size).toBe(1);
      expect(keys[0]).toMatch(/^serverless\/xronox\/ci\/[^/]+\/jobs\.zip$/);
      // The API keeps its own zip, in the same upload folder.
      const apiKey = (t().Resources.ApiLambdaFunction!.Properties.Code as { S3Key: string }).S3Key;
      expect(apiKey).toBe(keys[0]!.replace(/jobs\.zip$/, 'api.zip'));
      // What is in the package folder is what a deploy uploads: no per-job zips.
      expect(readdirSync(packaged.outDir).filter((f) => f.endsWith('.zip')).sort()).toEqual(['api.zip', 'custom-resources.zip', 'jobs.zip']);
      for (const job of JOBS) expect(packaged.zipOf(job.key)).toBe(join(packaged.outDir, 'jobs.zip'));

      const entries = readZip(join(packaged.outDir, 'jobs.zip'));
      expect(entries.map((e) => e.name).sort()).toEqual(['functions/jobs/handlers.cjs', 'functions/jobs/handlers.cjs.map']);
      const bundle = entries.find((e) => e.name === 'functions/jobs/handlers.cjs')!.read().toString('utf8');
      expect(bundle.trimEnd().endsWith('//# sourceMappingURL=handlers.cjs.map')).toBe(true);
      expect(bundle.split('\n').length).toBeLessThan(bundle.length / 2000);
      // better-sqlite3 stays out, required lazily, once (infra/esbuild/plugins.cjs).
      expect(bundle.match(/require\("better-sqlite3"\)/g)).toHaveLength(1);
      expect(bundle).not.toContain('better_sqlite3.node');
      const map = JSON.parse(entries.find((e) => e.name === 'functions/jobs/handlers.cjs.map')!.read().toString('utf8')) as { sources: string[] };
      const ours = map.sources.filter((s) => !s.includes('node_modules/')).map((s) => s.replace(/^(\.\.\/)+/, ''));
      expect(ours.filter((s) => s.startsWith('functions/')).sort()).toEqual(['functions/api/container.ts', 'functions/jobs/handlers.ts', 'functions/observability/telemetry.ts']);
      expect(map.sources.some((s) => /node_modules\/(hono|@hono|jose)\//.test(s))).toBe(false);
    });

    it('refuses to share one zip between jobs whose zips differ (a job with package settings of its own), naming the job', () => {
      const dir = serviceDir();
      try {
        const yml = join(dir.path, 'serverless.yml');
        const original = readFileSync(yml, 'utf8');
        const changed = original.replace('\n    role: XronoxOffloadRole\n', "\n    role: XronoxOffloadRole\n    package:\n      patterns: ['!functions/jobs/handlers.cjs.map']\n");
        expect(changed).not.toBe(original);
        writeFileSync(yml, changed);
        expect(() => oslsPackage(dir, { stage: STAGE })).toThrow(/custom\.sharedArtifacts\.jobs: the zip of "offload" differs from that of "archive"/);
      } finally {
        dir.cleanup();
      }
    }, 300_000);

    describe('each job function, loaded from its zip and invoked with the event AWS sends', () => {
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
        ids.push(...(await seedOrders(configFile)));
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
       * Unzips the function's zip (the jobs' shared one) into a fresh task root, and in a fresh Node process (a cold
       * container) resolves the template's Handler there as the Lambda Node.js runtime does
       * (`<file>.js|.mjs|.cjs`, then the export), and invokes it once per event, with a context
       * whose deadline is the template's Timeout. `node`: the Node.js binary that runs it.
       */
      function invokeJob(key: string, events: unknown[], env: Record<string, string> = { NODE_PATH: join(REPO, 'node_modules') }, node = process.execPath): Outcome {
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
            process.stdout.write('NODE ' + process.version + '\\n');
            process.stdout.write('RESULT ' + JSON.stringify({ results, stats: mod.container.stats }) + '\\n');
          })().catch((err) => { console.error(err); process.exit(1); });`;
        const run = spawnSync(node, ['--enable-source-maps', '-e', script], {
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

      // The runs above use SQLite, whose addon here is built for the tests' Node 20; on Lambda the
      // index store is PostgreSQL (or MongoDB), bundled, so Node 22 runs the jobs on PostgreSQL.
      describePostgres("on Node 22, the functions' runtime, with a PostgreSQL config and nothing but the zip", pgAvailability, () => {
        it('archive (an S3 event), archiveSweep, backup and retention (scheduled events) each run their job', async () => {
          const node = node22();
          const runtime = new RegExp(`^v${lambdaNodeMajor(t())}\\.`);
          const schemaPrefix = randomSchemaPrefix();
          const dir = join(work.path, `postgres-${schemaPrefix}`);
          const file = join(dir, 'xronox.config.json');
          mkdirSync(dir, { recursive: true });
          writeFileSync(
            file,
            JSON.stringify({
              dbConnections: { pg: { postgresUri: POSTGRES_URI, schemaPrefix } },
              localStorage: { basePath: 'blobs', enabled: true },
              databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'pg', dbName: DB }] } },
              jobs: { archive: { mode: 'deferred', sweepAfterMinutes: 0 } },
              retention: { ver: { maxPerItem: 2 } },
            }),
          );
          const versionsOf = (id: string) => {
            const folder = join(dir, 'blobs', DB, 'versions', 'orders', id);
            return existsSync(folder) ? readdirSync(folder).sort() : [];
          };
          try {
            const pgIds = await seedOrders(file);
            const when = new Date(Math.ceil((Date.now() + 1) / 1000) * 1000);
            // No NODE_PATH: as on Lambda, only what the zip holds can be loaded.
            const env = { XRONOX_CONFIG_FILE: file };

            const archived = invokeJob('archive', [s3PutEvent(DB, [`records/orders/${pgIds[0]}/current.json`])], env, node);
            expect(nodeVersionIn(archived.logs)).toMatch(runtime);
            expect(archived.results[0]).toMatchObject({ ok: { job: 'archive', complete: true, counts: { archivedRecords: 1, archivedVersions: 3 } } });
            expect(versionsOf(pgIds[0]!)).toEqual(['v0.json', 'v1.json', 'v2.json']);
            expect(versionsOf(pgIds[1]!)).toEqual([]);

            const swept = invokeJob('archiveSweep', [scheduledEvent(when, `xronox-${STAGE}-archiveSweep`)], env, node);
            expect(nodeVersionIn(swept.logs)).toMatch(runtime);
            expect(swept.results[0]).toMatchObject({ ok: { job: 'archive', complete: true, counts: { archivedRecords: 1, archivedVersions: 3 } } });
            expect(versionsOf(pgIds[1]!)).toEqual(['v0.json', 'v1.json', 'v2.json']);

            const backedUp = invokeJob('backup', [scheduledEvent(when, `xronox-${STAGE}-backup`)], env, node);
            expect(nodeVersionIn(backedUp.logs)).toMatch(runtime);
            expect(backedUp.results[0]).toMatchObject({ ok: { job: 'backup', complete: true, counts: { backedUpCollections: 1, backedUpRecords: 2, backedUpVersions: 6 } } });

            const pruned = invokeJob('retention', [scheduledEvent(when, `xronox-${STAGE}-retention`)], env, node);
            expect(nodeVersionIn(pruned.logs)).toMatch(runtime);
            expect(pruned.results[0]).toMatchObject({ ok: { job: 'retention', complete: true, counts: { prunedRecords: 2, prunedVersions: 2 } } });
            for (const id of pgIds) expect(versionsOf(id)).toEqual(['v1.json', 'v2.json']);
          } finally {
            await dropSchemas(schemaPrefix);
          }
        });
      });
    });
  });
});
