/**
 * LOAD DATA LOCAL INFILE on a connection without `local_infile: true` is refused before the Gate
 * is asked (no rule can allow it). Shared by the session and `policy test`, so what the policy
 * test shows is what the listener does.
 * https://dev.mysql.com/doc/refman/8.0/en/load-data-local-security.html
 */
import type { ActionPart } from '../../core/action.ts';
import type { MysqlConnection } from '../../core/policy/connections/mysql.ts';

/** The rule name audited for such a refusal. */
export const LOCAL_INFILE_OFF = 'local_infile is off';

/** Why the statement is refused, or undefined when the Gate decides. */
export function localInfileRefusal(
  connection: MysqlConnection,
  parts: readonly (ActionPart & { readonly localInfile?: boolean | undefined })[],
): string | undefined {
  if (connection.localInfile || !parts.some((p) => p.localInfile)) return undefined;
  return `LOAD DATA LOCAL INFILE is off for connection "${connection.name}" (local_infile: true turns it on)`;
}
