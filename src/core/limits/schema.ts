/** The `limits:` section of the policy file. Every value has a default; see DEFAULT_LIMITS. */
import { z } from 'zod';
import { duration } from '../policy/review.ts';
import { DEFAULT_LIMITS, type LimitsConfig } from './limits.ts';

const count = z.number().int().min(1);

export const limitsSchema = z.strictObject({
  max_connections: count.default(DEFAULT_LIMITS.maxConnections),
  max_connections_per_principal: count.default(DEFAULT_LIMITS.maxConnectionsPerPrincipal),
  max_pending_per_principal: count.default(DEFAULT_LIMITS.maxPendingPerPrincipal),
  auth_failures: z
    .strictObject({
      max: count.default(DEFAULT_LIMITS.authFailures.max),
      window: duration.default(DEFAULT_LIMITS.authFailures.windowMs),
      block: duration.default(DEFAULT_LIMITS.authFailures.blockMs),
    })
    .default({
      max: DEFAULT_LIMITS.authFailures.max,
      window: DEFAULT_LIMITS.authFailures.windowMs,
      block: DEFAULT_LIMITS.authFailures.blockMs,
    }),
  startup_timeout: duration.default(DEFAULT_LIMITS.startupTimeoutMs),
  write_timeout: duration.default(DEFAULT_LIMITS.writeTimeoutMs),
  max_held_bytes: count.default(DEFAULT_LIMITS.maxHeldBytes),
  hold_notice_interval: duration
    .refine((ms) => ms >= 100, 'at least 100ms')
    .default(DEFAULT_LIMITS.holdNoticeIntervalMs),
});

export function limitsConfig(l: z.output<typeof limitsSchema> | undefined): LimitsConfig {
  if (!l) return DEFAULT_LIMITS;
  return {
    maxConnections: l.max_connections,
    maxConnectionsPerPrincipal: l.max_connections_per_principal,
    maxPendingPerPrincipal: l.max_pending_per_principal,
    authFailures: {
      max: l.auth_failures.max,
      windowMs: l.auth_failures.window,
      blockMs: l.auth_failures.block,
    },
    startupTimeoutMs: l.startup_timeout,
    writeTimeoutMs: l.write_timeout,
    maxHeldBytes: l.max_held_bytes,
    holdNoticeIntervalMs: l.hold_notice_interval,
  };
}
