import type { BlobStore } from '../contracts/blob-store.js';
import { NotFoundError } from '../errors.js';

/** An object's address. */
export interface BlobAddress {
  bucket: string;
  key: string;
}

/**
 * Copies an object, replacing whatever is at `to`: with the store's own `copy` when it has one
 * (S3 CopyObject: the bytes never leave the service), else by a get and a put. A missing source
 * is a `NotFoundError`, and nothing is written.
 */
export async function copyBlob(blob: BlobStore, from: BlobAddress, to: BlobAddress, options: { contentType?: string } = {}): Promise<void> {
  if (typeof blob.copy === 'function') return blob.copy(from.bucket, from.key, to.bucket, to.key);
  const bytes = await blob.get(from.bucket, from.key);
  if (!bytes) throw new NotFoundError(`Cannot copy ${from.bucket}/${from.key}: there is no such object`);
  await blob.put(to.bucket, to.key, bytes, options.contentType ? { contentType: options.contentType } : {});
}
