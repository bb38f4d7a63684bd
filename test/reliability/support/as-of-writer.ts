/**
 * The second process of the as-of-now test: it shares the test's SQLite file and, for each line
 * `update <id> <ov>` on stdin, updates that record at that ov and prints the new ov once the
 * write is acknowledged.
 */
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createDevConfig } from '../../../core/config/presets.js';
import { initXronox } from '../../../core/xronox.js';

const [dir, tenantId] = process.argv.slice(2) as [string, string];
const xronox = initXronox(createDevConfig({ sqlitePath: join(dir, 'index.sqlite'), basePath: join(dir, 'blobs'), tenants: [tenantId] }));
const records = xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId, collection: 'two_processes' });

let n = 0;
for await (const line of createInterface({ input: process.stdin })) {
  const [command, id, ov] = line.split(' ');
  if (command !== 'update' || id === undefined || ov === undefined) throw new Error(`unknown command: ${line}`);
  const result = await records.update(id, { n: n++, by: 'child' }, Number(ov));
  process.stdout.write(`${result.ov}\n`);
}
await xronox.shutdown();
