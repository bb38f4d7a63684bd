import { sha256Hex } from '../../foundation/digest.js';
import { S3Client } from '@aws-sdk/client-s3';
import type { SpacesConnectionConfig } from '../../config/schema.js';
import { CONNECTION_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS, MAX_ATTEMPTS } from './s3-settings.js';

/**
 * One S3Client per spaces connection per process, created on first use and shared by every
 * Xronox instance (and every warm Lambda invocation) that names the same connection. Clients
 * are reference-counted: the last instance to let go destroys the client's sockets, so one
 * instance shutting down never breaks another.
 */
const pool = new Map<string, { client: S3Client; users: number }>();

export function acquireS3Client(connection: SpacesConnectionConfig): { client: S3Client; release: () => void } {
  const key = poolKey(connection);
  let entry = pool.get(key);
  if (!entry) {
    entry = { client: createClient(connection), users: 0 };
    pool.set(key, entry);
  }
  entry.users++;
  let released = false;
  const held = entry;
  return {
    client: held.client,
    release: () => {
      if (released) return;
      released = true;
      held.users--;
      if (held.users === 0 && pool.get(key) === held) {
        pool.delete(key);
        held.client.destroy();
      }
    },
  };
}

/** How many distinct clients the process holds (for tests of reuse). */
export function pooledClientCount(): number {
  return pool.size;
}

function createClient(connection: SpacesConnectionConfig): S3Client {
  return new S3Client({
    region: connection.region,
    ...(connection.endpoint ? { endpoint: connection.endpoint } : {}),
    forcePathStyle: connection.forcePathStyle ?? false,
    // Without keys, the SDK's default chain: the Lambda role, an instance profile, AWS_* variables.
    ...(connection.accessKey !== undefined && connection.secretKey !== undefined
      ? { credentials: { accessKeyId: connection.accessKey, secretAccessKey: connection.secretKey } }
      : {}),
    // A server that accepts connections and never answers must not stall the blob sync forever:
    // the request fails (by default the SDK only logs a warning), the SDK retries it, and the
    // outbox keeps the work.
    requestHandler: { connectionTimeout: CONNECTION_TIMEOUT_MS, requestTimeout: connection.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, throwOnRequestTimeout: true },
    maxAttempts: MAX_ATTEMPTS,
    retryMode: 'standard',
    // Checksums only where S3 requires them: S3-compatible servers differ in what they accept,
    // and some corrupt streamed bodies that carry trailing checksums.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

function poolKey(connection: SpacesConnectionConfig): string {
  // The secret is part of a client's identity but never kept in clear text as a map key.
  const secret = connection.secretKey === undefined ? null : sha256Hex(connection.secretKey);
  return JSON.stringify([connection.endpoint ?? null, connection.region, connection.forcePathStyle ?? false, connection.accessKey ?? null, secret, connection.requestTimeoutMs ?? null]);
}
