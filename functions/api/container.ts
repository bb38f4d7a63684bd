/**
 * What one Lambda container (or one local server process) builds once and reuses on every warm
 * invocation: the config, the engine with its clients, and the HTTP app.
 *
 * Nothing is built at import time: the first `get()` loads the config (from the source the
 * environment names, see `configSourceFrom`), constructs the engine and the app, and every later
 * `get()` returns the same objects. Concurrent first calls share one build. A build that fails is
 * not kept: its error goes to the caller, and the next `get()` (the next invocation) tries again,
 * so a transient failure (SSM throttling, a parameter created after the deploy) does not poison
 * the container until Lambda recycles it.
 *
 * `stats` counts real constructions (engines, index and blob stores, SSM clients, apps), so a test
 * can prove that warm invocations reuse them.
 */
import { resolve } from 'node:path';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { type BackgroundErrorHandler, ConfigError, defaultAdapters, findConfigFile, loadConfig, loadConfigFile, Xronox, type AdapterFactories, type XronoxConfig } from '../../core/index.js';

/** Names the config JSON file to load (absolute, or relative to the working directory). */
export const CONFIG_FILE_VARIABLE = 'XRONOX_CONFIG_FILE';
/** Names the SSM parameter (String or SecureString) that holds the config JSON. */
export const CONFIG_SSM_VARIABLE = 'XRONOX_CONFIG_SSM';

/** Where the config comes from; see `configSourceFrom`. */
export type ConfigSource =
  | { kind: 'file'; path: string }
  | { kind: 'ssm'; parameter: string }
  | { kind: 'bundled'; searchedFrom: string };

/**
 * The config source the environment names: `XRONOX_CONFIG_FILE` (a JSON file) wins over
 * `XRONOX_CONFIG_SSM` (a parameter name); with neither (or both empty), the file bundled with the
 * function: `xronox.config.json` (else `.xronox.json`) in `LAMBDA_TASK_ROOT`, else in the working
 * directory or the nearest package root above it (`findConfigFile`).
 */
export function configSourceFrom(env: NodeJS.ProcessEnv): ConfigSource {
  const file = env[CONFIG_FILE_VARIABLE];
  if (file) return { kind: 'file', path: resolve(file) };
  const parameter = env[CONFIG_SSM_VARIABLE];
  if (parameter) return { kind: 'ssm', parameter };
  return { kind: 'bundled', searchedFrom: env.LAMBDA_TASK_ROOT || process.cwd() };
}

/** What a container holds once built. */
export interface Built<App = unknown> {
  config: XronoxConfig;
  source: ConfigSource;
  xronox: Xronox;
  app: App;
}

/** How many of each thing a container has constructed since it was created (never reset). */
export interface ContainerStats {
  /** Builds started (first `get()`, and each retry after a failed build or `close()`). */
  builds: number;
  /** Builds that threw. */
  failedBuilds: number;
  /** Xronox engines constructed. */
  engines: number;
  /** Index stores the engines opened (one per `dbConnections` entry in use). */
  indexStores: number;
  /** Blob stores the engines opened (one per spaces connection in use, one for localStorage). */
  blobStores: number;
  /** Document stores (messaging, identities), one per connection. */
  documentStores: number;
  /** SSM clients constructed (at most one per container, reused across retries). */
  ssmClients: number;
  /** HTTP apps built. */
  apps: number;
}

export interface ContainerOptions<App> {
  /** Builds the HTTP app (a Hono app) over the engine; called once per build that got that far. */
  buildApp: (built: Omit<Built, 'app'>) => App | Promise<App>;
  /** Read when a build starts (so a test can set it first). Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Errors of background work (blob sync) and where they happened. Default: the engine's, one JSON line on stderr (the sync retries by itself). */
  onBackgroundError?: BackgroundErrorHandler;
}

export interface Container<App = unknown> {
  /** The built container: built on the first call, the same objects on every later one. */
  get(): Promise<Built<App>>;
  /** Real constructions so far. */
  readonly stats: Readonly<ContainerStats>;
  /**
   * Shuts the engine down (drains the blob sync, closes clients) and forgets the build; the next
   * `get()` builds again. For tests and local servers: Lambda never calls it.
   */
  close(): Promise<void>;
}

export function createContainer<App>(options: ContainerOptions<App>): Container<App> {
  const env = options.env ?? process.env;
  const stats: ContainerStats = { builds: 0, failedBuilds: 0, engines: 0, indexStores: 0, blobStores: 0, documentStores: 0, ssmClients: 0, apps: 0 };
  let ssm: Promise<SSMClient> | undefined;
  let current: Promise<Built<App>> | undefined;

  // The default adapters, counted: each call makes one store, on the store's first use (its module
  // and SDK are loaded, and its client or file handle opened, when it is first called).
  const adapters: AdapterFactories = {
    indexStore(...args) {
      const store = defaultAdapters.indexStore(...args);
      stats.indexStores++;
      return store;
    },
    blobStore(...args) {
      const store = defaultAdapters.blobStore(...args);
      stats.blobStores++;
      return store;
    },
    documentStore(ref, connection) {
      const store = defaultAdapters.documentStore(ref, connection);
      stats.documentStores++;
      return store;
    },
  };

  // The SSM SDK is loaded only by a container whose config is read from SSM (as the stores' SDKs
  // are loaded only by the backends a config names): a cold start from a file pays nothing for it.
  const ssmClient = (): Promise<SSMClient> => {
    ssm ??= import('@aws-sdk/client-ssm').then(
      ({ SSMClient: Client }) => {
        stats.ssmClients++;
        // Region and credentials come from the Lambda environment (AWS_REGION, the role's keys).
        return new Client({});
      },
      (err: unknown) => {
        ssm = undefined; // the next build tries again
        throw err;
      },
    );
    return ssm;
  };

  const build = async (): Promise<Built<App>> => {
    stats.builds++;
    const source = configSourceFrom(env);
    const config = await loadFrom(source, env, ssmClient);
    // What initXronox does, with the counted adapters.
    const xronox = new Xronox(config, adapters, options.onBackgroundError ? { onBackgroundError: options.onBackgroundError } : {});
    stats.engines++;
    try {
      const app = await options.buildApp({ config, source, xronox });
      stats.apps++;
      return { config, source, xronox, app };
    } catch (err) {
      // Nothing of a failed build is kept, so nothing of it may stay open either.
      await xronox.shutdown().catch(() => undefined);
      throw err;
    }
  };

  return {
    stats,
    get() {
      if (!current) {
        const attempt = build();
        current = attempt;
        attempt.catch(() => {
          stats.failedBuilds++;
          if (current === attempt) current = undefined;
        });
      }
      return current;
    },
    async close() {
      const closing = current;
      current = undefined;
      if (!closing) return;
      const built = await closing.catch(() => undefined);
      await built?.xronox.shutdown();
    },
  };
}

/** Loads, validates and normalises the config from its source. Every failure is a `ConfigError`. */
async function loadFrom(source: ConfigSource, env: NodeJS.ProcessEnv, ssmClient: () => Promise<SSMClient>): Promise<XronoxConfig> {
  switch (source.kind) {
    case 'file':
      return loadConfigFile(source.path, env);
    case 'bundled':
      return loadConfigFile(findConfigFile(source.searchedFrom), env);
    case 'ssm': {
      const input = await readParameter(await ssmClient(), source.parameter);
      try {
        return loadConfig(input, env);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        const named = new ConfigError(err.issues, { cause: err.cause });
        named.message = err.message.replace(/^Invalid Xronox config/, `Invalid Xronox config in the SSM parameter ${source.parameter}`);
        throw named;
      }
    }
  }
}

/**
 * The parsed JSON of an SSM parameter, decrypted if it is a SecureString. Neither the value nor
 * `JSON.parse`'s message (which can quote it) ever appears in an error: the value holds secrets.
 */
async function readParameter(client: SSMClient, name: string): Promise<unknown> {
  let value: string | undefined;
  try {
    const { GetParameterCommand } = await import('@aws-sdk/client-ssm');
    const out = await client.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
    value = out.Parameter?.Value;
  } catch (err) {
    const reason = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    throw new ConfigError([{ path: '', message: `Cannot read the config from the SSM parameter ${name} (${reason})` }], { cause: err });
  }
  if (value === undefined) throw new ConfigError([{ path: '', message: `The SSM parameter ${name} has no value` }]);
  try {
    return JSON.parse(value) as unknown;
  } catch {
    throw new ConfigError([{ path: '', message: `The SSM parameter ${name} does not hold valid JSON (${value.length} characters; the value is not shown because it may hold secrets)` }]);
  }
}
