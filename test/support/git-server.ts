/**
 * A Git smart-HTTP server for tests: `git http-backend` (the CGI program shipped with git) behind
 * a small node:http server, serving bare repositories from a temporary directory. It requires
 * the bearer token Airlock holds, as a real Git host would require its credential.
 * https://git-scm.com/docs/git-http-backend
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface GitServer {
  /** Base URL; repositories are at `${url}/NAME.git`. */
  readonly url: string;
  readonly root: string;
  /** Creates a bare repository that accepts pushes. */
  createRepo(name: string): string;
  /** `git` in a bare repository of this server (e.g. rev-parse, log). */
  git(repo: string, ...args: string[]): string;
  close(): Promise<void>;
}

const BACKEND = '/usr/lib/git-core/git-http-backend';

export async function startGitServer(token: string): Promise<GitServer> {
  const root = mkdtempSync(join(tmpdir(), 'airlock-git-upstream-'));
  const server: Server = createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${token}`) {
      req.resume();
      res.writeHead(401, { 'www-authenticate': 'Bearer realm="git"', 'content-type': 'text/plain' });
      res.end('credential required\n');
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = new URL(req.url ?? '/', 'http://x');
      const child = spawn(BACKEND, [], {
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          GIT_PROJECT_ROOT: root,
          GIT_HTTP_EXPORT_ALL: '1',
          REMOTE_USER: 'airlock',
          REMOTE_ADDR: '127.0.0.1',
          REQUEST_METHOD: req.method ?? 'GET',
          PATH_INFO: decodeURIComponent(url.pathname),
          QUERY_STRING: url.search.slice(1),
          CONTENT_TYPE: req.headers['content-type'] ?? '',
          CONTENT_LENGTH: String(body.length),
          ...(req.headers['content-encoding']
            ? { HTTP_CONTENT_ENCODING: req.headers['content-encoding'] }
            : {}),
          ...(req.headers['git-protocol'] ? { GIT_PROTOCOL: String(req.headers['git-protocol']) } : {}),
        },
        stdio: ['pipe', 'pipe', 'ignore'],
      });
      // http-backend may exit without reading a body it does not need.
      child.stdin.on('error', () => {});
      child.stdin.end(body);
      let head = Buffer.alloc(0);
      let headersDone = false;
      child.stdout.on('data', (d: Buffer) => {
        if (headersDone) {
          res.write(d);
          return;
        }
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\r\n\r\n');
        const endLf = head.indexOf('\n\n');
        const cut = end >= 0 ? end : endLf;
        if (cut < 0) return;
        const sep = end >= 0 ? 4 : 2;
        const lines = head.subarray(0, cut).toString('latin1').split(/\r?\n/);
        let status = 200;
        const headers: Record<string, string> = {};
        for (const line of lines) {
          const i = line.indexOf(':');
          const k = line.slice(0, i).trim();
          const v = line.slice(i + 1).trim();
          if (k.toLowerCase() === 'status') status = Number(v.split(' ')[0]);
          else headers[k] = v;
        }
        res.writeHead(status, headers);
        headersDone = true;
        res.write(head.subarray(cut + sep));
      });
      child.stdout.on('end', () => res.end());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    root,
    createRepo(name) {
      const dir = join(root, `${name}.git`);
      execFileSync('git', ['init', '--quiet', '--bare', '--initial-branch=main', dir]);
      execFileSync('git', ['-C', dir, 'config', 'http.receivepack', 'true']);
      return dir;
    },
    git: (repo, ...args) =>
      execFileSync('git', ['-C', join(root, `${repo}.git`), ...args], { encoding: 'utf8' }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          rmSync(root, { recursive: true, force: true });
          resolve();
        });
      }),
  };
}
