/**
 * The keyed half of the engine's tamper evidence: HMAC-SHA-256 and Ed25519 for signed digests.
 * (Plain SHA-256 is `digest.ts`'s, the engine's one hash.) `node:crypto` is asked for at call
 * time, never imported, so the engine's import graph stays free of Node built-ins (`host.ts`);
 * signing needs a runtime that has it (Node, Deno, Bun, Workers with `nodejs_compat`).
 */
import { requireBuiltin } from './host.js';

/** An opaque private key, as the runtime's crypto made it. */
export type PrivateKey = object & { readonly asymmetricKeyType?: string };

interface NodeCrypto {
  createHmac(algorithm: 'sha256', key: Uint8Array | string): { update(text: string, encoding: 'utf8'): { digest(encoding: 'hex'): string } };
  createPrivateKey(pem: string): PrivateKey;
  createPublicKey(key: PrivateKey | string): PrivateKey & { export(options: { type: 'spki'; format: 'pem' }): string | Uint8Array };
  sign(algorithm: null, data: Uint8Array, key: PrivateKey): Uint8Array;
  verify(algorithm: null, data: Uint8Array, key: PrivateKey, signature: Uint8Array): boolean;
  timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean;
}

const crypto = (): NodeCrypto => requireBuiltin<NodeCrypto>('node:crypto', 'Signed digests');
const utf8 = new TextEncoder();

/** HMAC-SHA-256 of the UTF-8 text under `key`, as lowercase hex. */
export function hmacSha256Hex(key: Uint8Array | string, text: string): string {
  return crypto().createHmac('sha256', key).update(text, 'utf8').digest('hex');
}

/** Constant-time equality of two strings; different lengths are unequal. */
export function equalSecrets(a: string, b: string): boolean {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  return x.length === y.length && crypto().timingSafeEqual(x, y);
}

/** An Ed25519 private key from PEM (PKCS#8); throws on anything else. */
export function ed25519PrivateKey(pem: string): PrivateKey {
  const key = crypto().createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new TypeError(`the key is ${key.asymmetricKeyType ?? 'not asymmetric'}, not Ed25519`);
  return key;
}

/** The public half of an Ed25519 private key (or a public key given as PEM), as SPKI PEM. */
export function ed25519PublicPem(key: PrivateKey | string): string {
  const pub = crypto().createPublicKey(key);
  if (pub.asymmetricKeyType !== 'ed25519') throw new TypeError(`the key is ${pub.asymmetricKeyType ?? 'not asymmetric'}, not Ed25519`);
  const pem = pub.export({ type: 'spki', format: 'pem' });
  return typeof pem === 'string' ? pem : new TextDecoder().decode(pem);
}

/** Ed25519 signature of the UTF-8 text, base64. */
export function ed25519Sign(key: PrivateKey, text: string): string {
  return toBase64(crypto().sign(null, utf8.encode(text), key));
}

/** Whether `signature` (base64) is an Ed25519 signature of the text by the public key (PEM). */
export function ed25519Verify(publicPem: string, text: string, signature: string): boolean {
  try {
    return crypto().verify(null, utf8.encode(text), crypto().createPublicKey(publicPem), fromBase64(signature));
  } catch {
    return false;
  }
}

function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}
