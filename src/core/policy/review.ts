/**
 * Effects, hold modes, durations and the review block: shared by rules, connection defaults
 * and the `defaults:` section of the policy file.
 */
import { z } from 'zod';

const DURATION = /^(\d+)(ms|s|m|h|d)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** "15m" → 900000. */
export function parseDuration(text: string): number {
  const m = DURATION.exec(text.trim());
  if (!m) throw new Error(`not a duration: ${text}`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

export const duration = z
  .string()
  .regex(DURATION, 'a duration such as 30s, 15m, 2h or 1d')
  .transform((s) => parseDuration(s));

export const name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'a name of letters, digits, - _ . (max 63)');

export const EFFECTS = ['allow', 'review', 'deny'] as const;
export type Effect = (typeof EFFECTS)[number];
export const HOLD_MODES = ['wait', 'retry'] as const;
export type HoldMode = (typeof HOLD_MODES)[number];

export const reviewSchema = z.strictObject({
  groups: z.array(name).min(1, 'name at least one reviewer group'),
  approvals: z.number().int().min(1).max(10).default(1),
  expires: duration.default(15 * 60_000),
  hold: z.enum(HOLD_MODES).default('wait'),
  /** For `retry`: how long an approval lets the same command by the same caller through. */
  window: duration.default(15 * 60_000),
  /**
   * `any`: `approvals` distinct people from any of the groups. `each`: one distinct person from
   * every group (a person in two groups counts once), and at least `approvals` people.
   */
  from: z.enum(['any', 'each']).optional(),
});
export type ReviewSpec = z.output<typeof reviewSchema>;
