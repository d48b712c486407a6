/**
 * Numbers of the MySQL client/server protocol that the gateway uses by name.
 * https://dev.mysql.com/doc/dev/mysql-server/latest/group__group__cs__capabilities__flags.html
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_command_phase.html
 */

/** Capability flags (low 32 bits; MariaDB's extended flags are never offered). */
export const Cap = {
  LONG_PASSWORD: 0x1, // also "CLIENT_MYSQL": set, a MariaDB server uses no extended capabilities
  FOUND_ROWS: 0x2,
  LONG_FLAG: 0x4,
  CONNECT_WITH_DB: 0x8,
  NO_SCHEMA: 0x10,
  COMPRESS: 0x20,
  ODBC: 0x40,
  LOCAL_FILES: 0x80,
  IGNORE_SPACE: 0x100,
  PROTOCOL_41: 0x200,
  INTERACTIVE: 0x400,
  SSL: 0x800,
  IGNORE_SIGPIPE: 0x1000,
  TRANSACTIONS: 0x2000,
  RESERVED: 0x4000,
  SECURE_CONNECTION: 0x8000,
  MULTI_STATEMENTS: 0x10000,
  MULTI_RESULTS: 0x20000,
  PS_MULTI_RESULTS: 0x40000,
  PLUGIN_AUTH: 0x80000,
  CONNECT_ATTRS: 0x100000,
  PLUGIN_AUTH_LENENC_CLIENT_DATA: 0x200000,
  CAN_HANDLE_EXPIRED_PASSWORDS: 0x400000,
  SESSION_TRACK: 0x800000,
  DEPRECATE_EOF: 0x1000000,
} as const;

/**
 * What the gateway offers callers. Left out on purpose: COMPRESS (the relay reads every
 * packet), SESSION_TRACK and DEPRECATE_EOF (the response tracker reads classic OK/EOF
 * packets), CONNECT_ATTRS (attributes are consumed here, not passed on), IGNORE_SPACE (it
 * changes how the server parses function names, so the text we classify would not be the
 * text it runs).
 */
export const GATEWAY_CAPABILITIES =
  Cap.LONG_PASSWORD |
  Cap.FOUND_ROWS |
  Cap.LONG_FLAG |
  Cap.CONNECT_WITH_DB |
  Cap.LOCAL_FILES |
  Cap.PROTOCOL_41 |
  Cap.INTERACTIVE |
  Cap.TRANSACTIONS |
  Cap.SECURE_CONNECTION |
  Cap.MULTI_STATEMENTS |
  Cap.MULTI_RESULTS |
  Cap.PS_MULTI_RESULTS |
  Cap.PLUGIN_AUTH |
  Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA |
  Cap.CONNECT_ATTRS;

/** Flags of the caller's choice passed through to the target (they change the wire format). */
export const PASSED_CAPABILITIES =
  Cap.FOUND_ROWS |
  Cap.LONG_FLAG |
  Cap.PROTOCOL_41 |
  Cap.INTERACTIVE |
  Cap.TRANSACTIONS |
  Cap.MULTI_STATEMENTS |
  Cap.MULTI_RESULTS |
  Cap.PS_MULTI_RESULTS |
  Cap.LOCAL_FILES;

/** Commands. https://dev.mysql.com/doc/dev/mysql-server/latest/my__command_8h.html */
export const Command = {
  SLEEP: 0x00,
  QUIT: 0x01,
  INIT_DB: 0x02,
  QUERY: 0x03,
  FIELD_LIST: 0x04,
  CREATE_DB: 0x05,
  DROP_DB: 0x06,
  REFRESH: 0x07,
  SHUTDOWN: 0x08,
  STATISTICS: 0x09,
  PROCESS_INFO: 0x0a,
  CONNECT: 0x0b,
  PROCESS_KILL: 0x0c,
  DEBUG: 0x0d,
  PING: 0x0e,
  TIME: 0x0f,
  DELAYED_INSERT: 0x10,
  CHANGE_USER: 0x11,
  BINLOG_DUMP: 0x12,
  TABLE_DUMP: 0x13,
  CONNECT_OUT: 0x14,
  REGISTER_SLAVE: 0x15,
  STMT_PREPARE: 0x16,
  STMT_EXECUTE: 0x17,
  STMT_SEND_LONG_DATA: 0x18,
  STMT_CLOSE: 0x19,
  STMT_RESET: 0x1a,
  SET_OPTION: 0x1b,
  STMT_FETCH: 0x1c,
  DAEMON: 0x1d,
  BINLOG_DUMP_GTID: 0x1e,
  RESET_CONNECTION: 0x1f,
} as const;

export const COMMAND_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(Command).map(([k, v]) => [v, `COM_${k}`]),
);

/** Server status flags. */
export const Status = {
  IN_TRANS: 0x1,
  AUTOCOMMIT: 0x2,
  MORE_RESULTS_EXISTS: 0x8,
  CURSOR_EXISTS: 0x40,
  LAST_ROW_SENT: 0x80,
} as const;

/** First byte of a response packet. */
export const Header = {
  OK: 0x00,
  EOF: 0xfe,
  ERR: 0xff,
  LOCAL_INFILE: 0xfb,
  AUTH_MORE_DATA: 0x01,
  AUTH_SWITCH: 0xfe,
} as const;

/** utf8mb4_general_ci: the collation the gateway asks the target for unless the caller's is safe. */
export const UTF8MB4_GENERAL_CI = 45;

/**
 * Collations whose character set keeps every byte below 0x80 meaning itself (ASCII-safe), so
 * the text we classify as UTF-8 splits into the same tokens the server sees. Multi-byte sets
 * like GBK, Big5 and SJIS can hide a quote or backslash in the second byte of a character.
 * latin1 (8, 47, 48, 49, 5, 15, 31, 94), ascii (11, 65), binary (63), utf8 (33, 83, 192-215),
 * utf8mb4 (45, 46, 224-247, 255+ in MySQL 8 is above one byte, so not here).
 */
export function isAsciiSafeCollation(id: number): boolean {
  return (
    [5, 8, 11, 15, 31, 33, 45, 46, 47, 48, 49, 63, 65, 83, 94].includes(id) ||
    (id >= 192 && id <= 215) ||
    (id >= 224 && id <= 247) ||
    id === 255
  );
}

/** Error numbers and SQLSTATEs we send. https://mariadb.com/kb/en/mariadb-error-code-reference/ */
export const ErrorCode = {
  /** ER_TABLEACCESS_DENIED_ERROR: "command denied", the shape clients show for a refusal. */
  DENIED: { errno: 1142, sqlstate: '42000' },
  ACCESS_DENIED: { errno: 1045, sqlstate: '28000' },
  BAD_DB: { errno: 1049, sqlstate: '42000' },
  HANDSHAKE: { errno: 1043, sqlstate: '08S01' },
  UNKNOWN_COM: { errno: 1047, sqlstate: '08S01' },
  NET_PACKET_TOO_LARGE: { errno: 1153, sqlstate: '08S01' },
  UNKNOWN_STMT: { errno: 1243, sqlstate: 'HY000' },
  NOT_SUPPORTED: { errno: 1235, sqlstate: '42000' },
  QUERY_INTERRUPTED: { errno: 1317, sqlstate: '70100' },
  /** ER_UNKNOWN_ERROR for gateway failures (audit down, target gone). */
  UNKNOWN: { errno: 1105, sqlstate: 'HY000' },
  SERVER_SHUTDOWN: { errno: 1053, sqlstate: '08S01' },
  CONNECT_TO_TARGET: { errno: 2013, sqlstate: 'HY000' },
} as const;
