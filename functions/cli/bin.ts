#!/usr/bin/env node
// The `xronox` bin (package.json "bin"), built to dist/functions/cli/bin.js and run by plain node.
import process from 'node:process';
import { main } from './xronox.js';

process.exitCode = await main(process.argv.slice(2));
