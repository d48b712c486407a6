/**
 * What a push would change, computed with the real `git` in a scratch mirror of the upstream
 * repository: the mirror is fetched from the upstream, the pushed pack is indexed into it
 * (`index-pack --fix-thin` completes the thin pack from objects the upstream has), and then
 * `merge-base --is-ancestor` says whether an update is a fast-forward, and `diff`/`log` list
 * the commits, files and lines it brings, and the diff itself for the reviewer (bounded, with
 * secrets masked). Pack parsing is left to git itself.
 *
 * Each inspection has its own scratch mirror under $TMPDIR/airlock-git-scratch, named after the
 * process, and removes it when it is done; the listener removes any still there when it closes,
 * and at start those left by processes that no longer run.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HttpCredential } from '../../../core/policy/connections/http.ts';
import type { RefUpdate } from './receive-pack.ts';
import { ZERO_OID } from './receive-pack.ts';
import { findSecrets, maskSecretsInDiff, type SecretFinding } from './secrets.ts';

export interface UpdateFacts {
  readonly update: RefUpdate;
  readonly change: 'create' | 'update' | 'force-update' | 'delete';
  readonly files: readonly string[];
  readonly commits: readonly string[];
  /** `added deleted file` per file, as `git diff --numstat` prints it. */
  readonly numstat: readonly string[];
  readonly secrets: readonly SecretFinding[];
  /** The unified diff, secrets masked, at most MAX_DIFF bytes. */
  readonly diff: string;
  /** The diff was longer than MAX_DIFF and is cut. */
  readonly diffTruncated: boolean;
}

export type Inspection =
  | { readonly ok: true; readonly updates: readonly UpdateFacts[] }
  | { readonly ok: false; readonly error: string };

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const MAX_OUTPUT = 8 * 1024 * 1024;
const MAX_LISTED = 200;
/** Diff text shown to reviewers, per ref update. */
export const MAX_DIFF = 256 * 1024;

function scratchRoot(): string {
  return join(tmpdir(), 'airlock-git-scratch');
}

/** Scratch mirrors of inspections still running in this process. */
const active = new Set<string>();

function removeScratch(dir: string): void {
  active.delete(dir);
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Removes the scratch mirrors of inspections still running (on shutdown). */
export function removeActiveScratch(): void {
  for (const dir of [...active]) removeScratch(dir);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes scratch mirrors left by processes that no longer run (a crash, a kill), and the
 * per-repository mirrors earlier versions kept under $TMPDIR/airlock-git-mirrors once they are
 * an hour old.
 */
export function pruneStaleScratch(now = Date.now()): void {
  let names: string[] = [];
  try {
    names = readdirSync(scratchRoot());
  } catch {
    // Nothing there yet.
  }
  for (const name of names) {
    const pid = Number(/^(\d+)-/.exec(name)?.[1]);
    if (!Number.isInteger(pid) || pid === process.pid || alive(pid)) continue;
    rmSync(join(scratchRoot(), name), { recursive: true, force: true, maxRetries: 3 });
  }
  const legacy = join(tmpdir(), 'airlock-git-mirrors');
  let old: string[] = [];
  try {
    old = readdirSync(legacy);
  } catch {
    return;
  }
  for (const name of old) {
    const dir = join(legacy, name);
    try {
      if (now - statSync(dir).mtimeMs > 60 * 60_000) rmSync(dir, { recursive: true, force: true });
    } catch {
      // Removed meanwhile.
    }
  }
}

function git(
  args: readonly string[],
  o: { cwd: string; env?: NodeJS.ProcessEnv; input?: Buffer },
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, {
      cwd: o.cwd,
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0', ...o.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      if (stdout.length < MAX_OUTPUT) stdout += d.toString('utf8');
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 64 * 1024) stderr += d.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.on('error', () => {});
    child.stdin.end(o.input);
  });
}

/** The credential as git configuration in the environment, so it never shows in a process list. */
function credentialEnv(
  credential: HttpCredential | undefined,
  insecure: boolean,
  ca: string | undefined,
): NodeJS.ProcessEnv {
  const config: [string, string][] = [];
  if (credential) {
    const header =
      credential.type === 'bearer'
        ? `Authorization: Bearer ${credential.token.reveal()}`
        : credential.type === 'basic'
          ? `Authorization: Basic ${Buffer.from(`${credential.username}:${credential.password.reveal()}`).toString('base64')}`
          : `${credential.name}: ${credential.value.reveal()}`;
    config.push(['http.extraHeader', header]);
  }
  if (insecure) config.push(['http.sslVerify', 'false']);
  if (ca) config.push(['http.sslCAInfo', ca]);
  const env: NodeJS.ProcessEnv = { GIT_CONFIG_COUNT: String(config.length) };
  config.forEach(([k, v], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = k;
    env[`GIT_CONFIG_VALUE_${i}`] = v;
  });
  return env;
}

export interface InspectTarget {
  /** Upstream repository URL (…/repo.git). */
  readonly url: string;
  readonly credential?: HttpCredential | undefined;
  readonly insecureSkipVerify: boolean;
  readonly ca?: string | undefined;
}

export async function inspectPush(
  target: InspectTarget,
  updates: readonly RefUpdate[],
  pack: Buffer,
): Promise<Inspection> {
  const dir = join(scratchRoot(), `${process.pid}-${randomBytes(8).toString('hex')}`);
  active.add(dir);
  try {
    return await inspectIn(dir, target, updates, pack);
  } finally {
    // Off the event loop: a mirror of a large repository has many files.
    active.delete(dir);
    await rm(dir, { recursive: true, force: true, maxRetries: 3 }).catch(() => {});
  }
}

async function inspectIn(
  dir: string,
  target: InspectTarget,
  updates: readonly RefUpdate[],
  pack: Buffer,
): Promise<Inspection> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const cwd = dir;
  const init = await git(['init', '--quiet', '--bare', '.'], { cwd });
  if (init.code !== 0) return { ok: false, error: `git init failed: ${init.stderr.trim()}` };
  const fetched = await git(['fetch', '--quiet', '--prune', '--no-tags', target.url, '+refs/*:refs/*'], {
    cwd,
    env: credentialEnv(target.credential, target.insecureSkipVerify, target.ca),
  });
  // An empty repository has nothing to fetch; any other failure means we cannot see the base.
  if (fetched.code !== 0 && !/couldn't find remote ref|no matching remote head/i.test(fetched.stderr))
    return {
      ok: false,
      error: `the upstream repository could not be fetched: ${fetched.stderr.trim().split('\n').at(-1)}`,
    };
  if (pack.length > 0) {
    const indexed = await git(['index-pack', '--stdin', '--fix-thin'], { cwd, input: pack });
    if (indexed.code !== 0)
      return { ok: false, error: `the pushed pack could not be read: ${indexed.stderr.trim()}` };
  }
  const facts: UpdateFacts[] = [];
  for (const u of updates) {
    const created = ZERO_OID.test(u.oldOid);
    const deleted = ZERO_OID.test(u.newOid);
    if (deleted) {
      facts.push({
        update: u,
        change: 'delete',
        files: [],
        commits: [],
        numstat: [],
        secrets: [],
        diff: '',
        diffTruncated: false,
      });
      continue;
    }
    let change: UpdateFacts['change'] = 'create';
    let range: string[];
    if (created) range = [u.newOid, '--not', '--all'];
    else {
      const ancestor = await git(['merge-base', '--is-ancestor', u.oldOid, u.newOid], { cwd });
      if (ancestor.code === 0) change = 'update';
      else if (ancestor.code === 1) change = 'force-update';
      else
        return {
          ok: false,
          error: `${u.ref}: the old commit ${u.oldOid.slice(0, 12)} is not in the upstream`,
        };
      range = [`${u.oldOid}..${u.newOid}`];
    }
    const log = await git(['log', '--no-color', `--max-count=${MAX_LISTED}`, '--format=%h %s', ...range], {
      cwd,
    });
    if (log.code !== 0) return { ok: false, error: `${u.ref}: git log failed: ${log.stderr.trim()}` };
    // Files and lines: against the old tip for an update (what the ref will show afterwards);
    // for a new ref, every commit not already on the upstream.
    const diffArgs = created
      ? ['log', '--format=commit %h %s', '-p', ...range]
      : ['diff', u.oldOid, u.newOid];
    const numArgs = created
      ? ['log', '--format=', '--numstat', ...range]
      : ['diff', '--numstat', u.oldOid, u.newOid];
    const [patch, numstat] = await Promise.all([
      git([...diffArgs.slice(0, 1), '--no-color', '--no-renames', '-U3', ...diffArgs.slice(1)], { cwd }),
      git([...numArgs.slice(0, 1), '--no-color', '--no-renames', ...numArgs.slice(1)], { cwd }),
    ]);
    if (patch.code !== 0 || numstat.code !== 0)
      return { ok: false, error: `${u.ref}: git diff failed: ${(patch.stderr || numstat.stderr).trim()}` };
    const numLines = numstat.stdout.split('\n').filter(Boolean);
    const files = [...new Set(numLines.map((l) => l.split('\t').slice(2).join('\t')))];
    facts.push({
      update: u,
      change,
      files,
      commits: log.stdout.split('\n').filter(Boolean),
      numstat: numLines.slice(0, MAX_LISTED),
      secrets: findSecrets(patch.stdout),
      ...boundedDiff(patch.stdout),
    });
  }
  return { ok: true, updates: facts };
}

/** The diff for reviewers: secrets masked, cut at a line end within MAX_DIFF bytes. */
function boundedDiff(patch: string): { diff: string; diffTruncated: boolean } {
  const masked = maskSecretsInDiff(patch);
  if (Buffer.byteLength(masked) <= MAX_DIFF && patch.length < MAX_OUTPUT)
    return { diff: masked, diffTruncated: false };
  let cut = Buffer.from(masked).subarray(0, MAX_DIFF).toString('utf8');
  const nl = cut.lastIndexOf('\n');
  if (nl > 0) cut = cut.slice(0, nl + 1);
  return { diff: cut, diffTruncated: true };
}
