/**
 * The `xronox` CLI on a store it cannot use (issue 15, item 4), as a real process: it says which
 * path and why, exits 1, and does no work. Before the fix, an SQLite file under `/proc` made it
 * spin forever in Node's recursive mkdir, deaf to SIGTERM.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../functions/cli/xronox.js';
import { tempDir } from '../support/temp.js';
import { runTsx } from '../support/tsx-process.js';

const CLI = new URL('../../functions/cli/xronox.ts', import.meta.url).pathname;
/** Only a hang detector: a CLI still running after this long is killed and the test fails. */
const HUNG_AFTER_MS = 30_000;

describe('xronox CLI on an unusable data folder or file (a real CLI process)', () => {
  const dir = tempDir('xronox-cli-storage');
  afterAll(() => dir.cleanup());

  const configFile = (name: string, sqlitePath: string, basePath: string) => {
    const file = join(dir.path, `${name}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        dbConnections: { local: { sqlitePath } },
        localStorage: { basePath, enabled: true },
        databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme' }] } },
      }),
    );
    return file;
  };

  it('names the path and the reason, exits 1 and does no work', async () => {
    const notSqlite = join(dir.path, 'not-sqlite');
    mkdirSync(notSqlite);
    writeFileSync(join(notSqlite, 'xronox.sqlite'), 'these bytes are not an SQLite database file at all');
    const blobsIsFile = join(dir.path, 'blobs-file');
    mkdirSync(blobsIsFile);
    writeFileSync(join(blobsIsFile, 'blobs'), 'not a folder');
    const proc = `/proc/xronox-${process.pid}`;
    const cases = [
      { file: configFile('proc', `${proc}/xronox.sqlite`, join(dir.path, 'blobs')), reason: `Cannot open the SQLite file ${proc}/xronox.sqlite: its folder cannot be made (ENOENT` },
      { file: configFile('not-sqlite', join(notSqlite, 'xronox.sqlite'), join(notSqlite, 'blobs')), reason: `Cannot open the SQLite file ${notSqlite}/xronox.sqlite: SQLITE_NOTADB` },
      { file: configFile('blobs-file', join(blobsIsFile, 'xronox.sqlite'), join(blobsIsFile, 'blobs')), reason: `The blob folder ${blobsIsFile}/blobs/rt_acme cannot be written: ENOTDIR` },
    ];
    for (const c of cases) {
      for (const args of [['job', 'run', 'archive'], ['migrate', 'all']]) {
        const run = await runTsx(CLI, [...args, '--config', c.file], { dropEnv: ['XRONOX_CONFIG_FILE'], killAfterMs: HUNG_AFTER_MS });
        expect({ args, file: c.file, code: run.code, signal: run.signal, stdout: run.stdout }).toEqual({ args, file: c.file, code: EXIT.failed, signal: null, stdout: '' });
        expect(run.stderr).toContain(c.reason);
      }
    }
  }, 240_000);
});
