/**
 * `type: git` connections on the proxy. A refused or held push is answered in the push's own
 * protocol: report-status `ng REF reason` lines (git prints "! [remote rejected] … (reason)")
 * and side-band progress messages (printed as "remote: …"), so `git push` shows Airlock's words.
 * https://git-scm.com/docs/pack-protocol#_report_status
 */
import type { AirlockError } from '../../../core/errors.ts';
import type { GitConnection } from '../../../core/policy/connections/git.ts';
import type { Exchange, ProxyAdapter } from '../adapter.ts';
import { classifyGit, gitService } from './classify.ts';
import { FLUSH, pkt, sideband } from './pktline.ts';
import { parsePushRequest } from './receive-pack.ts';

const RESULT_TYPE = 'application/x-git-receive-pack-result';
/** While a push is held, a progress line goes to the caller this often. */
const KEEPALIVE_MS = 20_000;

function isPush(ex: Exchange): boolean {
  return ex.method === 'POST' && gitService(ex.pathname)?.service === 'git-receive-pack';
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').slice(0, 900);
}

/** The push's refs and whether the client asked for side-band, read back from the body. */
function pushShape(ex: Exchange): { refs: string[]; sideband: boolean } {
  try {
    const p = parsePushRequest(ex.body ?? Buffer.alloc(0));
    return {
      refs: p.updates.map((u) => u.ref),
      sideband: p.capabilities.includes('side-band-64k') || p.capabilities.includes('side-band'),
    };
  } catch {
    return { refs: [], sideband: false };
  }
}

/** Start the receive-pack result: 200 and the content type git expects. */
function startResult(ex: Exchange): void {
  if (!ex.res.headersSent)
    ex.res.writeHead(200, { 'content-type': RESULT_TYPE, 'cache-control': 'no-cache', 'x-airlock': 'held' });
}

function progress(ex: Exchange, sb: boolean, message: string): void {
  if (sb) ex.res.write(sideband(2, `airlock: ${oneLine(message)}\n`));
}

/** Ends the push with every ref rejected for `reason`. */
function rejectPush(ex: Exchange, reason: string): void {
  const { refs, sideband: sb } = pushShape(ex);
  startResult(ex);
  progress(ex, sb, reason);
  const status = Buffer.concat([
    pkt('unpack ok\n'),
    ...(refs.length > 0 ? refs : ['refs/heads/unknown']).map((r) =>
      pkt(`ng ${r} ${oneLine(`airlock: ${reason}`)}\n`),
    ),
    FLUSH,
  ]);
  ex.res.end(sb ? Buffer.concat([sideband(1, status), FLUSH]) : status);
}

function plain(ex: Exchange, status: number, text: string, headers: Record<string, string> = {}): void {
  if (ex.res.headersSent) {
    ex.res.destroy();
    return;
  }
  const body = `airlock: ${text}\n`;
  ex.res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  ex.res.end(body);
}

export const gitAdapter: ProxyAdapter<GitConnection> = {
  protocol: 'git',
  maxBody: (c) => c.maxPush,
  classify: (ex, c) =>
    classifyGit(
      {
        method: ex.method,
        target: ex.target,
        query: ex.query,
        body: ex.body,
        contentEncoding: ex.req.headers['content-encoding'],
      },
      c,
    ),
  refuse(ex, error: AirlockError) {
    if (isPush(ex) && ex.body) rejectPush(ex, error.describe());
    else plain(ex, error.status, error.describe());
  },
  retry(ex, hold) {
    const text = `${hold.message} — push again once it is approved`;
    if (isPush(ex)) rejectPush(ex, text);
    else plain(ex, 403, text);
  },
  waiting(ex, hold) {
    if (!isPush(ex)) return undefined;
    const { sideband: sb } = pushShape(ex);
    if (!sb) return undefined;
    // Committing the 200 now lets git show where to approve while the push waits; the
    // upstream's own side-band stream follows once it is approved.
    startResult(ex);
    progress(ex, true, `${hold.message}`);
    progress(ex, true, 'waiting for approval…');
    // A periodic line keeps proxies and the client from giving up on a quiet connection.
    const started = Date.now();
    const timer = setInterval(() => {
      progress(
        ex,
        true,
        `still waiting for approval of request ${hold.requestId} (${Math.round((Date.now() - started) / 1000)}s)`,
      );
    }, KEEPALIVE_MS);
    timer.unref();
    return () => clearInterval(timer);
  },
  unauthorized(ex, error) {
    plain(ex, 401, error.describe(), { 'www-authenticate': 'Basic realm="airlock", charset="UTF-8"' });
  },
};
