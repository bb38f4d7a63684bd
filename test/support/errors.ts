import { expect } from 'vitest';
import { ConfigError } from '../../core/errors.js';

/** Runs `fn`, expects it to throw a `type`, and returns the error for further checks. */
export function thrown<E extends Error>(type: abstract new (...args: never[]) => E, fn: () => unknown): E {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(type);
    return err as E;
  }
  throw new Error(`expected a ${type.name}, but nothing was thrown`);
}

/** `thrown(ConfigError, fn)`. */
export function configError(fn: () => unknown): ConfigError {
  return thrown(ConfigError, fn);
}
