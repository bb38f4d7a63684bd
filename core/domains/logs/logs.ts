import type { Collection } from '../../engine/collection.js';
import type { ListResult } from '../../engine/collection-types.js';
import { parseInstant } from '../../foundation/clock.js';
import type { Data } from '../../engine/documents.js';
import { isPlainObject } from '../../foundation/filter.js';
import { ValidationError } from '../../errors.js';

/**
 * The logs database type is the record collection API with the `appendOnly` policy: `create`
 * only (update, enrich, delete and smartInsert throw `AppendOnlyError`), records filed in the
 * records bucket by day (`records/{collection}/{YYYY-MM-DD}/{id}.json`), deleted only by the
 * retention job (`jobs.retention.logsDays`). This adds reads by time range.
 */
export interface LogRangeOptions {
  /** Records created at or after this instant (a `Date` or an ISO-8601 time). */
  from?: Date | string;
  /** Records created before this instant. */
  to?: Date | string;
  /** Oldest first (1, default) or newest first (-1). */
  order?: 1 | -1;
  /** Page size; default and bounds as `listByMeta`. */
  limit?: number;
  /** The `nextAfterId` of the previous page. */
  afterId?: string;
}

/**
 * Log records created in `[from, to)`, in creation order, paged like `listByMeta`. Bounds are
 * read as the engine's own instants (microseconds, UTC), so a record written exactly at `from`
 * is in the range and one written exactly at `to` is not, whatever the bound's spelling.
 */
export function readLogRange<T extends Data = Data>(logs: Collection, options: LogRangeOptions = {}): Promise<ListResult<T>> {
  if (!logs.route.policy.appendOnly) throw new ValidationError(`readLogRange reads logs collections; ${logs.route.label} is ${logs.route.databaseType}`);
  if (!isPlainObject(options as unknown)) throw new ValidationError('readLogRange takes an options object', { path: 'options' });
  const range: Record<string, string> = {};
  if (options.from !== undefined) range.$gte = parseInstant(options.from, 'from');
  if (options.to !== undefined) range.$lt = parseInstant(options.to, 'to');
  const order = options.order ?? 1;
  if (order !== 1 && order !== -1) throw new ValidationError('order is 1 (oldest first) or -1 (newest first)', { path: 'order' });
  return logs.listByMeta<T>({
    ...(Object.keys(range).length > 0 ? { filter: { '_system.insertedAt': range } } : {}),
    sort: { createdAt: order },
    ...(options.limit !== undefined ? { limit: options.limit } : {}),
    ...(options.afterId !== undefined ? { afterId: options.afterId } : {}),
  });
}
