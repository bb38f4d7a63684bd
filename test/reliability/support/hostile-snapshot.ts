import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import Database from 'better-sqlite3';

/**
 * Everything a Xronox instance has stored, as one string: every row of every table of its SQLite
 * file (sorted) and every file under its blob folder with the SHA-256 of its bytes. Equal
 * snapshots before and after a rejected write prove it left nothing behind, not even in a queue.
 * Call after `xronox.flush()`, so no background copy is still on its way.
 */
export function storedState(sqlitePath: string, blobRoot: string): string {
  const db = new Database(sqlitePath, { readonly: true });
  const tables: Record<string, string[]> = {};
  try {
    const names = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as Array<{ name: string }>;
    for (const { name } of names) {
      const rows = db.prepare(`SELECT * FROM "${name}"`).all() as Array<Record<string, unknown>>;
      tables[name] = rows.map((r) => JSON.stringify(r, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('base64') : v))).sort();
    }
  } finally {
    db.close();
  }
  const blobs: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else blobs[relative(blobRoot, full)] = createHash('sha256').update(readFileSync(full)).digest('hex');
    }
  };
  if (existsSync(blobRoot)) walk(blobRoot);
  return JSON.stringify({ tables, blobs: Object.fromEntries(Object.entries(blobs).sort()) });
}

/**
 * A cheaper witness than {@link storedState}, for checks after every single call: the row count of
 * every table, every row of the small tables a commit always touches (collection versions,
 * counters, queues), and the number of blob files. A refused write that committed anything at
 * all moves one of these.
 */
export function storedFingerprint(sqlitePath: string, blobRoot: string): string {
  const db = new Database(sqlitePath, { readonly: true });
  const out: Record<string, unknown> = {};
  try {
    const names = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as Array<{ name: string }>;
    for (const { name } of names) {
      const full = ['collection_versions', 'counters', 'sync_outbox', 'pending_blobs', 'unique_claims'].includes(name);
      out[name] = full ? (db.prepare(`SELECT * FROM "${name}"`).all() as unknown[]).map((r) => JSON.stringify(r)).sort() : (db.prepare(`SELECT COUNT(*) AS n FROM "${name}"`).get() as { n: number }).n;
    }
  } finally {
    db.close();
  }
  let files = 0;
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name));
      else files++;
    }
  };
  if (existsSync(blobRoot)) walk(blobRoot);
  return JSON.stringify({ tables: out, files });
}

/** What differs between two {@link storedState} results: rows added or removed per table, blob files added, removed or changed. */
export function stateDiff(before: string, after: string): string[] {
  const a = JSON.parse(before) as { tables: Record<string, string[]>; blobs: Record<string, string> };
  const b = JSON.parse(after) as { tables: Record<string, string[]>; blobs: Record<string, string> };
  const out: string[] = [];
  for (const table of new Set([...Object.keys(a.tables), ...Object.keys(b.tables)])) {
    const was = new Set(a.tables[table] ?? []);
    const now = new Set(b.tables[table] ?? []);
    for (const row of now) if (!was.has(row)) out.push(`${table} + ${row.slice(0, 300)}`);
    for (const row of was) if (!now.has(row)) out.push(`${table} - ${row.slice(0, 300)}`);
  }
  for (const key of new Set([...Object.keys(a.blobs), ...Object.keys(b.blobs)])) {
    if (a.blobs[key] !== b.blobs[key]) out.push(`blob ${key}: ${a.blobs[key] ?? 'absent'} → ${b.blobs[key] ?? 'absent'}`);
  }
  return out;
}
