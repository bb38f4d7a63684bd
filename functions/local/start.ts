/**
 * `npm start`: Xronox on the embedded default, with no servers. Data lives in ./.xronox-data
 * (a SQLite file and a folder of JSON objects laid out as S3 would hold them).
 *
 * It walks through a versioned record's life (create, update, enrich, time travel, restore),
 * prints what the engine answered and where the objects landed, and leaves the data in place so
 * that running it again shows the history growing.
 */
import { resolve } from 'node:path';
import { createDevConfig } from '../../core/config/presets.js';
import { initXronox } from '../../core/xronox.js';

const dataDir = resolve(process.env.XRONOX_DATA_DIR ?? '.xronox-data');
const config = createDevConfig({ sqlitePath: `${dataDir}/xronox.sqlite`, basePath: `${dataDir}/blobs`, tenants: ['demo'] });
const xronox = initXronox(config, { onBackgroundError: (err) => console.error('blob sync failed (will retry):', err) });

try {
  const orders = xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'demo', collection: 'orders' });
  const created = await orders.create({ customer: 'ada', items: ['book'], total: 12 }, 'demo-user', 'checkout');
  const updated = await orders.update(created.id, { customer: 'ada', items: ['book', 'pen'], total: 14 }, created.ov, 'demo-user', 'added a pen');
  await orders.enrich(created.id, { items: ['gift-wrap'], shipping: { method: 'express' } }, { functionId: 'shipping@v1', actor: 'shipping-bot' });
  const then = await orders.getAsOf(created.id, created.createdAt);
  await orders.restoreObject(created.id, { ov: updated.ov }, { actor: 'support', reason: 'customer changed their mind' });
  const latest = await orders.getLatest(created.id);
  const history = await orders.history(created.id);
  await xronox.flush();
  const route = orders.route;
  const everything = await orders.listByMeta({ limit: 1000 });

  console.log(`Xronox on the embedded default (data in ${dataDir})\n`);
  console.log(`created order ${created.id}`);
  console.log(`  as of its creation:`, JSON.stringify(then?.data));
  console.log(`  latest (ov ${latest?.ov}):`, JSON.stringify(latest?.data));
  console.log(`  history:`);
  for (const h of history.items) console.log(`    v${h.ov} ${h.op.padEnd(7)} ${h.at} by ${h.actor}${h.reason ? ` (${h.reason})` : ''}`);
  console.log(`  versions in ${dataDir}/blobs/${route.blobs.versions?.bucket}/versions/orders/${created.id}/`);
  console.log(`\n${everything.items.length} order(s) for tenant "demo" so far; totals:`, await xronox.counters.getTotals({ databaseType: 'runtime', tier: 'tenant', tenantId: 'demo', collection: 'orders' }));
} finally {
  await xronox.shutdown();
}
