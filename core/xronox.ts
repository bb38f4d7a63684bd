import { defaultAdapters } from './adapters/registry.js';
import type { Environment } from './config/env.js';
import { findConfigFile, loadConfigFile } from './config/file.js';
import { loadConfig, type XronoxConfig } from './config/load.js';
import { Xronox } from './engine/xronox.js';

export interface InitOptions {
  /** Called with errors of background work (blob sync); they never reject a caller's promise. */
  onBackgroundError?: (err: unknown) => void;
  /** Where `ENV.NAME` config values are looked up. Default `process.env`. */
  env?: Environment;
}

/**
 * Validates the config and returns a ready Xronox instance. Nothing is opened until first use:
 * a MongoDB client connects on the first operation, an SQLite file opens on the first access.
 *
 * Without a config, it is read from `xronox.config.json` (else `.xronox.json`) in the working
 * directory or, failing that, in the nearest package root above it (see `findConfigFile`).
 */
export function initXronox(config?: unknown, options: InitOptions = {}): Xronox {
  const env = options.env ?? process.env;
  const loaded: XronoxConfig = config === undefined ? loadConfigFile(findConfigFile(), env) : loadConfig(config, env);
  return new Xronox(loaded, defaultAdapters, options);
}
