/**
 * Runs the repository's serverless.yml with osls (`npx osls ...`) from a private service folder
 * in the temp directory:
 * - the framework and serverless-esbuild write their work folders (`.serverless/`, `.esbuild/`)
 *   there, so runs from tests, benches and someone's `npm run offline` in the same checkout never
 *   share (or delete) each other's build output;
 * - the sources (`core/`, `functions/`, `serverless.yml`, `infra/`) are copied, a snapshot taken
 *   when the run starts: serverless-esbuild watches the sources under `osls offline` and, on any
 *   change, serverless-offline restarts the function and drops the requests in flight, which
 *   other people's edits in a shared checkout would otherwise trigger mid-run;
 * - `node_modules`, `package.json` and `tsconfig.json` are symlinks.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));

const COPIED = ['serverless.yml', 'core', 'functions', 'infra'];
const LINKED = ['package.json', 'tsconfig.json', 'node_modules'];

export interface ServiceDir {
  path: string;
  cleanup(): void;
}

export function serviceDir(label = 'xronox-sls'): ServiceDir {
  const path = mkdtempSync(join(tmpdir(), `${label}-`));
  for (const entry of COPIED) cpSync(join(REPO, entry), join(path, entry), { recursive: true });
  for (const entry of LINKED) symlinkSync(join(REPO, entry), join(path, entry));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * The environment osls runs with: no AWS credentials or profile of the caller, none of the
 * caller's XRONOX_* settings (config file, offline S3 port), and every AWS
 * endpoint and proxy pointed at a closed local port, so a command that tried to reach AWS would
 * fail instead of quietly doing so.
 */
export function offlineEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('AWS_') && !/^(https?|all)_proxy$/i.test(key) && !key.startsWith('XRONOX_')) env[key] = value;
  }
  return {
    ...env,
    AWS_REGION: 'eu-west-1',
    AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
    HTTP_PROXY: 'http://127.0.0.1:9',
    HTTPS_PROXY: 'http://127.0.0.1:9',
    NO_PROXY: '127.0.0.1,localhost',
    // The framework's own chatter (update checks, telemetry) stays off in CI.
    SLS_TELEMETRY_DISABLED: '1',
    SLS_NOTIFICATIONS_MODE: 'off',
    CI: '1',
    ...extra,
  };
}

export interface Packaged {
  /** The `--package` folder: the CloudFormation templates and one zip per function. */
  outDir: string;
  template: CloudFormationTemplate;
  /** The API function's zip. */
  zipPath: string;
  /**
   * The zip a function of serverless.yml is deployed from, by its key (`api`, `archive`, ...): the
   * file its Code.S3Key names (the five jobs share `jobs.zip`, custom.sharedArtifacts).
   */
  zipOf(functionKey: string): string;
  output: string;
}

export interface CloudFormationTemplate {
  Resources: Record<string, { Type: string; Properties: Record<string, unknown>; DependsOn?: string | string[] }>;
  Conditions?: Record<string, unknown>;
}

/** `npx osls package --package <outDir> [--stage] [--param ...]` in `service`. Throws with osls's output on failure. */
export function oslsPackage(service: ServiceDir, options: { stage?: string; params?: Record<string, string> } = {}): Packaged {
  const outDir = join(service.path, 'artifact');
  const args = ['osls', 'package', '--package', outDir];
  if (options.stage) args.push('--stage', options.stage);
  for (const [key, value] of Object.entries(options.params ?? {})) args.push(`--param=${key}=${value}`);
  const run = spawnSync('npx', args, { cwd: service.path, env: offlineEnv(), encoding: 'utf8', timeout: 240_000 });
  const output = `${run.stdout}\n${run.stderr}`;
  if (run.status !== 0) throw new Error(`npx ${args.join(' ')} failed (status ${run.status}, signal ${run.signal}):\n${output}`);
  const template = JSON.parse(readFileSync(join(outDir, 'cloudformation-template-update-stack.json'), 'utf8')) as CloudFormationTemplate;
  const zipOf = (key: string) => {
    // The framework's logical id for a function key like these (no "-" or "_" to spell out).
    const code = template.Resources[`${key[0]!.toUpperCase()}${key.slice(1)}LambdaFunction`]?.Properties.Code as { S3Key?: string } | undefined;
    if (!code?.S3Key) throw new Error(`The template has no function ${key} with a Code.S3Key`);
    return join(outDir, basename(code.S3Key));
  };
  return { outDir, template, zipPath: zipOf('api'), zipOf, output };
}

export interface Offline {
  url: string;
  /** serverless-offline's Lambda Invoke API (`POST /2015-03-31/functions/<name>/invocations`). */
  lambdaUrl: string;
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** A port nothing listens on right now on 127.0.0.1 (rejects where nothing may listen). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * `npx osls offline start --stage local` in `service` on the given ports, resolved once the HTTP
 * server is listening (osls prints "Server ready"). Rejects with the output if it exits first or
 * takes longer than `timeoutMs`. `s3Port` is where the offline S3 server (infra/offline/s3-events.cjs)
 * listens (XRONOX_OFFLINE_S3_PORT); a free port when not given.
 */
export async function startOffline(
  service: ServiceDir,
  options: { httpPort: number; lambdaPort: number; s3Port?: number; env?: Record<string, string>; extraArgs?: string[]; timeoutMs?: number },
): Promise<Offline> {
  const args = ['osls', 'offline', 'start', '--stage', 'local', '--httpPort', String(options.httpPort), '--lambdaPort', String(options.lambdaPort), '--noSponsor', '--host', '127.0.0.1', ...(options.extraArgs ?? [])];
  const env = offlineEnv({ XRONOX_OFFLINE_S3_PORT: String(options.s3Port ?? (await freePort())), ...options.env });
  // detached: the child leads its own process group, so stop() ends npx, osls, its workers and the S3 server together.
  const child = spawn('npx', args, { cwd: service.path, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid!, 'SIGINT');
      } catch {
        // Already gone.
      }
      const killed = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }, 10_000);
      await exited;
      clearTimeout(killed);
    }
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop().then(() => reject(new Error(`osls offline did not report "Server ready" within ${options.timeoutMs ?? 120_000} ms:\n${output}`)));
    }, options.timeoutMs ?? 120_000);
    // osls prints its banner on stderr.
    const onData = () => {
      if (/Server ready/.test(output)) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stderr?.off('data', onData);
        resolve({ url: `http://127.0.0.1:${options.httpPort}`, lambdaUrl: `http://127.0.0.1:${options.lambdaPort}`, child, output: () => output, stop });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`osls offline exited (code ${code}, signal ${signal}) before it was ready:\n${output}`));
    });
  });
}
