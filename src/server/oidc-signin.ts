/**
 * Console sign-in with the reviewer's identity provider: OAuth 2.0 authorization code with
 * PKCE (RFC 7636) through openid-client, then a console session like a token sign-in.
 *
 *   GET /auth/oidc/login     → 302 to the issuer, with state, nonce and an S256 code challenge
 *   GET /auth/oidc/callback  → code exchanged for tokens, the ID token verified as any caller
 *                              JWT (issuer keys, aud = client_id, expiry), session opened, → /
 *   GET /api/v1/auth/config  → what `airlock login` needs for the device flow (public)
 *
 * The pending sign-in (state, nonce, PKCE verifier) lives in an HttpOnly cookie scoped to
 * /auth/oidc, not in server memory, so the callback may land on any replica. It binds the
 * sign-in to the browser that started it: a callback URL sent to someone else (login CSRF)
 * finds no matching cookie. The verifier never leaves that browser and this gateway. The console
 * session keeps the ID token's expiry (not the token) and ends when the ID token expires.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import * as client from 'openid-client';
import type { Principal } from '../core/action.ts';
import { AirlockError } from '../core/errors.ts';
import type { Authenticator } from '../core/identity/authenticator.ts';
import type { OidcIssuer, Policy } from '../core/policy/policy.ts';
import { readCookie } from './console.ts';

const PENDING_COOKIE = 'airlock_oidc';
const PENDING_TTL_MS = 10 * 60_000;

export interface ConsoleSessions {
  /** Opens a console session for `principal` on `reply` (sets the session cookie). */
  openSession(reply: FastifyReply, principal: Principal, credential: string): Promise<void>;
}

interface Pending {
  readonly state: string;
  readonly verifier: string;
  readonly nonce: string;
  readonly expiresAt: number;
}

function encodePending(p: Pending): string {
  return Buffer.from(JSON.stringify(p)).toString('base64url');
}

function decodePending(value: string | undefined): Pending | undefined {
  if (!value || value.length > 2048) return undefined;
  try {
    const p = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as Partial<Pending>;
    if (
      typeof p.state === 'string' &&
      typeof p.verifier === 'string' &&
      typeof p.nonce === 'string' &&
      typeof p.expiresAt === 'number'
    )
      return p as Pending;
  } catch {
    // not ours: treated as no sign-in in progress
  }
  return undefined;
}

/** The issuer people sign in with: the first one that names a client_id. */
export function signInIssuer(policy: Policy): OidcIssuer | undefined {
  return policy.oidc?.find((o) => o.clientId !== undefined);
}

/** openid-client configuration for an issuer, discovered once (retried after a failure). */
export function clientConfig(issuer: OidcIssuer): () => Promise<client.Configuration> {
  let config: Promise<client.Configuration> | undefined;
  return () => {
    if (!config) {
      const secret = issuer.clientSecret?.reveal();
      const insecure = issuer.issuer.startsWith('http:');
      const p = client.discovery(
        new URL(issuer.issuer),
        issuer.clientId!,
        undefined,
        secret === undefined ? client.None() : client.ClientSecretPost(secret),
        // An http:// issuer is the policy author's explicit choice (a lab or loopback IdP).
        insecure ? { execute: [client.allowInsecureRequests] } : undefined,
      );
      config = p;
      p.catch(() => {
        if (config === p) config = undefined;
      });
    }
    return config.catch((cause) => {
      throw new AirlockError(
        'AIRLOCK_E_OIDC_UNAVAILABLE',
        `the identity provider ${issuer.issuer} could not be reached`,
        {
          hint: 'check the issuer URL and client_id in the policy, and that the gateway can reach the issuer',
          cause,
        },
      );
    });
  };
}

function sameState(a: string, b: string): boolean {
  const x = createHash('sha256').update(a).digest();
  const y = createHash('sha256').update(b).digest();
  return timingSafeEqual(x, y);
}

export function registerOidcSignIn(
  app: FastifyInstance,
  deps: { policy: Policy; tokens: Authenticator; sessions: ConsoleSessions },
): void {
  const { policy, tokens, sessions } = deps;
  const issuer = signInIssuer(policy);

  app.get('/api/v1/auth/config', async () => ({
    oidc: issuer ? { issuer: issuer.issuer, clientId: issuer.clientId, scopes: [...issuer.scopes] } : null,
  }));
  if (!issuer) return;

  const config = clientConfig(issuer);
  const redirectUri = () => `${policy.publicUrl}/auth/oidc/callback`;
  const secure = () => policy.publicUrl.startsWith('https:');
  const pendingCookie = (reply: FastifyReply, value: string, maxAgeS: number) =>
    reply.header(
      'set-cookie',
      // Lax: the cookie must come back on the issuer's top-level redirect to the callback.
      `${PENDING_COOKIE}=${value}; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=${maxAgeS}${secure() ? '; Secure' : ''}`,
    );

  app.get('/auth/oidc/login', async (_request, reply) => {
    const now = Date.now();
    const cfg = await config();
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(cfg, {
      redirect_uri: redirectUri(),
      scope: issuer.scopes.join(' '),
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    pendingCookie(
      reply,
      encodePending({ state, verifier, nonce, expiresAt: now + PENDING_TTL_MS }),
      PENDING_TTL_MS / 1000,
    );
    void reply.header('cache-control', 'no-store').redirect(url.href, 302);
    return reply;
  });

  app.get('/auth/oidc/callback', async (request, reply) => {
    const query = request.query as Record<string, unknown>;
    const state = typeof query.state === 'string' ? query.state : '';
    const started = decodePending(readCookie(request.headers.cookie, PENDING_COOKIE));
    if (!started || !state || !sameState(started.state, state) || started.expiresAt <= Date.now())
      throw new AirlockError(
        'AIRLOCK_E_FORBIDDEN',
        'this sign-in was not started in this browser, or it took too long',
        {
          hint: `start again at ${policy.publicUrl}/auth/oidc/login`,
        },
      );
    pendingCookie(reply, '', 0);
    if (typeof query.error === 'string')
      throw new AirlockError(
        'AIRLOCK_E_FORBIDDEN',
        `the identity provider refused the sign-in: ${query.error.slice(0, 100)}`,
        {
          hint: `start again at ${policy.publicUrl}/auth/oidc/login`,
        },
      );
    const cfg = await config();
    const current = new URL(request.url, `${policy.publicUrl}/`);
    let idToken: string | undefined;
    try {
      const result = await client.authorizationCodeGrant(cfg, current, {
        pkceCodeVerifier: started.verifier,
        expectedState: state,
        expectedNonce: started.nonce,
        idTokenExpected: true,
      });
      idToken = result.id_token;
    } catch (cause) {
      throw new AirlockError(
        'AIRLOCK_E_TOKEN_INVALID',
        'the sign-in could not be completed with the identity provider',
        {
          hint: `start again at ${policy.publicUrl}/auth/oidc/login`,
          cause,
        },
      );
    }
    if (!idToken)
      throw new AirlockError('AIRLOCK_E_TOKEN_INVALID', 'the identity provider returned no ID token', {
        hint: 'ask for the openid scope in the policy (scopes)',
      });
    // The same verification every caller JWT gets: keys, issuer, audience, expiry, claim rules.
    const principal = await tokens.authenticate(idToken, { source: request.ip, protocol: 'api' });
    await sessions.openSession(reply, principal, idToken);
    void reply.header('cache-control', 'no-store').redirect('/', 302);
    return reply;
  });
}
