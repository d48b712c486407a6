import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { isAirlockError } from '../core/errors.ts';
import { migrations } from './migrations.ts';
import { openStore } from './open.ts';
import { SqliteStore } from './sqlite.ts';
import { newRequest, storeContract } from './store-contract.ts';

describe('SqliteStore', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'airlock-store-'));
  });
  const stores: SqliteStore[] = [];
  after(async () => {
    for (const s of stores) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  storeContract(async () => {
    const store = new SqliteStore({ filename: ':memory:' });
    stores.push(store);
    await store.migrate();
    return store;
  });

  // A file store commits audit batches from its own thread (sqlite-audit-writer.ts): the same
  // contract holds there.
  let files = 0;
  storeContract(async () => {
    const store = new SqliteStore({ filename: join(dir, `contract-${files++}.db`) });
    stores.push(store);
    await store.migrate();
    return store;
  });

  test('votes and request changes land while audit batches commit from the writer thread', async () => {
    const store = new SqliteStore({ filename: join(dir, 'race.db') });
    stores.push(store);
    await store.migrate();
    let seq = 0;
    let prevHash = '0'.repeat(64);
    const batch = () =>
      Array.from({ length: 20 }, () => {
        seq += 1;
        const r = {
          seq,
          at: seq,
          type: 't',
          data: { seq },
          prevHash,
          hash: seq.toString(16).padStart(64, '0'),
        };
        prevHash = r.hash;
        return r;
      });
    const appends = (async () => {
      for (let i = 0; i < 100; i++) await store.appendAudit(batch());
    })();
    const decisions = (async () => {
      for (let i = 0; i < 100; i++) {
        const r = await store.createRequest(newRequest());
        const voted = await store.addApproval(r.id, { by: 'alice', at: 2_000 });
        assert.equal(voted?.approvals.length, 1);
        const decided = await store.updateRequest(r.id, ['pending'], {
          status: 'approved',
          decidedAt: 3_000,
        });
        assert.equal(decided?.status, 'approved');
      }
    })();
    await Promise.all([appends, decisions]);
    assert.equal(await store.auditCount(), 2000);
  });

  test('migrations are idempotent and keep data', async () => {
    const file = join(dir, 'nested', 'a.db');
    const s1 = new SqliteStore({ filename: file });
    await s1.migrate();
    await s1.migrate();
    await s1.createRequest(newRequest());
    await s1.close();
    const s2 = new SqliteStore({ filename: file });
    await s2.migrate();
    assert.equal((await s2.listRequests()).length, 1);
    await s2.close();
    const raw = new Database(file);
    const applied = raw.prepare('SELECT name FROM kysely_migration ORDER BY name').all() as {
      name: string;
    }[];
    assert.deepEqual(
      applied.map((r) => r.name),
      Object.keys(migrations('sqlite')).sort(),
    );
    assert.equal((raw.pragma('journal_mode', { simple: true }) as string).toLowerCase(), 'wal');
    raw.close();
  });
});

describe('openStore', () => {
  test('sqlite file relative to the base dir, creating parents', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-open-'));
    try {
      const store = await openStore('sqlite:./data/deep/airlock.db', dir);
      assert.equal(await store.auditCount(), 0);
      await store.close();
      assert.ok(existsSync(join(dir, 'data', 'deep', 'airlock.db')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('sqlite::memory:', async () => {
    const store = await openStore('sqlite::memory:', '/nonexistent');
    assert.equal((await store.createRequest(newRequest())).id, 1);
    await store.close();
  });

  test('other schemes are a config error naming the supported stores', async () => {
    for (const url of ['mysql://x', 'nonsense']) {
      await assert.rejects(openStore(url, '/tmp'), (err: unknown) => {
        assert.ok(isAirlockError(err));
        assert.equal(err.code, 'AIRLOCK_E_CONFIG_INVALID');
        assert.match(err.describe(), /sqlite:.*postgres:\/\//);
        return true;
      });
    }
  });
});
