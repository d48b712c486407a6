/**
 * Issue 2 acceptance: a private PostgreSQL 15 behind Airlock, driven by the real `psql` binary
 * and the `pg` driver. Every test bounds its own waits; none asserts on speed.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import type { requestJson } from '../src/server/api.ts';
import { eventually, pendingRequestFrom } from './support/eventually.ts';
import { CONNECTION, startTestGateway, type TestGateway } from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { startProcess, stopAll } from './support/processes.ts';
import { pgThrough, psqlCommand, psqlSession } from './support/psql.ts';

const ROOT = join(import.meta.dirname, '..');
const TEST_TIMEOUT = 120_000;

let upstream: PrivatePostgres;
let gw: TestGateway;

before(async () => {
  upstream = await startPostgres();
  gw = await startTestGateway(upstream);
});

after(async () => {
  await gw?.close();
  await upstream?.stop();
  await stopAll();
});

type RequestView = ReturnType<typeof requestJson>;

async function showRequest(id: number): Promise<RequestView> {
  const res = await gw.api<{ request: RequestView }>('GET', `/api/v1/requests/${id}`, undefined, 'alice');
  assert.equal(res.status, 200, res.text);
  return res.body.request;
}

function errorCodeOf(body: unknown): string | undefined {
  return (body as { error?: { code?: string } } | undefined)?.error?.code;
}

async function rowExists(table: 'orders' | 'customers', id: number): Promise<boolean> {
  const c = await upstream.client({ db: 'app' });
  try {
    const r = await c.query(`SELECT 1 FROM ${table} WHERE id = $1`, [id]);
    return r.rowCount === 1;
  } finally {
    await c.end();
  }
}

/** Polls until `check` returns a value other than undefined. */
/** The newest pending request from `principal` whose summary contains `text`. */
function pendingRequest(principal: string, text: string): Promise<RequestView> {
  return pendingRequestFrom(gw.api, principal, text);
}

function requestIdFrom(text: string): number {
  const m = /request (\d+)/i.exec(text);
  assert.ok(m, `no request id in: ${text}`);
  return Number(m[1]);
}

describe('PostgreSQL through Airlock', { timeout: 10 * 60_000 }, () => {
  test('a SELECT passes', { timeout: TEST_TIMEOUT }, async () => {
    const p = psqlCommand(gw.target('agent'), 'SELECT count(*) AS n FROM orders', ['-A', '-t']);
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 0, p.output());
    assert.equal(p.stdout().trim(), '50');

    const client = await pgThrough(gw.target('agent'));
    try {
      const r = await client.query('SELECT customer, total FROM orders WHERE id = $1', [10]);
      assert.equal(r.rowCount, 1);
      assert.equal(r.rows[0].total, '72.50');
    } finally {
      await client.end();
    }
  });

  test('a DELETE is held until a reviewer approves it, then runs', { timeout: TEST_TIMEOUT }, async () => {
    const p = psqlCommand(gw.target('agent'), 'DELETE FROM orders WHERE id = 1');
    // The caller is told, on the open connection, which request to approve and where.
    const notice = await p.waitForOutput(/NOTICE:.*request \d+[^\n]*/i, 30_000, 'stderr');
    const id = requestIdFrom(notice[0]);
    assert.match(notice[0], /https?:\/\//, 'the notice says where to approve');

    const shown = await showRequest(id);
    assert.equal(shown.status, 'pending');
    assert.match(shown.summary, /DELETE FROM orders WHERE id = 1/);

    // Held means nothing was forwarded: the row is still there and psql is still waiting.
    assert.equal(await rowExists('orders', 1), true);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(p.hasExited(), false, 'psql must still be waiting while the request is pending');
    assert.equal(await rowExists('orders', 1), true);

    const approved = await gw.api('POST', `/api/v1/requests/${id}/approve`, {}, 'alice');
    assert.equal(approved.status, 200, approved.text);

    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 0, p.output());
    assert.match(p.stdout(), /DELETE 1/);
    assert.equal(await rowExists('orders', 1), false);

    const finished = await eventually('the request to be marked executed', async () => {
      const r = await showRequest(id);
      return r.status === 'executed' ? r : undefined;
    });
    assert.equal(finished.approvals.length, 1);
  });

  test('a denied statement returns the reason and the session keeps working', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const p = psqlSession(gw.target('agent'));
    p.write("SELECT 'before' AS marker;\n");
    await p.waitForOutput(/before/, 30_000, 'stdout');
    p.write('DELETE FROM orders WHERE id = 2;\n');
    const notice = await p.waitForOutput(/NOTICE:.*request \d+/i, 30_000, 'stderr');
    const id = requestIdFrom(notice[0]);

    const reason = 'not during the quarter-end freeze';
    const denied = await gw.api('POST', `/api/v1/requests/${id}/deny`, { reason }, 'alice');
    assert.equal(denied.status, 200, denied.text);

    await p.waitForOutput(new RegExp(`ERROR:.*${reason}`), 30_000, 'stderr');
    assert.equal(await rowExists('orders', 2), true);

    // Same psql, same connection: the next statement works.
    p.write("SELECT 'still here' AS marker;\n");
    await p.waitForOutput(/still here/, 30_000, 'stdout');
    // And inside a transaction the status is right: the failed statement aborted it.
    const mark = p.stderr().length;
    p.write('BEGIN;\nDELETE FROM orders WHERE id = 2;\n');
    const second = requestIdFrom((await p.waitForOutput(/NOTICE:.*request \d+/i, 30_000, 'stderr', mark))[0]);
    assert.notEqual(second, id);
    assert.equal(
      (await gw.api('POST', `/api/v1/requests/${second}/deny`, { reason: 'again no' }, 'alice')).status,
      200,
    );
    await p.waitForOutput(/ERROR:.*again no/, 30_000, 'stderr');
    p.write('SELECT 1;\n');
    await p.waitForOutput(/current transaction is aborted/, 30_000, 'stderr');
    p.write("ROLLBACK;\nSELECT 'recovered' AS marker;\n");
    await p.waitForOutput(/recovered/, 30_000, 'stdout');
    p.endInput();
    await p.waitForExit(30_000);
    assert.equal(await rowExists('orders', 2), true);
  });

  test('the extended protocol (driver with parameters) is held and approved', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const client = await pgThrough(gw.target('agent'));
    const notices: string[] = [];
    client.on('notice', (n) => notices.push(n.message ?? ''));
    try {
      let settled = false;
      const query = client.query('DELETE FROM orders WHERE id = $1', [3]).finally(() => {
        settled = true;
      });
      const req = await pendingRequest('agent', 'DELETE FROM orders WHERE id = $1');
      assert.equal(await rowExists('orders', 3), true);
      assert.equal(settled, false);
      await eventually('the hold notice', async () =>
        notices.some((n) => /request \d+/.test(n)) ? true : undefined,
      );

      const approved = await gw.api('POST', `/api/v1/requests/${req.id}/approve`, {}, 'bob');
      assert.equal(approved.status, 200, approved.text);
      const result = await query;
      assert.equal(result.rowCount, 1);
      assert.equal(await rowExists('orders', 3), false);

      // The session is still good for ordinary extended-protocol reads.
      const r = await client.query('SELECT count(*)::int AS n FROM orders WHERE id = $1', [4]);
      assert.equal(r.rows[0].n, 1);
    } finally {
      await client.end();
    }
  });

  test('the requester cannot approve their own request', { timeout: TEST_TIMEOUT }, async () => {
    // carol is a DBA (a reviewer) and here also the one asking.
    const p = psqlCommand(gw.target('carol'), 'DELETE FROM orders WHERE id = 4');
    const id = requestIdFrom((await p.waitForOutput(/NOTICE:.*request \d+/i, 30_000, 'stderr'))[0]);

    const self = await gw.api('POST', `/api/v1/requests/${id}/approve`, {}, 'carol');
    assert.equal(self.status, 403, self.text);
    assert.equal(errorCodeOf(self.body), 'AIRLOCK_E_SELF_APPROVAL');

    // Someone outside the reviewer groups cannot approve either.
    const outsider = await gw.api('POST', `/api/v1/requests/${id}/approve`, {}, 'eve');
    assert.equal(outsider.status, 403, outsider.text);
    assert.match(String(errorCodeOf(outsider.body)), /^AIRLOCK_E_(FORBIDDEN|NOT_A_REVIEWER)$/);

    // Neither can a missing or wrong token.
    assert.equal((await gw.api('POST', `/api/v1/requests/${id}/approve`, {})).status, 401);
    assert.equal((await gw.api('POST', `/api/v1/requests/${id}/approve`, {}, 'alk_not_a_token')).status, 401);

    assert.equal((await showRequest(id)).status, 'pending');
    assert.equal(await rowExists('orders', 4), true);
    assert.equal(p.hasExited(), false);

    const denied = await gw.api(
      'POST',
      `/api/v1/requests/${id}/deny`,
      { reason: 'ask someone else' },
      'alice',
    );
    assert.equal(denied.status, 200, denied.text);
    const exit = await p.waitForExit(30_000);
    assert.notEqual(exit.code, 0);
    assert.match(p.stderr(), /ask someone else/);
    assert.equal(await rowExists('orders', 4), true);
  });

  test('approving one statement does not let a different one through', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    // customers writes are `hold: retry`: refused at once with the request id, then granted.
    const first = psqlCommand(gw.target('agent'), 'DELETE FROM customers WHERE id = 7');
    const exit1 = await first.waitForExit(30_000);
    assert.notEqual(exit1.code, 0, 'retry mode answers at once with an error');
    assert.match(first.stderr(), /approval required/i);
    const id = requestIdFrom(first.stderr());
    assert.equal(await rowExists('customers', 7), true);

    const approved = await gw.api('POST', `/api/v1/requests/${id}/approve`, {}, 'alice');
    assert.equal(approved.status, 200, approved.text);

    const again = psqlCommand(gw.target('agent'), 'DELETE FROM customers WHERE id = 7');
    assert.equal((await again.waitForExit(30_000)).code, 0, again.output());
    assert.match(again.stdout(), /DELETE 1/);
    assert.equal(await rowExists('customers', 7), false);

    // Within the window the same statement passes again.
    const third = psqlCommand(gw.target('agent'), 'DELETE FROM customers WHERE id = 7');
    assert.equal((await third.waitForExit(30_000)).code, 0, third.output());
    assert.match(third.stdout(), /DELETE 0/);

    // A different statement is a different request.
    const other = psqlCommand(gw.target('agent'), 'DELETE FROM customers WHERE id = 8');
    assert.notEqual((await other.waitForExit(30_000)).code, 0);
    assert.match(other.stderr(), /approval required/i);
    assert.notEqual(requestIdFrom(other.stderr()), id);
    assert.equal(await rowExists('customers', 8), true);

    // And the grant is the agent's alone: the same text from someone else needs its own approval.
    const bob = psqlCommand(gw.target('bob'), 'DELETE FROM customers WHERE id = 7');
    assert.notEqual((await bob.waitForExit(30_000)).code, 0);
    assert.match(bob.stderr(), /approval required/i);
  });

  test('a request nobody decides expires, and the caller is told so', { timeout: TEST_TIMEOUT }, async () => {
    const p = psqlSession(gw.target('agent'));
    p.write("INSERT INTO audit_notes (note) VALUES ('nobody will look');\n");
    const id = requestIdFrom((await p.waitForOutput(/NOTICE:.*request \d+/i, 30_000, 'stderr'))[0]);
    // The rule gives reviewers 2 s; the caller gets an error naming the expiry, not a hang.
    await p.waitForOutput(/ERROR:.*expired/i, 60_000, 'stderr');
    assert.equal((await showRequest(id)).status, 'expired');
    p.write("SELECT 'after expiry' AS marker;\n");
    await p.waitForOutput(/after expiry/, 30_000, 'stdout');
    p.endInput();
    await p.waitForExit(30_000);
    const c = await upstream.client();
    try {
      const r = await c.query("SELECT count(*)::int AS n FROM audit_notes WHERE note = 'nobody will look'");
      assert.equal(r.rows[0].n, 0);
    } finally {
      await c.end();
    }
  });

  test('DROP TABLE is denied by a deny rule with its reason', { timeout: TEST_TIMEOUT }, async () => {
    const p = psqlCommand(gw.target('agent'), 'DROP TABLE orders');
    const exit = await p.waitForExit(30_000);
    assert.notEqual(exit.code, 0);
    assert.match(p.stderr(), /ERROR:.*schema drops go through the migration pipeline/);
    const c = await upstream.client();
    try {
      assert.equal(
        (await c.query("SELECT to_regclass('public.orders') IS NOT NULL AS present")).rows[0].present,
        true,
      );
    } finally {
      await c.end();
    }
    // Hidden in a multi-statement message, it still decides the whole message.
    const multi = psqlCommand(gw.target('agent'), 'SELECT 1; DROP TABLE orders; SELECT 2');
    assert.notEqual((await multi.waitForExit(30_000)).code, 0);
    assert.match(multi.stderr(), /schema drops go through the migration pipeline/);
  });

  test('a bad token is refused with a clear message', { timeout: TEST_TIMEOUT }, async () => {
    const bad = psqlCommand({ ...gw.target('agent'), token: 'alk_this_is_not_a_token' }, 'SELECT 1', ['-w']);
    const exit = await bad.waitForExit(30_000);
    assert.notEqual(exit.code, 0);
    assert.match(bad.stderr(), /FATAL:.*token/i);
    assert.doesNotMatch(bad.stderr(), /alk_this_is_not_a_token/, 'the token is never echoed');

    const unknown = psqlCommand(gw.target('agent', 'no_such_connection'), 'SELECT 1', ['-w']);
    assert.notEqual((await unknown.waitForExit(30_000)).code, 0);
    assert.match(unknown.stderr(), /FATAL:.*no_such_connection/);

    await assert.rejects(
      pgThrough({ ...gw.target('agent'), token: 'wrong' }),
      (err: Error & { code?: string }) => /token/i.test(err.message),
    );
  });

  test('malformed startup packets and random bytes get an error or a close; others are still served', {
    timeout: 5 * 60_000,
  }, async () => {
    // A session opened before the barrage must survive it.
    const survivor = await pgThrough(gw.target('agent'));
    try {
      const int32 = (n: number) => {
        const b = Buffer.alloc(4);
        b.writeInt32BE(n | 0);
        return b;
      };
      const cstr = (s: string) => Buffer.from(`${s}\0`, 'utf8');
      const startup = (params: Buffer, version = 196608, lengthDelta = 0) => {
        const body = Buffer.concat([int32(version), params]);
        return Buffer.concat([int32(body.length + 4 + lengthDelta), body]);
      };
      const crafted = fc.oneof(
        fc.uint8Array({ minLength: 1, maxLength: 512 }).map((a) => Buffer.from(a)),
        // Plausible startups with a broken detail.
        fc.constantFrom(
          int32(0),
          int32(-1),
          int32(3),
          Buffer.concat([int32(0x7fffffff), int32(196608)]),
          startup(Buffer.concat([cstr('user'), cstr('agent')]), 196608, -3),
          startup(Buffer.concat([cstr('user'), cstr('agent'), cstr('database')]), 196608),
          startup(Buffer.from('user\0agent'), 196608),
          startup(
            Buffer.concat([
              cstr('user'),
              cstr('agent'),
              cstr('database'),
              cstr(CONNECTION),
              Buffer.from([0]),
            ]),
            0x00020000,
          ),
          startup(Buffer.concat([cstr('database'), cstr(CONNECTION), Buffer.from([0])]), 196608),
          Buffer.concat([int32(8), int32(80877103), int32(8), int32(80877103)]),
          Buffer.concat([int32(16), int32(80877102), int32(1), int32(2)]),
          Buffer.concat([
            startup(
              Buffer.concat([
                cstr('user'),
                cstr('agent'),
                cstr('database'),
                cstr(CONNECTION),
                Buffer.from([0]),
              ]),
            ),
            Buffer.from('p'),
            int32(-20),
          ]),
        ),
        fc
          .tuple(fc.uint8Array({ minLength: 0, maxLength: 64 }), fc.integer({ min: -10, max: 200_000 }))
          .map(([a, delta]) => startup(Buffer.from(a), 196608, delta)),
      );
      const splits = fc.array(fc.nat(), { maxLength: 6 });

      await fc.assert(
        fc.asyncProperty(crafted, splits, async (bytes, cuts) => {
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const chunks: Buffer[] = [];
          let from = 0;
          for (const p of [...points, bytes.length]) {
            chunks.push(bytes.subarray(from, p));
            from = p;
          }
          const outcome = await barrage(gw.pg.port, chunks);
          assert.ok(
            outcome.closed,
            `the gateway neither answered nor closed (got ${outcome.received} bytes)`,
          );
          if (outcome.first !== undefined)
            assert.ok(
              ['E', 'N', 'R', 'S'].includes(outcome.first),
              `unexpected first reply byte ${JSON.stringify(outcome.first)}`,
            );
        }),
        { numRuns: 200, interruptAfterTimeLimit: 4 * 60_000 },
      );

      const r = await survivor.query('SELECT count(*)::int AS n FROM orders WHERE id = $1', [5]);
      assert.equal(r.rows[0].n, 1);
    } finally {
      await survivor.end();
    }
    const p = psqlCommand(gw.target('agent'), "SELECT 'served after the barrage' AS s", ['-A', '-t']);
    assert.equal((await p.waitForExit(60_000)).code, 0, p.output());
    assert.match(p.stdout(), /served after the barrage/);
  });

  test('a tampered audit row is found by audit verify, naming the record', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    // The gateway runs in this process, so the CLI must run without blocking the event loop.
    const cli = async (args: string[]) => {
      const p = startProcess(process.execPath, [join(ROOT, 'bin/airlock.js'), ...args], {
        cwd: ROOT,
        env: { ...process.env, AIRLOCK_URL: gw.apiUrl, AIRLOCK_TOKEN: gw.tokens.alice },
      });
      p.endInput();
      const exit = await p.waitForExit(60_000);
      return { status: exit.code, stdout: p.stdout(), stderr: p.stderr() };
    };

    const okApi = await gw.api<{ ok: boolean; seq?: number }>(
      'GET',
      '/api/v1/audit/verify',
      undefined,
      'alice',
    );
    assert.equal(okApi.status, 200, okApi.text);
    assert.equal(okApi.body.ok, true, okApi.text);
    const ok = await cli(['audit', 'verify']);
    assert.equal(ok.status, 0, `${ok.stdout}\n${ok.stderr}`);
    assert.match(ok.stdout, /\bOK\b/i);

    const db = new Database(gw.storeFile);
    let seq: number;
    try {
      const count = (db.prepare('SELECT count(*) AS n FROM audit').get() as { n: number }).n;
      assert.ok(count >= 5, `expected several audit records, found ${count}`);
      seq = Math.floor(count / 2);
      const row = db.prepare('SELECT data FROM audit WHERE seq = ?').get(seq) as { data: string };
      const data = JSON.parse(row.data);
      data.tampered = true;
      db.prepare('UPDATE audit SET data = ? WHERE seq = ?').run(JSON.stringify(data), seq);
    } finally {
      db.close();
    }

    const badApi = await gw.api<{ ok: boolean; seq?: number }>(
      'GET',
      '/api/v1/audit/verify',
      undefined,
      'alice',
    );
    assert.equal(badApi.body.ok, false, badApi.text);
    assert.equal(badApi.body.seq, seq, badApi.text);

    const named = new RegExp(`record ${seq}\\b`, 'i');
    const bad = await cli(['audit', 'verify']);
    assert.equal(bad.status, 2, `${bad.stdout}\n${bad.stderr}`);
    assert.match(bad.stdout, /BROKEN/);
    assert.match(bad.stdout, named);

    // The same check straight against the store the policy file names, without the API.
    const direct = await cli(['audit', 'verify', '--config', gw.policyFile]);
    assert.equal(direct.status, 2, `${direct.stdout}\n${direct.stderr}`);
    assert.match(direct.stdout, named);
  });
});

describe('fail closed', { timeout: 5 * 60_000 }, () => {
  let gw2: TestGateway;
  before(async () => {
    gw2 = await startTestGateway(upstream);
  });
  after(async () => {
    await gw2?.close().catch(() => {});
  });

  test('when the audit log cannot be written, a write is refused with a clear error', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const c = await upstream.client();
    const countBefore = (await c.query('SELECT count(*)::int AS n FROM audit_notes')).rows[0].n;
    // The bench principal may write freely: only the audit stands between it and the table.
    const ok = psqlCommand(gw2.target('bench'), "INSERT INTO audit_notes (note) VALUES ('audited')");
    assert.equal((await ok.waitForExit(30_000)).code, 0, ok.output());

    await gw2.gateway.store.close();

    const refused = psqlCommand(gw2.target('bench'), "INSERT INTO audit_notes (note) VALUES ('unaudited')");
    const exit = await refused.waitForExit(60_000);
    assert.notEqual(exit.code, 0, refused.output());
    assert.match(refused.stderr(), /audit/i);
    try {
      const afterCount = (await c.query('SELECT count(*)::int AS n FROM audit_notes')).rows[0].n;
      assert.equal(afterCount, countBefore + 1, 'only the audited insert reached the database');
    } finally {
      await c.end();
    }
  });
});

/**
 * Opens a raw socket, writes the chunks with short pauses, half-closes, and reports whether the
 * gateway closed the connection (within a bound) and what it first answered.
 */
function barrage(
  port: number,
  chunks: readonly Buffer[],
): Promise<{ closed: boolean; received: number; first?: string }> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ host: '127.0.0.1', port });
    let received = 0;
    let first: string | undefined;
    let settled = false;
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(first === undefined ? { closed, received } : { closed, received, first });
    };
    const timer = setTimeout(() => finish(false), 15_000);
    socket.on('data', (d) => {
      if (first === undefined) first = String.fromCharCode(d[0]!);
      received += d.length;
    });
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('connect', async () => {
      for (const chunk of chunks) {
        if (socket.destroyed) return;
        socket.write(chunk);
        await new Promise((r) => setTimeout(r, 2));
      }
      // EOF from the client: a gateway waiting for the rest of a message must give up and close.
      socket.end();
    });
  });
}
