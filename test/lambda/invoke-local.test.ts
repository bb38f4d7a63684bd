/**
 * On-demand runs without serverless-offline: `npx osls invoke local -f <function> --path <event>
 * --stage local` bundles the function (serverless-esbuild) and runs its handler once with the
 * checked-in sample events of infra/offline/events/, against the local stage's config
 * (XRONOX_CONFIG_FILE here: a SQLite file and a folder, so no S3 server is needed).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobReport } from '../../core/jobs/job.js';
import { tempDir } from '../support/temp.js';
import { offlineEnv, serviceDir } from './osls.js';

const service = serviceDir('xronox-invoke-local');
const data = tempDir('xronox-invoke-local-data');
let configFile: string;

beforeAll(() => {
  configFile = join(data.path, 'xronox.config.json');
  // The sample S3 event names the local stage's records bucket; here a folder of that name.
  writeFileSync(
    configFile,
    JSON.stringify({
      dbConnections: { local: { sqlitePath: 'xronox.sqlite' } },
      localStorage: { basePath: 'blobs', enabled: true },
      databases: {
        runtime: {
          tenantDatabases: [
            { tenantId: 'demo', dbConnRef: 'local', dbName: 'rt_invoke_demo', recordsBucket: 'xronox-local-records', versionsBucket: 'xronox-local-versions' },
          ],
        },
      },
      jobs: { archive: { mode: 'deferred' } },
    }),
  );
});
afterAll(() => {
  service.cleanup();
  data.cleanup();
});

/** `npx osls invoke local -f <fn> --path <event> --stage local`; the handler's result as osls prints it (the last JSON block). */
function invokeLocal(fn: string, eventPath: string): { status: number | null; result: JobReport; output: string } {
  const run = spawnSync('npx', ['osls', 'invoke', 'local', '-f', fn, '--path', eventPath, '--stage', 'local'], {
    cwd: service.path,
    env: offlineEnv({ XRONOX_CONFIG_FILE: configFile }),
    encoding: 'utf8',
    timeout: 120_000,
  });
  const output = `${run.stdout}\n${run.stderr}`;
  // osls prints the returned value as indented JSON, starting with a "{" alone on its line.
  const start = run.stdout.lastIndexOf('\n{\n');
  const end = run.stdout.indexOf('\n}', start);
  if (run.status !== 0 || start === -1 || end === -1) throw new Error(`osls invoke local -f ${fn} failed (status ${run.status}):\n${output}`);
  return { status: run.status, result: JSON.parse(run.stdout.slice(start + 1, end + 2)) as JobReport, output };
}

describe('npx osls invoke local --stage local, with the sample events of infra/offline/events/', () => {
  it('runs the retention function with the sample scheduled event', () => {
    const run = invokeLocal('retention', 'infra/offline/events/scheduled.json');
    expect(run.result).toMatchObject({ job: 'retention', complete: true, databases: { total: 1, done: 1 }, failures: [] });
  });

  it('runs the archive function with the sample S3 notification, which it routes to the runtime tenant (a record with nothing to archive)', () => {
    const sample = JSON.parse(readFileSync(join(service.path, 'infra/offline/events/s3-current-json.json'), 'utf8')) as { Records: Array<{ s3: { bucket: { name: string } } }> };
    expect(sample.Records[0]!.s3.bucket.name).toBe('xronox-local-records');
    const run = invokeLocal('archive', 'infra/offline/events/s3-current-json.json');
    expect(run.result).toMatchObject({ job: 'archive', complete: true, counts: { events: 1 }, failures: [] });
    // Recognised as a record of a configured database (else counted as an unknown object).
    expect(run.result.counts.unknownObjects).toBeUndefined();
  });
});
