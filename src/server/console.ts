/**
 * The reviewer console: serves the built Preact app from dist/web under a strict Content
 * Security Policy, signs reviewers in (a session cookie), and guards cookie-authenticated API
 * calls against cross-site request forgery.
 *
 * A browser session is an HttpOnly, SameSite=Strict cookie naming a session kept in the store
 * (console-sessions.ts), so every replica serves it. An onRequest hook presents it to the API
 * as `Authorization: Bearer` with a pass standing for the session's principal, so every API
 * route keeps one way of authenticating; a token removed from the policy or revoked ends open
 * sessions too. State-changing calls made with the cookie must also carry the session's CSRF
 * token in `X-Airlock-CSRF`.
 *
 * Sign-in goes through a SessionAuthenticator: local tokens now, OIDC later.
 */
import { timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Principal } from '../core/action.ts';
import type { EventBus } from '../core/approvals/bus.ts';
import { AirlockError } from '../core/errors.ts';
import type { Authenticator } from '../core/identity/authenticator.ts';
import type { Policy } from '../core/policy/policy.ts';
import type { Store } from '../core/store.ts';
import { breakGlassFor, isReviewer, reviewerGroups } from './api.ts';
import type { ConsoleSessions } from './console-sessions.ts';
import { type EventsApprovals, registerEvents, sharedTicketKey } from './events.ts';

/** Where `npm run build:web` writes the console. */
export const CONSOLE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist/web');

export function consoleBuilt(dir = CONSOLE_DIR): boolean {
  return existsSync(join(dir, 'index.html'));
}

export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export const SESSION_COOKIE = 'airlock_session';
export const CSRF_HEADER = 'x-airlock-csrf';

/** Turns what a sign-in form sent into a principal and the credential the API accepts. */
export interface SessionAuthenticator {
  /** Shown to the console so it can offer the right form ("token"; later "oidc"). */
  readonly method: string;
  /** Throws an AirlockError when the credentials are not good; never echoes them. */
  authenticate(credentials: unknown): Promise<{ principal: Principal; credential: string }>;
}

const tokenSignIn = z.strictObject({ token: z.string().trim().min(1).max(1024) });

/** Local sign-in: the reviewer pastes their Airlock API token. */
export class TokenSessionAuthenticator implements SessionAuthenticator {
  readonly method = 'token';
  constructor(private readonly tokens: Authenticator) {}

  async authenticate(credentials: unknown) {
    const r = tokenSignIn.safeParse(credentials ?? {});
    if (!r.success)
      throw new AirlockError('AIRLOCK_E_BAD_REQUEST', 'sign in with {"token": "<your Airlock token>"}', {
        hint: 'paste the Airlock token you were given',
      });
    return { principal: await this.tokens.authenticate(r.data.token), credential: r.data.token };
  }
}

export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** SPA routes answered with index.html. /requests/:id is answered from the hook (see below). */
const SPA_ROUTES = ['/', '/login', '/history', '/audit', '/access'];

const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

export interface ConsoleDeps {
  readonly policy: Policy;
  /** Accepts the passes of `sessions` (ConsoleSessions.authenticator). */
  readonly tokens: Authenticator;
  readonly sessions: ConsoleSessions;
  /** Keeps the event stream ticket key every replica shares. */
  readonly store: Pick<Store, 'sharedSecret'>;
  readonly approvals: EventsApprovals;
  readonly bus: EventBus;
  /** Defaults to local token sign-in. */
  readonly authenticator?: SessionAuthenticator;
  /** Defaults to CONSOLE_DIR. */
  readonly dir?: string;
}

function securityHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', CONSOLE_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY');
}

/**
 * Registers sign-in, the CSRF guard, the SSE stream and the console pages on the API's
 * Fastify instance. Call before the instance listens.
 */
export async function registerConsole(
  app: FastifyInstance,
  deps: ConsoleDeps,
): Promise<{ openSession(reply: FastifyReply, principal: Principal, credential: string): Promise<void> }> {
  const { policy, sessions } = deps;
  const dir = deps.dir ?? CONSOLE_DIR;
  const authenticator = deps.authenticator ?? new TokenSessionAuthenticator(deps.tokens);
  const groups = reviewerGroups(policy);
  // Read per request: the public URL can be fixed only after the listener bound its port.
  const secure = () => policy.publicUrl.startsWith('https:');

  const setCookie = (reply: FastifyReply, value: string, maxAgeS: number) =>
    reply.header(
      'set-cookie',
      `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${secure() ? '; Secure' : ''}`,
    );

  /** The request came from a page of this origin (when the browser says where it came from). */
  const sameOrigin = (request: FastifyRequest): boolean => {
    const origin = request.headers.origin;
    if (origin === undefined) return request.headers['sec-fetch-site'] !== 'cross-site';
    const allowed = new Set<string>();
    try {
      allowed.add(new URL(policy.publicUrl).origin);
    } catch {
      // an unparsable public URL only removes one allowed origin
    }
    // Behind a TLS-terminating proxy the Host is right but the scheme is not ours to know.
    if (request.headers.host)
      for (const scheme of ['http', 'https']) allowed.add(`${scheme}://${request.headers.host}`);
    return allowed.has(origin);
  };

  const whoami = (p: Principal) => ({
    name: p.name,
    kind: p.kind,
    groups: [...p.groups],
    reviewer: isReviewer(policy, p, groups),
    breakGlass: breakGlassFor(policy, p),
  });

  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    // The console replaces the API's plain request page for browsers. A caller that presents a
    // token (curl, scripts) still gets the plain page.
    if (
      request.method === 'GET' &&
      /^\/requests\/\d+\/?$/.test(path) &&
      request.headers.authorization === undefined &&
      consoleBuilt(dir)
    ) {
      sendIndex(reply, dir);
      return reply;
    }
    if (!path.startsWith('/api/')) return;
    if (request.headers.authorization !== undefined) return;
    const sid = readCookie(request.headers.cookie, SESSION_COOKIE);
    if (!sid) return;
    // What changes something is checked against the store, so a sign-out elsewhere holds at once.
    const safe = SAFE_METHODS.has(request.method);
    const session = await sessions.get(sid, { fresh: !safe });
    if (!session) return;
    if (!safe) {
      const sent = request.headers[CSRF_HEADER];
      if (typeof sent !== 'string' || !sameSecret(sent, session.csrf) || !sameOrigin(request))
        throw new AirlockError('AIRLOCK_E_FORBIDDEN', 'this request did not come from the Airlock console', {
          hint: `send the ${CSRF_HEADER} header the console got at sign-in, or use "Authorization: Bearer <token>"`,
        });
    }
    const pass = sessions.pass(session.principal);
    reply.raw.once('close', pass.release);
    request.headers.authorization = `Bearer ${pass.credential}`;
  });

  app.get('/api/v1/session', async (request) => {
    // Read from the store: a session ended on another replica, or whose token was removed from
    // the policy or revoked, is over here too.
    const session = await sessions.get(readCookie(request.headers.cookie, SESSION_COOKIE), { fresh: true });
    if (!session)
      throw new AirlockError('AIRLOCK_E_TOKEN_MISSING', 'not signed in', {
        hint: `sign in to the console at ${policy.publicUrl}/login`,
      });
    return { principal: whoami(session.principal), csrf: session.csrf, method: authenticator.method };
  });

  app.post('/api/v1/session', async (request, reply) => {
    if (!sameOrigin(request))
      throw new AirlockError('AIRLOCK_E_FORBIDDEN', 'sign-in must come from the Airlock console', {
        hint: `open ${policy.publicUrl}/login`,
      });
    const { principal, credential } = await authenticator.authenticate(request.body);
    await sessions.close(readCookie(request.headers.cookie, SESSION_COOKIE));
    const { id, session } = await sessions.open(principal, credential, authenticator.method);
    setCookie(reply, id, Math.max(0, Math.floor((session.expiresAt - Date.now()) / 1000)));
    void reply.header('cache-control', 'no-store');
    return { principal: whoami(principal), csrf: session.csrf, method: authenticator.method };
  });

  app.delete('/api/v1/session', async (request, reply) => {
    await sessions.close(readCookie(request.headers.cookie, SESSION_COOKIE));
    setCookie(reply, '', 0);
    return { ok: true };
  });

  registerEvents(app, {
    policy,
    tokens: deps.tokens,
    approvals: deps.approvals,
    bus: deps.bus,
    ticketKey: await sharedTicketKey(deps.store),
  });

  for (const route of SPA_ROUTES)
    app.get(route, async (_request, reply) => {
      sendIndex(reply, dir);
      return reply;
    });

  app.get('/assets/:file', async (request, reply) => {
    const { file } = request.params as { file: string };
    sendStatic(reply, dir, 'assets', file, true);
    return reply;
  });
  app.get('/favicon.svg', async (_request, reply) => {
    sendStatic(reply, dir, '', 'favicon.svg', false);
    return reply;
  });

  // For sign-ins that do not POST credentials here (the OIDC redirect flow).
  return {
    async openSession(reply, principal, credential) {
      const { id, session } = await sessions.open(principal, credential, 'oidc');
      setCookie(reply, id, Math.max(0, Math.floor((session.expiresAt - Date.now()) / 1000)));
    },
  };
}

function notBuilt(reply: FastifyReply): void {
  void reply
    .status(503)
    .type('text/plain; charset=utf-8')
    .send(
      'The Airlock console is not built. Run `npm run build:web` (npm install does it), then restart.\n' +
        'The API under /api/v1 and the CLI work without it.\n',
    );
}

function sendIndex(reply: FastifyReply, dir: string): void {
  if (!consoleBuilt(dir)) {
    notBuilt(reply);
    return;
  }
  void securityHeaders(reply)
    .type('text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .send(readFileSync(join(dir, 'index.html')));
}

function sendStatic(reply: FastifyReply, dir: string, sub: string, file: string, immutable: boolean): void {
  const type = CONTENT_TYPES[extname(file)];
  // Only plain file names (no separators, no dot-files): nothing outside dist/web is reachable.
  const path = join(dir, sub, file);
  if (!/^[\w][\w.-]*$/.test(file) || !type || !existsSync(path) || !statSync(path).isFile()) {
    const e = new AirlockError('AIRLOCK_E_BAD_REQUEST', `no such console file: ${file.slice(0, 100)}`, {
      hint: 'reload the console',
      status: 404,
    });
    void reply.status(404).send({ error: e.toJSON() });
    return;
  }
  void securityHeaders(reply)
    .type(type)
    .header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
    .send(readFileSync(path));
}
