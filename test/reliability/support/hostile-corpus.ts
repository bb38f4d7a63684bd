/**
 * The generated hostile-input corpus: values no JSON document may hold, documents built around
 * them, filters, options, names and configs. Each item says whether it must be refused
 * (`reject`) or may be accepted, in which case what is stored must read back as its JSON form.
 * Everything is drawn from a seeded generator, so a seed names the whole corpus.
 */
import type { Gen } from '../../support/random.js';

export interface HostileItem<T = unknown> {
  label: string;
  value: T;
  /** True: any acceptance is a bug. False: acceptance is fine if the data reads back as `JSON.parse(JSON.stringify(value))`. */
  reject: boolean;
  /**
   * For messaging and identities documents, when it differs from `reject`: they are plain
   * MongoDB-style documents, where a key such as `constructor` is only a name; the record
   * engine refuses such keys as prototype-polluting.
   */
  rejectInDocuments?: boolean;
  /** A whole non-document (null, an array, a string): only record writes take it as the document itself. */
  topLevel?: boolean;
}

class NotPlain {
  a = 1;
}

function nested(depth: number, asArray: boolean): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = asArray ? [v] : { d: v };
  return v;
}

function cyclic(): Record<string, unknown> {
  const o: Record<string, unknown> = { a: 1 };
  o.self = { back: o };
  return o;
}

/** A key that `{ [key]: v }` would not make an own property (`__proto__`) is set with defineProperty, as JSON.parse does. */
function withKey(key: string, value: unknown): Record<string, unknown> {
  const o: Record<string, unknown> = { ok: 1 };
  Object.defineProperty(o, key, { value, enumerable: true, configurable: true, writable: true });
  return o;
}

/** Values a document must never carry (wherever they sit), and values it may. */
export function hostileLeaves(): Array<HostileItem> {
  const sparse = [1, , 3]; // eslint-disable-line no-sparse-arrays
  const nullProto = Object.assign(Object.create(null) as Record<string, unknown>, { a: 1 });
  return [
    { label: 'NaN', value: NaN, reject: true },
    { label: 'Infinity', value: Infinity, reject: true },
    { label: '-Infinity', value: -Infinity, reject: true },
    { label: 'BigInt', value: 10n, reject: true },
    { label: 'Symbol', value: Symbol('s'), reject: true },
    { label: 'function', value: () => 1, reject: true },
    { label: 'Map', value: new Map([['a', 1]]), reject: true },
    { label: 'Set', value: new Set([1]), reject: true },
    { label: 'Buffer', value: Buffer.from('bytes'), reject: true },
    { label: 'Uint8Array', value: new Uint8Array(3), reject: true },
    { label: 'class instance', value: new NotPlain(), reject: true },
    { label: 'invalid Date', value: new Date('not a date'), reject: true },
    { label: 'RegExp', value: /.*/, reject: true },
    { label: 'Error', value: new Error('x'), reject: true },
    { label: 'Promise', value: Promise.resolve(1), reject: true },
    { label: 'lone surrogate', value: 'a\ud800b', reject: true },
    { label: 'nesting 65 objects', value: nested(65, false), reject: true },
    { label: 'nesting 65 arrays', value: nested(65, true), reject: true },
    { label: 'nesting 5000 objects', value: nested(5000, false), reject: true },
    { label: 'cycle', value: cyclic(), reject: true },
    { label: 'undefined in an array', value: [1, undefined, 2], reject: true },
    { label: '$-key', value: { $set: { admin: true } }, reject: true },
    { label: '$where key', value: { $where: 'sleep(1000)' }, reject: true },
    { label: '__proto__ key', value: JSON.parse('{"__proto__":{"polluted":true}}') as unknown, reject: true },
    { label: 'constructor key', value: { constructor: { prototype: { polluted: true } } }, reject: true, rejectInDocuments: false },
    { label: 'prototype key', value: withKey('prototype', 1), reject: true, rejectInDocuments: false },
    { label: 'NUL in a key', value: withKey('a\u0000b', 1), reject: true, rejectInDocuments: false },
    { label: '1025-character key', value: withKey('k'.repeat(1025), 1), reject: true, rejectInDocuments: false },
    { label: 'lone surrogate key', value: withKey('\udc00', 1), reject: true },
    // Accepted or refused, but never mangled:
    { label: 'valid Date', value: new Date('2026-01-02T03:04:05.678Z'), reject: false },
    { label: 'undefined property', value: { a: undefined, b: 1 }, reject: false },
    { label: 'null-prototype object', value: nullProto, reject: false },
    { label: 'sparse array', value: sparse, reject: false },
    { label: 'emoji and RTL', value: '😀\u202eabc\u200b', reject: false },
    { label: 'NUL in a value', value: 'a\u0000b', reject: false },
    { label: '-0', value: -0, reject: false },
    { label: 'huge number', value: 1.7976931348623157e308, reject: false },
    { label: 'unsafe integer', value: 2 ** 53 + 2, reject: false },
    { label: '1024-character key', value: withKey('k'.repeat(1024), 1), reject: false },
    { label: 'empty key', value: withKey('', 1), reject: false },
    { label: 'dotted key', value: withKey('a.b', 1), reject: false },
    { label: 'nesting 60', value: nested(60, false), reject: false },
    { label: 'symbol-keyed property', value: { [Symbol('hidden')]: 1, a: 2 }, reject: false },
    { label: '200 KB string', value: 's'.repeat(200_000), reject: false },
  ];
}

/** Documents: each leaf placed at the top, one level down, or inside an array; plus whole non-documents. */
export function hostileDocuments(gen: Gen, count: number, maxBytes: number): HostileItem<unknown>[] {
  const leaves = hostileLeaves();
  const out: HostileItem<unknown>[] = [
    { label: 'null', value: null, reject: true, topLevel: true },
    { label: 'array', value: [{ a: 1 }], reject: true, topLevel: true },
    { label: 'string', value: '{"a":1}', reject: true, topLevel: true },
    { label: 'number', value: 42, reject: true, topLevel: true },
    { label: 'Date document', value: new Date(), reject: true, topLevel: true },
    { label: 'Buffer document', value: Buffer.from('{}'), reject: true, topLevel: true },
    { label: 'class document', value: new NotPlain(), reject: true, topLevel: true },
    { label: '_system at the top', value: { _system: { parentId: 'x' } }, reject: true, topLevel: true },
    { label: 'over the size limit', value: { big: 'x'.repeat(maxBytes + 10) }, reject: true, topLevel: true },
    { label: 'over the size limit in many keys', value: Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, 'v'.repeat(Math.ceil(maxBytes / 1900))])), reject: true, topLevel: true },
  ];
  for (let i = 0; out.length < count; i++) {
    const leaf = leaves[i % leaves.length]!;
    const where = gen.int(3);
    const value = where === 0 ? { name: 'doc', hostile: leaf.value } : where === 1 ? { name: 'doc', outer: { inner: leaf.value } } : { name: 'doc', list: [1, leaf.value] };
    // Keys are tested where they sit: a hostile key inside a nested object is as hostile as on top.
    out.push({ label: `${leaf.label} ${['at the top', 'nested', 'in an array'][where]}`, value, reject: leaf.reject, rejectInDocuments: leaf.rejectInDocuments ?? leaf.reject });
  }
  return out;
}

const OPERATORS = ['$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$exists', '$and', '$or'];
const BAD_OPERATORS = ['$where', '$function', '$expr', '$regex', '$text', '$nor', '$not', '$elemMatch', '$size', '$all', '$mod', '$type', '$jsonSchema', '$accumulator', '$', '$$ROOT', '$eq\u0000'];
const FIELDS = ['name', 'n', 'missing', '_system.insertedAt', 'a.b', '', '__proto__', 'constructor', '$x', 'n\u0000', 'x'.repeat(300), '_system'];

function filterValue(gen: Gen, depth: number): unknown {
  const leaves = hostileLeaves();
  switch (gen.int(8)) {
    case 0:
      return gen.int(10);
    case 1:
      return 'doc';
    case 2:
      return null;
    case 3:
      return gen.chance(0.5);
    case 4:
      return gen.pick(leaves).value;
    case 5:
      return Array.from({ length: gen.int(4) }, () => filterValue(gen, depth + 1));
    case 6:
      return depth > 4 ? 1 : randomFilter(gen, depth + 1);
    default:
      return { [gen.pick([...OPERATORS, ...BAD_OPERATORS])]: depth > 4 ? 1 : filterValue(gen, depth + 1) };
  }
}

/** A random filter tree mixing the allowed operators with forbidden ones, odd fields and hostile values. */
export function randomFilter(gen: Gen, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0, n = 1 + gen.int(3); i < n; i++) {
    const roll = gen.int(5);
    if (roll === 0 && depth < 6) out[gen.pick(['$and', '$or'])] = Array.from({ length: gen.int(3) }, () => randomFilter(gen, depth + 1));
    else if (roll === 1) out[gen.pick(BAD_OPERATORS)] = filterValue(gen, depth + 1);
    else out[gen.pick(FIELDS)] = filterValue(gen, depth + 1);
  }
  return out;
}

/** Filters that are hostile by construction (each must be refused), then random trees (refused or answered). */
export function hostileFilters(gen: Gen, count: number): HostileItem<unknown>[] {
  let deepAnd: unknown = { n: 1 };
  for (let i = 0; i < 200; i++) deepAnd = { $and: [deepAnd] };
  const out: HostileItem<unknown>[] = [
    { label: '$where', value: { $where: 'this.n > 1' }, reject: true },
    { label: '$function', value: { n: { $function: { body: 'return true', args: [], lang: 'js' } } }, reject: true },
    { label: '$expr', value: { $expr: { $gt: ['$n', 1] } }, reject: true },
    { label: '$regex', value: { name: { $regex: '.*' } }, reject: true },
    { label: 'RegExp value', value: { name: /.*/ }, reject: true },
    { label: 'object as a value', value: { name: { nested: 1 } }, reject: true },
    { label: 'array as a value', value: { name: [1, 2] }, reject: true },
    { label: 'unknown operator', value: { n: { $foo: 1 } }, reject: true },
    { label: 'empty $or', value: { $or: [] }, reject: true },
    { label: '$and of a string', value: { $and: 'x' }, reject: true },
    { label: '$in of a string', value: { n: { $in: 'abc' } }, reject: true },
    { label: '$in of objects', value: { n: { $in: [{}] } }, reject: true },
    { label: '$gt of an object', value: { n: { $gt: {} } }, reject: true },
    { label: '$exists of a string', value: { n: { $exists: 'yes' } }, reject: true },
    { label: 'NaN value', value: { n: NaN }, reject: true },
    { label: 'BigInt value', value: { n: 1n }, reject: true },
    { label: 'Symbol value', value: { n: Symbol('x') }, reject: true },
    { label: 'function value', value: { n: () => 1 }, reject: true },
    { label: '__proto__ field', value: JSON.parse('{"__proto__":{"n":1}}') as unknown, reject: true },
    { label: '200 nested $and', value: deepAnd, reject: true },
    { label: '$in of 100,000', value: { n: { $in: Array.from({ length: 100_000 }, (_, i) => i) } }, reject: true },
    { label: 'null filter', value: null, reject: false },
    { label: 'array filter', value: [{ n: 1 }], reject: true },
    { label: 'string filter', value: '{"n":1}', reject: true },
    { label: 'number filter', value: 7, reject: true },
    { label: 'Map filter', value: new Map([['n', 1]]), reject: true },
  ];
  while (out.length < count) out.push({ label: 'random tree', value: randomFilter(gen), reject: false });
  return out;
}

/** Names for collections, ids and tenants: none of them may route anywhere or reach a store. */
export const HOSTILE_NAMES: readonly unknown[] = [
  '', ' ', '.', '..', '../etc/passwd', 'a/b', 'a\\b', '%2e%2e', 'a\u0000b', '$cmd', '$where', '__proto__', '__defineGetter__', 'x'.repeat(300),
  'a b', 'a\nb', '😀', '\ud800', 'system.profile', null, undefined, 42, {}, [], ['orders'], Symbol('s'), () => 'orders', new String('orders'),
];

/**
 * Valid names that are also properties of every JavaScript object: refused, or working exactly
 * like any other name (never resolving to `Object.prototype` through a lookup by name).
 */
export const PROTOTYPE_NAMES: readonly string[] = ['constructor', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString'];

/** Option bags each call must refuse (wrong types, out of range) or accept as documented. */
export const HOSTILE_OPTIONS: readonly unknown[] = [
  { limit: -1 }, { limit: 0 }, { limit: 1e9 }, { limit: NaN }, { limit: '10' }, { limit: 1.5 }, { limit: {} },
  { afterId: '../x' }, { afterId: 42 }, { includeDeleted: 'yes' }, { projection: 'name' }, { projection: [1] }, { projection: ['__proto__'] },
  { projection: ['$where'] }, { sort: { n: 2 } }, { sort: 'n' }, { sort: { $where: 1 } }, { filter: { $where: '1' } }, { unknown: true },
  { pageToken: 'not-a-token' }, { pageToken: 'eyJhIjoxfQ' }, { at: 'yesterday' }, { at: '2024-02-31T00:00:00Z' }, { at: 12 }, { before: -1 }, { before: 'x' },
  null, 'options', 42, [],
];

/** Actors and reasons a write must refuse or store as given. */
export const HOSTILE_ACTORS: readonly unknown[] = [
  { type: 'root', identifier: 'x' }, { type: 'user' }, { type: 'user', identifier: '' }, { type: 'user', identifier: 42 }, 42, {}, [], Symbol('a'),
  'a'.repeat(100_000), { type: 'user', identifier: 'x', extra: { $where: 1 } }, () => 'actor',
];

/** A valid config to mutate: the embedded default with one runtime tenant and a few extras. */
export function baseConfig(dir: string): Record<string, unknown> {
  return {
    dbConnections: { local: { sqlitePath: `${dir}/config-probe.sqlite` } },
    spacesConnections: { s3: { endpoint: 'http://127.0.0.1:9', region: 'us-east-1', accessKey: 'AKIAEXAMPLE', secretKey: 'secret-example', forcePathStyle: true, bucket: 'data' } },
    databases: {
      runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme' }] },
      knowledge: { genericDatabase: { dbConnRef: 'local', dbName: 'kn' } },
    },
    localStorage: { basePath: `${dir}/config-probe-blobs`, enabled: true },
    collectionMaps: { orders: { indexedProps: ['n'] } },
    counterRules: { rules: [{ name: 'big', on: ['CREATE'], when: { n: { $gte: 10 } } }] },
    fallback: { enabled: true, maxRetries: 3 },
    jobs: { archive: { mode: 'deferred' } },
    api: { keys: [] },
  };
}

/** Every path (as keys) to a value inside `value`, objects and arrays included. */
function paths(value: unknown, prefix: Array<string | number> = [], out: Array<Array<string | number>> = []): Array<Array<string | number>> {
  // Only into the config's own shape: a hostile value put there earlier (a cycle, 5000 levels) is a leaf.
  const proto = value !== null && typeof value === 'object' ? Object.getPrototypeOf(value) : undefined;
  if (prefix.length < 8 && (proto === Object.prototype || Array.isArray(value))) {
    for (const [k, v] of Object.entries(value as object)) {
      const p = [...prefix, Array.isArray(value) ? Number(k) : k];
      out.push(p);
      paths(v, p, out);
    }
  }
  return out;
}

function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 20));
  if (typeof value === 'symbol' || typeof value === 'bigint' || typeof value === 'function') return typeof value;
  if (value !== null && typeof value === 'object') return (value as object).constructor?.name ?? 'null-prototype object';
  return String(value);
}

function setAt(root: Record<string, unknown>, path: Array<string | number>, value: unknown, remove = false): void {
  let node = root as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  const last = path.at(-1)!;
  if (remove) delete node[last];
  else Object.defineProperty(node, last, { value, enumerable: true, configurable: true, writable: true });
}

/**
 * Configs: the base with one (or a few) defects each: a value replaced by a hostile one, a key
 * removed, an unknown key added, a reference broken, an `ENV.` reference to nothing. Some
 * mutations leave the config valid (an optional key removed); the oracle allows that.
 */
export function hostileConfigs(gen: Gen, dir: string, count: number): HostileItem<unknown>[] {
  const leaves = hostileLeaves().map((l) => l.value);
  const replacements: unknown[] = [...leaves, null, undefined, 0, -1, 1e12, '', 'x'.repeat(10_000), [], {}, true, 'ENV.XRONOX_SURELY_UNSET_VARIABLE', '../../../etc/passwd', '$where', 'local', ['local']];
  const out: HostileItem<unknown>[] = [
    { label: 'undefined config', value: null, reject: true },
    { label: 'array config', value: [baseConfig(dir)], reject: true },
    { label: 'string config', value: JSON.stringify(baseConfig(dir)), reject: true },
    { label: 'number config', value: 1, reject: true },
    { label: 'function config', value: () => baseConfig(dir), reject: true },
    { label: 'empty config', value: {}, reject: true },
    { label: 'class config', value: new NotPlain(), reject: true },
    { label: '__proto__ config', value: JSON.parse('{"__proto__":{"dbConnections":{}}}') as unknown, reject: true },
    { label: 'collectionMaps nested 5000 levels', value: { ...baseConfig(dir), collectionMaps: nested(5000, false) }, reject: true },
    { label: 'api nested 5000 arrays', value: { ...baseConfig(dir), api: nested(5000, true) }, reject: true },
    { label: 'a cycle under collectionMaps', value: { ...baseConfig(dir), collectionMaps: cyclic() }, reject: true },
  ];
  while (out.length < count) {
    const config = baseConfig(dir);
    const labels: string[] = [];
    for (let m = 0, n = 1 + gen.int(3); m < n; m++) {
      const all = paths(config);
      const path = gen.pick(all);
      const roll = gen.int(5);
      if (roll === 0) {
        setAt(config, path, undefined, true);
        labels.push(`remove ${path.join('.')}`);
      } else if (roll === 1) {
        const objectPaths = all.filter((p) => {
          let v: unknown = config;
          for (const k of p) v = (v as Record<string | number, unknown>)[k];
          return v !== null && typeof v === 'object' && !Array.isArray(v);
        });
        const at = objectPaths.length ? gen.pick(objectPaths) : [];
        setAt(config, [...at, gen.pick(['unknownKey', '__proto__', '$where', 'constructor', ''])], { polluted: true });
        labels.push(`unknown key under ${at.join('.')}`);
      } else {
        const replacement = gen.pick(replacements);
        setAt(config, path, replacement);
        labels.push(`${path.join('.')} = ${describeValue(replacement)}`);
      }
    }
    out.push({ label: labels.join('; '), value: config, reject: false });
  }
  return out;
}

/** Raw config file contents: each must be a ConfigError naming the file. */
export function hostileConfigFiles(dir: string): HostileItem<string | Buffer>[] {
  const valid = JSON.stringify(baseConfig(dir));
  return [
    { label: 'empty file', value: '', reject: true },
    { label: 'whitespace', value: ' \n\t', reject: true },
    { label: 'truncated', value: valid.slice(0, valid.length / 2), reject: true },
    { label: 'trailing garbage', value: `${valid}x`, reject: true },
    { label: 'trailing comma', value: valid.replace(/}$/, ',}'), reject: true },
    { label: 'comments', value: `// config\n${valid}`, reject: true },
    { label: 'single quotes', value: valid.replace(/"/g, "'"), reject: true },
    { label: 'null', value: 'null', reject: true },
    { label: 'array', value: `[${valid}]`, reject: true },
    { label: 'string', value: JSON.stringify(valid), reject: true },
    { label: 'NUL bytes', value: Buffer.from([0, 0, 0, 123, 125]), reject: true },
    { label: 'binary', value: Buffer.from(Array.from({ length: 256 }, (_, i) => i)), reject: true },
    { label: 'UTF-16 with BOM', value: Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(valid, 'utf16le')]), reject: true },
    { label: 'deep nesting', value: `${'['.repeat(100_000)}${']'.repeat(100_000)}`, reject: true },
    { label: '__proto__ pollution', value: '{"__proto__":{"polluted":true},"dbConnections":{}}', reject: true },
    { label: 'valid JSON, invalid config', value: '{"dbConnections":{"local":{"sqlitePath":42}},"databases":{}}', reject: true },
    { label: 'NaN literal', value: valid.replace('"maxRetries":3', '"maxRetries":NaN'), reject: true },
    { label: 'lone surrogate escape', value: valid.replace('"rt_acme"', '"rt_\\ud800"'), reject: true },
  ];
}
