/**
 * The own tool `http_request`: one request to an `http` (or `kubernetes`) connection, sent through
 * Airlock's own HTTP listener (`/http/NAME/...`, `/kubernetes/NAME/...`) with the caller's token
 * as `Authorization: Bearer`, so it meets exactly the gate, holds, approvals, masking and audit
 * any other HTTP caller would.
 */
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { ToolExtra } from './own-progress.ts';

export interface OwnHttpListener {
  readonly host: string;
  readonly port: number;
}

export interface HttpRequestInput {
  readonly method: string;
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>> | undefined;
  readonly body?: string | undefined;
}

/** Response bytes kept for the model; the rest is counted, not sent. */
const MAX_BODY = 256 * 1024;
/** Headers Airlock sets itself, or that describe the connection rather than the request. */
const RESERVED_HEADERS = new Set([
  'authorization',
  'host',
  'connection',
  'content-length',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'te',
  'trailer',
  'keep-alive',
]);
/** Response headers worth showing the model. */
const SHOWN_HEADERS = ['content-type', 'location', 'retry-after', 'x-airlock-request'];

function fail(text: string): CallToolResult {
  return { content: [{ type: 'text', text }], isError: true };
}

export async function runHttpRequest(
  listener: OwnHttpListener,
  route: 'http' | 'kubernetes',
  connection: string,
  credential: string,
  input: HttpRequestInput,
  extra: ToolExtra,
): Promise<CallToolResult> {
  if (!input.path.startsWith('/')) return fail('path must start with "/" (it is appended to the connection)');
  const host = listener.host.includes(':') ? `[${listener.host}]` : listener.host;
  const base = `/${route}/${encodeURIComponent(connection)}`;
  const url = new URL(`http://${host}:${listener.port}${base}${input.path}`);
  // Dot segments would resolve to another connection's route: a request names one connection.
  if (url.pathname !== base && !url.pathname.startsWith(`${base}/`))
    return fail(`path ${input.path} leaves connection "${connection}"; remove the ".." segments`);
  const headers = new Headers();
  for (const [name, value] of Object.entries(input.headers ?? {})) {
    if (RESERVED_HEADERS.has(name.toLowerCase()))
      return fail(`header ${name} is set by Airlock; leave it out`);
    try {
      headers.append(name, value);
    } catch {
      return fail(`header ${name} is not a valid HTTP header`);
    }
  }
  headers.set('authorization', `Bearer ${credential}`);
  let res: Response;
  try {
    res = await fetch(url, {
      method: input.method,
      headers,
      body:
        input.body === undefined || input.method === 'GET' || input.method === 'HEAD'
          ? undefined
          : input.body,
      redirect: 'manual',
      // Cancelling the MCP call drops the request: Airlock cancels a held one then.
      signal: extra.signal,
    });
  } catch (err) {
    return fail(`the request could not be sent through Airlock's HTTP listener: ${(err as Error)?.message}`);
  }
  const { text, cut } = await readCapped(res);
  const shown = Object.fromEntries(
    SHOWN_HEADERS.flatMap((h) => {
      const v = res.headers.get(h);
      return v === null ? [] : [[h, v]];
    }),
  );
  const header = `HTTP ${res.status} ${res.statusText}`.trim();
  const lines = [header, ...Object.entries(shown).map(([k, v]) => `${k}: ${v}`), '', text];
  if (cut) lines.push(`[cut at ${MAX_BODY} bytes; ask for less]`);
  // 202 from Airlock itself is "approval required, send it again once approved".
  const held = res.status === 202 && res.headers.has('x-airlock-request');
  return {
    content: [{ type: 'text', text: lines.join('\n') }],
    ...(res.status >= 400 || held ? { isError: true } : {}),
  };
}

async function readCapped(res: Response): Promise<{ text: string; cut: boolean }> {
  if (!res.body) return { text: '', cut: false };
  const chunks: Uint8Array[] = [];
  let kept = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { text: Buffer.concat(chunks).toString('utf8'), cut: false };
    const part = value.subarray(0, MAX_BODY - kept);
    chunks.push(part);
    kept += part.length;
    // A long (or endless) body is cut, not read to its end.
    if (part.length < value.length || kept >= MAX_BODY) {
      await reader.cancel().catch(() => {});
      return { text: Buffer.concat(chunks).toString('utf8'), cut: true };
    }
  }
}
