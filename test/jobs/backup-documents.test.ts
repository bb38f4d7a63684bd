/**
 * Backups of the document databases (messaging, identities): the scheduled handler snapshots
 * every collection, the CLI restores them into a wiped database, and every stored document,
 * with its expiry and in its order, is back; a damaged or hostile snapshot is refused before
 * anything is written.
 */
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { StoredDocument } from '../../core/contracts/document-store.js';
import type { Xronox } from '../../core/xronox.js';
import type { DocumentBackupManifest } from '../../core/jobs/backup-documents.js';
import { backupDate, snapshotId } from '../../core/jobs/snapshot.js';
import { initXronox } from '../../core/xronox.js';
import { EXIT } from '../../functions/cli/xronox.js';
import { backup, container } from '../../functions/jobs/handlers.js';
import { allKeys, cliInProcess, freshNames, JOB_BACKENDS, jobConfig, lambdaContext, scheduledEvent, useJobBackend, writeConfig } from './support.js';

const DAY = 86_400_000;
const MESSAGING = ['shared_memory', 'topics', 'messages', 'dead_letters'] as const;
const IDENTITIES = ['users', 'accounts', 'sessions', 'roles', 'permissions'] as const;


describe.each(JOB_BACKENDS)('backups of messaging and identities databases: $name', (backend) => {
  if (backend.skip) {
    it.skip(`skipped: ${backend.skip}`, () => undefined);
    return;
  }
  const fx = useJobBackend(backend, 'xronox-jobs-backup-docs');

  async function start() {
    const names = freshNames();
    const ids = names.msg.replace(/^msg_/, 'ids_');
    await fx.inst.prepare([...Object.values(names), ids]);
    const sub = join(fx.dir.path, names.msg);
    const base = jobConfig(fx.inst, fx.dir.path, names);
    const db = (dbName: string) => ({ dbConnRef: 'local', dbName, ...fx.inst.databaseFields(dbName) });
    const config = {
      ...base,
      dbConnections: { local: { sqlitePath: join(sub, 'xronox.sqlite') } },
      databases: { ...base.databases, identities: { tenantDatabases: [{ tenantId: 'acme', ...db(ids) }] } },
    };
    const file = writeConfig(fx.dir.path, config);
    process.env.XRONOX_CONFIG_FILE = file;
    await container.close();
    const x = initXronox(config);
    fx.open.push(x);
    return { x, names, ids, config, file, sub };
  }

  /** Every stored document of every collection, as the document store exports it. */
  async function documents(x: Xronox, dbs: Array<{ dbName: string; collections: readonly string[] }>): Promise<Record<string, StoredDocument[]>> {
    const store = x.documentStoreFor({ dbConnRef: 'local' });
    const out: Record<string, StoredDocument[]> = {};
    for (const { dbName, collections } of dbs) {
      for (const collection of collections) out[`${dbName}/${collection}`] = (await store.exportDocuments({ dbName, collection }, { limit: 100_000 })).documents;
    }
    return out;
  }

  async function workload(x: Xronox) {
    const now = Date.now();
    const msg = (collection: string) => x.with({ databaseType: 'messaging', tier: 'generic', collection });
    for (let i = 0; i < 30; i++) {
      await msg('shared_memory').insert({
        key: `k${i}`, namespace: 'app', tenantId: i % 2 ? 'acme' : 'beta', val: { n: i, when: new Date(now - i * 1000), s: 'é🎉\u2028' },
        // Some entries keep for a day, one has already expired (retention has not run yet).
        _system: { createdAt: new Date(now - (i === 7 ? 3 : 0) * DAY), updatedAt: new Date(now - (i === 7 ? 3 : 0) * DAY), retentionDays: i === 7 ? 1 : i % 3 === 0 ? 1 : 3650 },
      });
    }
    await msg('topics').insert({ topic: 'payments', tenantId: 'acme', shards: 4, createdAt: new Date(now), _system: { updatedAt: new Date(now) } });
    // One payload over 64 KiB: the document holds a reference to the content bucket.
    await msg('messages').insert({ topic: 'payments', msgId: 'big-1', tenantId: 'acme', headers: {}, payload: { blob: 'x'.repeat(70 * 1024) }, firstSeenAt: new Date(now), size: 71_700, _system: { createdAt: new Date(now) } });
    for (let i = 0; i < 5; i++) await msg('messages').insert({ topic: 'payments', msgId: `m${i}`, tenantId: 'acme', headers: { 'x-i': String(i) }, payload: { amount: i }, firstSeenAt: new Date(now + i), size: 12, _system: { createdAt: new Date(now) } });
    await msg('dead_letters').insert({ topic: 'payments', msgId: 'm0', tenantId: 'acme', reason: 'timeout', headers: {}, payload: null, failedAt: new Date(now), deliveries: 5, _system: { createdAt: new Date(now) } });
    const idc = (collection: string) => x.with({ databaseType: 'identities', tier: 'tenant', tenantId: 'acme', collection });
    for (let i = 0; i < 4; i++) await idc('users').insert({ userId: `u${i}`, tenantId: 'acme', email: `user${i}@example.com`, name: `User ${i}`, roles: ['user'] }, { actor: 'setup' });
    await idc('users').upsert({ tenantId: 'acme', userId: 'u1' }, { userId: 'u1', tenantId: 'acme', email: 'user1@example.com', name: 'Renamed', roles: ['admin'] });
    await idc('sessions').insert({ sessionId: 's1', tenantId: 'acme', userId: 'u1', createdAt: new Date(now), expiresAt: new Date(now + DAY) });
    await idc('roles').insert({ name: 'admin', tenantId: 'acme', permissions: ['users:write'] });
    await x.flush();
  }

  it('backup, wipe, restore: every document of every collection is back, in order, with its expiry; reads answer as before', async () => {
    const { x, names, ids, file, sub, config } = await start();
    await workload(x);
    const dbs = [{ dbName: names.msg, collections: MESSAGING }, { dbName: ids, collections: IDENTITIES }];
    const before = await documents(x, dbs);
    expect(before[`${names.msg}/shared_memory`]).toHaveLength(30);
    expect(before[`${names.msg}/shared_memory`]!.filter((d) => d.expiresAt !== null && d.expiresAt.getTime() < Date.now())).toHaveLength(1);
    expect(before[`${ids}/users`]).toHaveLength(4);
    const big = x.with({ databaseType: 'messaging', tier: 'generic', collection: 'messages' });
    const bigBefore = await big.findOne({ msgId: 'big-1' });
    expect(JSON.stringify(bigBefore)).toContain('x'.repeat(1000));

    const now = new Date();
    const report = await backup(scheduledEvent(now, 'xronox-backup'), lambdaContext('xronox-backup'));
    expect(report).toMatchObject({ job: 'backup', complete: true, failures: [] });
    const docCount = Object.values(before).reduce((n, d) => n + d.length, 0);
    expect(report.counts.backedUpDocuments).toBe(docCount);
    const date = backupDate(new Date(scheduledEvent(now, 'x').time));
    const snap = snapshotId(new Date(scheduledEvent(now, 'x').time));

    // The documented layout, one snapshot per collection (empty ones too), a manifest that matches its files.
    const msgBucket = fx.inst.bucketOf(names.msg);
    const keys = await allKeys(fx.inspect, msgBucket, 'backups/');
    const folder = (c: string, dbName = names.msg) => `backups/${c}/${date}/${dbName}/${snap}/`;
    expect(keys).toEqual(MESSAGING.flatMap((c) => [`${folder(c)}manifest.json`, `${folder(c)}part-00000.jsonl.gz`]).sort());
    const manifestOf = async (bucket: string, key: string) => JSON.parse(Buffer.from((await fx.inspect.get(bucket, key))!).toString('utf8')) as DocumentBackupManifest;
    const sm = await manifestOf(msgBucket, `${folder('shared_memory')}manifest.json`);
    const part = (await fx.inspect.get(msgBucket, `${folder('shared_memory')}part-00000.jsonl.gz`))!;
    expect(sm).toMatchObject({
      format: 'xronox-backup/1', kind: 'documents', dbName: names.msg, databaseType: 'messaging', collection: 'shared_memory', date,
      snapshot: { id: snap, collections: [...MESSAGING] }, counts: { documents: 30 },
    });
    expect(sm.files).toEqual([{ name: 'part-00000.jsonl.gz', lines: 30, bytes: part.byteLength, sha256: createHash('sha256').update(part).digest('hex') }]);
    expect(gunzipSync(part).toString('utf8').split('\n')[0]).toMatch(/^\{"t":"doc","expiresAt":"[^"]+","doc":\{"key":"k0"/);
    expect((await manifestOf(fx.inst.bucketOf(ids), `${folder('permissions', ids)}manifest.json`)).counts).toEqual({ documents: 0 });
    // A retried invocation of the same schedule (same event time) finds its snapshots done.
    expect((await backup(scheduledEvent(now, 'xronox-backup'), lambdaContext('xronox-backup'))).counts).toMatchObject({ collectionsAlreadyBackedUp: report.counts.backedUpCollections });

    // A document written after the backup: a restore over it is refused, naming how many the
    // database holds, and changes nothing; --replace brings back exactly the snapshot.
    const memory = x.with({ databaseType: 'messaging', tier: 'generic', collection: 'shared_memory' });
    await memory.insert({ key: 'late', namespace: 'app', tenantId: 'acme', val: { n: -1 }, _system: { createdAt: new Date(), updatedAt: new Date(), retentionDays: 3650 } });
    const held = MESSAGING.reduce((n, c) => n + before[`${names.msg}/${c}`]!.length, 0) + 1;
    const refused = await cliInProcess(['backup', 'restore', '--db', names.msg, '--date', date, '--config', file, '--quiet']);
    expect({ code: refused.code, stderr: refused.stderr }).toEqual({
      code: EXIT.failed,
      stderr: `${names.msg} is not empty: it holds ${held} documents, and restoring a backup over them would mix them with the snapshot. Restore into an empty database, or pass --replace (mode: 'replace') to replace the whole database with the snapshot\n`,
    });
    expect((await documents(x, dbs))[`${names.msg}/shared_memory`]).toHaveLength(31);
    const replacing = await cliInProcess(['backup', 'restore', '--db', names.msg, '--date', date, '--replace', '--config', file, '--quiet']);
    expect({ code: replacing.code, stderr: replacing.stderr }).toEqual({ code: EXIT.ok, stderr: '' });
    expect(JSON.parse(replacing.stdout)).toMatchObject({ job: 'restore', complete: true, counts: { restoredCollections: 4, replacedDocuments: held } });
    expect(await documents(x, dbs)).toEqual(before);

    await x.shutdown();
    await container.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(sub, `xronox.sqlite${suffix}`), { force: true });

    for (const dbName of [names.msg, ids]) {
      const run = await cliInProcess(['backup', 'restore', '--db', dbName, '--date', date, '--config', file, '--quiet']);
      expect({ dbName, code: run.code, stderr: run.stderr }).toEqual({ dbName, code: EXIT.ok, stderr: '' });
      expect(JSON.parse(run.stdout.trim())).toMatchObject({ job: 'restore', complete: true, counts: { restoredCollections: dbName === ids ? 5 : 4 } });
    }
    // A second restore over the first is refused without --replace; with it, it converges to the same state.
    const again = await cliInProcess(['backup', 'restore', '--db', names.msg, '--date', date, '--config', file, '--quiet']);
    expect({ code: again.code, stderr: again.stderr.trim() }).toEqual({
      code: EXIT.failed,
      stderr: `${names.msg} is not empty: it holds ${MESSAGING.reduce((n, c) => n + before[`${names.msg}/${c}`]!.length, 0)} documents, and restoring a backup over them would mix them with the snapshot. Restore into an empty database, or pass --replace (mode: 'replace') to replace the whole database with the snapshot`,
    });
    const replaced = await cliInProcess(['backup', 'restore', '--db', names.msg, '--date', date, '--replace', '--config', file, '--quiet']);
    expect({ code: replaced.code, stderr: replaced.stderr }).toEqual({ code: EXIT.ok, stderr: '' });
    const x2 = initXronox(config);
    fx.open.push(x2);
    expect(await documents(x2, dbs)).toEqual(before);
    // Through the API: expired entries stay hidden, the large payload is read back from the content bucket, unique keys hold.
    const sm2 = x2.with({ databaseType: 'messaging', tier: 'generic', collection: 'shared_memory' });
    expect(await sm2.find({}, { limit: 100 })).toHaveLength(29);
    expect(await x2.with({ databaseType: 'messaging', tier: 'generic', collection: 'messages' }).findOne({ msgId: 'big-1' })).toEqual(bigBefore);
    const users = x2.with({ databaseType: 'identities', tier: 'tenant', tenantId: 'acme', collection: 'users' });
    expect(await users.findOne({ userId: 'u1' })).toMatchObject({ name: 'Renamed', roles: ['admin'] });
    await expect(users.insert({ userId: 'u9', tenantId: 'acme', email: 'user2@example.com', name: 'Clash', roles: [] })).rejects.toMatchObject({ index: 'tenantId_1_email_1' });
  });

  it('a damaged or hostile documents snapshot is refused, naming the file, before anything is written', async () => {
    const { x, names, ids, file, sub, config } = await start();
    await workload(x);
    const now = new Date();
    await backup(scheduledEvent(now, 'xronox-backup'), lambdaContext('xronox-backup'));
    const date = backupDate(new Date(scheduledEvent(now, 'x').time));
    await x.shutdown();
    await container.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(sub, `xronox.sqlite${suffix}`), { force: true });
    const bucket = fx.inst.bucketOf(names.msg);
    const snap = snapshotId(new Date(scheduledEvent(now, 'x').time));
    const folder = `backups/topics/${date}/${names.msg}/${snap}/`;
    const good = (await fx.inspect.get(bucket, `${folder}part-00000.jsonl.gz`))!;
    const manifest = JSON.parse(Buffer.from((await fx.inspect.get(bucket, `${folder}manifest.json`))!).toString('utf8')) as DocumentBackupManifest;

    const restore = (dbName = names.msg) => cliInProcess(['backup', 'restore', '--db', dbName, '--date', date, '--config', file, '--quiet']);
    /** Replaces a snapshot's one part with `line`, and its manifest with one that matches (a forger knows SHA-256 too). */
    const forge = async (line: string, where = { bucket, folder, manifest }) => {
      const gz = gzipSync(Buffer.from(`${line}\n`));
      await fx.inspect.put(where.bucket, `${where.folder}part-00000.jsonl.gz`, gz);
      const lines = line.split('\n').length;
      const doctored = { ...where.manifest, counts: { documents: lines }, files: [{ ...where.manifest.files[0]!, lines, bytes: gz.byteLength, sha256: createHash('sha256').update(gz).digest('hex') }] };
      await fx.inspect.put(where.bucket, `${where.folder}manifest.json`, Buffer.from(JSON.stringify(doctored)));
    };
    const nothingWritten = async () => {
      const x2 = initXronox(config);
      try {
        return await documents(x2, [{ dbName: names.msg, collections: MESSAGING }]);
      } finally {
        await x2.shutdown();
      }
    };
    const empty = Object.fromEntries(MESSAGING.map((c) => [`${names.msg}/${c}`, []]));

    const flipped = Buffer.from(good);
    flipped[flipped.length - 10] = flipped[flipped.length - 10]! ^ 0xff;
    await fx.inspect.put(bucket, `${folder}part-00000.jsonl.gz`, flipped);
    const damaged = await restore();
    expect(damaged.code).toBe(EXIT.failed);
    expect(damaged.stderr).toContain(`${folder}part-00000.jsonl.gz does not match its manifest`);
    expect(await nothingWritten()).toEqual(empty);

    const system = '"createdAt":{"$date":"2026-01-01T00:00:00.000Z"},"_system":{"updatedAt":{"$date":"2026-01-01T00:00:00.000Z"}}';
    // The well-formed line first: the forging itself is sound, so each refusal below is the line's.
    await forge(`{"t":"doc","expiresAt":null,"doc":{"topic":"t","tenantId":"acme","shards":1,${system}}}`);
    const sound = await restore();
    expect({ code: sound.code, stderr: sound.stderr }).toEqual({ code: EXIT.ok, stderr: '' });
    expect((await nothingWritten())[`${names.msg}/topics`]).toEqual([{ doc: { topic: 't', tenantId: 'acme', shards: 1, createdAt: new Date('2026-01-01T00:00:00.000Z'), _system: { updatedAt: new Date('2026-01-01T00:00:00.000Z') } }, expiresAt: null }]);
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(sub, `xronox.sqlite${suffix}`), { force: true });
    const hostile = [
      [`{"t":"doc","expiresAt":null,"doc":{"topic":"t","tenantId":"acme","$where":"1",${system}}}`, /Invalid key/],
      [`{"t":"doc","expiresAt":null,"doc":{"topic":"t","tenantId":"acme","__proto__":{"admin":true},${system}}}`, /Invalid key/],
      [`{"t":"doc","expiresAt":null,"doc":{"tenantId":"acme",${system}}}`, /unique key topic_1_tenantId_1/],
      ['{"t":"doc","expiresAt":null,"doc":{"topic":"t","tenantId":"acme"}}', /Invalid topics document/],
      [`{"t":"doc","expiresAt":"tomorrow","doc":{"topic":"t","tenantId":"acme",${system}}}`, /expiresAt/],
      ['{"t":"head","head":{}}', /not a document line/],
      // Two documents with one unique key (a backup read while a key moved): refused before the collection is cleared.
      [`{"t":"doc","expiresAt":null,"doc":{"topic":"t","tenantId":"acme","shards":1,${system}}}\n{"t":"doc","expiresAt":null,"doc":{"topic":"t","tenantId":"acme","shards":2,${system}}}`, /two documents hold one topic_1_tenantId_1 key/],
      ['not json', /not JSON/],
    ] as const;
    for (const [line, why] of hostile) {
      await forge(line);
      const run = await restore();
      expect({ line, code: run.code }).toEqual({ line, code: EXIT.failed });
      expect(run.stderr).toMatch(why);
      expect(run.stderr).toContain(`${folder}part-00000.jsonl.gz`);
      expect(await nothingWritten()).toEqual(empty);
    }
    // In a tenant's identities database, a document of another tenant is refused.
    const idsBucket = fx.inst.bucketOf(ids);
    const usersFolder = `backups/users/${date}/${ids}/${snap}/`;
    const usersManifest = JSON.parse(Buffer.from((await fx.inspect.get(idsBucket, `${usersFolder}manifest.json`))!).toString('utf8')) as DocumentBackupManifest;
    await forge('{"t":"doc","expiresAt":null,"doc":{"userId":"u1","tenantId":"beta","email":"eve@example.com","name":"Eve","roles":["admin"]}}', { bucket: idsBucket, folder: usersFolder, manifest: usersManifest });
    const crossTenant = await restore(ids);
    expect(crossTenant.code).toBe(EXIT.failed);
    expect(crossTenant.stderr).toMatch(/tenant "beta" cannot be in tenant "acme"'s database/);
    await forge(`{"t":"doc","expiresAt":null,"doc":{"topic":"t","tenantId":"acme",${system}}}`);
    // A records manifest where a documents one belongs is refused by its kind.
    await fx.inspect.put(bucket, `${folder}manifest.json`, Buffer.from(JSON.stringify({ ...manifest, kind: undefined })));
    expect((await restore()).stderr).toMatch(/not the manifest of a documents snapshot/);
    expect(await nothingWritten()).toEqual(empty);
  });
});
