/* global module */
'use strict';
/**
 * The IAM permissions of serverless.yml's functions, built from one table (`ACCESS`): what each
 * function may do to each kind of bucket. serverless.yml takes from here
 *
 * - `apiStatements`: the API role's statements (`provider.iam.role.statements`; the framework
 *   adds the statements for the API's own logs);
 * - `jobRoles`: one role per background job (`resources`), each named `Xronox<Job>Role`
 *   (`XronoxArchiveRole`, ...) and set as that function's `role`.
 *
 * A table and a few lines of code rather than YAML anchors: the roles differ bucket by bucket,
 * which anchors (whole nodes only) cannot express, so five roles would be written out in full
 * (some 200 lines of statements that differ in a word or two). Here the table is the one place
 * to read or change what a function may touch, and every ARN is built the same way, with the
 * partition (`arn:${AWS::Partition}:…`, resolved by CloudFormation), so the stack deploys to
 * aws-cn and aws-us-gov as it does to aws. docs/deploy.md has the same table in words;
 * test/lambda/package.test.ts checks the packaged roles against its own copy of it.
 *
 * What each job does to which bucket is read off core/jobs (see each entry). The kinds:
 * - `read`: s3:GetObject (also what HeadObject needs);
 * - `write`: s3:PutObject (every step of a multipart upload too) and s3:AbortMultipartUpload
 *   (lib-storage aborts a failed multipart upload, so no parts are left to pay for);
 * - `delete`: s3:DeleteObject;
 * - `list`: s3:ListBucket on the bucket: listings, and, where a job reads, a 404 rather than a 403
 *   for a missing object (without it S3 hides whether the key exists, and the blob store would
 *   report a missing object, which the jobs expect, as a permissions failure).
 */

/** The bucket kinds, with the serverless.yml param that names each. */
const BUCKETS = { records: 'recordsBucket', versions: 'versionsBucket', content: 'contentBucket', backups: 'backupsBucket' };

const OBJECT_ACTIONS = { read: ['s3:GetObject'], write: ['s3:PutObject', 's3:AbortMultipartUpload'], delete: ['s3:DeleteObject'] };

/** Function key (serverless.yml) -> bucket kind -> what it may do there. */
const ACCESS = {
  // Reads, writes (records inline or deferred, their versions, content) and hard deletes; never backups.
  api: {
    records: ['read', 'write', 'delete', 'list'],
    versions: ['read', 'write', 'delete', 'list'],
    content: ['read', 'write', 'delete', 'list'],
  },
  // S3-triggered (archiveObjects -> archiveRecord): the pending versions come from the index, so
  // the records bucket is not read; each is written create-only to the versions bucket (read back
  // when one is already there), and the object of a version pruned meanwhile is deleted.
  archive: {
    versions: ['read', 'write', 'delete', 'list'],
  },
  // The sweep (runJob 'archive'): the outbox repair writes what a cut-off sync left (current.json
  // and log objects, versions, queued content) and purges hard-deleted records (list, delete in
  // the three buckets); the upload sweep reads heads and versions to see whether a content object
  // is referenced, and deletes the orphans; then the versions are archived as above.
  archiveSweep: {
    records: ['read', 'write', 'delete', 'list'],
    versions: ['read', 'write', 'delete', 'list'],
    content: ['write', 'delete', 'list'],
  },
  // Deletes pruned version objects, and expired logs: their day-filed object, then the record's
  // folders (listed, then deleted) in records and content (a log has no versions). Writes nothing.
  retention: {
    records: ['delete', 'list'],
    versions: ['delete'],
    content: ['delete', 'list'],
  },
  // Reads offloaded heads (records) and archived versions; writes each snapshot (parts, then the
  // manifest), lists the day's snapshots, and deletes what a cut-off run left in its folder.
  // Content objects are referenced by a snapshot, not copied.
  backup: {
    records: ['read', 'list'],
    versions: ['read', 'list'],
    backups: ['read', 'write', 'delete', 'list'],
  },
  // Writes each record's object create-only when it is missing (read first, and read back on a
  // conflict); deletes nothing.
  offload: {
    records: ['read', 'write', 'list'],
  },
  // The fan-out coordinator: no bucket (it lists the databases from the config and sends tasks).
  backupFanOut: {},
  // The fan-out worker runs any scheduled job's task: what the sweep, retention, backup and offload may do, together.
  jobWorker: {
    records: ['read', 'write', 'delete', 'list'],
    versions: ['read', 'write', 'delete', 'list'],
    content: ['write', 'delete', 'list'],
    backups: ['read', 'write', 'delete', 'list'],
  },
};

/** The background jobs, in serverless.yml order. */
const JOBS = ['archive', 'archiveSweep', 'retention', 'backup', 'offload', 'backupFanOut', 'jobWorker'];

/**
 * Statements a job needs besides its buckets. The archive function's failed asynchronous
 * invocations go to the dead-letter queue of serverless.yml (`destinations.onFailure`); Lambda
 * sends them with the function's own role.
 */
const EXTRA = {
  archive: [{ Sid: 'ArchiveFailures', Effect: 'Allow', Action: ['sqs:SendMessage'], Resource: { 'Fn::GetAtt': ['ArchiveDeadLetterQueue', 'Arn'] } }],
  // Fan-out: the coordinator sends tasks; the worker takes them (the event source mapping uses
  // the function's role) and sends continuations.
  backupFanOut: [{ Sid: 'JobTasks', Effect: 'Allow', Action: ['sqs:SendMessage'], Resource: { 'Fn::GetAtt': ['JobsQueue', 'Arn'] } }],
  jobWorker: [
    {
      Sid: 'JobTasks',
      Effect: 'Allow',
      Action: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes', 'sqs:ChangeMessageVisibility', 'sqs:SendMessage'],
      Resource: { 'Fn::GetAtt': ['JobsQueue', 'Arn'] },
    },
  ],
};

/** `Xronox<Job>Role`: the logical id of a job's role. */
function roleId(job) {
  return `Xronox${job[0].toUpperCase()}${job.slice(1)}Role`;
}

const sub = (text) => ({ 'Fn::Sub': text });
const title = (words) => words.map((w) => w[0].toUpperCase() + w.slice(1)).join('');

/** The stage's bucket names (params), each checked: an empty name would grant `arn:…:s3:::/*`. */
async function bucketNames(resolveVariable) {
  const names = {};
  for (const [kind, param] of Object.entries(BUCKETS)) {
    const name = await resolveVariable(`param:${param}`);
    if (typeof name !== 'string' || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name)) {
      throw new Error(`The param ${param} must be an S3 bucket name (3-63 characters: lowercase letters, digits, dots, hyphens); got ${JSON.stringify(name)}`);
    }
    names[kind] = name;
  }
  return names;
}

/** S3 statements for one function: one per distinct set of object actions, then one for listing. */
function s3Statements(access, names) {
  const groups = new Map();
  const listed = [];
  for (const kind of Object.keys(BUCKETS)) {
    const allowed = access[kind];
    if (!allowed) continue;
    const kinds = Object.keys(OBJECT_ACTIONS).filter((k) => allowed.includes(k));
    if (kinds.length > 0) {
      const key = kinds.join(' ');
      if (!groups.has(key)) groups.set(key, { kinds, resources: [] });
      groups.get(key).resources.push(sub(`arn:\${AWS::Partition}:s3:::${names[kind]}/*`));
    }
    if (allowed.includes('list')) listed.push(sub(`arn:\${AWS::Partition}:s3:::${names[kind]}`));
  }
  const statements = [...groups.values()].map(({ kinds, resources }) => ({
    Sid: `Objects${title(kinds)}`,
    Effect: 'Allow',
    Action: kinds.flatMap((k) => OBJECT_ACTIONS[k]),
    Resource: resources,
  }));
  if (listed.length > 0) statements.push({ Sid: 'ListBuckets', Effect: 'Allow', Action: ['s3:ListBucket'], Resource: listed });
  return statements;
}

/**
 * The config parameter, and nothing else in Parameter Store; and decrypting it when it is a
 * SecureString under a customer managed key (the AWS managed aws/ssm key's own policy already
 * allows every role in the account). The key is not known here, so its ARN is a wildcard,
 * narrowed by the conditions to decryptions SSM makes for this one parameter.
 */
async function configStatements(resolveVariable) {
  const parameter = await resolveVariable('param:configParameter');
  if (typeof parameter !== 'string' || !parameter.startsWith('/')) {
    throw new Error(`The param configParameter must be an SSM parameter name starting with "/"; got ${JSON.stringify(parameter)}`);
  }
  const parameterArn = sub(`arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter${parameter}`);
  return [
    { Sid: 'XronoxConfigParameter', Effect: 'Allow', Action: ['ssm:GetParameter'], Resource: parameterArn },
    {
      Sid: 'XronoxConfigDecrypt',
      Effect: 'Allow',
      Action: ['kms:Decrypt'],
      Resource: sub('arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*'),
      Condition: {
        StringEquals: {
          'kms:ViaService': sub('ssm.${AWS::Region}.${AWS::URLSuffix}'),
          'kms:EncryptionContext:PARAMETER_ARN': parameterArn,
        },
      },
    },
  ];
}

/** The API role's statements (the framework adds its log statements). */
async function apiStatements({ resolveVariable }) {
  return [...s3Statements(ACCESS.api, await bucketNames(resolveVariable)), ...(await configStatements(resolveVariable))];
}

/**
 * One role per job: its buckets, the config parameter, its extra statements, and writing to its
 * own log group. A function with a role of its own gets no logging permission from the
 * framework; the managed AWSLambdaBasicExecutionRole would allow every log group in the account.
 * The framework creates the log groups (`<Function>LogGroup`), so creating one is not allowed.
 */
async function jobRoles({ resolveVariable }) {
  const names = await bucketNames(resolveVariable);
  const config = await configStatements(resolveVariable);
  // With the tracing param on, Lambda sends each job's segments with the job's own role (the
  // framework adds these actions to the API's role only). X-Ray takes no resource narrower than '*'.
  const tracing = await tracingOn(resolveVariable);
  const xray = tracing ? [{ Sid: 'XRayTraces', Effect: 'Allow', Action: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], Resource: '*' }] : [];
  const prefix = `${await resolveVariable('self:service')}-${await resolveVariable('sls:stage')}`;
  const Resources = {};
  for (const job of JOBS) {
    Resources[roleId(job)] = {
      Type: 'AWS::IAM::Role',
      Properties: {
        Description: `Xronox ${job} function (${prefix}-${job}): only what the job does (infra/serverless/iam.cjs)`,
        AssumeRolePolicyDocument: {
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
        },
        Policies: [
          {
            PolicyName: `xronox-${job}`,
            PolicyDocument: {
              Version: '2012-10-17',
              Statement: [
                ...s3Statements(ACCESS[job], names),
                ...config,
                ...(EXTRA[job] ?? []),
                ...xray,
                {
                  Sid: 'OwnLogs',
                  Effect: 'Allow',
                  Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
                  Resource: sub(`arn:\${AWS::Partition}:logs:\${AWS::Region}:\${AWS::AccountId}:log-group:/aws/lambda/${prefix}-${job}:*`),
                },
              ],
            },
          },
        ],
      },
    };
  }
  return { Resources };
}

/** The `tracing` param: 'true' or 'false' (anything else fails the packaging, naming it). */
async function tracingOn(resolveVariable) {
  const value = String(await resolveVariable('param:tracing')).trim().toLowerCase();
  if (value !== 'true' && value !== 'false') throw new Error(`The param tracing must be 'true' or 'false'; got ${JSON.stringify(value)}`);
  return value === 'true';
}

module.exports = { apiStatements, jobRoles };
