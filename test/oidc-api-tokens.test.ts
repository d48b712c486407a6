/**
 * API tokens end to end, through the `airlock tokens` CLI and the API: shown once, stored
 * hashed, optional expiry and connection scope; revoked, expired and out-of-scope tokens are
 * refused (on the API and as the PostgreSQL password) with a clear message.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { SUPPORT_ISSUES_TOKENS, startTestGateway, type TestGateway } from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { startProcess, stopAll } from './support/processes.ts';
import { psqlCommand } from './support/psql.ts';

const ROOT = join(import.meta.dirname, '..');
const TEST_TIMEOUT = 120_000;

let upstream: PrivatePostgres;
let gw: TestGateway;

before(async () => {
  upstream = await startPostgres();
  // eve (group support) administers tokens in this gateway; alice is an ordinary reviewer.
  gw = await startTestGateway(upstream, { identities: SUPPORT_ISSUES_TOKENS });
});

after(async () => {
  await gw?.close();
  await upstream?.stop();
  await stopAll();
});

async function cli(as: string, args: string[]) {
  const p = startProcess(process.execPath, [join(ROOT, 'bin/airlock.js'), ...args], {
    cwd: ROOT,
    env: { ...process.env, AIRLOCK_URL: gw.apiUrl, AIRLOCK_TOKEN: as },
  });
  p.endInput();
  const exit = await p.waitForExit(60_000);
  return { status: exit.code, stdout: p.stdout(), stderr: p.stderr() };
}

interface TokenView {
  id: string;
  name: string;
  groups: string[];
  connections: string[] | null;
  revokedAt: string | null;
}

describe('API tokens', { timeout: TEST_TIMEOUT }, () => {
  let aliceToken = '';
  let aliceTokenId = '';

  test('a person creates a token of their own with the CLI; it is shown once and stored hashed', async () => {
    const r = await cli(gw.tokens.alice, [
      'tokens',
      'create',
      '--connection',
      'app',
      '--expires',
      '1h',
      '--description',
      'laptop',
    ]);
    assert.equal(r.status, 0, r.stderr);
    aliceToken = r.stdout.trim();
    assert.match(aliceToken, /^alk_[A-Za-z0-9_-]{40,}$/);
    assert.match(r.stderr, /created (tok_\S+) for alice \(human, groups dba, only app, expires /);
    aliceTokenId = /created (tok_\S+)/.exec(r.stderr)![1]!;

    const list = await cli(gw.tokens.alice, ['tokens', 'list', '--json']);
    assert.equal(list.status, 0, list.stderr);
    const tokens = JSON.parse(list.stdout) as TokenView[];
    assert.equal(tokens.length, 1);
    assert.equal(tokens[0]!.id, aliceTokenId);
    assert.ok(!list.stdout.includes(aliceToken), 'lists never show the token');
    assert.ok(!/hash/.test(list.stdout), 'nor its hash');

    const db = new Database(gw.storeFile, { readonly: true });
    try {
      const row = db.prepare('SELECT hash FROM api_tokens WHERE id = ?').get(aliceTokenId) as {
        hash: string;
      };
      assert.equal(row.hash, createHash('sha256').update(aliceToken).digest('hex'));
    } finally {
      db.close();
    }
    const storeBytes = readFileSync(gw.storeFile);
    assert.ok(!storeBytes.includes(Buffer.from(aliceToken)), 'the token itself is not in the store');
  });

  test('the token works as Bearer and as the PostgreSQL password for its connection only', async () => {
    const who = await gw.api<{ name: string; groups: string[] }>(
      'GET',
      '/api/v1/whoami',
      undefined,
      aliceToken,
    );
    assert.equal(who.status, 200, who.text);
    assert.equal(who.body.name, 'alice');
    assert.deepEqual(who.body.groups, ['dba']);

    const ok = psqlCommand({ ...gw.pg, database: 'app', token: aliceToken, user: 'alice' }, 'SELECT 1', [
      '-At',
    ]);
    assert.equal((await ok.waitForExit(60_000)).code, 0, ok.output());

    const other = psqlCommand(
      { ...gw.pg, database: 'billing', token: aliceToken, user: 'alice' },
      'SELECT 1',
    );
    assert.notEqual((await other.waitForExit(60_000)).code, 0);
    assert.match(other.stderr(), /not valid for connection "billing".*scoped to app/s);
  });

  test('only token admins create tokens for other names or with groups they are not in', async () => {
    const named = await gw.api('POST', '/api/v1/tokens', { name: 'deploy-bot', groups: ['ci'] }, 'alice');
    assert.equal(named.status, 403, named.text);
    assert.match(named.text, /may only create tokens for itself/);
    const wider = await gw.api('POST', '/api/v1/tokens', { groups: ['dba', 'admins'] }, 'alice');
    assert.equal(wider.status, 403, wider.text);
    assert.match(wider.text, /not in admins/);
    const scoped = await gw.api('POST', '/api/v1/tokens', { connections: ['nope'] }, 'alice');
    assert.equal(scoped.status, 404, scoped.text);

    const bot = await cli(gw.tokens.eve, [
      'tokens',
      'create',
      '--name',
      'deploy-bot',
      '--group',
      'ci',
      '--quiet',
    ]);
    assert.equal(bot.status, 0, bot.stderr);
    const botToken = bot.stdout.trim();
    const who = await gw.api<{ name: string; kind: string; groups: string[] }>(
      'GET',
      '/api/v1/whoami',
      undefined,
      botToken,
    );
    assert.deepEqual(
      { name: who.body.name, kind: who.body.kind, groups: who.body.groups },
      { name: 'deploy-bot', kind: 'service', groups: ['ci'] },
    );
    // alice sees only her own; eve sees both.
    const aliceList = await gw.api<{ tokens: TokenView[] }>('GET', '/api/v1/tokens', undefined, 'alice');
    assert.deepEqual(
      aliceList.body.tokens.map((t) => t.name),
      ['alice'],
    );
    const eveList = await cli(gw.tokens.eve, ['tokens', 'list']);
    assert.match(eveList.stdout, /deploy-bot/);
    assert.match(eveList.stdout, /alice/);
    // alice cannot revoke deploy-bot's token: same answer as for one that does not exist.
    const id = (
      JSON.parse((await cli(gw.tokens.eve, ['tokens', 'list', '--json'])).stdout) as TokenView[]
    ).find((t) => t.name === 'deploy-bot')!.id;
    const steal = await gw.api('DELETE', `/api/v1/tokens/${id}`, undefined, 'alice');
    assert.equal(steal.status, 404, steal.text);
  });

  test('an expired token is refused with a clear message', async () => {
    const res = await gw.api<{ token: string }>('POST', '/api/v1/tokens', { expires: '1s' }, 'alice');
    assert.equal(res.status, 201, res.text);
    await new Promise((r) => setTimeout(r, 1200));
    const who = await gw.api<{ error: { code: string; message: string } }>(
      'GET',
      '/api/v1/whoami',
      undefined,
      res.body.token,
    );
    assert.equal(who.status, 401);
    assert.equal(who.body.error.code, 'AIRLOCK_E_TOKEN_EXPIRED');
    assert.match(who.body.error.message, /expired at/);
  });

  test('a revoked token stops working at once, on the API and on PostgreSQL; both are audited without the token', async () => {
    const r = await cli(gw.tokens.alice, ['tokens', 'revoke', aliceTokenId]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`revoked ${aliceTokenId} \\(alice\\)`));
    const who = await gw.api<{ error: { code: string; message: string } }>(
      'GET',
      '/api/v1/whoami',
      undefined,
      aliceToken,
    );
    assert.equal(who.status, 401);
    assert.equal(who.body.error.code, 'AIRLOCK_E_TOKEN_REVOKED');
    const p = psqlCommand({ ...gw.pg, database: 'app', token: aliceToken, user: 'alice' }, 'SELECT 1');
    assert.notEqual((await p.waitForExit(60_000)).code, 0);
    assert.match(p.stderr(), /was revoked/);

    await gw.gateway.audit.flush();
    const audit = await gw.gateway.store.readAudit(1, 5000);
    assert.ok(audit.some((a) => a.type === 'token.created' && a.data.tokenId === aliceTokenId));
    assert.ok(
      audit.some(
        (a) => a.type === 'token.revoked' && a.data.tokenId === aliceTokenId && a.data.by === 'alice',
      ),
    );
    assert.ok(audit.some((a) => a.type === 'auth.failed' && a.data.reason === 'AIRLOCK_E_TOKEN_REVOKED'));
    assert.ok(!JSON.stringify(audit).includes(aliceToken));
  });
});
