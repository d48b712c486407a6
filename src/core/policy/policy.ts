/** The resolved policy: what the rest of Airlock reads after the file has been validated. */
import type { ActionKind, PrincipalKind } from '../action.ts';
import type { AuditSettings } from '../audit/settings.ts';
import type { LimitsConfig } from '../limits/limits.ts';
import type { MaskingRule } from '../masking/schema.ts';
import type { NotifyEvent, ReviewSpec, RuleConfig } from './schema.ts';
import type { Secret } from './secret.ts';

export type { ConnectionType, PolicyConnection } from './connections/index.ts';

import type { PolicyConnection } from './connections/index.ts';

export interface PolicyRule extends RuleConfig {
  /** Position in the file, to name the rule when it has no unique name. */
  readonly index: number;
}

export interface TokenIdentity {
  readonly name: string;
  readonly kind: PrincipalKind;
  readonly groups: readonly string[];
  /** sha256 of the token; the token itself is never kept. */
  readonly hash: string;
}

/** Claim name → globs; a claim matches when any of its values matches any glob. */
export type ClaimMatch = Readonly<Record<string, readonly string[]>>;

/** A trusted OpenID Connect issuer (a person's IdP, or a CI workload identity issuer). */
export interface OidcIssuer {
  /** Exactly as the `iss` claim carries it. */
  readonly issuer: string;
  readonly audiences: readonly string[];
  readonly jwksUri?: string | undefined;
  readonly algorithms: readonly string[];
  readonly clockSkewMs: number;
  readonly nameClaim: string;
  readonly namePrefix: string;
  readonly kind: PrincipalKind;
  readonly groupsClaim?: string | undefined;
  readonly require: ClaimMatch;
  readonly claimRules: readonly {
    readonly when: ClaimMatch;
    readonly kind?: PrincipalKind | undefined;
    readonly groups: readonly string[];
  }[];
  readonly clientId?: string | undefined;
  readonly clientSecret?: Secret | undefined;
  readonly scopes: readonly string[];
}

export interface AccessRule {
  readonly connections: readonly string[];
  readonly kinds: readonly ActionKind[];
  readonly maxMs: number;
  readonly principals?: readonly string[] | undefined;
  readonly groups?: readonly string[] | undefined;
  readonly principalKinds?: readonly PrincipalKind[] | undefined;
  readonly review: ReviewSpec;
}

interface NotifyFilter {
  readonly connections?: readonly string[] | undefined;
  readonly rules?: readonly string[] | undefined;
  /** Undefined: the channel's default events. */
  readonly events?: readonly NotifyEvent[] | undefined;
}

export interface WebhookNotify extends NotifyFilter {
  readonly type: 'webhook';
  readonly url: string;
  readonly secret: Secret;
}

export interface SlackNotify extends NotifyFilter {
  readonly type: 'slack';
  readonly token: Secret;
  readonly channel: string;
  readonly signingSecret?: Secret | undefined;
  readonly buttons: boolean;
  /** No trailing slash. */
  readonly apiUrl: string;
  /** Slack user id → principal name. */
  readonly users: ReadonlyMap<string, string>;
}

export interface EmailNotify extends NotifyFilter {
  readonly type: 'email';
  /** The SMTP URL, which usually carries a password. */
  readonly smtp: Secret;
  readonly from: string;
  readonly to: readonly string[];
}

export type NotifyChannel = WebhookNotify | SlackNotify | EmailNotify;

export interface Policy {
  readonly source: string;
  readonly baseDir: string;
  readonly listen: {
    readonly api: string | false;
    readonly postgres: string | false;
    readonly mysql?: string | false | undefined;
    readonly ssh?: string | false | undefined;
    readonly http?: string | false | undefined;
  };
  /** Base URL of the console, for "approve it at ..." messages. No trailing slash. */
  readonly publicUrl: string;
  readonly store: string;
  readonly tls?: { readonly cert: Secret; readonly key: Secret } | undefined;
  readonly tokens: readonly TokenIdentity[];
  /** Trusted OIDC issuers (absent or empty: none). */
  readonly oidc?: readonly OidcIssuer[] | undefined;
  /** Groups whose members manage every API token (absent: `admins`). */
  readonly tokenAdmins?: readonly string[] | undefined;
  readonly connections: ReadonlyMap<string, PolicyConnection>;
  readonly rules: readonly PolicyRule[];
  readonly defaultReview: ReviewSpec;
  /** Resource limits (absent: the defaults). */
  readonly limits?: LimitsConfig | undefined;
  /** Notification channels (absent or empty: none). */
  readonly notify?: readonly NotifyChannel[] | undefined;
  /** Just-in-time access rules (absent or empty: nobody may ask for time-boxed access). */
  readonly access?: readonly AccessRule[] | undefined;
  /** Who may override a review, and how long the justification must be (absent: nobody). */
  readonly breakGlass?: { readonly groups: readonly string[]; readonly minJustification: number } | undefined;
  /** Checkpoint signing, anchors, recordings; absent: the defaults. */
  readonly audit?: AuditSettings | undefined;
  /** Masking rules, in file order (absent or empty: nothing is masked). */
  readonly masking?: readonly MaskingRule[] | undefined;
}
