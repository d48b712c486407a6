/**
 * The policy file schema. Objects are strict so a misspelt key is an error with a line and
 * column, not a silently ignored rule.
 */
import { z } from 'zod';
import { ACTION_KINDS, PRINCIPAL_KINDS } from '../action.ts';
import { auditSchema } from '../audit/settings.ts';
import { limitsSchema } from '../limits/schema.ts';
import { maskingRuleSchema } from '../masking/schema.ts';
import { connectionSchema } from './connections/index.ts';
import { duration, EFFECTS, name, reviewSchema } from './review.ts';

export type { ConnectionConfig } from './connections/index.ts';
export { connectionSchema } from './connections/index.ts';
export {
  duration,
  EFFECTS,
  type Effect,
  HOLD_MODES,
  type HoldMode,
  parseDuration,
  type ReviewSpec,
  reviewSchema,
} from './review.ts';

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'host:port, e.g. 127.0.0.1:15432')
  .or(z.literal(false));

const tokenIdentity = z.strictObject({
  name,
  token: z.string().min(1),
  kind: z.enum(PRINCIPAL_KINDS),
  groups: z.array(name).default([]),
});

/** JWS algorithms an issuer may sign with; symmetric and `none` are never accepted. */
export const OIDC_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;

/** Claim name → glob(s) the claim must match (any element, for array claims). */
const claimMatch = z.record(z.string().min(1), z.union([z.string(), z.array(z.string()).min(1)]));

const oidcIssuer = z.strictObject({
  issuer: z.url({ protocol: /^https?$/, error: 'the issuer URL, e.g. https://idp.example.com' }),
  /** Accepted `aud` values (any one must be present). The client_id is accepted too. */
  audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  /** Skip discovery and fetch keys from here. */
  jwks_uri: z.url({ protocol: /^https?$/ }).optional(),
  algorithms: z.array(z.enum(OIDC_ALGORITHMS)).min(1).default(['RS256', 'PS256', 'ES256', 'EdDSA']),
  clock_skew: duration
    .default(60_000)
    .refine((ms) => ms <= 5 * 60_000, 'at most 5m: a larger skew keeps expired tokens alive'),
  /** Claim naming the principal. */
  name_claim: z.string().min(1).default('sub'),
  /** Prepended to the principal name, to keep names from different issuers apart. */
  name_prefix: z.string().default(''),
  kind: z.enum(PRINCIPAL_KINDS).default('human'),
  /** Claim holding group names (array or space-separated string). */
  groups_claim: z.string().min(1).optional(),
  /** Every token must match all of these, e.g. { repository_owner: acme }. */
  require: claimMatch.optional(),
  /** Kind and groups from other claims: every matching rule adds its groups; the first kind wins. */
  claim_rules: z
    .array(
      z.strictObject({
        when: claimMatch,
        kind: z.enum(PRINCIPAL_KINDS).optional(),
        groups: z.array(name).default([]),
      }),
    )
    .default([]),
  /** For console sign-in and `airlock login`: the client registered at the issuer. */
  client_id: z.string().min(1).optional(),
  client_secret: z.string().min(1).optional(),
  scopes: z.array(z.string().min(1)).default(['openid', 'profile', 'email']),
});

export const ruleSchema = z.strictObject({
  name: z.string().min(1),
  connections: z.array(z.string()).optional(),
  principals: z.array(z.string()).optional(),
  groups: z.array(name).optional(),
  principal_kinds: z.array(z.enum(PRINCIPAL_KINDS)).optional(),
  kinds: z.array(z.enum(ACTION_KINDS)).optional(),
  /** Statement types as the parser names them: DeleteStmt, DropStmt, ... */
  statements: z.array(z.string()).optional(),
  /** Table patterns: `orders`, `public.*`, `*.secrets`. */
  tables: z.array(z.string()).optional(),
  /** Shell command lines (SSH exec, kubectl exec): `systemctl restart *`, `rm -rf *`. */
  commands: z.array(z.string().min(1)).optional(),
  /** HTTP methods: GET, POST, DELETE, ... */
  methods: z.array(z.string().min(1)).optional(),
  /** HTTP request paths: `/v1/orders/*`. */
  paths: z.array(z.string().min(1)).optional(),
  /** Kubernetes verbs: get, list, watch, create, update, patch, delete, exec, ... */
  verbs: z.array(z.string().min(1)).optional(),
  /** Kubernetes resources, with subresources as `pods/exec`. */
  resources: z.array(z.string().min(1)).optional(),
  namespaces: z.array(z.string().min(1)).optional(),
  /** Destination ports (kubectl port-forward): `5432`, `80*`. */
  ports: z.array(z.union([z.string().min(1), z.number().int()]).transform(String)).optional(),
  /** Git refs: `refs/heads/main`, `refs/tags/*`. */
  refs: z.array(z.string().min(1)).optional(),
  /** Files changed by a push, or paths of a transfer: `migrations/**`, `*.tf`. */
  files: z.array(z.string().min(1)).optional(),
  /** MCP tool names. */
  tools: z.array(z.string().min(1)).optional(),
  /** MCP tool arguments by name (dotted for nested fields) → pattern(s) the value must match. */
  arguments: z.record(z.string().min(1), z.union([z.string(), z.array(z.string()).min(1)])).optional(),
  effect: z.enum(EFFECTS),
  review: reviewSchema.optional(),
  reason: z.string().optional(),
});
export type RuleConfig = z.output<typeof ruleSchema>;

/** Request changes a notification channel can hear about. `decided`: approved, denied, expired or cancelled. */
export const NOTIFY_EVENTS = ['created', 'approval', 'decided', 'executed'] as const;
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];

/** A `${env:NAME}` / `${file:path}` reference, or (tests, demo) a literal. */
const secretText = z.string().min(1);
const SECRET_REFERENCE = /^\$\{(env|file):[^}]+\}$/;

const notifyFilters = {
  /** Only requests on these connections (`*` wildcards); all when omitted. */
  connections: z.array(z.string().min(1)).min(1).optional(),
  /** Only requests held by these rules (by name); all when omitted. */
  rules: z.array(z.string().min(1)).min(1).optional(),
  events: z.array(z.enum(NOTIFY_EVENTS)).min(1).optional(),
};

export const notifySchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('webhook'),
    url: z.url({ protocol: /^https?$/, error: 'an http:// or https:// URL' }),
    /** HMAC-SHA256 key the receiver verifies X-Airlock-Signature with. */
    secret: secretText,
    ...notifyFilters,
  }),
  z.strictObject({
    type: z.literal('slack'),
    /** Bot token (xoxb-...) with chat:write. */
    token: secretText,
    channel: z.string().min(1),
    /** Verifies interactivity callbacks; required for buttons. */
    signing_secret: secretText.optional(),
    /** Approve/Deny buttons on the message. */
    buttons: z.boolean().default(false),
    api_url: z
      .url({ protocol: /^https?$/, error: 'an http:// or https:// URL' })
      .default('https://slack.com/api'),
    /** Slack user id → Airlock principal name; only mapped users' clicks count. */
    users: z
      .record(z.string().regex(/^[A-Z0-9]{2,32}$/, 'a Slack user id such as U0123ABCD'), name)
      .default({}),
    ...notifyFilters,
  }),
  z.strictObject({
    type: z.literal('email'),
    /** smtp://user:pass@host:587 or smtps://...; best given by reference. */
    smtp: secretText.refine(
      (s) => SECRET_REFERENCE.test(s.trim()) || /^smtps?:\/\/[^\s]+$/.test(s),
      'an smtp:// or smtps:// URL, or a ${env:NAME} / ${file:path} reference to one',
    ),
    from: z.string().min(3),
    to: z.array(z.string().min(3)).min(1),
    ...notifyFilters,
  }),
]);
export type NotifyConfig = z.output<typeof notifySchema>;

export const policySchema = z
  .strictObject({
    listen: z
      .strictObject({
        api: hostPort.default('127.0.0.1:7070'),
        postgres: hostPort.default('127.0.0.1:15432'),
        mysql: hostPort.optional(),
        ssh: hostPort.optional(),
        http: hostPort.optional(),
      })
      .default({ api: '127.0.0.1:7070', postgres: '127.0.0.1:15432' }),
    public_url: z.url().optional(),
    store: z.string().default('sqlite:./airlock-data/airlock.db'),
    /** Certificate the gateway presents to callers that ask for TLS. */
    tls: z.strictObject({ cert: z.string(), key: z.string() }).optional(),
    identities: z
      .strictObject({
        tokens: z.array(tokenIdentity).default([]),
        oidc: z.array(oidcIssuer).default([]),
        /** Groups whose members manage every API token (others manage only their own). */
        token_admins: z.array(name).default(['admins']),
      })
      .default({ tokens: [], oidc: [], token_admins: ['admins'] }),
    /** Reviewers for `review` decisions that name none (connection defaults). */
    defaults: z.strictObject({ review: reviewSchema.optional() }).default({}),
    connections: z.record(name, connectionSchema).default({}),
    rules: z.array(ruleSchema).default([]),
    masking: z.array(maskingRuleSchema).default([]),
    notify: z.array(notifySchema).default([]),
    /** Just-in-time access: which time-boxed grants principals may ask for, and who approves. */
    access: z
      .array(
        z.strictObject({
          connections: z.array(z.string().min(1)).min(1),
          /** The action kinds a grant may cover, e.g. [read, write] (never schema). */
          kinds: z.array(z.enum(ACTION_KINDS)).min(1),
          /** The longest grant that may be asked for. */
          max: duration.default(4 * 3_600_000),
          principals: z.array(z.string()).optional(),
          groups: z.array(name).optional(),
          principal_kinds: z.array(z.enum(PRINCIPAL_KINDS)).optional(),
          review: reviewSchema,
        }),
      )
      .default([]),
    /** Members of these groups may override a review with a written justification. */
    break_glass: z
      .strictObject({
        groups: z.array(name).min(1),
        /** Shortest justification accepted, in characters. */
        min_justification: z.number().int().min(1).max(1000).default(10),
      })
      .optional(),
    /** Signed checkpoints, anchors, recordings (core/audit/settings.ts). */
    audit: auditSchema.optional(),
    /** Resource limits; every value has a default. */
    limits: limitsSchema.optional(),
  })
  .superRefine((p, ctx) => {
    p.rules.forEach((rule, i) => {
      if (rule.effect === 'deny' && !rule.reason)
        ctx.addIssue({
          code: 'custom',
          path: ['rules', i, 'reason'],
          message: 'a deny rule needs a reason: it is sent to the caller',
        });
      if (rule.effect !== 'review' && rule.review)
        ctx.addIssue({
          code: 'custom',
          path: ['rules', i, 'review'],
          message: 'review settings only apply to effect: review',
        });
      for (const c of rule.connections ?? [])
        if (!c.includes('*') && !(c in p.connections))
          ctx.addIssue({
            code: 'custom',
            path: ['rules', i, 'connections'],
            message: `unknown connection "${c}"`,
          });
    });
    p.notify.forEach((n, i) => {
      if (n.type === 'slack' && n.buttons && !n.signing_secret)
        ctx.addIssue({
          code: 'custom',
          path: ['notify', i, 'signing_secret'],
          message: 'buttons need the signing_secret, so that clicks can be verified as coming from Slack',
        });
      for (const c of n.connections ?? [])
        if (!c.includes('*') && !(c in p.connections))
          ctx.addIssue({
            code: 'custom',
            path: ['notify', i, 'connections'],
            message: `unknown connection "${c}"`,
          });
    });
    const seen = new Set<string>();
    p.identities.tokens.forEach((t, i) => {
      if (seen.has(t.name))
        ctx.addIssue({
          code: 'custom',
          path: ['identities', 'tokens', i, 'name'],
          message: `duplicate identity "${t.name}"`,
        });
      seen.add(t.name);
    });
    const issuers = new Set<string>();
    p.identities.oidc.forEach((o, i) => {
      const key = o.issuer.replace(/\/+$/, '');
      if (issuers.has(key))
        ctx.addIssue({
          code: 'custom',
          path: ['identities', 'oidc', i, 'issuer'],
          message: `issuer ${o.issuer} is listed twice`,
        });
      issuers.add(key);
    });
  });

export type PolicyInput = z.input<typeof policySchema>;
export type PolicyOutput = z.output<typeof policySchema>;
