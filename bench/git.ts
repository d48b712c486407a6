/**
 * `git clone` of a repository of about 50 MB (incompressible content, so the pack is that big),
 * straight from `git http-backend` and through Airlock's git connection (reads allowed, audit
 * on). The Git host runs in its own process so the gateway's event loop is measured alone; each
 * path is cloned a few times and the median reported.
 *
 *   node --import tsx bench/git.ts     (BENCH_GIT_MB, default 50; BENCH_GIT_RUNS, default 3)
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startHttpTestGateway } from '../test/support/http-gateway.ts';

const TOKEN = 'bench-git-host-token';

export interface GitBenchResult {
  readonly megabytes: number;
  readonly runs: number;
  /** Median wall time of one clone, seconds. */
  readonly directSeconds: number;
  readonly airlockSeconds: number;
  /** Pack throughput through Airlock, MB/s. */
  readonly airlockMBps: number;
}

const HOST = `
const { startGitServer } = await import(${JSON.stringify(pathToFileURL(join(import.meta.dirname, '..', 'test', 'support', 'git-server.ts')).href)});
const s = await startGitServer(${JSON.stringify(TOKEN)});
const bare = s.createRepo('big');
console.log(JSON.stringify({ url: s.url, bare }));
process.on('SIGTERM', () => s.close().then(() => process.exit(0)));
`;

async function firstLine(p: ChildProcess): Promise<string> {
  let out = '';
  for await (const chunk of p.stdout!) {
    out += String(chunk);
    if (out.includes('\n')) return out.split('\n')[0]!;
  }
  throw new Error('the git host did not start');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function timedClone(dir: string, args: string[]): Promise<number> {
  const target = join(dir, `clone-${randomBytes(4).toString('hex')}`);
  const started = process.hrtime.bigint();
  const p = spawn('git', [...args, target], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', HOME: dir },
  });
  let stderr = '';
  p.stderr!.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += String(d);
  });
  const [code] = (await once(p, 'exit')) as [number | null];
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  rmSync(target, { recursive: true, force: true });
  if (code !== 0) throw new Error(`git clone failed: ${stderr.trim()}`);
  return seconds;
}

export async function benchGitClone(
  o: { megabytes?: number; runs?: number; log?: (m: string) => void } = {},
): Promise<GitBenchResult> {
  const megabytes = o.megabytes ?? Number(process.env.BENCH_GIT_MB ?? 50);
  const runs = o.runs ?? Number(process.env.BENCH_GIT_RUNS ?? 3);
  const log = o.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), 'airlock-bench-git-'));
  const host = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', HOST], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let gw: Awaited<ReturnType<typeof startHttpTestGateway>> | undefined;
  try {
    const { url, bare } = JSON.parse(await firstLine(host)) as { url: string; bare: string };
    log(`git: building a ${megabytes} MB repository`);
    const seed = join(dir, 'seed');
    mkdirSync(seed);
    const git = (...args: string[]) =>
      execFileSync('git', args, {
        cwd: seed,
        env: {
          ...process.env,
          HOME: dir,
          GIT_CONFIG_NOSYSTEM: '1',
          GIT_AUTHOR_NAME: 'bench',
          GIT_AUTHOR_EMAIL: 'bench@example.com',
          GIT_COMMITTER_NAME: 'bench',
          GIT_COMMITTER_EMAIL: 'bench@example.com',
        },
        stdio: 'ignore',
      });
    git('init', '--quiet', '--initial-branch=main');
    for (let i = 0; i < megabytes; i++) writeFileSync(join(seed, `blob-${i}.bin`), randomBytes(1024 * 1024));
    git('add', '.');
    git('commit', '--quiet', '-m', 'bench data');
    git('push', '--quiet', bare, 'main');
    gw = await startHttpTestGateway({
      secrets: { 'git.token': TOKEN },
      connections: `  repos:
    type: git
    upstream: { url: "${url}" }
    credential: { type: bearer, token: "\${file:./secrets/git.token}" }
    default: review`,
      rules: `rules:
  - { name: reads are free, connections: [repos], kinds: [read], effect: allow }`,
    });
    const u = new URL(gw.proxyUrl);
    const direct = [
      '-c',
      `http.extraHeader=Authorization: Bearer ${TOKEN}`,
      'clone',
      '--quiet',
      `${url}/big.git`,
    ];
    const through = ['clone', '--quiet', `http://bench:${gw.tokens.bench}@${u.host}/git/repos/big.git`];
    // One of each first: disk caches and the upstream's pack reuse warm up.
    await timedClone(dir, direct);
    await timedClone(dir, through);
    const d: number[] = [];
    const a: number[] = [];
    for (let i = 0; i < runs; i++) {
      d.push(await timedClone(dir, direct));
      a.push(await timedClone(dir, through));
      log(`git: clone ${i + 1}/${runs}: direct ${d.at(-1)!.toFixed(2)} s, airlock ${a.at(-1)!.toFixed(2)} s`);
    }
    const airlockSeconds = median(a);
    return {
      megabytes,
      runs,
      directSeconds: median(d),
      airlockSeconds,
      airlockMBps: megabytes / airlockSeconds,
    };
  } finally {
    await gw?.close();
    host.kill('SIGTERM');
    await once(host, 'exit').catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

export function printGitBench(r: GitBenchResult): void {
  console.log(`git clone of a ${r.megabytes} MB repository, median of ${r.runs}`);
  console.log(`  direct   ${r.directSeconds.toFixed(2)} s`);
  console.log(`  airlock  ${r.airlockSeconds.toFixed(2)} s  (${r.airlockMBps.toFixed(1)} MB/s)`);
  console.log(`  ratio    ${(r.directSeconds / r.airlockSeconds).toFixed(2)} (direct time / airlock time)`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href)
  printGitBench(await benchGitClone({ log: console.error }));
