/**
 * Bodies of the messages the gateway reads or writes itself.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 *
 * Parsers take a Frame from codec.ts and throw PgProtocolError on anything malformed; builders
 * return a complete message ready to write.
 */
import {
  BackendType,
  BodyReader,
  CANCEL_REQUEST_CODE,
  type Frame,
  FrontendType,
  MessageWriter,
  PgProtocolError,
  PROTOCOL_3_0,
  SSL_REQUEST_CODE,
  STARTUP,
} from './codec.ts';

// ---------------------------------------------------------------------------------------------
// Startup phase (untyped packets)

export type StartupPacket =
  | {
      readonly kind: 'startup';
      readonly major: number;
      readonly minor: number;
      readonly params: Map<string, string>;
    }
  | { readonly kind: 'ssl' }
  | { readonly kind: 'gssenc' }
  | { readonly kind: 'cancel'; readonly pid: number; readonly secret: Buffer };

/** StartupMessage, SSLRequest, GSSENCRequest, CancelRequest. */
export function parseStartupPacket(frame: Frame): StartupPacket {
  const r = new BodyReader(frame, 'startup packet');
  const code = r.int32();
  if (code === SSL_REQUEST_CODE) {
    r.end();
    return { kind: 'ssl' };
  }
  if (code === 80877104) {
    r.end();
    return { kind: 'gssenc' };
  }
  if (code === CANCEL_REQUEST_CODE) {
    const pid = r.int32();
    // Protocol 3.2 allows longer secrets; we hand out 4-byte ones but read whatever came.
    const secret = r.bytes(r.remaining);
    if (secret.length < 4 || secret.length > 256) throw new PgProtocolError('invalid cancel request length');
    return { kind: 'cancel', pid, secret: Buffer.from(secret) };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3)
    throw new PgProtocolError(
      `unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.0`,
      '0A000',
    );
  const params = new Map<string, string>();
  for (;;) {
    const name = r.cstring();
    if (name === '') break;
    params.set(name, r.cstring());
  }
  r.end();
  return { kind: 'startup', major, minor, params };
}

export function startupMessage(params: Iterable<[string, string]>): Buffer {
  const w = new MessageWriter().int32(PROTOCOL_3_0);
  for (const [k, v] of params) w.cstring(k).cstring(v);
  return w.byte(0).finish(STARTUP);
}

export function sslRequest(): Buffer {
  return new MessageWriter().int32(SSL_REQUEST_CODE).finish(STARTUP);
}

export function cancelRequest(pid: number, secret: Buffer): Buffer {
  return new MessageWriter().int32(CANCEL_REQUEST_CODE).int32(pid).bytes(secret).finish(STARTUP);
}

// ---------------------------------------------------------------------------------------------
// Frontend messages (caller → gateway → target)

export function parsePassword(frame: Frame): string {
  const r = new BodyReader(frame, 'password message');
  const s = r.cstring();
  r.end();
  return s;
}

export function parseQuery(frame: Frame): string {
  const r = new BodyReader(frame, 'Query message');
  const s = r.cstring();
  r.end();
  return s;
}

export interface ParseMessage {
  readonly name: string;
  readonly query: string;
}

export function parseParse(frame: Frame): ParseMessage {
  const r = new BodyReader(frame, 'Parse message');
  const name = r.cstring();
  const query = r.cstring();
  const n = r.int16();
  if (n < 0)
    throw new PgProtocolError('invalid frontend message: negative parameter type count in Parse message');
  r.bytes(n * 4);
  r.end();
  return { name, query };
}

export interface BindMessage {
  readonly portal: string;
  readonly statement: string;
  /** Parameter values as sent: null for SQL NULL. */
  readonly values: readonly (Buffer | null)[];
  /** Per value: true when sent in binary format. */
  readonly binary: readonly boolean[];
}

export function parseBind(frame: Frame): BindMessage {
  const r = new BodyReader(frame, 'Bind message');
  const portal = r.cstring();
  const statement = r.cstring();
  const nFormats = r.int16();
  if (nFormats < 0)
    throw new PgProtocolError('invalid frontend message: negative format count in Bind message');
  const formats: number[] = [];
  for (let i = 0; i < nFormats; i++) formats.push(r.int16());
  const nValues = r.int16();
  if (nValues < 0)
    throw new PgProtocolError('invalid frontend message: negative parameter count in Bind message');
  if (nFormats > 1 && nFormats !== nValues)
    throw new PgProtocolError(
      `invalid frontend message: Bind message has ${nFormats} parameter formats but ${nValues} parameters`,
    );
  const values: (Buffer | null)[] = [];
  const binary: boolean[] = [];
  for (let i = 0; i < nValues; i++) {
    const len = r.int32();
    if (len < -1)
      throw new PgProtocolError('invalid frontend message: negative parameter length in Bind message');
    values.push(len === -1 ? null : r.bytes(len));
    const f = nFormats === 0 ? 0 : nFormats === 1 ? formats[0]! : formats[i]!;
    binary.push(f === 1);
  }
  const nResults = r.int16();
  if (nResults < 0)
    throw new PgProtocolError('invalid frontend message: negative result format count in Bind message');
  r.bytes(nResults * 2);
  r.end();
  return { portal, statement, values, binary };
}

export function parseExecute(frame: Frame): { readonly portal: string } {
  const r = new BodyReader(frame, 'Execute message');
  const portal = r.cstring();
  r.int32();
  r.end();
  return { portal };
}

/** Close and Describe: 'S' (statement) or 'P' (portal) and a name. */
export function parseTarget(
  frame: Frame,
  what: string,
): { readonly which: 'S' | 'P'; readonly name: string } {
  const r = new BodyReader(frame, `${what} message`);
  const which = r.byte();
  if (which !== 0x53 && which !== 0x50)
    throw new PgProtocolError(`invalid frontend message: invalid ${what} message subtype ${which}`);
  const name = r.cstring();
  r.end();
  return { which: which === 0x53 ? 'S' : 'P', name };
}

export function parseFunctionCall(frame: Frame): { readonly oid: number; readonly args: number } {
  const r = new BodyReader(frame, 'FunctionCall message');
  const oid = r.int32();
  const nFormats = r.int16();
  r.bytes(Math.max(0, nFormats) * 2);
  const args = r.int16();
  return { oid, args };
}

export function passwordMessage(password: string): Buffer {
  return new MessageWriter().cstring(password).finish(FrontendType.Password);
}

export function saslInitialResponse(mechanism: string, data: Buffer): Buffer {
  return new MessageWriter().cstring(mechanism).int32(data.length).bytes(data).finish(FrontendType.Password);
}

export function saslResponse(data: Buffer): Buffer {
  return new MessageWriter().bytes(data).finish(FrontendType.Password);
}

export function queryMessage(sql: string): Buffer {
  return new MessageWriter().cstring(sql).finish(FrontendType.Query);
}

export function parseMessage(name: string, sql: string): Buffer {
  return new MessageWriter().cstring(name).cstring(sql).int16(0).finish(FrontendType.Parse);
}

export const SYNC = Buffer.from([FrontendType.Sync, 0, 0, 0, 4]);
export const TERMINATE = Buffer.from([FrontendType.Terminate, 0, 0, 0, 4]);

// ---------------------------------------------------------------------------------------------
// Backend messages (gateway → caller), and reading the target's login replies

export interface ErrorFields {
  readonly severity: 'ERROR' | 'FATAL' | 'NOTICE' | 'WARNING';
  readonly code: string;
  readonly message: string;
  readonly detail?: string | undefined;
  readonly hint?: string | undefined;
}

/** https://www.postgresql.org/docs/current/protocol-error-fields.html */
function fields(type: number, f: ErrorFields): Buffer {
  const w = new MessageWriter();
  w.byte(0x53).cstring(f.severity); // S
  w.byte(0x56).cstring(f.severity); // V: not localized
  w.byte(0x43).cstring(f.code); // C
  w.byte(0x4d).cstring(f.message); // M
  if (f.detail) w.byte(0x44).cstring(f.detail); // D
  if (f.hint) w.byte(0x48).cstring(f.hint); // H
  return w.byte(0).finish(type);
}

export function errorResponse(f: ErrorFields): Buffer {
  return fields(BackendType.ErrorResponse, f);
}

export function noticeResponse(f: ErrorFields): Buffer {
  return fields(BackendType.NoticeResponse, f);
}

/** Fields of an ErrorResponse/NoticeResponse by their one-letter code. */
export function parseErrorFields(frame: Frame): Map<string, string> {
  const r = new BodyReader(frame, 'ErrorResponse', 'backend');
  const out = new Map<string, string>();
  for (;;) {
    const code = r.byte();
    if (code === 0) break;
    out.set(String.fromCharCode(code), r.cstring());
  }
  return out;
}

export function readyForQuery(status: number): Buffer {
  return Buffer.from([BackendType.ReadyForQuery, 0, 0, 0, 5, status]);
}

export function authenticationRequest(code: number): Buffer {
  return new MessageWriter().int32(code).finish(BackendType.Authentication);
}

export function backendKeyData(pid: number, secret: Buffer): Buffer {
  return new MessageWriter().int32(pid).bytes(secret).finish(BackendType.BackendKeyData);
}

export function negotiateProtocolVersion(minor: number, unsupported: readonly string[]): Buffer {
  const w = new MessageWriter().int32(minor).int32(unsupported.length);
  for (const o of unsupported) w.cstring(o);
  return w.finish(BackendType.NegotiateProtocolVersion);
}

export function parameterStatus(name: string, value: string): Buffer {
  return new MessageWriter().cstring(name).cstring(value).finish(BackendType.ParameterStatus);
}
