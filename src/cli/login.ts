/**
 * `airlock login | logout | whoami`. Login uses the OAuth 2.0 device authorization grant
 * (RFC 8628) with the issuer the gateway names at /api/v1/auth/config: the CLI shows a URL and
 * a code, the person confirms in any browser, and the ID token is cached for later commands.
 */
import type { Command } from 'commander';
import { decodeJwt } from 'jose';
import * as client from 'openid-client';
import { AirlockError } from '../core/errors.ts';
import { apiClient, DEFAULT_URL } from './client.ts';
import { type CachedCredential, forgetToken, saveToken } from './credentials.ts';

const out = (text: string) => process.stdout.write(`${text}\n`);
const err = (text: string) => process.stderr.write(`${text}\n`);

interface AuthConfig {
  readonly oidc: { readonly issuer: string; readonly clientId: string; readonly scopes: string[] } | null;
}

interface Whoami {
  readonly name: string;
  readonly kind: string;
  readonly groups: string[];
  readonly reviewer: boolean;
}

function gatewayUrl(): string {
  return (process.env.AIRLOCK_URL || DEFAULT_URL).replace(/\/+$/, '');
}

async function authConfig(url: string): Promise<NonNullable<AuthConfig['oidc']>> {
  let res: Response;
  try {
    res = await fetch(`${url}/api/v1/auth/config`, { signal: AbortSignal.timeout(30_000) });
  } catch (cause) {
    throw new AirlockError('AIRLOCK_E_UPSTREAM_UNAVAILABLE', `no Airlock server answered at ${url}`, {
      hint: 'set AIRLOCK_URL to the address of your Airlock gateway',
      cause,
    });
  }
  const body = (await res.json().catch(() => ({}))) as Partial<AuthConfig>;
  if (!res.ok || !body.oidc)
    throw new AirlockError(
      'AIRLOCK_E_BAD_REQUEST',
      `the gateway at ${url} has no single sign-on configured`,
      {
        hint: 'use an Airlock token (AIRLOCK_TOKEN) instead, or ask the admin to add identities.oidc with a client_id',
      },
    );
  return body.oidc;
}

async function providerConfig(issuer: string, clientId: string): Promise<client.Configuration> {
  try {
    return await client.discovery(
      new URL(issuer),
      clientId,
      undefined,
      client.None(),
      issuer.startsWith('http:') ? { execute: [client.allowInsecureRequests] } : undefined,
    );
  } catch (cause) {
    throw new AirlockError(
      'AIRLOCK_E_OIDC_UNAVAILABLE',
      `the identity provider ${issuer} could not be reached`,
      {
        hint: 'check your network, then retry',
        cause,
      },
    );
  }
}

/**
 * A fresh ID token for an expired cached one, with the refresh token the provider issued at
 * login (scope offline_access); undefined when there is none or the provider refuses it.
 */
export async function refreshCredential(
  url: string,
  cached: CachedCredential,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | undefined> {
  if (!cached.refreshToken || !cached.issuer || !cached.clientId) return undefined;
  try {
    const config = await providerConfig(cached.issuer, cached.clientId);
    const tokens = await client.refreshTokenGrant(config, cached.refreshToken);
    if (!tokens.id_token) return undefined;
    const exp = decodeJwt(tokens.id_token).exp;
    saveToken(
      url,
      {
        ...cached,
        token: tokens.id_token,
        expiresAt: exp === undefined ? undefined : exp * 1000,
        refreshToken: tokens.refresh_token ?? cached.refreshToken,
      },
      env,
    );
    return tokens.id_token;
  } catch {
    // An expired or revoked refresh token: the caller asks the person to sign in again.
    return undefined;
  }
}

function describe(w: Whoami): string {
  return `${w.name} (${w.kind}; groups ${w.groups.join(', ') || 'none'}${w.reviewer ? '; reviewer' : ''})`;
}

export function registerLoginCommands(program: Command): void {
  program
    .command('login')
    .description('sign in with your identity provider (device flow); the token is cached for the CLI')
    .action(async () => {
      const url = gatewayUrl();
      const oidc = await authConfig(url);
      let config: client.Configuration;
      try {
        config = await client.discovery(
          new URL(oidc.issuer),
          oidc.clientId,
          undefined,
          client.None(),
          oidc.issuer.startsWith('http:') ? { execute: [client.allowInsecureRequests] } : undefined,
        );
      } catch (cause) {
        throw new AirlockError(
          'AIRLOCK_E_OIDC_UNAVAILABLE',
          `the identity provider ${oidc.issuer} could not be reached`,
          {
            hint: 'check your network, then retry',
            cause,
          },
        );
      }
      const device = await client.initiateDeviceAuthorization(config, { scope: oidc.scopes.join(' ') });
      err(`To sign in, open ${device.verification_uri_complete ?? device.verification_uri}`);
      err(
        `and confirm the code ${device.user_code} (valid for ${Math.round(device.expires_in / 60)} minutes).`,
      );
      err('Waiting...');
      const tokens = await client.pollDeviceAuthorizationGrant(config, device);
      const idToken = tokens.id_token;
      if (!idToken)
        throw new AirlockError('AIRLOCK_E_TOKEN_INVALID', 'the identity provider returned no ID token', {
          hint: 'the gateway must ask for the openid scope (identities.oidc scopes)',
        });
      // Ask the gateway who the token stands for before keeping it: a refusal shows up now.
      const me = await apiClient({
        ...process.env,
        AIRLOCK_URL: url,
        AIRLOCK_TOKEN: idToken,
      }).request<Whoami>('GET', '/api/v1/whoami');
      const exp = decodeJwt(idToken).exp;
      saveToken(url, {
        token: idToken,
        expiresAt: exp === undefined ? undefined : exp * 1000,
        issuer: oidc.issuer,
        principal: me.name,
        refreshToken: tokens.refresh_token,
        clientId: oidc.clientId,
      });
      out(`signed in as ${describe(me)}${exp ? ` until ${new Date(exp * 1000).toISOString()}` : ''}`);
    });

  program
    .command('logout')
    .description('forget the token `airlock login` cached for this gateway')
    .action(() => {
      const url = gatewayUrl();
      out(forgetToken(url) ? `signed out of ${url}` : `not signed in to ${url}`);
    });

  program
    .command('whoami')
    .description('show who the gateway thinks you are')
    .action(async () => {
      out(describe(await apiClient().request<Whoami>('GET', '/api/v1/whoami')));
    });
}
