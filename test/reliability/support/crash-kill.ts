/** Where a crash trial's SIGKILL lands: see `crash-writer.ts`, which runs them. */
export const KILL_MODES = ['signal', 'after-commit', 'after-ack', 'before-put', 'after-put'] as const;
export type KillMode = (typeof KILL_MODES)[number];

/**
 * Kill points inside a group commit (core/store/group-commit.ts), for a writer running several
 * clients at once (`clients`): as the k-th transaction carrying two or more commits goes to the
 * index driver (`group-before`: none of it committed), or as it returns from the driver
 * (`group-after`: all of it committed, none of it acknowledged).
 */
export const GROUP_KILL_MODES = ['group-before', 'group-after'] as const;
export type GroupKillMode = (typeof GROUP_KILL_MODES)[number];

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
  mode: KillMode | GroupKillMode | 'survive' | 'repair';
  /** The kill comes at the k-th event of the mode's kind (1-based). */
  k: number;
  /** Operations of a `survive` writer. */
  ops?: number;
  /** The records to work on (besides its own creations); default every record in the store. */
  sharedIds?: string[];
  /**
   * Clients the writer runs at once in its process (default 1), so that their commits are grouped:
   * client i is named `${client}${i}` and logs to `clientLogPath(logPath, i)`.
   */
  clients?: number;
  /** A start line shared with another writer: write `ready`, then wait for `go` to exist. */
  barrier?: { ready: string; go: string };
}

/** Where client `i` of a writer running several (`CrashWriterArgs.clients`) keeps its log. */
export function clientLogPath(logPath: string, i: number): string {
  return logPath.replace(/\.jsonl$/, `-${i}.jsonl`);
}
