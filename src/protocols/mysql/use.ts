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
import type { MysqlPart } from './classify.ts';

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

/**
 * What a text holding a USE of a connection name becomes: refused (with the rule and reason to
 * audit), or run as the USE of the connection's database; undefined when it is judged as it is.
 * Shared by the session and `policy test`.
 */
export type UseOutcome =
  | { readonly refuse: { readonly rule: string; readonly why: string; readonly reason: string } }
  | { readonly runs: string; readonly database: string };

export function useOutcome(
  parts: readonly MysqlPart[],
  connection: MysqlConnection,
  policy: Policy,
): UseOutcome | undefined {
  for (const part of parts) {
    if (part.uses === undefined) continue;
    const m = useMeaning(part.uses, connection, policy);
    if (m.kind === 'schema') continue;
    if (m.kind === 'other-connection')
      return {
        refuse: {
          rule: USE_OTHER_CONNECTION,
          why: 'the database name at login picks the connection; USE cannot change it',
          reason: m.reason,
        },
      };
    if (parts.length !== 1)
      return {
        refuse: {
          rule: USE_OTHER_CONNECTION,
          why: 'the connection name selects its database only in a USE of its own',
          reason: `USE ${part.uses} selects this connection's database only when sent on its own; send it alone, or write ${useStatement(m.database)}`,
        },
      };
    return { runs: useStatement(m.database), database: m.database };
  }
  return undefined;
}
