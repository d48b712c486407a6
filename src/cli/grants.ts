/** `airlock revoke ID --reason`: withdraw an approval that has not been used up. */
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
}
