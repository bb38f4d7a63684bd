import { defaultAdapters } from './adapters/registry.js';
import { databaseEntries, loadConfig, type XronoxConfig } from './config/load.js';
import { Xronox } from './engine/xronox.js';

export interface InitOptions {
  /** Called with errors of background work (blob sync); they never reject a caller's promise. */
  onBackgroundError?: (err: unknown) => void;
}

/**
 * Validates the config and returns a ready Xronox instance. Nothing is opened until first use;
 * a config that names a backend this build lacks is refused here, not at the first write.
 */
export function initXronox(config: unknown, options: InitOptions = {}): Xronox {
  const loaded: XronoxConfig = loadConfig(config);
  const spacesInUse = [
    ...new Set(databaseEntries(loaded.databases).flatMap(({ entry }) => (typeof entry.spaceConnRef === 'string' && entry.spaceConnRef ? [entry.spaceConnRef] : []))),
  ];
  const refused = defaultAdapters.unsupported({ db: loaded.dbConnections, spacesInUse });
  if (refused) throw refused;
  return new Xronox(loaded, defaultAdapters, options);
}
