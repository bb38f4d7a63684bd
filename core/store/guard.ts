import { ClosedError, StorageError, XronoxError } from '../errors.js';

/**
 * Wraps an adapter once, so that adapters stay simple:
 *
 * - The adapter is opened (`open` is called) on its first use, the first read of any of its
 *   members, and not when it is wrapped: a call that validation refuses never reaches a store, so
 *   it never creates a database file, a schema or a folder. An open that throws is tried again by
 *   the next use. `close` of an adapter that was never opened does nothing.
 * - Every method call is refused after the owner closed (`ClosedError`).
 * - Any error that is not already an `XronoxError` (a driver error, an I/O error) becomes a
 *   `StorageError` naming the adapter and the operation, with the original as `cause`.
 */
export function guardAdapter<T extends { readonly name: string }>(open: () => T, isClosed: () => boolean): T {
  let adapter: T | undefined;
  const opened = (): T => {
    if (adapter === undefined) {
      // Never opened, and the owner is gone: opening now would only leak a client or a file handle.
      if (isClosed()) throw new ClosedError('The store');
      adapter = open();
    }
    return adapter;
  };
  // The proxy's own target holds nothing: the adapter lives in this closure, so printing the
  // proxy (which shows its target) shows no connection strings or clients.
  return new Proxy({} as T, {
    get(_holder, property) {
      if (adapter === undefined) {
        if (property === 'close') return async () => undefined;
        // Probes that are not uses (is it a promise? how does it print?) must not open anything.
        if (property === 'then' || typeof property === 'symbol') return undefined;
      }
      const target = opened();
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
    has(_holder, property) {
      return property in opened();
    },
  });
}

function errorMessage(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'unknown error';
}
