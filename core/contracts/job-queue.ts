/**
 * The job queue port: where a scheduled coordinator puts the pieces of a job's work (one per
 * database) for workers to take, each within its own invocation (SQS in Lambda,
 * `core/adapters/sqs`). Delivery is at least once and unordered; the jobs are idempotent and
 * their leases keep two workers off one database, so a duplicate costs one lease check.
 */
export interface JobQueue {
  /** Short adapter name used in errors and logs, e.g. `sqs`. */
  readonly name: string;
  /**
   * Enqueues every message (its body, UTF-8 text), each visible after `delaySeconds` (0–900,
   * default 0). Resolves once every one is accepted; rejects with a `StorageError` naming how many
   * were refused and why (none is dropped silently: what was accepted stays accepted).
   */
  send(bodies: readonly string[], options?: { delaySeconds?: number }): Promise<void>;
  /** Releases the client. */
  close(): Promise<void>;
}
