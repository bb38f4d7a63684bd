import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { SpacesConnectionConfig } from '../../config/schema.js';
import type { BlobInfo, BlobListing, BlobStore, PutOptions } from '../../contracts/blob-store.js';
import { ConflictError, NotFoundError, StorageError, ValidationError } from '../../errors.js';
import { acquireS3Client } from './s3-client-pool.js';
import { s3BlobStoreMembers } from './s3-settings.js';

export interface S3BlobStoreOptions {
  /** Name of the spaces connection, for error messages. */
  ref: string;
  connection: SpacesConnectionConfig;
  /** Bodies larger than this go up as multipart uploads. Default 8 MiB. */
  multipartThreshold?: number;
}

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;
const PART_SIZE = 8 * 1024 * 1024;
const CREDENTIAL_ERRORS = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'InvalidToken', 'ExpiredToken']);

/**
 * S3 and S3-compatible storage (AWS, MinIO, DigitalOcean Spaces, Cloudflare R2, Ceph) through
 * the AWS SDK v3: plain PUTs for small objects, multipart uploads (lib-storage) above a
 * threshold, presigned GET URLs (s3-request-presigner), and the SDK's standard retries for
 * throttling and 5xx. Credential failures and precondition failures become named errors.
 */
export class S3BlobStore implements BlobStore {
  readonly name = 's3';
  readonly capabilities: BlobStore['capabilities'];
  readonly maxPutMs: number;
  readonly #ref: string;
  readonly #client: S3Client;
  readonly #release: () => void;
  readonly #multipartThreshold: number;

  constructor(options: S3BlobStoreOptions) {
    this.#ref = options.ref;
    const { client, release } = acquireS3Client(options.connection);
    this.#client = client;
    this.#release = release;
    this.#multipartThreshold = options.multipartThreshold ?? PART_SIZE;
    const members = s3BlobStoreMembers(options.connection);
    this.capabilities = members.capabilities;
    this.maxPutMs = members.maxPutMs;
  }

  async put(bucket: string, key: string, body: Uint8Array, options: PutOptions = {}): Promise<void> {
    checkKey(key);
    const params = {
      Bucket: bucket,
      Key: key,
      Body: body,
      ...(options.contentType ? { ContentType: options.contentType } : {}),
      ...(options.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
    };
    await this.#call('put', bucket, key, async () => {
      if (body.byteLength <= this.#multipartThreshold) {
        await this.#client.send(new PutObjectCommand(params));
        return;
      }
      await new Upload({ client: this.#client, params, partSize: PART_SIZE, queueSize: 4, leavePartsOnError: false }).done();
    });
  }

  async get(bucket: string, key: string): Promise<Uint8Array | null> {
    checkKey(key);
    return this.#call('get', bucket, key, async () => {
      try {
        const res = await this.#client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return res.Body ? await readBody(res.Body, res.ContentLength) : new Uint8Array();
      } catch (err) {
        if (isMissing(err)) return null;
        throw err;
      }
    });
  }

  async head(bucket: string, key: string): Promise<BlobInfo | null> {
    checkKey(key);
    return this.#call('head', bucket, key, async () => {
      try {
        const res = await this.#client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return {
          size: res.ContentLength ?? 0,
          contentType: res.ContentType,
          lastModified: (res.LastModified ?? new Date(0)).toISOString(),
        };
      } catch (err) {
        if (isMissing(err)) return null;
        throw err;
      }
    });
  }

  async delete(bucket: string, key: string): Promise<void> {
    checkKey(key);
    await this.#call('delete', bucket, key, async () => {
      try {
        await this.#client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
    });
  }

  async list(bucket: string, prefix: string, options: { startAfter?: string; limit?: number } = {}): Promise<BlobListing> {
    const limit = options.limit ?? 1000;
    return this.#call('list', bucket, prefix, async () => {
      const keys: string[] = [];
      let startAfter = options.startAfter;
      // S3 may return fewer keys than asked for; keep going until the page is full or the end.
      for (;;) {
        const res = await this.#client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: Math.min(1000, limit + 1 - keys.length), ...(startAfter ? { StartAfter: startAfter } : {}) }),
        );
        const page = (res.Contents ?? []).map((o) => o.Key).filter((k): k is string => typeof k === 'string');
        keys.push(...page);
        if (keys.length > limit || !res.IsTruncated || page.length === 0) break;
        startAfter = page[page.length - 1];
      }
      const selected = keys.slice(0, limit);
      return { keys: selected, nextStartAfter: keys.length > limit ? (selected[selected.length - 1] ?? null) : null };
    });
  }

  async copy(fromBucket: string, fromKey: string, toBucket: string, toKey: string): Promise<void> {
    checkKey(fromKey);
    checkKey(toKey);
    await this.#call('copy', toBucket, toKey, async () => {
      try {
        // Keys are plain segments (checkKey), so the copy source needs no escaping. One request up
        // to 5 GB, which version objects and snapshot parts never reach.
        await this.#client.send(new CopyObjectCommand({ Bucket: toBucket, Key: toKey, CopySource: `${fromBucket}/${fromKey}` }));
      } catch (err) {
        if (isMissing(err)) throw new NotFoundError(`Cannot copy s3://${fromBucket}/${fromKey}: there is no such object`);
        throw err;
      }
    });
  }

  async presign(bucket: string, key: string, ttlSeconds: number): Promise<string> {
    checkKey(key);
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > 7 * 24 * 3600) {
      throw new ValidationError('ttlSeconds must be a whole number from 1 to 604800 (7 days)', { path: 'ttlSeconds' });
    }
    return getSignedUrl(this.#client, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: ttlSeconds });
  }

  async close(): Promise<void> {
    this.#release();
  }

  async #call<T>(operation: string, bucket: string, key: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      if (err instanceof NotFoundError) throw err;
      const name = errorName(err);
      if (name === 'PreconditionFailed' || status(err) === 412) {
        throw new ConflictError(`s3://${bucket}/${key} already exists (a create-only write was refused)`, { cause: err });
      }
      if (CREDENTIAL_ERRORS.has(name)) {
        throw new StorageError('s3', operation, err, `S3 refused the credentials of spaces connection "${this.#ref}" (${name}) for bucket ${bucket}`);
      }
      if (name === 'NoSuchBucket') {
        throw new StorageError('s3', operation, err, `Bucket ${bucket} of spaces connection "${this.#ref}" does not exist`);
      }
      throw new StorageError('s3', operation, err, `S3 ${operation} of s3://${bucket}/${key} failed on spaces connection "${this.#ref}": ${name || 'network error'}`);
    }
  }
}

/**
 * An object's body as one buffer. With its length known, the chunks are copied into a buffer of
 * that size as they arrive; the SDK's `transformToByteArray` keeps every chunk and then
 * concatenates them, which holds a large object (content, up to `limits.maxContentBytes`) twice.
 * A body that ends short of its announced length is an error, never a shorter object.
 */
async function readBody(body: NonNullable<GetObjectCommandOutput['Body']>, length: number | undefined): Promise<Uint8Array> {
  const stream = body as unknown as AsyncIterable<Uint8Array>;
  if (length === undefined || typeof stream[Symbol.asyncIterator] !== 'function') return body.transformToByteArray();
  const out = Buffer.allocUnsafeSlow(length);
  let filled = 0;
  for await (const chunk of stream) {
    if (filled + chunk.byteLength > length) throw new Error(`the body is longer than its Content-Length of ${length} bytes`);
    out.set(chunk, filled);
    filled += chunk.byteLength;
  }
  if (filled !== length) throw new Error(`the body ended after ${filled} of its ${length} bytes`);
  return out;
}

function checkKey(key: string): void {
  const parts = key.split('/');
  for (const part of parts) {
    if (!SEGMENT.test(part) || part === '.' || part === '..') throw new ValidationError(`Invalid object key ${JSON.stringify(key.slice(0, 200))}`);
  }
}

function isMissing(err: unknown): boolean {
  const name = errorName(err);
  return name === 'NoSuchKey' || name === 'NotFound' || (status(err) === 404 && name !== 'NoSuchBucket');
}

function errorName(err: unknown): string {
  const e = err as { name?: unknown; Code?: unknown; code?: unknown } | null;
  // Socket failures are plain Errors whose detail is in `code` (ECONNREFUSED, ETIMEDOUT…).
  if (e?.name === 'Error' && typeof e.code === 'string') return e.code;
  return typeof e?.name === 'string' ? e.name : typeof e?.Code === 'string' ? e.Code : '';
}

function status(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}
