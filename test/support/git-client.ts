/**
 * The real git client in the Git tests, as the agent with a private home: no system config, no
 * prompts, a fixed author; a repository seeded straight into the test's Git server, and the
 * `repos` connection that puts Airlock in front of that server.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GitServer } from './git-server.ts';

export function gitEnv(home: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    HOME: home,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    GIT_AUTHOR_NAME: 'Agent',
    GIT_AUTHOR_EMAIL: 'agent@example.com',
    GIT_COMMITTER_NAME: 'Agent',
    GIT_COMMITTER_EMAIL: 'agent@example.com',
  };
}

/** git in `cwd`, waited for (so not while the gateway in this process must serve it); trimmed stdout. */
export function gitSyncAs(home: string, cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, env: gitEnv(home), encoding: 'utf8' }).trim();
}

/** Writes `text` to `file` in the work tree and commits it; returns the new commit. */
export function commitFile(home: string, work: string, file: string, text: string, message: string): string {
  writeFileSync(join(work, file), text);
  gitSyncAs(home, work, 'add', file);
  gitSyncAs(home, work, 'commit', '--quiet', '-m', message);
  return gitSyncAs(home, work, 'rev-parse', 'HEAD');
}

/** A commit "first" of `files` on main, pushed straight into the bare repository `bare`. */
export function seedRepo(home: string, bare: string, files: Readonly<Record<string, string>>): void {
  const seed = join(home, 'seed');
  execFileSync('git', ['init', '--quiet', '--initial-branch=main', seed], { env: gitEnv(home) });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(seed, name), text);
  gitSyncAs(home, seed, 'add', '.');
  gitSyncAs(home, seed, 'commit', '--quiet', '-m', 'first');
  gitSyncAs(home, seed, 'push', '--quiet', bare, 'main');
}

/** The `repos` connection (YAML under `connections:`) to `server`, its token in secrets/git.token. */
export function reposConnection(server: GitServer): string {
  return `  repos:
    type: git
    upstream: { url: "${server.url}" }
    credential: { type: bearer, token: "\${file:./secrets/git.token}" }
    default: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }`;
}
