/**
 * A plain HTTP request as an Action: kind by method, `method` and `path` fields for rules, and
 * the top-level fields of a JSON body as `argument.NAME` (dotted for nested objects).
 */
import { createHash } from 'node:crypto';
import type { ActionKind, ActionPart } from '../../core/action.ts';
import type { Classified } from './adapter.ts';

/** JSON bodies are flattened this deep, and into at most this many fields. */
const MAX_DEPTH = 4;
const MAX_FIELDS = 200;
/** Body text shown to reviewers. */
const PREVIEW_BYTES = 4096;

export interface HttpRequestFacts {
  readonly method: string;
  /** Path and query as sent. */
  readonly target: string;
  readonly contentType?: string | undefined;
  readonly body: Buffer | undefined;
  readonly readMethods: readonly string[];
}

/**
 * The decoded path rules match on, or undefined if it cannot be decoded unambiguously (bad
 * percent-encoding, an encoded NUL): such a request is `unknown`.
 */
export function decodedPath(target: string): string | undefined {
  const raw = target.split('?', 1)[0]!;
  let pathname = raw;
  if (!plainTarget(raw))
    try {
      // WHATWG URL parsing removes dot segments the way upstream servers do.
      pathname = new URL(raw, 'http://airlock.invalid').pathname;
    } catch {
      return undefined;
    }
  if (!pathname.includes('%')) return pathname.includes('\0') ? undefined : pathname;
  try {
    const decoded = decodeURIComponent(pathname);
    if (decoded.includes('\0')) return undefined;
    return decoded;
  } catch {
    return undefined;
  }
}

/** Characters WHATWG URL parsing leaves as they are, in a path and in a query alike. */
const PLAIN_TARGET = /^\/(?!\/)[A-Za-z0-9\-._~!$&()*+,;=:@/%?]*$/;
/** A dot segment, also percent-encoded, or the start of one: only URL parsing resolves them. */
const DOT_SEGMENT = /\/\.|%2e/i;

/**
 * True when `target` (a path and query) is already what `new URL(target, base)` gives back as
 * pathname + search, so the parse can be skipped: nothing to percent-encode, no dot segment, no
 * `//` that would read as a host, no empty query to drop.
 */
export function plainTarget(target: string): boolean {
  if (!PLAIN_TARGET.test(target) || target.endsWith('?')) return false;
  const q = target.indexOf('?');
  return !DOT_SEGMENT.test(q < 0 ? target : target.slice(0, q));
}

export function bodyHash(body: Buffer | undefined): string {
  return body === undefined || body.length === 0 ? '-' : createHash('sha256').update(body).digest('hex');
}

/** JSON body fields as `argument.a.b` → string values; arrays of scalars give several values. */
export function jsonFields(
  body: Buffer | undefined,
  contentType: string | undefined,
): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  if (!body || body.length === 0 || !/\bjson\b/i.test(contentType ?? '')) return out;
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return out;
  }
  let count = 0;
  const add = (key: string, v: string) => {
    if (count >= MAX_FIELDS) return;
    count++;
    const field = `argument.${key}`;
    const values = out[field] ?? [];
    values.push(v);
    out[field] = values;
  };
  const walk = (v: unknown, key: string, depth: number) => {
    if (v === null || typeof v !== 'object') {
      if (key) add(key, v === null ? 'null' : String(v));
      return;
    }
    if (depth >= MAX_DEPTH) return;
    if (Array.isArray(v)) {
      for (const item of v) walk(item, key, depth + 1);
      return;
    }
    for (const [k, child] of Object.entries(v as Record<string, unknown>))
      walk(child, key ? `${key}.${k}` : k, depth + 1);
  };
  walk(value, '', 0);
  return out;
}

export function bodyPreview(body: Buffer | undefined): string | undefined {
  if (!body || body.length === 0) return undefined;
  const slice = body.subarray(0, PREVIEW_BYTES);
  const text = slice.toString('utf8');
  // Binary bodies are described, not shown.
  if (text.includes('\uFFFD') || /[\x00-\x08\x0e-\x1f]/.test(text))
    return `(${body.length} bytes of binary data)`;
  return body.length > PREVIEW_BYTES ? `${text}… (${body.length} bytes)` : text;
}

export function classifyHttp(f: HttpRequestFacts): Classified {
  const method = f.method.toUpperCase();
  const path = decodedPath(f.target);
  const hash = bodyHash(f.body);
  const kind: ActionKind = path === undefined ? 'unknown' : f.readMethods.includes(method) ? 'read' : 'write';
  const why =
    path === undefined
      ? 'the path could not be decoded unambiguously'
      : kind === 'read'
        ? `${method} is a read method on this connection`
        : `${method} is not one of the read methods (${f.readMethods.join(', ')})`;
  const part: ActionPart = {
    kind,
    text: `${method} ${f.target}`,
    statement: method,
    why,
    fields: {
      method: [method],
      ...(path === undefined ? {} : { path: [path] }),
      ...jsonFields(f.body, f.contentType),
    },
  };
  const size = f.body?.length ?? 0;
  return {
    kind,
    parts: [part],
    summary:
      size > 0
        ? `${method} ${f.target} (body ${size} bytes, sha256 ${hash.slice(0, 12)})`
        : `${method} ${f.target}`,
    normalized: `${method} ${f.target} body:${hash}`,
    attributes: {
      method,
      target: f.target,
      ...(f.contentType ? { contentType: f.contentType } : {}),
      ...(size > 0 ? { bodyBytes: size, bodySha256: hash, body: bodyPreview(f.body) } : {}),
    },
  };
}
