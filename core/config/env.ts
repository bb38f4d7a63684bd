import type { ConfigIssue } from '../errors.js';

/** Where `ENV.NAME` values are looked up; `process.env` by default. */
export type Environment = Readonly<Record<string, string | undefined>>;

/** A config string that is exactly `ENV.NAME` stands for the environment variable `NAME`. */
export const ENV_REFERENCE = /^ENV\.([A-Za-z_][A-Za-z0-9_]*)$/;

export interface EnvResolution {
  /** A copy of the input with every `ENV.NAME` string replaced; the input is never changed. */
  value: unknown;
  /** One issue per reference to a variable that is not set. */
  missing: ConfigIssue[];
}

/**
 * Replaces every string value of the form `ENV.NAME` (anywhere: nested objects, arrays) by the
 * variable's value. Keys are left alone. Plain objects and arrays are copied; anything else is
 * kept as is. A variable set to the empty string counts as set.
 */
export function resolveEnvReferences(input: unknown, env: Environment): EnvResolution {
  const missing: ConfigIssue[] = [];
  const copies = new Map<object, unknown>();

  const visit = (value: unknown, path: string): unknown => {
    if (typeof value === 'string') {
      const match = ENV_REFERENCE.exec(value);
      if (!match) return value;
      const name = match[1]!;
      const resolved = Object.hasOwn(env, name) ? env[name] : undefined;
      if (resolved === undefined) {
        missing.push({ path, message: `environment variable ${name} is not set` });
        // Kept as written, so the problems it would cause downstream are recognisable and dropped.
        return value;
      }
      return resolved;
    }
    if (typeof value !== 'object' || value === null) return value;
    const seen = copies.get(value);
    if (seen !== undefined) return seen;
    if (Array.isArray(value)) {
      const out: unknown[] = [];
      copies.set(value, out);
      value.forEach((item, i) => out.push(visit(item, `${path}[${i}]`)));
      return out;
    }
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return value;
    const out: Record<string, unknown> = {};
    copies.set(value, out);
    for (const [key, child] of Object.entries(value)) {
      // defineProperty, so that an own `__proto__` key stays a key (and is rejected as unknown).
      Object.defineProperty(out, key, {
        value: visit(child, path === '' ? key : `${path}.${key}`),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  };

  return { value: visit(input, ''), missing };
}
