/**
 * The one place the engine's tamper evidence hashes, MACs and signs. Every SHA-256, HMAC and
 * Ed25519 call of the hash chain, the digests and the proofs goes through these functions, so the
 * implementation behind them (Node's `crypto` today) can be swapped in one file.
 */
import * as nodeCrypto from 'node:crypto';
import { createHash, createHmac, createPrivateKey, createPublicKey, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto';

/**
 * Node's one-shot `crypto.hash` (Node 20.12 and later) where it exists: every read hashes twice,
 * and it skips making a Hash object per call, a good part of the cost of a short input.
 */
const oneShot = (nodeCrypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;

/** SHA-256 of the UTF-8 text, as lowercase hex. */
export function sha256Hex(text: string): string {
  return oneShot ? oneShot('sha256', text, 'hex') : createHash('sha256').update(text, 'utf8').digest('hex');
}

/** HMAC-SHA-256 of the UTF-8 text under `key`, as lowercase hex. */
export function hmacSha256Hex(key: Uint8Array | string, text: string): string {
  return createHmac('sha256', key).update(text, 'utf8').digest('hex');
}

/** Constant-time equality of two hex (or any ASCII) strings; different lengths are unequal. */
export function equalSecrets(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** An Ed25519 private key from PEM (PKCS#8); throws on anything else. */
export function ed25519PrivateKey(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new TypeError(`the key is ${key.asymmetricKeyType ?? 'not asymmetric'}, not Ed25519`);
  return key;
}

/** The public half of an Ed25519 private key (or a public key given as PEM), as SPKI PEM. */
export function ed25519PublicPem(key: KeyObject | string): string {
  const pub = typeof key === 'string' ? createPublicKey(key) : createPublicKey(key);
  if (pub.asymmetricKeyType !== 'ed25519') throw new TypeError(`the key is ${pub.asymmetricKeyType ?? 'not asymmetric'}, not Ed25519`);
  return pub.export({ type: 'spki', format: 'pem' }).toString();
}

/** Ed25519 signature of the UTF-8 text, base64. */
export function ed25519Sign(key: KeyObject, text: string): string {
  return sign(null, Buffer.from(text, 'utf8'), key).toString('base64');
}

/** Whether `signature` (base64) is an Ed25519 signature of the text by the public key (PEM). */
export function ed25519Verify(publicPem: string, text: string, signature: string): boolean {
  try {
    return verify(null, Buffer.from(text, 'utf8'), createPublicKey(publicPem), Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}
