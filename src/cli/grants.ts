/**
 * `airlock revoke ID --reason`: withdraw an approval that has not been used up.
 * `airlock access CONNECTION --for 2h --reason ...`: ask for just-in-time access.
 * `airlock break-glass ID --justification ...`: override a review (break-glass groups only).
 */
import type { Command } from 'commander';
import type { requestJson } from '../server/api.ts';
import { apiClient } from './client.ts';

type RequestView = ReturnType<typeof requestJson>;

export function registerGrantCommands(program: Command): void {
  program
    .command('revoke')
    .description(
      'revoke an approval before it is used, or a grant while its window is open (ends sessions using it)',
    )
    .argument('<id>', 'request number')
    .requiredOption('--reason <text>', 'why (recorded, and sent to the caller)')
    .action(async (id: string, o: { reason: string }) => {
      const res = await apiClient().request<{ request: RequestView }>(
        'POST',
        `/api/v1/requests/${encodeURIComponent(id)}/revoke`,
        { reason: o.reason },
      );
      process.stdout.write(`request ${res.request.id} revoked: ${res.request.reason ?? o.reason}\n`);
    });

  program
    .command('access')
    .description(
      'ask for time-boxed access to a connection; once approved, what it covers passes without per-command review',
    )
    .argument('<connection>', 'connection name')
    .requiredOption('--for <duration>', 'how long, e.g. 2h')
    .requiredOption('--reason <text>', 'why (reviewers see it; audited)')
    .option('--kinds <kinds>', 'only these action kinds, comma-separated (default: all the policy allows)')
    .action(async (connection: string, o: { for: string; reason: string; kinds?: string }) => {
      const res = await apiClient().request<{ request: RequestView }>('POST', '/api/v1/access', {
        connection,
        duration: o.for,
        reason: o.reason,
        ...(o.kinds ? { kinds: o.kinds.split(',').filter(Boolean) } : {}),
      });
      process.stdout.write(
        `request ${res.request.id}: ${res.request.summary}\nwaiting for approval at ${res.request.url}\n`,
      );
    });

  program
    .command('break-glass')
    .description('override the review of a held request; flagged in the audit log, channels notified at once')
    .argument('<id>', 'request number')
    .requiredOption('--justification <text>', 'what is happening and why it cannot wait')
    .action(async (id: string, o: { justification: string }) => {
      const res = await apiClient().request<{ request: RequestView }>(
        'POST',
        `/api/v1/requests/${encodeURIComponent(id)}/break-glass`,
        { justification: o.justification },
      );
      process.stdout.write(`request ${res.request.id} ${res.request.status} by break-glass\n`);
    });
}
