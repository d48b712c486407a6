/**
 * The HTTP bits webhook and Slack deliveries share: bounded reads of a peer's answer (a peer
 * must not make Airlock buffer an unbounded body), failure text without secrets, and which
 * statuses are worth another attempt.
 */

/** Reads at most `max` bytes of the body as UTF-8 and discards the rest. */
export async function readSome(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < max) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return Buffer.concat(chunks).subarray(0, max).toString('utf8');
}

/** Drains nothing: frees the connection for reuse without reading the body. */
export async function discard(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => {});
}

/** 408, 429 and 5xx may succeed later; other statuses will not. */
export function retryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * One line about a thrown error (fetch wraps the socket error in `cause`), with every secret
 * value replaced, so the delivery log and the audit log can show it.
 */
export function describeError(err: unknown, secrets: readonly string[] = []): string {
  const e = err as { name?: string; message?: string; code?: string; cause?: unknown } | undefined;
  let text: string;
  if (e?.name === 'TimeoutError') text = 'timed out';
  else if (e?.name === 'AbortError') text = 'aborted';
  else {
    text = e?.message ?? String(err);
    const cause = e?.cause as { message?: string; code?: string } | undefined;
    if (cause?.message && !text.includes(cause.message)) text += `: ${cause.message}`;
    else if (e?.code && !text.includes(e.code)) text += ` (${e.code})`;
  }
  return redact(text.replace(/\s+/g, ' ').trim(), secrets).slice(0, 300);
}

/** `text` with each secret (and its URL-encoded form) replaced by `[redacted]`. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) {
    if (s.length < 4) continue;
    for (const form of new Set([s, encodeURIComponent(s)])) out = out.split(form).join('[redacted]');
  }
  return out;
}

/** An URL for display: origin and path, without credentials or query (which may hold tokens). */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}
