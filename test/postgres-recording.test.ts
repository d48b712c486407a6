/**
 * Every PostgreSQL session is recorded as an event stream: statements with the decision and the
 * rule, parameters, results with row counts and durations, errors and notices — masked as the
 * caller saw them — sealed into the audit chain when the session ends.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { stopAll } from './support/processes.ts';
import { pgThrough } from './support/psql.ts';

let upstream: PrivatePostgres;
let gw: TestGateway;

before(async () => {
  upstream = await startPostgres();
  gw = await startTestGateway(upstream, {
    extra: `
masking:
  - connections: [app]
    columns: ["*.email"]
    detectors: [email]
    strategy: redact
`,
  });
});

after(async () => {
  await gw?.close();
  await upstream?.stop();
  await stopAll();
});

interface RecordingJson {
  id: string;
  session: string;
  status: string;
  protocol: string | null;
  principal: string | null;
  sha256: string | null;
  auditSeq: number | null;
}

test('a session is recorded as statements, decisions, results and errors, masked', {
  timeout: 120_000,
}, async () => {
  const c = await pgThrough(gw.target('agent'));
  await c.query('SELECT email, id FROM customers WHERE id <= $1 ORDER BY id', [3]);
  await assert.rejects(c.query("SELECT 'someone@example.org'::int"));
  await assert.rejects(c.query('DROP TABLE orders'), /schema drops go through the migration pipeline/);
  await c.query('SELECT count(*) FROM orders');
  await c.end();

  const recording = await (async () => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const res = await gw.api<{ recordings: RecordingJson[] }>(
        'GET',
        '/api/v1/recordings?connection=app',
        undefined,
        'alice',
      );
      assert.equal(res.status, 200, res.text);
      const r = res.body.recordings.find((x) => x.principal === 'agent' && x.protocol === 'postgres');
      if (r?.status === 'closed') return r;
      assert.ok(Date.now() < deadline, 'the recording was never sealed');
      await new Promise((res) => setTimeout(res, 200));
    }
  })();
  assert.match(recording.sha256 ?? '', /^[0-9a-f]{64}$/);
  assert.ok(recording.auditSeq, 'the recording is linked from the audit chain');

  const content = await fetch(`${gw.apiUrl}/api/v1/recordings/${recording.id}/content`, {
    headers: { authorization: `Bearer ${gw.tokens.alice}` },
  });
  assert.equal(content.status, 200);
  const lines = (await content.text())
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const [header, ...events] = lines;
  assert.equal(header!.format, 'events-jsonl');
  assert.equal(header!.protocol, 'postgres');
  assert.equal(header!.principal, 'agent');
  const types = events.map((e) => e.type);
  assert.deepEqual(types, [
    'statement',
    'result',
    'statement',
    'error',
    'statement',
    'statement',
    'result',
    'end',
  ]);
  const [select, selected, bad, failed, drop, count, counted] = events;
  assert.equal(select!.decision, 'allow');
  assert.equal(select!.rule, 'reads are free');
  assert.equal(select!.kind, 'read');
  assert.deepEqual(select!.parameters, ['3']);
  assert.equal(selected!.rows, 3);
  assert.equal(typeof selected!.ms, 'number');
  assert.equal(bad!.decision, 'allow');
  // The value echoed in the error is masked in the recording as it was for the caller.
  assert.equal(failed!.code, '22P02');
  assert.match(String(failed!.message), /\[redacted email\]/);
  assert.doesNotMatch(JSON.stringify(lines), /someone@example\.org|customer1@example\.com/);
  assert.equal(drop!.decision, 'deny');
  assert.equal(drop!.rule, 'no drops outside migrations');
  assert.equal(count!.decision, 'allow');
  assert.equal(counted!.tag, 'SELECT 1');

  const verified = await gw.api<{ verification: { ok?: boolean } }>(
    'GET',
    `/api/v1/recordings/${recording.id}`,
    undefined,
    'alice',
  );
  assert.equal(verified.status, 200, verified.text);
  assert.notEqual(verified.body.verification.ok, false, verified.text);
});
