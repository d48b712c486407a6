import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyHttp, decodedPath, jsonFields } from './classify.ts';
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
