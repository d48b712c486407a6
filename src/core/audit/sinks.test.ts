import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SqliteStore } from '../../store/sqlite.ts';
import { AuditLog } from './log.ts';
import { FileSink, HttpSink, SinkRunner, SyslogSink } from './sinks.ts';

const until = async (what: string, ok: () => boolean, ms = 20_000) => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('audit sinks', () => {
  let dir: string;
  let store: SqliteStore;
  let log: AuditLog;
  const append = async (n: number) => {
    for (let i = 0; i < n; i++) log.appendLater('action', { i, summary: `SELECT ${i}`, text: 'ünïcode' });
    await log.flush();
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'airlock-sinks-'));
    store = new SqliteStore({ filename: join(dir, 'a.db') });
    await store.migrate();
    log = new AuditLog(store);
    await log.init();
    await append(300);
  });
  after(async () => {
    await log.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an HTTP receiver that is down for a while loses nothing once it is back', async () => {
    const received = new Map<number, string>();
    let up = false;
    let badSignatures = 0;
    const server: Server = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        if (!up) {
          res.writeHead(503).end();
          return;
        }
        const ts = String(req.headers['x-airlock-timestamp']);
        const expected = `sha256=${createHmac('sha256', 'hook-secret').update(`${ts}.${body}`).digest('hex')}`;
        if (req.headers['x-airlock-signature'] !== expected) badSignatures += 1;
        const batch = JSON.parse(body) as { records: { seq: number; hash: string }[] };
        for (const r of batch.records) received.set(r.seq, r.hash);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/audit`;
    const runner = new SinkRunner({
      store,
      transport: new HttpSink(url, () => 'hook-secret'),
      cursorFile: join(dir, 'http.cursor'),
      batch: 100,
      pollMs: 20,
      maxBackoffMs: 100,
    });
    runner.start();
    try {
      await until('the sink to notice the outage', () => runner.status().failing);
      await append(700); // written while the receiver is down
      assert.equal(runner.status().deliveredThrough, 0);
      up = true;
      await until('the sink to catch up', () => runner.status().deliveredThrough === log.headSeq);
      assert.equal(badSignatures, 0);
      const all = await store.readAudit(1, 10_000);
      assert.equal(received.size, all.length);
      for (const r of all) assert.equal(received.get(r.seq), r.hash, `record ${r.seq}`);
      assert.equal(runner.status().failing, false);
    } finally {
      await runner.stop();
      await new Promise((r) => server.close(r));
    }
    // The cursor survives a restart: a new runner starts where the old one stopped.
    const again = new SinkRunner({
      store,
      transport: new HttpSink(url, () => 'hook-secret'),
      cursorFile: join(dir, 'http.cursor'),
    });
    assert.equal(again.status().deliveredThrough, log.headSeq);
  });

  test('a file sink writes every record as a line and rotates by size', async () => {
    const path = join(dir, 'out', 'audit.jsonl');
    const runner = new SinkRunner({
      store,
      transport: new FileSink(path, 20_000, 50),
      cursorFile: join(dir, 'file.cursor'),
      batch: 50,
      pollMs: 20,
    });
    runner.start();
    await until('the file sink to catch up', () => runner.status().deliveredThrough === log.headSeq);
    await runner.stop();
    const files = readdirSync(join(dir, 'out'));
    assert.ok(files.length > 2, files.join(' '));
    const seqs = files
      .flatMap((f) => readFileSync(join(dir, 'out', f), 'utf8').split('\n'))
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { seq: number }).seq)
      .sort((a, b) => a - b);
    assert.deepEqual(
      seqs,
      Array.from({ length: log.headSeq }, (_, i) => i + 1),
    );
  });

  test('a syslog sink sends RFC 5424 messages with octet-counting framing', async () => {
    let data = Buffer.alloc(0);
    const server = createTcpServer((s) => s.on('data', (c) => (data = Buffer.concat([data, c]))));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const runner = new SinkRunner({
      store,
      transport: new SyslogSink(
        { host: '127.0.0.1', port: (server.address() as AddressInfo).port },
        undefined,
      ),
      cursorFile: join(dir, 'syslog.cursor'),
      pollMs: 20,
    });
    runner.start();
    try {
      await until('the syslog sink to catch up', () => runner.status().deliveredThrough === log.headSeq);
      await runner.stop();
      await until('the bytes to arrive', () => {
        let n = 0;
        for (let off = 0; off < data.length; n++) {
          const sp = data.indexOf(0x20, off);
          if (sp < 0) return false;
          off = sp + 1 + Number(data.subarray(off, sp).toString());
          if (off > data.length) return false;
        }
        return n === log.headSeq;
      });
      // Parse the frames: "<len> <msg>".
      const messages: string[] = [];
      for (let off = 0; off < data.length; ) {
        const sp = data.indexOf(0x20, off);
        const len = Number(data.subarray(off, sp).toString());
        messages.push(data.subarray(sp + 1, sp + 1 + len).toString('utf8'));
        off = sp + 1 + len;
      }
      assert.equal(messages.length, log.headSeq);
      assert.match(
        messages[0]!,
        /^<110>1 \d{4}-\d\d-\d\dT[\d:.]+Z \S+ airlock - action \[airlock@32473 seq="1" hash="[0-9a-f]{64}"\] \uFEFF\{"seq":1,/,
      );
      assert.match(messages.at(-1)!, /"text":"ünïcode"/);
    } finally {
      await runner.stop();
      await new Promise((r) => server.close(r));
    }
  });
});
