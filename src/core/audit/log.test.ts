import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SqliteStore } from '../../store/sqlite.ts';
import { isAirlockError } from '../errors.ts';
import type { AuditRecord } from '../store.ts';
import { canonical } from './canonical.ts';
import { GENESIS, hashCanonicalData, hashRecord } from './chain.ts';
import { AuditLog, type SharedAuditWriter } from './log.ts';
import { verifyChain } from './verify.ts';

/** A real store whose audit writes can be made to fail, like a full disk. */
class FlakyStore extends SqliteStore {
  failing = false;
  writes = 0;
  constructor() {
    super({ filename: ':memory:' });
  }
  override async appendAudit(records: readonly AuditRecord[]): Promise<void> {
    if (this.failing) throw new Error('disk I/O error');
    this.writes++;
    return super.appendAudit(records);
  }
}

async function setup(opts: ConstructorParameters<typeof AuditLog>[1] = {}) {
  const store = new FlakyStore();
  await store.migrate();
  const log = new AuditLog(store, opts);
  await log.init();
  return { store, log };
}

describe('AuditLog', () => {
  test('append is durable and chained from genesis', async () => {
    const { store, log } = await setup();
    const a = await log.append('session.opened', { sessionId: 's1' });
    const b = await log.append('action.denied', { reason: 'no' });
    assert.equal(a.seq, 1);
    assert.equal(a.prevHash, GENESIS);
    assert.equal(b.prevHash, a.hash);
    assert.equal(b.hash, hashRecord(b));
    assert.deepEqual(await store.readAudit(1, 10), [a, b]);
    assert.ok(log.healthy);
    await store.close();
  });

  test('a durable append made while a write is in flight resolves with its own record', async () => {
    const { store, log } = await setup();
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const write = store.appendAudit.bind(store);
    store.appendAudit = async (records) => {
      await held;
      return write(records);
    };
    const first = log.append('x', { i: 1 });
    await new Promise((r) => setImmediate(r));
    const second = log.append('x', { i: 2 });
    release();
    const [a, b] = await Promise.all([first, second]);
    assert.deepEqual([a.seq, b.seq], [1, 2]);
    assert.equal(b.prevHash, a.hash);
    await store.close();
  });

  test('init continues an existing chain', async () => {
    const { store, log } = await setup();
    await log.append('x', { i: 1 });
    const log2 = new AuditLog(store);
    await log2.init();
    const r = await log2.append('x', { i: 2 });
    assert.equal(r.seq, 2);
    const v = await verifyChain(store);
    assert.deepEqual([v.ok, v.count, v.ok && v.headHash], [true, 2, r.hash]);
    await store.close();
  });

  test('appendLater batches; append flushes queued records first, in order', async () => {
    const { store, log } = await setup({ batchMs: 10_000 });
    log.appendLater('action.allowed', { i: 1 });
    log.appendLater('action.allowed', { i: 2 });
    assert.equal(await store.auditCount(), 0);
    const durable = await log.append('action.denied', { i: 3 });
    assert.equal(durable.seq, 3);
    assert.equal(store.writes, 1, 'one transaction for the batch and the durable record');
    assert.deepEqual(
      (await store.readAudit(1, 10)).map((r) => r.data.i),
      [1, 2, 3],
    );
    await store.close();
  });

  test('appendLater commits within batchMs, or at once when the batch is full', async () => {
    const { store, log } = await setup({ batchMs: 20, batchMax: 3 });
    log.appendLater('a', { i: 1 });
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(await store.auditCount(), 1);
    log.appendLater('a', { i: 2 });
    log.appendLater('a', { i: 3 });
    log.appendLater('a', { i: 4 });
    await new Promise((r) => setImmediate(r));
    await log.flush();
    assert.equal(await store.auditCount(), 4);
    await store.close();
  });

  test('queued data is a snapshot', async () => {
    const { store, log } = await setup({ batchMs: 10_000 });
    const data = { v: 1 };
    log.appendLater('a', data);
    data.v = 2;
    await log.flush();
    assert.deepEqual((await store.readAudit(1, 1))[0]!.data, { v: 1 });
    assert.equal((await verifyChain(store)).ok, true);
    await store.close();
  });

  test("a batched record keeps only its text, not the caller's object, and reads back the same data", async () => {
    const handed: AuditRecord[] = [];
    class Capturing extends FlakyStore {
      override async appendAudit(records: readonly AuditRecord[]): Promise<void> {
        handed.push(...records);
        return super.appendAudit(records);
      }
    }
    const store = new Capturing();
    await store.migrate();
    const log = new AuditLog(store, { batchMs: 10_000 });
    await log.init();
    const data = { principal: { name: 'ci', groups: ['deploy'] }, summary: `SELECT ${'x, '.repeat(50)}1` };
    log.appendLater('action.allowed', data);
    const durable = { sessionId: 's1' };
    const record = await log.append('session.closed', durable);
    assert.equal(handed.length, 2);
    // The waiting batch holds nothing of the caller's: its data is rebuilt from the text.
    assert.notEqual(handed[0]!.data, data);
    assert.deepEqual(handed[0]!.data, data);
    assert.equal(handed[0]!.dataJson, canonical(data));
    // A durable append hands its own object back on the record it resolves with.
    assert.equal(record.data, durable);
    assert.deepEqual(
      (await store.readAudit(1, 2)).map((r) => r.data),
      [data, durable],
    );
    assert.equal((await verifyChain(store)).ok, true);
    await store.close();
  });

  test('rejects data that cannot be canonicalized, at the caller', async () => {
    const { store, log } = await setup();
    await assert.rejects(log.append('a', { n: Number.NaN }), TypeError);
    assert.throws(() => log.appendLater('a', { n: Number.POSITIVE_INFINITY }), TypeError);
    assert.equal((await log.append('a', { ok: true })).seq, 1);
    await store.close();
  });

  test('fail closed: a failing store rejects append, keeps the head, and the chain continues after recovery', async () => {
    const { store, log } = await setup({ batchMs: 10_000 });
    await log.append('a', { i: 1 });
    log.appendLater('read', { i: 2 });
    store.failing = true;
    await assert.rejects(log.append('a', { i: 3 }), (err: unknown) => {
      assert.ok(isAirlockError(err));
      assert.equal(err.code, 'AIRLOCK_E_AUDIT_UNAVAILABLE');
      assert.ok(err.hint && err.hint.length > 0);
      return true;
    });
    assert.equal(log.healthy, false);
    assert.equal(log.headSeq, 1);
    await assert.rejects(log.flush(), /audit log could not be written/);
    store.failing = false;
    const next = await log.append('a', { i: 4 });
    assert.equal(next.seq, 3, 'the queued read is kept and written before it');
    assert.ok(log.healthy);
    assert.deepEqual(
      (await store.readAudit(1, 10)).map((r) => r.data.i),
      [1, 2, 4],
    );
    const v = await verifyChain(store);
    assert.equal(v.ok, true);
    assert.equal(v.count, 3);
    await store.close();
  });

  test('records queued behind a durable record that failed are chained again without it', async () => {
    const { store, log } = await setup({ batchMs: 10_000 });
    log.appendLater('read', { i: 1 });
    store.failing = true;
    const refused = log.append('write', { i: 2 });
    log.appendLater('read', { i: 3 });
    await assert.rejects(refused, /audit log could not be written/);
    store.failing = false;
    log.appendLater('read', { i: 4 });
    await log.flush();
    assert.deepEqual(
      (await store.readAudit(1, 10)).map((r) => [r.seq, r.data.i]),
      [
        [1, 1],
        [2, 3],
        [3, 4],
      ],
    );
    assert.equal((await verifyChain(store)).ok, true);
    await store.close();
  });

  test('records queued while another replica appended are chained after its records', async () => {
    /** A store several replicas share: another one appends a record before each batch of ours. */
    class SharedStore extends FlakyStore implements SharedAuditWriter {
      /** Runs once, while the first batch is in flight. */
      inFlight: (() => void) | undefined;
      async appendAuditOnHead(records: readonly AuditRecord[]): Promise<readonly AuditRecord[]> {
        const during = this.inFlight;
        this.inFlight = undefined;
        during?.();
        const head = (await this.auditHead())!;
        const theirs = { at: 1, type: 'other.replica', data: { n: head.seq } };
        const chained: AuditRecord[] = [];
        let prev = { seq: head.seq, hash: head.hash };
        for (const r of [theirs, ...records]) {
          const seq = prev.seq + 1;
          const dataJson = canonical(r.data);
          const hash = hashCanonicalData(seq, r.at, r.type, dataJson, prev.hash);
          chained.push({ seq, at: r.at, type: r.type, data: r.data, dataJson, prevHash: prev.hash, hash });
          prev = { seq, hash };
        }
        await this.appendAudit(chained);
        return chained.slice(1);
      }
    }
    const store = new SharedStore();
    await store.migrate();
    await store.appendAudit([
      {
        seq: 1,
        at: 1,
        type: 'first',
        data: {},
        prevHash: GENESIS,
        hash: hashCanonicalData(1, 1, 'first', '{}', GENESIS),
      },
    ]);
    const log = new AuditLog(store, { batchMs: 10_000 });
    await log.init();
    log.appendLater('read', { i: 1 });
    // Queued while the first batch is in flight, linked to where that batch was expected to end.
    store.inFlight = () => log.appendLater('read', { i: 3 });
    const record = await log.append('write', { i: 2 });
    assert.equal(record.seq, 4);
    log.appendLater('read', { i: 4 });
    await log.flush();
    const all = await store.readAudit(1, 20);
    assert.deepEqual(
      all.map((r) => r.type),
      ['first', 'other.replica', 'read', 'write', 'other.replica', 'read', 'read'],
    );
    const v = await verifyChain(store);
    assert.equal(v.ok, true, JSON.stringify(v));
    assert.equal(v.count, 7);
    await store.close();
  });

  test('concurrent appends stay gap-free', async () => {
    const { store, log } = await setup({ batchMs: 1 });
    const all: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      if (i % 3 === 0) log.appendLater('r', { i });
      else all.push(log.append('w', { i }));
    }
    await Promise.all(all);
    await log.close();
    const v = await verifyChain(store);
    assert.deepEqual(v.ok && v.count, 200);
    await store.close();
  });

  test('the queue is bounded while the store is down', async () => {
    const { store, log } = await setup({ batchMs: 10_000, batchMax: 2, maxQueued: 3 });
    store.failing = true;
    log.appendLater('r', { i: 1 });
    log.appendLater('r', { i: 2 });
    log.appendLater('r', { i: 3 });
    assert.throws(() => log.appendLater('r', { i: 4 }), /audit queue is full/);
    assert.equal(log.healthy, false);
    store.failing = false;
    await log.flush();
    assert.equal(log.healthy, true);
    assert.equal(await store.auditCount(), 3);
    await store.close();
  });
});
