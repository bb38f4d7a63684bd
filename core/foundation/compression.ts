/**
 * gzip with the Web-standard `CompressionStream` (Node 18+, Deno, Bun, Workers). No file name and
 * mtime 0 in the header, so the same data always gives the same bytes.
 */
export async function gzip(data: Uint8Array | string): Promise<Uint8Array> {
  return pipeThrough(typeof data === 'string' ? new TextEncoder().encode(data) : data, new CompressionStream('gzip'));
}

/** The bytes of gzip data; rejects on data that is not valid gzip. */
export async function gunzip(data: Uint8Array): Promise<Uint8Array> {
  return pipeThrough(data, new DecompressionStream('gzip'));
}

async function pipeThrough(data: Uint8Array, transform: TransformStream<Uint8Array, Uint8Array>): Promise<Uint8Array> {
  const source = new Blob([data as Uint8Array<ArrayBuffer>]).stream();
  const out = await new Response(source.pipeThrough(transform)).arrayBuffer();
  return new Uint8Array(out);
}
