/** Decided requests with filters: connection, principal, status, time range. */
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api } from '../api.ts';
import { PRINCIPAL_KIND_LABEL, when } from '../risk.ts';
import { Link } from '../router.tsx';
import type { AirlockRequest, RequestStatus } from '../types.ts';

const STATUSES: (RequestStatus | 'decided')[] = [
  'decided',
  'approved',
  'executed',
  'denied',
  'expired',
  'cancelled',
];
const PAGE = 200;
const MAX_PAGES = 5;

interface Filters {
  connection: string;
  principal: string;
  status: RequestStatus | 'decided';
  from: string;
  to: string;
}

/** The server filters by status, connection, principal and time; pages back newest first. */
async function search(f: Filters): Promise<{ rows: AirlockRequest[]; more: boolean }> {
  const rows: AirlockRequest[] = [];
  let before: number | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const q = new URLSearchParams({ status: f.status, limit: String(PAGE) });
    if (f.connection.trim()) q.set('connection', f.connection.trim());
    if (f.principal.trim()) q.set('principal', f.principal.trim());
    // datetime-local values are local time; the server wants an absolute instant.
    if (f.from && Number.isFinite(Date.parse(f.from))) q.set('since', new Date(f.from).toISOString());
    if (f.to && Number.isFinite(Date.parse(f.to))) q.set('until', new Date(f.to).toISOString());
    if (before !== undefined) q.set('before', String(before));
    const res = await api<{ requests: AirlockRequest[] }>('GET', `/api/v1/requests?${q}`);
    rows.push(...res.requests);
    const last = res.requests[res.requests.length - 1];
    if (res.requests.length < PAGE || !last) return { rows, more: false };
    before = last.id;
  }
  return { rows, more: true };
}

export function History() {
  const [f, setF] = useState<Filters>({ connection: '', principal: '', status: 'decided', from: '', to: '' });
  const [rows, setRows] = useState<AirlockRequest[] | undefined>(undefined);
  const [more, setMore] = useState(false);
  const [error, setError] = useState('');
  const run = async (filters: Filters) => {
    setError('');
    try {
      const res = await search(filters);
      setRows(res.rows);
      setMore(res.more);
    } catch (err) {
      setError(err instanceof ApiError ? err.describe() : String(err));
    }
  };
  useEffect(() => void run(f), []);
  const field = (k: keyof Filters) => ({
    value: f[k],
    onInput: (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value }),
  });
  return (
    <main id="main" class="page">
      <h1>History</h1>
      <form
        class="filters"
        aria-label="History filters"
        onSubmit={(e) => {
          e.preventDefault();
          void run(f);
        }}
      >
        <label>
          Connection
          <input type="text" name="connection" {...field('connection')} />
        </label>
        <label>
          Principal
          <input type="text" name="principal" {...field('principal')} />
        </label>
        <label>
          Status
          <select
            name="status"
            value={f.status}
            onChange={(e) =>
              setF({ ...f, status: (e.target as HTMLSelectElement).value as Filters['status'] })
            }
          >
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s === 'decided' ? 'any decided' : s}
              </option>
            ))}
          </select>
        </label>
        <label>
          From
          <input type="datetime-local" name="from" {...field('from')} />
        </label>
        <label>
          To
          <input type="datetime-local" name="to" {...field('to')} />
        </label>
        <button type="submit" class="primary" aria-label="Apply filters">
          Filter
        </button>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {rows && rows.length === 0 && <p class="empty">No decided requests match.</p>}
      {rows && rows.length > 0 && (
        <table class="history">
          <caption class="muted">
            {rows.length} request{rows.length === 1 ? '' : 's'}
            {more ? ' (newest only: narrow the time range to see older ones)' : ''}
          </caption>
          <thead>
            <tr>
              <th scope="col">Request</th>
              <th scope="col">Asked</th>
              <th scope="col">Who</th>
              <th scope="col">Connection</th>
              <th scope="col">Status</th>
              <th scope="col">Statement</th>
              <th scope="col">Decided by</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id}>
                <td data-label="Request">
                  <Link href={`/requests/${r.id}`}>#{r.id}</Link>{' '}
                  <span class={`badge kind-${r.kind}`}>{r.kind}</span>
                </td>
                <td data-label="Asked">{when(r.createdAt)}</td>
                <td data-label="Who">
                  {r.principal.name}{' '}
                  <span class={`badge principal-${r.principal.kind}`}>
                    {PRINCIPAL_KIND_LABEL[r.principal.kind] ?? r.principal.kind}
                  </span>
                </td>
                <td data-label="Connection">{r.connection}</td>
                <td data-label="Status">
                  <span class={`status status-${r.status}`}>{r.status}</span>
                </td>
                <td data-label="Statement">
                  <code class="one-line">
                    {r.summary.length > 200 ? `${r.summary.slice(0, 200)}…` : r.summary}
                  </code>
                </td>
                <td data-label="Decided by">
                  {r.deniedBy
                    ? `${r.deniedBy}: ${r.reason ?? ''}`
                    : r.approvals.length > 0
                      ? r.approvals.map((a) => a.by).join(', ')
                      : (r.reason ?? '—')}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </main>
  );
}
