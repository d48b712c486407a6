import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_LIMITS } from './limits.ts';
import { limitsConfig, limitsSchema } from './schema.ts';

test('hold_notice_interval: a duration, 30 s when absent, refused below 100 ms', () => {
  assert.equal(
    limitsConfig(limitsSchema.parse({})).holdNoticeIntervalMs,
    DEFAULT_LIMITS.holdNoticeIntervalMs,
  );
  assert.equal(limitsConfig(limitsSchema.parse({ hold_notice_interval: '5s' })).holdNoticeIntervalMs, 5000);
  assert.equal(limitsConfig(limitsSchema.parse({ hold_notice_interval: '100ms' })).holdNoticeIntervalMs, 100);
  assert.equal(limitsSchema.safeParse({ hold_notice_interval: '50ms' }).success, false);
  assert.equal(limitsSchema.safeParse({ hold_notice_interval: 5 }).success, false);
});
