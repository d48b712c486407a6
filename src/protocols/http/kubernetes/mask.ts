/**
 * Secret values never leave Airlock in Kubernetes responses: in a Secret (alone, in a list, in a
 * Table row's object, or in a watch event) every `data` and `stringData` value is replaced, and
 * the last-applied-configuration annotation (which repeats them) is dropped.
 * https://kubernetes.io/docs/concepts/configuration/secret/
 */
import type { ResponseFilter } from '../adapter.ts';

export const MASKED_VALUE = '(masked by airlock)';
const MASKED_B64 = Buffer.from(MASKED_VALUE).toString('base64');
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function maskSecret(o: Json): void {
  for (const key of ['data', 'stringData'] as const) {
    const values = o[key];
    if (isObject(values))
      for (const k of Object.keys(values)) values[k] = key === 'data' ? MASKED_B64 : MASKED_VALUE;
  }
  const meta = o.metadata;
  if (isObject(meta) && isObject(meta.annotations) && LAST_APPLIED in meta.annotations)
    meta.annotations[LAST_APPLIED] = MASKED_VALUE;
}

/** Masks every Secret-shaped object in a response document. */
export function maskSecretsIn(doc: unknown): void {
  if (!isObject(doc)) return;
  if (doc.kind === 'Secret' || 'data' in doc || 'stringData' in doc) maskSecret(doc);
  if (Array.isArray(doc.items)) for (const item of doc.items) if (isObject(item)) maskSecret(item);
  if (Array.isArray(doc.rows))
    for (const row of doc.rows) if (isObject(row) && isObject(row.object)) maskSecret(row.object);
  // Watch events: {type, object}.
  if (isObject(doc.object)) maskSecretsIn(doc.object);
}

export function secretMask(mode: 'whole' | 'lines'): ResponseFilter {
  return {
    mode,
    apply(body) {
      const doc = JSON.parse(body.toString('utf8')) as unknown;
      maskSecretsIn(doc);
      return Buffer.from(JSON.stringify(doc));
    },
  };
}
