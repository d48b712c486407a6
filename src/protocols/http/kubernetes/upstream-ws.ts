/**
 * The WebSocket Airlock opens to the API server for a stream kubectl opened to Airlock: same
 * path and query, kubectl's own headers minus hop-by-hop ones and its credentials, the
 * credential Airlock holds, the connection's CA.
 * https://www.rfc-editor.org/rfc/rfc6455#section-4.1
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { WebSocket } from 'ws';
import type { KubernetesConnection } from '../../../core/policy/connections/kubernetes.ts';
import { upstreamHeaders } from '../headers.ts';

/** Largest single message either side may send; kubectl and the API server send 32 KiB or less. */
export const MAX_MESSAGE = 4 * 1024 * 1024;

/**
 * `protocol` is offered as is: Kubernetes names some subprotocols with characters the
 * WebSocket token grammar leaves out (`SPDY/3.1+portforward.k8s.io`), which `ws` refuses to
 * offer itself, so those go in the header here and are checked by the caller on `upgrade`.
 */
export function openUpstream(
  connection: KubernetesConnection,
  req: IncomingMessage,
  target: string,
  protocol: string,
): WebSocket {
  const base = new URL(connection.upstream.url);
  const url = `${base.protocol === 'https:' ? 'wss:' : 'ws:'}//${base.host}${base.pathname.replace(/\/+$/, '')}${target}`;
  const headers = upstreamHeaders(req.headers, connection.credential, undefined);
  for (const h of Object.keys(headers)) if (h.startsWith('sec-websocket-')) delete headers[h];
  headers['sec-websocket-protocol'] = protocol;
  return new WebSocket(url, {
    headers: headers as Record<string, string>,
    perMessageDeflate: false,
    maxPayload: MAX_MESSAGE,
    handshakeTimeout: 30_000,
    rejectUnauthorized: !connection.upstream.insecureSkipVerify,
    ...(connection.upstream.ca ? { ca: readFileSync(connection.upstream.ca, 'utf8') } : {}),
  });
}

/**
 * Checks the API server chose `protocol`, then hides the header from `ws` (which would refuse
 * a subprotocol it did not offer itself). Call from the `upgrade` event.
 */
export function acceptProtocol(ws: WebSocket, res: IncomingMessage, protocol: string): boolean {
  if (res.headers['sec-websocket-protocol'] !== protocol) {
    ws.terminate();
    return false;
  }
  delete res.headers['sec-websocket-protocol'];
  return true;
}
