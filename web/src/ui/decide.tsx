/** Approve / approve for a window / deny with a reason, shared by the inbox and request page. */
import { useState } from 'preact/hooks';
import { ApiError, api } from '../api.ts';
import type { AirlockRequest, Me } from '../types.ts';
import { Dialog } from './Dialog.tsx';

export const WINDOWS = [
  { value: '5m', label: '5 minutes' },
  { value: '15m', label: '15 minutes' },
  { value: '1h', label: '1 hour' },
] as const;

/** Why `me` may not decide `r`, or undefined when they may. */
export function cannotDecide(me: Me, r: AirlockRequest): string | undefined {
  if (r.status !== 'pending') return `This request is ${r.status}.`;
  if (r.principal.name === me.name) return 'You made this request: another reviewer has to decide it.';
  if (!me.reviewer) return 'Only reviewers can decide requests.';
  if (r.approvals.some((a) => a.by === me.name))
    return 'You approved this request; waiting for other reviewers.';
  return undefined;
}

export interface Decider {
  approve(r: AirlockRequest, window?: string): Promise<void>;
  openDeny(r: AirlockRequest): void;
  busy: number | undefined;
  error: { id: number; text: string } | undefined;
  dialog: preact.JSX.Element | null;
}

export function useDecider(me: Me, onUpdated: (r: AirlockRequest) => void): Decider {
  const [busy, setBusy] = useState<number | undefined>(undefined);
  const [error, setError] = useState<{ id: number; text: string } | undefined>(undefined);
  const [denying, setDenying] = useState<AirlockRequest | undefined>(undefined);
  const [reason, setReason] = useState('');
  const [denyError, setDenyError] = useState('');

  const run = async (r: AirlockRequest, path: string, body: unknown): Promise<boolean> => {
    setBusy(r.id);
    setError(undefined);
    try {
      const res = await api<{ request: AirlockRequest }>('POST', `/api/v1/requests/${r.id}/${path}`, body);
      onUpdated(res.request);
      return true;
    } catch (err) {
      const text = err instanceof ApiError ? err.describe() : String(err);
      setError({ id: r.id, text });
      if (path === 'deny') setDenyError(text);
      return false;
    } finally {
      setBusy(undefined);
    }
  };

  const approve = async (r: AirlockRequest, window?: string) => {
    if (cannotDecide(me, r)) return;
    await run(r, 'approve', window ? { window } : {});
  };

  const openDeny = (r: AirlockRequest) => {
    if (r.status !== 'pending' || !me.reviewer || r.principal.name === me.name) return;
    setReason('');
    setDenyError('');
    setDenying(r);
  };

  const dialog = denying ? (
    <Dialog id="deny" title={`Deny request #${denying.id}`} onClose={() => setDenying(undefined)}>
      <form
        noValidate
        onSubmit={async (e) => {
          e.preventDefault();
          if (reason.trim() === '') {
            setDenyError('Say why: the reason is sent back to the caller.');
            return;
          }
          if (await run(denying, 'deny', { reason: reason.trim() })) setDenying(undefined);
        }}
      >
        <label for="deny-reason">Reason (sent back to {denying.principal.name})</label>
        <textarea
          id="deny-reason"
          required
          maxLength={2000}
          rows={4}
          value={reason}
          aria-describedby={denyError ? 'deny-error' : undefined}
          onInput={(e) => setReason((e.target as HTMLTextAreaElement).value)}
        />
        {denyError && (
          <p id="deny-error" class="error" role="alert">
            {denyError}
          </p>
        )}
        <div class="dialog-actions">
          <button type="button" aria-label="Cancel denying" onClick={() => setDenying(undefined)}>
            Cancel
          </button>
          <button
            type="submit"
            class="danger"
            aria-label={`Deny request ${denying.id}`}
            disabled={busy !== undefined}
          >
            Deny
          </button>
        </div>
      </form>
    </Dialog>
  ) : null;

  return { approve, openDeny, busy, error, dialog };
}

export function DecideBar({ me, r, decider }: { me: Me; r: AirlockRequest; decider: Decider }) {
  const [window, setWindow] = useState<string>('15m');
  const blocked = cannotDecide(me, r);
  const err = decider.error?.id === r.id ? decider.error.text : undefined;
  if (blocked)
    return (
      <p class="decide-note muted" data-testid="decide-note">
        {blocked}
      </p>
    );
  const busy = decider.busy === r.id;
  return (
    <div class="decide">
      <div class="decide-buttons">
        <button
          type="button"
          class="primary"
          disabled={busy}
          aria-label={`Approve request ${r.id}`}
          onClick={() => void decider.approve(r)}
        >
          Approve
        </button>
        {/* An access request's window is the access it asked for; a reviewer's window has no say. */}
        {r.protocol !== 'access' && (
          <span class="window-group">
            <select
              aria-label={`Approval window for request ${r.id}`}
              value={window}
              onChange={(e) => setWindow((e.target as HTMLSelectElement).value)}
            >
              {WINDOWS.map((w) => (
                <option key={w.value} value={w.value}>
                  {w.label}
                </option>
              ))}
            </select>
            <button
              type="button"
              disabled={busy}
              aria-label={`Approve request ${r.id} for a window of ${window}`}
              onClick={() => void decider.approve(r, window)}
            >
              Approve for window
            </button>
          </span>
        )}
        <button
          type="button"
          class="danger"
          disabled={busy}
          aria-label={`Deny request ${r.id}`}
          onClick={() => decider.openDeny(r)}
        >
          Deny…
        </button>
      </div>
      {err && (
        <p class="error" role="alert">
          {err}
        </p>
      )}
    </div>
  );
}
