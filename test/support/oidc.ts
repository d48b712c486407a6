/**
 * A real OpenID Provider (oidc-provider) on a random loopback port, for tests. It issues:
 *  - workload tokens: client_credentials JWT access tokens with CI-like claims (repository,
 *    ref, environment), audience chosen by the `resource` indicator (urn:NAME → aud NAME);
 *  - ID tokens for people through authorization code + PKCE and the device flow, with the
 *    provider's own login form (any password; the login name is the account).
 * The HTTP server is bound before the Provider exists, so the issuer URL is known up front and
 * the console's redirect URI can be registered once the gateway's port is known.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

/** Groups of the people the provider knows. */
export const OIDC_PEOPLE: Record<string, readonly string[]> = {
  alice: ['dba'],
  bob: ['dba'],
  carol: ['dba', 'admins'],
  dave: ['support'],
  olivia: ['dba'],
};

/** The few provider internals the configuration callbacks touch (the package ships no types). */
interface TokenLike {
  readonly resourceServer?: { readonly accessTokenTTL?: number };
}
interface GrantContext {
  readonly oidc: {
    readonly provider: {
      readonly Grant: new (o: {
        clientId: string;
        accountId: string;
      }) => {
        addOIDCScope(scope: string): void;
        addOIDCClaims(claims: string[]): void;
        save(): Promise<string>;
      };
    };
    readonly client: { readonly clientId: string };
    readonly session: { readonly accountId: string };
  };
}

export interface TestIdp {
  readonly issuer: string;
  /** Confidential client for workload tokens. */
  readonly ci: { readonly clientId: string; readonly clientSecret: string };
  /** The public client people sign in with. */
  readonly consoleClientId: string;
  /** Registers the provider's clients (call once, before any token is requested). */
  configure(o: { redirectUris: readonly string[]; accessTokenTtlS?: number; idTokenTtlS?: number }): void;
  /** Signs with a fresh key from now on; `keepOld` keeps publishing the previous ones. */
  rotateKeys(keepOld: boolean): void;
  /** A workload token: a JWT access token for `aud`, carrying `claims`. */
  workloadToken(aud: string, claims?: Record<string, unknown>, ttlS?: number): Promise<string>;
  close(): Promise<void>;
}

export async function startTestIdp(): Promise<TestIdp> {
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const server: Server = createServer((req, res) => {
    if (handler) handler(req, res);
    else {
      res.statusCode = 503;
      res.end('not configured yet');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const ci = { clientId: 'ci-runner', clientSecret: randomBytes(24).toString('base64url') };
  const consoleClientId = 'airlock-console';
  const newKey = () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    return {
      ...privateKey.export({ format: 'jwk' }),
      kid: randomBytes(8).toString('hex'),
      use: 'sig',
      alg: 'RS256',
    };
  };
  /** Newest first: the provider signs with the first key and publishes them all. */
  let keys = [newKey()];
  let lastOptions: Parameters<TestIdp['configure']>[0] | undefined;
  /** Extra claims for the next workload token (requests are sequential in tests). */
  let nextClaims: Record<string, unknown> = {};
  let nextTtlS: number | undefined;

  const configure: TestIdp['configure'] = (options) => {
    lastOptions = options;
    const { redirectUris, accessTokenTtlS = 300, idTokenTtlS = 3600 } = options;
    const provider = new Provider(issuer, {
      jwks: { keys },
      clients: [
        {
          client_id: ci.clientId,
          client_secret: ci.clientSecret,
          grant_types: ['client_credentials'],
          response_types: [],
          redirect_uris: [],
        },
        {
          client_id: consoleClientId,
          token_endpoint_auth_method: 'none',
          grant_types: [
            'authorization_code',
            'urn:ietf:params:oauth:grant-type:device_code',
            'refresh_token',
          ],
          response_types: ['code'],
          redirect_uris: [...redirectUris],
          application_type: 'web',
        },
      ],
      claims: { openid: ['sub'], email: ['email'], groups: ['groups'], profile: ['name'] },
      scopes: ['openid', 'email', 'groups', 'profile', 'offline_access'],
      conformIdTokenClaims: false,
      features: {
        devInteractions: { enabled: true },
        deviceFlow: { enabled: true },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => undefined,
          getResourceServerInfo: (_ctx: unknown, resource: string) => ({
            scope: 'deploy',
            audience: resource.replace(/^urn:/, ''),
            accessTokenFormat: 'jwt',
            accessTokenTTL: nextTtlS ?? accessTokenTtlS,
            jwt: { sign: { alg: 'RS256' } },
          }),
        },
      },
      extraTokenClaims: () => ({ ...nextClaims }),
      findAccount: (_ctx: unknown, id: string) => ({
        accountId: id,
        claims: () => ({
          sub: id,
          email: `${id}@example.test`,
          name: id,
          groups: [...(OIDC_PEOPLE[id] ?? [])],
        }),
      }),
      // First-party client: no consent screen, the login form is the only step.
      loadExistingGrant: async (ctx: GrantContext) => {
        const grant = new ctx.oidc.provider.Grant({
          clientId: ctx.oidc.client.clientId,
          accountId: ctx.oidc.session.accountId,
        });
        grant.addOIDCScope('openid email groups profile offline_access');
        grant.addOIDCClaims(['sub', 'email', 'groups', 'name']);
        await grant.save();
        return grant;
      },
      pkce: { required: () => true },
      ttl: {
        IdToken: idTokenTtlS,
        DeviceCode: 600,
        AccessToken: (_ctx: unknown, token: TokenLike) =>
          token.resourceServer?.accessTokenTTL ?? accessTokenTtlS,
        ClientCredentials: (_ctx: unknown, token: TokenLike) =>
          token.resourceServer?.accessTokenTTL ?? accessTokenTtlS,
      },
    });
    handler = provider.callback();
  };

  return {
    issuer,
    ci,
    consoleClientId,
    configure,
    rotateKeys(keepOld) {
      keys = keepOld ? [newKey(), ...keys] : [newKey()];
      if (lastOptions) configure(lastOptions);
    },
    async workloadToken(aud, claims = {}, ttlS) {
      nextClaims = claims;
      nextTtlS = ttlS;
      const res = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${ci.clientId}:${ci.clientSecret}`).toString('base64')}`,
        },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          scope: 'deploy',
          resource: `urn:${aud}`,
        }),
      });
      const body = (await res.json()) as {
        access_token?: string;
        error?: string;
        error_description?: string;
      };
      if (!body.access_token)
        throw new Error(`token request failed: ${body.error}: ${body.error_description}`);
      return body.access_token;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
