import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { type AddressInfo, connect, createServer } from 'node:net';
import Database from 'better-sqlite3';
import { Hono } from 'hono';
import { createDevConfig } from '../../core/config/presets.js';
import type { XronoxConfigInput } from '../../core/config/schema.js';
import type { Xronox } from '../../core/xronox.js';
import { initXronox } from '../../core/xronox.js';
import { hashApiKey } from '../../functions/api/api-keys.js';
import { createApp, type CreateAppOptions } from '../../functions/api/app.js';
import { serveApi } from '../../functions/local/node-server.js';
import { dropDocumentSchemas, schemasOf } from '../support/postgres-docs.js';
import { dropSchemas, POSTGRES_URI, postgresAvailability, randomSchemaPrefix, withPostgres } from '../support/postgres.js';
import { seededRandom } from '../support/random.js';
import { tempDir } from '../support/temp.js';

export { seededRandom };

/**
 * A real server for HTTP tests: the app from `createApp`, served as `npm start` serves it
 * (`serveApi`, on `@hono/node-server`) on an ephemeral port, over a fresh index and document
 * store and a blob folder in a temp dir. Requests go over TCP, exactly as a client's would.
 *
 * The store is the one `XRONOX_TEST_BACKEND` names: `sqlite` (default; a fresh SQLite file) or
 * `postgres` (the vitest project `postgres` sets it: every database a schema under a random
 * prefix of the server's own, dropped by `close()`). PostgreSQL not answering fails the suites
 * that need it, unless `XRONOX_POSTGRES_OPTIONAL=1` (then vitest.config.ts leaves the project out).
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

export const BACKENDS = ['sqlite', 'postgres'] as const;
export type Backend = (typeof BACKENDS)[number];

/** The store this run's servers use (`XRONOX_TEST_BACKEND`, default `sqlite`). */
export const BACKEND: Backend = backendOf(process.env.XRONOX_TEST_BACKEND);

function backendOf(value: string | undefined): Backend {
  if (value === undefined || value === '') return 'sqlite';
  if ((BACKENDS as readonly string[]).includes(value)) return value as Backend;
  throw new Error(`XRONOX_TEST_BACKEND is ${JSON.stringify(value)}; expected one of ${BACKENDS.join(', ')}`);
}

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
  /** The temp folder of this server: its blobs (`blobs/`) and, on SQLite, its database file. */
  dataDir: string;
  backend: Backend;
  /** On PostgreSQL, the prefix of every schema this server's connection `local` makes; else `null`. */
  schemaPrefix: string | null;
  /** Every log line the app wrote, in order. */
  logs: Record<string, unknown>[];
  /** Every error of the engine's background work (the blob sync), in order; each is printed too. */
  backgroundErrors: unknown[];
  /**
   * What the store holds of its own structure, as sorted lines: the database file and every
   * table and index in it (SQLite), or every schema of the server's prefix and every relation in
   * them (PostgreSQL). A refused request must not change it.
   */
  storeObjects(): Promise<string[]>;
  close(): Promise<void>;
}

export interface ServerOptions {
  /** The config's `api` section. Default `testApiConfig()`. */
  api?: ApiInput;
  /** Merged over the dev config (e.g. `collectionMaps`, `counterRules`). */
  config?: Partial<XronoxConfigInput>;
  /**
   * An index and document store that cannot be opened: a folder where the SQLite file should be,
   * or a PostgreSQL URI of a port nothing listens on.
   */
  unopenableStore?: boolean;
  /** SQLite only: where the database file goes (default: in the server's temp dir). */
  sqlitePath?: string;
  /**
   * PostgreSQL only: the schema prefix of connection `local` (default: a random one), for a
   * caller whose `config.dbConnections` adds connections of its own under the same prefix.
   * `close()` drops the schemas of this prefix.
   */
  schemaPrefix?: string;
  app?: Omit<CreateAppOptions, 'xronox'>;
  /**
   * Serve the app under this path prefix (e.g. `/stage`), as an API Gateway stage or a reverse
   * proxy does; paths given to `call` then start with it (`base` stays the origin). Default: at the root.
   */
  basePath?: string;
}

export async function startServer(options: ServerOptions = {}): Promise<TestServer> {
  const dir = tempDir('xronox-http');
  const store = await openStore(dir.path, options);
  const dev = createDevConfig({ basePath: `${dir.path}/blobs`, tenants: [...TENANTS] });
  const domains = { domainsDatabases: [{ domain: 'health', dbConnRef: 'local', dbName: 'xronox_dev_knowledge_health' }] };
  const backgroundErrors: unknown[] = [];
  const xronox = initXronox(
    {
      ...dev,
      dbConnections: { local: store.connection },
      databases: { ...dev.databases, knowledge: { ...dev.databases.knowledge, ...domains } },
      api: options.api ?? testApiConfig(),
      ...options.config,
    },
    {
      onBackgroundError: (err) => {
        backgroundErrors.push(err);
        console.error(`[test server] background blob sync failed, will retry: ${err instanceof Error ? err.message : String(err)}`);
      },
    },
  );
  const logs: Record<string, unknown>[] = [];
  const app = createApp({ xronox, logger: (line) => logs.push(line), ...options.app });
  const served = options.basePath === undefined ? app : new Hono().route(options.basePath, app);
  const { server, port } = await new Promise<{ server: ReturnType<typeof serveApi>; port: number }>((resolveListening) => {
    const s = serveApi(served.fetch, { port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) => resolveListening({ server: s, port: info.port }));
  });
  return {
    base: `http://127.0.0.1:${port}`,
    xronox,
    dataDir: dir.path,
    backend: BACKEND,
    schemaPrefix: store.schemaPrefix,
    logs,
    backgroundErrors,
    storeObjects: store.objects,
    async close() {
      await new Promise<void>((done) => {
        server.close(() => done());
        if ('closeAllConnections' in server) server.closeAllConnections();
      });
      try {
        await xronox.shutdown();
      } finally {
        await store.cleanup();
        dir.cleanup();
      }
    },
  };
}

interface TestStore {
  connection: { sqlitePath: string } | { postgresUri: string; schemaPrefix: string };
  schemaPrefix: string | null;
  objects(): Promise<string[]>;
  cleanup(): Promise<void>;
}

let postgresChecked: Promise<void> | null = null;

/** Fails, naming the reason, when PostgreSQL does not answer (checked once per test file). */
export function requirePostgres(): Promise<void> {
  postgresChecked ??= postgresAvailability().then((availability) => {
    if (!availability.ok) throw new Error(`${availability.reason}. The HTTP suites of the vitest project "postgres" need it: start PostgreSQL, point XRONOX_POSTGRES_URI at one, or set XRONOX_POSTGRES_OPTIONAL=1 to leave the project out.`);
  });
  return postgresChecked;
}

async function openStore(dir: string, options: ServerOptions): Promise<TestStore> {
  const unopenable = options.unopenableStore === true;
  if (BACKEND === 'sqlite') {
    // A directory where the database file should be: the real driver fails to open it.
    if (options.schemaPrefix !== undefined) throw new Error('startServer: schemaPrefix is for the PostgreSQL backend only');
    const sqlitePath = unopenable ? dir : (options.sqlitePath ?? `${dir}/xronox.sqlite`);
    return { connection: { sqlitePath }, schemaPrefix: null, objects: async () => sqliteObjects(sqlitePath), cleanup: async () => undefined };
  }
  if (options.sqlitePath !== undefined) throw new Error('startServer: sqlitePath is for the SQLite backend only');
  await requirePostgres();
  const schemaPrefix = options.schemaPrefix ?? randomSchemaPrefix();
  const postgresUri = unopenable ? await refusingPostgresUri() : POSTGRES_URI;
  return {
    connection: { postgresUri, schemaPrefix },
    schemaPrefix,
    objects: () => postgresObjects(schemaPrefix),
    async cleanup() {
      // Index schemas carry `_schema_info`, document schemas `_xronox_documents`; each helper drops
      // only its kind, and only schemas of this prefix. Anything of the prefix left is a schema
      // the store made without its marker: a defect to report, not to sweep away.
      await dropSchemas(schemaPrefix);
      await dropDocumentSchemas(schemaPrefix);
      const left = await schemasOf(schemaPrefix);
      if (left.length > 0) throw new Error(`Schemas of prefix ${schemaPrefix} left after dropping the store's own: ${left.join(', ')}`);
    },
  };
}

function sqliteObjects(file: string): string[] {
  if (!existsSync(file)) return [];
  const db = new Database(file, { readonly: true });
  try {
    const rows = db.prepare('SELECT type, name FROM sqlite_master ORDER BY type, name').all() as Array<{ type: string; name: string }>;
    return ['file', ...rows.map((r) => `${r.type} ${r.name}`)];
  } finally {
    db.close();
  }
}

async function postgresObjects(prefix: string): Promise<string[]> {
  return withPostgres(async (client) => {
    const rows = await client.query<{ line: string }>(
      `SELECT 'schema ' || n.nspname AS line FROM pg_namespace n WHERE left(n.nspname, length($1)) = $1
       UNION ALL
       SELECT c.relkind::text || ' ' || n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE left(n.nspname, length($1)) = $1`,
      [prefix],
    );
    // Without the random prefix, so two servers' answers compare.
    return rows.rows.map((r) => r.line.split(prefix).join('')).sort();
  });
}

/** A PostgreSQL URI whose port refuses connections: one the OS just gave out and took back. */
async function refusingPostgresUri(): Promise<string> {
  const probe = createServer();
  await new Promise<void>((done) => probe.listen(0, '127.0.0.1', done));
  const { port } = probe.address() as AddressInfo;
  await new Promise((done) => probe.close(done));
  const uri = new URL(POSTGRES_URI);
  uri.hostname = '127.0.0.1';
  uri.port = String(port);
  return uri.toString();
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
