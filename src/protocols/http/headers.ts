/**
 * Which headers cross the proxy. Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection
 * and are never forwarded; the caller's Authorization carries their Airlock token and is
 * replaced by the credential Airlock holds.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { HttpCredential } from '../../core/policy/connections/http.ts';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'expect',
]);

const NONE: ReadonlySet<string> = new Set();
const KEEP_ALIVE: ReadonlySet<string> = new Set(['keep-alive']);
const CLOSE: ReadonlySet<string> = new Set(['close']);

function connectionTokens(value: string | string[] | undefined): ReadonlySet<string> {
  // Most messages carry one of these; the sets are shared rather than built per message.
  if (value === undefined) return NONE;
  if (value === 'keep-alive') return KEEP_ALIVE;
  if (value === 'close') return CLOSE;
  const text = Array.isArray(value) ? value.join(',') : (value ?? '');
  return new Set(
    text
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean),
  );
}

/** Headers to send upstream: hop-by-hop and the caller's credentials removed, ours added. */
export function upstreamHeaders(
  incoming: IncomingHttpHeaders,
  credential: HttpCredential | undefined,
  bodyLength: number | undefined,
): Record<string, string | string[]> {
  const named = connectionTokens(incoming.connection);
  const out: Record<string, string | string[]> = {};
  const replaced = credential?.type === 'header' ? credential.name.toLowerCase() : undefined;
  for (const key of Object.keys(incoming)) {
    const value = incoming[key];
    if (value === undefined) continue;
    const k = key.toLowerCase();
    if (HOP_BY_HOP.has(k) || named.has(k) || k === 'authorization' || k === 'content-length') continue;
    if (k === replaced) continue;
    out[k] = value;
  }
  if (bodyLength !== undefined) out['content-length'] = String(bodyLength);
  if (credential) {
    switch (credential.type) {
      case 'bearer':
        out.authorization = `Bearer ${credential.token.reveal()}`;
        break;
      case 'basic':
        out.authorization = `Basic ${Buffer.from(`${credential.username}:${credential.password.reveal()}`).toString('base64')}`;
        break;
      case 'header':
        out[credential.name.toLowerCase()] = credential.value.reveal();
        break;
    }
  }
  return out;
}

/** Headers to send back to the caller: hop-by-hop removed. */
export function callerHeaders(
  upstream: Record<string, string | string[] | undefined>,
): Record<string, string | string[]> {
  const named = connectionTokens(upstream.connection);
  const out: Record<string, string | string[]> = {};
  for (const key of Object.keys(upstream)) {
    const value = upstream[key];
    if (value === undefined) continue;
    const k = key.toLowerCase();
    if ((HOP_BY_HOP.has(k) && k !== 'host') || named.has(k)) continue;
    out[k] = value;
  }
  return out;
}

/** The Airlock token from `Authorization: Bearer` or, for clients that only do Basic (git), its password. */
export function callerToken(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const m = /^(\w+)\s+(.+)$/.exec(authorization.trim());
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme === 'bearer') return m[2]!.trim();
  if (scheme === 'basic') {
    const decoded = Buffer.from(m[2]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? undefined : decoded.slice(colon + 1);
  }
  return undefined;
}
