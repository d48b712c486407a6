/**
 * SSH through Airlock beyond single commands: an interactive shell (a real pty via `ssh -tt`)
 * reviewed as a session and recorded as asciicast v2; SFTP downloads allowed and uploads denied
 * per policy; port forwarding refused unless the connection lists the destination and a rule
 * allows it; agent forwarding refused; window changes reach the host's pty.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import ssh2 from 'ssh2';
import { recordingsDirOf } from '../src/core/audit/evidence.ts';
import { parseAsciicast } from '../src/core/recording/asciicast.ts';
import { eventually } from './support/eventually.ts';
import { startProcess, stopAll } from './support/processes.ts';
import { type SshTestGateway, startSshTestGateway } from './support/ssh-gateway.ts';
import { type PrivateSshd, startSshd } from './support/sshd.ts';

const TEST_TIMEOUT = 120_000;

let sshd: PrivateSshd;
let gw: SshTestGateway;
let echo: Server;
let echoPort: number;

before(async () => {
  echo = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  echoPort = (echo.address() as { port: number }).port;
  sshd = await startSshd();
  gw = await startSshTestGateway(sshd, {
    webExtra: `    forwarding: ["127.0.0.1:${echoPort}"]`,
    rules: `
rules:
  - name: harmless commands
    connections: [web]
    commands: ["echo *", "true", "sleep *", "stty *", "exec *"]
    effect: allow
  - name: shells need a reviewer
    connections: [web]
    kinds: [session]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }
  - name: downloads are free
    connections: [web]
    kinds: [transfer]
    files: ["/*"]
    effect: allow
  - name: the echo service may be reached
    connections: [web]
    kinds: [transfer]
    paths: ["127.0.0.1:${echoPort}"]
    effect: allow
`,
  });
});

after(async () => {
  await gw?.close();
  await sshd?.stop();
  echo?.close();
  await stopAll();
});

function audit(): { type: string; data: string }[] {
  const db = new Database(join(gw.dir, 'data', 'airlock.db'), { readonly: true });
  try {
    return db.prepare('SELECT type, data FROM audit ORDER BY seq').all() as { type: string; data: string }[];
  } finally {
    db.close();
  }
}

describe('interactive shells', () => {
  test('a shell is held as a session, then runs in a pty and is recorded', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const p = gw.sshClient('agent', 'web', [], ['-tt']);
    const m = await p.waitForOutput(/waiting for approval: request (\d+)/, 60_000, 'stderr');
    const shown = await gw.api<{ request: { kind: string; summary: string } }>(
      'GET',
      `/api/v1/requests/${m[1]}`,
      undefined,
      'alice',
    );
    assert.equal(shown.body.request.kind, 'session');
    assert.match(shown.body.request.summary, /interactive shell on web/);
    assert.equal((await gw.api('POST', `/api/v1/requests/${m[1]}/approve`, {}, 'alice')).status, 200);
    await p.waitForOutput(/approved: request/, 60_000, 'stderr');
    p.write('stty cols 100 rows 30; echo "hello-$((6*7))"\n');
    await p.waitForOutput(/hello-42/, 60_000, 'stdout');
    p.write('exit 3\n');
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 3, 'the shell exit status passes through');

    const recording = await eventually('the sealed recording', async () => {
      const all = await gw.gateway.store.listRecordings({ connection: 'web' });
      return all.find(
        (r) =>
          r.status === 'closed' && r.format === 'asciicast-v2' && r.bytes > 0 && !r.path.includes('open'),
      );
    });
    const cast = parseAsciicast(
      readFileSync(join(recordingsDirOf(gw.gateway.policy), recording.path), 'utf8'),
    );
    assert.equal(cast.header.version, 2);
    const output = cast.events
      .filter((e) => e.code === 'o')
      .map((e) => e.data)
      .join('');
    const input = cast.events
      .filter((e) => e.code === 'i')
      .map((e) => e.data)
      .join('');
    assert.match(output, /hello-42/, 'the replayed output shows what the caller saw');
    assert.match(input, /echo "hello-\$\(\(6\*7\)\)"/, 'keystrokes are recorded');
    assert.ok(
      audit().some((r) => r.type === 'recording.closed' && r.data.includes(recording.sha256 ?? '-')),
      'the recording hash is in the audit chain',
    );
  });
});

describe('file transfer', () => {
  test('an SFTP download is allowed and an upload is denied', { timeout: TEST_TIMEOUT }, async () => {
    const remote = join(sshd.dir, 'report.txt');
    writeFileSync(remote, 'quarterly numbers\n');
    const local = join(gw.dir, 'downloaded.txt');
    const upload = join(gw.dir, 'upload.txt');
    writeFileSync(upload, 'do not store me\n');
    const target = join(sshd.dir, 'uploaded.txt');
    const { env, options } = gw.clientOptions('agent');
    const p = startProcess('sftp', [...options, '-P', String(gw.ssh.port), 'web@127.0.0.1'], { env });
    p.write(`get ${remote} ${local}\nput ${upload} ${target}\nbye\n`);
    p.endInput();
    await p.waitForExit(60_000);
    assert.equal(readFileSync(local, 'utf8'), 'quarterly numbers\n', p.output());
    assert.equal(existsSync(target), false, 'the upload must not reach the host');
    assert.match(p.output(), /denied|Permission denied/i);
    await eventually('the denied upload in the audit log', async () =>
      audit().some((r) => r.type === 'action.denied' && r.data.includes('uploaded.txt')) ? true : undefined,
    );
  });

  test('legacy scp uploads are judged as writes and denied by default', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const upload = join(gw.dir, 'scp-upload.txt');
    writeFileSync(upload, 'x\n');
    const target = join(sshd.dir, 'scp-uploaded.txt');
    const { env, options } = gw.clientOptions('agent');
    const p = startProcess(
      'scp',
      [...options, '-O', '-P', String(gw.ssh.port), upload, `web@127.0.0.1:${target}`],
      {
        env,
      },
    );
    const exit = await p.waitForExit(60_000);
    assert.notEqual(exit.code, 0);
    assert.equal(existsSync(target), false);
  });
});

describe('forwarding', () => {
  test('port forwarding to a destination not listed is refused', { timeout: TEST_TIMEOUT }, async () => {
    const p = gw.sshClient('agent', 'web', [], ['-W', `127.0.0.1:${sshd.port}`]);
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 255);
    assert.match(p.stderr(), /open failed|prohibited|forwarding failed/i);
    await eventually('the refused forward in the audit log', async () =>
      audit().some((r) => r.type === 'action.denied' && r.data.includes(`127.0.0.1:${sshd.port}`))
        ? true
        : undefined,
    );
  });

  test('port forwarding to a listed destination allowed by a rule works', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const p = gw.sshClient('agent', 'web', [], ['-W', `127.0.0.1:${echoPort}`]);
    p.write('ping through the host\n');
    await p.waitForOutput(/ping through the host/, 60_000, 'stdout');
    await p.stop();
  });

  test('remote port forwarding is refused and audited', { timeout: TEST_TIMEOUT }, async () => {
    const p = gw.sshClient(
      'agent',
      'web',
      [],
      ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', `0:127.0.0.1:${echoPort}`],
    );
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 255);
    assert.match(p.stderr(), /forwarding failed/i);
    await eventually('the refused remote forward in the audit log', async () =>
      audit().some((r) => r.type === 'action.denied' && r.data.includes('remote port forwarding'))
        ? true
        : undefined,
    );
  });

  test('agent forwarding is refused and the command still runs', { timeout: TEST_TIMEOUT }, async () => {
    const agent = startProcess('ssh-agent', ['-D', '-a', join(gw.dir, 'agent.sock')]);
    await eventually('the agent socket', async () =>
      existsSync(join(gw.dir, 'agent.sock')) ? true : undefined,
    );
    const p = gw.sshClient(
      'agent',
      'web',
      ['echo', 'ok'],
      ['-A', '-o', `IdentityAgent=${join(gw.dir, 'agent.sock')}`],
    );
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 0, p.output());
    assert.equal(p.stdout(), 'ok\n');
    await agent.stop();
    await eventually('the refused agent forwarding in the audit log', async () =>
      audit().some((r) => r.type === 'action.denied' && r.data.includes('agent forwarding'))
        ? true
        : undefined,
    );
  });
});

/** An ssh2 client logged in to Airlock as `who` (for what the OpenSSH client cannot script). */
function callerClient(who: 'agent' | 'alice'): Promise<ssh2.Client> {
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    c.once('ready', () => resolve(c));
    c.once('error', reject);
    c.connect({
      host: '127.0.0.1',
      port: gw.ssh.port,
      username: 'web',
      password: gw.tokens[who],
      readyTimeout: 30_000,
    });
  });
}

describe('window changes', () => {
  test('a window change reaches the host pty', { timeout: TEST_TIMEOUT }, async () => {
    const c = await callerClient('agent');
    try {
      const stream = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
        c.exec('echo start; sleep 1; stty size', { pty: { rows: 24, cols: 80, term: 'xterm' } }, (err, s) =>
          err ? reject(err) : resolve(s),
        ),
      );
      let out = '';
      stream.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('start')) stream.setWindow(30, 100, 0, 0);
      });
      const [code] = await Promise.all([
        new Promise<number>((resolve) => stream.once('exit', (n: number) => resolve(n))),
        new Promise((r) => stream.once('close', r)),
      ]);
      assert.equal(code, 0, out);
      assert.match(out, /30 100/);
    } finally {
      c.end();
    }
  });
  // Signals are passed on too (channel `signal` requests), but the private sshd refuses them
  // itself ("session signalling requires privilege separation"), so no test here observes them.
});

describe('limits', () => {
  test('one connection gets at most 10 session channels at a time', { timeout: TEST_TIMEOUT }, async () => {
    const c = await callerClient('agent');
    try {
      const open = () =>
        new Promise<ssh2.ClientChannel | Error>((resolve) =>
          c.exec('sleep 3', (err, s) => {
            s?.resume(); // no output expected; a paused stream never ends
            resolve(err ?? s);
          }),
        );
      const results = await Promise.all(Array.from({ length: 11 }, open));
      const refused = results.filter((r) => r instanceof Error);
      assert.equal(refused.length, 1, 'the eleventh channel is refused');
      await Promise.all(
        results
          .filter((r): r is ssh2.ClientChannel => !(r instanceof Error))
          .map((s) => new Promise((r) => s.once('close', r))),
      );
      const again = await open();
      assert.ok(!(again instanceof Error), 'closed channels free their slots');
    } finally {
      c.end();
    }
  });
});
