/**
 * Audit evidence end to end, through the real `airlock` CLI: a gateway writes a store of
 * 100,000 events with signed checkpoints anchored to a file; copies of that store are then
 * tampered with the way someone with full database access could — edit, delete, reorder,
 * truncate, rewrite-and-rehash, re-sign with another key — and `airlock audit verify` must name
 * each one. An export verifies offline with only the public key; a recording altered by one
 * byte is refused by `airlock replay`.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { GENESIS, hashCanonicalData } from '../src/core/audit/chain.ts';
import {
  CHECKPOINT_TYPE,
  generateCheckpointKey,
  type SignedCheckpoint,
  signCheckpoint,
} from '../src/core/audit/checkpoint.ts';
import { recordingsDirOf } from '../src/core/audit/evidence.ts';
import { loadPolicyFile } from '../src/core/policy/load.ts';
import { AsciicastWriter } from '../src/core/recording/asciicast.ts';
import { Recordings } from '../src/core/recording/recorder.ts';
import { startGateway } from '../src/server/gateway.ts';
import { startProcess } from './support/processes.ts';

const ROOT = resolve(import.meta.dirname, '..');
const EVENTS = 100_000;
const TOKEN = `alk_test_alice_${'x'.repeat(32)}`;
const SESSION = 'ssh-session-42';

interface CliResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

async function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const p = startProcess(process.execPath, [join(ROOT, 'bin/airlock.js'), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
  });
  p.endInput();
  const exit = await p.waitForExit(120_000);
  return { status: exit.code, stdout: p.stdout(), stderr: p.stderr() };
}

function writePolicy(dir: string): string {
  const file = join(dir, 'airlock.yaml');
  writeFileSync(
    file,
    `listen:
  api: 127.0.0.1:0
  postgres: 127.0.0.1:0
store: sqlite:./data/airlock.db
identities:
  tokens:
    - { name: alice, token: "${TOKEN}", kind: human, groups: [dba] }
defaults:
  review: { groups: [dba] }
audit:
  checkpoint_every: 1000
  anchors:
    - { type: file, path: ./anchors/checkpoints.jsonl }
  sinks:
    - { type: file, name: siem, path: ./siem/audit.jsonl, rotate: 4MB, keep: 20 }
`,
  );
  return file;
}

describe('audit evidence through the CLI', () => {
  let base: string;
  let head: number;
  const copies: string[] = [];

  /** A fresh copy of the gateway's directory (policy, store, anchors, recordings) to tamper with. */
  const copy = (): { dir: string; policy: string; db: Database.Database } => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-tamper-'));
    copies.push(dir);
    cpSync(base, dir, { recursive: true });
    return { dir, policy: join(dir, 'airlock.yaml'), db: new Database(join(dir, 'data', 'airlock.db')) };
  };
  const dataSeq = (db: Database.Database, near: number): number =>
    (
      db
        .prepare('SELECT seq FROM audit WHERE seq >= ? AND type != ? ORDER BY seq LIMIT 1')
        .get(near, CHECKPOINT_TYPE) as { seq: number }
    ).seq;
  /** Recomputes every hash from `fromSeq` on, as someone with only the database could. */
  const rehash = (db: Database.Database, fromSeq: number, resign?: Parameters<typeof signCheckpoint>[0]) => {
    const rows = db
      .prepare('SELECT seq, at, type, data, hash FROM audit ORDER BY seq')
      .iterate() as IterableIterator<{
      seq: number;
      at: number;
      type: string;
      data: string;
      hash: string;
    }>;
    const update = db.prepare('UPDATE audit SET data = ?, prev_hash = ?, hash = ? WHERE seq = ?');
    const updates: [string, string, string, number][] = [];
    const hashes = new Map<number, string>();
    let prev = GENESIS;
    for (const r of rows) {
      if (r.seq < fromSeq) {
        prev = r.hash;
        hashes.set(r.seq, r.hash);
        continue;
      }
      let data = r.data;
      if (resign && r.type === CHECKPOINT_TYPE) {
        const old = JSON.parse(data) as SignedCheckpoint;
        const cp = signCheckpoint(resign, old.seq, hashes.get(old.seq)!, old.at);
        data = JSON.stringify(Object.fromEntries(Object.entries(cp).sort(([a], [b]) => (a < b ? -1 : 1))));
      }
      const hash = hashCanonicalData(r.seq, r.at, r.type, data, prev);
      updates.push([data, prev, hash, r.seq]);
      hashes.set(r.seq, hash);
      prev = hash;
    }
    db.transaction(() => {
      for (const u of updates) update.run(...u);
    })();
  };
  const verify = (policy: string, extra: string[] = []) =>
    cli(['audit', 'verify', '--config', policy, ...extra]);

  before(async () => {
    base = mkdtempSync(join(tmpdir(), 'airlock-evidence-'));
    const policy = loadPolicyFile(writePolicy(base));
    const gw = await startGateway({ policy });
    try {
      // Batches of 500, as a busy gateway commits them, so checkpoints land every ~1000 records.
      for (let i = 1; i <= EVENTS; i++) {
        gw.audit.appendLater('action', {
          principal: i % 3 === 0 ? 'agent' : 'ci',
          connection: 'prod-db',
          kind: 'read',
          summary: `SELECT * FROM orders WHERE id = ${i}`,
        });
        if (i % 500 === 0) await gw.audit.flush();
      }
      // A session recording, sealed into the same chain by the gateway's own log.
      const recordings = new Recordings({ dir: recordingsDirOf(policy), store: gw.store, audit: gw.audit });
      const cast = new AsciicastWriter(
        recordings.open(SESSION, 'web-1', 'asciicast-v2', { protocol: 'ssh', principal: 'alice' }),
        { width: 80, height: 24 },
      );
      cast.output('deploy@web-1:~$ ');
      cast.input('uptime\r');
      cast.output('uptime\r\n 12:00:00 up 42 days\r\n');
      await cast.close();
    } finally {
      await gw.close();
    }
    const db = new Database(join(base, 'data', 'airlock.db'), { readonly: true });
    head = (db.prepare('SELECT max(seq) AS m FROM audit').get() as { m: number }).m;
    db.close();
  });

  after(() => {
    for (const d of [base, ...copies]) rmSync(d, { recursive: true, force: true });
  });

  test('the untouched store verifies: chain, every checkpoint signature, anchors', async () => {
    const r = await verify(join(base, 'airlock.yaml'));
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`audit log OK: ${head} records`));
    const m = /signed through record (\d+) \((\d+) checkpoint/.exec(r.stdout);
    assert.ok(m && Number(m[1]) === head - 1 && Number(m[2]) >= 90, r.stdout);
    assert.match(r.stdout, new RegExp(`anchored outside the store through record ${head - 1}`));
  });

  test('an edited record is named', async () => {
    const { policy, db } = copy();
    const seq = dataSeq(db, 41_234);
    db.prepare("UPDATE audit SET data = replace(data, 'SELECT', 'DELETE') WHERE seq = ?").run(seq);
    db.close();
    const r = await verify(policy);
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`record ${seq} was edited`));
    assert.match(r.stdout, /problem: edited/);
  });

  test('a deleted record is named', async () => {
    const { policy, db } = copy();
    const seq = dataSeq(db, 70_000);
    db.prepare('DELETE FROM audit WHERE seq = ?').run(seq);
    db.close();
    const r = await verify(policy);
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`record ${seq} was deleted`));
  });

  test('two swapped records are named as reordered', async () => {
    const { policy, db } = copy();
    const seq = dataSeq(db, 12_345);
    const a = db.prepare('SELECT * FROM audit WHERE seq = ?').get(seq) as Record<string, unknown>;
    const b = db.prepare('SELECT * FROM audit WHERE seq = ?').get(seq + 1) as Record<string, unknown>;
    const put = db.prepare(
      'UPDATE audit SET at = ?, type = ?, data = ?, prev_hash = ?, hash = ? WHERE seq = ?',
    );
    db.transaction(() => {
      put.run(b.at, b.type, b.data, b.prev_hash, b.hash, seq);
      put.run(a.at, a.type, a.data, a.prev_hash, a.hash, seq + 1);
    })();
    db.close();
    const r = await verify(policy);
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`record ${seq} was reordered`));
  });

  test('deleting the newest records is caught by the anchored checkpoint', async () => {
    const { policy, db } = copy();
    const from = head - 1_500;
    db.prepare('DELETE FROM audit WHERE seq >= ?').run(from);
    db.close();
    const r = await verify(policy);
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`records ${from} to at least ${head - 1} were deleted`));
    assert.match(r.stdout, /problem: truncated/);
  });

  test('a record rewritten with every later hash recomputed is caught, and the range named', async () => {
    const { policy, db } = copy();
    const seq = dataSeq(db, 55_555);
    db.prepare("UPDATE audit SET data = replace(data, 'orders', 'payroll') WHERE seq = ?").run(seq);
    rehash(db, seq);
    db.close();
    const r = await verify(policy);
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stdout, /problem: rehashed/);
    const m = /a record from (\d+) to (\d+) was rewritten/.exec(r.stdout);
    assert.ok(m, r.stdout);
    assert.ok(Number(m[1]) <= seq && seq <= Number(m[2]) && Number(m[2]) - Number(m[1]) < 2_000, r.stdout);
  });

  test('checkpoints re-signed with another key are refused', async () => {
    const { dir, policy, db } = copy();
    const seq = dataSeq(db, 80_001);
    db.prepare("UPDATE audit SET data = replace(data, 'SELECT', 'UPDATE') WHERE seq = ?").run(seq);
    rehash(db, seq, generateCheckpointKey().key);
    db.close();
    // Without the anchor file the forged chain is consistent; only the signatures give it away.
    rmSync(join(dir, 'anchors'), { recursive: true });
    const r = await verify(policy);
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stdout, /problem: bad-signature/);
    assert.match(r.stdout, /signed with key [0-9a-f]{16}, which is not the deployment's key/);
    const failed = Number(/verified before record (\d+)/.exec(r.stdout)?.[1]);
    assert.ok(failed > seq && failed < seq + 2_000, r.stdout);
  });

  test('an export verifies offline with only the public key; an edited line is named', async () => {
    const { dir, policy } = copy();
    const file = join(dir, 'export.jsonl');
    const exp = await cli(['audit', 'export', '--config', policy, '--output', file]);
    assert.equal(exp.status, 0, exp.stderr);
    const key = await cli(['audit', 'key', '--config', policy]);
    assert.equal(key.status, 0, key.stderr);
    assert.match(key.stdout, /BEGIN PUBLIC KEY/);
    const keyFile = join(dir, 'airlock-audit.pub');
    writeFileSync(keyFile, key.stdout);
    // Nothing of the deployment but the export and the public key.
    rmSync(join(dir, 'data'), { recursive: true });
    const ok = await cli(['audit', 'verify', '--from-export', file, '--key', keyFile]);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, new RegExp(`audit log OK: ${head} records`));

    const lines = readFileSync(file, 'utf8').split('\n');
    const i = lines.findIndex((l) => l.startsWith('{"seq":31337,'));
    lines[i] = lines[i]!.replace('"kind":"read"', '"kind":"write"');
    writeFileSync(file, lines.join('\n'));
    const bad = await cli(['audit', 'verify', '--from-export', file, '--key', keyFile]);
    assert.equal(bad.status, 2, bad.stdout + bad.stderr);
    assert.match(bad.stdout, /record 31337 \(line \d+\) was edited/);

    const other = join(dir, 'other.pub');
    writeFileSync(
      other,
      (await import('../src/core/audit/checkpoint.ts')).publicKeyPem(generateCheckpointKey().key.publicKey),
    );
    lines[i] = lines[i]!.replace('"kind":"write"', '"kind":"read"');
    writeFileSync(file, lines.join('\n'));
    const wrongKey = await cli(['audit', 'verify', '--from-export', file, '--key', other]);
    assert.equal(wrongKey.status, 2, wrongKey.stdout);
    assert.match(wrongKey.stdout, /problem: bad-signature/);
  });

  test('replay verifies a recording against the chain; one changed byte is refused', async () => {
    const { dir, policy } = copy();
    const ok = await cli(['replay', SESSION, '--config', policy]);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.match(ok.stderr, /verified, sha256 [0-9a-f]{64} matches audit record \d+/);
    assert.match(ok.stdout, /12:00:00 up 42 days/);

    const recDir = join(dir, 'data', 'recordings');
    const db = new Database(join(dir, 'data', 'airlock.db'), { readonly: true });
    const row = db.prepare('SELECT path FROM recordings WHERE session_id = ?').get(SESSION) as {
      path: string;
    };
    db.close();
    const path = join(recDir, row.path);
    const bytes = readFileSync(path);
    bytes[bytes.length - 10] = bytes[bytes.length - 10]! ^ 0x01;
    writeFileSync(path, bytes);
    const bad = await cli(['replay', SESSION, '--config', policy]);
    assert.equal(bad.status, 2, bad.stdout + bad.stderr);
    assert.match(
      bad.stderr,
      /FAILED verification: recording .* was altered: its \d+ bytes hash to [0-9a-f]{64}, but audit record \d+ recorded/,
    );
    assert.doesNotMatch(bad.stdout, /up 42 days/);
  });

  test('through a running gateway: public key, export over the API, offline verify, replay', async () => {
    const { dir, policy: policyFile } = copy();
    const gw = await startGateway({ policy: loadPolicyFile(policyFile) });
    try {
      const env = { AIRLOCK_URL: gw.api.url, AIRLOCK_TOKEN: TOKEN };
      const keyRes = await fetch(`${gw.api.url}/api/v1/audit/key`);
      assert.equal(keyRes.status, 200);
      const keyFile = join(dir, 'key.json');
      writeFileSync(keyFile, await keyRes.text());
      const file = join(dir, 'api-export.jsonl');
      const exp = await cli(['audit', 'export', '--since', '1h', '--output', file], env);
      assert.equal(exp.status, 0, exp.stderr);
      const ok = await cli(['audit', 'verify', '--from-export', file, '--key', keyFile]);
      assert.equal(ok.status, 0, ok.stdout + ok.stderr);
      const v = await cli(['audit', 'verify'], env);
      assert.equal(v.status, 0, v.stdout + v.stderr);
      assert.match(v.stdout, /signed through record \d+/);
      const replay = await cli(['replay', SESSION], env);
      assert.equal(replay.status, 0, replay.stdout + replay.stderr);
      assert.match(replay.stdout, /12:00:00 up 42 days/);
      const list = await fetch(`${gw.api.url}/api/v1/recordings?session=${SESSION}`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      const body = (await list.json()) as { recordings: { id: string; sha256: string; status: string }[] };
      assert.equal(body.recordings.length, 1);
      assert.equal(body.recordings[0]!.status, 'closed');
      const shown = (await (
        await fetch(`${gw.api.url}/api/v1/recordings/${body.recordings[0]!.id}`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        })
      ).json()) as { verification: { ok: boolean } };
      assert.equal(shown.verification.ok, true);
      const anon = await fetch(`${gw.api.url}/api/v1/audit/export`);
      assert.equal(anon.status, 401);

      // The file sink has followed the log from its saved place; its lag reaches zero.
      let sinks: { head: number; sinks: { name: string; lag: number; failing: boolean }[] } | undefined;
      for (let i = 0; i < 600; i++) {
        sinks = (await (
          await fetch(`${gw.api.url}/api/v1/audit/sinks`, { headers: { authorization: `Bearer ${TOKEN}` } })
        ).json()) as typeof sinks;
        if (sinks!.sinks[0]!.lag === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(sinks!.sinks[0]!.lag, 0, JSON.stringify(sinks));
      assert.equal(sinks!.sinks[0]!.failing, false);
      const { readdirSync } = await import('node:fs');
      const seqs = new Set<number>();
      for (const f of readdirSync(join(dir, 'siem')))
        for (const l of readFileSync(join(dir, 'siem', f), 'utf8').split('\n'))
          if (l) seqs.add((JSON.parse(l) as { seq: number }).seq);
      assert.equal(seqs.size, sinks!.head);
      const metrics = await (
        await fetch(`${gw.api.url}/api/v1/audit/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })
      ).text();
      assert.match(metrics, /^airlock_audit_sink_lag_records\{sink="file:[^"]+"\} 0$/m);
      assert.match(metrics, /^airlock_audit_healthy 1$/m);
    } finally {
      await gw.close();
    }
  });
});
