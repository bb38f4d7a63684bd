import { type ChildProcess, spawn } from 'node:child_process';

export interface TsxRun {
  code: number | null;
  /** The signal that ended the process, if one did: `SIGKILL` when `killAfterMs` ran out. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a TypeScript file in its own Node process (through tsx) to its end and collects its
 * output. The child gets this process's environment without `NODE_OPTIONS` (the test runner's
 * hooks are not the child's) and without the variables named in `dropEnv`. `onOutput` sees the
 * output so far each time more arrives, with the child (to signal it at a given point).
 * `killAfterMs` is a hang detector, not a speed limit: a child still running then is killed
 * (`signal: 'SIGKILL'`), so a hang fails the test instead of outliving it.
 */
export function runTsx(
  script: string,
  args: readonly string[],
  options: { dropEnv?: readonly string[]; killAfterMs?: number; onOutput?: (output: { stdout: string; stderr: string }, child: ChildProcess) => void } = {},
): Promise<TsxRun> {
  const env = { ...process.env };
  for (const name of ['NODE_OPTIONS', ...(options.dropEnv ?? [])]) delete env[name];
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    options.onOutput?.({ stdout, stderr }, child);
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    options.onOutput?.({ stdout, stderr }, child);
  });
  const watchdog = options.killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), options.killAfterMs);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(watchdog);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
