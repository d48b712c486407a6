/**
 * The connection-phase and generic response packets the gateway reads and writes.
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_response_packets.html
 */
import { Cap, Header } from './constants.ts';
import { Cursor, lenencBytes, lenencInt, MysqlProtocolError } from './packets.ts';

export interface Greeting {
  readonly serverVersion: string;
  readonly connectionId: number;
  /** 20 bytes of scramble ("auth plugin data"). */
  readonly scramble: Buffer;
  readonly capabilities: number;
  readonly collation: number;
  readonly status: number;
  readonly plugin: string;
}

/** HandshakeV10, as the gateway sends it to callers. */
export function greeting(g: Greeting): Buffer {
  const caps = Buffer.allocUnsafe(4);
  caps.writeUInt32LE(g.capabilities >>> 0);
  const id = Buffer.allocUnsafe(4);
  id.writeUInt32LE(g.connectionId >>> 0);
  const status = Buffer.allocUnsafe(2);
  status.writeUInt16LE(g.status);
  return Buffer.concat([
    Buffer.from([10]),
    Buffer.from(`${g.serverVersion}\0`, 'utf8'),
    id,
    g.scramble.subarray(0, 8),
    Buffer.from([0]),
    caps.subarray(0, 2),
    Buffer.from([g.collation & 0xff]),
    status,
    caps.subarray(2, 4),
    Buffer.from([g.scramble.length + 1]),
    Buffer.alloc(10),
    g.scramble.subarray(8),
    Buffer.from([0]),
    Buffer.from(`${g.plugin}\0`, 'utf8'),
  ]);
}

/** HandshakeV10 from a target. */
export function parseGreeting(payload: Buffer): Greeting {
  const c = new Cursor(payload, 'the server greeting');
  const version = c.u8();
  if (version !== 10) throw new MysqlProtocolError(`the server speaks handshake protocol ${version}, not 10`);
  const serverVersion = c.nulString();
  const connectionId = c.u32();
  const part1 = c.bytes(8);
  c.u8();
  let capabilities = c.u16();
  let collation = 0;
  let status = 0;
  let part2: Buffer = Buffer.alloc(0);
  let plugin = 'mysql_native_password';
  if (c.remaining > 0) {
    collation = c.u8();
    status = c.u16();
    capabilities |= c.u16() << 16;
    const dataLen = c.u8();
    c.bytes(10);
    if (capabilities & Cap.SECURE_CONNECTION) {
      part2 = c.bytes(Math.max(13, dataLen - 8));
      // The second part ends with a NUL that is not part of the scramble.
      if (part2[part2.length - 1] === 0) part2 = part2.subarray(0, part2.length - 1);
    }
    if (capabilities & Cap.PLUGIN_AUTH) plugin = c.nulString(false);
  }
  return {
    serverVersion,
    connectionId,
    scramble: Buffer.concat([part1, part2]),
    capabilities: capabilities >>> 0,
    collation,
    status,
    plugin,
  };
}

export interface HandshakeResponse {
  readonly capabilities: number;
  readonly maxPacket: number;
  readonly collation: number;
  readonly user: string;
  readonly authData: Buffer;
  readonly database?: string | undefined;
  readonly plugin?: string | undefined;
  readonly attributes: ReadonlyMap<string, string>;
}

/** An SSLRequest is the first 32 bytes of a HandshakeResponse41, with CLIENT_SSL set. */
export function isSslRequest(payload: Buffer): boolean {
  if (payload.length !== 32) return false;
  return (payload.readUInt32LE(0) & Cap.SSL) !== 0;
}

export function parseHandshakeResponse(payload: Buffer): HandshakeResponse {
  const c = new Cursor(payload, 'the handshake response');
  const capabilities = c.u32();
  if (!(capabilities & Cap.PROTOCOL_41))
    throw new MysqlProtocolError('the client does not speak protocol 4.1; Airlock needs a MySQL 4.1+ client');
  const maxPacket = c.u32();
  const collation = c.u8();
  c.bytes(23);
  const user = c.nulString();
  let authData: Buffer;
  if (capabilities & Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA) authData = c.lenencBytes() ?? Buffer.alloc(0);
  else if (capabilities & Cap.SECURE_CONNECTION) authData = c.bytes(c.u8());
  else authData = c.nulBytes(false);
  let database: string | undefined;
  if (capabilities & Cap.CONNECT_WITH_DB && c.remaining > 0) database = c.nulString(false);
  let plugin: string | undefined;
  if (capabilities & Cap.PLUGIN_AUTH && c.remaining > 0) plugin = c.nulString(false);
  const attributes = new Map<string, string>();
  if (capabilities & Cap.CONNECT_ATTRS && c.remaining > 0) {
    const len = c.lenenc() ?? 0;
    const a = new Cursor(c.bytes(len), 'the connection attributes');
    while (a.remaining > 0) {
      const k = (a.lenencBytes() ?? Buffer.alloc(0)).toString('utf8');
      const v = (a.lenencBytes() ?? Buffer.alloc(0)).toString('utf8');
      if (attributes.size < 64) attributes.set(k.slice(0, 64), v.slice(0, 256));
    }
  }
  return {
    capabilities: capabilities >>> 0,
    maxPacket,
    collation,
    user,
    authData: Buffer.from(authData),
    database: database === '' ? undefined : database,
    plugin,
    attributes,
  };
}

/** HandshakeResponse41 (or, with `sslOnly`, the SSLRequest prefix), as the gateway sends it to a target. */
export function handshakeResponse(r: {
  capabilities: number;
  collation: number;
  user: string;
  authData: Buffer;
  database?: string | undefined;
  plugin: string;
  sslOnly?: boolean;
}): Buffer {
  const head = Buffer.alloc(32);
  head.writeUInt32LE(r.capabilities >>> 0, 0);
  head.writeUInt32LE(0x1000000, 4);
  head[8] = r.collation;
  if (r.sslOnly) return head;
  const parts: Buffer[] = [head, Buffer.from(`${r.user}\0`, 'utf8')];
  if (r.capabilities & Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA) parts.push(lenencBytes(r.authData));
  else parts.push(Buffer.from([r.authData.length]), r.authData);
  if (r.capabilities & Cap.CONNECT_WITH_DB) parts.push(Buffer.from(`${r.database ?? ''}\0`, 'utf8'));
  if (r.capabilities & Cap.PLUGIN_AUTH) parts.push(Buffer.from(`${r.plugin}\0`, 'utf8'));
  return Buffer.concat(parts);
}

export function okPacket(o: {
  affectedRows?: number;
  status: number;
  warnings?: number;
  info?: string;
}): Buffer {
  const tail = Buffer.allocUnsafe(4);
  tail.writeUInt16LE(o.status, 0);
  tail.writeUInt16LE(o.warnings ?? 0, 2);
  return Buffer.concat([
    Buffer.from([Header.OK]),
    lenencInt(o.affectedRows ?? 0),
    lenencInt(0),
    tail,
    Buffer.from(o.info ?? '', 'utf8'),
  ]);
}

export function errPacket(errno: number, sqlstate: string, message: string): Buffer {
  const head = Buffer.allocUnsafe(3);
  head[0] = Header.ERR;
  head.writeUInt16LE(errno, 1);
  return Buffer.concat([
    head,
    Buffer.from(`#${sqlstate.padEnd(5, '0').slice(0, 5)}`, 'latin1'),
    Buffer.from(message, 'utf8'),
  ]);
}

export function eofPacket(status: number, warnings = 0): Buffer {
  const b = Buffer.allocUnsafe(5);
  b[0] = Header.EOF;
  b.writeUInt16LE(warnings, 1);
  b.writeUInt16LE(status, 3);
  return b;
}

export interface ServerError {
  readonly errno: number;
  readonly sqlstate: string;
  readonly message: string;
}

export function parseErr(payload: Buffer): ServerError {
  const c = new Cursor(payload, 'the error packet');
  c.u8();
  const errno = c.u16();
  let sqlstate = 'HY000';
  if (c.remaining >= 6 && payload[c.pos] === 0x23) {
    c.u8();
    sqlstate = c.bytes(5).toString('latin1');
  }
  return { errno, sqlstate, message: c.rest().toString('utf8') };
}

/** Status flags of an OK packet (0x00, or 0xfe as the end of rows), or undefined if malformed. */
export function okStatus(payload: Buffer): number | undefined {
  try {
    const c = new Cursor(payload, 'the OK packet');
    c.u8();
    c.lenenc();
    c.lenenc();
    return c.u16();
  } catch {
    return undefined;
  }
}

/** Status flags of an EOF packet. */
export function eofStatus(payload: Buffer): number | undefined {
  return payload.length >= 5 ? payload.readUInt16LE(3) : undefined;
}

/** AuthSwitchRequest: ask the client to answer with another plugin. */
export function authSwitchRequest(plugin: string, scramble: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from([Header.AUTH_SWITCH]),
    Buffer.from(`${plugin}\0`),
    scramble,
    Buffer.from([0]),
  ]);
}

export function authMoreData(data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([Header.AUTH_MORE_DATA]), data]);
}
