/**
 * A writer process that creates records as fast as it can on the reliability store, until
 * SIGTERM, and prints one JSON line per acknowledged create: `{"id":…,"cv":…}` (waiting for the
 * parent to read when it is slow). On SIGTERM it finishes the write under way, shuts down and
 * exits 0.
 *
 *   node --import tsx busy-writer.ts '<config as JSON>'
 *
 * The config is the test's own; its blob folder decides whether the writer's own sync works.
 */
import type { Collection } from '../../../core/engine/collection.js';
import { initXronox } from '../../../core/xronox.js';
import { writeStdoutLine } from '../../support/stdout-line.js';
import { ordersRoute } from './history-client.js';

const xronox = initXronox(JSON.parse(process.argv[2]!) as unknown, { onBackgroundError: () => undefined });
const orders = xronox.with(ordersRoute) as Collection;
let stopping = false;
process.on('SIGTERM', () => (stopping = true));
for (let i = 0; !stopping; i++) {
  const { id, cv } = await orders.create({ i, note: 'busy writer' });
  writeStdoutLine(JSON.stringify({ id, cv }));
}
await xronox.shutdown();
process.exit(0);
