/**
 * How a sensitive value is replaced. Every strategy returns plain text without tabs, newlines,
 * backslashes, quotes or commas, so a masked value can stand in any text position (a COPY row,
 * a CSV field, an error message) without changing the structure around it.
 */
import { createHmac } from 'node:crypto';

export const STRATEGIES = ['redact', 'partial', 'hash'] as const;
export type MaskStrategy = (typeof STRATEGIES)[number];

/** Most restrictive first: when several rules cover one value, the stricter strategy wins. */
export const STRATEGY_RANK: Readonly<Record<MaskStrategy, number>> = { redact: 3, hash: 2, partial: 1 };

export interface MaskSpec {
  readonly strategy: MaskStrategy;
  /** For `hash`: the per-deployment key, so equal values hash equal but cannot be looked up. */
  readonly salt?: string | undefined;
  /** What kind of value it is (a detector name, or `column`), for the redaction marker. */
  readonly label: string;
}

const KEEP = 4;

/** Partial: every letter and digit but the last four becomes `*`; separators stay. */
function partial(value: string, label: string): string {
  if (label === 'email' || /^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$/.test(value)) {
    // Keep the domain and the first character: enough to recognise whose address it is not.
    const at = value.lastIndexOf('@');
    if (at > 0) return `${value[0]}${'*'.repeat(Math.max(1, at - 1))}${value.slice(at)}`;
  }
  const chars = [...value];
  let alnum = 0;
  for (const c of chars) if (/[\p{L}\p{N}]/u.test(c)) alnum++;
  // Short values would be all but given away by their last four characters.
  const keep = alnum >= KEEP * 2 ? KEEP : 0;
  let seen = 0;
  let out = '';
  for (const c of chars) {
    if (/[\p{L}\p{N}]/u.test(c)) {
      seen++;
      out += seen > alnum - keep ? c : '*';
    } else if (c === ' ' || c === '-' || c === '.' || c === '@' || c === '/' || c === ':' || c === '_')
      out += c;
    else out += '*';
  }
  return out;
}

export function maskText(value: string, spec: MaskSpec): string {
  switch (spec.strategy) {
    case 'redact':
      return `[redacted ${spec.label}]`;
    case 'partial':
      return partial(value, spec.label);
    case 'hash':
      return `hash:${createHmac('sha256', spec.salt ?? '')
        .update(value)
        .digest('hex')
        .slice(0, 16)}`;
  }
}
