/**
 * SFTP between a caller and the host, one request at a time through the Gate: requests that
 * need a decision are judged in order (later ones wait behind a held one, so replies never
 * overtake the requests they answer); refused ones are answered by Airlock with
 * SSH_FX_PERMISSION_DENIED and the reason, and never reach the host. Both directions are
 * framed so an injected reply always lands between whole packets.
 */
import type { ClientChannel, ServerChannel } from 'ssh2';
import type { ActionPart } from '../../core/action.ts';
import { classifySftp, PacketReader, permissionDenied, SftpProtocolError } from './sftp.ts';

export interface SftpRelayOptions {
  judge(
    parts: readonly ActionPart[],
    summary: string,
    normalized: string,
    attributes: Record<string, unknown>,
  ): Promise<{ ok: true } | { ok: false; reason: string }>;
  readonly log?: { warn(o: object, msg?: string): void } | undefined;
  readonly sessionId: string;
}

/** Caller bytes held back while a request waits; beyond this the caller is paused. */
const MAX_PENDING = 4 * 1024 * 1024;

export function runSftp(caller: ServerChannel, host: ClientChannel, opts: SftpRelayOptions): void {
  const fromCaller = new PacketReader();
  const fromHost = new PacketReader();
  const pending: Buffer[] = [];
  let pendingBytes = 0;
  let pumping = false;
  let closed = false;

  const shut = (why: string) => {
    if (closed) return;
    closed = true;
    opts.log?.warn({ session: opts.sessionId, why }, 'sftp relay closed');
    caller.close();
    host.close();
  };

  const toCaller = (packet: Buffer) => {
    if (!caller.write(packet)) {
      host.pause();
      caller.once('drain', () => host.resume());
    }
  };

  host.on('data', (chunk: Buffer) => {
    fromHost.push(chunk);
    try {
      for (let p = fromHost.next(); p; p = fromHost.next()) toCaller(p);
    } catch (err) {
      shut((err as Error).message);
    }
  });
  host.stderr.on('data', (d: Buffer) => caller.stderr.write(d));
  host.on('close', () => {
    if (!closed) {
      closed = true;
      caller.end();
    }
  });
  caller.on('close', () => {
    closed = true;
    host.close();
  });
  caller.on('end', () => host.end());

  const pump = async () => {
    if (pumping) return;
    pumping = true;
    try {
      while (pending.length > 0 && !closed) {
        const packet = pending.shift()!;
        pendingBytes -= packet.length;
        if (pendingBytes < MAX_PENDING) caller.resume();
        const req = classifySftp(packet);
        if (req.parts.length > 0) {
          const verdict = await opts.judge(req.parts, req.summary, req.summary, { sftp: req.type });
          if (closed) return;
          if (!verdict.ok) {
            toCaller(permissionDenied(req.id ?? 0, `Airlock: ${verdict.reason}`));
            continue;
          }
        }
        if (!host.write(packet)) await new Promise<void>((r) => host.once('drain', () => r()));
      }
    } catch (err) {
      shut(err instanceof SftpProtocolError ? err.message : `sftp relay failed: ${(err as Error).message}`);
    } finally {
      pumping = false;
    }
  };

  caller.on('data', (chunk: Buffer) => {
    fromCaller.push(chunk);
    try {
      for (let p = fromCaller.next(); p; p = fromCaller.next()) {
        pending.push(p);
        pendingBytes += p.length;
      }
    } catch (err) {
      shut((err as Error).message);
      return;
    }
    if (pendingBytes + fromCaller.buffered > MAX_PENDING) caller.pause();
    void pump();
  });
}
