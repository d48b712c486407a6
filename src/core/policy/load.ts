/**
 * Loading the policy file: YAML → schema validation → a resolved Policy. Every error names the
 * file, line and column and what was expected there.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { type Document, isNode, LineCounter, parseDocument } from 'yaml';
import type { ZodError } from 'zod';
import { resolveAudit } from '../audit/settings.ts';
import { AirlockError } from '../errors.ts';
import { hashToken } from '../identity/tokens.ts';
import { limitsConfig } from '../limits/schema.ts';
import { resolveMaskingRule } from '../masking/schema.ts';
import { ConnectionFieldError, resolveContext } from './connections/common.ts';
import { resolveConnection } from './connections/index.ts';
import type {
  ClaimMatch,
  NotifyChannel,
  OidcIssuer,
  Policy,
  PolicyConnection,
  PolicyRule,
} from './policy.ts';
import { policySchema, reviewSchema } from './schema.ts';
import { Secret } from './secret.ts';

export interface PolicyProblem {
  file: string;
  line: number;
  column: number;
  path: string;
  message: string;
}

export class PolicyError extends AirlockError {
  readonly problems: PolicyProblem[];
  constructor(problems: PolicyProblem[]) {
    super(
      'AIRLOCK_E_CONFIG_INVALID',
      problems
        .map((p) => `${p.file}:${p.line}:${p.column}: ${p.path ? `${p.path}: ` : ''}${p.message}`)
        .join('\n'),
      { hint: 'fix the file and start again (see the policy reference in the README)' },
    );
    this.problems = problems;
  }
}

export function loadPolicyFile(file: string): Policy {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new AirlockError('AIRLOCK_E_CONFIG_NOT_FOUND', `cannot read policy file ${path}`, {
      hint: 'pass an existing file with --config',
      cause,
    });
  }
  return parsePolicy(text, path);
}

export function parsePolicy(text: string, file = '<policy>', baseDir = dirname(resolve(file))): Policy {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new PolicyError(
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return { file, line: pos.line, column: pos.col, path: '', message: e.message.split('\n')[0]! };
      }),
    );
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    // Unresolvable aliases and alias bombs surface only when the document is converted.
    throw new PolicyError([
      { file, line: 1, column: 1, path: '', message: (err as Error).message.split('\n')[0]! },
    ]);
  }
  const parsed = policySchema.safeParse(raw);
  if (!parsed.success) throw new PolicyError(problemsOf(parsed.error, doc, lineCounter, file));
  const p = parsed.data;

  const connections = new Map<string, PolicyConnection>();
  for (const [name, c] of Object.entries(p.connections)) {
    try {
      connections.set(name, resolveConnection(c, resolveContext(name, baseDir)));
    } catch (err) {
      if (!(err instanceof ConnectionFieldError)) throw err;
      const path = ['connections', name, ...err.field];
      throw new PolicyError([
        { file, ...locate(doc, lineCounter, path), path: path.join('.'), message: err.message },
      ]);
    }
  }

  // One host name reaches one connection.
  const hostOwner = new Map<string, string>();
  for (const c of connections.values())
    if (c.type === 'http')
      for (const h of c.hosts) {
        const other = hostOwner.get(h);
        if (other !== undefined) {
          const path = ['connections', c.name, 'hosts'];
          throw new PolicyError([
            {
              file,
              ...locate(doc, lineCounter, path),
              path: path.join('.'),
              message: `host "${h}" is already routed to connection "${other}"`,
            },
          ]);
        }
        hostOwner.set(h, c.name);
      }

  const rules: PolicyRule[] = p.rules.map((r, index) => ({ ...r, index }));
  const tokens = p.identities.tokens.map((t) => {
    const secret = Secret.parse(t.token, baseDir);
    let value: string;
    try {
      value = secret.reveal();
    } catch (err) {
      const at = locate(doc, lineCounter, ['identities', 'tokens', p.identities.tokens.indexOf(t), 'token']);
      throw new PolicyError([
        { file, ...at, path: `identities.tokens.${t.name}.token`, message: (err as AirlockError).describe() },
      ]);
    }
    return { name: t.name, kind: t.kind, groups: t.groups, hash: hashToken(value) };
  });

  const oidc: OidcIssuer[] = p.identities.oidc.map((o) => ({
    issuer: o.issuer,
    audiences: typeof o.audience === 'string' ? [o.audience] : o.audience,
    jwksUri: o.jwks_uri,
    algorithms: o.algorithms,
    clockSkewMs: o.clock_skew,
    nameClaim: o.name_claim,
    namePrefix: o.name_prefix,
    kind: o.kind,
    groupsClaim: o.groups_claim,
    require: claimMatch(o.require ?? {}),
    claimRules: o.claim_rules.map((r) => ({ when: claimMatch(r.when), kind: r.kind, groups: r.groups })),
    clientId: o.client_id,
    clientSecret: o.client_secret === undefined ? undefined : Secret.parse(o.client_secret, baseDir),
    scopes: o.scopes,
  }));

  // Notification secrets are resolved at use, so rotating a file needs no restart; a missing
  // one is reported now, with its position, rather than at the first held request.
  const notify: NotifyChannel[] = p.notify.map((n, i) => {
    const secret = (key: string, text: string): Secret => {
      const s = Secret.parse(text, baseDir);
      try {
        s.reveal();
      } catch (err) {
        const at = locate(doc, lineCounter, ['notify', i, key]);
        throw new PolicyError([
          { file, ...at, path: `notify.${i}.${key}`, message: (err as AirlockError).describe() },
        ]);
      }
      return s;
    };
    const filters = { connections: n.connections, rules: n.rules, events: n.events };
    if (n.type === 'webhook')
      return { type: 'webhook', url: n.url, secret: secret('secret', n.secret), ...filters };
    if (n.type === 'slack')
      return {
        type: 'slack',
        token: secret('token', n.token),
        channel: n.channel,
        signingSecret:
          n.signing_secret === undefined ? undefined : secret('signing_secret', n.signing_secret),
        buttons: n.buttons,
        apiUrl: n.api_url.replace(/\/+$/, ''),
        users: new Map(Object.entries(n.users)),
        ...filters,
      };
    return { type: 'email', smtp: secret('smtp', n.smtp), from: n.from, to: n.to, ...filters };
  });

  const masking = p.masking.map((m, i) => {
    const rule = resolveMaskingRule(m, i, baseDir);
    try {
      rule.salt?.reveal();
    } catch (err) {
      const at = locate(doc, lineCounter, ['masking', i, 'salt']);
      throw new PolicyError([
        { file, ...at, path: `masking.${i}.salt`, message: (err as AirlockError).describe() },
      ]);
    }
    for (const c of m.connections ?? [])
      if (!c.includes('*') && !connections.has(c))
        throw new PolicyError([
          {
            file,
            ...locate(doc, lineCounter, ['masking', i, 'connections']),
            path: `masking.${i}.connections`,
            message: `unknown connection "${c}"`,
          },
        ]);
    return rule;
  });

  return {
    source: file,
    listen: p.listen,
    publicUrl: (p.public_url ?? `http://${p.listen.api || '127.0.0.1:7070'}`).replace(/\/$/, ''),
    store: p.store,
    baseDir,
    tls: p.tls
      ? { cert: Secret.parse(p.tls.cert, baseDir), key: Secret.parse(p.tls.key, baseDir) }
      : undefined,
    tokens,
    oidc,
    tokenAdmins: p.identities.token_admins,
    connections,
    rules,
    defaultReview: p.defaults.review ?? reviewSchema.parse({ groups: ['admins'] }),
    notify,
    access: p.access.map((a) => ({
      connections: a.connections,
      kinds: a.kinds,
      maxMs: a.max,
      principals: a.principals,
      groups: a.groups,
      principalKinds: a.principal_kinds,
      review: a.review,
    })),
    breakGlass: p.break_glass
      ? { groups: p.break_glass.groups, minJustification: p.break_glass.min_justification }
      : undefined,
    audit: resolveAudit(p.audit, baseDir),
    masking,
    limits: limitsConfig(p.limits),
  };
}

function claimMatch(m: Readonly<Record<string, string | readonly string[]>>): ClaimMatch {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, typeof v === 'string' ? [v] : v]));
}

function problemsOf(error: ZodError, doc: Document, lc: LineCounter, file: string): PolicyProblem[] {
  return error.issues.map((issue) => {
    const path = issue.path.map((k) => (typeof k === 'symbol' ? String(k) : k));
    // Unknown keys are reported on their parent; point at the key itself.
    const keys = issue.code === 'unrecognized_keys' ? issue.keys : [];
    const at = locate(doc, lc, keys.length > 0 ? [...path, keys[0]!] : path, keys.length > 0);
    const message =
      issue.code === 'unrecognized_keys'
        ? `unknown key${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${k}"`).join(', ')}`
        : issue.message;
    return { file, ...at, path: path.join('.'), message };
  });
}

/** Line and column of the deepest node on `path` that exists in the document. */
function locate(
  doc: Document,
  lc: LineCounter,
  path: readonly (string | number)[],
  atKey = false,
): { line: number; column: number } {
  for (let n = path.length; n >= 0; n--) {
    const sub = path.slice(0, n);
    if (atKey && n === path.length && n > 0) {
      const parent = sub.length > 1 ? doc.getIn(sub.slice(0, -1), true) : doc.contents;
      const pair =
        isNode(parent) && 'items' in parent
          ? (parent.items as { key?: { value?: unknown; range?: [number, number, number] } }[]).find(
              (it) => it.key?.value === sub[sub.length - 1],
            )
          : undefined;
      if (pair?.key?.range) {
        const pos = lc.linePos(pair.key.range[0]);
        return { line: pos.line, column: pos.col };
      }
      continue;
    }
    const node = n === 0 ? doc.contents : doc.getIn(sub, true);
    if (isNode(node) && node.range) {
      const pos = lc.linePos(node.range[0]);
      return { line: pos.line, column: pos.col };
    }
  }
  return { line: 1, column: 1 };
}
