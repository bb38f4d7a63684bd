import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type HttpBindings, serve, type ServerType } from '@hono/node-server';

export interface ServeApiOptions {
  port: number;
  hostname: string;
}

/** The longest a closing connection keeps reading (and discarding) what its client still sends. */
export const LINGER_MS = 30_000;
/** ... and the longest it waits for the next bytes of it. */
export const LINGER_IDLE_MS = 5_000;

/**
 * Serves a Hono app (`fetch`) over Node's HTTP server with `@hono/node-server`, ending
 * connections so that a client can always read the answer to a request whose body was refused.
 *
 * When the app answers before the request body has arrived (413 over the body limit, 401, 403,
 * 415: none reads it), the connection cannot simply be kept: its next bytes are the rest of that
 * body. So the answer says `Connection: close`, and the connection is then closed with a
 * lingering close: the server half-closes (its FIN follows the answer) and goes on reading and
 * discarding what the client still sends, until the client closes (at most `LINGER_MS`, or
 * `LINGER_IDLE_MS` without a byte). Node's own close (`socket.destroySoon()`) closes the socket
 * as soon as the answer is written, and a client still sending its body then gets a reset, often
 * before it has read the answer; `@hono/node-server` drains such a body for 500 ms and then does
 * the same, after having answered `Connection: keep-alive`. When the body had fully arrived, the
 * connection is kept alive as usual (Node discards the unread body).
 */
export function serveApi(
  fetch: (request: Request, env: HttpBindings) => Response | Promise<Response>,
  options: ServeApiOptions,
  onListening?: (info: AddressInfo) => void,
): ServerType {
  return serve(
    {
      fetch: async (request, env) => {
        // An HTTP/1.1 server (`serve` makes no other here): the bindings are Node's request and response.
        const bindings = env as HttpBindings;
        const response = await fetch(request, bindings);
        const { incoming, outgoing } = bindings;
        if (hasBody(incoming) && !(await bodyArrived(incoming))) {
          // Merged into the head that @hono/node-server writes with writeHead.
          outgoing.setHeader('Connection', 'close');
          lingerWhenClosed(incoming);
        }
        return response;
      },
      port: options.port,
      hostname: options.hostname,
    },
    onListening,
  );
}

function hasBody(incoming: IncomingMessage): boolean {
  const length = incoming.headers['content-length'];
  return incoming.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Whether the whole request has arrived. An answer made at once (a refusal) may come before Node
 * has parsed the rest of the very chunk that held the body: it gets until the next turn of the
 * event loop, by which time that chunk is parsed.
 */
async function bodyArrived(incoming: IncomingMessage): Promise<boolean> {
  if (incoming.complete) return true;
  await new Promise((resolve) => setImmediate(resolve));
  return incoming.complete;
}

const LINGERING = Symbol('xronox.lingering');

/**
 * Replaces how Node closes this request's socket once the answer is written (`destroySoon`, which
 * it calls for `Connection: close`) by a lingering close.
 */
function lingerWhenClosed(incoming: IncomingMessage): void {
  const socket = incoming.socket as Socket & { destroySoon?: () => void; [LINGERING]?: boolean };
  if (socket[LINGERING] !== undefined) return;
  socket[LINGERING] = false;
  socket.destroySoon = () => {
    if (socket[LINGERING]) return;
    socket[LINGERING] = true;
    // The FIN goes after the answer; the socket goes on reading.
    socket.end();
    // Discard the rest of the body, as Node does with a body nobody read: a body stream the app
    // opened (the body limit does) would otherwise stop reading once its buffer is full.
    incoming.removeAllListeners('data');
    incoming.on('data', () => undefined);
    incoming.resume();
    const limit = setTimeout(() => socket.destroy(), LINGER_MS);
    limit.unref();
    socket.setTimeout(LINGER_IDLE_MS, () => socket.destroy());
    socket.once('close', () => clearTimeout(limit));
  };
}
