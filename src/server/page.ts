/**
 * The plain request page behind the "approve it at <url>" link, until the web console exists.
 * The statement and who sent it are shown only to a caller that presents a reviewer's or the
 * requester's token: a browser without one sees the status and how to decide from the CLI.
 */
import type { requestJson } from './api.ts';

type RequestView = ReturnType<typeof requestJson>;

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function requestPage(id: number, r: RequestView | undefined, full: boolean): string {
  const title = r ? `Airlock request ${id}: ${r.status}` : `Airlock request ${id} not found`;
  const rows: [string, string][] = [];
  if (r) {
    rows.push(['Status', r.status], ['Connection', r.connection], ['Kind', r.kind]);
    if (full) {
      rows.push(
        [
          'Requested by',
          `${r.principal.name} (${r.principal.kind}${r.principal.groups.length ? `; ${r.principal.groups.join(', ')}` : ''})`,
        ],
        ['From', r.source ?? 'unknown'],
        ['Rule', r.rule.name],
        ['Why', r.why],
        ['Reviewers', `${r.review.approvals} of ${r.review.groups.join(', ')}`],
        ['Approvals', r.approvals.map((a) => a.by).join(', ') || 'none yet'],
      );
      if (r.deniedBy) rows.push(['Denied by', r.deniedBy]);
      if (r.reason) rows.push(['Reason', r.reason]);
    }
    rows.push(['Created', r.createdAt ?? ''], ['Expires', r.expiresAt ?? '']);
    if (r.decidedAt) rows.push(['Decided', r.decidedAt]);
  }
  const table = rows
    .map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`)
    .join('\n');
  const statement =
    r && full
      ? `<h2>Statement</h2><pre>${escapeHtml(r.summary)}</pre>`
      : r
        ? '<p>The statement and requester are shown to reviewers: open this page with a reviewer token, or run <code>airlock requests</code>.</p>'
        : '';
  const howTo =
    r && r.status === 'pending'
      ? `<h2>Decide</h2><p>approve with: <code>airlock approve ${id}</code></p><p>deny with: <code>airlock deny ${id} --reason "..."</code></p><p>(set <code>AIRLOCK_TOKEN</code> to a reviewer token and <code>AIRLOCK_URL</code> to this server)</p>`
      : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 48rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
th { text-align: left; padding-right: 1.5rem; vertical-align: top; color: #555; font-weight: 600; }
pre, code { font: 14px/1.4 ui-monospace, monospace; background: #f4f4f4; }
pre { padding: 0.75rem; white-space: pre-wrap; word-break: break-word; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
${r ? `<table>\n${table}\n</table>` : '<p>There is no request with this number. List requests with <code>airlock requests --status all</code>.</p>'}
${statement}
${howTo}
</body>
</html>
`;
}
