/**
 * Signed digests of a collection: a Merkle tree over every record's chain head (as of a
 * collection version `cv`), its root signed with a key only the operator holds, so history
 * re-chained by anyone without the key no longer matches. The formats here are what the offline
 * checker in docs/verifiable-history.md recomputes with Node's `crypto` alone; change them only
 * with a new `DIGEST_FORMAT`.
 */
import { sha256Hex } from '../foundation/digest.js';
import { ed25519PrivateKey, ed25519PublicPem, ed25519Sign, ed25519Verify, equalSecrets, hmacSha256Hex } from '../foundation/hashing.js';
import { canonicalJson } from './merge.js';

export const DIGEST_FORMAT = 'xronox-digest/1';

export type DigestAlgorithm = 'hmac-sha256' | 'ed25519';

/** What signs and checks digests; built from `integrity.digestKey`. */
export interface DigestKey {
  readonly id: string;
  readonly algorithm: DigestAlgorithm;
  /** For Ed25519, the public key (SPKI PEM) an auditor checks signatures with; `null` for HMAC. */
  readonly publicKey: string | null;
  sign(text: string): string;
  verify(text: string, signature: string): boolean;
}

/** An Ed25519 private key in PEM, or an HMAC-SHA-256 secret (any other string). */
export function digestKey(secret: string, id = 'default'): DigestKey {
  if (secret.includes('-----BEGIN')) {
    const key = ed25519PrivateKey(secret);
    const publicKey = ed25519PublicPem(key);
    return { id, algorithm: 'ed25519', publicKey, sign: (text) => ed25519Sign(key, text), verify: (text, signature) => ed25519Verify(publicKey, text, signature) };
  }
  return {
    id,
    algorithm: 'hmac-sha256',
    publicKey: null,
    sign: (text) => hmacSha256Hex(secret, text),
    verify: (text, signature) => equalSecrets(hmacSha256Hex(secret, text), signature),
  };
}

/** A digest as written to `digests/{dbName}/{collection}/{time}.json` in the backups bucket. */
export interface Digest {
  format: typeof DIGEST_FORMAT;
  dbName: string;
  collection: string;
  /** When it was taken (ISO 8601). */
  time: string;
  /** The collection version it covers: each record's chain head is its newest version with cv ≤ this. */
  cv: number;
  /** Records (leaves) in the tree, in id order. */
  records: number;
  root: string;
  algorithm: DigestAlgorithm;
  keyId: string;
  /** Over `canonicalJson` of every other field: hex HMAC-SHA-256, or base64 Ed25519. */
  signature: string;
}

export function signDigest(body: Omit<Digest, 'signature' | 'algorithm' | 'keyId'>, key: DigestKey): Digest {
  const unsigned = { ...body, algorithm: key.algorithm, keyId: key.id };
  return { ...unsigned, signature: key.sign(canonicalJson(unsigned)) };
}

/** Whether the digest's signature is the key's over its other fields. */
export function digestSignatureHolds(digest: Digest, key: DigestKey): boolean {
  const { signature, ...unsigned } = digest;
  return typeof signature === 'string' && digest.algorithm === key.algorithm && key.verify(canonicalJson(unsigned), signature);
}

/**
 * The key of a digest in the backups bucket: its time with `-` for `:` (which object keys may
 * not hold here), so keys still sort as the digests were taken.
 */
export function digestObjectKey(dbName: string, collection: string, time: string): string {
  return `${digestPrefix(dbName, collection)}${time.replaceAll(':', '-')}.json`;
}

export function digestPrefix(dbName: string, collection: string): string {
  return `digests/${dbName}/${collection}/`;
}

/** A record's leaf: its id, the ov of its chain head and that version's digest. */
export function leafHash(id: string, ov: number, digest: string): string {
  return sha256Hex(`leaf:${JSON.stringify([id, ov, digest])}`);
}

export function nodeHash(left: string, right: string): string {
  return sha256Hex(`node:${left}${right}`);
}

/** The root of no records. */
export const EMPTY_ROOT = sha256Hex('empty');

/**
 * Builds a Merkle root from leaves given one at a time, keeping one pending subtree per level
 * (so memory grows with log n). The tree is RFC 6962's: the left subtree of n leaves holds the
 * largest power of two below n.
 */
export class MerkleBuilder {
  readonly #levels: Array<string | undefined> = [];
  count = 0;

  add(leaf: string): void {
    this.count++;
    let hash = leaf;
    for (let level = 0; ; level++) {
      const pending = this.#levels[level];
      if (pending === undefined) {
        this.#levels[level] = hash;
        return;
      }
      this.#levels[level] = undefined;
      hash = nodeHash(pending, hash);
    }
  }

  root(): string {
    let acc: string | undefined;
    for (const pending of this.#levels) {
      if (pending === undefined) continue;
      acc = acc === undefined ? pending : nodeHash(pending, acc);
    }
    return acc ?? EMPTY_ROOT;
  }
}

/** One step of a Merkle path, leaf upwards: the sibling subtree's root and its side. */
export interface PathStep {
  side: 'left' | 'right';
  hash: string;
}

/** The audit path of leaf `index` (RFC 6962 PATH). */
export function merklePath(leaves: readonly string[], index: number): PathStep[] {
  const path: PathStep[] = [];
  let lo = 0;
  let hi = leaves.length;
  const frames: PathStep[] = [];
  while (hi - lo > 1) {
    const k = largestPowerOfTwoBelow(hi - lo);
    if (index < lo + k) {
      frames.push({ side: 'right', hash: subtreeRoot(leaves, lo + k, hi) });
      hi = lo + k;
    } else {
      frames.push({ side: 'left', hash: subtreeRoot(leaves, lo, lo + k) });
      lo = lo + k;
    }
  }
  // Collected from the root down; a path is read from the leaf up.
  for (let i = frames.length - 1; i >= 0; i--) path.push(frames[i]!);
  return path;
}

export function rootFromPath(leaf: string, path: readonly PathStep[]): string {
  let hash = leaf;
  for (const step of path) hash = step.side === 'left' ? nodeHash(step.hash, hash) : nodeHash(hash, step.hash);
  return hash;
}

function subtreeRoot(leaves: readonly string[], lo: number, hi: number): string {
  const b = new MerkleBuilder();
  for (let i = lo; i < hi; i++) b.add(leaves[i]!);
  return b.root();
}

function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}
