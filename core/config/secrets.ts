import { type Environment, ENV_REFERENCE } from './env.js';
import { isRecord } from './normalise.js';

/**
 * Secrets of a config: the keys of every spaces connection, the password of every MongoDB
 * URI, the HTTP API's JWT secret (`api.jwt.secret`) and the digest key (`integrity.digestKey`). They never appear in logs, errors,
 * health output or any printed view of a loaded config (`maskWhenPrinted`): show
 * `maskConfig(config)` instead of the config, and pass any text that may quote config values
 * through `maskSecretsIn`.
 */

export const MASK = '****';

/** Secrets shorter than this are not searched for in text: they would match ordinary words. */
const MIN_SEARCHED_LENGTH = 4;

/**
 * The scheme of a MongoDB URI, found anywhere in the value and in any case: a value the driver
 * refuses (a leading space, `MONGODB://`) still reaches health output and error messages, and its
 * password must not.
 */
const URI_SCHEME = /(?:mongodb(?:\+srv)?|postgres(?:ql)?):\/\//i;
/** The connection fields whose URI holds a password. */
const URI_FIELDS = ['mongoUri', 'postgresUri'] as const;

/** A password given as a query parameter (`?password=…`, which PostgreSQL connection strings accept). */
const QUERY_PASSWORD = /([?&]password=)([^&#]*)/gi;

/**
 * A deep copy of `config` with `spacesConnections.*.secretKey` and `api.jwt.secret` replaced by
 * `****`, `accessKey` cut to its first 4 characters and `****` (all `****` when 8 characters or
 * fewer), and the password of every `dbConnections.*.mongoUri` and `postgresUri` replaced by `****`. Works on loaded configs and
 * on raw input alike; anything it does not recognise is copied unchanged.
 */
export function maskConfig<T>(config: T): T {
  const copy = structuredClone(config);
  if (!isRecord(copy)) return copy;
  if (isRecord(copy.spacesConnections)) {
    for (const conn of Object.values(copy.spacesConnections)) {
      if (!isRecord(conn)) continue;
      if (typeof conn.secretKey === 'string') conn.secretKey = MASK;
      if (typeof conn.accessKey === 'string') conn.accessKey = maskAccessKey(conn.accessKey);
    }
  }
  if (isRecord(copy.dbConnections)) {
    for (const conn of Object.values(copy.dbConnections)) {
      if (!isRecord(conn)) continue;
      for (const field of URI_FIELDS) if (typeof conn[field] === 'string') conn[field] = maskUri(conn[field]);
    }
  }
  const jwt = apiJwt(copy);
  if (jwt && typeof jwt.secret === 'string') jwt.secret = MASK;
  const integrity = integrityOf(copy);
  if (integrity && typeof integrity.digestKey === 'string') integrity.digestKey = MASK;
  return copy;
}

const INSPECT = Symbol.for('nodejs.util.inspect.custom');

/**
 * Makes every object of a (loaded, not yet frozen) config that holds a secret print masked: each
 * spaces connection, each `dbConnections` entry with a `mongoUri` or `postgresUri`, and `api.jwt` get a
 * `toJSON` (for `JSON.stringify`) and a `util.inspect` hook (for `console.log`, `util.format`,
 * the REPL) that give the masked copy `maskConfig` would, so no printable view of the config, or
 * of anything holding it (the `Xronox` instance), shows a secret; the secret fields themselves
 * become getters, which `console.dir` (no hooks) prints as `[Getter]`. The config's data is
 * unchanged: reading `secretKey` gives the real key, as the adapters need, and
 * `structuredClone(config)` is a plain copy with the secrets, for code that must write them out.
 */
export function maskWhenPrinted(config: unknown): void {
  if (!isRecord(config)) return;
  const hide = (holder: Record<string, unknown>, secretKeys: readonly string[], masked: () => Record<string, unknown>) => {
    Object.defineProperty(holder, 'toJSON', { value: masked, enumerable: false });
    Object.defineProperty(holder, INSPECT, { value: masked, enumerable: false });
    // The secret itself behind a getter: a view that skips the hooks (`console.dir`, which
    // inspects with `customInspect: false`) shows `[Getter]`, while reads, spreads and
    // `structuredClone` still get the value.
    for (const key of secretKeys) {
      const value = holder[key];
      if (typeof value === 'string') Object.defineProperty(holder, key, { get: () => value, enumerable: true });
    }
  };
  if (isRecord(config.spacesConnections)) {
    for (const conn of Object.values(config.spacesConnections)) {
      if (!isRecord(conn)) continue;
      hide(conn, ['accessKey', 'secretKey'], () => ({
        ...conn,
        ...(typeof conn.secretKey === 'string' ? { secretKey: MASK } : {}),
        ...(typeof conn.accessKey === 'string' ? { accessKey: maskAccessKey(conn.accessKey) } : {}),
      }));
    }
  }
  if (isRecord(config.dbConnections)) {
    for (const conn of Object.values(config.dbConnections)) {
      if (!isRecord(conn)) continue;
      const fields = URI_FIELDS.filter((field) => typeof conn[field] === 'string');
      if (fields.length > 0) hide(conn, fields, () => ({ ...conn, ...Object.fromEntries(fields.map((f) => [f, maskUri(conn[f] as string)])) }));
    }
  }
  const jwt = apiJwt(config);
  if (jwt && typeof jwt.secret === 'string') hide(jwt, ['secret'], () => ({ ...jwt, secret: MASK }));
  const integrity = integrityOf(config);
  if (integrity && typeof integrity.digestKey === 'string') hide(integrity, ['digestKey'], () => ({ ...integrity, digestKey: MASK }));
}

/**
 * `text` with every secret of `config` replaced by `****`: secret and access keys, URI passwords
 * (as written and percent-decoded), and, where the config still holds `ENV.NAME` in one of those
 * fields, the value of that variable in `env`. Secrets shorter than 4 characters are left alone.
 */
export function maskSecretsIn(text: string, config: unknown, env: Environment = process.env): string {
  let out = text;
  for (const secret of secretValues(config, env)) out = out.split(secret).join(MASK);
  return out;
}

/** Every secret value of `config`, longest first, so that a secret containing another is masked whole. */
export function secretValues(config: unknown, env: Environment = process.env): string[] {
  const found = new Set<string>();
  const add = (value: unknown, extract: (v: string) => string[] = (v) => [v]) => {
    if (typeof value !== 'string') return;
    const reference = ENV_REFERENCE.exec(value);
    const fromEnv = reference ? env[reference[1]!] : undefined;
    for (const raw of fromEnv === undefined ? [value] : [value, fromEnv]) {
      for (const secret of extract(raw)) if (secret.length >= MIN_SEARCHED_LENGTH && !ENV_REFERENCE.test(secret)) found.add(secret);
    }
  };
  if (isRecord(config)) {
    if (isRecord(config.spacesConnections)) {
      for (const conn of Object.values(config.spacesConnections)) {
        if (!isRecord(conn)) continue;
        add(conn.secretKey);
        add(conn.accessKey);
      }
    }
    if (isRecord(config.dbConnections)) {
      for (const conn of Object.values(config.dbConnections)) {
        if (isRecord(conn)) for (const field of URI_FIELDS) add(conn[field], uriPasswords);
      }
    }
    add(apiJwt(config)?.secret);
    // A PEM key is masked line by line too: a message may quote one line of it.
    add(integrityOf(config)?.digestKey, (v) => [v, ...v.split(/\r?\n/).filter((line) => !line.startsWith('-----'))]);
  }
  return [...found].sort((a, b) => b.length - a.length);
}

function apiJwt(config: Record<string, unknown>): Record<string, unknown> | undefined {
  return isRecord(config.api) && isRecord(config.api.jwt) ? config.api.jwt : undefined;
}

function maskAccessKey(key: string): string {
  return key.length <= 8 ? MASK : `${key.slice(0, 4)}${MASK}`;
}

/**
 * Where the password of a connection URI (MongoDB, PostgreSQL) is: between the first `:` of the user info and its last
 * `@`. Taking the last `@` masks too much rather than too little when a password holds an
 * unencoded `@`. `scheme` is everything up to the end of the scheme, so the parts rebuild `uri`.
 */
function splitUri(uri: string): { scheme: string; user: string; password: string; rest: string } | null {
  const match = URI_SCHEME.exec(uri);
  if (!match) return null;
  const schemeEnd = match.index + match[0].length;
  const scheme = uri.slice(0, schemeEnd);
  const afterScheme = uri.slice(schemeEnd);
  const at = afterScheme.lastIndexOf('@');
  // Stryker disable next-line EqualityOperator: with `at` 0 the user info is empty, has no `:`, and the next check returns null too.
  if (at < 0) return null;
  const userInfo = afterScheme.slice(0, at);
  const colon = userInfo.indexOf(':');
  if (colon < 0) return null;
  return { scheme, user: userInfo.slice(0, colon), password: userInfo.slice(colon + 1), rest: afterScheme.slice(at) };
}

function maskUri(uri: string): string {
  const parts = splitUri(uri);
  const masked = !parts || parts.password === '' ? uri : `${parts.scheme}${parts.user}:${MASK}${parts.rest}`;
  return URI_SCHEME.test(masked) ? masked.replace(QUERY_PASSWORD, (all, key: string, value: string) => (value === '' ? all : `${key}${MASK}`)) : masked;
}

/** The passwords of a connection URI (user info, `password=` parameters) as written and percent-decoded (an empty one is dropped by the length rule). */
function uriPasswords(uri: string): string[] {
  if (!URI_SCHEME.test(uri)) return [];
  const written = [...uri.matchAll(QUERY_PASSWORD)].map((m) => m[2]!);
  const parts = splitUri(uri);
  if (parts) written.push(parts.password);
  const out: string[] = [];
  for (const password of written) {
    out.push(password);
    try {
      // The same string twice is harmless: the caller keeps a set.
      out.push(decodeURIComponent(password));
    } catch {
      // Not valid percent-encoding: the password as written is all there is to mask.
    }
  }
  return out;
}

function integrityOf(config: Record<string, unknown>): Record<string, unknown> | undefined {
  return isRecord(config.integrity) ? config.integrity : undefined;
}
