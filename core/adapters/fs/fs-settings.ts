import type { BlobStore } from '../../contracts/blob-store.js';
import type { AdapterMembers } from '../../store/guard.js';

/** The local filesystem blob store's plain members, known before its module is loaded. */
export const FS_BLOB_STORE_MEMBERS = {
  name: 'fs',
  capabilities: { remotePresign: false, conditionalWrites: true },
  /** A local write, fsync and rename: well under a second even on a busy disk; the margin is for a stalled process. */
  maxPutMs: 5_000,
  /** No copy of its own: `copyBlob` reads and writes the file (a local copy costs the same). */
  copy: undefined,
} as const satisfies AdapterMembers<BlobStore>;
