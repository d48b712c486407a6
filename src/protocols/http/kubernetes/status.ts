/**
 * Kubernetes `Status` objects for refusals on the stream paths, where there is no
 * ServerResponse: on a raw socket before an upgrade, or on the error stream after one.
 * https://kubernetes.io/docs/reference/using-api/api-concepts/#response-status-kind
 */
import type { Socket } from 'node:net';

export interface StatusObject {
  readonly kind: 'Status';
  readonly apiVersion: 'v1';
  readonly metadata: Record<string, never>;
  readonly status: 'Failure';
  readonly message: string;
  readonly reason: string;
  readonly code: number;
}

export function statusBody(code: number, reason: string, message: string): StatusObject {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

/** Answers an upgrade request with a Status and closes the socket. */
export function refuseUpgrade(socket: Socket, code: number, reason: string, message: string): void {
  if (!socket.writable) return;
  const body = JSON.stringify(statusBody(code, reason, message));
  socket.end(
    `HTTP/1.1 ${code} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
