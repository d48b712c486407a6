/**
 * Message framing for the PostgreSQL wire protocol, version 3.0.
 * https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 *
 * We frame messages ourselves instead of using pg-protocol's parser on the data path because the
 * gateway forwards almost every message unchanged: a frame here is a view (`subarray`) into the
 * socket chunk it arrived in, so an allowed message reaches the target without being decoded or
 * copied. Only a message split across chunks is joined, once, when its last byte arrives (never
 * re-joined per chunk), so bytes split at any point parse the same and large messages cost O(n).
 */

export const PROTOCOL_3_0 = 196608; // 3 << 16
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;

/** PostgreSQL's own MAX_STARTUP_PACKET_LENGTH. */
export const MAX_STARTUP_PACKET = 10_000;
/** Largest regular message we accept from a caller (PostgreSQL's own limit is 1 GB). */
export const MAX_MESSAGE = 64 * 1024 * 1024;

/** The frontend message types of protocol 3.0. */
export const FrontendType = {
  Bind: 0x42, // B
  Close: 0x43, // C
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyFail: 0x66, // f
  Describe: 0x44, // D
  Execute: 0x45, // E
  Flush: 0x48, // H
  FunctionCall: 0x46, // F
  Parse: 0x50, // P
  Password: 0x70, // p (also SASLInitialResponse, SASLResponse, GSSResponse)
  Query: 0x51, // Q
  Sync: 0x53, // S
  Terminate: 0x58, // X
} as const;

export const BackendType = {
  Authentication: 0x52, // R
  BackendKeyData: 0x4b, // K
  ErrorResponse: 0x45, // E
  NoticeResponse: 0x4e, // N
  ParameterStatus: 0x53, // S
  ReadyForQuery: 0x5a, // Z
  NegotiateProtocolVersion: 0x76, // v
  RowDescription: 0x54, // T
  DataRow: 0x44, // D
  NoData: 0x6e, // n
  CommandComplete: 0x43, // C
  EmptyQueryResponse: 0x49, // I
  PortalSuspended: 0x73, // s
  NotificationResponse: 0x41, // A
  CopyOutResponse: 0x48, // H
  CopyBothResponse: 0x57, // W
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
} as const;

const FRONTEND_TYPES = new Uint8Array(256);
for (const t of Object.values(FrontendType)) FRONTEND_TYPES[t] = 1;
const BACKEND_TYPES = new Uint8Array(256);
for (const c of '123ACDEGHIKNRSTVWZcdnstv') BACKEND_TYPES[c.charCodeAt(0)] = 1;

/** Type byte we give untyped startup-phase packets (StartupMessage, SSLRequest, ...). */
export const STARTUP = 0;

/**
 * One framed message. `raw` is the whole message as it came off the wire (type byte, length,
 * body), usually a view into the socket chunk; the body starts at `raw[bodyOffset]`.
 */
export interface Frame {
  readonly type: number;
  readonly raw: Buffer;
  readonly bodyOffset: 4 | 5;
}

/** The peer broke the protocol. `sqlstate` is what we report before closing the connection. */
export class PgProtocolError extends Error {
  readonly sqlstate: string;
  constructor(message: string, sqlstate = '08P01') {
    super(message);
    this.name = 'PgProtocolError';
    this.sqlstate = sqlstate;
  }
}

export interface ReaderOptions {
  /** 'frontend' checks caller message types; 'backend' checks target message types. */
  readonly side: 'frontend' | 'backend';
  /** Start with untyped startup packets (frontend only). */
  readonly startup?: boolean;
  readonly maxMessage?: number;
}

/**
 * Incremental reader: `push` socket chunks, then call `next()` until it returns null (needs more
 * bytes). Throws PgProtocolError on a malformed or oversized frame; the reader is unusable after.
 */
export class MessageReader {
  #chunks: Buffer[] = [];
  /** Offset of the first unread byte in #chunks[0]. */
  #offset = 0;
  #available = 0;
  #startup: boolean;
  readonly #types: Uint8Array;
  readonly #maxMessage: number;
  #failed: PgProtocolError | undefined;

  constructor(options: ReaderOptions) {
    this.#startup = options.startup ?? false;
    this.#types = options.side === 'frontend' ? FRONTEND_TYPES : BACKEND_TYPES;
    this.#maxMessage = options.maxMessage ?? MAX_MESSAGE;
  }

  /** Bytes received but not yet returned as frames. */
  get buffered(): number {
    return this.#available;
  }

  get startup(): boolean {
    return this.#startup;
  }

  /** After a StartupMessage the connection moves on to typed messages. */
  set startup(value: boolean) {
    this.#startup = value;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#available += chunk.length;
  }

  next(): Frame | null {
    if (this.#failed) throw this.#failed;
    try {
      return this.#next();
    } catch (err) {
      if (err instanceof PgProtocolError) this.#failed = err;
      throw err;
    }
  }

  #next(): Frame | null {
    const headerLength = this.#startup ? 4 : 5;
    if (this.#available < headerLength) return null;
    let type: number;
    let length: number; // as on the wire: counts itself, not the type byte
    const first = this.#chunks[0]!;
    if (first.length - this.#offset >= headerLength) {
      if (this.#startup) {
        type = STARTUP;
        length = first.readInt32BE(this.#offset);
      } else {
        type = first[this.#offset]!;
        length = first.readInt32BE(this.#offset + 1);
      }
    } else {
      const header = this.#peek(headerLength);
      type = this.#startup ? STARTUP : header[0]!;
      length = header.readInt32BE(this.#startup ? 0 : 1);
    }
    if (this.#startup) {
      if (length < 8) throw new PgProtocolError(`invalid startup packet length ${length}`);
      if (length > MAX_STARTUP_PACKET)
        throw new PgProtocolError(
          `startup packet of ${length} bytes exceeds the limit of ${MAX_STARTUP_PACKET} bytes`,
        );
    } else {
      if (this.#types[type] !== 1)
        throw new PgProtocolError(`invalid ${this.#side()} message type ${describeType(type)}`);
      if (length < 4) throw new PgProtocolError(`invalid ${this.#side()} message length ${length}`);
      if (length > this.#maxMessage)
        throw new PgProtocolError(
          `${this.#side()} message of ${length} bytes exceeds the limit of ${this.#maxMessage} bytes`,
          '54000',
        );
    }
    const total = this.#startup ? length : length + 1;
    if (this.#available < total) return null;
    const raw = first.length - this.#offset >= total ? this.#view(total) : this.#join(total);
    return { type, raw, bodyOffset: this.#startup ? 4 : 5 };
  }

  #side(): string {
    return this.#types === FRONTEND_TYPES ? 'frontend' : 'backend';
  }

  /** The frame lies inside the first chunk: hand out a view, no copy. */
  #view(total: number): Buffer {
    const first = this.#chunks[0]!;
    const raw = first.subarray(this.#offset, this.#offset + total);
    this.#offset += total;
    this.#available -= total;
    if (this.#offset === first.length) {
      this.#chunks.shift();
      this.#offset = 0;
    }
    return raw;
  }

  /** The frame spans chunks: copy it together once. */
  #join(total: number): Buffer {
    const out = Buffer.allocUnsafe(total);
    let filled = 0;
    while (filled < total) {
      const chunk = this.#chunks[0]!;
      const take = Math.min(chunk.length - this.#offset, total - filled);
      chunk.copy(out, filled, this.#offset, this.#offset + take);
      filled += take;
      this.#offset += take;
      if (this.#offset === chunk.length) {
        this.#chunks.shift();
        this.#offset = 0;
      }
    }
    this.#available -= total;
    return out;
  }

  #peek(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    let offset = this.#offset;
    for (const chunk of this.#chunks) {
      const take = Math.min(chunk.length - offset, n - filled);
      chunk.copy(out, filled, offset, offset + take);
      filled += take;
      offset = 0;
      if (filled === n) break;
    }
    return out;
  }
}

export function describeType(type: number): string {
  return type >= 0x20 && type < 0x7f
    ? `"${String.fromCharCode(type)}"`
    : `0x${type.toString(16).padStart(2, '0')}`;
}

/**
 * Builds one outgoing message. Messages the gateway writes itself are small and rare (errors,
 * notices, the login exchange), so clarity beats cleverness here.
 */
export class MessageWriter {
  #parts: Buffer[] = [];
  #length = 0;

  byte(b: number): this {
    return this.bytes(Buffer.of(b));
  }

  int16(n: number): this {
    const b = Buffer.allocUnsafe(2);
    b.writeInt16BE(n);
    return this.bytes(b);
  }

  int32(n: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeInt32BE(n);
    return this.bytes(b);
  }

  cstring(s: string): this {
    return this.bytes(Buffer.from(`${s}\0`, 'utf8'));
  }

  bytes(b: Buffer): this {
    this.#parts.push(b);
    this.#length += b.length;
    return this;
  }

  /** A typed message (`type` >= 0) or an untyped startup-phase packet (`type` = STARTUP). */
  finish(type: number): Buffer {
    const header = type === STARTUP ? 4 : 5;
    const out = Buffer.allocUnsafe(header + this.#length);
    if (type !== STARTUP) out[0] = type;
    out.writeInt32BE(this.#length + 4, header - 4);
    let at = header;
    for (const p of this.#parts) {
      p.copy(out, at);
      at += p.length;
    }
    return out;
  }
}

/** Reads fields of one message body; every read is bounds-checked. */
export class BodyReader {
  readonly #buf: Buffer;
  #at: number;
  readonly #what: string;
  readonly #side: string;

  constructor(frame: Frame, what: string, side: 'frontend' | 'backend' = 'frontend') {
    this.#buf = frame.raw;
    this.#at = frame.bodyOffset;
    this.#what = what;
    this.#side = side;
  }

  get remaining(): number {
    return this.#buf.length - this.#at;
  }

  get offset(): number {
    return this.#at;
  }

  #need(n: number): void {
    if (n < 0 || this.#at + n > this.#buf.length)
      throw new PgProtocolError(`invalid ${this.#side} message: truncated ${this.#what}`);
  }

  byte(): number {
    this.#need(1);
    return this.#buf[this.#at++]!;
  }

  int16(): number {
    this.#need(2);
    const v = this.#buf.readInt16BE(this.#at);
    this.#at += 2;
    return v;
  }

  int32(): number {
    this.#need(4);
    const v = this.#buf.readInt32BE(this.#at);
    this.#at += 4;
    return v;
  }

  cstring(): string {
    const end = this.#buf.indexOf(0, this.#at);
    if (end < 0)
      throw new PgProtocolError(`invalid ${this.#side} message: unterminated string in ${this.#what}`);
    const s = this.#buf.toString('utf8', this.#at, end);
    this.#at = end + 1;
    return s;
  }

  bytes(n: number): Buffer {
    this.#need(n);
    const b = this.#buf.subarray(this.#at, this.#at + n);
    this.#at += n;
    return b;
  }

  end(): void {
    if (this.#at !== this.#buf.length)
      throw new PgProtocolError(`invalid ${this.#side} message: ${this.#what} has trailing bytes`);
  }
}
