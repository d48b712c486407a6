/**
 * Every PostgreSQL session is recorded as an event stream: statements with the decision and the
 * rule, parameters, results with row counts and durations, errors and notices — masked as the
 * caller saw them — sealed into the audit chain when the session ends; `airlock replay` shows it
 * as a timeline.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { eventually, pendingRequestFrom } from './support/eventually.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { startProcess, stopAll } from './support/processes.ts';
import { pgThrough } from './support/psql.ts';

const ROOT = join(import.meta.dirname, '..');

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

test('airlock replay shows a session as a timeline: masked parameters, a held statement, its decision and notice', {
  timeout: 180_000,
}, async () => {
  const c = await pgThrough(gw.target('agent'));
  await c.query('SELECT $1::text AS note', ['mail me at someone@example.org']);
  const block = "DO $$ BEGIN RAISE NOTICE 'hello from %', 'a block'; END $$";
  const held = c.query(block);
  const request = await pendingRequestFrom<{ id: number; principal: { name: string }; summary: string }>(
    gw.api,
    'agent',
    'RAISE NOTICE',
  );
  assert.equal((await gw.api('POST', `/api/v1/requests/${request.id}/approve`, {}, 'alice')).status, 200);
  await held;
  await c.end();

  const session = await eventually('the recording of the session to be sealed', async () => {
    const res = await gw.api<{ recordings: RecordingJson[] }>(
      'GET',
      '/api/v1/recordings?connection=app',
      undefined,
      'alice',
    );
    for (const r of res.body.recordings.filter((x) => x.principal === 'agent' && x.status === 'closed')) {
      const content = await fetch(`${gw.apiUrl}/api/v1/recordings/${r.id}/content`, {
        headers: { authorization: `Bearer ${gw.tokens.alice}` },
      });
      if ((await content.text()).includes('RAISE NOTICE')) return r.session;
    }
    return undefined;
  });

  const p = startProcess(process.execPath, [join(ROOT, 'bin/airlock.js'), 'replay', session], {
    cwd: ROOT,
    env: { ...process.env, AIRLOCK_URL: gw.apiUrl, AIRLOCK_TOKEN: gw.tokens.alice },
  });
  p.endInput();
  const exit = await p.waitForExit(120_000);
  assert.equal(exit.code, 0, p.output());
  assert.match(p.stderr(), /verified, sha256 [0-9a-f]{64} matches audit record \d+/);
  const lines = p.stdout().trim().split('\n');
  const timeline = lines.map((l) => l.replace(/^\+\d+\.\d{3}s\s+/, '').replace(/\s+/g, ' '));
  assert.match(lines[0]!, /^session began \S+ .*principal="agent"/);
  assert.ok(
    lines.slice(1).every((l) => /^\+\d+\.\d{3}s /.test(l)),
    p.stdout(),
  );
  assert.deepEqual(
    timeline.slice(1).map((l) => l.split(' ')[0]),
    ['statement', 'result', 'statement', 'decision', 'notice', 'result', 'end'],
  );
  assert.equal(
    timeline[1],
    'statement allow by "reads are free" [read] SELECT $1::text AS note parameters=["mail me at [redacted email]"]',
  );
  assert.match(timeline[2]!, /^result SELECT 1, 1 row, [\d.]+ ms$/);
  assert.match(timeline[3]!, new RegExp(`^statement hold by "\\S.*" request ${request.id} \\[admin\\] DO `));
  assert.equal(timeline[4], `decision request ${request.id} approved`);
  assert.equal(timeline[5], 'notice NOTICE 00000: hello from a block');
  assert.match(timeline[6]!, /^result DO, [\d.]+ ms$/);
  assert.doesNotMatch(p.stdout(), /someone@example\.org/);
});
