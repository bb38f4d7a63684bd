/**
 * One line to fd 1, written synchronously, for child processes whose parent counts their lines.
 *
 * Under `--import tsx` the inherited stdout socket is non-blocking, so a bare `writeSync(1, …)`
 * throws EAGAIN once the parent is slow to read and the socket's buffer is full: the child then
 * dies of a test-harness error, not of anything Xronox did. This waits for room instead, briefly
 * and boundedly, so the line goes out whole and in order before the caller goes on.
 */
import { writeSync } from 'node:fs';

const WAIT_MS = 2;
const GIVE_UP_MS = 120_000;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

export function writeStdoutLine(line: string): void {
  let rest = Buffer.from(`${line}\n`);
  const deadline = Date.now() + GIVE_UP_MS;
  while (rest.length > 0) {
    try {
      rest = rest.subarray(writeSync(1, rest));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN' || Date.now() > deadline) throw error;
      Atomics.wait(sleeper, 0, 0, WAIT_MS);
    }
  }
}
