/**
 * `airlock tokens create | list | revoke`: API tokens through the API. The token is printed
 * once, on its own line on stdout (so `$(airlock tokens create ...)` captures just the token
 * with --quiet); everything else goes to stderr.
 */
import { type Command, Option } from 'commander';
import { PRINCIPAL_KINDS } from '../core/action.ts';
import { AirlockError } from '../core/errors.ts';
import { parseDuration } from '../core/policy/schema.ts';
import type { tokenJson } from '../server/routes-tokens.ts';
import { apiClient } from './client.ts';
import { formatTable } from './table.ts';

type TokenView = ReturnType<typeof tokenJson>;

const out = (text: string) => process.stdout.write(`${text}\n`);
const err = (text: string) => process.stderr.write(`${text}\n`);
const collect = (value: string, previous: string[] = []) => [
  ...previous,
  ...value.split(',').filter(Boolean),
];

function state(t: TokenView): string {
  if (t.revokedAt) return 'revoked';
  if (t.expiresAt && Date.parse(t.expiresAt) <= Date.now()) return 'expired';
  return 'active';
}

export function registerTokensCommand(program: Command): void {
  const tokens = program.command('tokens').description('API tokens for service accounts and for yourself');

  tokens
    .command('create')
    .description('create a token; it is shown once')
    .option('--name <name>', 'the principal it stands for (default: you; others need a token admin)')
    .addOption(new Option('--kind <kind>', 'principal kind').choices([...PRINCIPAL_KINDS]))
    .option('--group <group>', 'a group it carries (repeatable, or comma-separated)', collect)
    .option('--connection <name>', 'only for this connection (repeatable, or comma-separated)', collect)
    .option('--expires <duration>', 'lifetime, e.g. 12h or 30d (default: no expiry)')
    .option('--description <text>', 'what it is for')
    .option('--quiet', 'print only the token')
    .option('--json', 'print JSON')
    .action(
      async (o: {
        name?: string;
        kind?: string;
        group?: string[];
        connection?: string[];
        expires?: string;
        description?: string;
        quiet?: boolean;
        json?: boolean;
      }) => {
        if (o.expires !== undefined) {
          try {
            parseDuration(o.expires);
          } catch {
            throw new AirlockError('AIRLOCK_E_BAD_REQUEST', `--expires "${o.expires}" is not a duration`, {
              hint: 'write e.g. 12h or 30d',
            });
          }
        }
        const res = await apiClient().request<{ token: string; record: TokenView }>(
          'POST',
          '/api/v1/tokens',
          {
            ...(o.name ? { name: o.name } : {}),
            ...(o.kind ? { kind: o.kind } : {}),
            ...(o.group ? { groups: o.group } : {}),
            ...(o.connection ? { connections: o.connection } : {}),
            ...(o.expires ? { expires: o.expires } : {}),
            ...(o.description ? { description: o.description } : {}),
          },
        );
        if (o.json) {
          out(JSON.stringify(res, null, 2));
          return;
        }
        if (o.quiet) {
          out(res.token);
          return;
        }
        const r = res.record;
        err(
          `created ${r.id} for ${r.name} (${r.kind}${r.groups.length ? `, groups ${r.groups.join(', ')}` : ''}` +
            `${r.connections ? `, only ${r.connections.join(', ')}` : ''}${r.expiresAt ? `, expires ${r.expiresAt}` : ''})`,
        );
        err('the token is shown once; store it now:');
        out(res.token);
      },
    );

  tokens
    .command('list')
    .description('list tokens (yours; all of them for token admins)')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const res = await apiClient().request<{ tokens: TokenView[] }>('GET', '/api/v1/tokens');
      if (o.json) {
        out(JSON.stringify(res.tokens, null, 2));
        return;
      }
      if (res.tokens.length === 0) {
        out('no tokens');
        return;
      }
      out(
        formatTable(
          ['id', 'name', 'kind', 'groups', 'connections', 'state', 'expires', 'created by'],
          res.tokens.map((t) => [
            t.id,
            t.name,
            t.kind,
            t.groups.join(','),
            t.connections?.join(',') ?? '*',
            state(t),
            t.expiresAt ?? 'never',
            t.createdBy,
          ]),
        ),
      );
    });

  tokens
    .command('revoke')
    .description('revoke a token at once')
    .argument('<id>', 'token id (tok_...)')
    .action(async (id: string) => {
      const res = await apiClient().request<{ token: TokenView }>(
        'DELETE',
        `/api/v1/tokens/${encodeURIComponent(id)}`,
      );
      out(`revoked ${res.token.id} (${res.token.name})`);
    });
}
