/**
 * OIDC JWTs as caller credentials: a person's ID token, or a CI job's short-lived workload
 * token. The issuer is found by the token's `iss` among the configured ones; its keys come
 * from discovery (https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfig)
 * and are fetched and rotated by jose's remote JWKS (an unknown `kid` triggers a refetch).
 * Checked: signature with an allowed asymmetric algorithm, `iss`, `aud`, `exp` (required),
 * `nbf`, with a bounded clock skew (RFC 7519 §4.1).
 */
import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type JWTPayload,
  jwtVerify,
} from 'jose';
import type { Principal } from '../action.ts';
import { AirlockError } from '../errors.ts';
import type { OidcIssuer } from '../policy/policy.ts';
import { principalFromClaims } from './claims.ts';

/** Three base64url segments, the first a JSON object: a JWS compact serialisation. */
export function looksLikeJwt(credential: string): boolean {
  return /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/.test(credential);
}

export interface ProviderMetadata {
  readonly issuer: string;
  readonly jwks_uri: string;
  readonly [key: string]: unknown;
}

const DISCOVERY_TIMEOUT_MS = 5_000;

/** The issuer's discovery document, checked to name the same issuer (OIDC Discovery §4.3). */
export async function discover(issuer: string): Promise<ProviderMetadata> {
  const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(DISCOVERY_TIMEOUT_MS), redirect: 'error' });
  } catch (cause) {
    throw unavailable(issuer, `its discovery document ${url} could not be fetched`, cause);
  }
  if (!res.ok) throw unavailable(issuer, `its discovery document ${url} answered HTTP ${res.status}`);
  let doc: Record<string, unknown>;
  try {
    doc = (await res.json()) as Record<string, unknown>;
  } catch (cause) {
    throw unavailable(issuer, `its discovery document ${url} is not JSON`, cause);
  }
  if (doc.issuer !== issuer)
    throw unavailable(issuer, `its discovery document names the issuer "${String(doc.issuer)}"`);
  if (typeof doc.jwks_uri !== 'string' || !/^https?:\/\//.test(doc.jwks_uri))
    throw unavailable(issuer, 'its discovery document has no jwks_uri');
  return doc as ProviderMetadata;
}

function unavailable(issuer: string, what: string, cause?: unknown): AirlockError {
  return new AirlockError(
    'AIRLOCK_E_OIDC_UNAVAILABLE',
    `the identity provider ${issuer} is not usable: ${what}`,
    {
      hint: 'check that the issuer URL in the policy is right and reachable from the gateway, then retry',
      ...(cause === undefined ? {} : { cause }),
    },
  );
}

interface IssuerState {
  readonly config: OidcIssuer;
  keys?: Promise<ReturnType<typeof createRemoteJWKSet>>;
}

export interface VerifiedJwt {
  readonly principal: Principal;
  readonly issuer: string;
  readonly claims: JWTPayload;
}

export class OidcVerifier {
  readonly #issuers = new Map<string, IssuerState>();
  readonly #now: () => number;
  readonly #cooldownMs: number;

  /**
   * `jwksCooldownMs`: after a key fetch, how long before a token with an unknown `kid` may
   * trigger another (a rotation is picked up after at most this long; forged kids cannot
   * make the gateway hammer the issuer).
   */
  constructor(issuers: readonly OidcIssuer[], opts: { now?: () => number; jwksCooldownMs?: number } = {}) {
    for (const config of issuers) this.#issuers.set(config.issuer, { config });
    this.#now = opts.now ?? Date.now;
    this.#cooldownMs = opts.jwksCooldownMs ?? 30_000;
  }

  get size(): number {
    return this.#issuers.size;
  }

  issuer(iss: string): OidcIssuer | undefined {
    return this.#issuers.get(iss)?.config;
  }

  async verify(token: string): Promise<VerifiedJwt> {
    let iss: string | undefined;
    let alg: string | undefined;
    try {
      iss = decodeJwt(token).iss;
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw invalid(
        'the credential looks like a JWT but cannot be decoded',
        'present the token exactly as issued',
      );
    }
    const state = iss === undefined ? undefined : this.#issuers.get(iss);
    if (!state)
      throw invalid(
        iss === undefined
          ? 'the JWT names no issuer (iss)'
          : `the JWT issuer ${printable(iss)} is not trusted by this gateway`,
        `trusted issuers: ${[...this.#issuers.keys()].join(', ') || '(none configured)'}`,
      );
    const { config } = state;
    // Checked before any key is fetched: `none` and HMAC never reach the key lookup.
    if (alg === undefined || !config.algorithms.includes(alg))
      throw invalid(
        `the JWT from ${config.issuer} is signed with ${alg === undefined ? 'no algorithm' : printable(alg)}, which is not allowed`,
        `allowed: ${config.algorithms.join(', ')}`,
      );
    const audiences = config.clientId ? [...config.audiences, config.clientId] : [...config.audiences];
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, await this.#keys(state), {
        issuer: config.issuer,
        audience: audiences,
        algorithms: [...config.algorithms],
        clockTolerance: Math.floor(config.clockSkewMs / 1000),
        requiredClaims: ['exp'],
        currentDate: new Date(this.#now()),
      }));
    } catch (err) {
      throw explain(err, config, audiences);
    }
    return { principal: principalFromClaims(config, payload), issuer: config.issuer, claims: payload };
  }

  #keys(state: IssuerState): Promise<ReturnType<typeof createRemoteJWKSet>> {
    if (!state.keys) {
      const { config } = state;
      const load = (async () => {
        const uri = config.jwksUri ?? (await discover(config.issuer)).jwks_uri;
        return createRemoteJWKSet(new URL(uri), {
          timeoutDuration: DISCOVERY_TIMEOUT_MS,
          cooldownDuration: this.#cooldownMs,
        });
      })();
      state.keys = load;
      // A failed discovery is retried by the next caller, not cached.
      load.catch(() => {
        if (state.keys === load) state.keys = undefined;
      });
    }
    return state.keys;
  }
}

/** Caller-chosen text shown in an error: one line, bounded. */
function printable(text: unknown): string {
  const s = String(text).replace(/[^\x20-\x7e]/g, '?');
  return s.length > 120 ? `${s.slice(0, 119)}…` : s;
}

function invalid(message: string, hint: string): AirlockError {
  return new AirlockError('AIRLOCK_E_TOKEN_INVALID', message, { hint });
}

/** jose's errors → what happened and what to do, without the token. */
function explain(err: unknown, config: OidcIssuer, audiences: readonly string[]): AirlockError {
  const from = `the JWT from ${config.issuer}`;
  if (err instanceof AirlockError) return err;
  if (err instanceof errors.JWTExpired)
    return new AirlockError('AIRLOCK_E_TOKEN_EXPIRED', `${from} has expired`, {
      hint: 'get a fresh token from your identity provider (`airlock login`, or your CI job’s token request)',
    });
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'aud')
      return invalid(
        `${from} is for another audience`,
        `Airlock accepts the audience ${audiences.join(' or ')}`,
      );
    if (err.claim === 'nbf')
      return invalid(`${from} is not valid yet (nbf)`, 'check the clocks, or retry shortly');
    if (err.claim === 'iss')
      return invalid(`${from} names another issuer`, 'present a token from a trusted issuer');
    if (err.claim === 'exp')
      return invalid(`${from} carries no expiry (exp)`, 'Airlock accepts only expiring tokens');
    return invalid(`${from} has an invalid "${err.claim}" claim`, 'present the token exactly as issued');
  }
  if (err instanceof errors.JWSSignatureVerificationFailed)
    return invalid(
      `${from} has a signature that does not verify`,
      'the token was altered or signed by someone else',
    );
  if (err instanceof errors.JWKSNoMatchingKey)
    return invalid(
      `${from} is signed with a key the issuer does not publish`,
      'the token was signed by someone else, or with a retired key: get a fresh one',
    );
  if (err instanceof errors.JOSEAlgNotAllowed)
    return invalid(
      `${from} uses an algorithm that is not allowed`,
      `allowed: ${config.algorithms.join(', ')}`,
    );
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid || err instanceof TypeError)
    return new AirlockError(
      'AIRLOCK_E_OIDC_UNAVAILABLE',
      `the keys of ${config.issuer} could not be fetched`,
      {
        hint: 'check that the issuer is reachable from the gateway, then retry',
        cause: err,
      },
    );
  if (err instanceof errors.JOSEError)
    return invalid(`${from} was refused (${err.code})`, 'present the token exactly as issued');
  return new AirlockError('AIRLOCK_E_OIDC_UNAVAILABLE', `${from} could not be verified`, {
    hint: 'check that the issuer is reachable from the gateway, then retry',
    cause: err,
  });
}
