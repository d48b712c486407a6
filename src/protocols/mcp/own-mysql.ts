/**
 * The own tool `query` on a MySQL/MariaDB connection: the statement is sent through Airlock's own
 * MySQL listener as the caller (database = connection, the caller's Airlock token as the
 * password), so it meets exactly the gate, holds, approvals, masking and audit a `mysql` user
 * would.
 */
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import mysql from 'mysql2/promise';
import type { ToolExtra } from './own-progress.ts';

export interface OwnMysqlListener {
  readonly host: string;
  readonly port: number;
}

/** Rows returned to the model at most; the rest is counted, not sent. */
const MAX_ROWS = 500;

export async function runMysqlQuery(
  listener: OwnMysqlListener,
  connection: string,
  user: string,
  credential: string,
  sql: string,
  extra: ToolExtra,
): Promise<CallToolResult> {
  let conn: mysql.Connection | undefined;
  // Cancelling the MCP call closes the connection: Airlock cancels a held statement then.
  const onAbort = () => conn?.destroy();
  extra.signal.addEventListener('abort', onAbort, { once: true });
  try {
    conn = await mysql.createConnection({
      host: listener.host,
      port: listener.port,
      user,
      password: credential,
      database: connection,
      connectAttributes: { program_name: 'airlock-mcp-query' },
    });
    conn.on('error', () => {});
    const [result, fields] = await conn.query({ sql, rowsAsArray: true });
    if (!Array.isArray(result)) {
      const ok = result as mysql.ResultSetHeader;
      return text(`OK, ${ok.affectedRows} row${ok.affectedRows === 1 ? '' : 's'} affected`);
    }
    const rows = (result as unknown[][]).slice(0, MAX_ROWS);
    const more = result.length - rows.length;
    return text(
      JSON.stringify(
        {
          columns: (fields ?? []).map((f) => f.name),
          rows,
          rowCount: result.length,
          ...(more > 0 ? { note: `${more} more rows not shown; narrow the query` } : {}),
        },
        null,
        2,
      ),
    );
  } catch (err) {
    return text((err as Error)?.message ?? String(err), true);
  } finally {
    extra.signal.removeEventListener('abort', onAbort);
    await conn?.end().catch(() => conn?.destroy());
  }
}

function text(t: string, isError = false): CallToolResult {
  return { content: [{ type: 'text', text: t }], ...(isError ? { isError: true } : {}) };
}
