/**
 * A real S3-protocol server for tests: s3rver (https://github.com/jamhall/s3rver) in a child process
 * on 127.0.0.1, so a test can stop it mid-stream and start it again on the same port with the same
 * data to simulate an outage.
 *
 * ```ts
 * const s3 = await startS3rver({ buckets: ['blobs'] });
 * try {
 *   const client = s3.client();            // path-style, WHEN_REQUIRED checksums
 *   await s3.stop();                       // connection refused from now on (data stays on disk)
 *   await s3.start();                      // same port, same buckets and objects
 * } finally {
 *   await s3.dispose();                    // stop + remove the data directory
 * }
 * ```
 *
 * What s3rver 3.7.1 is (and is not), as seen from @aws-sdk/client-s3 on Node 20:
 * - The child runs with `--openssl-legacy-provider`: s3rver makes ListObjectsV2 continuation tokens
 *   with DES, and without the legacy provider every truncated listing (even one asked with
 *   StartAfter) answers HTTP 500.
 * - It checks no SigV4 signatures, header or presigned (only that the access key is its own,
 *   `S3RVER`; another one gets 403 InvalidAccessKeyId), and no ACLs (anonymous GETs work).
 * - Conditional writes are ignored: `If-None-Match: *` / `If-Match` on PUT just overwrite.
 *   On GET, `If-None-Match` gives 304 but `If-Match` is ignored.
 * - Clients must not send the SDK's default flexible checksums: s3rver stores the `aws-chunked`
 *   framing of a streamed body as the object's bytes. {@link S3rverHandle.client} sets
 *   `requestChecksumCalculation`/`responseChecksumValidation` to `'WHEN_REQUIRED'`.
 * - ETags are the MD5 of the whole body, also for multipart uploads (no `-<parts>` suffix).
 *   LastModified has one-second resolution.
 * - It is backed by plain files (one folder per bucket, one file per key) and lists keys in the
 *   order of a directory walk (file names `<key>._S3rver_object`, sorted bytewise). That can
 *   differ from S3's order when a key is a prefix of another (`a` / `a-b`, `v1` / `v1.2`) or a
 *   "folder" `x/` has a sibling key `x` + a character below `/` (`x/y` / `x-z`, `x.z`); then a
 *   listing is out of order and paging (ContinuationToken or StartAfter) silently skips keys.
 *   Equal-length key names under one prefix are always in order.
 * - The child patches s3rver's PUT to write a side file and rename it into place when complete
 *   (see s3rver-process.mjs): unpatched, an upload cut off by {@link S3rverHandle.stop} leaves a
 *   truncated object that is served after {@link S3rverHandle.start}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { tempDir } from './temp.js';

export interface S3rverHandle {
  /** `http://127.0.0.1:<port>`; the same across {@link stop}/{@link start}. */
  readonly endpoint: string;
  readonly port: number;
  /** Always `'us-east-1'` (s3rver only knows that region). */
  readonly region: string;
  /** s3rver's built-in account: `'S3RVER'` / `'S3RVER'`. Any other access key gets `InvalidAccessKeyId`. */
  readonly accessKey: string;
  readonly secretKey: string;
  /** The data directory (one sub-folder per bucket). Removed by {@link dispose}. */
  readonly directory: string;
  /** Whether the server process is up. */
  readonly running: boolean;
  /** Creates buckets through the S3 API; a bucket that already exists is fine. */
  createBuckets(names: string[]): Promise<void>;
  /** SIGTERM (SIGKILL after a short grace) and wait for exit; open connections are dropped. Data stays. No-op when stopped. */
  stop(): Promise<void>;
  /** Starts the server again on the same port with the same data. No-op when running. */
  start(): Promise<void>;
  /** {@link stop}, destroy the clients made by {@link client}, remove the data directory. Idempotent. */
  dispose(): Promise<void>;
  /**
   * A new S3Client for this server: path-style, `WHEN_REQUIRED` checksums, s3rver's credentials.
   * `overrides` are merged on top (e.g. `{ maxAttempts: 1 }` so an outage fails fast).
   */
  client(overrides?: Partial<S3ClientConfig>): S3Client;
}

/**
 * The spaces connection for a running s3rver: path-style, its test credentials, and
 * `conditionalWrites: false`, since s3rver ignores `If-None-Match` (see above).
 */
export function s3rverConnection(server: Pick<S3rverHandle, 'endpoint' | 'region' | 'accessKey' | 'secretKey'>) {
  return {
    endpoint: server.endpoint,
    region: server.region,
    accessKey: server.accessKey,
    secretKey: server.secretKey,
    forcePathStyle: true,
    conditionalWrites: false,
  };
}

export interface StartS3rverOptions {
  /** Buckets to create before the server reports ready (first start only; they persist on disk). */
  buckets?: string[];
}

const SCRIPT = fileURLToPath(new URL('./s3rver-process.mjs', import.meta.url));
const READY_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 3_000;
/** Restart attempts while the port is still held (EADDRINUSE), 250 ms apart. */
const RESTART_ATTEMPTS = 20;
const STDERR_TAIL = 16_384;

/**
 * Every running child and undisposed data directory: if the test process exits without disposing,
 * the children are killed and the directories removed. If it dies harder than that (SIGKILL), each
 * child still exits on its own when its IPC channel closes; only the directory is left behind.
 */
const live = new Set<ChildProcess>();
const directories = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of live) c.kill('SIGKILL');
    for (const d of directories) {
      try {
        rmSync(d, { recursive: true, force: true });
      } catch {
        // best effort: the killed child may still be writing into it
      }
    }
  });
}
function track(child: ChildProcess): void {
  installExitHook();
  live.add(child);
  child.once('exit', () => live.delete(child));
}

/** Why a child did not become ready; `code` is what s3rver failed with (e.g. `EADDRINUSE`). */
export class S3rverStartError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'S3rverStartError';
  }
}

function spawnServer(port: number, directory: string, buckets: string[]): Promise<{ child: ChildProcess; port: number }> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // The test runner's NODE_OPTIONS (inspector, loaders) must not leak into the server.
  delete env.NODE_OPTIONS;
  env.S3RVER_PORT = String(port);
  env.S3RVER_DIRECTORY = directory;
  env.S3RVER_BUCKETS = JSON.stringify(buckets);
  // The server is a Node program (s3rver, with Node's --openssl-legacy-provider), also when the
  // tests themselves run under Bun or Deno (test/edge/runtimes.test.ts).
  const node = process.versions.bun !== undefined || 'Deno' in globalThis ? (process.env.XRONOX_NODE ?? 'node') : process.execPath;
  const child = spawn(node, ['--openssl-legacy-provider', SCRIPT], {
    env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  track(child);

  let stderr = '';
  let stdout = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_TAIL);
  });
  child.stdout?.setEncoding('utf8');

  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | undefined, readyPort?: number) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.off('exit', onExit);
      child.off('error', onError);
      if (err) {
        child.kill('SIGKILL');
        reject(err);
        return;
      }
      // Do not keep the test process alive for the server's sake; the exit hook still kills it.
      child.unref();
      // Bun's IPC channel has no unref.
      (child.channel as { unref?: () => void } | undefined)?.unref?.();
      unrefStream(child.stdout);
      unrefStream(child.stderr);
      resolve({ child, port: readyPort! });
    };
    const failure = (what: string) => {
      const code = /S3RVER_FAILED (\S+)/.exec(stderr)?.[1];
      return new S3rverStartError(`s3rver ${what} (port ${port}, ${directory})${stderr ? `:\n${stderr}` : ''}`, code, stderr);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
      // Let the stderr pipe drain first so the error carries the child's message.
      setImmediate(() => finish(failure(`exited before it was ready (code ${code}, signal ${signal})`)));
    const onError = (err: Error) => finish(err);
    const timer = setTimeout(() => finish(failure(`was not ready within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    child.once('exit', onExit);
    child.once('error', onError);
    child.stdout?.on('data', (chunk: string) => {
      if (settled) return;
      stdout += chunk;
      const match = /S3RVER_READY (\{.*\})\n/.exec(stdout);
      if (match?.[1]) finish(undefined, (JSON.parse(match[1]) as { port: number }).port);
    });
  });
}

function unrefStream(stream: unknown): void {
  (stream as { unref?: () => void } | null)?.unref?.();
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Keep the event loop alive until the exit is seen (the child was unref'd once ready).
  child.ref();
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    exited.then(() => false),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), STOP_GRACE_MS))),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    child.kill('SIGKILL');
    await exited;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Starts s3rver in a child process on 127.0.0.1 at a free port, with a fresh data directory. */
export async function startS3rver(options: StartS3rverOptions = {}): Promise<S3rverHandle> {
  const dir = tempDir('xronox-s3rver');
  installExitHook();
  directories.add(dir.path);
  let child: ChildProcess | undefined;
  let port: number;
  try {
    // Port 0: the OS picks a free port inside the child, so there is no race with other tests.
    ({ child, port } = await spawnServer(0, dir.path, options.buckets ?? []));
  } catch (err) {
    dir.cleanup();
    directories.delete(dir.path);
    throw err;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  const clients = new Set<S3Client>();
  let disposed = false;

  const isRunning = () => child !== undefined && child.exitCode === null && child.signalCode === null;

  const handle: S3rverHandle = {
    endpoint,
    port,
    region: 'us-east-1',
    accessKey: 'S3RVER',
    secretKey: 'S3RVER',
    directory: dir.path,
    get running() {
      return isRunning();
    },

    client(overrides = {}) {
      const client = new S3Client({
        endpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
        forcePathStyle: true,
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        ...overrides,
      });
      clients.add(client);
      return client;
    },

    async createBuckets(names) {
      const client = handle.client();
      try {
        for (const name of names) {
          try {
            await client.send(new CreateBucketCommand({ Bucket: name }));
          } catch (err) {
            const code = (err as { name?: string }).name;
            if (code !== 'BucketAlreadyExists' && code !== 'BucketAlreadyOwnedByYou') throw err;
          }
        }
      } finally {
        client.destroy();
        clients.delete(client);
      }
    },

    async stop() {
      if (child) await stopChild(child);
      child = undefined;
    },

    async start() {
      if (disposed) throw new Error('s3rver handle is disposed');
      if (isRunning()) return;
      for (let attempt = 1; ; attempt++) {
        try {
          ({ child } = await spawnServer(port, dir.path, []));
          return;
        } catch (err) {
          // The port can stay taken for a moment (or by a stray outgoing socket); try again.
          if (!(err instanceof S3rverStartError) || err.code !== 'EADDRINUSE' || attempt >= RESTART_ATTEMPTS) throw err;
          await sleep(250);
        }
      }
    },

    async dispose() {
      if (disposed) return;
      disposed = true;
      await handle.stop();
      for (const client of clients) client.destroy();
      clients.clear();
      if (existsSync(dir.path)) dir.cleanup();
      directories.delete(dir.path);
    },
  };
  return handle;
}
