import type { IndexDriver, OutboxQuery, Transaction, VersionRange } from '../../contracts/index-driver.js';
import type {
  ActorQuery,
  AsOfQuery,
  CounterWindowQuery,
  HeadQuery,
  Namespace,
} from '../../contracts/index-store.js';
import { StorageError } from '../../errors.js';
import type { PostgresIndexDriver, PostgresIndexDriverOptions } from './postgres-index-driver.js';

/**
 * The PostgreSQL driver, loaded on `open`: the registry names it for every `postgresUri`
 * connection, but a build or a process that never opens one never loads `pg` (a development
 * dependency until PostgreSQL is a production backend). `IndexRuntime` opens a driver before any
 * other call, so every method below finds the driver loaded.
 */
export class LazyPostgresIndexDriver implements IndexDriver {
  readonly name = 'postgres';
  readonly multiProcess = true;
  readonly #options: PostgresIndexDriverOptions;
  #loading: Promise<PostgresIndexDriver> | undefined;

  constructor(options: PostgresIndexDriverOptions) {
    this.#options = options;
  }

  #driver(): Promise<PostgresIndexDriver> {
    this.#loading ??= import('./postgres-index-driver.js').then(
      (m) => new m.PostgresIndexDriver(this.#options),
      (err: unknown) => {
        this.#loading = undefined;
        const missing = (err as { code?: unknown }).code === 'ERR_MODULE_NOT_FOUND';
        throw new StorageError('postgres', 'open', err, missing ? 'The PostgreSQL index store needs the pg package (npm install pg)' : undefined);
      },
    );
    return this.#loading;
  }

  async open(): Promise<void> {
    await (await this.#driver()).open();
  }

  async close(): Promise<void> {
    const loading = this.#loading;
    if (loading) await (await loading.catch(() => null))?.close();
  }

  async ping(): Promise<void> {
    return (await this.#driver()).ping();
  }

  async transact<T>(tx: Transaction<T>): Promise<T> {
    return (await this.#driver()).transact(tx);
  }

  async getHead(ns: Namespace, id: string) {
    return (await this.#driver()).getHead(ns, id);
  }

  async listVersions(ns: Namespace, id: string, range: VersionRange) {
    return (await this.#driver()).listVersions(ns, id, range);
  }

  async listHistory(ns: Namespace, id: string, range: { beforeOv?: number; limit: number }) {
    return (await this.#driver()).listHistory(ns, id, range);
  }

  async listHeads(ns: Namespace, query: HeadQuery) {
    return (await this.#driver()).listHeads(ns, query);
  }

  async listHeadIds(ns: Namespace, query: { afterId?: string; limit: number }) {
    return (await this.#driver()).listHeadIds(ns, query);
  }

  async queryAt(ns: Namespace, query: AsOfQuery) {
    return (await this.#driver()).queryAt(ns, query);
  }

  async listVersionsByActor(ns: Namespace, actorId: string, query: ActorQuery) {
    return (await this.#driver()).listVersionsByActor(ns, actorId, query);
  }

  async listClaims(ns: Namespace, query: { key?: string; afterKey?: string; limit: number }) {
    return (await this.#driver()).listClaims(ns, query);
  }

  async listOutbox(dbName: string, query: OutboxQuery) {
    return (await this.#driver()).listOutbox(dbName, query);
  }

  async listDeadLetters(dbName: string, query: { limit: number }) {
    return (await this.#driver()).listDeadLetters(dbName, query);
  }

  async listPendingBlobs(ns: Namespace, id: string | null, query?: { bucket: string; key: string }) {
    return (await this.#driver()).listPendingBlobs(ns, id, query);
  }

  async getCounters(dbName: string, collection: string) {
    return (await this.#driver()).getCounters(dbName, collection);
  }

  async getCounterWindows(dbName: string, collection: string, query: CounterWindowQuery) {
    return (await this.#driver()).getCounterWindows(dbName, collection, query);
  }

  async listNamespaces(dbName?: string) {
    return (await this.#driver()).listNamespaces(dbName);
  }

  async listPendingDatabases() {
    return (await this.#driver()).listPendingDatabases();
  }

  async listDeadLetterDatabases() {
    return (await this.#driver()).listDeadLetterDatabases();
  }

  async listUnarchivedRecords(dbName: string, query: { writtenBefore: string; after?: { collection: string; id: string }; limit: number }) {
    return (await this.#driver()).listUnarchivedRecords(dbName, query);
  }

  async summariseVersions(ns: Namespace, query: { afterId?: string; limit: number }) {
    return (await this.#driver()).summariseVersions(ns, query);
  }
}
