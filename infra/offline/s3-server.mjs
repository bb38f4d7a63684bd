// The S3 server of `npm run offline` (started by infra/offline/s3-events.cjs, one per `osls offline`):
// s3rver on 127.0.0.1, run in its own process as `node --openssl-legacy-provider s3-server.mjs`
// (s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only offers
// through the legacy provider; without it every truncated listing answers HTTP 500).
//
// Input (environment):  OFFLINE_S3_PORT       port to bind
//                       OFFLINE_S3_DIRECTORY  data directory (one folder per bucket; kept across runs)
//                       OFFLINE_S3_BUCKETS    JSON array of bucket names to create at start
// Output (IPC messages to the parent):
//                       { type: 'ready', port }       once the server listens
//                       { type: 'event', event }      s3rver's S3 event for every object written,
//                                                     copied or deleted (one record each)
// Failure:              a message on stderr, exit code 2 (e.g. EADDRINUSE).
//
// It exits when the parent goes away (the IPC channel closes) or on SIGTERM/SIGINT.
import process from 'node:process';
import S3rver from 's3rver';

function fail(err) {
  process.stderr.write(`[offline S3] ${(err && err.code) || 'ERROR'} ${err && err.stack ? err.stack : String(err)}\n`, () => process.exit(2));
}

// s3rver's run() does not reject when listen() fails: the error (e.g. EADDRINUSE) is thrown as an
// unhandled 'error' event.
process.on('uncaughtException', fail);
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

try {
  const directory = process.env.OFFLINE_S3_DIRECTORY;
  if (!directory) throw new Error('OFFLINE_S3_DIRECTORY is not set');
  const server = new S3rver({
    address: '127.0.0.1',
    port: Number(process.env.OFFLINE_S3_PORT),
    directory,
    silent: true,
    configureBuckets: JSON.parse(process.env.OFFLINE_S3_BUCKETS || '[]').map((name) => ({ name })),
  });
  // Client aborts and the like; s3rver answers the request itself.
  server.on('error', () => {});
  server.on('event', (event) => process.send?.({ type: 'event', event }));
  const address = await server.run();
  process.send?.({ type: 'ready', port: address.port });
} catch (err) {
  fail(err);
}
