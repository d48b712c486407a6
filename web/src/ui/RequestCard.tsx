/** One request: who, where, what, why held, risk, clocks, approvals so far, and the decision. */
import type { ComponentChildren } from 'preact';
import { duration, PRINCIPAL_KIND_LABEL, when } from '../risk.ts';
import { Link } from '../router.tsx';
import type { AirlockRequest, Me } from '../types.ts';
import { DecideBar, type Decider } from './decide.tsx';
import { type GrantActions, GrantBar, hasWindow } from './grant-actions.tsx';
import { Statements } from './Statement.tsx';

function Fact({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="fact">
      <dt>{label}</dt>
      <dd>{children}</dd>
    </div>
  );
}

export function Clocks({ r, now }: { r: AirlockRequest; now: number }) {
  const created = Date.parse(r.createdAt);
  const expires = Date.parse(r.expiresAt);
  if (r.status !== 'pending')
    return (
      <>
        asked {when(r.createdAt)}
        {r.decidedAt ? `, decided after ${duration(Date.parse(r.decidedAt) - created)}` : ''}
      </>
    );
  const left = expires - now;
  return (
    <>
      <span data-testid="waited">waiting {duration(now - created)}</span>
      {' · '}
      <span class={left < 60_000 ? 'urgent' : ''}>
        {left > 0 ? `expires in ${duration(left)}` : 'expiring'}
      </span>
    </>
  );
}

export function RequestCard(props: {
  r: AirlockRequest;
  me: Me;
  now: number;
  decider: Decider;
  /** Revoke / break-glass; left out where neither can apply. */
  actions?: GrantActions;
  selected?: boolean;
  tall?: boolean;
  headingLevel?: 2 | 3;
}) {
  const { r, me, now, decider } = props;
  const tables = [...new Set(r.parts.flatMap((p) => p.tables))];
  const H = props.headingLevel === 2 ? 'h2' : 'h3';
  return (
    <article
      class={`card${props.selected ? ' selected' : ''}`}
      id={`request-${r.id}`}
      data-request-id={r.id}
      aria-labelledby={`request-${r.id}-title`}
      aria-current={props.selected ? 'true' : undefined}
      tabIndex={-1}
    >
      <header class="card-head">
        <span class={`badge kind-${r.kind}`} title="kind of action">
          {r.kind}
        </span>
        <H id={`request-${r.id}-title`} class="card-title">
          <Link href={`/requests/${r.id}`}>Request #{r.id}</Link>
          <span class="muted"> on </span>
          {r.connection}
        </H>
        <span class={`status status-${r.status}`}>{r.status}</span>
      </header>
      <dl class="facts">
        <Fact label="Who">
          <strong>{r.principal.name}</strong>{' '}
          <span class={`badge principal-${r.principal.kind}`}>
            {PRINCIPAL_KIND_LABEL[r.principal.kind] ?? r.principal.kind}
          </span>
          {r.source ? <span class="muted"> from {r.source}</span> : null}
        </Fact>
        <Fact label="Where">
          {r.connection} <span class="muted">({r.protocol})</span>
        </Fact>
        <Fact label="Held by">
          <strong>{r.rule.name}</strong>
          {r.why ? <span class="muted"> — {r.why}</span> : null}
        </Fact>
        <Fact label="Risk">
          {r.kind}
          {tables.length > 0 ? ` · ${tables.join(', ')}` : ''}
          {typeof r.estimatedRows === 'number'
            ? ` · ~${r.estimatedRows.toLocaleString()} row${r.estimatedRows === 1 ? '' : 's'} (planner estimate)`
            : ''}
          {typeof r.dryRun?.rows === 'number'
            ? ` · ${r.dryRun.rows.toLocaleString()} row${r.dryRun.rows === 1 ? '' : 's'} (dry run)`
            : ''}
          {r.dryRun?.note ? <span class="muted"> — {r.dryRun.note}</span> : null}
          {r.dryRun?.skipped ? <span class="muted"> · no dry run: {r.dryRun.skipped}</span> : null}
        </Fact>
        <Fact label="Time">
          <Clocks r={r} now={now} />
        </Fact>
        <Fact label="Approvals">
          {r.approvals.length} of {r.review.approvals}
          {r.review.groups.length > 0 ? <span class="muted"> ({r.review.groups.join(', ')})</span> : null}
          {r.approvals.length > 0 ? `: ${r.approvals.map((a) => a.by).join(', ')}` : ''}
        </Fact>
        {r.status === 'denied' || r.reason ? (
          <Fact label={r.status === 'denied' ? 'Denied' : 'Reason'}>
            {r.deniedBy ? <strong>{r.deniedBy}: </strong> : null}
            {r.reason ?? ''}
          </Fact>
        ) : null}
        {r.grantUntil && hasWindow(r) ? (
          <Fact label="Window">
            {r.protocol === 'access' ? 'access covers its kinds' : 'same statement passes'}{' '}
            {Date.parse(r.grantUntil) > now && (r.status === 'approved' || r.status === 'executed')
              ? 'until'
              : 'ended'}{' '}
            {when(r.grantUntil)}
          </Fact>
        ) : null}
      </dl>
      <Statements request={r} tall={props.tall ?? false} />
      <DecideBar me={me} r={r} decider={decider} />
      {props.actions && <GrantBar me={me} r={r} now={now} actions={props.actions} />}
    </article>
  );
}
