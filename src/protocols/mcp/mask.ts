/**
 * Masking of what tool servers send back, per the policy's `masking` rules: every text a tool
 * result or a resource carries is scanned by the content detectors, and in structured content a
 * key that names a masked column (`email`, `*.card_number`) has its value replaced whole.
 *
 * https://modelcontextprotocol.io/specification/2025-06-18/server/tools#tool-result
 */
import type { SessionMasker } from '../../core/masking/masker.ts';

/** Deeper structured content is replaced rather than walked (a hostile server could nest forever). */
const MAX_DEPTH = 32;

function maskStructured(
  masker: SessionMasker,
  value: unknown,
  key: string | undefined,
  depth: number,
): unknown {
  if (depth > MAX_DEPTH) return '(masked: nested too deep)';
  const spec = key === undefined ? undefined : masker.column({ output: key, column: key });
  if (spec && value !== null && typeof value !== 'object') return masker.mask(String(value), spec);
  if (typeof value === 'string') return masker.scan(value);
  if (Array.isArray(value)) return value.map((v) => maskStructured(masker, v, key, depth + 1));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>))
      out[k] = maskStructured(masker, v, k, depth + 1);
    return out;
  }
  return value;
}

function maskContent(masker: SessionMasker, item: unknown): unknown {
  if (item === null || typeof item !== 'object') return item;
  const c = item as Record<string, unknown>;
  if (typeof c.text === 'string') return { ...c, text: masker.scan(c.text) };
  if (c.type === 'resource' && c.resource && typeof c.resource === 'object') {
    const r = c.resource as Record<string, unknown>;
    if (typeof r.text === 'string') return { ...c, resource: { ...r, text: masker.scan(r.text) } };
  }
  return item;
}

/** A tools/call result with its text and structured content masked. */
export function maskToolResult(
  masker: SessionMasker,
  result: Record<string, unknown>,
): Record<string, unknown> {
  const out = { ...result };
  if (Array.isArray(result.content)) out.content = result.content.map((c) => maskContent(masker, c));
  if (result.structuredContent !== undefined)
    out.structuredContent = maskStructured(masker, result.structuredContent, undefined, 0);
  return out;
}

/** A resources/read result with its text contents masked. */
export function maskResourceResult(
  masker: SessionMasker,
  result: Record<string, unknown>,
): Record<string, unknown> {
  if (!Array.isArray(result.contents)) return result;
  return {
    ...result,
    contents: result.contents.map((c: unknown) =>
      c && typeof c === 'object' && typeof (c as { text?: unknown }).text === 'string'
        ? { ...(c as object), text: masker.scan((c as { text: string }).text) }
        : c,
    ),
  };
}
