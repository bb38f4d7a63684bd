import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Collection } from '../../core/engine/collection.js';
import { initXronox } from '../../core/xronox.js';
import { seededRandom } from '../support/random.js';
import { tempDir } from '../support/temp.js';
import { reliabilityScale, reliabilitySeed } from './support/fault-schedule.js';
import { CONTENT_KILL_MODES, type ContentAck, type ContentKillMode, type ContentWriterArgs, contentRoute } from './support/content-kill.js';

/**
 * Writers of content (`base64Props`) killed with SIGKILL on the embedded default (SQLite and the
 * local blob folder): in the middle of an upload, between an upload and its commit, as the commit
 * returns, or anywhere after an ack. Content is uploaded before the commit, so a killed writer may
 * leave objects no record references; about a third of its updates set content back to an
 * earlier version's bytes, so some of what it leaves is an object a committed version uses.
 * After all trials and one `repair()` (with the upload intents older than
 * `limits.maxUploadSeconds`), the content folder must hold exactly the objects that versions and
 * heads reference, and every version must read back with its SHA-256 (every acknowledged one with
 * the SHA-256 its writer logged).
 *
 * XRONOX_RELIABILITY_SCALE multiplies the number of trials (default 1: 32);
 * XRONOX_RELIABILITY_SEED changes the seed (printed).
 */

const SCALE = reliabilityScale();
const SEED = reliabilitySeed(7_2026);
const TRIALS = Math.max(CONTENT_KILL_MODES.length, Math.round(32 * SCALE));
const K_MAX: Record<ContentKillMode, number> = { signal: 8, 'before-put': 8, 'after-put': 8, 'after-commit': 8 };
const WRITER_SOURCE = new URL('./support/content-writer.ts', import.meta.url).pathname;
const STALE_SECONDS = 1;
const DB = 'rt_content';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

describe(`content writers killed with SIGKILL (seed ${SEED}, scale ${SCALE})`, () => {
  const dir = tempDir('xronox-content-crash');
  const writer = join(dir.path, 'content-writer.mjs');
  const contentRoot = join(dir.path, 'blobs', DB, 'content');
  const config = {
    dbConnections: { local: { sqlitePath: join(dir.path, 'xronox.sqlite') } },
    localStorage: { basePath: join(dir.path, 'blobs'), enabled: true },
    databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: DB }] } },
    collectionMaps: { files: { indexedProps: ['n'], base64Props: { file: { contentType: 'application/octet-stream' } } } },
    limits: { maxUploadSeconds: STALE_SECONDS },
  };
  afterAll(() => dir.cleanup());

  beforeAll(async () => {
    await build({
      entryPoints: [WRITER_SOURCE],
      outfile: writer,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      logLevel: 'warning',
      // The native addon stays where npm built it; everything else goes in the bundle.
      plugins: [{ name: 'native-addon', setup: (b) => void b.onResolve({ filter: /^better-sqlite3$/ }, () => ({ path: createRequire(import.meta.url).resolve('better-sqlite3'), external: true })) }],
    });
  });

  /** Files under the content folder, as object keys (`content/…`). */
  function contentFiles(): string[] {
    const out: string[] = [];
    const walk = (folder: string) => {
      if (!existsSync(folder)) return;
      for (const entry of readdirSync(folder, { withFileTypes: true })) {
        const path = join(folder, entry.name);
        if (entry.isDirectory()) walk(path);
        else out.push(`content/${relative(contentRoot, path)}`);
      }
    };
    walk(contentRoot);
    return out.sort();
  }

  function tempFiles(): { files: number; bytes: number } {
    const folder = join(dir.path, 'blobs', DB, '.xronox-tmp');
    if (!existsSync(folder)) return { files: 0, bytes: 0 };
    const names = readdirSync(folder);
    return { files: names.length, bytes: names.reduce((sum, name) => sum + statSync(join(folder, name)).size, 0) };
  }

  function intentRows(): number {
    const sqlite = new Database(join(dir.path, 'xronox.sqlite'), { readonly: true });
    try {
      return (sqlite.prepare('SELECT count(*) AS n FROM content_uploads').get() as { n: number }).n;
    } catch {
      return -1;
    } finally {
      sqlite.close();
    }
  }

  it(`${TRIALS} trials: after one repair, the content folder holds exactly what versions reference, and every version reads back`, async () => {
    const random = seededRandom(SEED);
    const logPath = join(dir.path, 'acks.jsonl');
    const kills: Record<ContentKillMode, number> = { signal: 0, 'before-put': 0, 'after-put': 0, 'after-commit': 0 };
    for (let trial = 0; trial < TRIALS; trial++) {
      const mode = CONTENT_KILL_MODES[trial % CONTENT_KILL_MODES.length]!;
      const k = 1 + Math.floor(random() * K_MAX[mode]);
      const args: ContentWriterArgs = { config, logPath, seed: SEED * 1000 + trial, mode, k };
      const run = await runWriter(writer, args, mode === 'signal' ? { killAfterAcks: k, delayMs: random() * 15 } : {});
      expect({ trial, mode, k, signal: run.signal, stderr: run.stderr }).toEqual({ trial, mode, k, signal: 'SIGKILL', stderr: '' });
      kills[mode]++;
    }

    const acks = readFileSync(logPath, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as ContentAck);
    const objectsBefore = contentFiles();
    const intentsBefore = intentRows();
    const tempBefore = tempFiles();

    const x = initXronox(config);
    try {
      const files = x.with(contentRoute) as Collection;
      // Every version of every record: its content key, and its bytes checked (the engine compares them with the SHA-256 in the reference).
      const referenced = async () => {
        const keys = new Set<string>();
        let versions = 0;
        for (let afterId: string | undefined; ; ) {
          const page = await files.listByMeta({ includeDeleted: true, limit: 200, ...(afterId ? { afterId } : {}) });
          for (const record of page.items) {
            for (let ov = 0; ov <= record.ov; ov++) {
              const version = await files.getVersion(record.id, ov);
              expect(version, `${record.id} v${ov}`).not.toBeNull();
              versions++;
              if (typeof version!.data.file !== 'string') continue;
              keys.add(`content/files/${record.id}/file/${sha256(Buffer.from(version!.data.file, 'base64'))}/blob.bin`);
            }
          }
          if (page.nextAfterId === null) break;
          afterId = page.nextAfterId;
        }
        return { keys, versions };
      };
      const before = await referenced();
      const orphansBefore = objectsBefore.filter((k) => !before.keys.has(k));
      const orphanBytes = orphansBefore.reduce((sum, key) => sum + statSync(join(contentRoot, key.slice('content/'.length))).size, 0);

      await sleep(STALE_SECONDS * 1000 + 200);
      const report = await x.repair();
      const after = await referenced();
      for (const a of acks) {
        const version = await files.getVersion(a.id, a.ov);
        if (a.sha === null) expect(version?.deleted, `${a.id} v${a.ov}`).toBe(true);
        else expect(sha256(Buffer.from(version!.data.file as string, 'base64')), `${a.id} v${a.ov} (${a.op})`).toBe(a.sha);
      }
      const objectsAfter = contentFiles();
      console.log(
        `[reliability] content crash: seed ${SEED}, scale ${SCALE}: ${TRIALS} SIGKILLs ${JSON.stringify(kills)}, ${acks.length} acknowledged writes (${JSON.stringify(countBy(acks.map((a) => a.op)))}); ` +
          `before the repair: ${objectsBefore.length} content objects, ${orphansBefore.length} of them referenced by no version ` +
          `(${orphanBytes} bytes), ${intentsBefore} upload intents, ` +
          `${tempBefore.files} temporary files of cut-off puts (${tempBefore.bytes} bytes; removed by the first put after a minute); ` +
          `repair ${JSON.stringify(report.uploads)}; after it: ${objectsAfter.length} content objects, ${after.versions} versions read back, ${acks.length} acknowledged ones by SHA-256`,
      );
      expect(objectsAfter).toEqual([...after.keys].sort());
      expect(after.keys).toEqual(before.keys);
      expect(report.uploads.failed).toBe(0);
      expect(intentRows()).toBe(0);
      // The trials did leave what this test is about.
      expect(orphansBefore.length).toBeGreaterThan(0);
      expect(report.uploads.kept).toBeGreaterThan(0);
    } finally {
      await x.shutdown();
    }
  }, 600_000 * Math.max(1, SCALE));
});

function countBy(items: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) out[item] = (out[item] ?? 0) + 1;
  return out;
}

/** Runs the writer; with `killAfterAcks`, sends SIGKILL once that many ack lines arrived, `delayMs` later. */
function runWriter(writer: string, args: ContentWriterArgs, options: { killAfterAcks?: number; delayMs?: number } = {}): Promise<{ signal: NodeJS.Signals | null; code: number | null; stderr: string }> {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, [writer, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let acks = 0;
  let killing = false;
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    acks += chunk.split('\n').length - 1;
    if (options.killAfterAcks !== undefined && acks >= options.killAfterAcks && !killing) {
      killing = true;
      setTimeout(() => child.kill('SIGKILL'), options.delayMs ?? 0);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}
