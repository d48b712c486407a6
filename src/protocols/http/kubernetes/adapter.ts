/**
 * `type: kubernetes` connections on the proxy. Refusals are `Status` objects, so kubectl shows
 * them as "Error from server (Forbidden): <reason>".
 * https://kubernetes.io/docs/reference/using-api/api-concepts/#response-status-kind
 */
import type { ServerResponse } from 'node:http';
import type { AirlockError } from '../../../core/errors.ts';
import type { KubernetesConnection } from '../../../core/policy/connections/kubernetes.ts';
import { type ProxyAdapter, sendJson } from '../adapter.ts';
import { classifyKubernetes } from './classify.ts';
import { secretMask } from './mask.ts';

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  409: 'Conflict',
  413: 'RequestEntityTooLarge',
  500: 'InternalError',
  502: 'ServiceUnavailable',
  503: 'ServiceUnavailable',
};

export function sendStatus(
  res: ServerResponse,
  code: number,
  message: string,
  details?: Readonly<Record<string, unknown>>,
): void {
  sendJson(res, code, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason: REASONS[code] ?? 'Unknown',
    ...(details ? { details } : {}),
    code,
  });
}

function text(error: AirlockError): string {
  return `airlock: ${error.describe()}`;
}

export const kubernetesAdapter: ProxyAdapter<KubernetesConnection> = {
  protocol: 'kubernetes',
  maxBody: (c) => c.maxBody,
  classify: (ex) =>
    classifyKubernetes({
      method: ex.method,
      target: ex.target,
      query: ex.query,
      body: ex.body,
      impersonating: Object.keys(ex.req.headers).some((h) => h.toLowerCase().startsWith('impersonate-')),
    }),
  refuse(ex, error) {
    sendStatus(ex.res, error.status, text(error));
  },
  // kubectl would treat 202 as "accepted" and report success, so a `retry` hold is a refusal that
  // names the request: the caller runs the same command again once it is approved.
  retry(ex, hold) {
    sendStatus(ex.res, 403, `airlock: ${hold.message} — run the same command again once it is approved`, {
      name: String(hold.requestId),
      kind: 'airlock-request',
    });
  },
  unauthorized(ex, error) {
    sendStatus(ex.res, 401, text(error));
  },
  responseFilter(_ex, connection, classified) {
    const a = classified.attributes;
    if (!connection.maskSecrets || a.resource !== 'secrets') return undefined;
    if (a.verb === 'watch') return secretMask('lines');
    // Writes answer with the object written: masked too.
    return secretMask('whole');
  },
};
