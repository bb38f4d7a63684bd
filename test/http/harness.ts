import { request } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { createDevConfig } from '../../core/config/presets.js';
import type { XronoxConfigInput } from '../../core/config/schema.js';
import type { Xronox } from '../../core/xronox.js';
import { initXronox } from '../../core/xronox.js';
import { hashApiKey } from '../../functions/api/api-keys.js';
import { createApp, type CreateAppOptions } from '../../functions/api/app.js';
import { serveApi } from '../../functions/local/node-server.js';
import { tempDir } from '../support/temp.js';
import { seededRandom } from '../support/random.js';

export { seededRandom };

/**
 * A real server for HTTP tests: the app from `createApp`, served as `npm start` serves it
 * (`serveApi`, on `@hono/node-server`) on an ephemeral port, over a fresh SQLite file and blob folder in a temp dir. Requests go over TCP
 * with `fetch`, exactly as a client's would.
 */

/** Keys every test server accepts, by what they may do. Tenants `acme` and `beta` exist; `gamma` does not. */
export const KEYS = {
  acmeAdmin: 'xrx_test-acme-admin-0123456789abcdef',
  acmeWriter: 'xrx_test-acme-writer-0123456789abcdef',
  acmeReader: 'xrx_test-acme-reader-0123456789abcdef',
  betaAdmin: 'xrx_test-beta-admin-0123456789abcdef',
  /** Every tenant, domain and the generic tier: reaches validation and the engine with any name. */
  everywhere: 'xrx_test-everywhere-0123456789abcdef',
} as const;

export const TENANTS = ['acme', 'beta'] as const;

type ApiInput = NonNullable<XronoxConfigInput['api']>;

export function testApiConfig(extra: Partial<ApiInput> = {}): ApiInput {
  const key = (id: string, key: string, role: 'read' | 'write' | 'admin', grants: { tenants?: string[]; domains?: string[]; generic?: boolean }) => ({
    id,
    sha256: hashApiKey(key),
    role,
    ...grants,
  });
  return {
    keys: [
      key('acme-admin', KEYS.acmeAdmin, 'admin', { tenants: ['acme'], domains: ['health'], generic: true }),
      key('acme-writer', KEYS.acmeWriter, 'write', { tenants: ['acme'] }),
      key('acme-reader', KEYS.acmeReader, 'read', { tenants: ['acme'] }),
      key('beta-admin', KEYS.betaAdmin, 'admin', { tenants: ['beta'], domains: ['finance'] }),
      key('everywhere', KEYS.everywhere, 'admin', { tenants: ['*'], domains: ['*'], generic: true }),
    ],
    ...extra,
  };
}

export interface TestServer {
  base: string;
  xronox: Xronox;
  dataDir: string;
  /** Every log line the app wrote, in order. */
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

export interface ServerOptions {
  /** The config's `api` section. Default `testApiConfig()`. */
  api?: ApiInput;
  /** Merged over the dev config (e.g. `collectionMaps`, `counterRules`). */
  config?: Partial<XronoxConfigInput>;
  /** Replaces the SQLite path (e.g. with one that cannot be opened). */
  sqlitePath?: string;
  app?: Omit<CreateAppOptions, 'xronox'>;
}

export async function startServer(options: ServerOptions = {}): Promise<TestServer> {
  const dir = tempDir('xronox-http');
  const dev = createDevConfig({
    sqlitePath: options.sqlitePath ?? `${dir.path}/xronox.sqlite`,
    basePath: `${dir.path}/blobs`,
    tenants: [...TENANTS],
  });
  const domains = { domainsDatabases: [{ domain: 'health', dbConnRef: 'local', dbName: 'xronox_dev_knowledge_health' }] };
  const xronox = initXronox({
    ...dev,
    databases: { ...dev.databases, knowledge: { ...dev.databases.knowledge, ...domains } },
    api: options.api ?? testApiConfig(),
    ...options.config,
  });
  const logs: Record<string, unknown>[] = [];
  const app = createApp({ xronox, logger: (line) => logs.push(line), ...options.app });
  const { server, port } = await new Promise<{ server: ReturnType<typeof serveApi>; port: number }>((resolveListening) => {
    const s = serveApi(app.fetch, { port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) => resolveListening({ server: s, port: info.port }));
  });
  return {
    base: `http://127.0.0.1:${port}`,
    xronox,
    dataDir: dir.path,
    logs,
    async close() {
      await new Promise<void>((done) => {
        server.close(() => done());
        if ('closeAllConnections' in server) server.closeAllConnections();
      });
      await xronox.shutdown();
      dir.cleanup();
    },
  };
}

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON (`undefined` when it is not JSON). */
  json: unknown;
}

export interface RequestOptions {
  key?: string | null;
  /** A JSON value to send as `application/json`, or a raw string/buffer with `contentType`. */
  body?: unknown;
  raw?: string | Uint8Array;
  contentType?: string | null;
  headers?: Record<string, string>;
}

/**
 * One request over HTTP; never throws on an HTTP status. Sent with `node:http`, which puts the
 * path on the wire exactly as given: `fetch` would resolve `..` and `%2e` segments first, so
 * hostile paths would never reach the server as written.
 */
export function call(base: string, method: string, path: string, options: RequestOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.key !== null) headers.authorization = `Bearer ${options.key ?? KEYS.acmeAdmin}`;
  let body: string | Uint8Array | undefined;
  if (options.raw !== undefined) body = options.raw;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  const contentType = options.contentType === undefined ? (body !== undefined ? 'application/json' : null) : options.contentType;
  if (contentType !== null) headers['content-type'] = contentType;
  if (body !== undefined) headers['content-length'] = String(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength);
  const { hostname, port } = new URL(base);
  return new Promise((resolveReply, fail) => {
    const req = request({ host: hostname, port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const replyHeaders = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) replyHeaders.append(name, v);
        }
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolveReply({ status: res.statusCode ?? 0, headers: replyHeaders, text, json });
      });
    });
    req.on('error', fail);
    req.end(body);
  });
}

/** `call` with a JSON body that must succeed; returns the parsed reply body. */
export async function ok<T = Record<string, unknown>>(base: string, method: string, path: string, options: RequestOptions = {}): Promise<{ body: T; reply: Reply }> {
  const reply = await call(base, method, path, options);
  if (reply.status >= 300) throw new Error(`${method} ${path} answered ${reply.status}: ${reply.text}`);
  return { body: reply.json as T, reply };
}

/** What a raw TCP client reads after sending `head` and `bodyBytes` bytes of body (optionally chunked). */
export async function rawExchange(
  base: string,
  head: string,
  body: { bytes: number; chunked?: boolean },
): Promise<{ response: string; error: string | null; sent: number; closedByServer: boolean }> {
  const { hostname, port } = new URL(base);
  return new Promise((done) => {
    // allowHalfOpen: the client goes on sending after the server's FIN, as a client writing its body does.
    const socket = connect({ host: hostname, port: Number(port), allowHalfOpen: true });
    let response = '';
    let error: string | null = null;
    let sent = 0;
    let closedByServer = false;
    const chunk = Buffer.alloc(65_536, 'a');
    socket.on('data', (data: Buffer) => (response += data.toString('latin1')));
    socket.on('end', () => (closedByServer = true));
    socket.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
    socket.on('close', () => done({ response, error, sent, closedByServer }));
    socket.write(head);
    const next = () => {
      if (socket.destroyed) return;
      if (sent >= body.bytes) {
        if (body.chunked) socket.end('0\r\n\r\n');
        else socket.end();
        return;
      }
      const part = chunk.subarray(0, Math.min(chunk.length, body.bytes - sent));
      sent += part.length;
      const flushed = socket.write(body.chunked ? Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n')]) : part);
      if (flushed) setImmediate(next);
      else socket.once('drain', next);
    };
    next();
  });
}

export function parseRawResponse(text: string): { status: number; headers: Record<string, string>; body: string } {
  const end = text.indexOf('\r\n\r\n');
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  return { status: Number(statusLine!.split(' ')[1]), headers, body: text.slice(end + 4) };
}
