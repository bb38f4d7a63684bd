import { createHash, randomBytes } from 'node:crypto';

/**
 * API keys: 32 random bytes, base64url, with a `xrx_` prefix so a leaked key is recognisable in
 * code and logs (secret scanners match on prefixes). The config stores only `hashApiKey(key)`.
 */
export function generateApiKey(): string {
  return `xrx_${randomBytes(32).toString('base64url')}`;
}

/** Lowercase hex SHA-256 of a key: what `api.keys[].sha256` holds. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}
