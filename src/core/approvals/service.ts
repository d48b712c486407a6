/**
 * The approval request state machine: pending → approved | denied | expired | cancelled, and
 * approved → executed. Every transition is a compare-and-set in the store (so replicas and
 * racing reviewers cannot both win), a durable audit event, and a bus event.
 *
 * Ordering: the store changes first and the audit event follows. If the audit write then
 * fails the call rejects, but nothing can run on the strength of the unaudited change: the
 * held action is only forwarded after `release` durably records `action.forwarded`, and a
 * grant is only used after the Gate durably records `action.allowed`, both naming the request.
 *
 * Grants (an approved request whose window is open) are kept in memory, loaded at start and
 * kept current from bus events, so the Gate's hot path never queries the store.
 */
import type { ActionKind, Principal } from '../action.ts';
import type { AuditLog } from '../audit/log.ts';
import { AirlockError, type ErrorCode } from '../errors.ts';
import type { Store } from '../store.ts';
import { ACCESS_PROTOCOL, accessKinds } from './access.ts';
import type { EventBus, RequestEvent } from './bus.ts';
import { pendingRequests } from './pending.ts';
import { quorumMet } from './quorum.ts';
import type { ApprovalRequest, NewRequest, RequestFilter, RequestStatus } from './request.ts';

export interface ApprovalsOptions {
  readonly store: Store;
  readonly audit: AuditLog;
  readonly bus: EventBus;
  readonly now?: () => number;
}

export interface Grant {
  readonly requestId: number;
  readonly fingerprint: string;
  readonly until: number;
  /** approved until first use, executed after. */
  readonly status: 'approved' | 'executed';
  /** For just-in-time access grants: the action kinds the grant covers. */
  readonly kinds?: readonly ActionKind[] | undefined;
}

export type ReviewCheck =
  | { readonly ok: true }
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string };

/** setTimeout's delay is a signed 32-bit number of milliseconds. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** 900000 → "15m", 5400000 → "1h30m", 1500 → "1500ms". */
export function formatDuration(ms: number): string {
  if (ms <= 0) return '0s';
  if (ms % 1000 !== 0) return `${ms}ms`;
  let s = ms / 1000;
  const parts: string[] = [];
  for (const [unit, size] of [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  return parts.join('');
}

function principalData(p: Principal): Record<string, unknown> {
  return { name: p.name, kind: p.kind, groups: [...p.groups] };
}

export class Approvals {
  private readonly store: Store;
  private readonly audit: AuditLog;
  private readonly bus: EventBus;
  private readonly now: () => number;
  /** fingerprint → the grant that stays open longest. */
  private readonly grants = new Map<string, Grant>();
  /** pending request id → expiresAt. */
  private readonly expiries = new Map<number, number>();
  private readonly waiters = new Map<number, Set<(request: ApprovalRequest) => void>>();
  private readonly grantEndListeners = new Set<(requestId: number) => void>();
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private sweeping: Promise<number> | undefined;

  constructor(opts: ApprovalsOptions) {
    this.store = opts.store;
    this.audit = opts.audit;
    this.bus = opts.bus;
    this.now = opts.now ?? Date.now;
  }

  /** Loads open grants and pending requests, listens to the bus, and starts the expiry timer. */
  async start(): Promise<void> {
    if (this.unsubscribe) return;
    this.unsubscribe = this.bus.subscribe((event) => this.onEvent(event));
    for (const request of await this.store.activeGrants(this.now())) this.apply(request);
    for await (const request of pendingRequests(this.store)) this.apply(request);
    await this.sweep().catch(() => {});
  }

  /** Same as close(). */
  stop(): Promise<void> {
    return this.close();
  }

  async close(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    await this.sweeping?.catch(() => {});
  }

  async create(request: NewRequest): Promise<ApprovalRequest> {
    const created = await this.store.createRequest(request);
    try {
      await this.audit.append('request.created', {
        requestId: created.id,
        principal: principalData(created.principal),
        connection: created.connection,
        protocol: created.protocol,
        sessionId: created.sessionId,
        kind: created.kind,
        summary: created.summary,
        fingerprint: created.fingerprint,
        rule: created.rule.name,
        reviewers: [...created.review.groups],
        approvals: created.review.approvals,
        hold: created.review.hold,
        expiresAt: created.expiresAt,
      });
    } catch (err) {
      // An unaudited request must not be approvable: withdraw it (best effort) and fail closed.
      await this.store
        .updateRequest(created.id, ['pending'], {
          status: 'cancelled',
          decidedAt: this.now(),
          reason: 'the audit log could not be written',
        })
        .catch(() => {});
      throw err;
    }
    this.changed(created);
    return created;
  }

  /** The request, expiring it first if its time is up. */
  async get(id: number): Promise<ApprovalRequest | undefined> {
    const request = await this.store.getRequest(id);
    if (request && request.status === 'pending' && request.expiresAt <= this.now())
      return this.expire(request);
    return request;
  }

  async list(filter: RequestFilter = {}): Promise<ApprovalRequest[]> {
    const requests = await this.store.listRequests(filter);
    const now = this.now();
    const out: ApprovalRequest[] = [];
    for (const r of requests) {
      const current = r.status === 'pending' && r.expiresAt <= now ? await this.expire(r) : r;
      // A status filter that asked for pending must not show what just expired.
      if (!filter.status || filter.status.length === 0 || filter.status.includes(current.status))
        out.push(current);
    }
    return out;
  }

  canReview(principal: Principal, request: ApprovalRequest): ReviewCheck {
    if (principal.name === request.principal.name)
      return {
        ok: false,
        code: 'AIRLOCK_E_SELF_APPROVAL',
        message: `${principal.name} made request ${request.id} and cannot decide it; another reviewer from ${groupsText(request)} must`,
      };
    if (!request.review.groups.some((g) => principal.groups.includes(g)))
      return {
        ok: false,
        code: 'AIRLOCK_E_NOT_A_REVIEWER',
        message: `${principal.name} is not a reviewer for request ${request.id}: reviewers are members of ${groupsText(request)}`,
      };
    return { ok: true };
  }

  async approve(
    id: number,
    reviewer: Principal,
    opts: { readonly note?: string | undefined; readonly windowMs?: number | undefined } = {},
  ): Promise<ApprovalRequest> {
    const request = await this.pending(id);
    this.assertReviewer(reviewer, request);
    if (request.approvals.some((v) => v.by === reviewer.name))
      throw new AirlockError(
        'AIRLOCK_E_ALREADY_APPROVED',
        `${reviewer.name} already approved request ${id}`,
        {
          hint: `it needs ${request.review.approvals} different approvers`,
        },
      );
    if (opts.windowMs !== undefined && (!Number.isFinite(opts.windowMs) || opts.windowMs < 0))
      throw new AirlockError('AIRLOCK_E_BAD_REQUEST', 'the grant window must be a non-negative duration');
    const at = this.now();
    const note = opts.note?.trim() ? opts.note.trim() : undefined;
    const groups = reviewer.groups.filter((g) => request.review.groups.includes(g));
    const voted = await this.store.addApproval(id, { by: reviewer.name, at, note, groups });
    if (!voted) throw await this.notPending(id);
    await this.audit.append('request.approval', {
      requestId: id,
      by: principalData(reviewer),
      ...(note === undefined ? {} : { note }),
      groups,
      votes: voted.approvals.length,
      needed: voted.review.approvals,
      fingerprint: voted.fingerprint,
    });
    if (!quorumMet(voted)) {
      this.changed(voted);
      return voted;
    }
    let window = opts.windowMs ?? (voted.review.hold === 'retry' ? voted.review.window : 0);
    // Just-in-time access lasts at most what was asked for (and the policy allowed), whatever
    // window the approver passes; a shorter one is the approver's call.
    if (voted.protocol === ACCESS_PROTOCOL) window = Math.min(window, voted.review.window);
    const approved = await this.store.updateRequest(id, ['pending'], {
      status: 'approved',
      decidedAt: at,
      grantUntil: at + window,
    });
    if (!approved) {
      // Another replica completed the quorum (or it expired) between our vote and now.
      const current = await this.store.getRequest(id);
      if (current) this.changed(current);
      return current ?? voted;
    }
    await this.audit.append('request.approved', {
      requestId: id,
      approvers: approved.approvals.map((v) => v.by),
      fingerprint: approved.fingerprint,
      grantUntil: at + window,
    });
    this.changed(approved);
    return approved;
  }

  async deny(id: number, reviewer: Principal, reason: string): Promise<ApprovalRequest> {
    const text = typeof reason === 'string' ? reason.trim() : '';
    if (text.length === 0)
      throw new AirlockError('AIRLOCK_E_BAD_REQUEST', 'a denial needs a reason', {
        hint: 'the reason is sent back to the caller so they know what to change',
      });
    const request = await this.pending(id);
    this.assertReviewer(reviewer, request);
    const denied = await this.store.updateRequest(id, ['pending'], {
      status: 'denied',
      decidedAt: this.now(),
      deniedBy: reviewer.name,
      reason: text,
    });
    if (!denied) throw await this.notPending(id);
    await this.audit.append('request.denied', {
      requestId: id,
      by: principalData(reviewer),
      reason: text,
      fingerprint: denied.fingerprint,
    });
    this.changed(denied);
    return denied;
  }

  async cancel(id: number, reason: string): Promise<ApprovalRequest> {
    const cancelled = await this.store.updateRequest(id, ['pending'], {
      status: 'cancelled',
      decidedAt: this.now(),
      reason,
    });
    if (!cancelled) throw await this.notPending(id);
    await this.audit.append('request.cancelled', {
      requestId: id,
      reason,
      fingerprint: cancelled.fingerprint,
    });
    this.changed(cancelled);
    return cancelled;
  }

  /**
   * Withdraws an approval that has not been used up: an approved request whose held action has
   * not run, or a grant whose window is still open (sessions relying on it are ended by whoever
   * listens to onGrantEnded). The request becomes `cancelled`, with the revocation as reason.
   * The requester may give it up; otherwise only someone who could review it may revoke it.
   */
  async revoke(id: number, by: Principal, reason: string): Promise<ApprovalRequest> {
    const text = typeof reason === 'string' ? reason.trim() : '';
    if (text.length === 0)
      throw new AirlockError('AIRLOCK_E_BAD_REQUEST', 'a revocation needs a reason', {
        hint: 'the reason is recorded and sent to the caller',
      });
    const request = await this.get(id);
    if (!request) throw notFound(id);
    if (by.name !== request.principal.name && !request.review.groups.some((g) => by.groups.includes(g)))
      throw new AirlockError(
        'AIRLOCK_E_NOT_A_REVIEWER',
        `${by.name} may not revoke request ${id}: reviewers are members of ${groupsText(request)}`,
      );
    const now = this.now();
    const openWindow = request.grantUntil !== undefined && request.grantUntil > now;
    const from: RequestStatus[] = openWindow ? ['approved', 'executed'] : ['approved'];
    if (!from.includes(request.status))
      throw new AirlockError(
        'AIRLOCK_E_REQUEST_NOT_PENDING',
        request.status === 'executed'
          ? `request ${id} was already used; there is nothing left to revoke`
          : `request ${id} is ${request.status}, not approved`,
        { hint: 'only an approval that has not been used up can be revoked' },
      );
    const revoked = await this.store.updateRequest(id, from, {
      status: 'cancelled',
      decidedAt: now,
      reason: `approval revoked by ${by.name}: ${text}`,
      ...(request.grantUntil !== undefined ? { grantUntil: now } : {}),
    });
    if (!revoked) throw await this.notPending(id);
    await this.audit.append('request.revoked', {
      requestId: id,
      by: principalData(by),
      reason: text,
      was: request.status,
      fingerprint: revoked.fingerprint,
    });
    this.changed(revoked);
    return revoked;
  }

  /**
   * Break-glass: approves a pending request on the word of one person (the Gate checks they
   * may), recorded as their vote with the justification, flagged in the audit log, and
   * announced on the bus like any decision so notification channels hear at once.
   */
  async override(id: number, by: Principal, justification: string): Promise<ApprovalRequest> {
    const request = await this.pending(id);
    const at = this.now();
    const note = `break-glass: ${justification}`;
    await this.store.addApproval(id, { by: by.name, at, note, groups: [] });
    const window = request.review.hold === 'retry' ? request.review.window : 0;
    const approved = await this.store.updateRequest(id, ['pending'], {
      status: 'approved',
      decidedAt: at,
      grantUntil: at + window,
      reason: `break-glass by ${by.name}: ${justification}`,
    });
    if (!approved) throw await this.notPending(id);
    await this.audit.append('request.break_glass', {
      requestId: id,
      flagged: true,
      by: principalData(by),
      justification,
      requester: principalData(request.principal),
      connection: request.connection,
      summary: request.summary,
      fingerprint: approved.fingerprint,
      grantUntil: at + window,
    });
    this.changed(approved);
    return approved;
  }

  /** Called with a request id whenever a grant it carried ends early (revoked, here or on another replica). */
  onGrantEnded(listener: (requestId: number) => void): () => void {
    this.grantEndListeners.add(listener);
    return () => {
      this.grantEndListeners.delete(listener);
    };
  }

  async markExecuted(id: number): Promise<ApprovalRequest> {
    const executed = await this.store.updateRequest(id, ['approved'], { status: 'executed' });
    if (!executed) {
      const current = await this.store.getRequest(id);
      if (current?.status === 'executed') return current;
      if (!current) throw notFound(id);
      throw new AirlockError(
        'AIRLOCK_E_REQUEST_NOT_PENDING',
        `request ${id} is ${current.status}, not approved`,
      );
    }
    await this.audit.append('request.executed', { requestId: id, fingerprint: executed.fingerprint });
    this.changed(executed);
    return executed;
  }

  /** An open grant for this fingerprint, from memory. */
  findGrant(fingerprint: string, now: number = this.now()): Grant | undefined {
    const grant = this.grants.get(fingerprint);
    if (!grant) return undefined;
    if (grant.until <= now) {
      this.grants.delete(fingerprint);
      return undefined;
    }
    return grant;
  }

  /** Resolves with the request once it is no longer pending; rejects if `signal` aborts. */
  waitFor(id: number, signal?: AbortSignal): Promise<ApprovalRequest> {
    return new Promise<ApprovalRequest>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      let set = this.waiters.get(id);
      if (!set) {
        set = new Set();
        this.waiters.set(id, set);
      }
      const cleanup = () => {
        set.delete(done);
        if (set.size === 0 && this.waiters.get(id) === set) this.waiters.delete(id);
        signal?.removeEventListener('abort', onAbort);
      };
      const done = (request: ApprovalRequest) => {
        cleanup();
        resolve(request);
      };
      const onAbort = () => {
        cleanup();
        reject(signal!.reason);
      };
      // Registered before reading, so a decision landing in between is not missed.
      set.add(done);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.get(id).then(
        (request) => {
          if (!request) {
            cleanup();
            reject(notFound(id));
          } else if (request.status !== 'pending') done(request);
          else this.apply(request);
        },
        (err) => {
          cleanup();
          reject(err);
        },
      );
    });
  }

  /** Expires every tracked pending request whose time is up. Returns how many expired. */
  sweep(): Promise<number> {
    if (this.sweeping) return this.sweeping;
    const run = (async () => {
      const now = this.now();
      let n = 0;
      let firstError: unknown;
      for (const [id, at] of [...this.expiries]) {
        if (at > now) continue;
        try {
          const request = await this.store.getRequest(id);
          if (!request) {
            this.expiries.delete(id);
            continue;
          }
          const after = request.status === 'pending' ? await this.expire(request) : request;
          this.apply(after);
          if (after.status === 'expired') n++;
        } catch (err) {
          firstError ??= err;
        }
      }
      if (firstError !== undefined) throw firstError;
      return n;
    })();
    this.sweeping = run;
    const clear = () => {
      this.sweeping = undefined;
      this.schedule();
    };
    run.then(clear, clear);
    return run;
  }

  private async expire(request: ApprovalRequest): Promise<ApprovalRequest> {
    const reason = `expired after ${formatDuration(request.expiresAt - request.createdAt)} without a decision`;
    const expired = await this.store.updateRequest(request.id, ['pending'], {
      status: 'expired',
      decidedAt: this.now(),
      reason,
    });
    if (!expired) return (await this.store.getRequest(request.id)) ?? request;
    await this.audit.append('request.expired', {
      requestId: request.id,
      reason,
      fingerprint: request.fingerprint,
    });
    this.changed(expired);
    return expired;
  }

  private async pending(id: number): Promise<ApprovalRequest> {
    const request = await this.get(id);
    if (!request) throw notFound(id);
    if (request.status !== 'pending') throw notPendingError(request);
    return request;
  }

  private async notPending(id: number): Promise<AirlockError> {
    const current = await this.get(id);
    return current ? notPendingError(current) : notFound(id);
  }

  private assertReviewer(reviewer: Principal, request: ApprovalRequest): void {
    const check = this.canReview(reviewer, request);
    if (!check.ok) throw new AirlockError(check.code, check.message);
  }

  /** Local change: update memory at once, then tell everyone (other replicas re-read). */
  private changed(request: ApprovalRequest): void {
    this.apply(request);
    this.bus.publish({ type: 'request', id: request.id, status: request.status });
  }

  private onEvent(event: RequestEvent): void {
    if (event.type !== 'request') return;
    const known = this.expiries.has(event.id);
    const needsRead =
      (event.status === 'pending' && !known) ||
      (event.status !== 'pending' &&
        (known || this.waiters.has(event.id) || event.status === 'approved' || event.status === 'executed'));
    if (!needsRead) {
      if (event.status !== 'pending') this.dropGrants(event.id);
      return;
    }
    this.store.getRequest(event.id).then(
      (request) => {
        if (request) this.apply(request);
      },
      () => {
        // The store is unreachable; the lazy checks on read and the next sweep catch up.
      },
    );
  }

  private apply(request: ApprovalRequest): void {
    const { id, status } = request;
    if (status === 'pending') {
      if (this.expiries.get(id) !== request.expiresAt) {
        this.expiries.set(id, request.expiresAt);
        if (request.expiresAt < this.timerAt) this.schedule();
      }
      return;
    }
    this.expiries.delete(id);
    if (
      (status === 'approved' || status === 'executed') &&
      request.grantUntil !== undefined &&
      request.grantUntil > this.now()
    ) {
      const current = this.grants.get(request.fingerprint);
      if (!current || current.requestId === id || current.until < request.grantUntil)
        this.grants.set(request.fingerprint, {
          requestId: id,
          fingerprint: request.fingerprint,
          until: request.grantUntil,
          status,
          kinds: accessKinds(request),
        });
    } else if (status !== 'approved' && status !== 'executed') {
      this.dropGrants(id);
    }
    const waiting = this.waiters.get(id);
    if (waiting) for (const resolve of [...waiting]) resolve(request);
  }

  private dropGrants(requestId: number): void {
    for (const [fingerprint, grant] of this.grants)
      if (grant.requestId === requestId) this.grants.delete(fingerprint);
    for (const listener of [...this.grantEndListeners]) {
      try {
        listener(requestId);
      } catch {
        // a listener's failure must not stop the others
      }
    }
  }

  private schedule(): void {
    if (!this.unsubscribe) return;
    let next = Number.POSITIVE_INFINITY;
    for (const at of this.expiries.values()) if (at < next) next = at;
    if (next === this.timerAt && this.timer) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = next;
    if (next === Number.POSITIVE_INFINITY) return;
    const delay = Math.min(Math.max(0, next - this.now()), MAX_TIMER_MS);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Number.POSITIVE_INFINITY;
      this.sweep().catch(() => {
        // Retry shortly: a request must not stay pending forever because the store hiccuped.
        if (!this.timer && this.unsubscribe) {
          this.timerAt = this.now() + 1000;
          this.timer = setTimeout(() => {
            this.timer = undefined;
            this.timerAt = Number.POSITIVE_INFINITY;
            void this.sweep().catch(() => {});
          }, 1000);
          this.timer.unref();
        }
      });
    }, delay);
    this.timer.unref();
  }
}

function groupsText(request: ApprovalRequest): string {
  const groups = request.review.groups;
  return groups.length === 1 ? `group ${groups[0]}` : `groups ${groups.join(', ')}`;
}

function notFound(id: number): AirlockError {
  return new AirlockError('AIRLOCK_E_REQUEST_NOT_FOUND', `there is no request ${id}`, {
    hint: 'list requests with `airlock requests`',
  });
}

function notPendingError(request: ApprovalRequest): AirlockError {
  const status: RequestStatus = request.status;
  return new AirlockError('AIRLOCK_E_REQUEST_NOT_PENDING', `request ${request.id} is already ${status}`, {
    hint: 'only pending requests can be approved, denied or cancelled',
  });
}
