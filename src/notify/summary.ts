/**
 * What a notification says about a request, shared by every channel: the JSON a webhook
 * receives (the same shape as the REST API's request), a one-line headline, the facts a
 * reviewer needs (who, where, what, why, until when) and safe truncation of the statement.
 */
import type { ApprovalRequest, RequestStatus } from '../core/approvals/request.ts';
import { formatDuration } from '../core/approvals/service.ts';
import type { NotifyEvent } from '../core/policy/schema.ts';

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

export function requestUrl(publicUrl: string, id: number): string {
  return `${publicUrl.replace(/\/+$/, '')}/requests/${id}`;
}

function estimatedRowsOf(r: ApprovalRequest): number | null {
  const rows = r.attributes.estimatedRows;
  return typeof rows === 'number' && Number.isFinite(rows) && rows >= 0 ? rows : null;
}

function dryRunOf(
  r: ApprovalRequest,
): { rows: number | null; note: string | null; skipped: string | null } | null {
  const { dryRunRows: rows, dryRunNote: note, dryRunSkipped: skipped } = r.attributes;
  if (rows === undefined && skipped === undefined) return null;
  return {
    rows: typeof rows === 'number' && Number.isFinite(rows) && rows >= 0 ? rows : null,
    note: typeof note === 'string' ? note : null,
    skipped: typeof skipped === 'string' ? skipped : null,
  };
}

/**
 * The request as webhook receivers get it; the same shape as GET /api/v1/requests/:id, except
 * that adapter attributes (bound parameter values, target details) stay inside Airlock unless
 * `attributes` is set: a notification goes to systems Airlock does not control.
 */
export function requestPayload(publicUrl: string, r: ApprovalRequest, opts: { attributes?: boolean } = {}) {
  return {
    id: r.id,
    status: r.status,
    connection: r.connection,
    protocol: r.protocol,
    principal: { name: r.principal.name, kind: r.principal.kind, groups: [...r.principal.groups] },
    source: r.source ?? null,
    kind: r.kind,
    summary: r.summary,
    parts: r.parts.map((p) => ({
      kind: p.kind,
      text: p.text,
      statement: p.statement ?? null,
      tables: p.tables ?? [],
      fields: p.fields ?? {},
      why: p.why ?? null,
    })),
    /** Adapter facts for reviewers (bound parameters, target database, ...); secrets were scrubbed at the Gate. */
    attributes: opts.attributes ? r.attributes : {},
    /** Rows a write is estimated to touch, where the adapter can tell; null otherwise. */
    estimatedRows: estimatedRowsOf(r),
    /** Exact rows from a dry run that was rolled back (connections that opt in), and its caveats. */
    dryRun: dryRunOf(r),
    rule: { name: r.rule.name, index: r.rule.index },
    why: r.why,
    review: {
      groups: [...r.review.groups],
      approvals: r.review.approvals,
      hold: r.review.hold,
      expiresMs: r.review.expires,
      windowMs: r.review.window,
    },
    createdAt: iso(r.createdAt),
    expiresAt: iso(r.expiresAt),
    decidedAt: iso(r.decidedAt),
    approvals: r.approvals.map((v) => ({ by: v.by, at: iso(v.at), note: v.note ?? null })),
    deniedBy: r.deniedBy ?? null,
    reason: r.reason ?? null,
    grantUntil: iso(r.grantUntil),
    url: requestUrl(publicUrl, r.id),
  };
}
export type RequestPayload = ReturnType<typeof requestPayload>;

/**
 * At most `max` UTF-16 units of `text`, never splitting a surrogate pair, with a note of how
 * much was left out. Control characters other than newline and tab are shown as `�` so a
 * statement cannot rewrite the rest of a message (terminal escapes, bidi tricks stay visible).
 */
export function truncate(text: string, max: number): string {
  const visible = text.replace(/[\u0000-\u0008\u000b-\u001f\u007f\u202a-\u202e\u2066-\u2069]/g, '\ufffd');
  if (visible.length <= max) return visible;
  let end = Math.max(0, max);
  const code = visible.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--;
  const omitted = visible.length - end;
  return `${visible.slice(0, end)}\n… (${omitted} more characters; see the full statement in Airlock)`;
}

/** Headline verb for the request's current state. */
export function stateText(r: ApprovalRequest): string {
  switch (r.status) {
    case 'pending':
      return r.approvals.length === 0
        ? 'needs approval'
        : `has ${r.approvals.length} of ${r.review.approvals} approvals`;
    case 'approved':
      return `was approved by ${r.approvals.map((v) => v.by).join(', ')}`;
    case 'executed':
      return `was approved by ${r.approvals.map((v) => v.by).join(', ')} and has run`;
    case 'denied':
      return `was denied by ${r.deniedBy ?? 'a reviewer'}`;
    case 'expired':
      return 'expired without a decision';
    case 'cancelled':
      return 'was cancelled';
  }
}

/** "Request 12 (write on prod-db by agent) needs approval". */
export function headline(r: ApprovalRequest): string {
  return `Request ${r.id} (${r.kind} on ${r.connection} by ${r.principal.name}) ${stateText(r)}`;
}

export interface Fact {
  readonly label: string;
  readonly value: string;
}

/** The facts a reviewer decides on, as label/value pairs in plain text. */
export function facts(r: ApprovalRequest, now: number): Fact[] {
  const tables = [...new Set(r.parts.flatMap((p) => p.tables ?? []))];
  const out: Fact[] = [
    {
      label: 'Who',
      value: `${r.principal.name} (${r.principal.kind})${r.source ? ` from ${r.source}` : ''}`,
    },
    { label: 'Connection', value: `${r.connection} (${r.protocol})` },
    { label: 'Kind', value: r.parts.length > 1 ? `${r.kind}, ${r.parts.length} statements` : r.kind },
  ];
  if (tables.length > 0) out.push({ label: 'Tables', value: truncate(tables.join(', '), 300) });
  out.push({ label: 'Rule', value: truncate(r.rule.name, 200) });
  out.push({
    label: 'Reviewers',
    value: `${r.review.approvals} from ${r.review.groups.join(', ')}${
      r.approvals.length > 0 ? `; approved so far by ${r.approvals.map((v) => v.by).join(', ')}` : ''
    }`,
  });
  if (r.status === 'pending')
    out.push({
      label: 'Expires',
      value: `${new Date(r.expiresAt).toISOString()} (in ${formatDuration(Math.max(0, Math.ceil((r.expiresAt - now) / 1000) * 1000))})`,
    });
  if (r.status === 'denied' && r.reason) out.push({ label: 'Reason', value: truncate(r.reason, 500) });
  if ((r.status === 'expired' || r.status === 'cancelled') && r.reason)
    out.push({ label: 'Why', value: truncate(r.reason, 500) });
  return out;
}

/**
 * Which notification event a bus event is. Decided by the status the bus announced (not the
 * status re-read later), so a request approved a moment after it was created still yields
 * `created` first and then `decided`.
 */
export function eventOf(status: RequestStatus, firstSeen: boolean): NotifyEvent {
  switch (status) {
    case 'pending':
      return firstSeen ? 'created' : 'approval';
    case 'executed':
      return 'executed';
    default:
      return 'decided';
  }
}
