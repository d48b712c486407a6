/**
 * The bound parameters of COM_STMT_EXECUTE, decoded for the reviewer and for the action's
 * identity (approving `DELETE FROM t WHERE id = ?` with 7 must not approve it with 8).
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_stmt_execute.html
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_binary_resultset.html#sect_protocol_binary_resultset_row_value
 */
import { Cursor, MysqlProtocolError } from './packets.ts';

export interface ExecuteRequest {
  readonly statementId: number;
  readonly flags: number;
  /** Parameter types (type byte | unsigned flag << 8), from this packet or an earlier one. */
  readonly types: readonly number[];
  /** One entry per parameter: `null` for SQL NULL, else a type-tagged text. */
  readonly values: readonly (string | null)[];
}

/**
 * Parses a COM_STMT_EXECUTE payload. `params` comes from PREPARE_OK; `previousTypes` are the
 * types bound by an earlier execute (a client may omit them); `longData` marks parameters whose
 * value was sent with COM_STMT_SEND_LONG_DATA (their value is not in this packet).
 */
export function parseExecute(
  payload: Buffer,
  params: number,
  previousTypes: readonly number[] | undefined,
  longData: ReadonlySet<number>,
): ExecuteRequest {
  const c = new Cursor(payload, 'COM_STMT_EXECUTE');
  c.u8();
  const statementId = c.u32();
  const flags = c.u8();
  c.u32(); // iteration count, always 1
  if (params === 0) return { statementId, flags, types: [], values: [] };
  const bitmap = c.bytes(Math.floor((params + 7) / 8));
  const bound = c.u8();
  let types: number[];
  if (bound === 1) {
    types = [];
    for (let i = 0; i < params; i++) types.push(c.u16());
  } else if (previousTypes && previousTypes.length === params) types = [...previousTypes];
  else throw new MysqlProtocolError('COM_STMT_EXECUTE did not bind parameter types');
  const values: (string | null)[] = [];
  for (let i = 0; i < params; i++) {
    if (bitmap[i >> 3]! & (1 << (i & 7))) {
      values.push(null);
      continue;
    }
    if (longData.has(i)) {
      values.push('long-data');
      continue;
    }
    values.push(readValue(c, types[i]!));
  }
  return { statementId, flags, types, values };
}

function readValue(c: Cursor, type: number): string {
  const unsigned = (type & 0x8000) !== 0;
  switch (type & 0xff) {
    case 0x06: // NULL
      return 'null';
    case 0x01: {
      const v = c.u8();
      return `i:${unsigned ? v : (v << 24) >> 24}`;
    }
    case 0x02:
    case 0x0d: {
      const v = c.u16();
      return `i:${unsigned ? v : (v << 16) >> 16}`;
    }
    case 0x03:
    case 0x09: {
      const v = c.u32();
      return `i:${unsigned ? v : v | 0}`;
    }
    case 0x08: {
      const v = c.u64();
      return `i:${unsigned ? v : BigInt.asIntN(64, v)}`;
    }
    case 0x04:
      return `f:${c.bytes(4).readFloatLE(0)}`;
    case 0x05:
      return `f:${c.bytes(8).readDoubleLE(0)}`;
    case 0x07:
    case 0x0a:
    case 0x0c:
    case 0x0b: {
      const n = c.u8();
      return `t:${c.bytes(n).toString('hex')}`;
    }
    case 0x00:
    case 0x0f:
    case 0x10:
    case 0xf5:
    case 0xf6:
    case 0xf7:
    case 0xf8:
    case 0xf9:
    case 0xfa:
    case 0xfb:
    case 0xfc:
    case 0xfd:
    case 0xfe:
    case 0xff: {
      const v = c.lenencBytes();
      if (v === null) return 'null';
      return `s:${v.toString('utf8')}`;
    }
    default:
      throw new MysqlProtocolError(
        `COM_STMT_EXECUTE bound a parameter of unknown type 0x${(type & 0xff).toString(16)}`,
      );
  }
}

/** What a reviewer sees for a parameter value (the type tag removed). */
export function displayValue(v: string | null): string | null {
  if (v === null) return null;
  const i = v.indexOf(':');
  return i < 0 ? v : v.slice(i + 1);
}
