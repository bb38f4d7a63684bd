import { ClosedError, StorageError, XronoxError } from '../errors.js';

/**
 * Wraps an adapter once, so that adapters stay simple: every method call is refused after the
 * owner closed, and any error that is not already an `XronoxError` (a driver error, an I/O error)
 * becomes a `StorageError` naming the adapter and the operation, with the original as `cause`.
 */
export function guardAdapter<T extends { readonly name: string }>(adapter: T, isClosed: () => boolean): T {
  return new Proxy(adapter, {
    get(target, property) {
      // The target as receiver: getters of adapters read their private fields, which a proxy lacks.
      const value = Reflect.get(target, property) as unknown;
      if (typeof value !== 'function' || property === 'close') {
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return async (...args: unknown[]) => {
        if (isClosed()) throw new ClosedError(`The ${target.name} store`);
        try {
          return await (value as (...a: unknown[]) => unknown).apply(target, args);
        } catch (err) {
          if (err instanceof XronoxError) throw err;
          throw new StorageError(target.name, String(property), err, `${target.name} store failed during ${String(property)}: ${errorMessage(err)}`);
        }
      };
    },
  });
}

function errorMessage(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'unknown error';
}
