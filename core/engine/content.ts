import { sha256Hex } from '../foundation/digest.js';
import type { BlobStore } from '../contracts/blob-store.js';
import type { PendingBlob, UploadRef } from '../contracts/index-store.js';
import { ConflictError, StorageError, ValidationError } from '../errors.js';
import type { Route } from '../routing/router.js';
import type { UploadSession } from './content-uploads.js';
import { type Data, readPath } from './documents.js';
import { isPlainObject } from '../foundation/filter.js';
import { canonicalJson } from './merge.js';

/** What a record keeps in place of offloaded content. */
export interface ContentRef {
  _content: { key: string; contentType: string; size: number; sha256: string };
}

export interface PresentOptions {
  /** Return presigned GET URLs instead of the bytes. */
  presign?: boolean;
  /** Lifetime of presigned URLs. Default 3600. */
  ttlSeconds?: number;
}

export const DEFAULT_MAX_CONTENT_BYTES = 64 * 1024 * 1024;
/** 1 for each character of the base64 alphabet (RFC 4648, section 4), by char code. */
const BASE64_ALPHABET = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') BASE64_ALPHABET[c.charCodeAt(0)] = 1;
/** Base64 is decoded this many characters at a time (a multiple of 4), so no full-size temporary copy is made. */
const DECODE_CHUNK_CHARS = 4 * 1024 * 1024;

/**
 * Content offload for `collectionMaps[c].base64Props`: base64 strings at those properties are
 * decoded and stored in the content bucket at `content/{collection}/{id}/{property}/{sha256}/blob.bin`
 * (`text.txt` with `preferredText`): the documented folder, addressed by content so that objects
 * are immutable and history keeps each version's bytes. The record keeps a reference with size,
 * type and SHA-256 (so the hash chain covers the content too). Reads put the base64 back, checked
 * against the SHA-256, or presigned URLs.
 *
 * References are only ever made here: a caller cannot plant one, and reads resolve only keys in
 * the record's own content folder of its own route's bucket.
 */
export class ContentOffload {
  readonly #route: Route;
  readonly #blob: BlobStore;
  readonly #maxBytes: number;
  readonly #props: Array<[string, { contentType: string; preferredText?: boolean | undefined; textCharset?: string | undefined }]>;
  readonly #queueOnFailure: boolean;
  readonly #pending: (bucket: string, key: string) => Promise<PendingBlob | null>;

  /**
   * With `queueOnFailure` (`fallback.enabled`), content the blob store refuses is queued in the
   * index with the record instead of failing the write; `pending` reads it back from there.
   */
  constructor(
    route: Route,
    blob: BlobStore,
    maxBytes: number,
    options: { queueOnFailure: boolean; pending: (bucket: string, key: string) => Promise<PendingBlob | null> },
  ) {
    this.#route = route;
    this.#blob = blob;
    this.#maxBytes = maxBytes;
    this.#queueOnFailure = options.queueOnFailure;
    this.#pending = options.pending;
    this.#props = Object.entries(route.collectionMap?.base64Props ?? {});
  }

  get enabled(): boolean {
    return this.#props.length > 0;
  }

  /** How large (in JSON bytes) a document may be before its content is offloaded. */
  inputAllowance(maxDocumentBytes: number): number {
    return this.enabled ? maxDocumentBytes + this.#props.length * Math.ceil((this.#maxBytes * 4) / 3 + 2) : maxDocumentBytes;
  }

  /**
   * Replaces new content in `data` (base64 strings at the mapped properties) with references and
   * returns what must be uploaded; nothing is written yet, so the caller can check the resulting
   * document first. A reference may only stand where `previous` (the record's current data) holds
   * the same one. Keys are content-addressed, so no write (a losing racer, a refused one) can ever
   * change the bytes behind a reference another version holds.
   */
  prepare(data: Data, id: string, previous: Data | null): { data: Data; uploads: PendingBlob[] } {
    const uploads: PendingBlob[] = [];
    if (!this.enabled) return { data, uploads };
    let out = data;
    for (const [prop, spec] of this.#props) {
      const value = readPath(data, prop);
      if (value === undefined || value === null) continue;
      const before = previous ? readPath(previous, prop) : undefined;
      if (isContentRef(value)) {
        if (!isContentRef(before) || canonicalJson(before) !== canonicalJson(value)) {
          throw new ValidationError(`data.${prop} must be a base64 string (content references are made by Xronox)`, { path: `data.${prop}` });
        }
        continue;
      }
      const size = typeof value === 'string' ? base64DecodedLength(value) : -1;
      if (size < 0) {
        throw new ValidationError(`data.${prop} must be a base64 string (collectionMaps.${this.#route.collection}.base64Props)`, { path: `data.${prop}` });
      }
      // Checked before decoding: content over the limit is never held in memory decoded.
      if (size > this.#maxBytes) {
        throw new ValidationError(`data.${prop} holds ${size} bytes of content, over the limit of ${this.#maxBytes} bytes (limits.maxContentBytes)`, { path: `data.${prop}` });
      }
      const bytes = decodeBase64(value as string, size);
      const sha256 = sha256Hex(bytes);
      const key = `${this.#folder(id, prop)}${sha256}/${spec.preferredText ? 'text.txt' : 'blob.bin'}`;
      const contentType = spec.preferredText ? `${spec.contentType}; charset=${spec.textCharset ?? 'utf-8'}` : spec.contentType;
      const ref: ContentRef = { _content: { key, contentType, size: bytes.byteLength, sha256 } };
      if (!(isContentRef(before) && before._content.key === key)) uploads.push({ bucket: this.#location().bucket, key, contentType, body: bytes });
      out = withPath(out, prop, ref);
    }
    return { data: out, uploads };
  }

  /**
   * Writes the prepared uploads of record `id`, create-only (an object already at a
   * content-addressed key holds the same bytes), each after recording its upload intent in the
   * session (see `content-uploads.ts`): the intents returned must ride with the commit. With
   * `queueOnFailure`, what the blob store refuses is returned to be queued in the index with the
   * record; otherwise the failure is thrown and nothing is committed.
   */
  async upload(id: string, uploads: readonly PendingBlob[], session: UploadSession): Promise<{ queued: PendingBlob[]; intents: UploadRef[] }> {
    if (uploads.length === 0) return { queued: [], intents: [] };
    const intents = await session.record(uploads.map((u) => ({ id, bucket: u.bucket, key: u.key })));
    const queued: PendingBlob[] = [];
    for (const u of uploads) {
      if (session.uploaded(u.key)) continue;
      try {
        await this.#blob.put(u.bucket, u.key, u.body, { contentType: u.contentType, ifNoneMatch: true });
        session.markUploaded(u.key);
      } catch (err) {
        if (err instanceof ConflictError) {
          session.markUploaded(u.key);
          continue;
        }
        session.storeFailed();
        if (!(err instanceof StorageError) || !this.#queueOnFailure) throw err;
        queued.push(u);
      }
    }
    return { queued, intents };
  }

  /**
   * Objects of the record's own content folder that `next` references and `current` does not:
   * what a restore brings back, which must be protected like an upload (see `content-uploads.ts`).
   */
  newReferences(id: string, next: Data, current: Data | null): Array<{ bucket: string; key: string }> {
    const loc = this.#route.blobs.content;
    if (!loc) return [];
    const before = current ? contentKeys(current) : new Set<string>();
    const folder = `${loc.prefix}/${this.#route.collection}/${id}/`;
    return [...contentKeys(next)].filter((key) => !before.has(key) && key.startsWith(folder)).map((key) => ({ bucket: loc.bucket, key }));
  }

  /** Puts content back into `data`: base64 strings, or presigned URLs with `presign`. */
  async present(data: Data, id: string, options: PresentOptions = {}): Promise<Data> {
    if (!this.enabled) return data;
    let out = data;
    for (const [prop] of this.#props) {
      const value = readPath(data, prop);
      if (!isContentRef(value)) continue;
      const key = value._content.key;
      // Only this record's own content, in this route's bucket: a stored reference never reaches further.
      if (!key.startsWith(this.#folder(id, prop)) || key.includes('..')) {
        throw new StorageError(this.#blob.name, 'get', undefined, `The content reference at ${prop} of ${id} points outside the record's own content`);
      }
      const loc = this.#location();
      // Content still queued in the index (fallback) is served from there, inline.
      const queued = await this.#pending(loc.bucket, key);
      if (options.presign && !queued) {
        out = withPath(out, prop, await this.#blob.presign(loc.bucket, key, options.ttlSeconds ?? 3600));
        continue;
      }
      const bytes = queued ? queued.body : await this.#blob.get(loc.bucket, key);
      if (!bytes) throw new StorageError(this.#blob.name, 'get', undefined, `The content of ${prop} of ${id} is missing from the content bucket`);
      if (sha256Hex(bytes) !== value._content.sha256) {
        throw new StorageError(this.#blob.name, 'get', undefined, `The content of ${prop} of ${id} does not match its SHA-256: it was changed outside Xronox`);
      }
      // A view of the bytes read, not a copy of them.
      out = withPath(out, prop, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'));
    }
    return out;
  }

  #folder(id: string, prop: string): string {
    return `${this.#location().prefix}/${this.#route.collection}/${id}/${prop}/`;
  }

  #location() {
    const loc = this.#route.blobs.content;
    if (!loc) throw new ValidationError(`${this.#route.databaseType} has no content bucket for base64Props`);
    return loc;
  }
}

/**
 * The number of bytes a strict base64 string (RFC 4648 alphabet, padded to a multiple of 4)
 * decodes to, or -1 when the string is not one. One pass over the characters: no regular
 * expression (a backtracking one overflows the stack on strings of a few MiB) and no copy.
 */
export function base64DecodedLength(value: string): number {
  const length = value.length;
  if (length % 4 !== 0) return -1;
  const padding = length === 0 || value.charCodeAt(length - 1) !== 61 ? 0 : value.charCodeAt(length - 2) === 61 ? 2 : 1;
  const end = length - padding;
  for (let i = 0; i < end; i++) {
    const c = value.charCodeAt(i);
    if (c > 127 || BASE64_ALPHABET[c] === 0) return -1;
  }
  return (length / 4) * 3 - padding;
}

/**
 * Decodes a string `base64DecodedLength` accepted into one buffer of `size` bytes, a chunk at a
 * time: decoding the whole string at once would first copy it (Node copies a string it decodes).
 */
function decodeBase64(value: string, size: number): Buffer {
  const out = Buffer.allocUnsafeSlow(size);
  let written = 0;
  for (let i = 0; i < value.length; i += DECODE_CHUNK_CHARS) written += out.write(value.slice(i, i + DECODE_CHUNK_CHARS), written, 'base64');
  if (written !== size) throw new ValidationError(`base64 content decoded to ${written} bytes instead of ${size}`);
  return out;
}

/** The keys of every content reference in `data`, at any depth. */
export function contentKeys(data: unknown, out = new Set<string>()): Set<string> {
  if (isContentRef(data)) out.add(data._content.key);
  else if (Array.isArray(data)) for (const item of data) contentKeys(item, out);
  else if (isPlainObject(data)) for (const value of Object.values(data)) contentKeys(value, out);
  return out;
}

export function isContentRef(value: unknown): value is ContentRef {
  if (!isPlainObject(value) || Object.keys(value).length !== 1 || !isPlainObject(value._content)) return false;
  const c = value._content;
  return typeof c.key === 'string' && typeof c.contentType === 'string' && typeof c.size === 'number' && typeof c.sha256 === 'string';
}

/** A copy of `data` with `value` at the dotted `path` (objects on the way are copied, not mutated). */
function withPath(data: Data, path: string, value: unknown): Data {
  const [head, ...rest] = path.split('.');
  const out: Data = { ...data };
  if (rest.length === 0) out[head!] = value;
  else out[head!] = withPath(isPlainObject(data[head!]) ? (data[head!] as Data) : {}, rest.join('.'), value);
  return out;
}

export function checkTtl(ttlSeconds: unknown): void {
  if (ttlSeconds !== undefined && (typeof ttlSeconds !== 'number' || !Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > 604_800)) {
    throw new ValidationError('ttlSeconds must be a whole number from 1 to 604800 (7 days)', { path: 'ttlSeconds' });
  }
}
