/**
 * Action: the protocol-neutral description of what a caller is about to do. Every adapter turns
 * wire traffic into Actions and asks the Gate about them; nothing in core knows a wire format.
 */
import { hash } from 'node:crypto';

export const ACTION_KINDS = [
  'read',
  'write',
  'schema',
  'privilege',
  'admin',
  'exec',
  'session',
  'transfer',
  'unknown',
] as const;
export type ActionKind = (typeof ACTION_KINDS)[number];

/**
 * How risky a kind is, for "most restrictive wins" across the parts of one message and for
 * ordering the reviewer's inbox. `unknown` ranks with `admin`: what we cannot classify is
 * treated as if it could do anything.
 */
export const KIND_RISK: Record<ActionKind, number> = {
  read: 0,
  transfer: 1,
  session: 2,
  exec: 3,
  write: 3,
  schema: 4,
  privilege: 5,
  admin: 6,
  unknown: 6,
};

export function riskier(a: ActionKind, b: ActionKind): ActionKind {
  return KIND_RISK[b] > KIND_RISK[a] ? b : a;
}

export const PRINCIPAL_KINDS = ['human', 'service', 'agent'] as const;
export type PrincipalKind = (typeof PRINCIPAL_KINDS)[number];

export interface Principal {
  /** Stable identifier: the token's name, or an OIDC subject. */
  readonly name: string;
  readonly kind: PrincipalKind;
  readonly groups: readonly string[];
}

/**
 * One classified part of an action (one SQL statement of a multi-statement message, say).
 * Policy rules are matched against each part; the most restrictive outcome governs the action.
 */
export interface ActionPart {
  readonly kind: ActionKind;
  /** The exact text of this part, as the caller sent it. */
  readonly text: string;
  /** Protocol statement type, e.g. `DeleteStmt`, `SelectStmt`. */
  readonly statement?: string;
  /** Relations touched, qualified as the caller wrote them (`public.orders` or `orders`). */
  readonly tables?: readonly string[];
  /** Functions called. */
  readonly functions?: readonly string[];
  /** Why the classifier chose this kind, for reviewers and `policy test`. */
  readonly why?: string;
  /**
   * Protocol facts rules match on, by field: `command` (shell), `method` and `path` (HTTP),
   * `verb`, `resource`, `namespace` (Kubernetes), `ref` and `file` (Git), `tool` and
   * `argument.NAME` (MCP). A rule that names a field the part does not have does not match.
   */
  readonly fields?: Readonly<Record<string, readonly string[]>>;
}

/** A part as the SQL classifiers give it: statement type, relations, functions and why, always. */
export interface SqlStatementPart extends ActionPart {
  readonly statement: string;
  readonly tables: readonly string[];
  readonly functions: readonly string[];
  readonly why: string;
}

export interface Action {
  readonly protocol: string;
  readonly connection: string;
  readonly principal: Principal;
  /** Gateway session the action belongs to (one caller connection). */
  readonly sessionId: string;
  /** Caller's network address, for the reviewer. */
  readonly source?: string;
  /** Most restrictive kind over all parts. */
  readonly kind: ActionKind;
  /** The exact command, as it will be shown to reviewers and forwarded. */
  readonly summary: string;
  /**
   * The command normalized for identity: two texts that normalize equally do exactly the same
   * thing (comments and whitespace removed, constants kept). Bound parameters are included.
   */
  readonly normalized: string;
  readonly parts: readonly ActionPart[];
  /** Protocol attributes for display and audit (parameters, target database, ...). */
  readonly attributes: Readonly<Record<string, unknown>>;
}

/**
 * The fingerprint an approval is bound to: connection + principal + normalized command. The
 * session is deliberately not part of it, so a `retry` grant lets the same caller run the same
 * command again from a new connection.
 */
export function fingerprintOf(action: Pick<Action, 'connection' | 'principal' | 'normalized'>): string {
  // One-shot hash of the joined text: the same bytes as three updates (the NUL separators keep
  // surrogate halves from pairing across the joins), at a fraction of a Hash object's cost.
  return hash('sha256', `${action.connection}\0${action.principal.name}\0${action.normalized}`, 'hex');
}

export function kindOfParts(parts: readonly ActionPart[]): ActionKind {
  if (parts.length === 0) return 'unknown';
  let kind: ActionKind = parts[0]!.kind;
  for (const part of parts) kind = riskier(kind, part.kind);
  return kind;
}

/** What every action of one signed-in session repeats. */
export interface ActionOrigin {
  readonly protocol: string;
  readonly connection: string;
  readonly principal: Principal;
  readonly sessionId: string;
  readonly source?: string | undefined;
}

/** An action of the session `origin`, of the riskiest kind among its parts. */
export function actionOf(
  origin: ActionOrigin,
  summary: string,
  normalized: string,
  parts: readonly ActionPart[],
  attributes: Readonly<Record<string, unknown>>,
): Action {
  return {
    protocol: origin.protocol,
    connection: origin.connection,
    principal: origin.principal,
    sessionId: origin.sessionId,
    source: origin.source,
    kind: kindOfParts(parts),
    summary,
    normalized,
    parts,
    attributes,
  };
}
