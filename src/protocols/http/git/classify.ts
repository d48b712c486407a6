/**
 * Git smart-HTTP requests as Actions. Fetches and ref advertisements are reads; a push is one
 * part per ref update (kind `write`, statement create/update/force-update/delete, fields `ref`
 * and `file`), plus an `AddsSecret` part for each secret found in added lines. What cannot be
 * inspected is `unknown`.
 * https://git-scm.com/docs/http-protocol
 */
import { gunzipSync } from 'node:zlib';
import type { ActionPart } from '../../../core/action.ts';
import { kindOfParts } from '../../../core/action.ts';
import type { GitConnection } from '../../../core/policy/connections/git.ts';
import type { Classified } from '../adapter.ts';
import { bodyHash, decodedPath } from '../classify.ts';
import { type InspectTarget, inspectPush, type UpdateFacts } from './inspect.ts';
import { PushParseError, parsePushRequest } from './receive-pack.ts';

/** Diff text one push puts on its request, across its ref updates. */
const MAX_PUSH_DIFF = 512 * 1024;

export interface GitFacts {
  readonly method: string;
  readonly target: string;
  readonly query: URLSearchParams;
  readonly body: Buffer | undefined;
  readonly contentEncoding?: string | undefined;
}

/** `/team/app.git/git-receive-pack` → the repository path and the service. */
export function gitService(path: string): { repo: string; service: string } | undefined {
  const m = /^(.*?)\/(info\/refs|git-upload-pack|git-receive-pack)$/.exec(path);
  return m ? { repo: m[1] || '/', service: m[2]! } : undefined;
}

function unknownAction(method: string, target: string, hash: string, why: string): Classified {
  return {
    kind: 'unknown',
    parts: [{ kind: 'unknown', text: `${method} ${target}`, why }],
    summary: `${method} ${target}`,
    normalized: `${method} ${target} body:${hash}`,
    attributes: { method, target, problem: why },
  };
}

export async function classifyGit(f: GitFacts, connection: GitConnection): Promise<Classified> {
  const method = f.method.toUpperCase();
  const hash = bodyHash(f.body);
  const path = decodedPath(f.target);
  if (path === undefined)
    return unknownAction(method, f.target, hash, 'the path could not be decoded unambiguously');
  const svc = gitService(path);
  const read = (why: string, summary: string): Classified => ({
    kind: 'read',
    parts: [
      {
        kind: 'read',
        text: `${method} ${f.target}`,
        statement: svc?.service ?? method,
        why,
        fields: { path: [path], method: [method] },
      },
    ],
    summary,
    normalized: `${method} ${f.target} body:${hash}`,
    attributes: { method, target: f.target, ...(svc ? { repository: svc.repo } : {}) },
  });
  if (!svc) {
    if (method === 'GET' || method === 'HEAD')
      return read('a plain file of the repository (dumb protocol)', `fetch ${path}`);
    return unknownAction(method, f.target, hash, `${method} is not part of the git smart-HTTP protocol`);
  }
  if (svc.service === 'info/refs' && (method === 'GET' || method === 'HEAD'))
    return read('the ref advertisement', `list refs of ${svc.repo} (${f.query.get('service') ?? 'dumb'})`);
  if (svc.service === 'git-upload-pack' && method === 'POST')
    return read('a fetch or clone', `fetch from ${svc.repo}`);
  if (svc.service !== 'git-receive-pack' || method !== 'POST')
    return unknownAction(
      method,
      f.target,
      hash,
      `${method} ${svc.service} is not a git request Airlock knows`,
    );

  let body = f.body ?? Buffer.alloc(0);
  if (/gzip/i.test(f.contentEncoding ?? '')) {
    try {
      body = gunzipSync(body);
    } catch {
      return unknownAction(method, f.target, hash, 'the gzip-encoded push could not be decoded');
    }
  }
  let push: ReturnType<typeof parsePushRequest>;
  try {
    push = parsePushRequest(body);
  } catch (err) {
    return unknownAction(
      method,
      f.target,
      hash,
      err instanceof PushParseError ? err.message : 'the push could not be parsed',
    );
  }
  // A probe (git sends a flush alone to test authentication before a large push) changes nothing.
  if (push.updates.length === 0 && !push.pushCert)
    return read('an empty push probe', `push probe to ${svc.repo}`);
  if (push.pushCert) return unknownAction(method, f.target, hash, 'signed pushes are not inspected');

  const target: InspectTarget = {
    url: `${connection.upstream.url}${svc.repo === '/' ? '' : svc.repo}`,
    credential: connection.credential,
    insecureSkipVerify: connection.upstream.insecureSkipVerify,
    ca: connection.upstream.ca,
  };
  const inspection = await inspectPush(target, push.updates, push.pack);
  const parts: ActionPart[] = [];
  const describe: string[] = [];
  const attributes: Record<string, unknown> = { method, target: f.target, repository: svc.repo };
  if (!inspection.ok) {
    for (const u of push.updates)
      parts.push({
        kind: 'unknown',
        text: `${u.oldOid.slice(0, 12)}..${u.newOid.slice(0, 12)} ${u.ref}`,
        why: inspection.error,
        fields: { ref: [u.ref] },
      });
    describe.push(...push.updates.map((u) => `${u.ref} (not inspected: ${inspection.error})`));
    attributes.problem = inspection.error;
  } else {
    const updates: Record<string, unknown>[] = [];
    // The diffs of one push share one budget, so a push of many refs stays reviewable.
    let budget = MAX_PUSH_DIFF;
    const diffFor = (u: UpdateFacts): Record<string, unknown> => {
      if (u.change === 'delete') return {};
      const fits = u.diff.length <= budget;
      const diff = fits ? u.diff : u.diff.slice(0, Math.max(0, budget));
      budget -= diff.length;
      return { diff, ...(u.diffTruncated || !fits ? { diffTruncated: true } : {}) };
    };
    for (const u of inspection.updates) {
      const short = `${u.update.oldOid.slice(0, 12)}..${u.update.newOid.slice(0, 12)}`;
      parts.push({
        kind: 'write',
        text: `${u.change} ${u.update.ref} ${short}`,
        statement: u.change,
        why:
          u.change === 'force-update'
            ? 'the new commit does not contain the old one: history is rewritten'
            : `${u.change} of ${u.update.ref}`,
        fields: { ref: [u.update.ref], ...(u.files.length > 0 ? { file: [...u.files] } : {}) },
      });
      for (const s of u.secrets)
        parts.push({
          kind: 'write',
          text: `${s.detector} added in ${s.file}: ${s.masked}`,
          statement: 'AddsSecret',
          why: `a ${s.detector.replace(/_/g, ' ')} appears in an added line of ${s.file}`,
          fields: { ref: [u.update.ref], file: [s.file] },
        });
      describe.push(
        `${u.change === 'force-update' ? 'force-push' : u.change} ${u.update.ref}${u.change === 'delete' ? '' : ` (${u.commits.length} commit${u.commits.length === 1 ? '' : 's'}, ${u.files.length} file${u.files.length === 1 ? '' : 's'})`}`,
      );
      updates.push({
        ref: u.update.ref,
        old: u.update.oldOid,
        new: u.update.newOid,
        change: u.change,
        commits: u.commits,
        files: u.numstat,
        ...(u.secrets.length > 0 ? { secrets: u.secrets } : {}),
        ...diffFor(u),
      });
    }
    attributes.updates = updates;
  }
  return {
    kind: kindOfParts(parts),
    parts,
    summary: `git push to ${svc.repo}: ${describe.join('; ')}`,
    normalized: `${method} ${f.target} body:${hash}`,
    attributes,
  };
}
