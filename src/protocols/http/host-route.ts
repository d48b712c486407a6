/**
 * Routing by host name: an `http` connection that declares `host`/`hosts` is reached by
 * requests whose Host header names it, with the caller's path as it is (no `/http/NAME`
 * prefix), so a client can point its base URL at Airlock under the API's own name.
 * https://www.rfc-editor.org/rfc/rfc9110#section-7.2
 */
import type { IncomingMessage } from 'node:http';
import type { Policy } from '../../core/policy/policy.ts';

export interface HostRoute {
  readonly prefix: 'http';
  readonly name: string;
  readonly target: string;
}

/** Host name → connection name, for every http connection that declares host names. */
export function hostRoutes(policy: Policy): ReadonlyMap<string, string> {
  const out = new Map<string, string>();
  for (const c of policy.connections.values())
    if (c.type === 'http') for (const h of c.hosts) out.set(h, c.name);
  return out;
}

/** The Host header's name without port or trailing dot, lower-cased; undefined if it has none. */
export function hostName(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const h = header.trim().toLowerCase();
  const name = h.startsWith('[') ? h.slice(0, h.indexOf(']') + 1) : h.replace(/:\d*$/, '');
  return name.replace(/\.$/, '') || undefined;
}

/** The route for a request whose Host names a connection; undefined otherwise. */
export function routeByHost(
  req: Pick<IncomingMessage, 'headers' | 'url'>,
  routes: ReadonlyMap<string, string>,
): HostRoute | undefined {
  if (routes.size === 0) return undefined;
  const name = routes.get(hostName(req.headers.host) ?? '');
  if (name === undefined) return undefined;
  let target = req.url ?? '/';
  // Absolute form (a client using Airlock as a forward proxy): keep the path and query.
  if (!target.startsWith('/')) {
    try {
      const u = new URL(target);
      target = u.pathname + u.search;
    } catch {
      target = '/';
    }
  }
  return { prefix: 'http', name, target };
}
