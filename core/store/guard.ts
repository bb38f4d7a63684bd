import { ClosedError, StorageError, XronoxError } from '../errors.js';

/**
 * An adapter whose module (and so its SDK) is loaded only when it is first used, and what is
 * known of it before then. The registry hands these out, so that a process loads the MongoDB
 * driver or the AWS SDK only when its config names such a connection and something uses it.
 */
export interface AdapterSource<T> {
  /**
   * What the guard answers before the adapter is loaded: every plain member of the port (`name`,
   * `capabilities`, a blob store's `maxPutMs`) as the adapter holds it before it has reached its
   * backend, because the engine reads them without calling the store (a sync lease's length
   * before the first put; the adapter a health report names when opening failed); and, as
   * `undefined`, each optional method of the port that the adapter lacks (a blob store without
   * `check`). Any other member is taken for a method, and calling it loads the adapter.
   */
  readonly members: AdapterMembers<T>;
  /** Loads the adapter's module and constructs the adapter (which connects to nothing yet: see the ports' `open`). */
  open(): Promise<T>;
}

type Method = (...args: never[]) => unknown;
type MethodKeys<T> = { [K in keyof T]-?: NonNullable<T[K]> extends Method ? K : never }[keyof T];
type OptionalKeys<T> = { [K in keyof T]-?: Partial<Pick<T, K>> extends Pick<T, K> ? K : never }[keyof T];
/** The plain members of a port, and (as `undefined`) the optional methods an adapter lacks; `open` is the guard's own. */
export type AdapterMembers<T> = { readonly [K in Exclude<keyof T, MethodKeys<T>>]: T[K] } & {
  readonly [K in Exclude<Extract<MethodKeys<T>, OptionalKeys<T>>, 'open'>]?: undefined;
};

/** What an adapter the guard can wrap looks like: a name, and perhaps a connection to open first. */
interface Guardable {
  readonly name: string;
  open?(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Wraps an adapter once, so that adapters stay simple:
 *
 * - The adapter is made on its first use, not when it is wrapped: a call that validation refuses
 *   never reaches a store, so it never loads a backend's module, creates a database file, a schema
 *   or a folder. `make` returns the adapter, or an `AdapterSource` that loads it: then reading a
 *   plain member (`name`, `maxPutMs`) answers from the source's `members`, and the first method
 *   call loads the adapter. Either way, a failure to make it is a `StorageError` naming `what`
 *   (operation `open`) and is tried again by the next use.
 * - An adapter with an `open()` (a client that connects) is opened once, before its first method
 *   call runs; an open that fails fails that call and is tried again by the next call, never
 *   after the owner closed. Adapters need no connect-on-every-call code of their own.
 * - `close` of an adapter that was never made does nothing. Every method call is refused after
 *   the owner closed (`ClosedError`), and a refused call makes and opens nothing.
 * - Any error that is not already an `XronoxError` (a driver error, an I/O error) becomes a
 *   `StorageError` naming the adapter and the operation, with the original as `cause`.
 */
export function guardAdapter<T extends Guardable>(what: string, make: () => T | AdapterSource<T>, isClosed: () => boolean): T {
  let adapter: T | undefined;
  let source: AdapterSource<T> | undefined;
  /** The source's `open`, while it runs. */
  let loading: Promise<T> | undefined;
  /** The adapter's own `open`, while it runs (or until it has succeeded). */
  let opening: Promise<void> | undefined;
  /** The adapter once opened: method calls then go straight to it. */
  let ready: T | undefined;

  /** Asks `make` once it is first needed (again after it threw). */
  const made = (): void => {
    if (adapter !== undefined || source !== undefined) return;
    // Never made, and the owner is gone: making it now would only leak a client or a file handle.
    if (isClosed()) throw new ClosedError('The store');
    const result = failingAsOpen(what, make);
    if (isSource(result)) source = result;
    else adapter = result;
  };
  const nameOf = (): string => adapter?.name ?? (source?.members as { name?: string } | undefined)?.name ?? what;

  const load = async (): Promise<T> => {
    if (adapter !== undefined) return adapter;
    loading ??= failingAsOpen(what, () => source!.open()).then(
      (loaded) => {
        adapter = loaded;
        loading = undefined;
        return loaded;
      },
      (err: unknown) => {
        loading = undefined;
        throw err;
      },
    );
    return loading;
  };
  const opened = async (): Promise<T> => {
    const target = await load();
    // The owner may have closed while the module was loading: connecting now would only leak.
    if (isClosed()) throw new ClosedError(`The ${target.name} store`);
    if (typeof target.open === 'function') {
      opening ??= target.open().catch((err: unknown) => {
        opening = undefined;
        throw err;
      });
      await opening;
    }
    ready = target;
    return target;
  };

  // Closing does not wait for a connection being opened (closing the client ends that), only for
  // a module being loaded, so that the adapter it makes is closed too.
  const close = async (): Promise<void> => {
    if (loading) await loading.catch(() => undefined);
    await adapter?.close();
  };

  const method = (property: string | symbol) =>
    async (...args: unknown[]): Promise<unknown> => {
      const name = nameOf();
      const operation = String(property);
      if (isClosed()) throw new ClosedError(`The ${name} store`);
      try {
        const target = ready ?? (await opened());
        // The owner may have closed while the adapter was loading or connecting.
        if (isClosed()) throw new ClosedError(`The ${name} store`);
        const fn = Reflect.get(target, property) as unknown;
        if (typeof fn !== 'function') throw new TypeError(`The ${name} store has no method ${operation}`);
        return await (fn as (...a: unknown[]) => unknown).apply(target, args);
      } catch (err) {
        if (err instanceof XronoxError) throw err;
        // Closed while it was opening: the open failed because of the close, say so.
        if (isClosed()) throw new ClosedError(`The ${name} store`);
        throw new StorageError(name, operation, err, `${name} store failed during ${operation}: ${errorMessage(err)}`);
      }
    };

  /** Each method's wrapper, made once (every call of a store goes through one). */
  const methods = new Map<string | symbol, (...args: unknown[]) => Promise<unknown>>();
  const wrapped = (property: string | symbol) => {
    let m = methods.get(property);
    if (!m) methods.set(property, (m = method(property)));
    return m;
  };

  const peek = (property: string | symbol): unknown => {
    if (property === 'close') return close;
    // The guard opens the adapter; nobody else may.
    if (property === 'open') return undefined;
    // Probes that are not uses (is it a promise? how does it print?) must not make anything.
    if (adapter === undefined && (property === 'then' || typeof property === 'symbol')) return undefined;
    made();
    if (adapter !== undefined) {
      // The target as receiver: getters of adapters read their private fields, which a proxy lacks.
      const value = Reflect.get(adapter, property) as unknown;
      if (typeof value !== 'function') return value;
    } else if (Object.hasOwn(source!.members, property)) {
      return (source!.members as Record<string | symbol, unknown>)[property];
    }
    return wrapped(property);
  };

  // The proxy's own target holds nothing: the adapter lives in this closure, so printing the
  // proxy (which shows its target) shows no connection strings or clients.
  return new Proxy({} as T, {
    get: (_holder, property) => peek(property),
    has: (_holder, property) => (adapter !== undefined ? property in adapter : peek(property) !== undefined),
  });
}

/** A source has its name among its members; an adapter has its own. */
function isSource<T>(value: T | AdapterSource<T>): value is AdapterSource<T> {
  return typeof value === 'object' && value !== null && 'members' in value && typeof (value as { open?: unknown }).open === 'function' && !('name' in value);
}

/** Runs `make`; what it throws or rejects with, unless already an `XronoxError`, becomes a `StorageError` naming `what`. */
function failingAsOpen<R>(what: string, make: () => R): R {
  const fail = (err: unknown): never => {
    if (err instanceof XronoxError) throw err;
    throw new StorageError(what, 'open', err, `Could not open the ${what}: ${err instanceof Error ? err.message : String(err)}`);
  };
  let result: R;
  try {
    result = make();
  } catch (err) {
    return fail(err);
  }
  return result instanceof Promise ? (result.catch(fail) as R) : result;
}

function errorMessage(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'unknown error';
}
