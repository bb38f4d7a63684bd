/**
 * An HTTP proxy in front of a real server (s3rver) that injects faults, for outage and retry
 * tests. Every request asks `decide` what to do with it; `null` forwards it untouched.
 *
 * ```ts
 * const proxy = await startFaultProxy(server.endpoint, () => (throttle-- > 0 ? { kind: 'error', status: 503, code: 'SlowDown' } : null));
 * new S3BlobStore({ ref: 'x', connection: { ...conn, endpoint: proxy.endpoint } });
 * proxy.down = true;              // every connection and request is closed at once (refusedWhileDown counts them)
 * proxy.injected;                 // { error: 2, ... }: faults `decide` injected so far, by kind
 * await proxy.close();
 * ```
 *
 * Fault kinds, as a client sees them:
 * - `refuse`: the connection is closed before any response (ECONNRESET / socket hang up).
 * - `error`: an S3 error document with `status` and `code` (`SlowDown`, `InternalError`, …);
 *   the request never reaches the server.
 * - `ghost`: the request reaches the server and is carried out, but the client gets a 500: the
 *   write happened although the client was told it failed.
 * - `slow`: forwarded after `delayMs` (beyond the client's request timeout, it times out).
 * - `late`: forwarded at once, so the server carries it out, but the answer is held for `delayMs`
 *   (beyond the client's request timeout, the client times out although the write happened).
 * - `reset`: forwarded, then the response is cut off half-way through its body.
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Fault =
  | { kind: 'refuse' }
  | { kind: 'error'; status: number; code: string }
  | { kind: 'ghost' }
  | { kind: 'slow'; delayMs: number }
  | { kind: 'late'; delayMs: number }
  | { kind: 'reset' };

export type FaultKind = Fault['kind'];

/** What the proxy is asked about: the request line, before its body is read. */
export interface ProxiedRequest {
  method: string;
  url: string;
  /** 1-based, in arrival order. */
  seq: number;
}

export interface FaultProxy {
  /** `http://127.0.0.1:<port>`: point the client here instead of at the server. */
  readonly endpoint: string;
  /** While true, every new connection and every request is closed at once (counted in `refusedWhileDown`). */
  down: boolean;
  /** Requests received (faulted or not). */
  readonly requests: number;
  /** Faults `decide` injected so far, by kind. */
  readonly injected: Readonly<Record<FaultKind, number>>;
  /** Connections and requests closed because the proxy was `down`. */
  readonly refusedWhileDown: number;
  /** Requests forwarded whose upstream failed (the server itself was stopped): closed like `refuse`, counted here. */
  readonly upstreamFailures: number;
  close(): Promise<void>;
}

export async function startFaultProxy(target: string, decide: (req: ProxiedRequest) => Fault | null = () => null): Promise<FaultProxy> {
  const upstream = new URL(target);
  const injected: Record<FaultKind, number> = { refuse: 0, error: 0, ghost: 0, slow: 0, late: 0, reset: 0 };
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let requests = 0;
  let upstreamFailures = 0;
  let refusedWhileDown = 0;
  let closed = false;

  /**
   * The upstream headers for a body that is sent whole: a chunked answer gets its real length.
   * Other headers stay as they are (a HEAD answer announces the object's length, not its own).
   */
  const whole = (headers: IncomingMessage['headers'], length: number) => {
    if (headers['transfer-encoding'] === undefined) return headers;
    const out = { ...headers, 'content-length': String(length) };
    delete out['transfer-encoding'];
    return out;
  };

  /** Forwards the request; `onResponse` gets the upstream status, headers and whole body. */
  const forward = (req: IncomingMessage, res: ServerResponse, onResponse: (status: number, headers: IncomingMessage['headers'], body: Buffer) => void) => {
    const out = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      const chunks: Buffer[] = [];
      up.on('data', (chunk: Buffer) => chunks.push(chunk));
      up.on('end', () => onResponse(up.statusCode ?? 502, up.headers, Buffer.concat(chunks)));
      up.on('error', () => {
        upstreamFailures++;
        res.socket?.destroy();
      });
    });
    out.on('error', () => {
      // The server is gone (stopped mid-test): the client sees its connection dropped.
      upstreamFailures++;
      res.socket?.destroy();
    });
    req.pipe(out);
  };

  const server = createServer((req, res) => {
    requests++;
    const seq = requests;
    if (closed || proxy.down) {
      refusedWhileDown++;
      req.socket.destroy();
      return;
    }
    const fault = decide({ method: req.method ?? 'GET', url: req.url ?? '/', seq });
    if (fault) injected[fault.kind]++;
    switch (fault?.kind) {
      case 'refuse':
        req.socket.destroy();
        return;
      case 'error':
        req.resume();
        res.writeHead(fault.status, { 'content-type': 'application/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${fault.code}</Code><Message>Injected by the fault proxy.</Message></Error>`);
        return;
      case 'ghost':
        forward(req, res, () => {
          res.writeHead(500, { 'content-type': 'application/xml' });
          res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>Injected after the request was carried out.</Message></Error>');
        });
        return;
      case 'slow': {
        // The body waits in the socket's buffers until the request is forwarded.
        req.pause();
        const timer = setTimeout(() => {
          timers.delete(timer);
          if (req.socket.destroyed) return;
          req.resume();
          forward(req, res, (status, headers, body) => res.writeHead(status, whole(headers, body.length)).end(body));
        }, fault.delayMs);
        timers.add(timer);
        return;
      }
      case 'late':
        forward(req, res, (status, headers, body) => {
          const timer = setTimeout(() => {
            timers.delete(timer);
            if (!res.socket || res.socket.destroyed) return;
            res.writeHead(status, whole(headers, body.length)).end(body);
          }, fault.delayMs);
          timers.add(timer);
        });
        return;
      case 'reset':
        forward(req, res, (status, headers, body) => {
          // A HEAD answer has no body to cut: the connection dies before the headers.
          if (req.method === 'HEAD') return void res.socket?.destroy();
          // The full length (at least one byte, so an empty answer is cut too) is announced, half
          // of it sent, then the connection dies.
          const announced = { ...headers, 'content-length': String(Math.max(body.length, 1)) };
          delete announced['transfer-encoding'];
          res.writeHead(status, announced);
          res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.socket?.destroy());
        });
        return;
      default:
        forward(req, res, (status, headers, body) => res.writeHead(status, whole(headers, body.length)).end(body));
    }
  });
  server.on('connection', (socket) => {
    if (proxy.down) {
      refusedWhileDown++;
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  // Client sockets destroyed mid-request surface here; they are the point of the exercise.
  server.on('clientError', (_err, socket) => socket.destroy());

  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const proxy: FaultProxy = {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    down: false,
    get requests() {
      return requests;
    },
    injected,
    get refusedWhileDown() {
      return refusedWhileDown;
    },
    get upstreamFailures() {
      return upstreamFailures;
    },
    async close() {
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
  return proxy;
}
