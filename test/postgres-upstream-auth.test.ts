/**
 * How Airlock logs in to its target: md5, trust (no credential held) and SCRAM over TLS with
 * `tls: verify-full`, each proven with a real psql through the gateway. A CA the target's
 * certificate does not chain to must be refused, and the caller told why.
 * https://www.postgresql.org/docs/current/auth-password.html
 * https://www.postgresql.org/docs/current/ssl-tcp.html
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadPolicyFile } from '../src/core/policy/load.ts';
import { startGateway } from '../src/server/gateway.ts';
import { type PrivatePostgres, startPostgres, unprivilegedAccount } from './support/postgres.ts';
import { stopAll } from './support/processes.ts';
import { type PsqlTarget, psqlCommand } from './support/psql.ts';

const TEST_TIMEOUT = 120_000;
const runAs = unprivilegedAccount();
const cleanups: (() => Promise<void> | void)[] = [];

after(async () => {
  for (const c of cleanups.reverse()) await c();
  await stopAll();
});

/** A directory the server account can read (certificates, hba file). */
function serverDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function giveToServer(dir: string): void {
  if (!runAs) return;
  chownSync(dir, runAs.uid, runAs.gid);
  for (const f of readdirSync(dir)) chownSync(join(dir, f), runAs.uid, runAs.gid);
}

function openssl(cwd: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}${r.error?.message ?? ''}`);
}

/** A throwaway CA (`<name>.crt`) in `dir`. */
function makeCa(dir: string, name: string): string {
  openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.crt`,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
  ]);
  return join(dir, `${name}.crt`);
}

/** A server certificate for 127.0.0.1 and localhost signed by the CA `ca`. */
function makeServerCert(dir: string, ca: string): { cert: string; key: string } {
  writeFileSync(
    join(dir, 'server.ext'),
    [
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      '',
    ].join('\n'),
  );
  openssl(dir, [
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
    '-subj',
    '/CN=localhost',
  ]);
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    `${ca}.crt`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-out',
    'server.crt',
    '-days',
    '2',
    '-extfile',
    'server.ext',
  ]);
  return { cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
}

function writeHba(dir: string, lines: string[]): string {
  const file = join(dir, 'pg_hba.conf');
  writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o644 });
  return file;
}

interface Upstream {
  /** The YAML lines under `upstream:` beyond host/port/database/user. */
  readonly extra: string[];
  readonly password: boolean;
}

/** A gateway with one connection per entry of `connections`, all to `pgsrv`; reads allowed. */
async function startAirlock(
  pgsrv: PrivatePostgres,
  connections: Record<string, Upstream>,
): Promise<{ target(connection: string): PsqlTarget }> {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-gw-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'secrets'), { mode: 0o700 });
  const token = `alk_test_agent_${randomBytes(24).toString('base64url')}`;
  writeFileSync(join(dir, 'secrets', 'agent.token'), `${token}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'secrets', 'upstream.password'), `${pgsrv.app.password}\n`, { mode: 0o600 });
  const blocks = Object.entries(connections).map(
    ([name, u]) => `  ${name}:
    type: postgres
    upstream:
      host: 127.0.0.1
      port: ${pgsrv.port}
      database: ${pgsrv.app.database}
      user: ${pgsrv.app.user}
${u.password ? '      password: "${file:./secrets/upstream.password}"\n' : ''}${u.extra.map((l) => `      ${l}\n`).join('')}    default: deny`,
  );
  const policyFile = join(dir, 'airlock.yaml');
  writeFileSync(
    policyFile,
    `listen:
  api: 127.0.0.1:0
  postgres: 127.0.0.1:0
store: sqlite:./data/airlock.db

identities:
  tokens:
    - { name: agent, token: "\${file:./secrets/agent.token}", kind: agent, groups: [agents] }

connections:
${blocks.join('\n')}

rules:
  - name: reads are free
    kinds: [read]
    effect: allow
`,
  );
  const gateway = await startGateway({ policy: loadPolicyFile(policyFile) });
  cleanups.push(() => gateway.close());
  return {
    target: (connection) => ({
      host: gateway.postgres.host,
      port: gateway.postgres.port,
      database: connection,
      token,
      user: 'agent',
    }),
  };
}

async function psql(t: PsqlTarget, sql: string): Promise<{ code: number | null; out: string; err: string }> {
  const p = psqlCommand(t, sql, ['-A', '-t', '-v', 'ON_ERROR_STOP=1']);
  const exit = await p.waitForExit(60_000);
  return { code: exit.code, out: p.stdout().trim(), err: p.stderr() };
}

async function startTarget(opts: Parameters<typeof startPostgres>[0]): Promise<PrivatePostgres> {
  const pgsrv = await startPostgres(opts);
  cleanups.push(() => pgsrv.stop());
  return pgsrv;
}

async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const SELECT = 'SELECT name FROM customers WHERE id = 7';

describe('upstream login', { timeout: TEST_TIMEOUT * 4 }, () => {
  test('md5 password authentication', { timeout: TEST_TIMEOUT }, async () => {
    const dir = serverDir('airlock-md5-');
    const hba = writeHba(dir, ['host all all 127.0.0.1/32 md5']);
    giveToServer(dir);
    // The app role's password is stored as md5, so an md5 hba line really asks for md5.
    const pgsrv = await startTarget({ settings: { hba_file: hba, password_encryption: 'md5' } });
    const stored = await pgsrv.psql("SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = 'app_rw'", {
      db: 'postgres',
    });
    assert.equal(stored.trim(), 'md5');
    const airlock = await startAirlock(pgsrv, { app: { password: true, extra: [] } });
    const r = await psql(airlock.target('app'), SELECT);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, 'Customer 7');
  });

  test('trust authentication with no password configured', { timeout: TEST_TIMEOUT }, async () => {
    const dir = serverDir('airlock-trust-');
    const hba = writeHba(dir, [
      'host all postgres 127.0.0.1/32 scram-sha-256',
      'host all app_rw 127.0.0.1/32 trust',
    ]);
    giveToServer(dir);
    const pgsrv = await startTarget({ settings: { hba_file: hba } });
    const airlock = await startAirlock(pgsrv, { app: { password: false, extra: [] } });
    const r = await psql(airlock.target('app'), SELECT);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, 'Customer 7');
  });

  describe('TLS with verify-full', () => {
    let airlock: Awaited<ReturnType<typeof startAirlock>>;

    test('logs in over TLS with the CA file', { timeout: TEST_TIMEOUT }, async () => {
      const dir = serverDir('airlock-tls-');
      const ca = makeCa(dir, 'ca');
      makeServerCert(dir, 'ca');
      const wrongCa = makeCa(dir, 'other-ca');
      // The server refuses a key file that others can read.
      chmodSync(join(dir, 'server.key'), 0o600);
      // startPostgres builds the sample database as app_rw without TLS; TLS is required after.
      const hba = writeHba(dir, ['host all all 127.0.0.1/32 scram-sha-256']);
      giveToServer(dir);
      const pgsrv = await startTarget({
        settings: {
          hba_file: hba,
          ssl: 'on',
          ssl_cert_file: join(dir, 'server.crt'),
          ssl_key_file: join(dir, 'server.key'),
        },
      });
      writeHba(dir, [
        'host all postgres 127.0.0.1/32 scram-sha-256',
        'hostssl all app_rw 127.0.0.1/32 scram-sha-256',
      ]);
      await pgsrv.psql('SELECT pg_reload_conf()', { db: 'postgres' });
      await eventually('the target to require TLS of app_rw', async () => {
        try {
          const c = await pgsrv.client({ user: 'app_rw' });
          await c.end();
          return false;
        } catch (err) {
          assert.match((err as Error).message, /no pg_hba.conf entry.*no encryption/);
          return true;
        }
      });
      airlock = await startAirlock(pgsrv, {
        app: { password: true, extra: ['tls: verify-full', `ca: ${ca}`] },
        plain: { password: true, extra: [] },
        wrongca: { password: true, extra: ['tls: verify-full', `ca: ${wrongCa}`] },
      });
      const r = await psql(
        airlock.target('app'),
        `${SELECT}; SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`,
      );
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(r.out.split('\n'), ['Customer 7', 't']);
      // Without TLS the target has no hba line for the app role: proof the login above used it.
      const plain = await psql(airlock.target('plain'), SELECT);
      assert.notEqual(plain.code, 0);
      assert.match(plain.err, /FATAL/);
      assert.match(plain.err, /could not log in to plain/);
    });

    test('refuses a target whose certificate the configured CA did not sign', {
      timeout: TEST_TIMEOUT,
    }, async () => {
      assert.ok(airlock, 'the TLS target was not started');
      const r = await psql(airlock.target('wrongca'), SELECT);
      assert.notEqual(r.code, 0);
      assert.match(r.err, /FATAL/);
      assert.match(r.err, /could not reach the target of connection "wrongca": TLS handshake failed/);
      assert.doesNotMatch(r.out, /Customer 7/);
    });
  });
});
