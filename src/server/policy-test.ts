/**
 * `policy test`: what the policy decides for some SQL or, on an SSH connection, a shell command
 * line, without running it (CLI and API). Each is classified the way its listener does: SQL on a
 * MySQL connection by the MySQL classifier, other SQL by the PostgreSQL one.
 */
import type { Action, ActionPart, Principal } from '../core/action.ts';
import { kindOfParts } from '../core/action.ts';
import { AirlockError } from '../core/errors.ts';
import type { Authenticator } from '../core/identity/authenticator.ts';
import { evaluate } from '../core/policy/evaluate.ts';
import type { Policy } from '../core/policy/policy.ts';
import { classifySql as classifyMysql, type MysqlPart } from '../protocols/mysql/classify.ts';
import { LOCAL_INFILE_OFF, localInfileRefusal } from '../protocols/mysql/infile.ts';
import { useOutcome } from '../protocols/mysql/use.ts';
import { classifySql } from '../protocols/postgres/classify.ts';
import { classifyCommand } from '../protocols/ssh/command.ts';
import { isScpUpload, UPLOADS_NEED_A_RULE, uploadRefusal } from '../protocols/ssh/uploads.ts';

export interface PolicyTestResult {
  readonly connection: string;
  readonly principal: Principal;
  readonly effect: 'allow' | 'review' | 'deny';
  readonly rule: { name: string; index: number };
  readonly why: string;
  readonly reason?: string;
  readonly review?: { groups: string[]; approvals: number; hold: string };
  readonly kind: string;
  readonly error?: string;
  readonly parts: {
    text: string;
    kind: string;
    statement: string | null;
    effect: string;
    rule: string;
    why: string;
  }[];
}

/**
 * `policy test`: classify the input and evaluate it as `as` on `connection`, part by part: SQL
 * statement by statement, an SSH command line command by command (`sql` and `command` are the
 * same input under two names).
 */
export function policyTest(
  policy: Policy,
  tokens: Authenticator,
  input: { as: string; connection: string; sql?: string | undefined; command?: string | undefined },
): PolicyTestResult {
  const connection = policy.connections.get(input.connection);
  if (!connection)
    throw new AirlockError(
      'AIRLOCK_E_CONNECTION_UNKNOWN',
      `no connection named "${input.connection}" in the policy`,
      {
        hint: `known connections: ${[...policy.connections.keys()].join(', ') || '(none)'}`,
      },
    );
  const principal = tokens.principal(input.as);
  if (!principal)
    throw new AirlockError('AIRLOCK_E_BAD_REQUEST', `no identity named "${input.as}" in the policy`, {
      hint: `known identities: ${policy.tokens.map((t) => t.name).join(', ') || '(none)'}`,
      status: 404,
    });
  const text = input.command ?? input.sql;
  if (text === undefined || text === '')
    throw new AirlockError('AIRLOCK_E_BAD_REQUEST', 'nothing to test: give the SQL or the command line', {
      hint:
        connection.type === 'ssh' ? 'pass `command` (or `sql`) with the shell command line' : 'pass `sql`',
    });
  let classified: {
    parts: readonly (ActionPart & { localInfile?: boolean | undefined })[];
    normalized: string;
    error?: string | undefined;
  } =
    connection.type === 'ssh'
      ? // As the SSH listener judges an `exec` request (src/protocols/ssh/session.ts).
        { parts: classifyCommand(text), normalized: `exec:${text}` }
      : connection.type === 'mysql'
        ? // As the MySQL listener judges COM_QUERY (src/protocols/mysql/session.ts).
          classifyMysql(text, { database: connection.upstream.database })
        : classifySql(text);
  // USE of a connection name (src/protocols/mysql/use.ts): refused, or run as USE of its database.
  const use =
    connection.type === 'mysql'
      ? useOutcome(classified.parts as readonly MysqlPart[], connection, policy)
      : undefined;
  if (use && 'runs' in use) classified = classifyMysql(use.runs, { database: use.database });
  const action: Action = {
    protocol: connection.type === 'ssh' ? 'ssh' : connection.type === 'mysql' ? 'mysql' : 'postgres',
    connection: input.connection,
    principal,
    sessionId: 'policy-test',
    kind: kindOfParts(classified.parts),
    summary: text,
    normalized: classified.normalized,
    parts: classified.parts,
    attributes:
      connection.type === 'ssh'
        ? { host: connection.upstream.host }
        : connection.type === 'mysql'
          ? { database: connection.upstream.database }
          : {},
  };
  // Refused before the Gate is asked: a legacy scp upload no rule covers, LOAD DATA LOCAL INFILE
  // on a connection that does not take local files.
  const refused = (rule: string, why: string, reason: string): PolicyTestResult => ({
    connection: input.connection,
    principal,
    effect: 'deny',
    rule: { name: rule, index: -1 },
    why,
    reason,
    kind: action.kind,
    parts: classified.parts.map((part) => ({
      text: part.text,
      kind: part.kind,
      statement: part.statement ?? null,
      effect: 'deny',
      rule,
      why: part.why ?? '',
    })),
  });
  const refusal =
    connection.type === 'ssh' && isScpUpload(classified.parts) ? uploadRefusal(policy, action) : undefined;
  if (refusal !== undefined)
    return refused(
      UPLOADS_NEED_A_RULE,
      'file uploads and changes need a rule that allows or reviews them; the connection default does not apply',
      refusal,
    );
  if (use && 'refuse' in use)
    return refused(use.refuse.rule, use.refuse.why, `denied by Airlock: ${use.refuse.reason}`);
  const infile = connection.type === 'mysql' ? localInfileRefusal(connection, classified.parts) : undefined;
  if (infile !== undefined)
    return refused(
      LOCAL_INFILE_OFF,
      'LOAD DATA LOCAL INFILE needs local_infile: true on the connection; no rule applies without it',
      `denied by Airlock: ${infile}`,
    );
  const decision = evaluate(policy, action);
  const parts = classified.parts.map((part) => {
    const d = evaluate(policy, { ...action, kind: part.kind, parts: [part] });
    return {
      text: part.text,
      kind: part.kind,
      statement: part.statement ?? null,
      effect: d.effect,
      rule: d.rule.name,
      why: d.why,
    };
  });
  return {
    connection: input.connection,
    principal,
    effect: decision.effect,
    rule: decision.rule,
    why: decision.why,
    kind: action.kind,
    ...(decision.effect === 'deny' ? { reason: decision.reason } : {}),
    ...(decision.effect === 'review'
      ? {
          review: {
            groups: [...decision.review.groups],
            approvals: decision.review.approvals,
            hold: decision.review.hold,
          },
        }
      : {}),
    ...(classified.error ? { error: classified.error } : {}),
    parts,
  };
}
