import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/**
 * The text of one file of the installed `swagger-ui-dist` package (its version pinned in
 * package.json), e.g. `swagger-ui-bundle.js`.
 *
 * Where the sources run with their `node_modules` (`npm start`, tests, the built package) this
 * reads the file from the package. The Lambda bundle ships no `node_modules`: there the esbuild
 * plugin `inline-swagger-ui` (infra/esbuild/plugins.cjs) replaces this module with one that holds
 * the same files' text, read at build time, behind the same function.
 */
export function readSwaggerUiFile(name: string): string {
  return readFileSync(createRequire(import.meta.url).resolve(`swagger-ui-dist/${name}`), 'utf8');
}
