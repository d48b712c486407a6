/**
 * Issue 3, the reviewer console: Debian's headless Chromium (driven by playwright-core, never a
 * downloaded browser) against a real gateway in front of a private PostgreSQL, with the real
 * `psql` as the caller whose statements are held. Screenshots go to test-artifacts/.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import Fastify from 'fastify';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { KIND_RISK } from '../src/core/action.ts';
import { InProcessEventBus } from '../src/core/approvals/bus.ts';
import type { ApprovalRequest } from '../src/core/approvals/request.ts';
import { TokenRegistry } from '../src/core/identity/tokens.ts';
import { parsePolicy } from '../src/core/policy/load.ts';
import { CONSOLE_CSP, readCookie, SESSION_COOKIE } from '../src/server/console.ts';
import { registerEvents, TicketSigner } from '../src/server/events.ts';
import { KIND_RISK as WEB_KIND_RISK } from '../web/src/risk.ts';
import { tokenize } from '../web/src/sql.ts';
import { ARTIFACTS, buildConsole, launchChromium, NO_CHROMIUM } from './support/chromium.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import type { ManagedProcess } from './support/processes.ts';
import { stopAll } from './support/processes.ts';
import { psqlCommand } from './support/psql.ts';

const TIMEOUT = 180_000;

/** Visible text as a person reads it. */
async function text(l: Locator): Promise<string> {
  return (await l.textContent()) ?? '';
}

describe('console building blocks', () => {
  test('the SQL tokenizer keeps every character and finds keywords, strings, comments, numbers', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (s) => {
        assert.equal(
          tokenize(s)
            .map((t) => t.text)
            .join(''),
          s,
        );
      }),
      { numRuns: 500 },
    );
    const sql = "DELETE FROM orders /* nested /* c */ */ WHERE id = 7 AND note = 'it''s' -- why\n;$$x$$ $1";
    const types = tokenize(sql)
      .filter((t) => t.type !== 'space' && t.type !== 'punct')
      .map((t) => `${t.type}:${t.text}`);
    assert.deepEqual(types, [
      'keyword:DELETE',
      'keyword:FROM',
      'ident:orders',
      'comment:/* nested /* c */ */',
      'keyword:WHERE',
      'ident:id',
      'number:7',
      'keyword:AND',
      'ident:note',
      "string:'it''s'",
      'comment:-- why',
      'string:$$x$$',
      'param:$1',
    ]);
  });

  test("the inbox orders by the core's kind risk", () => {
    assert.deepEqual(WEB_KIND_RISK, KIND_RISK);
  });

  test('event stream tickets are signed, bound to a name, and short-lived', () => {
    const signer = new TicketSigner();
    const { ticket } = signer.issue({ name: 'alice', kind: 'human', groups: ['dba'] }, 1_000);
    assert.equal(signer.verify(ticket, 2_000), 'alice');
    assert.equal(signer.verify(ticket, 1_000 + 61_000), undefined);
    assert.equal(new TicketSigner().verify(ticket, 2_000), undefined);
    const [body, mac] = ticket.split('.');
    const forged = Buffer.from(JSON.stringify({ n: 'bob', e: 9e15, r: 'x' })).toString('base64url');
    assert.equal(signer.verify(`${forged}.${mac}`, 2_000), undefined);
    assert.equal(signer.verify(`${body}.`, 2_000), undefined);
  });
});

describe('the event stream', () => {
  const TOKENS = { agent: 'alk_test_sse_agent_0123456789', alice: 'alk_test_sse_alice_0123456789' };
  const policy = parsePolicy(
    `
identities:
  tokens:
    - { name: agent, token: ${TOKENS.agent}, kind: agent, groups: [agents] }
    - { name: alice, token: ${TOKENS.alice}, kind: human, groups: [dba] }
connections:
  app:
    type: postgres
    upstream: { host: 127.0.0.1, port: 5432, database: app, user: app, password: x }
rules:
  - name: writes need a DBA
    kinds: [write]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 15m, hold: wait }
`,
    '/tmp/events-test.yaml',
  );
  const requests = new Map<number, ApprovalRequest>();
  const fake = (id: number, by: string, summary: string): ApprovalRequest =>
    ({
      id,
      status: 'pending',
      fingerprint: 'f',
      protocol: 'postgres',
      connection: 'app',
      principal: { name: by, kind: 'agent', groups: [] },
      sessionId: 's',
      kind: 'write',
      summary,
      parts: [{ kind: 'write', text: summary }],
      attributes: { estimatedRows: 42 },
      rule: { name: 'writes need a DBA', index: 0 },
      why: 'a write',
      review: { groups: ['dba'], approvals: 1, expires: 900_000, hold: 'wait' },
      createdAt: Date.now(),
      expiresAt: Date.now() + 900_000,
      approvals: [],
    }) as unknown as ApprovalRequest;

  async function serve(opts: { maxBufferedBytes?: number } = {}) {
    const bus = new InProcessEventBus();
    const app = Fastify();
    const events = registerEvents(app, {
      policy,
      tokens: new TokenRegistry(policy.tokens),
      approvals: { get: async (id) => requests.get(id) },
      bus,
      ...opts,
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    return { app, bus, events, url: `http://127.0.0.1:${port}/api/v1/events` };
  }

  /** Reads frames until `until` matches the text so far. */
  async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, until: RegExp): Promise<string> {
    let text = '';
    const dec = new TextDecoder();
    while (!until.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
    }
    return text;
  }

  test('reviewers hear every request, others only their own, re-read with estimated rows', async () => {
    const { app, bus, events, url } = await serve();
    requests.set(1, fake(1, 'bob', 'DELETE FROM a'));
    requests.set(2, fake(2, 'agent', 'DELETE FROM b'));
    const open = async (who: keyof typeof TOKENS, ctl: AbortController) => {
      const res = await fetch(url, {
        headers: { authorization: `Bearer ${TOKENS[who]}` },
        signal: ctl.signal,
      });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      await readUntil(reader, /event: ready/);
      return reader;
    };
    const c1 = new AbortController();
    const c2 = new AbortController();
    const alice = await open('alice', c1);
    const agent = await open('agent', c2);
    assert.equal(events.streams(), 2);
    bus.publish({ type: 'request', id: 1, status: 'pending' });
    bus.publish({ type: 'request', id: 2, status: 'pending' });
    const seen = await readUntil(alice, /DELETE FROM b/);
    assert.match(seen, /DELETE FROM a[\s\S]*DELETE FROM b/);
    assert.match(seen, /"estimatedRows":42/);
    const own = await readUntil(agent, /DELETE FROM b/);
    assert.doesNotMatch(own, /DELETE FROM a/);
    c1.abort();
    c2.abort();
    for (let i = 0; i < 50 && events.streams() > 0; i++) await new Promise((ok) => setTimeout(ok, 20));
    assert.equal(events.streams(), 0, 'closed streams are forgotten');
    await app.close();
  });

  test('a reader that stops reading is cut off, and close() ends open streams', async () => {
    // One event stays well under the bound, so the reader that keeps up is never at risk even
    // on a loaded machine; the stalled one passes it once its socket buffers are full.
    const { app, bus, events, url } = await serve({ maxBufferedBytes: 512 * 1024 });
    requests.set(3, fake(3, 'agent', `DELETE FROM c WHERE note = '${'x'.repeat(128 * 1024)}'`));
    const stalled = await fetch(url, { headers: { authorization: `Bearer ${TOKENS.alice}` } });
    assert.equal(stalled.status, 200);
    const live = new AbortController();
    const reading = await fetch(url, {
      headers: { authorization: `Bearer ${TOKENS.alice}` },
      signal: live.signal,
    });
    const reader = reading.body!.getReader();
    await readUntil(reader, /event: ready/);
    assert.equal(events.streams(), 2);
    // The stalled one never reads: its socket buffers fill, then its backlog passes the bound.
    for (let i = 0; i < 400 && events.streams() > 1; i++) {
      bus.publish({ type: 'request', id: 3, status: 'pending' });
      // One whole frame: the request JSON ends with its URL.
      await readUntil(reader, /\/requests\/3"}\n\n/);
      await new Promise((ok) => setTimeout(ok, 5));
    }
    assert.equal(events.streams(), 1, 'the stalled stream was dropped');
    await stalled.body?.cancel().catch(() => undefined);
    const closing = app.close();
    // The stream ends (the server does not wait forever for it).
    await readUntil(reader, /$^/).catch(() => '');
    await closing;
    assert.equal(events.streams(), 0);
  });
});

describe('console against a gateway', { timeout: TIMEOUT * 3 }, () => {
  let upstream: PrivatePostgres;
  let gw: TestGateway;
  let browser: Browser | undefined;
  const running: ManagedProcess[] = [];

  before(async () => {
    buildConsole();
    upstream = await startPostgres();
    gw = await startTestGateway(upstream);
  });

  after(async () => {
    await browser?.close();
    for (const p of running) if (!p.hasExited()) await p.stop('SIGKILL', 5_000);
    await gw?.close();
    await upstream?.stop();
    await stopAll();
  });

  async function launch(): Promise<Browser> {
    // playwright-core gives every launch a fresh temporary profile.
    browser ??= await launchChromium(['--disable-quic', '--disable-component-update', '--disable-sync']);
    return browser;
  }

  /** A signed-in page; console errors (other than the expected 401 before sign-in) fail the test. */
  async function signedIn(
    who: 'alice' | 'carol',
    viewport = { width: 1280, height: 900 },
  ): Promise<{ ctx: BrowserContext; page: Page; problems: string[] }> {
    const ctx = await (await launch()).newContext({ viewport, baseURL: gw.apiUrl });
    const page = await ctx.newPage();
    page.setDefaultTimeout(30_000);
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' && !/401|Unauthorized/.test(m.text())) problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(String(e)));
    await page.goto('/');
    await page.waitForURL('**/login');
    await page.getByLabel('Airlock token').fill(gw.tokens[who]);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('me').filter({ hasText: who }).waitFor();
    await page.getByTestId('live').filter({ hasText: 'live' }).waitFor();
    return { ctx, page, problems };
  }

  function held(who: 'agent' | 'carol', sql: string): ManagedProcess {
    const p = psqlCommand(gw.target(who), sql);
    running.push(p);
    return p;
  }

  async function pendingId(sqlStart: string): Promise<number> {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const res = await gw.api<{ requests: { id: number; summary: string }[] }>(
        'GET',
        '/api/v1/requests?status=pending',
        undefined,
        'alice',
      );
      const r = res.body.requests.find((x) => x.summary.startsWith(sqlStart));
      if (r) return r.id;
      await new Promise((ok) => setTimeout(ok, 100));
    }
    throw new Error(`no pending request for ${sqlStart}`);
  }

  test('pages carry a strict CSP, the SPA answers its routes, and the API stays JSON', async () => {
    for (const path of ['/', '/login', '/history', '/audit', '/requests/1']) {
      const res = await fetch(gw.apiUrl + path);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get('content-security-policy'), CONSOLE_CSP);
      const html = await res.text();
      assert.match(html, /<div id="app">/);
      assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline scripts');
    }
    assert.match(CONSOLE_CSP, /default-src 'self'/);
    assert.doesNotMatch(CONSOLE_CSP, /unsafe-inline|unsafe-eval/);
    // A caller with a token still gets the plain request page.
    const plain = await fetch(`${gw.apiUrl}/requests/1`, {
      headers: { authorization: `Bearer ${gw.tokens.alice}` },
    });
    assert.doesNotMatch(await plain.text(), /<div id="app">/);
    const traversal = await fetch(`${gw.apiUrl}/assets/..%2f..%2fpackage.json`);
    assert.equal(traversal.status, 404);
  });

  test('the session cookie is HttpOnly and SameSite=Strict; cookie writes need the CSRF token', async () => {
    const bad = await gw.api('POST', '/api/v1/session', { token: 'alk_nope' });
    assert.equal(bad.status, 401);
    const res = await fetch(`${gw.apiUrl}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: gw.tokens.alice }),
    });
    assert.equal(res.status, 200);
    const setCookie = res.headers.get('set-cookie') ?? '';
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Strict/);
    const body = (await res.json()) as { csrf: string; principal: { name: string; reviewer: boolean } };
    assert.equal(body.principal.name, 'alice');
    assert.equal(body.principal.reviewer, true);
    assert.doesNotMatch(JSON.stringify(body), new RegExp(gw.tokens.alice));
    const cookie = `${SESSION_COOKIE}=${readCookie(setCookie.split(';')[0], SESSION_COOKIE)}`;

    const who = await fetch(`${gw.apiUrl}/api/v1/whoami`, { headers: { cookie } });
    assert.equal(((await who.json()) as { name: string }).name, 'alice');

    const id = 999_999;
    const noCsrf = await fetch(`${gw.apiUrl}/api/v1/requests/${id}/approve`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(noCsrf.status, 403);
    const crossSite = await fetch(`${gw.apiUrl}/api/v1/requests/${id}/approve`, {
      method: 'POST',
      headers: {
        cookie,
        'content-type': 'application/json',
        'x-airlock-csrf': body.csrf,
        origin: 'https://evil.example',
      },
      body: '{}',
    });
    assert.equal(crossSite.status, 403);
    const withCsrf = await fetch(`${gw.apiUrl}/api/v1/requests/${id}/approve`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/json', 'x-airlock-csrf': body.csrf },
      body: '{}',
    });
    assert.equal(withCsrf.status, 404, 'past the CSRF guard, the API answers');

    // The event stream: no credential is refused; a ticket works; a forged one does not.
    assert.equal((await fetch(`${gw.apiUrl}/api/v1/events`)).status, 401);
    assert.equal((await fetch(`${gw.apiUrl}/api/v1/events?ticket=abc.def`)).status, 401);
    const t = await gw.api<{ ticket: string }>('POST', '/api/v1/events/ticket', undefined, 'alice');
    assert.equal(t.status, 200);
    const ctl = new AbortController();
    const stream = await fetch(`${gw.apiUrl}/api/v1/events?ticket=${encodeURIComponent(t.body.ticket)}`, {
      signal: ctl.signal,
    });
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get('content-type') ?? '', /text\/event-stream/);
    const reader = stream.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    assert.match(first, /event: ready/);
    ctl.abort();

    const out = await fetch(`${gw.apiUrl}/api/v1/session`, {
      method: 'DELETE',
      headers: { cookie, 'x-airlock-csrf': body.csrf },
    });
    assert.equal(out.status, 200);
    assert.equal((await fetch(`${gw.apiUrl}/api/v1/whoami`, { headers: { cookie } })).status, 401);
  });

  test('a reviewer sees a held DELETE appear live, approves it, and psql completes', {
    timeout: TIMEOUT,
    skip: NO_CHROMIUM,
  }, async () => {
    const { ctx, page, problems } = await signedIn('alice');
    await page.getByTestId('inbox-empty').waitFor();
    const psql = held('agent', 'DELETE FROM orders WHERE id = 1');
    const id = await pendingId('DELETE FROM orders WHERE id = 1');
    const card = page.locator(`[data-request-id="${id}"]`);
    // Arrives through the event stream: the page is never reloaded.
    await card.waitFor();
    await assert.doesNotReject(card.getByText('DELETE', { exact: true }).first().waitFor());
    assert.match(await text(card), /agent/);
    assert.match(await text(card), /writes need a DBA/);
    assert.match(await text(card), /orders/);
    assert.match(await text(card), /waiting \d+s/);
    // A multi-statement request shows every statement.
    const multi = held('agent', 'UPDATE orders SET total = 1 WHERE id = 5; DELETE FROM orders WHERE id = 6');
    const multiId = await pendingId('UPDATE orders SET total = 1');
    const multiCard = page.locator(`[data-request-id="${multiId}"]`);
    await multiCard.waitFor();
    assert.equal(await multiCard.locator('pre.sql').count(), 2);
    await page.screenshot({ path: join(ARTIFACTS, 'console-inbox.png'), fullPage: true });

    await card.getByRole('button', { name: `Approve request ${id}`, exact: true }).click();
    const exit = await psql.waitForExit(30_000);
    assert.equal(exit.code, 0, psql.output());
    assert.match(psql.stdout(), /DELETE 1/);
    await card.waitFor({ state: 'detached' });

    // Approve for a window: the choice goes to the API as { window }.
    await multiCard.getByLabel(`Approval window for request ${multiId}`).selectOption('5m');
    await multiCard.getByRole('button', { name: `Approve request ${multiId} for a window of 5m` }).click();
    assert.equal((await multi.waitForExit(30_000)).code, 0, multi.output());
    const shown = await gw.api<{ request: { grantUntil: string | null; approvals: { by: string }[] } }>(
      'GET',
      `/api/v1/requests/${multiId}`,
      undefined,
      'alice',
    );
    assert.equal(shown.body.request.approvals[0]?.by, 'alice');
    assert.ok(shown.body.request.grantUntil, 'a window was granted');
    assert.deepEqual(problems, []);
    await ctx.close();
  });

  test('deny from the keyboard with a reason; the reason reaches psql', {
    timeout: TIMEOUT,
    skip: NO_CHROMIUM,
  }, async () => {
    const { ctx, page, problems } = await signedIn('alice');
    const psql = held('agent', 'DELETE FROM orders WHERE id = 2');
    const id = await pendingId('DELETE FROM orders WHERE id = 2');
    const card = page.locator(`[data-request-id="${id}"]`);
    await card.waitFor();
    await page.keyboard.press('?');
    const help = page.getByRole('dialog', { name: 'Keyboard shortcuts' });
    await help.waitFor();
    await page.keyboard.press('Escape');
    await help.waitFor({ state: 'detached' });
    await page.keyboard.press('j');
    await page.keyboard.press('d');
    const dialog = page.getByRole('dialog', { name: `Deny request #${id}` });
    await dialog.waitFor();
    // The reason is required: an empty one is not sent.
    await dialog.getByRole('button', { name: `Deny request ${id}` }).click();
    assert.equal(await dialog.isVisible(), true);
    await page.screenshot({ path: join(ARTIFACTS, 'console-deny-dialog.png') });
    await dialog.getByLabel(/Reason/).fill('orders are archived by the nightly job, not deleted');
    await dialog.getByRole('button', { name: `Deny request ${id}` }).click();
    const exit = await psql.waitForExit(30_000);
    assert.notEqual(exit.code, 0);
    assert.match(psql.stderr(), /orders are archived by the nightly job, not deleted/);
    await card.waitFor({ state: 'detached' });

    await page.getByRole('link', { name: 'History' }).click();
    const row = page.locator('table.history tr', { hasText: new RegExp(`#${id}\\b`) });
    await row.waitFor();
    assert.match(await text(row), /denied/i);
    assert.match(await text(row), /alice: orders are archived/);
    await page.screenshot({ path: join(ARTIFACTS, 'console-history.png'), fullPage: true });
    await page.getByLabel('Status').selectOption('approved');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await row.waitFor({ state: 'detached' });

    await page.getByRole('link', { name: 'Audit' }).click();
    const status = page.getByTestId('chain-status');
    await status.waitFor();
    assert.match(await text(status), /Verified: \d+ records/);
    await page.screenshot({ path: join(ARTIFACTS, 'console-audit.png'), fullPage: true });
    assert.deepEqual(problems, []);
    await ctx.close();
  });

  test('a notification that fails is shown in the inbox and on the request page; the request still waits', {
    timeout: TIMEOUT,
    skip: NO_CHROMIUM,
  }, async () => {
    // A webhook receiver that is down: every delivery gets a 500.
    const hook = Fastify();
    let hits = 0;
    hook.post('/hook', async (_req, reply) => {
      hits++;
      return reply.code(500).send({ error: 'receiver is down' });
    });
    await hook.listen({ host: '127.0.0.1', port: 0 });
    const hookUrl = `http://127.0.0.1:${(hook.server.address() as { port: number }).port}/hook`;
    const gw2 = await startTestGateway(upstream, {
      extra: `notify:\n  - { type: webhook, url: "${hookUrl}", secret: test-hook-secret }\n`,
    });
    const ctx = await (await launch()).newContext({
      viewport: { width: 1280, height: 900 },
      baseURL: gw2.apiUrl,
    });
    try {
      const page = await ctx.newPage();
      page.setDefaultTimeout(30_000);
      await page.goto('/login');
      await page.getByLabel('Airlock token').fill(gw2.tokens.alice);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByTestId('live').filter({ hasText: 'live' }).waitFor();

      const psql = psqlCommand(gw2.target('agent'), 'DELETE FROM orders WHERE id = 42');
      running.push(psql);
      let id = 0;
      const deadline = Date.now() + 30_000;
      while (id === 0 && Date.now() < deadline) {
        const res = await gw2.api<{ requests: { id: number }[] }>(
          'GET',
          '/api/v1/requests',
          undefined,
          'alice',
        );
        id = res.body.requests[0]?.id ?? 0;
        if (id === 0) await new Promise((ok) => setTimeout(ok, 100));
      }
      assert.ok(id > 0, 'the DELETE was held');
      const card = page.locator(`[data-request-id="${id}"]`);
      await card.waitFor();
      // The alert polls every 10 s; it must appear without a reload.
      const alert = page.getByTestId('notify-alert');
      await alert.waitFor({ timeout: 30_000 });
      assert.match(await text(alert), /notifications are not getting through/i);
      assert.match(await text(alert), /webhook/);
      assert.match(await text(alert), /500/);
      assert.doesNotMatch(await text(alert), /test-hook-secret/);
      await page.screenshot({ path: join(ARTIFACTS, 'console-notify-failing.png'), fullPage: true });

      await page.goto(`/requests/${id}`);
      const list = page.getByTestId('deliveries');
      await list.waitFor();
      assert.match(await text(list), /webhook/);
      assert.match(await text(list), /retrying|failed/);
      assert.ok(hits >= 1);
      // The failed notification blocked nothing: the request is pending and can be approved.
      await page.getByRole('button', { name: `Approve request ${id}`, exact: true }).click();
      const done = await psql.waitForExit(30_000);
      assert.equal(done.code, 0, psql.stderr());
    } finally {
      await ctx.close();
      await gw2.close();
      await hook.close();
    }
  });

  test('the requester sees no approve button on their own request; a 20 KB statement fits a phone', {
    timeout: TIMEOUT,
    skip: NO_CHROMIUM,
  }, async () => {
    const psql = held('carol', 'DELETE FROM orders WHERE id = 3');
    const id = await pendingId('DELETE FROM orders WHERE id = 3');
    const carol = await signedIn('carol');
    await carol.page.goto(`/requests/${id}`);
    const card = carol.page.locator(`[data-request-id="${id}"]`);
    await card.waitFor();
    assert.match(await text(card.getByTestId('decide-note')), /You made this request/);
    assert.equal(await card.getByRole('button', { name: /Approve|Deny/ }).count(), 0);
    // Not in carol's inbox as something to act on either.
    await carol.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Inbox' }).click();
    const inInbox = carol.page.locator(`[data-request-id="${id}"]`);
    await inInbox.waitFor();
    assert.equal(await inInbox.getByRole('button', { name: /Approve/ }).count(), 0);
    await carol.page.keyboard.press('a');
    await carol.page.goto(`/requests/${id}`);
    await card.waitFor();
    await carol.page.screenshot({ path: join(ARTIFACTS, 'console-request-own.png'), fullPage: true });
    const still = await gw.api<{ request: { status: string } }>(
      'GET',
      `/api/v1/requests/${id}`,
      undefined,
      'alice',
    );
    assert.equal(still.body.request.status, 'pending');
    assert.deepEqual(carol.problems, []);
    await carol.ctx.close();

    // Another reviewer sees the same request with the buttons, on its own page.
    const alice = await signedIn('alice');
    await alice.page.goto(`/requests/${id}`);
    await alice.page.getByRole('button', { name: `Approve request ${id}`, exact: true }).waitFor();
    await alice.page.screenshot({ path: join(ARTIFACTS, 'console-request.png'), fullPage: true });
    await alice.ctx.close();

    // A 20 KB statement on a 375 px wide screen: the page does not scroll sideways.
    const ids = Array.from({ length: 4000 }, (_, i) => 1000 + i).join(', ');
    const big = held('agent', `DELETE FROM orders WHERE id IN (${ids})`);
    const bigId = await pendingId('DELETE FROM orders WHERE id IN (1000');
    const phone = await signedIn('alice', { width: 375, height: 800 });
    const bigCard = phone.page.locator(`[data-request-id="${bigId}"]`);
    await bigCard.waitFor();
    const widths = await phone.page.evaluate(() => ({
      doc: document.documentElement.scrollWidth,
      view: window.innerWidth,
    }));
    assert.ok(widths.doc <= widths.view, `page is ${widths.doc}px wide in a ${widths.view}px window`);
    const pre = bigCard.locator('pre.sql').first();
    const box = await pre.boundingBox();
    assert.ok(box && box.height <= 400 && box.width <= 375, JSON.stringify(box));
    await phone.page.screenshot({ path: join(ARTIFACTS, 'console-inbox-375.png'), fullPage: true });
    await bigCard.getByRole('button', { name: 'Wrap long lines' }).click();
    await phone.page.screenshot({ path: join(ARTIFACTS, 'console-inbox-375-wrapped.png') });
    assert.deepEqual(phone.problems, []);
    await phone.ctx.close();

    for (const p of [psql, big]) await p.stop('SIGTERM', 5_000);
  });
});
