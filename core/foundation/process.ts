import type * as NodeFs from 'node:fs';
import { builtinModule, hostProcess } from './host.js';
import { randomUUID } from './digest.js';

let tag: string | undefined;

/**
 * `pid:<pid>:<pid namespace>`: names this process in lock owners (`acquireLock`), so that a store
 * whose processes share one host (SQLite) can tell the lease of a process that is gone. The
 * namespace (Linux's `/proc/self/ns/pid`) keeps containers with their own process ids apart;
 * where it cannot be read the tag is `pid:<pid>`, which no store reads as gone. A runtime with no
 * process ids (a Workers isolate) is `isolate:<random UUID>`, which no store reads as gone either.
 */
export function processTag(): string {
  if (tag !== undefined) return tag;
  const pid = hostProcess()?.pid;
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) {
    tag = `isolate:${randomUUID()}`;
    return tag;
  }
  let namespace: string | undefined;
  try {
    const fs = builtinModule<typeof NodeFs>('node:fs');
    namespace = fs === undefined ? undefined : /\[(\d+)\]/.exec(fs.readlinkSync('/proc/self/ns/pid'))?.[1];
  } catch {
    namespace = undefined;
  }
  tag = namespace === undefined ? `pid:${pid}` : `pid:${pid}:${namespace}`;
  return tag;
}

/**
 * Whether a lease `owner` names a process of this host that is gone: the owner ends in
 * `@` + `processTag()` of a process (`…@pid:<pid>:<namespace>`, as the blob sync's do) in this
 * process-id namespace, and signalling it says it does not exist. A store whose processes all
 * share one host (SQLite) then treats the lease as expired, so a crashed writer's records are
 * repaired at once instead of after the lease. Any doubt (no namespace, another namespace such as
 * another container's, a process we may not signal, this process) counts as alive.
 */
export function processGone(owner: string): boolean {
  const m = /@pid:(\d+):(\d+)$/.exec(owner);
  const here = /:(\d+)$/.exec(processTag())?.[1];
  if (!m || here === undefined || m[2] !== here) return false;
  const pid = Number(m[1]);
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
