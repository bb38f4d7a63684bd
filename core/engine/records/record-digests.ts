/**
 * Signed digests of a record collection, and proofs of one version against them: written to the
 * backups bucket at `digests/{dbName}/{collection}/{time}.json` (create-only, so S3 Object Lock
 * can make them write-once), read back by `verifyCollection`, which checks the store against the
 * latest one. See `digests.ts` for the formats.
 */
import type { VersionRow } from '../../contracts/index-store.js';
import { ConflictError, NotFoundError, TamperError, ValidationError } from '../../errors.js';
import { nowInstant } from '../../foundation/clock.js';
import { assertName } from '../../foundation/names.js';
import { checkOv } from '../arguments.js';
import type { RecordDocument } from '../documents.js';
import {
  type Digest,
  DIGEST_FORMAT,
  digestObjectKey,
  digestPrefix,
  digestSignatureHolds,
  leafHash,
  MerkleBuilder,
  merklePath,
  type PathStep,
  signDigest,
} from '../digests.js';
import { type CollectionVerifyReport, digestOf, legacyPending, type VersionFields } from '../hash-chain.js';
import { versionFields } from '../tamper-check.js';
import type { RecordAccess } from './record-access.js';
import { MAX_LISTED_FINDINGS, type RecordVerify, type VerifyOptions } from './record-verify.js';

/** How the store compared with the latest signed digest. */
export interface DigestCheck {
  key: string;
  time: string;
  cv: number;
  ok: boolean;
  /** Why it does not hold; absent when it does. */
  reason?: string;
}

export type CollectionVerification = CollectionVerifyReport & {
  /** Records with a finding (the `broken` list stops at 1,000 entries; this does not). */
  findings: number;
  /** The latest signed digest and whether the store matches it; `null` when there is none (or no key). */
  digest: DigestCheck | null;
};

/** A proof that one version is part of the history a signed digest commits to. */
export interface VersionProof {
  format: 'xronox-proof/1';
  dbName: string;
  collection: string;
  id: string;
  ov: number;
  /** The version's record document, exactly as stored. */
  document: RecordDocument;
  /** The stored hash of version `ov - 1` (what a format-1 hash is computed over); `null` for version 0 or when pruned. */
  previousHash: string | null;
  /**
   * The version and every later one up to the record's chain head as of the digest, oldest
   * first: its columns and stored hash (format-1 entries also carry their document).
   */
  chain: Array<{ fields: VersionFields; hash: string; document?: RecordDocument }>;
  /** The chain head's leaf and its Merkle path, leaf upwards, to the digest's root. */
  leaf: string;
  path: PathStep[];
  digest: Digest;
  /** Where the digest is stored in the backups bucket. */
  digestKey: string;
  /** For Ed25519 digests, the public key to check the signature with; trust it only from the operator. */
  publicKey: string | null;
}

export class RecordDigests {
  readonly #access: RecordAccess;
  readonly #verify: RecordVerify;

  constructor(access: RecordAccess, verify: RecordVerify) {
    this.#access = access;
    this.#verify = verify;
  }

  /** Every record's chain, and when a digest key and a signed digest exist, the store against the latest digest. */
  async verifyCollection(options: VerifyOptions = {}): Promise<CollectionVerification> {
    this.#access.requireVersioned('verifyCollection');
    const latest = await this.latest();
    const report: CollectionVerification = { ok: true, records: 0, versions: 0, findings: 0, broken: [], digest: null };
    const key = this.#access.ctx.digestKey;
    let merkle: MerkleBuilder | undefined;
    if (latest) {
      const d = latest.digest;
      report.digest = { key: latest.key, time: d.time, cv: d.cv, ok: true };
      if (!key || !digestSignatureHolds(d, key)) {
        report.digest.ok = false;
        report.digest.reason = `its signature does not hold under key ${key?.id ?? '(none configured)'}: rewritten without the key, or signed with another`;
      } else merkle = new MerkleBuilder();
    }
    for await (const r of this.#verify.chains(latest ? [latest.digest.cv] : [])) {
      report.records++;
      report.versions += r.checked;
      const asOf = r.asOf[0];
      if (merkle && asOf) merkle.add(leafHash(r.id, asOf.ov, digestOf(asOf.hash)));
      if (r.brokenAt) {
        report.ok = false;
        report.findings++;
        const finding = { id: r.id, ...r.brokenAt };
        if (report.broken.length < MAX_LISTED_FINDINGS) report.broken.push(finding);
        options.onFinding?.(finding);
      }
      options.onProgress?.({ records: report.records, versions: report.versions, findings: report.findings });
    }
    if (latest && merkle && report.digest) {
      const d = latest.digest;
      if (merkle.count !== d.records || merkle.root() !== d.root) {
        report.digest.ok = false;
        report.digest.reason = `the records' chain heads as of cv ${d.cv} (${merkle.count} records) do not match its root (${d.records} records): history was rewritten, truncated or re-chained since`;
      }
    }
    if (report.digest && !report.digest.ok) report.ok = false;
    return report;
  }

  /**
   * Takes a digest now: verifies every chain and the store against the latest digest (a
   * tampered store is never signed over: the first finding is a `TamperError`, and nothing is
   * written), builds the Merkle root over the chain heads as of the collection's cv, signs it and
   * writes it create-only.
   */
  async write(): Promise<{ key: string; digest: Digest }> {
    this.#access.requireVersioned('writeDigest');
    const { key, loc } = this.#target();
    const { index, ns } = this.#access;
    const label = `${ns.dbName}/${ns.collection}`;
    const previous = await this.latest();
    if (previous && !digestSignatureHolds(previous.digest, key)) {
      throw new TamperError(label, '(digest)', -1, `the signature of ${previous.key} does not hold under key ${key.id}; no digest was written`);
    }
    const cv = (await index.getCollectionVersion(ns)) ?? -1;
    const merkle = new MerkleBuilder();
    const before = new MerkleBuilder();
    for await (const r of this.#verify.chains(previous ? [cv, previous.digest.cv] : [cv])) {
      if (r.brokenAt) throw new TamperError(label, r.id, r.brokenAt.ov, `${r.brokenAt.reason}; no digest was written`);
      const [now, then] = r.asOf;
      if (now) merkle.add(leafHash(r.id, now.ov, digestOf(now.hash)));
      if (then) before.add(leafHash(r.id, then.ov, digestOf(then.hash)));
    }
    if (previous && (before.count !== previous.digest.records || before.root() !== previous.digest.root)) {
      throw new TamperError(label, '(digest)', -1, `the store no longer matches ${previous.key}: history was rewritten, truncated or re-chained since; no digest was written`);
    }
    const time = nowInstant();
    const digest: Digest = signDigest({ format: DIGEST_FORMAT, dbName: ns.dbName, collection: ns.collection, time, cv, records: merkle.count, root: merkle.root() }, key);
    const objectKey = digestObjectKey(ns.dbName, ns.collection, time);
    await this.#access.ctx.blob.put(loc.bucket, objectKey, Buffer.from(`${JSON.stringify(digest, null, 2)}\n`), { contentType: 'application/json', ifNoneMatch: true });
    return { key: objectKey, digest };
  }

  /** The latest digest in the backups bucket, or `null` (no key, no backups bucket, none written). */
  async latest(): Promise<{ key: string; digest: Digest } | null> {
    const loc = this.#access.route.blobs.backups;
    if (!loc) return null;
    const { ns } = this.#access;
    const prefix = digestPrefix(ns.dbName, ns.collection);
    let last: string | undefined;
    let startAfter: string | undefined;
    // Bounded by the listing: each page moves past the previous one.
    for (;;) {
      const page = await this.#access.ctx.blob.list(loc.bucket, prefix, { limit: 1000, ...(startAfter ? { startAfter } : {}) });
      for (const k of page.keys) if (k.endsWith('.json') && (last === undefined || k > last)) last = k;
      if (page.nextStartAfter === null) break;
      startAfter = page.nextStartAfter;
    }
    if (last === undefined) return null;
    const bytes = await this.#access.ctx.blob.get(loc.bucket, last);
    if (!bytes) return null;
    let digest: Digest;
    try {
      digest = JSON.parse(Buffer.from(bytes).toString('utf8')) as Digest;
    } catch {
      throw new TamperError(`${ns.dbName}/${ns.collection}`, '(digest)', -1, `${last} is not valid JSON`);
    }
    if (digest?.format !== DIGEST_FORMAT || digest.dbName !== ns.dbName || digest.collection !== ns.collection || !Number.isSafeInteger(digest.cv)) {
      throw new TamperError(`${ns.dbName}/${ns.collection}`, '(digest)', -1, `${last} is not a digest of this collection`);
    }
    return { key: last, digest };
  }

  /** A proof of version `ov` of record `id` against the latest signed digest. */
  async proof(id: string, ov: number): Promise<VersionProof> {
    this.#access.requireVersioned('proof');
    assertName('id', id);
    checkOv(ov, 'ov');
    const { index, ns } = this.#access;
    const latest = await this.latest();
    if (!latest) throw new NotFoundError(`${ns.dbName}/${ns.collection} has no signed digest yet; take one first (writeDigest)`);
    const { digest } = latest;
    const target = await index.getVersion(ns, id, ov);
    if (!target) throw new NotFoundError(`Record ${id} has no version ${ov}`);
    if (target.cv > digest.cv) throw new ConflictError(`Version ${ov} of ${id} is newer than the latest digest (cv ${digest.cv}); take a new digest first`);
    const document = await this.#access.readVersionDoc(target);
    const previousHash = ov === 0 ? null : ((await index.getVersion(ns, id, ov - 1))?.hash ?? null);
    // The chain from the version to the record's head as of the digest, read oldest first.
    const chain: VersionProof['chain'] = [];
    for (let next: VersionRow | null = target; next && next.cv <= digest.cv; next = await index.getVersion(ns, id, next.ov + 1)) {
      const entry: VersionProof['chain'][number] = { fields: versionFields(next), hash: next.hash };
      if (legacyPending(next.hash)) entry.document = await this.#access.readVersionDoc(next);
      chain.push(entry);
    }
    // Every record's leaf as of the digest, in id order (the proof needs the whole tree).
    const leaves: string[] = [];
    let position = -1;
    let afterId: string | undefined;
    for (;;) {
      const ids = await index.listHeadIds(ns, { limit: 500, ...(afterId ? { afterId } : {}) });
      if (ids.length === 0) break;
      for (const rid of ids) {
        const asOf = await this.#chainHeadAsOf(rid, digest.cv);
        if (!asOf) continue;
        if (rid === id) position = leaves.length;
        leaves.push(leafHash(rid, asOf.ov, digestOf(asOf.hash)));
      }
      afterId = ids[ids.length - 1];
    }
    if (position < 0) throw new NotFoundError(`Record ${id} is not in the latest digest`);
    return {
      format: 'xronox-proof/1',
      dbName: ns.dbName,
      collection: ns.collection,
      id,
      ov,
      document,
      previousHash,
      chain,
      leaf: leaves[position]!,
      path: merklePath(leaves, position),
      digest,
      digestKey: latest.key,
      publicKey: this.#access.ctx.digestKey?.publicKey ?? null,
    };
  }

  /** The newest version of a record with cv ≤ `cv`. */
  async #chainHeadAsOf(id: string, cv: number): Promise<{ ov: number; hash: string } | null> {
    const { index, ns } = this.#access;
    const head = await index.getHead(ns, id);
    if (!head) return null;
    if (head.cv <= cv && head.hash !== null) return { ov: head.ov, hash: head.hash };
    let before: number | undefined;
    for (;;) {
      const rows = await index.listVersions(ns, id, { limit: 50, ...(before !== undefined ? { beforeOv: before } : {}) });
      for (const row of rows) if (row.cv <= cv) return { ov: row.ov, hash: row.hash };
      if (rows.length < 50) return null;
      before = rows[rows.length - 1]!.ov;
    }
  }

  #target() {
    const key = this.#access.ctx.digestKey;
    if (!key) throw new ValidationError('Digests need integrity.digestKey in the config');
    const loc = this.#access.route.blobs.backups;
    if (!loc) throw new ValidationError(`${this.#access.route.dbName} has no backups bucket to write digests to`);
    return { key, loc };
  }
}
