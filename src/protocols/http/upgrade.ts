/**
 * Protocol upgrades (WebSocket) on `http` connections: the upgrade is one action of kind
 * `session`, judged like any request (held until approved, or refused with the reason). Once
 * allowed, the upgrade request goes upstream with the held credential and the two sockets are
 * joined; the frames are passed through, not decoded, and the session's recording notes the
 * upgrade. Kubernetes exec/attach streams are not joined this way: kubernetes/stream.ts decodes
 * and records them.
 * https://www.rfc-editor.org/rfc/rfc6455#section-4
 */

import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Principal } from '../../core/action.ts';
import type { GatePort } from '../../core/gate-types.ts';
import type { Authenticator } from '../../core/identity/authenticator.ts';
import type { HttpConnection } from '../../core/policy/connections/http.ts';
import type { Policy, PolicyConnection } from '../../core/policy/policy.ts';
import type { Recorder } from '../../core/recording/types.ts';
import { authenticateCaller } from './caller-auth.ts';
import { decodedPath } from './classify.ts';
import { upstreamHeaders } from './headers.ts';
import { hostRoutes, routeByHost } from './host-route.ts';
import { handleKubernetesUpgrade } from './kubernetes/stream.ts';
import { type Logger, normalizeTarget, parseRoute } from './proxy.ts';

export interface UpgradeContext {
  readonly policy: Policy;
  readonly gate: GatePort;
  readonly tokens: Authenticator;
  /** Terminal recordings of kubectl exec/attach. */
  readonly recorder?: Recorder | undefined;
  readonly log?: Logger | undefined;
  /** Opens (or finds) the caller's session; returns its id and a recorder of events. */
  session(
    socket: Socket,
    protocol: string,
    connection: PolicyConnection,
    principal: Principal,
    source: string,
  ): Promise<{ id: string; record(type: string, fields: Record<string, unknown>): void }>;
}

function answer(
  socket: Socket,
  status: number,
  reason: string,
  body: string,
  type = 'text/plain; charset=utf-8',
): void {
  if (!socket.writable) return;
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: ${type}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

export async function handleUpgrade(
  ctx: UpgradeContext,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
): Promise<void> {
  socket.on('error', () => socket.destroy());
  const route = routeByHost(req, hostRoutes(ctx.policy)) ?? parseRoute(req.url ?? '/');
  if (route?.prefix === 'kubernetes') {
    await handleKubernetesUpgrade(ctx, req, socket, head, route);
    return;
  }
  const connection = route ? ctx.policy.connections.get(route.name) : undefined;
  if (route?.prefix !== 'http' || connection?.type !== 'http') {
    answer(
      socket,
      404,
      'Not Found',
      `airlock: upgrades are proxied only on http connections (/http/NAME/...)\n`,
    );
    return;
  }
  const source = `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
  const auth = await authenticateCaller(ctx, req, source, 'http', connection.name);
  if ('error' in auth) {
    answer(socket, 401, 'Unauthorized', `airlock: ${auth.error.describe()}\n`);
    return;
  }
  const principal = auth.principal;
  const target = normalizeTarget(route.target);
  const path = decodedPath(target);
  const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
  const session = await ctx.session(socket, 'http', connection, principal, source);
  const summary = `${upgrade || 'upgrade'} session ${target}`;
  const outcome = await ctx.gate
    .decide({
      protocol: 'http',
      connection: connection.name,
      principal,
      sessionId: session.id,
      source,
      kind: path === undefined ? 'unknown' : 'session',
      summary,
      normalized: `UPGRADE ${upgrade} ${target}`,
      parts: [
        {
          kind: path === undefined ? 'unknown' : 'session',
          text: `GET ${target} (upgrade: ${upgrade})`,
          statement: 'UPGRADE',
          why:
            path === undefined
              ? 'the path could not be decoded unambiguously'
              : `a ${upgrade} session: its messages are not inspected`,
          fields: { method: ['GET'], ...(path === undefined ? {} : { path: [path] }) },
        },
      ],
      attributes: { method: 'GET', target, upgrade },
    })
    .catch((err: unknown) => err);
  if (!outcome || outcome instanceof Error || !('verdict' in (outcome as object))) {
    answer(socket, 503, 'Service Unavailable', 'airlock: the upgrade could not be judged\n');
    return;
  }
  const o = outcome as Awaited<ReturnType<GatePort['decide']>>;
  if (o.verdict === 'deny') {
    session.record('upgrade', { target, upgrade, verdict: 'deny', reason: o.reason });
    answer(socket, 403, 'Forbidden', `airlock: ${o.reason}\n`);
    return;
  }
  if (o.verdict === 'hold') {
    if (o.mode === 'retry') {
      session.record('upgrade', { target, upgrade, verdict: 'hold', request: o.request.id });
      answer(socket, 403, 'Forbidden', `airlock: ${o.message} — connect again once it is approved\n`);
      return;
    }
    const abort = new AbortController();
    const onClose = () => abort.abort();
    socket.once('close', onClose);
    const settled = await ctx.gate.settled(o.request.id, abort.signal);
    socket.off('close', onClose);
    if (settled.status !== 'approved') {
      session.record('upgrade', { target, upgrade, verdict: settled.status, request: o.request.id });
      answer(socket, 403, 'Forbidden', `airlock: ${settled.reason}\n`);
      return;
    }
    try {
      await ctx.gate.release(o.request.id);
    } catch {
      answer(socket, 503, 'Service Unavailable', 'airlock: the approval could not be recorded\n');
      return;
    }
  }
  join(connection, req, socket, head, target, session.record, upgrade);
}

/** Joins the caller's socket to the upstream's once the upgrade is allowed; nothing is decoded. */
export function join(
  connection: Pick<HttpConnection, 'name' | 'upstream' | 'credential'>,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  target: string,
  record: (type: string, fields: Record<string, unknown>) => void,
  upgrade: string,
): void {
  const url = new URL(connection.upstream.url);
  const secure = url.protocol === 'https:';
  const port = Number(url.port || (secure ? 443 : 80));
  const upstream: Socket = secure
    ? tlsConnect({
        host: url.hostname,
        port,
        servername: url.hostname,
        rejectUnauthorized: !connection.upstream.insecureSkipVerify,
        ...(connection.upstream.ca ? { ca: readFileSync(connection.upstream.ca, 'utf8') } : {}),
      })
    : netConnect({ host: url.hostname, port });
  const headers = upstreamHeaders(req.headers, connection.credential, undefined);
  // The upgrade itself is hop-by-hop but is what this request is for.
  headers.connection = 'Upgrade';
  headers.upgrade = String(req.headers.upgrade ?? '');
  headers.host = url.host;
  const lines = [`${req.method ?? 'GET'} ${url.pathname.replace(/\/+$/, '')}${target} HTTP/1.1`];
  for (const [k, v] of Object.entries(headers))
    for (const value of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${value}`);
  const started = Date.now();
  upstream.once(secure ? 'secureConnect' : 'connect', () => {
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length > 0) upstream.write(head);
    socket.pipe(upstream);
    upstream.pipe(socket);
    record('upgrade', { target, upgrade, verdict: 'allow' });
  });
  upstream.on('error', () => {
    answer(socket, 502, 'Bad Gateway', `airlock: ${connection.name} could not be reached\n`);
    socket.destroy();
  });
  const end = () => {
    upstream.destroy();
    socket.destroy();
  };
  socket.once('close', () => {
    record('upgrade-closed', { target, ms: Date.now() - started });
    end();
  });
  upstream.once('close', end);
}
