import type { SpacesConnectionConfig } from '../../config/schema.js';
import type { BlobStore } from '../../contracts/blob-store.js';
import type { AdapterMembers } from '../../store/guard.js';

/**
 * The S3 blob store's settings that need no SDK: its client's timeouts and retries, and what the
 * registry says of the store before its module (and the AWS SDK) is loaded.
 */

/** Retries cover throttling (503 SlowDown) and 5xx with exponential backoff and jitter. */
export const MAX_ATTEMPTS = 5;
/** The SDK's standard retry backoff tops out at 20 s between attempts. */
const MAX_RETRY_BACKOFF_MS = 20_000;
/** Time to open a socket, and by default to wait for a response once a request is sent. */
export const CONNECTION_TIMEOUT_MS = 5_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;

/** The longest one request on this connection can take, every attempt and backoff included. */
export function maxRequestMs(connection: Pick<SpacesConnectionConfig, 'requestTimeoutMs'>): number {
  return MAX_ATTEMPTS * (CONNECTION_TIMEOUT_MS + (connection.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS)) + (MAX_ATTEMPTS - 1) * MAX_RETRY_BACKOFF_MS;
}

/** The S3 blob store's plain members for a connection (it has no `check`: S3 buckets are checked by their first use). */
export function s3BlobStoreMembers(connection: Pick<SpacesConnectionConfig, 'requestTimeoutMs' | 'conditionalWrites'>) {
  return {
    name: 's3',
    capabilities: { remotePresign: true, conditionalWrites: connection.conditionalWrites ?? true },
    // Twice one request's worst case: a multipart upload's parts go four at a time after its start.
    maxPutMs: 2 * maxRequestMs(connection),
    check: undefined,
  } as const satisfies AdapterMembers<BlobStore>;
}
