/**
 * A TCP proxy in front of a PostgreSQL server that can lose the answer to one COMMIT, for the
 * tests of what a client does when its connection breaks while a transaction commits. Bytes pass
 * untouched both ways until a test arms it; then the first client message that ends a simple
 * query with `COMMIT` (how the index store sends a transaction's writes) and holds the test's
 * marker (a string the caught write carries, e.g. its reason; values go inline) is caught:
 *
 * - `hold`: the message never reaches the server. The client's socket stays open, silent, until
 *   `releaseHeld()` closes it; meanwhile the test may crash and restart the server.
 * - `drop-answer`: the message reaches the server (which commits), its answer is discarded and
 *   the client's socket closed, as when a network drops the reply.
 *
 * ```ts
 * const proxy = await startCommitProxy(cluster.port);
 * proxy.uri;                            // postgres://postgres@127.0.0.1:<proxy port>/postgres
 * const caught = proxy.arm('hold', 'reason-123');   // resolves once a COMMIT holding it was caught
 * proxy.releaseHeld();                  // closes the held client socket
 * await proxy.close();
 * ```
 *
 * A server connection that ends (a crash) ends its client connection too, except a held one.
 * TLS is not proxied (the test servers run without it).
 */
import { createServer, connect, type Socket } from 'node:net';

export type CommitFault = 'hold' | 'drop-answer';

export interface CommitProxy {
  readonly uri: string;
  /** Catches the next COMMIT whose message holds `marker`, with `fault`; resolves once one was caught. */
  arm(fault: CommitFault, marker: string): Promise<void>;
  /** Closes the client socket whose COMMIT is held (the client sees its connection break). */
  releaseHeld(): void;
  close(): Promise<void>;
}

/** How a simple query that ends with COMMIT ends on the wire: the statement and its NUL terminator. */
const COMMIT_AT_END = Buffer.from('COMMIT\0');

export async function startCommitProxy(serverPort: number): Promise<CommitProxy> {
  const pairs = new Set<{ client: Socket; server: Socket }>();
  let armed: { fault: CommitFault; marker: Buffer; caught: () => void } | undefined;
  let held: Socket | undefined;

  const proxy = createServer((client) => {
    const server = connect(serverPort, '127.0.0.1');
    const pair = { client, server };
    pairs.add(pair);
    let answerDropped = false;
    client.on('data', (chunk: Buffer) => {
      // One message arrives in one chunk here: the caught writes are a few hundred bytes.
      const catchIt = armed && chunk.includes(COMMIT_AT_END) && chunk.includes(armed.marker);
      if (!catchIt) {
        server.write(chunk);
        return;
      }
      const { fault, caught } = armed!;
      armed = undefined;
      if (fault === 'hold') {
        // The server's session stays open, its transaction in progress, until the server goes.
        held = client;
      } else {
        answerDropped = true;
        server.write(chunk);
      }
      caught();
    });
    server.on('data', (chunk: Buffer) => {
      if (answerDropped) {
        // The reply to the caught COMMIT arrived: the client never sees it.
        client.destroy();
        server.destroy();
        return;
      }
      client.write(chunk);
    });
    server.on('close', () => {
      pairs.delete(pair);
      if (client !== held) client.destroy();
    });
    client.on('close', () => {
      pairs.delete(pair);
      server.destroy();
    });
    client.on('error', () => undefined);
    server.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    proxy.once('error', reject);
    proxy.listen(0, '127.0.0.1', () => resolve());
  });
  const address = proxy.address();
  if (typeof address !== 'object' || address === null) throw new Error('the proxy has no port');

  return {
    uri: `postgres://postgres@127.0.0.1:${address.port}/postgres`,
    arm: (fault, marker) =>
      new Promise<void>((resolve) => {
        armed = { fault, marker: Buffer.from(marker), caught: resolve };
      }),
    releaseHeld: () => {
      held?.destroy();
      held = undefined;
    },
    close: async () => {
      for (const { client, server } of pairs) {
        client.destroy();
        server.destroy();
      }
      held?.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    },
  };
}
