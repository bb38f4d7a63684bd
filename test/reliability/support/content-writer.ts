/**
 * A writer process for `content-crash.test.ts`: creates, updates and restores records whose
 * `file` property is content (`base64Props`, 1 KiB to 768 KiB), on the real SQLite index store
 * and filesystem blob store, until it is killed with SIGKILL:
 * - `signal`: the parent kills it after the k-th ack line plus a short random delay (anywhere,
 *   often mid-upload or between an upload and its commit);
 * - `before-put` / `after-put`: it kills itself as its k-th content upload starts (intent
 *   recorded, nothing stored) or has finished (object stored, not committed);
 * - `after-commit`: as its k-th index commit returns, before the ack.
 * About a third of the updates set the content back to an earlier version's bytes (the same
 * object key as that committed version), so a kill then leaves an intent on an object that a
 * committed version uses.
 *
 * Every acknowledged write is logged (one JSON line: id, ov, SHA-256 of the content or null for
 * a deletion) with a synchronous write, so the log survives the kill.
 *
 *   node content-writer.mjs '<ContentWriterArgs as JSON>'   (the test runs it bundled)
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { FsBlobStore } from '../../../core/adapters/fs/fs-blob-store.js';
import { sqliteIndexStore } from '../../support/sqlite-index.js';
import { loadConfig } from '../../../core/config/load.js';
import type { Collection } from '../../../core/engine/collection.js';
import { type AdapterFactories, Xronox } from '../../../core/xronox.js';
import { seededRandom } from '../../support/random.js';
import { type ContentAck, type ContentWriterArgs, contentRoute } from './content-kill.js';
import { writeStdoutLine } from '../../support/stdout-line.js';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

await main(JSON.parse(process.argv[2]!) as ContentWriterArgs);

async function main(args: ContentWriterArgs): Promise<void> {
  const die = () => process.kill(process.pid, 'SIGKILL');
  let commits = 0;
  let puts = 0;
  const factories: AdapterFactories = {
    indexStore: (_ref, connection) =>
      hook(sqliteIndexStore({ path: connection.sqlitePath! }), 'commit', {
        after: (result) => {
          if (args.mode === 'after-commit' && (result as { ok: boolean }).ok && ++commits === args.k) die();
        },
      }),
    blobStore: (_ref, _connection, basePath) =>
      hook(new FsBlobStore({ basePath: basePath! }), 'put', {
        before: (key) => {
          if (args.mode === 'before-put' && key.startsWith('content/') && ++puts === args.k) die();
        },
        after: (_result, key) => {
          if (args.mode === 'after-put' && key.startsWith('content/') && ++puts === args.k) die();
        },
      }),
  };
  const xronox = new Xronox(loadConfig(args.config), factories);
  const files = xronox.with(contentRoute) as Collection;
  const random = seededRandom(args.seed);
  const int = (n: number) => Math.floor(random() * n);
  const log = openSync(args.logPath, 'a');
  const ack = (entry: ContentAck) => {
    writeSync(log, `${JSON.stringify(entry)}\n`);
    // The parent counts these lines to time a `signal` kill.
    writeStdoutLine('a');
  };

  const ids: string[] = [];
  for (let afterId: string | undefined; ; ) {
    const page = await files.listByMeta({ limit: 1000, ...(afterId ? { afterId } : {}) });
    ids.push(...page.items.map((r) => r.id));
    if (page.nextAfterId === null) break;
    afterId = page.nextAfterId;
  }
  const content = () => {
    const bytes = Buffer.alloc(1024 + int(767 * 1024));
    for (let i = 0; i + 4 <= bytes.length; i += 4) bytes.writeUInt32LE(Math.floor(random() * 2 ** 32), i);
    return bytes;
  };

  for (let n = 0; ; n++) {
    const roll = random();
    if (ids.length < 3 || roll < 0.15) {
      const bytes = content();
      const created = await files.create({ n, file: bytes.toString('base64') }, 'content-writer', 'create');
      ids.push(created.id);
      ack({ op: 'create', id: created.id, ov: 0, sha: sha256(bytes) });
      continue;
    }
    const id = ids[int(ids.length)]!;
    const head = await files.getLatest(id, { includeDeleted: true });
    if (!head) continue;
    if (roll < 0.55 && !head.deleted) {
      const bytes = content();
      const r = await files.update(id, { n, file: bytes.toString('base64') }, head.ov, 'content-writer', 'update');
      ack({ op: 'update', id, ov: r.ov, sha: sha256(bytes) });
    } else if (roll < 0.8 && !head.deleted) {
      // Back to an earlier version's bytes: the object that version references.
      const earlier = await files.getVersion(id, int(head.ov + 1));
      if (!earlier || earlier.deleted) continue;
      const bytes = Buffer.from(earlier.data.file as string, 'base64');
      const r = await files.update(id, { n, file: earlier.data.file }, head.ov, 'content-writer', 'revert');
      ack({ op: 'revert', id, ov: r.ov, sha: sha256(bytes) });
    } else if (roll < 0.95) {
      const target = await files.getVersion(id, int(head.ov + 1));
      if (!target) continue;
      const r = await files.restoreObject(id, { ov: target.ov }, { expectedOv: head.ov, actor: 'content-writer', reason: 'restore' });
      ack({ op: 'restore', id, ov: r.ov, sha: target.deleted ? null : sha256(Buffer.from(target.data.file as string, 'base64')) });
    } else if (!head.deleted) {
      const r = await files.delete(id, head.ov, 'content-writer', 'delete');
      ack({ op: 'delete', id, ov: r.ov, sha: null });
    }
  }
  closeSync(log);
}

/** The store with a kill hook around one method (given the call's key argument); every call still goes to the real store. */
function hook<T extends object>(store: T, method: string, hooks: { before?: (key: string) => void; after?: (result: unknown, key: string) => void }): T {
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      if (property !== method) return value.bind(target);
      return async (...callArgs: unknown[]) => {
        const key = typeof callArgs[1] === 'string' ? callArgs[1] : '';
        hooks.before?.(key);
        const result: unknown = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, callArgs);
        hooks.after?.(result, key);
        return result;
      };
    },
  });
}
