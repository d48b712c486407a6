/**
 * Hostile input on the live SSH listener: random and mutated bytes, a valid identification line
 * followed by garbage, and key exchanges left half done, split at random points. Every
 * connection ends within the startup timeout, the gateway never crashes, and a legitimate `ssh`
 * session open the whole time keeps working. Slow-loris callers and callers that never read are
 * cut off; connection slots per principal refuse the extra connection with a clear message and
 * an audit event. Bounds on waits are generous; nothing asserts on speed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { type AddressInfo, connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import ssh2 from 'ssh2';
import { mutated, splitAt } from './fuzz/targets.ts';
import type { ManagedProcess } from './support/processes.ts';
import { stopAll } from './support/processes.ts';
import { exchange } from './support/raw-exchange.ts';
import { type SshTestGateway, startSshTestGateway } from './support/ssh-gateway.ts';
import { generateKey, type PrivateSshd, startSshd } from './support/sshd.ts';

const STARTUP_TIMEOUT_MS = 1000;
const WRITE_TIMEOUT_MS = 2000;
/** How long past a timeout a connection may take to be gone (a loaded machine is slow). */
const GRACE_MS = 5000;

const RULES = `
rules:
  - name: harmless commands
    connections: [web]
    commands: ["echo *", "cat", "sleep *", "head *", "pgrep *"]
    effect: allow
`;

const LIMITS = `
limits:
  startup_timeout: ${STARTUP_TIMEOUT_MS}ms
  write_timeout: ${WRITE_TIMEOUT_MS}ms
  max_connections_per_principal: 2
  auth_failures: { max: 100000, window: 1m, block: 1s }
`;

/** SSH name-list, string and binary packet framing, no encryption (RFC 4253 section 6). */
function sshString(b: Buffer | string): Buffer {
  const body = Buffer.from(b);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

function sshPacket(payload: Buffer): Buffer {
  let padding = 8 - ((payload.length + 5) % 8);
  if (padding < 4) padding += 8;
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length + padding + 1);
  head[4] = padding;
  return Buffer.concat([head, payload, Buffer.alloc(padding)]);
}

/** SSH_MSG_KEXINIT with algorithms the gateway speaks (RFC 4253 section 7.1). */
const kexInit = fc
  .uint8Array({ minLength: 16, maxLength: 16 })
  .map((cookie) =>
    sshPacket(
      Buffer.concat([
        Buffer.from([20]),
        Buffer.from(cookie),
        sshString('curve25519-sha256,ecdh-sha2-nistp256'),
        sshString('ssh-ed25519'),
        sshString('aes128-ctr'),
        sshString('aes128-ctr'),
        sshString('hmac-sha2-256'),
        sshString('hmac-sha2-256'),
        sshString('none'),
        sshString('none'),
        sshString(''),
        sshString(''),
        Buffer.from([0, 0, 0, 0, 0]),
      ]),
    ),
  );

/** SSH_MSG_KEX_ECDH_INIT with a random public value (RFC 5656 section 4). */
const ecdhInit = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((q) => sshPacket(Buffer.concat([Buffer.from([30]), sshString(Buffer.from(q))])));

const IDENT = Buffer.from('SSH-2.0-OpenSSH_9.2p1 Fuzz\r\n');

/** A key exchange begun and never finished: identification, KEXINIT, maybe ECDH_INIT. */
const partialKex: fc.Arbitrary<Buffer> = fc
  .tuple(kexInit, fc.option(ecdhInit, { nil: undefined }))
  .map(([k, e]) => Buffer.concat([IDENT, k, ...(e ? [e] : [])]));

const hostile: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 600 }).map((b) => Buffer.from(b)),
  fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.concat([IDENT, Buffer.from(b)])),
  partialKex,
  mutated(partialKex),
);

/** Audit events are appended in batches: waits (bounded) until `check` finds what it wants. */
async function eventually(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!check()) {
    assert.ok(Date.now() < deadline, `${what} did not happen`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
}

/** An ssh2 client signed in with `token` as the SSH password. */
function sshLogin(port: number, user: string, token: string): Promise<ssh2.Client> {
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    c.once('ready', () => resolve(c));
    c.once('error', reject);
    c.connect({
      host: '127.0.0.1',
      port,
      username: user,
      password: token,
      hostVerifier: () => true,
      readyTimeout: 30_000,
    });
  });
}

describe('hostile input on the SSH listener', { timeout: 300_000 }, () => {
  let sshd: PrivateSshd;
  let gw: SshTestGateway;
  /** A legitimate `ssh web cat` open for the whole run: each line sent must come back. */
  let witness: ManagedProcess;
  let echoed = 0;

  const witnessWorks = async () => {
    const line = `still here ${++echoed} ${randomBytes(4).toString('hex')}`;
    const since = witness.stdout().length;
    witness.write(`${line}\n`);
    await witness.waitForOutput(new RegExp(line), 30_000, 'stdout', since);
  };

  const auditRows = (type: string): string[] => {
    const db = new Database(join(gw.dir, 'data', 'airlock.db'), { readonly: true });
    try {
      return (
        db.prepare('SELECT data FROM audit WHERE type = ? ORDER BY seq').all(type) as { data: string }[]
      ).map((r) => r.data);
    } finally {
      db.close();
    }
  };

  /** A service behind the host that sends without end to whoever connects. */
  let flood: Server;
  let floodPort: number;
  let floodOpen = 0;

  before(async () => {
    flood = createServer((s) => {
      floodOpen++;
      s.once('close', () => floodOpen--);
      s.on('error', () => {});
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const pump = () => {
        while (!s.destroyed && s.write(chunk));
      };
      s.on('drain', pump);
      pump();
    });
    await new Promise<void>((ok) => flood.listen(0, '127.0.0.1', () => ok()));
    floodPort = (flood.address() as AddressInfo).port;
    sshd = await startSshd();
    gw = await startSshTestGateway(sshd, {
      rules: `${RULES}
  - name: the flood service may be reached
    connections: [web]
    kinds: [transfer]
    paths: ["127.0.0.1:${floodPort}"]
    effect: allow
`,
      webExtra: `    forwarding: ["127.0.0.1:${floodPort}"]`,
      extra: LIMITS,
    });
    witness = gw.sshClient('agent', 'web', ['cat']);
    await witnessWorks();
  });

  after(async () => {
    flood?.close();
    await witness?.stop().catch(() => {});
    await gw?.close();
    await sshd?.stop();
    await stopAll();
  });

  test('random and mutated bytes, garbage after the identification line, half-done key exchanges: a clean end every time', async () => {
    let tried = 0;
    await fc.assert(
      fc.asyncProperty(hostile, fc.array(fc.nat(), { maxLength: 12 }), async (bytes, points) => {
        tried++;
        const r = await exchange(gw.ssh.port, splitAt(bytes, points), STARTUP_TIMEOUT_MS + GRACE_MS);
        assert.ok(r.closed, 'the gateway left a hostile connection open past the startup timeout');
        // Whatever the gateway said starts with its own identification line (RFC 4253 4.2).
        if (r.reply.length > 0) assert.match(r.reply.toString('latin1'), /^SSH-2\.0-Airlock\r\n/);
        await witnessWorks();
      }),
      { numRuns: 40 },
    );
    assert.ok(tried >= 40);
    // New sessions still work too, not only the one that was open.
    const fresh = gw.sshClient('bob', 'web', ['echo fresh']);
    assert.equal((await fresh.waitForExit(60_000)).code, 0, fresh.output());
    assert.equal(fresh.stdout(), 'fresh\n');
  });

  test('a caller sending one byte at a time is cut off at the startup timeout; others are not', async () => {
    for (const drip of [IDENT, Buffer.concat([IDENT, Buffer.alloc(64, 0x41)])]) {
      const slow = connect({ host: '127.0.0.1', port: gw.ssh.port });
      slow.on('error', () => {});
      const t0 = Date.now();
      const closed = new Promise<number>((ok) => slow.on('close', () => ok(Date.now() - t0)));
      let i = 0;
      const timer = setInterval(() => {
        if (i < drip.length && !slow.destroyed) slow.write(drip.subarray(i, ++i));
      }, 100);
      const ms = await Promise.race([closed, new Promise<number>((ok) => setTimeout(() => ok(-1), 60_000))]);
      clearInterval(timer);
      slow.destroy();
      assert.ok(ms >= 0, 'the slow caller was never cut off');
      assert.ok(ms < STARTUP_TIMEOUT_MS + GRACE_MS, `cut off after ${ms} ms`);
      await witnessWorks();
    }
  });

  test('a caller that never reads its output is cut off at the write timeout, and the command ends on the host', async () => {
    const client = await sshLogin(gw.ssh.port, 'web', gw.tokens.eve);
    client.on('error', () => {});
    const closed = new Promise<void>((ok) => client.once('close', () => ok()));
    // A command that writes far more than any window and buffer hold, and is never read.
    const marker = '100000007';
    client.exec(`head -c ${marker} /dev/zero`, (err, stream) => {
      assert.ifError(err);
      stream.pause();
    });
    const gone = await Promise.race([
      closed.then(() => true),
      new Promise<boolean>((ok) => setTimeout(() => ok(false), WRITE_TIMEOUT_MS + 60_000)),
    ]);
    client.destroy();
    assert.ok(gone, 'the caller that never reads was not cut off');
    await witnessWorks();
    // The host command went with it: nothing on the host still writes for that caller.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const p = gw.sshClient('agent', 'web', [`pgrep -fc 'head -c 10000000[7]'`]);
      await p.waitForExit(60_000);
      if (p.stdout().trim() === '0') break;
      assert.ok(Date.now() < deadline, `still running on the host: ${p.output()}`);
      await new Promise((ok) => setTimeout(ok, 300));
    }
  });

  test('a caller that never reads a forwarded connection is cut off at the write timeout, and the forward ends', async () => {
    const client = await sshLogin(gw.ssh.port, 'web', gw.tokens.eve);
    client.on('error', () => {});
    const closed = new Promise<void>((ok) => client.once('close', () => ok()));
    const opened = floodOpen;
    client.forwardOut('127.0.0.1', 0, '127.0.0.1', floodPort, (err, stream) => {
      assert.ifError(err);
      stream.pause();
    });
    const gone = await Promise.race([
      closed.then(() => true),
      new Promise<boolean>((ok) => setTimeout(() => ok(false), WRITE_TIMEOUT_MS + 60_000)),
    ]);
    client.destroy();
    assert.ok(gone, 'the caller that never reads its forward was not cut off');
    await eventually('the cut-off on record with its reason', () =>
      auditRows('session.closed').some((d) => d.includes('did not read its output')),
    );
    await witnessWorks();
    // The host dropped its end of the forward too: the service has no connection left open.
    await eventually('the forwarded connection closed on the host side', () => floodOpen <= opened);
  });

  test('connection slots per principal: the extra connection is refused with a clear message and audited', async () => {
    const held = [await sshLogin(gw.ssh.port, 'web', gw.tokens.carol)];
    held.push(await sshLogin(gw.ssh.port, 'web', gw.tokens.carol));
    try {
      const extra = gw.sshClient('carol', 'web', ['echo over the limit']);
      const exit = await extra.waitForExit(60_000);
      assert.equal(exit.code, 1, extra.output());
      assert.equal(extra.stdout(), '', 'the refused connection ran its command');
      assert.match(
        extra.stderr(),
        /airlock: carol already has 2 open connections \(the limit per principal is 2\)/,
      );
      assert.match(extra.stderr(), /close idle connections/);
      await eventually('a limit.connections audit event for carol over SSH', () =>
        auditRows('limit.connections').some(
          (d) => d.includes('"principal":"carol"') && d.includes('"protocol":"ssh"'),
        ),
      );
      // Another principal is not affected.
      await witnessWorks();
    } finally {
      for (const c of held) c.end();
    }
    // Slots come back when connections close.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const again = gw.sshClient('carol', 'web', ['echo back']);
      await again.waitForExit(60_000);
      if (again.stdout() === 'back\n') break;
      assert.ok(Date.now() < deadline, `slots were not given back: ${again.output()}`);
      await new Promise((ok) => setTimeout(ok, 300));
    }
  });
});

describe('failed SSH sign-ins are throttled per claimed user', { timeout: 120_000 }, () => {
  let sshd: PrivateSshd;
  let gw: SshTestGateway;
  let aliceKey: ReturnType<typeof generateKey>;
  let strangerKey: ReturnType<typeof generateKey>;

  before(async () => {
    sshd = await startSshd();
    aliceKey = generateKey(sshd.dir, 'alice_key');
    strangerKey = generateKey(sshd.dir, 'stranger_key');
    gw = await startSshTestGateway(sshd, {
      rules: RULES,
      webExtra: `    caller_keys:\n      alice: ["${aliceKey.publicKey}"]`,
      extra: 'limits:\n  auth_failures: { max: 3, window: 1m, block: 1m }\n',
    });
  });

  after(async () => {
    await gw?.close();
    await sshd?.stop();
    await stopAll();
  });

  /** Signs in from a given loopback address, so source throttling does not mask the user's. */
  const login = (from: string, user: string, token: string) =>
    new Promise<ssh2.Client>((resolve, reject) => {
      const c = new ssh2.Client();
      c.once('ready', () => resolve(c));
      c.once('error', reject);
      c.connect({
        host: '127.0.0.1',
        port: gw.ssh.port,
        localAddress: from,
        username: user,
        password: token,
        hostVerifier: () => true,
        readyTimeout: 30_000,
      });
    });

  test('wrong tokens for one user block that user from any address, not the others', async () => {
    // Each guess from a different address: only the claimed user is the same.
    for (let i = 0; i < 4; i++)
      await assert.rejects(
        login(`127.0.0.${10 + i}`, 'mallory@web', `alk_wrong_${i}_${randomBytes(8).toString('hex')}`),
      );
    // The right token for that user is refused during the block, from a fresh address...
    await assert.rejects(login('127.0.0.20', 'mallory@web', gw.tokens.agent));
    // ...while another user name with the same token, from that address, gets in.
    const ok = await login('127.0.0.20', 'web', gw.tokens.agent);
    ok.end();
    const blocks = () => {
      const db = new Database(join(gw.dir, 'data', 'airlock.db'), { readonly: true });
      try {
        return db.prepare("SELECT data FROM audit WHERE type = 'limit.auth_block_started'").all() as {
          data: string;
        }[];
      } finally {
        db.close();
      }
    };
    await eventually('a limit.auth_block_started audit event for the claimed user', () =>
      blocks().some(
        (r) => r.data.includes('"identity":"mallory@web"') && r.data.includes('"protocol":"ssh"'),
      ),
    );
  });

  /** OpenSSH `ssh` offering only this key, from a given loopback address, as `user`. */
  const withKey = (from: string, user: string, key: string, command: string) =>
    gw.sshClient(
      'nobody',
      user,
      [command],
      [
        '-b',
        from,
        '-o',
        'PreferredAuthentications=publickey',
        '-o',
        'PubkeyAuthentication=yes',
        '-o',
        'IdentitiesOnly=yes',
        '-i',
        key,
      ],
    );

  test('unknown keys count as failed sign-ins: the source and the claimed user are then refused even a registered key', async () => {
    // Four unregistered keys from one address, as one claimed user: the limit is three.
    for (let i = 0; i < 4; i++) {
      const p = withKey('127.0.0.30', 'eve@web', strangerKey.file, 'echo should-not-run');
      assert.equal((await p.waitForExit(60_000)).code, 255, p.output());
      assert.match(p.stderr(), /Permission denied/);
    }
    // Alice's registered key: refused from that address (another user name)...
    const fromBlockedSource = withKey('127.0.0.30', 'web', aliceKey.file, 'echo blocked-source');
    assert.equal((await fromBlockedSource.waitForExit(60_000)).code, 255, fromBlockedSource.output());
    assert.equal(fromBlockedSource.stdout(), '');
    // ...and as that claimed user from a fresh address...
    const asBlockedUser = withKey('127.0.0.31', 'eve@web', aliceKey.file, 'echo blocked-user');
    assert.equal((await asBlockedUser.waitForExit(60_000)).code, 255, asBlockedUser.output());
    assert.equal(asBlockedUser.stdout(), '');
    // ...while the same key from a fresh address as another user gets in.
    const fine = withKey('127.0.0.32', 'web', aliceKey.file, 'echo key-ok');
    assert.equal((await fine.waitForExit(60_000)).code, 0, fine.output());
    assert.equal(fine.stdout(), 'key-ok\n');
    const events = () => {
      const db = new Database(join(gw.dir, 'data', 'airlock.db'), { readonly: true });
      try {
        return db
          .prepare("SELECT type, data FROM audit WHERE type IN ('limit.auth_block_started', 'auth.failed')")
          .all() as {
          type: string;
          data: string;
        }[];
      } finally {
        db.close();
      }
    };
    await eventually('a block for the claimed user and refusals of the registered key while blocked', () => {
      const all = events();
      return (
        all.some((r) => r.type === 'limit.auth_block_started' && r.data.includes('"identity":"eve@web"')) &&
        all.some((r) => r.type === 'auth.failed' && r.data.includes('AIRLOCK_E_RATE_LIMITED'))
      );
    });
  });
});
