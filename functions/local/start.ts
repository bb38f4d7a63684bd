/**
 * `npm start`: the Xronox HTTP API on the embedded default (a SQLite file and a local folder laid
 * out as the S3 buckets would be), with no servers to install; or on a config file of your own.
 *
 * - `npm start -- --config <file>` (or `XRONOX_CONFIG_FILE=<file>`) serves that config, with the API
 *   keys and JWT settings of its `api` section (keys are kept there as SHA-256 hashes: `xronox
 *   hash-key` prints an entry). No key is printed. `XRONOX_DATA_DIR` and `XRONOX_API_KEY` are
 *   refused beside it (the config says where data lives and who may call), and so is a config
 *   that lets nobody in (no `api.keys`, no `api.jwt`). The rest of this list holds for both.
 *
 * - Data lives in `./.xronox-data` (`XRONOX_DATA_DIR` overrides) and survives restarts.
 * - Listens on http://localhost:3000 (`PORT` overrides; `PORT=0` picks a free port, printed).
 *   Binds to 127.0.0.1, since the printed key is an admin key; `HOST=0.0.0.0` to expose it.
 * - Serves the tenant `demo` and the generic tier (knowledge, metadata, logs) to one admin API
 *   key: `XRONOX_API_KEY` when set (not echoed), else a fresh random key printed at start. Only
 *   its SHA-256 is kept in memory, as a deployed config would keep it.
 * - Browser pages on other origins may call it when `XRONOX_CORS_ORIGINS` lists theirs
 *   (comma-separated, e.g. `http://localhost:5173`); by default no CORS headers are sent.
 * - Logs one JSON line per request on stdout, and one per background failure on stderr: the
 *   Lambda functions' shape without the AWS fields, and no metrics (docs/observability.md).
 * - Checks the data folder first: a folder it cannot create or write, or an SQLite file it cannot
 *   open, stops it before the key is printed, with the path and the reason, and exit code 1.
 * - Syncs to the blob folder what an earlier run left unsynced (`repair()`), in the background.
 * - A request whose body is refused before it arrived (413 and the like) is answered with
 *   `Connection: close` and a lingering close, so the client can read the answer (`serveApi`).
 * - SIGINT or SIGTERM: stops accepting connections, gives requests in flight up to 3 s to finish,
 *   shuts the engine down (draining the background blob sync; what it cannot finish stays in the
 *   outbox for the next start) and exits 0. Whatever hangs, it exits within 5 s of the signal
 *   (then with 1). A second signal exits at once.
 */
import { resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { createDevConfig, initXronox, loadConfigFile, maskSecretsIn, type XronoxConfig } from '../../core/index.js';
import { backgroundErrorLogger, createTelemetry, errorFields, requestObserver } from '../observability/telemetry.js';
import { TOKEN68 } from '../api/access.js';
import { generateApiKey, hashApiKey } from '../api/api-keys.js';
import { createApp } from '../api/app.js';
import { createApiAuthenticator } from '../api/auth.js';
import { corsSettings } from '../api/cors.js';
import { serveApi } from './node-server.js';

const TENANT = 'demo';
const KEY_ID = 'demo-admin';
/** How long requests in flight may take to finish once a shutdown signal arrives. */
const DRAIN_MS = 3_000;
/** The longest a stop takes, from the signal to the exit, whatever hangs (a request, a store). */
const STOP_MS = 5_000;

const configFile = readConfigOption();
const port = parsePort(process.env.PORT ?? '3000');
const hostname = process.env.HOST ?? '127.0.0.1';
const dataDir = resolve(process.env.XRONOX_DATA_DIR ?? '.xronox-data');
const fromEnv = Boolean(process.env.XRONOX_API_KEY);
let apiKey: string | null = null;
let config: XronoxConfig;
if (configFile) {
  // The config names the stores and who may call: a data folder or a key from the environment would be ignored, so they are refused.
  for (const name of ['XRONOX_DATA_DIR', 'XRONOX_API_KEY']) {
    if (process.env[name]) fail(`${name} is set, but a config file is given (${configFile}): the config says where data lives and who may call. Unset ${name}, or leave the config out to use the embedded default.`);
  }
  try {
    config = loadConfigFile(configFile);
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
  if ((config.api?.keys.length ?? 0) === 0 && !config.api?.jwt) {
    fail(
      `The config ${configFile} lets nobody call the API: it has no api.keys and no api.jwt. Add a key's entry to api.keys:\n` +
        `  printf %s "$KEY" | npx xronox hash-key --id <id> --role <read|write|admin> --tenant <tenantId>`,
    );
  }
} else {
  apiKey = fromEnv ? process.env.XRONOX_API_KEY! : generateApiKey();
  if (!TOKEN68.test(apiKey) || apiKey.length < 16) {
    fail('XRONOX_API_KEY must be at least 16 characters of letters, digits and -._~+/ (it is sent as a bearer token)');
  }
  config = createDevConfig({ sqlitePath: `${dataDir}/xronox.sqlite`, basePath: `${dataDir}/blobs`, tenants: [TENANT] });
}

// CORS: the config file's `api.cors`, or `XRONOX_CORS_ORIGINS` (which replaces it when set).
const cors = checkedCors(config.api?.cors);

const telemetry = createTelemetry({ metrics: false });
const xronox = initXronox(config, { onBackgroundError: backgroundErrorLogger(telemetry, () => (text) => maskSecretsIn(text, xronox.config)) });
try {
  await xronox.admin.checkStorage();
} catch (err) {
  const reason = err instanceof Error ? err.message : String(err);
  fail(configFile ? `Cannot use a store of the config ${configFile}: ${reason}` : `Cannot use the data folder ${dataDir} (XRONOX_DATA_DIR): ${reason}`);
}
// Records an earlier run committed but did not copy to the blob folder (it was killed, or its
// stop did not wait for a hung store): one bounded pass, beside the requests.
void xronox.repair().then(
  (report) => {
    if (report.synced + report.failed > 0) console.log(JSON.stringify({ level: 'info', msg: 'blob sync left by an earlier run', ...report }));
  },
  (err: unknown) => telemetry.logger.error('blob sync repair failed, will retry', { error: errorFields(err, (text) => maskSecretsIn(text, xronox.config)) }),
);
// With a config file, its own `api` section decides (createApp's default).
const auth = apiKey === null ? undefined : createApiAuthenticator({ keys: [{ id: KEY_ID, sha256: hashApiKey(apiKey), role: 'admin', tenants: [TENANT], domains: ['*'], generic: true }] });
const app = createApp({ xronox, ...(auth ? { auth } : {}), cors, logger: requestObserver(telemetry) });

const server = serveApi(app.fetch, { port, hostname }, (info: AddressInfo) => {
  const base = `http://${hostname === '127.0.0.1' || hostname === '::1' ? 'localhost' : hostname}:${info.port}`;
  if (apiKey === null) {
    const keys = config.api?.keys.length ?? 0;
    console.log(
      [
        `Xronox API on ${base} (config: ${configFile})`,
        `  docs:    ${base}/docs   (OpenAPI: ${base}/openapi.json)`,
        `  callers: ${keys} API key${keys === 1 ? '' : 's'} of the config (api.keys)${config.api?.jwt ? ', and JWTs (api.jwt)' : ''}: send one as Authorization: Bearer <key>`,
        '',
      ].join('\n'),
    );
    return;
  }
  console.log(
    [
      `Xronox API on ${base} (data in ${dataDir})`,
      `  docs:    ${base}/docs   (OpenAPI: ${base}/openapi.json)`,
      `  tenant:  ${TENANT}`,
      // A key the user chose is not echoed: it may be one they use elsewhere.
      `  API key: ${fromEnv ? '$XRONOX_API_KEY' : apiKey}   (admin on tenant "${TENANT}", every domain and the generic tier${fromEnv ? '' : '; new at every start unless XRONOX_API_KEY is set'})`,
      `  try:     curl -i -X POST ${base}/v1/tenants/${TENANT}/runtime/orders \\`,
      `             -H "Authorization: Bearer ${fromEnv ? '$XRONOX_API_KEY' : apiKey}" -H 'Content-Type: application/json' -d '{"customer":"ada","total":12}'`,
      '',
    ].join('\n'),
  );
});
server.on('error', (err) => fail(`Could not listen on ${hostname}:${port}: ${err.message}`));

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    // A second signal means "now": skip the drain.
    if (stopping) process.exit(1);
    stopping = true;
    void stop(signal);
  });
}

async function stop(signal: string): Promise<void> {
  console.log(JSON.stringify({ level: 'info', msg: `${signal}: shutting down` }));
  const deadline = Date.now() + STOP_MS;
  setTimeout(() => {
    console.error(JSON.stringify({ level: 'error', msg: `did not stop within ${STOP_MS} ms of ${signal}; exiting (unsynced writes stay in the outbox for the next start)` }));
    process.exit(1);
  }, STOP_MS).unref();
  const drained = new Promise<void>((done) => server.close(() => done()));
  // Idle keep-alive connections would hold close() open; busy ones get DRAIN_MS to finish.
  if ('closeIdleConnections' in server) server.closeIdleConnections();
  const force = setTimeout(() => 'closeAllConnections' in server && server.closeAllConnections(), DRAIN_MS);
  await drained;
  clearTimeout(force);
  // What the blob sync cannot finish by then stays in the outbox, for the next start's repair.
  await xronox.shutdown({ timeoutMs: Math.max(0, deadline - Date.now() - 500) });
  console.log(JSON.stringify({ level: 'info', msg: 'stopped' }));
  process.exit(0);
}

/** `--config <file>`, else `XRONOX_CONFIG_FILE`; absolute. Any other argument is refused by name. */
function readConfigOption(): string | null {
  let values;
  try {
    ({ values } = parseArgs({ args: process.argv.slice(2), options: { config: { type: 'string' } } }));
  } catch (err) {
    fail(`${err instanceof Error ? err.message : String(err)}\nUsage: npm start [-- --config <file>]   (or XRONOX_CONFIG_FILE=<file> npm start)`);
  }
  const file = values.config ?? process.env.XRONOX_CONFIG_FILE;
  return file ? resolve(file) : null;
}

function parsePort(text: string): number {
  const value = Number(text);
  if (!/^\d{1,5}$/.test(text) || value > 65_535) fail(`PORT must be a whole number from 0 to 65535, not "${text}"`);
  return value;
}

/** The CORS settings, `XRONOX_CORS_ORIGINS` checked before anything starts (a bad origin is named, then exit 1). */
function checkedCors(fromConfig: Parameters<typeof corsSettings>[0]): ReturnType<typeof corsSettings> {
  try {
    return corsSettings(fromConfig);
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
}

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}
