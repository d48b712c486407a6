/**
 * Fuzz target for the Kubernetes request-info parser: API paths built from the pieces that
 * matter (groups, versions, namespaces, resources, names, subresources), then percent-encoded,
 * padded with dot segments and doubled slashes, mutated, or random. The parser must never throw;
 * an encoded or detoured path must name the same object as the plain one (the API server decodes
 * it that way); and a method that changes something must never come out as a read.
 * https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { classifyKubernetes, kubeRequestInfo } from '../../src/protocols/http/kubernetes/classify.ts';
import { ACTION_KINDS, type FuzzTarget, mutated } from './targets.ts';

const segment = fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,12}$/);

const apiPath: fc.Arbitrary<string[]> = fc
  .tuple(
    fc.oneof(
      fc.constant(['api', 'v1']),
      fc
        .tuple(
          fc.constantFrom('apps', 'batch', 'rbac.authorization.k8s.io', 'x.example.com'),
          fc.constantFrom('v1', 'v1beta1'),
        )
        .map(([g, v]) => ['apis', g, v]),
    ),
    fc.boolean(),
    fc.option(fc.oneof(segment, fc.constantFrom('prod', 'kube-system')), { nil: undefined }),
    fc.constantFrom(
      'pods',
      'secrets',
      'deployments',
      'namespaces',
      'nodes',
      'clusterrolebindings',
      'configmaps',
    ),
    fc.option(segment, { nil: undefined }),
    fc.option(fc.constantFrom('exec', 'attach', 'portforward', 'proxy', 'status', 'log', 'scale'), {
      nil: undefined,
    }),
  )
  .map(([base, watch, ns, resource, name, sub]) => [
    ...base,
    ...(watch ? ['watch'] : []),
    ...(ns ? ['namespaces', ns] : []),
    resource,
    ...(name ? [name, ...(sub ? [sub] : [])] : []),
  ]);

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'get', 'FOO'];
const CHANGES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The same path written the way a caller may disguise it. */
const disguised = (parts: string[]): fc.Arbitrary<string> =>
  fc
    .tuple(
      fc.array(fc.boolean(), { minLength: parts.length, maxLength: parts.length }),
      fc.array(fc.nat(parts.length), { maxLength: 3 }),
      fc.array(fc.nat(parts.length), { maxLength: 2 }),
      fc.boolean(),
    )
    .map(([encode, detours, doubled, trailing]) => {
      const segs = parts.map((p, i) =>
        encode[i] ? [...Buffer.from(p)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('') : p,
      );
      // Doubled slashes (an empty segment is ignored), not first: `//host` names a host.
      for (const at of doubled) segs.splice(Math.max(1, at), 0, '');
      // `x/..` anywhere is no segment at all; `%2e%2e` is a dot segment too.
      for (const at of [...detours].sort((a, b) => b - a))
        segs.splice(at, 0, 'detour', at % 2 ? '%2e%2e' : '..');
      const path = `/${segs.join('/')}${trailing ? '/' : ''}`;
      return path;
    });

function object(method: string, target: string, query: URLSearchParams) {
  const r = kubeRequestInfo(method, target, query);
  if (!r) return undefined;
  const { path: _path, ...rest } = r;
  return rest;
}

function check(method: string, target: string, query: string, plain?: string): void {
  const q = new URLSearchParams(query);
  const info = kubeRequestInfo(method, target, q);
  if (info) {
    assert.ok(!info.path.includes('\0'));
    assert.equal(typeof info.verb, 'string');
  }
  const c = classifyKubernetes({ method, target, query: q, body: undefined, impersonating: false });
  assert.ok(ACTION_KINDS.has(c.kind), `kind ${c.kind}`);
  for (const p of c.parts) assert.ok(ACTION_KINDS.has(p.kind), `kind ${p.kind}`);
  // A method that changes things is never judged a read, under the deprecated /watch/ prefix
  // too (the API server serves that prefix for GET only).
  if (CHANGES.has(method.toUpperCase()))
    assert.notEqual(c.kind, 'read', `${method} ${target} was judged a read`);
  if (plain !== undefined)
    assert.deepEqual(
      object(method, target, q),
      object(method, plain, q),
      `${target} is not read as ${plain}`,
    );
}

export const KUBERNETES_TARGETS: readonly FuzzTarget[] = [
  {
    name: 'kubernetes: request paths encoded, detoured, mutated and random',
    quickRuns: 300,
    property: () =>
      fc.property(
        fc.tuple(
          fc.constantFrom(...METHODS),
          fc.oneof(
            apiPath.chain((parts) =>
              disguised(parts).map((target) => ({
                target,
                plain: `/${parts.join('/')}` as string | undefined,
              })),
            ),
            mutated(apiPath.map((parts) => Buffer.from(`/${parts.join('/')}`))).map((b) => ({
              target: b.toString('latin1'),
              plain: undefined,
            })),
            fc.string({ maxLength: 80 }).map((target) => ({ target, plain: undefined })),
            fc
              .string({ unit: 'binary', maxLength: 80 })
              .map((target) => ({ target: `/${target}`, plain: undefined })),
          ),
          fc.constantFrom('', 'watch=1', 'watch=false', 'command=sh&command=-c&command=id', 'dryRun=All'),
        ),
        ([method, { target, plain }, query]) => check(method, target, query, plain),
      ),
  },
];
