/**
 * The stream of COPY TO in binary format, read tuple by tuple so single fields can be masked.
 * https://www.postgresql.org/docs/current/sql-copy.html ("Binary Format")
 *
 * The stream is a header (11-byte signature, int32 flags, int32 extension length and the
 * extension), tuples (int16 field count, then per field an int32 length, -1 for NULL, and that
 * many bytes) and a trailer (a field count of -1). CopyData messages cut it anywhere, so bytes
 * are held across messages until a whole item is there; how much may be held is bounded, since
 * a tuple is only known to end once its last field has arrived.
 */

export const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/** The stream cannot be read as binary COPY; nothing held may be sent on. */
export class CopyBinaryError extends Error {}

export type BinaryCopyItem =
  | { readonly t: 'header'; readonly raw: Buffer }
  | {
      readonly t: 'tuple';
      readonly raw: Buffer;
      /** Each field's bytes (views into raw); null for SQL NULL. */
      readonly fields: readonly (Buffer | null)[];
    }
  | { readonly t: 'trailer'; readonly raw: Buffer };

/** Bytes needed from the item's start before it can be read further. */
type Parsed = { readonly item: BinaryCopyItem; readonly end: number } | number;

export class BinaryCopyReader {
  readonly #max: number;
  #chunks: Buffer[] = [];
  #held = 0;
  #need = 0;
  #header = false;
  #done = false;

  /** `max`: the most bytes one item may take before the stream is refused. */
  constructor(max: number) {
    this.#max = max;
  }

  /** The trailer was read: the stream is complete. */
  get done(): boolean {
    return this.#done;
  }

  /** Bytes of an item not yet complete. */
  get held(): number {
    return this.#held;
  }

  /** The items this chunk completes, in order. */
  push(chunk: Buffer): BinaryCopyItem[] {
    if (chunk.length === 0) return [];
    if (this.#done) throw new CopyBinaryError('binary COPY data after its trailer');
    this.#chunks.push(chunk);
    this.#held += chunk.length;
    if (this.#held > this.#max) throw tooLarge(this.#max);
    if (this.#held < this.#need) return [];
    const buf = this.#chunks.length === 1 ? chunk : Buffer.concat(this.#chunks, this.#held);
    const out: BinaryCopyItem[] = [];
    let at = 0;
    this.#need = 0;
    while (at < buf.length) {
      const r = this.#header ? tuple(buf, at) : header(buf, at);
      if (typeof r === 'number') {
        if (r > this.#max) throw tooLarge(this.#max);
        this.#need = r;
        break;
      }
      out.push(r.item);
      at = r.end;
      if (r.item.t === 'header') this.#header = true;
      else if (r.item.t === 'trailer') {
        this.#done = true;
        if (at < buf.length) throw new CopyBinaryError('binary COPY data after its trailer');
      }
    }
    // What is left is the start of one item; copied so the rest of the message can be freed.
    const rest = at === 0 ? buf : Buffer.from(buf.subarray(at));
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#held = rest.length;
    return out;
  }
}

function tooLarge(max: number): CopyBinaryError {
  return new CopyBinaryError(`a binary COPY tuple is larger than ${max} bytes`);
}

function header(buf: Buffer, at: number): Parsed {
  const avail = buf.length - at;
  const sig = Math.min(avail, SIGNATURE.length);
  if (buf.compare(SIGNATURE, 0, sig, at, at + sig) !== 0)
    throw new CopyBinaryError('binary COPY data does not start with its signature');
  if (avail < 19) return 19;
  const flags = buf.readUInt32BE(at + 11);
  // Bit 16 (OIDs in the data, before PostgreSQL 12) and bits 17-31 change how tuples read.
  if ((flags & 0xffff0000) !== 0)
    throw new CopyBinaryError(`binary COPY header has flags this reader does not know (${flags})`);
  const ext = buf.readInt32BE(at + 15);
  if (ext < 0) throw new CopyBinaryError('binary COPY header extension has a negative length');
  const end = 19 + ext;
  if (avail < end) return end;
  return { item: { t: 'header', raw: buf.subarray(at, at + end) }, end: at + end };
}

function tuple(buf: Buffer, at: number): Parsed {
  if (buf.length - at < 2) return 2;
  const n = buf.readInt16BE(at);
  if (n === -1) return { item: { t: 'trailer', raw: buf.subarray(at, at + 2) }, end: at + 2 };
  if (n < 0) throw new CopyBinaryError(`binary COPY tuple has a field count of ${n}`);
  const fields: (Buffer | null)[] = [];
  let p = at + 2;
  for (let i = 0; i < n; i++) {
    if (buf.length - p < 4) return p + 4 - at;
    const len = buf.readInt32BE(p);
    p += 4;
    if (len === -1) {
      fields.push(null);
      continue;
    }
    if (len < 0) throw new CopyBinaryError(`binary COPY field has a length of ${len}`);
    if (buf.length - p < len) return p + len - at;
    fields.push(buf.subarray(p, p + len));
    p += len;
  }
  return { item: { t: 'tuple', raw: buf.subarray(at, p), fields }, end: p };
}

/** A tuple in binary COPY form. */
export function encodeTuple(fields: readonly (Buffer | null)[]): Buffer {
  let size = 2;
  for (const f of fields) size += 4 + (f ? f.length : 0);
  const out = Buffer.allocUnsafe(size);
  out.writeInt16BE(fields.length, 0);
  let p = 2;
  for (const f of fields) {
    out.writeInt32BE(f ? f.length : -1, p);
    p += 4;
    if (f) p += f.copy(out, p);
  }
  return out;
}
