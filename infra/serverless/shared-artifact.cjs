/* global require, module, console */
/* eslint-disable @typescript-eslint/no-require-imports -- CommonJS on purpose: osls require()s plugins, and package.json says "type": "module" */
'use strict';
/**
 * An osls plugin (serverless.yml `plugins`, after serverless-esbuild) that packages functions
 * built from one bundle once: `custom.sharedArtifacts` maps an artifact name to the functions
 * that share it,
 *
 *   custom:
 *     sharedArtifacts:
 *       jobs: [archive, archiveSweep, retention, backup, offload]
 *
 * and after serverless-esbuild has zipped each function (`package.individually: true`, so the
 * API keeps its own bundle), the functions of a group get one zip, `<name>.zip`, as their
 * `package.artifact`, and their own zips are removed. The framework uploads each artifact file
 * once, so the five jobs cost one upload and one object in the deployment bucket (the same
 * S3Key in every job's Code), not five of the same 1.7 MB.
 *
 * Only zips that are byte for byte the same are shared (serverless-esbuild zips with fixed
 * dates, so the same files give the same bytes); a function whose zip differs (a
 * function-level `package.patterns`, another handler file) fails the packaging with a message
 * naming it, rather than being deployed with another function's code.
 *
 * `osls deploy function -f <job>` packages that one function on its own, as before.
 */
const { createHash } = require('node:crypto');
const { copyFileSync, readFileSync, rmSync } = require('node:fs');
const { basename, dirname, isAbsolute, join } = require('node:path');

class SharedArtifact {
  constructor(serverless, _options, utils) {
    this.serverless = serverless;
    this.log = (utils && utils.log) || { notice: console.log, warning: console.warn, verbose: () => undefined };
    this.hooks = {
      // serverless-esbuild (listed before this plugin) zips in `before:` and, in `after:`, moves
      // the zips to .serverless/; the framework's packaging runs in between and skips functions
      // that have an artifact. So this runs once the zips are where they will be deployed from.
      'after:package:createDeploymentArtifacts': () => this.share(),
    };
  }

  groups() {
    const custom = this.serverless.service.custom || {};
    const groups = custom.sharedArtifacts || {};
    if (typeof groups !== 'object' || Array.isArray(groups)) throw new this.serverless.classes.Error('custom.sharedArtifacts must map an artifact name to a list of function names');
    return Object.entries(groups);
  }

  share() {
    const service = this.serverless.service;
    const serviceDir = this.serverless.serviceDir || this.serverless.config.servicePath;
    const claimed = new Map();
    for (const [name, functions] of this.groups()) {
      const fail = (message) => {
        throw new this.serverless.classes.Error(`custom.sharedArtifacts.${name}: ${message}`);
      };
      if (!/^[A-Za-z0-9_-]+$/.test(name)) fail('the artifact name may hold letters, digits, "-" and "_" only');
      if (!Array.isArray(functions) || functions.length < 2) fail('list two or more functions');
      if (service.getAllFunctions().includes(name)) fail(`"${name}" is also a function, whose own zip would have that name`);
      const zips = functions.map((key) => {
        if (!service.getAllFunctions().includes(key)) fail(`"${key}" is not a function of this service`);
        if (claimed.has(key)) fail(`"${key}" is already in custom.sharedArtifacts.${claimed.get(key)}`);
        claimed.set(key, name);
        const artifact = service.getFunction(key).package && service.getFunction(key).package.artifact;
        if (!artifact) fail(`"${key}" has no zip of its own to share (is package.individually true, and serverless-esbuild listed first?)`);
        const path = isAbsolute(artifact) ? artifact : join(serviceDir, artifact);
        return { key, artifact, path, sha256: createHash('sha256').update(readFileSync(path)).digest('hex') };
      });
      const [first] = zips;
      for (const zip of zips) {
        if (zip.sha256 !== first.sha256) fail(`the zip of "${zip.key}" differs from that of "${first.key}", so they cannot share one; give "${zip.key}" the same handler file and no package settings of its own, or take it out of the list`);
      }
      const artifact = join(dirname(first.artifact), `${name}.zip`);
      copyFileSync(first.path, join(dirname(first.path), `${name}.zip`));
      for (const zip of zips) {
        rmSync(zip.path, { force: true });
        service.getFunction(zip.key).package = { artifact };
      }
      this.log.verbose(`Functions ${functions.join(', ')} share ${basename(artifact)} (sha256 ${first.sha256})`);
    }
  }
}

module.exports = SharedArtifact;
