/**
 * SPDY/3.1 framing, as far as `kubectl port-forward` uses it: kubectl 1.31+ tunnels an SPDY
 * session through a WebSocket (`SPDY/3.1+portforward.k8s.io`), and each forwarded connection is
 * a pair of streams whose headers name the port. Header blocks are zlib streams primed with the
 * SPDY/3 dictionary, one compression context per direction for the whole session.
 * https://www.chromium.org/spdy/spdy-protocol/spdy-protocol-draft3-1/ (§2.2 frames, §2.6 control
 * frames, §2.6.10 name/value header block and its dictionary)
 *
 * Header blocks are decoded to be judged, and written again with Airlock's own encoder (stored
 * deflate blocks, no compression), so Airlock can answer a stream itself without breaking either
 * side's decompression context.
 */
import { constants, inflateSync } from 'node:zlib';

export const SPDY_VERSION = 3;

export const SYN_STREAM = 1;
export const SYN_REPLY = 2;
export const RST_STREAM = 3;
export const SETTINGS = 4;
export const PING = 6;
export const GOAWAY = 7;
export const HEADERS = 8;
export const WINDOW_UPDATE = 9;

export const FLAG_FIN = 0x01;

/** RST_STREAM status codes (§2.6.3). */
export const REFUSED_STREAM = 3;
export const CANCEL = 5;

/** kubectl and the kubelet copy 32 KiB at a time; a frame much larger than that is not theirs. */
export const MAX_FRAME = 1024 * 1024;
/** Compressed header bytes one direction of a session may carry (each stream adds a few). */
const MAX_HEADER_HISTORY = 512 * 1024;
/** A decoded header block larger than this is not a port-forward stream's. */
const MAX_HEADER_BLOCK = 64 * 1024;
const MAX_HEADER_OUTPUT = 8 * 1024 * 1024;

export class SpdyProtocolError extends Error {
  override readonly name = 'SpdyProtocolError';
}

/** §2.6.10.1: length-prefixed header names and methods, then common values. */
const DICTIONARY_WORDS = [
  'options',
  'head',
  'post',
  'put',
  'delete',
  'trace',
  'accept',
  'accept-charset',
  'accept-encoding',
  'accept-language',
  'accept-ranges',
  'age',
  'allow',
  'authorization',
  'cache-control',
  'connection',
  'content-base',
  'content-encoding',
  'content-language',
  'content-length',
  'content-location',
  'content-md5',
  'content-range',
  'content-type',
  'date',
  'etag',
  'expect',
  'expires',
  'from',
  'host',
  'if-match',
  'if-modified-since',
  'if-none-match',
  'if-range',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'pragma',
  'proxy-authenticate',
  'proxy-authorization',
  'range',
  'referer',
  'retry-after',
  'server',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'user-agent',
  'vary',
  'via',
  'warning',
  'www-authenticate',
  'method',
  'get',
  'status',
  '200 OK',
  'version',
  'HTTP/1.1',
  'url',
  'public',
  'set-cookie',
  'keep-alive',
  'origin',
];
const DICTIONARY_TAIL =
  '100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505' +
  '203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized' +
  '403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable' +
  'Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT' +
  'chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,' +
  'text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.';

export const SPDY_DICTIONARY: Buffer = Buffer.concat([
  ...DICTIONARY_WORDS.flatMap((w) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(w.length);
    return [len, Buffer.from(w, 'latin1')];
  }),
  Buffer.from(DICTIONARY_TAIL, 'latin1'),
]);

function adler32(buf: Buffer): number {
  let a = 1;
  let b = 0;
  for (const x of buf) {
    a = (a + x) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** RFC 1950 header: deflate with a 32 KiB window, FDICT set, then the dictionary's Adler-32. */
const ZLIB_HEADER = (() => {
  const h = Buffer.alloc(6);
  h[0] = 0x78;
  h[1] = 0xf9; // FDICT, and (0x78 * 256 + 0xf9) % 31 === 0
  h.writeUInt32BE(adler32(SPDY_DICTIONARY), 2);
  return h;
})();

const SYNC_MARK = Buffer.from([0x00, 0x00, 0x00, 0xff, 0xff]);

export type Frame =
  | {
      readonly control: true;
      readonly type: number;
      readonly flags: number;
      /** Everything after the 8-byte frame header. */
      readonly data: Buffer;
    }
  | { readonly control: false; readonly streamId: number; readonly flags: number; readonly data: Buffer };

/** Frames out of a byte stream cut anywhere (the tunnel's WebSocket messages). */
export class FrameReader {
  #buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: Frame[] = [];
    while (this.#buf.length >= 8) {
      const length = this.#buf.readUIntBE(5, 3);
      if (length > MAX_FRAME)
        throw new SpdyProtocolError(`a frame of ${length} bytes is larger than ${MAX_FRAME}`);
      if (this.#buf.length < 8 + length) break;
      const word = this.#buf.readUInt32BE(0);
      const flags = this.#buf[4]!;
      const data = Buffer.from(this.#buf.subarray(8, 8 + length));
      if (word & 0x80000000) {
        const version = (word >>> 16) & 0x7fff;
        if (version !== SPDY_VERSION) throw new SpdyProtocolError(`SPDY version ${version}, not 3`);
        out.push({ control: true, type: word & 0xffff, flags, data });
      } else out.push({ control: false, streamId: word & 0x7fffffff, flags, data });
      this.#buf = this.#buf.subarray(8 + length);
    }
    return out;
  }
}

export function encodeFrame(frame: Frame): Buffer {
  if (frame.data.length > 0xffffff) throw new SpdyProtocolError('a frame too large to encode');
  const head = Buffer.alloc(8);
  if (frame.control) head.writeUInt32BE((0x80000000 | (SPDY_VERSION << 16) | frame.type) >>> 0, 0);
  else head.writeUInt32BE(frame.streamId & 0x7fffffff, 0);
  head.writeUInt32BE(((frame.flags << 24) | frame.data.length) >>> 0, 4);
  return Buffer.concat([head, frame.data]);
}

export function dataFrame(streamId: number, data: Buffer, fin = false): Buffer {
  return encodeFrame({ control: false, streamId, flags: fin ? FLAG_FIN : 0, data });
}

export function rstStream(streamId: number, status: number): Buffer {
  const data = Buffer.alloc(8);
  data.writeUInt32BE(streamId & 0x7fffffff, 0);
  data.writeUInt32BE(status, 4);
  return encodeFrame({ control: true, type: RST_STREAM, flags: 0, data });
}

/** Where the header block starts in a control frame that has one; undefined for the others. */
export function headerBlockOffset(type: number): number | undefined {
  if (type === SYN_STREAM) return 10;
  if (type === SYN_REPLY || type === HEADERS) return 4;
  return undefined;
}

/** The stream a SYN_STREAM, SYN_REPLY, RST_STREAM, HEADERS or WINDOW_UPDATE frame is about. */
export function controlStreamId(frame: Frame & { control: true }): number | undefined {
  if ([SYN_STREAM, SYN_REPLY, RST_STREAM, HEADERS, WINDOW_UPDATE].includes(frame.type)) {
    if (frame.data.length < 4) throw new SpdyProtocolError(`control frame ${frame.type} is too short`);
    return frame.data.readUInt32BE(0) & 0x7fffffff;
  }
  return undefined;
}

export type HeaderList = readonly (readonly [string, string])[];

/** §2.6.10: a 32-bit count, then 32-bit-length-prefixed names and values. */
export function parseHeaderBlock(raw: Buffer): HeaderList {
  const out: [string, string][] = [];
  let at = 0;
  const u32 = () => {
    if (at + 4 > raw.length) throw new SpdyProtocolError('a header block ends early');
    const v = raw.readUInt32BE(at);
    at += 4;
    return v;
  };
  const str = () => {
    const len = u32();
    if (at + len > raw.length) throw new SpdyProtocolError('a header block ends early');
    const s = raw.toString('latin1', at, at + len);
    at += len;
    return s;
  };
  const count = u32();
  if (count > 1024) throw new SpdyProtocolError(`a header block with ${count} headers`);
  for (let i = 0; i < count; i++) out.push([str(), str()]);
  if (at !== raw.length) throw new SpdyProtocolError('a header block has bytes after its last header');
  return out;
}

export function encodeHeaderBlock(headers: HeaderList): Buffer {
  const parts: Buffer[] = [];
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    parts.push(b);
  };
  u32(headers.length);
  for (const [name, value] of headers) {
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, 'latin1');
    u32(n.length);
    parts.push(n);
    u32(v.length);
    parts.push(v);
  }
  return Buffer.concat(parts);
}

export function header(headers: HeaderList, name: string): string | undefined {
  return headers.find(([n]) => n.toLowerCase() === name)?.[1];
}

/**
 * One direction's header decompression context. Node's zlib has no documented synchronous
 * streaming inflate, so the compressed history is inflated again from its start for each new
 * block (blocks are a few bytes each; the history is bounded).
 */
export class HeaderInflater {
  readonly #history: Buffer[] = [];
  #size = 0;
  #produced = 0;

  inflate(block: Buffer): Buffer {
    this.#size += block.length;
    if (this.#size > MAX_HEADER_HISTORY)
      throw new SpdyProtocolError('more header bytes on one session than Airlock follows');
    this.#history.push(block);
    let all: Buffer;
    try {
      all = inflateSync(Buffer.concat(this.#history), {
        dictionary: SPDY_DICTIONARY,
        finishFlush: constants.Z_SYNC_FLUSH,
        maxOutputLength: MAX_HEADER_OUTPUT,
      });
    } catch (err) {
      throw new SpdyProtocolError(`a header block does not inflate: ${(err as Error).message}`);
    }
    const out = all.subarray(this.#produced);
    this.#produced = all.length;
    if (out.length > MAX_HEADER_BLOCK) throw new SpdyProtocolError('a header block is too large');
    return Buffer.from(out);
  }
}

/** One direction's header compression context, written as stored (uncompressed) deflate blocks. */
export class HeaderDeflater {
  #started = false;

  deflate(raw: Buffer): Buffer {
    const parts: Buffer[] = [];
    if (!this.#started) parts.push(ZLIB_HEADER);
    this.#started = true;
    for (let at = 0; at < raw.length || at === 0; at += 0xffff) {
      const chunk = raw.subarray(at, at + 0xffff);
      // BFINAL 0, BTYPE 00 (stored), then LEN and its one's complement, little-endian (RFC 1951 §3.2.4).
      const head = Buffer.alloc(5);
      head[0] = 0;
      head.writeUInt16LE(chunk.length, 1);
      head.writeUInt16LE(~chunk.length & 0xffff, 3);
      parts.push(head, chunk);
      if (raw.length === 0) break;
    }
    // An empty stored block ends each header block, as a sync flush does: a reader that has
    // emitted a block's data goes on to the next block header before returning, and must
    // find one within this frame.
    parts.push(SYNC_MARK);
    return Buffer.concat(parts);
  }
}

/** A control frame with its header block replaced by `headers`, encoded with `deflater`. */
export function withHeaders(
  frame: Frame & { control: true },
  headers: HeaderList,
  deflater: HeaderDeflater,
): Buffer {
  const offset = headerBlockOffset(frame.type);
  if (offset === undefined) throw new SpdyProtocolError(`control frame ${frame.type} has no headers`);
  const data = Buffer.concat([frame.data.subarray(0, offset), deflater.deflate(encodeHeaderBlock(headers))]);
  return encodeFrame({ ...frame, data });
}

/** Decodes the header block of a SYN_STREAM, SYN_REPLY or HEADERS frame. */
export function headersOf(frame: Frame & { control: true }, inflater: HeaderInflater): HeaderList {
  const offset = headerBlockOffset(frame.type);
  if (offset === undefined) throw new SpdyProtocolError(`control frame ${frame.type} has no headers`);
  if (frame.data.length < offset) throw new SpdyProtocolError(`control frame ${frame.type} is too short`);
  return parseHeaderBlock(inflater.inflate(frame.data.subarray(offset)));
}

export function synReply(
  streamId: number,
  headers: HeaderList,
  deflater: HeaderDeflater,
  fin = false,
): Buffer {
  const id = Buffer.alloc(4);
  id.writeUInt32BE(streamId & 0x7fffffff);
  return encodeFrame({
    control: true,
    type: SYN_REPLY,
    flags: fin ? FLAG_FIN : 0,
    data: Buffer.concat([id, deflater.deflate(encodeHeaderBlock(headers))]),
  });
}
