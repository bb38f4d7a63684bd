import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { builtinModule } from './host.js';

/**
 * SHA-256, synchronous and the same on every runtime (Node, Deno, Bun, Workers). Every hash the
 * engine takes goes through here. Web Crypto's `digest` would do it too, but only asynchronously,
 * and the engine hashes inside synchronous code (hash chains, claim keys, names).
 *
 * Where the runtime has `node:crypto` (Node, Deno, Bun, Workers with `nodejs_compat`) its native
 * hash does the work: it is about 3× faster than the portable one on 1 KB and 10× on 100 KB
 * bodies, which every write hashes. The portable one covers runtimes without it; both give the
 * same bytes (test/unit/digest.test.ts).
 */
export function sha256(...parts: ReadonlyArray<string | Uint8Array>): Uint8Array {
  const h = nativeCrypto ? nativeCrypto.createHash('sha256') : nobleSha256.create();
  for (const part of parts) h.update(typeof part === 'string' ? utf8.encode(part) : part);
  return new Uint8Array(h.digest());
}

/** The portable implementation alone, for the test that holds both to the same answers. */
export function portableSha256(...parts: ReadonlyArray<string | Uint8Array>): Uint8Array {
  const h = nobleSha256.create();
  for (const part of parts) h.update(typeof part === 'string' ? utf8.encode(part) : part);
  return h.digest();
}

interface NativeHash {
  update(data: Uint8Array): NativeHash;
  digest(): Uint8Array;
}
const nativeCrypto = builtinModule<{ createHash(algorithm: 'sha256'): NativeHash }>('node:crypto');

/** The SHA-256 of the parts (strings as UTF-8), concatenated, as lowercase hex. */
export function sha256Hex(...parts: ReadonlyArray<string | Uint8Array>): string {
  return toHex(sha256(...parts));
}

/** The SHA-256 of the parts, concatenated, as base64url without padding. */
export function sha256Base64url(...parts: ReadonlyArray<string | Uint8Array>): string {
  return toBase64url(sha256(...parts));
}

/** A random version-4 UUID (Web Crypto's, present on every runtime the engine runs on). */
export function randomUUID(): string {
  return globalThis.crypto.randomUUID();
}

const utf8 = new TextEncoder();
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += HEX[byte];
  return out;
}

function toBase64url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
