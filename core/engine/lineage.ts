import { ACTOR_TYPES, type Actor, type IndexedValue } from '../contracts/index-store.js';
import { ValidationError } from '../errors.js';
import { assertName } from '../foundation/names.js';
import { checkOptions } from './arguments.js';
import { isPlainObject } from '../foundation/filter.js';

/** Where a record came from: the record it was derived from. */
export interface ParentRef {
  id: string;
  /** Defaults to the record's own collection. */
  collection: string;
  ov?: number;
}

/** What produced a record: an import, an agent run, an API call… */
export interface Origin {
  type: string;
  id?: string;
}

/** The engine's own bookkeeping kept in each record document. */
export interface SystemInfo {
  parent?: ParentRef;
  origin?: Origin;
  /** Every `functionId` that has enriched the record, in first-use order. */
  functionIds?: string[];
  /** The `uniqueKeys` of the `smartInsert` that created the record; re-claimed if it is revived. */
  uniqueKeys?: string[];
}

/** What reads return as `_system`. */
export interface SystemView {
  insertedAt: string;
  updatedAt: string;
  deletedAt: string | null;
  functionIds: string[];
  parent: ParentRef | null;
  origin: Origin | null;
}

/** Indexed system values: always filterable, whatever the collection map says. */
export const SYSTEM_FIELDS = [
  '_system.insertedAt',
  '_system.updatedAt',
  '_system.parentId',
  '_system.parentCollection',
  '_system.originType',
  '_system.originId',
] as const;
const SYSTEM_FIELD_SET = new Set<string>(SYSTEM_FIELDS);

export function isSystemField(field: string): boolean {
  return SYSTEM_FIELD_SET.has(field);
}

export function systemMeta(system: SystemInfo | undefined, createdAt: string, at: string): Record<string, IndexedValue> {
  const meta: Record<string, IndexedValue> = { '_system.insertedAt': createdAt, '_system.updatedAt': at };
  if (system?.parent) {
    meta['_system.parentId'] = system.parent.id;
    meta['_system.parentCollection'] = system.parent.collection;
  }
  if (system?.origin) {
    meta['_system.originType'] = system.origin.type;
    // Stryker disable next-line ConditionalExpression: meta is stored as JSON, where an undefined value is no value at all.
    if (system.origin.id !== undefined) meta['_system.originId'] = system.origin.id;
  }
  return meta;
}

const LABEL = /^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$/;

/** Validates `create`'s lineage options. */
export function checkLineage(options: unknown, ownCollection: string): Pick<SystemInfo, 'parent' | 'origin'> {
  const { parentRecord, origin } = checkOptions(options, ['parentRecord', 'origin'], 'options', 'create');
  const out: Pick<SystemInfo, 'parent' | 'origin'> = {};
  if (parentRecord !== undefined) {
    if (!isPlainObject(parentRecord)) throw new ValidationError('parentRecord must be { id, collection?, ov? }', { path: 'parentRecord' });
    checkOptions(parentRecord, ['id', 'collection', 'ov'], 'parentRecord');
    const parent: ParentRef = {
      id: assertName('id', parentRecord.id, 'parentRecord.id'),
      collection: parentRecord.collection === undefined ? ownCollection : assertName('collection', parentRecord.collection, 'parentRecord.collection'),
    };
    if (parentRecord.ov !== undefined) {
      // Number.isSafeInteger is false for anything but a number.
      const ov = parentRecord.ov as number;
      if (!Number.isSafeInteger(ov) || ov < 0) throw new ValidationError('parentRecord.ov must be a whole number of at least 0', { path: 'parentRecord.ov' });
      parent.ov = ov;
    }
    out.parent = parent;
  }
  if (origin !== undefined) {
    const o = typeof origin === 'string' ? { type: origin } : origin;
    if (isPlainObject(o)) checkOptions(o, ['type', 'id'], 'origin');
    if (!isPlainObject(o) || typeof o.type !== 'string' || !LABEL.test(o.type) || (o.id !== undefined && (typeof o.id !== 'string' || !LABEL.test(o.id)))) {
      throw new ValidationError('origin must be a label or { type, id? } of letters, digits and ._:@/- (at most 128)', { path: 'origin' });
    }
    // Stryker disable next-line ConditionalExpression: records are stored as JSON, so an `id: undefined` is never stored nor read back.
    out.origin = o.id === undefined ? { type: o.type } : { type: o.type, id: o.id as string };
  }
  return out;
}

/** Validates an actor: a name, or a typed identity `{ type, identifier, name? }`. */
export function checkActor(actor: unknown): Actor | undefined {
  if (actor === undefined) return undefined;
  if (typeof actor === 'string') {
    if (actor.length === 0 || actor.length > 256) throw new ValidationError('actor must be a non-empty string of at most 256 characters', { path: 'actor' });
    return actor;
  }
  if (isPlainObject(actor)) {
    const { type, identifier, name, ...rest } = actor;
    const ok =
      Object.keys(rest).length === 0 &&
      ACTOR_TYPES.includes(type as (typeof ACTOR_TYPES)[number]) &&
      typeof identifier === 'string' &&
      identifier.length > 0 &&
      identifier.length <= 256 &&
      (name === undefined || (typeof name === 'string' && name.length <= 256));
    if (ok) {
      const typed = type as (typeof ACTOR_TYPES)[number];
      // Stryker disable next-line ConditionalExpression: as with origins, a `name: undefined` never reaches storage (JSON).
      return name === undefined ? { type: typed, identifier } : { type: typed, identifier, name: name as string };
    }
  }
  throw new ValidationError(`actor must be a string or { type: ${ACTOR_TYPES.join('|')}, identifier, name? }`, { path: 'actor' });
}

/** The identifier an actor is looked up by. */
export function actorId(actor: Actor): string {
  return typeof actor === 'string' ? actor : actor.identifier;
}
