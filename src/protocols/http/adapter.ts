/**
 * What differs between the connection types that ride the HTTP proxy (plain HTTP, Kubernetes,
 * Git): how a request becomes an Action, and how refusals and holds are spoken in the caller's
 * own protocol (a JSON error, a Kubernetes Status, a git report-status line).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ActionKind, ActionPart, Principal } from '../../core/action.ts';
import type { AirlockError } from '../../core/errors.ts';
import type { MaskingRule } from '../../core/masking/schema.ts';
import type { PolicyConnection } from '../../core/policy/policy.ts';

export interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: string;
  /** Path and query after the connection prefix, as the caller sent them; starts with '/'. */
  readonly target: string;
  readonly pathname: string;
  readonly query: URLSearchParams;
  /** The buffered request body, when the request has one. */
  readonly body: Buffer | undefined;
  readonly source: string;
}

export interface Classified {
  readonly kind: ActionKind;
  readonly parts: readonly ActionPart[];
  readonly summary: string;
  /** Identity of the request for approvals: equal only for requests that do the same thing. */
  readonly normalized: string;
  readonly attributes: Readonly<Record<string, unknown>>;
}

export interface ResponseFilter {
  readonly mode: 'whole' | 'lines';
  /** Rewrites one body (or one line); throws if it cannot, and the response is refused. */
  apply(body: Buffer): Buffer;
  /** Responses that are not JSON: refused (the default) or passed unchanged. */
  readonly otherTypes?: 'refuse' | 'pass' | undefined;
  /** Largest body (decoded) buffered to be rewritten. */
  readonly maxBody?: number | undefined;
  /**
   * A JSON body larger than `maxBody`, or in an encoding Airlock cannot undo: refused (the
   * default) or passed unchanged.
   */
  readonly unmaskable?: 'refuse' | 'pass' | undefined;
}

export interface HoldInfo {
  readonly requestId: number;
  readonly url: string;
  readonly message: string;
}

export interface ProxyAdapter<C extends PolicyConnection = PolicyConnection> {
  /** The Action's protocol name and the path prefix callers use (`/http/NAME`). */
  readonly protocol: 'http' | 'kubernetes' | 'git';
  maxBody(connection: C): number;
  classify(ex: Exchange, connection: C): Promise<Classified> | Classified;
  /** Refuse with `reason` (a denial, an expiry, an upstream failure) in the caller's protocol. */
  refuse(ex: Exchange, error: AirlockError, extra?: Readonly<Record<string, unknown>>): void;
  /** `retry` hold mode: answer now, naming the request. */
  retry(ex: Exchange, hold: HoldInfo): void;
  /**
   * `wait` hold mode: tell the caller, if the protocol has a way to, while the request is held.
   * Returns what stops any keep-alive messages, called once the request is decided.
   */
  waiting?(ex: Exchange, hold: HoldInfo): (() => void) | undefined;
  /**
   * A rewrite of the response body (masking), decided from the request before it is forwarded.
   * `whole`: the body is buffered (bounded) and rewritten at once; `lines`: each line of a
   * stream (a watch) is rewritten on its own.
   */
  responseFilter?(
    ex: Exchange,
    connection: C,
    classified: Classified,
    caller: { readonly principal: Principal; readonly masking: readonly MaskingRule[] | undefined },
  ): ResponseFilter | undefined;
  /** Bytes of each response body kept in the session recording (0 or absent: none). */
  recordBody?(connection: C): number;
  /** Authentication failed or missing. */
  unauthorized(ex: Exchange, error: AirlockError): void;
}

/** JSON error body shared by the plain HTTP answers. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}
