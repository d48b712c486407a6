/**
 * What a database name in `USE name` or COM_INIT_DB means through Airlock. The database name at
 * login picks the connection, so callers (and clients re-selecting "their" database after a
 * reconnect) also name the connection here:
 *  - the connection's own name selects its database on the target (`USE shop` runs as
 *    `USE app`) and is a read;
 *  - another MySQL connection's name cannot switch connections (the target stays the same), so
 *    it is refused with how to reach that connection, rather than sent as a schema switch the
 *    caller did not mean;
 *  - any other name is a schema on the target: judged like any statement (classify.ts).
 * https://dev.mysql.com/doc/refman/8.0/en/use.html
 */
import type { MysqlConnection } from '../../core/policy/connections/mysql.ts';
import type { Policy } from '../../core/policy/policy.ts';

export type UseMeaning =
  | { readonly kind: 'schema' }
  | { readonly kind: 'own'; readonly database: string }
  | { readonly kind: 'other-connection'; readonly reason: string };

/** The rule name audited when USE names another connection. */
export const USE_OTHER_CONNECTION = 'USE does not switch connections';

export function useMeaning(name: string, connection: MysqlConnection, policy: Policy): UseMeaning {
  if (name === connection.upstream.database) return { kind: 'schema' };
  if (name === connection.name) return { kind: 'own', database: connection.upstream.database };
  if (policy.connections.get(name)?.type === 'mysql')
    return {
      kind: 'other-connection',
      reason: `USE ${name} does not switch Airlock connections: this session stays on "${connection.name}"; connect again with "${name}" as the database name to use that connection`,
    };
  return { kind: 'schema' };
}

/** `USE` of a database, quoted for the server. */
export function useStatement(database: string): string {
  return `USE \`${database.replace(/`/g, '``')}\``;
}
