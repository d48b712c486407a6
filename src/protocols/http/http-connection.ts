/**
 * `type: http` connections on the proxy: JSON errors, 202 with a request id for `retry` holds,
 * JSON responses masked.
 */
import { maskJsonBody } from '../../core/masking/json.ts';
import { maskerFor } from '../../core/masking/masker.ts';
import type { HttpConnection } from '../../core/policy/connections/http.ts';
import { type Exchange, type HoldInfo, type ProxyAdapter, sendJson } from './adapter.ts';
import { classifyHttp } from './classify.ts';

/** Seconds a `retry` caller is told to wait before trying again. */
const RETRY_AFTER_S = 10;

export const httpAdapter: ProxyAdapter<HttpConnection> = {
  protocol: 'http',
  maxBody: (c) => c.maxBody,
  recordBody: (c) => c.recordBody,
  classify: (ex: Exchange, c: HttpConnection) =>
    classifyHttp({
      method: ex.method,
      target: ex.target,
      contentType: ex.req.headers['content-type'],
      body: ex.body,
      readMethods: c.readMethods,
    }),
  refuse(ex, error, extra) {
    sendJson(ex.res, error.status, { ...error.toJSON(), ...extra });
  },
  retry(ex, hold: HoldInfo) {
    sendJson(
      ex.res,
      202,
      {
        code: 'AIRLOCK_E_APPROVAL_REQUIRED',
        message: hold.message,
        hint: 'send the identical request again once it is approved',
        request: hold.requestId,
        url: hold.url,
      },
      { 'retry-after': String(RETRY_AFTER_S), 'x-airlock-request': String(hold.requestId) },
    );
  },
  // JSON responses are masked per the policy's masking rules for this caller; other types pass.
  responseFilter(_ex, c, _classified, caller) {
    const masker = maskerFor(caller.masking, c.name, caller.principal);
    if (!masker) return undefined;
    return {
      mode: 'whole',
      apply: (body) => maskJsonBody(masker, body),
      otherTypes: 'pass',
      maxBody: c.maskMaxBody,
      unmaskable: c.maskUnmaskable,
    };
  },
  unauthorized(ex, error) {
    sendJson(ex.res, 401, error.toJSON(), { 'www-authenticate': 'Bearer realm="airlock"' });
  },
};
