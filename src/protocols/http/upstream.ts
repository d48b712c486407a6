/**
 * One undici Pool per connection: keep-alive connections to the upstream are reused across
 * callers. The pool is rebuilt if the connection's upstream changes.
 */
import { readFileSync } from 'node:fs';
import { Pool } from 'undici';
import type { HttpUpstream } from '../../core/policy/connections/http.ts';

export interface Upstream {
  readonly pool: Pool;
  readonly origin: string;
  /** Path of the base URL, without a trailing slash ('' for the root). */
  readonly basePath: string;
}

export class UpstreamPools {
  readonly #pools = new Map<string, { key: string; upstream: Upstream }>();

  get(name: string, u: HttpUpstream): Upstream {
    const key = `${u.url}\0${u.ca ?? ''}\0${u.insecureSkipVerify}`;
    const existing = this.#pools.get(name);
    if (existing?.key === key) return existing.upstream;
    if (existing) void existing.upstream.pool.close().catch(() => {});
    const url = new URL(u.url);
    const pool = new Pool(url.origin, {
      connections: 64,
      pipelining: 1,
      // Watches and `logs -f` may stay quiet for long; the caller decides when to give up.
      bodyTimeout: 0,
      headersTimeout: 0,
      connect: {
        rejectUnauthorized: !u.insecureSkipVerify,
        ...(u.ca ? { ca: readFileSync(u.ca, 'utf8') } : {}),
      },
    });
    const upstream = { pool, origin: url.origin, basePath: url.pathname.replace(/\/+$/, '') };
    this.#pools.set(name, { key, upstream });
    return upstream;
  }

  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.upstream.pool.destroy().catch(() => {})));
  }
}
