/**
 * Hosts reliability clients (`history-client.ts`) in a worker thread or in a child process:
 * one Xronox instance of its own, shared by the clients it hosts, which run concurrently.
 *
 *   process: node --import tsx history-worker.ts '<HostArgs as JSON>'   (prints the figures as one JSON line)
 *   thread:  startThreadHost(args)                                      (posts the figures)
 */
import { existsSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { initXronox } from '../../../core/xronox.js';
import type { Collection } from '../../../core/engine/collection.js';
import { type ClientFigures, ordersRoute, runClient } from './history-client.js';
import { OpLog } from './history-log.js';

export interface HostArgs {
  config: unknown;
  sharedIds: string[];
  clients: Array<{ client: string; seed: number; ops: number; acks?: number; logPath: string }>;
  /**
   * A start line: the host writes `ready` once its instance is open and waits for `go` to exist,
   * so that hosts slow to start (a process, a thread) still run at the same time as the others.
   */
  barrier?: { ready: string; go: string };
}

async function host(args: HostArgs): Promise<ClientFigures[]> {
  const xronox = initXronox(args.config);
  const orders = xronox.with(ordersRoute) as Collection;
  const logs = args.clients.map((c) => new OpLog(c.logPath));
  try {
    if (args.barrier) {
      // Opens the SQLite file and the route before the start, so every host starts warm.
      await orders.getLatest(args.sharedIds[0] ?? '00000000-0000-7000-8000-000000000000');
      writeFileSync(args.barrier.ready, '');
      while (!existsSync(args.barrier.go)) await new Promise((r) => setTimeout(r, 2));
    }
    return await Promise.all(args.clients.map((c, i) => runClient(orders, { client: c.client, seed: c.seed, ops: c.ops, ...(c.acks === undefined ? {} : { acks: c.acks }), sharedIds: args.sharedIds, log: logs[i]! })));
  } finally {
    for (const log of logs) log.close();
    await xronox.shutdown();
  }
}

/**
 * Runs a host in a worker thread of this process. Threads do not inherit tsx's loader, so the
 * thread first registers it, then imports this file (which, off the main thread, runs the host).
 */
export function startThreadHost(args: HostArgs): Promise<ClientFigures[]> {
  const boot = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); })`;
  const worker = new Worker(boot, { eval: true, workerData: args });
  return new Promise((resolve, reject) => {
    let figures: ClientFigures[] | undefined;
    worker.once('message', (m: ClientFigures[]) => (figures = m));
    worker.once('error', reject);
    worker.once('exit', (code) => (figures && code === 0 ? resolve(figures) : reject(new Error(`client thread exited with ${code} and no figures`))));
  });
}

if (!isMainThread && parentPort) {
  parentPort.postMessage(await host(workerData as HostArgs));
} else if (isMainThread && process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(`${JSON.stringify(await host(JSON.parse(process.argv[2]!) as HostArgs))}\n`);
}
