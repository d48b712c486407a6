/**
 * Notifications against real local peers: an HTTP server standing in for Slack's Web API, a
 * webhook receiver that verifies signatures, and a small SMTP server on a socket. Requests go
 * through the real Gate, Approvals, AuditLog and SQLite store.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Action, Principal } from '../src/core/action.ts';
import { InProcessEventBus } from '../src/core/approvals/bus.ts';
import { Approvals } from '../src/core/approvals/service.ts';
import { AuditLog } from '../src/core/audit/log.ts';
import { Gate } from '../src/core/gate.ts';
import { PolicyError, parsePolicy } from '../src/core/policy/load.ts';
import type { Store } from '../src/core/store.ts';
import type { DeliveryRecord } from '../src/notify/delivery-log.ts';
import { type Notifier, startNotifier } from '../src/notify/notifier.ts';
import { signSlackRequest, verifyWebhookSignature } from '../src/notify/signing.ts';
import { openStore } from '../src/store/open.ts';

const agent: Principal = { name: 'agent', kind: 'agent', groups: ['bots'] };
const alice: Principal = { name: 'alice', kind: 'human', groups: ['dba'] };
const bob: Principal = { name: 'bob', kind: 'human', groups: ['dba'] };
const SIGNING = 'slack-signing-secret-for-tests';
const HOOK = 'hook-secret-for-tests';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// ---- peers ----

interface Received {
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
  readonly at: number;
}

async function httpPeer(
  answer: (r: Received, n: number) => { status: number; json?: unknown } | 'hang',
): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server: Server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = {
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: performance.now(),
      };
      received.push(r);
      const a = answer(r, received.length);
      if (a === 'hang') return;
      res.writeHead(a.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(a.json ?? {}));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface Mail {
  readonly from: string;
  readonly to: string[];
  readonly data: string;
  readonly auth?: string;
}

/**
 * Just enough ESMTP (RFC 5321) for nodemailer: EHLO, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA (with
 * dot-unstuffing), RSET, NOOP, QUIT. `silent` accepts connections and never greets (a dead
 * server).
 */
async function smtpPeer(silent = false): Promise<{ port: number; mails: Mail[]; close(): Promise<void> }> {
  const mails: Mail[] = [];
  const sockets = new Set<Socket>();
  const server: NetServer = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    if (silent) return;
    let buffer = '';
    let mode: 'cmd' | 'data' | 'auth-plain' | 'auth-user' | 'auth-pass' = 'cmd';
    let mail: { from: string; to: string[]; lines: string[] } = { from: '', to: [], lines: [] };
    let auth: string | undefined;
    let user = '';
    const say = (line: string) => socket.write(`${line}\r\n`);
    say('220 localhost ESMTP test');
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      for (let i = buffer.indexOf('\r\n'); i >= 0; i = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        if (mode === 'data') {
          if (line === '.') {
            mails.push({
              from: mail.from,
              to: mail.to,
              data: mail.lines.join('\r\n'),
              ...(auth ? { auth } : {}),
            });
            mail = { from: '', to: [], lines: [] };
            mode = 'cmd';
            say('250 2.0.0 queued');
          } else mail.lines.push(line.startsWith('..') ? line.slice(1) : line);
          continue;
        }
        if (mode === 'auth-plain') {
          auth = Buffer.from(line, 'base64').toString('utf8').split('\0').slice(1).join(':');
          mode = 'cmd';
          say('235 2.7.0 accepted');
          continue;
        }
        if (mode === 'auth-user') {
          user = Buffer.from(line, 'base64').toString('utf8');
          mode = 'auth-pass';
          say('334 UGFzc3dvcmQ6');
          continue;
        }
        if (mode === 'auth-pass') {
          auth = `${user}:${Buffer.from(line, 'base64').toString('utf8')}`;
          mode = 'cmd';
          say('235 2.7.0 accepted');
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') socket.write('250-localhost\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n');
        else if (verb === 'HELO') say('250 localhost');
        else if (verb === 'AUTH') {
          const [, method, initial] = line.split(' ');
          if (method?.toUpperCase() === 'PLAIN' && initial) {
            auth = Buffer.from(initial, 'base64').toString('utf8').split('\0').slice(1).join(':');
            say('235 2.7.0 accepted');
          } else if (method?.toUpperCase() === 'PLAIN') {
            mode = 'auth-plain';
            say('334 ');
          } else {
            mode = 'auth-user';
            say('334 VXNlcm5hbWU6');
          }
        } else if (verb === 'MAIL') {
          mail.from = /<([^>]*)>/.exec(line)?.[1] ?? '';
          say('250 2.1.0 ok');
        } else if (verb === 'RCPT') {
          mail.to.push(/<([^>]*)>/.exec(line)?.[1] ?? '');
          say('250 2.1.5 ok');
        } else if (verb === 'DATA') {
          mode = 'data';
          say('354 end with <CRLF>.<CRLF>');
        } else if (verb === 'RSET' || verb === 'NOOP') say('250 ok');
        else if (verb === 'QUIT') {
          say('221 bye');
          socket.end();
        } else say('502 5.5.2 unknown command');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    mails,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// ---- the system under test ----

function policyYaml(notify: string): string {
  return `
public_url: http://airlock.test
identities:
  tokens:
    - { name: agent, token: agent-token, kind: agent, groups: [bots] }
    - { name: alice, token: alice-token, kind: human, groups: [dba] }
    - { name: bob, token: bob-token, kind: human, groups: [dba] }
connections:
  prod-db: { type: postgres, upstream: { host: 127.0.0.1, database: app, user: app } }
  other-db: { type: postgres, upstream: { host: 127.0.0.1, database: app, user: app } }
rules:
  - name: writes need a DBA
    kinds: [write]
    effect: review
    review: { groups: [dba] }
  - { name: reads, kinds: [read], effect: allow }
notify:
${notify}
`;
}

interface System {
  readonly store: Store;
  readonly audit: AuditLog;
  readonly approvals: Approvals;
  readonly gate: Gate;
  readonly notifier: Notifier;
  hold(summary?: string, connection?: string): Promise<number>;
  close(): Promise<void>;
}

let session = 0;
function writeAction(summary: string, connection = 'prod-db'): Action {
  session++;
  return {
    protocol: 'postgres',
    connection,
    principal: agent,
    sessionId: `s${session}`,
    source: '127.0.0.1:40000',
    kind: 'write',
    summary,
    normalized: `${summary} /* ${session} */`,
    parts: [{ kind: 'write', text: summary, statement: 'DeleteStmt', tables: ['orders'] }],
    attributes: {},
  };
}

async function system(notify: string, retry = { baseMs: 20, maxMs: 100, timeoutMs: 2000 }): Promise<System> {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-notify-'));
  dirs.push(dir);
  const policy = parsePolicy(policyYaml(notify), join(dir, 'airlock.yaml'));
  const store = await openStore('sqlite::memory:', dir);
  const audit = new AuditLog(store, { batchMs: 5 });
  await audit.init();
  const bus = new InProcessEventBus();
  const approvals = new Approvals({ store, audit, bus });
  await approvals.start();
  const gate = new Gate({ policy, approvals, audit });
  const notifier = startNotifier({ policy, approvals, bus, audit, retry });
  return {
    store,
    audit,
    approvals,
    gate,
    notifier,
    async hold(summary = 'DELETE FROM orders WHERE id = 7', connection = 'prod-db') {
      const outcome = await gate.decide(writeAction(summary, connection));
      assert.equal(outcome.verdict, 'hold');
      if (outcome.verdict !== 'hold') throw new Error('not held');
      return outcome.request.id;
    },
    async close() {
      await notifier.close();
      await approvals.close();
      await audit.close();
      await store.close();
    },
  };
}

async function until<T>(what: string, f: () => T | undefined | false, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function slackCallback(
  user: string,
  action: 'airlock_approve' | 'airlock_deny',
  id: number,
  responseUrl: string,
) {
  const payload = {
    type: 'block_actions',
    user: { id: user, username: user.toLowerCase() },
    actions: [{ action_id: action, value: String(id), type: 'button' }],
    response_url: responseUrl,
  };
  return `payload=${encodeURIComponent(JSON.stringify(payload))}`;
}

function signed(raw: string, secret = SIGNING, now = Date.now()) {
  const { timestamp, signature } = signSlackRequest(secret, raw, now);
  return { 'x-slack-request-timestamp': timestamp, 'x-slack-signature': signature, 'content-type': 'x' };
}

// ---- Slack ----

describe('Slack', () => {
  test('posts the summary and link, a signed button approves, bad or stale signatures and self-approval are refused, and the message is updated', async () => {
    const slack = await httpPeer((r) =>
      r.path === '/api/chat.postMessage'
        ? { status: 200, json: { ok: true, channel: 'C0123', ts: '1700000000.000100' } }
        : { status: 200, json: { ok: true } },
    );
    const sys = await system(`
  - type: slack
    token: xoxb-test-token
    channel: "#db-approvals"
    signing_secret: ${SIGNING}
    buttons: true
    api_url: ${slack.url}/api
    users: { UBOB: bob, UAGENT: agent, UEVE: eve }
`);
    try {
      const id = await sys.hold('DELETE FROM orders WHERE id = 7');
      const post = await until('chat.postMessage', () =>
        slack.received.find((r) => r.path === '/api/chat.postMessage'),
      );
      assert.equal(post.headers.authorization, 'Bearer xoxb-test-token');
      const message = JSON.parse(post.body);
      assert.equal(message.channel, '#db-approvals');
      const text = JSON.stringify(message);
      for (const s of [
        `Request ${id} (write on prod-db by agent) needs approval`,
        'DELETE FROM orders WHERE id = 7',
        `http://airlock.test/requests/${id}`,
        'writes need a DBA',
        '*Expires*',
        'airlock_approve',
        'airlock_deny',
      ])
        assert.ok(text.includes(s), `the message mentions ${s}`);
      await sys.notifier.idle();

      const response = `${slack.url}/response`;
      // A forged signature and a replayed (stale) callback: refused, nothing counted.
      const raw = slackCallback('UBOB', 'airlock_approve', id, response);
      const forged = await sys.notifier.handleSlackAction(raw, signed(raw, 'not-the-secret'));
      assert.equal(forged.status, 401);
      const tampered = await sys.notifier.handleSlackAction(raw.replace('UBOB', 'UEVE'), signed(raw));
      assert.equal(tampered.status, 401);
      const stale = await sys.notifier.handleSlackAction(raw, signed(raw, SIGNING, Date.now() - 6 * 60_000));
      assert.equal(stale.status, 401);
      assert.match(stale.body.message, /5 minutes/);
      assert.equal((await sys.approvals.get(id))?.status, 'pending');

      // The Slack user mapped to the requester cannot approve; an unmapped one cannot either.
      const selfRaw = slackCallback('UAGENT', 'airlock_approve', id, response);
      const self = await sys.notifier.handleSlackAction(selfRaw, signed(selfRaw));
      assert.equal(self.status, 200);
      assert.equal(self.body.ok, false);
      assert.equal(self.body.code, 'AIRLOCK_E_SELF_APPROVAL');
      const strangerRaw = slackCallback('UNOBODY', 'airlock_approve', id, response);
      const stranger = await sys.notifier.handleSlackAction(strangerRaw, signed(strangerRaw));
      assert.equal(stranger.body.code, 'AIRLOCK_E_FORBIDDEN');
      // Mapped to a name no identity has: not a reviewer.
      const eveRaw = slackCallback('UEVE', 'airlock_approve', id, response);
      assert.equal(
        (await sys.notifier.handleSlackAction(eveRaw, signed(eveRaw))).body.code,
        'AIRLOCK_E_FORBIDDEN',
      );
      assert.equal((await sys.approvals.get(id))?.status, 'pending');
      assert.equal((await sys.approvals.get(id))?.approvals.length, 0);

      // Bob's click counts and approves; the held statement's waiter resolves.
      const settled = sys.gate.settled(id);
      const ok = await sys.notifier.handleSlackAction(raw, signed(raw));
      assert.deepEqual(ok, {
        status: 200,
        body: { ok: true, message: `bob approved request ${id}`, request: id },
      });
      const settlement = await settled;
      assert.equal(settlement.status, 'approved');
      assert.deepEqual(
        settlement.request.approvals.map((v) => v.by),
        ['bob'],
      );

      const update = await until('chat.update', () =>
        slack.received.find((r) => r.path === '/api/chat.update'),
      );
      const edited = JSON.parse(update.body);
      assert.equal(edited.channel, 'C0123');
      assert.equal(edited.ts, '1700000000.000100');
      assert.match(JSON.stringify(edited), /was approved by bob/);
      assert.ok(!JSON.stringify(edited).includes('airlock_approve'), 'no buttons once decided');
      // The clicking user was told about the refusals and the approval.
      await until(
        'ephemeral replies',
        () => slack.received.filter((r) => r.path === '/response').length >= 4,
      );
      const replies = slack.received.filter((r) => r.path === '/response').map((r) => JSON.parse(r.body));
      assert.ok(replies.every((r) => r.response_type === 'ephemeral'));
      assert.ok(replies.some((r) => /cannot decide it/.test(r.text)));
    } finally {
      await sys.close();
      await slack.close();
    }
  });

  test('a decision made elsewhere updates the message; buttons are off by default', async () => {
    const slack = await httpPeer((r) =>
      r.path === '/chat.postMessage'
        ? { status: 200, json: { ok: true, channel: 'C9', ts: '1.2' } }
        : { status: 200, json: { ok: true } },
    );
    const sys = await system(`
  - { type: slack, token: xoxb-t, channel: "#ops", signing_secret: ${SIGNING}, api_url: "${slack.url}", users: { UBOB: bob } }
`);
    try {
      const id = await sys.hold();
      await until('post', () => slack.received.find((r) => r.path === '/chat.postMessage'));
      assert.ok(!slack.received[0]!.body.includes('airlock_approve'), 'buttons are off by default');
      await sys.approvals.deny(id, alice, 'use a transaction with a WHERE on the tenant');
      const update = await until('update', () => slack.received.find((r) => r.path === '/chat.update'));
      assert.match(update.body, /was denied by alice/);
      assert.match(update.body, /use a transaction with a WHERE on the tenant/);
      // A signed click while buttons are off does not count.
      const id2 = await sys.hold('DELETE FROM orders WHERE id = 8');
      const raw = slackCallback('UBOB', 'airlock_approve', id2, `${slack.url}/response`);
      const reply = await sys.notifier.handleSlackAction(raw, signed(raw));
      assert.equal(reply.body.ok, false);
      assert.equal((await sys.approvals.get(id2))?.status, 'pending');
    } finally {
      await sys.close();
      await slack.close();
    }
  });

  test('a Slack API error is recorded, not retried when it cannot succeed', async () => {
    const slack = await httpPeer(() => ({ status: 200, json: { ok: false, error: 'channel_not_found' } }));
    const sys = await system(`
  - { type: slack, token: xoxb-secret-value, channel: "#nope", api_url: "${slack.url}" }
`);
    try {
      const id = await sys.hold();
      const record = await until('failed delivery', () =>
        sys.notifier.deliveries({ requestId: id }).find((d) => d.status === 'failed'),
      );
      assert.equal(record.channel, 'slack');
      assert.equal(record.attempts.length, 1);
      assert.equal(record.attempts[0]!.error, 'chat.postMessage: channel_not_found');
      assert.ok(!JSON.stringify(sys.notifier.deliveries()).includes('xoxb-secret-value'));
    } finally {
      await sys.close();
      await slack.close();
    }
  });
});

// ---- webhook ----

describe('webhook', () => {
  test('signed JSON that the receiver verifies; retried after 500s and delivered on the 3rd attempt; failures audited', async () => {
    const verified: { event: string; delivery: string; status: string; ok: boolean }[] = [];
    const hook = await httpPeer((r, n) => {
      const ok = verifyWebhookSignature(
        HOOK,
        r.headers['x-airlock-timestamp'] as string,
        r.body,
        r.headers['x-airlock-signature'] as string,
      );
      const body = JSON.parse(r.body);
      verified.push({ event: body.event, delivery: body.delivery, status: body.request.status, ok });
      if (!ok) return { status: 401 };
      return { status: n <= 2 ? 500 : 200 };
    });
    const broken = await httpPeer(() => ({ status: 410 }));
    const sys = await system(`
  - { type: webhook, url: "${hook.url}/airlock", secret: "${HOOK}", connections: [prod-db], events: [created, decided] }
  - { type: webhook, url: "${broken.url}/gone?token=query-secret", secret: "${HOOK}", events: [created] }
`);
    try {
      const id = await sys.hold();
      await sys.notifier.idle();
      assert.equal(verified.length, 3);
      assert.ok(verified.every((v) => v.ok && v.event === 'created' && v.status === 'pending'));
      assert.equal(new Set(verified.map((v) => v.delivery)).size, 1, 'one delivery id across retries');
      const payload = JSON.parse(hook.received[2]!.body);
      assert.equal(payload.request.id, id);
      assert.equal(payload.request.url, `http://airlock.test/requests/${id}`);
      assert.equal(payload.request.summary, 'DELETE FROM orders WHERE id = 7');
      assert.equal(payload.request.rule.name, 'writes need a DBA');
      assert.equal(hook.received[2]!.headers['content-type'], 'application/json; charset=utf-8');

      const [gone, delivered] = [
        sys.notifier.deliveries({ requestId: id }).find((d) => d.target.includes('/gone')),
        sys.notifier.deliveries({ requestId: id }).find((d) => d.target.endsWith('/airlock')),
      ] as [DeliveryRecord, DeliveryRecord];
      assert.equal(delivered.status, 'delivered');
      assert.deepEqual(
        delivered.attempts.map((a) => [a.ok, a.status]),
        [
          [false, 500],
          [false, 500],
          [true, 200],
        ],
      );
      assert.equal(gone.status, 'failed');
      assert.equal(gone.attempts.length, 1, 'a 410 is not retried');
      assert.equal(gone.target, `${broken.url}/gone`, 'the query (which may hold a token) is not shown');

      await sys.audit.flush();
      const records = await sys.store.readAudit(1, 100);
      const failed = records.filter((r) => r.type === 'notify.failed');
      assert.equal(failed.length, 1);
      assert.equal(failed[0]!.data.requestId, id);
      assert.equal(failed[0]!.data.channel, 'webhook');
      assert.ok(!JSON.stringify(records).includes('query-secret'));

      // Approval votes are filtered out (events: [created, decided]); the decision arrives.
      await sys.approvals.approve(id, bob);
      await sys.notifier.idle();
      const last = verified[verified.length - 1]!;
      assert.deepEqual([last.event, last.status, last.ok], ['decided', 'approved', true]);
      // Another connection is filtered out.
      await sys.hold('DELETE FROM orders WHERE id = 9', 'other-db');
      await sys.notifier.idle();
      assert.equal(verified.filter((v) => v.event === 'created').length, 3);
    } finally {
      await sys.close();
      await hook.close();
      await broken.close();
    }
  });

  test('a team bot decides through the inbound endpoint with its reviewer identity', async () => {
    const sys = await system(
      '  - { type: webhook, url: "http://127.0.0.1:9/x", secret: s, events: [executed] }',
    );
    try {
      const id = await sys.hold();
      const bad = await sys.notifier.handleInboundDecision(bob, { request: id, decision: 'deny' });
      assert.equal(bad.status, 400);
      const self = await sys.notifier.handleInboundDecision(agent, { request: id, decision: 'approve' });
      assert.equal(self.status, 403);
      assert.equal((self.body.error as { code: string }).code, 'AIRLOCK_E_SELF_APPROVAL');
      const ok = await sys.notifier.handleInboundDecision(bob, {
        request: id,
        decision: 'deny',
        reason: 'not now',
      });
      assert.equal(ok.status, 200);
      assert.equal((ok.body.request as { status: string }).status, 'denied');
      const again = await sys.notifier.handleInboundDecision(alice, { request: id, decision: 'approve' });
      assert.equal(again.status, 409);
    } finally {
      await sys.close();
    }
  });
});

// ---- email ----

describe('email', () => {
  test('a local SMTP server receives the message with text and HTML parts and the link', async () => {
    const smtp = await smtpPeer();
    process.env.AIRLOCK_TEST_SMTP_URL = `smtp://mailer:p%40ss-word@127.0.0.1:${smtp.port}`;
    const sys = await system(`
  - { type: email, smtp: "\${env:AIRLOCK_TEST_SMTP_URL}", from: "airlock@example.com", to: [dba@example.com, oncall@example.com] }
`);
    try {
      const id = await sys.hold("DELETE FROM orders WHERE note = '<b>x</b>'");
      await sys.notifier.idle();
      assert.equal(smtp.mails.length, 1);
      const mail = smtp.mails[0]!;
      assert.equal(mail.from, 'airlock@example.com');
      assert.deepEqual(mail.to, ['dba@example.com', 'oncall@example.com']);
      assert.equal(mail.auth, 'mailer:p@ss-word');
      const data = mail.data.replace(/=\r\n/g, '').replace(/=3D/g, '=');
      assert.match(data, /^Subject: \[Airlock\] Request \d+ \(write on prod-db by agent\) needs approval/m);
      assert.match(data, /Content-Type: multipart\/alternative/);
      assert.match(data, /Content-Type: text\/plain/);
      assert.match(data, /Content-Type: text\/html/);
      assert.ok(data.includes(`Review it at http://airlock.test/requests/${id}`));
      assert.ok(data.includes(`href="http://airlock.test/requests/${id}"`));
      assert.ok(data.includes("note = '<b>x</b>'"), 'the text part has the statement as written');
      assert.ok(data.includes('&lt;b&gt;x&lt;/b&gt;'), 'the HTML part has it escaped');
      assert.equal(sys.notifier.deliveries({ requestId: id })[0]?.status, 'delivered');
    } finally {
      await sys.close();
      await smtp.close();
      delete process.env.AIRLOCK_TEST_SMTP_URL;
    }
  });
});

// ---- failure isolation ----

describe('channels that are down', () => {
  test('do not delay creating, approving or releasing a request; the deliveries show them waiting', async () => {
    const hang = await httpPeer(() => 'hang');
    const silent = await smtpPeer(true);
    const sys = await system(
      `
  - { type: webhook, url: "${hang.url}/hook", secret: s }
  - { type: slack, token: t, channel: "#c", api_url: "${hang.url}" }
  - { type: email, smtp: "smtp://127.0.0.1:${silent.port}", from: a@example.com, to: [b@example.com] }
`,
      // The peers never answer within the test: anything that waited for them would never finish.
      { baseMs: 600_000, maxMs: 600_000, timeoutMs: 600_000 },
    );
    try {
      // Warm up (first statements compile, first sockets open).
      await sys.approvals.approve(await sys.hold('DELETE FROM orders WHERE id = 0'), bob);
      for (let i = 1; i <= 5; i++) {
        const id = await sys.hold(`DELETE FROM orders WHERE id = ${i}`);
        const settled = sys.gate.settled(id);
        await sys.approvals.approve(id, bob);
        await settled;
        await sys.gate.release(id);
      }
      // Every request went through hold → approve → release while no delivery has finished.
      assert.ok(
        sys.notifier.deliveries().every((d) => d.status === 'sending' || d.status === 'retrying'),
        'a delivery finished, so the peers were not hanging',
      );
      const waiting = await until('deliveries in flight', () => {
        const d = sys.notifier.deliveries().filter((x) => x.status === 'sending');
        return d.length >= 3 ? d : undefined;
      });
      assert.deepEqual(new Set(waiting.map((d) => d.channel)), new Set(['webhook', 'slack', 'email']));
      // Resolves although the peers never answer: close does not wait for them.
      await sys.notifier.close();
    } finally {
      await sys.close();
      await hang.close();
      await silent.close();
    }
  });
});

describe('policy', () => {
  test('notify entries are strict, and buttons need the signing secret', () => {
    assert.throws(
      () => parsePolicy(policyYaml('  - { type: slack, token: t, channel: c, buttons: true }')),
      (err: unknown) => err instanceof PolicyError && /signing_secret/.test(err.message),
    );
    assert.throws(
      () => parsePolicy(policyYaml('  - { type: webhook, url: "https://x", secret: s, retries: 3 }')),
      (err: unknown) => err instanceof PolicyError && /unknown key "retries"/.test(err.message),
    );
    assert.throws(
      () =>
        parsePolicy(policyYaml('  - { type: webhook, url: "https://x", secret: "${env:AIRLOCK_UNSET_X}" }')),
      (err: unknown) => err instanceof PolicyError && /AIRLOCK_UNSET_X/.test(err.message),
    );
  });
});
