#!/usr/bin/env node
// The `xronox` bin (package.json "bin"): runs the TypeScript CLI through tsx's loader, as
// `npm start` and the tests run TypeScript. tsx is a dev dependency of this private package.
import process from 'node:process';
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./xronox.ts');
process.exitCode = await main(process.argv.slice(2));
