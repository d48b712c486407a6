/**
 * The identity pieces a gateway runs with, built from the policy: policy-file tokens, tokens
 * kept in the store, and the trusted OIDC issuers, behind one Authenticator.
 */
import type { AuditLog } from '../audit/log.ts';
import type { Policy } from '../policy/policy.ts';
import type { Store } from '../store.ts';
import { ApiTokens } from './api-tokens.ts';
import { CompositeAuthenticator } from './composite.ts';
import { OidcVerifier } from './oidc.ts';
import { TokenRegistry } from './tokens.ts';

export interface Identity {
  readonly tokens: CompositeAuthenticator;
  readonly apiTokens: ApiTokens;
  readonly oidc: OidcVerifier;
}

export function buildIdentity(o: { policy: Policy; store: Store; audit?: AuditLog | undefined }): Identity {
  const apiTokens = new ApiTokens(o.store, { admins: o.policy.tokenAdmins ?? ['admins'] });
  const oidc = new OidcVerifier(o.policy.oidc ?? []);
  const tokens = new CompositeAuthenticator({
    policyTokens: new TokenRegistry(o.policy.tokens),
    apiTokens,
    oidc,
    onApiFailure: (failure) => {
      try {
        o.audit?.appendLater('auth.failed', { ...failure });
      } catch {
        // the log is full or closed; it reports itself unhealthy
      }
    },
  });
  return { tokens, apiTokens, oidc };
}
