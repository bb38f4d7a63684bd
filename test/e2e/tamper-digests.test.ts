/**
 * What only a signed digest catches: history rewritten by someone who recomputed every hash
 * (the chain is unkeyed), or truncated back to an older head, and digests forged without the key
 * or signed with another one. On the embedded default (SQLite + filesystem).
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../core/engine/merge.js';
import { versionHash } from '../../core/engine/hash-chain.js';
import { TamperError } from '../../core/errors.js';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';

const dirs: Array<{ cleanup: () => void }> = [];
afterAll(() => dirs.forEach((d) => d.cleanup()));

const HMAC_KEY = randomBytes(32).toString('hex');
const ed25519 = () => generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

function findFiles(root: string, suffix: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(root)) {
    const path = join(root, name);
    if (statSync(path).isDirectory()) out.push(...findFiles(path, suffix));
    else if (path.endsWith(suffix)) out.push(path);
  }
  return out;
}

async function world(digestKey: string) {
  const dir = tempDir('xronox-digests');
  dirs.push(dir);
  const sqlitePath = join(dir.path, 'x.sqlite');
  const blobs = join(dir.path, 'blobs');
  const x = initXronox({
    dbConnections: { local: { sqlitePath } },
    localStorage: { basePath: blobs, enabled: true },
    databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme' }] } },
    integrity: { digestKey, digestKeyId: 'k1' },
  });
  const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
  const { id } = await orders.create({ status: 's0', total: 0 }, 'alice');
  for (let i = 1; i <= 4; i++) await orders.update(id, { status: `s${i}`, total: i * 10 }, i - 1, 'alice');
  const others: string[] = [];
  for (let i = 0; i < 4; i++) others.push((await orders.create({ status: 'other', n: i })).id);
  await x.flush();
  const sql = <R>(run: (db: Database.Database) => R): R => {
    const db = new Database(sqlitePath);
    try {
      return run(db);
    } finally {
      db.close();
    }
  };
  const versionFile = (ov: number) => findFiles(blobs, join('orders', id, `v${ov}.json`))[0]!;
  const digestFiles = () => findFiles(blobs, '.json').filter((f) => f.includes(`${join('digests', 'rt_acme', 'orders')}`)).sort();
  return { x, orders, id, others, sql, versionFile, digestFiles, dir: dir.path };
}

type World = Awaited<ReturnType<typeof world>>;

/** Rewrites version `from` with `edit` and recomputes every later hash and the head, as an attacker with write access to the store (but not the key) can. */
function rechain(w: World, from: number, edit: (doc: { data: Record<string, unknown> }) => void) {
  w.sql((db) => {
    const rows = db.prepare('SELECT ov, cv, hash FROM versions WHERE id = ? ORDER BY ov').all(w.id) as Array<{ ov: number; cv: number; hash: string }>;
    let previous = rows.find((r) => r.ov === from - 1)!.hash;
    for (const row of rows.filter((r) => r.ov >= from)) {
      const file = w.versionFile(row.ov);
      const doc = JSON.parse(readFileSync(file, 'utf8'));
      if (row.ov === from) {
        edit(doc);
        writeFileSync(file, JSON.stringify(doc));
      }
      const hash = versionHash(previous, row.cv, doc);
      db.prepare('UPDATE versions SET hash = ? WHERE id = ? AND ov = ?').run(hash, w.id, row.ov);
      previous = hash;
      const head = db.prepare('SELECT ov FROM heads WHERE id = ?').get(w.id) as { ov: number };
      if (head.ov === row.ov) {
        db.prepare('UPDATE heads SET hash = ?, body = ? WHERE id = ?').run(hash, JSON.stringify(doc), w.id);
      }
    }
  });
}

describe('signed digests (HMAC-SHA-256)', () => {
  it('a digest is written, signed and checked; an untouched store matches it, later writes too', async () => {
    const w = await world(HMAC_KEY);
    try {
      expect((await w.orders.verifyCollection()).digest).toBeNull();
      const { key, digest } = await w.orders.writeDigest();
      expect(key).toMatch(/^digests\/rt_acme\/orders\/\d{4}-\d\d-\d\dT\d\d-\d\d-[\d.]+Z\.json$/);
      expect(digest).toMatchObject({ format: 'xronox-digest/1', dbName: 'rt_acme', collection: 'orders', records: 5, algorithm: 'hmac-sha256', keyId: 'k1' });
      expect(w.digestFiles()).toHaveLength(1);
      expect(JSON.parse(readFileSync(w.digestFiles()[0]!, 'utf8'))).toEqual(digest);
      // The key is never written beside the data.
      expect(readFileSync(w.digestFiles()[0]!, 'utf8')).not.toContain(HMAC_KEY);
      expect(await w.orders.verifyCollection()).toMatchObject({ ok: true, records: 5, digest: { key, ok: true, cv: digest.cv } });
      // Writes after the digest do not disturb it: it covers each record as of its cv.
      await w.orders.update(w.id, { status: 's5' }, 4);
      await w.orders.create({ status: 'new' });
      expect(await w.orders.verifyCollection()).toMatchObject({ ok: true, records: 6, digest: { ok: true } });
    } finally {
      await w.x.shutdown();
    }
  });

  it('history re-chained (every hash recomputed) passes the chain checks but not the digest', async () => {
    const w = await world(HMAC_KEY);
    try {
      await w.orders.writeDigest();
      rechain(w, 2, (doc) => (doc.data.total = 1));
      // The unkeyed chain alone cannot tell: everything was recomputed.
      expect(await w.orders.verify(w.id)).toMatchObject({ ok: true });
      expect((await w.orders.getVersion(w.id, 2))?.data.total).toBe(1);
      const report = await w.orders.verifyCollection();
      expect(report.ok).toBe(false);
      expect(report.digest).toMatchObject({ ok: false, reason: expect.stringMatching(/do not match its root/) });
      // A tampered store is never signed over.
      await expect(w.orders.writeDigest()).rejects.toBeInstanceOf(TamperError);
      expect(w.digestFiles()).toHaveLength(1);
    } finally {
      await w.x.shutdown();
    }
  });

  it('history truncated (newest versions dropped, head rolled back) is caught by the digest', async () => {
    const w = await world(HMAC_KEY);
    try {
      await w.orders.writeDigest();
      w.sql((db) => {
        const v3 = db.prepare('SELECT cv, at, hash FROM versions WHERE id = ? AND ov = 3').get(w.id) as { cv: number; at: string; hash: string };
        db.prepare('DELETE FROM versions WHERE id = ? AND ov = 4').run(w.id);
        db.prepare('UPDATE heads SET ov = 3, cv = ?, updated_at = ?, hash = ?, body = ? WHERE id = ?').run(v3.cv, v3.at, v3.hash, readFileSync(w.versionFile(3), 'utf8'), w.id);
      });
      // current.json would still show version 4 (verify reports that); a careful forger rolls it back too.
      expect((await w.orders.verify(w.id)).brokenAt?.reason).toMatch(/current\.json/);
      const current = findFiles(join(w.dir, 'blobs'), join('orders', w.id, 'current.json'))[0]!;
      writeFileSync(current, readFileSync(w.versionFile(3)));
      expect(await w.orders.verify(w.id)).toMatchObject({ ok: true, checked: 4 });
      expect((await w.orders.getLatest(w.id))?.ov).toBe(3);
      const report = await w.orders.verifyCollection();
      expect(report).toMatchObject({ ok: false, digest: { ok: false } });
    } finally {
      await w.x.shutdown();
    }
  });

  it('re-chained and the digest rewritten without the key, or signed with another key: the signature fails', async () => {
    const w = await world(HMAC_KEY);
    try {
      const { digest } = await w.orders.writeDigest();
      rechain(w, 1, (doc) => (doc.data.total = 5));
      // The forger recomputes the root with the published formats, keeps the old signature…
      const forgedRoot = await rootNow(w, digest.cv);
      const [file] = w.digestFiles();
      writeFileSync(file!, JSON.stringify({ ...digest, root: forgedRoot }));
      const report = await w.orders.verifyCollection();
      expect(report).toMatchObject({ ok: false, digest: { ok: false, reason: expect.stringMatching(/signature/) } });
      // …or signs a newer digest with a key of their own: the same.
      const { digestKey, signDigest } = await import('../../core/engine/digests.js');
      const time = new Date(Date.parse(digest.time) + 1000).toISOString();
      const body = { format: digest.format, dbName: digest.dbName, collection: digest.collection, cv: digest.cv, records: digest.records, time, root: forgedRoot };
      const theirs = signDigest(body, digestKey(randomBytes(32).toString('hex'), 'k1'));
      writeFileSync(file!.replace(/[^/]+\.json$/, `${time.replaceAll(':', '-')}.json`), JSON.stringify(theirs));
      expect(w.digestFiles()).toHaveLength(2);
      expect(await w.orders.verifyCollection()).toMatchObject({ ok: false, digest: { ok: false, reason: expect.stringMatching(/signature/) } });
    } finally {
      await w.x.shutdown();
    }
  });
});

/** The root an attacker would compute for the store as it is now (leaves as the digest defines them). */
async function rootNow(w: World, cv: number): Promise<string> {
  const { leafHash, MerkleBuilder } = await import('../../core/engine/digests.js');
  const { digestOf } = await import('../../core/engine/hash-chain.js');
  const rows = w.sql((db) =>
    db.prepare('SELECT id, ov, hash FROM versions v WHERE cv <= ? AND ov = (SELECT MAX(ov) FROM versions w WHERE w.id = v.id AND w.cv <= ?) ORDER BY id').all(cv, cv),
  ) as Array<{ id: string; ov: number; hash: string }>;
  const m = new MerkleBuilder();
  for (const r of rows) m.add(leafHash(r.id, r.ov, digestOf(r.hash)));
  return m.root();
}

describe('signed digests (Ed25519) and proofs', () => {
  it('a proof of one version checks offline with the script in the docs (Node crypto only)', async () => {
    const w = await world(ed25519());
    try {
      const { digest } = await w.orders.writeDigest();
      expect(digest.algorithm).toBe('ed25519');
      expect(await w.orders.verifyCollection()).toMatchObject({ ok: true, digest: { ok: true } });
      const proof = await w.orders.proof(w.id, 2);
      expect(proof).toMatchObject({ id: w.id, ov: 2, chain: [{ fields: { ov: 2 } }, { fields: { ov: 3 } }, { fields: { ov: 4 } }] });
      const script = join(w.dir, 'verify-proof.mjs');
      writeFileSync(script, checkerScript());
      const proofFile = join(w.dir, 'proof.json');
      const keyFile = join(w.dir, 'public.pem');
      writeFileSync(proofFile, JSON.stringify(proof));
      writeFileSync(keyFile, proof.publicKey!);
      const run = () => spawnSync(process.execPath, [script, proofFile, keyFile], { encoding: 'utf8' });
      expect(run()).toMatchObject({ status: 0, stdout: expect.stringMatching(/^OK /) });
      // A forged proof fails the same script: the data of the version changed…
      const forged = structuredClone(proof);
      (forged.document.data as { total: number }).total = 1;
      writeFileSync(proofFile, JSON.stringify(forged));
      expect(run()).toMatchObject({ status: 1, stdout: expect.stringMatching(/^FAIL the document does not match its hash/) });
      // …or the digest was signed by another key.
      writeFileSync(proofFile, JSON.stringify(proof));
      writeFileSync(keyFile, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString());
      expect(run()).toMatchObject({ status: 1, stdout: expect.stringMatching(/^FAIL .*signature/) });
      // Another record's proof, and the newest version's, hold too.
      writeFileSync(keyFile, proof.publicKey!);
      for (const [id, ov] of [[w.others[2]!, 0], [w.id, 4]] as const) {
        writeFileSync(proofFile, JSON.stringify(await w.orders.proof(id, ov)));
        expect(run()).toMatchObject({ status: 0, stdout: expect.stringMatching(/^OK /) });
      }
      expect(canonicalJson(proof.digest)).toContain('"root"');
    } finally {
      await w.x.shutdown();
    }
  });
});

describe('proofs of HMAC-signed digests', () => {
  it('check offline with the secret from XRONOX_DIGEST_KEY, and fail with another', async () => {
    const w = await world(HMAC_KEY);
    try {
      await w.orders.writeDigest();
      const script = join(w.dir, 'verify-proof.mjs');
      writeFileSync(script, checkerScript());
      const proofFile = join(w.dir, 'proof.json');
      writeFileSync(proofFile, JSON.stringify(await w.orders.proof(w.id, 0)));
      const run = (key: string) => spawnSync(process.execPath, [script, proofFile], { encoding: 'utf8', env: { ...process.env, XRONOX_DIGEST_KEY: key } });
      expect(run(HMAC_KEY)).toMatchObject({ status: 0, stdout: expect.stringMatching(/^OK version 0 of /) });
      expect(run(randomBytes(32).toString('hex'))).toMatchObject({ status: 1, stdout: expect.stringMatching(/^FAIL .*signature/) });
    } finally {
      await w.x.shutdown();
    }
  });
});

/** The checker script, exactly as docs/verifiable-history.md prints it. */
function checkerScript(): string {
  const doc = readFileSync(new URL('../../docs/verifiable-history.md', import.meta.url), 'utf8');
  const m = /<!-- checker:start -->\s*```js\n([\s\S]*?)```\s*<!-- checker:end -->/.exec(doc);
  if (!m) throw new Error('docs/verifiable-history.md has no checker block');
  return m[1]!;
}
