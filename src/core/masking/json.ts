/**
 * Masking of a JSON document (an HTTP response body): a value whose place a rule's json_paths
 * names, or whose member name a rule's columns name, is replaced whole (every scalar below it
 * when it is an object or array); every other string, number and member name is scanned by the
 * content detectors. Returns the input unchanged when nothing was masked, so bodies without
 * sensitive values reach the caller byte for byte.
 */
import type { SessionMasker } from './masker.ts';
import { type MaskSpec, STRATEGY_RANK } from './strategy.ts';

/** Deeper documents are refused rather than walked (a hostile upstream could nest forever). */
export const MAX_JSON_DEPTH = 64;

export class JsonMaskError extends Error {}

function maskAll(masker: SessionMasker, value: unknown, spec: MaskSpec, depth: number): unknown {
  if (depth > MAX_JSON_DEPTH) throw new JsonMaskError(`the document is nested deeper than ${MAX_JSON_DEPTH}`);
  if (value === null) return null;
  if (Array.isArray(value)) return value.map((v) => maskAll(masker, v, spec, depth + 1));
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>))
      out[k] = maskAll(masker, v, spec, depth + 1);
    return out;
  }
  return masker.mask(String(value), spec);
}

interface Walk {
  readonly masker: SessionMasker;
  readonly path: (string | number)[];
  changed: boolean;
}

function walk(w: Walk, value: unknown, depth: number): unknown {
  if (depth > MAX_JSON_DEPTH) throw new JsonMaskError(`the document is nested deeper than ${MAX_JSON_DEPTH}`);
  const key = w.path.at(-1);
  const named = typeof key === 'string' ? w.masker.column({ output: key, column: key }) : undefined;
  const placed = w.masker.hasJsonPaths && w.path.length > 0 ? w.masker.jsonPath(w.path) : undefined;
  const spec =
    named && placed
      ? STRATEGY_RANK[named.strategy] >= STRATEGY_RANK[placed.strategy]
        ? named
        : placed
      : (named ?? placed);
  if (spec && value !== null) {
    w.changed = true;
    return maskAll(w.masker, value, spec, depth);
  }
  if (typeof value === 'string') {
    const masked = w.masker.scan(value);
    if (masked !== value) w.changed = true;
    return masked;
  }
  if (typeof value === 'number') {
    // A card or account number sent as a JSON number is still that number.
    const text = String(value);
    const masked = w.masker.scan(text);
    if (masked === text) return value;
    w.changed = true;
    return masked;
  }
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (let i = 0; i < value.length; i++) {
      w.path.push(i);
      out.push(walk(w, value[i], depth + 1));
      w.path.pop();
    }
    return out;
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      w.path.push(k);
      const inner = walk(w, v, depth + 1);
      w.path.pop();
      // Member names can be data too (a map keyed by e-mail address).
      const name = w.masker.scan(k);
      if (name !== k) w.changed = true;
      out[name] = inner;
    }
    return out;
  }
  return value;
}

/** The masked document, or `undefined` when nothing in it had to change. */
export function maskJsonValue(masker: SessionMasker, doc: unknown): unknown {
  const w: Walk = { masker, path: [], changed: false };
  const out = walk(w, doc, 0);
  return w.changed ? out : undefined;
}

/** A JSON body masked: the same buffer when nothing changed; throws if it is not JSON. */
export function maskJsonBody(masker: SessionMasker, body: Buffer): Buffer {
  let doc: unknown;
  if (body.toString('utf8').trim() === '') return body;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new JsonMaskError(`it is not valid JSON (${(err as Error).message})`);
  }
  const out = maskJsonValue(masker, doc);
  return out === undefined ? body : Buffer.from(JSON.stringify(out));
}
