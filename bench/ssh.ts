/**
 * SSH through Airlock against a private sshd, with the OpenSSH client:
 *  - 200 sequential `ssh web true` (a new connection each: handshake, login, one allowed exec)
 *    through Airlock vs straight to sshd, as a ratio;
 *  - throughput of a 200 MB `cat` through Airlock vs straight to sshd, as a ratio.
 * Run alone: `node --import tsx bench/ssh.ts`. Environment: BENCH_SSH_RUNS (default 200),
 * BENCH_SSH_MB (default 200). Results also go to .bench/ssh.json.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stopAll } from '../test/support/processes.ts';
import { startSshTestGateway } from '../test/support/ssh-gateway.ts';
import { startSshd } from '../test/support/sshd.ts';

const ROOT = join(import.meta.dirname, '..');

function positive(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

function log(msg: string): void {
  process.stderr.write(`[bench:ssh] ${msg}\n`);
}

/** Runs one ssh to completion with stdout discarded; rejects on a non-zero exit or after 10 minutes. */
function run(args: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('ssh', args, { env, stdio: ['ignore', openSync('/dev/null', 'w'), 'pipe'] });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => {
      if (err.length < 4000) err += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(Number(process.hrtime.bigint() - started) / 1e6);
      else reject(new Error(`ssh ${args.at(-1)} exited ${code}: ${err}`));
    });
  });
}

export interface SshBenchResult {
  readonly runs: number;
  readonly direct: { readonly totalMs: number; readonly perRunMs: number };
  readonly airlock: { readonly totalMs: number; readonly perRunMs: number };
  /** Airlock time / direct time for the sequential runs (lower is better; 1 = no overhead). */
  readonly connectRatio: number;
  readonly megabytes: number;
  readonly directMBps: number;
  readonly airlockMBps: number;
  /** Airlock throughput / direct throughput (target ≥ 0.8). */
  readonly throughputRatio: number;
}

export async function benchSsh(): Promise<SshBenchResult> {
  const runs = positive('BENCH_SSH_RUNS', 200);
  const mb = positive('BENCH_SSH_MB', 200);
  const sshd = await startSshd();
  const gw = await startSshTestGateway(sshd, {
    rules: `
rules:
  - name: benchmark commands
    connections: [web]
    commands: ["true", "head *"]
    effect: allow
`,
  });
  try {
    const directOptions = [
      '-F',
      '/dev/null',
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'LogLevel=ERROR',
      '-i',
      sshd.clientKeyFile,
      '-p',
      String(sshd.port),
      `${sshd.user}@127.0.0.1`,
    ];
    const { env, options } = gw.clientOptions('bench');
    const airlockOptions = [...options, '-p', String(gw.ssh.port), 'web@127.0.0.1'];

    // Direct and Airlock runs alternate, so a change in machine load hits both alike.
    log(`${runs} sequential "ssh … true", alternating direct and through Airlock`);
    await run([...directOptions, 'true'], process.env); // warm-up
    await run([...airlockOptions, 'true'], env);
    let directTotal = 0;
    let airlockTotal = 0;
    for (let i = 0; i < runs; i++) {
      directTotal += await run([...directOptions, 'true'], process.env);
      airlockTotal += await run([...airlockOptions, 'true'], env);
    }
    const direct = { totalMs: directTotal, perRunMs: directTotal / runs };
    const airlock = { totalMs: airlockTotal, perRunMs: airlockTotal / runs };
    log(`  direct ${direct.perRunMs.toFixed(1)} ms, Airlock ${airlock.perRunMs.toFixed(1)} ms each`);

    const bytes = mb * 1024 * 1024;
    const cat = `head -c ${bytes} /dev/zero`;
    // Best of three each, alternating.
    let directMs = Number.POSITIVE_INFINITY;
    let airlockMs = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 3; i++) {
      log(`${mb} MB cat, direct and through Airlock (${i + 1}/3)`);
      directMs = Math.min(directMs, await run([...directOptions, cat], process.env));
      airlockMs = Math.min(airlockMs, await run([...airlockOptions, cat], env));
    }
    const directMBps = mb / (directMs / 1000);
    const airlockMBps = mb / (airlockMs / 1000);
    const result: SshBenchResult = {
      runs,
      direct,
      airlock,
      connectRatio: airlock.totalMs / direct.totalMs,
      megabytes: mb,
      directMBps,
      airlockMBps,
      throughputRatio: airlockMBps / directMBps,
    };
    console.log('');
    console.log(`ssh: ${runs} sequential connections running "true"`);
    console.log(`  direct  ${direct.perRunMs.toFixed(1)} ms each`);
    console.log(
      `  airlock ${airlock.perRunMs.toFixed(1)} ms each  (ratio ${result.connectRatio.toFixed(2)}x)`,
    );
    console.log(`ssh: ${mb} MB cat`);
    console.log(`  direct  ${directMBps.toFixed(1)} MB/s`);
    console.log(
      `  airlock ${airlockMBps.toFixed(1)} MB/s  (ratio ${result.throughputRatio.toFixed(2)}, target ≥ 0.8)`,
    );
    return result;
  } finally {
    await gw.close();
    await sshd.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    const result = await benchSsh();
    mkdirSync(join(ROOT, '.bench'), { recursive: true });
    writeFileSync(
      join(ROOT, '.bench', 'ssh.json'),
      `${JSON.stringify({ at: new Date().toISOString(), node: process.version, ...result }, null, 2)}\n`,
    );
  } catch (err) {
    log((err as Error).stack ?? String(err));
    process.exitCode = 1;
  } finally {
    await stopAll();
  }
}
