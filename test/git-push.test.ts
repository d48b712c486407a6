/**
 * The real git client through Airlock to `git http-backend`: clone and fetch allowed, a push to
 * main held with its commits and files on the request until approved, a reviewer's denial and a
 * policy denial (force-push, an added secret) shown by `git push` and leaving upstream untouched.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { commitFile, gitEnv, gitSyncAs, reposConnection, seedRepo } from './support/git-client.ts';
import { type GitServer, startGitServer } from './support/git-server.ts';
import { type HttpTestGateway, startHttpTestGateway } from './support/http-gateway.ts';
import { startProcess } from './support/processes.ts';

const UPSTREAM_TOKEN = 'git-host-token-9012';

describe('git through Airlock', () => {
  let upstream: GitServer;
  let gw: HttpTestGateway;
  let dir: string;
  let remote: string;
  let work: string;

  const env = () => gitEnv(dir);
  const gitSync = (cwd: string, ...args: string[]) => gitSyncAs(dir, cwd, ...args);
  /** Async, so the gateway in this process keeps serving while git runs. */
  const gitRun = async (cwd: string, ...args: string[]) => {
    const p = startProcess('git', args, { cwd, env: env() });
    const exit = await p.waitForExit(60_000);
    return { code: exit.code, stderr: p.stderr(), stdout: p.stdout(), process: p };
  };
  const commit = (file: string, text: string, message: string) => commitFile(dir, work, file, text, message);

  before(async () => {
    upstream = await startGitServer(UPSTREAM_TOKEN);
    const bare = upstream.createRepo('app');
    dir = mkdtempSync(join(tmpdir(), 'airlock-git-client-'));
    seedRepo(dir, bare, { 'README.md': 'hello\n' });
    gw = await startHttpTestGateway({
      secrets: { 'git.token': UPSTREAM_TOKEN },
      connections: reposConnection(upstream),
      rules: `rules:
  - name: reads are free
    connections: [repos]
    kinds: [read]
    effect: allow
  - name: no secrets in pushes
    connections: [repos]
    statements: [AddsSecret]
    effect: deny
    reason: a secret was found in the pushed changes; remove it from the history and push again
  - name: main is never force-pushed
    connections: [repos]
    refs: [refs/heads/main]
    statements: [force-update, delete]
    effect: deny
    reason: main is protected; force-pushes and deletions are not allowed
  - name: feature branches are free
    connections: [repos]
    refs: [refs/heads/feature/*]
    kinds: [write]
    effect: allow
  - name: pushes to main need a reviewer
    connections: [repos]
    refs: [refs/heads/main]
    effect: review
    review: { groups: [dba], hold: wait }`,
    });
    const u = new URL(gw.proxyUrl);
    remote = `http://agent:${gw.tokens.agent}@${u.host}/git/repos/app.git`;
    work = join(dir, 'work');
    const cloned = await gitRun(dir, 'clone', '--quiet', remote, work);
    assert.equal(cloned.code, 0, cloned.stderr);
  });

  after(async () => {
    await gw?.close();
    await upstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('clone went through Airlock with the held credential', () => {
    assert.equal(gitSync(work, 'log', '--format=%s'), 'first');
  });

  it('a push to a feature branch is allowed and lands upstream', async () => {
    gitSync(work, 'checkout', '--quiet', '-b', 'feature/x');
    const head = commit('x.txt', 'x\n', 'feature work');
    const r = await gitRun(work, 'push', 'origin', 'feature/x');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(upstream.git('app', 'rev-parse', 'refs/heads/feature/x').trim(), head);
    gitSync(work, 'checkout', '--quiet', 'main');
  });

  it('a push to main is held with its commits and files, and lands once approved', async () => {
    const before = upstream.git('app', 'rev-parse', 'main').trim();
    const head = commit('src.txt', 'line 1\nline 2\n', 'add src');
    const p = startProcess('git', ['push', 'origin', 'main'], { cwd: work, env: env() });
    const held = await gw.pendingRequest('repos', /refs\/heads\/main/);
    assert.match(held.summary, /update refs\/heads\/main \(1 commit, 1 file\)/);
    const detail = await gw.api<{
      request: { attributes: { updates: { files: string[]; commits: string[] }[] } };
    }>('GET', `/api/v1/requests/${held.id}`, undefined, 'alice');
    const update = detail.body.request.attributes.updates[0]!;
    assert.deepEqual(update.files, ['2\t0\tsrc.txt']);
    assert.match(update.commits[0]!, /add src/);
    await p.waitForOutput(/approval required: request \d+/, 30_000, 'stderr');
    assert.equal(upstream.git('app', 'rev-parse', 'main').trim(), before, 'nothing lands while held');
    await gw.api('POST', `/api/v1/requests/${held.id}/approve`, {}, 'alice');
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 0, p.stderr());
    assert.equal(upstream.git('app', 'rev-parse', 'main').trim(), head);
  });

  it('a reviewer denial rejects the push with the reason and leaves upstream as it was', async () => {
    const before = upstream.git('app', 'rev-parse', 'main').trim();
    commit('more.txt', 'more\n', 'more');
    const p = startProcess('git', ['push', 'origin', 'main'], { cwd: work, env: env() });
    const held = await gw.pendingRequest('repos', /refs\/heads\/main/);
    await gw.api(
      'POST',
      `/api/v1/requests/${held.id}/deny`,
      { reason: 'release freeze until Monday' },
      'bob',
    );
    const exit = await p.waitForExit(60_000);
    assert.notEqual(exit.code, 0);
    assert.match(p.stderr(), /\[remote rejected\] main -> main \(airlock: .*release freeze until Monday/);
    assert.equal(upstream.git('app', 'rev-parse', 'main').trim(), before);
    gitSync(work, 'reset', '--quiet', '--hard', before);
  });

  it('a force-push to main is detected and denied with the policy reason', async () => {
    const before = upstream.git('app', 'rev-parse', 'main').trim();
    gitSync(work, 'reset', '--quiet', '--hard', 'HEAD~1');
    commit('rewrite.txt', 'rewritten\n', 'rewritten history');
    const r = await gitRun(work, 'push', '--force', 'origin', 'main');
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /\[remote rejected\].*main is protected; force-pushes and deletions are not allowed/,
    );
    assert.equal(upstream.git('app', 'rev-parse', 'main').trim(), before);
    gitSync(work, 'reset', '--quiet', '--hard', before);
  });

  it('a push that adds a secret is denied even on a free branch', async () => {
    gitSync(work, 'checkout', '--quiet', '-b', 'feature/creds');
    commit('config.env', 'AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n', 'add config');
    const r = await gitRun(work, 'push', 'origin', 'feature/creds');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /a secret was found in the pushed changes/);
    assert.throws(() => upstream.git('app', 'rev-parse', '--verify', '--quiet', 'refs/heads/feature/creds'));
  });
});
