import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The Ceph S3 gateway that `infra/local/ceph-s3.sh start` runs (CI starts it in `.ci/run`).
 * Reads XRONOX_CEPH_S3_{ENDPOINT,ACCESS_KEY,SECRET_KEY,REGION} from the environment, else from
 * `${XRONOX_CEPH_DIR:-/tmp/xronox-ceph}/s3.env`; without them, returns why the cases skip.
 * Clients need `forcePathStyle: true` and should use region `us-east-1` (what this returns).
 */
export interface CephS3 {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
}

export const CEPH_SKIP = 'Ceph S3 gateway not running (start it with infra/local/ceph-s3.sh start)';

export function cephS3(): CephS3 | { skip: string } {
  const vars: Record<string, string | undefined> = { ...readEnvFile(), ...definedOnly(process.env) };
  const endpoint = vars['XRONOX_CEPH_S3_ENDPOINT'];
  const accessKey = vars['XRONOX_CEPH_S3_ACCESS_KEY'];
  const secretKey = vars['XRONOX_CEPH_S3_SECRET_KEY'];
  const region = vars['XRONOX_CEPH_S3_REGION'] ?? 'us-east-1';
  if (!endpoint || !accessKey || !secretKey) return { skip: CEPH_SKIP };
  return { endpoint, accessKey, secretKey, region };
}

function readEnvFile(): Record<string, string> {
  const dir = process.env['XRONOX_CEPH_DIR'] || '/tmp/xronox-ceph';
  const file = join(dir, 's3.env');
  // A file left behind by a gateway that is gone (reboot, crash) counts as not running.
  if (!existsSync(file) || !alive(join(dir, 'run', 'client.rgw.xronox.pid'))) return {};
  const out: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0 && !line.startsWith('#')) out[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return out;
}

function definedOnly(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (key.startsWith('XRONOX_CEPH_S3_') && value) out[key] = value;
  return out;
}

function alive(pidFile: string): boolean {
  try {
    process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 0);
    return true;
  } catch {
    return false;
  }
}
