/**
 * OIDC callers: a real OpenID Provider (oidc-provider) issues CI-like workload tokens; the JWT
 * goes where a password would (psql through the PostgreSQL listener) and as Bearer on the API.
 * Expired, wrong-audience, wrong-issuer, `alg: none`, re-signed and unexpected-repository
 * tokens are refused with a clear message, and the refusal is audited without the token.
 */
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { startTestIdp, type TestIdp } from './support/oidc.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { stopAll } from './support/processes.ts';
import { psqlCommand } from './support/psql.ts';

const TEST_TIMEOUT = 120_000;

let upstream: PrivatePostgres;
let idp: TestIdp;
let stranger: TestIdp;
let gw: TestGateway;

before(async () => {
  upstream = await startPostgres();
  idp = await startTestIdp();
  idp.configure({ redirectUris: ['http://127.0.0.1/unused'] });
  stranger = await startTestIdp();
  stranger.configure({ redirectUris: ['http://127.0.0.1/unused'] });
  gw = await startTestGateway(upstream, {
    identities: `  oidc:
    - issuer: ${idp.issuer}
      audience: airlock
      algorithms: [RS256]
      clock_skew: 1s
      kind: human
      require: { repository_owner: acme }
      claim_rules:
        - when: { repository: "acme/*", ref: refs/heads/main }
          kind: service
          groups: [deployers]
        - when: { environment: production }
          groups: [prod]
`,
    rules: `
rules:
  - name: reads are free
    kinds: [read]
    effect: allow
  - name: deployers may write
    groups: [deployers]
    kinds: [write]
    effect: allow
`,
  });
});

after(async () => {
  await gw?.close();
  await idp?.close();
  await stranger?.close();
  await upstream?.stop();
  await stopAll();
});

const MAIN = {
  repository: 'acme/app',
  repository_owner: 'acme',
  ref: 'refs/heads/main',
  environment: 'production',
};

function psqlWith(token: string, sql: string) {
  return psqlCommand({ ...gw.pg, database: 'app', token, user: 'ci' }, sql, ['-A', '-t']);
}

async function refusedOnPsql(token: string, expected: RegExp): Promise<void> {
  const p = psqlWith(token, 'SELECT 1');
  const exit = await p.waitForExit(60_000);
  assert.notEqual(exit.code, 0, 'psql must fail');
  assert.match(p.stderr(), expected);
  assert.ok(!p.output().includes(token), 'the token is never echoed');
}

async function refusedOnApi(token: string, expected: RegExp): Promise<{ code: string }> {
  const res = await gw.api<{ error: { code: string; message: string; hint?: string } }>(
    'GET',
    '/api/v1/whoami',
    undefined,
    token,
  );
  assert.equal(res.status, 401, res.text);
  assert.match(`${res.body.error.message} — ${res.body.error.hint ?? ''}`, expected);
  assert.ok(!res.text.includes(token));
  return res.body.error;
}

/** A JWT with the given header and payload, signed by `sign` (or unsigned). */
function compact(header: object, payload: object, signature = ''): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64(header)}.${b64(payload)}.${signature}`;
}

describe('OIDC callers', { timeout: TEST_TIMEOUT }, () => {
  test('a CI workload token works as the PostgreSQL password: reads and (by claim rule) writes pass', async () => {
    const token = await idp.workloadToken('airlock', MAIN);
    const read = psqlWith(token, 'SELECT count(*) FROM orders');
    assert.equal((await read.waitForExit(60_000)).code, 0, read.output());
    assert.equal(read.stdout().trim(), '50');

    const write = psqlWith(token, "UPDATE orders SET customer = 'ci' WHERE id = 3");
    assert.equal((await write.waitForExit(60_000)).code, 0, write.output());
    const rows = await upstream.psql('SELECT customer FROM orders WHERE id = 3', { db: 'app' });
    assert.match(rows, /ci/);

    // The audit log names the workload principal and its mapped groups.
    const audit = await gw.gateway.store.readAudit(1, 1000);
    const opened = audit.find(
      (r) => r.type === 'session.opened' && (r.data.principal as { name: string }).name === 'ci-runner',
    );
    assert.ok(opened, 'session.opened for the workload');
    assert.deepEqual((opened.data.principal as { groups: string[] }).groups.sort(), ['deployers', 'prod']);
    assert.equal((opened.data.principal as { kind: string }).kind, 'service');
  });

  test('the same token works as Bearer on the API', async () => {
    const token = await idp.workloadToken('airlock', MAIN);
    const res = await gw.api<{ name: string; kind: string; groups: string[] }>(
      'GET',
      '/api/v1/whoami',
      undefined,
      token,
    );
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.name, 'ci-runner');
    assert.equal(res.body.kind, 'service');
  });

  test('claim rules that do not match leave the default kind and no extra groups; writes are then reviewed', async () => {
    const token = await idp.workloadToken('airlock', {
      repository: 'acme/tools',
      repository_owner: 'acme',
      ref: 'refs/heads/dev',
    });
    const res = await gw.api<{ name: string; kind: string; groups: string[] }>(
      'GET',
      '/api/v1/whoami',
      undefined,
      token,
    );
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.kind, 'human');
    assert.deepEqual(res.body.groups, []);
  });

  test('a token from a repository outside `require` is refused', async () => {
    const token = await idp.workloadToken('airlock', { repository: 'evil/app', repository_owner: 'evil' });
    await refusedOnPsql(token, /not one Airlock accepts/);
    await refusedOnApi(token, /not one Airlock accepts/);
  });

  test('an expired token is refused with a clear message', async () => {
    const token = await idp.workloadToken('airlock', MAIN, 1);
    const exp = decodeJwt(token).exp!;
    // Past exp plus the 1 s skew the policy allows.
    await new Promise((r) => setTimeout(r, Math.max(0, exp * 1000 + 1500 - Date.now())));
    await refusedOnPsql(token, /has expired/);
    const e = await refusedOnApi(token, /has expired/);
    assert.equal(e.code, 'AIRLOCK_E_TOKEN_EXPIRED');
  });

  test('a token for another audience is refused', async () => {
    const token = await idp.workloadToken('billing', MAIN);
    await refusedOnPsql(token, /another audience/);
    await refusedOnApi(token, /another audience.*accepts the audience airlock/);
  });

  test('a token from an issuer the policy does not name is refused', async () => {
    const token = await stranger.workloadToken('airlock', MAIN);
    await refusedOnPsql(token, /is not trusted/);
    await refusedOnApi(token, /is not trusted/);
  });

  test('alg none, HMAC and re-signed tokens are refused', async () => {
    const good = await idp.workloadToken('airlock', MAIN);
    const header = decodeProtectedHeader(good);
    const payload = decodeJwt(good);

    const none = compact({ alg: 'none', typ: 'JWT' }, payload);
    await refusedOnApi(none, /signed with none, which is not allowed/);
    await refusedOnPsql(none, /not allowed/);

    // HS256 keyed with something public (a classic key-confusion attempt).
    const hsInput = `${Buffer.from(JSON.stringify({ alg: 'HS256', kid: header.kid })).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
    const hs = `${hsInput}.${createHmac('sha256', 'public').update(hsInput).digest('base64url')}`;
    await refusedOnApi(hs, /HS256, which is not allowed/);

    // Same claims and kid, signed with a key of the attacker's.
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const resigned = await new SignJWT(payload)
      .setProtectedHeader({ alg: 'RS256', kid: header.kid! })
      .sign(privateKey);
    await refusedOnApi(resigned, /signature that does not verify/);
    await refusedOnPsql(resigned, /does not verify/);
    const otherKid = await new SignJWT(payload)
      .setProtectedHeader({ alg: 'RS256', kid: 'attacker' })
      .sign(privateKey);
    await refusedOnApi(otherKid, /key the issuer does not publish/);

    // One changed claim under the original signature.
    const [h, , s] = good.split('.');
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...payload, repository: 'acme/other' })).toString('base64url')}.${s}`;
    await refusedOnApi(tampered, /does not verify/);
  });

  test('refusals are audited with the reason, never the token', async () => {
    const token = await idp.workloadToken('billing', MAIN);
    await refusedOnApi(token, /another audience/);
    await gw.gateway.audit.flush();
    const deadline = Date.now() + 10_000;
    let failures: { data: Record<string, unknown> }[] = [];
    while (Date.now() < deadline) {
      const audit = await gw.gateway.store.readAudit(1, 5000);
      failures = audit.filter((r) => r.type === 'auth.failed');
      if (
        failures.some((f) => f.data.protocol === 'api') &&
        failures.some((f) => f.data.protocol === 'postgres')
      )
        break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(failures.some((f) => f.data.protocol === 'api' && f.data.reason === 'AIRLOCK_E_TOKEN_INVALID'));
    assert.ok(failures.some((f) => f.data.protocol === 'api' && f.data.reason === 'AIRLOCK_E_TOKEN_EXPIRED'));
    assert.ok(failures.some((f) => f.data.protocol === 'postgres'));
    const all = JSON.stringify(await gw.gateway.store.readAudit(1, 5000));
    assert.ok(!all.includes(token.split('.')[2]!), 'no signature in the audit log');
    assert.ok(!/eyJ[A-Za-z0-9_-]{20,}\./.test(all), 'no JWT in the audit log');
  });
});
