/**
 * Revoke an approval or an open grant window, and break glass on a held request: each behind a
 * dialog that asks for the written reason the API requires. Offered only to those the API
 * accepts (see Approvals.revoke and breakGlass on the server), so a button never leads to a
 * refusal the console could have foreseen; any refusal that still comes is shown as sent.
 */
import { useState } from 'preact/hooks';
import { ApiError, api } from '../api.ts';
import { when } from '../risk.ts';
import type { AirlockRequest, Me } from '../types.ts';
import { Dialog } from './Dialog.tsx';

/** `r` carries a grant window at all (a one-shot approval's ends the moment it is decided). */
export function hasWindow(r: AirlockRequest): boolean {
  return (
    r.grantUntil !== null && (r.decidedAt === null || Date.parse(r.grantUntil) > Date.parse(r.decidedAt))
  );
}

/** The grant window `r` carries is still open at `now`. */
export function windowOpen(r: AirlockRequest, now: number): boolean {
  return hasWindow(r) && Date.parse(r.grantUntil!) > now;
}

/** Whether `me` may revoke `r` now: its requester or one of its reviewers, while unused or open. */
export function mayRevoke(me: Me, r: AirlockRequest, now: number): boolean {
  const live = r.status === 'approved' || (r.status === 'executed' && windowOpen(r, now));
  if (!live) return false;
  return r.principal.name === me.name || r.review.groups.some((g) => me.groups.includes(g));
}

/** Whether `me` may override the review of `r` (policy break_glass groups, pending only). */
export function mayBreakGlass(me: Me, r: AirlockRequest): boolean {
  return r.status === 'pending' && !!me.breakGlass;
}

type Mode = { kind: 'revoke' | 'break-glass'; r: AirlockRequest };

export interface GrantActions {
  open(kind: Mode['kind'], r: AirlockRequest): void;
  busy: number | undefined;
  dialog: preact.JSX.Element | null;
}

export function useGrantActions(me: Me, onUpdated: (r: AirlockRequest) => void): GrantActions {
  const [mode, setMode] = useState<Mode | undefined>(undefined);
  const [text, setText] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState<number | undefined>(undefined);

  const open = (kind: Mode['kind'], r: AirlockRequest) => {
    if (kind === 'revoke' && !mayRevoke(me, r, Date.now())) return;
    if (kind === 'break-glass' && !mayBreakGlass(me, r)) return;
    setText('');
    setError('');
    setMode({ kind, r });
  };

  const submit = async (m: Mode) => {
    const value = text.trim();
    const min = m.kind === 'break-glass' ? (me.breakGlass?.minJustification ?? 1) : 1;
    if (value.length < Math.max(1, min)) {
      setError(
        m.kind === 'revoke'
          ? 'Say why: the reason is recorded and sent to the caller.'
          : `Write at least ${min} characters: what is happening and why it cannot wait.`,
      );
      return;
    }
    setBusy(m.r.id);
    setError('');
    try {
      const res = await api<{ request: AirlockRequest }>(
        'POST',
        `/api/v1/requests/${m.r.id}/${m.kind}`,
        m.kind === 'revoke' ? { reason: value } : { justification: value },
      );
      onUpdated(res.request);
      setMode(undefined);
    } catch (err) {
      setError(err instanceof ApiError ? err.describe() : String(err));
    } finally {
      setBusy(undefined);
    }
  };

  let dialog: preact.JSX.Element | null = null;
  if (mode) {
    const { r, kind } = mode;
    const revoke = kind === 'revoke';
    const id = revoke ? 'revoke' : 'break-glass';
    const min = me.breakGlass?.minJustification ?? 1;
    dialog = (
      <Dialog
        id={id}
        title={revoke ? `Revoke approval of request #${r.id}` : `Break glass on request #${r.id}`}
        onClose={() => setMode(undefined)}
      >
        <form
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            void submit(mode);
          }}
        >
          {revoke ? (
            <p id={`${id}-consequence`} data-testid="revoke-consequence">
              {r.grantUntil && windowOpen(r, Date.now())
                ? `The grant open until ${when(r.grantUntil)} ends now, and sessions relying on it are closed. `
                : 'The approval is withdrawn before it is used. '}
              {r.principal.name} has to ask again.
            </p>
          ) : (
            <div id={`${id}-consequence`} class="consequence" data-testid="break-glass-consequence">
              <p>
                <strong>This overrides the review.</strong> {r.principal.name}'s {r.kind} on {r.connection}{' '}
                runs at once, without a reviewer's approval.
              </p>
              <ul>
                <li>The override is flagged in the audit log under your name, with your justification.</li>
                <li>The notification channels are told now.</li>
              </ul>
            </div>
          )}
          <label for={`${id}-text`}>
            {revoke
              ? `Reason (recorded and sent to ${r.principal.name})`
              : `Justification (at least ${min} characters)`}
          </label>
          <textarea
            id={`${id}-text`}
            required
            minLength={revoke ? 1 : min}
            maxLength={2000}
            rows={4}
            value={text}
            aria-describedby={`${id}-consequence${error ? ` ${id}-error` : ''}`}
            onInput={(e) => {
              setText((e.target as HTMLTextAreaElement).value);
              setError('');
            }}
          />
          {!revoke && (
            <p class="muted small" aria-live="polite">
              {text.trim().length} of at least {min} characters
            </p>
          )}
          {error && (
            <p id={`${id}-error`} class="error" role="alert">
              {error}
            </p>
          )}
          <div class="dialog-actions">
            <button
              type="button"
              aria-label={revoke ? 'Cancel revoking' : 'Cancel breaking glass'}
              onClick={() => setMode(undefined)}
            >
              Cancel
            </button>
            <button
              type="submit"
              class="danger"
              aria-label={revoke ? `Revoke approval of request ${r.id}` : `Break glass on request ${r.id}`}
              disabled={busy !== undefined}
            >
              {revoke ? 'Revoke' : 'Break glass and run now'}
            </button>
          </div>
        </form>
      </Dialog>
    );
  }
  return { open, busy, dialog };
}

/** The revoke / break-glass buttons a card shows, when the viewer may use them. */
export function GrantBar({
  me,
  r,
  now,
  actions,
}: {
  me: Me;
  r: AirlockRequest;
  now: number;
  actions: GrantActions;
}) {
  const revoke = mayRevoke(me, r, now);
  const glass = mayBreakGlass(me, r);
  if (!revoke && !glass) return null;
  const busy = actions.busy === r.id;
  return (
    <div class="grant-actions">
      {revoke && (
        <button
          type="button"
          class="danger"
          disabled={busy}
          aria-label={`Revoke approval of request ${r.id}…`}
          onClick={() => actions.open('revoke', r)}
        >
          Revoke approval…
        </button>
      )}
      {glass && (
        <button
          type="button"
          class="danger"
          disabled={busy}
          aria-label={`Break glass on request ${r.id}…`}
          onClick={() => actions.open('break-glass', r)}
        >
          Break glass…
        </button>
      )}
    </div>
  );
}
