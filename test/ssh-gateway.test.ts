/**
 * SSH through Airlock with the real OpenSSH client against a private sshd: exec allowed, held
 * until approved, denied; bad tokens; the target's host key pinned. Every wait is bounded;
 * nothing asserts on speed.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { recordingsDirOf } from '../src/core/audit/evidence.ts';
import { parseAsciicast } from '../src/core/recording/asciicast.ts';
import { eventually } from './support/eventually.ts';
import { stopAll } from './support/processes.ts';
import { type SshTestGateway, sshConnection, startSshTestGateway } from './support/ssh-gateway.ts';
import { generateKey, type PrivateSshd, startSshd } from './support/sshd.ts';

const TEST_TIMEOUT = 120_000;

let sshd: PrivateSshd;
let gw: SshTestGateway;
let aliceKey: ReturnType<typeof generateKey>;
let strangerKey: ReturnType<typeof generateKey>;

const RULES = `
rules:
  - name: harmless commands
    connections: [web]
    commands: ["echo *", "printf *", "true", "false", "cat", "cat *", "exit *", "sh -c *", "head *", "wc *"]
    effect: allow
  - name: no recursive deletes
    commands: ["rm -rf *", "rm -fr *"]
    effect: deny
    reason: recursive deletes are not allowed on production hosts
  - name: service restarts need a reviewer
    connections: [web]
    commands: ["systemctl *", "touch *"]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }
  - name: shells need a reviewer
    connections: [web]
    kinds: [session]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }

masking:
  - connections: [web]
    detectors: [email]
    strategy: redact
`;

before(async () => {
  sshd = await startSshd();
  aliceKey = generateKey(sshd.dir, 'alice_key');
  strangerKey = generateKey(sshd.dir, 'stranger_key');
  gw = await startSshTestGateway(sshd, {
    rules: RULES,
    webExtra: `    caller_keys:\n      alice: ["${aliceKey.publicKey}"]`,
    extraConnections: `${sshConnection(sshd, 'web-pinned-wrong', { hostKey: `SHA256:${'A'.repeat(43)}`, default: 'allow' })}\n`,
  });
});

after(async () => {
  await gw?.close();
  await sshd?.stop();
  await stopAll();
});

interface RequestView {
  id: number;
  status: string;
  summary: string;
  kind: string;
  principal: { name: string } | string;
}

function auditTypes(): { type: string; data: string }[] {
  const db = new Database(join(gw.dir, 'data', 'airlock.db'), { readonly: true });
  try {
    return db.prepare('SELECT type, data FROM audit ORDER BY seq').all() as { type: string; data: string }[];
  } finally {
    db.close();
  }
}

interface AuditView {
  seq: number;
  type: string;
  data: Record<string, unknown>;
}

/** Every audit record, read through the API as a reviewer. */
async function auditViaApi(): Promise<AuditView[]> {
  const all: AuditView[] = [];
  for (let from = 1; ; ) {
    const r = await gw.api<{ records: AuditView[] }>(
      'GET',
      `/api/v1/audit?from=${from}&limit=1000`,
      undefined,
      'alice',
    );
    assert.equal(r.status, 200, r.text);
    all.push(...r.body.records);
    if (r.body.records.length < 1000) return all;
    from = r.body.records.at(-1)!.seq + 1;
  }
}

/** The `exec.finished` record of the command with this summary, once it is in the log. */
function finishedRecord(summary: string): Promise<Record<string, unknown>> {
  return eventually(
    `exec.finished for ${summary}`,
    async () =>
      (await auditViaApi()).find((r) => r.type === 'exec.finished' && r.data.summary === summary)?.data,
  );
}

describe('exec through Airlock', () => {
  test('an allowed command returns its exact stdout, stderr and exit status', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const p = gw.sshClient('agent', 'web', ['sh -c \'printf "out\\nline2"; printf err >&2; exit 7\'']);
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 7, p.output());
    assert.equal(p.stdout(), 'out\nline2');
    assert.equal(p.stderr(), 'err');
  });

  test('callers get the ciphers sshd would offer: chacha20-poly1305 exactly when ssh2 runs it natively', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    // Without ssh2's native addon chacha is withheld (it would run in WebAssembly at 2.5x the CPU
    // of AES-GCM); with it, the OpenSSH client's first choice is accepted as sshd accepts it.
    const native = (
      createRequire(import.meta.url)('ssh2/lib/protocol/crypto.js') as { bindingAvailable: boolean }
    ).bindingAvailable;
    const p = gw.sshClient('agent', 'web', ['printf ok'], ['-o', 'Ciphers=chacha20-poly1305@openssh.com']);
    const exit = await p.waitForExit(60_000);
    if (native) {
      assert.equal(exit.code, 0, p.output());
      assert.equal(p.stdout(), 'ok');
    } else {
      // The client's options keep it quiet; 255 is OpenSSH's status for a failed connection.
      assert.equal(exit.code, 255, p.output());
      assert.equal(p.stdout(), '');
    }
    const gcm = gw.sshClient('agent', 'web', ['printf ok'], ['-o', 'Ciphers=aes128-gcm@openssh.com']);
    assert.equal((await gcm.waitForExit(60_000)).code, 0, gcm.output());
    assert.equal(gcm.stdout(), 'ok');
  });

  test('the exit status, or the signal that ended a command, is in the audit log', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const exited = "sh -c 'exit 7'";
    const p = gw.sshClient('agent', 'web', [exited]);
    assert.equal((await p.waitForExit(60_000)).code, 7, p.output());
    const byStatus = await finishedRecord(exited);
    assert.equal(byStatus.ended, 'exit');
    assert.equal(byStatus.exitStatus, 7);
    assert.equal(byStatus.kind, 'exec');
    assert.equal(byStatus.connection, 'web');
    assert.equal(byStatus.principal, 'agent');
    assert.equal(typeof byStatus.sessionId, 'string');

    const killed = "sh -c 'kill -TERM $$'";
    const q = gw.sshClient('agent', 'web', [killed]);
    await q.waitForExit(60_000);
    const bySignal = await finishedRecord(killed);
    assert.equal(bySignal.ended, 'signal');
    assert.equal(bySignal.exitSignal, 'TERM');
    assert.equal(bySignal.exitStatus, undefined);
  });

  test('Ctrl-C on a pty reaches the command on the host: its trap runs and its exit status comes back', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    // The host's terminal line discipline turns ^C into SIGINT for the foreground job.
    const command = `sh -c 'trap "echo interrupted; exit 3" INT; echo ready; while :; do sleep 1; done'`;
    const p = gw.sshClient('agent', 'web', [command], ['-tt']);
    await p.waitForOutput(/ready/, 60_000, 'stdout');
    p.write('\x03');
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 3, p.output());
    assert.match(p.stdout(), /interrupted/);
    const finished = await finishedRecord(command);
    assert.equal(finished.ended, 'exit');
    assert.equal(finished.exitStatus, 3);
  });

  test('a command ended by a signal: the caller is told and the audit log names the signal', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const command = `sh -c 'echo ready; exec sleep 600'`;
    const p = gw.sshClient('agent', 'web', [command], ['-tt']);
    await p.waitForOutput(/ready/, 60_000, 'stdout');
    p.write('\x03');
    const exit = await p.waitForExit(60_000);
    // OpenSSH's client exits with 255 when the remote command was killed by a signal.
    assert.equal(exit.code, 255, p.output());
    const finished = await finishedRecord(command);
    assert.equal(finished.ended, 'signal');
    assert.equal(finished.exitSignal, 'INT');
  });

  test('stdin reaches the command and binary output passes unchanged', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const p = gw.sshClient('agent', 'web', ['cat']);
    const text = `${'héllo wörld ✓\n'.repeat(5000)}end`;
    p.write(text);
    p.endInput();
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 0, p.stderr());
    assert.equal(p.stdout(), text);
  });

  test('a held command does not run until approved, then runs', { timeout: TEST_TIMEOUT }, async () => {
    const marker = join(sshd.dir, `marker-${Date.now()}`);
    const p = gw.sshClient('agent', 'web', [`touch ${marker} && echo restarted`]);
    const m = await p.waitForOutput(/waiting for approval: request (\d+), (http\S+)/, 60_000, 'stderr');
    const id = Number(m[1]);
    assert.match(m[2]!, /\/requests\/\d+$/);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(existsSync(marker), false, 'the command must not run while held');
    assert.equal(p.hasExited(), false);
    const shown = await gw.api<{ request: RequestView }>('GET', `/api/v1/requests/${id}`, undefined, 'alice');
    assert.equal(shown.body.request.status, 'pending');
    assert.equal(shown.body.request.kind, 'exec');
    const approved = await gw.api('POST', `/api/v1/requests/${id}/approve`, {}, 'alice');
    assert.equal(approved.status, 200, approved.text);
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 0, p.output());
    assert.equal(p.stdout(), 'restarted\n');
    assert.equal(existsSync(marker), true);
    // The end of the command is on record with the request that let it run.
    const finished = await finishedRecord(`touch ${marker} && echo restarted`);
    assert.equal(finished.exitStatus, 0);
    assert.equal(finished.requestId, id);
    assert.equal(typeof finished.recordingId, 'string');
  });

  test('a held command denied by a reviewer gets the reason and a non-zero exit', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const p = gw.sshClient('agent', 'web', ['systemctl restart api']);
    const m = await p.waitForOutput(/waiting for approval: request (\d+)/, 60_000, 'stderr');
    const denied = await gw.api(
      'POST',
      `/api/v1/requests/${m[1]}/deny`,
      { reason: 'not during business hours' },
      'bob',
    );
    assert.equal(denied.status, 200, denied.text);
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 1);
    assert.match(p.stderr(), /not during business hours/);
  });

  test('a denied command gets the rule reason on stderr and exit status 1', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const p = gw.sshClient('agent', 'web', ['echo fine; rm -rf /srv/data']);
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 1);
    assert.equal(p.stdout(), '', 'nothing of the line ran');
    assert.match(p.stderr(), /recursive deletes are not allowed on production hosts/);
    const denied = auditTypes().filter((r) => r.type === 'action.denied');
    assert.ok(denied.some((r) => r.data.includes('rm -rf /srv/data')));
  });

  test('a bad token is refused', { timeout: TEST_TIMEOUT }, async () => {
    const p = gw.sshClient('nobody', 'web', ['echo hi']);
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 255);
    assert.match(p.stderr(), /Permission denied/);
    assert.equal(p.stdout(), '');
    await eventually('the failed login in the audit log', async () =>
      auditTypes().some((r) => r.type === 'auth.failed' && r.data.includes('"ssh"')) ? true : undefined,
    );
  });

  test('the user@connection form records the name and selects the connection', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const p = gw.sshClient('agent', 'deploy@web', ['echo as-user']);
    assert.equal((await p.waitForExit(60_000)).code, 0, p.output());
    assert.equal(p.stdout(), 'as-user\n');
    assert.ok(auditTypes().some((r) => r.type === 'session.opened' && r.data.includes('"user":"deploy"')));
  });

  test('an unknown connection name is explained', { timeout: TEST_TIMEOUT }, async () => {
    const p = gw.sshClient('agent', 'nope', ['echo hi']);
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 1);
    assert.match(p.stderr(), /connection "nope" is not configured.*web/);
  });

  test('a host presenting another host key is refused, and that is audited', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const p = gw.sshClient('agent', 'web-pinned-wrong', ['echo should-not-run']);
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 255);
    assert.equal(p.stdout(), '');
    assert.match(p.stderr(), /presented host key SHA256:\S+, which is not the one pinned/);
    await eventually('the mismatch in the audit log', async () =>
      auditTypes().some((r) => r.type === 'ssh.host_key_mismatch' && r.data.includes(sshd.hostKeyFingerprint))
        ? true
        : undefined,
    );
  });

  test('a public key registered to a principal logs in as that principal', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const keyOptions = (file: string) => [
      '-o',
      'PreferredAuthentications=publickey',
      '-o',
      'PubkeyAuthentication=yes',
      '-o',
      'IdentitiesOnly=yes',
      '-i',
      file,
    ];
    const p = gw.sshClient('nobody', 'web', ['echo via-key'], keyOptions(aliceKey.file));
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 0, p.output());
    assert.equal(p.stdout(), 'via-key\n');
    assert.ok(
      auditTypes().some(
        (r) => r.type === 'action.allowed' && r.data.includes('echo via-key') && r.data.includes('"alice"'),
      ),
    );

    const q = gw.sshClient('nobody', 'web', ['echo nope'], keyOptions(strangerKey.file));
    const refused = await q.waitForExit(60_000);
    assert.equal(refused.code, 255);
    assert.match(q.stderr(), /Permission denied/);
    await eventually('the unknown key in the audit log', async () =>
      auditTypes().some((r) => r.type === 'auth.failed' && r.data.includes('not registered'))
        ? true
        : undefined,
    );
  });

  test('exec output is recorded with secrets masked, while the caller sees it unchanged', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const command = 'echo contact: carol.jones@example.com';
    const p = gw.sshClient('agent', 'web', [command]);
    assert.equal((await p.waitForExit(60_000)).code, 0, p.output());
    assert.equal(p.stdout(), 'contact: carol.jones@example.com\n');
    const cast = await eventually('the sealed recording of the command', async () => {
      for (const r of await gw.gateway.store.listRecordings({ connection: 'web' })) {
        if (r.status !== 'closed') continue;
        const c = parseAsciicast(readFileSync(join(recordingsDirOf(gw.gateway.policy), r.path), 'utf8'));
        if (c.header.command === command) return c;
      }
      return undefined;
    });
    const output = cast.events
      .filter((e) => e.code === 'o')
      .map((e) => e.data)
      .join('');
    assert.match(output, /^contact: /);
    assert.doesNotMatch(output, /carol\.jones@example\.com/);
  });
});
