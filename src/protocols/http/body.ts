/**
 * Request bodies Airlock must see before it can judge a request (their hash is part of what an
 * approval is bound to). They are buffered up to a bound; a larger body is refused rather than
 * forwarded unjudged.
 */
import type { IncomingMessage } from 'node:http';
import { AirlockError } from '../../core/errors.ts';

/** True when the request carries a body (RFC 9112 §6.3: Content-Length or Transfer-Encoding). */
export function hasBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const length = req.headers['content-length'];
  return length !== undefined && length !== '0';
}

/**
 * The whole body, or a refusal: larger than `limit` (413), or not all there within `timeoutMs`
 * (408; a body sent a byte at a time would otherwise hold its socket and slot forever).
 */
export function readBody(req: IncomingMessage, limit: number, timeoutMs = 0): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            cleanup();
            reject(
              new AirlockError(
                'AIRLOCK_E_BAD_REQUEST',
                `the request body did not arrive within ${Math.round(timeoutMs / 1000)} s`,
                { hint: 'send the body at once, or raise limits.write_timeout', status: 408 },
              ),
            );
          }, timeoutMs)
        : undefined;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.resume();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onAborted = () => onError(new Error('the caller closed the connection while sending the body'));
    const cleanup = () => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}

function tooLarge(limit: number): AirlockError {
  return new AirlockError(
    'AIRLOCK_E_MESSAGE_TOO_LARGE',
    `the request body is larger than ${limit} bytes, the most Airlock inspects for this connection`,
    { hint: 'send a smaller body, or raise max_body on the connection', status: 413 },
  );
}
