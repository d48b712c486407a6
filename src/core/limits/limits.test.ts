import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Principal } from '../action.ts';
import { AirlockError } from '../errors.ts';
import { AuthFailureLimiter, hostOf } from './auth-failures.ts';
import { ConnectionLimiter } from './connections.ts';
import { guardAuthenticator } from './guarded-authenticator.ts';
import { DEFAULT_LIMITS, Limits } from './limits.ts';

const p = (name: string): Principal => ({ name, kind: 'agent', groups: [] });

describe('failed sign-in throttling', () => {
  it('blocks a source after max failures in the window, then lets it in after the block', () => {
    let now = 0;
    const l = new AuthFailureLimiter({ max: 3, windowMs: 1000, blockMs: 5000 }, () => now);
    for (let i = 0; i < 3; i++) assert.equal(l.failed('10.0.0.1:1000', 'agent'), false);
    l.check('10.0.0.1:2000', 'agent');
    assert.equal(l.failed('10.0.0.1:1001', 'agent'), true);
    assert.throws(
      () => l.check('10.0.0.1:3000', undefined),
      (e: AirlockError) => e.code === 'AIRLOCK_E_RATE_LIMITED',
    );
    // The identity is blocked from anywhere, and another identity from the same host too.
    assert.throws(() => l.check('10.9.9.9:1', 'agent'));
    assert.throws(() => l.check('10.0.0.1:1', 'someone-else'));
    l.check('10.9.9.9:1', 'someone-else');
    now += 5001;
    l.check('10.0.0.1:1', 'agent');
  });

  it('forgets failures older than the window', () => {
    let now = 0;
    const l = new AuthFailureLimiter({ max: 2, windowMs: 1000, blockMs: 5000 }, () => now);
    for (let i = 0; i < 10; i++) {
      assert.equal(l.failed('h:1', undefined), false);
      now += 600;
    }
  });

  it('keeps memory bounded', () => {
    const l = new AuthFailureLimiter({ max: 3, windowMs: 1000, blockMs: 5000, maxKeys: 100 });
    for (let i = 0; i < 1000; i++) l.failed(`10.0.${i >> 8}.${i & 255}:1`, `user${i}`);
    assert.ok(l.size <= 100);
  });

  it('takes the host from any address form', () => {
    assert.equal(hostOf('127.0.0.1:5432'), '127.0.0.1');
    assert.equal(hostOf('[::1]:5432'), '::1');
    assert.equal(hostOf('::ffff:127.0.0.1'), '::ffff:127.0.0.1');
    fc.assert(fc.property(fc.string(), (s) => typeof hostOf(s) === 'string'));
  });
});

describe('connection slots', () => {
  it('limits per principal and globally; release is idempotent', () => {
    const c = new ConnectionLimiter({ max: 3, perPrincipal: 2 });
    const a1 = c.acquire('a');
    c.acquire('a');
    assert.throws(() => c.acquire('a'), /already has 2 open connections/);
    const b1 = c.acquire('b');
    assert.throws(() => c.acquire('b'), /limit of 3 open connections/);
    a1();
    a1();
    assert.equal(c.open, 2);
    c.acquire('b');
    b1();
    assert.equal(c.openFor('b'), 1);
  });

  it('never goes negative or leaks under any acquire/release order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.constantFrom('a', 'b', 'c')), { maxLength: 200 }),
        (ops) => {
          const c = new ConnectionLimiter({ max: 5, perPrincipal: 3 });
          const held: (() => void)[] = [];
          for (const [take, who] of ops) {
            if (take) {
              try {
                held.push(c.acquire(who));
              } catch {}
            } else held.pop()?.();
            assert.ok(c.open >= 0 && c.open <= 5);
          }
          for (const r of held) r();
          assert.equal(c.open, 0);
        },
      ),
    );
  });
});

describe('Limits', () => {
  it('audits a block, a refused connection and a refused request', () => {
    const events: string[] = [];
    const limits = new Limits(
      {
        ...DEFAULT_LIMITS,
        maxConnectionsPerPrincipal: 1,
        maxPendingPerPrincipal: 2,
        authFailures: { max: 1, windowMs: 60_000, blockMs: 60_000 },
      },
      (type) => events.push(type),
    );
    const attempt = { protocol: 'postgres', source: '127.0.0.1:1', identity: 'agent' };
    limits.authFailed(attempt);
    limits.authFailed(attempt);
    assert.throws(() => limits.beforeAuth(attempt), /too many failed sign-ins/);
    limits.openConnection(p('a'), 'postgres');
    assert.throws(
      () => limits.openConnection(p('a'), 'postgres'),
      (e: AirlockError) => e.status === 429,
    );
    limits.checkPending(p('a'), 1, 'db');
    assert.throws(
      () => limits.checkPending(p('a'), 2, 'db'),
      (e: AirlockError) => e.code === 'AIRLOCK_E_LIMIT_PENDING',
    );
    assert.deepEqual(events, [
      'limit.auth_block_started',
      'limit.auth_blocked',
      'limit.connections',
      'limit.pending',
    ]);
  });
});

describe('guardAuthenticator', () => {
  const alice: Principal = { name: 'alice', kind: 'human', groups: ['dba'] };
  const inner = {
    async authenticate(cred: string | undefined | null, _ctx?: unknown): Promise<Principal> {
      if (!cred) throw new AirlockError('AIRLOCK_E_TOKEN_MISSING', 'no token');
      if (cred !== 'good') throw new AirlockError('AIRLOCK_E_TOKEN_INVALID', 'bad token');
      return alice;
    },
    principal: (name: string) => (name === 'alice' ? alice : undefined),
    extra: () => 'still here',
  };

  it('throttles guesses per door and per claimed user; missing tokens do not count', async () => {
    const limits = new Limits({
      ...DEFAULT_LIMITS,
      authFailures: { max: 2, windowMs: 60_000, blockMs: 60_000 },
    });
    const tokens = guardAuthenticator(inner, limits);
    const pg = { protocol: 'postgres', source: '10.1.1.1:5000' };
    for (let i = 0; i < 5; i++) await assert.rejects(tokens.authenticate(undefined, pg), /no token/);
    assert.equal((await tokens.authenticate('good', pg)).name, 'alice');
    for (let i = 0; i < 3; i++) await assert.rejects(tokens.authenticate('guess', pg), /bad token/);
    await assert.rejects(tokens.authenticate('good', pg), /too many failed sign-ins/);
    // Another door from the same address still works; the other methods are untouched.
    assert.equal(
      (await tokens.authenticate('good', { protocol: 'api', source: '10.1.1.1:6000' })).name,
      'alice',
    );
    assert.equal(tokens.extra(), 'still here');
    assert.equal(tokens.principal('alice')?.name, 'alice');
  });
});
