import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { type S3rverHandle, startS3rver } from '../support/s3rver.js';
import { tempDir } from '../support/temp.js';
import { runTsx } from '../support/tsx-process.js';

// Importing the core loads no backend's SDK; a config loads only the SDKs of the backends it
// names, when their stores are first used. Each case is a fresh Node process
// (fixtures/load-probe.ts) that reports, step by step, which packages it has loaded.

const PROBE = fileURLToPath(new URL('./fixtures/load-probe.ts', import.meta.url));
const SDKS = ['mongodb', 'pg', '@aws-sdk/client-s3', '@aws-sdk/lib-storage', '@aws-sdk/s3-request-presigner', 'better-sqlite3'];

interface Step {
  step: string;
  packages: string[];
  resolved: number;
}

async function probe(scenario: 'sqlite' | 's3', endpoint?: string): Promise<Record<string, Step>> {
  const dir = tempDir('xronox-lazy');
  try {
    const run = await runTsx(PROBE, [scenario, dir.path, ...(endpoint ? [endpoint] : [])], { killAfterMs: 60_000 });
    // The AWS SDK warns, once loaded, that its later versions will need Node 22.
    const stderr = run.stderr.replace(/\(node:\d+\) Warning: NodeVersionSupportWarning[\s\S]*?show where the warning was created\)\n/, '');
    expect({ code: run.code, stderr }).toEqual({ code: 0, stderr: '' });
    const steps = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as Step);
    return Object.fromEntries(steps.map((s) => [s.step, s]));
  } finally {
    dir.cleanup();
  }
}

const sdksIn = (step: Step | undefined) => SDKS.filter((p) => step!.packages.includes(p));

describe('backends load lazily', () => {
  let s3: S3rverHandle | undefined;
  afterAll(async () => {
    await s3?.dispose();
  });

  it('importing core/index.ts loads no SDK; an SQLite config loads better-sqlite3 on first use, and never the MongoDB driver or the AWS SDK', async () => {
    const steps = await probe('sqlite');
    // The hook saw the core's own modules, so an empty list below is not a blind probe's.
    expect(steps.import!.resolved).toBeGreaterThan(50);
    expect(sdksIn(steps.import)).toEqual([]);
    expect(sdksIn(steps.configured)).toEqual([]);
    expect(sdksIn(steps.used)).toEqual(['better-sqlite3']);
  }, 90_000);

  it('a config with S3 loads the S3 SDK on the first use of its blob store, not at init', async () => {
    s3 = await startS3rver({ buckets: ['lazy-blobs'] });
    const steps = await probe('s3', s3.endpoint);
    expect(sdksIn(steps.import)).toEqual([]);
    expect(sdksIn(steps.configured)).toEqual([]);
    expect(sdksIn(steps.used)).toEqual(['@aws-sdk/client-s3', '@aws-sdk/lib-storage', '@aws-sdk/s3-request-presigner', 'better-sqlite3']);
  }, 90_000);
});
