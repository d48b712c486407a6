/**
 * The PostgreSQL adapter against a private PostgreSQL 15, driven by real psql and the pg driver,
 * with a scripted GatePort so each test decides exactly what is allowed, held or denied.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import type { Action, Principal } from '../src/core/action.ts';
import type { ApprovalRequest } from '../src/core/approvals/request.ts';
import { AirlockError } from '../src/core/errors.ts';
import type { GateOutcome, GatePort, SessionInfo, Settlement } from '../src/core/gate-types.ts';
import type { Policy, PolicyConnection } from '../src/core/policy/policy.ts';
import { Secret } from '../src/core/policy/secret.ts';
import { startPostgresListener } from '../src/protocols/postgres/listener.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { psqlCommand, psqlSession } from './support/psql.ts';
import { selfSignedCert } from './support/tls.ts';

const TOKEN = 'alk_test_agent_token';
const agent: Principal = { name: 'agent', kind: 'agent', groups: ['agents'] };

interface Held {
  action: Action;
  settle: (s: Settlement) => void;
  signal?: AbortSignal;
}

/** A gate whose verdicts the test scripts: reads pass, DROP is denied, other writes are held. */
class ScriptedGate implements GatePort {
  actions: Action[] = [];
  held = new Map<number, Held>();
  released: number[] = [];
  opened: SessionInfo[] = [];
  closed: string[] = [];
  authFailures: Record<string, unknown>[] = [];
  retryAll = false;
  failAudit = false;
  #next = 1;
  #waiters: ((h: Held & { id: number }) => void)[] = [];

  async decide(action: Action): Promise<GateOutcome> {
    this.actions.push(action);
    if (this.failAudit && action.kind !== 'read')
      throw new AirlockError('AIRLOCK_E_AUDIT_UNAVAILABLE', 'the audit log could not be written');
    const decision = { effect: 'allow', rule: { name: 't', index: 0 }, why: 'test' } as const;
    if (action.kind === 'read') return { verdict: 'allow', decision, via: 'rule' };
    if (/drop/i.test(action.summary))
      return {
        verdict: 'deny',
        decision: { ...decision, effect: 'deny', reason: 'no drops' },
        reason: 'no drops here',
      };
    const id = this.#next++;
    const request = { id } as ApprovalRequest;
    const url = `http://airlock.test/requests/${id}`;
    const mode = this.retryAll ? 'retry' : 'wait';
    this.held.set(id, { action, settle: () => {} });
    return {
      verdict: 'hold',
      decision: { ...decision, effect: 'review', review: {} as never },
      request,
      mode,
      url,
      message: `approval required: request ${id} — approve it at ${url}`,
    };
  }

  settled(id: number, signal?: AbortSignal): Promise<Settlement> {
    return new Promise((resolve) => {
      const h = this.held.get(id)!;
      h.settle = resolve;
      if (signal) h.signal = signal;
      signal?.addEventListener('abort', () =>
        resolve({ status: 'cancelled', request: { id } as ApprovalRequest, reason: 'caller left' }),
      );
      for (const w of this.#waiters.splice(0)) w({ ...h, id });
    });
  }

  /** Resolves with the next request a caller waits on. */
  nextHold(): Promise<Held & { id: number }> {
    return new Promise((r) => this.#waiters.push(r));
  }

  approve(id: number): void {
    this.held.get(id)!.settle({ status: 'approved', request: { id } as ApprovalRequest });
  }

  deny(id: number, reason: string): void {
    this.held.get(id)!.settle({ status: 'denied', request: { id } as ApprovalRequest, reason });
  }

  async release(id: number): Promise<void> {
    this.released.push(id);
  }
  async sessionOpened(s: SessionInfo): Promise<void> {
    this.opened.push(s);
  }
  sessionClosed(id: string): void {
    this.closed.push(id);
  }
  authFailed(d: Readonly<Record<string, unknown>>): void {
    this.authFailures.push({ ...d });
  }
  readonly violations: Record<string, unknown>[] = [];
  protocolViolation(d: Readonly<Record<string, unknown>>): void {
    this.violations.push({ ...d });
  }
}

let server: PrivatePostgres;
let gate: ScriptedGate;
let listener: Awaited<ReturnType<typeof startPostgresListener>>;

function policyFor(pgServer: PrivatePostgres): Policy {
  const connection: PolicyConnection = {
    name: 'app',
    type: 'postgres',
    default: 'review',
    upstream: {
      host: pgServer.host,
      port: pgServer.port,
      database: pgServer.app.database,
      user: pgServer.app.user,
      password: Secret.literal(pgServer.app.password),
      tls: 'off',
    },
  };
  return { connections: new Map([['app', connection]]), baseDir: '.' } as unknown as Policy;
}

before(async () => {
  server = await startPostgres();
  gate = new ScriptedGate();
  listener = await startPostgresListener({
    host: '127.0.0.1',
    port: 0,
    policy: policyFor(server),
    gate,
    tokens: {
      principal: () => undefined,
      async authenticate(token) {
        if (token === TOKEN) return agent;
        throw new AirlockError(
          token ? 'AIRLOCK_E_TOKEN_INVALID' : 'AIRLOCK_E_TOKEN_MISSING',
          'the Airlock token was not recognised',
          {
            hint: 'check the token',
          },
        );
      },
    },
    keepaliveNoticeMs: 200,
  });
});

after(async () => {
  await listener?.close();
  await server?.stop();
});

const target = (token = TOKEN, database = 'app') => ({
  host: '127.0.0.1',
  port: listener.port,
  database,
  token,
  user: 'agent',
});

async function client(): Promise<pg.Client> {
  const c = new pg.Client({
    host: '127.0.0.1',
    port: listener.port,
    database: 'app',
    user: 'agent',
    password: TOKEN,
  });
  await c.connect();
  return c;
}

test('psql: a SELECT passes through', async () => {
  const p = psqlCommand(target(), 'SELECT count(*) AS n FROM customers', ['-tA']);
  const exit = await p.waitForExit(20_000);
  assert.equal(exit.code, 0, p.stderr());
  assert.equal(p.stdout().trim(), '20');
  assert.equal(gate.opened.at(-1)?.connection, 'app');
  assert.equal(gate.opened.at(-1)?.attributes?.user, 'agent');
});

test('psql: a bad token is refused with a clear message', async () => {
  const p = psqlCommand(target('nope'), 'SELECT 1');
  const exit = await p.waitForExit(20_000);
  assert.notEqual(exit.code, 0);
  assert.match(p.stderr(), /the Airlock token was not recognised/);
  assert.doesNotMatch(p.stderr(), /nope/);
  assert.equal(gate.authFailures.at(-1)?.reason, 'AIRLOCK_E_TOKEN_INVALID');
});

test('an unknown connection name lists the configured ones', async () => {
  const p = psqlCommand(target(TOKEN, 'prod'), 'SELECT 1');
  await p.waitForExit(20_000);
  assert.match(p.stderr(), /connection "prod" is not configured in Airlock/);
  assert.match(p.stderr(), /app/);
});

test('pg: a DELETE is held (row still there), then approved and run', async () => {
  const c = await client();
  const notices: string[] = [];
  c.on('notice', (n) => notices.push(n.message ?? ''));
  const hold = gate.nextHold();
  const del = c.query('DELETE FROM orders WHERE id = 1');
  const held = await hold;
  for (let i = 0; i < 100 && notices.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.match(
    notices.at(-1) ?? '',
    new RegExp(
      `waiting for approval: request ${held.id} — approve it at http://airlock.test/requests/${held.id}`,
    ),
  );
  const check = await client();
  assert.equal((await check.query('SELECT count(*)::int AS n FROM orders WHERE id = 1')).rows[0].n, 1);
  await new Promise((r) => setTimeout(r, 450));
  assert.ok(
    notices.some((n) => /still waiting for approval/.test(n)),
    'keepalive notices while held',
  );
  gate.approve(held.id);
  const r = await del;
  assert.equal(r.rowCount, 1);
  assert.ok(gate.released.includes(held.id));
  assert.equal((await check.query('SELECT count(*)::int AS n FROM orders WHERE id = 1')).rows[0].n, 0);
  await check.end();
  await c.end();
});

test('pg: the extended protocol holds per parameter value and runs on approval', async () => {
  const c = await client();
  await c.query('BEGIN');
  const hold = gate.nextHold();
  const q = c.query('UPDATE orders SET total = total WHERE id = $1', [7]);
  const h = await hold;
  assert.match(h.action.normalized, /"7"/);
  assert.deepEqual(h.action.attributes.parameters, ['7']);
  assert.equal(h.action.summary, 'UPDATE orders SET total = total WHERE id = $1');
  gate.approve(h.id);
  assert.equal((await q).rowCount, 1);
  // Denied inside the transaction: the error carries the reason and the transaction is failed.
  const hold2 = gate.nextHold();
  const q2 = c.query('UPDATE orders SET total = total WHERE id = $1', [8]);
  const h2 = await hold2;
  gate.deny(h2.id, 'not today');
  await assert.rejects(
    q2,
    (e: Error & { code?: string }) => e.code === '42501' && /denied by Airlock: not today/.test(e.message),
  );
  await assert.rejects(c.query('SELECT 1'), /current transaction is aborted/);
  await c.query('ROLLBACK');
  assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1);
  await c.end();
});

test('psql: a denial keeps the session usable, inside and outside a transaction', async () => {
  const p = psqlSession(target(), ['-v', 'ON_ERROR_STOP=0', '-v', 'PROMPT1=[%x]> ']);
  p.write('DROP TABLE orders;\n');
  p.write('SELECT 41 + 1 AS answer;\n');
  p.write('BEGIN;\nSELECT 1;\nDROP TABLE orders;\n');
  p.write('\\echo status:[:LAST_ERROR_SQLSTATE]\n');
  p.write("SELECT 'after';\nROLLBACK;\nSELECT 'done';\n\\q\n");
  p.endInput();
  const exit = await p.waitForExit(20_000);
  assert.equal(exit.code, 0, p.output());
  const out = p.output();
  assert.match(out, /denied by Airlock: no drops here/);
  assert.match(out, /42/);
  assert.match(out, /status:\[42501\]/);
  assert.match(out, /current transaction is aborted/);
  assert.match(out, /done/);
  // The substitute's syntax error never reaches the caller.
  assert.doesNotMatch(out, /airlock_denied/);
});

test('retry mode answers at once with the request', async () => {
  const c = await client();
  gate.retryAll = true;
  await assert.rejects(
    c.query("INSERT INTO audit_notes (note) VALUES ('x')"),
    /approval required: request \d+/,
  );
  gate.retryAll = false;
  assert.equal((await c.query('SELECT 2 AS two')).rows[0].two, 2);
  await c.end();
});

test('audit failure refuses the statement and the session stays usable', async () => {
  const c = await client();
  gate.failAudit = true;
  await assert.rejects(
    c.query("INSERT INTO audit_notes (note) VALUES ('y')"),
    (e: Error & { code?: string }) => e.code === '58000',
  );
  gate.failAudit = false;
  assert.equal((await c.query('SELECT 3 AS three')).rows[0].three, 3);
  await c.end();
});

test('pipelined extended batches come back in order', async () => {
  const c = await client();
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) => c.query('SELECT $1::int AS v', [i])),
  );
  assert.deepEqual(
    results.map((r) => r.rows[0].v),
    Array.from({ length: 20 }, (_, i) => i),
  );
  await c.end();
});

test('a caller that leaves while held cancels the request', async () => {
  const c = await client();
  const hold = gate.nextHold();
  c.query('DELETE FROM orders WHERE id = 3').catch(() => {});
  const h = await hold;
  await c.end().catch(() => {});
  for (let i = 0; i < 50 && !h.signal?.aborted; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(gate.held.get(h.id)?.signal?.aborted, true);
});

test('CancelRequest through the gateway cancels pg_sleep', async () => {
  const c = await client();
  const started = Date.now();
  const slow = c.query('SELECT pg_sleep(30)');
  await new Promise((r) => setTimeout(r, 300));
  const other = await client();
  await new Promise<void>((resolve) => {
    const s = connect(listener.port, '127.0.0.1', () => {
      const b = Buffer.alloc(16);
      b.writeInt32BE(16, 0);
      b.writeInt32BE(80877102, 4);
      b.writeInt32BE((c as unknown as { processID: number }).processID, 8);
      b.writeInt32BE((c as unknown as { secretKey: number }).secretKey, 12);
      s.end(b);
    });
    s.on('close', () => resolve());
  });
  await assert.rejects(slow, /canceling statement due to user request/);
  assert.ok(Date.now() - started < 10_000);
  await other.end();
  await c.end();
});

test('malformed startup packets get an error and the gateway keeps serving', async () => {
  const reply = await new Promise<Buffer>((resolve) => {
    const s = connect(listener.port, '127.0.0.1', () => s.write(Buffer.from([0, 0, 0, 9, 1, 2, 3, 4, 5])));
    const got: Buffer[] = [];
    s.on('data', (d) => got.push(d));
    s.on('close', () => resolve(Buffer.concat(got)));
  });
  assert.equal(String.fromCharCode(reply[0]!), 'E');
  assert.match(reply.toString('latin1'), /08P01|0A000/);
  // The refusal is audited, with the source and what was wrong.
  const v = gate.violations.at(-1);
  assert.equal(v?.protocol, 'postgres');
  assert.match(String(v?.error), /.+/);
  assert.match(String(v?.source), /127\.0\.0\.1/);
  const c = await client();
  assert.equal((await c.query('SELECT 5 AS five')).rows[0].five, 5);
  await c.end();
});

test('SSLRequest gets TLS when a certificate is configured', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-tls-'));
  try {
    const { cert, key } = selfSignedCert(dir);
    const tlsListener = await startPostgresListener({
      host: '127.0.0.1',
      port: 0,
      policy: policyFor(server),
      gate,
      tokens: { authenticate: async () => agent, principal: () => undefined },
      tls: { cert, key },
    });
    try {
      const p = psqlCommand({ ...target(), port: tlsListener.port }, 'SELECT 7', ['-tA']);
      p.write('');
      const exit = await p.waitForExit(20_000);
      assert.equal(exit.code, 0, p.output());
      assert.equal(p.stdout().trim(), '7');
      assert.equal(gate.opened.at(-1)?.attributes?.tls, true);
    } finally {
      await tlsListener.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
