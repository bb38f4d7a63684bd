import { mkdirSync, statSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Creates a folder and its missing parents, one `mkdir` per level, and fails with the first
 * level's error. Node's own `mkdir(path, { recursive: true })` is not used: on a parent that
 * exists but refuses new entries with ENOENT (`/proc`, `/sys`) it retries forever, at full CPU,
 * and the synchronous form never returns, so not even a signal handler runs (Node 20).
 * Here every level is tried at most twice: once on the way up, once on the way down.
 */
export async function makeFolder(path: string): Promise<void> {
  const missing: string[] = [];
  for (let current = path; ; current = dirname(current)) {
    try {
      await mkdir(current);
    } catch (err) {
      if (code(err) === 'EEXIST') {
        if (!(await stat(current)).isDirectory()) throw notAFolder(current);
      } else if (code(err) === 'ENOENT' && dirname(current) !== current) {
        missing.push(current);
        continue;
      } else throw err;
    }
    break;
  }
  // Top down; a folder another process made meanwhile is fine.
  for (const folder of missing.reverse()) {
    try {
      await mkdir(folder);
    } catch (err) {
      if (code(err) !== 'EEXIST' || !(await stat(folder)).isDirectory()) throw code(err) === 'EEXIST' ? notAFolder(folder) : err;
    }
  }
}

/** `makeFolder`, synchronously (for stores that open their file in a constructor). */
export function makeFolderSync(path: string): void {
  const missing: string[] = [];
  for (let current = path; ; current = dirname(current)) {
    try {
      mkdirSync(current);
    } catch (err) {
      if (code(err) === 'EEXIST') {
        if (!statSync(current).isDirectory()) throw notAFolder(current);
      } else if (code(err) === 'ENOENT' && dirname(current) !== current) {
        missing.push(current);
        continue;
      } else throw err;
    }
    break;
  }
  for (const folder of missing.reverse()) {
    try {
      mkdirSync(folder);
    } catch (err) {
      if (code(err) !== 'EEXIST' || !statSync(folder).isDirectory()) throw code(err) === 'EEXIST' ? notAFolder(folder) : err;
    }
  }
}

/**
 * A short reason for a filesystem error, for messages that name a path: the code and what it
 * means for a data folder (`ENOTDIR: a part of the path is a file, not a folder`).
 */
export function fsReason(err: unknown): string {
  const c = code(err);
  const meaning = c ? FS_REASONS[c] : undefined;
  if (c && meaning) return `${c}: ${meaning}`;
  return err instanceof Error ? err.message : String(err);
}

const FS_REASONS: Readonly<Record<string, string>> = {
  ENOTDIR: 'a part of the path is a file, not a folder',
  EEXIST: 'a file is in the way of a folder',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  ENOENT: 'a part of the path does not exist and cannot be created there',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EISDIR: 'a folder is in the way of a file',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'the path is too long',
  EIO: 'input/output error',
};

function code(err: unknown): string | undefined {
  const c = (err as NodeJS.ErrnoException | null)?.code;
  return typeof c === 'string' ? c : undefined;
}

function notAFolder(path: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`ENOTDIR: not a directory, mkdir '${path}'`);
  err.code = 'ENOTDIR';
  err.path = path;
  err.syscall = 'mkdir';
  return err;
}
