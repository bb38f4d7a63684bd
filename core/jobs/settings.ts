import type { XronoxConfig } from '../config/load.js';
import { uploadStaleMs } from '../engine/content-uploads.js';

/** The job settings in force: `jobs` and `retention` of the config, with every default applied. */
export interface JobSettings {
  /** `jobs.archive.mode`: whether writes leave their versions to the archive job. Default `inline`. */
  readonly archiveMode: 'inline' | 'deferred';
  /** `jobs.archive.sweepAfterMinutes`: the sweep archives versions this old and older. Default 15. */
  readonly sweepAfterMs: number;
  /** `jobs.leaseSeconds`: how long a run's lease on a database lasts without renewal. Default 300. */
  readonly leaseMs: number;
  /** `retention.ver.days`: versions superseded this long ago are pruned. Default: kept. */
  readonly versionDays: number | undefined;
  /** `retention.ver.maxPerItem`: each record keeps at most this many versions. Default: all. */
  readonly maxVersionsPerItem: number | undefined;
  /** `jobs.retention.logsDays`. Default: logs are kept. */
  readonly logsDays: number | undefined;
  /** `jobs.offload.logsAfterDays`: logs not written for this long are offloaded. Default: never. */
  readonly offloadLogsAfterDays: number | undefined;
  /** `jobs.concurrency`: object reads and writes in flight per job and database. Default 16. */
  readonly concurrency: number;
  /** `jobs.backup.format`. Default `self-contained`. */
  readonly backupFormat: 'self-contained' | 'reference' | 'copy';
  /** `jobs.backup.partKilobytes`, in bytes. Default 16 MiB. */
  readonly partBytes: number;
  /** `limits.maxUploadSeconds`: the sweep removes content of writes that did not commit this long after they started uploading. Default 15 minutes. */
  readonly uploadStaleMs: number;
}

export const DEFAULT_SWEEP_AFTER_MINUTES = 15;
export const DEFAULT_LEASE_SECONDS = 300;
export const DEFAULT_JOB_CONCURRENCY = 16;
export const DEFAULT_PART_KILOBYTES = 16 * 1024;

export function jobSettings(config: Pick<XronoxConfig, 'jobs' | 'retention' | 'limits'>): JobSettings {
  const jobs = config.jobs;
  return {
    archiveMode: jobs?.archive?.mode ?? 'inline',
    sweepAfterMs: (jobs?.archive?.sweepAfterMinutes ?? DEFAULT_SWEEP_AFTER_MINUTES) * 60_000,
    leaseMs: (jobs?.leaseSeconds ?? DEFAULT_LEASE_SECONDS) * 1000,
    versionDays: config.retention?.ver?.days,
    maxVersionsPerItem: config.retention?.ver?.maxPerItem,
    logsDays: jobs?.retention?.logsDays,
    offloadLogsAfterDays: jobs?.offload?.logsAfterDays,
    concurrency: jobs?.concurrency ?? DEFAULT_JOB_CONCURRENCY,
    backupFormat: jobs?.backup?.format ?? 'self-contained',
    partBytes: (jobs?.backup?.partKilobytes ?? DEFAULT_PART_KILOBYTES) * 1024,
    uploadStaleMs: uploadStaleMs(config),
  };
}

export const DAY_MS = 24 * 3600 * 1000;
