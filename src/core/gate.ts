/**
 * The Gate: the one place adapters ask "may this run?". It combines the policy decision, open
 * grants and the approval workflow, and makes sure the audit log knows about an action before
 * the adapter forwards it (allowed reads are batched; everything else is durable first).
 */
import { type Action, fingerprintOf, type Principal } from './action.ts';
import { accessFingerprint } from './approvals/access.ts';
import type { ApprovalRequest } from './approvals/request.ts';
import { type Approvals, formatDuration } from './approvals/service.ts';
import { actionRecord } from './audit/action-record.ts';
import type { AuditLog } from './audit/log.ts';
import { AirlockError, isAirlockError } from './errors.ts';
import type { DecideHooks, GateOutcome, GatePort, SessionInfo, Settlement } from './gate-types.ts';
import type { Limits } from './limits/limits.ts';
import { type Decision, evaluate } from './policy/evaluate.ts';
import type { Policy } from './policy/policy.ts';

export interface GateOptions {
  readonly policy: Policy;
  readonly approvals: Approvals;
  readonly audit: AuditLog;
  readonly now?: () => number;
  /** Caps requests waiting per principal, so one runaway caller cannot flood the reviewers. */
  readonly pendingLimit?: {
    readonly limits: Limits;
    /** Requests of this principal now pending (may stop counting at the limit). */
    pendingFor(principal: string): Promise<number>;
  };
}

/** Keys whose values are never written to the audit log, whatever a caller passes in. */
const SECRET_KEY = /token|password|passwd|secret|credential|authorization|cookie|private[_-]?key/i;

function principalData(p: Principal): Record<string, unknown> {
  return { name: p.name, kind: p.kind, groups: [...p.groups] };
}

/** Drops secret-looking keys (recursively) and anything that is not plain JSON. */
export function scrub(value: unknown, depth = 0): unknown {
  if (depth > 8) return '(nested too deep)';
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  if (typeof value === 'object') {
    if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `(${value.byteLength} bytes)`;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (SECRET_KEY.test(k) || v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
      out[k] = scrub(v, depth + 1);
    }
    return out;
  }
  return undefined;
}

/** What the audit log records about an action: who, where, what — never credentials. */
function actionData(action: Action, fingerprint: string, decision: Decision): Record<string, unknown> {
  return actionRecord(action, fingerprint, decision).data;
}

/** How long a beforeHold hook may delay creating the request. */
const REVIEWER_FACTS_MS = 3000;

async function reviewerFacts(hooks: DecideHooks | undefined): Promise<Readonly<Record<string, unknown>>> {
  if (!hooks?.beforeHold) return {};
  let timer: NodeJS.Timeout | undefined;
  try {
    const facts = await Promise.race([
      hooks.beforeHold(),
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), REVIEWER_FACTS_MS);
      }),
    ]);
    return facts ?? {};
  } catch {
    return {};
  } finally {
    clearTimeout(timer);
  }
}

export class Gate implements GatePort {
  private readonly policy: Policy;
  private readonly approvals: Approvals;
  private readonly audit: AuditLog;
  private readonly now: () => number;
  private readonly pendingLimit: GateOptions['pendingLimit'];

  constructor(opts: GateOptions) {
    this.policy = opts.policy;
    this.approvals = opts.approvals;
    this.audit = opts.audit;
    this.now = opts.now ?? Date.now;
    this.pendingLimit = opts.pendingLimit;
    this.approvals.onGrantEnded((requestId) => this.endSessionsRelyingOn(requestId));
  }

  /** Open sessions, and the grants (request ids) each has relied on. */
  private readonly sessions = new Map<string, { info: SessionInfo; grants: Set<number> }>();

  /** A revoked grant ends every live session that used it: what it let in must not keep going. */
  private endSessionsRelyingOn(requestId: number): void {
    for (const [sessionId, s] of this.sessions) {
      if (!s.grants.has(requestId) || !s.info.end) continue;
      this.sessions.delete(sessionId);
      this.later('session.ended', { sessionId, requestId, reason: 'the grant it relied on was revoked' });
      try {
        s.info.end(`request ${requestId}'s approval was revoked; this session relied on it and is closed`);
      } catch {
        // the adapter's socket is already gone
      }
    }
  }

  /** Open just-in-time access for this principal on this connection that covers the action's kind. */
  private accessGrant(action: Action, now: number) {
    const grant = this.approvals.findGrant(accessFingerprint(action.connection, action.principal.name), now);
    return grant?.kinds?.includes(action.kind) ? grant : undefined;
  }

  // ---- Break-glass ------------------------------------------------------------------------
  // A member of a break-glass group overrides a review with a written justification: the held
  // action passes at once, the override is a flagged audit event, and the decision reaches
  // the notification channels like any other (the notifier listens to the bus).

  breakGlass(requestId: number, by: Principal, justification: string): Promise<ApprovalRequest> {
    return breakGlass(this.policy, this.approvals, requestId, by, justification);
  }

  private reliedOn(sessionId: string, requestId: number): void {
    this.sessions.get(sessionId)?.grants.add(requestId);
  }

  async decide(action: Action, hooks?: DecideHooks): Promise<GateOutcome> {
    const decision = evaluate(this.policy, action);
    const fingerprint = fingerprintOf(action);

    if (decision.effect === 'allow') {
      const { data, json } = actionRecord(action, fingerprint, decision);
      // A read can go out before its record is committed, but only while the log is healthy:
      // once writes fail, reads are recorded durably too, and so refused until it recovers.
      if (action.kind === 'read' && this.audit.healthy) this.audit.appendLater('action.allowed', data, json);
      else await this.audit.append('action.allowed', data, json);
      return { verdict: 'allow', decision, via: 'rule' };
    }

    if (decision.effect === 'deny') {
      await this.audit.append('action.denied', {
        ...actionData(action, fingerprint, decision),
        reason: decision.reason,
      });
      return { verdict: 'deny', decision, reason: decision.reason };
    }

    const now = this.now();
    const exact = this.approvals.findGrant(fingerprint, now);
    // An exact grant for this command, else just-in-time access covering its kind.
    const grant = exact ?? this.accessGrant(action, now);
    if (grant) {
      await this.audit.append('action.allowed', {
        ...actionData(action, fingerprint, decision),
        via: exact ? 'grant' : 'access',
        requestId: grant.requestId,
        grantUntil: grant.until,
      });
      this.reliedOn(action.sessionId, grant.requestId);
      // The first use of a grant moves the request to executed, so reviewers see it ran.
      if (grant.status === 'approved') await this.approvals.markExecuted(grant.requestId).catch(() => {});
      return { verdict: 'allow', decision, via: 'grant', requestId: grant.requestId };
    }

    if (this.pendingLimit) {
      const { limits, pendingFor } = this.pendingLimit;
      try {
        limits.checkPending(action.principal, await pendingFor(action.principal.name), action.connection);
      } catch (err) {
        if (!isAirlockError(err) || err.code !== 'AIRLOCK_E_LIMIT_PENDING') throw err;
        const reason = err.describe();
        await this.audit.append('action.denied', {
          ...actionData(action, fingerprint, decision),
          reason,
          limit: 'max_pending_per_principal',
        });
        return {
          verdict: 'deny',
          decision: { effect: 'deny', rule: decision.rule, reason, why: decision.why },
          reason,
        };
      }
    }

    const request = await this.approvals.create({
      fingerprint,
      protocol: action.protocol,
      connection: action.connection,
      principal: action.principal,
      sessionId: action.sessionId,
      source: action.source,
      kind: action.kind,
      summary: action.summary,
      parts: action.parts,
      attributes: scrub({ ...action.attributes, ...(await reviewerFacts(hooks)) }) as Record<string, unknown>,
      rule: decision.rule,
      why: decision.why,
      review: decision.review,
      createdAt: now,
      expiresAt: now + decision.review.expires,
    });
    const url = this.requestUrl(request.id);
    return {
      verdict: 'hold',
      decision,
      request,
      mode: decision.review.hold,
      url,
      message: `approval required: request ${request.id} (rule "${decision.rule.name}") — approve it at ${url}`,
    };
  }

  async settled(requestId: number, signal?: AbortSignal): Promise<Settlement> {
    let request: ApprovalRequest;
    try {
      request = await this.approvals.waitFor(requestId, signal);
    } catch (err) {
      if (!signal?.aborted || isAirlockError(err)) throw err;
      try {
        request = await this.approvals.cancel(requestId, 'the caller disconnected');
      } catch (cancelErr) {
        // It was decided in the same instant; report what actually happened.
        if (!isAirlockError(cancelErr) || cancelErr.code !== 'AIRLOCK_E_REQUEST_NOT_PENDING') throw cancelErr;
        const current = await this.approvals.get(requestId);
        if (!current) throw cancelErr;
        request = current;
      }
    }
    return settlement(request);
  }

  async release(requestId: number): Promise<void> {
    const request = await this.approvals.get(requestId);
    if (!request) throw new AirlockError('AIRLOCK_E_REQUEST_NOT_FOUND', `there is no request ${requestId}`);
    // Executed already is fine only while its grant window is open: the same command could
    // pass through the grant anyway (another session used it first). Otherwise one approval
    // releases one held action.
    const covered =
      request.status === 'approved' ||
      (request.status === 'executed' && request.grantUntil !== undefined && request.grantUntil > this.now());
    if (!covered)
      throw new AirlockError(
        'AIRLOCK_E_REQUEST_NOT_PENDING',
        `request ${requestId} is ${request.status}, not approved`,
        {
          hint: 'only an approved request can be forwarded',
        },
      );
    await this.audit.append('action.forwarded', {
      requestId,
      principal: principalData(request.principal),
      connection: request.connection,
      protocol: request.protocol,
      sessionId: request.sessionId,
      kind: request.kind,
      summary: request.summary,
      fingerprint: request.fingerprint,
      rule: request.rule.name,
      approvers: request.approvals.map((v) => v.by),
    });
    this.reliedOn(request.sessionId, requestId);
    if (request.status === 'approved') await this.approvals.markExecuted(requestId);
  }

  async sessionOpened(session: SessionInfo): Promise<void> {
    await this.audit.append('session.opened', {
      sessionId: session.sessionId,
      protocol: session.protocol,
      connection: session.connection,
      principal: principalData(session.principal),
      ...(session.source === undefined ? {} : { source: session.source }),
      ...(session.attributes === undefined ? {} : { attributes: scrub(session.attributes) }),
    });
    this.sessions.set(session.sessionId, { info: session, grants: new Set() });
  }

  sessionClosed(sessionId: string, details?: Readonly<Record<string, unknown>>): void {
    this.sessions.delete(sessionId);
    this.later('session.closed', {
      sessionId,
      ...(details === undefined ? {} : { details: scrub(details) }),
    });
  }

  authFailed(details: Readonly<Record<string, unknown>>): void {
    this.later('auth.failed', scrub(details) as Record<string, unknown>);
  }

  protocolViolation(details: Readonly<Record<string, unknown>>): void {
    this.later('protocol.violation', scrub(details) as Record<string, unknown>);
  }

  private later(type: string, data: Record<string, unknown>): void {
    try {
      this.audit.appendLater(type, data);
    } catch {
      // The log is full or closed; `healthy` is already false, so the next action is refused.
    }
  }

  private requestUrl(id: number): string {
    return `${this.policy.publicUrl.replace(/\/+$/, '')}/requests/${id}`;
  }
}

export function settlement(request: ApprovalRequest): Settlement {
  switch (request.status) {
    case 'approved':
    case 'executed':
      return { status: 'approved', request };
    case 'denied':
      return {
        status: 'denied',
        request,
        reason: `denied by ${request.deniedBy ?? 'a reviewer'}: ${request.reason ?? 'no reason given'}`,
      };
    case 'expired':
      return {
        status: 'expired',
        request,
        reason: `request ${request.id} expired after ${formatDuration(request.expiresAt - request.createdAt)} without a decision`,
      };
    case 'cancelled':
      return {
        status: 'cancelled',
        request,
        reason: `request ${request.id} was cancelled: ${request.reason ?? 'no reason given'}`,
      };
    default:
      throw new AirlockError('AIRLOCK_E_INTERNAL', `request ${request.id} is still ${request.status}`);
  }
}

/** Break-glass, checked against the policy: who may, and how long the justification must be. */
export async function breakGlass(
  policy: Policy,
  approvals: Approvals,
  requestId: number,
  by: Principal,
  justification: string,
): Promise<ApprovalRequest> {
  const bg = policy.breakGlass;
  if (!bg || !by.groups.some((g) => bg.groups.includes(g)))
    throw new AirlockError('AIRLOCK_E_BREAK_GLASS', `${by.name} may not break glass`, {
      hint: bg
        ? `only members of ${bg.groups.join(', ')} may override a review`
        : 'the policy names no break_glass groups',
    });
  const text = typeof justification === 'string' ? justification.trim() : '';
  if (text.length < bg.minJustification)
    throw new AirlockError('AIRLOCK_E_BAD_REQUEST', 'breaking glass needs a written justification', {
      hint: `at least ${bg.minJustification} characters: what is happening and why it cannot wait`,
    });
  return approvals.override(requestId, by, text);
}
