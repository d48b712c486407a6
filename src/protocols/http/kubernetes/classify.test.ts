import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyKubernetes, type KubeRequest, kubeRequestInfo } from './classify.ts';

function info(method: string, target: string) {
  const q = new URLSearchParams(target.includes('?') ? target.slice(target.indexOf('?') + 1) : '');
  return kubeRequestInfo(method, target, q);
}
function classify(method: string, target: string, impersonating = false) {
  const q = new URLSearchParams(target.includes('?') ? target.slice(target.indexOf('?') + 1) : '');
  return classifyKubernetes({ method, target, query: q, body: undefined, impersonating });
}

describe('Kubernetes request info', () => {
  const cases: [string, string, Partial<KubeRequest>][] = [
    [
      'GET',
      '/api/v1/namespaces/default/pods?limit=500',
      { verb: 'list', resource: 'pods', namespace: 'default' },
    ],
    ['GET', '/api/v1/namespaces/default/pods?watch=1', { verb: 'watch', resource: 'pods' }],
    [
      'GET',
      '/api/v1/watch/namespaces/default/pods',
      { verb: 'watch', resource: 'pods', namespace: 'default' },
    ],
    ['GET', '/api/v1/namespaces/prod/pods/web-1', { verb: 'get', name: 'web-1', namespace: 'prod' }],
    ['DELETE', '/api/v1/namespaces/prod/pods/web-1', { verb: 'delete', name: 'web-1' }],
    ['DELETE', '/api/v1/namespaces/prod/pods', { verb: 'deletecollection' }],
    ['POST', '/api/v1/namespaces/prod/pods/web-1/exec?command=ls', { verb: 'create', subresource: 'exec' }],
    ['GET', '/api/v1/namespaces/prod/pods/web-1/exec?command=ls', { verb: 'create', subresource: 'exec' }],
    ['GET', '/api/v1/namespaces/prod/pods/web-1/portforward', { verb: 'create', subresource: 'portforward' }],
    ['GET', '/api/v1/namespaces/prod/pods/web-1/log?follow=true', { verb: 'get', subresource: 'log' }],
    [
      'PATCH',
      '/apis/apps/v1/namespaces/prod/deployments/api/scale',
      { verb: 'patch', apiGroup: 'apps', subresource: 'scale' },
    ],
    ['PUT', '/apis/apps/v1/namespaces/prod/deployments/api', { verb: 'update', resource: 'deployments' }],
    [
      'GET',
      '/api/v1/namespaces/prod',
      { verb: 'get', resource: 'namespaces', name: 'prod', namespace: undefined },
    ],
    [
      'PUT',
      '/api/v1/namespaces/prod/finalize',
      { verb: 'update', resource: 'namespaces', subresource: 'finalize' },
    ],
    ['GET', '/api/v1/nodes', { verb: 'list', resource: 'nodes', namespace: undefined }],
    ['GET', '/version', { resourceRequest: false, verb: 'get' }],
  ];
  for (const [method, target, expected] of cases)
    it(`${method} ${target}`, () => {
      const got = info(method, target)!;
      for (const [k, v] of Object.entries(expected)) assert.equal(got[k as keyof typeof got], v, k);
    });
});

describe('Kubernetes kinds', () => {
  it('reads, writes, exec with its command, privilege and fail-closed cases', () => {
    assert.equal(classify('GET', '/api/v1/namespaces/default/pods').kind, 'read');
    assert.equal(classify('DELETE', '/api/v1/namespaces/default/pods/x').kind, 'write');
    const exec = classify(
      'POST',
      '/api/v1/namespaces/p/pods/w/exec?command=sh&command=-c&command=rm%20-rf%20%2F',
    );
    assert.equal(exec.kind, 'exec');
    assert.deepEqual(exec.parts[0]!.fields!.command, [`sh -c 'rm -rf /'`]);
    assert.deepEqual(exec.parts[0]!.fields!.resource, ['pods/exec']);
    assert.equal(classify('GET', '/api/v1/namespaces/p/pods/w/attach').kind, 'session');
    assert.equal(
      classify('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings').kind,
      'privilege',
    );
    assert.equal(classify('GET', '/api/v1/namespaces/p/pods', true).kind, 'privilege');
    assert.equal(classify('DELETE', '/api/v1/namespaces/prod').kind, 'admin');
    assert.equal(classify('GET', '/api/v1/namespaces/p/services/s/proxy/admin').kind, 'unknown');
    assert.equal(classify('POST', '/version').kind, 'unknown');
    assert.equal(classify('GET', '/api/v1/namespaces/p/pods/%ZZ').kind, 'unknown');
    const scale = classify('PATCH', '/apis/apps/v1/namespaces/prod/deployments/api/scale');
    assert.deepEqual(scale.parts[0]!.fields!.resource, ['deployments/scale', 'deployments.apps/scale']);
    assert.equal(scale.summary, 'patch deployments/api scale -n prod');
  });

  it("a shell's -c script is judged command by command, with the request's fields", () => {
    const c = classify(
      'GET',
      '/api/v1/namespaces/prod/pods/w/exec?command=bash&command=-ec&command=cd%20%2Fdata%20%26%26%20rm%20-rf%20x%20%3E%20log',
    );
    assert.deepEqual(
      c.parts.map((p) => [p.kind, p.fields?.command?.[0] ?? p.fields?.file?.[0]]),
      [
        ['exec', `bash -ec 'cd /data && rm -rf x > log'`],
        ['exec', 'cd /data'],
        ['exec', 'rm -rf x'],
        ['write', 'log'],
      ],
    );
    assert.ok(
      c.parts.every((p) => p.fields?.namespace?.[0] === 'prod' && p.fields?.resource?.[0] === 'pods/exec'),
    );
    assert.equal(c.parts[3]!.fields?.command, undefined, 'the redirection is not the shell command');
    assert.equal(c.kind, 'exec');
    // What the shell would expand at run time is not seen through.
    const hidden = classify(
      'GET',
      '/api/v1/namespaces/p/pods/w/exec?command=sh&command=-c&command=%24(curl%20x)',
    );
    assert.equal(hidden.kind, 'unknown');
    // Not a -c script: the argv is the one command.
    assert.equal(classify('GET', '/api/v1/namespaces/p/pods/w/exec?command=sh').parts.length, 1);
    assert.equal(
      classify('GET', '/api/v1/namespaces/p/pods/w/exec?command=sh&command=script.sh').parts.length,
      1,
    );
    assert.equal(
      classify('GET', '/api/v1/namespaces/p/pods/w/exec?command=busybox&command=sh&command=-c&command=id')
        .parts.length,
      2,
    );
  });
});

it('a method other than GET under the deprecated /watch/ prefix is not a read', () => {
  for (const method of ['PUT', 'POST', 'DELETE', 'PATCH']) {
    const c = classifyKubernetes({
      method,
      target: '/api/v1/watch/namespaces/prod/pods/api',
      query: new URLSearchParams(),
      body: undefined,
      impersonating: false,
    });
    assert.equal(c.kind, 'unknown', method);
  }
  const get = classifyKubernetes({
    method: 'GET',
    target: '/api/v1/watch/namespaces/prod/pods',
    query: new URLSearchParams(),
    body: undefined,
    impersonating: false,
  });
  assert.equal(get.kind, 'read');
});
