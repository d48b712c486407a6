/**
 * Git pkt-line framing: a 4-hex-digit length (including itself) then the payload; `0000` flush,
 * `0001` delimiter, `0002` response end. Written by hand because the push path must see the
 * ref-update commands before the pack, and no maintained JavaScript library does only this.
 * https://git-scm.com/docs/protocol-common#_pkt_line_format
 */

export const MAX_PKT = 65520;

export type Pkt =
  | { readonly type: 'data'; readonly payload: Buffer }
  | { readonly type: 'flush' }
  | { readonly type: 'delim' }
  | { readonly type: 'response-end' };

export class PktLineError extends Error {}

/** Incremental reader: feed bytes as they arrive, in any split; take whole packets out. */
export class PktLineReader {
  #buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Pkt[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: Pkt[] = [];
    for (;;) {
      const p = this.#next();
      if (!p) break;
      out.push(p);
    }
    return out;
  }

  /** Bytes received but not yet framed (e.g. the pack after the commands' flush). */
  rest(): Buffer {
    return this.#buf;
  }

  #next(): Pkt | undefined {
    if (this.#buf.length < 4) return undefined;
    const head = this.#buf.toString('latin1', 0, 4);
    if (!/^[0-9a-f]{4}$/i.test(head))
      throw new PktLineError(`bad pkt-line length "${head.replace(/[^\x20-\x7e]/g, '?')}"`);
    const len = Number.parseInt(head, 16);
    if (len === 0 || len === 1 || len === 2) {
      this.#buf = this.#buf.subarray(4);
      return { type: len === 0 ? 'flush' : len === 1 ? 'delim' : 'response-end' };
    }
    if (len < 4 || len > MAX_PKT) throw new PktLineError(`pkt-line length ${len} is out of range`);
    if (this.#buf.length < len) return undefined;
    const payload = Buffer.from(this.#buf.subarray(4, len));
    this.#buf = this.#buf.subarray(len);
    return { type: 'data', payload };
  }
}

export function pkt(payload: string | Buffer): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  if (data.length + 4 > MAX_PKT) throw new PktLineError('pkt-line payload too long');
  return Buffer.concat([Buffer.from((data.length + 4).toString(16).padStart(4, '0')), data]);
}

export const FLUSH = Buffer.from('0000');

/**
 * Side-band framing (band 1 data, 2 progress, 3 fatal error), split to the side-band-64k limit.
 * https://git-scm.com/docs/protocol-capabilities#_side_band_side_band_64k
 */
export function sideband(band: 1 | 2 | 3, data: Buffer | string): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const parts: Buffer[] = [];
  const max = MAX_PKT - 5;
  for (let i = 0; i < bytes.length; i += max)
    parts.push(pkt(Buffer.concat([Buffer.from([band]), bytes.subarray(i, i + max)])));
  return Buffer.concat(parts);
}
