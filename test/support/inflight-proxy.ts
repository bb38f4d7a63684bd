/**
 * An HTTP proxy in front of a real server (s3rver) that counts the requests in flight through it,
 * to show how many object requests a job keeps going at once. Each request matching `hold` waits
 * at the proxy until `gather` such requests are waiting (or `maxWaitMs` passed), then all go on
 * together: a client that sends them one at a time is seen with one in flight (after the wait),
 * one that sends N at once with N, whatever the machine's speed.
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface InflightProxy {
  readonly endpoint: string;
  /** The most requests matching `hold` that were in flight at once. */
  readonly maxInFlight: number;
  /** Requests seen, by method. */
  readonly requests: Readonly<Record<string, number>>;
  close(): Promise<void>;
}

export async function startInflightProxy(
  upstream: string,
  options: { hold: (method: string, url: string) => boolean; gather: number; maxWaitMs?: number },
): Promise<InflightProxy> {
  const target = new URL(upstream);
  const requests: Record<string, number> = {};
  let inFlight = 0;
  let maxInFlight = 0;
  let waiting: Array<() => void> = [];
  let timer: NodeJS.Timeout | undefined;
  const releaseAll = () => {
    clearTimeout(timer);
    timer = undefined;
    const go = waiting;
    waiting = [];
    for (const f of go) f();
  };
  const forward = (req: IncomingMessage, res: ServerResponse, body: Buffer, counted: boolean) => {
    const out = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
        up.on('end', () => {
          if (counted) inFlight--;
        });
      },
    );
    out.on('error', () => {
      if (counted) inFlight--;
      res.destroy();
    });
    out.end(body);
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const method = req.method ?? 'GET';
      requests[method] = (requests[method] ?? 0) + 1;
      const body = Buffer.concat(chunks);
      if (!options.hold(method, req.url ?? '')) return forward(req, res, body, false);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      waiting.push(() => forward(req, res, body, true));
      if (waiting.length >= options.gather) releaseAll();
      else timer ??= setTimeout(releaseAll, options.maxWaitMs ?? 300);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get maxInFlight() {
      return maxInFlight;
    },
    requests,
    close: () =>
      new Promise<void>((r) => {
        releaseAll();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
