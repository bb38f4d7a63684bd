/* global require, module, __dirname */
/* eslint-disable @typescript-eslint/no-require-imports -- CommonJS on purpose: osls require()s `${file(...)}` scripts */
'use strict';
/**
 * `params.local.configFile` of serverless.yml (`${file(./infra/offline/config-file.cjs)}`): the
 * config file of the `local` stage (`npm run offline`, `osls invoke local --stage local`), as an
 * absolute path: `XRONOX_CONFIG_FILE` if set (relative to the folder osls runs in), else
 * infra/offline/xronox.config.json.
 *
 * Absolute, because `osls invoke local` runs the bundle with its build folder as the working
 * directory (serverless-esbuild does that, as Lambda runs a function in the zip's root), where a
 * relative path would name a file that is not there.
 */
const { join, resolve } = require('node:path');
const process = require('node:process');

module.exports = () => {
  const given = process.env.XRONOX_CONFIG_FILE;
  return given ? resolve(given) : join(__dirname, 'xronox.config.json');
};
