/**
 * People sign in with their identity provider: the console through authorization code + PKCE
 * in headless Chromium (the provider's own login form), sign-out; the CLI through the device
 * flow (`airlock login`), its cached token then used by other commands.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './support/chromium.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { startTestIdp, type TestIdp } from './support/oidc.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { startProcess, stopAll } from './support/processes.ts';

const ROOT = join(import.meta.dirname, '..');
const TEST_TIMEOUT = 120_000;

let upstream: PrivatePostgres;
let idp: TestIdp;
let gw: TestGateway;
let browser: Browser | undefined;
const configDir = mkdtempSync(join(tmpdir(), 'airlock-cli-'));

before(async () => {
  upstream = await startPostgres();
  idp = await startTestIdp();
  gw = await startTestGateway(upstream, {
    identities: `  oidc:
    - issuer: ${idp.issuer}
      audience: airlock
      client_id: ${idp.consoleClientId}
      groups_claim: groups
      scopes: [openid, email, groups, offline_access]
`,
  });
  idp.configure({ redirectUris: [`${gw.apiUrl}/auth/oidc/callback`] });
});

after(async () => {
  await browser?.close();
  await gw?.close();
  await idp?.close();
  await upstream?.stop();
  await stopAll();
  rmSync(configDir, { recursive: true, force: true });
});

async function newPage(): Promise<Page> {
  browser ??= await launchChromium();
  const ctx = await browser.newContext({ baseURL: gw.apiUrl });
  const page = await ctx.newPage();
  page.setDefaultTimeout(30_000);
  return page;
}

/** The provider's login form: any password, the login name is the account. */
async function idpLogin(page: Page, who: string): Promise<void> {
  await page.locator('input[name="login"]').fill(who);
  await page.locator('input[name="password"]').fill('any password');
  await page.locator('button[type="submit"]').click();
}

describe('people sign in with OIDC', { timeout: TEST_TIMEOUT }, () => {
  test('console sign-in with authorization code + PKCE, then sign-out', async () => {
    const page = await newPage();
    await page.goto('/');
    await page.waitForURL('**/login');
    await page.getByRole('link', { name: 'Sign in with single sign-on' }).click();
    await page.waitForURL(`${idp.issuer}/**`);
    assert.ok(page.url().startsWith(idp.issuer), `at the provider: ${page.url()}`);
    await idpLogin(page, 'olivia');
    await page.waitForURL(`${gw.apiUrl}/`);
    await page.getByTestId('me').filter({ hasText: 'olivia' }).waitFor();

    const session = await page.evaluate(async () => (await fetch('/api/v1/session')).json());
    assert.equal(session.principal.name, 'olivia');
    assert.deepEqual(session.principal.groups, ['dba']);
    assert.equal(session.principal.reviewer, true);
    // The session works for the API as the person.
    const requests = await page.evaluate(async () => (await fetch('/api/v1/requests')).status);
    assert.equal(requests, 200);
    const cookies = await page.context().cookies();
    const cookie = cookies.find((c) => c.name === 'airlock_session');
    assert.ok(cookie?.httpOnly, 'HttpOnly session cookie');
    assert.equal(cookie?.sameSite, 'Strict');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL('**/login');
    const after = await page.evaluate(async () => (await fetch('/api/v1/session')).status);
    assert.equal(after, 401);
    await page.context().close();
  });

  test('a callback this browser did not start is refused', async () => {
    const res = await fetch(`${gw.apiUrl}/auth/oidc/callback?code=x&state=forged`);
    assert.equal(res.status, 403);
    assert.match(await res.text(), /not started in this browser/);
  });

  test('airlock login: device flow, token cached for the CLI and renewed when it expires', async () => {
    // Short-lived ID tokens from here on, to see the CLI renew one with its refresh token.
    idp.configure({ redirectUris: [`${gw.apiUrl}/auth/oidc/callback`], idTokenTtlS: 4 });
    const env: NodeJS.ProcessEnv = { ...process.env, AIRLOCK_URL: gw.apiUrl, AIRLOCK_CONFIG_DIR: configDir };
    delete env.AIRLOCK_TOKEN;
    const login = startProcess(process.execPath, [join(ROOT, 'bin/airlock.js'), 'login'], { cwd: ROOT, env });
    login.endInput();
    const m = await login.waitForOutput(/(http\S+\/device\S*)/, 60_000, 'both');
    const page = await newPage();
    await page.goto(m[1]!);
    // The provider asks to confirm the code shown in the terminal, then who is signing in.
    const confirm = page.locator('button[type="submit"]');
    await confirm.first().click();
    await idpLogin(page, 'olivia');
    await page
      .getByText(/sign-in complete|success/i)
      .first()
      .waitFor();
    const exit = await login.waitForExit(60_000);
    assert.equal(exit.code, 0, login.output());
    assert.match(login.output(), /signed in as olivia/);
    const file = join(configDir, 'credentials.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.ok(readFileSync(file, 'utf8').includes(gw.apiUrl));

    const whoami = startProcess(process.execPath, [join(ROOT, 'bin/airlock.js'), 'whoami'], {
      cwd: ROOT,
      env,
    });
    whoami.endInput();
    assert.equal((await whoami.waitForExit(60_000)).code, 0, whoami.output());
    assert.match(whoami.stdout(), /olivia \(human; groups dba; reviewer\)/);

    const first = JSON.parse(readFileSync(file, 'utf8'))[gw.apiUrl] as { token: string; expiresAt: number };
    await new Promise((r) => setTimeout(r, Math.max(0, first.expiresAt - Date.now() + 500)));
    const later = startProcess(process.execPath, [join(ROOT, 'bin/airlock.js'), 'whoami'], {
      cwd: ROOT,
      env,
    });
    later.endInput();
    assert.equal((await later.waitForExit(60_000)).code, 0, later.output());
    assert.match(later.stdout(), /olivia/);
    const renewed = JSON.parse(readFileSync(file, 'utf8'))[gw.apiUrl] as { token: string; expiresAt: number };
    assert.notEqual(renewed.token, first.token, 'a fresh ID token was fetched with the refresh token');
    assert.ok(renewed.expiresAt > first.expiresAt);

    const logout = startProcess(process.execPath, [join(ROOT, 'bin/airlock.js'), 'logout'], {
      cwd: ROOT,
      env,
    });
    logout.endInput();
    assert.equal((await logout.waitForExit(60_000)).code, 0, logout.output());
    const again = startProcess(process.execPath, [join(ROOT, 'bin/airlock.js'), 'whoami'], {
      cwd: ROOT,
      env,
    });
    again.endInput();
    assert.notEqual((await again.waitForExit(60_000)).code, 0);
    assert.match(again.stderr(), /airlock login/);
    await page.context().close();
  });
});
