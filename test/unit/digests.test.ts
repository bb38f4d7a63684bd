import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { digestKey, EMPTY_ROOT, leafHash, MerkleBuilder, merklePath, nodeHash, rootFromPath, signDigest, digestSignatureHolds, DIGEST_FORMAT } from '../../core/engine/digests.js';
import { parseSeal, sealProblem, versionHash, fieldsOf } from '../../core/engine/hash-chain.js';
import type { RecordDocument } from '../../core/engine/documents.js';

/** RFC 6962's MTH, written out recursively: what the streaming builder must agree with. */
function reference(leaves: readonly string[]): string {
  if (leaves.length === 0) return EMPTY_ROOT;
  if (leaves.length === 1) return leaves[0]!;
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(reference(leaves.slice(0, k)), reference(leaves.slice(k)));
}

describe('Merkle tree of a digest', () => {
  it('the streaming root is RFC 6962 shaped, and every leaf has a path to it, for 0 to 40 leaves', () => {
    for (let n = 0; n <= 40; n++) {
      const leaves = Array.from({ length: n }, (_, i) => leafHash(`id-${i}`, i, randomBytes(32).toString('hex')));
      const b = new MerkleBuilder();
      for (const l of leaves) b.add(l);
      expect(b.count).toBe(n);
      expect(b.root(), `n=${n}`).toBe(reference(leaves));
      for (let i = 0; i < n; i++) {
        const path = merklePath(leaves, i);
        expect(rootFromPath(leaves[i]!, path), `n=${n} i=${i}`).toBe(b.root());
        // A path does not prove another leaf.
        if (n > 1) expect(rootFromPath(leaves[(i + 1) % n]!, path)).not.toBe(b.root());
      }
    }
  });
});

describe('digest signatures', () => {
  const body = { format: DIGEST_FORMAT, dbName: 'db', collection: 'c', time: '2026-01-01T00:00:00.000Z', cv: 3, records: 2, root: 'ab' } as const;
  it('HMAC: holds under its key only, and for its exact fields', () => {
    const key = digestKey(randomBytes(32).toString('hex'), 'k');
    const signed = signDigest(body, key);
    expect(signed).toMatchObject({ algorithm: 'hmac-sha256', keyId: 'k' });
    expect(digestSignatureHolds(signed, key)).toBe(true);
    expect(digestSignatureHolds(signed, digestKey(randomBytes(32).toString('hex'), 'k'))).toBe(false);
    expect(digestSignatureHolds({ ...signed, root: 'ac' }, key)).toBe(false);
    expect(digestSignatureHolds({ ...signed, cv: 4 }, key)).toBe(false);
  });
});

describe('hash format 2', () => {
  const doc: RecordDocument = { id: 'r1', ov: 1, op: 'update', at: '2026-01-01T00:00:00.000Z', actor: 'alice', reason: 'why', deleted: false, createdAt: '2026-01-01T00:00:00.000Z', data: { a: 1 } };
  it('covers every column: each changed alone breaks the hash', () => {
    const hash = versionHash(versionHash(null, 0, { ...doc, ov: 0, op: 'create' }), 7, doc);
    expect(parseSeal(hash)).toMatchObject({ format: 2 });
    const fields = fieldsOf(doc, 7);
    expect(sealProblem(fields, hash, doc)).toBeNull();
    const changes: Array<Partial<typeof fields>> = [{ id: 'r2' }, { ov: 2 }, { cv: 8 }, { op: 'delete' }, { at: '2026-01-02T00:00:00.000Z' }, { actor: 'bob' }, { reason: null }, { deleted: true }];
    for (const change of changes) expect(sealProblem({ ...fields, ...change }, hash, null), JSON.stringify(change)).not.toBeNull();
    expect(sealProblem(fields, hash, { ...doc, data: { a: 2 } })).toMatch(/document/);
    expect(sealProblem(fields, hash, { ...doc, createdAt: 'x' })).toMatch(/document/);
    expect(sealProblem(fields, `${hash.slice(0, -1)}0`, doc)).not.toBeNull();
    expect(sealProblem(fields, 'nonsense', doc)).toMatch(/format/);
  });
});

describe('integrity.digestKey is a secret', () => {
  it('is masked in printed configs and in text, PEM lines included', async () => {
    const { loadConfig, maskConfig, maskSecretsIn } = await import('../../core/index.js');
    const { generateKeyPairSync } = await import('node:crypto');
    const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const config = loadConfig({ dbConnections: { local: { sqlitePath: '/tmp/x.sqlite' } }, databases: {}, integrity: { digestKey: pem } });
    expect(JSON.stringify(config)).not.toContain(pem.split('\n')[1]);
    expect((maskConfig(config) as { integrity: { digestKey: string } }).integrity.digestKey).toBe('****');
    expect(maskSecretsIn(`oops ${pem.split('\n')[1]} here`, config)).toBe('oops **** here');
    expect(config.integrity?.digestKey).toBe(pem);
    expect(() => loadConfig({ dbConnections: { local: { sqlitePath: '/tmp/x.sqlite' } }, databases: {}, integrity: { digestKey: 'short' } })).toThrow(/integrity\.digestKey/);
  });
});
