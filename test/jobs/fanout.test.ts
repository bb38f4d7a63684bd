/**
 * Fan-out through the Lambda handlers, against s3rver and an SQS-protocol server (the SDK's real
 * requests over HTTP; test/support/sqs-server.ts): the coordinator, given a real scheduled event,
 * sends one task per database in SendMessageBatch calls; the worker, given the SQS event payloads
 * Lambda would deliver, runs each task, and with a deadline that stops it almost at once puts the
 * task back (a continuation) until the job is done; the snapshots it leaves restore exactly.
 * Two workers on one task: the lease keeps the second off, and it puts the task back for later.
 * A task that is not one is reported in `batchItemFailures` (SQS redelivers it, then
 * dead-letters it); entries SQS refuses for a passing reason are sent again.
 */
import { join } from 'node:path';
import { readFileSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { XronoxConfigInput } from '../../core/config/schema.js';
import { parseJobTask, type JobTask } from '../../core/jobs/fanout.js';
import { JOB_LEASE_COLLECTION } from '../../core/jobs/job.js';
import { restoreBackup, runJob } from '../../core/jobs/run.js';
import { backupDate, snapshotId } from '../../core/jobs/snapshot.js';
import { initXronox } from '../../core/xronox.js';
import { backupFanOut, closeJobQueue, container, jobWorker } from '../../functions/jobs/handlers.js';
import { type SentMessage, type SqsServer, sqsEvent, startSqsServer } from '../support/sqs-server.js';
import { freshNames, indexState, JOB_BACKENDS, jobConfig, lambdaContext, openIndex, scheduledEvent, useJobBackend, writeConfig } from './support.js';

const s3 = JOB_BACKENDS.find((b) => b.name.includes('s3rver'))!;
const ENV = ['XRONOX_JOBS_QUEUE_URL', 'XRONOX_SQS_ENDPOINT', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'] as const;
const saved = Object.fromEntries(ENV.map((k) => [k, process.env[k]]));

describe('job fan-out over SQS: coordinator and worker handlers', () => {
  const fx = useJobBackend(s3, 'xronox-jobs-fanout');
  let sqs: SqsServer;

  beforeAll(async () => {
    sqs = await startSqsServer();
    process.env.XRONOX_JOBS_QUEUE_URL = sqs.queueUrl('xronox-test-jobs');
    process.env.XRONOX_SQS_ENDPOINT = sqs.endpoint;
    process.env.AWS_ACCESS_KEY_ID = 'AKIDFANOUTTEST';
    process.env.AWS_SECRET_ACCESS_KEY = 'fan-out-test-secret';
    await closeJobQueue();
  });
  afterAll(async () => {
    await closeJobQueue();
    await sqs.close();
    for (const k of ENV) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });

  it('the coordinator sends a task per database; workers cut off by their deadline put tasks back until every snapshot is complete, and a snapshot restores exactly', async () => {
    const names = freshNames();
    await fx.inst.prepare(Object.values(names));
    const sub = join(fx.dir.path, names.rt);
    const base = jobConfig(fx.inst, fx.dir.path, names);
    const config: XronoxConfigInput = { ...base, dbConnections: { local: { sqlitePath: join(sub, 'xronox.sqlite') } }, jobs: { ...base.jobs, concurrency: 4, backup: { partKilobytes: 4 } } };
    const file = writeConfig(fx.dir.path, config);
    process.env.XRONOX_CONFIG_FILE = file;
    await container.close();
    const x = initXronox(config);
    fx.open.push(x);
    const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    const created = await orders.createMany(Array.from({ length: 200 }, (_, i) => ({ status: 'new', sku: `S${i}`, total: i })));
    for (const { id } of created.slice(0, 50)) await orders.update(id, { status: 'paid', total: 1 }, 0);
    await x.with({ databaseType: 'knowledge', tier: 'generic', collection: 'facts' }).createMany([{ text: 'a' }, { text: 'b' }]);
    await x.flush();
    expect((await runJob(x, 'archive', { now: new Date(Date.now() + 3600_000), log: null })).complete).toBe(true);
    const store = openIndex(sub);
    const before = await indexState(store, [{ dbName: names.rt, countersDb: names.analytics }]);
    await store.close();

    // The coordinator: a real scheduled event, one task per database with a backups bucket.
    const event = scheduledEvent(new Date('2026-04-01T02:00:00.000Z'), 'xronox-backup-fan-out');
    const firstCall = sqs.calls.length;
    const fanned = await backupFanOut(event, lambdaContext('xronox-backupFanOut'));
    expect(fanned.databases.sort()).toEqual([names.kn, names.msg, names.rt].sort());
    expect(sqs.calls.slice(firstCall)).toEqual([{ action: 'SendMessageBatch', entries: 3, authorized: true }]);
    const tasks = sqs.sent.slice(-3).map((m) => parseJobTask(m.body));
    expect(tasks.map((t) => t.dbName).sort()).toEqual(fanned.databases.sort());
    for (const t of tasks) expect(t).toEqual({ v: 1, job: 'backup', dbName: t.dbName, time: new Date(event.time).toISOString(), attempt: 0 });

    // The workers: each message delivered alone, with a deadline that stops the job almost at once.
    const queue: SentMessage[] = sqs.sent.slice(-3);
    let consumed = sqs.sent.length;
    let invocations = 0;
    let continuations = 0;
    while (queue.length > 0 && invocations < 400) {
      const message = queue.shift()!;
      invocations++;
      const response = await jobWorker(sqsEvent([message]), lambdaContext('xronox-jobWorker', 30_000 + 20));
      expect(response).toEqual({ batchItemFailures: [] });
      const next = sqs.sent.slice(consumed);
      consumed = sqs.sent.length;
      continuations += next.length;
      queue.push(...next);
    }
    expect(queue).toEqual([]);
    expect(continuations).toBeGreaterThan(3);
    const last = sqs.sent.slice(-1).map((m) => parseJobTask(m.body))[0]!;
    expect(last.attempt).toBeGreaterThan(0);

    // Every database's snapshot of that schedule is complete, and the runtime one restores exactly.
    await x.shutdown();
    await container.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(sub, `xronox.sqlite${suffix}`), { force: true });
    const x2 = initXronox(JSON.parse(readFileSync(file, 'utf8')) as XronoxConfigInput);
    fx.open.push(x2);
    const date = backupDate(new Date(event.time));
    const restored = await restoreBackup(x2, { dbName: names.rt, date, snapshot: snapshotId(new Date(event.time)) }, { log: null });
    expect(restored).toMatchObject({ complete: true, failures: [] });
    await x2.flush();
    const after = openIndex(sub);
    try {
      expect(await indexState(after, [{ dbName: names.rt, countersDb: names.analytics }])).toEqual(before);
    } finally {
      await after.close();
    }
  }, 240_000);

  it('two workers on one task: the lease keeps the second off and it puts the task back for later, which runs once the lease is free; a message that is no task is a batch item failure, the others in its batch still run', async () => {
    const names = freshNames();
    await fx.inst.prepare(Object.values(names));
    const base = jobConfig(fx.inst, fx.dir.path, names);
    const config: XronoxConfigInput = { ...base, dbConnections: { local: { sqlitePath: join(fx.dir.path, names.rt, 'xronox.sqlite') } }, jobs: { ...base.jobs, leaseSeconds: 300 } };
    process.env.XRONOX_CONFIG_FILE = writeConfig(fx.dir.path, config);
    await container.close();
    const x = initXronox(config);
    fx.open.push(x);
    await x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' }).createMany(Array.from({ length: 600 }, (_, i) => ({ n: i })));
    await x.flush();

    // Another worker holds the database's retention lease (it is running the same task, delivered twice).
    const task: JobTask = { v: 1, job: 'retention', dbName: names.rt, time: new Date().toISOString(), attempt: 0 };
    const index = openIndex(join(fx.dir.path, names.rt));
    const lease = { dbName: names.rt, collection: JOB_LEASE_COLLECTION };
    expect(await index.acquireLock(lease, 'job:retention', 'the-other-worker', 300_000)).toBe(true);
    const start = sqs.sent.length;
    expect(await jobWorker(sqsEvent([{ messageId: 'm-1', body: JSON.stringify(task) }]), lambdaContext('xronox-jobWorker'))).toEqual({ batchItemFailures: [] });
    // Kept off, it put the task back, delayed past a lease check, and did nothing.
    expect(sqs.sent.slice(start).map((m) => ({ task: parseJobTask(m.body), delay: m.delaySeconds }))).toEqual([{ task: { ...task, attempt: 1 }, delay: 60 }]);
    await index.releaseLock(lease, 'job:retention', 'the-other-worker');
    await index.close();
    // The continuation, once the other worker is done: it runs, finishes, and puts nothing back.
    const again = sqs.sent.length;
    expect(await jobWorker(sqsEvent([sqs.sent[again - 1]!]), lambdaContext('xronox-jobWorker'))).toEqual({ batchItemFailures: [] });
    expect(sqs.sent.length).toBe(again);

    const poison = { messageId: 'm-poison', body: '{"v":1,"job":"drop-tables","dbName":"x"}' };
    const good = { messageId: 'm-good', body: JSON.stringify({ ...task, job: 'offload' }) };
    expect(await jobWorker(sqsEvent([poison, good]), lambdaContext('xronox-jobWorker'))).toEqual({ batchItemFailures: [{ itemIdentifier: 'm-poison' }] });

    // SQS refuses an entry for a passing reason: it is sent again, and lands once.
    let refusals = 1;
    sqs.refuse = () => (refusals-- > 0 ? { code: 'InternalError', senderFault: false } : null);
    const before = sqs.sent.length;
    const fanned = await backupFanOut(scheduledEvent(new Date('2026-04-02T02:00:00.000Z'), 'xronox-backup-fan-out'), lambdaContext('xronox-backupFanOut'));
    sqs.refuse = null;
    expect(sqs.sent.length - before).toBe(fanned.databases.length);
    expect(new Set(sqs.sent.slice(before).map((m) => parseJobTask(m.body).dbName)).size).toBe(fanned.databases.length);
  });
});
