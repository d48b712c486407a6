/**
 * Request signatures, both ways.
 *
 * Outbound webhooks: `X-Airlock-Timestamp: <unix seconds>` and
 * `X-Airlock-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`. Signing the timestamp
 * with the body lets a receiver refuse replays older than its window.
 *
 * Inbound Slack interactivity: `X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:<ts>:<body>">`
 * (https://api.slack.com/authentication/verifying-requests-from-slack).
 *
 * Comparisons are constant-time over equal-length digests, so a forger learns nothing from how
 * long a refusal takes.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const WEBHOOK_TIMESTAMP_HEADER = 'x-airlock-timestamp';
export const WEBHOOK_SIGNATURE_HEADER = 'x-airlock-signature';
export const SLACK_TIMESTAMP_HEADER = 'x-slack-request-timestamp';
export const SLACK_SIGNATURE_HEADER = 'x-slack-signature';
/** Both Airlock and Slack refuse signatures older (or newer) than five minutes. */
export const DEFAULT_TOLERANCE_SEC = 300;

const HEX_SHA256 = /^[0-9a-f]{64}$/;
const UNIX_SECONDS = /^\d{1,12}$/;

function hmacHex(secret: string, text: string | Buffer): string {
  return createHmac('sha256', secret).update(text).digest('hex');
}

/** Equal-length hex digests compared in constant time; anything malformed is simply false. */
function sameDigest(expectedHex: string, givenHex: string): boolean {
  if (!HEX_SHA256.test(givenHex)) return false;
  return timingSafeEqual(Buffer.from(expectedHex, 'hex'), Buffer.from(givenHex, 'hex'));
}

function fresh(timestamp: string, toleranceSec: number, nowMs: number): boolean {
  if (!UNIX_SECONDS.test(timestamp)) return false;
  return Math.abs(nowMs / 1000 - Number(timestamp)) <= toleranceSec;
}

function concat(prefix: string, body: string | Buffer): string | Buffer {
  return typeof body === 'string' ? prefix + body : Buffer.concat([Buffer.from(prefix, 'utf8'), body]);
}

/** Headers for one delivery attempt of `body`. */
export function signWebhook(
  secret: string,
  body: string,
  nowMs: number = Date.now(),
): { timestamp: string; signature: string } {
  const timestamp = String(Math.floor(nowMs / 1000));
  return { timestamp, signature: `sha256=${hmacHex(secret, `${timestamp}.${body}`)}` };
}

/**
 * For receivers of Airlock webhooks: true when `signature` (the X-Airlock-Signature header) is
 * the HMAC of `${timestamp}.${body}` under `secret` and the timestamp is within
 * `toleranceSec` of now. Pass the body exactly as received (before JSON parsing).
 */
export function verifyWebhookSignature(
  secret: string,
  timestamp: string | number | undefined | null,
  body: string | Buffer,
  signature: string | undefined | null,
  toleranceSec: number = DEFAULT_TOLERANCE_SEC,
  nowMs: number = Date.now(),
): boolean {
  if (timestamp === undefined || timestamp === null || typeof signature !== 'string') return false;
  const ts = String(timestamp);
  if (!fresh(ts, toleranceSec, nowMs)) return false;
  if (!signature.startsWith('sha256=')) return false;
  return sameDigest(hmacHex(secret, concat(`${ts}.`, body)), signature.slice('sha256='.length));
}

export type SlackVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly why: 'stale' | 'signature' };

/** Slack's v0 request signature over the raw body, within a replay window. */
export function verifySlackSignature(
  signingSecret: string,
  timestamp: string | undefined,
  rawBody: string | Buffer,
  signature: string | undefined,
  toleranceSec: number = DEFAULT_TOLERANCE_SEC,
  nowMs: number = Date.now(),
): SlackVerdict {
  if (timestamp === undefined || !fresh(timestamp, toleranceSec, nowMs)) return { ok: false, why: 'stale' };
  if (signature === undefined || !signature.startsWith('v0=')) return { ok: false, why: 'signature' };
  const expected = hmacHex(signingSecret, concat(`v0:${timestamp}:`, rawBody));
  return sameDigest(expected, signature.slice(3)) ? { ok: true } : { ok: false, why: 'signature' };
}

/** What Slack would send, for tests and for tools that replay callbacks. */
export function signSlackRequest(
  signingSecret: string,
  rawBody: string,
  nowMs: number = Date.now(),
): { timestamp: string; signature: string } {
  const timestamp = String(Math.floor(nowMs / 1000));
  return { timestamp, signature: `v0=${hmacHex(signingSecret, `v0:${timestamp}:${rawBody}`)}` };
}
