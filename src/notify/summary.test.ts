import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { ApprovalRequest } from '../core/approvals/request.ts';
import { emailMessage, escapeHtml, smtpOptions } from './email.ts';
import { describeError, displayUrl, redact } from './http.ts';
import { codeBlock, slackMessage } from './slack.ts';
import { eventOf, facts, headline, requestPayload, truncate } from './summary.ts';

const NOW = 1_700_000_000_000;

function request(o: Partial<ApprovalRequest> = {}): ApprovalRequest {
  return {
    id: 12,
    status: 'pending',
    fingerprint: 'fp',
    protocol: 'postgres',
    connection: 'prod-db',
    principal: { name: 'agent', kind: 'agent', groups: ['bots'] },
    sessionId: 's1',
    source: '10.0.0.5:5555',
    kind: 'write',
    summary: 'DELETE FROM orders WHERE id = 7',
    parts: [
      { kind: 'write', text: 'DELETE FROM orders WHERE id = 7', statement: 'DeleteStmt', tables: ['orders'] },
    ],
    attributes: { secret: 'never shown' },
    rule: { name: 'writes need a DBA', index: 0 },
    why: 'matched rule "writes need a DBA"',
    review: { groups: ['dba'], approvals: 1, expires: 900_000, hold: 'wait', window: 0 },
    createdAt: NOW,
    expiresAt: NOW + 900_000,
    approvals: [],
    ...o,
  };
}

describe('summary', () => {
  test('headline and facts say who, where, what, why and until when', () => {
    const r = request();
    assert.equal(headline(r), 'Request 12 (write on prod-db by agent) needs approval');
    const f = Object.fromEntries(facts(r, NOW).map((x) => [x.label, x.value]));
    assert.equal(f.Who, 'agent (agent) from 10.0.0.5:5555');
    assert.equal(f.Connection, 'prod-db (postgres)');
    assert.equal(f.Tables, 'orders');
    assert.equal(f.Rule, 'writes need a DBA');
    assert.match(f.Expires!, /^2023-11-14T22:28:20\.000Z \(in 15m\)$/);
    const denied = request({ status: 'denied', deniedBy: 'bob', reason: 'not today' });
    assert.equal(headline(denied), 'Request 12 (write on prod-db by agent) was denied by bob');
    assert.equal(facts(denied, NOW).find((x) => x.label === 'Reason')?.value, 'not today');
  });

  test('the webhook payload carries the request and link but not protocol attributes', () => {
    const p = requestPayload('http://airlock.test/', request());
    assert.equal(p.url, 'http://airlock.test/requests/12');
    assert.equal(p.summary, 'DELETE FROM orders WHERE id = 7');
    assert.ok(!JSON.stringify(p).includes('never shown'));
  });

  test('events follow the announced status', () => {
    assert.equal(eventOf('pending', true), 'created');
    assert.equal(eventOf('pending', false), 'approval');
    assert.equal(eventOf('approved', true), 'decided');
    assert.equal(eventOf('expired', false), 'decided');
    assert.equal(eventOf('executed', false), 'executed');
  });

  test('truncate never splits a surrogate pair and neutralises control characters', () => {
    assert.equal(truncate('abc', 10), 'abc');
    const t = truncate(`${'a'.repeat(9)}😀tail`, 10);
    assert.ok(t.startsWith('a'.repeat(9)));
    assert.ok(!/[\ud800-\udbff](?![\udc00-\udfff])/.test(t), 'no lone high surrogate');
    assert.match(t, /more characters/);
    assert.equal(truncate('a\u001b[2Jb\u202ec', 100), 'a\ufffd[2Jb\ufffdc');
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.integer({ min: 1, max: 50 }), (s, n) => {
        const out = truncate(s, n);
        assert.ok(!/[\ud800-\udbff]$/.test(out.split('\n…')[0]!));
      }),
    );
  });
});

describe('Slack message', () => {
  test('summary, link and buttons only while pending and only when enabled', () => {
    const m = slackMessage(request(), 'http://airlock.test', true, NOW);
    const json = JSON.stringify(m);
    assert.match(m.text, /Request 12 .* needs approval: http:\/\/airlock\.test\/requests\/12/);
    assert.ok(json.includes('<http://airlock.test/requests/12|'));
    assert.ok(json.includes('DELETE FROM orders WHERE id = 7'));
    assert.ok(json.includes('"action_id":"airlock_approve"'));
    assert.ok(!JSON.stringify(slackMessage(request(), 'http://a', false, NOW)).includes('airlock_approve'));
    const approved = slackMessage(
      request({ status: 'approved', approvals: [{ by: 'bob', at: NOW }] }),
      'http://a',
      true,
      NOW,
    );
    assert.ok(!JSON.stringify(approved).includes('airlock_approve'));
    assert.match(approved.text, /approved by bob/);
  });

  test('a statement cannot break out of its code block, inject mentions or exceed the limit', () => {
    const evil = 'SELECT 1 ``` <!channel> <https://evil|click> &' + 'x'.repeat(10_000);
    const block = codeBlock(evil);
    assert.ok(block.length <= 3000);
    assert.ok(block.startsWith('```\n') && block.endsWith('\n```'));
    assert.equal(block.slice(4, -4).includes('```'), false);
    assert.ok(!block.includes('<!channel>'));
    assert.ok(block.includes('&lt;!channel&gt;'));
    fc.assert(
      fc.property(fc.string({ maxLength: 5000 }), (s) => {
        const b = codeBlock(s);
        assert.ok(b.length <= 3000);
        assert.equal(b.slice(4, -4).includes('```'), false);
        assert.equal(/[<>]/.test(b), false);
      }),
      { numRuns: 200 },
    );
  });
});

describe('email message', () => {
  test('plain text and HTML with the escaped statement and the link; a one-line subject', () => {
    const m = emailMessage(
      request({ summary: 'DELETE FROM "t" WHERE note = \'<script>alert(1)</script>\'' }),
      'http://airlock.test',
      NOW,
    );
    assert.equal(m.subject, '[Airlock] Request 12 (write on prod-db by agent) needs approval');
    assert.ok(m.text.includes("<script>alert(1)</script>'"));
    assert.ok(m.text.includes('Review it at http://airlock.test/requests/12'));
    assert.ok(!m.html.includes('<script>'));
    assert.ok(m.html.includes('&lt;script&gt;alert(1)&lt;/script&gt;&#39;'));
    assert.ok(m.html.includes('href="http://airlock.test/requests/12"'));
    assert.equal(escapeHtml(`<a href="x">'&`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;');
    const newline = emailMessage(request({ connection: 'a\r\nBcc: x@evil' }), 'http://a', NOW);
    assert.ok(!/[\r\n]/.test(newline.subject));
  });

  test('SMTP URLs: smtp (STARTTLS when offered), smtps, credentials decoded', () => {
    assert.deepEqual(smtpOptions('smtp://user%40x:p%3Ass@mail.example.com:2525', 1000), {
      host: 'mail.example.com',
      port: 2525,
      secure: false,
      auth: { user: 'user@x', pass: 'p:ss' },
      connectionTimeout: 1000,
      greetingTimeout: 1000,
      socketTimeout: 1000,
    });
    assert.equal(smtpOptions('smtps://h', 1).port, 465);
    assert.equal(smtpOptions('smtp://h?starttls=required', 1).requireTLS, true);
    assert.throws(() => smtpOptions('http://h', 1), /smtp:\/\//);
  });
});

describe('error text', () => {
  test('secrets are redacted, URLs shown without credentials or query', () => {
    assert.equal(redact('login as bob:hunter22 failed', ['hunter22']), 'login as bob:[redacted] failed');
    assert.equal(redact('p%40ss in url', ['p@ss']), '[redacted] in url');
    assert.equal(displayUrl('https://u:p@hooks.example.com/a/b?token=x'), 'https://hooks.example.com/a/b');
    const err = new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:9') });
    assert.equal(describeError(err), 'fetch failed: connect ECONNREFUSED 127.0.0.1:9');
    assert.equal(describeError(new DOMException('x', 'TimeoutError')), 'timed out');
  });
});
