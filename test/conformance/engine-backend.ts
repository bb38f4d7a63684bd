import type { BlobStore } from '../../core/contracts/blob-store.js';
import type { XronoxConfigInput } from '../../core/config/schema.js';

/** One index-store × blob-store pair the engine conformance suite runs against. */
export interface EngineBackend {
  name: string;
  /** Why this pair cannot run here (printed, never silent); undefined when it runs. */
  skip?: string;
  /** Fresh, isolated connections for one test file. */
  setup(): Promise<EngineBackendInstance>;
}

export interface EngineBackendInstance {
  /** The connection part of a config: `dbConnections`, `spacesConnections`, `localStorage`. */
  connections: Pick<XronoxConfigInput, 'dbConnections' | 'spacesConnections' | 'localStorage'>;
  dbConnRef: string;
  /** The connection of messaging and identities (document databases), when `dbConnRef` holds record databases only. Default `dbConnRef`. */
  documentConnRef?: string;
  /** Other top-level config the backend needs. */
  settings?: Partial<XronoxConfigInput>;
  /** Undefined: blobs go to localStorage. */
  spaceConnRef?: string;
  /** A blob store on the same storage, for inspecting what the engine wrote. */
  inspect: BlobStore;
  /** How buckets are named: given a database name, the bucket each kind lands in. */
  bucketFor(dbName: string, kind: 'records' | 'versions' | 'content' | 'backups'): string;
  /** Extra fields for a database entry (e.g. its own `bucket`), so tests never share a key space. */
  databaseFields?(dbName: string): Record<string, string>;
  /** Creates whatever storage those databases need before a test uses them (e.g. S3 buckets). */
  prepare?(dbNames: string[]): Promise<void>;
  cleanup(): Promise<void>;
}
