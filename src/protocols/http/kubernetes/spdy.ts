/**
 * exec/attach over SPDY on a connection with `spdy: unrecorded`: judged like the WebSocket
 * stream (held, denied with the reason), then the two sockets are joined and the SPDY frames
 * pass through undecoded. The session's event recording says that the stream was not recorded.
 * https://kubernetes.io/docs/reference/using-api/api-concepts/
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Action } from '../../../core/action.ts';
import type { KubernetesConnection } from '../../../core/policy/connections/kubernetes.ts';
import { join, type UpgradeContext } from '../upgrade.ts';
import { refuseUpgrade as refuse } from './status.ts';

export interface SpdyFacts {
  readonly req: IncomingMessage;
  readonly socket: Socket;
  readonly head: Buffer;
  readonly target: string;
  readonly connection: KubernetesConnection;
  readonly action: Action;
  readonly record: (type: string, fields: Record<string, unknown>) => void;
}

export async function spdyPassThrough(ctx: UpgradeContext, f: SpdyFacts): Promise<void> {
  const { socket, target } = f;
  const upgrade = String(f.req.headers.upgrade ?? '');
  const outcome = await ctx.gate.decide(f.action).catch(() => undefined);
  if (!outcome) {
    refuse(socket, 503, 'ServiceUnavailable', 'airlock: the stream could not be judged');
    return;
  }
  if (outcome.verdict === 'deny') {
    f.record('stream', { target, upgrade, verdict: 'deny', reason: outcome.reason });
    refuse(socket, 403, 'Forbidden', `airlock: ${outcome.reason}`);
    return;
  }
  if (outcome.verdict === 'hold') {
    const id = outcome.request.id;
    if (outcome.mode === 'retry') {
      f.record('stream', { target, upgrade, verdict: 'hold', request: id });
      refuse(
        socket,
        403,
        'Forbidden',
        `airlock: ${outcome.message} — run the same command again once it is approved`,
      );
      return;
    }
    const abort = new AbortController();
    const onClose = () => abort.abort();
    socket.once('close', onClose);
    const settled = await ctx.gate.settled(id, abort.signal);
    socket.off('close', onClose);
    if (settled.status !== 'approved') {
      f.record('stream', { target, upgrade, verdict: settled.status, request: id });
      refuse(socket, 403, 'Forbidden', `airlock: ${settled.reason}`);
      return;
    }
    try {
      await ctx.gate.release(id);
    } catch {
      refuse(socket, 503, 'ServiceUnavailable', 'airlock: the approval could not be recorded');
      return;
    }
  }
  f.record('stream', { target, upgrade, verdict: 'allow', recorded: false });
  join(f.connection, f.req, socket, f.head, target, f.record, upgrade);
}
