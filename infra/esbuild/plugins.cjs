/* global module, require */
/* eslint-disable @typescript-eslint/no-require-imports -- CommonJS on purpose: esbuild's config (serverless-esbuild) require()s this file, and package.json says "type": "module" */
'use strict';
const { readFileSync } = require('node:fs');
const { brotliCompressSync, constants: zlib } = require('node:zlib');
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

/**
 * inline-swagger-ui: the API's `/docs` serves Swagger UI's files from the installed, pinned
 * swagger-ui-dist package, which functions/api/swagger-ui-files.ts reads at run time. A Lambda
 * zip holds the bundle and no node_modules, so in the bundle that module is replaced by one that
 * holds the files' text, read here at build time, behind the same function. The text goes in
 * brotli-compressed (as base64: about 0.5 MB instead of 1.6 MB), because every byte of the bundle
 * is read and parsed on every cold start, and the docs are asked for on few of them; the first
 * request for a file decompresses it (a few milliseconds). The job bundles do not import it.
 */
const SWAGGER_UI_FILES = ['swagger-ui-bundle.js', 'swagger-ui.css'];

const inlineSwaggerUi = {
  name: 'inline-swagger-ui',
  setup(build) {
    build.onLoad({ filter: /[\\/]functions[\\/]api[\\/]swagger-ui-files\.ts$/ }, () => {
      const files = Object.fromEntries(
        SWAGGER_UI_FILES.map((name) => {
          const text = readFileSync(require.resolve(`swagger-ui-dist/${name}`));
          const packed = brotliCompressSync(text, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_SIZE_HINT]: text.length } });
          return [name, packed.toString('base64')];
        }),
      );
      return {
        loader: 'js',
        contents: `import { brotliDecompressSync } from 'node:zlib';
const FILES = ${JSON.stringify(files)};
export function readSwaggerUiFile(name) {
  if (!Object.prototype.hasOwnProperty.call(FILES, name)) throw new Error('swagger-ui-dist/' + name + ' is not inlined in this bundle (infra/esbuild/plugins.cjs inlines ' + Object.keys(FILES).join(', ') + ')');
  return brotliDecompressSync(Buffer.from(FILES[name], 'base64')).toString('utf8');
}
`,
      };
    });
  },
};

module.exports = [lazyNative, inlineSwaggerUi];
module.exports.LAZY_MODULES = LAZY_MODULES;
module.exports.SWAGGER_UI_FILES = SWAGGER_UI_FILES;
