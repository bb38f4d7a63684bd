/** Where a crash trial's SIGKILL lands: see `crash-writer.ts`, which runs them. */
export const KILL_MODES = ['signal', 'after-commit', 'after-ack', 'before-put', 'after-put'] as const;
export type KillMode = (typeof KILL_MODES)[number];

export interface CrashWriterArgs {
  config: unknown;
  logPath: string;
  client: string;
  seed: number;
  /**
   * Where the writer is killed; `survive`: it is not, and after `ops` operations it shuts down and
   * exits; `repair`: it writes nothing, runs `repair()` and is killed as its k-th blob put starts
   * (or exits, when the repair needs fewer puts).
   */
  mode: KillMode | 'survive' | 'repair';
  /** The kill comes at the k-th event of the mode's kind (1-based). */
  k: number;
  /** Operations of a `survive` writer. */
  ops?: number;
  /** The records to work on (besides its own creations); default every record in the store. */
  sharedIds?: string[];
  /** A start line shared with another writer: write `ready`, then wait for `go` to exist. */
  barrier?: { ready: string; go: string };
}
