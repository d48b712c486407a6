/**
 * Waiting for what a gateway does in its own time (a request held for review, an event in the
 * audit log): poll until a check yields a value. The bound only keeps a broken test from hanging;
 * nothing is asserted about how soon the value comes.
 */
import assert from 'node:assert/strict';

export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The API as a reviewer (alice), as every test gateway helper offers it. */
export type ReviewerApi = <T>(
  method: string,
  path: string,
  body: undefined,
  as: 'alice',
) => Promise<{ status: number; body: T; text?: string }>;

/** Polls the pending requests, as alice, until `match` picks one. */
export function pendingRequestWhere<R>(
  api: ReviewerApi,
  what: string,
  match: (request: R) => boolean,
  intervalMs = 100,
): Promise<R> {
  return eventually(
    what,
    async () => {
      const res = await api<{ requests: R[] }>('GET', '/api/v1/requests?status=pending', undefined, 'alice');
      assert.equal(res.status, 200, res.text);
      return res.body.requests.find(match);
    },
    30_000,
    intervalMs,
  );
}

/** The pending request `principal` made whose summary holds `text`. */
export function pendingRequestFrom<
  R extends { readonly principal: { readonly name: string }; readonly summary: string },
>(api: ReviewerApi, principal: string, text: string, intervalMs = 100): Promise<R> {
  return pendingRequestWhere<R>(
    api,
    `a pending request from ${principal} for ${text}`,
    (r) => r.principal.name === principal && r.summary.includes(text),
    intervalMs,
  );
}
