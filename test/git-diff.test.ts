/**
 * What a reviewer sees of a git push: the unified diff from the scratch mirror on the request
 * (bounded, secrets masked on every line), and scratch mirrors that do not outlive their push —
 * removed when the inspection ends, and those of dead processes removed at start. Real git
 * through Airlock to `git http-backend`, with a private $TMPDIR; the reviewer console in
 * headless Chromium.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildConsole, launchChromium } from './support/chromium.ts';
import { commitFile, gitEnv, gitSyncAs, reposConnection, seedRepo } from './support/git-client.ts';
import { type GitServer, startGitServer } from './support/git-server.ts';
import { type HttpTestGateway, startHttpTestGateway } from './support/http-gateway.ts';
import { startProcess } from './support/processes.ts';

const UPSTREAM_TOKEN = 'git-host-token-diff-3456';
const GITHUB_TOKEN = 'ghp_abcdefghijklmnopqrstuvwxyz0123456789';

interface Update {
  ref: string;
  diff: string;
  diffTruncated?: boolean;
}

describe('git push diff for reviewers, and scratch mirrors', () => {
  let upstream: GitServer;
  let gw: HttpTestGateway;
  let dir: string;
  let work: string;
  let scratch: string;
  let stale: string;
  const savedTmp = process.env.TMPDIR;

  const env = () => gitEnv(dir);
  const gitSync = (cwd: string, ...args: string[]) => gitSyncAs(dir, cwd, ...args);
  const commit = (file: string, text: string, message: string) => {
    commitFile(dir, work, file, text, message);
  };
  const scratchEntries = () => (existsSync(scratch) ? readdirSync(scratch) : []);

  before(async () => {
    // A private $TMPDIR: the scratch mirrors this gateway makes are the only ones there.
    const tmp = mkdtempSync(join(tmpdir(), 'airlock-git-diff-tmp-'));
    process.env.TMPDIR = tmp;
    scratch = join(tmp, 'airlock-git-scratch');
    // A mirror left by a process that no longer runs.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    stale = join(scratch, `${dead}-0123456789abcdef`);
    mkdirSync(join(stale, 'objects'), { recursive: true });
    upstream = await startGitServer(UPSTREAM_TOKEN);
    const bare = upstream.createRepo('app');
    dir = mkdtempSync(join(tmp, 'client-'));
    seedRepo(dir, bare, { 'app.py': 'print("hello")\nprint("bye")\n' });
    gw = await startHttpTestGateway({
      secrets: { 'git.token': UPSTREAM_TOKEN },
      connections: reposConnection(upstream),
      rules: `rules:
  - name: reads are free
    connections: [repos]
    kinds: [read]
    effect: allow`,
    });
    const u = new URL(gw.proxyUrl);
    work = join(dir, 'work');
    const remote = `http://agent:${gw.tokens.agent}@${u.host}/git/repos/app.git`;
    const p = startProcess('git', ['clone', '--quiet', remote, work], { cwd: dir, env: env() });
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 0, p.stderr());
  });

  after(async () => {
    await gw?.close();
    await upstream?.close();
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
    if (dir) rmSync(join(dir, '..'), { recursive: true, force: true });
  });

  const pushHeld = async (ref: string) => {
    const p = startProcess('git', ['push', 'origin', `HEAD:${ref}`], { cwd: work, env: env() });
    const held = await gw.pendingRequest('repos', new RegExp(ref));
    const detail = await gw.api<{ request: { attributes: { updates: Update[] } } }>(
      'GET',
      `/api/v1/requests/${held.id}`,
      undefined,
      'alice',
    );
    return { p, held, update: detail.body.request.attributes.updates[0]! };
  };

  it('scratch mirrors of dead processes are removed when the gateway starts', () => {
    assert.equal(existsSync(stale), false);
  });

  it('the held push carries its diff, with the secret it adds masked', async () => {
    commit('app.py', `print("hello")\nTOKEN = "${GITHUB_TOKEN}"\nprint("bye!")\n`, 'add token');
    const { p, held, update } = await pushHeld('refs/heads/main');
    assert.match(update.diff, /^diff --git a\/app\.py b\/app\.py$/m);
    assert.match(update.diff, /^-print\("bye"\)$/m);
    assert.match(update.diff, /^\+print\("bye!"\)$/m);
    assert.match(update.diff, /^\+TOKEN = "ghp_\*+89"$/m);
    assert.ok(!update.diff.includes(GITHUB_TOKEN));
    assert.equal(update.diffTruncated, undefined);
    // The whole request as the API returns it holds no trace of the token either.
    const raw = await fetch(`${gw.apiUrl}/api/v1/requests/${held.id}`, {
      headers: { authorization: `Bearer ${gw.tokens.alice}` },
    }).then((r) => r.text());
    assert.ok(!raw.includes(GITHUB_TOKEN));
    assert.deepEqual(scratchEntries(), [], 'the scratch mirror is gone once the push is inspected');
    await gw.api('POST', `/api/v1/requests/${held.id}/approve`, {}, 'alice');
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 0, p.stderr());
    assert.deepEqual(scratchEntries(), []);
  });

  it('a large diff is cut to the bound and says so', async () => {
    const big = Array.from({ length: 12_000 }, (_, i) => `line ${i} ${'x'.repeat(40)}`).join('\n');
    commit('big.txt', `${big}\n`, 'big file');
    const { p, held, update } = await pushHeld('refs/heads/big');
    assert.equal(update.diffTruncated, true);
    assert.ok(Buffer.byteLength(update.diff) <= 256 * 1024);
    assert.match(update.diff, /^\+line 0 x+$/m);
    assert.ok(update.diff.endsWith('\n'), 'cut at a line end');
    await gw.api('POST', `/api/v1/requests/${held.id}/deny`, { reason: 'too big' }, 'bob');
    await p.waitForExit(60_000);
    assert.deepEqual(scratchEntries(), []);
  });

  it('the console shows the diff on the request page, secret masked', async () => {
    buildConsole();
    gitSync(work, 'checkout', '--quiet', 'main');
    gitSync(work, 'reset', '--quiet', '--hard', 'origin/main');
    commit('app.py', `print("console")\nKEY = "${GITHUB_TOKEN}"\n`, 'for the console');
    const { p, held } = await pushHeld('refs/heads/console');
    const browser = await launchChromium();
    try {
      const page = await (await browser.newContext({ baseURL: gw.apiUrl })).newPage();
      page.setDefaultTimeout(30_000);
      await page.goto('/');
      await page.waitForURL('**/login');
      await page.getByLabel('Airlock token').fill(gw.tokens.alice);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByTestId('me').filter({ hasText: 'alice' }).waitFor();
      await page.goto(`/requests/${held.id}`);
      const diff = page.getByRole('figure', { name: 'diff of refs/heads/console' });
      await diff.waitFor();
      const text = (await diff.textContent()) ?? '';
      assert.match(text, /\+print\("console"\)/);
      assert.match(text, /\+KEY = "ghp_\*+89"/);
      assert.ok(!text.includes(GITHUB_TOKEN));
      assert.ok(!(await page.content()).includes(GITHUB_TOKEN));
      assert.equal((await diff.locator('.diff-add').count()) >= 2, true);
    } finally {
      await browser.close();
    }
    await gw.api('POST', `/api/v1/requests/${held.id}/deny`, { reason: 'seen' }, 'bob');
    await p.waitForExit(60_000);
  });
});
