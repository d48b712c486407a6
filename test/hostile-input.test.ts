/**
 * Hostile input on the live PostgreSQL listener: random and mutated bytes, split at random
 * points and trickled in. Every connection ends within the startup timeout with nothing or a
 * well-formed ErrorResponse, the gateway never crashes, and a legitimate session open the whole
 * time keeps working. Slow-loris callers are cut off without affecting others.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type pg from 'pg';
import { BackendType, MessageReader } from '../src/protocols/postgres/codec.ts';
import { mutated, pgStream, splitAt } from './fuzz/targets.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { stopAll } from './support/processes.ts';
import { pgThrough } from './support/psql.ts';
import { exchange } from './support/raw-exchange.ts';

const STARTUP_TIMEOUT_MS = 500;

/** A reply is nothing, or SSL/GSS refusals ('N') followed by backend frames ending in ErrorResponse. */
function assertWellFormed(reply: Buffer): void {
  if (reply.length === 0) return;
  let at = 0;
  while (at < reply.length && reply[at] === 0x4e /* N */ && (reply.length === at + 1 || reply[at + 1] !== 0))
    at++;
  const rest = reply.subarray(at);
  if (rest.length === 0) return;
  const reader = new MessageReader({ side: 'backend', startup: false });
  reader.push(rest);
  const types: number[] = [];
  for (let f = reader.next(); f; f = reader.next()) types.push(f.type);
  assert.equal(reader.buffered, 0, 'the reply ends in the middle of a message');
  assert.ok(types.length > 0);
  assert.equal(
    types[types.length - 1],
    BackendType.ErrorResponse,
    `last message is '${String.fromCharCode(types.at(-1)!)}'`,
  );
}

describe('hostile input on the PostgreSQL listener', { timeout: 240_000 }, () => {
  let upstream: PrivatePostgres;
  let gw: TestGateway;
  let witness: pg.Client;

  before(async () => {
    upstream = await startPostgres();
    gw = await startTestGateway(upstream, {
      extra: `limits:\n  startup_timeout: ${STARTUP_TIMEOUT_MS}ms\n  write_timeout: 1s\n  auth_failures: { max: 100000, window: 1m, block: 1s }\n`,
    });
    witness = await pgThrough(gw.target('bench'));
  });

  after(async () => {
    await witness?.end().catch(() => {});
    await gw?.close();
    await upstream?.stop();
    await stopAll();
  });

  test('random and mutated bytes, split anywhere: a clean end every time, and others keep working', async () => {
    let tried = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          mutated(pgStream),
          fc.uint8Array({ minLength: 1, maxLength: 600 }).map((b) => Buffer.from(b)),
          pgStream,
        ),
        fc.array(fc.nat(), { maxLength: 12 }),
        async (bytes, points) => {
          tried++;
          const r = await exchange(gw.pg.port, splitAt(bytes, points), STARTUP_TIMEOUT_MS + 4000);
          assert.ok(r.closed, 'the gateway left a hostile connection open past the startup timeout');
          assertWellFormed(r.reply);
          const ok = await witness.query('SELECT 1 AS one');
          assert.equal(ok.rows[0].one, 1);
        },
      ),
      { numRuns: 40 },
    );
    assert.equal(tried >= 40, true);
  });

  test('a caller sending one byte at a time is cut off at the startup timeout; others are not', async () => {
    const slow = connect({ host: '127.0.0.1', port: gw.pg.port });
    const got: Buffer[] = [];
    slow.on('data', (d) => got.push(d));
    slow.on('error', () => {});
    const closed = new Promise<number>((ok) => {
      const t0 = Date.now();
      slow.on('close', () => ok(Date.now() - t0));
    });
    const startup = Buffer.from([0, 0, 0, 40, 0, 3, 0, 0]);
    let i = 0;
    const drip = setInterval(() => {
      if (i < startup.length && !slow.destroyed) slow.write(startup.subarray(i, ++i));
    }, 150);
    const ms = await closed;
    clearInterval(drip);
    assert.ok(ms < STARTUP_TIMEOUT_MS + 3000, `cut off after ${ms} ms`);
    assert.match(Buffer.concat(got).toString('latin1'), /did not complete the startup/);
    assert.equal((await witness.query('SELECT 2 AS two')).rows[0].two, 2);
  });

  test('a caller that never reads its results is cut off at the write timeout, releasing the target', async () => {
    const stuck = await pgThrough(gw.target('bench'));
    stuck.on('error', () => {});
    const marker = `stuck_${Date.now()}`;
    // Pause the driver's socket: the results pile up in the kernel buffers, then at the gateway.
    (stuck as unknown as { connection: { stream: { pause(): void } } }).connection.stream.pause();
    void stuck.query(`SELECT repeat('x', 200) AS ${marker} FROM generate_series(1, 2000000)`).catch(() => {});
    const running = async () =>
      Number(
        (
          await upstream.psql(
            `SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%${marker}%' AND pid <> pg_backend_pid()`,
          )
        ).match(/\d+/)![0],
      );
    const deadline = Date.now() + 30_000;
    let seen = false;
    while (Date.now() < deadline) {
      const n = await running();
      if (n > 0) seen = true;
      if (seen && n === 0) break;
      await new Promise((ok) => setTimeout(ok, 200));
    }
    assert.ok(seen, 'the query reached the target');
    assert.equal(await running(), 0, 'the target still runs the query of a caller that stopped reading');
    assert.equal((await witness.query('SELECT 3 AS three')).rows[0].three, 3);
  });
});
