import { execSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** The lines every benchmark report starts with: what ran it, so a reader can compare machines. */
export function describeMachine(folder: string): string[] {
  return [
    `cpu      ${cpuModel()} (nproc ${run('nproc') ?? os.availableParallelism()})`,
    `memory   ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `os       ${os.type()} ${os.release()} (${os.arch()})`,
    `node     ${process.version}`,
    `disk     ${run(`df -hT ${JSON.stringify(folder)} | tail -1`)?.replace(/\s+/g, ' ') ?? 'unknown'}`,
    `load     ${loadAverage()} (1/5/15 min average at start)`,
  ];
}

export function loadAverage(): string {
  return os.loadavg().map((l) => l.toFixed(2)).join(' ');
}

/** The model name from /proc/cpuinfo (os.cpus() shortens it on some VMs). */
function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    if (line) return line.slice(line.indexOf(':') + 1).trim();
  } catch {
    // not Linux: fall through
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

function run(command: string): string | undefined {
  try {
    return execSync(command, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

/** A command's output, trimmed; `''` when it fails or is missing. */
export function shell(command: string): string {
  return run(command) ?? '';
}

/** The installed version of a dependency, as its package.json says. */
export function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(new URL(`../../node_modules/${name}/package.json`, import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Flushes dirty pages (ours and the database servers') so one side does not pay for another's writes. */
export async function settle(): Promise<void> {
  execSync('sync');
  await new Promise((r) => setTimeout(r, 100));
}

/** A whole-number knob from the environment, at least `min`. */
export function envInt(name: string, fallback: number, min = 1): number {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`${name} must be a whole number of at least ${min}, got ${value}`);
  return n;
}
