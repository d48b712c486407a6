/**
 * The response body as the caller received it, kept for the session recording: the first bytes
 * up to a bound per exchange (the rest only counted), decoded when it came compressed, recorded
 * as text when its type is textual, and with every credential that could appear in it (the one
 * Airlock holds for the upstream, the caller's own token) replaced before it is written.
 */
import type { Readable } from 'node:stream';
import { brotliDecompressSync, constants, gunzipSync, inflateSync } from 'node:zlib';

const TEXTUAL = /json|^text\/|xml|javascript|x-www-form-urlencoded|yaml|csv/i;

/** Decoders that accept a body cut short (the capture is only its first bytes). */
const PARTIAL_DECODERS: Readonly<Record<string, (b: Buffer, limit: number) => Buffer>> = {
  gzip: (b, limit) => gunzipSync(b, { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: limit }),
  'x-gzip': (b, limit) => gunzipSync(b, { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: limit }),
  deflate: (b, limit) => inflateSync(b, { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: limit }),
  br: (b, limit) =>
    brotliDecompressSync(b, {
      finishFlush: constants.BROTLI_OPERATION_FLUSH,
      maxOutputLength: limit,
    }),
};

const MAX_DECODED = 64 * 1024 * 1024;

export const CREDENTIAL_MARK = '[credential]';

/** `text` with every credential (of 4 characters or more) in it replaced by the mark. */
export function withoutCredentials(text: string, credentials: readonly string[]): string {
  for (const c of credentials)
    if (c.length >= 4 && text.includes(c)) text = text.split(c).join(CREDENTIAL_MARK);
  return text;
}

export class BodyCapture {
  readonly #limit: number;
  readonly #chunks: Buffer[] = [];
  #kept = 0;
  #total = 0;
  #type = '';
  #encoding = 'identity';

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** The body's type and content coding as sent to the caller. */
  describe(contentType: unknown, contentEncoding: unknown): void {
    this.#type = String(contentType ?? '');
    this.#encoding = String(contentEncoding ?? 'identity')
      .trim()
      .toLowerCase();
  }

  add(chunk: Buffer): void {
    this.#total += chunk.length;
    if (this.#kept >= this.#limit) return;
    const part = chunk.subarray(0, this.#limit - this.#kept);
    this.#chunks.push(Buffer.from(part));
    this.#kept += part.length;
  }

  /** Captures what `stream` emits, alongside whatever else reads it. */
  watch(stream: Readable): void {
    stream.on('data', (chunk: Buffer) => this.add(chunk));
  }

  /** The recording's `response` fields; `secrets` are replaced wherever they appear. */
  record(secrets: readonly string[]): Record<string, unknown> {
    const out: Record<string, unknown> = { bytes: this.#total };
    if (this.#total === 0 || this.#limit <= 0) return out;
    if (!TEXTUAL.test(this.#type)) {
      out.body_omitted = `not text (${this.#type || 'untyped'})`;
      return out;
    }
    let raw: Buffer = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#kept);
    let truncated = this.#total > this.#kept;
    if (this.#encoding !== 'identity') {
      const decode = PARTIAL_DECODERS[this.#encoding];
      if (!decode) {
        out.body_omitted = `encoded (${this.#encoding})`;
        return out;
      }
      try {
        // The first bytes of a compressed body may expand far: bounded, then cut to the limit.
        raw = decode(raw, Math.min(this.#limit * 1024, MAX_DECODED));
      } catch {
        out.body_omitted = `encoded (${this.#encoding}), not decoded`;
        return out;
      }
      if (raw.length > this.#limit) truncated = true;
    }
    out.body = withoutCredentials(raw.toString('utf8', 0, Math.min(raw.length, this.#limit)), secrets);
    if (truncated) out.truncated = true;
    return out;
  }
}
