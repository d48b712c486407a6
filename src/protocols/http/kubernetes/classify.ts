/**
 * Kubernetes API requests as Actions, the way the API server's own authorizer sees them:
 * verb + resource[/subresource] + namespace + name.
 * https://kubernetes.io/docs/reference/access-authn-authz/authorization/#determine-the-request-verb
 * https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris
 */
import { type ActionKind, type ActionPart, riskier } from '../../../core/action.ts';
import type { Classified } from '../adapter.ts';
import { bodyHash, bodyPreview, decodedPath } from '../classify.ts';
import { argvText, scriptParts } from './exec-command.ts';

export interface KubeRequest {
  /** True for /api and /apis resource URLs; false for /version, /openapi, /healthz, ... */
  readonly resourceRequest: boolean;
  readonly verb: string;
  readonly apiGroup: string;
  readonly apiVersion: string;
  readonly namespace?: string | undefined;
  readonly resource?: string | undefined;
  readonly subresource?: string | undefined;
  readonly name?: string | undefined;
  readonly path: string;
}

/** Writes to these change who may do what. */
const PRIVILEGE_RESOURCES = new Set([
  'roles',
  'rolebindings',
  'clusterroles',
  'clusterrolebindings',
  'certificatesigningrequests',
  'serviceaccounts/token',
  'tokenrequests',
]);
const SCHEMA_RESOURCES = new Set(['customresourcedefinitions', 'apiservices']);
const ADMIN_RESOURCES = new Set([
  'namespaces',
  'nodes',
  'validatingwebhookconfigurations',
  'mutatingwebhookconfigurations',
  'validatingadmissionpolicies',
  'validatingadmissionpolicybindings',
  'persistentvolumes',
  'storageclasses',
  'priorityclasses',
]);
/** Subresources that open a stream into a workload. */
const SESSION_SUBRESOURCES = new Set(['attach', 'portforward']);

/** Subresources that open a stream (exec included). */
const STREAM_SUBRESOURCES = new Set(['exec', 'attach', 'portforward']);

/** Namespace subresources: `/api/v1/namespaces/NAME/status` is the namespace itself. */
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);

/** RequestInfo as the API server computes it (k8s.io/apiserver/pkg/endpoints/request). */
export function kubeRequestInfo(
  method: string,
  target: string,
  query: URLSearchParams,
): KubeRequest | undefined {
  const path = decodedPath(target);
  if (path === undefined) return undefined;
  const parts = path.split('/').filter((p) => p.length > 0);
  const m = method.toUpperCase();
  const plainVerb = m.toLowerCase();
  const nonResource: KubeRequest = {
    resourceRequest: false,
    verb: plainVerb,
    apiGroup: '',
    apiVersion: '',
    path,
  };
  let rest: string[];
  let apiGroup = '';
  let apiVersion: string;
  if (parts[0] === 'api' && parts.length >= 2) {
    apiVersion = parts[1]!;
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 3) {
    apiGroup = parts[1]!;
    apiVersion = parts[2]!;
    rest = parts.slice(3);
  } else return nonResource;
  if (rest.length === 0) return nonResource;

  let verb: string;
  switch (m) {
    case 'POST':
      verb = 'create';
      break;
    case 'GET':
    case 'HEAD':
      verb = 'get';
      break;
    case 'PUT':
      verb = 'update';
      break;
    case 'PATCH':
      verb = 'patch';
      break;
    case 'DELETE':
      verb = 'delete';
      break;
    default:
      verb = plainVerb;
  }
  // Deprecated /watch/ prefix: the API server serves it for GET only. Any other method there is
  // not a watch; it gets a verb no rule allows (unknown), rather than being taken for a read.
  if (rest[0] === 'watch') {
    verb = verb === 'get' ? 'watch' : `${m.toLowerCase()} under /watch`;
    rest = rest.slice(1);
  }
  let namespace: string | undefined;
  if (rest[0] === 'namespaces') {
    if (rest.length > 1) {
      namespace = rest[1];
      if (rest.length > 2 && !NAMESPACE_SUBRESOURCES.has(rest[2]!)) rest = rest.slice(2);
    }
  }
  const resource = rest[0];
  const name = rest[1];
  // Only the first segment names the subresource; the rest is a proxy path.
  const subresource = rest[2];
  // The namespace object itself has no namespace.
  if (resource === 'namespaces') namespace = undefined;

  if (name === undefined) {
    if (verb === 'get') verb = isWatch(query) ? 'watch' : 'list';
    else if (verb === 'delete') verb = 'deletecollection';
  } else if (verb === 'get' && isWatch(query)) verb = 'watch';
  // kubectl 1.30+ opens these streams with a WebSocket GET where older ones POSTed an SPDY
  // upgrade: the same stream into the pod, so the same verb for the rules.
  else if (verb === 'get' && subresource !== undefined && STREAM_SUBRESOURCES.has(subresource))
    verb = 'create';

  return {
    resourceRequest: true,
    verb,
    apiGroup,
    apiVersion,
    namespace,
    resource,
    subresource,
    name,
    path,
  };
}

function isWatch(query: URLSearchParams): boolean {
  const w = query.get('watch');
  return w !== null && w !== '0' && w.toLowerCase() !== 'false';
}

function kindOf(r: KubeRequest, method: string, impersonating: boolean): { kind: ActionKind; why: string } {
  if (impersonating) return { kind: 'privilege', why: 'the request impersonates another user or group' };
  if (!r.resourceRequest) {
    return ['GET', 'HEAD'].includes(method)
      ? { kind: 'read', why: 'a read of a non-resource URL (discovery, version, health)' }
      : { kind: 'unknown', why: `${method} on a non-resource URL` };
  }
  const full = r.subresource ? `${r.resource}/${r.subresource}` : (r.resource ?? '');
  if (r.subresource === 'exec') return { kind: 'exec', why: 'runs a command in a container' };
  if (r.subresource && SESSION_SUBRESOURCES.has(r.subresource))
    return { kind: 'session', why: `opens a ${r.subresource} stream into a pod` };
  if (r.subresource === 'proxy' || r.resource === 'proxy')
    return { kind: 'unknown', why: 'proxies to a pod, service or node: what it does there is not visible' };
  if (['get', 'list', 'watch'].includes(r.verb)) return { kind: 'read', why: `${r.verb} is a read` };
  if (PRIVILEGE_RESOURCES.has(full) || PRIVILEGE_RESOURCES.has(r.resource ?? ''))
    return { kind: 'privilege', why: `${r.verb} on ${full} changes permissions` };
  if (SCHEMA_RESOURCES.has(r.resource ?? ''))
    return { kind: 'schema', why: `${r.verb} on ${full} changes the API` };
  if (ADMIN_RESOURCES.has(r.resource ?? '') && !r.subresource)
    return { kind: 'admin', why: `${r.verb} on ${full} affects the whole cluster` };
  if (['create', 'update', 'patch', 'delete', 'deletecollection'].includes(r.verb))
    return { kind: 'write', why: `${r.verb} changes ${full}` };
  return { kind: 'unknown', why: `verb ${r.verb} is not one Airlock knows` };
}

function execCommand(query: URLSearchParams): string | undefined {
  const words = query.getAll('command');
  return words.length === 0 ? undefined : argvText(words);
}

export interface KubeFacts {
  readonly method: string;
  readonly target: string;
  readonly query: URLSearchParams;
  readonly body: Buffer | undefined;
  readonly impersonating: boolean;
}

export function classifyKubernetes(f: KubeFacts): Classified {
  const method = f.method.toUpperCase();
  const info = kubeRequestInfo(method, f.target, f.query);
  const hash = bodyHash(f.body);
  const normalized = `${method} ${f.target} body:${hash}`;
  if (!info) {
    return {
      kind: 'unknown',
      parts: [
        {
          kind: 'unknown',
          text: `${method} ${f.target}`,
          why: 'the path could not be decoded unambiguously',
        },
      ],
      summary: `${method} ${f.target}`,
      normalized,
      attributes: { method, target: f.target },
    };
  }
  const { kind, why } = kindOf(info, method, f.impersonating);
  const resource = info.subresource ? `${info.resource}/${info.subresource}` : info.resource;
  const command = info.subresource === 'exec' ? execCommand(f.query) : undefined;
  const fields: Record<string, string[]> = { verb: [info.verb], method: [method], path: [info.path] };
  if (resource) {
    fields.resource = [resource];
    if (info.apiGroup)
      fields.resource.push(
        `${info.resource}.${info.apiGroup}${info.subresource ? `/${info.subresource}` : ''}`,
      );
  }
  if (info.namespace) fields.namespace = [info.namespace];
  if (command) fields.command = [command];
  const part: ActionPart = {
    kind,
    text: `${method} ${f.target}`,
    statement: info.verb,
    why,
    fields,
  };
  // A shell's -c script: each command in it is judged too, with the request's own fields.
  const { command: _outer, ...requestFields } = fields;
  const inner = command
    ? scriptParts(f.query.getAll('command')).map(
        (p): ActionPart => ({ ...p, fields: { ...requestFields, ...p.fields } }),
      )
    : [];
  const parts = [part, ...inner];
  let summary: string;
  if (info.resourceRequest) {
    const object = info.name ? `${info.resource}/${info.name}` : info.resource;
    summary = `${info.verb} ${object}${info.subresource ? ` ${info.subresource}` : ''}${info.namespace ? ` -n ${info.namespace}` : ''}${command ? ` -- ${command}` : ''}`;
  } else summary = `${method} ${info.path}`;
  return {
    kind: parts.reduce<ActionKind>((k, p) => riskier(k, p.kind), kind),
    parts,
    summary,
    normalized,
    attributes: {
      verb: info.verb,
      ...(info.apiGroup ? { apiGroup: info.apiGroup } : {}),
      ...(resource ? { resource } : {}),
      ...(info.namespace ? { namespace: info.namespace } : {}),
      ...(info.name ? { name: info.name } : {}),
      method,
      target: f.target,
      ...(f.body && f.body.length > 0
        ? { bodyBytes: f.body.length, bodySha256: hash, body: bodyPreview(f.body) }
        : {}),
    },
  };
}
