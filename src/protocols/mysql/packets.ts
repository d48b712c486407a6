/**
 * Packet framing for the MySQL client/server protocol.
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_packets.html
 *
 * Written here rather than taken from a driver because the gateway sits in the data path: an
 * allowed command and every result row go through unchanged, so a frame is a view into the
 * socket chunk it arrived in and is only joined (once, when its last byte arrives) when it spans
 * chunks. Bytes split at any point frame the same.
 *
 * A payload of exactly 0xffffff bytes means "more follows in the next packet"; the physical
 * packets of one logical packet carry consecutive sequence ids.
 */

export const MAX_PAYLOAD = 0xffffff;

/** The peer broke the protocol. The session answers with an ERR packet and closes. */
export class MysqlProtocolError extends Error {
  constructor(
    message: string,
    readonly errno = 1043,
    readonly sqlstate = '08S01',
  ) {
    super(message);
    this.name = 'MysqlProtocolError';
  }
}

/** One physical packet: `raw` is header + payload as it came off the wire. */
export interface Frame {
  readonly seq: number;
  readonly raw: Buffer;
  readonly payload: Buffer;
  /** The previous packet had a full 0xffffff payload, so this one continues it. */
  readonly continued: boolean;
  /** This payload is full: the next packet continues it. */
  readonly more: boolean;
}

/** Physical packets out of a byte stream. */
export class FrameReader {
  #chunks: Buffer[] = [];
  #length = 0;
  #continuing = false;

  /** Bytes received and not yet returned as a frame. */
  get buffered(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** Everything received and not yet framed (bytes that belong to another layer, e.g. TLS). */
  takeRest(): Buffer {
    const rest = Buffer.concat(this.#chunks);
    this.#chunks = [];
    this.#length = 0;
    return rest;
  }

  next(): Frame | undefined {
    if (this.#length < 4) return undefined;
    const head = this.#peek(4);
    const len = head[0]! | (head[1]! << 8) | (head[2]! << 16);
    const total = 4 + len;
    if (this.#length < total) return undefined;
    const raw = this.#take(total);
    const frame: Frame = {
      seq: raw[3]!,
      raw,
      payload: raw.subarray(4),
      continued: this.#continuing,
      more: len === MAX_PAYLOAD,
    };
    this.#continuing = frame.more;
    return frame;
  }

  #peek(n: number): Buffer {
    const first = this.#chunks[0]!;
    if (first.length >= n) return first;
    return Buffer.concat(this.#chunks, Math.min(this.#length, Math.max(n, 0))).subarray(0, n);
  }

  #take(n: number): Buffer {
    const first = this.#chunks[0]!;
    if (first.length >= n) {
      this.#length -= n;
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.#chunks[0]!;
      const want = n - off;
      if (c.length <= want) {
        c.copy(out, off);
        off += c.length;
        this.#chunks.shift();
      } else {
        c.copy(out, off, 0, want);
        this.#chunks[0] = c.subarray(want);
        off += want;
      }
    }
    this.#length -= n;
    return out;
  }
}

/** A logical packet: payloads of continued frames joined. */
export interface Packet {
  readonly seq: number;
  /** Sequence id of the last physical packet (the next packet continues from it). */
  readonly lastSeq: number;
  readonly payload: Buffer;
  /** The physical frames, for forwarding unchanged. */
  readonly frames: readonly Buffer[];
}

/** Logical packets out of a byte stream, with a size bound (caller commands). */
export class PacketReader {
  readonly #frames = new FrameReader();
  #parts: Frame[] = [];
  #partsBytes = 0;

  constructor(readonly maxPacket: number) {}

  get buffered(): number {
    return this.#frames.buffered + this.#partsBytes;
  }

  push(chunk: Buffer): void {
    this.#frames.push(chunk);
  }

  /** Bytes after the last whole packet, e.g. a TLS ClientHello sent right behind SSLRequest. */
  takeRest(): Buffer {
    if (this.#parts.length > 0) throw new MysqlProtocolError('a packet was cut off by the TLS upgrade');
    return this.#frames.takeRest();
  }

  next(): Packet | undefined {
    for (let f = this.#frames.next(); f; f = this.#frames.next()) {
      if (this.#parts.length > 0) {
        const expected = (this.#parts[this.#parts.length - 1]!.seq + 1) & 0xff;
        if (f.seq !== expected)
          throw new MysqlProtocolError(`packet out of order: expected sequence ${expected}, got ${f.seq}`);
      }
      this.#partsBytes += f.payload.length;
      if (this.#partsBytes > this.maxPacket)
        throw new MysqlProtocolError(`a packet larger than ${this.maxPacket} bytes arrived`, 1153, '08S01');
      this.#parts.push(f);
      if (f.more) continue;
      const parts = this.#parts;
      this.#parts = [];
      this.#partsBytes = 0;
      return {
        seq: parts[0]!.seq,
        lastSeq: parts[parts.length - 1]!.seq,
        payload: parts.length === 1 ? parts[0]!.payload : Buffer.concat(parts.map((p) => p.payload)),
        frames: parts.map((p) => p.raw),
      };
    }
    return undefined;
  }
}

/**
 * Buffers to send as one write: a view over them when they lie back to back in one chunk (frames
 * relayed unchanged), else a copy.
 */
export function joinFrames(parts: readonly Buffer[]): Buffer {
  const first = parts[0];
  if (first === undefined) return Buffer.alloc(0);
  if (parts.length === 1) return first;
  let end = first.byteOffset + first.length;
  for (let i = 1; i < parts.length; i++) {
    const b = parts[i]!;
    if (b.buffer !== first.buffer || b.byteOffset !== end) return Buffer.concat(parts);
    end += b.length;
  }
  return Buffer.from(first.buffer, first.byteOffset, end - first.byteOffset);
}

/** Frames a payload (splitting at 0xffffff) starting at sequence id `seq`. */
export function packet(payload: Buffer, seq: number): Buffer {
  if (payload.length < MAX_PAYLOAD) {
    const out = Buffer.allocUnsafe(4 + payload.length);
    out.writeUIntLE(payload.length, 0, 3);
    out[3] = seq & 0xff;
    payload.copy(out, 4);
    return out;
  }
  const parts: Buffer[] = [];
  let off = 0;
  let s = seq;
  for (;;) {
    const len = Math.min(MAX_PAYLOAD, payload.length - off);
    const head = Buffer.allocUnsafe(4);
    head.writeUIntLE(len, 0, 3);
    head[3] = s & 0xff;
    parts.push(head, payload.subarray(off, off + len));
    off += len;
    s++;
    if (len < MAX_PAYLOAD) break;
  }
  return Buffer.concat(parts);
}

/** Number of physical packets `packet(payload, ...)` writes. */
export function packetCount(payloadLength: number): number {
  return Math.floor(payloadLength / MAX_PAYLOAD) + 1;
}

/** A cursor over a payload; every read checks bounds and throws MysqlProtocolError. */
export class Cursor {
  pos = 0;
  constructor(
    readonly buf: Buffer,
    readonly what: string,
  ) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  #need(n: number): void {
    if (this.pos + n > this.buf.length) throw new MysqlProtocolError(`${this.what} is truncated`);
  }

  u8(): number {
    this.#need(1);
    return this.buf[this.pos++]!;
  }
  u16(): number {
    this.#need(2);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }
  u24(): number {
    this.#need(3);
    const v = this.buf.readUIntLE(this.pos, 3);
    this.pos += 3;
    return v;
  }
  u32(): number {
    this.#need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    this.#need(8);
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return v;
  }
  bytes(n: number): Buffer {
    if (n < 0) throw new MysqlProtocolError(`${this.what} is malformed`);
    this.#need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  rest(): Buffer {
    const v = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return v;
  }
  /** NUL-terminated bytes; the terminator is consumed. Without one, the rest. */
  nulBytes(required = true): Buffer {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) {
      if (required) throw new MysqlProtocolError(`${this.what} is truncated`);
      return this.rest();
    }
    const v = this.buf.subarray(this.pos, end);
    this.pos = end + 1;
    return v;
  }
  nulString(required = true): string {
    return this.nulBytes(required).toString('utf8');
  }
  /** Length-encoded integer; null for the NULL marker 0xfb. */
  lenenc(): number | null {
    const first = this.u8();
    if (first < 0xfb) return first;
    if (first === 0xfb) return null;
    if (first === 0xfc) return this.u16();
    if (first === 0xfd) return this.u24();
    if (first === 0xfe) {
      const v = this.u64();
      if (v > BigInt(Number.MAX_SAFE_INTEGER))
        throw new MysqlProtocolError(`${this.what} has an oversized length`);
      return Number(v);
    }
    throw new MysqlProtocolError(`${this.what} has an invalid length-encoded integer`);
  }
  lenencBytes(): Buffer | null {
    const n = this.lenenc();
    return n === null ? null : this.bytes(n);
  }
}

export function lenencInt(n: number): Buffer {
  if (n < 0xfb) return Buffer.from([n]);
  if (n <= 0xffff) {
    const b = Buffer.allocUnsafe(3);
    b[0] = 0xfc;
    b.writeUInt16LE(n, 1);
    return b;
  }
  if (n <= 0xffffff) {
    const b = Buffer.allocUnsafe(4);
    b[0] = 0xfd;
    b.writeUIntLE(n, 1, 3);
    return b;
  }
  const b = Buffer.allocUnsafe(9);
  b[0] = 0xfe;
  b.writeBigUInt64LE(BigInt(n), 1);
  return b;
}

export function lenencBytes(v: Buffer): Buffer {
  return Buffer.concat([lenencInt(v.length), v]);
}
