/* global module */
'use strict';
/**
 * esbuild plugins for the Lambda bundles (`custom.esbuild.plugins` in serverless.yml; also used by
 * bench/http.bench.ts so that the bench measures the bundle that is deployed).
 *
 * lazy-native: native addons stay out of the bundle and out of the zip, and are required only
 * when something first uses them. better-sqlite3 is the embedded default's index store: a
 * compiled addon for the build machine's platform (not Lambda's arm64 Amazon Linux), and a SQLite
 * file in a Lambda's /tmp is neither shared nor durable, so it has no place in the function. The
 * adapter registry imports the SQLite stores only when a config uses them (a dynamic import, which
 * esbuild bundles as a module run on first use), so loading the bundle never requires it; this
 * plugin keeps that so should anything import it up front, and turns the failure on Lambda into a
 * clear message. Constructing the SQLite store requires it, which works where the module is
 * installed (serverless-offline, the bench) and fails with that message on Lambda.
 */

const NAMESPACE = 'xronox-lazy-native';
const LAZY_MODULES = ['better-sqlite3'];

function shim(name) {
  const quoted = JSON.stringify(name);
  return `'use strict';
let loaded;
function load() {
  if (loaded === undefined) {
    try {
      loaded = require(${quoted});
    } catch (err) {
      throw new Error(${JSON.stringify(`The native module ${name} is not part of this bundle (it is left out on purpose: the embedded SQLite store is not for Lambda); configure a server index store such as MongoDB`)} + ' (' + (err && err.message) + ')', { cause: err });
    }
  }
  return loaded;
}
// A stand-in that loads the module on first real use: new, call, or reading a property.
module.exports = new Proxy(function lazyNativeModule() {}, {
  construct: (_target, args, newTarget) => Reflect.construct(load(), args, newTarget === module.exports ? load() : newTarget),
  apply: (_target, self, args) => Reflect.apply(load(), self, args),
  get: (target, key) => (key === '__esModule' ? undefined : key === 'prototype' ? target.prototype : load()[key]),
});
`;
}

const lazyNative = {
  name: NAMESPACE,
  setup(build) {
    const filter = new RegExp(`^(${LAZY_MODULES.map((m) => m.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')).join('|')})$`);
    build.onResolve({ filter }, (args) =>
      // The shim's own require is the real module, left external.
      args.namespace === NAMESPACE ? { path: args.path, external: true } : { path: args.path, namespace: NAMESPACE },
    );
    build.onLoad({ filter: /.*/, namespace: NAMESPACE }, (args) => ({ contents: shim(args.path), loader: 'js' }));
  },
};

module.exports = [lazyNative];
module.exports.LAZY_MODULES = LAZY_MODULES;
