import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { backoffMs, DEFAULT_RETRY, retryAfterMs } from './retry.ts';
import { signSlackRequest, signWebhook, verifySlackSignature, verifyWebhookSignature } from './signing.ts';

const NOW = 1_700_000_000_000;

describe('webhook signatures', () => {
  test('a signature made by signWebhook verifies, over the exact timestamp and body', () => {
    const body = '{"event":"created","request":{"id":1}}';
    const { timestamp, signature } = signWebhook('s3cret', body, NOW);
    assert.equal(timestamp, String(NOW / 1000));
    const expected = createHmac('sha256', 's3cret').update(`${timestamp}.${body}`).digest('hex');
    assert.equal(signature, `sha256=${expected}`);
    assert.equal(verifyWebhookSignature('s3cret', timestamp, body, signature, 300, NOW), true);
    assert.equal(verifyWebhookSignature('s3cret', timestamp, Buffer.from(body), signature, 300, NOW), true);
  });

  test('another secret, body, timestamp or a malformed header is refused', () => {
    const body = '{"a":1}';
    const { timestamp, signature } = signWebhook('s3cret', body, NOW);
    assert.equal(verifyWebhookSignature('other', timestamp, body, signature, 300, NOW), false);
    assert.equal(verifyWebhookSignature('s3cret', timestamp, '{"a":2}', signature, 300, NOW), false);
    assert.equal(verifyWebhookSignature('s3cret', Number(timestamp) + 1, body, signature, 300, NOW), false);
    assert.equal(verifyWebhookSignature('s3cret', timestamp, body, signature.slice(7), 300, NOW), false);
    assert.equal(verifyWebhookSignature('s3cret', timestamp, body, `${signature}00`, 300, NOW), false);
    assert.equal(verifyWebhookSignature('s3cret', timestamp, body, signature.toUpperCase(), 300, NOW), false);
    assert.equal(verifyWebhookSignature('s3cret', undefined, body, signature, 300, NOW), false);
    assert.equal(verifyWebhookSignature('s3cret', timestamp, body, undefined, 300, NOW), false);
    assert.equal(verifyWebhookSignature('s3cret', '1e9', body, signature, 300, NOW), false);
  });

  test('the replay window holds in both directions', () => {
    const body = 'x';
    const { timestamp, signature } = signWebhook('k', body, NOW);
    assert.equal(verifyWebhookSignature('k', timestamp, body, signature, 300, NOW + 300_000), true);
    assert.equal(verifyWebhookSignature('k', timestamp, body, signature, 300, NOW + 301_000), false);
    assert.equal(verifyWebhookSignature('k', timestamp, body, signature, 300, NOW - 301_000), false);
  });

  test('property: any body and secret round-trip; any single-byte change fails', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), fc.nat(), (secret, body, pos) => {
        const { timestamp, signature } = signWebhook(secret, body, NOW);
        assert.equal(verifyWebhookSignature(secret, timestamp, body, signature, 300, NOW), true);
        const i = pos % body.length;
        const changed = body.slice(0, i) + String.fromCharCode(body.charCodeAt(i) ^ 1) + body.slice(i + 1);
        assert.equal(verifyWebhookSignature(secret, timestamp, changed, signature, 300, NOW), false);
      }),
      { numRuns: 200 },
    );
  });
});

describe('Slack signatures', () => {
  test('v0 signatures verify; a wrong one or an old timestamp is refused with the reason', () => {
    const raw = 'payload=%7B%22type%22%3A%22block_actions%22%7D';
    const { timestamp, signature } = signSlackRequest('sign', raw, NOW);
    const expected = createHmac('sha256', 'sign').update(`v0:${timestamp}:${raw}`).digest('hex');
    assert.equal(signature, `v0=${expected}`);
    assert.deepEqual(verifySlackSignature('sign', timestamp, raw, signature, 300, NOW), { ok: true });
    assert.deepEqual(verifySlackSignature('nope', timestamp, raw, signature, 300, NOW), {
      ok: false,
      why: 'signature',
    });
    assert.deepEqual(verifySlackSignature('sign', timestamp, raw, signature, 300, NOW + 6 * 60_000), {
      ok: false,
      why: 'stale',
    });
    assert.deepEqual(verifySlackSignature('sign', undefined, raw, signature, 300, NOW), {
      ok: false,
      why: 'stale',
    });
    assert.deepEqual(verifySlackSignature('sign', timestamp, raw, `v1=${expected}`, 300, NOW), {
      ok: false,
      why: 'signature',
    });
  });
});

describe('retry timing', () => {
  test('backoff doubles from the base, is jittered within ±25% and capped', () => {
    const p = { ...DEFAULT_RETRY, baseMs: 500, maxMs: 4000 };
    assert.equal(
      backoffMs(1, p, () => 0.5),
      500,
    );
    assert.equal(
      backoffMs(2, p, () => 0.5),
      1000,
    );
    assert.equal(
      backoffMs(3, p, () => 0.5),
      2000,
    );
    assert.equal(
      backoffMs(3, p, () => 0),
      1500,
    );
    assert.equal(
      backoffMs(3, p, () => 0.999),
      2499,
    );
    assert.equal(
      backoffMs(10, p, () => 0.999),
      4000,
    );
  });

  test('Retry-After in seconds or as a date', () => {
    assert.equal(retryAfterMs('3'), 3000);
    assert.equal(retryAfterMs(new Date(NOW + 2000).toUTCString(), NOW), 2000);
    assert.equal(retryAfterMs('soon'), undefined);
    assert.equal(retryAfterMs(null), undefined);
  });
});
