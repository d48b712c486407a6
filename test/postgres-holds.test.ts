/**
 * Holds that survive real clients: while a statement waits for a reviewer, psql is reminded at
 * the configured interval; inside a transaction block the transaction status after approval,
 * denial and expiry is what PostgreSQL itself would report; a caller that goes away cancels its
 * request, and the cancellation is audited. ReadyForQuery's status byte is read on the wire too,
 * since psql only shows it in an interactive prompt.
 */
import assert from 'node:assert/strict';
import { type AddressInfo, connect, createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { serialize } from 'pg-protocol';
import type { requestJson } from '../src/server/api.ts';
import { eventually, pendingRequestFrom } from './support/eventually.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { stopAll } from './support/processes.ts';
import { psqlSession } from './support/psql.ts';
import { WireClient } from './support/wire.ts';

type RequestView = ReturnType<typeof requestJson>;

const WAIT = 30_000;
const IDLE_CUTOFF_MS = 2_000;
const READY_FOR_QUERY = 'Z'.charCodeAt(0);
const COMMAND_COMPLETE = 'C'.charCodeAt(0);
const ERROR_RESPONSE = 'E'.charCodeAt(0);

let upstream: PrivatePostgres;
let gw: TestGateway;

before(async () => {
  upstream = await startPostgres();
  // The default interval (30 s) is longer than any wait below, so the reminders seen come from here.
  gw = await startTestGateway(upstream, { extra: 'limits:\n  hold_notice_interval: 500ms\n' });
});

after(async () => {
  await gw?.close();
  await upstream?.stop();
  await stopAll();
});

function requestIdFrom(text: string): number {
  const m = /request (\d+)/i.exec(text);
  assert.ok(m, `no request id in: ${text}`);
  return Number(m[1]);
}

async function showRequest(id: number): Promise<RequestView> {
  const res = await gw.api<{ request: RequestView }>('GET', `/api/v1/requests/${id}`, undefined, 'alice');
  assert.equal(res.status, 200, res.text);
  return res.body.request;
}

async function decide(id: number, how: 'approve' | 'deny', reason?: string): Promise<void> {
  const res = await gw.api('POST', `/api/v1/requests/${id}/${how}`, reason ? { reason } : {}, 'alice');
  assert.equal(res.status, 200, res.text);
}

async function orderExists(id: number): Promise<boolean> {
  const c = await upstream.client({ db: 'app' });
  try {
    return (await c.query('SELECT 1 FROM orders WHERE id = $1', [id])).rowCount === 1;
  } finally {
    await c.end();
  }
}

/** The frames answering one simple Query, up to ReadyForQuery, and its status byte. */
async function answer(c: WireClient): Promise<{ tags: string[]; errors: number; status: string }> {
  const frames = await c.until('Z', WAIT * 2);
  const rfq = frames.at(-1)!;
  assert.equal(rfq.type, READY_FOR_QUERY);
  return {
    tags: frames
      .filter((f) => f.type === COMMAND_COMPLETE)
      .map((f) => f.raw.toString('utf8', 5, f.raw.length - 1)),
    errors: frames.filter((f) => f.type === ERROR_RESPONSE).length,
    status: String.fromCharCode(rfq.raw[5]!),
  };
}

describe('held statements and real clients', { timeout: 5 * 60_000 }, () => {
  test('psql is reminded while it waits, at limits.hold_notice_interval', async () => {
    const p = psqlSession(gw.target('agent'));
    p.write('DELETE FROM orders WHERE id = 41;\n');
    const id = requestIdFrom(
      (await p.waitForOutput(/NOTICE:.*waiting for approval: request \d+/, WAIT, 'stderr'))[0],
    );
    // Three reminders come within the bound at 500 ms; at the 30 s default they could not.
    const reminder = new RegExp(`NOTICE:\\s+still waiting for approval: request ${id} `, 'g');
    await eventually(
      'three reminders',
      async () => ((p.stderr().match(reminder)?.length ?? 0) >= 3 ? true : undefined),
      20_000,
    );
    await decide(id, 'deny', 'not this one');
    await p.waitForOutput(/ERROR:.*not this one/, WAIT, 'stderr');
    p.endInput();
    assert.equal((await p.waitForExit(WAIT)).code, 0, p.output());
    assert.equal(await orderExists(41), true);
  });

  test('the reminders keep an idle-timeout between psql and Airlock from ending the wait', async () => {
    // A relay that drops a connection after 2 s with no bytes either way, as a load balancer does.
    const relay = createServer((caller) => {
      const onward = connect({ host: gw.pg.host, port: gw.pg.port });
      const drop = () => {
        caller.destroy();
        onward.destroy();
      };
      for (const s of [caller, onward]) {
        s.setTimeout(IDLE_CUTOFF_MS, drop);
        s.on('error', drop);
        s.on('close', drop);
      }
      caller.pipe(onward).pipe(caller);
    });
    await new Promise<void>((ok) => relay.listen(0, '127.0.0.1', ok));
    try {
      const port = (relay.address() as AddressInfo).port;
      const p = psqlSession({ ...gw.target('agent'), host: '127.0.0.1', port });
      p.write('DELETE FROM orders WHERE id = 47;\n');
      const id = requestIdFrom((await p.waitForOutput(/NOTICE:.*request \d+/, WAIT, 'stderr'))[0]);
      // Six reminders at 500 ms span more than the relay's cutoff.
      const reminder = new RegExp(`still waiting for approval: request ${id} `, 'g');
      await eventually(
        'six reminders through the relay',
        async () => ((p.stderr().match(reminder)?.length ?? 0) >= 6 ? true : undefined),
        20_000,
      );
      await decide(id, 'approve');
      await p.waitForOutput(/DELETE 1/, WAIT, 'stdout');
      p.write("SELECT 'same connection' AS marker;\n");
      await p.waitForOutput(/same connection/, WAIT, 'stdout');
      p.endInput();
      assert.equal((await p.waitForExit(WAIT)).code, 0, p.output());
      assert.equal(await orderExists(47), false);
    } finally {
      await new Promise((ok) => relay.close(ok));
    }
  });

  test('psql: approved inside a transaction, the statement runs in it and the block goes on', async () => {
    const p = psqlSession(gw.target('agent'), ['-v', 'ON_ERROR_STOP=1']);
    p.write('BEGIN;\nDELETE FROM orders WHERE id = 42;\n');
    const id = requestIdFrom((await p.waitForOutput(/NOTICE:.*request \d+/, WAIT, 'stderr'))[0]);
    await decide(id, 'approve');
    await p.waitForOutput(/DELETE 1/, WAIT, 'stdout');
    p.write("SELECT 'seen ' || count(*) AS inside FROM orders WHERE id = 42;\n");
    await p.waitForOutput(/seen 0/, WAIT, 'stdout');
    // Rolled back: the approved statement was part of the caller's transaction, not run alone.
    p.write("ROLLBACK;\nSELECT 'after ' || count(*) AS outside FROM orders WHERE id = 42;\n");
    await p.waitForOutput(/after 1/, WAIT, 'stdout');
    p.endInput();
    assert.equal((await p.waitForExit(WAIT)).code, 0, p.output());
    assert.equal(await orderExists(42), true);
  });

  test('psql: expired inside a transaction, the transaction is aborted until ROLLBACK', async () => {
    const p = psqlSession(gw.target('agent'));
    p.write("BEGIN;\nINSERT INTO audit_notes (note) VALUES ('expires in a block');\n");
    const id = requestIdFrom((await p.waitForOutput(/NOTICE:.*request \d+/, WAIT, 'stderr'))[0]);
    // The rule gives reviewers 2 s.
    await p.waitForOutput(/ERROR:.*expired/, WAIT, 'stderr');
    assert.equal((await showRequest(id)).status, 'expired');
    p.write('SELECT 1;\n');
    await p.waitForOutput(/current transaction is aborted/, WAIT, 'stderr');
    p.write("ROLLBACK;\nSELECT 'recovered' AS marker;\n");
    await p.waitForOutput(/recovered/, WAIT, 'stdout');
    p.endInput();
    await p.waitForExit(WAIT);
    const c = await upstream.client();
    try {
      const r = await c.query("SELECT count(*)::int AS n FROM audit_notes WHERE note = 'expires in a block'");
      assert.equal(r.rows[0].n, 0);
    } finally {
      await c.end();
    }
  });

  test('ReadyForQuery after a held statement in a block: T when approved, E when denied or expired', async () => {
    const c = await WireClient.connect(gw.target('agent'));
    try {
      const run = async (sql: string, settle?: (id: number) => Promise<void>) => {
        c.write(serialize.query(sql));
        if (settle) {
          const held = await pendingRequestFrom<RequestView>(gw.api, 'agent', sql);
          await settle(held.id);
        }
        return answer(c);
      };
      assert.equal((await run('BEGIN')).status, 'T');
      const approved = await run('DELETE FROM orders WHERE id = 43', (id) => decide(id, 'approve'));
      assert.deepEqual(approved, { tags: ['DELETE 1'], errors: 0, status: 'T' });
      assert.equal((await run('ROLLBACK')).status, 'I');

      assert.equal((await run('BEGIN')).status, 'T');
      const denied = await run('DELETE FROM orders WHERE id = 44', (id) => decide(id, 'deny', 'no'));
      assert.deepEqual(denied, { tags: [], errors: 1, status: 'E' });
      assert.equal((await run('ROLLBACK')).status, 'I');

      assert.equal((await run('BEGIN')).status, 'T');
      const expired = await run(
        "INSERT INTO audit_notes (note) VALUES ('expires on the wire')",
        async () => {},
      );
      assert.deepEqual(expired, { tags: [], errors: 1, status: 'E' });
      assert.equal((await run('ROLLBACK')).status, 'I');

      // Outside a block a refusal leaves the session idle, as a failed statement would.
      const alone = await run('DELETE FROM orders WHERE id = 45', (id) => decide(id, 'deny', 'no'));
      assert.deepEqual(alone, { tags: [], errors: 1, status: 'I' });
    } finally {
      c.end();
    }
    assert.equal(await orderExists(43), true);
    assert.equal(await orderExists(44), true);
    assert.equal(await orderExists(45), true);
  });

  test('psql killed while its statement is held: the request is cancelled and audited', async () => {
    const p = psqlSession(gw.target('agent'));
    p.write('DELETE FROM orders WHERE id = 46;\n');
    const id = requestIdFrom((await p.waitForOutput(/NOTICE:.*request \d+/, WAIT, 'stderr'))[0]);
    await p.stop('SIGKILL');
    const cancelled = await eventually('the request to be cancelled', async () => {
      const r = await showRequest(id);
      return r.status === 'pending' ? undefined : r;
    });
    assert.equal(cancelled.status, 'cancelled');
    const audited = await eventually('the cancellation in the audit log', async () => {
      const res = await gw.api<{
        records: { type: string; data: { requestId?: number; reason?: string } }[];
      }>('GET', '/api/v1/audit?limit=1000', undefined, 'alice');
      return res.body.records.find((r) => r.type === 'request.cancelled' && r.data.requestId === id);
    });
    assert.match(audited.data.reason ?? '', /disconnect|left|closed/i);
    // Nobody can approve it into running later.
    const late = await gw.api('POST', `/api/v1/requests/${id}/approve`, {}, 'alice');
    assert.notEqual(late.status, 200);
    assert.equal(await orderExists(46), true);
  });
});
