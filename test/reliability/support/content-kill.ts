/** Where a content crash trial's SIGKILL lands: see `content-writer.ts`, which runs them. */
export const CONTENT_KILL_MODES = ['signal', 'before-put', 'after-put', 'after-commit'] as const;
export type ContentKillMode = (typeof CONTENT_KILL_MODES)[number];

export interface ContentWriterArgs {
  config: unknown;
  logPath: string;
  seed: number;
  mode: ContentKillMode;
  k: number;
}

export interface ContentAck {
  op: 'create' | 'update' | 'revert' | 'restore' | 'delete';
  id: string;
  ov: number;
  /** SHA-256 of the version's content; null for a deleted version. */
  sha: string | null;
}

/** The collection the content writer works on (its `file` property is content). */
export const contentRoute = { databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'files' } as const;

