/**
 * The operation log every reliability client keeps: one JSON line per event, written with
 * `fs.writeSync` before the client goes on. A line that `writeSync` returned for is in the page
 * cache, so it survives a SIGKILL of the process (only a machine crash could lose it).
 *
 * Each operation writes an `intent` line before the call (what it asks and what the resulting
 * version must hold), then exactly one of `ack` (the call resolved: the write is acknowledged),
 * `reject` (the call failed with a conflict: nothing may have been written) or `fail` (the index
 * store failed, say its server restarted: the write may or may not exist, and the client was
 * told so). An intent with none of them is in flight: its process died during the call, so the
 * write may or may not exist.
 */
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';

export type JsonData = Record<string, unknown>;

export const OP_KINDS = ['create', 'update', 'enrich', 'delete', 'restore'] as const;
export type OpKind = (typeof OP_KINDS)[number];

export interface IntentEntry {
  t: 'intent';
  /** Unique over every client: `${client}:${seq}`. It is the write's `reason`, so a stored version names the operation that wrote it. */
  tag: string;
  client: string;
  /** Wall-clock milliseconds (shared by every process of the machine). */
  w: number;
  kind: OpKind;
  /** Absent for a create (the id is assigned by the call). */
  id?: string;
  /** The head ov the write is conditioned on (absent for a create). */
  expectedOv?: number;
  /** The payload the new version must hold. */
  data: JsonData;
  /** Whether the new version is a deleted state. */
  deleted: boolean;
  /** enrich, delete: the data the client read at `expectedOv` (a read-consistency check). */
  base?: JsonData;
  /** restore: the version restored. */
  targetOv?: number;
}

export interface AckEntry {
  t: 'ack';
  tag: string;
  w: number;
  id: string;
  ov: number;
  cv: number;
  /** The version time the call returned (`createdAt`, `updatedAt` or `deletedAt`). */
  at: string;
}

export interface RejectEntry {
  t: 'reject';
  tag: string;
  w: number;
  /** The error's class name: `VersionConflictError` or `NotFoundError`. */
  error: string;
}

export interface FailEntry {
  t: 'fail';
  tag: string;
  w: number;
  /** The error's class name (`StorageError`) and message. */
  error: string;
}

export type LogEntry = IntentEntry | AckEntry | RejectEntry | FailEntry;

/** One client's log, appended synchronously. */
export class OpLog {
  readonly #fd: number;

  constructor(readonly path: string) {
    this.#fd = openSync(path, 'a');
  }

  write(entry: LogEntry): void {
    writeSync(this.#fd, `${JSON.stringify(entry)}\n`);
  }

  close(): void {
    closeSync(this.#fd);
  }
}

/**
 * Reads a log back. A last line without its newline was cut by a kill mid-write and is dropped:
 * an ack lost that way leaves its op in flight, which the checker allows to be present or not.
 */
export function readOpLog(path: string): LogEntry[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  const complete = text.endsWith('\n') ? text : text.slice(0, text.lastIndexOf('\n') + 1);
  return complete
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as LogEntry);
}
