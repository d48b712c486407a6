import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { classifyHttp, decodedPath, jsonFields, plainTarget } from './classify.ts';
import { normalizeTarget, parseRoute } from './proxy.ts';

const READS = ['GET', 'HEAD', 'OPTIONS'];

describe('HTTP classification', () => {
  it('kind by method, fail closed on undecodable paths', () => {
    assert.equal(
      classifyHttp({ method: 'get', target: '/a', body: undefined, readMethods: READS }).kind,
      'read',
    );
    assert.equal(
      classifyHttp({ method: 'PURGE', target: '/a', body: undefined, readMethods: READS }).kind,
      'write',
    );
    assert.equal(
      classifyHttp({ method: 'GET', target: '/a%ZZ', body: undefined, readMethods: READS }).kind,
      'unknown',
    );
    assert.equal(
      classifyHttp({ method: 'GET', target: '/a%00b', body: undefined, readMethods: READS }).kind,
      'unknown',
    );
  });

  it('a target taken as it is reads the same as once parsed as a URL', () => {
    // Characters with a meaning to URL parsing, in a path or a query, and plain ones.
    const piece = fc.constantFrom(
      ...'/?#.%2eE:@!$&\'()*+,;=-_~ "<>`{}[]^|\\\t\n\x00\x7f\u00e9aZ09'.split(''),
      '/.',
      '/..',
      '%2e',
      '%2E',
      '//',
      '%00',
      '%41',
    );
    const target = fc.array(piece, { maxLength: 12 }).map((p) => `/${p.join('')}`);
    fc.assert(
      fc.property(target, (t) => {
        // What normalizeTarget gave before it took plain targets as they are.
        let parsed = t;
        try {
          const u = new URL(t, 'http://airlock.invalid');
          parsed = u.pathname + u.search;
        } catch {}
        if (plainTarget(t)) assert.equal(parsed, t);
        assert.equal(normalizeTarget(t), parsed);
        const path = t.split('?', 1)[0]!;
        if (plainTarget(path)) assert.equal(new URL(path, 'http://airlock.invalid').pathname, path);
        let decoded: string | undefined;
        try {
          decoded = decodeURIComponent(new URL(path, 'http://airlock.invalid').pathname);
          if (decoded.includes('\0')) decoded = undefined;
        } catch {}
        assert.equal(decodedPath(t), decoded);
      }),
      { numRuns: 5000 },
    );
    assert.ok(plainTarget('/v1/items/7.json?page=2&q=a%20b'));
    assert.ok(!plainTarget('/v1/./items'));
    assert.ok(!plainTarget('//host/x'));
    assert.ok(!plainTarget('/x?'));
    assert.equal(decodedPath('/v1/items/7'), '/v1/items/7');
  });

  it('paths are decoded and dot segments resolved for matching', () => {
    assert.equal(decodedPath('/v1/%6Frders/7?x=1'), '/v1/orders/7');
    assert.equal(decodedPath('/v1/x/../orders'), '/v1/orders');
    assert.equal(normalizeTarget('/a/%2e%2e/b?q=1'), '/b?q=1');
  });

  it('the identity binds method, target and body', () => {
    const a = classifyHttp({
      method: 'POST',
      target: '/x?a=1',
      body: Buffer.from('{"n":1}'),
      readMethods: READS,
    });
    const b = classifyHttp({
      method: 'POST',
      target: '/x?a=1',
      body: Buffer.from('{"n":2}'),
      readMethods: READS,
    });
    const c = classifyHttp({
      method: 'POST',
      target: '/x?a=2',
      body: Buffer.from('{"n":1}'),
      readMethods: READS,
    });
    assert.notEqual(a.normalized, b.normalized);
    assert.notEqual(a.normalized, c.normalized);
  });

  it('JSON bodies become argument fields', () => {
    const f = jsonFields(
      Buffer.from('{"env":"prod","tags":["a","b"],"spec":{"replicas":3},"x":null}'),
      'application/json',
    );
    assert.deepEqual(f['argument.env'], ['prod']);
    assert.deepEqual(f['argument.tags'], ['a', 'b']);
    assert.deepEqual(f['argument.spec.replicas'], ['3']);
    assert.deepEqual(f['argument.x'], ['null']);
    assert.deepEqual(jsonFields(Buffer.from('{"env":"prod"}'), 'text/plain'), {});
    assert.deepEqual(jsonFields(Buffer.from('{not json'), 'application/json'), {});
  });

  it('routes name the type, the connection and the rest', () => {
    assert.deepEqual(parseRoute('/http/api/v1/x?y=1'), { prefix: 'http', name: 'api', target: '/v1/x?y=1' });
    assert.deepEqual(parseRoute('/git/repos'), { prefix: 'git', name: 'repos', target: '/' });
    assert.deepEqual(parseRoute('/http/api?x'), { prefix: 'http', name: 'api', target: '/?x' });
    assert.equal(parseRoute('/'), undefined);
  });
});
