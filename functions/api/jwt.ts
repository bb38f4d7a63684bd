import { createRemoteJWKSet, errors, type JWTPayload, jwtVerify } from 'jose';
import type { ApiJwtConfig } from '../../core/index.js';

/**
 * Verifies bearer JWTs with the configured HMAC secret or JWKS. Resolves the verified payload,
 * or `null` when the token is not acceptable (bad signature, expired, wrong issuer or audience,
 * unknown key, malformed): those are the caller's fault and become a 401. Anything else (the
 * JWKS cannot be fetched or is broken) is ours and rejects, so it becomes a logged 500.
 */
export interface JwtVerifier {
  verify(token: string): Promise<JWTPayload | null>;
}

/** Algorithms are pinned per key kind, so a token can never pick a weaker or confused algorithm. */
const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'];
const PUBLIC_KEY_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

/** jose error codes that describe the token rather than our side. */
const TOKEN_FAULTS = new Set([
  errors.JWTClaimValidationFailed.code,
  errors.JWTExpired.code,
  errors.JOSEAlgNotAllowed.code,
  errors.JOSENotSupported.code,
  errors.JWSInvalid.code,
  errors.JWTInvalid.code,
  errors.JWSSignatureVerificationFailed.code,
  errors.JWKSNoMatchingKey.code,
  errors.JWKSMultipleMatchingKeys.code,
]);

/** Seconds of clock skew tolerated between the issuer and this server. */
const CLOCK_TOLERANCE_SECONDS = 5;

export function createJwtVerifier(config: ApiJwtConfig): JwtVerifier {
  const options = {
    ...(config.issuer !== undefined ? { issuer: config.issuer } : {}),
    ...(config.audience !== undefined ? { audience: config.audience } : {}),
    requiredClaims: ['sub', 'exp'],
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
  };
  let verify: (token: string) => Promise<{ payload: JWTPayload }>;
  if (config.secret !== undefined) {
    const secret = new TextEncoder().encode(config.secret);
    verify = (token) => jwtVerify(token, secret, { ...options, algorithms: HMAC_ALGORITHMS });
  } else {
    // Fetched on first use and cached by jose (refetched for an unknown `kid`, at most every 30 s).
    const keys = createRemoteJWKSet(new URL(config.jwksUrl!), { timeoutDuration: 5_000 });
    verify = (token) => jwtVerify(token, keys, { ...options, algorithms: PUBLIC_KEY_ALGORITHMS });
  }
  return {
    async verify(token) {
      try {
        return (await verify(token)).payload;
      } catch (err) {
        if (err instanceof errors.JOSEError && TOKEN_FAULTS.has(err.code)) return null;
        throw err;
      }
    },
  };
}
