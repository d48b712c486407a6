/** The audit chain's status (verified / broken at record N) and its latest records. */
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api } from '../api.ts';
import type { AuditRecord, VerifyResult } from '../types.ts';

const RECENT = 50;

export function Audit() {
  const [result, setResult] = useState<VerifyResult | undefined>(undefined);
  const [records, setRecords] = useState<AuditRecord[]>([]);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const verify = async () => {
    setBusy(true);
    setError('');
    try {
      const v = await api<VerifyResult>('GET', '/api/v1/audit/verify');
      setResult(v);
      const from = Math.max(1, v.count - RECENT + 1);
      const list = await api<{ records: AuditRecord[] }>('GET', `/api/v1/audit?from=${from}&limit=${RECENT}`);
      setRecords(list.records.slice().reverse());
    } catch (err) {
      setError(err instanceof ApiError ? err.describe() : String(err));
    } finally {
      setBusy(false);
    }
  };
  useEffect(() => void verify(), []);
  return (
    <main id="main" class="page">
      <div class="page-head">
        <h1>Audit log</h1>
        <button
          type="button"
          disabled={busy}
          aria-label="Verify the audit chain again"
          onClick={() => void verify()}
        >
          Verify again
        </button>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {result?.ok === true && (
        <p class="chain chain-ok" role="status" data-testid="chain-status">
          Verified: {result.count} record{result.count === 1 ? '' : 's'}, chain intact
          <span class="muted small hash"> head {result.headHash.slice(0, 16)}…</span>
        </p>
      )}
      {result?.ok === false && (
        <p class="chain chain-broken" role="alert" data-testid="chain-status">
          Broken at record {result.seq} ({result.problem}): {result.message}
        </p>
      )}
      {records.length > 0 && (
        <table class="history audit">
          <caption class="muted">Latest {records.length} records</caption>
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">At</th>
              <th scope="col">Event</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {records.map((a) => (
              <tr key={a.seq} class={a.data.flagged === true ? 'flagged' : undefined}>
                <td data-label="#">{a.seq}</td>
                <td data-label="At">{new Date(a.at).toLocaleString()}</td>
                <td data-label="Event">
                  {a.type}
                  {a.data.flagged === true && (
                    <>
                      {' '}
                      <span class="badge badge-flagged" title="an override of a review (break-glass)">
                        flagged
                      </span>
                    </>
                  )}
                </td>
                <td data-label="Details">
                  <code class="one-line">{summarize(a.data)}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </main>
  );
}

/** Who and what first; long hashes last. */
const FIRST = [
  'id',
  'requestId',
  'principal',
  'by',
  'connection',
  'kind',
  'status',
  'reason',
  'justification',
  'summary',
];

/** A principal object is shown by its name; other objects are left out of the one-line summary. */
function scalar(v: unknown): unknown {
  if (v !== null && typeof v === 'object' && typeof (v as { name?: unknown }).name === 'string')
    return (v as { name: string }).name;
  return v;
}

function summarize(data: Record<string, unknown>): string {
  const rank = (k: string) => {
    const i = FIRST.indexOf(k);
    return i < 0 ? FIRST.length + (/fingerprint|hash/i.test(k) ? 1 : 0) : i;
  };
  const text = Object.entries(data)
    .map(([k, v]) => [k, scalar(v)] as const)
    .sort(([a], [b]) => rank(a) - rank(b))
    .filter(([, v]) => v !== null && v !== undefined && typeof v !== 'object')
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
  return text.length > 240 ? `${text.slice(0, 240)}…` : text;
}
