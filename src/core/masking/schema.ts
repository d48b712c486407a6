/**
 * The `masking:` section of the policy file: which values are masked, on which connections,
 * how, and for whom not.
 *
 *   masking:
 *     - connections: [prod-db]
 *       columns: ["*.email", "public.customers.card_number"]
 *       detectors: [email, credit_card]
 *       json_paths: ["$.customer.ssn", "$.items[*].card", "$..iban"]   # JSON response bodies
 *       strategy: partial            # redact (alias: full) | partial | hash
 *       salt: "${env:MASK_SALT}"     # required for hash
 *       exempt: { groups: [dpo] }
 */
import { z } from 'zod';
import { Secret } from '../policy/secret.ts';
import { DETECTOR_ALIASES, DETECTORS, type DetectorName } from './detectors.ts';
import { parseJsonPath } from './json-path.ts';
import type { MaskStrategy } from './strategy.ts';

const COLUMN_PATTERN = /^[^.\s]+(\.[^.\s]+){0,2}$/;

const detectorName = z.string().transform((s, ctx): DetectorName => {
  const n = s.toLowerCase();
  const found = (DETECTORS as readonly string[]).includes(n) ? (n as DetectorName) : DETECTOR_ALIASES[n];
  if (found) return found;
  ctx.addIssue({ code: 'custom', message: `unknown detector "${s}"; one of: ${DETECTORS.join(', ')}` });
  return z.NEVER;
});

export const maskingRuleSchema = z
  .strictObject({
    name: z.string().min(1).optional(),
    /** Connection names or globs; all connections when omitted. */
    connections: z.array(z.string().min(1)).min(1).optional(),
    /**
     * `schema.table.column`, `table.column` or `column`, with `*` globs. Matched against the
     * table column a result column comes from, and (when every part before the column is `*`, or
     * there is only the column) against the result column's name.
     */
    columns: z
      .array(
        z
          .string()
          .regex(COLUMN_PATTERN, 'a column pattern such as "*.email" or "public.customers.card_number"'),
      )
      .default([]),
    /**
     * Places in JSON bodies (HTTP responses) whose values are replaced whole: `$.a.b`,
     * `$.items[*].email`, `$..iban` (at any depth), `*` globs in names. A field name alone is
     * also matched through `columns`, as it is for tool results.
     */
    json_paths: z
      .array(
        z.string().superRefine((text, ctx) => {
          try {
            parseJsonPath(text);
          } catch (err) {
            ctx.addIssue({ code: 'custom', message: (err as Error).message });
          }
        }),
      )
      .default([]),
    /** Content detectors applied to every value, whatever column it is in. */
    detectors: z.array(detectorName).default([]),
    strategy: z
      .enum(['redact', 'full', 'partial', 'hash'])
      .default('redact')
      .transform((s): MaskStrategy => (s === 'full' ? 'redact' : s)),
    /** Key for `hash` (by reference: `${env:NAME}` or `${file:path}`). */
    salt: z.string().min(1).optional(),
    /** Principals and groups who see values unmasked. */
    exempt: z
      .strictObject({
        principals: z.array(z.string().min(1)).default([]),
        groups: z.array(z.string().min(1)).default([]),
      })
      .optional(),
  })
  .superRefine((r, ctx) => {
    if (r.columns.length === 0 && r.detectors.length === 0 && r.json_paths.length === 0)
      ctx.addIssue({
        code: 'custom',
        path: ['columns'],
        message: 'name columns, detectors, json_paths, or a mix of them',
      });
    if (r.strategy === 'hash' && !r.salt)
      ctx.addIssue({
        code: 'custom',
        path: ['salt'],
        message:
          'strategy hash needs a salt (e.g. "${env:AIRLOCK_MASK_SALT}"), or hashes could be reversed by guessing',
      });
  });
export type MaskingRuleConfig = z.output<typeof maskingRuleSchema>;

/** A masking rule as the rest of Airlock reads it. */
export interface MaskingRule {
  readonly index: number;
  readonly name?: string | undefined;
  readonly connections?: readonly string[] | undefined;
  readonly columns: readonly string[];
  readonly jsonPaths?: readonly string[] | undefined;
  readonly detectors: readonly DetectorName[];
  readonly strategy: MaskStrategy;
  readonly salt?: Secret | undefined;
  readonly exempt: { readonly principals: readonly string[]; readonly groups: readonly string[] };
}

export function resolveMaskingRule(r: MaskingRuleConfig, index: number, baseDir: string): MaskingRule {
  return {
    index,
    name: r.name,
    connections: r.connections,
    columns: r.columns,
    jsonPaths: r.json_paths,
    detectors: [...new Set(r.detectors)],
    strategy: r.strategy,
    salt: r.salt === undefined ? undefined : Secret.parse(r.salt, baseDir),
    exempt: { principals: r.exempt?.principals ?? [], groups: r.exempt?.groups ?? [] },
  };
}
