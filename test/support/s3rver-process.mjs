// Child process for test/support/s3rver.ts: runs one s3rver on 127.0.0.1 until SIGTERM.
//
// Started as `node --openssl-legacy-provider s3rver-process.mjs` (s3rver encrypts ListObjectsV2
// continuation tokens with DES, which OpenSSL 3 only offers through the legacy provider; without it
// every truncated listing answers HTTP 500).
//
// Input (environment):  S3RVER_PORT       port to bind (0 = let the OS pick one)
//                       S3RVER_DIRECTORY  data directory (buckets and objects live here)
//                       S3RVER_BUCKETS    optional JSON array of bucket names to create at start
// Output (stdout):      one line `S3RVER_READY {"port":<n>}` once the server listens.
// Failure (stderr):     `S3RVER_FAILED <code> <message>`, exit code 2 (code is e.g. EADDRINUSE).
//
// The parent talks to this process over an IPC channel only to notice its death: when the channel
// closes (the test process exited or was killed), this server exits too.
//
// One patch to s3rver (see atomicPutObject below): object bodies are written to a side file and
// renamed into place once complete, so an upload cut off by stop() (or by a client abort) never
// becomes a visible, truncated object, as on real S3.
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Readable, Transform } from 'node:stream';
import process from 'node:process';
import { pipeline } from 'node:stream/promises';
import S3rver from 's3rver';
import FilesystemStore from 's3rver/lib/stores/filesystem.js';

const port = Number(process.env.S3RVER_PORT ?? '0');
const directory = process.env.S3RVER_DIRECTORY;
const buckets = JSON.parse(process.env.S3RVER_BUCKETS || '[]');

function fail(err) {
  const code = (err && err.code) || 'ERROR';
  process.stderr.write(`S3RVER_FAILED ${code} ${err && err.stack ? err.stack : String(err)}\n`, () => process.exit(2));
}

// s3rver's run() does not reject when listen() fails: the error (e.g. EADDRINUSE) is thrown as an
// unhandled 'error' event. Report it like any other start failure.
process.on('uncaughtException', fail);

// The parent went away (normal exit, crash or SIGKILL): do not outlive it.
process.on('disconnect', () => process.exit(0));

// s3rver 3.7.1 streams a PUT body straight into the object's file and answers once its hashing
// transform finishes: a body cut off mid-way stays on disk and is served (with a fresh ETag) after a
// restart, and a client abort leaves the request hanging. The side file is not listed: s3rver lists
// only files ending in `._S3rver_object`.
let partials = 0;
FilesystemStore.prototype.putObject = async function atomicPutObject(object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  await mkdir(dirname(objectPath), { recursive: true });
  const partialPath = `${objectPath}.partial-${process.pid}-${++partials}`;
  const md5 = createHash('md5');
  let size = 0;
  const source = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content;
  try {
    await pipeline(
      source,
      new Transform({
        transform(chunk, _encoding, callback) {
          md5.update(chunk);
          size += chunk.length;
          callback(null, chunk);
        },
      }),
      createWriteStream(partialPath),
    );
  } catch (err) {
    await rm(partialPath, { force: true });
    throw err;
  }
  const digest = md5.digest('hex');
  await this.putMetadata(object.bucket, object.key, object.metadata, digest);
  await rename(partialPath, objectPath);
  return { size, md5: digest };
};

let server;
function shutdown() {
  // Simulates an outage: stop accepting and drop every open connection (in-flight requests fail).
  if (server?.httpServer) {
    server.httpServer.close();
    server.httpServer.closeAllConnections();
  }
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

try {
  if (!directory) throw new Error('S3RVER_DIRECTORY is not set');
  server = new S3rver({
    address: '127.0.0.1',
    port,
    directory,
    silent: true,
    configureBuckets: buckets.map((name) => ({ name })),
  });
  // s3rver's Koa app re-emits request errors (client aborts during an outage, etc.); keep them quiet.
  server.on('error', () => {});
  const address = await server.run();
  process.stdout.write(`S3RVER_READY ${JSON.stringify({ port: address.port })}\n`);
} catch (err) {
  fail(err);
}
