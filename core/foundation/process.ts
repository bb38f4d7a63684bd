import { readlinkSync } from 'node:fs';

let tag: string | undefined;

/**
 * `pid:<pid>:<pid namespace>`: names this process in lock owners (`acquireLock`), so that a store
 * whose processes share one host (SQLite) can tell the lease of a process that is gone. The
 * namespace (Linux's `/proc/self/ns/pid`) keeps containers with their own process ids apart;
 * where it cannot be read the tag is `pid:<pid>`, which no store reads as gone.
 */
export function processTag(): string {
  if (tag !== undefined) return tag;
  let namespace: string | undefined;
  try {
    namespace = /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1];
  } catch {
    namespace = undefined;
  }
  tag = namespace === undefined ? `pid:${process.pid}` : `pid:${process.pid}:${namespace}`;
  return tag;
}
