/**
 * `make()`'s object, made when a test first uses it. Suites that share one object (a router over
 * one config) build it here rather than while the file loads: a constructor that throws then fails
 * the tests that use it, where a mutation run counts it, instead of the loading of the file, which
 * Stryker's vitest runner reports as a surviving mutant.
 */
export function lazy<T extends object>(make: () => T): T {
  let made: T | undefined;
  return new Proxy({} as T, {
    get(_, property) {
      made ??= make();
      const value: unknown = Reflect.get(made, property, made);
      // Methods run on the object itself, whose private fields a proxy does not have.
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(made) : value;
    },
  });
}
